"""symbp.data for multi-axis inputs (issue 11): digits as 8x8 images, image arrays in
``.npz`` files, flat features reshaped for a ``[C, H, W]`` or ``[C, L]`` spec, shapes that
do not fit (one message naming both), and per-channel standardisation."""

import math

import numpy as np
import pytest

from symbp.data import load_dataset
from symbp.errors import DataError


def _load(source, inputs, n_outputs=2, task="classification", **kw):
    return load_dataset(str(source), n_inputs=inputs, n_outputs=n_outputs, task=task, **kw)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _sklearn_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.float64), digits.target


def _channel_data(n=40, shape=(3, 5, 4), seed=2):
    """Channel c has mean 10 c and spread c + 1, so per-channel and global scaling differ."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *shape))
    scale = np.arange(1, shape[0] + 1).reshape(-1, *[1] * (len(shape) - 1))
    return X * scale + 10.0 * (scale - 1)


def _row_ids(tmp_path, X):
    """Load ``X`` with the row index as a regression target: ``y_*_raw`` are then the rows
    of each split, so every entry can be recomputed from ``X`` independently."""
    return _load(_npz(tmp_path / "ids.npz", X=X, y=np.arange(len(X), dtype=float)),
                 list(X.shape[1:]), n_outputs=1, task="regression")


def _expected(X, train_rows, rows):
    """Per-channel standardisation with the train rows' statistics, written out directly."""
    axes = (0, *range(2, X.ndim))
    mean = X[train_rows].mean(axis=axes, keepdims=True)[0]
    std = X[train_rows].std(axis=axes, keepdims=True)[0]
    return (X[rows] - mean) / std


# ---------------------------------------------------------------------------
# digits as images
# ---------------------------------------------------------------------------


def test_digits_as_images_have_the_spec_shape():
    d = load_dataset("digits", n_inputs=[1, 8, 8], n_outputs=10, task="classification")
    assert d.X_train.shape == (len(d.y_train_raw), 1, 8, 8)
    assert d.X_test.shape == (len(d.y_test_raw), 1, 8, 8)
    assert d.X_train.dtype == np.float64 and d.Y_train.shape == (len(d.y_train_raw), 10)
    assert len(d.X_train) + len(d.X_test) == len(_sklearn_digits()[1])


def test_digits_images_are_standardised_per_channel_with_train_statistics():
    d = load_dataset("digits", n_inputs=[1, 8, 8], n_outputs=10, task="classification")
    assert abs(d.X_train.mean()) < 1e-12 and abs(d.X_train.std() - 1) < 1e-12
    assert abs(d.X_test.mean()) > 1e-4  # the test rows use the train statistics
    # one scale for every pixel: the blank border stays one value, not 0 per pixel
    images, _ = _sklearn_digits()
    blank = images.reshape(len(images), -1).max(axis=0) == 0
    assert blank.any()
    border = d.X_train.reshape(len(d.X_train), -1)[:, blank]
    np.testing.assert_array_equal(border, border.min())
    assert border.min() < 0  # ink-free pixels are below the mean


def test_digits_images_are_the_flat_rows_up_to_one_affine_map_per_pixel():
    """Same split, same row order; each pixel column of the images is an affine function
    (slope = the flat scaling over the global one) of the flat column."""
    flat = load_dataset("digits", n_inputs=64, n_outputs=10, task="classification")
    image = load_dataset("digits", n_inputs=[1, 8, 8], n_outputs=10, task="classification")
    np.testing.assert_array_equal(flat.y_train_raw, image.y_train_raw)
    np.testing.assert_array_equal(flat.y_test_raw, image.y_test_raw)
    pixels = image.X_train.reshape(len(image.X_train), 64)
    for j in range(64):
        if flat.X_train[:, j].std() == 0:
            continue
        design = np.column_stack([flat.X_train[:, j], np.ones(len(pixels))])
        coefficients, *_ = np.linalg.lstsq(design, pixels[:, j], rcond=None)
        np.testing.assert_allclose(design @ coefficients, pixels[:, j], atol=1e-10)


