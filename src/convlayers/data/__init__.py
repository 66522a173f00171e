"""Datasets and batching: the bundled 8×8 digits, MNIST-format IDX files, ``.npz`` archives.

The digits (1,797 images of 8×8 pixels, values 0..16, from the UCI "Optical
Recognition of Handwritten Digits" test set by E. Alpaydin and C. Kaynak,
CC BY 4.0; see ``digits.LICENSE.txt`` next to ``digits.npz``) ship with the
package, so training works offline.

Untrusted files are read without pickle (``np.load(..., allow_pickle=False)``)
and checked before use; a bad file raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
import zlib
from importlib import resources

import numpy as np

from ._archive import DEFLATE_MAX_RATIO, MAX_BYTES, check_claim, read_into, read_npz

__all__ = ["load_digits", "train_test_split", "DataLoader", "load_idx", "load_npz", "load_dataset",
           "DIGITS_LICENSE", "MAX_CLASSES"]

DIGITS_LICENSE = ("UCI ML hand-written digits (E. Alpaydin, C. Kaynak, 1998), "
                  "https://archive.ics.uci.edu/dataset/80, CC BY 4.0")

#: Labels are class indices below this (the classifier gets max(label) + 1 outputs).
MAX_CLASSES = 100_000

_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def load_digits():
    """The bundled 8×8 handwritten digits.

    Returns
    -------
    x : ndarray of float32, shape (1797, 1, 8, 8)
        Pixel values scaled from 0..16 to 0..1.
    y : ndarray of int64, shape (1797,)
        The digit, 0..9.

    Examples
    --------
    >>> from convlayers.data import load_digits
    >>> x, y = load_digits()
    >>> x.shape, x.dtype, int(y[:10].sum()), float(x.max())
    ((1797, 1, 8, 8), dtype('float32'), 45, 1.0)
    """
    with resources.files(__package__).joinpath("digits.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    return (images.astype(np.float32) / 16.0)[:, None], labels.astype(np.int64)


def train_test_split(x, y, test_fraction=0.2, seed=0):
    """A fixed, stratified held-out split: ``test_fraction`` of each class goes to the test set.

    The same ``(x, y, test_fraction, seed)`` always gives the same split.

    Parameters
    ----------
    x : ndarray, shape (N, ...)
    y : ndarray of int, shape (N,)
    test_fraction : float in (0, 1), default 0.2
    seed : int, default 0

    Returns
    -------
    x_train, y_train, x_test, y_test : ndarray
        Each keeps the original order within its part.

    Examples
    --------
    >>> from convlayers.data import load_digits, train_test_split
    >>> x_train, y_train, x_test, y_test = train_test_split(*load_digits())
    >>> len(y_train), len(y_test)
    (1438, 359)
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got x shape {x.shape} and y shape {y.shape}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        test[members[: int(round(len(members) * test_fraction))]] = True
    return x[~test], y[~test], x[test], y[test]


