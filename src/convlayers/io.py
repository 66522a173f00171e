"""Reading and writing images with Pillow.

Images from outside are untrusted: Pillow's decompression-bomb guard stays at
its default, every failure to read becomes an :class:`ImageError` naming the
file, and PNGs are written to a temporary file that is renamed into place only
once complete, so a failed write leaves nothing behind.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from convlayers.io import write_png, read_image
>>> path = os.path.join(tempfile.mkdtemp(), "ramp.png")
>>> write_png(path, np.linspace(-1.0, 1.0, 12).reshape(3, 4))
>>> read_image(path)[0]
array([ 0, 23, 46, 70], dtype=uint8)
"""

from __future__ import annotations

import contextlib
import os
import secrets
from importlib import resources

import numpy as np

__all__ = ["ImageError", "read_image", "write_png", "normalise", "to_uint8", "chelsea", "atomic_write",
           "CHELSEA_PATH"]

_MODES = ("L", "RGB")


class ImageError(ValueError):
    """A file could not be read as an image (missing, not an image, corrupt, too large)."""


def _chelsea_path() -> str:
    return str(resources.files("convlayers").joinpath("data", "chelsea.png"))


#: Path of the bundled photograph, "Chelsea the cat" (CC0, Stefan van der Walt).
CHELSEA_PATH = _chelsea_path()


def read_image(path, mode: str = "L") -> np.ndarray:
    """Read any image Pillow can decode as a uint8 array.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    mode : {'L', 'RGB'}
        'L' gives an H x W grayscale array by the ITU-R 601-2 luma transform
        (Pillow's ``convert('L')``: L = 0.299 R + 0.587 G + 0.114 B);
        'RGB' gives H x W x 3.

    Returns
    -------
    numpy.ndarray
        uint8 array.

    Raises
    ------
    ImageError
        If the file is missing, not an image, truncated, or over Pillow's
        decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).

    Examples
    --------
    >>> from convlayers.io import read_image, CHELSEA_PATH
    >>> read_image(CHELSEA_PATH).shape
    (300, 451)
    """
    if mode not in _MODES:
        raise ValueError(f"read_image: mode must be 'L' or 'RGB', got {mode!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"read_image: path must be a str or os.PathLike, got {type(path).__name__}")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()  # decode now, so truncated files fail here and not later
            arr = np.asarray(im.convert(mode), dtype=np.uint8)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{os.fspath(path)!s}: refused, image too large "
                         f"(decompression-bomb guard): {exc}") from None
    except FileNotFoundError:
        raise ImageError(f"{os.fspath(path)!s}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{os.fspath(path)!s}: is a directory, not an image file") from None
    except UnidentifiedImageError:
        raise ImageError(f"{os.fspath(path)!s}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageError(f"{os.fspath(path)!s}: cannot decode image: {exc}") from None
    return np.array(arr)  # own, writable memory


def chelsea(mode: str = "L") -> np.ndarray:
    """The bundled photograph "Chelsea the cat", 300 × 451 (height × width), grayscale by default.

    Examples
    --------
    >>> from convlayers.io import chelsea
    >>> chelsea("RGB").shape
    (300, 451, 3)
    """
    return read_image(CHELSEA_PATH, mode)


def normalise(array) -> np.ndarray:
    """Min-max scale a response to float64 in [0, 1]; a constant array gives zeros.

    Examples
    --------
    >>> from convlayers.io import normalise
    >>> normalise([-2.0, 0.0, 2.0])
    array([0. , 0.5, 1. ])
    """
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"normalise: array must be real numeric, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError("normalise: array must not be empty")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("normalise: array contains NaN or infinity")
    lo, hi = a.min(), a.max()
    if hi == lo:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def to_uint8(array) -> np.ndarray:
    """An array ready to save: uint8 as it is, anything else min-max scaled to 0..255.

    Examples
    --------
    >>> from convlayers.io import to_uint8
    >>> to_uint8([[-1.0, 0.0, 3.0]])
    array([[  0,  64, 255]], dtype=uint8)
    """
    a = np.asarray(array)
    if a.dtype == np.uint8:
        return a
    return np.rint(normalise(a) * 255.0).astype(np.uint8)


def write_png(path, array) -> None:
    """Write an H x W, H x W x 3 or H x W x 4 array as a PNG, atomically.

    Non-uint8 arrays are scaled with :func:`to_uint8`. The image goes to a
    temporary file beside ``path`` that replaces ``path`` only when complete.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from convlayers.io import write_png
    >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> write_png(p, np.zeros((2, 3), np.uint8)); os.path.getsize(p) > 0
    True
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"write_png: path must be a str or os.PathLike, got {type(path).__name__}")
    a = np.asarray(array)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or a.size == 0:
        raise ValueError(f"write_png: array must be H x W, H x W x 3 or H x W x 4, got shape {a.shape}")
    img8 = np.ascontiguousarray(to_uint8(a))
    from PIL import Image

    im = Image.fromarray(img8)
    with atomic_write(path) as fh:
        im.save(fh, format="PNG")


@contextlib.contextmanager
def atomic_write(path):
    """Open a binary temporary file beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    The file gets the usual permissions (0o666 less the umask).

    Examples
    --------
    >>> import tempfile, os
    >>> from convlayers.io import atomic_write
    >>> p = os.path.join(tempfile.mkdtemp(), "a.bin")
    >>> with atomic_write(p) as fh:
    ...     _ = fh.write(b"ok")
    >>> open(p, "rb").read()
    b'ok'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
