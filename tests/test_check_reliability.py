"""``symbp check`` on networks whose gradients are right but whose loss is flat in
some entries, kinked near the check point or shifted by a constant (issue 9),
and on modules whose gradients are deliberately wrong.

The cases come from tables: specs run through ``symbp.cli.main`` in-process,
a seeded sweep of random architectures (width-1 layers; relu, leaky_relu,
elu and the custom ``abs``/``max``/``min`` activations; L1, Huber, hinge and
offset losses) run through :func:`symbp.gradcheck.check_module`, and points
built by hand through its ``params``/``batch`` hooks: dead relu units, a loss
term that is 0 for one output, pre-activations and residuals a few ``h`` from
a kink, a unit sitting on its kink. Every "passes" is grounded twice: the
gradients of the kinked cases agree with PyTorch's autograd, and the same
check fails once one entry of ``gradients`` is made wrong (an added 1e-3, a
flipped sign, a relative 1e-5), also at an entry whose stencil crosses a kink.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

import numpy as np
import pytest
import torch

from symbp import codegen
from symbp.cli import main
from symbp.gradcheck import STEP, CheckPoint, check_module, estimate
from symbp.spec import Dense, Network

ACTIVATIONS = {"absolute": "abs(x)", "leaky_max": "max(x, 0.1*x)", "capped": "min(x, 1)"}
LOSSES = {"l1": "abs(a - y)",
          "huber": "min(abs(a - y), 1)**2/2 + max(abs(a - y) - 1, 0)",
          "offset_mse": "(a - y)**2 + 3",
          "hinge_sq": "max(a - y, 0)**2"}
KINKED = ("relu", "leaky_relu", "elu", "absolute", "leaky_max", "capped")
KINK_AT = {"relu": 0.0, "leaky_relu": 0.0, "elu": 0.0, "absolute": 0.0, "leaky_max": 0.0,
           "capped": 1.0}  # where each activation is not smooth
NEAR = 3e-5  # a kink this far from the point: inside the stencil at STEP, outside at STEP/10


# An architecture is hashable: (inputs, ((units, activation), ...), loss).
def network(arch) -> Network:
    inputs, layers, loss = arch
    return Network(inputs=inputs, layers=[Dense(u, a) for u, a in layers], loss=loss,
                   name="kinked", activations=dict(ACTIVATIONS), losses=dict(LOSSES))


@lru_cache(maxsize=None)
def generated(arch):
    return codegen.load_module(codegen.generate_source(network(arch), "float64"))


def spec_text(arch) -> str:
    inputs, layers, loss = arch
    lines = ['name = "kinked"', f"inputs = {inputs}", f'loss = "{loss}"', "", "[activations]"]
    lines += [f'{name} = "{text}"' for name, text in ACTIVATIONS.items()]
    lines += ["", "[losses]"] + [f'{name} = "{text}"' for name, text in LOSSES.items()]
    for units, activation in layers:
        lines += ["", "[[layers]]", f"units = {units}", f'activation = "{activation}"']
    return "\n".join(lines) + "\n"


def random_problem(module, seed):
    """Parameters with non-zero biases, a batch and valid (regression) targets."""
    rng = np.random.default_rng(seed)
    params = module.init_params(seed)
    for name in params:
        if name.startswith("b"):
            params[name] += rng.normal(0.0, 0.3, params[name].shape)
    inputs = rng.normal(0.0, 1.0, (8, module.SPEC["inputs"]))
    targets = rng.normal(0.0, 1.0, (8, module.SPEC["layers"][-1]["units"]))
    return params, inputs, targets


def rows_by_name(report):
    return {row.name: row for row in report.rows}


# ------------------------------------------------------------- through the CLI
CLI_CASES = {  # arch, seeds; the check before issue 9 failed those marked "(was FAIL)"
    "width-1 relu chain, L1 (was FAIL)": ((1, ((1, "relu"), (1, "relu"), (1, "identity")), "l1"),
                                          ("0", "3")),
    "L1, a bias gradient exactly 0 (was FAIL)": ((3, ((2, "leaky_relu"), (1, "identity")), "l1"),
                                                 ("1", "3")),
    "abs, width-1 relu, leaky_relu (was FAIL)": (
        (3, ((2, "absolute"), (1, "relu"), (1, "leaky_relu"), (2, "identity")), "mse"),
        ("2", "3")),
    "relu, max, abs, Huber, a kink (was FAIL)": (
        (1, ((2, "relu"), (2, "leaky_max"), (1, "absolute"), (1, "absolute")), "huber"), ("4",)),
    "abs/max/min activations, Huber": (
        (2, ((3, "absolute"), (1, "leaky_max"), (2, "capped"), (2, "identity")), "huber"),
        ("0", "3")),
    "relu output, constant loss term": ((3, ((4, "elu"), (2, "relu")), "offset_mse"), ("0",)),
    "leaky_relu, hinge loss": ((2, ((3, "leaky_relu"), (1, "identity")), "hinge_sq"), ("0",)),
}


@pytest.mark.parametrize("arch, seeds", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_symbp_check_passes(tmp_path, capsys, arch, seeds):
    path = tmp_path / "kinked.toml"
    path.write_text(spec_text(arch), encoding="utf-8")
    for seed in seeds:
        code = main(["check", str(path), "--seed", seed])
        out, err = capsys.readouterr()
        assert code == 0, out + err
        lines = out.strip().splitlines()
        assert [line.split()[-1] for line in lines[1:-1]] == ["ok"] * (2 * len(arch[1]))
        assert lines[-1].startswith("gradient check passed")


def test_symbp_check_fails_a_wrong_gradient(tmp_path, capsys, monkeypatch):
    """The command's exit code, not only check_module: one W1 entry off by 1e-3."""
    load_module = codegen.load_module

    def load_with_wrong_gradient(source, *args, **kwargs):
        module = load_module(source, *args, **kwargs)
        monkeypatch.setattr(module, "gradients", wrong(module.gradients, add_to_w1))
        return module

    monkeypatch.setattr(codegen, "load_module", load_with_wrong_gradient)
    path = tmp_path / "kinked.toml"
    path.write_text(spec_text(CLI_CASES["abs/max/min activations, Huber"][0]), encoding="utf-8")
    code = main(["check", str(path)])
    out, _ = capsys.readouterr()
    assert code == 1, out
    verdicts = {line.split()[0]: line.split()[-1] for line in out.strip().splitlines()[1:-1]}
    assert verdicts.pop("W1") == "FAIL"
    assert set(verdicts.values()) == {"ok"}
    assert out.strip().splitlines()[-1].startswith("gradient check FAILED")


