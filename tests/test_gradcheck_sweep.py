"""Gradient sweep of generated modules (issue 3): every hidden activation, every
output/loss pair, depths 1-4, unequal widths.

Each generated module's ``gradients`` is compared with two independent
references: reverse-mode autodiff by the ``autograd`` package of a forward
pass written here from the definitions in CONVENTIONS §2 (relative error
<= 1e-8), and symbp's own fourth-order finite differences
(:func:`symbp.gradcheck.check_module`). The same modules are then pushed to
pre-activations of +-1000, generated in float32, trained with each optimizer,
saved and loaded.

CNNs (issue 11): a seeded sweep of random small convolutional networks
(tests/test_engine_conv.py's ``random_cnn``: conv1d/conv2d with strides and
padding, max and average pooling, batch and layer norm, dropout, flatten,
every activation, three losses, weight decay) is generated and compared with
the same network in ``torch.nn`` (tests/torch_reference.py) by autograd, and
checked by :func:`~symbp.gradcheck.check_module` and ``symbp check``.

The full cartesian product (9 activations ^ 3 hidden layers x 6 losses x 4
depths) is far too slow to derive, so :data:`SWEEP` is a deterministic
pseudo-random selection; :func:`test_sweep_covers_every_piece` checks that it
still covers every activation, every output/loss pair and every depth.
"""

from __future__ import annotations

import random
import warnings
from functools import lru_cache

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.scipy.special import erf as autograd_erf

from symbp.codegen import generate_source, load_module
from symbp.gradcheck import check_module
from symbp.spec import Dense, Network, load_spec

HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus",
                      "silu", "gelu")
OUTPUTS = (("softmax", "cross_entropy"), ("sigmoid", "bce"), ("identity", "mse"),
           ("sigmoid", "mse"), ("tanh", "mse"), ("softmax", "mse"))

BROKEN_OUTPUTS: dict = {}  # output/loss pairs known not to generate (none)

RELATIVE_TOLERANCE = 1e-8
CUSTOM_ACTIVATIONS = {"mish": "x*tanh(log(1 + exp(x)))"}
CUSTOM_LOSSES = {"logcosh": "log(cosh(a - y))",
                 "pseudo_huber": "sqrt(1 + (a - y)**2)",  # through softmax: several cse nodes
                 "linear": "a*y"}  # delta^(L) = y: a caller's array, never to be scaled in place


# ------------------------------------------------------------ architectures
# An architecture is hashable: (inputs, ((units, activation), ...), loss).
def _sweep(count: int = 26, seed: int = 20240611):
    """A deterministic selection: depths cycle 1..4, output/loss pairs cycle over the
    working pairs, hidden activations go round-robin (in a seeded order) over the
    hidden slots, and each layer's width differs from the previous one."""
    rng = random.Random(seed)
    order = list(HIDDEN_ACTIVATIONS)
    rng.shuffle(order)
    working = [pair for pair in OUTPUTS if pair not in BROKEN_OUTPUTS]
    slot = 0
    architectures = []
    for index in range(count):
        depth = 1 + index % 4
        output, loss = working[index % len(working)]
        while True:  # draw widths until the architecture is new
            inputs = rng.randint(2, 5)
            previous, layers = inputs, []
            for offset in range(depth - 1):
                units = rng.choice([n for n in range(2, 7) if n != previous])
                layers.append((units, order[(slot + offset) % len(order)]))
                previous = units
            low = 2 if output == "softmax" else 1
            units = rng.choice([n for n in range(low, 5) if n != previous])
            layers.append((units, output))
            candidate = (inputs, tuple(layers), loss)
            if candidate not in architectures:
                break
        slot += depth - 1
        architectures.append(candidate)
    return architectures


SWEEP = _sweep()
SOFTMAX_MSE = (3, ((4, "tanh"), (3, "softmax")), "mse")


def arch_id(arch) -> str:
    inputs, layers, loss = arch
    return "-".join([str(inputs)] + [f"{units}{activation}" for units, activation in layers]) \
        + f":{loss}"


