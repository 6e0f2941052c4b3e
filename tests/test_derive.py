"""Tests for symbp.derive (with symbp.forms and symbp.selfcheck underneath).

Three independent oracles check the chain-rule engine:

1. the fully composed scalar loss of a tiny network, written out in explicit
   scalar weight symbols and differentiated directly by ``sympy.diff``;
2. the ``autograd`` package on a forward pass written here with
   ``autograd.numpy`` (it shares no code with symbp), on a sweep of
   architectures that covers every built-in activation and loss;
3. hand formulas (``sigmoid' = a(1-a)``, ``delta^(L) = a - y``, ...).

The derived formulas are evaluated numerically through
``symbp.selfcheck.formula_gradients``, per sample and for a batch; that is the
very matrix tree that symbp prints.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import autograd.numpy as anp
import numpy as np
import pytest
import sympy as sp
from autograd import grad
from autograd.scipy.special import erf as autograd_erf
from conftest import EXAMPLES, derived, make_network

from symbp import forms
from symbp.derive import LAYER, OUTPUT, derive, width
from symbp.errors import InternalError
from symbp.registry import BUILTIN_ACTIVATIONS, BUILTIN_LOSSES, A, X, Y
from symbp.selfcheck import formula_gradients, self_check
from symbp.spec import load_spec

MISH = ("mish", "x*tanh(log(1 + exp(x)))")
LOGCOSH = ("logcosh", "log(cosh(a - y))")
HIDDEN = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "silu", "gelu")
RTOL = 1e-9


# ------------------------------------------------------------------ helpers
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


def both_forms(derivation, params, inputs, targets):
    """The derived gradients evaluated per sample (then averaged) and in batch form."""
    return (formula_gradients(derivation, params, inputs, targets, batch=False),
            formula_gradients(derivation, params, inputs, targets, batch=True))


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
        per_sample, batch = both_forms(derivation, params, inputs, targets)
        assert_gradients_close(per_sample, expected)
        assert_gradients_close(batch, expected)


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
        per_sample, batch = both_forms(derivation, params, X_, Y_)
        assert_gradients_close(per_sample, expected)
        assert_gradients_close(batch, expected)


@pytest.mark.parametrize("output", ["relu", "leaky_relu", "elu"])
def test_piecewise_output_activation_matches_autograd(output):
    """Regression: a Piecewise f' on the OUTPUT layer used to leave a KroneckerDelta
    inside the Piecewise, and forms.to_matrix raised NotMatrixForm."""
    derivation = derived(3, ((4, "tanh"), (2, output)), "mse")
    params, inputs, targets = random_problem((3, 4, 2), "mse", np.random.default_rng(11))
    expected = autograd_gradients(["tanh", output], "mse", params, inputs, targets)
    for got in both_forms(derivation, params, inputs, targets):
        assert_gradients_close(got, expected)


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
    derivation = derive(network)
    widths = tuple(network.widths)
    params, inputs, targets = random_problem(widths, network.loss, np.random.default_rng(7))
    expected = autograd_gradients([layer.activation for layer in network.layers],
                                  network.loss, params, inputs, targets)
    per_sample, batch = both_forms(derivation, params, inputs, targets)
    assert_gradients_close(per_sample, expected)
    assert_gradients_close(batch, expected)
    assert "mish" in derivation.derivatives


def test_cross_entropy_delta_needs_targets_that_sum_to_one():
    """a - y is exact only for probability targets: the oracle must notice otherwise."""
    derivation = derived(3, ((4, "tanh"), (3, "softmax")), "cross_entropy")
    params, inputs, targets = random_problem((3, 4, 3), "cross_entropy",
                                             np.random.default_rng(3))
    targets = targets * 2.0  # rows sum to 2
    expected = autograd_gradients(["tanh", "softmax"], "cross_entropy", params, inputs, targets)
    got = formula_gradients(derivation, params, inputs, targets, batch=True)
    with pytest.raises(AssertionError):
        assert_gradients_close(got, expected)


def test_relu_derivative_at_zero_is_zero_in_the_derived_gradients():
    """A unit with z exactly 0 passes no gradient (PyTorch's convention, not 1/2)."""
    derivation = derived(3, ((4, "relu"), (2, "identity")), "mse")
    params, inputs, targets = random_problem((3, 4, 2), "mse", np.random.default_rng(5))
    params["W1"][0, :] = 0.0
    params["b1"][0] = 0.0  # z_0 = 0 for every sample
    for got in both_forms(derivation, params, inputs, targets):
        assert np.all(got["W1"][0] == 0.0) and got["b1"][0] == 0.0
        assert np.any(got["W1"][1:] != 0.0)


# --------------------------------------------- oracle 3: hand formulas
def _in_letters(expr, tensors):
    """Replace each indexed quantity by a plain symbol named after its letter."""
    return expr.xreplace({item: sp.Symbol(tensors[item.base.label].letter, real=True)
                          for item in expr.atoms(sp.Indexed)})


a_, y_ = sp.symbols("a y", real=True)


@pytest.mark.parametrize("output, loss, expected", [
    ("softmax", "cross_entropy", a_ - y_),
    ("sigmoid", "bce", a_ - y_),
    ("sigmoid", "mse", (a_ - y_) * a_ * (1 - a_)),
    ("identity", "mse", a_ - y_),
    ("tanh", "mse", (a_ - y_) * (1 - a_**2)),
])
def test_output_delta_simplifies(output, loss, expected):
    derivation = derived(3, ((4, "tanh"), (2, output)), loss)
    output_layer = derivation.layers[-1]
    for formula in (derivation.general["delta_output"], derivation.general["batch_delta_output"],
                    output_layer.delta, output_layer.batch_delta):
        assert not formula.index.has(sp.Sum)
        indices = {tuple(item.indices) for item in formula.index.atoms(sp.Indexed)}
        assert indices == {formula.free}  # purely elementwise in the free index
        letters = {formula.tensors[item.base.label].letter
                   for item in formula.index.atoms(sp.Indexed)}
        assert letters == {"a", "y"}
        assert sp.simplify(_in_letters(formula.index, formula.tensors) - expected) == 0


def test_softmax_cross_entropy_delta_is_exactly_a_minus_y():
    formula = derived(2, ((3, "tanh"), (2, "softmax")), "cross_entropy").general["delta_output"]
    (j,) = formula.free
    bases = {tensor: sp.IndexedBase(label, real=True) for label, tensor in formula.tensors.items()}
    a_out, y = bases[forms.Tensor("a", OUTPUT)], bases[forms.Tensor("y")]
    assert formula.index == a_out[j] - y[j]


def _tree_nodes(node):
    """Every node of a symbp.forms tree."""
    yield node
    if isinstance(node, (forms.Transpose, forms.Scale)):
        yield from _tree_nodes(node.arg)
    elif isinstance(node, forms.MatMul):
        yield from _tree_nodes(node.left)
        yield from _tree_nodes(node.right)
    elif isinstance(node, (forms.Hadamard, forms.Add)):
        for child in node.args:
            yield from _tree_nodes(child)


def test_hidden_recursion_has_no_bias_and_transposes_the_next_weights():
    general = derived(2, ((3, "tanh"), (2, "softmax")), "cross_entropy").general
    for key in ("delta", "batch_delta"):
        formula = general[key]
        letters = {formula.tensors[item.base.label].letter
                   for item in formula.index.atoms(sp.Indexed)}
        assert letters == {"W", "delta", "fprime"}  # no b, no a, no y
        (total,) = formula.index.atoms(sp.Sum)
        summed = total.limits[0][0]
        free = formula.free[-1]
        assert total.limits[0][2] == width(LAYER + 1) - 1
        (weight,) = [item for item in formula.index.atoms(sp.Indexed)
                     if formula.tensors[item.base.label].letter == "W"]
        assert formula.tensors[weight.base.label].layer == LAYER + 1
        assert tuple(weight.indices) == (summed, free)  # W_{ij} summed over its ROW: W^T
        for item in formula.index.atoms(sp.Indexed):
            tensor = formula.tensors[item.base.label]
            if tensor.letter == "delta":
                assert tensor.layer == LAYER + 1 and item.indices[-1] == summed
            if tensor.letter == "fprime":
                assert tensor.layer == LAYER and item.indices[-1] == free
    transposed = [node.arg.tensor for node in _tree_nodes(general["delta"].matrix)
                  if isinstance(node, forms.Transpose) and isinstance(node.arg, forms.Leaf)]
    assert forms.Tensor("W", LAYER + 1) in transposed
    per_sample_leaves = set(forms.leaves(general["delta"].matrix))
    assert not any(t.letter == "b" for t in per_sample_leaves)


def test_hidden_delta_of_concrete_layers_has_no_bias():
    derivation = derived(5, ((3, "leaky_relu"), (4, "softplus"), (3, "softmax")), "cross_entropy")
    for layer in derivation.layers[:-1]:
        for formula in (layer.delta, layer.batch_delta):
            assert not any(t.letter == "b" for t in forms.leaves(formula.matrix))
            assert forms.Tensor("W", layer.layer + 1) in set(forms.leaves(formula.matrix))


def test_parameter_gradients_are_outer_products_and_means():
    general = derived(2, ((3, "tanh"), (2, "softmax")), "cross_entropy").general
    dW, db = general["dW"], general["db"]
    i, j = dW.free
    letters = {dW.tensors[item.base.label].letter: item for item in dW.index.atoms(sp.Indexed)}
    assert set(letters) == {"delta", "a"}
    assert dW.index == letters["delta"] * letters["a"]
    assert tuple(letters["delta"].indices) == (i,) and tuple(letters["a"].indices) == (j,)
    assert dW.tensors[letters["a"].base.label].layer == LAYER - 1
    (db_item,) = db.index.atoms(sp.Indexed)
    assert db.index == db_item and db.tensors[db_item.base.label].letter == "delta"
    # batch: the mean over rows r of Delta_{ri} A_{rj}
    batch = general["batch_dW"]
    (total,) = batch.index.atoms(sp.Sum)
    B = sp.Symbol("B", integer=True, positive=True)
    assert sp.simplify(batch.index - total / B) == 0
    assert total.limits[0][1:] == (0, B - 1)


def test_hidden_layer_uses_the_output_form_of_f_prime():
    layer = derived(3, ((4, "sigmoid"), (2, "identity")), "mse").layers[0]
    for formula in (layer.delta, layer.batch_delta):
        letters = {t.letter for t in forms.leaves(formula.matrix)}
        assert "a" in letters and "z" not in letters and "fprime" not in letters
    relu = derived(3, ((5, "relu"), (2, "softmax")), "cross_entropy").layers[0]
    assert "z" in {t.letter for t in forms.leaves(relu.delta.matrix)}


# ------------------------------------------------------- symbolic widths
def _canonical(formula, layer):
    """The index expression with layer numbers counted from ``layer`` (renaming only)."""
    def shifted(value):
        return int(value) - layer if isinstance(value, (int, sp.Integer)) else value

    replace = {}
    for label, tensor in formula.tensors.items():
        replace[label] = sp.Symbol(f"{tensor.letter}[{shifted(tensor.layer)}]")
    for n in range(0, 6):
        replace[width(n)] = sp.Symbol(f"n[{n - layer}]")
    return formula.index.xreplace(replace)


def _all_formulas(layer_formulas):
    return [getattr(layer_formulas, name) for name in
            ("delta", "dW", "db", "batch_delta", "batch_dW", "batch_db")]


def test_widths_stay_symbolic():
    small = derived(3, ((3, "tanh"), (4, "tanh"), (2, "softmax")), "cross_entropy")
    large = derived(1000, ((1000, "tanh"), (999, "tanh"), (2, "softmax")), "cross_entropy")
    for few, many in zip(small.layers, large.layers, strict=True):
        for f_small, f_large in zip(_all_formulas(few), _all_formulas(many), strict=True):
            assert f_small.index == f_large.index
            assert f_small.matrix == f_large.matrix
            integers = {abs(int(n)) for n in f_large.index.atoms(sp.Integer)}
            assert integers <= {0, 1, 2}, integers  # no width leaked in as a number
    assert small.general == large.general


def test_hidden_layers_differ_only_by_renaming():
    derivation = derived(1000, ((1000, "tanh"), (999, "tanh"), (2, "softmax")), "cross_entropy")
    first, second = derivation.layers[0], derivation.layers[1]
    for f_first, f_second in zip(_all_formulas(first), _all_formulas(second), strict=True):
        assert _canonical(f_first, 1) == _canonical(f_second, 2)
        assert _canonical(f_first, 1) != _canonical(f_second, 1)  # the renaming matters


# ------------------------------------------------------------ self-check
def _with_matrix(derivation, layer, field, matrix):
    """A copy of ``derivation`` whose formula ``field`` of ``layer`` has another matrix."""
    layers = list(derivation.layers)
    old = layers[layer - 1]
    formula = dataclasses.replace(getattr(old, field), matrix=matrix)
    layers[layer - 1] = dataclasses.replace(old, **{field: formula})
    return dataclasses.replace(derivation, layers=layers)


@pytest.fixture(scope="module")
def sigmoid_mse():
    return derived(3, ((4, "tanh"), (2, "sigmoid")), "mse")


def test_self_check_accepts_the_derived_formulas(sigmoid_mse):
    self_check(sigmoid_mse)
    self_check(sigmoid_mse, seed=99, batch=5)


def test_self_check_rejects_a_missing_activation_derivative(sigmoid_mse):
    hidden = sigmoid_mse.layers[0].delta.matrix
    assert isinstance(hidden, forms.Hadamard)
    product = next(arg for arg in hidden.args if isinstance(arg, forms.MatMul))
    wrong = _with_matrix(sigmoid_mse, 1, "delta", product)  # drop the f' factor
    with pytest.raises(InternalError, match="per-sample gradient of W1"):
        self_check(wrong)


def test_self_check_rejects_a_wrong_batch_output_delta(sigmoid_mse):
    tensors = [(sp.Symbol("a2", real=True), forms.Tensor("a", 2, True)),
               (sp.Symbol("Y", real=True), forms.Tensor("y", None, True))]
    plain = forms.canonical_elementwise(tensors[0][0] - tensors[1][0], tensors)  # A - Y
    wrong = _with_matrix(sigmoid_mse, 2, "batch_delta", plain)
    with pytest.raises(InternalError, match=r"batch gradient of (W|b)\d"):
        self_check(wrong)


def test_self_check_rejects_a_missing_transpose_in_the_recursion(sigmoid_mse):
    hidden = sigmoid_mse.layers[0].delta.matrix
    product = next(arg for arg in hidden.args if isinstance(arg, forms.MatMul))
    assert isinstance(product.left, forms.Transpose)
    swapped = forms.Hadamard(tuple(
        forms.MatMul(product.left.arg, product.right) if arg is product else arg
        for arg in hidden.args))
    with pytest.raises(InternalError, match="delta of layer 1"):
        self_check(_with_matrix(sigmoid_mse, 1, "delta", swapped))


def test_self_check_rejects_a_missing_batch_mean(sigmoid_mse):
    scaled = sigmoid_mse.layers[1].batch_dW.matrix
    assert isinstance(scaled, forms.Scale)
    with pytest.raises(InternalError, match="batch gradient of W2"):
        self_check(_with_matrix(sigmoid_mse, 2, "batch_dW", scaled.arg))


def test_self_check_rejects_a_transposed_weight_gradient(sigmoid_mse):
    dW = sigmoid_mse.layers[0].dW.matrix
    assert isinstance(dW, forms.MatMul) and isinstance(dW.right, forms.Transpose)
    swapped = forms.MatMul(dW.right.arg, forms.Transpose(dW.left))  # a delta^T
    with pytest.raises(InternalError, match="W1"):
        self_check(_with_matrix(sigmoid_mse, 1, "dW", swapped))


def test_derive_without_check_returns_the_same_formulas(sigmoid_mse):
    unchecked = derive(make_network(3, ((4, "tanh"), (2, "sigmoid")), "mse"), check=False)
    for checked_layer, unchecked_layer in zip(sigmoid_mse.layers, unchecked.layers, strict=True):
        for checked, raw in zip(_all_formulas(checked_layer), _all_formulas(unchecked_layer),
                                strict=True):
            assert checked.index == raw.index and checked.matrix == raw.matrix
