"""LaTeX and plain text of scalar and index expressions, in the notation's names.

Contract: :class:`ScalarLatex` prints an expression whose tensor entries are
``Indexed`` (index forms: ``W^{(1)}_{ik}``, ``\\frac{\\partial L}{\\partial
z^{(1)}_{s,i}}``, sums as ``\\sum_{k}``) or whose symbols stand for whole
tensors (the elementwise parts of a matrix form, where a product of tensors
is ``\\odot`` and scalar constants multiply plainly in front). Sums print
with their positive terms first and a negative term as a difference
(``a - y``, never ``-y + a`` or ``+ -``). Indices print as affine index
expressions (:mod:`symbp.printing.indexing`), with commas where an entry has
more than two or one is not a single letter (``W_{c,c',p,q}``, ``W_{ik}``
stays). With ``ranges`` (an index form over channels, positions or kernel
offsets) a sum prints its ranges (``\\sum_{p=0}^{2}``; a sum over the batch
bare) and range conditions and indicators (``relu'``) print as Iverson
brackets ahead of the product. :class:`ScalarText` is the same in plain text.
Neither shows SymPy internals.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from symbp.engine.argmax import IsArgmax
from symbp.engine.indices import Inside
from symbp.ops.base import BATCH
from symbp.printing import indexing


def print_add_positive_first(printer, expr) -> str:
    """A sum with its positive terms first (``a - y``, not ``-y + a``), for any printer;
    among them, the terms with a sum first (``sum_k W_ik x_k + b_i``)."""
    terms = sorted(expr.as_ordered_terms(),
                   key=lambda t: (t.could_extract_minus_sign(), not t.has(sp.Sum)))
    text = printer._print(terms[0])
    for term in terms[1:]:
        if term.could_extract_minus_sign():
            text += " - " + printer.parenthesize(-term, PRECEDENCE["Add"])
            continue
        printed = printer._print(term)  # a term whose own print leads with a minus
        text += f" - {printed[1:].lstrip()}" if printed.startswith("-") else f" + {printed}"
    return text


def _subscript(printer, expr, comma: bool) -> str:
    return ("," if comma else "").join(indexing.affine(printer, i) for i in expr.indices)


def _is_indicator(expr) -> bool:
    """``Piecewise((1, c), (0, True))``, or a range condition: 1 where a condition holds."""
    return isinstance(expr, Inside) or isinstance(expr, sp.Piecewise) and len(expr.args) == 2 \
        and expr.args[0][0] == 1 and expr.args[1] == (0, sp.true)


def needs_commas(entry: sp.Indexed) -> bool:
    """An entry with more than two indices, or one that is not a single letter, is read
    with commas between its indices (``W_{c,c',p,q}``, ``W_{k,4c+2i+j}``; ``W_{ik}`` stays)."""
    return len(entry.indices) > 2 or not all(
        isinstance(i, sp.Symbol) and len(i.name) == 1 for i in entry.indices)


def negated_sum(expr: sp.Expr) -> sp.Expr:
    """``-(y - a)`` as the sum ``a - y`` (the same value, read without a leading minus)."""
    coefficient, rest = expr.as_coeff_Mul()
    if coefficient < 0 and isinstance(rest, sp.Add):
        return sp.Mul(-coefficient, sp.Add(*[-term for term in rest.args]), evaluate=False)
    return expr


class ScalarLatex(LatexPrinter):
    """LaTeX with ``names`` for symbols and ``quantities`` (by label) for tensor entries.

    With ``odot``, the symbols in ``names`` stand for whole tensors: a product of
    them is ``\\odot``, and every other factor (a number, a size ``B``) is a scalar
    that multiplies plainly, in front.
    """

    def __init__(self, names: dict | None = None, quantities: dict | None = None,
                 odot: bool = False, ranges: bool = False):
        super().__init__({"symbol_names": names or {}, "mul_symbol": None})
        self.quantities = quantities or {}
        self.odot = odot
        self.ranges = ranges
        self.tensors = set(names or {})

    def _print(self, expr, **kwargs):
        if isinstance(expr, Inside):  # indices print as affine
            return indexing.inside(self, expr, latex=True)
        if isinstance(expr, IsArgmax):
            return indexing.is_argmax(self, expr, latex=True)
        return super()._print(expr, **kwargs)

    def _is_scalar(self, factor) -> bool:
        return not factor.has(sp.Indexed) and not (factor.free_symbols & self.tensors)

    def _print_Indexed(self, expr):
        quantity = self.quantities.get(expr.base.label)
        comma = quantity is not None and quantity.comma or needs_commas(expr) or \
            self.ranges and len(expr.indices) > 1  # c,i in an index form over positions
        if quantity is None:
            return f"{self._print(expr.base.label)}_{{{_subscript(self, expr, comma)}}}"
        return quantity.entry(_subscript(self, expr, comma))

    def _print_Float(self, expr):
        mantissa, _, exponent = f"{float(expr):.15g}".partition("e")
        if not exponent:
            return mantissa
        power = f"10^{{{int(exponent)}}}"
        return power if mantissa == "1" else rf"{mantissa} \cdot {power}"

    def _print_Sum(self, expr):
        body = expr.function
        if body.could_extract_minus_sign():
            return "- " + self._print(sp.Sum(-body, *expr.limits))
        if self.ranges:
            return self._ranged_sum(expr)
        text = self._print(body)
        if isinstance(body, sp.Add):
            text = rf"\left({text}\right)"
        sums = " ".join(rf"\sum_{{{self._print(limit[0])}}}" for limit in reversed(expr.limits))
        return f"{sums} {text}"

    def _print_Piecewise(self, expr):
        if self.ranges and _is_indicator(expr):  # relu' as an Iverson bracket
            return rf"\left[{self._print(expr.args[0][1])}\right]"
        return super()._print_Piecewise(expr)

    def _ranged_sum(self, expr) -> str:
        """``\\sum_{p=0}^{2}`` for each index (a row's sum bare), then the range
        conditions as Iverson brackets, then the rest of the summand."""
        limits, conditions, rest = indexing.split_sum(expr)
        sums = " ".join(rf"\sum_{{{self._print(i)}}}" if high == BATCH - 1 else
                        rf"\sum_{{{self._print(i)}={self._print(low)}}}^{{{self._print(high)}}}"
                        for i, low, high in limits)
        body = self._wrap(rest)
        parts = [sums, *[self._print(c) for c in conditions], body if rest != 1 else ""]
        return " ".join(part for part in parts if part)

    def _print_Add(self, expr, order=None):
        return print_add_positive_first(self, expr)

    def _print_Pow(self, expr):
        base, exponent = expr.as_base_exp()
        if exponent == -1 or not isinstance(base, (sp.Symbol, sp.Indexed)):
            return super()._print_Pow(expr)
        text = self._print(base)
        if "^" in text or r"\frac" in text:
            return f"\\left({text}\\right)^{{{self._print(exponent)}}}"
        return super()._print_Pow(expr)

    def _print_Mul(self, expr):
        numerator, denominator = sp.fraction(expr)
        if denominator != 1 and not denominator.has(sp.Sum):
            if numerator.could_extract_minus_sign() and not isinstance(numerator, sp.Add):
                flipped = negated_sum(numerator)
                if flipped is numerator:
                    return "- " + self._print(-expr)
                numerator = flipped
            if not numerator.is_number and (self._is_scalar(denominator) or self._print(
                    numerator).startswith(r"\frac")):
                return self._scalar_fraction(numerator, denominator)
            return rf"\frac{{{self._print(numerator)}}}{{{self._print(denominator)}}}"
        if not self.odot:
            return self._index_product(expr)
        coefficient, factors = expr.as_coeff_mul()
        constants = [f for f in factors if self._is_scalar(f)]
        factors = [f for f in factors if not self._is_scalar(f)]
        if constants:  # scalar constants multiply plainly, in front
            scalar = sp.Mul(coefficient, *constants)
            text = super()._print_Mul(scalar) if isinstance(scalar, sp.Mul) else \
                self._print(scalar)
            if not factors:
                return text
            rest = factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False)
            return f"{text} {self._wrap(rest)}"
        if len(factors) < 2:
            return super()._print_Mul(expr)
        body = r" \odot ".join(self._wrap(f) for f in factors)
        if coefficient == 1:
            return body
        if coefficient == -1:
            return "- " + body
        return f"{self._print(coefficient)} {body}"

    def _index_product(self, expr) -> str:
        """A product of entries with the gradients' first (``delta_i a_j``); with ranges, the
        Iverson brackets first (``[z > 0] dL/da``)."""
        coefficient, factors = expr.as_coeff_mul()
        brackets = sorted((f for f in factors if self.ranges and _is_indicator(f)),
                          key=indexing.by_letters)
        if brackets:
            rest = sp.Mul(coefficient, *[f for f in factors if f not in brackets])
            return " ".join([*[self._print(f) for f in brackets],
                             *([self._wrap(rest)] if rest != 1 else [])])
        if sum(isinstance(f, sp.Indexed) for f in factors) < 2:
            return super()._print_Mul(expr)
        ordered = sorted(factors, key=lambda f: (not self._is_gradient(f), self.ranges and not
                                                 self._is_parameter(f)))
        text = " ".join(self._wrap(f) for f in ordered)
        if coefficient == 1:
            return text
        if coefficient == -1:
            return "- " + text
        return f"{self._print(coefficient)} {text}"

    def _is_parameter(self, factor) -> bool:
        quantity = self.quantities.get(factor.base.label) if isinstance(
            factor, sp.Indexed) else None
        return quantity is not None and quantity.parameter

    def _is_gradient(self, factor) -> bool:
        quantity = self.quantities.get(factor.base.label) if isinstance(
            factor, sp.Indexed) else None
        return quantity is not None and quantity.gradient

    def _scalar_fraction(self, numerator, denominator) -> str:
        """``(c x) / d`` with ``c``, ``d`` scalars as ``\\frac{c}{d} x``."""
        factors = sp.Mul.make_args(numerator)
        scalar = sp.Mul(*[f for f in factors if self._is_scalar(f)])
        rest = sp.Mul(*[f for f in factors if not self._is_scalar(f)])
        sign = ""
        if scalar.could_extract_minus_sign():
            sign, scalar = "- ", -scalar
        text = self._wrap(rest)
        if text.startswith("- "):
            sign, text = ("" if sign else "- "), text[2:]
        fraction = rf"\frac{{{self._print(scalar)}}}{{{self._print(denominator)}}}"
        if self.odot and not self._is_scalar(denominator):  # an elementwise quotient
            return rf"{sign}{text} \odot {fraction}"
        return rf"{sign}{fraction} {text}"

    def _wrap(self, factor):
        text = self._print(factor)
        if isinstance(factor, sp.Add) or (isinstance(factor, sp.Mul) and factor.args[0] != 1
                                          and factor.as_coeff_Mul()[1].is_Add):
            return rf"\left({text}\right)"
        return text


class ScalarText(StrPrinter):
    """Plain text with ``names`` for symbols and ``quantities`` for tensor entries; with
    ``odot`` (the symbols in ``names`` are whole tensors) a product of tensors is ``⊙``."""

    printmethod = "_symbp_text"  # not Indexed._sympystr: entries print with their names

    def __init__(self, names: dict | None = None, quantities: dict | None = None,
                 odot: bool = False, ranges: bool = False):
        super().__init__()
        self.names = names or {}
        self.quantities = quantities or {}
        self.odot = odot
        self.ranges = ranges
        self.tensors = set(names or {}) if odot else set()

    def _print_Inside(self, expr):
        return indexing.inside(self, expr, latex=False)

    def _print_IsArgmax(self, expr):
        return indexing.is_argmax(self, expr, latex=False)

    def _print_Mul(self, expr):
        numerator, denominator = sp.fraction(expr)
        if denominator != 1 and not denominator.has(sp.Indexed) and \
                not (denominator.free_symbols & self.tensors) and not numerator.is_number:
            flipped = negated_sum(numerator) if not isinstance(numerator, sp.Add) else numerator
            body = self._print(flipped)
            if isinstance(flipped, sp.Add) or " " in body:
                body = f"({body})"
            return f"(1/{self.parenthesize(denominator, PRECEDENCE['Mul'])}) {body}"
        factors = sp.Mul.make_args(expr)
        tensors = [f for f in factors if f.free_symbols & self.tensors]
        if len(tensors) < 2:
            return super()._print_Mul(expr)
        scalars = sp.Mul(*[f for f in factors if f not in tensors])
        body = " ⊙ ".join(self.parenthesize(f, PRECEDENCE["Mul"]) for f in tensors)
        if scalars == 1:
            return body
        if scalars == -1:
            return "-" + body
        return f"{self.parenthesize(scalars, PRECEDENCE['Mul'])} {body}"

    def _print_Symbol(self, expr):
        return self.names.get(expr, expr.name.replace("{", "").replace("}", ""))

    def _print_Indexed(self, expr):
        quantity = self.quantities.get(expr.base.label)
        indices = ",".join(indexing.affine(self, i) for i in expr.indices)
        if quantity is None:
            return f"{expr.base.label}[{indices}]"
        return quantity.text_entry(indices)

    def _print_Sum(self, expr):
        if self.ranges:
            limits, conditions, rest = indexing.split_sum(expr)
            sums = " ".join(f"sum_{self._print(i)}" if high == BATCH - 1 else
                            f"sum_{{{self._print(i)}={self._print(low)}..{self._print(high)}}}"
                            for i, low, high in limits)
            body = " ".join([*[self._print(c) for c in conditions], self._print(rest)])
            return f"{sums} ({body})"
        text = self._print(expr.function)
        for limit in expr.limits:
            text = f"sum_{self._print(limit[0])}({text})"
        return text

    def _print_Piecewise(self, expr):
        if self.ranges and _is_indicator(expr):  # relu' as an Iverson bracket
            return f"[{self._print(expr.args[0][1])}]"
        parts = [f"{self._print(value)} if {self._print(cond)}" for value, cond in expr.args
                 if cond != sp.true]
        parts += [f"{self._print(value)} otherwise" for value, cond in expr.args
                  if cond == sp.true]
        return "(" + ", ".join(parts) + ")"

    def _print_Add(self, expr, order=None):
        return print_add_positive_first(self, expr)
