"""Elementwise ops: an activation (softmax over the features), a residual sum, dropout.

- ``activation``: ``a_{s,i} = f(x_{s,i})``; softmax ``a_{s,i} = e^{x_{s,i}} / sum_k e^{x_{s,k}}``;
- ``residual``: ``a_{s,i} = x_{s,i} + r_{s,i}``, ``r`` the output of the layer named ``from``;
- ``dropout``: training ``a_{s,i} = m_{s,i} x_{s,i} / (1 - rate)``, eval ``a = x``.
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.indices import BOUND, FREE
from symbp.errors import SpecError
from symbp.ops.base import Builder, Option, layer_type
from symbp.registry import X


def check_units(value, where, context):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 1_000_000:
        raise SpecError(f"{where}: expected a positive integer up to 1000000, got {value!r}")
    return value


def check_activation(value, where, context):
    if not isinstance(value, str):
        raise SpecError(f"{where}: expected a string")
    context.activation_named(value, where)  # raises for unknown names
    return value


def activate(builder: Builder, activation) -> object:
    """``a{l} = f(previous)`` elementwise (softmax over the last axis)."""
    previous = builder.previous
    out = builder.output()
    index = FREE[:previous.rank]
    if activation.is_softmax:
        k = BOUND[0]
        last = previous.shape[-1]
        expr = sp.exp(previous[index]) / sp.Sum(sp.exp(previous[index[:-1] + (k,)]),
                                                (k, 0, last - 1))
    else:
        expr = activation.expr.xreplace({X: previous[index]})
    builder.graph.define(out, expr, activation.name)
    return out


@layer_type("activation", "an activation function on its own",
            activation=Option(check=check_activation))
def build_activation(builder: Builder, layer):
    return activate(builder, builder.network.activation_named(layer.options["activation"]))


def check_from(value, where, context):
    if not isinstance(value, str):
        raise SpecError(f"{where}: expected a layer name or \"input\"")
    return value


@layer_type("residual", "adds the output of an earlier layer", **{"from": Option(check=check_from)})
def build_residual(builder: Builder, layer):
    where, name = f"layers[{builder.layer}].from", layer.options["from"]
    if name not in builder.named:
        earlier = ", ".join(repr(n) for n in builder.named)
        raise SpecError(f"{where}: '{name}' is not the name of an earlier layer "
                        f"(earlier: {earlier})")
    source, previous = builder.named[name], builder.previous
    if _shape(builder, source) != _shape(builder, previous):
        raise SpecError(f"{where}: '{name}' has shape {_shape(builder, source)}, the previous "
                        f"layer's output {_shape(builder, previous)}")
    index = FREE[:previous.rank]
    out = builder.output()
    builder.graph.define(out, previous[index] + source[index], "residual")
    return out


def _shape(builder, tensor):
    return tuple(builder.sizes.get(d, d) for d in tensor.shape[1:])


def check_rate(value, where, context):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise SpecError(f"{where}: expected a number with 0 <= rate < 1, got {value!r}")
    return float(value)


@layer_type("dropout", "inverted dropout", rate=Option(check=check_rate))
def build_dropout(builder: Builder, layer):
    previous = builder.previous
    index = FREE[:previous.rank]
    out = builder.output()
    if builder.mode == "eval":
        builder.graph.define(out, previous[index], "dropout")
        return out
    mask = builder.given("mask", previous.shape, "mask", latex=f"m^{{({builder.layer})}}")
    keep = 1 - sp.nsimplify(layer.options["rate"])
    builder.graph.keep[mask.name] = keep
    builder.graph.define(out, mask[index] * previous[index] / keep, "dropout")
    return out
