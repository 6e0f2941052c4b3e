"""The graph engine's gradients of dense networks against independent oracles.

1. the fully composed scalar loss of a tiny network, written out in explicit
   scalar weight symbols and differentiated directly by ``sympy.diff``;
2. the ``autograd`` package on a forward pass written here with
   ``autograd.numpy`` (it shares no code with symbp), on a sweep of
   architectures that covers every built-in activation and loss, and custom ones;
3. facts a hand derivation gives (``delta^(L) = (a - y)/B`` for softmax with
   cross-entropy only for targets that sum to one, relu' = 0 at 0).

The derived gradients (symbp.engine.derivation.derive_graph: the simplified,
self-checked ones that are printed and generated) are evaluated by the engine's
NumPy reading of index notation.
"""

from __future__ import annotations

from functools import lru_cache

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad
from autograd.scipy.special import erf as autograd_erf
from conftest import EXAMPLES, make_network

from symbp.engine.derivation import derive_graph, self_check
from symbp.engine.numeric import run
from symbp.errors import InternalError
from symbp.ops.base import BATCH
from symbp.registry import BUILTIN_ACTIVATIONS, BUILTIN_LOSSES, A, X, Y
from symbp.spec import load_spec

MISH = ("mish", "x*tanh(log(1 + exp(x)))")
LOGCOSH = ("logcosh", "log(cosh(a - y))")
HIDDEN = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "silu", "gelu")
RTOL = 1e-9


@lru_cache(maxsize=None)
def derived(inputs, layers, loss, activations=(), losses=()):
    return derive_graph(make_network(inputs, tuple(layers), loss, activations, losses))


def engine_gradients(derivation, params, inputs, targets):
    """The derived gradients at one point, by tensor name (``W1``, ``b1``, ...)."""
    arrays = {**params, "X": inputs, "Y": targets}
    sizes = {**derivation.sizes, BATCH: len(inputs)}
    values = run(derivation.graph, arrays, sizes, derivation.gradients)
    return {name: values[f"g_{name}"] for name in params}


def random_problem(widths, loss, rng, batch=4):
    """Parameters, inputs and targets valid for ``loss`` (built here, not by symbp)."""
    params = {}
    for layer in range(1, len(widths)):
        params[f"W{layer}"] = rng.normal(0.0, 0.8, (widths[layer], widths[layer - 1]))
        params[f"b{layer}"] = rng.normal(0.0, 0.5, widths[layer])
    inputs = rng.normal(0.0, 1.0, (batch, widths[0]))
    outputs = widths[-1]
    if loss == "cross_entropy":  # probability vectors
        raw = rng.uniform(0.05, 1.0, (batch, outputs))
        targets = raw / raw.sum(axis=1, keepdims=True)
    elif loss == "bce":
        targets = rng.uniform(0.05, 0.95, (batch, outputs))
    else:
        targets = rng.normal(0.0, 1.0, (batch, outputs))
    return params, inputs, targets


def assert_gradients_close(got, expected, rtol=RTOL):
    """Every parameter within ``rtol`` of the largest expected gradient entry."""
    assert set(got) == set(expected)
    scale = max(float(np.max(np.abs(value))) for value in expected.values())
    assert scale > 1e-6, "degenerate test problem: all gradients vanish"
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
        error = float(np.max(np.abs(got[name] - value))) / scale
        assert error < rtol, f"{name}: relative error {error:.3e}"


# ------------------------------------------ oracle 1: the fully composed loss
@lru_cache(maxsize=None)
def composed_gradient_function(widths, activations, loss):
    """``f(params, x, y)`` -> d loss / d every weight and bias, for ONE sample.

    The network is composed out of scalar symbols ``W1_0_0, ..., b1_0, ...``
    with the registry's forward definitions (softmax written out), and each
    gradient is ``sympy.diff`` of that one scalar expression.
    """
    xs = sp.symbols(f"x0:{widths[0]}", real=True)
    ys = sp.symbols(f"y0:{widths[-1]}", real=True)
    names, symbols, a = [], [], list(xs)
    for layer in range(1, len(widths)):
        rows, columns = widths[layer], widths[layer - 1]
        W = [[sp.Symbol(f"W{layer}_{i}_{j}", real=True) for j in range(columns)]
             for i in range(rows)]
        b = [sp.Symbol(f"b{layer}_{i}", real=True) for i in range(rows)]
        names += [(f"W{layer}", (i, j)) for i in range(rows) for j in range(columns)]
        names += [(f"b{layer}", (i,)) for i in range(rows)]
        symbols += [w for row in W for w in row] + b
        z = [sp.Add(*[W[i][j] * a[j] for j in range(columns)]) + b[i] for i in range(rows)]
        name = activations[layer - 1]
        if name == "softmax":
            exps = [sp.exp(value) for value in z]
            a = [value / sp.Add(*exps) for value in exps]
        else:
            a = [BUILTIN_ACTIVATIONS[name].expr.xreplace({X: value}) for value in z]
    term = BUILTIN_LOSSES[loss].expr
    ell = sp.Add(*[term.xreplace({A: a_k, Y: y_k}) for a_k, y_k in zip(a, ys, strict=True)])
    gradients = [sp.diff(ell, symbol) for symbol in symbols]
    function = sp.lambdify([symbols, xs, ys], gradients, modules="numpy", cse=True)
    return function, names


