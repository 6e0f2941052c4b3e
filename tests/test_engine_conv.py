"""The engine's convolution, pooling and flatten ops against PyTorch (issue 11).

Each network is derived by :func:`~symbp.engine.derivation.derive_graph` (so
it has passed the engine's self-check against finite differences) and its
graph and derived gradients are evaluated by the engine's reference reading
of index notation (:func:`symbp.engine.numeric.run`). The oracle is the same
network in ``torch.nn`` (tests/torch_reference.py: ``nn.Conv1d/2d``,
``F.max_pool*``, ``F.avg_pool*``, ``torch.flatten``, ``nn.BatchNorm1d/2d``,
``nn.LayerNorm`` over the per-sample shape), differentiated by autograd, in
float64. Compared: the objective, every parameter gradient, and every
intermediate gradient the derivation keeps that torch can name (``g_z{l}``,
``g_a{l}``: a convolution's input gradient, max pooling's routing), to 1e-9
in a norm-wise relative error; a gradient that is 0 in exact arithmetic (a
convolution's bias before batch norm) is compared absolutely. Batch norm's
running update (``graph.updates``) and the evaluation graph (``d.eval``:
running statistics, no dropout) are compared too.

Max pooling is checked at generic points (no two entries of a window equal)
and, separately, at points with exact ties, where the gradient goes to the
first maximum of the window in row-major order, as torch's CPU kernels do.
A seeded sweep of random small CNNs covers every activation and several
losses.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
import torch
from conftest import SWEEP_ACTIVATIONS
from torch_reference import TorchNetwork

from symbp.engine.backward import backward
from symbp.engine.derivation import GraphDerivation, derive_graph, self_check
from symbp.engine.indices import FREE
from symbp.engine.numeric import run, value_of
from symbp.engine.simplify import simplify
from symbp.errors import InternalError
from symbp.ops.base import BATCH
from symbp.spec import Dense, Network

TOLERANCE = 1e-9
ZERO = 1e-12  # a gradient whose norm is below this is 0 in exact arithmetic
BATCH_SIZE = 5


# ------------------------------------------------------------------ the point
def random_arrays(graph, sizes: dict, network, rng, inputs=None) -> dict:
    """Inputs, parameters (weights ~ 1/sqrt(fan-in), offsets on biases and gains),
    dropout masks, running statistics and valid targets, all float64."""
    arrays = {}
    for tensor in graph.tensors.values():
        shape = tuple(int(sp.sympify(d).xreplace(sizes)) for d in tensor.shape)
        name = tensor.name
        if tensor.role == "input":
            arrays[name] = rng.normal(0.0, 1.0, shape) if inputs is None else inputs
        elif tensor.role == "parameter" and name.startswith("W"):
            arrays[name] = rng.normal(0.0, 1.0 / math.sqrt(math.prod(shape[1:])), shape)
        elif tensor.role == "parameter":
            arrays[name] = (1.0 if name.startswith("gamma") else 0.0) + \
                rng.normal(0.0, 0.3, shape)
        elif tensor.role == "mask":
            arrays[name] = (rng.random(shape) >= 0.3).astype(float)
        elif tensor.role == "state":
            arrays[name] = rng.normal(0.0, 0.5, shape) if name.startswith("mean") else \
                rng.uniform(0.5, 2.0, shape)
        elif tensor.role == "target":
            arrays[name] = targets(network.loss, shape, rng)
    return arrays


def targets(loss, shape, rng):
    if loss == "cross_entropy":
        return rng.dirichlet(np.ones(shape[1]), shape[0])
    if loss == "bce":
        return (rng.random(shape) > 0.5).astype(float)
    return rng.normal(0.0, 1.0, shape)


def norm_error(value, expected) -> float:
    """``||value - expected|| / ||expected||``, or the absolute ``||value - expected||``
    for an expected gradient that is 0 (rounding noise on both sides)."""
    value, expected = np.asarray(value, dtype=float), np.asarray(expected, dtype=float)
    assert value.shape == expected.shape, (value.shape, expected.shape)
    difference = float(np.linalg.norm(value - expected))
    scale = float(np.linalg.norm(expected))
    return difference if scale <= ZERO else difference / scale


def torch_oracle(network, arrays, training=True):
    """The torch network at the point: objective (backward done), recorded tensors, net."""
    net = TorchNetwork(network)
    net.load(arrays)
    net.train(training)
    X = torch.tensor(arrays["X"], requires_grad=True)
    masks = {name: torch.tensor(v) for name, v in arrays.items() if name.startswith("mask")}
    record = {}
    objective = net.objective(X, torch.tensor(arrays["Y"]), masks, record)
    objective.backward()
    return objective, {**record, "X": X}, net


def engine_values(derivation, arrays, gradients=None):
    sizes = {**derivation.sizes, BATCH: BATCH_SIZE}
    return run(derivation.graph, arrays, sizes, derivation.gradients if gradients is None
               else gradients), sizes


def with_input_gradient(derivation) -> list:
    """The derivation's gradients and the input's (``g_X``), derived the same way."""
    return simplify(derivation.graph, backward(derivation.graph, ("parameter", "input")))


def assert_matches_torch(network, seed=0, inputs=None, input_gradient=False) -> dict:
    """Objective, every parameter gradient and every gradient torch can name, to 1e-9;
    returns the engine's values."""
    derivation = derive_graph(network)  # self-checked
    sizes = {**derivation.sizes, BATCH: BATCH_SIZE}
    arrays = random_arrays(derivation.graph, sizes, network, np.random.default_rng(seed), inputs)
    gradients = with_input_gradient(derivation) if input_gradient else derivation.gradients
    values, _ = engine_values(derivation, arrays, gradients)
    objective, record, net = torch_oracle(network, arrays)
    assert values["L"] == pytest.approx(objective.item(), rel=TOLERANCE)
    torch_tensors = {**net.named(), **record}
    compared = set()
    for gradient in gradients:
        name = gradient.of.name
        tensor = torch_tensors.get(name)
        if tensor is None or tensor.grad is None:
            continue  # a tensor torch has no name for (xhat, mu, flat)
        error = norm_error(values[gradient.adjoint.name], tensor.grad.numpy())
        assert error <= TOLERANCE, (name, error)
        compared.add(name)
    parameters = {t.name for t in derivation.graph.given("parameter")}
    assert parameters <= compared, parameters - compared
    if input_gradient:
        assert "X" in compared
    return values