class DataLoader:
    """Iterate over ``(x_batch, y_batch)`` pairs, optionally reshuffled every epoch.

    Parameters
    ----------
    x, y : ndarray
        Same length ``N``.
    batch_size : int, default 64
    shuffle : bool, default False
        New random order at each iteration (epoch).
    seed : int, optional
        Seed of the shuffling generator, for reproducible epochs.
    drop_last : bool, default False
        Skip a final batch smaller than ``batch_size``.

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers.data import DataLoader
    >>> loader = DataLoader(np.arange(10), np.arange(10), batch_size=4)
    >>> len(loader), [len(xb) for xb, yb in loader]
    (3, [4, 4, 2])
    """

    def __init__(self, x, y, batch_size=64, shuffle=False, seed=None, drop_last=False):
        self.x, self.y = np.asarray(x), np.asarray(y)
        if len(self.x) != len(self.y):
            raise ValueError(f"x and y must have the same length, got {len(self.x)} and {len(self.y)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.y)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.x[index], self.y[index]


def _open_idx(fh, name):
    """The stream of IDX bytes (gunzipped when the file is gzip) and whether it was compressed."""
    if fh.read(2) == b"\x1f\x8b":
        fh.seek(0)
        return gzip.GzipFile(fileobj=fh, mode="rb"), True
    fh.seek(0)
    return fh, False


def _read_exact(stream, n, name, what):
    data = stream.read(n)
    if len(data) != n:
        raise ValueError(f"{name!r}: IDX {what} is truncated ({len(data)} of {n} bytes)")
    return data


def load_idx(path, max_bytes=MAX_BYTES):
    """Read an MNIST-format IDX file (raw or gzip-compressed).

    The format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of
    dimensions, one big-endian uint32 size per dimension, then the values.

    The sizes in the header are checked before anything is allocated: a raw
    file must hold exactly that many bytes; a gzip file cannot claim more than
    deflate's 1032:1 limit of its size; and no file may claim more than
    ``max_bytes``.  Decompression stops at the claimed size, so a small gzip
    "bomb" is refused instead of expanding to gigabytes.

    Parameters
    ----------
    path : str or path-like
    max_bytes : int, default 2 GiB
        The most the array may take; raise it deliberately for larger files.

    Returns
    -------
    ndarray
        In native byte order, with the file's dimensions.

    Raises
    ------
    ValueError
        If the file cannot be read, is not IDX, is corrupt, or its length does
        not match its header.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from convlayers.data import load_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> _ = open(path, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> load_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    name = os.fspath(path)
    try:
        file_size = os.path.getsize(name)
        fh = open(name, "rb")
    except OSError as exc:
        raise ValueError(f"cannot read {name!r}: {exc.strerror or exc}") from None
    compressed = False
    try:
        with fh:
            stream, compressed = _open_idx(fh, name)
            with stream:
                magic = stream.read(4)
                if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES or magic[3] == 0:
                    raise ValueError(f"{name!r} is not an IDX file (expected magic bytes 00 00 <type> <ndim>, "
                                     f"got {magic.hex(' ') or 'an empty file'})")
                dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
                header = 4 + 4 * ndim
                shape = tuple(int(v) for v in np.frombuffer(_read_exact(stream, 4 * ndim, name, "header"), ">u4"))
                expected = math.prod(shape) * dtype.itemsize
                if not compressed and file_size - header != expected:
                    raise ValueError(f"{name!r}: IDX header promises shape {shape} ({expected:,} bytes of data), "
                                     f"but the file holds {file_size - header:,} bytes")
                if compressed and expected + header > DEFLATE_MAX_RATIO * file_size:
                    raise ValueError(f"{name!r}: IDX header promises shape {shape} ({expected:,} bytes), more than "
                                     f"a {file_size:,}-byte gzip file can hold")
                check_claim(name, expected, max_bytes, f"IDX header (shape {shape})")
                array = np.empty(shape, dtype=dtype)
                read_into(stream, array, name, f"IDX data of shape {shape}")
                if stream.read(1):
                    raise ValueError(f"{name!r}: IDX header promises shape {shape} ({expected:,} bytes of data), "
                                     "but the file holds more")
    except (OSError, EOFError, zlib.error) as exc:   # gzip.BadGzipFile is an OSError
        raise ValueError(f"{name!r} is not a valid {'gzip ' if compressed else ''}IDX file: {exc}") from None
    return array.astype(dtype.newbyteorder("="), copy=False)


def load_npz(path, max_bytes=MAX_BYTES):
    """Read ``x`` and ``y`` from a ``.npz`` archive (no pickle).

    Array headers are checked against the archive's real sizes before
    anything is allocated (see :mod:`convlayers.data._archive`).

    Returns
    -------
    x, y : ndarray

    Raises
    ------
    ValueError
        If the file is unreadable, not an npz, truncated or corrupt, claims
        more than it holds or than ``max_bytes``, holds non-numeric (e.g.
        object) arrays, or lacks ``x`` or ``y``.
    """
    arrays = read_npz(path, names=("x", "y"), max_bytes=max_bytes)
    return arrays["x"], arrays["y"]


def _as_images(x, y, source):
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"{source}: images must have shape (N, H, W) or (N, C, H, W), got {x.shape}")
    if y.ndim != 1:
        raise ValueError(f"{source}: labels must have shape (N,), got {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{source}: {len(x)} images but {len(y)} labels")
    if len(y) < 2:
        raise ValueError(f"{source}: need at least 2 examples, got {len(y)}")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating)
                                                   and np.all(np.isfinite(y)) and np.all(y == np.round(y)))):
        raise ValueError(f"{source}: labels must be integers, got dtype {y.dtype}")
    if y.min() < 0:
        raise ValueError(f"{source}: labels must be >= 0, got minimum {y.min()}")
    if y.max() >= MAX_CLASSES:   # the classifier's last layer has max(y) + 1 outputs: 2**31 - 1 would need 256 GiB
        raise ValueError(f"{source}: labels must be class indices 0..K-1 with K <= {MAX_CLASSES:,}, got label "
                         f"{y.max():.0f}; renumber the classes from 0")
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        peak = 1 if x.dtype == np.bool_ else (16 if x.max() <= 16 else 255)
        x = x.astype(np.float32) / peak
    elif np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{source}: images contain NaN or infinite values")
        x = x.astype(np.float32)
    else:
        raise ValueError(f"{source}: images must be numeric, got dtype {x.dtype}")
    if min(x.shape[2:]) < 4:
        raise ValueError(f"{source}: images must be at least 4x4, got {x.shape[2:]}")
    return np.ascontiguousarray(x), y.astype(np.int64)


def _find(directory, stem):
    for suffix in ("", ".gz"):
        for name in (stem, stem.replace("-idx", ".idx")):
            path = os.path.join(directory, name + suffix)
            if os.path.exists(path):
                return path
    return None


def load_dataset(path, labels=None, test_fraction=0.2, seed=0):
    """Load a user's dataset and return a train/test split.

    Parameters
    ----------
    path : str or path-like
        One of

        * an ``.npz`` archive with ``x`` (``(N, H, W)`` or ``(N, C, H, W)``) and ``y`` (``(N,)``);
        * an IDX images file (``train-images-idx3-ubyte[.gz]``); its labels are
          ``labels`` or the file with ``images-idx3`` replaced by ``labels-idx1``;
        * a directory holding MNIST's files (``train-images-idx3-ubyte``,
          ``train-labels-idx1-ubyte`` and, if present, the ``t10k-`` test pair).
    labels : str or path-like, optional
        IDX labels file for an IDX images ``path``.
    test_fraction, seed :
        Held-out split (see :func:`train_test_split`) when the data has no test set of its own.

    Returns
    -------
    x_train, y_train, x_test, y_test : ndarray
        Images as float32 ``(N, C, H, W)`` scaled to 0..1 (integer pixels are
        divided by 16 if they never exceed 16, else by 255), labels int64.

    Raises
    ------
    ValueError
        For unreadable, malformed or mismatched files, naming the file and the problem.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        train_images = _find(name, "train-images-idx3-ubyte")
        train_labels = _find(name, "train-labels-idx1-ubyte")
        if train_images is None or train_labels is None:
            raise ValueError(f"directory {name!r} must hold train-images-idx3-ubyte and train-labels-idx1-ubyte "
                             "(optionally .gz)")
        x, y = _as_images(load_idx(train_images), load_idx(train_labels), name)
        test_images, test_labels = _find(name, "t10k-images-idx3-ubyte"), _find(name, "t10k-labels-idx1-ubyte")
        if test_images and test_labels:
            xt, yt = _as_images(load_idx(test_images), load_idx(test_labels), test_images)
            if xt.shape[1:] != x.shape[1:]:
                raise ValueError(f"{name!r}: test images have shape {xt.shape[1:]}, training images {x.shape[1:]}")
            return x, y, xt, yt
        return _nonempty(train_test_split(x, y, test_fraction, seed), name, test_fraction)
    if not os.path.exists(name):
        raise ValueError(f"data file {name!r} does not exist")
    if name.endswith(".npy"):
        raise ValueError(f"{name!r}: a .npy file holds one array; put images and labels in one archive with "
                         "np.savez(path, x=images, y=labels)")
    if name.endswith(".npz"):
        x, y = load_npz(name)
        x, y = _as_images(x, y, name)
    else:
        if labels is None:
            guess = name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
            if guess == name or not os.path.exists(guess):
                raise ValueError(f"no labels for IDX images {name!r}: expected {guess!r} next to it "
                                 "(or pass a labels file)")
            labels = guess
        x, y = _as_images(load_idx(name), load_idx(labels), name)
    if len(np.unique(y)) < 2:
        raise ValueError(f"{name!r}: labels must contain at least 2 classes")
    return _nonempty(train_test_split(x, y, test_fraction, seed), name, test_fraction)


def _nonempty(split, name, test_fraction):
    """Refuse a split with an empty side (every class too small to give the test set one example)."""
    x_train, y_train, x_test, y_test = split
    if len(y_test) == 0 or len(y_train) == 0:
        raise ValueError(f"{name!r}: {len(y_train) + len(y_test)} examples give an empty "
                         f"{'test' if len(y_test) == 0 else 'training'} split at test fraction {test_fraction} "
                         f"(a class needs at least {math.floor(0.5 / test_fraction) + 1} examples to reach the test set)")
    return split
