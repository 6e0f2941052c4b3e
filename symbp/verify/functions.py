"""The functions a claim applies: forward definitions and their derivatives.

Contract: :data:`MATH_FUNCTIONS` are the functions of :mod:`symbp.claims`
that are not activations, as forward definitions (``\\Phi`` and ``\\phi`` of a scalar
identity are the standard normal's CDF and density); :func:`function_derivative` is an activation's
``f``, ``f'`` (the engine's :func:`~symbp.engine.activation.activation_derivative`,
sympy.diff of the forward definition) or ``f''`` as an expression in
:func:`x_symbol`; :func:`numeric` a cached float64 NumPy function of an
expression. No derivative is written here.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

MATH_FUNCTIONS = {"exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "cosh": sp.cosh,
                  "sinh": sp.sinh, "sech": sp.sech, "sin": sp.sin, "cos": sp.cos,
                  "erf": sp.erf,  # the standard normal's CDF \Phi and density \phi (gelu):
                  "normal_cdf": lambda x: (1 + sp.erf(x / sp.sqrt(2))) / 2,
                  "normal_pdf": lambda x: sp.exp(-x ** 2 / 2) / sp.sqrt(2 * sp.pi)}


@lru_cache(maxsize=None)
def numeric(variables: tuple, expr: sp.Expr):
    """A cached float64 NumPy function of ``expr``."""
    from symbp.engine.numeric import MODULES

    return sp.lambdify(variables, expr, modules=MODULES)


@lru_cache(maxsize=None)
def custom_activation_of(name: str, text: str):
    from symbp.registry import custom_activation

    return custom_activation(name, text)


def x_symbol():
    from symbp.registry import X

    return X


@lru_cache(maxsize=None)
def function_derivative(name: str, forward: sp.Expr, order: int) -> sp.Expr:
    """``f``, ``f'`` (from the engine's :func:`activation_derivative`) or ``f''``."""
    from symbp.engine.activation import activation_derivative

    if order == 0:
        return forward
    first = activation_derivative(name, forward).in_input
    return first if order == 1 else sp.diff(first, x_symbol())


_FUNCTION_LATEX = {"sigmoid": r"\sigma", "tanh": r"\tanh"}


def function_latex(name: str) -> str:
    """The LaTeX name of an activation: ``\\sigma``, ``\\tanh``, ``\\operatorname{relu}``."""
    return _FUNCTION_LATEX.get(name, rf"\operatorname{{{name}}}".replace("_", r"\_"))


def derivative_latex(activation, variable: str = "z") -> str:
    """``\\sigma'(z) = \\sigma(z) \\left(1 - \\sigma(z)\\right)``: the engine's derivative of
    ``activation`` (sympy.diff of its forward definition), in terms of its output where
    the engine has that form."""
    from symbp.engine.activation import activation_derivative
    from symbp.registry import A

    name = function_latex(activation.name)
    derivative = activation_derivative(activation.name, activation.expr)
    names = {A: rf"{name}({variable})", x_symbol(): variable}
    return f"{name}'({variable}) = {sp.latex(derivative.best, symbol_names=names)}"
