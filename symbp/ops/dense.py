"""The dense layer: ``z_{s,i} = sum_k W_{ik} a_{s,k} + b_i``, then ``a = f(z)``; a
multi-axis input is flattened first (:mod:`symbp.ops.flatten`)."""

from __future__ import annotations

import sympy as sp

from symbp.engine.indices import BOUND, FREE
from symbp.ops.base import Builder, Option, layer_type, width
from symbp.ops.elementwise import activate, check_activation, check_units
from symbp.ops.flatten import flattened


@layer_type("dense", "a fully connected layer and its activation",
            units=Option(check=check_units), activation=Option("identity", check_activation))
def build_dense(builder: Builder, layer):
    s, i = FREE[:2]
    k = BOUND[0]
    previous = flattened(builder, builder.previous)
    n_out = width(builder.layer)
    builder.sizes[n_out] = layer.options["units"]
    activation = builder.network.activation_named(layer.options["activation"])
    W = builder.given("W", (n_out, previous.shape[-1]), "parameter",
                      init="he" if activation.name in HE_ACTIVATIONS else "glorot")
    b = builder.given("b", (n_out,), "parameter", init="zeros")
    z = builder.tensor("z", (previous.shape[0], n_out))
    builder.graph.define(z, sp.Sum(W[i, k] * previous[s, k], (k, 0, previous.shape[-1] - 1))
                         + b[i], "dense")
    builder.previous = z
    return activate(builder, activation)


HE_ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu")
