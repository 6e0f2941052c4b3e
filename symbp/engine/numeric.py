"""NumPy evaluation of index expressions, equations and gradients (for checks and tests).

Contract: :func:`compile_expression` turns an index expression into a
function of the arrays it reads (by tensor name) that returns the value and
the index each of its axes carries; it is built once per expression and
sizes: a ``Sum`` of a product becomes one ``np.einsum``, each elementwise
part one ``lambdify``'d NumPy function of broadcast operands. :func:`run`
evaluates a graph's equations in forward order and then its gradients, into
one dict of arrays by tensor name. It is a direct reading of the index
notation, independent of the code generator.
"""

from __future__ import annotations

import math
import string
from functools import lru_cache

import numpy as np
import sympy as sp

from symbp.engine.indices import FREE

MODULES = [{"erf": np.vectorize(math.erf, otypes=[float])}, np]
_PLACEHOLDERS = sp.symbols("p0:256", real=True)


def compile_expression(expr: sp.Expr, sizes: dict, scalars: frozenset = frozenset()):
    """``(function(arrays) -> array, indices)``; ``scalars`` names the rank-0 tensors."""
    return _compile(sp.sympify(expr), tuple(sorted(sizes.items(), key=str)), scalars)


@lru_cache(maxsize=None)
def _compile(expr, sizes: tuple, scalars: frozenset):
    if isinstance(expr, sp.Indexed):
        indices = tuple(expr.indices)
        if len(set(indices)) != len(indices) or not all(isinstance(i, sp.Symbol) for i in indices):
            raise NotImplementedError(f"index pattern {indices}")
        name = expr.base.label.name
        return (lambda arrays: arrays[name]), indices
    if isinstance(expr, sp.Symbol) and expr.name in scalars:
        name = expr.name
        return (lambda arrays: arrays[name]), ()
    if isinstance(expr, sp.Sum):
        return _compile_sum(expr, sizes, scalars)
    table = []
    skeleton = _placeholders(expr.xreplace(dict(sizes)), scalars, table)
    parts = [_compile(part, sizes, scalars) for _, part in table]
    target = _union([indices for _, indices in parts])
    function = sp.lambdify([symbol for symbol, _ in table], skeleton, modules=MODULES)
    plans = [(part, _alignment(indices, target)) for part, indices in parts]

    def elementwise(arrays):
        return function(*[_apply(plan, part(arrays)) for part, plan in plans])

    return elementwise, target


def _placeholders(expr, scalars: frozenset, table: list):
    """``expr`` with each outermost sum and each tensor entry replaced by a new symbol."""
    if isinstance(expr, (sp.Sum, sp.Indexed)) or (
            isinstance(expr, sp.Symbol) and expr.name in scalars):
        symbol = _PLACEHOLDERS[len(table)]
        table.append((symbol, expr))
        return symbol
    if not expr.args:
        return expr
    return expr.func(*[_placeholders(arg, scalars, table) for arg in expr.args])


def _compile_sum(expr: sp.Sum, sizes: tuple, scalars: frozenset):
    summed = [index for index, _, _ in expr.limits]
    parts = [_compile(f, sizes, scalars) for f in sp.Mul.make_args(expr.function)]
    every = _union([indices for _, indices in parts])
    kept = tuple(i for i in every if i not in summed)
    letters = dict(zip(every, string.ascii_letters, strict=False))
    subscripts = ",".join("".join(letters[i] for i in indices) for _, indices in parts)
    subscripts += "->" + "".join(letters[i] for i in kept)
    count = 1
    for index, low, high in expr.limits:
        if index not in every:  # the summand does not vary with it: a count
            count *= int(sp.sympify(high - low + 1).xreplace(dict(sizes)))
    functions = [part for part, _ in parts]

    def total(arrays):
        result = np.einsum(subscripts, *[np.asarray(f(arrays), dtype=float) for f in functions])
        return result * count if count != 1 else result

    return total, kept


def _union(index_lists) -> tuple:
    seen = []
    for indices in index_lists:
        seen.extend(i for i in indices if i not in seen)
    return tuple(seen)


def _alignment(indices: tuple, target: tuple):
    """How to transpose and reshape an array with axes ``indices`` to broadcast to ``target``."""
    if not indices:
        return None
    order = [indices.index(i) for i in target if i in indices]
    expand = tuple(n for n, i in enumerate(target) if i not in indices)
    return order, expand


def _apply(plan, array):
    if plan is None:
        return array
    order, expand = plan
    moved = np.transpose(np.asarray(array, dtype=float), order)
    return np.expand_dims(moved, expand) if expand else moved


def value_of(expr, tensor, arrays: dict, sizes: dict, scalars: frozenset) -> np.ndarray:
    """The value of ``tensor`` (axes ``FREE[:rank]``) defined by ``expr``."""
    function, indices = compile_expression(expr, sizes, scalars)
    array = np.asarray(function(arrays), dtype=float)
    shape = tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape)
    if indices:
        array = _apply(_alignment(indices, FREE[:tensor.rank]), array)
    return np.broadcast_to(array, shape).copy()


def run(graph, given: dict, sizes: dict, gradients=()) -> dict:
    """Every tensor of ``graph`` (and every gradient's adjoint) from the ``given`` arrays."""
    values = dict(given)
    for tensor, function, indices, shape in program(graph, sizes, tuple(gradients)):
        array = np.asarray(function(values), dtype=float)
        if indices:
            array = _apply(_alignment(indices, FREE[:tensor.rank]), array)
        values[tensor.name] = np.broadcast_to(array, shape).copy()
    return values


def program(graph, sizes: dict, gradients: tuple) -> list:
    """The compiled steps of :func:`run`, built once per graph, sizes and gradients."""
    key = (id(graph), tuple(sorted(sizes.items(), key=str)), tuple(id(g) for g in gradients))
    if key not in _PROGRAMS:
        scalars = frozenset(t.name for t in graph.tensors.values() if t.rank == 0)
        steps = [(e.out, e.expr) for e in graph.equations] + \
            [(g.adjoint, g.expr) for g in gradients]
        _PROGRAMS[key] = (graph, gradients, [
            (tensor, *compile_expression(expr, sizes, scalars),
             tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape))
            for tensor, expr in steps])
    return _PROGRAMS[key][2]


_PROGRAMS: dict = {}  # holds the graph and gradients too, so their ids stay theirs
