"""The activation derivative f' (symbp.engine.activation): sympy.diff of the forward
definition, and its rewrite in terms of the output, against hand formulas (the oracle)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from symbp.engine.activation import MODULES, _agrees, activation_derivative
from symbp.registry import BUILTIN_ACTIVATIONS, A, X

HIDDEN = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "silu", "gelu")


# hand formulas f'(x) and, where rewritten, f'(x) in terms of a = f(x)
def _s(x):
    return 1.0 / (1.0 + math.exp(-x))


HAND_DERIVATIVES = {
    "identity": lambda x: 1.0,
    "sigmoid": lambda x: _s(x) * (1 - _s(x)),
    "tanh": lambda x: 1 - math.tanh(x) ** 2,
    "relu": lambda x: 1.0 if x > 0 else 0.0,
    "leaky_relu": lambda x: 1.0 if x > 0 else 0.01,
    "elu": lambda x: 1.0 if x > 0 else math.exp(x),
    "softplus": _s,
    "silu": lambda x: _s(x) + x * _s(x) * (1 - _s(x)),
    "gelu": lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))
    + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi),
}


@pytest.mark.parametrize("name", HIDDEN)
def test_activation_derivative_matches_hand_formula(name):
    derivative = activation_derivative(name, BUILTIN_ACTIVATIONS[name].expr)
    in_x = sp.lambdify(X, derivative.in_input, modules=MODULES)
    forward = sp.lambdify(X, BUILTIN_ACTIVATIONS[name].expr, modules=MODULES)
    for x in np.linspace(-3.1, 2.9, 13):
        assert float(in_x(x)) == pytest.approx(HAND_DERIVATIVES[name](x), rel=1e-12, abs=1e-14)
        if derivative.uses_output:
            in_a = sp.lambdify(A, derivative.in_output, modules=MODULES)
            assert float(in_a(float(forward(x)))) == pytest.approx(
                HAND_DERIVATIVES[name](x), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name, expected", [
    ("sigmoid", A * (1 - A)),
    ("tanh", 1 - A**2),
    ("softplus", 1 - sp.exp(-A)),
])
def test_derivative_is_rewritten_in_the_output(name, expected):
    derivative = activation_derivative(name, BUILTIN_ACTIVATIONS[name].expr)
    assert derivative.uses_output
    assert derivative.in_output.free_symbols == {A}
    assert sp.simplify(derivative.in_output - expected) == 0
    assert derivative.best == derivative.in_output


@pytest.mark.parametrize("name, forward, expected", [
    ("sigmoid_peeled", 1 / (1 + sp.exp(-X)), A * (1 - A)),
    ("softplus_peeled", sp.log(1 + sp.exp(X)), 1 - sp.exp(-A)),
    ("mish_unsolved", X * sp.tanh(sp.log(1 + sp.exp(X))), None),
    ("silu_unsolved", X / (1 + sp.exp(-X)), None),
])
def test_output_rewrite_never_needs_solve_for_these(monkeypatch, name, forward, expected):
    """Inverting sigmoid and softplus is SymPy's peeling, not ``solve`` (which took
    0.3 s each); an x that occurs twice is not handed to ``solve`` at all (mish took
    2 s there to find only Lambert W forms). Names are new, so the cache is cold."""
    def refuse(*args, **kwargs):
        raise AssertionError("sympy.solve called")

    monkeypatch.setattr(sp, "solve", refuse)
    derivative = activation_derivative(name, forward)
    if expected is None:
        assert derivative.in_output is None and derivative.best == derivative.in_input
    else:
        assert sp.simplify(derivative.in_output - expected) == 0


def test_algebraic_activation_is_still_inverted_by_solve():
    """x occurs twice but under no function: solve is fast there and its inverse is
    used (f'(x) = (1 + x^2)^(-3/2) in terms of a = x / sqrt(1 + x^2))."""
    derivative = activation_derivative("algebraic_sigmoid", X / sp.sqrt(1 + X**2))
    assert derivative.in_output is not None and derivative.in_output.free_symbols == {A}
    through_a = sp.lambdify(A, derivative.in_output)
    for x in (-2.5, -0.3, 0.7, 3.0):
        assert through_a(x / math.sqrt(1 + x * x)) == pytest.approx((1 + x * x) ** -1.5,
                                                                   rel=1e-12)


def test_a_nan_candidate_never_agrees():
    assert not _agrees(sp.tanh(X), 1 - sp.tanh(X) ** 2, sp.nan)
    assert _agrees(sp.tanh(X), 1 - sp.tanh(X) ** 2, 1 - A**2)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu"])
def test_piecewise_derivatives_stay_in_z(name):
    derivative = activation_derivative(name, BUILTIN_ACTIVATIONS[name].expr)
    assert derivative.in_output is None
    assert derivative.best == derivative.in_input
    assert derivative.in_input.free_symbols == {X}


def test_relu_derivative_at_zero_is_zero():
    derivative = activation_derivative("relu", BUILTIN_ACTIVATIONS["relu"].expr).in_input
    assert derivative.subs(X, 0) == 0
    assert derivative.subs(X, sp.Rational(1, 10**9)) == 1
    assert derivative.subs(X, -1) == 0