def network(arch, training=None) -> Network:
    inputs, layers, loss = arch
    return Network(inputs=inputs, layers=[Dense(u, a) for u, a in layers], loss=loss,
                   name="sweep", activations=dict(CUSTOM_ACTIVATIONS),
                   losses=dict(CUSTOM_LOSSES), training=dict(training or {}))


@lru_cache(maxsize=None)
def _generate(arch, dtype, training):
    try:
        return load_module(generate_source(network(arch, dict(training)), dtype)), None
    except Exception as exc:  # noqa: BLE001 - cached so a broken case is derived once
        return None, exc


def generated(arch, dtype: str = "float64", training=()):
    """The generated module for ``arch`` (cached: deriving costs about a second)."""
    module, error = _generate(arch, dtype, tuple(training))
    if error is not None:
        raise error
    return module


def with_xfail(architectures):
    """pytest params; a known-broken output/loss pair is marked strict xfail."""
    params = []
    for arch in architectures:
        inputs, layers, loss = arch
        reason = BROKEN_OUTPUTS.get((layers[-1][1], loss))
        marks = [pytest.mark.xfail(strict=True, raises=TypeError, reason=reason)] if reason else []
        params.append(pytest.param(arch, id=arch_id(arch), marks=marks))
    return params


# --------------------------------------------------------- the reference
def _softmax(z):
    shifted = z - anp.max(z, axis=1, keepdims=True)
    e = anp.exp(shifted)
    return e / anp.sum(e, axis=1, keepdims=True)


REFERENCE_ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 1.0 / (1.0 + anp.exp(-z)),
    "tanh": anp.tanh,
    "relu": lambda z: anp.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: anp.where(z > 0, z, 0.01 * z),
    "elu": lambda z: anp.where(z > 0, z, anp.exp(z) - 1.0),
    "softplus": lambda z: anp.log1p(anp.exp(z)),
    "silu": lambda z: z / (1.0 + anp.exp(-z)),
    "gelu": lambda z: 0.5 * z * (1.0 + autograd_erf(z / anp.sqrt(2.0))),
    "softmax": _softmax,
    "mish": lambda z: z * anp.tanh(anp.log1p(anp.exp(z))),
}
REFERENCE_LOSSES = {  # per output; summed over outputs, mean over samples
    "mse": lambda a, y: 0.5 * (a - y) ** 2,
    "cross_entropy": lambda a, y: -y * anp.log(a),
    "bce": lambda a, y: -(y * anp.log(a) + (1.0 - y) * anp.log(1.0 - a)),
    "logcosh": lambda a, y: anp.log(anp.cosh(a - y)),
    "pseudo_huber": lambda a, y: anp.sqrt(1.0 + (a - y) ** 2),
    "linear": lambda a, y: a * y,
}


def reference_forward(params, arch, X):
    _, layers, _ = arch
    a = X
    for index, (_, activation) in enumerate(layers, 1):
        z = anp.dot(a, params[f"W{index}"].T) + params[f"b{index}"]
        a = REFERENCE_ACTIVATIONS[activation](z)
    return a


def reference_loss(params, arch, X, Y):
    return anp.mean(anp.sum(REFERENCE_LOSSES[arch[2]](reference_forward(params, arch, X), Y),
                            axis=1))


def random_problem(arch, seed: int = 0, batch: int = 7):
    """Parameters with non-zero biases, inputs and valid targets for the output/loss."""
    inputs, layers, loss = arch
    rng = np.random.default_rng(seed)
    params, previous = {}, inputs
    for index, (units, _) in enumerate(layers, 1):
        params[f"W{index}"] = rng.normal(0.0, 1.0 / np.sqrt(previous), (units, previous))
        params[f"b{index}"] = rng.normal(0.0, 0.5, units)
        previous = units
    X = rng.normal(0.0, 1.0, (batch, inputs))
    outputs, output = layers[-1]
    if output == "softmax":
        Y = np.eye(outputs)[rng.integers(0, outputs, batch)]
    elif output == "sigmoid":
        Y = rng.integers(0, 2, (batch, outputs)).astype(float)
    else:
        Y = rng.normal(0.0, 0.5, (batch, outputs))
    return params, X, Y


