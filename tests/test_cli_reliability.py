"""Reproducers of issue 9 that reach the command line's shared mechanisms.

Each test is one input that used to break the promise of CONVENTIONS §4 (a
traceback, a file left behind, a hang, or a silent acceptance) and asserts
what it does now: exit 2 with one ``symbp: error:`` line naming the field, no
file written, or a correct result. The checks run through
:func:`symbp.cli.main` in-process, except where a real process is the point
(a full stdout, the console entry point).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ISSUE_SPEC, REPO

from symbp import data
from symbp.cli import main

SPEC = ISSUE_SPEC


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A directory holding the spec S of the issue and a small CSV data file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "S.toml").write_text(SPEC, encoding="utf-8")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",")
    return tmp_path


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(result, *fragments):
    code, out, err = result
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symbp: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def listing(directory: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


# ------------------------------------------------------------ output paths
def test_plot_and_save_to_the_same_path_is_refused_before_training(capsys, workspace):
    before = listing(workspace)
    code, out, err = cli(capsys, "train", "S.toml", "--data", "d.csv", "--plot", "x.png",
                         "--save", "x.png")
    assert_error((code, out, err), "--save", "x.png", "--plot")
    assert out == "" and listing(workspace) == before


def test_unwritable_plot_directory_fails_before_training(capsys, workspace):
    code, out, err = cli(capsys, "train", "S.toml", "--data", "d.csv", "--plot", "/proc/l.png")
    assert_error((code, out, err), "--plot", "/proc/l.png")
    assert "training" not in out


@pytest.mark.parametrize("argv", [
    ("derive", "S.toml", "-o", ""),
    ("generate", "S.toml", "-o", ""),
    ("train", "S.toml", "--data", "d.csv", "--plot", ""),
    ("train", "S.toml", "--data", "d.csv", "--save", ""),
])
def test_empty_output_names_are_refused(capsys, workspace, argv):
    before = listing(workspace)
    assert_error(cli(capsys, *argv), "empty file name")
    assert listing(workspace) == before


def test_existing_output_is_refused_before_deriving(capsys, workspace):
    (workspace / "out.py").write_text("keep", encoding="utf-8")
    assert_error(cli(capsys, "generate", "S.toml", "-o", "out.py"), "--output", "already exists")
    assert (workspace / "out.py").read_text(encoding="utf-8") == "keep"


# ------------------------------------------------------------- flag values
@pytest.mark.parametrize("argv, fragment", [
    (("train", "S.toml", "--data", "d.csv", "--seed", "-1"), "--seed"),
    (("check", "S.toml", "--seed", "-1"), "--seed"),
    (("train", "S.toml", "--data", "d.csv", "--learning-rate", "nan"), "--learning-rate"),
    (("train", "S.toml", "--data", "d.csv", "--learning-rate", "inf"), "--learning-rate"),
    (("train", "S.toml", "--data", "d.csv", "--learning-rate", "-0.1"), "--learning-rate"),
    (("train", "S.toml", "--data", "d.csv", "--epochs", "0"), "--epochs"),
    (("train", "S.toml", "--data", "d.csv", "--batch-size", "-2"), "--batch-size"),
    (("train", "S.toml", "--data", "d.csv", "--epochs", "1.5"), "--epochs"),
    (("demo", "--epochs", "-3"), "--epochs"),
])
def test_bad_flag_values_are_refused_like_the_spec_refuses_them(capsys, workspace, argv,
                                                                fragment):
    code, out, err = cli(capsys, *argv)
    assert_error((code, out, err), fragment)
    assert out == ""


def test_no_command_is_one_error_line(capsys):
    assert_error(cli(capsys), "a command is required")


# -------------------------------------------------------------- input files
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("argv", [
    ("derive", "z.toml"),
    ("train", "S.toml", "--data", "z.csv"),
    ("train", "S.toml", "--data", "z.npz"),
    ("verify", "S.toml", "--file", "z.tex"),
])
def test_a_symlink_to_dev_zero_is_refused_without_reading(capsys, workspace, argv):
    for name in ("z.toml", "z.csv", "z.npz", "z.tex"):
        (workspace / name).symlink_to("/dev/zero")
    assert_error(cli(capsys, *argv), "not a regular file")


def test_a_file_over_the_size_limit_is_refused(capsys, workspace, monkeypatch):
    from symbp import files

    monkeypatch.setattr(files, "TEXT_LIMIT", 100)
    assert_error(cli(capsys, "derive", "S.toml"), "S.toml", "more than the 100")


@pytest.mark.parametrize("text, fragment", [
    ("inputs = " + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("inputs = " + "7" * 5000, "invalid TOML"),
])
def test_pathological_toml_is_a_spec_error(capsys, workspace, text, fragment):
    (workspace / "bad.toml").write_text(text, encoding="utf-8")
    assert_error(cli(capsys, "derive", "bad.toml"), "bad.toml", fragment)


def test_npz_with_zero_rows(capsys, workspace):
    np.savez(workspace / "zero.npz", X=np.zeros((0, 4)), y=np.zeros((0,)))
    assert_error(cli(capsys, "train", "S.toml", "--data", "zero.npz"), "zero.npz", "0 data row")


def test_npz_whose_header_declares_ten_billion_rows(capsys, workspace):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**10, 4)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(40))
    with zipfile.ZipFile(workspace / "forged.npz", "w") as archive:
        archive.writestr("X.npy", header.getvalue() + np.zeros((40, 4)).tobytes())
        archive.writestr("y.npy", labels.getvalue())
    assert_error(cli(capsys, "train", "S.toml", "--data", "forged.npz"),
                 "forged.npz", "'X'", "declares shape (10000000000, 4)")


def test_a_single_npy_renamed_npz(capsys, workspace):
    with open(workspace / "single.npz", "wb") as handle:
        np.save(handle, np.zeros((40, 4)))
    assert_error(cli(capsys, "train", "S.toml", "--data", "single.npz"), "single .npy")


def test_columns_near_the_float_limit_standardise_and_train(capsys, workspace):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    X[:, 0] = np.where(X[:, 0] > 0, 1e308, -1e308)
    X[:, 1] *= 1e200
    np.savetxt(workspace / "huge.csv", np.column_stack([X, y]), delimiter=",", fmt="%.17g")
    dataset = data.load_dataset("huge.csv", n_inputs=4, n_outputs=3, task="classification")
    # each train column has mean 0 and std 1 after standardising (no feature zeroed, no inf)
    np.testing.assert_allclose(dataset.X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(dataset.X_train.std(axis=0), 1.0, rtol=1e-12)
    code, out, err = cli(capsys, "train", "S.toml", "--data", "huge.csv", "--epochs", "3")
    assert code == 0, err
    assert "nan" not in out and err == ""


def test_regression_rmse_near_the_float_limit_is_finite():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(40, 2)), rng.normal(size=40) * 1e307
    raw = data._Raw("big", X, y[:, None], lambda i, k: f"row {i}")
    train, test = data._split_indices(40, 0.25, 0)
    dataset = data._assemble(raw, "regression", 1, train, test)
    name, value = data.metric(dataset, np.zeros((len(test), 1)))
    expected = np.sqrt(np.mean(((y[test] - dataset.y_mean[0]) / 1e307) ** 2)) * 1e307
    assert name == "rmse" and np.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------ network sizes
@pytest.mark.parametrize("layers, fragment", [
    ("[[layers]]\nunits = 1000000\nactivation = \"tanh\"\n", "parameters"),
    ("[[layers]]\nunits = 3\nactivation = \"tanh\"\n" * 2000, "2000 layers"),
])
def test_networks_beyond_the_documented_limits(capsys, workspace, layers, fragment):
    text = f'inputs = 1000000\nloss = "mse"\n{layers}'
    (workspace / "big.toml").write_text(text, encoding="utf-8")
    for command in ("check", "derive"):
        assert_error(cli(capsys, command, "big.toml"), "layers", fragment)


def test_one_unit_softmax_is_refused(capsys, workspace):
    (workspace / "one.toml").write_text(SPEC.replace("units = 3", "units = 1"), encoding="utf-8")
    assert_error(cli(capsys, "derive", "one.toml"), "layers[2].units", "softmax over 1 unit")


# ---------------------------------------------------------- internal errors
def test_an_unexpected_exception_is_one_internal_error_line(capsys, workspace, monkeypatch):
    from symbp.engine import derivation

    def broken(*args, **kwargs):
        raise ValueError("something\nbroke")

    monkeypatch.setattr(derivation, "derive_graph", broken)
    code, out, err = cli(capsys, "derive", "S.toml")
    assert code == 3
    assert err.splitlines() == ["symbp: internal error: ValueError: something broke"]
    code, out, err = cli(capsys, "--debug", "derive", "S.toml")
    assert code == 3 and "Traceback" in err and err.rstrip().endswith("something broke")


def test_full_stdout_is_one_error_line(workspace):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "symbp", "derive", "S.toml"],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
                                cwd=workspace, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "symbp: error: cannot write to standard output (No space left on device)"]
