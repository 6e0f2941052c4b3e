"""An activation's derivative ``f'``: ``sympy.diff`` of its forward definition, rewritten
in terms of its output where that is exact and cheaper.

Contract: :func:`activation_derivative` returns an :class:`ActivationDerivative`
with ``f'`` in the input ``X`` and, when found, in the output ``A``
(``tanh' = 1 - a^2``, ``sigmoid' = a(1 - a)``, ``softplus' = 1 - e^{-a}``): by
substituting ``f(x) -> a`` or by inverting ``f`` (SymPy's peeling inverter, then
``solve`` within a budget), accepted only when it has no ``x`` left, costs less
and agrees with ``f'(x)`` numerically on a grid. The step function's value at
0 is 0, as in PyTorch. Nothing here is a hand-written derivative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from symbp.registry import A, X

MODULES = [{"erf": np.vectorize(math.erf, otypes=[float])}, np]


@dataclass(frozen=True)
class ActivationDerivative:
    """``f'`` of one activation: in terms of the input ``x`` and, when exact and cheaper, of ``a``."""

    name: str
    forward: sp.Expr
    in_input: sp.Expr  # in X
    in_output: sp.Expr | None  # in A, or None

    @property
    def uses_output(self) -> bool:
        return self.in_output is not None

    @property
    def best(self) -> sp.Expr:
        return self.in_output if self.uses_output else self.in_input


def _cost(expr: sp.Expr) -> int:
    """Operation count, with transcendental functions weighing like several products."""
    functions = sum(1 for e in sp.preorder_traversal(expr) if isinstance(e, sp.Function))
    return int(sp.count_ops(expr)) + 8 * functions + (20 if expr.has(sp.Piecewise) else 0)


def _heaviside_zero_at_zero(expr: sp.Expr) -> sp.Expr:
    """The step function's value at 0 is 0, as in PyTorch (SymPy's default is 1/2)."""
    return expr.replace(sp.Heaviside, lambda *args: sp.Heaviside(args[0], 0))


@lru_cache(maxsize=None)
def activation_derivative(name: str, forward: sp.Expr) -> ActivationDerivative:
    """``sympy.diff`` of ``forward`` in ``X``, rewritten in the output ``A`` where possible."""
    derivative = _heaviside_zero_at_zero(sp.diff(forward, X))
    derivative = _tidy_scalar(derivative)
    return ActivationDerivative(name, forward, derivative,
                                _rewrite_in_output(forward, derivative))


def _tidy_scalar(expr: sp.Expr) -> sp.Expr:
    if expr.has(sp.Piecewise):
        return sp.piecewise_fold(expr)
    return positive_factors(expr)


def _rewrite_in_output(forward: sp.Expr, derivative: sp.Expr) -> sp.Expr | None:
    """Express ``f'(x)`` as ``g(f(x))`` by structural substitution or by inverting ``f``.

    Accepted only when the result has no ``x`` left, is cheaper than ``f'(x)``
    and agrees with it numerically on a grid (so a wrong branch is rejected).
    The search has a budget (:data:`REWRITE_BUDGET` nodes, at most
    :data:`MAX_INVERSES` real candidates): past it, ``f'(x)`` is used as it is.
    """
    if forward.has(sp.Piecewise, sp.Max, sp.Min, sp.Abs) or not derivative.has(X):
        return None
    structural = derivative.subs(forward, A)
    best = _acceptable(structural, forward, derivative)
    if best is not None:
        return best
    for inverse in _inverses(forward):
        candidate = _acceptable(derivative.subs(X, inverse), forward, derivative)
        if candidate is not None and (best is None or _cost(candidate) < _cost(best)):
            best = candidate
    return best


REWRITE_BUDGET = 60  # expression nodes: above it, no factoring and no solve
MAX_INVERSES = 4  # candidate inverses tried (x**64 has 64 complex roots)
MAX_SOLVED_DEGREE = 4  # solve only where the roots are in radicals


def _size(expr: sp.Expr) -> int:
    return sum(1 for _ in sp.preorder_traversal(expr))


def expansion_is_small(expr: sp.Expr, limit: int = REWRITE_BUDGET) -> bool:
    """Would ``expand``/``factor`` stay small? An upper bound on the number of terms that
    expanding makes of each subexpression (``((1 + x**2)**2 + 1)**64`` would make
    thousands), and the expression no larger than ``limit`` nodes."""
    terms: dict = {}
    for node in sp.postorder_traversal(expr):
        if node.is_Add:
            count = sum(terms[arg] for arg in node.args)
        elif node.is_Mul:
            count = math.prod(terms[arg] for arg in node.args)
        elif node.is_Pow and node.exp.is_Integer and node.exp > 0:
            count = terms[node.base] ** min(int(node.exp), limit)
        else:
            count = 1
        terms[node] = min(count, limit + 1)
        if count > limit:
            return False
    return _size(expr) <= limit


