"""LaTeX and plain text of :mod:`symbp.forms` matrix trees.

Contract: :func:`matrix_tree` reads an index expression as a tree (or None);
:func:`matrix_latex` / :func:`matrix_text` print a tree whose
leaves are :class:`~symbp.printing.names.Quantity` objects (or
:class:`~symbp.forms.AsRow` of one: a vector broadcast along the rows, which
prints as the vector, as NumPy broadcasts it). Transposes are ``^{\\top}``,
elementwise products ``\\odot``, a column of ones ``\\mathbf{1}``; a sum has
its positive terms first and its negative terms as differences; a matrix
product's operands are grouped only where needed.
"""

from __future__ import annotations

import sympy as sp

from symbp import forms
from symbp.engine.indices import FREE
from symbp.printing.scalar import ScalarLatex, ScalarText


def _leaf(tensor):
    return tensor.tensor if isinstance(tensor, forms.AsRow) else tensor


class TreePrinter:
    """Prints trees as LaTeX (``latex=True``) or plain text; ``scalars`` names size symbols
    and per-sample scalars appearing in scale factors."""

    def __init__(self, latex: bool = True, scalars: dict | None = None):
        self.latex = latex
        self.scalars = scalars or {}

    def name(self, tensor) -> str:
        leaf = _leaf(tensor)
        return leaf.latex if self.latex else leaf.text

    def scalar(self, expr) -> str:
        names = {s: (q.latex if self.latex else q.text) for s, q in self.scalars.items()}
        if self.latex:
            return ScalarLatex(names, odot=True).doprint(expr)
        return ScalarText(names, odot=True).doprint(expr)

    def print(self, node) -> str:
        return getattr(self, "_" + type(node).__name__)(node)

    def _Leaf(self, node):
        return self.name(node.tensor)

    def _Ones(self, node):
        return r"\mathbf{1}" if self.latex else "1"

    def _Transpose(self, node):
        if isinstance(node.arg, forms.MatMul):  # (X Y)^T = Y^T X^T, fewer transposes
            return self.print(forms.MatMul(_transposed(node.arg.right),
                                           _transposed(node.arg.left)))
        inner = self.print(node.arg)
        simple = isinstance(node.arg, forms.Ones) or (
            isinstance(node.arg, forms.Leaf) and "^" not in inner and "\\" not in inner)
        if not simple:
            inner = rf"\left({inner}\right)" if self.latex else f"({inner})"
        return inner + (r"^{\top}" if self.latex else "^T")

    def _MatMul(self, node):
        return f"{self.factor(node.left)} {self.factor(node.right)}"

    def factor(self, node) -> str:
        """A matrix product's operand: products chain without parentheses; an
        elementwise product is grouped (``(A ⊙ G) 1``)."""
        if isinstance(node, forms.MatMul):
            return self.print(node)
        if isinstance(node, forms.Elementwise) and isinstance(node.expr, sp.Mul) \
                and len([f for f in node.expr.args if not f.is_number]) > 1:
            text = self.print(node)
            return rf"\left({text}\right)" if self.latex else f"({text})"
        return self.group(node)

    def _Hadamard(self, node):
        joiner = r" \odot " if self.latex else " ⊙ "
        return joiner.join(self.group(arg) for arg in node.args)

    def _Add(self, node):
        # positive terms first; a vector broadcast along the rows (a bias) last of them
        args = sorted(node.args, key=lambda arg: not isinstance(
            arg, (forms.MatMul, forms.Hadamard, forms.Scale, forms.Transpose)))
        terms = [self.print(arg) for arg in args]
        terms.sort(key=lambda term: term.startswith("-"))
        return join_signed_terms(terms)

    def _Scale(self, node):
        if node.factor == -1:  # a product binds tighter than the minus: no parentheses
            product = isinstance(node.arg, (forms.Leaf, forms.Hadamard, forms.MatMul))
            return "-" + (self.print(node.arg) if product else self.group(node.arg))
        factor = self.scalar(node.factor)
        if node.factor.could_extract_minus_sign() and not factor.startswith("-"):
            factor = "-" + factor
        return f"{factor} {self.factor(node.arg)}"

    def _Elementwise(self, node):
        if node.expr.is_number and self.latex:  # a constant matrix: c times the ones
            ones = r"\mathbf{1}"
            return {1: ones, -1: "-" + ones}.get(node.expr, f"{sp.latex(node.expr)} {ones}")
        names = {s: self.name(t) for s, t in node.tensors}
        names.update({s: (q.latex if self.latex else q.text) for s, q in self.scalars.items()})
        if self.latex:
            return ScalarLatex(names, odot=True).doprint(node.expr)
        return ScalarText(names, odot=True).doprint(node.expr)

    def group(self, node) -> str:
        text = self.print(node)
        needs = isinstance(node, (forms.Add, forms.Hadamard, forms.Scale, forms.MatMul)) or (
            isinstance(node, forms.Elementwise) and isinstance(node.expr, sp.Add))
        if not needs:
            return text
        return rf"\left({text}\right)" if self.latex else f"({text})"


def _transposed(node):
    return node.arg if isinstance(node, forms.Transpose) else forms.Transpose(node)


def join_signed_terms(terms: list) -> str:
    """``a``, ``-b``, ``c`` -> ``a - b + c``: a term's own leading minus becomes the
    operator (a product binds tighter than the sum, so the value is the same)."""
    text = terms[0]
    for term in terms[1:]:
        text += f" - {term[1:].lstrip()}" if term.startswith("-") else f" + {term}"
    return text


def matrix_tree(expr: sp.Expr, rank: int, quantities: dict):
    """The matrix tree of the index expression ``expr`` of a tensor of ``rank`` (leaves named
    by ``quantities``), or None if it has no rank <= 2 reading."""
    if not 0 < rank <= 2 or any(len(e.indices) > 2 for e in expr.atoms(sp.Indexed)):
        return None
    try:
        return forms.to_matrix(expr, FREE[:rank], quantities)
    except forms.NotMatrixForm:
        return None


def matrix_latex(node, scalars: dict | None = None) -> str:
    return TreePrinter(True, scalars).print(node)


def matrix_text(node, scalars: dict | None = None) -> str:
    return TreePrinter(False, scalars).print(node)
