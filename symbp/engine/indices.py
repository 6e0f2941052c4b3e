"""Index notation: canonical indices, and the summation of Kronecker deltas.

Contract: a tensor of rank ``r`` is indexed by the free indices
``FREE[:r]`` in its definition; summation indices are named by nesting depth
(:data:`BOUND`, ``k0`` outermost) by :func:`canonical`, so two expressions that
differ only in the names of their bound indices compare equal.
:func:`contract` sums Kronecker deltas away, ``sum_k d_{kq} g(k) = g(q)``,
bottom-up: only the products whose factors hold a delta of the summed index
are distributed (no blanket ``expand``), constants are pulled out of sums,
and a sum of a sum of terms is split into one sum per term.

Index arithmetic: an entry may be read at an affine index (``a[s, c, i*S + p - P]``
in a convolution). A delta between affine indices is solved for the summed
index (``sum_i d_{u, 2i+p} g(i) = g((u - p)/2)``), and the range the summed
index had becomes an explicit condition, the indicator :class:`Inside`
(``[(u - p)/2 is an integer in 0..n-1]``); that is how a convolution's borders
and strides come out of the derivation. Zero padding is written the same way,
as an :class:`Inside` factor of the forward definition. A delta solved to a
plain index keeps no condition (the ops index alike tensors alike), and
:func:`within_ranges` removes every condition that the ranges of the free and
summed indices already imply.
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.argmax import PiecewiseConstant

FREE = sp.symbols("i0:8", integer=True, nonnegative=True)
BOUND = sp.symbols("k0:8", integer=True, nonnegative=True)


def free_indices(rank: int) -> tuple:
    return FREE[:rank]


class Inside(PiecewiseConstant):
    """``Inside(e, n)``: 1 where the index expression ``e`` is an integer in ``0..n-1``, else 0.

    A range condition, constant for differentiation (its arguments are indices);
    :mod:`symbp.printing.indexing` prints it as an Iverson bracket."""

    is_integer = True
    is_nonnegative = True

    @classmethod
    def eval(cls, expr, size):
        if expr.is_Number and size.is_Number:
            return sp.Integer(1 if expr.is_integer and 0 <= expr < size else 0)
        return None


def affine_terms(expr: sp.Expr):
    """``(coefficients by index symbol, constant)`` of an index expression linear in its
    symbols, or None."""
    expr = sp.expand(expr)
    symbols = sorted((s for s in expr.free_symbols if s.is_integer), key=str)
    coefficients = {}
    for symbol in symbols:
        coefficient = expr.diff(symbol)
        if coefficient.has(*symbols):
            return None
        coefficients[symbol] = coefficient
    constant = sp.sympify(expr.xreplace({symbol: 0 for symbol in symbols}))
    return coefficients, constant


def within_ranges(expr: sp.Expr, ranges: dict) -> sp.Expr:
    """``expr`` with each :class:`Inside` that the index ranges decide replaced by 1 or 0;
    ``ranges`` maps a free index to its ``(low, high)``, the sums add their own."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, Inside):
        return _decided(expr, ranges)
    if isinstance(expr, sp.Sum):
        inner = dict(ranges)
        for index, low, high in expr.limits:
            inner[index] = (low, high)
        return sp.Sum(within_ranges(expr.function, inner), *expr.limits)
    if not expr.has(Inside):
        return expr
    return expr.func(*[within_ranges(arg, ranges) for arg in expr.args])


def _decided(condition: Inside, ranges: dict) -> sp.Expr:
    expr, size = condition.args
    terms = affine_terms(expr)
    if terms is None or not all(s in ranges for s in terms[0]):
        return condition
    coefficients, constant = terms
    lowest = highest = constant
    for symbol, coefficient in coefficients.items():
        low, high = ranges[symbol]  # a range is never empty: low <= high
        if coefficient.is_negative:
            low, high = high, low
        elif not coefficient.is_nonnegative:
            return condition
        lowest, highest = lowest + coefficient * low, highest + coefficient * high
    integral = all(c.is_integer for c in coefficients.values()) and constant.is_integer
    if integral and sp.simplify(lowest).is_nonnegative \
            and sp.simplify(size - 1 - highest).is_nonnegative:
        return sp.Integer(1)
    if sp.simplify(highest).is_negative or sp.simplify(lowest - size).is_nonnegative:
        return sp.Integer(0)
    return condition


