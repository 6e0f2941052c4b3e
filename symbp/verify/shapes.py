"""Shapes of a claim's values: dimensions named in the claim's own terms.

Contract: a :class:`Val` is the value of a sub-expression of a claim at one
instance: its array, its rows and columns as :class:`Dim` s (the value in the
instance and the label the claim would use, ``n_{l+1}``, ``B``), the
sub-expression's source text and, when read symbolically, its ``(i, j)``
entry as a SymPy expression (indices :data:`I`, :data:`J`; the batch size
:data:`B_SYMBOL`). :class:`ShapeError` and :class:`LayerError` are
the two ways a claim fails before its numbers are compared; their messages
speak in the claim's terms (``b^{(l+1)} has n_{l+1} rows, ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sympy as sp

from symbp import claims as C

if TYPE_CHECKING:
    from symbp.verify.context import Instance

I, J = sp.Symbol("i", integer=True), sp.Symbol("j", integer=True)  # noqa: E741 (entry indices)
B_SYMBOL = sp.Symbol("B", integer=True, positive=True)


@dataclass(frozen=True)
class Dim:
    """A dimension: its ``value`` in this instance, its ``label`` in the claim's terms."""

    value: int
    label: str
    key: str  # 'n3', 'B' or '1' (a structural one)

    @property
    def one(self) -> bool:
        return self.key == "1"


ONE = Dim(1, "1", "1")


@dataclass
class Val:
    array: np.ndarray
    rows: Dim
    cols: Dim
    text: str
    scalar: bool = False
    ones: str | None = None  # 'col' or 'row' for \mathbf{1}
    entry: sp.Expr | None = None
    vector: bool = False  # a vector of a batch claim (b, gamma): broadcast along the rows

    @property
    def shape_text(self) -> str:
        if self.scalar:
            return "a scalar"
        return f"{self.rows.label} \\times {self.cols.label}"


def count(dim: Dim, noun: str) -> str:
    return f"{dim.label} {noun}" + ("" if dim.one else "s")


class ShapeError(Exception):
    pass


class LayerError(Exception):
    pass


def dim(ref: C.LayerRef, layer: int, widths) -> Dim:
    return Dim(widths[layer], ref.width(), f"n{layer}")


VECTORS = ("b", "gamma", "beta")  # parameter vectors: a column, broadcast along a batch's rows
PER_ROW = ("z", "a", "x", "y", "delta", "xhat", "mask")  # a column per sample, B rows in a batch
STATISTICS = ("mu", "sigma2", "sigma")  # per sample (layer norm) or per feature (batch norm)
_LETTER = {"delta": "z", "dW": "W", "db": "b", "da": "a", "dgamma": "gamma", "dbeta": "beta",
           "dxhat": "xhat", "dmu": "mu", "dsigma2": "sigma2"}


def quantity_dims(letter: str, ref: C.LayerRef, layer: int, inst: Instance) -> tuple:
    """``(rows, cols, vector)`` of quantity ``letter`` of layer ``layer`` at ``inst``: W is
    ``n_l x n_{l-1}``; a parameter vector and batch norm's statistics are columns
    (``vector``: broadcast along the rows of a batch); layer norm's statistics are a
    sample's scalar (a ``B x 1`` column for a batch); the rest a column per sample and
    ``B x n_l`` for a batch."""
    widths = inst.widths
    if letter == "W":
        return dim(ref, layer, widths), dim(ref.shifted(-1), layer - 1, widths), False
    rows = Dim(inst.B, "B", "B")
    if letter in STATISTICS and inst.ctx.layer_type(layer) == "layer_norm":
        return (rows, ONE, False) if inst.batch else (ONE, ONE, False)
    if letter in VECTORS or letter in STATISTICS or not inst.batch:
        return dim(ref, layer, widths), ONE, inst.batch and letter not in PER_ROW
    return rows, dim(ref, layer, widths), False


def target_dims(kind: str, ref: C.LayerRef, layer: int, inst: Instance) -> tuple:
    """``(rows, cols)`` of the gradient ``kind``: the shape of its quantity."""
    rows, cols, _ = quantity_dims(_LETTER[kind], ref, layer, inst)
    return rows, cols
