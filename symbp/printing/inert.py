"""Elementary functions held inert while :func:`symbp.forms.to_matrix` reads an expression.

Contract: :func:`inert` replaces each application of a SymPy function class
(``tanh``, ``exp``, ``log``, ``Abs``, ``Heaviside``, ...; ``Piecewise`` and
anything whose arguments are not all expressions are kept) by an undefined
function of the same name, which SymPy never evaluates; :func:`restored`
rebuilds the real functions in a matrix tree's elementwise nodes. The reader
substitutes assumption-free symbols for tensor entries, and re-evaluating a
nest of functions of such a symbol asks SymPy about complex arguments at
every level (``tanh`` nested 12 deep: minutes); held inert, reading is
linear in the expression's size, and the restored tree is the one the
reader gives for the real functions (each node rebuilt bottom-up with its
real symbols, as the reader's own canonical renaming rebuilds it).
"""

from __future__ import annotations

from dataclasses import fields, replace

import sympy as sp
from sympy.core.function import AppliedUndef

from symbp import forms


def inert(expr: sp.Expr) -> tuple:
    """``(expr with inert functions, {inert class: real class})``."""
    table: dict = {}

    def hold(node):
        if node.is_Atom or isinstance(node, sp.Indexed):
            return node
        args = [hold(arg) for arg in node.args]
        if isinstance(node, sp.Function) and not isinstance(node, (sp.Piecewise, AppliedUndef)) \
                and all(isinstance(arg, sp.Expr) for arg in node.args):
            held = sp.Function(f"inert_{node.func.__name__}", real=True)
            table[held] = node.func
            return held(*args)
        return node.func(*args) if args != list(node.args) else node

    return hold(expr), table


def _real(expr: sp.Expr, table: dict) -> sp.Expr:
    if expr.is_Atom:
        return expr
    args = [_real(arg, table) for arg in expr.args]
    return table.get(expr.func, expr.func)(*args)


def restored(node, table: dict):
    """A matrix tree (or a part of one) with its real functions rebuilt."""
    if not table:
        return node
    if isinstance(node, sp.Basic):
        return _real(node, table)
    if isinstance(node, tuple):
        return tuple(restored(item, table) for item in node)
    if isinstance(node, NODES):
        return replace(node, **{f.name: restored(getattr(node, f.name), table)
                                for f in fields(node)})
    return node  # a leaf's quantity


NODES = (forms.Leaf, forms.Ones, forms.Transpose, forms.MatMul, forms.Hadamard, forms.Add,
         forms.Scale, forms.Elementwise, forms.AsRow)
