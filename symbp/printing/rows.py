"""Printable rows: a quantity's formula in matrix form (where there is one) and index form.

Contract: a :class:`Row` holds a quantity's name, its aligned LaTeX lines
``(lhs, relation, rhs)``, a plain-text line, its index form and its SymPy
string; a :class:`Section` a title and rows. A :class:`View` holds the names
(:mod:`symbp.printing.names`), the kinds of axes (:mod:`symbp.printing.axes`)
and the shapes of one view of a graph. :func:`formula_row` prints an index
expression in a view: the matrix form from :func:`symbp.forms.to_matrix` when
every tensor has rank <= 2 and the expression has a matrix reading, then the
index form with readable letters (over channels, positions or kernel offsets:
nested sums merged, in kind order, with their ranges), then the expression's
reading (:mod:`symbp.printing.readings`) where it has one; a reshape's reading
replaces its index form (which holds a Kronecker delta).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from symbp.ops.base import BATCH
from symbp.printing.axes import BATCH_KIND, axes_of, is_spatial
from symbp.printing.indexing import arranged
from symbp.printing.matrix import matrix_latex, matrix_text, matrix_tree
from symbp.printing.names import quantities, readable
from symbp.printing.readings import reading
from symbp.printing.scalar import ScalarLatex, ScalarText


@dataclass(frozen=True)
class Row:
    name: str
    lines: tuple  # ((lhs, relation, rhs), ...) LaTeX
    text: str = ""
    index: str = ""  # LaTeX of the index form
    sympy: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    rows: tuple


@dataclass
class View:
    """The names of one view (``batch`` or ``sample``) of a graph and its gradients."""

    name: str
    quantities: dict
    scalars: dict = field(default_factory=dict)  # rank-0 stand-ins (a sample's statistics)
    axes: dict = field(default_factory=dict)  # tensor name -> kinds of its axes in this view
    shapes: dict = field(default_factory=dict)  # tensor name -> its shape in this view

    @classmethod
    def of(cls, graph, gradients, name: str) -> View:
        table = quantities(graph, gradients, name)
        scalars, axes = {}, axes_of(graph, gradients)
        tensors = [*graph.tensors.values(), *[g.adjoint for g in gradients]]
        shapes = {t.name: t.shape for t in tensors}
        if name == "sample":
            scalars = {t.base.label: table[t.base.label] for t in tensors
                       if t.rank == 1 and t.shape[0] == BATCH}
            axes = {n: kinds[1:] if kinds[:1] == (BATCH_KIND,) else kinds
                    for n, kinds in axes.items()}
            shapes = {n: shape[1:] if shape[:1] == (BATCH,) else shape
                      for n, shape in shapes.items()}
        return cls(name, table, scalars, axes, shapes)

    def with_quantity(self, base: sp.IndexedBase, quantity, axes: tuple, shape: tuple) -> View:
        """This view with one more tensor (a printed stand-in such as a padded delta)."""
        return View(self.name, {**self.quantities, base.label: quantity}, self.scalars,
                    {**self.axes, quantity.code: axes}, {**self.shapes, quantity.code: shape})

    def names(self, latex: bool = True) -> dict:
        return {s: (q.latex if latex else q.text) for s, q in self.scalars.items()}


def matrix_form(expr: sp.Expr, rank: int, view: View):
    """The matrix tree of ``expr`` in ``view``, or None if it has no rank <= 2 reading."""
    return matrix_tree(expr, rank, view.quantities)


def index_form(target, expr: sp.Expr, shape: tuple, view: View) -> tuple:
    """``(lhs, rhs, text)`` of the index form, with readable index letters; an expression
    over channels, positions or kernel offsets prints its sums with their ranges."""
    own = view.axes.get(target.code, ())
    spatial = is_spatial(expr, view.axes, own)
    if spatial:
        expr = arranged(expr, view.axes)
    named, letters = readable(expr, shape, view.axes, own)
    comma = target.comma or spatial or len(letters) > 2 or any(len(x) > 1 for x in letters)
    lhs = target.entry(("," if comma else "").join(letters)) if shape else target.latex
    rhs = ScalarLatex(view.names(), view.quantities, ranges=spatial).doprint(named)
    text_lhs = target.text_entry(",".join(letters)) if shape else target.text
    text = f"{text_lhs} = " + ScalarText(view.names(False), view.quantities,
                                         ranges=spatial).doprint(named)
    return lhs, rhs, text


def formula_row(name: str, target, expr: sp.Expr, shape: tuple, view: View,
                relation: str = "=", extra: tuple = ()) -> Row:
    """A quantity in matrix form (where there is one) and index form; ``extra`` lines
    (another view's matrix form) follow the matrix form."""
    node = matrix_form(expr, len(shape), view)
    index_lhs, index_rhs, index_text = index_form(target, expr, shape, view)
    lines = []
    text = index_text.replace(" = ", f" {_text_relation(relation)} ", 1)
    if node is not None:
        rhs = matrix_latex(node, view.scalars)
        lines.append((target.latex, relation, rhs))
        text = f"{target.text} {_text_relation(relation)} {matrix_text(node, view.scalars)}"
    lines += list(extra)
    if node is None or index_rhs != lines[0][2]:
        lines.append((index_lhs, relation, index_rhs))
    found = reading(target, expr, shape, view) if node is None else None
    if found is not None and found.replaces:  # a reshape, without its Kronecker delta
        (line,) = found.lines
        return Row(name, (line,), found.texts[0], " ".join(line), sp.srepr(expr))
    if found is not None:  # a convolution read as a correlation (image by image)
        lines += [(lhs, relation, rhs) for lhs, _, rhs in found.lines]
        texts = [text, *[line.replace(" = ", f" {_text_relation(relation)} ", 1)
                         for line in found.texts]]
        for quantity, form, form_shape, form_view, note in found.forms:
            lhs, rhs, form_text = index_form(quantity, form, form_shape, form_view)
            own = quantity is target  # the reading of the row's own quantity, or a definition
            lines.append((lhs, relation if own else "=", rhs + (note[0] if note else "")))
            texts.append((form_text.replace(" = ", f" {_text_relation(relation)} ", 1) if own
                          else form_text) + (note[1] if note else ""))
        text = "\n    ".join(texts)
    return Row(name, tuple(lines), text, f"{index_lhs} {relation} {index_rhs}", sp.srepr(expr))


def _text_relation(relation: str) -> str:
    return {r"\leftarrow": "<-", r"\mathrel{+}=": "+="}.get(relation, relation)


def matrix_line(target, expr, rank, view: View):
    """The ``(lhs, =, rhs)`` matrix line of ``expr`` in ``view``, or None."""
    node = matrix_form(expr, rank, view)
    return None if node is None else (target.latex, "=", matrix_latex(node, view.scalars))
