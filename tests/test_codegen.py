"""Unit tests of symbp.codegen: the printer, the stable rewrites, the text of a
generated module, and ``symbp generate`` (issue 3)."""

from __future__ import annotations

import ast
import math
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from conftest import random_graph

from symbp.cli import main
from symbp.codegen import CodePrinter, generate_source, load_module, print_expr, stable
from symbp.spec import Dense, Network, load_spec

REPO = Path(__file__).resolve().parent.parent
z = sp.Symbol("z", real=True)


def _expit(t):
    """The logistic function, as the generated helper defines it (stable)."""
    return np.exp(-np.logaddexp(0.0, -t))


def evaluate(code: str, value):
    """Evaluate printed code (our own printer's output) at ``z = value``."""
    with np.errstate(all="ignore"):
        return eval(code, {"np": np, "_expit": _expit}, {"z": np.asarray(value, dtype=float)})  # noqa: S307


def naive(expr, value):
    with np.errstate(all="ignore"):
        return sp.lambdify(z, expr, "numpy")(np.asarray(value, dtype=float))


# ------------------------------------------------------------------ printer
def test_printer_uses_np_names():
    code = CodePrinter().doprint(sp.exp(z) + sp.sqrt(z) + sp.tanh(z) + sp.cosh(z) + sp.pi)
    for name in ("np.exp(z)", "np.sqrt(z)", "np.tanh(z)", "np.cosh(z)"):
        assert name in code
    assert "numpy." not in code


def test_printer_is_strict():
    with pytest.raises(NotImplementedError):
        CodePrinter().doprint(sp.Function("f")(z))


def test_printer_puts_positive_terms_first():
    a, y = sp.symbols("a2 Y", real=True)
    assert print_expr(a - y) == "a2 - Y"
    assert print_expr(-y + 2 * a) == "2*a2 - Y"


def test_relu_prints_as_np_maximum():
    """relu's Piecewise is max(z, 0): one ufunc, so the forward pass can write it in place."""
    relu = sp.Piecewise((z, z > 0), (0, True))
    code = print_expr(relu)
    assert code == "np.maximum(z, 0.0)"
    values = np.array([-2.0, -0.0, 0.0, 1e-300, 3.5])
    np.testing.assert_array_equal(evaluate(code, values), np.where(values > 0, values, 0.0))
    assert print_expr(sp.Piecewise((z, z > 0), (z / 100, True))).startswith("np.where(")


def test_single_call_activations_write_into_work_arrays():
    network = Network(inputs=3, layers=[Dense(4, "relu"), Dense(5, "softplus"), Dense(3, "tanh"),
                                        Dense(2, "sigmoid")], loss="mse", name="calls")
    forward_pass = function_text(generate_source(network), "_forward")
    assert 'np.maximum(z1, 0.0, out=work.get("a1"))' in forward_pass  # relu' reads z1
    assert "np.logaddexp(0.0, z2, out=z2)" in forward_pass  # softplus' reads only a2
    assert "np.tanh(z3, out=z3)" in forward_pass
    assert "_expit(z4, out=z4)" in forward_pass  # mse reads a4 only: z4 is not kept


def test_an_indicator_prints_as_one_cast_in_the_arrays_dtype():
    """relu's derivative [z > 0] is the comparison cast once to z's dtype (no int64
    array from np.where): 0 at 0, as torch, and float32 stays float32."""
    code = print_expr(sp.Piecewise((1, z > 0), (0, True)))
    assert code == "np.greater(z, 0).astype(z.dtype)"
    values = np.array([-2.0, -0.0, 0.0, 1e-30, 3.5], dtype=np.float32)
    result = eval(code, {"np": np}, {"z": values})  # noqa: S307 - our printer's output
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, (values > 0).astype(np.float32))


def test_printer_piecewise_is_np_where():
    code = print_expr(sp.Piecewise((z, z > 0), (z / 100, True)))
    assert code.startswith("np.where(")
    values = np.array([-3.0, -0.5, 0.0, 2.0])
    np.testing.assert_allclose(evaluate(code, values), np.where(values > 0, values, 0.01 * values))


