"""Rewriting the index expressions of a claim: substitution, and affine simplification.

Contract: an index item is what :class:`~symbp.claims.nodes.Indexed` holds (a ``str`` letter
or digit, or an index-expression node: Num, Letter, Add, Sub, Neg, MatMul, Div, Floor, Mod,
the width ``Leaf("n")``). :func:`substitute` replaces letters in one item, :func:`map_reads`
in every read and bracket of a tree, :func:`replace_items` replaces sub-expressions of the
items; a changed item is :func:`simplified` (an affine one summed out through SymPy,
``i - (-p)`` -> ``i + p``; anything else kept as written) and a plain letter goes back to a
``str``, as the parser writes it. :func:`letter_sign` and :func:`sign_in_reads` say with
which sign letters enter an item or a tree's reads (index letters are positive symbols: a
coefficient such as 1/S has a sign). Nothing here evaluates a claim.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import sympy as sp

from symbp.claims import nodes as C


def as_node(item):
    """An index item (a letter or digit string, or an index expression) as a node."""
    if isinstance(item, C.Node):
        return item
    if item.isdigit():
        return C.Num(Fraction(int(item)))
    return C.Letter(item)


def as_item(node):
    """An index expression back as a subscript item, simplified where it is affine."""
    simple = simplified(node)
    if isinstance(simple, C.Letter):
        return simple.name
    return simple


_FIELDS = ("left", "right", "arg", "num", "den", "modulus")  # an index expression's operands


def parts(node):
    """``node`` and every sub-expression of it, parents first."""
    yield node
    for name in _FIELDS:
        child = getattr(node, name, None)
        if isinstance(child, C.Node):
            yield from parts(child)


def _rebuilt(node, fn):
    """``node`` with ``fn`` applied to each operand."""
    changes = {name: fn(getattr(node, name)) for name in _FIELDS
               if isinstance(getattr(node, name, None), C.Node)}
    return replace(node, **changes) if changes else node


def substitute(item, mapping: dict):
    """``item`` with each letter of ``mapping`` replaced by its node."""
    node = as_node(item)

    def walk(n):
        return mapping.get(n.name, n) if isinstance(n, C.Letter) else _rebuilt(n, walk)

    if not any(isinstance(n, C.Letter) and n.name in mapping for n in parts(node)):
        return item
    return as_item(walk(node))


_SYMBOLS: dict = {}


def symbol(name: str) -> sp.Symbol:
    """An index letter as a SymPy symbol: positions, offsets and the geometry are >= 0, and
    a coefficient such as 1/S has a sign."""
    return _SYMBOLS.setdefault(name, sp.Symbol(name, positive=True))


def sympy_of(node) -> sp.Expr:
    """An affine index expression in SymPy; TypeError for anything else."""
    if isinstance(node, C.Num):
        return sp.Rational(node.value.numerator, node.value.denominator)
    if isinstance(node, C.Letter):
        return symbol(node.name)
    if isinstance(node, C.Neg):
        return -sympy_of(node.arg)
    if isinstance(node, (C.Add, C.Sub, C.MatMul)):
        left, right = sympy_of(node.left), sympy_of(node.right)
        return left + right if isinstance(node, C.Add) else left - right if isinstance(
            node, C.Sub) else left * right
    if isinstance(node, C.Div):
        return sympy_of(node.num) / sympy_of(node.den)
    raise TypeError(type(node).__name__)  # floor, mod, a width: not affine


def simplified(node):
    """An affine index expression in its simplest sum form (``i - (-p)`` -> ``i + p``);
    anything else as it is."""
    try:
        return _from_sympy(sp.expand(sympy_of(node)), {s: name for name, s in _SYMBOLS.items()})
    except TypeError:  # not affine, or a power (S^2 i): kept as written
        return node


def _from_sympy(expr, names: dict):
    """A SymPy sum of (rational multiples of) products of letters as an index expression."""
    if expr.is_Rational:
        if expr < 0:
            return C.Neg(C.Num(Fraction(-int(expr.p), int(expr.q))))
        return C.Num(Fraction(int(expr.p), int(expr.q)))
    if expr.is_Symbol:
        return C.Letter(names[expr])
    if expr.is_Add:
        terms = sorted(expr.args, key=lambda t: (t.is_Rational, bool(t.as_coeff_Mul()[0] < 0),
                                                  str(t)))  # i - p + 1: letters, + first
        result = _from_sympy(terms[0], names)
        for term in terms[1:]:
            coefficient, _ = term.as_coeff_Mul()
            if coefficient < 0:
                result = C.Sub(result, _from_sympy(-term, names))
            else:
                result = C.Add(result, _from_sympy(term, names))
        return result
    if expr.is_Mul:
        coefficient, factors = expr.as_coeff_mul()
        if coefficient < 0:
            return C.Neg(_from_sympy(-expr, names))
        product = None
        for factor in factors:
            if not factor.is_Symbol:
                raise TypeError(str(expr))
            letter = C.Letter(names[factor])
            product = letter if product is None else C.MatMul(product, letter)
        if coefficient.p != 1:
            product = C.MatMul(C.Num(Fraction(int(coefficient.p))), product)
        if coefficient.q != 1:
            product = C.Div(product, C.Num(Fraction(int(coefficient.q))))
        return product
    raise TypeError(str(expr))


def letter_sign(item) -> int:
    """-1 when the item's letters enter it with negative coefficients (``2 - p``), else 1."""
    try:
        expr = sp.expand(sympy_of(as_node(item)))
    except TypeError:
        return 1
    coefficients = [expr.coeff(letter) for letter in expr.free_symbols]
    return -1 if coefficients and all(c.is_negative for c in coefficients) else 1


def sign_in_reads(rhs, letters: list[str], skip=lambda read: False) -> int:
    """The sign with which ``letters`` first enter the index of a read (but those ``skip``
    names): +1, -1, or 0 where they enter none."""
    for _, node in C.walk(rhs):
        if isinstance(node, C.Indexed) and not skip(node):
            for item in node.indices:
                try:
                    expr = sp.expand(sympy_of(as_node(item)))
                except TypeError:
                    continue
                for letter in letters:
                    coefficient = expr.coeff(symbol(letter))
                    if coefficient.is_positive:
                        return 1
                    if coefficient.is_negative:
                        return -1
    return 0


def map_reads(rhs, mapping: dict, skip=lambda read: False):
    """``rhs`` with ``mapping``'s letters substituted in the index expressions of its reads
    (but those ``skip`` names) and of its brackets' conditions."""

    def visit(node):
        node = C.map_children(node, visit)
        if isinstance(node, C.Indexed) and not skip(node):
            return replace(node, indices=tuple(substitute(item, mapping)
                                               for item in node.indices))
        if isinstance(node, C.Between):
            return replace(node, low=as_node(substitute(node.low, mapping)),
                           middle=as_node(substitute(node.middle, mapping)),
                           high=as_node(substitute(node.high, mapping)))
        if isinstance(node, C.Member):
            return replace(node, expr=as_node(substitute(node.expr, mapping)))
        return node

    return visit(rhs)


def replace_items(rhs, table: dict):
    """``rhs`` with each index item (or part of one) that is a key of ``table`` replaced."""

    def swap(node):
        return table[node] if node in table else _rebuilt(node, swap)

    def visit(node):
        node = C.map_children(node, visit)
        if isinstance(node, C.Indexed):
            return replace(node, indices=tuple(
                item if isinstance(item, str) else swap(item) for item in node.indices))
        return node

    return visit(rhs)