# ------------------------------------------------------------ one op at a time
def conv(kind, channels, kernel, stride=1, padding=0, activation="identity", **extra):
    return {"type": kind, "channels": channels, "kernel": kernel, "stride": stride,
            "padding": padding, "activation": activation, **extra}


CASES = {  # name: (inputs, layers, loss)
    "conv1d, stride 2, padding 1, a partial last window": (
        [2, 11], [conv("conv1d", 3, 4, 2, 1, "tanh"), {"type": "flatten"}, Dense(3, "softmax")],
        "cross_entropy"),
    "conv1d, kernel 1, after conv1d with stride 3 and padding 2": (
        [3, 10], [conv("conv1d", 2, 3, 3, 2, "softplus"), conv("conv1d", 4, 1, 1, 0, "relu"),
                  Dense(2)], "mse"),
    "conv2d, kernel [3, 2], stride [2, 1], padding [1, 0]": (
        [2, 7, 6], [conv("conv2d", 3, [3, 2], [2, 1], [1, 0], "tanh"), {"type": "flatten"},
                    Dense(3, "softmax")], "cross_entropy"),
    "conv2d after conv2d (input gradient), padding with stride 2": (
        [2, 7, 6], [conv("conv2d", 3, [3, 2], [2, 1], [1, 0], "relu"),
                    conv("conv2d", 2, 2, 2, 1, "sigmoid"), Dense(3, "softmax")],
        "cross_entropy"),
    "conv2d, odd sizes, stride 2 leaves the last row and column out": (
        [1, 8, 9], [conv("conv2d", 2, [3, 4], 2, 0, "elu"),
                    conv("conv2d", 3, [2, 1], [1, 2], [1, 0], "silu"), Dense(2)], "mse"),
    "conv2d, kernel [4, 3], stride 3, padding 2": (
        [2, 9, 8], [conv("conv2d", 2, [4, 3], 3, 2, "gelu"), conv("conv2d", 2, 2, 1, 1, "tanh"),
                    Dense(3, "sigmoid")], "bce"),
    "conv2d, stride above the kernel (inputs never read), one channel": (
        [1, 9, 8], [conv("conv2d", 1, 2, 3, 1, "tanh"), conv("conv2d", 2, [2, 1], [1, 3]),
                    Dense(2)], "mse"),
    "conv1d, a kernel as large as the padded input (one position)": (
        [2, 5], [conv("conv1d", 3, 7, 1, 1, "sigmoid"), conv("conv1d", 2, 1, 1, 0, "relu"),
                 Dense(2, "softmax")], "cross_entropy"),
    "max_pool1d, kernel 3, stride 2 (overlapping windows)": (
        [2, 12], [conv("conv1d", 3, 3, 1, 1, "tanh"), {"type": "max_pool1d", "kernel": 3,
                                                       "stride": 2}, Dense(3, "softmax")],
        "cross_entropy"),
    "max_pool1d and avg_pool1d, kernel 3, stride 3": (
        [2, 13], [conv("conv1d", 2, 2, 1, 0, "tanh"), {"type": "max_pool1d", "kernel": 3,
                                                       "stride": 3},
                  {"type": "avg_pool1d", "kernel": 2, "stride": 1}, Dense(2)], "mse"),
    "max_pool2d, kernel 2": (
        [1, 8, 8], [conv("conv2d", 3, 3, 1, 0, "tanh"), {"type": "max_pool2d", "kernel": 2},
                    {"type": "flatten"}, Dense(4, "softmax")], "cross_entropy"),
    "max_pool2d, kernel [2, 3], stride [1, 2], after conv2d, before conv2d": (
        [2, 7, 9], [conv("conv2d", 2, 2, 1, 1, "leaky_relu"),
                    {"type": "max_pool2d", "kernel": [2, 3], "stride": [1, 2]},
                    conv("conv2d", 2, 2, 1, 0, "tanh"), Dense(2)], "mse"),
    "max_pool2d on the input, kernel 3, stride 2": (
        [2, 7, 7], [{"type": "max_pool2d", "kernel": 3, "stride": 2}, Dense(3, "softmax")],
        "cross_entropy"),
    "avg_pool1d, kernel 2": (
        [2, 9], [conv("conv1d", 3, 2, 1, 0, "softplus"), {"type": "avg_pool1d", "kernel": 2},
                 Dense(2)], "mse"),
    "avg_pool2d, kernel [3, 2], stride [2, 1]": (
        [2, 8, 7], [conv("conv2d", 2, 3, 1, 1, "sigmoid"),
                    {"type": "avg_pool2d", "kernel": [3, 2], "stride": [2, 1]},
                    {"type": "flatten"}, Dense(3, "softmax")], "cross_entropy"),
    "flatten of a flat input, flatten before dense": (
        [2, 5, 4], [{"type": "flatten"}, {"type": "flatten"}, Dense(3, "tanh"),
                    Dense(2, "sigmoid")], "bce"),
    "batch norm after conv2d (BatchNorm2d)": (
        [2, 6, 5], [conv("conv2d", 3, [3, 2], 1, [1, 0]),
                    {"type": "batch_norm", "eps": 1e-3, "momentum": 0.3},
                    {"type": "activation", "activation": "relu"},
                    {"type": "max_pool2d", "kernel": 2}, Dense(3, "softmax")], "cross_entropy"),
    "batch norm after conv1d (BatchNorm1d over batch and positions)": (
        [2, 9], [conv("conv1d", 3, 3, 2, 1), {"type": "batch_norm"},
                 {"type": "activation", "activation": "tanh"}, Dense(2)], "mse"),
    "layer norm over (C, H, W)": (
        [2, 6, 6], [conv("conv2d", 3, 3, 1, 1, "relu"), {"type": "layer_norm", "eps": 1e-3},
                    {"type": "avg_pool2d", "kernel": 2}, Dense(3, "softmax")], "cross_entropy"),
    "layer norm over (C, L)": (
        [3, 8], [conv("conv1d", 2, 3, 1, 0, "gelu"), {"type": "layer_norm"}, Dense(2)], "mse"),
    "dropout with a fixed mask on a conv output": (
        [2, 7, 6], [conv("conv2d", 3, 3, 1, 1, "tanh"), {"type": "dropout", "rate": 0.3},
                    {"type": "max_pool2d", "kernel": 2}, Dense(3, "softmax")], "cross_entropy"),
    "a residual over conv outputs": (
        [2, 6, 6], [conv("conv2d", 3, 3, 1, 1, "tanh", name="h"),
                    conv("conv2d", 3, 3, 1, 1, "relu"), {"type": "residual", "from": "h"},
                    {"type": "flatten"}, Dense(2)], "mse"),
}
WEIGHT_DECAY = {"conv2d, kernel [3, 2], stride [2, 1], padding [1, 0]",
                "max_pool1d, kernel 3, stride 2 (overlapping windows)",
                "batch norm after conv2d (BatchNorm2d)"}


