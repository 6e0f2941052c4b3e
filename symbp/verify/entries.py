"""Entries: both sides of a claim as entrywise SymPy expressions, and their difference.

Contract: a matrix product is the canonical sum :func:`product_entry` over a
bound index ``k_n`` (the nesting level), so the claim's and the truth's sums
compare term by term; :func:`forms_entry` reads the truth's
:mod:`symbp.forms` tree in the same terms (tensor codes ``W1``, ``a0``, ``Y``,
entries ``[i, j]``); :func:`simplify_difference` says whether
``claim - truth`` is zero (Sums held opaque; with a context, once more with
``a^{(m)} = f_m(z^{(m)})``). :func:`symbolic_ok` says whether SymPy is worth
trying on a side at all: beyond its limits a claim is decided on numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import sympy as sp

from symbp import claims as C
from symbp import forms
from symbp.verify.echo import tree_latex
from symbp.verify.functions import x_symbol
from symbp.verify.shapes import B_SYMBOL, Dim, I, J

if TYPE_CHECKING:
    from symbp.verify.context import Context

SYMBOLIC_NODES, SYMBOLIC_POWER, SYMBOLIC_NESTING = 80, 12, 3  # beyond: numbers only


class NoSymbolic(Exception):
    pass


def limit(key: str) -> sp.Expr:
    if key == "B":
        return B_SYMBOL
    return sp.Symbol(f"n_{key[1:]}", integer=True, positive=True)


def dummy_level(*exprs) -> int:
    level = 0
    for expr in exprs:
        if expr is None:
            continue
        for symbol in expr.atoms(sp.Symbol):
            if symbol.name.startswith("k_") and symbol.name[2:].isdigit():
                level = max(level, int(symbol.name[2:]))
    return level + 1


def product_entry(left, right, inner: Dim, registry: dict | None, latex: str | None):
    """Entry ``(i, j)`` of a matrix product from the entries of its factors."""
    if left is None or right is None:
        return None
    if inner.one:
        return left.xreplace({J: sp.Integer(0)}) * right.xreplace({I: sp.Integer(0)})
    k = sp.Symbol(f"k_{dummy_level(left, right)}", integer=True)
    total = canonical_sum(left.xreplace({J: k}) * right.xreplace({I: k}), k, limit(inner.key))
    if registry is not None and latex is not None and isinstance(total, sp.Sum):
        registry.setdefault(total, latex)  # only a bare sum is exactly the printed product
    return total


def canonical_sum(summand: sp.Expr, k: sp.Symbol, length: sp.Expr) -> sp.Expr:
    """``sum_k summand`` in a canonical form: over each term, constants pulled out."""
    terms = []
    for term in sp.Add.make_args(sp.expand(summand)):
        constant = sp.Mul(*[f for f in sp.Mul.make_args(term) if not f.has(k)])
        varying = sp.Mul(*[f for f in sp.Mul.make_args(term) if f.has(k)])
        terms.append(constant * (length if varying == 1 else sp.Sum(varying, (k, 0, length - 1))))
    return sp.Add(*terms)


def tensor_entry(code: str, rows: Dim, cols: Dim, matrix: bool) -> sp.Expr:
    base = sp.IndexedBase(sp.Symbol(code))
    if matrix:
        return base[I, J]
    return base[I] if cols.one else base[J]


def forms_entry(node, ctx: Context, batch: bool, registry: dict):
    """``(entry, rows key, cols key)`` of a :mod:`symbp.forms` tree at a concrete layer."""
    if isinstance(node, forms.Leaf):
        tensor = node.tensor
        rows, cols = tensor_keys(tensor, ctx.depth, batch)
        matrix = tensor.letter == "W" or (batch and tensor.letter != "b")
        return tensor_entry(tensor.code, Dim(0, "", rows), Dim(0, "", cols), matrix), rows, cols
    if isinstance(node, forms.Ones):
        length = node.length
        key = "B" if length == "B" else (f"n{ctx.depth}" if length == "n_{L}"
                                         else "n" + length.strip("n_{}"))
        return sp.Integer(1), key, "1"
    if isinstance(node, forms.Transpose):
        entry, rows, cols = forms_entry(node.arg, ctx, batch, registry)
        return entry.xreplace({I: J, J: I}), cols, rows
    if isinstance(node, forms.Scale):
        entry, rows, cols = forms_entry(node.arg, ctx, batch, registry)
        return node.factor.subs(sp.Symbol("B", integer=True, positive=True), B_SYMBOL) * entry, \
            rows, cols
    if isinstance(node, forms.MatMul):
        left, rows, inner = forms_entry(node.left, ctx, batch, registry)
        right, _, cols = forms_entry(node.right, ctx, batch, registry)
        entry = product_entry(left, right, Dim(0, "", inner), registry, tree_latex(node))
        return entry, rows, cols
    if isinstance(node, (forms.Hadamard, forms.Add)):
        parts = [forms_entry(arg, ctx, batch, registry) for arg in node.args]
        shaped = [p for p in parts if not (p[1] == "1" and p[2] == "1")] or parts
        combine = sp.Mul if isinstance(node, forms.Hadamard) else sp.Add
        return combine(*[p[0] for p in parts]), shaped[0][1], shaped[0][2]
    if isinstance(node, forms.Elementwise):
        mapping, shape = {}, ("1", "1")
        for symbol, tensor in node.tensors:
            rows, cols = tensor_keys(tensor, ctx.depth, batch)
            matrix = batch and tensor.letter != "b"
            mapping[symbol] = tensor_entry(tensor.code, Dim(0, "", rows), Dim(0, "", cols),
                                            matrix)
            shape = (rows, cols)
        return node.expr.xreplace(mapping), shape[0], shape[1]
    raise NoSymbolic(type(node).__name__)


def tensor_keys(tensor, depth: int, batch: bool):
    layer = depth if tensor.letter == "y" else int(tensor.layer)
    if tensor.letter == "W":
        return f"n{layer}", f"n{layer - 1}"
    if batch and tensor.letter != "b":
        return "B", f"n{layer}"
    return f"n{layer}", "1"


_SLOW_TO_SIMPLIFY = (sp.tanh, sp.cosh, sp.sinh, sp.sech, sp.sin, sp.cos, sp.Piecewise, sp.erf)


def simplify_difference(expr: sp.Expr, ctx: Context | None = None):
    """``(is zero, simplified expression)``; Sums are kept opaque while simplifying.

    With ``ctx`` a difference that is not plainly zero is tried once more with
    each ``a^{(m)}`` written as ``f_m(z^{(m)})`` (slower; used to confirm)."""
    expr = sp.expand(expr)
    if expr == 0:
        return True, expr
    sums = {s: sp.Dummy(f"S{n}") for n, s in enumerate(sorted(expr.atoms(sp.Sum),
                                                              key=sp.default_sort_key))}
    opaque = expr.xreplace(sums)
    back = {v: k for k, v in sums.items()}
    candidates = [opaque]
    size = sp.count_ops(opaque)
    if size < 150:
        candidates.append(sp.factor(opaque))
    if size < 40 and not opaque.has(*_SLOW_TO_SIMPLIFY):
        candidates.append(sp.simplify(opaque))
    simplified = min(candidates, key=sp.count_ops)
    if simplified == 0:
        return True, sp.Integer(0)
    if ctx is not None:
        in_z = _in_terms_of_z(opaque, ctx)
        if in_z is not None and sp.count_ops(in_z) < 80 and sp.simplify(in_z) == 0:
            return True, sp.Integer(0)
    return False, simplified.xreplace(back)


def _in_terms_of_z(expr, ctx: Context):
    """Replace each ``a^{(m)}`` of an elementwise layer by ``f_m(z^{(m)})``."""
    mapping = {}
    for layer in range(1, ctx.depth + 1):
        if not ctx.has_activation(layer):
            continue
        activation = ctx.activation(layer)
        if not activation.is_softmax:
            mapping[sp.Symbol(f"a{layer}")] = (layer, activation.expr)
    if not mapping:
        return None

    def substitute(e):
        layer, forward = mapping[e.base.label]
        z = sp.IndexedBase(sp.Symbol(f"z{layer}"))[e.indices]
        return forward.subs(x_symbol(), z)

    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label in mapping,
                        substitute)


def symbolic_ok(node) -> bool:
    """Is SymPy worth trying on this side of a claim? Its time grows fast with nested
    powers, with constants inside functions (its polynomial algorithms read ``e^{999}``
    and ``\\exp(999 z)`` as the 999th power of ``e`` or ``e^z``) and with nested functions
    (rewriting ``tanh(tanh(...))`` in ``exp`` quadruples the expression per level); a
    larger side is decided on the numbers alone."""
    if sum(1 for _ in C.walk(node)) > SYMBOLIC_NODES:
        return False
    power, nesting = _growth(node)
    return power <= SYMBOLIC_POWER and nesting <= SYMBOLIC_NESTING


def _growth(node) -> tuple[int, int]:
    """``(the degree SymPy's polynomials may see: nested exponents times the constants
    inside functions, depth of nested function applications)``."""
    inner = [_growth(child) for _, child in C.children(node)] or [(1, 0)]
    power, nesting = max(p for p, _ in inner), max(n for _, n in inner)
    if isinstance(node, C.Power):
        power *= abs(node.exponent)
    if isinstance(node, C.Apply):
        power *= (node.func.power or 1) * _scale(node.arg)
        nesting += 1
    return min(power, SYMBOLIC_POWER + 1), nesting


def _scale(node) -> int:
    """How large the constants of ``node`` get as multipliers (``9 \\cdot 9 z`` -> 81,
    ``z/2`` -> 2), capped just above :data:`SYMBOLIC_POWER`."""
    if isinstance(node, C.Num):
        value = max(abs(node.value.numerator), node.value.denominator)
    elif isinstance(node, C.Apply):
        value = 1  # a function's own constants count where it is applied
    else:
        scales = [_scale(child) for _, child in C.children(node)] or [1]
        if isinstance(node, (C.Add, C.Sub)):
            value = max(scales)
        elif isinstance(node, C.Power):
            value = scales[0] ** min(abs(node.exponent), SYMBOLIC_POWER + 1)
        else:
            value = math.prod(scales)
    return min(value, SYMBOLIC_POWER + 1)
