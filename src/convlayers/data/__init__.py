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
import numbers
import os
from importlib import resources

import numpy as np

__all__ = ["load_digits", "train_test_split", "DataLoader", "load_idx", "load_npz", "load_dataset",
           "DIGITS_LICENSE"]

DIGITS_LICENSE = ("UCI ML hand-written digits (E. Alpaydin, C. Kaynak, 1998), "
                  "https://archive.ics.uci.edu/dataset/80, CC BY 4.0")

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


def _read_bytes(path):
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path!r} is not a valid gzip file: {exc}") from None
    return raw


def load_idx(path):
    """Read an MNIST-format IDX file (raw or gzip-compressed).

    The format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of
    dimensions, one big-endian uint32 size per dimension, then the values.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray
        In native byte order, with the file's dimensions.

    Raises
    ------
    ValueError
        If the file cannot be read, is not IDX, or its length does not match its header.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from convlayers.data import load_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> _ = open(path, "wb").write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> load_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    raw = _read_bytes(path)
    name = os.fspath(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"{name!r} is not an IDX file (expected magic bytes 00 00 <type> <ndim>, "
                         f"got {raw[:4].hex(' ') or 'an empty file'})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{name!r}: IDX header is truncated ({len(raw)} bytes, {header} needed)")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{name!r}: IDX header promises shape {shape} ({expected} bytes of data), "
                         f"but the file holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_npz(path):
    """Read ``x`` and ``y`` from a ``.npz`` archive (no pickle).

    Returns
    -------
    x, y : ndarray

    Raises
    ------
    ValueError
        If the file is unreadable, not an npz, holds object arrays, or lacks ``x`` or ``y``.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise ValueError(f"cannot read {name!r}: {exc.strerror or exc}") from None
    if magic == b"\x93NUMPY":
        raise ValueError(f"{name!r} is a .npy array, not an .npz archive with 'x' and 'y'")
    if magic[:4] != b"PK\x03\x04":
        raise ValueError(f"{name!r} is not a valid .npz archive (a zip file of .npy arrays, as np.savez writes)")
    try:
        with np.load(name, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError(f"{name!r} is a .npy array, not an .npz archive with 'x' and 'y'")
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise ValueError(f"{name!r} must contain arrays 'x' and 'y'; missing {missing}, "
                                 f"found {sorted(archive.files)}")
            return archive["x"], archive["y"]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise ValueError(f"{name!r} holds object (pickled) arrays, which are refused; "
                             "store numeric arrays") from None
        if str(exc).startswith(repr(name)):
            raise
        raise ValueError(f"{name!r} is not a valid .npz archive: {exc}") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read {name!r} as .npz: {exc}") from None


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
        return train_test_split(x, y, test_fraction, seed)
    if not os.path.exists(name):
        raise ValueError(f"data file {name!r} does not exist")
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
    return train_test_split(x, y, test_fraction, seed)
