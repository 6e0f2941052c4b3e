"""``symbp train``, ``symbp check`` and ``symbp demo`` on real data, and the
bad-input contract of CONVENTIONS §4 (issue 3): exit 2, one stderr line
``symbp: error: ...``, no traceback, no file left behind."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symbp.cli import main
from symbp.codegen import generate_source, load_module
from symbp.data import load_dataset
from symbp.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))
DIGITS = REPO / "examples" / "digits_mlp.toml"
DIGITS_CNN = REPO / "examples" / "digits_cnn.toml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TINY_SPEC = """\
name = "tiny"
inputs = 4
loss = "cross_entropy"

[[layers]]
units = 5
activation = "relu"

[[layers]]
units = 3
activation = "softmax"

[training]
epochs = 2
"""


def symbp(*argv, cwd=None, timeout=300):
    """The real command line in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "symbp", *[str(a) for a in argv]],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_cli(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str):
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("symbp: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


def load_golden(name: str = "digits_mlp"):
    spec = importlib.util.spec_from_file_location(f"golden_{name}",
                                                  REPO / "generated" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_parser():
    line = "final accuracy: train 0.9585, test 0.9332 (0.11 s)"
    assert printed_test_accuracy(line) == pytest.approx(0.9332)
    assert printed_test_accuracy("test accuracy 96.55% after 30 epochs") == pytest.approx(0.9655)
    with pytest.raises(AssertionError):
        printed_test_accuracy("no numbers here")


def printed_test_accuracy(text: str) -> float:
    """The test accuracy printed in ``text`` (a fraction, or a percentage)."""
    for line in text.splitlines():
        if "accuracy" not in line or "test" not in line:
            continue
        match = re.search(r"test(?: accuracy)?[:\s]+([0-9]*\.?[0-9]+)(%?)", line)
        if match:
            value = float(match.group(1))
            return value / 100 if match.group(2) else value
    raise AssertionError(f"no test accuracy in:\n{text}")


# ------------------------------------------------------------------- train
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One real ``symbp train`` on the bundled digits, with --plot and --save."""
    directory = tmp_path_factory.mktemp("train")
    result = symbp("train", DIGITS, "--data", "digits", "--epochs", "3",
                   "--plot", "curves.png", "--save", "params.npz", cwd=directory)
    return result, directory


def test_train_digits_prints_test_accuracy(digits_run):
    result, _ = digits_run
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" or "Traceback" not in result.stderr
    epochs = [line for line in result.stdout.splitlines() if line.strip().startswith("epoch")]
    assert len(epochs) == 3
    accuracy = printed_test_accuracy(result.stdout)
    assert 0.5 < accuracy <= 1.0  # chance is 0.1; three epochs of sgd get far above it


def test_train_plot_is_a_png(digits_run):
    result, directory = digits_run
    assert result.returncode == 0, result.stderr
    png = (directory / "curves.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE
    assert len(png) > 1000


def test_train_save_loads_into_the_module(digits_run):
    result, directory = digits_run
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["curves.png", "params.npz"]
    module = load_golden()
    params = module.load_params(directory / "params.npz")
    assert {name: value.shape for name, value in params.items()} == {
        "W1": (32, 64), "b1": (32,), "W2": (10, 32), "b2": (10,)}
    # the saved parameters reproduce the printed test accuracy on the same split
    network = load_spec(DIGITS)
    data = load_dataset("digits", n_inputs=64, n_outputs=10, task="classification",
                        seed=network.training["seed"])
    accuracy = np.mean(module.predict(params, data.X_test) == data.y_test_raw)
    assert accuracy == pytest.approx(printed_test_accuracy(result.stdout), abs=1e-4)


# ------------------------------------------------------------------- check
@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_check_examples_pass(capsys, spec):
    code, out, err = run_cli(capsys, "check", spec)
    assert code == 0, out + err
    lines = out.strip().splitlines()
    assert lines[0].split()[0] == "parameter"
    names = [line.split()[0] for line in lines[1:-1]]
    module = load_module(generate_source(load_spec(spec)))
    assert names == list(module.PARAM_NAMES)  # every parameter of every layer, in order
    assert all(line.split()[-1] == "ok" for line in lines[1:-1])
    assert "passed" in lines[-1]


# ------------------------------------------------------------- the CNN example
@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """``symbp train examples/digits_cnn.toml --data digits`` with the spec's settings."""
    directory = tmp_path_factory.mktemp("cnn")
    result = symbp("train", DIGITS_CNN, "--data", "digits", "--save", "params.npz",
                   cwd=directory)
    return result, directory


def test_train_digits_cnn_reaches_97_5_percent(cnn_run):
    """Issue 11: the example CNN, trained by symbp's generated code with its spec's seeded
    settings, gets at least 97.5 % of the held-out digits right."""
    result, _ = cnn_run
    assert result.returncode == 0, result.stderr
    network = load_spec(DIGITS_CNN)
    epochs = [line for line in result.stdout.splitlines() if line.strip().startswith("epoch")]
    assert epochs[-1].split()[1] == f"{network.training['epochs']}/{network.training['epochs']}"
    assert "samples of shape (1, 8, 8)" in result.stdout
    assert printed_test_accuracy(result.stdout) >= 0.975


def test_train_digits_cnn_saved_params_reproduce_the_accuracy(cnn_run):
    """The saved parameters, loaded into the golden module, score what was printed on the
    same split of the images."""
    result, directory = cnn_run
    assert result.returncode == 0, result.stderr
    module = load_golden("digits_cnn")
    params = module.load_params(directory / "params.npz")
    assert params["W1"].shape == (8, 1, 3, 3) and params["W5"].shape[0] == 10
    network = load_spec(DIGITS_CNN)
    data = load_dataset("digits", n_inputs=network.inputs, n_outputs=10,
                        task="classification", seed=network.training["seed"])
    assert data.X_test.shape[1:] == (1, 8, 8)
    accuracy = np.mean(module.predict(params, data.X_test) == data.y_test_raw)
    assert accuracy == pytest.approx(printed_test_accuracy(result.stdout), abs=1e-4)


def test_train_cnn_is_reproducible(tmp_path):
    """Seeded: two trainings of a small CNN give the same parameters, bit for bit."""
    import io

    from symbp.training import train_on_data

    spec = tmp_path / "small_cnn.toml"
    spec.write_text(SMALL_CNN, encoding="utf-8")
    images = tmp_path / "images.npz"
    np.savez(images, **small_images())
    network = load_spec(spec)
    first = train_on_data(network, str(images), epochs=2, out=io.StringIO())
    second = train_on_data(network, str(images), epochs=2, out=io.StringIO())
    assert first.params.keys() == second.params.keys()
    for name, value in first.params.items():
        np.testing.assert_array_equal(value, second.params[name])
    assert first.train_loss == second.train_loss


SMALL_CNN = """\
name = "small_cnn"
inputs = [1, 6, 6]
loss = "cross_entropy"

[[layers]]
type = "conv2d"
channels = 3
kernel = 3
activation = "relu"

[[layers]]
type = "max_pool2d"
kernel = 2

[[layers]]
units = 3
activation = "softmax"

[training]
epochs = 2
"""


def small_images(n=30):
    """One-channel 6x6 images without the channel axis, (N, H, W), and 3 classes."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    X = rng.normal(size=(n, 6, 6))
    X[np.arange(n), labels, labels] += 3.0
    return {"X": X, "y": labels}


@pytest.fixture
def cnn_workspace(tmp_path):
    (tmp_path / "small_cnn.toml").write_text(SMALL_CNN, encoding="utf-8")
    np.savez(tmp_path / "images.npz", **small_images())
    colour = small_images()
    np.savez(tmp_path / "colour.npz", X=np.repeat(colour["X"][:, None], 3, axis=1),
             y=colour["y"])
    np.savez(tmp_path / "flat.npz", X=colour["X"].reshape(30, 36)[:, :35], y=colour["y"])
    return tmp_path


def test_train_cnn_on_npz_images(capsys, cnn_workspace, monkeypatch):
    monkeypatch.chdir(cnn_workspace)
    code, out, err = run_cli(capsys, "train", "small_cnn.toml", "--data", "images.npz",
                             "--save", "params.npz")
    assert code == 0, err
    assert "samples of shape (1, 6, 6)" in out
    assert 0.0 <= printed_test_accuracy(out) <= 1.0
    with np.load(cnn_workspace / "params.npz") as params:
        assert params["W1"].shape == (3, 1, 3, 3)


@pytest.mark.parametrize("data, fragments", [
    ("colour.npz", ["colour.npz", "X has shape (30, 3, 6, 6)", "per sample (3, 6, 6)",
                    "the spec's inputs are [1, 6, 6]"]),
    ("flat.npz", ["flat.npz", "35 features", "[1, 6, 6] need 36"]),
])
def test_train_cnn_bad_image_shape(capsys, cnn_workspace, monkeypatch, data, fragments):
    monkeypatch.chdir(cnn_workspace)
    before = listing(cnn_workspace)
    code, _, err = run_cli(capsys, "train", "small_cnn.toml", "--data", data,
                           "--save", "out.npz", "--plot", "out.png")
    assert code == 2
    assert_one_error_line(err, *fragments)
    assert listing(cnn_workspace) == before


# ------------------------------------------------------------------- demo
def test_demo_reaches_95_percent_then_shows_the_cnn(tmp_path):
    """The MLP (>= 95 %), then the CNN (>= 97.5 %) with an excerpt of its derived
    backward formulas, both with their specs' settings."""
    result = symbp("demo", "--output-dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("gradient check passed") == 2
    mlp, cnn = result.stdout.split("digits_cnn.toml", 1)
    assert printed_test_accuracy(mlp) >= 0.95
    assert "Backward formulas of the op conv2d" in cnn
    assert "Backward formulas of the op max_pool2d" in cnn
    assert "Backward formulas of the op dense" not in cnn  # an excerpt
    assert printed_test_accuracy(cnn) >= 0.975
    assert (tmp_path / "digits_mlp.py").is_file() and (tmp_path / "digits_cnn.py").is_file()


# --------------------------------------------------------------- bad input
@pytest.fixture
def workspace(tmp_path):
    """A directory with the tiny spec and some data files, good and bad."""
    (tmp_path / "tiny.toml").write_text(TINY_SPEC, encoding="utf-8")
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, (40, 4))
    y = np.arange(40) % 3
    np.savez(tmp_path / "good.npz", X=X, y=y)
    np.savez(tmp_path / "features.npz", X=X[:, :3], y=y)
    np.savez(tmp_path / "range.npz", X=X, y=np.where(np.arange(40) == 5, 3, y))
    bad = X.copy()
    bad[7, 2] = np.nan
    np.savez(tmp_path / "nan.npz", X=bad, y=y)
    return tmp_path


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


BAD_DATA = [
    ("missing-file", "absent.npz", ["absent.npz"]),
    ("feature-count", "features.npz", ["features.npz", "3 features", "inputs"]),
    ("label-out-of-range", "range.npz", ["range.npz", "y[5]", "out of range"]),
    ("nan", "nan.npz", ["nan.npz", "X[7, 2]", "finite"]),
    ("unknown-dataset", "mnist", ["mnist"]),
]


@pytest.mark.parametrize("data, fragments", [pytest.param(d, f, id=i) for i, d, f in BAD_DATA])
def test_train_bad_data(capsys, workspace, monkeypatch, data, fragments):
    monkeypatch.chdir(workspace)
    before = listing(workspace)
    code, _, err = run_cli(capsys, "train", "tiny.toml", "--data", data,
                           "--plot", "out.png", "--save", "out.npz")
    assert code == 2
    assert_one_error_line(err, *fragments)
    assert listing(workspace) == before


@pytest.mark.parametrize("epochs", ["0", "-3", "three"])
def test_train_bad_epochs(capsys, workspace, monkeypatch, epochs):
    monkeypatch.chdir(workspace)
    before = listing(workspace)
    code, _, err = run_cli(capsys, "train", "tiny.toml", "--data", "good.npz",
                           "--epochs", epochs, "--save", "out.npz")
    assert code == 2
    assert_one_error_line(err, "--epochs")
    assert listing(workspace) == before


@pytest.mark.parametrize("option, path", [("--plot", "nowhere/curves.png"),
                                          ("--save", "nowhere/params.npz")])
def test_train_unwritable_output(capsys, workspace, monkeypatch, option, path):
    monkeypatch.chdir(workspace)
    before = listing(workspace)
    code, _, err = run_cli(capsys, "train", "tiny.toml", "--data", "good.npz", option, path)
    assert code == 2
    assert_one_error_line(err, path)
    assert listing(workspace) == before


def test_train_bad_save_path_writes_no_plot(capsys, workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    before = listing(workspace)
    code, _, err = run_cli(capsys, "train", "tiny.toml", "--data", "good.npz",
                           "--plot", "curves.png", "--save", "nowhere/params.npz")
    assert code == 2
    assert_one_error_line(err, "nowhere/params.npz")
    assert listing(workspace) == before


def test_train_existing_output_is_kept(capsys, workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    (workspace / "out.npz").write_bytes(b"keep")
    code, _, err = run_cli(capsys, "train", "tiny.toml", "--data", "good.npz",
                           "--save", "out.npz")
    assert code == 2
    assert_one_error_line(err, "out.npz", "--force")
    assert (workspace / "out.npz").read_bytes() == b"keep"


def test_train_tiny_writes_outputs(capsys, workspace, monkeypatch):
    """The good path of the same setup, so the failures above are about their input."""
    monkeypatch.chdir(workspace)
    code, out, err = run_cli(capsys, "train", "tiny.toml", "--data", "good.npz",
                             "--plot", "curves.png", "--save", "params.npz")
    assert code == 0, err
    assert (workspace / "curves.png").read_bytes()[:8] == PNG_SIGNATURE
    with np.load(workspace / "params.npz") as params:
        assert params["W1"].shape == (5, 4) and params["W2"].shape == (3, 5)
    assert 0.0 <= printed_test_accuracy(out) <= 1.0
    assert not [p for p in workspace.iterdir() if p.name.startswith(".")]  # no temp files


def test_generate_into_missing_directory(capsys, workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    before = listing(workspace)
    code, _, err = run_cli(capsys, "generate", "tiny.toml", "-o", "nowhere/tiny.py")
    assert code == 2
    assert_one_error_line(err, "nowhere/tiny.py")
    assert listing(workspace) == before


def test_bad_input_in_a_real_process(workspace):
    before = listing(workspace)
    result = symbp("train", "tiny.toml", "--data", "mnist", "--save", "out.npz", cwd=workspace)
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "mnist")
    assert listing(workspace) == before


# ------------------------------------------------------ the training history
def test_train_curves_are_minibatch_means_and_test_losses(workspace):
    """The train curve is the generated train()'s history (mean minibatch loss of each
    epoch), the test curve the full test-set loss after each epoch (Keras's loss and
    val_loss)."""
    import io

    from symbp.codegen import generate_source, load_module
    from symbp.training import train_on_data

    network = load_spec(workspace / "tiny.toml")
    data = str(workspace / "good.npz")
    result = train_on_data(network, data, epochs=4, out=io.StringIO())
    module = load_module(generate_source(network))
    split = load_dataset(data, n_inputs=4, n_outputs=3, task="classification",
                         seed=network.training["seed"])
    params = module.init_params(network.training["seed"])
    final_test_loss = []
    history = module.train(params, split.X_train, split.Y_train, epochs=4,
                           callback=lambda *_: final_test_loss.append(
                               module.loss(params, split.X_test, split.Y_test)))
    assert result.train_loss == history
    assert result.test_loss == final_test_loss
    assert result.test_loss[-1] == module.loss(result.params, split.X_test, split.Y_test)
    assert result.train_loss[-1] != module.loss(result.params, split.X_train, split.Y_train)
