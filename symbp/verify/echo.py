"""Printing for verdicts: the truth's matrix trees and entrywise differences in LaTeX.

Contract: :func:`tree_latex` prints a :mod:`symbp.forms` tree as ``symbp
derive`` does; :func:`entry_latex` prints an entry expression (the simplified
``claim - truth``) in vector notation with ``\\odot`` for elementwise products,
or in index notation when it has a column index.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sympy as sp
from sympy.printing.latex import LatexPrinter

from symbp import forms
from symbp.printing.scalar import print_add_positive_first
from symbp.verify.shapes import B_SYMBOL, J

if TYPE_CHECKING:
    from symbp.verify.context import Context

def tree_latex(tree) -> str:
    """The LaTeX of a matrix tree, as symbp prints it."""
    from symbp.printing.matrix import matrix_latex

    return matrix_latex(tree)


class _OdotLatex(LatexPrinter):
    """Entrywise expressions of vectors, printed with ``\\odot`` for products of vectors."""

    def __init__(self, names: dict):
        super().__init__({"symbol_names": names})
        self.names = names

    def _print_Add(self, expr, order=None):  # y - a, whatever order SymPy keeps the terms in
        return print_add_positive_first(self, expr)

    def _print_Mul(self, expr):
        coefficient, factors = expr.as_coeff_mul()
        if len(factors) < 2 or any(f.is_number for f in factors):
            return super()._print_Mul(expr)
        numerator, denominator = sp.fraction(expr)
        if denominator != 1:
            return rf"\frac{{{self._print(numerator)}}}{{{self._print(denominator)}}}"
        parts = [rf"\left({self._print(f)}\right)" if isinstance(f, sp.Add) else self._print(f)
                 for f in factors]
        body = r" \odot ".join(parts)
        if coefficient == 1:
            return body
        if coefficient == -1:
            return "-" + body
        return f"{self._print(coefficient)} {body}"


def entry_latex(expr: sp.Expr, registry: dict, ctx: Context, batch: bool) -> str:
    """LaTeX of an entry expression: vector notation, or index notation for matrices."""
    matrix = J in expr.free_symbols
    names, mapping = {}, {}
    for total in _in_print_order(expr.atoms(sp.Sum)):
        if total in registry and not matrix:
            symbol = sp.Symbol(f"S{len(mapping)}")
            mapping[total] = symbol
            names[symbol] = rf"\left({registry[total]}\right)"
    for item in _in_print_order(expr.atoms(sp.Indexed)):
        code = str(item.base.label)
        latex = _code_latex(code, batch)
        symbol = sp.Symbol(f"T{len(mapping)}")
        mapping[item] = symbol
        if matrix:
            latex += "_{" + "".join(str(index) for index in item.indices) + "}"
        names[symbol] = latex
    expr = expr.xreplace(mapping)
    names[B_SYMBOL] = "B"
    if matrix:
        return sp.latex(expr, symbol_names=names)
    return _OdotLatex(names).doprint(expr)


def _in_print_order(items) -> list:
    """A set of subexpressions in the order of their text: the placeholders named after
    them (and so the order of a product's factors in print) are the same in every
    process, whatever the hash seed or the dummies made before."""
    return sorted(items, key=lambda item: (str(item), sp.default_sort_key(item)))


def _code_latex(code: str, batch: bool) -> str:
    match = re.fullmatch(r"([A-Za-z]+?)(\d+)", code)
    if code == "Y":
        return forms.Tensor("y", None, batch).latex
    if match is None:
        return code
    return forms.Tensor(match.group(1), int(match.group(2)), batch).latex
