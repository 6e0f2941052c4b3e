"""The window-argmax indicator: max pooling's selection, constant for differentiation.

Contract: ``IsArgmax(entry, p, Kp, q, Kq, ...)`` is 1 where the window position
``(p, q, ...)`` (each in ``0..K-1``) holds the first maximum of ``entry`` over
the window, in row-major order of the positions (as PyTorch's CPU max
pooling resolves ties), and 0 elsewhere. ``entry`` is an index expression in
the position indices and the window's own indices. It is piecewise
constant, so its derivative is 0 (where the maximum is unique, which is
where max pooling is differentiable), and a max pooling written as
``a = sum_{p,q} x[...] IsArgmax(...)`` routes the gradient to the position of
the maximum by the chain rule alone.
"""

from __future__ import annotations

import sympy as sp


class PiecewiseConstant(sp.Function):
    """A function whose derivative is 0 wherever it is defined."""

    def _eval_derivative(self, symbol):
        return sp.S.Zero


class IsArgmax(PiecewiseConstant):
    """``IsArgmax(entry, p, Kp, q, Kq, ...)``: see the module docstring; printed by
    :mod:`symbp.printing.indexing`."""

    is_integer = True
    is_nonnegative = True

    @property
    def entry(self) -> sp.Expr:
        return self.args[0]

    @property
    def window(self) -> tuple:
        """``((p, Kp), (q, Kq), ...)``: the position indices and the window's extents."""
        rest = self.args[1:]
        return tuple(zip(rest[::2], rest[1::2], strict=True))