# ------------------------------------------------------------ stable rewrites
SILU = z / (1 + sp.exp(-z))
STABLE_CASES = {
    "softplus": sp.log(1 + sp.exp(z)),
    "sigmoid": 1 / (1 + sp.exp(-z)),
    "sigmoid'": sp.diff(1 / (1 + sp.exp(-z)), z),
    "silu'": sp.diff(SILU, z),
    "softplus'": sp.diff(sp.log(1 + sp.exp(z)), z),
    "mish'": sp.diff(z * sp.tanh(sp.log(1 + sp.exp(z))), z),
}


@pytest.mark.parametrize("name", STABLE_CASES)
def test_stable_rewrite_keeps_the_value(name):
    expr = STABLE_CASES[name]
    values = np.linspace(-6.0, 6.0, 25)
    np.testing.assert_allclose(evaluate(print_expr(expr), values), naive(expr, values),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", STABLE_CASES)
def test_stable_rewrite_is_finite_at_extremes(name):
    result = evaluate(print_expr(STABLE_CASES[name]), [-1000.0, 1000.0])
    assert np.all(np.isfinite(result))


def test_silu_derivative_at_minus_1000():
    derivative = sp.diff(SILU, z)
    assert not np.isfinite(naive(derivative, -1000.0))  # the printer's rewrite is needed
    value = evaluate(print_expr(derivative), -1000.0)
    assert np.isfinite(value) and abs(value) < 1e-300  # true value: about -1000 exp(-1000)
    assert evaluate(print_expr(derivative), 1000.0) == pytest.approx(1.0)
    assert "exp(" not in print_expr(derivative).replace("_expit", "")


def test_log_one_plus_exp_becomes_logaddexp():
    rewritten = stable(sp.log(1 + sp.exp(z)))
    code = CodePrinter().doprint(rewritten)
    assert code == "np.logaddexp(0.0, z)"
    assert evaluate(code, 1000.0) == pytest.approx(1000.0)
    assert evaluate(code, -1000.0) == pytest.approx(0.0, abs=1e-300)
    assert math.isinf(naive(sp.log(1 + sp.exp(z)), 1000.0))


def test_stable_leaves_plain_expressions_alone():
    assert stable(sp.tanh(z) * z + 1) == sp.tanh(z) * z + 1
    assert print_expr(sp.exp(z) - 1) == "np.exp(z) - 1"


# ------------------------------------------------- the text of a generated module
NETWORK = Network(inputs=5, layers=[Dense(4, "tanh"), Dense(3, "sigmoid"), Dense(6, "softmax")],
                  loss="cross_entropy", name="text_net")


@lru_cache(maxsize=None)
def source(dtype: str = "float64") -> str:
    return generate_source(NETWORK, dtype, spec_name="text_net.toml")


def backward_function(text: str) -> str:
    """The function that computes the deltas (``gradients`` or a helper it calls)."""
    start = text.rindex("\ndef ", 0, text.index("    delta1 = "))
    end = text.index("\ndef ", start + 1)
    return text[start:end]


def backward_lines(text: str) -> list[str]:
    """The code lines of the backward section: from the output delta on."""
    body = backward_function(text)
    depth = len(NETWORK.layers)
    backward = body[body.index(f"    delta{depth} = "):]
    return [line.strip() for line in backward.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def statements_of(lines: list[str], target: str) -> str:
    """Every backward statement that assigns ``target`` (``=``, ``*=``, ...), joined."""
    pattern = re.compile(rf"{target}\s*[-+*/@]?=")
    return "\n".join(line for line in lines if pattern.match(line))


def test_backward_reuses_forward_outputs():
    lines = backward_lines(source())
    delta1, delta2 = statements_of(lines, "delta1"), statements_of(lines, "delta2")
    assert re.search(r"\ba1\b", delta1), delta1  # tanh' = 1 - a1**2
    assert re.search(r"\ba2\b", delta2), delta2  # sigmoid' = a2 (1 - a2)
    assert not re.search(r"\bz[12]\b", delta1 + delta2)  # no activation recomputed from z
    for line in lines:
        assert "np.tanh(" not in line, line
        assert "_expit(" not in line, line
        assert "_softmax(" not in line, line
    # one forward pass, which computes each activation exactly once
    assert backward_function(source()).count("_forward(") == 1
    forward_pass = function_text(source(), "_forward")
    assert forward_pass.count("np.tanh(z1") == 1 and forward_pass.count("_expit(z2") == 1


def function_text(text: str, name: str) -> str:
    start = text.index(f"\ndef {name}(")
    return text[start:text.index("\ndef ", start + 1)]


def test_docstring_shows_the_derived_formulas():
    """The docstring lists the engine's gradients in backward order, in matrix form."""
    module = load_module(source())
    doc = module.__doc__
    assert "Delta^(3) = (1/B) (A^(3) - Y)" in doc  # softmax + cross-entropy
    assert "dL/dW^(1) = (Delta^(1))^T X" in doc
    assert doc.index("Delta^(3) = ") < doc.index("Delta^(2) = ") < doc.index("Delta^(1) = ")
    assert "5 -> 4 (tanh) -> 3 (sigmoid) -> 6 (softmax)" in doc
    gradients = backward_function(source())
    assert gradients.index("# dL/dz3") < gradients.index("# dL/dz2") \
        < gradients.index("# dL/dz1")


def test_generated_names():
    text = source()
    for name in ("W1", "b1", "z1", "a1", "delta1", "W3", "b3", "z3", "a3", "delta3"):
        assert name in text, name
    module = load_module(text)
    assert module.PARAM_NAMES == ("W1", "b1", "W2", "b2", "W3", "b3")
    assert module.LAYER_SIZES == (5, 4, 3, 6)
    assert module.TASK == "classification"
    assert module.SPEC == NETWORK.to_dict()
    params = module.init_params(0)
    assert {name: value.shape for name, value in params.items()} == {
        "W1": (4, 5), "b1": (4,), "W2": (3, 4), "b2": (3,), "W3": (6, 3), "b3": (6,)}
    assert module.forward(params, np.zeros((2, 5))).shape == (2, 6)
    assert module.forward(params, np.zeros(5)).shape == (1, 6)  # one sample as a row


def test_generated_module_imports_only_numpy_and_stdlib():
    gelu = Network(inputs=2, layers=[Dense(3, "gelu"), Dense(1, "identity")], loss="mse")
    text = generate_source(gelu)
    modules = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    assert "numpy" in modules and "math" in modules  # gelu takes erf from math
    assert modules - {"numpy"} <= set(sys.stdlib_module_names)
    # and it really runs without symbp or sympy
    result = subprocess.run(
        [sys.executable, "-I", "-c",
         "import sys; sys.modules['sympy'] = None; sys.modules['symbp'] = None\n"
         + "ns = {'__name__': 'm'}\nexec(sys.stdin.read(), ns)\n"
         + "import numpy as np\np = ns['init_params'](0)\n"
         + "print(ns['loss'](p, np.ones((3, 2)), np.ones((3, 1))))"],
        input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert math.isfinite(float(result.stdout))


def test_same_network_same_bytes_and_dtype_changes_only_dtype():
    again = generate_source(NETWORK, "float64", spec_name="text_net.toml")
    assert again == source()
    float32 = source("float32")
    assert "DTYPE = np.float32" in float32 and "DTYPE = np.float64" in source()
    assert float32.replace("float32", "float64") == source()


def test_bad_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype"):
        generate_source(NETWORK, "float16")


# ------------------------------------------------------------- symbp generate
TINY_SPEC = """\
name = "tiny"
inputs = 3
loss = "mse"

[[layers]]
units = 4
activation = "relu"

[[layers]]
units = 2
activation = "identity"
"""


@pytest.fixture
def tiny_spec(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC, encoding="utf-8")
    return path


@lru_cache(maxsize=None)
def tiny_source(dtype: str) -> str:
    return generate_source(Network(inputs=3, layers=[Dense(4, "relu"), Dense(2, "identity")],
                                   loss="mse", name="tiny"), dtype, spec_name="tiny.toml")


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("symbp: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


def test_generate_to_stdout(capsys, tiny_spec):
    code, out, _ = run_cli(capsys, "generate", tiny_spec)
    assert code == 0
    assert out == tiny_source("float64")
    assert load_spec(tiny_spec).to_dict() == load_module(out).SPEC


def test_generate_writes_atomically(capsys, tiny_spec, tmp_path):
    target = tmp_path / "tiny.py"
    code, _, err = run_cli(capsys, "generate", tiny_spec, "-o", target)
    assert code == 0, err
    assert target.read_text(encoding="utf-8") == tiny_source("float64")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.py", "tiny.toml"]  # no temp files


def test_generate_refuses_to_overwrite_without_force(capsys, tiny_spec, tmp_path):
    target = tmp_path / "tiny.py"
    target.write_text("# keep me\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "generate", tiny_spec, "-o", target)
    assert code == 2
    assert_one_error_line(err, str(target), "--force")
    assert target.read_text(encoding="utf-8") == "# keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.py", "tiny.toml"]
    code, _, err = run_cli(capsys, "generate", tiny_spec, "-o", target, "--force")
    assert code == 0, err
    assert target.read_text(encoding="utf-8") == tiny_source("float64")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.py", "tiny.toml"]


def test_generate_float32(capsys, tiny_spec, tmp_path):
    target = tmp_path / "tiny32.py"
    code, _, err = run_cli(capsys, "generate", tiny_spec, "-o", target, "--dtype", "float32")
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert text == tiny_source("float32")
    assert "dtype: float32" in text
    module = load_module(text)
    assert module.DTYPE == np.float32
    params = module.init_params(0)
    assert all(value.dtype == np.float32 for value in params.values())
    output = module.forward(params, np.ones((2, 3), dtype=np.float32))
    assert output.dtype == np.float32


def test_generate_rejects_bad_dtype(capsys, tiny_spec, tmp_path):
    target = tmp_path / "tiny.py"
    code, _, err = run_cli(capsys, "generate", tiny_spec, "-o", target, "--dtype", "float16")
    assert code == 2
    assert_one_error_line(err, "float16")
    assert not target.exists()


# ---------------------------------------------------------- train() history
HISTORY_NETWORK = Network(inputs=4, layers=[Dense(6, "tanh"), Dense(3, "softmax")],
                          loss="cross_entropy", name="history_net")


@lru_cache(maxsize=None)
def history_module():
    return load_module(generate_source(HISTORY_NETWORK))


def recorded_training(module, monkeypatch, **settings):
    """Run ``train`` with ``_backprop`` instrumented: before each step, the batch and
    its loss computed independently by ``loss()`` on the parameters the step sees."""
    batches = []
    backprop = module._backprop

    def recording(params, X, Y, *args):
        batches.append((len(X), module.loss(params, X, Y), X.copy()))
        return backprop(params, X, Y, *args)

    monkeypatch.setattr(module, "_backprop", recording)
    rng = np.random.default_rng(4)
    X = rng.normal(0.0, 1.0, (23, 4))  # 23 rows in batches of 5: a short last batch of 3
    Y = np.eye(3)[rng.integers(0, 3, 23)]
    params = module.init_params(1)
    history = module.train(params, X, Y, **settings)
    return history, batches, X


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_history_is_the_mean_of_the_minibatch_losses(optimizer, monkeypatch):
    module = history_module()
    history, batches, X = recorded_training(module, monkeypatch, epochs=3, batch_size=5,
                                            learning_rate=0.5, optimizer=optimizer, seed=2)
    assert len(history) == 3 and len(batches) == 3 * 5
    for epoch in range(3):
        epoch_batches = batches[5 * epoch:5 * (epoch + 1)]
        assert [rows for rows, _, _ in epoch_batches] == [5, 5, 5, 5, 3]
        seen = np.concatenate([batch for _, _, batch in epoch_batches])
        assert sorted(map(tuple, seen)) == sorted(map(tuple, X))  # each row once per epoch
        expected = sum(rows * value for rows, value, _ in epoch_batches) / len(X)
        assert history[epoch] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert history[0] != history[1]  # the parameters really change between epochs


def test_train_does_one_forward_pass_per_step(monkeypatch):
    """No extra pass over the data: as many forward passes as steps."""
    module = history_module()
    calls = []
    forward_pass = module._forward
    monkeypatch.setattr(module, "_forward", lambda *args: calls.append(1) or forward_pass(*args))
    rng = np.random.default_rng(5)
    X, Y = rng.normal(0.0, 1.0, (20, 4)), np.eye(3)[rng.integers(0, 3, 20)]
    module.train(module.init_params(0), X, Y, state=None, epochs=2, batch_size=8, seed=0)
    assert len(calls) == 2 * 3


def test_train_refuses_empty_data():
    module = history_module()
    with pytest.raises(ValueError, match="no rows"):
        module.train(module.init_params(0), np.zeros((0, 4)), np.zeros((0, 3)), epochs=1)


@pytest.mark.parametrize("spread", [1.0, 2000.0])  # 2000: softmax probabilities underflow to 0
def test_cross_entropy_is_exact_with_and_without_underflow(spread):
    module = history_module()
    rng = np.random.default_rng(6)
    params = module.init_params(0)
    params["W2"] *= spread
    X = rng.normal(0.0, 1.0, (9, 4))
    Y = np.eye(3)[rng.integers(0, 3, 9)]
    z = np.tanh(X @ params["W1"].T + params["b1"]) @ params["W2"].T + params["b2"]
    log_softmax = z - np.logaddexp.reduce(z, axis=1, keepdims=True)  # independent oracle
    expected = float(np.mean(-np.sum(Y * log_softmax, axis=1)))
    if spread > 1:
        assert np.min(module.forward(params, X)) == 0.0  # the case log(a) cannot handle
    assert module.loss(params, X, Y) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------- graphs: every op of the engine
GRAPH_CASES = {
    "layer_norm": ([Dense(5, "relu"), {"type": "layer_norm"}, Dense(3, "softmax")],
                   "cross_entropy"),
    "batch_norm": ([Dense(5, "identity"), {"type": "batch_norm", "eps": 1e-3},
                    {"type": "activation", "activation": "tanh"}, Dense(2, "sigmoid")], "bce"),
    "residual": ([Dense(4, "tanh", name="h"), Dense(4, "tanh"), {"type": "residual", "from": "h"},
                  Dense(3, "softmax")], "cross_entropy"),
    "residual_from_input": ([Dense(4, "softplus"), {"type": "residual", "from": "input"},
                             Dense(2)], "mse"),
    "dropout": ([Dense(6, "relu"), {"type": "dropout", "rate": 0.25}, Dense(3, "softmax")],
                "cross_entropy"),
    "everything": ([Dense(6, "tanh", name="h"), {"type": "batch_norm"},
                    {"type": "dropout", "rate": 0.2}, {"type": "residual", "from": "h"},
                    {"type": "layer_norm"}, Dense(3, "softmax")], "cross_entropy"),
}


def graph_network(case: str, weight_decay: float = 0.0) -> Network:
    layers, loss_name = GRAPH_CASES[case]
    return Network(inputs=4, layers=layers, loss=loss_name, name=f"graph_{case}",
                   training={"weight_decay": weight_decay, "batch_size": 4, "epochs": 2})


@lru_cache(maxsize=None)
def graph_module(case: str, weight_decay: float = 0.0, dtype: str = "float64"):
    return load_module(generate_source(graph_network(case, weight_decay), dtype))


def graph_point(module, network, rows: int, seed: int, dtype=np.float64):
    """Random parameters (moved off their initial values), data, targets and masks."""
    rng = np.random.default_rng(seed)
    params = module.init_params(seed, dtype=dtype)
    for name in params:
        params[name] = (params[name] + rng.normal(0.0, 0.5, params[name].shape)).astype(dtype)
    X = rng.normal(0.0, 1.0, (rows, network.inputs)).astype(dtype)
    outputs = network.widths[-1]
    if network.loss == "cross_entropy":
        Y = np.eye(outputs)[rng.integers(0, outputs, rows)]
    elif network.loss == "bce":
        Y = (rng.random((rows, outputs)) > 0.5).astype(float)
    else:
        Y = rng.normal(0.0, 1.0, (rows, outputs))
    masks = {f"mask{index}": (rng.random((rows, network.widths[index])) > layer.options["rate"])
             .astype(dtype)
             for index, layer in enumerate(network.layers, 1) if layer.type == "dropout"}
    return params, X, Y.astype(dtype), masks


def reference_values(network, params, X, Y, masks, state):
    """Every tensor and gradient by the engine's own NumPy reading of the index notation."""
    from symbp.engine.derivation import derive_graph
    from symbp.engine.numeric import run
    from symbp.ops.base import BATCH

    derivation = derive_graph(network)
    given = {**params, **masks, **state, "X": X, "Y": Y}
    return run(derivation.graph, given, {**derivation.sizes, BATCH: len(X)},
               derivation.gradients)


@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("seed", [0, 1])
def test_graph_gradients_equal_the_engine_reference(case, weight_decay, seed):
    network = graph_network(case, weight_decay)
    module = graph_module(case, weight_decay)
    params, X, Y, masks = graph_point(module, network, 5, seed)
    expected = reference_values(network, params, X, Y, masks, module.init_state())
    grads = module.gradients(params, X, Y, masks=masks)
    assert set(grads) == set(params)
    for name, value in grads.items():
        reference = expected[f"g_{name}"]
        scale = max(np.abs(reference).max(), 1e-3)  # a bias before batch norm: exactly ~0
        assert np.abs(value - reference).max() <= 1e-12 * scale, name
    assert module.loss(params, X, Y, training=True, masks=masks) == pytest.approx(
        float(expected["L"]), rel=1e-13)


@pytest.mark.parametrize("case", sorted(GRAPH_CASES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_graph_module_runs_in_its_dtype(case, dtype):
    network = graph_network(case, 0.01)
    module = graph_module(case, 0.01, dtype)
    kind = np.dtype(dtype)
    params, X, Y, masks = graph_point(module, network, 6, 3, kind)
    state = module.init_state()
    assert set(state) == {t for t in module.STATE_SHAPES}
    outputs = [module.forward(params, X, state=state),
               module.forward(params, X, training=True, masks=masks or None),
               module.predict(params, X, state=state)]
    assert outputs[0].dtype == kind and outputs[1].dtype == kind
    assert np.isfinite(module.loss(params, X, Y, state=state))
    grads = module.gradients(params, X, Y, masks=masks or None)
    assert all(grads[name].dtype == kind and grads[name].shape == params[name].shape
               for name in params)
    history = module.train(params, X, Y, state=state, epochs=3, batch_size=4, seed=1)
    assert len(history) == 3 and all(np.isfinite(history))
    assert all(value.dtype == kind for value in [*params.values(), *state.values()])
    module.train_step(params, X, Y, 0.1, state=state, masks=masks or None)
    assert all(value.dtype == kind for value in params.values())


def test_without_masks_training_mode_has_no_dropout():
    """``masks=None``: dropout is the identity (not a mask of ones scaled by 1/keep)."""
    network = graph_network("dropout")
    module = graph_module("dropout")
    params, X, Y, masks = graph_point(module, network, 5, 4)
    assert np.array_equal(module.forward(params, X, training=True), module.forward(params, X))
    ones = {name: np.ones_like(mask) for name, mask in masks.items()}
    scaled = module.forward(params, X, training=True, masks=ones)
    assert not np.allclose(scaled, module.forward(params, X))  # the masked branch scales
    reference = reference_values(network, params, X, Y,
                                 {name: m * 0.75 for name, m in ones.items()}, {})
    for name, value in module.gradients(params, X, Y).items():  # mask = keep: identity
        assert np.allclose(value, reference[f"g_{name}"], rtol=1e-12, atol=1e-15), name


def test_running_statistics_follow_the_graph_updates_and_drive_eval_mode():
    network = graph_network("batch_norm")
    module = graph_module("batch_norm")
    params, X, Y, _ = graph_point(module, network, 7, 5)
    state = module.init_state()
    before = {name: value.copy() for name, value in state.items()}
    expected = reference_values(network, params, X, Y, {}, before)
    module.train_step(params, X, Y, 0.0, state=state)  # learning rate 0: only the state moves
    from symbp.engine.derivation import derive_graph
    from symbp.engine.numeric import value_of
    from symbp.ops.base import BATCH

    derivation = derive_graph(network)
    sizes = {**derivation.sizes, BATCH: len(X)}
    for tensor, update in derivation.graph.updates:
        new = value_of(update, tensor, {**expected, **before}, sizes, frozenset({"L"}))
        assert np.allclose(state[tensor.name], new, rtol=1e-13, atol=0), tensor.name
    # eval mode reads the running statistics: different state, different output
    assert not np.allclose(module.forward(params, X, state=state),
                           module.forward(params, X, state=before))
    assert np.array_equal(module.forward(params, X), module.forward(params, X, state=before))


def test_state_is_saved_and_loaded_with_the_parameters(tmp_path):
    module = graph_module("everything")
    params = module.init_params(2)
    state = {name: value + 0.5 for name, value in module.init_state().items()}
    path = str(tmp_path / "p.npz")
    module.save_params(params, path, state)
    loaded_state = {}
    loaded = module.load_params(path, state=loaded_state)
    assert set(loaded) == set(params) and set(loaded_state) == set(state)
    assert all(np.array_equal(loaded[k], params[k]) for k in params)
    assert all(np.array_equal(loaded_state[k], state[k]) for k in state)
    assert set(module.load_params(path)) == set(params)  # without `state`: the parameters
    module.save_params(params, path)  # saved without state: asking for it is an error
    with pytest.raises(ValueError, match="no array mean2"):
        module.load_params(path, state={})


def test_a_plain_mlp_takes_the_new_keywords_and_ignores_them():
    module = load_module(source())
    rng = np.random.default_rng(8)
    params = module.init_params(0)
    X, Y = rng.normal(0.0, 1.0, (4, 5)), np.eye(6)[rng.integers(0, 6, 4)]
    assert module.init_state() == {}
    assert np.array_equal(module.forward(params, X, state={}, training=True, masks=None),
                          module.forward(params, X))
    assert module.loss(params, X, Y, training=True) == module.loss(params, X, Y)
    first, second = module.gradients(params, X, Y), module.gradients(params, X, Y, masks=None)
    assert all(np.array_equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("seed", range(13))
def test_random_graphs_generate_the_engine_gradients(seed):
    network = random_graph(seed)
    module = load_module(generate_source(network))
    params, X, Y, masks = graph_point(module, network, 5, seed)
    state = {name: value + 0.25 for name, value in module.init_state().items()}
    expected = reference_values(network, params, X, Y, masks, state)
    for name, value in module.gradients(params, X, Y, masks=masks).items():
        reference = expected[f"g_{name}"]
        assert np.abs(value - reference).max() <= 1e-12 * max(np.abs(reference).max(), 1e-3), \
            name
    from symbp.engine.derivation import derive_graph
    from symbp.engine.numeric import run
    from symbp.ops.base import BATCH

    derivation = derive_graph(network)
    evaluation = run(derivation.eval.graph, {**params, **state, "X": X, "Y": Y},
                     {**derivation.sizes, BATCH: len(X)})
    output = evaluation[derivation.eval.graph.equations[-2].out.name]
    assert np.allclose(module.forward(params, X, state=state), output, rtol=1e-12, atol=1e-14)
    assert module.loss(params, X, Y, state=state) == pytest.approx(float(evaluation["L"]),
                                                                   rel=1e-12)


# ------------------------------------------------- losses linear in the output
LINEAR_LOSS_SPEC = """name = "linear"
inputs = 4
loss = "lin"

[losses]
lin = "{text}"

[[layers]]
units = 5
activation = "tanh"

[[layers]]
units = 3
activation = "{output}"
"""


@pytest.mark.parametrize("output", ["identity", "sigmoid"])
@pytest.mark.parametrize("text", ["a", "-a", "a + a", "a*y - a"])
def test_a_loss_linear_in_the_output_generates_and_checks(capsys, tmp_path, text, output):
    """The output delta is a constant (or reads the target only): the module broadcasts
    it to (B, n_L); its gradients and loss are the engine's, and symbp check passes.
    A loss that does not read the target is not taken for weight decay."""
    spec = tmp_path / "linear.toml"
    spec.write_text(LINEAR_LOSS_SPEC.format(text=text, output=output), encoding="utf-8")
    code, source, err = run_cli(capsys, "generate", spec)
    assert code == 0 and err == "", err
    module = load_module(source)
    network = load_spec(spec)
    params, X, Y, masks = graph_point(module, network, 6, seed=3)
    expected = reference_values(network, params, X, Y, masks, {})
    grads = module.gradients(params, X, Y)
    for name, value in grads.items():
        reference = expected[f"g_{name}"]
        assert value.shape == reference.shape, name
        assert np.abs(value - reference).max() <= 1e-12 * max(np.abs(reference).max(), 1e-3), \
            name
    assert module.loss(params, X, Y) == pytest.approx(float(expected["L"]), rel=1e-12)
    code, out, err = run_cli(capsys, "check", spec)
    assert code == 0, out + err
    assert out.strip().splitlines()[-1].startswith("gradient check passed")


# --------------------------------------------------- Heaviside keeps the dtype
def _arrays_made_in(module, call):
    """``call()``, and every NumPy array a function of ``module`` held in a local variable
    or returned (read when each function returns)."""
    import sys

    seen = []

    def watch(frame, event, arg):
        if event == "return" and frame.f_code.co_filename == module.__file__:
            values = [*frame.f_locals.items(), (f"{frame.f_code.co_name} returns", arg)]
            for name, value in values:
                for item in value if isinstance(value, tuple) else (value,):
                    if isinstance(item, np.ndarray):
                        seen.append((frame.f_code.co_name, name, item.dtype))

    sys.setprofile(watch)
    try:
        result = call()
    finally:
        sys.setprofile(None)
    return result, seen


@pytest.mark.parametrize("activation, loss", [
    ("abs(x)", None), ("max(x, 0.1*x)", None), ("tanh", "abs(a - y)"),
    ("tanh", "max(a - y, 0)"), ("max(x, 0.1*x)", "min(a, y) + max(1 - a*y, 0)")])
def test_heaviside_keeps_float32(activation, loss):
    """Derivatives with a Heaviside step (abs, max, min) print as np.heaviside with a
    Python-float value at 0: every array of the float32 module stays float32, and its
    gradients agree with the float64 module's."""
    custom = activation != "tanh"
    network = Network(inputs=4, layers=[Dense(5, "f" if custom else "tanh"),
                                        Dense(3, "identity")],
                      loss="step" if loss else "mse", name="step",
                      activations={"f": activation} if custom else {},
                      losses={"step": loss} if loss else {})
    source = generate_source(network, "float32")
    assert "np.select" not in source
    module, module64 = load_module(source), load_module(generate_source(network))
    params, X, Y, _ = graph_point(module64, network, 6, seed=2)
    params32 = {name: value.astype(np.float32) for name, value in params.items()}
    grads, seen = _arrays_made_in(module, lambda: module.gradients(
        params32, X.astype(np.float32), Y.astype(np.float32)))
    assert {"_backprop", "_forward"} <= {function for function, _, _ in seen}
    assert {(f, n, str(d)) for f, n, d in seen if d != np.float32} == set()
    expected = module64.gradients(params, X, Y)
    for name, value in grads.items():
        assert value.dtype == np.float32, name
        scale = max(np.abs(expected[name]).max(), 1e-3)
        assert np.abs(value - expected[name]).max() <= 1e-4 * scale, name
