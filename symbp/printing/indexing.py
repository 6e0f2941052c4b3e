"""Index arithmetic as a textbook prints it: affine indices, range conditions, argmax windows.

Contract: :func:`affine` prints an index expression linear in its index
symbols with the positive terms first and the constant last, over a common
denominator (``(i - p + 1)/2``, never ``i/2 - p/2 + 1/2``); ``floor`` and
``Mod`` of one (a window's index, the position in it) as ``\\lfloor i/2
\\rfloor`` and ``i \\bmod 2``. :func:`inside`
prints :class:`~symbp.engine.indices.Inside` as an Iverson bracket:
``[0 <= e <= n-1]`` for an integral ``e``, ``[e in {0, ..., n-1}]`` for one
with a denominator (the condition that holds a stride's divisibility too).
:func:`is_argmax` prints :class:`~symbp.engine.argmax.IsArgmax` as
``[(p, q) = argmax_{(p', q')} x_{..}]``. Each takes the printer that prints
the pieces and ``latex`` (else plain text).
:func:`arranged` merges the nested sums of an index expression into one sum
and orders its indices by kind (rows, channels, positions, kernel offsets),
:func:`split_sum` takes such a sum apart for printing: its limits, its
range conditions, the rest of its summand.
"""

from __future__ import annotations

import math

import sympy as sp
from sympy.printing.latex import LatexPrinter

from symbp.engine.argmax import IsArgmax
from symbp.engine.indices import Inside, affine_terms
from symbp.ops.base import BATCH
from symbp.printing.axes import kinds_of_indices

KIND_ORDER = ("batch", "channel", "space0", "space1", "kernel0", "kernel1", "feature")


def _term(printer, symbol, coefficient) -> str:
    name = printer._print(symbol)
    if coefficient == 1:
        return name
    if coefficient.is_Number:
        return f"{printer._print(coefficient)}{name}"
    return f"{printer._print(coefficient)} {name}"


def _joined(text: str, piece: str, negative: bool) -> str:
    if not text:
        return ("-" if negative else "") + piece
    return text + (" - " if negative else " + ") + piece


def affine(printer, expr: sp.Expr) -> str:
    """``expr`` as an affine index (see the module docstring); other expressions as they are."""
    if isinstance(expr, sp.Symbol) or expr.is_Integer:
        return printer._print(expr)
    latex = isinstance(printer, LatexPrinter)
    if isinstance(expr, sp.floor):  # a window's index, floor(i/S)
        inner = affine(printer, expr.args[0])
        return rf"\lfloor {inner} \rfloor" if latex else f"floor({inner})"
    if isinstance(expr, sp.Mod):  # the position in a window, i mod S
        shown = (affine(printer, expr.args[0]), printer._print(expr.args[1]))
        return rf"{shown[0]} \bmod {shown[1]}" if latex else f"{shown[0]} mod {shown[1]}"
    numerator, denominator = sp.fraction(sp.together(expr))
    if not denominator.is_Number:  # a named stride: (i - p + P)/S
        return f"({affine(printer, sp.expand(numerator))})/{printer._print(denominator)}"
    terms = affine_terms(expr)
    if terms is None:
        return printer._print(expr)
    coefficients, constant = terms
    numbers = [c for c in (*coefficients.values(), constant) if c.is_Rational]
    denominator = math.lcm(*[int(c.q) for c in numbers]) if numbers else 1
    scaled = [(s, c * denominator) for s, c in coefficients.items() if c != 0]
    scaled.sort(key=lambda item: (item[1].could_extract_minus_sign(), -float(abs(
        item[1])) if item[1].is_Number else -float("inf"), str(item[0])))  # S i + p - P
    constant = sp.expand(constant * denominator)
    text = ""
    if scaled and all(c.could_extract_minus_sign() for _, c in scaled) and \
            constant.is_positive:  # 2 - p, not -p + 2
        text, constant = printer._print(constant), sp.Integer(0)
    for symbol, coefficient in scaled:
        negative = coefficient.could_extract_minus_sign()
        text = _joined(text, _term(printer, symbol, -coefficient if negative else coefficient),
                       negative)
    if constant != 0:
        negative = constant.could_extract_minus_sign()
        text = _joined(text, printer._print(-constant if negative else constant), negative)
    text = text or "0"
    if denominator == 1:
        return text
    return f"{text}/{denominator}" if " " not in text else f"({text})/{denominator}"