def _acceptable(candidate, forward, derivative):
    """The cheapest exact rewrite of ``candidate`` if it is free of ``x``, cheaper and right."""
    if candidate.has(X):
        return None
    forms_ = [candidate]
    if expansion_is_small(candidate):
        forms_ += [sp.factor(sp.cancel(candidate)), sp.expand(candidate)]
    candidate = min((positive_factors(f) for f in forms_), key=_cost)
    if _cost(candidate) < _cost(derivative) and _agrees(forward, derivative, candidate):
        return candidate
    return None


def _inverses(forward: sp.Expr) -> list:
    """Candidate inverses ``x = g(a)`` of ``a = f(x)``: SymPy's peeling inverter first
    (``1/(1 + e^{-x})`` -> ``-log(1/a - 1)`` in milliseconds), then ``solve`` for a
    small algebraic ``f``, keeping its real roots only. Not solved: anything the
    peeling inverter could not invert that holds a function or ``x`` in an exponent
    (``x tanh(...)``, ``x**x``: ``solve`` takes seconds and finds at best Lambert W
    forms, dearer than ``f'(x)``; nested ``sin``: minutes over its periodic
    branches), powers above :data:`MAX_SOLVED_DEGREE` and anything beyond the
    budget. Callers check each candidate numerically."""
    peeled = _peel_inverse(forward)
    if peeled is not None:
        return [peeled]
    transcendental = forward.atoms(sp.Function) or any(
        power.exp.has(X) for power in forward.atoms(sp.Pow))
    if transcendental or _size(forward) > REWRITE_BUDGET or any(
            abs(power.exp) > MAX_SOLVED_DEGREE for power in forward.atoms(sp.Pow)
            if power.exp.is_Number):
        return []
    try:
        roots = sp.solve(sp.Eq(A, forward), X, check=False)
    except (NotImplementedError, ValueError, TypeError):
        return []
    return [root for root in roots if not root.has(sp.I)][:MAX_INVERSES]


def _peel_inverse(forward: sp.Expr):
    try:
        from sympy.solvers.solvers import _invert  # undocumented, so guarded
        inverse, isolated = _invert(forward - A, X)
    except (ImportError, NotImplementedError, ValueError, TypeError):
        return None
    return inverse if isolated == X and not inverse.has(X) else None


_GRID = np.linspace(-3.0, 3.0, 7) + 0.0123


def _agrees(forward, derivative, candidate) -> bool:
    """Equal in float64 at points spread over [-3, 3] (a wrong branch of an inverse
    fails here; so does a rewrite that overflows where ``f'(x)`` does not, or that
    goes through a complex intermediate the generated code cannot compute)."""
    through_a = candidate.subs(A, forward)
    with np.errstate(all="ignore"):
        try:
            expected = _on_grid(derivative)
            got = _on_grid(through_a)
        except (ArithmeticError, TypeError, ValueError):
            return False
        close = np.abs(got - expected) <= 1e-9 * np.maximum(1.0, np.abs(expected))
    # NaN compares False, so the test is written to pass only on agreement
    return bool(np.all(np.isfinite(got) & np.isfinite(expected) & close))


def _on_grid(expr: sp.Expr) -> np.ndarray:
    values = np.asarray(_numeric(expr)(_GRID))
    if np.iscomplexobj(values):
        if not np.all(np.abs(values.imag) <= 1e-12):
            return np.full(_GRID.shape, np.nan)
        values = values.real
    return np.broadcast_to(values.astype(float), _GRID.shape)


def positive_factors(expr: sp.Expr) -> sp.Expr:
    """``-(a - 1)(a - y) a`` -> ``(1 - a)(a - y) a``: same value, easier to read."""
    if not isinstance(expr, sp.Mul) or not expr.could_extract_minus_sign():
        return expr
    factors = list(expr.args)
    for position, factor in enumerate(factors):
        if isinstance(factor, sp.Add) and factor.as_coeff_Add()[0] < 0:
            factors[position] = sp.Add(*[-term for term in factor.args])
            return sp.Mul(*factors) * -1
    return expr


@lru_cache(maxsize=None)
def _numeric(expr: sp.Expr):
    return sp.lambdify((X,), expr, modules=MODULES)