# ------------------------------------------------- seeded random architectures
def random_architectures(count: int = 8, seed: int = 9):
    """Depths 1-3 hidden, widths 1-3 (the first layer of every other one is 1 wide),
    hidden activations round-robin over KINKED, outputs and losses in turn."""
    rng = random.Random(seed)
    outputs = ("identity", "relu", "absolute")
    slot, architectures = 0, []
    for index in range(count):
        depth = 1 + index % 3
        layers = []
        for offset in range(depth):
            units = 1 if offset == 0 and index % 2 == 0 else rng.choice([1, 2, 3])
            layers.append((units, KINKED[(slot + offset) % len(KINKED)]))
        slot += depth
        layers.append((rng.choice([1, 2]), outputs[index % len(outputs)]))
        loss = (*LOSSES, "mse")[index % (len(LOSSES) + 1)]
        architectures.append((rng.randint(1, 3), tuple(layers), loss))
    return architectures


RANDOM = random_architectures()


def test_random_architectures_cover_every_piece():
    hidden = {activation for _, layers, _ in RANDOM for _, activation in layers[:-1]}
    assert hidden == set(KINKED)
    assert {loss for *_, loss in RANDOM} == {*LOSSES, "mse"}
    assert any(units == 1 for _, layers, _ in RANDOM for units, _ in layers)


@pytest.mark.parametrize("arch", RANDOM, ids=str)
def test_check_passes_on_random_architectures(arch):
    module = generated(arch)
    for seed in range(3):
        report = check_module(module, seed=seed)
        assert report.passed, "\n" + report.table()


# ----------------------------------------------- flat losses: exact zero gradients
def kill(params, layer, unit):
    """Make a relu unit dead for every input: a very negative bias."""
    params[f"W{layer}"][unit] *= 0.01
    params[f"b{layer}"][unit] = -50.0


ZERO_CASES = {  # arch, the unit made dead, entries whose gradient is then exactly 0
    "dead width-1 relu output, constant loss term: every gradient 0": (
        (2, ((3, "tanh"), (1, "relu")), "offset_mse"), (2, 0),
        (("W1", (0, 1)), ("b1", (2,)), ("W2", (0, 2)), ("b2", (0,)))),
    "dead width-1 hidden relu layer": (
        (2, ((1, "relu"), (2, "identity")), "l1"), (1, 0),
        (("W1", (0, 0)), ("b1", (0,)), ("W2", (1, 0)))),
    "dead relu output unit, constant loss term": (
        (3, ((4, "tanh"), (2, "relu")), "offset_mse"), (2, 0), (("W2", (0, 1)), ("b2", (0,)))),
    "dead hidden relu unit": (
        (3, ((3, "relu"), (2, "identity")), "mse"), (1, 1), (("W1", (1, 2)), ("W2", (1, 1)))),
    "hinge term 0 for one output": (
        (3, ((4, "elu"), (2, "identity")), "hinge_sq"), (2, 1), (("W2", (1, 3)), ("b2", (1,)))),
}


