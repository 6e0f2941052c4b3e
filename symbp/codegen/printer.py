"""NumPy code for elementwise SymPy expressions, in numerically stable forms.

Contract: :class:`CodePrinter` (a strict ``NumPyPrinter``) prints ``np.``
names, positive terms first, numbers as Python floats (so float32 arrays stay
float32), an indicator ``Piecewise((1, c), (0, True))`` as ``c.astype(dtype)``
(one cast, no integer array), ``Heaviside`` as ``np.heaviside`` (its value at 0
a Python float, so the array's dtype is kept), two-branch ``Piecewise`` as
``np.maximum``/``np.where`` (an unused ``exp`` branch clamped so it cannot
overflow) and an :class:`Operand` (an array the index compiler has already
written as code) verbatim.
:func:`stable` applies exact rewrites that keep ``exp`` from overflowing:
``log(1 + exp(u))`` -> ``np.logaddexp(0, u)``, ``exp(u)`` beside
``1 + exp(u)`` through the logistic ``_expit``. :func:`print_expr` is both.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE


class Operand(sp.Symbol):
    """An array operand already written as NumPy code (its name is that code)."""


class expit(sp.Function):  # noqa: N801 - printed as the generated helper ``_expit``
    """The logistic function, a printing device only: it is never differentiated."""


class log1pexp(sp.Function):  # noqa: N801 - printed as ``np.logaddexp(0, u)``
    """``log(1 + exp(u))``, a printing device only: it is never differentiated."""


class CodePrinter(NumPyPrinter):
    """NumPy code with ``np.`` names and numerically stable forms of exp/log patterns."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "inline": True,
                          "allow_unknown_functions": False, "strict": True})

    def _module_format(self, fqn, register=True):
        name = super()._module_format(fqn, register)
        return "np." + name[len("numpy."):] if name.startswith("numpy.") else name

    def _print_Add(self, expr, order=None):
        """Positive terms first: ``a2 - Y`` rather than ``-Y + a2``."""
        terms = sorted(expr.as_ordered_terms(), key=lambda t: t.could_extract_minus_sign())
        text = self._print(terms[0])
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                text += " - " + self.parenthesize(-term, PRECEDENCE["Add"])
            else:
                text += " + " + self._print(term)
        return text

    def _print_Operand(self, expr):
        return expr.name

    def _print_Min(self, expr):
        return self._pairwise("np.minimum", expr.args)

    def _print_Max(self, expr):
        return self._pairwise("np.maximum", expr.args)

    def _pairwise(self, function, args):
        code = self._print(args[0])
        for arg in args[1:]:
            code = f"{function}({code}, {self._print(arg)})"
        return code

    def _print_erf(self, expr):
        return f"_erf({self._print(expr.args[0])})"

    def _print(self, expr, **kwargs):
        """Numeric constants as Python floats: NumPy scalars would upcast float32 arrays."""
        if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Integer and expr.is_real:
            return repr(float(expr))
        return super()._print(expr, **kwargs)

    def _print_expit(self, expr):
        return f"_expit({self._print(expr.args[0])})"

    def _print_log1pexp(self, expr):
        return f"np.logaddexp(0.0, {self._print(expr.args[0])})"

    def _print_Piecewise(self, expr):
        """Two-branch piecewise as ``np.where`` (the usual form for activations)."""
        if len(expr.args) == 2 and expr.args[1].cond == sp.true:
            (then, cond), (otherwise, _) = expr.args
            if _is_positive_part(then, cond, otherwise):  # relu: one ufunc, can write in place
                return f"np.maximum({self._print(then)}, 0.0)"
            then, otherwise = _clamp_branches(then, cond, otherwise)
            anchor = sorted(cond.free_symbols, key=str)[0] if cond.free_symbols else None
            if then == 1 and otherwise == 0 and anchor is not None:  # an indicator: one cast
                return f"{self._print(cond)}.astype({self._print(anchor)}.dtype)"
            code = f"np.where({self._print(cond)}, {self._print(then)}, {self._print(otherwise)})"
            if then.is_number and otherwise.is_number:  # keep the array's dtype (float32)
                code += f".astype({self._print(anchor)}.dtype)"
            return code
        return super()._print_Piecewise(expr)

    def _print_Heaviside(self, expr):
        """``np.heaviside(u, h)``: the value at 0 as a Python float keeps the array's dtype
        (float32 stays float32, where a ``np.select`` of numbers would give float64)."""
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        if not at_zero.is_number:
            return super()._print_Heaviside(expr)
        return f"np.heaviside({self._print(expr.args[0])}, {float(at_zero)!r})"

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Float(self, expr):
        return repr(float(expr))


def _is_positive_part(then, cond, otherwise) -> bool:
    """``u if u > 0 (or u >= 0) else 0``, which is ``max(u, 0)``."""
    return (otherwise == 0 and isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan))
            and cond.rhs == 0 and cond.lhs == then)


def _clamp_branches(then, cond, otherwise):
    """``np.where`` evaluates both branches: clamp ``u`` in a branch with ``exp`` to the
    side where that branch is used (``u > 0`` -> ``min(u, 0)`` otherwise), so that
    the unused branch cannot overflow (elu at +1000)."""
    if isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan)) and cond.rhs == 0:
        variable = cond.lhs
        if otherwise.has(sp.exp):
            otherwise = otherwise.subs(variable, sp.Min(variable, 0))
        if then.has(sp.exp):
            then = then.subs(variable, sp.Max(variable, 0))
    return then, otherwise


def stable(expr: sp.Expr) -> sp.Expr:
    """Exact rewrites that keep large ``|w|`` from overflowing ``exp(w)``.

    ``log(1 + exp(w))`` becomes ``log1pexp(w)`` (``np.logaddexp``); any other
    ``exp(w)`` next to ``1 + exp(w)`` goes through the logistic ``s = expit(-w)``
    by ``1 + exp(w) = 1/s`` and ``exp(w) = (1 - s)/s`` (e.g. silu's derivative).
    """
    expr = expr.replace(
        lambda e: isinstance(e, sp.log) and e.args[0].is_Add
        and isinstance(e.args[0] - 1, sp.exp),
        lambda e: log1pexp((e.args[0] - 1).args[0]))
    replacements = {}
    for term in expr.atoms(sp.exp):
        w = term.args[0]
        if expr.has(1 + term):
            s = expit(-w)
            replacements[term] = (1 - s) / s
    if not replacements:
        return expr
    return sp.factor_terms(sp.cancel(expr.xreplace(replacements)))


def print_expr(expr: sp.Expr) -> str:
    """``expr`` as NumPy code in its stable form; fractions print as floats (``1.25*a``)."""
    return CodePrinter().doprint(_floats(stable(expr)))


def _floats(expr: sp.Expr) -> sp.Expr:
    """Fractions as floats, except exponents (``x**(1/2)`` stays ``np.sqrt(x)``)."""
    if isinstance(expr, sp.Rational) and not expr.is_Integer:
        return sp.Float(expr)
    if isinstance(expr, sp.Pow):
        return sp.Pow(_floats(expr.base), expr.exp)
    if not expr.args or not isinstance(expr, sp.Expr):
        return expr
    return expr.func(*[_floats(arg) for arg in expr.args])