def case_network(name, weight_decay=0.0) -> Network:
    inputs, layers, loss = CASES[name]
    return Network(inputs=list(inputs), layers=list(layers), loss=loss, name="cnn",
                   training={"weight_decay": weight_decay})


@pytest.mark.parametrize("seed, case", list(enumerate(CASES)))
def test_each_op_matches_torch(seed, case):
    assert_matches_torch(case_network(case), seed, input_gradient=True)


@pytest.mark.parametrize("case", sorted(WEIGHT_DECAY))
def test_weight_decay_on_conv_weights_matches_torch(case):
    """``lambda/2 * sum ||W||^2`` over the conv and dense weights, as a torch user adds it."""
    assert_matches_torch(case_network(case, weight_decay=0.07), seed=3)


def test_the_cases_hold_what_their_names_say():
    """Each case's geometry is what it claims (a partial last window, a stride that
    leaves rows out): computed from the spec by torch's formula, independently."""
    def extents(name):
        return case_network(name).shapes
    assert extents("conv1d, stride 2, padding 1, a partial last window")[1] == (3, 5)
    # (11 + 2 - 4) / 2 = 4.5: the last window reads one padded zero and leaves no input out
    assert extents("conv2d, odd sizes, stride 2 leaves the last row and column out")[1] == (2, 3, 3)
    # rows 0..6 of 8 and columns 0..7 of 9 are read: the last row and column are not
    assert extents("max_pool2d, kernel [2, 3], stride [1, 2], after conv2d, before conv2d")[2] \
        == (2, 7, 4)
    assert extents("conv2d, stride above the kernel (inputs never read), one channel")[1] \
        == (1, 4, 3)  # windows at -1, 2, 5, 8 of width 2: positions 1, 4, 7 are never read
    assert extents("conv1d, a kernel as large as the padded input (one position)")[1] == (3, 1)