@pytest.mark.parametrize("arch, dead, zeros", ZERO_CASES.values(), ids=ZERO_CASES.keys())
def test_exactly_zero_gradients_pass(arch, dead, zeros):
    module = generated(arch)
    params, inputs, targets = random_problem(module, seed=1)
    kill(params, *dead)
    point = CheckPoint(module, params, inputs, targets, masks={}, state=module.init_state())
    gradients = point.gradients()
    for name, position in zeros:
        assert gradients[name][position] == 0.0
        losses = point.stencil_losses(name, position, STEP)
        assert estimate(losses, point.base_loss, point.magnitude, STEP).derivative == 0.0
    report = check_module(module, params=params, batch=(inputs, targets))
    assert report.passed, "\n" + report.table()
    assert report.skipped == 0


@pytest.mark.parametrize("constant", [0.0, 1.0, 1e6])
def test_differences_first_stencil_of_a_flat_loss_is_zero(constant):
    """Equal losses give exactly 0 whatever their size (the loss of a dead unit)."""
    for value in constant + np.random.default_rng(0).normal(0.0, 1.0, 50):
        assert estimate((value,) * 4, value, abs(value), STEP).derivative == 0.0


# --------------------------------------------------------------- kinks near the point
def near_kink(module, arch, offset, seed=2):
    """Sample 0's pre-activation in every unit of layer 1 sits ``offset`` from the
    activation's kink; for the kinked losses, its residual sits ``offset`` from the
    loss's kink (0 for l1 and hinge, 1 for Huber)."""
    params, inputs, targets = random_problem(module, seed)
    kink = KINK_AT.get(arch[1][0][1], 0.0)
    params["b1"] = kink + offset - inputs[0] @ params["W1"].T
    residual_kink = {"l1": 0.0, "hinge_sq": 0.0, "huber": 1.0}.get(arch[2])
    if residual_kink is not None:
        targets[0] = module.forward(params, inputs[:1])[0] - residual_kink - offset
    return params, inputs, targets


KINK_CASES = {
    "relu, L1": (3, ((3, "relu"), (2, "identity")), "l1"),
    "abs/max/min, Huber": (2, ((3, "absolute"), (2, "leaky_max"), (2, "capped"), (1, "identity")),
                           "huber"),
    "min(x, 1), mse": (2, ((3, "capped"), (2, "identity")), "mse"),
    "leaky_relu, hinge": (3, ((2, "leaky_relu"), (2, "identity")), "hinge_sq"),
    "elu (C1 at its kink), mse": (3, ((3, "elu"), (1, "identity")), "mse"),
}


@pytest.mark.parametrize("arch", KINK_CASES.values(), ids=KINK_CASES.keys())
def test_stencils_across_a_kink_are_rechecked_not_failed(arch):
    module = generated(arch)
    params, inputs, targets = near_kink(module, arch, NEAR)
    report = check_module(module, params=params, batch=(inputs, targets))
    assert report.passed, "\n" + report.table()
    assert report.rechecked > 0 and report.skipped == 0, "\n" + report.table()
    assert f"{report.rechecked} entries re-checked with a smaller step" in report.table()


def test_a_unit_on_its_kink_is_skipped_and_counted():
    """A relu unit with zero weights and bias has z = 0 for every sample: its bias
    and weights have no derivative there, at any step (the loss has a corner)."""
    arch = KINK_CASES["relu, L1"]
    module = generated(arch)
    params, inputs, targets = random_problem(module, seed=4)
    params["W1"][0], params["b1"][0] = 0.0, 0.0
    report = check_module(module, params=params, batch=(inputs, targets))
    assert report.passed, "\n" + report.table()
    rows = rows_by_name(report)
    assert (rows["W1"].skipped, rows["b1"].skipped) == (arch[0], 1)
    assert report.skipped == arch[0] + 1
    assert re.search(rf"; {report.skipped} skipped: the point sits on a kink", report.table())


# ------------------------------------------------------------- the PyTorch oracle
TORCH_ACTIVATIONS = {
    "identity": lambda z: z,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
    "elu": torch.nn.functional.elu,
    "absolute": torch.abs,
    "leaky_max": lambda z: torch.maximum(z, 0.1 * z),
    "capped": lambda z: torch.clamp(z, max=1.0),
}
TORCH_LOSSES = {  # per output
    "mse": lambda a, y: 0.5 * (a - y) ** 2,
    "l1": lambda a, y: torch.abs(a - y),
    "huber": lambda a, y: (torch.clamp(torch.abs(a - y), max=1.0) ** 2 / 2
                           + torch.clamp(torch.abs(a - y) - 1.0, min=0.0)),
    "offset_mse": lambda a, y: (a - y) ** 2 + 3.0,
    "hinge_sq": lambda a, y: torch.clamp(a - y, min=0.0) ** 2,
}