def _integral(expr: sp.Expr) -> bool:
    """Whether an index expression is an integer wherever its index symbols are: integer
    numbers and named sizes as coefficients, no denominator."""
    terms = affine_terms(expr)
    if terms is None or not sp.fraction(sp.together(expr))[1].is_Number:
        return False
    return all(c.is_integer or not c.is_Number and sp.fraction(c)[1] == 1
               for c in (*terms[0].values(), terms[1]))


def inside(printer, condition: Inside, latex: bool) -> str:
    expr, size = condition.args
    shown, last = affine(printer, expr), printer._print(size - 1)
    integral = _integral(expr)
    if latex:
        text = rf"0 \le {shown} \le {last}" if integral else \
            rf"{shown} \in \{{0, \dots, {last}\}}"
        return rf"\left[{text}\right]"
    return f"[0 <= {shown} <= {last}]" if integral else f"[{shown} in {{0..{last}}}]"


def is_argmax(printer, indicator: IsArgmax, latex: bool) -> str:
    positions = [p for p, _ in indicator.window]
    primed = {p: sp.Symbol(f"{printer._print(p)}'", integer=True) for p in positions}
    shown = ", ".join(printer._print(p) for p in positions)
    over = ", ".join(printer._print(primed[p]) for p in positions)
    if len(positions) > 1:
        shown, over = f"({shown})", f"({over})"
    entry = printer._print(indicator.entry.xreplace(primed))
    if latex:
        return rf"\left[{shown} = \operatorname*{{argmax}}_{{{over}}} {entry}\right]"
    return f"[{shown} = argmax_{over} {entry}]"


# ------------------------------------------------------------------- sums
def flattened_sum(expr: sp.Sum):
    """``(limits, factors)`` of a chain of sums of products, or None."""
    limits, factors, body = list(expr.limits), [], expr.function
    while True:
        parts = sp.Mul.make_args(body)
        sums = [f for f in parts if isinstance(f, sp.Sum)]
        factors += [f for f in parts if not isinstance(f, sp.Sum)]
        if len(sums) != 1:
            factors += sums
            return limits, factors
        limits += list(sums[0].limits)
        body = sums[0].function


def arranged(expr: sp.Expr, axes: dict) -> sp.Expr:
    """``expr`` with each chain of nested sums one sum over its indices in kind order."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom or isinstance(expr, sp.Indexed):
        return expr
    if isinstance(expr, sp.Sum):
        limits, factors = flattened_sum(expr)
        body = sp.Mul(*[arranged(f, axes) for f in factors])
        kinds = kinds_of_indices(body, axes)
        order = sorted(limits, key=lambda limit: KIND_ORDER.index(kinds.get(
            limit[0], "batch" if limit[2] == BATCH - 1 else "feature")))
        return sp.Sum(body, *reversed(order))  # the first limit is the innermost sum
    return expr.func(*[arranged(arg, axes) for arg in expr.args])


def by_letters(condition) -> list:
    """The order range conditions print in: by their letters (the ``i`` axis before ``j``)."""
    return sorted(map(str, condition.free_symbols))


def split_sum(expr: sp.Sum) -> tuple:
    """``(limits outermost first, range conditions, the rest of the summand)``."""
    factors = sp.Mul.make_args(expr.function)
    conditions = sorted((f for f in factors if isinstance(f, Inside)), key=by_letters)
    rest = sp.Mul(*[f for f in factors if not isinstance(f, Inside)])
    return list(reversed(expr.limits)), conditions, rest
