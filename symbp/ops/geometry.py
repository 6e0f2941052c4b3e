"""The spatial options of convolution and pooling layers, and the shapes they give.

Contract: :func:`pair_option` checks an ``int`` or a list of one int per spatial
axis (``kernel = 3``, ``stride = [1, 2]``) and returns a tuple;
:func:`spatial_input` checks that the previous output has the channels-first
shape a layer of ``axes`` spatial axes needs; :func:`output_extents` is
PyTorch's ``floor((n + 2 pad - k) / stride) + 1`` per axis, a spec error naming
the kernel and the axis when the window does not fit; :func:`window_geometry` a
built network's layer's kernel, stride and padding per axis.
"""

from __future__ import annotations

from symbp.errors import SpecError

MAX_EXTENT = 4096


def pair_option(low: int):
    """The check of an int or a list of ints, each at least ``low``."""
    def check(value, where, context):
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values or len(values) > 2 or any(
                isinstance(v, bool) or not isinstance(v, int) or not low <= v <= MAX_EXTENT
                for v in values):
            raise SpecError(f"{where}: expected an integer from {low} to {MAX_EXTENT} or a "
                            f"list of one per spatial axis, got {value!r}")
        return tuple(values)
    return check


def per_axis(value: tuple, axes: int, where: str) -> tuple:
    """``value`` with one entry per spatial axis (an int applies to every axis)."""
    if len(value) == 1:
        return value * axes
    if len(value) != axes:
        raise SpecError(f"{where}: expected {axes} value(s), one per spatial axis, got "
                        f"{list(value)}")
    return value


def window_geometry(network, layer: int) -> tuple:
    """``(kernel, stride, padding)`` of convolution or pooling layer ``layer`` (1-based) of
    ``network``, one entry per spatial axis (a pooling's stride defaults to its kernel, its
    padding is 0)."""
    options = network.layers[layer - 1].options
    axes = len(network.shapes[layer]) - 1
    kernel = per_axis(tuple(options["kernel"]), axes, "kernel")
    stride = per_axis(tuple(options.get("stride") or kernel), axes, "stride")
    padding = per_axis(tuple(options.get("padding") or (0,)), axes, "padding")
    return kernel, stride, padding


def spatial_input(builder, axes: int, kind: str):
    """The previous output, which must be ``(B, channels, *spatial)`` with ``axes`` axes."""
    previous = builder.previous
    if previous.rank != axes + 2:
        wanted = "[channels, length]" if axes == 1 else "[channels, height, width]"
        shape = [builder.size(d) for d in previous.shape[1:]]
        raise SpecError(f"layers[{builder.layer}]: a {kind} layer needs an input of shape "
                        f"{wanted}, the previous output has shape {shape}")
    return previous


AXIS_NAMES = {1: ("length",), 2: ("height", "width")}


def axis_name(axis: int, axes: int) -> str:
    """``length`` for the one spatial axis of a 1-d layer, ``height``/``width`` for 2-d."""
    return AXIS_NAMES[axes][axis]


def output_extents(sizes: tuple, kernel: tuple, stride: tuple, padding: tuple,
                   where: str) -> tuple:
    """Each spatial axis's ``floor((n + 2 pad - k) / stride) + 1``, as PyTorch; a window
    that does not fit an axis is a spec error naming the axis."""
    extents = []
    for axis, (n, k, st, pad) in enumerate(zip(sizes, kernel, stride, padding, strict=True)):
        if n + 2 * pad < k:
            name = axis_name(axis, len(sizes))
            raise SpecError(f"{where}: a window of {k} does not fit the input's {name} {n}"
                            + (f" padded by {pad}" if pad else ""))
        extents.append((n + 2 * pad - k) // st + 1)
    return tuple(extents)
