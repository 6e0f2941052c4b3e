"""Real data for ``symbp train SPEC --data NAME|FILE``.

Contract
--------
``load_dataset(source, n_inputs=, n_outputs=, task=)`` returns a :class:`Dataset`
ready for the generated module: the first axis is the sample, everything is
float64. ``n_inputs`` is the spec's ``inputs``: a number of features, or the
shape of one sample, ``[channels, length]`` or ``[channels, height, width]``;
``X_train``/``X_test`` have shape ``(N, n_inputs)`` or ``(N, *inputs)``.

* ``source`` is a built-in name (:data:`BUILTIN_DATASETS`, scikit-learn's
  bundled loaders, no network; ``digits`` are images of shape ``(1, 8, 8)``,
  the others feature rows) or a path to

  - ``.npz``: arrays ``X`` and ``y`` of shape ``(N,)`` or ``(N, k)``; ``X`` is
    ``(N, features)``, ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, H, W)`` (one
    channel); loaded with ``allow_pickle=False``;
  - ``.csv``: comma-separated numbers, UTF-8, an optional header line (a
    first line in which no cell is a number); the last column is the target,
    or the last ``n_outputs`` columns for a ``binary`` or ``regression`` task
    with ``n_outputs > 1``; the other columns are flat features.

* The data's sample shape fits the spec's when it is the same, when it is
  ``(H, W)`` for inputs ``[1, H, W]``, or when one side is flat and both hold
  as many entries: flat features are reshaped in C order (row-major, as
  ``numpy.reshape``), and images are flattened in C order for a flat
  ``inputs`` (as a dense layer flattens them). Any other shape is an error
  naming both.

* ``task`` follows the spec's output activation:

  - ``"classification"`` (softmax): one column of integer labels in
    ``[0, n_outputs)``; ``Y`` is one-hot, ``y_*_raw`` the int labels ``(N,)``;
  - ``"binary"`` (sigmoid): 0/1 labels, one column if ``n_outputs == 1``
    else a multi-label ``(N, n_outputs)`` matrix; ``Y`` is that matrix as
    float, ``y_*_raw`` the int labels (``(N,)`` for one column);
  - ``"regression"`` (anything else): ``n_outputs`` real target columns;
    ``Y`` is standardised with the train mean/std (kept in ``y_mean`` and
    ``y_std``), ``y_*_raw`` holds the original units.

* The train/test split is fixed by ``seed`` (NumPy only), stratified by label
  for classification and single-column binary tasks, with at least 2 rows in
  each split. ``X`` is standardised with the train mean/std: per feature for
  a flat ``inputs``, per channel (over the train samples and all positions,
  as torchvision's ``Normalize`` with the data set's channel statistics) for
  a multi-axis one, so that a convolution sees one intensity scale at every
  position (per-pixel scaling would blow up the rare ink of a nearly always
  blank border pixel). A feature or channel whose train std is 0 (to
  rounding) is divided by 1 instead. Means and standard deviations are
  computed on columns scaled by their largest magnitude, so any finite values
  (up to ``±1.8e308``) standardise without overflow.

* A data file is read only if it is a regular file of at most
  :data:`FILE_LIMIT` bytes, and an ``.npz`` array only if the shape its
  header declares fits the bytes the archive holds (a forged header cannot
  make symbp allocate terabytes).

* Every unusable input raises :class:`~symbp.errors.DataError` with a one-line
  message naming the file and, where it applies, the array, line, row,
  column or spec field. Nothing is ever evaluated or unpickled.

``metric(dataset, predictions, split)`` scores the generated module's outputs
``a^(L)`` of shape ``(N, n_outputs)``: ``("accuracy", ...)`` for
classification (argmax) and binary (threshold 0.5, mean over all labels),
``("rmse", ...)`` for regression in original target units.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from symbp.errors import DataError
from symbp.files import open_user_file

BUILTIN_DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
TASKS = ("classification", "binary", "regression")
FILE_TYPES = (".npz", ".csv")
FILE_LIMIT = 2**30  # bytes of a data file, and of each array an .npz declares
IMAGE_SHAPES = {"digits": (1, 8, 8)}  # built-ins whose samples are images: their shape


@dataclass(frozen=True)
class Dataset:
    """A split, standardised data set in the network's output encoding."""

    name: str
    task: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    y_train_raw: np.ndarray
    y_test_raw: np.ndarray
    y_mean: np.ndarray | None = None
    y_std: np.ndarray | None = None