def composed_gradients(widths, activations, loss, params, inputs, targets):
    """The batch gradient as the mean of the per-sample gradients of the composed loss."""
    function, names = composed_gradient_function(widths, activations, loss)
    flat = [params[name][position] for name, position in names]
    result = {name: np.zeros_like(value) for name, value in params.items()}
    for x, y in zip(inputs, targets, strict=True):
        for (name, position), value in zip(names, function(flat, list(x), list(y)), strict=True):
            result[name][position] += value / len(inputs)
    return result


COMPOSED_CASES = [
    ((2, 3, 2), ("tanh", "softmax"), "cross_entropy"),
    ((2, 3, 2), ("sigmoid", "sigmoid"), "bce"),
    ((2, 3, 2), ("relu", "sigmoid"), "mse"),
    ((2, 3, 2), ("softplus", "identity"), "mse"),
    ((2, 2, 3, 2), ("softplus", "tanh", "softmax"), "cross_entropy"),
]


@pytest.mark.parametrize("widths, activations, loss", COMPOSED_CASES,
                         ids=["-".join(map(str, c[0])) + "-" + "-".join(c[1]) + "-" + c[2]
                              for c in COMPOSED_CASES])
def test_chain_rule_matches_sympy_diff_of_the_composed_loss(widths, activations, loss):
    derivation = derived(widths[0], tuple(zip(widths[1:], activations, strict=True)), loss)
    rng = np.random.default_rng(sum(widths) + len(loss))
    for _ in range(2):
        params, inputs, targets = random_problem(widths, loss, rng, batch=3)
        expected = composed_gradients(widths, activations, loss, params, inputs, targets)
        assert_gradients_close(engine_gradients(derivation, params, inputs, targets), expected)


def test_composed_oracle_cases_cover_the_required_pieces():
    losses = {case[2] for case in COMPOSED_CASES}
    activations = {name for case in COMPOSED_CASES for name in case[1]}
    assert {"mse", "bce", "cross_entropy"} <= losses
    assert {"tanh", "sigmoid", "relu", "softplus"} <= activations
    assert any(len(case[0]) == 4 for case in COMPOSED_CASES)  # a 3-layer network


# ------------------------------------------------------ oracle 2: autograd
def _sigmoid(z):
    return 1.0 / (1.0 + anp.exp(-z))


AUTOGRAD_ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": _sigmoid,
    "tanh": anp.tanh,
    "relu": lambda z: anp.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: anp.where(z > 0, z, 0.01 * z),
    "elu": lambda z: anp.where(z > 0, z, anp.exp(anp.minimum(z, 0.0)) - 1.0),
    "softplus": lambda z: anp.logaddexp(0.0, z),
    "silu": lambda z: z * _sigmoid(z),
    "gelu": lambda z: 0.5 * z * (1.0 + autograd_erf(z / anp.sqrt(2.0))),
    "mish": lambda z: z * anp.tanh(anp.logaddexp(0.0, z)),
    "softmax": lambda z: anp.exp(z - anp.max(z, axis=1, keepdims=True))
    / anp.sum(anp.exp(z - anp.max(z, axis=1, keepdims=True)), axis=1, keepdims=True),
}

AUTOGRAD_LOSSES = {  # per sample, summed over the outputs
    "mse": lambda a, y: 0.5 * anp.sum((a - y) ** 2, axis=1),
    "cross_entropy": lambda a, y: -anp.sum(y * anp.log(a), axis=1),
    "bce": lambda a, y: -anp.sum(y * anp.log(a) + (1.0 - y) * anp.log(1.0 - a), axis=1),
    "logcosh": lambda a, y: anp.sum(anp.log(anp.cosh(a - y)), axis=1),
}


