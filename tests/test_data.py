"""Bundled digits, the fixed split, batching, IDX/npz loading and their error messages."""

import gzip
import os
import pickle
from importlib import resources

import numpy as np
import pytest

from convlayers import data


def write_idx(path, array, code=0x08, compress=False):
    array = np.asarray(array)
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    raw = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    raw += array.astype(dtype).tobytes()
    with open(path, "wb") as fh:
        fh.write(gzip.compress(raw) if compress else raw)
    return path


def test_bundled_digits():
    x, y = data.load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 1
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # A zero looks like a ring: its centre is darker than the ring around it.
    zero = x[y == 0].mean(axis=0)[0]
    assert zero[3:5, 3:5].mean() < zero[1:3, 2:6].mean()
    folder = resources.files("convlayers.data")
    licence = folder.joinpath("digits.LICENSE.txt").read_text()
    assert "CC BY 4.0" in licence and "Alpaydin" in licence and "UCI" in licence
    with np.load(str(folder.joinpath("digits.npz")), allow_pickle=False) as archive:
        assert archive["images"].dtype == np.uint8


def test_split_is_fixed_stratified_and_disjoint():
    x, y = data.load_digits()
    a = data.train_test_split(x, y)
    b = data.train_test_split(x, y)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x_train, y_train, x_test, y_test = a
    assert len(y_train) + len(y_test) == 1797 and len(y_test) == 359
    counts = np.bincount(y_test)
    assert counts.min() >= 35 and counts.max() <= 37
    ids = np.arange(1797)
    i_train, _, i_test, _ = data.train_test_split(ids, y)
    assert not set(i_train) & set(i_test) and len(set(i_train) | set(i_test)) == 1797
    other = data.train_test_split(x, y, seed=1)
    assert not np.array_equal(other[3], y_test) or not np.array_equal(other[2], x_test)
    with pytest.raises(ValueError, match="test_fraction"):
        data.train_test_split(x, y, test_fraction=1.5)
    with pytest.raises(ValueError, match="same length"):
        data.train_test_split(x, y[:-1])


def test_dataloader_batches_and_shuffles_reproducibly():
    x, y = np.arange(10) * 10, np.arange(10)
    loader = data.DataLoader(x, y, batch_size=3, shuffle=True, seed=5)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [3, 3, 3, 1] and len(loader) == 4
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert all((xb == yb * 10).all() for xb, yb in batches)
    again = np.concatenate([b[1] for b in data.DataLoader(x, y, batch_size=3, shuffle=True, seed=5)])
    np.testing.assert_array_equal(seen, again)
    second_epoch = np.concatenate([b[1] for b in loader])
    assert second_epoch.tolist() != seen.tolist()
    assert len(data.DataLoader(x, y, batch_size=3, drop_last=True)) == 3
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(x, y, batch_size=0)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (5, 6, 7))
    path = write_idx(tmp_path / "imgs-idx3-ubyte", images, compress=compress)
    got = data.load_idx(path)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)
    floats = write_idx(tmp_path / "f.idx", np.linspace(0, 1, 6).reshape(2, 3), code=0x0D)
    np.testing.assert_allclose(data.load_idx(floats), np.linspace(0, 1, 6).reshape(2, 3), rtol=1e-7)
    assert data.load_idx(floats).dtype.byteorder in "=|<"


def test_idx_errors(tmp_path):
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.load_idx(bad_magic)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2]))
    with pytest.raises(ValueError, match="truncated"):
        data.load_idx(short)
    wrong_len = tmp_path / "len"
    wrong_len.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"shape \(5,\).*holds 3 bytes"):
        data.load_idx(wrong_len)
    broken_gz = tmp_path / "x.gz"
    broken_gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")[:-6])
    with pytest.raises(ValueError, match="gzip"):
        data.load_idx(broken_gz)
    with pytest.raises(ValueError, match="cannot read"):
        data.load_idx(tmp_path / "missing")


def test_load_dataset_from_idx_pair_and_directory(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (40, 10, 10)), rng.integers(0, 3, 40)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, compress=True)
    x_train, y_train, x_test, y_test = data.load_dataset(tmp_path / "train-images-idx3-ubyte.gz")
    assert x_train.shape[1:] == (1, 10, 10) and x_train.dtype == np.float32
    assert len(y_train) + len(y_test) == 40 and x_train.max() <= 1
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:7])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:7])
    x_train, y_train, x_test, y_test = data.load_dataset(tmp_path)
    assert len(y_train) == 40 and len(y_test) == 7
    np.testing.assert_allclose(x_test[:, 0], images[:7] / 255.0, rtol=1e-6)


def test_load_dataset_from_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.random((30, 8, 8)).astype(np.float64), y=np.arange(30) % 4)
    x_train, y_train, x_test, y_test = data.load_dataset(path)
    assert x_train.dtype == np.float32 and x_train.shape[1:] == (1, 8, 8) and y_train.dtype == np.int64
    assert set(np.concatenate([y_train, y_test])) == {0, 1, 2, 3}


def test_load_dataset_errors_are_clear(tmp_path):
    rng = np.random.default_rng(0)
    cases = {}
    np.savez(tmp_path / "mismatch.npz", x=rng.random((10, 8, 8)), y=np.arange(9))
    cases["mismatch.npz"] = "10 images but 9 labels"
    np.savez(tmp_path / "nokeys.npz", images=rng.random((10, 8, 8)))
    cases["nokeys.npz"] = "must contain arrays 'x' and 'y'"
    np.savez(tmp_path / "objects.npz", x=np.array([None, 1], dtype=object), y=np.arange(2))
    cases["objects.npz"] = "pickle"
    np.savez(tmp_path / "shape.npz", x=rng.random((10, 64)), y=np.arange(10))
    cases["shape.npz"] = r"\(N, H, W\)"
    np.savez(tmp_path / "labels.npz", x=rng.random((10, 8, 8)), y=np.linspace(0, 1, 10))
    cases["labels.npz"] = "labels must be integers"
    np.savez(tmp_path / "negative.npz", x=rng.random((10, 8, 8)), y=np.arange(10) - 3)
    cases["negative.npz"] = ">= 0"
    np.savez(tmp_path / "nan.npz", x=np.full((10, 8, 8), np.nan), y=np.arange(10) % 2)
    cases["nan.npz"] = "NaN"
    (tmp_path / "garbage.npz").write_bytes(b"this is not a zip file")
    cases["garbage.npz"] = "not a valid .npz"
    with open(tmp_path / "pickled.npz", "wb") as fh:
        pickle.dump({"x": 1}, fh)
    cases["pickled.npz"] = "npz"
    write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (5, 8, 8)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(6) % 2)
    cases["train-images-idx3-ubyte"] = "5 images but 6 labels"
    write_idx(tmp_path / "lonely-images-idx3-ubyte", rng.integers(0, 256, (5, 8, 8)))
    cases["lonely-images-idx3-ubyte"] = "no labels"
    cases["does-not-exist.npz"] = "does not exist"
    for name, match in cases.items():
        with pytest.raises(ValueError, match=match):
            data.load_dataset(tmp_path / name)
    os.mkdir(tmp_path / "empty")
    with pytest.raises(ValueError, match="must hold train-images"):
        data.load_dataset(tmp_path / "empty")