# --------------------------------------------------------- convolution borders
def test_the_input_gradient_of_a_padded_strided_conv_is_a_transposed_conv():
    """g_X of one conv2d layer against torch's own transposed convolution of the output
    gradient, ``conv_transpose2d(g_z, W, stride, padding, output_padding)``: the
    flipped-kernel reading, with the border the last windows never read (the
    ``output_padding``) given zero gradient."""
    network = Network(inputs=[2, 8, 8], layers=[conv("conv2d", 3, 3, 2, [0, 1]),
                                                {"type": "flatten"}], loss="mse")
    derivation = derive_graph(network)
    sizes = {**derivation.sizes, BATCH: BATCH_SIZE}
    arrays = random_arrays(derivation.graph, sizes, network, np.random.default_rng(5))
    values, _ = engine_values(derivation, arrays, with_input_gradient(derivation))
    g_z, W = torch.tensor(values["g_z1"]), torch.tensor(arrays["W1"])
    covered = [(n - 1) * 2 - 2 * pad + 3 for n, pad in zip(g_z.shape[2:], (0, 1), strict=True)]
    extra = tuple(x - c for x, c in zip(arrays["X"].shape[2:], covered, strict=True))
    assert extra == (1, 1)
    expected = torch.nn.functional.conv_transpose2d(g_z, W, stride=2, padding=(0, 1),
                                                    output_padding=extra).numpy()
    assert norm_error(values["g_X"], expected) <= TOLERANCE
    # rows 0..6 are read (windows at 0, 2, 4), row 7 is not: its gradient is 0
    np.testing.assert_array_equal(values["g_X"][:, :, -1, :], 0.0)
    assert np.all(np.abs(values["g_X"][:, :, -2, :]).sum(axis=-1) > 0)


# ------------------------------------------------------------ batch norm state
@pytest.mark.parametrize("case", ["batch norm after conv2d (BatchNorm2d)",
                                  "batch norm after conv1d (BatchNorm1d over batch and positions)"])
