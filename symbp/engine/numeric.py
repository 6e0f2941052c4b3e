"""NumPy evaluation of index expressions, equations and gradients (for checks and tests).

Contract: :func:`evaluate` computes an index expression from arrays of the
tensors it reads and integer values of its sizes, returning the array and
the index each of its axes carries; a ``Sum`` of a product becomes one
``np.einsum``, everything elementwise one ``lambdify``'d NumPy function of
broadcast operands. :func:`run` evaluates a graph's equations in forward
order and then its gradients, into one dict of arrays by tensor name. It is
a direct reading of the index notation, independent of the code generator.
"""

from __future__ import annotations

import math
import string
from functools import lru_cache

import numpy as np
import sympy as sp

from symbp.engine.indices import FREE

MODULES = [{"erf": np.vectorize(math.erf, otypes=[float])}, np]


@lru_cache(maxsize=None)
def _elementwise_function(expr: sp.Expr, symbols: tuple):
    return sp.lambdify(symbols, expr, modules=MODULES)


def evaluate(expr: sp.Expr, arrays: dict, sizes: dict) -> tuple:
    """``(array, indices)`` of ``expr``; ``arrays`` by tensor name, ``sizes`` Symbol -> int."""
    if isinstance(expr, sp.Indexed):
        indices = tuple(expr.indices)
        if len(set(indices)) != len(indices) or not all(isinstance(i, sp.Symbol) for i in indices):
            raise NotImplementedError(f"index pattern {indices}")
        return np.asarray(arrays[expr.base.label.name]), indices
    if isinstance(expr, sp.Symbol) and expr.name in arrays:
        return np.asarray(arrays[expr.name]), ()
    if isinstance(expr, sp.Sum):
        return _sum(expr, arrays, sizes)
    table = []
    skeleton = _placeholders(sp.sympify(expr).xreplace(sizes), arrays, table)
    parts = [evaluate(part, arrays, sizes) for _, part in table]
    target = _union([indices for _, indices in parts])
    symbols = tuple(symbol for symbol, _ in table)
    function = _elementwise_function(skeleton, symbols)
    return np.asarray(function(*[_align(a, i, target) for a, i in parts])), target


def _placeholders(expr, arrays: dict, table: list):
    """``expr`` with each outermost sum and each tensor entry replaced by a new symbol."""
    if isinstance(expr, (sp.Sum, sp.Indexed)) or (
            isinstance(expr, sp.Symbol) and expr.name in arrays):
        symbol = sp.Dummy()
        table.append((symbol, expr))
        return symbol
    if not expr.args:
        return expr
    return expr.func(*[_placeholders(arg, arrays, table) for arg in expr.args])


def _sum(expr: sp.Sum, arrays: dict, sizes: dict) -> tuple:
    summed = [index for index, _, _ in expr.limits]
    parts = [evaluate(f, arrays, sizes) for f in sp.Mul.make_args(expr.function)]
    every = _union([indices for _, indices in parts])
    kept = tuple(i for i in every if i not in summed)
    letters = dict(zip(every, string.ascii_letters, strict=False))
    subscripts = ",".join("".join(letters[i] for i in indices) for _, indices in parts)
    result = np.einsum(f"{subscripts}->{''.join(letters[i] for i in kept)}",
                       *[np.asarray(a, dtype=float) for a, _ in parts])
    for index, low, high in expr.limits:
        if index not in every:  # the summand does not vary with it: a count
            result = result * int(sp.sympify(high - low + 1).xreplace(sizes))
    return result, kept


def _union(index_lists) -> tuple:
    seen = []
    for indices in index_lists:
        seen.extend(i for i in indices if i not in seen)
    return tuple(seen)


def _align(array, indices: tuple, target: tuple) -> np.ndarray:
    """``array`` (axes ``indices``) transposed and reshaped to broadcast against ``target``."""
    array = np.asarray(array, dtype=float)
    if not indices:
        return array
    order = [indices.index(i) for i in target if i in indices]
    moved = np.transpose(array, order)
    shape, sizes = [], iter(moved.shape)
    for index in target:
        shape.append(next(sizes) if index in indices else 1)
    return moved.reshape(shape)


def as_tensor(array, indices: tuple, tensor, sizes: dict) -> np.ndarray:
    """The value of ``tensor`` (axes ``FREE[:rank]``) from an evaluated expression."""
    free = FREE[:tensor.rank]
    shape = tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape)
    return np.broadcast_to(_align(array, indices, free) if indices else array, shape).copy()


def run(graph, given: dict, sizes: dict, gradients=()) -> dict:
    """Every tensor of ``graph`` (and every gradient's adjoint) from the ``given`` arrays."""
    values = dict(given)
    for equation in graph.equations:
        values[equation.out.name] = as_tensor(*evaluate(equation.expr, values, sizes),
                                              equation.out, sizes)
    for gradient in gradients:
        values[gradient.adjoint.name] = as_tensor(*evaluate(gradient.expr, values, sizes),
                                                  gradient.adjoint, sizes)
    return values
