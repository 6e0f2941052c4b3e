"""From index expression to NumPy code.

Contract: :func:`compile_index` turns an index expression of the engine
(``IndexedBase`` entries, ``Sum`` s with symbolic ranges, elementwise
functions) into a :class:`Term`: NumPy code and the index each axis of its
value carries. ``names`` maps a tensor name to the code that holds its array
(``params["W1"]``, ``delta2``). A sum of the product of two matrices over one
index is a matrix product with transposes as views (``delta2 @ W2``,
``delta2.T @ a1``); a sum of one operand is ``np.sum(.., axis=)``; two
factors of higher rank sharing the summed indices are one ``np.tensordot``, or
``_window_dot`` when one is the windows of a batch (a convolution and its
kernel gradient) or an array of samples summed over the axes after the first
(an output gradient times a kernel): one matrix product per sample; any other
contraction is one ``np.einsum``. Everything elementwise is printed by
:mod:`symbp.codegen.printer` with each array operand aligned to the result's
axes (``.T``, ``[:, None]``). :func:`aligned` gives the code of a term as an
array with a given order of axes, :func:`writes` the call that writes a term
into an existing array (``out=``) when it has one.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import sympy as sp

from symbp.codegen.printer import Operand, print_expr
from symbp.engine.argmax import IsArgmax


@dataclass(frozen=True)
class Term:
    """NumPy code for a value whose axes carry ``axes``; ``call`` is how it is made:
    ``("matmul", left, right)``, ``("sum", operand, axes)``, ``("einsum", subscripts,
    operands)``, ``("tensordot", code)`` (a new array: no ``out=``) or None for an
    elementwise expression; ``atomic``: usable as an operand
    without parentheses."""

    code: str
    axes: tuple
    call: tuple | None = None
    atomic: bool = True


def compile_index(expr: sp.Expr, names, want: tuple = ()) -> Term:
    """``expr`` as a :class:`Term`; ``want`` (the target's axes) orders the result's axes."""
    if isinstance(expr, sp.Indexed):
        return Term(names(expr.base.label.name), tuple(expr.indices))
    if isinstance(expr, IsArgmax):
        return _first_maximum(expr, names)
    if isinstance(expr, sp.Sum):
        return _compile_sum(expr, names, want)
    return _compile_elementwise(expr, names, want)


def aligned(term: Term, target: tuple) -> str:
    """The code of ``term`` as an array that broadcasts against axes ``target``."""
    code = term.code if term.atomic else f"({term.code})"
    axes = tuple(a for a in target if a in term.axes)
    if axes != term.axes:
        if len(axes) == 2:
            code += ".T"
        else:
            order = tuple(term.axes.index(a) for a in axes)
            code = f"np.transpose({code}, {order})"
    if not axes:
        return code
    slots = [":" if a in axes else "None" for a in target]
    while slots and slots[0] == "None":  # leading axes broadcast by themselves
        slots.pop(0)
    if "None" in slots:
        code += "[" + ", ".join(slots) + "]"
    return code


def writes(term: Term, out: str) -> str | None:
    """The call writing ``term`` into the array ``out``, or None when it has no ``out=``."""
    if term.call is None:
        return None
    kind = term.call[0]
    if kind == "matmul":
        return f"np.matmul({term.call[1]}, {term.call[2]}, out={out})"
    if kind == "sum":
        return f"np.sum({term.call[1]}, axis={term.call[2]}, out={out})"
    if kind == "tensordot":
        return None
    if kind == "window_sum":
        return f"_window_sum({term.call[1]}, {term.call[2]}, out={out})"
    return f"np.einsum({term.call[1]!r}, {', '.join(term.call[2])}, out={out})"


# ---------------------------------------------------------------------- sums
def _flatten(expr: sp.Sum):
    body, limits = expr.function, list(expr.limits)
    while isinstance(body, sp.Sum):
        limits += list(body.limits)
        body = body.function
    return body, limits


def _compile_sum(expr: sp.Sum, names, want: tuple) -> Term:
    body, limits = _flatten(expr)
    summed = [index for index, _, _ in limits]
    outside = [f for f in sp.Mul.make_args(body) if not f.has(*summed)]
    if outside:  # factors constant in the summed indices multiply the sum afterwards
        inner = sp.Sum(sp.Mul(*[f for f in sp.Mul.make_args(body) if f.has(*summed)]), *limits)
        return _compile_elementwise(sp.Mul(*outside) * inner, names, want)
    factors = [compile_index(f, names) for f in _operands(body)]
    every = _union([f.axes for f in factors])
    missing = [(low, high) for index, low, high in limits if index not in every]
    if missing:  # a summand that does not vary with an index is counted
        count = sp.Mul(*[high - low + 1 for low, high in missing])
        inner = sp.Sum(body, *[lim for lim in limits if lim[0] in every])
        return _compile_elementwise(count * inner, names, want)
    kept = tuple(a for a in want if a in every) + tuple(
        a for a in every if a not in summed and a not in want)
    if len(factors) == 2:
        term = _matmul(factors, summed, kept) or _tensordot(factors, summed, kept)
        if term is not None:
            return term
    if len(factors) == 1:
        (factor,) = factors
        axis = tuple(factor.axes.index(a) for a in summed)
        operand = factor.code  # a call's argument needs no parentheses
        remaining = tuple(a for a in factor.axes if a not in summed)
        if not remaining:
            return Term(f"np.sum({operand})", ())
        axis_code = str(axis[0]) if len(axis) == 1 else str(axis)
        if operand.startswith(("_windows(", "np.diagonal(")):  # short strided window axes
            return Term(f"_window_sum({operand}, {tuple(axis)})", remaining,
                        ("window_sum", operand, str(tuple(axis))))
        return Term(f"np.sum({operand}, axis={axis_code})", remaining,
                    ("sum", operand, axis_code))
    return _einsum(factors, kept)


def _operands(body: sp.Expr) -> list:
    """The factors of a summand that are arrays of their own (numbers join the first)."""
    factors = list(sp.Mul.make_args(body))
    numbers = [f for f in factors if not f.free_symbols]
    arrays = [f for f in factors if f.free_symbols]
    if numbers and arrays:
        arrays[0] = sp.Mul(*numbers) * arrays[0]
    return arrays or [body]


def _matmul(factors, summed, kept) -> Term | None:
    """``left @ right`` when two matrices share exactly the one summed index."""
    left, right = factors
    if len(summed) != 1 or len(left.axes) != 2 or len(right.axes) != 2 or len(kept) != 2:
        return None
    (k,) = summed
    if k not in left.axes or k not in right.axes:
        return None
    if kept[0] not in left.axes:
        left, right = right, left
    if kept[0] not in left.axes or kept[1] not in right.axes:
        return None
    lhs = aligned(left, (kept[0], k))
    rhs = aligned(right, (k, kept[1]))
    return Term(f"{lhs} @ {rhs}", kept, ("matmul", lhs, rhs), atomic=False)


def _tensordot(factors, summed, kept) -> Term | None:
    """``np.tensordot`` when the two factors (one of rank 3 or more) share exactly the
    summed indices (a convolution over its windows, its kernel and input gradients)."""
    if all(len(f.axes) <= 2 for f in factors) or any(
            len(set(f.axes)) < len(f.axes) for f in factors):
        return None
    left, right = factors
    if set(left.axes) & set(right.axes) != set(summed) or len(summed) != len(set(summed)):
        return None
    columns = _columns(left, right) or _columns(right, left)
    if columns is not None:  # the windows of a batch, copied once in sample-major order
        first, (code, axes) = columns
        result = tuple(a for a in first.axes + axes if a not in summed)
        pairs = ([first.axes.index(k) for k in summed], [axes.index(k) for k in summed])
        code = f"_window_dot({first.code}, {code}, ({pairs[0]}, {pairs[1]}))"
        if result != kept:
            code += f".transpose({', '.join(str(result.index(a)) for a in kept)})"
        return Term(code, kept, ("tensordot", code), atomic=False)
    samples = _samples_first(left, right, summed, kept) or _samples_first(right, left, summed,
                                                                          kept)
    if samples is not None:  # one matrix product per sample, laid out sample-major
        first, second = samples
        result = tuple(a for a in first.axes + second.axes if a not in summed)
        pairs = ([first.axes.index(k) for k in summed], [second.axes.index(k) for k in summed])
        code = f"_window_dot({first.code}, {second.code}, ({pairs[0]}, {pairs[1]}))"
        code += f".transpose({', '.join(str(result.index(a)) for a in kept)})"
        return Term(code, kept, ("tensordot", code), atomic=False)
    for first, second in ((left, right), (right, left)):
        result = tuple(a for a in first.axes + second.axes if a not in summed)
        if result == kept:
            break
    else:
        first, second = left, right
        result = tuple(a for a in first.axes + second.axes if a not in summed)
    summed = sorted(summed, key=first.axes.index)  # in memory order: cheaper copies
    pairs = ([first.axes.index(k) for k in summed], [second.axes.index(k) for k in summed])
    code = f"np.tensordot({first.code}, {second.code}, axes=({pairs[0]}, {pairs[1]}))"
    if result != kept:
        code += f".transpose({', '.join(str(result.index(a)) for a in kept)})"
    return Term(code, kept, ("tensordot", code), atomic=False)


_WINDOWS = re.compile(r"_windows\((?P<source>[\w\"\[\]]+), \((?P<shape>[\d, ]+)\), "
                      r"\((?P<positions>[\d, ]+)\)\)(\[(?P<slices>[^\]]*)\])?")


def _columns(other: Term, windows: Term):
    """``(other, (code, axes))`` when ``windows`` is the windows of a batch (a view
    ``_windows(x, ..)``, maybe sliced; ``other`` a plain array): ``code`` is their copy
    ``_im2col(view, order)``, the view's axes in the order ``(sample, the other axes of
    x, the offsets in the windows, the window positions)``, whose axes are ``axes``. A
    convolution and its kernel gradient read the same copy (the code generator
    computes it once). None for any other pair."""
    match = _WINDOWS.fullmatch(windows.code)
    if match is None or other.code.startswith("_windows(") or any(
            ":" not in part for part in (match["slices"] or ":").split(",")):
        return None
    positions = [int(a) for a in match["positions"].split(",") if a.strip()]
    rank = len(windows.axes)
    spatial = rank - len(positions)  # the rank of x
    order = [0] + [a for a in range(1, spatial) if a not in positions] + list(
        range(spatial, rank)) + positions
    code = f"_im2col({windows.code}, {tuple(order)})"
    return other, (code, tuple(windows.axes[a] for a in order))


def _samples_first(other: Term, array: Term, summed, kept):
    """``(other, array)`` when the result's first axis is ``array``'s first (the samples,
    not in ``other``) and ``array`` (rank 3 or more) is summed over the axes right after
    it (an output gradient times a kernel: one matrix product per sample); else None."""
    if len(array.axes) < 3 or not kept or array.axes[0] != kept[0] or kept[0] in other.axes:
        return None
    if set(array.axes[1:1 + len(summed)]) != set(summed):
        return None
    return other, array


def _first_maximum(expr: IsArgmax, names) -> Term:
    """The window-argmax indicator: the window's axes of the entry's view go last."""
    entry = compile_index(expr.entry, names)
    window = tuple(p for p, _ in expr.window)
    positions = tuple(entry.axes.index(p) for p in window)
    rest = tuple(a for a in entry.axes if a not in window)
    return Term(f"_first_maximum({entry.code}, {positions})", rest + window)


def _einsum(factors, kept) -> Term:
    every = _union([f.axes for f in factors])
    letters = dict(zip(every, string.ascii_lowercase, strict=False))
    subscripts = ",".join("".join(letters[a] for a in f.axes) for f in factors)
    subscripts += "->" + "".join(letters[a] for a in kept)
    operands = [f.code for f in factors]
    return Term(f"np.einsum({subscripts!r}, {', '.join(operands)})", kept,
                ("einsum", subscripts, operands))


def _union(index_lists) -> tuple:
    seen = []
    for indices in index_lists:
        seen.extend(i for i in indices if i not in seen)
    return tuple(seen)


# --------------------------------------------------------------- elementwise
def _compile_elementwise(expr: sp.Expr, names, want: tuple) -> Term:
    table: list = []
    skeleton = _placeholders(expr, table)
    parts = [compile_index(part, names, want) for _, part in table]
    every = _union([p.axes for p in parts])
    widest = max(parts, key=lambda p: len(p.axes)).axes if parts else ()
    order = tuple(a for a in want if a in every) + widest
    target = tuple(dict.fromkeys(order + every))
    operands = {symbol: Operand(aligned(part, target), real=True)
                for (symbol, _), part in zip(table, parts, strict=True)}
    code = print_expr(skeleton.xreplace(operands))
    return Term(code, target, atomic=atomic(code))


def atomic(code: str) -> bool:
    """Whether ``code`` is usable as an operand without parentheses: a name, a number,
    a call or a parenthesised whole."""
    if code.isidentifier() or re.fullmatch(r"\d+(\.\d*)?(e-?\d+)?", code):
        return True
    opening = re.match(r"[\w.]*\(", code)
    if opening is None:
        return False
    depth = 0
    for position in range(opening.end() - 1, len(code)):
        depth += {"(": 1, ")": -1}.get(code[position], 0)
        if depth == 0:
            return position == len(code) - 1
    return False


def _placeholders(expr: sp.Expr, table: list) -> sp.Expr:
    """``expr`` with each outermost sum and each tensor entry replaced by a new symbol."""
    if isinstance(expr, (sp.Sum, sp.Indexed)):
        for symbol, part in table:
            if part == expr:
                return symbol
        symbol = sp.Symbol(f"_p{len(table)}", real=True)
        table.append((symbol, expr))
        return symbol
    if not expr.args:
        return expr
    return expr.func(*[_placeholders(arg, table) for arg in expr.args])
