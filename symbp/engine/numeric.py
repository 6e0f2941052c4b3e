"""NumPy evaluation of index expressions, equations and gradients (for checks and tests).

Contract: :func:`compile_expression` turns an index expression into a
function of the arrays it reads (by tensor name) that returns the value and
the index each of its axes carries; it is built once per expression and
sizes: a ``Sum`` of a product becomes one ``np.einsum``, each elementwise
part one ``lambdify``'d NumPy function of broadcast operands. An entry read at
affine indices (``a[s, c, 2*i + p - 1]``) is a gather over the grid of its
index symbols, zero where an index falls outside the tensor; a range
condition (:class:`~symbp.engine.indices.Inside`), a Kronecker delta and a
window argmax (:class:`~symbp.engine.argmax.IsArgmax`) are arrays over the
grid of their index symbols. :func:`run`
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

from symbp.engine.argmax import IsArgmax
from symbp.engine.indices import FREE, Inside

MODULES = [{"erf": np.vectorize(math.erf, otypes=[float])}, np]
_PLACEHOLDERS = sp.symbols("p0:256", real=True)


def compile_expression(expr: sp.Expr, sizes: dict, scalars: frozenset = frozenset(),
                       shape: tuple = ()):
    """``(function(arrays) -> array, indices)``; ``scalars`` names the rank-0 tensors,
    ``shape`` is the shape of the tensor ``expr`` defines (the ranges of its free indices)."""
    ranges = tuple((index, int(sp.sympify(n).xreplace(sizes))) for index, n in zip(
        FREE, shape, strict=False))
    return _compile(sp.sympify(expr), tuple(sorted(sizes.items(), key=str)), scalars, ranges)


@lru_cache(maxsize=None)
def _compile(expr, sizes: tuple, scalars: frozenset, ranges: tuple = ()):
    if isinstance(expr, sp.Indexed):
        indices = tuple(expr.indices)
        name = expr.base.label.name
        if len(set(indices)) != len(indices) or not all(isinstance(i, sp.Symbol) for i in indices):
            return _gather(name, indices, dict(ranges))
        return (lambda arrays: arrays[name]), indices
    if isinstance(expr, sp.Symbol) and expr.name in scalars:
        name = expr.name
        return (lambda arrays: arrays[name]), ()
    if isinstance(expr, (Inside, sp.KroneckerDelta)):
        return _condition(expr, dict(ranges))
    if isinstance(expr, IsArgmax):
        return _argmax(expr, sizes, scalars, ranges)
    if isinstance(expr, sp.Sum):
        return _compile_sum(expr, sizes, scalars, ranges)
    table = []
    skeleton = _placeholders(expr.xreplace(dict(sizes)), scalars, table)
    parts = [_compile(part, sizes, scalars, ranges) for _, part in table]
    target = _union([indices for _, indices in parts])
    function = sp.lambdify([symbol for symbol, _ in table], skeleton, modules=MODULES)
    plans = [(part, _alignment(indices, target)) for part, indices in parts]

    def elementwise(arrays):
        return function(*[_apply(plan, part(arrays)) for part, plan in plans])

    return elementwise, target


def _placeholders(expr, scalars: frozenset, table: list):
    """``expr`` with each outermost sum and each tensor entry replaced by a new symbol."""
    if isinstance(expr, (sp.Sum, sp.Indexed, Inside, sp.KroneckerDelta, IsArgmax)) or (
            isinstance(expr, sp.Symbol) and expr.name in scalars):
        symbol = _PLACEHOLDERS[len(table)]
        table.append((symbol, expr))
        return symbol
    if not expr.args:
        return expr
    return expr.func(*[_placeholders(arg, scalars, table) for arg in expr.args])


def _compile_sum(expr: sp.Sum, sizes: tuple, scalars: frozenset, ranges: tuple):
    summed = [index for index, _, _ in expr.limits]
    inner = dict(ranges)
    for index, low, high in expr.limits:
        if low != 0:
            raise NotImplementedError(f"a sum from {low}")
        inner[index] = int(sp.sympify(high + 1).xreplace(dict(sizes)))
    inner = tuple(inner.items())
    parts = [_compile(f, sizes, scalars, inner) for f in sp.Mul.make_args(expr.function)]
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


def _grid(symbols: tuple, ranges: dict) -> list:
    """Open grids (``np.ix_``) of the index symbols over their ranges."""
    missing = [s for s in symbols if s not in ranges]
    if missing:
        raise NotImplementedError(f"no range for the index {missing[0]}")
    return np.ix_(*[np.arange(ranges[s]) for s in symbols]) if symbols else []


def _index_symbols(exprs) -> tuple:
    return _union([sorted(sp.sympify(e).free_symbols, key=sp.default_sort_key) for e in exprs])


def _positions(exprs, symbols: tuple, ranges: dict) -> list:
    """Each index expression at every point of the symbols' grid (full shape), exactly:
    ``(value, integral)`` with ``value`` an integer array (the floor) and ``integral``
    where the expression is an integer (a stride's ``(u - p)/3`` is rational)."""
    grid = _grid(symbols, ranges)
    shape = tuple(ranges[s] for s in symbols)
    results = []
    for expr in exprs:
        expr = sp.sympify(expr)
        coefficients = sp.Poly(expr, *symbols).coeffs() if symbols else [expr]
        denominator = math.lcm(*[int(sp.fraction(c)[1]) for c in coefficients])
        numerator = sp.expand(expr * denominator)
        values = sp.lambdify(symbols, numerator, modules="numpy")(*grid) if symbols \
            else int(numerator)
        values = np.broadcast_to(np.asarray(values, dtype=np.int64), shape)
        d = int(denominator)
        results.append((values // d, values % d == 0))
    return results


def _gather(name: str, indices: tuple, ranges: dict):
    """``T[e_1, ..., e_r]`` over the grid of the index symbols; 0 outside ``T``."""
    symbols = _index_symbols(indices)
    positions = _positions(indices, symbols, ranges)

    def read(arrays):
        array = np.asarray(arrays[name], dtype=float)
        valid = True
        clipped = []
        for (position, integral), size in zip(positions, array.shape, strict=True):
            valid = valid & integral & (position >= 0) & (position <= size - 1)
            clipped.append(np.clip(position, 0, size - 1))
        return np.where(valid, array[tuple(clipped)], 0.0)

    return read, symbols


def _condition(expr, ranges: dict):
    """A range condition or a Kronecker delta as a 0/1 array over its index symbols."""
    symbols = _index_symbols(expr.args)
    (first, first_integral), (second, second_integral) = _positions(expr.args, symbols, ranges)
    if isinstance(expr, Inside):
        mask = first_integral & (first >= 0) & (first <= second - 1)
    else:
        mask = (first == second) & first_integral & second_integral
    mask = mask.astype(float)
    return (lambda arrays: mask), symbols


def _argmax(expr: IsArgmax, sizes: tuple, scalars: frozenset, ranges: tuple):
    """1 at the first maximum of each window (row-major over the positions), else 0."""
    window = expr.window
    inner = tuple({**dict(ranges), **{p: int(sp.sympify(k).xreplace(dict(sizes)))
                                     for p, k in window}}.items())
    entry, indices = _compile(expr.entry, sizes, scalars, inner)
    positions = tuple(p for p, _ in window)
    others = tuple(i for i in indices if i not in positions)
    order = [indices.index(i) for i in others + positions]

    def indicator(arrays):
        values = np.transpose(np.asarray(entry(arrays), dtype=float), order)
        flat = values.reshape(values.shape[:len(others)] + (-1,))
        first = np.argmax(flat, axis=-1)[..., None]
        chosen = np.arange(flat.shape[-1]) == first
        return chosen.reshape(values.shape).astype(float)

    return indicator, others + positions


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
    function, indices = compile_expression(expr, sizes, scalars, tensor.shape)
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
            (tensor, *compile_expression(expr, sizes, scalars, tensor.shape),
             tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape))
            for tensor, expr in steps])
    return _PROGRAMS[key][2]


_PROGRAMS: dict = {}  # holds the graph and gradients too, so their ids stay theirs