def relative_error(value, reference) -> float:
    value, reference = np.asarray(value, dtype=np.float64), np.asarray(reference)
    scale = max(float(np.max(np.abs(reference))), 1e-300)
    return float(np.max(np.abs(value - reference)) / scale)


# ----------------------------------------------------------------- the sweep
def test_sweep_covers_every_piece():
    hidden = {activation for _, layers, _ in SWEEP for _, activation in layers[:-1]}
    outputs = {(layers[-1][1], loss) for _, layers, loss in SWEEP + [SOFTMAX_MSE]}
    depths = {len(layers) for _, layers, _ in SWEEP}
    assert hidden == set(HIDDEN_ACTIVATIONS)
    assert outputs == set(OUTPUTS)
    assert depths == {1, 2, 3, 4}
    for inputs, layers, _ in SWEEP:
        widths = [inputs] + [units for units, _ in layers]
        assert all(a != b for a, b in zip(widths, widths[1:], strict=False)), widths
    assert len(set(SWEEP)) == len(SWEEP)


@pytest.mark.parametrize("arch", with_xfail(SWEEP + [SOFTMAX_MSE]))
def test_gradients_match_autograd(arch):
    module = generated(arch)
    params, X, Y = random_problem(arch)
    assert relative_error(module.forward(params, X), reference_forward(params, arch, X)) <= 1e-12
    assert module.loss(params, X, Y) == pytest.approx(float(reference_loss(params, arch, X, Y)),
                                                      rel=1e-12)
    derived = module.gradients(params, X, Y)
    expected = grad(reference_loss)(params, arch, X, Y)
    assert set(derived) == set(params)
    for name in params:
        assert derived[name].shape == params[name].shape, name
        error = relative_error(derived[name], expected[name])
        assert error <= RELATIVE_TOLERANCE, f"{name}: relative error {error:.2e}"


@pytest.mark.parametrize("arch", with_xfail(SWEEP + [SOFTMAX_MSE]))
def test_gradients_match_finite_differences(arch):
    module = generated(arch)
    report = check_module(module)
    assert {row.name for row in report.rows} == set(module.PARAM_NAMES)
    assert report.passed, "\n" + report.table()
    assert report.skipped == 0, "\n" + report.table()  # random points sit on no kink


# ------------------------------------------------------- custom pieces by spec
SPEC_MISH_LOGCOSH = """\
name = "custom_net"
inputs = 3
loss = "logcosh"

[activations]
mish = "x*tanh(log(1 + exp(x)))"

[losses]
logcosh = "log(cosh(a - y))"

[[layers]]
units = 4
activation = "mish"

[[layers]]
units = 2
activation = "tanh"

[[layers]]
units = 3
activation = "identity"
"""


