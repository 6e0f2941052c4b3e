"""The generated module run as a script, ``python gen.py --data F.npz`` (issue 9).

Bad arguments and bad data exit 2 with one line ``PROG: error: ...`` on stderr,
no traceback, and no file written or left behind; good input trains and saves.
Most cases call the module's ``main`` in-process (the same code the script
runs); a few run the real script in a fresh interpreter.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symbp.codegen import generate_source
from symbp.spec import Dense, Network

NETWORKS = {  # the S, and one network per other task
    "classification": Network(inputs=4, layers=[Dense(5, "tanh"), Dense(3, "softmax")],
                              loss="cross_entropy", name="s_net"),
    "binary": Network(inputs=4, layers=[Dense(5, "tanh"), Dense(1, "sigmoid")],
                      loss="bce", name="b_net"),
    "regression": Network(inputs=4, layers=[Dense(5, "tanh"), Dense(2, "identity")],
                          loss="mse", name="r_net"),
}


@pytest.fixture(scope="session")
def scripts(tmp_path_factory):
    """Each network's generated module: ``{task: (path, module)}``."""
    directory = tmp_path_factory.mktemp("scripts")
    modules = {}
    for task, network in NETWORKS.items():
        path = directory / f"{network.name}.py"
        path.write_text(generate_source(network), encoding="utf-8")
        spec = importlib.util.spec_from_file_location(network.name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[task] = (path, module)
    return modules


ROWS = 30
RNG = np.random.default_rng(0)
X = RNG.normal(0.0, 1.0, (ROWS, 4))
LABELS = np.arange(ROWS) % 3


def with_entry(array, index, value, dtype=None):
    changed = np.array(array, dtype=dtype or np.result_type(array, type(value)))
    changed[index] = value
    return changed


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def truncated(path: Path) -> Path:
    data = write_npz(path, X=X, y=LABELS).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def single_npy(path: Path) -> Path:
    with open(path, "wb") as stream:
        np.save(stream, X)
    return path


BAD_DATA = {  # name: (how to make the file, fragments of the error line)
    "row-counts-differ": (lambda p: write_npz(p, X=X, y=LABELS[:-1]), ["30 rows", "(29,)"]),
    "empty-file": (lambda p: written(p, b""), ["not an .npz"]),
    "truncated": (truncated, ["damaged"]),
    "npy-renamed": (single_npy, ["not an .npz"]),
    "not-npz": (lambda p: written(p, b"X,y\n1,2\n"), ["not an .npz"]),
    "missing-X": (lambda p: write_npz(p, x=X, y=LABELS), ["no array X"]),
    "missing-y": (lambda p: write_npz(p, X=X), ["no array y"]),
    "string-labels": (lambda p: write_npz(p, X=X, y=LABELS.astype(str)), ["y holds", "real"]),
    "complex-labels": (lambda p: write_npz(p, X=X, y=LABELS + 1j), ["y holds complex"]),
    "datetime-labels": (lambda p: write_npz(p, X=X, y=LABELS.astype("datetime64[D]")),
                        ["y holds datetime64"]),
    "nan-label": (lambda p: write_npz(p, X=X, y=with_entry(LABELS, 4, np.nan)),
                  ["y[4] = nan", "class label 0..2"]),
    "half-label": (lambda p: write_npz(p, X=X, y=with_entry(LABELS, 5, 0.5)), ["y[5] = 0.5"]),
    "label-out-of-range": (lambda p: write_npz(p, X=X, y=with_entry(LABELS, 6, 3)),
                           ["y[6] = 3", "0..2"]),
    "negative-label": (lambda p: write_npz(p, X=X, y=with_entry(LABELS, 7, -1)), ["y[7] = -1"]),
    "one-hot-labels": (lambda p: write_npz(p, X=X, y=np.eye(3)[LABELS]), ["one class label"]),
    "wrong-width": (lambda p: write_npz(p, X=X[:, :3], y=LABELS), ["(30, 3)", "(rows, 4)"]),
    "inf-feature": (lambda p: write_npz(p, X=with_entry(X, (8, 2), np.inf), y=LABELS),
                    ["X[8, 2] = inf", "finite"]),
    "nan-feature": (lambda p: write_npz(p, X=with_entry(X, (9, 1), np.nan), y=LABELS),
                    ["X[9, 1] = nan"]),
    "zero-rows": (lambda p: write_npz(p, X=X[:0], y=LABELS[:0]), ["(0, 4)", "at least one row"]),
    "object-labels": (lambda p: write_npz(p, X=X, y=np.array([1, "a"] * 15, dtype=object)),
                      ["damaged or unreadable", "allow_pickle"]),
    "missing-file": (lambda p: p.with_name("absent.npz"), ["absent.npz", "cannot read"]),
}

BAD_OPTIONS = {
    "batch-size-0": (["--batch-size", "0"], "--batch-size"),
    "batch-size-negative": (["--batch-size", "-2"], "--batch-size"),
    "epochs-negative": (["--epochs", "-3"], "--epochs"),
    "epochs-not-a-number": (["--epochs", "three"], "--epochs"),
    "learning-rate-nan": (["--learning-rate", "nan"], "--learning-rate"),
    "learning-rate-inf": (["--learning-rate", "inf"], "--learning-rate"),
    "learning-rate-negative": (["--learning-rate", "-0.1"], "--learning-rate"),
    "seed-negative": (["--seed", "-1"], "--seed"),
    "save-into-missing-directory": (["--save", "nodir/p.npz"], "nodir"),
    "save-empty-name": (["--save", ""], "--save"),
    "save-onto-a-directory": (["--save", "."], "is a directory"),
    "save-under-a-file": (["--save", "good.npz/p.npz"], "directory good.npz does not exist"),
    "unknown-option": (["--bogus"], "--bogus"),
    "no-data": (None, "--data"),
}


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def run_main(module, capsys, argv):
    code = module.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str):
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert ": error: " in lines[0], err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data(case, scripts, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make, fragments = BAD_DATA[case]
    data = make(tmp_path / "data.npz")
    before = listing(tmp_path)
    code, out, err = run_main(scripts["classification"][1], capsys,
                              ["--data", data, "--save", "params.npz"])
    assert code == 2
    assert_one_error_line(err, *fragments)
    assert "epoch" not in out  # refused before any training
    assert listing(tmp_path) == before


@pytest.mark.parametrize("case", BAD_OPTIONS)
def test_bad_options(case, scripts, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_npz(tmp_path / "good.npz", X=X, y=LABELS)
    options, fragment = BAD_OPTIONS[case]
    argv = ["--data", "good.npz", *options] if options is not None else []
    before = listing(tmp_path)
    code, out, err = run_main(scripts["classification"][1], capsys, argv)
    assert code == 2
    assert_one_error_line(err, fragment)
    assert "epoch" not in out
    assert listing(tmp_path) == before


@pytest.mark.parametrize("task, y, fragments", [
    ("binary", with_entry(LABELS % 2, 3, 0.5), ["y[3] = 0.5", "0 or 1"]),
    ("binary", with_entry(LABELS % 2, 2, 2), ["y[2] = 2"]),
    ("binary", np.zeros((ROWS, 2)), ["(30, 2)", "1 value(s) per row"]),
    ("regression", np.zeros(ROWS), ["(30,)", "2 value(s) per row"]),
    ("regression", with_entry(np.zeros((ROWS, 2)), (4, 1), np.nan), ["y[4, 1] = nan"]),
    ("regression", with_entry(np.zeros((ROWS, 2)), (5, 0), np.inf), ["y[5, 0] = inf"]),
], ids=["binary-half", "binary-two", "binary-width", "regression-width", "regression-nan",
        "regression-inf"])
def test_bad_targets_of_other_tasks(task, y, fragments, scripts, tmp_path, capsys):
    data = write_npz(tmp_path / "data.npz", X=X, y=y)
    code, _, err = run_main(scripts[task][1], capsys, ["--data", data])
    assert code == 2
    assert_one_error_line(err, *fragments)


@pytest.mark.parametrize("task, y", [("classification", LABELS), ("binary", LABELS % 2),
                                     ("regression", X[:, :2] * 0.5)])
def test_good_data_trains_and_saves_exactly_the_named_file(task, y, scripts, tmp_path,
                                                           monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_npz(tmp_path / "good.npz", X=X, y=y)
    code, out, err = run_main(scripts[task][1], capsys,
                              ["--data", "good.npz", "--epochs", "2", "--save", "trained"])
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()].count("epoch") == 2
    assert ("training accuracy" in out) == (task != "regression")
    assert listing(tmp_path) == ["good.npz", "trained"]  # the name as given, no temp file
    params = scripts[task][1].load_params(tmp_path / "trained")
    assert params["W1"].shape == (5, 4)


def test_existing_save_file_needs_force(scripts, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_npz(tmp_path / "good.npz", X=X, y=LABELS)
    (tmp_path / "p.npz").write_bytes(b"keep")
    module = scripts["classification"][1]
    code, _, err = run_main(module, capsys, ["--data", "good.npz", "--save", "p.npz"])
    assert code == 2
    assert_one_error_line(err, "p.npz", "--force")
    assert (tmp_path / "p.npz").read_bytes() == b"keep"
    code, _, err = run_main(module, capsys, ["--data", "good.npz", "--epochs", "1",
                                             "--save", "p.npz", "--force"])
    assert code == 0, err
    assert module.load_params(tmp_path / "p.npz")["W2"].shape == (3, 5)


# ------------------------------------------------------ the real script, in a process
def script(path: Path, *argv, cwd: Path):
    return subprocess.run([sys.executable, str(path), *[str(a) for a in argv]], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv, fragment", [
    (["--data", "data.npz", "--batch-size", "0"], "--batch-size"),
    (["--data", "rows.npz"], "rows.npz"),
    (["--data", "data.npz", "--save", "nodir/p.npz"], "nodir"),
], ids=["batch-size-0", "row-counts", "save-nodir"])
def test_the_script_in_a_process(argv, fragment, scripts, tmp_path):
    write_npz(tmp_path / "data.npz", X=X, y=LABELS)
    write_npz(tmp_path / "rows.npz", X=X, y=LABELS[:10])
    before = listing(tmp_path)
    path = scripts["classification"][0]
    result = script(path, *argv, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, fragment)
    assert result.stderr.startswith(f"{path.name}: error: ")
    assert result.stdout == ""
    assert listing(tmp_path) == before


def test_the_script_trains_in_a_process(scripts, tmp_path):
    write_npz(tmp_path / "data.npz", X=X, y=LABELS)
    result = script(scripts["classification"][0], "--data", "data.npz", "--epochs", "3",
                    "--save", "p.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert sum(line.startswith("epoch") for line in result.stdout.splitlines()) == 3
    assert (tmp_path / "p.npz").is_file()


# ------------------------------------------------------------ a convolutional network
CNN = Network(inputs=[1, 6, 6], layers=[
    {"type": "conv2d", "channels": 2, "kernel": 3, "padding": 1, "activation": "relu"},
    {"type": "max_pool2d", "kernel": 2}, Dense(3, "softmax")], loss="cross_entropy",
    name="c_net")
IMAGES = RNG.normal(0.0, 1.0, (ROWS, 1, 6, 6))


@pytest.fixture(scope="module")
def cnn_script(tmp_path_factory):
    path = tmp_path_factory.mktemp("cnn") / "c_net.py"
    path.write_text(generate_source(CNN), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("c_net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("images", [IMAGES, IMAGES[:, 0]], ids=["NCHW", "NHW-one-channel"])
def test_a_cnn_script_trains_on_images(images, cnn_script, tmp_path, capsys):
    data = write_npz(tmp_path / "images.npz", X=images, y=LABELS)
    code, out, err = run_main(cnn_script, capsys, ["--data", data, "--epochs", "2",
                                                   "--save", tmp_path / "p.npz"])
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()].count("epoch") == 2
    assert cnn_script.load_params(tmp_path / "p.npz")["W1"].shape == (2, 1, 3, 3)


@pytest.mark.parametrize("images", [IMAGES.reshape(ROWS, 36), np.zeros((ROWS, 2, 6, 6)),
                                    np.zeros((ROWS, 6, 5)), np.zeros((0, 1, 6, 6))],
                         ids=["flat", "two-channels", "wrong-size", "no-rows"])
def test_a_cnn_script_refuses_images_of_another_shape(images, cnn_script, tmp_path, capsys):
    data = write_npz(tmp_path / "images.npz", X=images, y=LABELS[:len(images)])
    before = listing(tmp_path)
    code, out, err = run_main(cnn_script, capsys, ["--data", data])
    assert code == 2
    assert_one_error_line(err, str(images.shape), "(rows, 1, 6, 6)")
    assert "epoch" not in out
    assert listing(tmp_path) == before