def test_batch_norm_running_update_and_eval_graph_match_torch(case):
    """``graph.updates`` (mean and unbiased variance over batch and positions, with the
    layer's momentum) as torch's running buffers after a training forward pass, and
    the evaluation graph's objective (running statistics) as torch in eval mode."""
    network = case_network(case)
    derivation = derive_graph(network)
    values, sizes = engine_values(derivation, random_arrays(
        derivation.graph, {**derivation.sizes, BATCH: BATCH_SIZE}, network,
        np.random.default_rng(7)))
    arrays = {name: values[name] for name, t in derivation.graph.tensors.items()
              if t.role != "value" and t.role != "loss"}
    _, _, net = torch_oracle(network, arrays, training=True)  # updates torch's buffers
    scalars = frozenset(t.name for t in derivation.graph.tensors.values() if t.rank == 0)
    assert derivation.graph.updates
    for state, expr in derivation.graph.updates:
        updated = value_of(expr, state, values, sizes, scalars)
        expected = net.named()[state.name].numpy()
        assert norm_error(updated, expected) <= TOLERANCE, state.name
        assert norm_error(arrays[state.name], expected) > 1e-3  # the update moved it
    evaluated = run(derivation.eval.graph, arrays, sizes)
    objective, _, _ = torch_oracle(network, arrays, training=False)
    assert evaluated["L"] == pytest.approx(objective.item(), rel=TOLERANCE)
    assert evaluated["L"] != pytest.approx(values["L"], rel=1e-6)  # running != batch statistics


def test_the_eval_graph_of_dropout_on_a_conv_output_has_no_mask():
    """Evaluation mode reads no mask (``a = a_prev``): the eval graph's objective is
    torch's in eval mode, and differs from the training objective with the mask."""
    network = case_network("dropout with a fixed mask on a conv output")
    derivation = derive_graph(network)
    sizes = {**derivation.sizes, BATCH: BATCH_SIZE}
    arrays = random_arrays(derivation.graph, sizes, network, np.random.default_rng(8))
    assert "mask2" in derivation.graph.tensors and "mask2" not in derivation.eval.graph.tensors
    assert arrays["mask2"].shape == (BATCH_SIZE, 3, 7, 6)
    evaluated = run(derivation.eval.graph, arrays, sizes)
    objective, _, _ = torch_oracle(network, arrays, training=False)
    assert evaluated["L"] == pytest.approx(objective.item(), rel=TOLERANCE)
    trained, _ = engine_values(derivation, arrays)
    assert evaluated["L"] != pytest.approx(trained["L"], rel=1e-6)


def test_a_conv_bias_before_batch_norm_has_gradient_zero():
    """Batch norm removes the per-channel mean: the bias's gradient is exactly 0 (both
    sides give rounding noise), compared absolutely."""
    network = case_network("batch norm after conv2d (BatchNorm2d)")
    values = assert_matches_torch(network, seed=4)
    assert float(np.linalg.norm(values["g_b1"])) <= ZERO
    assert float(np.linalg.norm(values["g_W1"])) > 1e-3


# --------------------------------------------------------------- max pool ties
TIE_CASES = {  # the layer, the input's per-sample shape
    "kernel 2": ({"type": "max_pool2d", "kernel": 2}, [2, 6, 7]),
    "kernel 3, stride 2 (windows share entries)": (
        {"type": "max_pool2d", "kernel": 3, "stride": 2}, [2, 6, 7]),
    "kernel [2, 3], stride 1": ({"type": "max_pool2d", "kernel": [2, 3], "stride": 1}, [2, 6, 7]),
    "max_pool1d, kernel 3, stride 2": ({"type": "max_pool1d", "kernel": 3, "stride": 2}, [3, 11]),
}


def first_max_routing(X, kernel, stride, g_out):
    """The input gradient of 2-d max pooling written out loop by loop: each window's
    output gradient goes to its first maximum in row-major order."""
    expected = np.zeros(X.shape)
    for s, c, i, j in np.ndindex(g_out.shape):
        window = X[s, c, i * stride[0]:i * stride[0] + kernel[0],
                   j * stride[1]:j * stride[1] + kernel[1]]
        p, q = np.unravel_index(np.argmax(window), window.shape)  # the first maximum
        expected[s, c, i * stride[0] + p, j * stride[1] + q] += g_out[s, c, i, j]
    return expected


