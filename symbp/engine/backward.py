"""Reverse mode over a graph, derived: the gradient of every tensor the loss depends on.

Contract: :func:`backward` returns, in the order a backward pass computes
them, one :class:`Gradient` per tensor on a path from a parameter (or the
input) to the loss. Its expression, in the tensor's free indices, is the sum
over the tensor's consumers of each consumer's vector-Jacobian product

    g_X[K] = sum_C  sum_I  g_C[I] * d C[I] / d X[K]

where ``C[I]`` is the consumer's forward definition and ``g_C`` its own
gradient (``1`` for the loss): ``sympy.diff`` then
:func:`~symbp.engine.indices.contract`, nothing else. Each VJP is derived
once per shape of definition (the tensors and sizes renamed to canonical
ones) and cached, so a network of many alike layers costs one derivation per
op type. Each VJP is then rewritten in the consumer's named tensors where
that is exact (:mod:`symbp.engine.rewrite`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from symbp.engine import rewrite
from symbp.engine.argmax import PiecewiseConstant
from symbp.engine.graph import Equation, Graph, Tensor
from symbp.engine.indices import BOUND, FREE, canonical, contract, within_ranges


@dataclass(frozen=True)
class Gradient:
    """``dL/d of`` as the tensor ``adjoint``; ``paths`` holds each consumer's contribution."""

    of: Tensor
    adjoint: Tensor
    expr: sp.Expr
    paths: tuple  # ((consumer Equation, contribution), ...)


def adjoint(tensor: Tensor) -> Tensor:
    """The tensor that holds ``dL/d tensor`` (same shape), named ``g_<name>``."""
    return Tensor(f"g_{tensor.name}", tensor.shape, "value",
                  latex=rf"\frac{{\partial L}}{{\partial {tensor.latex or tensor.name}}}",
                  layer=tensor.layer)


def backward(graph: Graph, wrt_roles: tuple = ("parameter",)) -> list:
    """The gradients of every tensor between the tensors of ``wrt_roles`` and the loss."""
    needed = _on_paths(graph, wrt_roles)
    gradients = []
    for tensor in reversed([*graph.tensors.values()]):
        if tensor.name not in needed or tensor.role == "loss":
            continue
        paths = tuple((consumer, vjp(consumer, tensor)) for consumer in graph.consumers(tensor.name)
                      if consumer.out.name in needed)
        gradients.append(Gradient(tensor, adjoint(tensor), sp.Add(*[c for _, c in paths]), paths))
    return gradients


def _on_paths(graph: Graph, wrt_roles: tuple) -> set:
    """Names of the tensors that depend on a ``wrt_roles`` tensor and that the loss depends on."""
    depends = {t.name for t in graph.tensors.values() if t.role in wrt_roles}
    for equation in graph.equations:
        if isinstance(equation.expr, PiecewiseConstant):  # its derivative is 0
            continue
        if any(t.name in depends for t in equation.inputs):
            depends.add(equation.out.name)
    feeds = {graph.loss.name}
    for equation in reversed(graph.equations):
        if equation.out.name in feeds:
            feeds.update(t.name for t in equation.inputs)
    return depends & feeds


@lru_cache(maxsize=None)
def vjp(consumer: Equation, wrt: Tensor) -> sp.Expr:
    """``sum_I g_C[I] dC[I]/d wrt[FREE]`` for one consumer equation ``C``."""
    seed = sp.Integer(1) if consumer.out.role == "loss" else adjoint(consumer.out).base
    key, back = _canonical_key(consumer, wrt, seed)
    return _vjp_template(*key).xreplace(back)


