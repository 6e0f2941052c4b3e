"""The per-sample view of a batch graph: row ``s`` of each batch tensor, where rows do not interact.

Contract: the engine derives gradients of the batch objective
``L = (1/B) sum_s l_s + R`` (``R`` the weight decay). Where a gradient reads
every batch tensor at its own row only, and every gradient it reads has a
per-sample view itself, row ``s`` of it is ``(1/B) d l_s / d v_s``; so
:func:`sample_gradient` returns ``B`` times that row with each gradient it
reads renamed to its per-sample one (each read ``g`` is ``g_sample / B``), and
a parameter gradient's per-sample form is the summand of its sum over the
batch (``R`` is not part of ``l_s``; a convolution's kernel gradient keeps its
sums over the positions). :func:`sample_equation` is the row of
a forward equation. Batch tensors lose their batch axis (a ``(B, n)``
tensor becomes a vector, a ``(B,)`` statistic the sample's scalar, its
label symbol). Both return None where rows interact (batch norm's
statistics), so only the batch form is printed there.
"""

from __future__ import annotations

import sympy as sp

from symbp.engine.indices import FREE, canonical, contract
from symbp.ops.base import BATCH
from symbp.printing.indexing import flattened_sum
from symbp.printing.names import is_batch

ROW = sp.Symbol("row", integer=True, nonnegative=True)


def _shift(expr: sp.Expr, rank: int) -> sp.Expr:
    """The row index becomes ROW; the other free indices move down one axis."""
    return expr.xreplace({FREE[0]: ROW, **{FREE[a]: FREE[a - 1] for a in range(1, rank)}})


def _drop_rows(expr: sp.Expr, graph, adjoints: dict, readable: set):
    """Batch entries at ROW without their batch axis; None if a row or gradient interacts."""
    failed = []

    def drop(entry):
        name = entry.base.label.name
        tensor = graph.tensors.get(name) or adjoints.get(name)
        if name in adjoints and name not in readable:
            failed.append(name)
        if tensor is None or not is_batch(tensor):
            return entry
        if entry.indices[0] != ROW:
            failed.append(name)
            return entry
        rest = tuple(entry.indices[1:])
        return entry.base[rest] if rest else entry.base.label

    result = expr.replace(lambda e: isinstance(e, sp.Indexed), drop)
    if failed or result.has(ROW) or any(limit[2] == BATCH - 1 for s in result.atoms(sp.Sum)
                                       for limit in s.limits):
        return None
    return result


def sample_equation(equation, graph):
    """Row ``s`` of a forward equation of a batch tensor, or None."""
    if not is_batch(equation.out):
        return None
    return _drop_rows(_shift(equation.expr, equation.out.rank), graph, {}, set())


def sample_gradient(gradient, graph, adjoints: dict, readable: set):
    """The per-sample form of a gradient (see the module docstring), or None."""
    of = gradient.of
    if is_batch(of):
        terms = [_shift(gradient.expr, of.rank)]
    elif of.role == "parameter":
        terms = _batch_summands(gradient.expr, graph, adjoints)
        if terms is None:
            return None
    else:
        return None
    dropped = [_drop_rows(term, graph, adjoints, readable) for term in terms]
    if not dropped or any(term is None for term in dropped):
        return None
    return canonical(contract(sp.Add(*[_per_sample_scale(term, adjoints)
                                       for term in sp.Add.make_args(sp.Add(*dropped))])))


def _per_sample_scale(term: sp.Expr, adjoints: dict) -> sp.Expr:
    """A term that reads gradients is linear in them (a VJP is linear in its seed), so with
    each read renamed to its per-sample gradient it is already the sample's; a term that
    reads none (the loss's own, with its 1/B) is multiplied by B."""
    names = {e.base.label.name for e in term.atoms(sp.Indexed)}
    names |= {s.name for s in term.free_symbols}
    return term if names & set(adjoints) else BATCH * term


def _batch_summands(expr: sp.Expr, graph, adjoints: dict):
    """The summands of the sums over the batch in a parameter gradient, at ROW; terms
    without such a sum (weight decay) are not part of a sample's loss."""
    summands = []
    for term in sp.Add.make_args(expr):
        factors = sp.Mul.make_args(term)
        sums = [f for f in factors if isinstance(f, sp.Sum) and len(f.limits) == 1
                and f.limits[0][2] == BATCH - 1]
        if len(sums) > 1:
            return None
        nested = None if sums else _nested_batch_summand(factors)
        if nested is not None:
            summands.append(nested)
            continue
        if not sums:
            names = {e.base.label.name for e in term.atoms(sp.Indexed)}
            if any(n in adjoints or is_batch(graph.tensors[n]) for n in names):
                return None
            continue
        (total,) = sums
        rest = sp.Mul(*[f for f in factors if f is not total])
        summands.append(rest * total.function.xreplace({total.limits[0][0]: ROW}))
    return summands


def _nested_batch_summand(factors: tuple):
    """The summand at ROW of a product with one chain of nested sums, one of them over the
    batch (a convolution's kernel gradient sums over the batch and the positions), or None."""
    sums = [f for f in factors if isinstance(f, sp.Sum)]
    if len(sums) != 1:
        return None
    limits, inner = flattened_sum(sums[0])
    batch = [limit for limit in limits if limit[2] == BATCH - 1]
    if len(batch) != 1:
        return None
    body = sp.Mul(*inner).xreplace({batch[0][0]: ROW})
    others = [limit for limit in limits if limit is not batch[0]]
    rest = sp.Mul(*[f for f in factors if f is not sums[0]])
    return rest * (sp.Sum(body, *others) if others else body)