def per_axis_pair(value) -> tuple:
    values = tuple(value) if isinstance(value, list) else (value,)
    return values * 2 if len(values) == 1 else values


@pytest.mark.parametrize("case", TIE_CASES)
def test_max_pool_ties_route_the_gradient_to_the_first_maximum(case):
    """Inputs of a few integers (many windows with two or more equal maxima): the
    engine's g_X is torch CPU's and the loop-by-loop first-maximum routing (a 1-d
    pooling read as a 2-d one of height 1)."""
    layer, shape = TIE_CASES[case]
    network = Network(inputs=shape, layers=[layer, Dense(3, "softmax")], loss="cross_entropy")
    X = np.random.default_rng(11).integers(0, 3, (BATCH_SIZE, *shape)).astype(float)
    values = assert_matches_torch(network, seed=11, inputs=X, input_gradient=True)
    kernel, stride = per_axis_pair(layer["kernel"]), per_axis_pair(layer.get("stride",
                                                                             layer["kernel"]))
    as_2d = (lambda a: a[:, :, None, :]) if len(shape) == 2 else (lambda a: a)
    if len(shape) == 2:
        kernel, stride = (1, kernel[0]), (1, stride[0])
    expected = first_max_routing(as_2d(X), kernel, stride, as_2d(values["g_a1"]))
    assert norm_error(as_2d(values["g_X"]), expected) <= TOLERANCE
    windows = np.lib.stride_tricks.sliding_window_view(as_2d(X), kernel, axis=(2, 3))[
        :, :, ::stride[0], ::stride[1]]
    windows = windows.reshape(*windows.shape[:4], -1)
    tied = np.sum(windows == windows.max(axis=-1, keepdims=True), axis=-1) > 1
    assert tied.mean() > 0.3  # the point really is full of ties


def test_max_pool_indicator_is_one_first_maximum_per_window():
    network = case_network("max_pool2d, kernel [2, 3], stride [1, 2], after conv2d, before conv2d")
    derivation = derive_graph(network)
    values, _ = engine_values(derivation, random_arrays(
        derivation.graph, {**derivation.sizes, BATCH: BATCH_SIZE}, network,
        np.random.default_rng(2)))
    chi = values["chi2"]
    assert chi.shape == (BATCH_SIZE, 2, 7, 4, 2, 3)
    np.testing.assert_array_equal(chi.sum(axis=(4, 5)), 1.0)
    windows = np.lib.stride_tricks.sliding_window_view(values["a1"], (2, 3), axis=(2, 3))[
        :, :, ::1, ::2]
    np.testing.assert_array_equal((windows * chi).sum(axis=(4, 5)), values["a2"])
    np.testing.assert_array_equal(values["a2"], windows.max(axis=(4, 5)))


