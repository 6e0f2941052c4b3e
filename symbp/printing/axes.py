"""What each axis of a tensor is, and the letters its indices print with.

Contract: :func:`axes_of` names the axes of every tensor of a graph (and of
each gradient's adjoint, which has its tensor's axes) by kind: ``batch``
(size ``B``), ``channel``, ``space0``/``space1`` (positions of a
channels-first tensor ``(B, C, H, W)``), ``kernel0``/``kernel1`` (offsets in a
convolution kernel ``(C_out, C_in, K_h, K_w)`` or a pooling window, the last
axes of a window-argmax indicator, the tensor an
:class:`~symbp.engine.argmax.IsArgmax` defines), and ``feature`` for every
other axis (the rows and columns of a dense layer's matrices). A vector whose
size is the channel count of a channels-first tensor is a ``channel`` vector
(a convolution's bias, batch norm's per-channel statistics).

:func:`letter_pools` gives the letters of a kind, free or summed: a row ``s``
(sums ``r, t, u``), channels ``c, c', c''``, positions ``i, j`` (primed
when taken), kernel offsets ``p, q``; features keep the letters of the plain
MLP printing (``i, j, q`` free, ``k, m, p, c, d`` summed), so MLP formulas
print as they always have. :func:`is_spatial` tells whether an expression
reads any axis of the new kinds (it then prints its sums with their ranges).
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.argmax import IsArgmax
from symbp.ops.base import BATCH

FEATURE, BATCH_KIND, CHANNEL = "feature", "batch", "channel"
FREE_FEATURE_LETTERS = ("i", "j", "q")
SUM_FEATURE_LETTERS = ("k", "m", "p", "c", "d")
BATCH_SUM_LETTERS = ("r", "t", "u")
_BASE = {CHANNEL: "c", "space0": "i", "space1": "j", "kernel0": "p", "kernel1": "q"}


def _spatial(tensor) -> bool:
    return tensor.rank >= 3 and tensor.shape[0] == BATCH


def tensor_axes(tensor, graph, channels: set) -> tuple:
    """The kinds of the axes of ``tensor`` (``channels``: the channel counts of the graph)."""
    shape = tensor.shape
    if _spatial(tensor):
        equation = graph.definition(tensor.name)
        window = isinstance(equation.expr, IsArgmax) if equation is not None else False
        positions = (tensor.rank - 2) // 2 if window else tensor.rank - 2
        kernel = tensor.rank - 2 - positions
        return (BATCH_KIND, CHANNEL, *[f"space{a}" for a in range(positions)],
                *[f"kernel{a}" for a in range(kernel)])
    if tensor.rank >= 3:  # a kernel (C_out, C_in, K...) or a per-position parameter (C, H, W)
        if not sp.sympify(shape[1]).is_Integer:
            return (CHANNEL, CHANNEL, *[f"kernel{a}" for a in range(tensor.rank - 2)])
        return (CHANNEL, *[f"space{a}" for a in range(tensor.rank - 1)])
    if tensor.rank == 1 and shape[0] != BATCH and shape[0] in channels:
        return (CHANNEL,)
    return tuple(BATCH_KIND if size == BATCH else FEATURE for size in shape)


def axes_of(graph, adjoints=()) -> dict:
    """Tensor (and adjoint) name -> the kinds of its axes."""
    channels = {t.shape[1] for t in graph.tensors.values() if _spatial(t)}
    table = {name: tensor_axes(t, graph, channels) for name, t in graph.tensors.items()}
    for gradient in adjoints:
        table[gradient.adjoint.name] = table[gradient.of.name]
    return table


def is_new_kind(kind: str) -> bool:
    return kind not in (FEATURE, BATCH_KIND)


def letter_pools(kind: str, bound: bool) -> tuple:
    """The letters an index of ``kind`` takes, in order of preference."""
    if kind == BATCH_KIND:
        return BATCH_SUM_LETTERS if bound else ("s",)
    if kind == FEATURE:
        return SUM_FEATURE_LETTERS if bound else FREE_FEATURE_LETTERS
    base = _BASE.get(kind, "k")
    return (base, base + "'", base + "''", base + "'''")


def kinds_of_indices(expr: sp.Expr, axes: dict) -> dict:
    """Index symbol -> the kind of an axis it indexes in ``expr``: where it is the whole
    index of an axis, else where it is part of one (a read at ``i S + p - P``: an index
    that is only ever part of a position is an offset in a window)."""
    plain, part = {}, {}
    for entry in sorted(expr.atoms(sp.Indexed), key=str):
        kinds = axes.get(entry.base.label.name)
        if kinds is None or len(kinds) != len(entry.indices):
            continue
        for index, kind in zip(entry.indices, kinds, strict=True):
            if isinstance(index, sp.Symbol):
                plain.setdefault(index, kind)
                continue
            for symbol in index.free_symbols:  # an offset added to a position is an offset
                if symbol not in part or kind.startswith("kernel"):
                    part[symbol] = kind.replace("space", "kernel")
    return {**part, **plain}


def is_spatial(expr: sp.Expr, axes: dict, own: tuple = ()) -> bool:
    """Whether ``expr`` (defining a tensor with axes ``own``) reads an axis of a new kind."""
    if any(is_new_kind(kind) for kind in own):
        return True
    return any(is_new_kind(kind) for kind in kinds_of_indices(expr, axes).values())
