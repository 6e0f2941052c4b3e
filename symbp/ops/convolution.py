"""Convolution: ``conv1d`` and ``conv2d``, cross-correlations as torch ``nn.Conv1d/2d``.

``z_{s,c,i,j} = sum_{c',p,q} W_{c,c',p,q} x_{s,c',iS+p-P,jS+q-P} + b_c``, then ``a = f(z)``.
Zero padding is a range condition on the read position
(:class:`~symbp.engine.indices.Inside`), not a padded copy: the engine's
summation carries it into the gradients, which is where the borders come from.
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.indices import BOUND, FREE, Inside, within_ranges
from symbp.errors import SpecError
from symbp.ops.base import Builder, Option, layer_type, width
from symbp.ops.dense import HE_ACTIVATIONS
from symbp.ops.elementwise import activate, check_activation, check_units
from symbp.ops.geometry import axis_name, output_extents, pair_option, per_axis, spatial_input


def _geometry(builder: Builder, layer, axes: int):
    where = f"layers[{builder.layer}]"
    kernel = per_axis(layer.options["kernel"], axes, f"{where}.kernel")
    stride = per_axis(layer.options["stride"], axes, f"{where}.stride")
    padding = per_axis(layer.options["padding"], axes, f"{where}.padding")
    for axis, (k, pad) in enumerate(zip(kernel, padding, strict=True)):
        if pad >= k:
            raise SpecError(f"{where}.padding: {pad} is not smaller than the kernel's "
                            f"{axis_name(axis, axes)} {k}")
    return kernel, stride, padding


def build_convolution(builder: Builder, layer, axes: int):
    x = spatial_input(builder, axes, layer.type)
    kernel, stride, padding = _geometry(builder, layer, axes)
    spatial = [builder.size(d) for d in x.shape[2:]]
    extents = output_extents(tuple(spatial), kernel, stride, padding,
                             f"layers[{builder.layer}].kernel")
    channels = width(builder.layer)
    builder.sizes[channels] = layer.options["channels"]
    activation = builder.network.activation_named(layer.options["activation"])
    W = builder.given("W", (channels, x.shape[1], *kernel), "parameter",
                      init="he" if activation.name in HE_ACTIVATIONS else "glorot")
    b = builder.given("b", (channels,), "parameter", init="zeros")
    s, c, *positions = FREE[:axes + 2]
    k, *offsets = BOUND[:axes + 1]
    reads = tuple(i * st + p - pad for i, p, st, pad in zip(positions, offsets, stride, padding,
                                                            strict=True))
    inside = sp.Mul(*[Inside(r, n) for r, n in zip(reads, spatial, strict=True)])
    body = W[(c, k, *offsets)] * x[(s, k, *reads)] * inside
    limits = [(k, 0, x.shape[1] - 1)] + [(p, 0, n - 1) for p, n in zip(offsets, kernel,
                                                                        strict=True)]
    shape = (x.shape[0], channels, *extents)
    z = builder.tensor("z", shape)
    definition = sp.Sum(body, *limits) + b[c]
    ranges = {i: (0, n - 1) for i, n in zip(FREE, (0, 0, *extents), strict=False)}
    builder.graph.define(z, within_ranges(definition, ranges), layer.type)
    builder.previous = z
    return activate(builder, activation)


CONV_OPTIONS = dict(channels=Option(check=check_units), kernel=Option(check=pair_option(1)),
                    stride=Option((1,), pair_option(1)), padding=Option((0,), pair_option(0)),
                    activation=Option("identity", check_activation))


@layer_type("conv1d", "a 1-d convolution (cross-correlation) and its activation", **CONV_OPTIONS)
def build_conv1d(builder: Builder, layer):
    return build_convolution(builder, layer, 1)


@layer_type("conv2d", "a 2-d convolution (cross-correlation) and its activation", **CONV_OPTIONS)
def build_conv2d(builder: Builder, layer):
    return build_convolution(builder, layer, 2)
