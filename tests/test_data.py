"""Tests for symbp.data: built-in data sets, files, the split, and bad input."""

import sys

import numpy as np
import pytest

from symbp.data import BUILTIN_DATASETS, Dataset, load_dataset, metric
from symbp.errors import DataError, SymbpError

# (name, n_inputs, n_outputs, task, n_classes or None)
BUILTINS = [
    ("digits", 64, 10, "classification", 10),
    ("iris", 4, 3, "classification", 3),
    ("wine", 13, 3, "classification", 3),
    ("breast_cancer", 30, 1, "binary", 2),
    ("diabetes", 10, 1, "regression", None),
]


def _load(source, n_inputs, n_outputs=2, task="classification", **kw):
    return load_dataset(str(source), n_inputs=n_inputs, n_outputs=n_outputs, task=task, **kw)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _id_data(n=40, d=3, seed=1):
    """X whose column 0 is the row id (so rows can be traced through the split)."""
    X = np.random.default_rng(seed).normal(loc=5.0, scale=3.0, size=(n, d))
    X[:, 0] = np.arange(n)
    return X


def _ids(d, split):
    """Row ids of a split, undoing the standardisation of column 0.

    Standardisation is increasing and affine, and the ids are 0..n-1 over
    both splits, so the sorted z-scores of all rows map linearly onto 0..n-1.
    """
    z_all = np.sort(np.concatenate([d.X_train[:, 0], d.X_test[:, 0]]))
    slope, intercept = np.polyfit(z_all, np.arange(len(z_all)), 1)
    z = d.X_train[:, 0] if split == "train" else d.X_test[:, 0]
    ids = slope * z + intercept
    np.testing.assert_allclose(ids, np.round(ids), atol=1e-8)
    return np.round(ids).astype(int)


# ---------------------------------------------------------------------------
# Built-in data sets
# ---------------------------------------------------------------------------


def test_builtin_names_match_table():
    assert set(BUILTIN_DATASETS) == {row[0] for row in BUILTINS}


@pytest.mark.parametrize("name, n_inputs, n_outputs, task, n_classes", BUILTINS)
def test_builtin_shapes_and_encoding(name, n_inputs, n_outputs, task, n_classes):
    d = load_dataset(name, n_inputs=n_inputs, n_outputs=n_outputs, task=task)
    assert isinstance(d, Dataset) and d.name == name and d.task == task
    n_train, n_test = len(d.X_train), len(d.X_test)
    assert abs(n_test / (n_train + n_test) - 0.25) < 0.01
    for array, rows, cols in [
        (d.X_train, n_train, n_inputs),
        (d.X_test, n_test, n_inputs),
        (d.Y_train, n_train, n_outputs),
        (d.Y_test, n_test, n_outputs),
    ]:
        assert array.shape == (rows, cols) and array.dtype == np.float64
    assert d.y_train_raw.shape == (n_train,) and d.y_test_raw.shape == (n_test,)
    if task == "classification":
        assert d.y_train_raw.dtype.kind == "i"
        assert set(np.unique(d.y_train_raw)) == set(range(n_classes))
        np.testing.assert_array_equal(d.Y_train.sum(axis=1), 1.0)
        np.testing.assert_array_equal(d.Y_train.argmax(axis=1), d.y_train_raw)
        assert d.y_mean is None and d.y_std is None
    elif task == "binary":
        assert set(np.unique(d.Y_train)) == {0.0, 1.0}
        np.testing.assert_array_equal(d.Y_train[:, 0], d.y_train_raw)
    else:
        assert d.y_mean.shape == (1,) and d.y_std.shape == (1,)
        np.testing.assert_allclose(d.Y_train[:, 0] * d.y_std + d.y_mean, d.y_train_raw)
        np.testing.assert_allclose(d.Y_test[:, 0] * d.y_std + d.y_mean, d.y_test_raw)
        assert abs(d.Y_train.mean()) < 1e-12 and abs(d.Y_train.std() - 1) < 1e-12


@pytest.mark.parametrize("name, n_inputs, n_outputs, task, n_classes", BUILTINS)
def test_builtin_features_standardised_with_train_stats(name, n_inputs, n_outputs, task, n_classes):
    d = load_dataset(name, n_inputs=n_inputs, n_outputs=n_outputs, task=task)
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0.0, atol=1e-10)
    std = d.X_train.std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-10) | (std == 0))  # std 0 only for constant features
    assert np.all(np.isfinite(d.X_test))
    assert np.abs(d.X_test.mean(axis=0)).max() > 1e-3  # test rows use the TRAIN statistics