def autograd_gradients(activations, loss, params, inputs, targets):
    """The batch (mean) loss of the network, differentiated by autograd."""
    def batch_loss(parameters):
        a = inputs
        for layer, name in enumerate(activations, 1):
            z = anp.dot(a, parameters[f"W{layer}"].T) + parameters[f"b{layer}"]
            a = AUTOGRAD_ACTIVATIONS[name](z)
        return anp.mean(AUTOGRAD_LOSSES[loss](a, targets))

    return grad(batch_loss)(params)


# (inputs, ((units, activation), ...), loss, custom activations, custom losses)
SWEEP = [
    (3, ((2, "softmax"),), "cross_entropy", (), ()),
    (4, ((1, "sigmoid"),), "bce", (), ()),
    (3, ((2, "identity"),), "mse", (), ()),
    (3, ((5, "relu"), (2, "softmax")), "cross_entropy", (), ()),
    (4, ((3, "gelu"), (1, "sigmoid")), "bce", (), ()),
    (2, ((3, "sigmoid"), (4, "softmax")), "mse", (), ()),  # full softmax Jacobian
    (2, ((4, "silu"), (3, "elu"), (2, "identity")), "mse", (), ()),
    (5, ((3, "leaky_relu"), (4, "softplus"), (3, "softmax")), "cross_entropy", (), ()),
    (3, ((4, "tanh"), (2, "sigmoid"), (5, "identity"), (2, "sigmoid")), "bce", (), ()),
    (4, ((2, "gelu"), (5, "relu"), (3, "silu"), (3, "tanh")), "mse", (), ()),
    (3, ((4, "elu"), (2, "softplus")), "mse", (), ()),
    (2, ((3, "leaky_relu"), (3, "gelu")), "mse", (), ()),
    (3, ((2, "identity"), (4, "relu"), (2, "silu")), "mse", (), ()),
    (3, ((4, "mish"), (2, "tanh")), "logcosh", (MISH,), (LOGCOSH,)),
]


def _sweep_id(case):
    inputs, layers, loss = case[:3]
    return "-".join([str(inputs)] + [f"{u}{a}" for u, a in layers] + [loss])


@pytest.mark.parametrize("case", SWEEP, ids=[_sweep_id(c) for c in SWEEP])
def test_derived_gradients_match_autograd(case):
    inputs, layers, loss, activations, losses = case
    derivation = derived(inputs, layers, loss, activations, losses)
    widths = (inputs,) + tuple(units for units, _ in layers)
    names = [activation for _, activation in layers]
    rng = np.random.default_rng(len(widths) * 100 + sum(widths))
    for _ in range(2):
        params, X_, Y_ = random_problem(widths, loss, rng, batch=5)
        expected = autograd_gradients(names, loss, params, X_, Y_)
        assert_gradients_close(engine_gradients(derivation, params, X_, Y_), expected)


@pytest.mark.parametrize("output", ["relu", "leaky_relu", "elu"])
def test_piecewise_output_activation_matches_autograd(output):
    """Regression: a Piecewise f' on the OUTPUT layer used to leave a KroneckerDelta
    inside the Piecewise, and forms.to_matrix raised NotMatrixForm."""
    derivation = derived(3, ((4, "tanh"), (2, output)), "mse")
    params, inputs, targets = random_problem((3, 4, 2), "mse", np.random.default_rng(11))
    expected = autograd_gradients(["tanh", output], "mse", params, inputs, targets)
    assert_gradients_close(engine_gradients(derivation, params, inputs, targets), expected)


def test_sweep_covers_every_builtin_piece():
    hidden = {a for case in SWEEP for _, a in case[1][:-1]}
    outputs = {case[1][-1][1] for case in SWEEP}
    assert set(HIDDEN) <= hidden
    assert "softmax" in outputs
    assert {case[2] for case in SWEEP} >= set(BUILTIN_LOSSES)
    assert {len(case[1]) for case in SWEEP} == {1, 2, 3, 4}
    assert set(BUILTIN_ACTIVATIONS) == set(HIDDEN) | {"softmax"}  # the table is complete