def torch_gradients(arch, params, inputs, targets):
    _, layers, loss = arch
    leaves = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
              for name, value in params.items()}
    a = torch.tensor(inputs, dtype=torch.float64)
    for index, (_, activation) in enumerate(layers, 1):
        a = TORCH_ACTIVATIONS[activation](a @ leaves[f"W{index}"].T + leaves[f"b{index}"])
    y = torch.tensor(targets, dtype=torch.float64)
    TORCH_LOSSES[loss](a, y).sum(dim=1).mean().backward()
    return {name: leaf.grad.numpy() for name, leaf in leaves.items()}


@pytest.mark.parametrize("case", ["relu, L1", "abs/max/min, Huber"])
def test_kinked_gradients_agree_with_pytorch(case):
    """The gradients that the check passes at points near kinks are right."""
    arch = KINK_CASES[case]
    module = generated(arch)
    params, inputs, targets = near_kink(module, arch, NEAR)
    derived = module.gradients(params, inputs, targets)
    expected = torch_gradients(arch, params, inputs, targets)
    for name in params:
        scale = max(float(np.max(np.abs(expected[name]))), 1e-300)
        assert np.max(np.abs(derived[name] - expected[name])) <= 1e-12 * scale, name
    assert check_module(module, params=params, batch=(inputs, targets)).passed


# --------------------------------------------------------- deliberately wrong gradients
def wrong(gradients, corrupt):
    """``gradients`` with one entry corrupted by ``corrupt(grads)``."""
    def wrapped(*args, **kwargs):
        grads = {name: value.copy() for name, value in gradients(*args, **kwargs).items()}
        corrupt(grads)
        return grads
    return wrapped


def add_to_w1(grads):
    grads["W1"][0, 0] += 1e-3


def flip_largest_w1(grads):
    position = np.unravel_index(np.argmax(np.abs(grads["W1"])), grads["W1"].shape)
    grads["W1"][position] *= -1.0


def relative_1e5_on_output_bias(grads):
    last = max(name for name in grads if name.startswith("b"))
    grads[last][0] *= 1.0 + 1e-5


def flip_kinked_bias(grads):  # b1[0]: near_kink puts its stencil across the kink
    grads["b1"][0] *= -1.0


def relative_1e5_on_kinked_bias(grads):
    grads["b1"][0] *= 1.0 + 1e-5


WRONG = {"W1[0, 0] + 1e-3": (add_to_w1, "W1"), "largest W1 sign flipped": (flip_largest_w1, "W1"),
         "output bias x (1 + 1e-5)": (relative_1e5_on_output_bias, None),
         "b1[0] sign flipped, at a kink": (flip_kinked_bias, "b1"),
         "b1[0] x (1 + 1e-5), at a kink": (relative_1e5_on_kinked_bias, "b1")}


@pytest.mark.parametrize("corrupt, name", WRONG.values(), ids=WRONG.keys())
@pytest.mark.parametrize("arch", [KINK_CASES["relu, L1"], KINK_CASES["abs/max/min, Huber"],
                                  RANDOM[1]], ids=str)
def test_a_wrong_gradient_entry_fails(monkeypatch, arch, corrupt, name):
    module = generated(arch)
    params, inputs, targets = near_kink(module, arch, NEAR)
    right = check_module(module, params=params, batch=(inputs, targets))
    assert right.passed, "\n" + right.table()
    monkeypatch.setattr(module, "gradients", wrong(module.gradients, corrupt))
    report = check_module(module, params=params, batch=(inputs, targets))
    assert not report.passed, "\n" + report.table()
    name = name or f"b{len(arch[1])}"
    failing = [row.name for row in report.rows if row.relative_error > report.tolerance]
    assert failing == [name], "\n" + report.table()


def test_a_wrong_entry_fails_where_every_gradient_is_zero(monkeypatch):
    """With a dead output unit the loss is flat in every entry: a gradient entry of
    1e-3 there is wrong, and the noise floor (scaled to the loss) must not hide it."""
    arch, dead, _ = ZERO_CASES["dead width-1 relu output, constant loss term: every gradient 0"]
    module = generated(arch)
    params, inputs, targets = random_problem(module, seed=1)
    kill(params, *dead)
    monkeypatch.setattr(module, "gradients", wrong(module.gradients, add_to_w1))
    report = check_module(module, params=params, batch=(inputs, targets))
    assert [row.name for row in report.rows if row.relative_error > report.tolerance] == ["W1"]