def test_digits_images_reproduce_sklearn_images():
    """Undo the global scaling with the train statistics of the raw images of the same
    rows: each is one of sklearn's 8x8 images with its label, C order."""
    images, labels = _sklearn_digits()
    d = load_dataset("digits", n_inputs=[1, 8, 8], n_outputs=10, task="classification")
    entries = np.concatenate([d.X_train.ravel(), d.X_test.ravel()])
    values = np.unique(np.round(entries, 9))
    assert len(values) == 17  # the 17 grey levels 0..16, one standardised value each
    origin, step = entries.min(), (entries.max() - entries.min()) / 16
    restored = np.round((d.X_train - origin) / step)
    np.testing.assert_allclose((d.X_train - origin) / step, restored, atol=1e-9)
    # every restored training image is one of sklearn's images with the same label
    catalogue = {(label, image.tobytes()) for image, label in zip(images, labels, strict=True)}
    for image, label in zip(restored[:, 0], d.y_train_raw, strict=True):
        assert (int(label), image.tobytes()) in catalogue


@pytest.mark.parametrize("inputs, shape", [
    ([3, 8, 8], "[3, 8, 8]"), ([1, 64], "[1, 64]"), ([1, 4, 16], "[1, 4, 16]")])
def test_digits_in_a_shape_that_does_not_fit(inputs, shape):
    with pytest.raises(DataError) as info:
        load_dataset("digits", n_inputs=inputs, n_outputs=10, task="classification")
    assert str(info.value) == (f"digits: X has shape (1797, 1, 8, 8), per sample (1, 8, 8); "
                               f"the spec's inputs are {shape}")


def test_digits_flat_feature_count_message_names_the_image_shape():
    with pytest.raises(DataError, match=r"^digits: data has 64 features \(per sample "
                                        r"\(1, 8, 8\)\), spec 'inputs' is 63$"):
        load_dataset("digits", n_inputs=63, n_outputs=10, task="classification")


# ---------------------------------------------------------------------------
# .npz image arrays
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 5, 4), (2, 7), (1, 6, 6)])
def test_npz_images_standardised_per_channel(tmp_path, shape):
    X = _channel_data(shape=shape)
    d = _row_ids(tmp_path, X)
    train, test = d.y_train_raw.astype(int), d.y_test_raw.astype(int)
    assert sorted(np.concatenate([train, test])) == list(range(len(X)))
    assert d.X_train.shape == (len(train), *shape) and d.X_test.shape == (len(test), *shape)
    np.testing.assert_allclose(d.X_train, _expected(X, train, train), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.X_test, _expected(X, train, test), rtol=1e-12, atol=1e-12)