def _canonical_key(consumer: Equation, wrt: Tensor, seed):
    """The VJP's inputs with tensors renamed ``T0, T1, ...`` and sizes ``N0, N1, ...``."""
    tensors = [consumer.out, *consumer.inputs]
    rename, back = {}, {}
    for position, tensor in enumerate(tensors):
        canonical_base = sp.IndexedBase(f"T{position}", real=True)
        for old, new in ((tensor.base, canonical_base),
                         (tensor.base.label, canonical_base.label)):
            rename[old], back[new] = new, old
    if seed != 1:
        rename[seed], back[sp.IndexedBase("G", real=True)] = sp.IndexedBase("G", real=True), seed
        rename[seed.label] = sp.IndexedBase("G", real=True).label
        back[sp.IndexedBase("G", real=True).label] = seed.label
    sizes = _sizes(consumer)
    for position, size in enumerate(sizes):
        symbol = sp.Symbol(f"N{position}", integer=True, positive=True)
        rename[size], back[symbol] = symbol, size
    key = (consumer.expr.xreplace(rename), tuple(sp.sympify(d).xreplace(rename)
                                                   for d in consumer.out.shape),
           rename[wrt.base], tuple(sp.sympify(d).xreplace(rename) for d in wrt.shape),
           seed.xreplace(rename) if seed != 1 else seed, consumer.op)
    return key, back


def _sizes(consumer: Equation) -> list:
    """The size symbols a consumer uses, in order of first appearance in the shapes (so
    that alike layers at any depth get the same canonical names)."""
    found = []
    for expr in (*consumer.out.shape, *[d for t in consumer.inputs for d in t.shape],
                 consumer.expr):
        for symbol in sorted(sp.sympify(expr).free_symbols, key=sp.default_sort_key):
            if isinstance(symbol, sp.Symbol) and symbol.is_integer and symbol.is_positive \
                    and symbol not in found:
                found.append(symbol)
    return found


@lru_cache(maxsize=None)
def _vjp_template(expr, out_shape, wrt_base, wrt_shape, seed, op):
    rank = len(out_shape)
    out_indices = tuple(sp.Dummy(f"o{t}", integer=True, nonnegative=True) for t in range(rank))
    fresh = tuple(sp.Dummy(f"q{t}", integer=True, nonnegative=True) for t in wrt_shape)
    definition = expr.xreplace(dict(zip(FREE, out_indices, strict=False)))
    target = wrt_base[fresh] if fresh else wrt_base.label
    local = sp.diff(definition, target)
    weight = seed[out_indices] if rank and seed != 1 else (seed.label if seed != 1 else 1)
    limits = [(i, 0, n - 1) for i, n in zip(out_indices, out_shape, strict=True)]
    total = contract(_innermost(weight, local, limits))
    ranges = {q: (0, n - 1) for q, n in zip(fresh, wrt_shape, strict=True)}
    result = canonical(within_ranges(total, ranges).xreplace(dict(zip(fresh, FREE,
                                                                      strict=False))))
    return rewrite.in_named_tensors(result, expr, out_shape, op)


def _innermost(weight, local: sp.Expr, limits: list) -> sp.Expr:
    """``sum_{limits} weight * local`` with the sums over the consumer's output indices
    innermost, inside the definition's own sums: a delta between an output position
    and a read position (``d_{u, i*S + p}``) is then solved for the output position,
    which reads the gradient at ``(u - p)/S`` and keeps the sum over the kernel."""
    if not limits:
        return weight * local
    if isinstance(local, sp.Add):
        return sp.Add(*[_innermost(weight, term, limits) for term in local.args])
    if isinstance(local, sp.Sum):
        return sp.Sum(_innermost(weight, local.function, limits), *local.limits)
    if isinstance(local, sp.Mul):
        sums = [f for f in local.args if isinstance(f, sp.Sum)]
        if len(sums) == 1:
            rest = sp.Mul(*[f for f in local.args if f is not sums[0]])
            return sp.Sum(_innermost(weight * rest, sums[0].function, limits), *sums[0].limits)
    return sp.Sum(weight * local, *limits)


__all__ = ["BOUND", "Gradient", "adjoint", "backward", "vjp"]