# ------------------------------------------------------- any graph (issue 10)
# The checker on modules that are right by construction: the §5 interface over
# torch.nn with autograd gradients (tests/torch_reference.py), for graphs whose
# objective couples the rows of a batch (batch norm) or depends on dropout masks.
GRAPHS = {
    "batch_norm": ([Dense(5, "identity"), {"type": "batch_norm", "eps": 1e-3},
                    {"type": "activation", "activation": "tanh"}, Dense(2, "sigmoid")], "bce"),
    "dropout": ([Dense(6, "relu"), {"type": "dropout", "rate": 0.4}, Dense(3, "softmax")],
                "cross_entropy"),
    "layer_norm, residual from input": ([Dense(4, "softplus"), {"type": "layer_norm"},
                                         {"type": "residual", "from": "input"}, Dense(2)], "mse"),
    "everything, weight decay": ([Dense(6, "tanh", name="h"), {"type": "batch_norm"},
                                  {"type": "dropout", "rate": 0.2},
                                  {"type": "residual", "from": "h"}, {"type": "layer_norm"},
                                  Dense(3, "softmax")], "cross_entropy"),
}


def torch_module(case, weight_decay=0.0):
    from torch_reference import TorchModule

    layers, loss = GRAPHS[case]
    return TorchModule(Network(inputs=4, layers=layers, loss=loss, name="graph",
                               training={"weight_decay": weight_decay}))


@pytest.mark.parametrize("case", GRAPHS)
def test_check_passes_on_graphs_of_every_op(case):
    module = torch_module(case, weight_decay=0.05)
    for seed in range(2):
        report = check_module(module, seed=seed)
        assert report.passed, "\n" + report.table()


def eval_mode_gradients(module):
    """Gradients of the evaluation-mode objective (running statistics, no dropout)."""
    def gradients(params, X, Y, *, masks=None):
        module._run(params, X, Y, module.init_state(), False, None).backward()
        return module.net.gradients()
    return gradients


def maskless_gradients(module):
    """Gradients that ignore the masks they are given (another dropout draw)."""
    right = module.gradients
    return lambda params, X, Y, *, masks=None: right(params, X, Y, masks=None)


def relative_1e5_on_gamma(module):
    return wrong(module.gradients, lambda grads: grads.__setitem__(
        "gamma2", grads["gamma2"] * np.where(np.arange(grads["gamma2"].size) == 1, 1 + 1e-5, 1)))


def without_weight_decay(module):
    """The gradients of the same network without its weight-decay term."""
    from torch_reference import TorchModule

    network = module.network
    return TorchModule(Network(inputs=network.inputs, layers=network.layers, loss=network.loss,
                               name=network.name)).gradients


WRONG_GRAPH_GRADIENTS = {  # case, wrong gradients, the parameters that must fail (None: some)
    "batch norm in eval mode": ("batch_norm", eval_mode_gradients, None),
    "dropout masks not held fixed": ("dropout", maskless_gradients, None),
    "gamma2[1] x (1 + 1e-5)": ("everything, weight decay", relative_1e5_on_gamma, ["gamma2"]),
    "weight decay left out": ("everything, weight decay", without_weight_decay, ["W1", "W6"]),
}


@pytest.mark.parametrize("case, corrupt, failing", WRONG_GRAPH_GRADIENTS.values(),
                         ids=WRONG_GRAPH_GRADIENTS.keys())
def test_wrong_graph_gradients_fail(monkeypatch, case, corrupt, failing):
    module = torch_module(case, weight_decay=0.05)
    monkeypatch.setattr(module, "gradients", corrupt(module))
    report = check_module(module)
    assert not report.passed, "\n" + report.table()
    if failing is not None:
        assert [row.name for row in report.rows if row.relative_error > report.tolerance] == \
            failing, "\n" + report.table()


def test_given_masks_are_held_fixed():
    """A mask of zeros cuts every path through the dropout layer: the gradients of
    the layers before it and of the weights after it are exactly 0, and the check
    passes with the given masks."""
    module = torch_module("dropout")
    masks = {"mask2": np.zeros((8, 6))}
    report = check_module(module, masks=masks)
    assert report.passed, "\n" + report.table()
    rows = rows_by_name(report)
    assert rows["W1"].max_abs_gradient == rows["b1"].max_abs_gradient == 0.0
    assert rows["W3"].max_abs_gradient == 0.0 < rows["b3"].max_abs_gradient  # a2 = 0


# ------------------------------------------------------------ CNNs (issue 11)
# The checker on convolutional graphs, over torch.nn modules with autograd
# gradients (right by construction): multi-axis inputs and dropout masks of a
# conv output's shape, batch norm per channel, weight decay on conv weights,
# and max pooling at points moved away from window ties.
def conv(kind, channels, kernel, stride=1, padding=0, activation="identity"):
    return {"type": kind, "channels": channels, "kernel": kernel, "stride": stride,
            "padding": padding, "activation": activation}


