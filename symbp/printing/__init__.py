"""Printing derived formulas: LaTeX, Markdown, plain text and JSON, for any network.

Contract: :func:`render` takes a
:class:`~symbp.engine.derivation.GraphDerivation` (``derive_graph(network)``)
and returns it in one of :data:`FORMATS`; :func:`repr_latex` is the Jupyter
display. The content (:mod:`symbp.printing.sections`) is the same in every
format: the forward pass, the notation of convolutions and pooling (where
there are any), evaluation mode, the activation derivatives, each layer
type's derived backward formulas, the backward pass (batch, and one sample
where rows do not interact), the general layer of a plain MLP, the general
convolution layer and the SGD step, each formula in index form and, where
every tensor has rank <= 2, matrix form. Index forms over channels,
positions and kernel offsets print their sums with their ranges and their
range conditions as Iverson brackets; a convolution, a flatten and a dense
layer's input gradient after one also print their readings (correlations,
the transposed convolution, reshapes). Modules: :mod:`~symbp.printing.names`
(what tensors are called), :mod:`~symbp.printing.axes` (the kinds of axes
and their index letters), :mod:`~symbp.printing.indexing` (affine indices,
range conditions, sums), :mod:`~symbp.printing.scalar` (index and
elementwise expressions), :mod:`~symbp.printing.matrix` (matrix trees of
:mod:`symbp.forms`), :mod:`~symbp.printing.readings` (the readings),
:mod:`~symbp.printing.sample` (the per-sample view),
:mod:`~symbp.printing.general` (layer ``l``),
:mod:`~symbp.printing.general_conv` (convolution layer ``l``),
:mod:`~symbp.printing.formats`.
"""

from __future__ import annotations

import sympy as sp

from symbp.printing import formats
from symbp.printing.matrix import matrix_latex, matrix_text
from symbp.printing.rows import Row, Section
from symbp.printing.sections import Document

FORMATS = ("latex", "markdown", "text", "json")

__all__ = ["FORMATS", "Row", "Section", "document", "matrix_latex", "matrix_text", "render",
           "repr_latex"]


_DOCUMENTS: dict = {}  # id -> (derivation, sections): each derivation is arranged once


def document(derivation) -> list:
    """Every section symbp prints for a derivation, in reading order."""
    cached = _DOCUMENTS.get(id(derivation))
    if cached is None or cached[0] is not derivation:
        cached = _DOCUMENTS[id(derivation)] = (derivation, Document(derivation).sections())
    return cached[1]


def render(derivation, fmt: str = "latex", standalone: bool = False) -> str:
    """The derivation in one of :data:`FORMATS` (``standalone``: a whole LaTeX document)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    sections = document(derivation)
    title = derivation.network.name
    if fmt == "latex":
        return formats.render_latex(sections, title, standalone)
    if fmt == "markdown":
        return formats.render_markdown(sections, title)
    if fmt == "text":
        return formats.render_text(sections, title)
    return formats.render_json(sections, title, _gradients(derivation))


def repr_latex(derivation) -> str:
    """What Jupyter shows for a derivation (``GraphDerivation._repr_latex_``)."""
    return formats.repr_latex(document(derivation))


def _gradients(derivation) -> list:
    from symbp.printing.names import gradient_quantity
    from symbp.printing.rows import View, index_form
    view = View.of(derivation.graph, derivation.gradients, "batch")
    found = []
    for gradient in derivation.gradients:
        target = gradient_quantity(derivation.graph, gradient.of, gradient.adjoint, "batch")
        lhs, rhs, _ = index_form(target, gradient.expr, gradient.of.shape, view)
        found.append({"name": gradient.adjoint.name, "of": gradient.of.name,
                      "latex": target.latex, "index_latex": f"{lhs} = {rhs}",
                      "sympy": sp.srepr(gradient.expr)})
    return found