@dataclass(frozen=True)
class _Raw:
    """Unsplit data as read: ``X`` (N, *sample shape) and ``Y`` (N, k) float64.

    ``where(i, k)`` names target cell ``(i, k)`` in the user's terms
    (``line 7, column 5`` for CSV, ``y[6]`` for NPZ); ``note`` explains
    how the target columns were chosen, for the feature-count message.
    """

    name: str
    X: np.ndarray
    Y: np.ndarray
    where: Callable[[int, int], str]
    note: str = ""


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load_dataset(
    source: str,
    *,
    n_inputs: int,
    n_outputs: int,
    task: str,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> Dataset:
    """Load, check, split and standardise ``source`` for a network spec."""
    shape = _check_arguments(n_inputs, n_outputs, task, test_fraction)
    n_targets = 1 if task == "classification" else n_outputs
    raw = _read_source(os.fspath(source), n_targets)
    raw = replace(raw, X=_check_shapes(raw, shape, n_targets))
    labels = _check_targets(raw, task, n_outputs)
    strata = labels if labels is not None and labels.ndim == 1 else None
    train, test = _split_indices(len(raw.X), test_fraction, seed, strata)
    return _assemble(raw, task, n_outputs, train, test)


def metric(dataset: Dataset, predictions: np.ndarray, split: str = "test") -> tuple[str, float]:
    """Score outputs ``a^(L)`` on one split: accuracy, or RMSE in original units."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    raw = dataset.y_train_raw if split == "train" else dataset.y_test_raw
    n, n_outputs = len(raw), dataset.Y_train.shape[1]
    P = np.asarray(predictions, dtype=np.float64)
    if P.ndim == 1 and n_outputs == 1:
        P = P[:, None]
    if P.shape != (n, n_outputs):
        raise DataError(
            f"{dataset.name}: predictions have shape {P.shape}, expected {(n, n_outputs)} for the {split} split"
        )
    if dataset.task == "classification":
        return "accuracy", float(np.mean(np.argmax(P, axis=1) == raw))
    if dataset.task == "binary":
        return "accuracy", float(np.mean((P >= 0.5) == raw.reshape(n, -1).astype(bool)))
    # the error in original units, (P - standardised truth) * std, scaled to avoid overflow
    truth = _standardise(raw.reshape(n, -1).astype(np.float64), dataset.y_mean, dataset.y_std)
    scale = float(np.max(dataset.y_std))
    error = (P - truth) * (dataset.y_std / scale)
    return "rmse", float(np.sqrt(np.mean(error**2)) * scale)


# --------------------------------------------------------------------------
# Reading a source
# --------------------------------------------------------------------------


def _check_arguments(n_inputs, n_outputs: int, task: str, test_fraction: float) -> tuple:
    """Check the arguments; returns the spec's sample shape (``(features,)`` when flat)."""
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if not _is_count(n_outputs):
        raise DataError(f"spec 'outputs' must be a positive integer, not {n_outputs!r}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test fraction must be between 0 and 1 (exclusive), not {test_fraction!r}")
    if _is_count(n_inputs):
        return (int(n_inputs),)
    if isinstance(n_inputs, (list, tuple)) and len(n_inputs) in (2, 3) and \
            all(_is_count(n) for n in n_inputs):
        return tuple(int(n) for n in n_inputs)
    raise DataError("spec 'inputs' must be a positive integer, [channels, length] or "
                    f"[channels, height, width], not {n_inputs!r}")


def _is_count(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1


def _read_source(source: str, n_targets: int) -> _Raw:
    if source in BUILTIN_DATASETS:
        return _read_builtin(source)
    name = os.path.basename(source) or source
    suffix = os.path.splitext(source)[1].lower()
    if suffix not in FILE_TYPES:
        if not suffix and not os.path.exists(source):
            raise DataError(
                f"unknown data set {source!r}: use a built-in ({', '.join(BUILTIN_DATASETS)}) or a .npz or .csv file"
            )
        raise DataError(
            f"{name}: unsupported data file type {suffix or '(none)'!r}; use .npz or .csv"
        )
    if not os.path.exists(source):
        raise DataError(f"data file not found: {source}")
    if os.path.isdir(source):
        raise DataError(f"{name}: is a directory, not a data file")
    if suffix == ".npz":
        return _read_npz(source, name)
    return _read_csv(source, name, n_targets)


def _read_builtin(name: str) -> _Raw:
    try:
        from sklearn import datasets
    except ImportError:
        raise DataError(
            f"built-in data set '{name}' needs scikit-learn: pip install scikit-learn"
        ) from None
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    X = np.asarray(X, dtype=np.float64).reshape(len(X), *IMAGE_SHAPES.get(name, (-1,)))
    Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    return _Raw(name, X, Y, lambda i, k: f"row {i}")


def _read_npz(path: str, name: str) -> _Raw:
    with open_user_file(path, "data file", DataError, FILE_LIMIT) as handle:
        try:
            archive = np.load(handle, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{name}: cannot read as .npz ({_reason(exc)})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(
                f"{name}: is a single .npy array, not an .npz archive with 'X' and 'y'")
        with archive:
            X = _npz_array(archive, name, "X")
            y = _npz_array(archive, name, "y")
    if not 2 <= X.ndim <= 4:
        raise DataError(f"{name}: X must be (samples, features), (samples, channels, length), "
                        f"(samples, height, width) or (samples, channels, height, width), "
                        f"got shape {X.shape}")
    if y.ndim not in (1, 2):
        raise DataError(f"{name}: y must be 1-D or 2-D, got shape {y.shape}")
    if len(X) != len(y):
        raise DataError(f"{name}: X has {len(X)} rows but y has {len(y)}")
    _check_finite(name, "X", X)
    _check_finite(name, "y", y)
    where = (lambda i, k: f"y[{i}]") if y.ndim == 1 else (lambda i, k: f"y[{i}, {k}]")
    Y = y[:, None] if y.ndim == 1 else y
    return _Raw(name, X.astype(np.float64), Y.astype(np.float64), where)


def _npz_array(archive, name: str, key: str) -> np.ndarray:
    if key not in archive.files:
        found = ", ".join(archive.files) or "none"
        raise DataError(f"{name}: has no array '{key}' (arrays found: {found})")
    try:
        _check_declared_size(archive, name, key)
        array = archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{name}: cannot read array '{key}' ({_reason(exc)})") from None
    if array.dtype.kind not in "biuf":
        raise DataError(f"{name}: array '{key}' has dtype {array.dtype}; expected real numbers")
    return array


def _check_declared_size(archive, name: str, key: str) -> None:
    """Refuse an array whose header declares more bytes than its archive member holds."""
    member = f"{key}.npy"
    size = archive.zip.getinfo(member).file_size
    with archive.zip.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(stream)
        stored = size - stream.tell()
    declared = math.prod(shape) * dtype.itemsize
    if declared > min(stored, FILE_LIMIT):
        raise DataError(f"{name}: array '{key}' declares shape {shape} ({declared} bytes) "
                        f"but holds {stored} bytes")


def _check_finite(name: str, key: str, array: np.ndarray) -> None:
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        index = ", ".join(str(i) for i in bad[0])
        raise DataError(
            f"{name}: {key}[{index}] is {array[tuple(bad[0])]}; all values must be finite"
        )


def _read_csv(path: str, name: str, n_targets: int) -> _Raw:
    lines, rows = _csv_rows(path, name)
    header = None
    if rows and not any(_is_number(cell) for cell in rows[0]):
        header, lines, rows = rows[0], lines[1:], rows[1:]
    width = len(header) if header is not None else len(rows[0]) if rows else 0
    if rows and width <= n_targets:
        raise DataError(
            f"{name}: line {lines[0]} has {width} column(s); need the features then {n_targets} target column(s)"
        )
    table = _csv_numbers(name, lines, rows, header, width)
    n_features = width - n_targets
    note = f" (the last {n_targets} column(s) are the target)"
    return _Raw(
        name,
        table[:, :n_features],
        table[:, n_features:],
        lambda i, k: f"line {lines[i]}, column {n_features + k + 1}",
        note,
    )


def _csv_rows(path: str, name: str) -> tuple[list[int], list[list[str]]]:
    """Non-blank rows of a CSV file and their 1-based line numbers."""
    lines, rows = [], []
    try:
        with open_user_file(path, "data file", DataError, FILE_LIMIT, "r",
                            newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                for row in reader:
                    if any(cell.strip() for cell in row):
                        lines.append(reader.line_num)
                        rows.append([cell.strip() for cell in row])
            except csv.Error as exc:
                raise DataError(f"{name}: line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{name}: not a UTF-8 text file") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read ({_reason(exc)})") from None
    return lines, rows


def _csv_numbers(name, lines, rows, header, width) -> np.ndarray:
    """Parse the cells as floats; name the line and column of the first bad one."""
    table = np.empty((len(rows), width), dtype=np.float64)
    for i, (line, row) in enumerate(zip(lines, rows, strict=True)):
        if len(row) != width:
            raise DataError(f"{name}: line {line} has {len(row)} columns, expected {width}")
        for j, cell in enumerate(row):
            where = f"{name}: line {line}, column {j + 1}{_column_name(header, j)}"
            try:
                table[i, j] = float(cell)
            except ValueError:
                raise DataError(f"{where}: {cell!r} is not a number") from None
            if not np.isfinite(table[i, j]):
                raise DataError(f"{where}: {cell!r} is not a finite number")
    return table


def _column_name(header: list[str] | None, j: int) -> str:
    return f" ({header[j]!r})" if header is not None else ""


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(text.split())


# --------------------------------------------------------------------------
# Checking against the spec
# --------------------------------------------------------------------------


def _check_shapes(raw: _Raw, shape: tuple, n_targets: int) -> np.ndarray:
    """Check the rows, inputs and targets against the spec; returns ``X`` in ``shape``."""
    n = len(raw.X)
    if n < 4:
        raise DataError(f"{raw.name}: has {n} data row(s); need at least 4 (2 per split)")
    X = _fit_inputs(raw, shape)
    if raw.Y.shape[1] != n_targets:
        wanted = "1 column of class labels" if n_targets == 1 else f"{n_targets} columns"
        raise DataError(
            f"{raw.name}: y has {raw.Y.shape[1]} column(s), the spec's outputs need {wanted}"
        )
    return X


def _fit_inputs(raw: _Raw, shape: tuple) -> np.ndarray:
    """``raw.X`` in the spec's sample shape ``shape`` (see the module docstring)."""
    n, sample = len(raw.X), raw.X.shape[1:]
    entries = math.prod(sample)
    if sample == shape or (len(shape) == 3 and shape[0] == 1 and sample == shape[1:]) or \
            ((len(shape) == 1 or len(sample) == 1) and entries == math.prod(shape)):
        return raw.X.reshape(n, *shape)
    if len(shape) == 1:
        per_sample = f" (per sample {sample})" if len(sample) > 1 else ""
        raise DataError(f"{raw.name}: data has {entries} features{per_sample}, "
                        f"spec 'inputs' is {shape[0]}{raw.note}")
    if len(sample) == 1:
        raise DataError(f"{raw.name}: data has {entries} features, the spec's inputs "
                        f"{list(shape)} need {math.prod(shape)}{raw.note}")
    raise DataError(f"{raw.name}: X has shape {raw.X.shape}, per sample {sample}; "
                    f"the spec's inputs are {list(shape)}")


def _check_targets(raw: _Raw, task: str, n_outputs: int) -> np.ndarray | None:
    """Integer labels for classification/binary tasks (``None`` for regression)."""
    Y = raw.Y
    if task == "regression":
        return None
    if task == "classification":
        _first_bad(raw, Y != np.round(Y), "is not an integer class label")
        _first_bad(
            raw,
            (Y < 0) | (Y >= n_outputs),
            f"is out of range: labels must be 0..{n_outputs - 1} for {n_outputs} outputs",
        )
        return Y[:, 0].astype(np.int64)
    _first_bad(raw, (Y != 0) & (Y != 1), "is not 0 or 1 (sigmoid output needs 0/1 labels)")
    labels = Y.astype(np.int64)
    return labels[:, 0] if n_outputs == 1 else labels


def _first_bad(raw: _Raw, mask: np.ndarray, problem: str) -> None:
    bad = np.argwhere(mask)
    if len(bad):
        i, k = bad[0]
        raise DataError(f"{raw.name}: {raw.where(i, k)}: label {raw.Y[i, k]:g} {problem}")


# --------------------------------------------------------------------------
# Split and standardise
# --------------------------------------------------------------------------


def _split_indices(n: int, test_fraction: float, seed: int, strata: np.ndarray | None = None):
    """Train and test row indices, deterministic from ``seed``, >= 2 rows each.

    With ``strata`` each class gets its share of the test rows (largest
    remainder rounding), so both splits keep the class proportions.
    """
    rng = np.random.default_rng(seed)
    n_test = min(max(round(n * test_fraction), 2), n - 2)
    if strata is None:
        order = rng.permutation(n)
        return order[n_test:], order[:n_test]
    classes, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    take = _allocate(counts, n_test)
    train, test = [], []
    for c in range(len(classes)):
        rows = rng.permutation(np.flatnonzero(inverse == c))
        test.append(rows[: take[c]])
        train.append(rows[take[c] :])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder)."""
    quota = counts * total / counts.sum()
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: total - take.sum()]] += 1
    return take


def _standardiser(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations, computed on columns scaled into [-1, 1]."""
    scale = np.max(np.abs(A), axis=0)
    scale[scale == 0] = 1.0
    scaled = A / scale
    mean, std = scaled.mean(axis=0) * scale, scaled.std(axis=0) * scale
    std[std <= 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
    return mean, std


def _channel_standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel means and standard deviations of ``X`` (n, C, *positions), over the
    samples and positions, shaped to broadcast against ``X``."""
    columns = np.moveaxis(X, 1, -1).reshape(-1, X.shape[1])
    mean, std = _standardiser(columns)
    expand = (slice(None),) + (None,) * (X.ndim - 2)
    return mean[expand], std[expand]


def _standardise(A: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(A - mean) / std`` without forming ``A - mean``, which can overflow near 1e308."""
    return A / std - mean / std


def _assemble(raw: _Raw, task: str, n_outputs: int, train: np.ndarray, test: np.ndarray) -> Dataset:
    """Standardise ``raw.X`` (in the spec's sample shape) and encode the targets."""
    mean, std = (_standardiser if raw.X.ndim == 2 else _channel_standardiser)(raw.X[train])
    X = _standardise(raw.X, mean, std)
    y_mean = y_std = None
    if task == "classification":
        y_raw = raw.Y[:, 0].astype(np.int64)
        Y = np.eye(n_outputs)[y_raw]
    elif task == "binary":
        y_raw = raw.Y.astype(np.int64)
        Y = raw.Y.copy()
    else:
        y_raw = raw.Y.copy()
        y_mean, y_std = _standardiser(raw.Y[train])
        Y = _standardise(raw.Y, y_mean, y_std)
    if task != "classification" and n_outputs == 1:
        y_raw = y_raw[:, 0]
    return Dataset(
        name=raw.name,
        task=task,
        X_train=X[train],
        Y_train=Y[train],
        X_test=X[test],
        Y_test=Y[test],
        y_train_raw=y_raw[train],
        y_test_raw=y_raw[test],
        y_mean=y_mean,
        y_std=y_std,
    )