@pytest.fixture(scope="module")
def custom_module(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "custom_net.toml"
    path.write_text(SPEC_MISH_LOGCOSH, encoding="utf-8")
    return load_module(generate_source(load_spec(path), "float64", spec_name=path.name))


def test_custom_activation_and_loss_from_spec(custom_module):
    arch = (3, ((4, "mish"), (2, "tanh"), (3, "identity")), "logcosh")
    assert custom_module.SPEC["activations"] == CUSTOM_ACTIVATIONS
    assert custom_module.SPEC["losses"] == {"logcosh": CUSTOM_LOSSES["logcosh"]}
    params, X, Y = random_problem(arch, seed=3)
    assert custom_module.loss(params, X, Y) == pytest.approx(
        float(reference_loss(params, arch, X, Y)), rel=1e-12)
    derived = custom_module.gradients(params, X, Y)
    expected = grad(reference_loss)(params, arch, X, Y)
    for name in params:
        error = relative_error(derived[name], expected[name])
        assert error <= RELATIVE_TOLERANCE, f"{name}: relative error {error:.2e}"
    report = check_module(custom_module, seed=5)
    assert report.passed, "\n" + report.table()


# ----------------------------------------------------------------- stability
def _extreme_params(module, start_sign: float):
    """Every bias +-1000, alternating by unit, so each unit sees a huge pre-activation
    and the output layer sees both signs at once."""
    params = module.init_params(0, dtype=np.float64)
    for name, value in params.items():
        if name.startswith("b"):
            signs = np.where(np.arange(value.size) % 2 == 0, start_sign, -start_sign)
            params[name] = 1000.0 * signs
    return params


def _targets(module, batch, rng):
    outputs = module.LAYER_SIZES[-1]
    if module.TASK == "classification":
        return np.eye(outputs)[rng.integers(0, outputs, batch)]
    if module.TASK == "binary":
        return rng.integers(0, 2, (batch, outputs)).astype(float)
    return rng.normal(0.0, 1.0, (batch, outputs))


def _evaluate_extreme(module, start_sign):
    rng = np.random.default_rng(1)
    X = rng.normal(0.0, 1.0, (6, module.LAYER_SIZES[0]))
    Y = _targets(module, 6, rng)
    params = _extreme_params(module, start_sign)
    return module.forward(params, X), module.loss(params, X, Y), module.gradients(params, X, Y)


@pytest.mark.parametrize("start_sign", [1.0, -1.0], ids=["+1000", "-1000"])
@pytest.mark.parametrize("arch", [pytest.param(a, id=arch_id(a)) for a in SWEEP])
def test_extreme_preactivations_stay_finite(arch, start_sign):
    module = generated(arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # warnings: the next test
        output, value, grads = _evaluate_extreme(module, start_sign)
    assert np.all(np.isfinite(output))
    assert np.isfinite(value)
    for name, gradient in grads.items():
        assert np.all(np.isfinite(gradient)), name


@pytest.mark.parametrize("arch", [pytest.param(a, id=arch_id(a)) for a in SWEEP])
def test_extreme_preactivations_raise_no_floating_point_error(arch):
    """No overflow or invalid operation on the way (underflow to 0 is fine)."""
    module = generated(arch)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for start_sign in (1.0, -1.0):
            _evaluate_extreme(module, start_sign)


CUSTOM_LOSS_ARCHS = [
    (4, ((5, "tanh"), (3, "softmax")), "pseudo_huber"),
    (3, ((4, "relu"), (3, "sigmoid"), (4, "softmax")), "pseudo_huber"),
    (3, ((4, "gelu"), (2, "identity")), "linear"),
]


@pytest.mark.parametrize("arch", [pytest.param(a, id=arch_id(a)) for a in CUSTOM_LOSS_ARCHS])
def test_custom_losses_match_autograd_and_leave_inputs_alone(arch):
    """Output deltas with several elementwise parts (each with its own common
    subexpressions) and an output delta that is just Y."""
    module = generated(arch)
    params, X, Y = random_problem(arch, seed=11)
    X_kept, Y_kept = X.copy(), Y.copy()
    derived = module.gradients(params, X, Y)
    expected = grad(reference_loss)(params, arch, X, Y)
    for name in params:
        error = relative_error(derived[name], expected[name])
        assert error <= RELATIVE_TOLERANCE, f"{name}: relative error {error:.2e}"
    module.train_step(params, X, Y, 0.1)
    np.testing.assert_array_equal(X, X_kept)
    np.testing.assert_array_equal(Y, Y_kept)


# -------------------------------------------------------------------- float32
def float32_arch(activation):
    """A two-layer network with ``activation`` hidden; the output/loss pairs take turns."""
    working = [pair for pair in OUTPUTS if pair not in BROKEN_OUTPUTS]
    output, loss = working[HIDDEN_ACTIVATIONS.index(activation) % len(working)]
    return (4, ((5, activation), (3, output)), loss)


def _float32_problem(module32):
    rng = np.random.default_rng(2)
    params = module32.init_params(0)
    for name in params:
        if name.startswith("b"):
            params[name] = params[name] + rng.normal(0.0, 0.5, params[name].shape).astype(
                np.float32)
    X = rng.normal(0.0, 1.0, (9, module32.LAYER_SIZES[0])).astype(np.float32)
    Y = _targets(module32, 9, rng).astype(np.float32)
    return params, X, Y


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_float32_module_stays_float32(activation):
    module = generated(float32_arch(activation), "float32")
    assert module.DTYPE == np.float32
    params, X, Y = _float32_problem(module)
    assert all(value.dtype == np.float32 for value in params.values())
    assert module.forward(params, X).dtype == np.float32
    grads = module.gradients(params, X, Y)
    assert {name: g.dtype for name, g in grads.items()} == {name: np.dtype(np.float32)
                                                            for name in params}
    history = module.train(params, X, Y, epochs=2, batch_size=4, learning_rate=0.01,
                           optimizer="adam")
    work = module._workspace(params, 4)  # the set that train reused for its batches of 4
    assert {value.dtype for value in work.values() if isinstance(value, np.ndarray)} \
        | {value.dtype for value in work["grads"].values()} == {np.dtype(np.float32)}
    assert np.all(np.isfinite(history))
    assert {name: p.dtype for name, p in params.items()} == {name: np.dtype(np.float32)
                                                             for name in params}


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_float32_agrees_with_float64(activation):
    """float32 results against the float64 autograd reference, to float32 accuracy."""
    arch = float32_arch(activation)
    module = generated(arch, "float32")
    params32, X, Y = _float32_problem(module)
    params64 = {name: value.astype(np.float64) for name, value in params32.items()}
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    assert relative_error(module.forward(params32, X), reference_forward(params64, arch, X64)) \
        <= 1e-4
    assert module.loss(params32, X, Y) == pytest.approx(
        float(reference_loss(params64, arch, X64, Y64)), rel=1e-4, abs=1e-6)
    grads32 = module.gradients(params32, X, Y)
    grads64 = grad(reference_loss)(params64, arch, X64, Y64)
    for name in params64:
        error = relative_error(grads32[name], grads64[name])
        assert error <= 1e-4, f"{name}: float32 vs float64 relative error {error:.2e}"


# ------------------------------------------------------- training and the rest
TRAINING_ARCH = (4, ((6, "tanh"), (3, "softmax")), "cross_entropy")
TRAINING_SPEC = (("optimizer", "momentum"), ("learning_rate", 0.3), ("batch_size", 16),
                 ("epochs", 7), ("seed", 3))


def synthetic_classification(seed: int = 0, rows: int = 90):
    """Three classes separated by a fixed linear rule."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (rows, 4))
    W = np.array([[2.0, -1.0, 0.5, 0.0], [-1.5, 2.0, 0.0, 1.0], [0.0, -0.5, -2.0, 1.5]])
    labels = np.argmax(X @ W.T, axis=1)
    return X, np.eye(3)[labels], labels


@pytest.mark.parametrize("optimizer, learning_rate",
                         [("sgd", 0.5), ("momentum", 0.05), ("adam", 0.02)])
def test_each_optimizer_lowers_the_loss(optimizer, learning_rate):
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    X, Y, _ = synthetic_classification()
    params = module.init_params(0)
    before = module.loss(params, X, Y)
    history = module.train(params, X, Y, epochs=25, batch_size=16, learning_rate=learning_rate,
                           optimizer=optimizer, seed=0)
    assert len(history) == 25
    assert np.all(np.isfinite(history))
    after = module.loss(params, X, Y)  # params are updated in place
    assert after < 0.5 * before and history[-1] < 0.5 * before, (optimizer, before, history)


def test_history_is_the_mean_loss_before_each_update():
    """CONVENTIONS §5: an epoch's entry is the mean of its minibatch losses, each
    from the parameters before that batch's update. With one batch per epoch it
    is the loss of the parameters the epoch starts from (one plain-SGD epoch per
    call, so that no optimizer state is lost between calls)."""
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    X, Y, _ = synthetic_classification(rows=24)
    params = module.init_params(0)
    for _ in range(3):
        before = module.loss(params, X, Y)
        history = module.train(params, X, Y, epochs=1, batch_size=24, learning_rate=0.1,
                               optimizer="sgd", seed=0)
        assert history == pytest.approx([before], rel=1e-12)
        assert module.loss(params, X, Y) < before


def hand_written_optimizer(name, learning_rate):
    """The update rules of PyTorch's optimizers, written out here as an oracle:
    SGD with momentum 0.9 (v = 0.9 v + g, p -= lr v) and Adam (0.9, 0.999, 1e-8):
    p -= lr m^ / (sqrt(v^) + 1e-8) with bias-corrected m^ and v^."""
    state = {"t": 0, "m": {}, "v": {}}

    def update(params, grads):
        state["t"] += 1
        t = state["t"]
        for key, g in grads.items():
            m = state["m"].get(key, np.zeros_like(g))
            v = state["v"].get(key, np.zeros_like(g))
            if name == "sgd":
                params[key] = params[key] - learning_rate * g
            elif name == "momentum":
                m = 0.9 * m + g
                params[key] = params[key] - learning_rate * m
            else:
                m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
                m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
                params[key] = params[key] - learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
            state["m"][key], state["v"][key] = m, v

    return update


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_optimizer_steps_match_the_update_rules(optimizer):
    """Full-batch training, so the shuffling cannot matter: each epoch is one update
    with `gradients`, which must equal the hand-written rule's."""
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    X, Y, _ = synthetic_classification(rows=20)
    trained, expected = module.init_params(0), module.init_params(0)
    module.train(trained, X, Y, epochs=4, batch_size=20, learning_rate=0.1,
                 optimizer=optimizer, seed=0)
    update = hand_written_optimizer(optimizer, 0.1)
    for _ in range(4):
        update(expected, module.gradients(expected, X, Y))
    for name in expected:
        np.testing.assert_allclose(trained[name], expected[name], rtol=1e-10, atol=1e-12)


def test_work_arrays_do_not_leak_between_calls():
    """`gradients` returns fresh arrays: a later call (same or other batch size, same
    thread, so the same work arrays) must not change an earlier result, and
    `train_step` with batch sizes that alternate is exactly p - lr * gradients."""
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    X, Y, _ = synthetic_classification(rows=30)
    params = module.init_params(0)
    first = module.gradients(params, X[:16], Y[:16])
    kept = {name: value.copy() for name, value in first.items()}
    module.gradients(params, X[16:], Y[16:])
    module.gradients(params, X[:16] * 2.0, Y[:16])
    for name in kept:
        np.testing.assert_array_equal(first[name], kept[name])
        assert first[name] is not params[name]
    for rows in (slice(0, 16), slice(16, 30), slice(0, 16), slice(3, 4)):
        expected = {name: value - 0.2 * module.gradients(params, X[rows], Y[rows])[name]
                    for name, value in params.items()}
        module.train_step(params, X[rows], Y[rows], 0.2)
        for name in params:
            np.testing.assert_allclose(params[name], expected[name], rtol=1e-13, atol=1e-15)


def test_train_step_allocates_no_parameter_sized_array():
    """After the first step, a step writes into its work arrays: what it still
    allocates (small temporaries such as 1 - a**2) stays far below one weight
    gradient, where a step without work arrays would allocate every gradient anew."""
    import tracemalloc

    arch = (300, ((400, "tanh"), (3, "softmax")), "cross_entropy")
    module = generated(arch)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(0.0, 1.0, (4, 300)), np.eye(3)[rng.integers(0, 3, 4)]
    params = module.init_params(0)
    module.train_step(params, X, Y, 0.01)  # allocates the work arrays
    tracemalloc.start()
    try:
        module.train_step(params, X, Y, 0.01)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < params["W1"].nbytes / 10, (peak, params["W1"].nbytes)


def test_gradients_keep_no_work_arrays():
    """Only training steps keep work arrays; `gradients` on a big batch leaves none."""
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    X, Y, _ = synthetic_classification(rows=77)
    params = module.init_params(0)
    module.gradients(params, X, Y)
    assert (77, params["W1"].dtype) not in vars(module._WORK).get("cache", {})
    module.train_step(params, X, Y, 0.1)
    assert (77, params["W1"].dtype) in vars(module._WORK).get("cache", {})


def test_results_are_not_work_arrays():
    """What forward, loss and gradients return is the caller's: later training steps
    on a batch of the same size (which reuse the work arrays) leave it unchanged."""
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    X, Y, _ = synthetic_classification(rows=16)
    params = module.init_params(0)
    module.train_step(params, X, Y, 0.1)  # the work arrays for 16 rows now exist
    output, grads = module.forward(params, X), module.gradients(params, X, Y)
    kept_output, kept = output.copy(), {name: value.copy() for name, value in grads.items()}
    for _ in range(2):
        module.train_step(params, X, Y, 0.1)
    np.testing.assert_array_equal(output, kept_output)
    for name in kept:
        np.testing.assert_array_equal(grads[name], kept[name])


def test_threads_get_their_own_work_arrays():
    """Two threads stepping their own copies at once end where one thread would."""
    import threading

    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    X, Y, _ = synthetic_classification(rows=64)
    alone = module.init_params(0)
    for _ in range(200):
        module.train_step(alone, X, Y, 0.05)
    copies = [module.init_params(0), module.init_params(0)]

    def run(params):
        for _ in range(200):
            module.train_step(params, X, Y, 0.05)

    threads = [threading.Thread(target=run, args=(params,)) for params in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for params in copies:
        for name in alone:
            np.testing.assert_array_equal(params[name], alone[name])


def test_train_defaults_come_from_the_spec():
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    assert module.SPEC["training"] == {**dict(TRAINING_SPEC), "weight_decay": 0.0}
    X, Y, _ = synthetic_classification(seed=1)
    defaults, explicit = module.init_params(0), module.init_params(0)
    history = module.train(defaults, X, Y)
    assert len(history) == 7
    same = module.train(explicit, X, Y, epochs=7, batch_size=16, learning_rate=0.3,
                        optimizer="momentum", seed=3)
    assert history == same
    other = module.train(module.init_params(0), X, Y, epochs=7, batch_size=16,
                         learning_rate=0.3, optimizer="sgd", seed=3)
    assert other != history  # the optimizer setting really is used
    with pytest.raises(ValueError):
        module.train(module.init_params(0), X, Y, epochs=1, optimizer="rmsprop")


def test_save_and_load_params_round_trip(tmp_path):
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    params = module.init_params(5)
    params["b1"] += 0.25
    path = tmp_path / "params.npz"
    module.save_params(params, path)
    loaded = module.load_params(path)
    assert list(loaded) == list(module.PARAM_NAMES)
    for name in params:
        np.testing.assert_array_equal(loaded[name], params[name])
        assert loaded[name].dtype == np.float64
    assert all(v.dtype == np.float32 for v in module.load_params(path, np.float32).values())
    wrong = dict(params, W2=np.zeros((3, 5)))
    module.save_params(wrong, tmp_path / "wrong.npz")
    with pytest.raises(ValueError, match="W2"):
        module.load_params(tmp_path / "wrong.npz")


def test_load_params_checks_bias_shapes(tmp_path):
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    params = dict(module.init_params(0), b1=np.zeros(5))  # b1 should have shape (6,)
    module.save_params(params, tmp_path / "wrong_bias.npz")
    with pytest.raises(ValueError, match="b1"):
        module.load_params(tmp_path / "wrong_bias.npz")


def test_predict_returns_labels():
    module = generated(TRAINING_ARCH, training=TRAINING_SPEC)
    X, Y, labels = synthetic_classification(seed=2)
    params = module.init_params(0)
    module.train(params, X, Y, epochs=30, batch_size=16, learning_rate=0.5, optimizer="sgd")
    predicted = module.predict(params, X)
    assert predicted.shape == (len(X),)
    assert np.issubdtype(predicted.dtype, np.integer)
    assert set(np.unique(predicted)) <= {0, 1, 2}
    np.testing.assert_array_equal(predicted, np.argmax(module.forward(params, X), axis=1))
    assert np.mean(predicted == labels) > 0.8


def test_predict_binary_and_regression():
    binary = next(a for a in SWEEP if a[1][-1] == (1, "sigmoid"))
    module = generated(binary)
    params, X, _ = random_problem(binary)
    labels = module.predict(params, X)
    assert labels.shape == (len(X),)
    np.testing.assert_array_equal(labels, (module.forward(params, X)[:, 0] > 0.5).astype(int))
    regression = next(a for a in SWEEP if a[1][-1][1] == "identity")
    module = generated(regression)
    params, X, _ = random_problem(regression)
    np.testing.assert_array_equal(module.predict(params, X), module.forward(params, X))


# ------------------------------------------------------------ CNNs (issue 11)
CNN_SEEDS = range(12)
CNN_BATCH = 6
DIGITS_CNN = """\
name = "digits_like_cnn"
inputs = [1, 8, 8]
loss = "cross_entropy"

[[layers]]
type = "conv2d"
channels = 4
kernel = 3
padding = 1
activation = "relu"

[[layers]]
type = "conv2d"
channels = 6
kernel = 3
activation = "relu"

[[layers]]
type = "max_pool2d"
kernel = 2

[[layers]]
units = 10
activation = "softmax"
"""


@lru_cache(maxsize=None)
def generated_cnn(seed):
    from test_engine_conv import random_cnn

    network = random_cnn(seed)
    return load_module(generate_source(network, "float64")), network


def cnn_problem(module, network, seed):
    """Parameters with offsets on biases and gains, inputs of the spec's shape, valid
    targets and dropout masks of each dropout layer's output shape."""
    from test_engine_conv import targets

    rng = np.random.default_rng(seed)
    params = module.init_params(seed)
    for name in params:
        if name.startswith(("b", "gamma")):
            params[name] = params[name] + rng.normal(0.0, 0.3, params[name].shape)
    X = rng.normal(0.0, 1.0, (CNN_BATCH, *network.input_shape))
    Y = targets(network.loss, (CNN_BATCH, network.widths[-1]), rng)
    masks = {f"mask{index}": (rng.random((CNN_BATCH, *network.shapes[index])) >= 0.3)
             .astype(float) for index, layer in enumerate(network.layers, 1)
             if layer.type == "dropout"}
    return params, X, Y, masks


@pytest.mark.parametrize("seed", CNN_SEEDS)
def test_cnn_gradients_match_torch(seed):
    import torch
    from test_engine_conv import norm_error
    from torch_reference import TorchNetwork

    module, network = generated_cnn(seed)
    params, X, Y, masks = cnn_problem(module, network, seed)
    net = TorchNetwork(network)
    net.load(params)
    objective = net.train().objective(torch.tensor(X), torch.tensor(Y),
                                      {name: torch.tensor(m) for name, m in masks.items()})
    objective.backward()
    expected = net.gradients()
    assert module.loss(params, X, Y, training=True, masks=masks) == pytest.approx(
        objective.item(), rel=1e-12)
    derived = module.gradients(params, X, Y, masks=masks)
    assert set(derived) == set(params) == set(expected)
    for name in params:
        error = norm_error(derived[name], expected[name])
        assert error <= RELATIVE_TOLERANCE, f"{name}: relative error {error:.2e}"


@pytest.mark.parametrize("seed", CNN_SEEDS)
def test_cnn_gradients_match_finite_differences(seed):
    module, _ = generated_cnn(seed)
    report = check_module(module, seed=seed, max_entries=30)
    assert {row.name for row in report.rows} == set(module.PARAM_NAMES)
    assert report.passed, "\n" + report.table()
    assert report.skipped == 0 and report.near_ties == 0, "\n" + report.table()


def test_symbp_check_passes_on_a_cnn(tmp_path, capsys):
    """The command on the issue's CNN shape (two 3x3 convs with relu, 2x2 max pooling,
    dense softmax on 1x8x8): exit 0, every parameter ok."""
    from symbp.cli import main

    path = tmp_path / "digits_like_cnn.toml"
    path.write_text(DIGITS_CNN, encoding="utf-8")
    code = main(["check", str(path), "--max-entries", "60"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["W1", "b1", "W2", "b2", "W4", "b4"]
    assert [line.split()[-1] for line in lines[1:-1]] == ["ok"] * 6
    assert lines[-1].startswith("gradient check passed")
