"""Rewrites of a derived VJP in terms of the consumer's own named tensors, where exact.

Contract: :func:`in_named_tensors` takes a contracted VJP of a consumer
``T0[FREE] = definition`` (tensors renamed ``T0`` for the output, ``T1, ...``
for the inputs, ``G`` for the output's gradient) and returns an expression
equal to it that reads the output ``T0`` instead of recomputing it:

- an elementwise definition ``T0[I] = f(T1[I])``: ``f'`` is ``sympy.diff`` of
  ``f``, rewritten in terms of ``f``'s output where that is exact and cheaper
  (``tanh' = 1 - a^2``; the search and its numeric guard are
  :func:`symbp.engine.activation.activation_derivative`);
- a normalised definition ``T0[I] = u(T1[I]) / S`` with ``S`` a sum (softmax):
  ``S`` is held as an opaque symbol, each ``u(T1[J])`` is replaced by
  ``T0[J] S`` (the definition solved for ``u``), and the result is accepted
  only if ``S`` cancels; then it is collected on ``T0[I]``, which gives
  ``a ⊙ (g - sum_k a_k g_k)``.

Anything else is returned unchanged. Nothing here knows an op by name.
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.activation import activation_derivative
from symbp.engine.indices import FREE, canonical, contract
from symbp.registry import A, X

__all__ = ["activation_derivative", "in_named_tensors"]

OUTPUT = sp.IndexedBase("T0", real=True)
SEED = sp.IndexedBase("G", real=True)


def in_named_tensors(vjp: sp.Expr, definition: sp.Expr, out_shape: tuple, op: str) -> sp.Expr:
    rank = len(out_shape)
    single = _elementwise_input(definition, rank)
    if single is not None:
        return _elementwise(vjp, definition, single, rank, op)
    rewritten = _normalised(vjp, definition, rank)
    return vjp if rewritten is None else rewritten


def _elementwise_input(definition: sp.Expr, rank: int):
    """The one input base of ``T[I] = f(input[I])``, or None."""
    entries = definition.atoms(sp.Indexed)
    if definition.has(sp.Sum) or len(entries) != 1:
        return None
    (entry,) = entries
    return entry.base if tuple(entry.indices) == FREE[:rank] else None


def _elementwise(vjp, definition, input_base, rank, op):
    free = FREE[:rank]
    forward = definition.xreplace({input_base[free]: X})
    derivative = activation_derivative(op, forward)
    local = derivative.best.xreplace({X: input_base[free], A: OUTPUT[free]})
    seed = SEED[free] if vjp.has(SEED) else sp.Integer(1)
    return seed * local


def _normalised(vjp, definition, rank):
    numerator, denominator = definition.as_numer_denom()
    if rank == 0 or not denominator.has(sp.Sum) or numerator.has(sp.Sum):
        return None
    total = sp.Dummy("S", positive=True)
    opaque = _replace_sums(vjp, canonical(denominator), total)
    free = FREE[:rank]
    kept = [i for i in free if denominator.has(i)]
    wilds = {i: sp.Wild(f"w{n}") for n, i in enumerate(free) if i not in kept}
    pattern = numerator.xreplace(wilds)
    replaced = opaque.replace(pattern, OUTPUT[tuple(wilds.get(i, i) for i in free)] * total)
    result = contract(replaced)
    if result.has(total) or result.has(*[e.base for e in numerator.atoms(sp.Indexed)]):
        return None
    return sp.collect(sp.expand(result), OUTPUT[free])


def _replace_sums(expr, pattern, symbol):
    return expr.replace(lambda e: isinstance(e, sp.Sum) and canonical(e) == pattern,
                        lambda e: symbol)
