"""Reading untrusted ``.npz`` archives and IDX streams in memory bounded by the file's real size.

``np.load`` trusts an array's header: a 200-byte ``.npy`` member claiming
shape ``(10**12,)`` makes it allocate 8 TB (MemoryError, or an overcommitted
mapping that dies later), and a truncated zip surfaces as ``BadZipFile``.
Here every size a header claims is checked against what the file can hold
*before* anything is allocated:

* a stored zip member must hold exactly its header plus ``prod(shape) *
  itemsize`` bytes; a deflated one cannot expand past :data:`DEFLATE_MAX_RATIO`
  times its compressed size (deflate's format limit: a 258-byte match per
  ~2 bits), and the zip's own sizes must fit inside the file;
* nothing beyond ``max_bytes`` (default :data:`MAX_BYTES`) is allocated in
  total, whatever the file says, so a small gzip or deflate "bomb" is refused
  with that bound named instead of expanding to gigabytes;
* arrays are read straight into their final buffer (no second copy of the
  bytes), and bytes missing or left over are an error;
* only numeric dtypes are accepted (never pickled object arrays).

Every problem is a ``ValueError`` naming the file and what is wrong.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib

import numpy as np

__all__ = ["MAX_BYTES", "DEFLATE_MAX_RATIO", "read_npz", "read_into", "check_claim"]

#: Default cap on what one load may allocate (2 GiB): the full MNIST training set is 47 MB.
MAX_BYTES = 2 << 30
#: deflate cannot expand its input by more than this (zlib's technical notes: 1032:1).
DEFLATE_MAX_RATIO = 1032
_NUMERIC = "biufc"


def check_claim(name, claimed, max_bytes, what):
    """Refuse a header that claims more than ``max_bytes``."""
    if claimed > max_bytes:
        raise ValueError(f"{name!r}: {what} claims {claimed:,} bytes, over the {max_bytes:,}-byte bound "
                         "(pass max_bytes= to raise it deliberately)")


def read_into(stream, array, name, what):
    """Fill ``array`` (C-contiguous) from ``stream``; ValueError if the stream ends early."""
    view = memoryview(array.reshape(-1).view(np.uint8))
    filled = 0
    while filled < len(view):
        n = stream.readinto(view[filled:])
        if not n:
            raise ValueError(f"{name!r}: {what} is truncated: {filled:,} of {len(view):,} data bytes present")
        filled += n


def _member_header(fh, name, member):
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            shape, fortran, dtype = np.lib.format._read_array_header(fh, version)
    except (ValueError, TypeError, SyntaxError, EOFError) as exc:
        raise ValueError(f"{name!r}: member {member!r} is not a valid .npy array: {exc}") from None
    return shape, fortran, dtype


def read_npz(path, names=None, max_bytes=MAX_BYTES):
    """``{name: array}`` of the numeric arrays in the ``.npz`` at ``path`` (only ``names`` if given).

    Raises ValueError for an unreadable, truncated, corrupt or over-claiming
    file, for non-numeric (e.g. pickled object) arrays, and for members
    missing from ``names``.
    """
    name = os.fspath(path)
    try:
        file_size = os.path.getsize(name)
        with open(name, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise ValueError(f"cannot read {name!r}: {exc.strerror or exc}") from None
    if magic == b"\x93NUMPY":
        raise ValueError(f"{name!r} is a .npy array, not an .npz archive (np.savez writes one)")
    if magic[:4] != b"PK\x03\x04":
        raise ValueError(f"{name!r} is not a valid .npz archive (a zip file of .npy arrays, as np.savez writes)")
    try:
        with zipfile.ZipFile(name) as archive:
            infos = {}
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    infos[info.filename[:-4]] = info
            wanted = list(infos) if names is None else list(names)
            missing = [k for k in wanted if k not in infos]
            if missing:
                raise ValueError(f"{name!r} must contain arrays {' and '.join(map(repr, wanted))}; missing {missing}, "
                                 f"found {sorted(infos)}")
            total, plans = 0, []
            for key in wanted:
                info = infos[key]
                if info.header_offset + info.compress_size > file_size:
                    raise ValueError(f"{name!r}: member {key!r} claims {info.compress_size:,} compressed bytes "
                                     f"at offset {info.header_offset:,}, beyond the file's {file_size:,} bytes")
                if info.compress_type == zipfile.ZIP_STORED:
                    if info.file_size != info.compress_size:
                        raise ValueError(f"{name!r}: stored member {key!r} has inconsistent sizes")
                elif info.compress_type == zipfile.ZIP_DEFLATED:
                    if info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 1024:
                        raise ValueError(f"{name!r}: member {key!r} claims {info.file_size:,} bytes from "
                                         f"{info.compress_size:,} compressed ones, more than deflate can produce")
                else:
                    raise ValueError(f"{name!r}: member {key!r} uses zip compression method "
                                     f"{info.compress_type}; only stored and deflated (np.savez[_compressed]) "
                                     "are read")
                with archive.open(info) as fh:
                    shape, fortran, dtype = _member_header(fh, name, key)
                    header = fh.tell()
                if dtype.hasobject or dtype.kind not in _NUMERIC:
                    what = "object (pickled)" if dtype.hasobject else f"non-numeric ({dtype})"
                    raise ValueError(f"{name!r}: array {key!r} is {what}, which is refused; store numeric arrays")
                nbytes = math.prod(shape) * dtype.itemsize
                if header + nbytes != info.file_size:
                    raise ValueError(f"{name!r}: array {key!r} header claims shape {shape} ({nbytes:,} bytes) "
                                     f"but the member holds {info.file_size - header:,} data bytes")
                total += nbytes
                check_claim(name, total, max_bytes, "the archive's arrays")
                plans.append((key, info, shape, fortran, dtype, header))
            out = {}
            for key, info, shape, fortran, dtype, header in plans:
                array = np.empty(math.prod(shape), dtype=dtype)
                with archive.open(info) as fh:
                    fh.read(header)
                    read_into(fh, array, name, f"array {key!r}")
                    if fh.read(1):   # (reading to the end also verifies the CRC)
                        raise ValueError(f"{name!r}: array {key!r} has bytes after its data")
                out[key] = array.reshape(shape, order="F" if fortran else "C")
            return out
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{name!r} is not a valid .npz archive (truncated or corrupt zip: {exc})") from None
    except (OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"cannot read {name!r} as .npz: {exc}") from None