CNN_GRAPHS = {
    "conv2d, relu, max_pool2d (the digits CNN's shape)": (
        [1, 8, 8], [conv("conv2d", 4, 3, 1, 1, "relu"), conv("conv2d", 4, 3, 1, 0, "relu"),
                    {"type": "max_pool2d", "kernel": 2}, Dense(3, "softmax")], "cross_entropy"),
    "conv2d stride and padding, batch norm, dropout, overlapping max pool": (
        [2, 7, 6], [conv("conv2d", 3, [3, 2], [2, 1], [1, 0]), {"type": "batch_norm"},
                    {"type": "activation", "activation": "tanh"},
                    {"type": "max_pool2d", "kernel": 2, "stride": 1},
                    {"type": "dropout", "rate": 0.3}, Dense(3, "softmax")], "cross_entropy"),
    "conv1d, layer norm, max_pool1d, avg_pool1d, flatten": (
        [2, 12], [conv("conv1d", 3, 3, 1, 1, "elu"), {"type": "layer_norm"},
                  {"type": "max_pool1d", "kernel": 3, "stride": 2},
                  {"type": "avg_pool1d", "kernel": 2}, {"type": "flatten"}, Dense(2)], "mse"),
    "max pooling of the input, avg_pool2d": (
        [2, 6, 7], [{"type": "max_pool2d", "kernel": [2, 3], "stride": [2, 1]},
                    conv("conv2d", 2, 2, 1, 0, "sigmoid"), {"type": "avg_pool2d", "kernel": 2},
                    Dense(1, "sigmoid")], "bce"),
}


def cnn_module(case, weight_decay=0.0):
    from torch_reference import TorchModule

    inputs, layers, loss = CNN_GRAPHS[case]
    return TorchModule(Network(inputs=inputs, layers=layers, loss=loss, name="cnn",
                               training={"weight_decay": weight_decay}))


CNN_ENTRIES = 15  # per parameter: torch's eager forward passes are the cost


@pytest.mark.parametrize("seed, case", list(enumerate(CNN_GRAPHS)))
def test_check_passes_on_cnns(seed, case):
    report = check_module(cnn_module(case, weight_decay=0.05), seed=seed, max_entries=CNN_ENTRIES)
    assert report.passed, "\n" + report.table()
    assert report.near_ties == 0 and report.skipped == 0, "\n" + report.table()


def test_the_random_point_has_the_spec_shapes():
    """Inputs ``(B, C, H, W)`` and dropout masks of the conv output's shape ``(B, C, Ho, Wo)``."""
    from symbp.gradcheck import random_point

    module = cnn_module("conv2d stride and padding, batch norm, dropout, overlapping max pool")
    inputs, targets, masks = random_point(module, np.random.default_rng(0), batch=6)
    assert inputs.shape == (6, 2, 7, 6) and targets.shape == (6, 3)
    assert list(masks) == ["mask5"] and masks["mask5"].shape == (6, 3, 3, 4)
    assert set(np.unique(masks["mask5"])) == {0.0, 1.0}


def flip_w1_kernel(grads):
    """The classic slip: the kernel gradient rotated by 180 degrees."""
    grads["W1"] = np.ascontiguousarray(np.flip(grads["W1"], axis=tuple(range(2, grads["W1"].ndim))))


def max_pool_as_average(module):
    """Gradients whose max pooling passes its gradient back as average pooling does
    (the forward pass, and so everything after the pooling, unchanged)."""
    import torch_reference

    right, pools = module.gradients, torch_reference.POOLS

    def straight_through(maximum, average):
        return lambda a, kernel, stride: average(a, kernel, stride) + (
            maximum(a, kernel, stride) - average(a, kernel, stride)).detach()

    def gradients(*args, **kwargs):
        kept = dict(pools)
        for axes in ("1d", "2d"):
            pools["max_pool" + axes] = straight_through(kept["max_pool" + axes],
                                                        kept["avg_pool" + axes])
        try:
            return right(*args, **kwargs)
        finally:
            pools.update(kept)
    return gradients