def canonical(expr: sp.Expr) -> sp.Expr:
    """Rename the bound index of each sum after its nesting depth (``k0`` outermost)."""
    return _by_depth(_fresh_bound(expr), 0)


def _fresh_bound(expr: sp.Expr) -> sp.Expr:
    """Every bound index replaced by a new Dummy, inner sums first (so no name is captured)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, sp.Sum):
        body, limits = _fresh_bound(expr.function), []
        for index, low, high in expr.limits:
            fresh = sp.Dummy(integer=True, nonnegative=True)
            body = body.xreplace({index: fresh})
            limits.append((fresh, low, high))
        return sp.Sum(body, *limits)
    return expr.func(*[_fresh_bound(arg) for arg in expr.args])


def _by_depth(expr: sp.Expr, depth: int) -> sp.Expr:
    if not isinstance(expr, sp.Basic) or expr.is_Atom or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, sp.Sum):
        body, limits = expr.function, []
        for index, low, high in expr.limits:
            body = body.xreplace({index: BOUND[depth]})
            limits.append((BOUND[depth], low, high))
            depth += 1
        return sp.Sum(_by_depth(body, depth), *limits)
    return expr.func(*[_by_depth(arg, depth) for arg in expr.args])


def contract(expr: sp.Expr) -> sp.Expr:
    """Sum away the Kronecker deltas of ``expr`` (see the module docstring)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, sp.Sum):
        body = contract(expr.function)
        for index, low, high in expr.limits:
            body = sum_over(body, index, low, high)
        return body
    return expr.func(*[contract(arg) for arg in expr.args])


def sum_over(body: sp.Expr, index, low, high) -> sp.Expr:
    """``sum_{index=low}^{high} body`` with deltas in ``index`` summed away."""
    terms = []
    for term in _terms(body, index):
        factors = sp.Mul.make_args(term)
        solved = next(((f, value) for f in factors if isinstance(f, sp.KroneckerDelta)
                       for value in [_solution(f, index)] if value is not None), None)
        if solved is not None:
            delta, value = solved
            rest = sp.Mul(*[f for f in factors if f is not delta])
            if not isinstance(value, sp.Symbol) or low != 0:
                rest *= Inside(value - low, high - low + 1)
            terms.append(rest.xreplace({index: value}))
            continue
        constant = sp.Mul(*[f for f in factors if not f.has(index)])
        varying = sp.Mul(*[f for f in factors if f.has(index)])
        if varying == 1:
            terms.append(constant * (high - low + 1))
        elif isinstance(varying, sp.Add):
            terms.append(constant * sum_over(varying, index, low, high))
        else:
            terms.append(constant * sp.Sum(varying, (index, low, high)))
    return sp.Add(*terms)


def _solution(delta: sp.KroneckerDelta, index):
    """The value of ``index`` where ``delta`` is 1, when its arguments are linear in it."""
    if not delta.has(index):
        return None
    difference = delta.args[0] - delta.args[1]
    coefficient = difference.diff(index)
    if coefficient == 0 or coefficient.has(index) or not coefficient.is_number:
        return None
    return sp.expand(index - difference / coefficient)


def _terms(expr: sp.Expr, index) -> list:
    """The terms of ``expr``, distributing only products over sums that hold a delta in ``index``."""
    terms = []
    for term in sp.Add.make_args(expr):
        factors = sp.Mul.make_args(term)
        position = next((p for p, f in enumerate(factors)
                         if isinstance(f, sp.Add) and _has_delta(f, index)), None)
        if position is None:
            terms.append(term)
            continue
        rest = sp.Mul(*(factors[:position] + factors[position + 1:]))
        terms.extend(_terms(sp.Add(*[arg * rest for arg in factors[position].args]), index))
    return terms


def _has_delta(expr: sp.Expr, index) -> bool:
    return any(delta.has(index) for delta in expr.atoms(sp.KroneckerDelta))
