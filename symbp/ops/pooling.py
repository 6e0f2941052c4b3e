"""Pooling, as torch ``F.max_pool1d/2d`` and ``F.avg_pool1d/2d`` (no padding).

- average: ``a_{s,c,i,j} = (1/(K_h K_w)) sum_{p,q} x_{s,c,iS+p,jS+q}``;
- max: ``a_{s,c,i,j} = sum_{p,q} x_{s,c,iS+p,jS+q} chi_{s,c,i,j,p,q}`` with ``chi`` the
  window-argmax indicator (:class:`~symbp.engine.argmax.IsArgmax`: the first
  maximum in row-major order, as PyTorch's CPU kernels), a named tensor that is
  constant for differentiation; the gradient goes to the maximum's position.
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.argmax import IsArgmax
from symbp.engine.indices import BOUND, FREE
from symbp.ops.base import Builder, Option, layer_type
from symbp.ops.geometry import output_extents, pair_option, per_axis, spatial_input


def _window(builder: Builder, layer, axes: int):
    where = f"layers[{builder.layer}]"
    x = spatial_input(builder, axes, layer.type)
    kernel = per_axis(layer.options["kernel"], axes, f"{where}.kernel")
    stride = per_axis(layer.options["stride"] or kernel, axes, f"{where}.stride")
    extents = output_extents(tuple(builder.size(n) for n in x.shape[2:]), kernel, stride,
                             (0,) * axes, f"{where}.kernel")
    s, c, *positions = FREE[:axes + 2]
    offsets = BOUND[:axes]
    reads = tuple(i * st + p for i, p, st in zip(positions, offsets, stride, strict=True))
    limits = [(p, 0, k - 1) for p, k in zip(offsets, kernel, strict=True)]
    out = builder.tensor("a", (x.shape[0], x.shape[1], *extents))
    return x, kernel, stride, reads, limits, out


def build_average(builder: Builder, layer, axes: int):
    x, kernel, _, reads, limits, out = _window(builder, layer, axes)
    s, c = FREE[:2]
    count = sp.Mul(*kernel)
    builder.graph.define(out, sp.Sum(x[(s, c, *reads)], *limits) / count, layer.type)
    return out


def build_max(builder: Builder, layer, axes: int):
    x, kernel, stride, reads, limits, out = _window(builder, layer, axes)
    s, c, *positions = FREE[:axes + 2]
    at = FREE[axes + 2:2 * axes + 2]  # the indicator's own window-position indices
    entry = x[(s, c, *(i * st + p for i, p, st in zip(positions, at, stride, strict=True)))]
    window = [item for p, k in zip(at, kernel, strict=True) for item in (p, k)]
    chosen = builder.tensor("chi", (*out.shape, *kernel), latex=rf"\chi^{{({builder.layer})}}")
    builder.graph.define(chosen, IsArgmax(entry, *window), layer.type)
    offsets = [p for p, _, _ in limits]
    builder.graph.define(out, sp.Sum(x[(s, c, *reads)] * chosen[(s, c, *positions, *offsets)],
                                     *limits), layer.type)
    return out


def _check_stride(value, where, context):
    return None if value is None else pair_option(1)(value, where, context)


POOL_OPTIONS = dict(kernel=Option(check=pair_option(1)), stride=Option(None, _check_stride))


@layer_type("max_pool1d", "the maximum of each window", **POOL_OPTIONS)
def build_max_pool1d(builder: Builder, layer):
    return build_max(builder, layer, 1)


@layer_type("max_pool2d", "the maximum of each window", **POOL_OPTIONS)
def build_max_pool2d(builder: Builder, layer):
    return build_max(builder, layer, 2)


@layer_type("avg_pool1d", "the mean of each window", **POOL_OPTIONS)
def build_avg_pool1d(builder: Builder, layer):
    return build_average(builder, layer, 1)


@layer_type("avg_pool2d", "the mean of each window", **POOL_OPTIONS)
def build_avg_pool2d(builder: Builder, layer):
    return build_average(builder, layer, 2)