WRONG_CNN_GRADIENTS = {  # case, wrong gradients, the parameters that must fail
    "kernel gradient rotated by 180 degrees": (
        "conv2d, relu, max_pool2d (the digits CNN's shape)",
        lambda module: wrong(module.gradients, flip_w1_kernel), ["W1"]),
    "max pooling differentiated as average pooling": (
        "conv2d, relu, max_pool2d (the digits CNN's shape)",
        max_pool_as_average, ["W1", "b1", "W2", "b2"]),
    "max_pool1d differentiated as average pooling": (
        "conv1d, layer norm, max_pool1d, avg_pool1d, flatten",
        max_pool_as_average, ["W1", "b1", "gamma2", "beta2"]),
    "weight decay on the conv weights left out": (
        "conv2d stride and padding, batch norm, dropout, overlapping max pool",
        without_weight_decay, ["W1", "W6"]),
}


@pytest.mark.parametrize("case, corrupt, failing", WRONG_CNN_GRADIENTS.values(),
                         ids=WRONG_CNN_GRADIENTS.keys())
def test_wrong_cnn_gradients_fail(monkeypatch, case, corrupt, failing):
    module = cnn_module(case, weight_decay=0.05)
    monkeypatch.setattr(module, "gradients", corrupt(module))
    report = check_module(module, max_entries=CNN_ENTRIES)
    assert not report.passed, "\n" + report.table()
    assert [row.name for row in report.rows if row.relative_error > report.tolerance] == \
        failing, "\n" + report.table()


CNN_SPEC = """\
name = "cnn"
inputs = [2, 7, 6]
loss = "cross_entropy"

[[layers]]
type = "conv2d"
channels = 3
kernel = [3, 2]
stride = [2, 1]
padding = [1, 0]
activation = "relu"

[[layers]]
type = "max_pool2d"
kernel = 2
stride = 1

[[layers]]
units = 3
activation = "softmax"
"""


@pytest.mark.parametrize("corrupt, failing", [(None, []), (flip_w1_kernel, ["W1"])],
                         ids=["right", "kernel gradient rotated by 180 degrees"])
def test_symbp_check_on_a_cnn_spec(tmp_path, capsys, monkeypatch, corrupt, failing):
    """The command on a generated CNN: exit 0 with every row ok, and exit 1 naming W1
    when the module's kernel gradient is rotated by 180 degrees."""
    if corrupt is not None:
        load_module = codegen.load_module

        def load_with_wrong_gradient(source, *args, **kwargs):
            module = load_module(source, *args, **kwargs)
            monkeypatch.setattr(module, "gradients", wrong(module.gradients, corrupt))
            return module

        monkeypatch.setattr(codegen, "load_module", load_with_wrong_gradient)
    path = tmp_path / "cnn.toml"
    path.write_text(CNN_SPEC, encoding="utf-8")
    code = main(["check", str(path), "--max-entries", "40"])
    out, err = capsys.readouterr()
    assert code == (1 if failing else 0), out + err
    verdicts = {line.split()[0]: line.split()[-1] for line in out.strip().splitlines()[1:-1]}
    assert list(verdicts) == ["W1", "b1", "W3", "b3"]
    assert [name for name, verdict in verdicts.items() if verdict == "FAIL"] == failing


# ---------------------------------------------------- max pooling: away from ties
def test_window_gaps_are_the_two_largest_entries_apart():
    from symbp.gradcheck import window_gaps

    x = np.array([[[[1.0, 3.0, 0.5], [2.5, 0.0, 3.0], [9.0, 8.0, 7.0]]]])  # (1, 1, 3, 3)
    gaps = window_gaps(x, (2, 2), (1, 1))  # windows at (0,0) (0,1) (1,0) (1,1)
    np.testing.assert_allclose(gaps, [[[[0.5, 0.0], [1.0, 1.0]]]])
    np.testing.assert_allclose(window_gaps(x, (1, 3), (2, 1)), [[[[2.0], [1.0]]]])


def test_a_max_pool_of_one_entry_has_no_tie(tmp_path, capsys):
    """A window of one entry cannot tie: its gap is infinite, and symbp check of a
    network with such a pool passes (it crashed with exit 3)."""
    from symbp.gradcheck import window_gaps

    x = np.arange(6.0).reshape(1, 1, 6)
    assert np.all(np.isinf(window_gaps(x, (1,), (1,))))
    spec = tmp_path / "one.toml"
    spec.write_text('name = "one"\ninputs = [1, 5]\nloss = "mse"\n'
                    '[[layers]]\ntype = "conv1d"\nchannels = 1\nkernel = 1\nstride = 2\n'
                    'activation = "silu"\n[[layers]]\ntype = "max_pool1d"\nkernel = 1\n'
                    '[[layers]]\nunits = 2\n')
    assert main(["check", str(spec)]) == 0, capsys.readouterr()