def test_npz_per_channel_is_not_global(tmp_path):
    """The channels' own statistics: each channel of the train split has mean 0, std 1."""
    d = _row_ids(tmp_path, _channel_data())
    np.testing.assert_allclose(d.X_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(d.X_train.std(axis=(0, 2, 3)), 1.0, atol=1e-12)


def test_npz_constant_channel_is_divided_by_one(tmp_path):
    X = _channel_data()
    X[:, 1] = 5.0
    d = _row_ids(tmp_path, X)
    np.testing.assert_array_equal(d.X_train[:, 1], 0.0)
    np.testing.assert_array_equal(d.X_test[:, 1], 0.0)


def test_npz_one_channel_images_without_the_channel_axis(tmp_path):
    X = _channel_data(shape=(1, 6, 5))
    labels = np.arange(len(X)) % 2
    with_axis = _load(_npz(tmp_path / "a.npz", X=X, y=labels), [1, 6, 5])
    without = _load(_npz(tmp_path / "b.npz", X=X[:, 0], y=labels), [1, 6, 5])
    assert without.X_train.shape == (len(without.X_train), 1, 6, 5)
    np.testing.assert_array_equal(with_axis.X_train, without.X_train)
    np.testing.assert_array_equal(with_axis.X_test, without.X_test)


def test_npz_flat_rows_are_reshaped_in_c_order(tmp_path):
    X = _channel_data(shape=(2, 3, 4))
    labels = np.arange(len(X)) % 2
    images = _load(_npz(tmp_path / "a.npz", X=X, y=labels), [2, 3, 4])
    rows = _load(_npz(tmp_path / "b.npz", X=X.reshape(len(X), -1), y=labels), [2, 3, 4])
    np.testing.assert_array_equal(images.X_train, rows.X_train)
    np.testing.assert_array_equal(images.X_test, rows.X_test)


def test_npz_images_for_a_flat_spec_are_flattened_and_scaled_per_feature(tmp_path):
    """An MLP on image arrays: flattened in C order (as a dense layer flattens), and
    standardised per feature as flat data always was."""
    X = _channel_data(shape=(2, 3, 4))
    labels = np.arange(len(X)) % 2
    images = _load(_npz(tmp_path / "a.npz", X=X, y=labels), 24)
    rows = _load(_npz(tmp_path / "b.npz", X=X.reshape(len(X), -1), y=labels), 24)
    assert images.X_train.shape == (len(images.X_train), 24)
    np.testing.assert_array_equal(images.X_train, rows.X_train)
    np.testing.assert_allclose(images.X_train.std(axis=0), 1.0, atol=1e-12)


@pytest.mark.parametrize("data_shape, inputs", [
    ((3, 8, 8), [1, 8, 8]),
    ((2, 32), [1, 8, 8]),    # as many entries, another shape: not guessed
    ((8, 8), [2, 8, 8]),     # (H, W) stands for one channel only
    ((8, 8), [2, 32]),
    ((1, 8, 8), [1, 8, 7]),
    ((4, 10), [10, 4]),      # [C, L] transposed
])
def test_npz_shape_that_does_not_fit_names_both(tmp_path, data_shape, inputs):
    X = np.zeros((10, *data_shape))
    path = _npz(tmp_path / "bad.npz", X=X, y=np.arange(10) % 2)
    with pytest.raises(DataError) as info:
        _load(path, inputs)
    assert str(info.value) == (f"bad.npz: X has shape {X.shape}, per sample {data_shape}; "
                               f"the spec's inputs are {inputs}")


def test_npz_images_are_checked_for_finite_values(tmp_path):
    X = np.zeros((10, 1, 3, 3))
    X[4, 0, 2, 1] = np.nan
    with pytest.raises(DataError, match=r"^bad\.npz: X\[4, 0, 2, 1\] is nan"):
        _load(_npz(tmp_path / "bad.npz", X=X, y=np.arange(10) % 2), [1, 3, 3])


# ---------------------------------------------------------------------------
# CSV: flat features only
# ---------------------------------------------------------------------------


def _csv(path, features, n=12):
    rng = np.random.default_rng(3)
    table = np.column_stack([rng.normal(size=(n, features)), np.arange(n) % 2])
    path.write_text("\n".join(",".join(f"{v:.17g}" for v in row) for row in table) + "\n")
    return path, table[:, :-1]


def test_csv_features_reshaped_in_c_order_for_an_image_spec(tmp_path):
    path, features = _csv(tmp_path / "img.csv", 18)
    images = _load(path, [2, 3, 3])
    npz = _load(_npz(tmp_path / "same.npz", X=features.reshape(-1, 2, 3, 3),
                     y=np.arange(len(features)) % 2), [2, 3, 3])
    assert images.X_train.shape == (len(images.X_train), 2, 3, 3)
    np.testing.assert_allclose(images.X_train, npz.X_train, rtol=1e-15, atol=1e-15)


def test_csv_feature_count_that_does_not_fit_an_image_spec(tmp_path):
    path, _ = _csv(tmp_path / "img.csv", 17)
    with pytest.raises(DataError) as info:
        _load(path, [2, 3, 3])
    assert str(info.value) == ("img.csv: data has 17 features, the spec's inputs [2, 3, 3] "
                               "need 18 (the last 1 column(s) are the target)")


# ---------------------------------------------------------------------------
# the spec's inputs argument
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("inputs", [[0, 8, 8], [1, 2, 3, 4], [8], [1.5, 8], "64", True, [True, 8]])
def test_bad_inputs_argument(inputs):
    with pytest.raises(DataError, match=r"^spec 'inputs' must be a positive integer, "
                                        r"\[channels, length\] or \[channels, height, width\]"):
        load_dataset("digits", n_inputs=inputs, n_outputs=10, task="classification")


def test_tuple_inputs_like_the_spec_shape():
    d = load_dataset("digits", n_inputs=(1, 8, 8), n_outputs=10, task="classification")
    assert d.X_train.shape[1:] == (1, 8, 8)
    assert math.prod(d.X_train.shape[1:]) == 64