def test_digits_constant_pixels_stay_zero():
    d = load_dataset("digits", n_inputs=64, n_outputs=10, task="classification")
    constant = d.X_train.std(axis=0) == 0
    assert constant.any()
    assert np.all(d.X_train[:, constant] == 0)


def test_missing_sklearn_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(DataError, match=r"iris.*pip install scikit-learn"):
        load_dataset("iris", n_inputs=4, n_outputs=3, task="classification")


# ---------------------------------------------------------------------------
# Split: deterministic, a partition, stratified
# ---------------------------------------------------------------------------


def test_split_is_deterministic_from_seed():
    a = load_dataset("iris", n_inputs=4, n_outputs=3, task="classification", seed=7)
    b = load_dataset("iris", n_inputs=4, n_outputs=3, task="classification", seed=7)
    c = load_dataset("iris", n_inputs=4, n_outputs=3, task="classification", seed=8)
    for field in ("X_train", "X_test", "Y_train", "y_test_raw"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.X_test, c.X_test)


def test_split_is_a_partition_and_keeps_labels_with_rows(tmp_path):
    X = _id_data(n=37)
    y = np.arange(37) % 3
    d = _load(_npz(tmp_path / "ids.npz", X=X, y=y), 3, 3)
    train, test = _ids(d, "train"), _ids(d, "test")
    assert len(test) == 9  # round(0.25 * 37)
    assert sorted(np.concatenate([train, test])) == list(range(37))
    np.testing.assert_array_equal(d.y_train_raw, train % 3)
    np.testing.assert_array_equal(d.y_test_raw, test % 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_split_is_stratified(seed):
    d = load_dataset("wine", n_inputs=13, n_outputs=3, task="classification", seed=seed)
    n_train, n_test = np.bincount(d.y_train_raw), np.bincount(d.y_test_raw)
    total = n_train + n_test
    np.testing.assert_array_equal(total, [59, 71, 48])
    expected = total * len(d.y_test_raw) / total.sum()
    assert np.all(np.abs(n_test - expected) < 1.0)


def test_binary_split_is_stratified():
    d = load_dataset("breast_cancer", n_inputs=30, n_outputs=1, task="binary")
    assert abs(d.y_train_raw.mean() - d.y_test_raw.mean()) < 0.01


def test_rare_class_gets_its_share_of_the_test_split(tmp_path):
    X = np.random.default_rng(0).normal(size=(100, 2))
    y = np.zeros(100, dtype=int)
    y[:8] = 1
    for seed in range(5):
        d = _load(_npz(tmp_path / "rare.npz", X=X, y=y), 2, 2, seed=seed)
        assert np.sum(d.y_test_raw == 1) == 2 and np.sum(d.y_train_raw == 1) == 6


def test_tiny_data_keeps_two_rows_per_split(tmp_path):
    X = _id_data(n=4)
    d = _load(_npz(tmp_path / "four.npz", X=X, y=[0, 1, 0, 1]), 3, 2, test_fraction=0.1)
    assert len(d.X_train) == 2 and len(d.X_test) == 2


# ---------------------------------------------------------------------------
# Files: round trips
# ---------------------------------------------------------------------------


def test_npz_round_trip_classification(tmp_path):
    X = _id_data(n=40)
    y = np.arange(40) % 4
    d = _load(_npz(tmp_path / "toy.npz", X=X, y=y), 3, 4)
    assert d.name == "toy.npz"
    train, test = _ids(d, "train"), _ids(d, "test")
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    np.testing.assert_allclose(d.X_train, (X[train] - mean) / std)
    np.testing.assert_allclose(d.X_test, (X[test] - mean) / std)
    np.testing.assert_array_equal(d.Y_test, np.eye(4)[y[test]])


def test_npz_round_trip_multi_output_regression(tmp_path):
    X = _id_data(n=30)
    y = np.column_stack([10 * np.arange(30.0), -np.arange(30.0) + 0.5])
    d = _load(_npz(tmp_path / "reg.npz", X=X, y=y), 3, 2, task="regression")
    train = _ids(d, "train")
    assert d.y_train_raw.shape == (len(train), 2)
    np.testing.assert_allclose(d.y_train_raw, y[train])
    np.testing.assert_allclose(d.y_mean, y[train].mean(axis=0))
    np.testing.assert_allclose(d.Y_train, (y[train] - d.y_mean) / d.y_std)


def test_npz_multi_label_binary(tmp_path):
    X = _id_data(n=20)
    y = np.column_stack([np.arange(20) % 2, np.arange(20) // 10])
    d = _load(_npz(tmp_path / "ml.npz", X=X, y=y), 3, 2, task="binary")
    test = _ids(d, "test")
    assert d.y_test_raw.shape == (len(test), 2) and d.y_test_raw.dtype.kind == "i"
    np.testing.assert_array_equal(d.Y_test, y[test])


def test_csv_round_trip_with_header(tmp_path):
    X = _id_data(n=12, d=2)
    y = np.arange(12) % 3
    lines = ["id, weight ,label"] + [f"{float(a)!r}, {float(b)!r} ,{c}" for (a, b), c in zip(X, y, strict=True)]
    path = tmp_path / "toy.csv"
    path.write_text("\n".join(lines) + "\n\n")
    d = _load(path, 2, 3)
    assert d.name == "toy.csv" and len(d.X_train) + len(d.X_test) == 12
    train = _ids(d, "train")
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    np.testing.assert_allclose(d.X_train, (X[train] - mean) / std)
    np.testing.assert_array_equal(d.y_train_raw, y[train])


def test_csv_without_header_and_multi_output_regression(tmp_path):
    rows = [f"{i},{i * i % 7},{2.5 * i},{-i}" for i in range(10)]
    path = tmp_path / "reg.csv"
    path.write_text("\n".join(rows))
    d = _load(path, 2, 2, task="regression")
    train = _ids(d, "train")
    np.testing.assert_allclose(d.y_train_raw, np.column_stack([2.5 * train, -train]))


def test_csv_matches_npz(tmp_path):
    X = _id_data(n=16, d=2)
    y = np.arange(16) % 2
    np.savetxt(
        tmp_path / "a.csv", np.column_stack([X, y]), delimiter=",", header="a,b,y", comments=""
    )
    a = _load(tmp_path / "a.csv", 2, 1, task="binary", seed=3)
    b = _load(_npz(tmp_path / "a.npz", X=X, y=y), 2, 1, task="binary", seed=3)
    np.testing.assert_allclose(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test_raw, b.y_test_raw)


# ---------------------------------------------------------------------------
# metric
# ---------------------------------------------------------------------------


def test_metric_classification_accuracy():
    d = load_dataset("iris", n_inputs=4, n_outputs=3, task="classification")
    assert metric(d, d.Y_test) == ("accuracy", 1.0)
    wrong = np.roll(d.Y_train, 1, axis=1)
    assert metric(d, wrong, "train") == ("accuracy", 0.0)


def test_metric_binary_thresholds_probabilities():
    d = load_dataset("breast_cancer", n_inputs=30, n_outputs=1, task="binary")
    probs = np.where(d.Y_test > 0.5, 0.6, 0.4)
    assert metric(d, probs) == ("accuracy", 1.0)
    name, value = metric(d, np.full(len(d.X_test), 0.9))  # (N,) accepted for one output
    assert name == "accuracy" and value == pytest.approx(d.y_test_raw.mean())


def test_metric_rmse_in_original_units():
    d = load_dataset("diabetes", n_inputs=10, n_outputs=1, task="regression")
    assert metric(d, d.Y_test)[1] == pytest.approx(0.0, abs=1e-9)
    shifted = d.Y_test + 2.0  # 2 standardised units -> 2 * y_std original units
    name, value = metric(d, shifted)
    assert name == "rmse" and value == pytest.approx(2.0 * d.y_std[0])


def test_metric_rejects_wrong_shape_and_split():
    d = load_dataset("iris", n_inputs=4, n_outputs=3, task="classification")
    with pytest.raises(DataError, match=r"predictions have shape \(3, 3\), expected \(38, 3\)"):
        metric(d, np.zeros((3, 3)))
    with pytest.raises(DataError, match=r"split must be 'train' or 'test'"):
        metric(d, d.Y_test, "validation")


# ---------------------------------------------------------------------------
# Bad input: every case a DataError naming the problem, on one line
# ---------------------------------------------------------------------------


def _good_xy(n=10, d=3):
    return np.random.default_rng(0).normal(size=(n, d)), np.arange(n) % 2


def _cell(array, index, value):
    array = array.copy()
    array[index] = value
    return array


def _bad_npz(tmp_path, **arrays):
    return _npz(tmp_path / "bad.npz", **arrays)


def _bad_csv(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _csv_text(n=6, extra=None):
    rows = [f"{i}.5,{i % 3},{i % 2}" for i in range(n)]
    return "x1,x2,y\n" + "\n".join(rows) + "\n" + (extra or "")


def _directory(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    return tmp_path / "dir.npz"


def _npy_named_npz(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    return (tmp_path / "one.npy").rename(tmp_path / "one.npz")


def _binary_csv(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81,1\n")
    return tmp_path / "bin.csv"


# Each case: (id, builder(tmp_path) -> source, load kwargs, regex the message must match)
BAD_CASES = [
    ("unknown-name", lambda t: "mnist", {}, r"unknown data set 'mnist'.*digits, iris"),
    (
        "unsupported-extension",
        lambda t: _bad_csv(t, "1,2\n", "data.txt"),
        {},
        r"data\.txt: unsupported data file type '\.txt'",
    ),
    ("missing-file", lambda t: t / "nope.csv", {}, r"data file not found: .*nope\.csv"),
    ("directory", _directory, {}, r"dir\.npz: is a directory"),
    (
        "npz-not-a-zip",
        lambda t: _bad_csv(t, "garbage", "junk.npz"),
        {},
        r"junk\.npz: cannot read as \.npz",
    ),
    ("npz-single-npy", _npy_named_npz, {}, r"one\.npz: is a single \.npy array"),
    (
        "npz-missing-y",
        lambda t: _bad_npz(t, X=_good_xy()[0], labels=_good_xy()[1]),
        {},
        r"bad\.npz: has no array 'y' \(arrays found: X, labels\)",
    ),
    (
        "npz-pickled-object",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=np.array([{}] * 10, dtype=object)),
        {},
        r"bad\.npz: cannot read array 'y'.*pickle",
    ),
    (
        "npz-string-dtype",
        lambda t: _bad_npz(t, X=_good_xy()[0].astype(str), y=_good_xy()[1]),
        {},
        r"bad\.npz: array 'X' has dtype <U\d+; expected real numbers",
    ),
    (
        "npz-complex-dtype",
        lambda t: _bad_npz(t, X=_good_xy()[0] + 1j, y=_good_xy()[1]),
        {},
        r"array 'X' has dtype complex128",
    ),
    (
        "npz-X-1d",
        lambda t: _bad_npz(t, X=np.zeros(10), y=_good_xy()[1]),
        {},
        r"X must be \(samples, features\), .* or \(samples, channels, height, width\), "
        r"got shape \(10,\)$",
    ),
    (
        "npz-X-5d",
        lambda t: _bad_npz(t, X=np.zeros((10, 1, 1, 1, 3)), y=_good_xy()[1]),
        {},
        r"got shape \(10, 1, 1, 1, 3\)$",
    ),
    (
        "npz-y-3d",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=np.zeros((10, 1, 1))),
        {},
        r"y must be 1-D or 2-D, got shape \(10, 1, 1\)",
    ),
    (
        "npz-row-mismatch",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=_good_xy()[1][:9]),
        {},
        r"X has 10 rows but y has 9",
    ),
    (
        "npz-nan-in-X",
        lambda t: _bad_npz(t, X=_cell(_good_xy()[0], (2, 0), np.nan), y=_good_xy()[1]),
        {},
        r"bad\.npz: X\[2, 0\] is nan; all values must be finite",
    ),
    (
        "npz-inf-in-y",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=_cell(np.zeros(10), 4, np.inf)),
        {"task": "regression", "n_outputs": 1},
        r"y\[4\] is inf",
    ),
    (
        "too-few-rows",
        lambda t: _bad_npz(t, X=np.zeros((3, 3)), y=[0, 1, 0]),
        {},
        r"has 3 data row\(s\); need at least 4 \(2 per split\)",
    ),
    (
        "feature-count",
        lambda t: "wine",
        {"n_inputs": 64, "n_outputs": 3},
        r"^wine: data has 13 features, spec 'inputs' is 64$",
    ),
    (
        "label-out-of-range",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=_cell(np.zeros(10), 6, 5)),
        {},
        r"bad\.npz: y\[6\]: label 5 is out of range: labels must be 0\.\.1 for 2 outputs",
    ),
    (
        "negative-label",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=_cell(np.zeros(10), 0, -1)),
        {},
        r"y\[0\]: label -1 is out of range",
    ),
    (
        "non-integer-label",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=_cell(np.zeros(10), 3, 0.5)),
        {},
        r"y\[3\]: label 0\.5 is not an integer class label",
    ),
    (
        "binary-label-not-01",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=_cell(np.zeros(10), 9, 2)),
        {"task": "binary", "n_outputs": 1},
        r"y\[9\]: label 2 is not 0 or 1",
    ),
    (
        "multilabel-cell",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=_cell(np.zeros((10, 2)), (6, 1), 3)),
        {"task": "binary", "n_outputs": 2},
        r"y\[6, 1\]: label 3 is not 0 or 1",
    ),
    (
        "classification-needs-label-column",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=np.eye(10, 2)),
        {},
        r"y has 2 column\(s\), the spec's outputs need 1 column of class labels",
    ),
    (
        "regression-output-columns",
        lambda t: _bad_npz(t, X=_good_xy()[0], y=np.zeros(10)),
        {"task": "regression", "n_outputs": 3},
        r"y has 1 column\(s\), the spec's outputs need 3 columns",
    ),
    (
        "builtin-wrong-task",
        lambda t: "digits",
        {"n_inputs": 64, "n_outputs": 1, "task": "binary"},
        r"digits: row \d+: label [2-9] is not 0 or 1",
    ),
    (
        "csv-non-numeric-cell",
        lambda t: _bad_csv(t, _csv_text(extra="1.0,abc,0\n")),
        {"n_inputs": 2},
        r"bad\.csv: line 8, column 2 \('x2'\): 'abc' is not a number",
    ),
    (
        "csv-empty-cell",
        lambda t: _bad_csv(t, "1,2,0\n3,,1\n"),
        {"n_inputs": 2},
        r"line 2, column 2: '' is not a number",
    ),
    (
        "csv-nan-cell",
        lambda t: _bad_csv(t, _csv_text(extra="nan,1,0\n")),
        {"n_inputs": 2},
        r"line 8, column 1 \('x1'\): 'nan' is not a finite number",
    ),
    (
        "csv-inf-cell",
        lambda t: _bad_csv(t, _csv_text(extra="1,-inf,0\n")),
        {"n_inputs": 2},
        r"line 8, column 2 \('x2'\): '-inf' is not a finite number",
    ),
    (
        "csv-ragged-row",
        lambda t: _bad_csv(t, _csv_text(extra="1,0\n")),
        {"n_inputs": 2},
        r"bad\.csv: line 8 has 2 columns, expected 3",
    ),
    (
        "csv-label-column",
        lambda t: _bad_csv(t, _csv_text(extra="1,0,7\n")),
        {"n_inputs": 2},
        r"bad\.csv: line 8, column 3: label 7 is out of range",
    ),
    (
        "csv-feature-count",
        lambda t: _bad_csv(t, _csv_text()),
        {"n_inputs": 5},
        r"data has 2 features, spec 'inputs' is 5 \(the last 1 column\(s\) are the target\)",
    ),
    (
        "csv-too-few-columns",
        lambda t: _bad_csv(t, "1,2\n3,4\n"),
        {"task": "regression", "n_outputs": 2},
        r"line 1 has 2 column\(s\); need the features then 2 target column\(s\)",
    ),
    ("csv-header-only", lambda t: _bad_csv(t, "a,b,y\n"), {"n_inputs": 2}, r"has 0 data row\(s\)"),
    ("csv-empty-file", lambda t: _bad_csv(t, ""), {}, r"bad\.csv: has 0 data row\(s\)"),
    ("csv-not-utf8", _binary_csv, {}, r"bin\.csv: not a UTF-8 text file"),
    (
        "csv-nul-byte",
        lambda t: _bad_csv(t, "1,2,0\n3,\x00,1\n"),
        {"n_inputs": 2},
        r"bad\.csv: line 2, column 2: '\\x00' is not a number",
    ),
    (
        "test-fraction",
        lambda t: "iris",
        {"n_inputs": 4, "test_fraction": 1.0},
        r"test fraction must be between 0 and 1",
    ),
    (
        "bad-task",
        lambda t: "iris",
        {"n_inputs": 4, "task": "ranking"},
        r"task must be one of .* not 'ranking'",
    ),
    (
        "bad-outputs",
        lambda t: "iris",
        {"n_inputs": 4, "n_outputs": 0},
        r"spec 'outputs' must be a positive integer",
    ),
]


@pytest.mark.parametrize("case, build, kwargs, pattern", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_raises_data_error(tmp_path, case, build, kwargs, pattern):
    args = {"n_inputs": 3, "n_outputs": 2, "task": "classification", **kwargs}
    with pytest.raises(DataError, match=pattern) as info:
        load_dataset(str(build(tmp_path)), **args)
    message = str(info.value)
    assert isinstance(info.value, SymbpError)
    assert "\n" not in message and message.strip() == message


def test_bad_input_never_reads_pickles(tmp_path):
    """An object array is refused, not unpickled (allow_pickle=False)."""
    marker = tmp_path / "executed"

    class Boom:
        def __reduce__(self):
            return (marker.write_text, ("pwned",))

    np.savez(tmp_path / "evil.npz", X=np.zeros((10, 3)), y=np.array([Boom()] * 10, dtype=object))
    with pytest.raises(DataError):
        _load(tmp_path / "evil.npz", 3)
    assert not marker.exists()
