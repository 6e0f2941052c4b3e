"""Simplification of derived gradients: inline the small ones, use what the graph guarantees.

Contract: :func:`simplify` takes the gradients of :func:`symbp.engine.backward.backward`
and returns an equal list, in the same order, where

- a gradient without a sum that exactly one other gradient reads (the loss's
  ``dL/da^{(L)}``, a residual's or dropout's pass-through) is substituted into
  that reader and dropped, which is how ``-y/a`` of cross-entropy meets
  softmax's ``a ⊙ (g - a·g)`` and cancels;
- every expression is contracted again (constants out of sums), and each sum
  the graph knows the value of is replaced by it: the graph's identities (the
  targets' rows sum to one when the loss declares it) and the definitions of
  named statistics read backwards (``sum_k x_{s,k} = n μ_s`` where
  ``μ_s = (1/n) sum_k x_{s,k}``);
- of the contracted form and its expansion, the one with fewer operations is kept.

Nothing here knows an op by name; every step is an exact rewrite.
"""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from symbp.engine.activation import expansion_is_small
from symbp.engine.indices import FREE, canonical, contract


def simplify(graph, gradients: list) -> list:
    identities, named = _identities(graph), _named_quotients(graph)
    tidied = [replace(g, expr=tidy(g.expr, identities, named)) for g in gradients]
    readers = _readers(tidied)
    inlined, kept = {}, []
    for gradient in tidied:
        expr = gradient.expr
        if inlined:
            expr = tidy(_substitute(expr, inlined), identities, named)
        if _inlinable(gradient, expr, readers, tidied):
            inlined[gradient.adjoint.name] = expr
            continue
        kept.append(replace(gradient, expr=expr))
    return kept


def _inlinable(gradient, expr, readers: dict, gradients: list) -> bool:
    """Read by exactly one other gradient, and either free of sums, or a statistic (a
    lower rank than its reader's) that the reader reads outside any sum of its own."""
    name = gradient.adjoint.name
    if gradient.of.role != "value" or len(readers.get(name, ())) != 1:
        return False
    if not expr.has(sp.Sum):
        return True
    (reader,) = readers[name]
    reader = next(g for g in gradients if g.adjoint.name == reader)
    inside_sums = any(_reads(total, name) for total in reader.expr.atoms(sp.Sum))
    return gradient.of.rank < reader.of.rank and not inside_sums


def tidy(expr: sp.Expr, identities: list, named: list = ()) -> sp.Expr:
    expr = _apply_identities(contract(_read_quotients(expr, named)), identities)
    if not expr.has(sp.Add):  # a product or a sum of one: no other form is shorter
        return canonical(expr)
    if not expansion_is_small(expr, TIDY_BUDGET):  # expand and factor only what stays small
        candidates = [expr, sp.factor_terms(expr)]
    elif expr.has(sp.Sum):
        candidates = [expr, sp.expand(expr), sp.factor_terms(expr)]
    else:
        candidates = [expr, sp.expand(expr), sp.factor(expr)]
    best = min(candidates, key=lambda e: (sp.count_ops(e), sp.default_sort_key(e)))
    return canonical(best)


def _named_quotients(graph) -> list:
    """``(pattern, replacement)`` for each definition ``t = N / D`` whose numerator is a
    sum of terms (``x̂ = (x - μ) / sqrt(σ² + eps)``): ``N`` reads as ``t D``."""
    rewrites = []
    for equation in graph.equations:
        numerator, denominator = equation.expr.as_numer_denom()
        if not isinstance(numerator, sp.Add) or denominator == 1 or equation.expr.has(sp.Sum):
            continue
        wilds = {index: sp.Wild(f"w{n}") for n, index in enumerate(FREE)
                 if equation.expr.has(index)}
        rewrites.append((numerator.xreplace(wilds),
                         (equation.out.entry() * denominator).xreplace(wilds),
                         len(numerator.args), _bases(numerator)))
    return rewrites


def _read_quotients(expr: sp.Expr, named) -> sp.Expr:
    """Each sum of terms that is a named quotient's numerator, replaced (a cheap
    structural filter first: the same number of terms over the same tensors)."""
    for pattern, replacement, terms, bases in named:
        def rewrite(candidate, pattern=pattern, replacement=replacement):
            found = candidate.match(pattern)
            return candidate if found is None else replacement.xreplace(found)

        expr = expr.replace(lambda e, terms=terms, bases=bases: isinstance(e, sp.Add)
                            and len(e.args) == terms and _bases(e) == bases, rewrite)
    return expr


def _bases(expr: sp.Expr) -> frozenset:
    return frozenset(e.base.label.name for e in expr.atoms(sp.Indexed))


def _reads(expr: sp.Expr, name: str) -> bool:
    return any(e.base.label.name == name for e in expr.atoms(sp.Indexed))


TIDY_BUDGET = 200  # expression nodes (and terms an expansion would make)


def _readers(gradients) -> dict:
    """Adjoint name -> the names of the gradients whose expressions read it."""
    readers = {}
    for gradient in gradients:
        for name in {e.base.label.name for e in gradient.expr.atoms(sp.Indexed)}:
            readers.setdefault(name, []).append(gradient.adjoint.name)
    return readers


def _substitute(expr: sp.Expr, inlined: dict) -> sp.Expr:
    """Each entry ``g_X[J]`` of an inlined gradient replaced by its expression at ``J``."""
    if not inlined:
        return expr
    return expr.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base.label.name in inlined,
        lambda e: inlined[e.base.label.name].xreplace(dict(zip(FREE, e.indices, strict=False))))


def _identities(graph) -> list:
    """``(sum pattern with Wild free indices, wilds, value)`` for every known sum."""
    known = list(graph.identities)
    for equation in graph.equations:
        coefficient, rest = equation.expr.as_coeff_Mul()
        if isinstance(rest, sp.Sum) or (isinstance(rest, sp.Mul) and _one_sum_times_constant(rest)):
            total = next(f for f in sp.Mul.make_args(rest) if isinstance(f, sp.Sum))
            factor = coefficient * sp.Mul(*[f for f in sp.Mul.make_args(rest) if f is not total])
            known.append((total, equation.out.entry() / factor))
    patterns = []
    for total, value in known:
        wilds = {index: sp.Wild(f"w{n}") for n, index in enumerate(FREE)
                 if total.has(index)}
        patterns.append((canonical(total).xreplace(wilds), wilds, value, _bases(total)))
    return patterns


def _one_sum_times_constant(expr: sp.Mul) -> bool:
    factors = sp.Mul.make_args(expr)
    sums = [f for f in factors if isinstance(f, sp.Sum)]
    return len(sums) == 1 and all(not f.has(sp.Indexed) for f in factors if f is not sums[0])


def _apply_identities(expr: sp.Expr, patterns: list) -> sp.Expr:
    if not patterns:
        return expr

    def known(total):
        bases = _bases(total)
        candidates = [p for p in patterns if p[3] == bases]  # a cheap filter before matching
        if not candidates:
            return total
        shape = canonical(total)
        for pattern, wilds, value, _ in candidates:
            found = shape.match(pattern)
            if found is not None and all(isinstance(found.get(w), sp.Symbol)
                                         for w in wilds.values()):
                return value.xreplace({index: found[w] for index, w in wilds.items()})
        return total

    return expr.replace(lambda e: isinstance(e, sp.Sum), known)
