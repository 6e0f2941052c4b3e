"""Index notation: canonical indices, and the summation of Kronecker deltas.

Contract: a tensor of rank ``r`` is indexed by the free indices
``FREE[:r]`` in its definition; summation indices are named by nesting depth
(:data:`BOUND`, ``k0`` outermost) by :func:`canonical`, so two expressions that
differ only in the names of their bound indices compare equal.
:func:`contract` sums Kronecker deltas away, ``sum_k d_{kq} g(k) = g(q)``,
bottom-up: only the products whose factors hold a delta of the summed index
are distributed (no blanket ``expand``), constants are pulled out of sums,
and a sum of a sum of terms is split into one sum per term. Every index is in
its range by construction, so no range condition is kept.
"""

from __future__ import annotations

import sympy as sp

FREE = sp.symbols("i0:8", integer=True, nonnegative=True)
BOUND = sp.symbols("k0:8", integer=True, nonnegative=True)


def free_indices(rank: int) -> tuple:
    return FREE[:rank]


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
        delta = next((f for f in factors
                      if isinstance(f, sp.KroneckerDelta) and index in f.args), None)
        if delta is not None:
            other = delta.args[0] if delta.args[1] == index else delta.args[1]
            rest = sp.Mul(*[f for f in factors if f is not delta])
            terms.append(rest.xreplace({index: other}))
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
    return any(index in delta.args for delta in expr.atoms(sp.KroneckerDelta))