def test_custom_mish_from_the_example_spec_matches_autograd():
    """A custom activation needs nothing but its [activations] entry."""
    path = next(p for p in EXAMPLES if p.stem == "cancer_mish")
    network = load_spec(path)
    assert network.activation_of(1).name == "mish" and not network.activation_of(1).builtin
    derivation = derive_graph(network)
    widths = tuple(network.widths)
    params, inputs, targets = random_problem(widths, network.loss, np.random.default_rng(7))
    expected = autograd_gradients([layer.activation for layer in network.layers],
                                  network.loss, params, inputs, targets)
    assert_gradients_close(engine_gradients(derivation, params, inputs, targets), expected)


def test_cross_entropy_delta_needs_targets_that_sum_to_one():
    """a - y is exact only for probability targets: the oracle must notice otherwise."""
    derivation = derived(3, ((4, "tanh"), (3, "softmax")), "cross_entropy")
    params, inputs, targets = random_problem((3, 4, 3), "cross_entropy",
                                             np.random.default_rng(3))
    targets = targets * 2.0  # rows sum to 2
    expected = autograd_gradients(["tanh", "softmax"], "cross_entropy", params, inputs, targets)
    got = engine_gradients(derivation, params, inputs, targets)
    with pytest.raises(AssertionError):
        assert_gradients_close(got, expected)


def test_relu_derivative_at_zero_is_zero_in_the_derived_gradients():
    """A unit with z exactly 0 passes no gradient (PyTorch's convention, not 1/2)."""
    derivation = derived(3, ((4, "relu"), (2, "identity")), "mse")
    params, inputs, targets = random_problem((3, 4, 2), "mse", np.random.default_rng(5))
    params["W1"][0, :] = 0.0
    params["b1"][0] = 0.0  # z_0 = 0 for every sample
    got = engine_gradients(derivation, params, inputs, targets)
    assert np.all(got["W1"][0] == 0.0) and got["b1"][0] == 0.0
    assert np.any(got["W1"][1:] != 0.0)


# ------------------------------------------------------------- self-check
@pytest.fixture
def sigmoid_mse():
    return derive_graph(make_network(3, ((4, "sigmoid"), (2, "sigmoid")), "mse"))


def corrupted(derivation, name, change):
    """A copy of the derivation whose gradient of ``name`` is ``change(expr)``."""
    import dataclasses

    gradients = [dataclasses.replace(g, expr=change(g.expr)) if g.of.name == name else g
                 for g in derivation.gradients]
    return dataclasses.replace(derivation, gradients=gradients)


@pytest.mark.parametrize("name, change", [
    ("z2", lambda e: 2 * e),  # a factor 2 in the output delta
    ("z2", lambda e: e * BATCH),  # the batch mean forgotten
    ("W1", lambda e: e.xreplace({sp.Symbol("i0", integer=True, nonnegative=True):
                                 sp.Symbol("i1", integer=True, nonnegative=True),
                                 sp.Symbol("i1", integer=True, nonnegative=True):
                                 sp.Symbol("i0", integer=True, nonnegative=True)})),
    ("z1", lambda e: e.replace(lambda t: isinstance(t, sp.Indexed) and t.base.label.name == "a1",
                               lambda t: t * 0 + 1 / sp.Integer(2))),  # f' dropped
])
def test_self_check_rejects_a_wrong_gradient(sigmoid_mse, name, change):
    with pytest.raises(InternalError, match="self-check failed"):
        self_check(corrupted(sigmoid_mse, name, change))


def test_self_check_accepts_the_derived_gradients(sigmoid_mse):
    self_check(sigmoid_mse, seed=3)


def test_self_check_survives_a_point_where_the_forward_pass_is_inaccurate():
    """Two dropouts amplify activations 16-fold: at the first random point a sigmoid
    output saturates to 1.0 and log(1 - a) in the objective loses every digit, so finite
    differences there are wrong; the gradient (a - y)/B is right, and the check retries
    at smaller parameters instead of calling it an internal error."""
    from symbp.spec import Dense, Network

    network = Network(inputs=3, layers=[
        Dense(3, "sigmoid"), Dense(3, "silu"), {"type": "dropout", "rate": 0.6444671666432088},
        {"type": "dropout", "rate": 0.8238421084414568},
        {"type": "activation", "activation": "leaky_relu"}, Dense(3, "sigmoid")],
        loss="bce", training={"weight_decay": 0.1})
    derivation = derive_graph(network)
    assert derivation.gradient_of("z6") is not None