# ------------------------------------------------------------------ the sweep
def random_cnn(seed: int) -> Network:
    """A seeded random small CNN: conv blocks (random kernels, strides, padding,
    activations round-robin over every activation), each maybe followed by a pool, a
    norm, an activation or dropout, then maybe flatten and a hidden dense layer, and a
    dense output for cross_entropy, mse or bce; maybe weight decay."""
    rng = np.random.default_rng(1000 + seed)
    axes = 1 + seed % 2
    shape = [int(rng.integers(1, 4))] + [int(rng.integers(5, 10)) for _ in range(axes)]
    inputs, layers = list(shape), []
    activations = iter(np.roll(SWEEP_ACTIVATIONS, seed * 3))
    for _ in range(int(rng.integers(1, 4))):
        kernel = [int(rng.integers(1, min(4, n + 1))) for n in shape[1:]]
        padding = [int(rng.integers(0, k)) for k in kernel]
        stride = [int(rng.integers(1, 4)) for _ in kernel]
        channels = int(rng.integers(1, 4))
        layers.append(conv(f"conv{axes}d", channels, kernel, stride, padding,
                           str(next(activations))))
        shape = [channels] + [(n + 2 * p - k) // s + 1
                              for n, k, s, p in zip(shape[1:], kernel, stride, padding,
                                                    strict=True)]
        extra = EXTRAS[(seed // 2 + len(layers)) % len(EXTRAS)]
        if extra in ("max", "avg") and min(shape[1:]) >= 2:
            pool_stride = int(rng.integers(1, 4))
            layers.append({"type": f"{extra}_pool{axes}d", "kernel": 2, "stride": pool_stride})
            shape = [shape[0]] + [(n - 2) // pool_stride + 1 for n in shape[1:]]
        elif extra in ("batch_norm", "layer_norm"):
            layers.append({"type": str(extra), "eps": float(rng.choice([1e-5, 0.1]))})
        elif extra == "activation":
            layers.append({"type": "activation", "activation": str(next(activations))})
        elif extra == "dropout":
            layers.append({"type": "dropout", "rate": float(rng.uniform(0.1, 0.5))})
    if rng.random() < 0.5:
        layers.append({"type": "flatten"})
    if rng.random() < 0.5:
        layers.append(Dense(int(rng.integers(2, 5)), str(next(activations))))
    loss = ("cross_entropy", "mse", "bce")[seed % 3]
    output = {"mse": "identity", "cross_entropy": "softmax", "bce": "sigmoid"}[loss]
    layers.append(Dense(3, output))
    return Network(inputs=inputs, layers=layers, loss=loss, name=f"cnn{seed}",
                   training={"weight_decay": float(rng.choice([0.0, 0.05]))})


SWEEP_SEEDS = range(16)
EXTRAS = ("max", "avg", "batch_norm", "layer_norm", "activation", "dropout", "max", "none")


def test_the_sweep_covers_every_piece():
    networks = [random_cnn(seed) for seed in SWEEP_SEEDS]
    types = {layer.type for network in networks for layer in network.layers}
    activations = {layer.activation for network in networks for layer in network.layers
                   if layer.activation}
    assert {"conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
            "flatten", "batch_norm", "layer_norm", "dropout", "activation"} <= types, types
    assert set(SWEEP_ACTIVATIONS) <= activations
    assert {network.loss for network in networks} == {"cross_entropy", "mse", "bce"}
    strides = {s for network in networks for layer in network.layers
               if layer.type.startswith("conv") for s in layer.options["stride"]}
    paddings = {p for network in networks for layer in network.layers
                if layer.type.startswith("conv") for p in layer.options["padding"]}
    assert strides == {1, 2, 3} and {0, 1, 2} <= paddings


@pytest.mark.parametrize("seed", SWEEP_SEEDS)
def test_random_cnns_match_torch(seed):
    assert_matches_torch(random_cnn(seed), seed, input_gradient=True)


# ------------------------------------------------- the self-check sees conv slips
def with_gradient(derivation, name, change) -> GraphDerivation:
    """A copy of ``derivation`` whose gradient of ``name`` is ``change(expr)`` (the
    cached derivation itself is left alone)."""
    gradients = [replace(g, expr=change(g.expr)) if g.of.name == name else g
                 for g in derivation.gradients]
    return GraphDerivation(derivation.network, derivation.train, derivation.eval, gradients)


def chi_as_average(expr):
    """Max pooling's gradient routed as average pooling's: every window entry 1/K."""
    return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label.name == "chi2",
                        lambda e: sp.Rational(1, 4))


i2, i3 = FREE[2:4]
SLIPS = {  # the classic mistakes of a hand derivation, each in one gradient
    "the kernel gradient rotated by 180 degrees": (
        "W1", lambda expr: expr.xreplace({i2: 2 - i2, i3: 2 - i3})),
    "max pooling's gradient spread as average pooling's": ("a1", chi_as_average),
    "the bias gradient summed over the batch only": (
        "b1", lambda expr: sp.Sum(expr.function.xreplace({expr.limits[1][0]: 0,
                                                         expr.limits[2][0]: 0}),
                                  expr.limits[0])),
}


@pytest.mark.parametrize("slip", SLIPS)
def test_the_engines_self_check_catches_a_conv_slip(slip):
    """derive_graph's self-check, which every case above passed, is a real check for
    these ops: the same derivation with one slip in a conv or pool gradient fails it."""
    name, change = SLIPS[slip]
    derivation = derive_graph(case_network("max_pool2d, kernel 2"))
    self_check(derivation)  # the right one passes
    with pytest.raises(InternalError, match="self-check failed"):
        self_check(with_gradient(derivation, name, change))
