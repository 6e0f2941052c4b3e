"""Flatten: the features of a multi-axis output in C order, as ``torch.flatten(a, 1)``.

``f_{s,t} = sum_{c,i,j} x_{s,c,i,j} d_{t, c H W + i W + j}``: a Kronecker delta
of an affine index, so the engine's summation gives the gradient as the
reshaped ``g_{s, c H W + i W + j}``. A dense layer flattens a multi-axis input
itself (CONVENTIONS §3), with the same equation.
"""

from __future__ import annotations

import math

import sympy as sp

from symbp.engine.graph import Tensor
from symbp.engine.indices import BOUND, FREE
from symbp.ops.base import Builder, layer_type


def flattened(builder: Builder, tensor: Tensor, out: Tensor | None = None) -> Tensor:
    """``tensor`` as ``(B, features)``: itself when it has one feature axis."""
    if tensor.rank <= 2:
        return tensor
    axes = tensor.shape[1:]
    bound = BOUND[:len(axes)]
    position, stride = sp.Integer(0), sp.Integer(1)
    for index, size in reversed(list(zip(bound, axes, strict=True))):
        position += index * stride
        stride *= size
    features = math.prod(axes)
    if out is None:
        out = Tensor(f"flat{builder.layer}", (tensor.shape[0], features), layer=builder.layer,
                     latex=rf"\operatorname{{vec}}(a^{{({builder.layer - 1})}})")
    s, t = FREE[:2]
    body = tensor[(s, *bound)] * sp.KroneckerDelta(t, position)
    builder.graph.define(out, sp.Sum(body, *[(k, 0, n - 1) for k, n in zip(bound, axes,
                                                                          strict=True)]),
                         "flatten")
    return out


@layer_type("flatten", "the features in C order, one axis")
def build_flatten(builder: Builder, layer):
    previous = builder.previous
    if previous.rank <= 2:
        out = builder.tensor("a", previous.shape)
        builder.graph.define(out, previous[FREE[:2]], "flatten")
        return out
    features = math.prod(previous.shape[1:])
    return flattened(builder, previous, builder.tensor("a", (previous.shape[0], features)))