def test_rows_near_a_max_pool_tie_are_redrawn_and_only_they():
    """Max pooling of the input: row 1 has a window whose two largest entries are 1e-6
    apart (within the stencil's reach), row 3 a window of two exactly equal maxima
    (a flat region, left alone); only row 1 is redrawn, the others are kept."""
    from symbp.gradcheck import TIE_MARGIN, away_from_ties, max_pools, rows_near_a_tie

    module = cnn_module("max pooling of the input, avg_pool2d")
    rng = np.random.default_rng(3)
    params = module.init_params(0)
    inputs = rng.normal(0.0, 1.0, (4, 2, 6, 7))
    inputs[1, 0, 0, 0], inputs[1, 0, 0, 1] = 5.0, 5.0 + 1e-6
    inputs[3, 1, 2, 3], inputs[3, 1, 3, 3] = 6.0, 6.0
    targets = np.ones((4, 1))
    network = module.network
    point = {**params, "X": inputs, "Y": targets}
    near = rows_near_a_tie(network, point, max_pools(network))
    assert near.tolist() == [False, True, False, False]
    moved, left = away_from_ties(module, params, inputs, targets, {}, {}, rng)
    assert left == 0
    np.testing.assert_array_equal(moved[[0, 2, 3]], inputs[[0, 2, 3]])
    assert not np.array_equal(moved[1], inputs[1])
    assert TIE_MARGIN * STEP > 2 * STEP  # farther than the stencil's widest offset


def near_tie(gap, seed=5):
    """A 1x1 conv of two channels, then 2x2 max pooling: sample 0's first window has
    its two largest entries ``gap`` apart, and moving ``W1[0, 1]`` by ``h`` moves them
    relative to each other by ``h`` (the window's second channel differs by 1)."""
    from torch_reference import TorchModule

    network = Network(inputs=[2, 4, 4], layers=[conv("conv2d", 1, 1),
                                                {"type": "max_pool2d", "kernel": 2},
                                                Dense(2)], loss="mse", name="tie")
    module = TorchModule(network)
    rng = np.random.default_rng(seed)
    params = {"W1": np.array([[[[1.0]], [[0.5]]]]), "b1": np.array([0.2]),
              "W3": rng.normal(0.0, 0.5, (2, 4)), "b3": rng.normal(0.0, 0.3, 2)}
    inputs = rng.normal(0.0, 0.3, (6, 2, 4, 4))
    inputs[0, :, 0, 0] = (3.0, 1.0)  # z = 3.7, the window's largest
    inputs[0, :, 0, 1] = (3.5 - gap, 0.0)  # z = 3.7 - gap
    return module, params, (inputs, rng.normal(0.0, 1.0, (6, 2)))


def test_a_max_pool_window_near_a_tie_is_rechecked_and_a_wrong_gradient_still_fails(
        monkeypatch):
    """At the caller's point (not moved away from ties): stencils at STEP reorder the
    window's two largest entries, 3e-5 apart; the check re-checks W1[0, 1] with
    smaller steps and passes, and the same entry made wrong by a relative 1e-5 fails."""
    module, params, batch = near_tie(NEAR)
    report = check_module(module, params=params, batch=batch)
    assert report.passed, "\n" + report.table()
    assert rows_by_name(report)["W1"].rechecked >= 1 and report.skipped == 0, report.table()

    def corrupt(grads):
        grads["W1"][0, 1, 0, 0] *= 1.0 + 1e-5

    monkeypatch.setattr(module, "gradients", wrong(module.gradients, corrupt))
    report = check_module(module, params=params, batch=batch)
    assert [row.name for row in report.rows if row.relative_error > report.tolerance] == \
        ["W1"], "\n" + report.table()


def test_the_random_point_moves_away_from_a_near_tie():
    """The same near tie, but the batch left to the check: the point is redrawn until no
    window is near a tie, so no entry needs a smaller step at the pooling layer."""
    from symbp.gradcheck import max_pools, rows_near_a_tie

    module, params, (inputs, targets) = near_tie(NEAR)
    network = module.network
    assert rows_near_a_tie(network, {**params, "X": inputs, "Y": targets},
                           max_pools(network)).tolist() == [True] + [False] * 5
    report = check_module(module, params=params)
    assert report.passed and report.near_ties == 0 and report.skipped == 0, report.table()


def test_samples_left_near_a_tie_are_counted_in_the_report(monkeypatch):
    """When no redraw clears the windows (here: a margin no window can have), the check
    still runs, and its report says how many samples were left near a tie."""
    import symbp.gradcheck as gradcheck

    module = cnn_module("conv2d, relu, max_pool2d (the digits CNN's shape)")
    monkeypatch.setattr(gradcheck, "TIE_MARGIN", 1e12)
    report = check_module(module, max_entries=5)
    assert report.near_ties == gradcheck.CHECK_BATCH
    assert report.passed, report.table()
    assert f"; {gradcheck.CHECK_BATCH} of the batch's samples with a max-pooling window whose " \
        "two largest entries are closer than" in report.table()
