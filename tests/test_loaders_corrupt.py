"""Every file loader against corrupt, truncated and lying files: a clear ValueError naming the file, before
allocating what a header claims (issue #10 items 6 and 8)."""

import gzip
import io
import os
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from convlayers import io as cio
from convlayers.data import MAX_CLASSES, load_dataset, load_idx, load_npz
from convlayers.data._archive import DEFLATE_MAX_RATIO, read_npz
from convlayers.training import load_weights, save_weights


def npy_bytes(array=None, shape=None, descr="<f8"):
    """A .npy file; with ``shape`` its header claims that shape whatever data follows."""
    if shape is None:
        buf = io.BytesIO()
        np.save(buf, array)
        return buf.getvalue()
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (127 - len(header) - 10) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + bytes(64)


def write_zip(path, members, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def good_npz(path, n=30):
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((n, 8, 8)).astype(np.float32), y=np.arange(n) % 3)
    return path


# ---- .npz ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_npz_is_a_clear_error(tmp_path, fraction):
    data = good_npz(tmp_path / "good.npz").read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ValueError, match="cut.npz"):
        load_npz(bad)


def test_corrupt_npz_data_fails_its_crc(tmp_path):
    data = bytearray(good_npz(tmp_path / "good.npz").read_bytes())
    data[200] ^= 0xFF   # inside x.npy's data: the zip CRC no longer matches
    (tmp_path / "flip.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="flip.npz.*(CRC|corrupt)"):
        load_npz(tmp_path / "flip.npz")


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npz_header_claiming_a_terabyte_is_refused_before_allocating(tmp_path, method):
    huge = npy_bytes(shape=(10**12,))
    path = write_zip(tmp_path / "huge.npz", {"x.npy": huge, "y.npy": huge}, method)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"claims shape \(1000000000000,\)"):
            load_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20   # nothing near the claim was allocated


def test_npz_header_claiming_less_than_the_member_holds(tmp_path):
    member = npy_bytes(np.zeros(10))
    member = member.replace(b"(10,)", b"(5,) ")
    path = write_zip(tmp_path / "short.npz", {"x.npy": member, "y.npy": npy_bytes(np.zeros(3))})
    with pytest.raises(ValueError, match="short.npz.*'x'.*holds 80 data bytes"):
        load_npz(path)


def test_npz_zip_sizes_beyond_the_file_or_deflate_are_refused(tmp_path):
    path = write_zip(tmp_path / "a.npz", {"x.npy": npy_bytes(np.zeros(1000)), "y.npy": npy_bytes(np.zeros(2))},
                     zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("x.npy")
    data = bytearray(path.read_bytes())
    # rewrite x.npy's (the first entry's) uncompressed size in the central directory: more than deflate can give
    struct.pack_into("<I", data, data.index(b"PK\x01\x02") + 24, info.compress_size * (DEFLATE_MAX_RATIO + 10))
    (tmp_path / "b.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="more than deflate can produce"):
        load_npz(tmp_path / "b.npz")


@pytest.mark.parametrize("members, match", [
    ({"x.npy": npy_bytes(np.array([None, 1], dtype=object)), "y.npy": npy_bytes(np.zeros(2))}, "object"),
    ({"x.npy": npy_bytes(np.array(["a", "b"])), "y.npy": npy_bytes(np.zeros(2))}, "non-numeric"),
    ({"x.npy": b"not an npy at all", "y.npy": npy_bytes(np.zeros(2))}, "not a valid .npy"),
    ({"x.npy": npy_bytes(np.zeros(2))}, "missing \\['y'\\]"),
])
def test_npz_bad_members(tmp_path, members, match):
    with pytest.raises(ValueError, match=match):
        load_npz(write_zip(tmp_path / "m.npz", members))


def test_npz_other_compression_methods_are_refused(tmp_path):
    path = write_zip(tmp_path / "bz.npz", {"x.npy": npy_bytes(np.zeros(4)), "y.npy": npy_bytes(np.zeros(4))},
                     zipfile.ZIP_BZIP2)
    with pytest.raises(ValueError, match="compression method 12"):
        load_npz(path)


@pytest.mark.parametrize("content, match", [
    (b"", "not a valid .npz"),
    (b"\x93NUMPY\x01\x00", "is a .npy array"),
    (b"PK\x03\x04garbage", "truncated or corrupt"),
])
def test_npz_not_an_archive(tmp_path, content, match):
    (tmp_path / "n.npz").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_npz(tmp_path / "n.npz")


def test_npz_directory_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        load_npz(tmp_path)
    with pytest.raises(ValueError, match="cannot read"):
        load_npz(tmp_path / "none.npz")


def test_npz_total_is_bounded_by_max_bytes(tmp_path):
    path = tmp_path / "z.npz"
    np.savez_compressed(path, x=np.zeros((64, 128, 128)), y=np.zeros(64))   # 8 MiB of zeros in ~10 KB
    assert path.stat().st_size < 100_000
    with pytest.raises(ValueError, match="over the 1,000,000-byte bound"):
        load_npz(path, max_bytes=1_000_000)
    x, y = load_npz(path)
    assert x.shape == (64, 128, 128) and not x.any()


def test_npz_round_trip_keeps_values_and_fortran_order(tmp_path):
    x = np.asfortranarray(np.arange(24.0).reshape(4, 6))
    np.savez(tmp_path / "f.npz", x=x, y=np.arange(4))
    got_x, got_y = load_npz(tmp_path / "f.npz")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, np.arange(4))


# ---- IDX ----------------------------------------------------------------------------------------------------

def idx_bytes(array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_idx_raw_truncated_extra_and_overclaiming(tmp_path):
    data = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    for name, content, match in [("cut", data[:-1], "holds 59 bytes"), ("extra", data + b"\0", "holds 61 bytes"),
                                 ("header", data[:9], "header is truncated"), ("empty", b"", "empty file"),
                                 ("magic", b"\x01" + data[1:], "not an IDX file")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=match):
            load_idx(tmp_path / name)
    huge = bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(8)
    (tmp_path / "huge").write_bytes(huge)
    with pytest.raises(ValueError, match="promises shape"):
        load_idx(tmp_path / "huge")


def test_idx_gzip_truncated_corrupt_and_trailing(tmp_path):
    array = np.arange(600, dtype=np.int32).reshape(6, 10, 10)
    packed = gzip.compress(idx_bytes(array, 0x0C))
    (tmp_path / "ok.gz").write_bytes(packed)
    np.testing.assert_array_equal(load_idx(tmp_path / "ok.gz"), array)
    (tmp_path / "cut.gz").write_bytes(packed[:len(packed) // 2])
    with pytest.raises(ValueError, match="cut.gz"):
        load_idx(tmp_path / "cut.gz")
    bad = bytearray(packed)
    bad[len(bad) // 2] ^= 0xFF
    (tmp_path / "flip.gz").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="flip.gz"):
        load_idx(tmp_path / "flip.gz")
    (tmp_path / "more.gz").write_bytes(packed + gzip.compress(b"\0\0\0"))
    with pytest.raises(ValueError, match="holds more"):
        load_idx(tmp_path / "more.gz")


def _zeros_member(n):
    return gzip.compress(bytes(n), compresslevel=9)


def test_gzip_bomb_is_refused_with_the_bound_before_expanding(tmp_path):
    # A ~3 MB gzip file (concatenated members) that expands to 3 GiB of "images": refused by the 2 GiB cap,
    # not decompressed.
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 3, 32768, 32768)
    member = _zeros_member(16 << 20)
    path = tmp_path / "bomb-images-idx3-ubyte.gz"
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header))
        for _ in range(192):
            fh.write(member)
    assert path.stat().st_size < 4 << 20
    start = time.perf_counter()
    with pytest.raises(ValueError, match="over the 2,147,483,648-byte bound"):
        load_idx(path)
    assert time.perf_counter() - start < 2


def test_gzip_stream_longer_than_its_header_stops_at_the_claim(tmp_path):
    # Header says 100 bytes, the stream holds 3 GiB: the reader stops after 101 bytes.
    header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 100)
    member = _zeros_member(16 << 20)
    path = tmp_path / "long.gz"
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header))
        for _ in range(192):
            fh.write(member)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="holds more"):
        load_idx(path)
    assert time.perf_counter() - start < 2


def test_gzip_claim_beyond_deflate_ratio_is_refused(tmp_path):
    header = bytes([0, 0, 0x08, 2]) + struct.pack(">II", 20000, 20000)   # 400 MB from a ~40-byte file
    (tmp_path / "r.gz").write_bytes(gzip.compress(header))
    with pytest.raises(ValueError, match="more than a .*-byte gzip file can hold"):
        load_idx(tmp_path / "r.gz")


def test_idx_max_bytes_is_honoured(tmp_path):
    (tmp_path / "a").write_bytes(idx_bytes(np.zeros((10, 10), np.uint8)))
    with pytest.raises(ValueError, match="over the 50-byte bound"):
        load_idx(tmp_path / "a", max_bytes=50)
    assert load_idx(tmp_path / "a", max_bytes=100).shape == (10, 10)


# ---- load_dataset (what `convlayers train --data` reads) --------------------------------------------------------

def test_dataset_refuses_empty_test_split_and_absurd_labels(tmp_path):
    np.savez(tmp_path / "four.npz", x=np.zeros((4, 8, 8), np.float32), y=np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="empty test split"):
        load_dataset(tmp_path / "four.npz")
    np.savez(tmp_path / "big.npz", x=np.zeros((6, 8, 8), np.float32), y=np.array([0, 1, 2**31 - 1] * 2))
    with pytest.raises(ValueError, match="2147483647"):
        load_dataset(tmp_path / "big.npz")
    np.savez(tmp_path / "edge.npz", x=np.zeros((9, 8, 8), np.float32), y=np.array([0, 1, MAX_CLASSES - 1] * 3))
    assert load_dataset(tmp_path / "edge.npz")[3].max() == MAX_CLASSES - 1   # the largest allowed label loads
    np.savez(tmp_path / "fl.npz", x=np.zeros((6, 8, 8), np.float32), y=np.array([0.0, 1.0, 1e300] * 2))
    with pytest.raises(ValueError, match="class indices"):
        load_dataset(tmp_path / "fl.npz")
    (tmp_path / "one.npy").write_bytes(npy_bytes(np.zeros(3)))
    with pytest.raises(ValueError, match="np.savez"):
        load_dataset(tmp_path / "one.npy")


# ---- weights --------------------------------------------------------------------------------------------------

def test_load_weights_npz_problems_are_value_errors(tmp_path):
    (tmp_path / "w.npz").write_bytes(npy_bytes(np.zeros(3)))     # a .npy renamed: was AttributeError
    with pytest.raises(ValueError, match="is a .npy array"):
        load_weights(tmp_path / "w.npz")
    good = tmp_path / "g.npz"
    save_weights({"a": np.zeros(100), "b": np.ones(3)}, good)
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:-30])   # was BadZipFile
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_weights(tmp_path / "cut.npz")
    write_zip(tmp_path / "huge.npz", {"a.npy": npy_bytes(shape=(10**12,))})
    with pytest.raises(ValueError, match="claims shape"):
        load_weights(tmp_path / "huge.npz")
    with pytest.raises(ValueError, match="cannot read"):
        load_weights(tmp_path / "missing.npz")
    assert set(load_weights(good)) == {"a", "b"}


def test_load_weights_safetensors_problems_are_value_errors(tmp_path):
    pytest.importorskip("safetensors")
    good = tmp_path / "g.safetensors"
    save_weights({"a": np.arange(100.0)}, good)
    data = good.read_bytes()
    cases = {"garbage": b"hello world, not safetensors", "empty": b"", "cut": data[:-8],
             "hugeheader": struct.pack("<Q", 2**60) + b"{}",
             "badjson": struct.pack("<Q", 5) + b"{nope",
             "offsets": data.replace(b"800]", b"900]") if b"800]" in data else data[:-8]}
    for name, content in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}.safetensors"):   # was SafetensorError
            load_weights(path)
    np.testing.assert_array_equal(load_weights(good)["a"], np.arange(100.0))


def test_save_weights_refuses_object_arrays_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="numeric"):
        save_weights({"a": np.array([None], dtype=object)}, tmp_path / "w.npz")   # np.savez would pickle it
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    save_weights({"a": np.zeros(3)}, path)
    before = path.read_bytes()

    def broken(fh, **arrays):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError):
        save_weights({"a": np.ones(3)}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["w.npz"]


# ---- images ---------------------------------------------------------------------------------------------------

def png_bytes(shape=(20, 30)):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("content, match", [
    (b"", "not an image"),
    (b"GIF89a not really", "not an image|cannot decode"),
    (None, "cannot decode|truncated"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image|cannot decode"),
])
def test_read_image_corrupt(tmp_path, content, match):
    path = tmp_path / "pic.png"
    path.write_bytes(png_bytes()[:-40] if content is None else content)
    with pytest.raises(cio.ImageError, match=match):
        cio.read_image(path)


def test_read_image_missing_directory_and_bomb(tmp_path, monkeypatch):
    with pytest.raises(cio.ImageError, match="no such file"):
        cio.read_image(tmp_path / "none.png")
    with pytest.raises(cio.ImageError, match="directory"):
        cio.read_image(tmp_path)
    from PIL import Image

    (tmp_path / "big.png").write_bytes(png_bytes((100, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)   # 10,000 px is then > 2x the guard: refused
    with pytest.raises(cio.ImageError, match="too large"):
        cio.read_image(tmp_path / "big.png")


def test_loaders_leave_the_directory_as_they_found_it(tmp_path):
    good_npz(tmp_path / "g.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04")
    before = sorted(os.listdir(tmp_path))
    for call in (lambda: load_npz(tmp_path / "bad.npz"), lambda: load_weights(tmp_path / "bad.npz")):
        with pytest.raises(ValueError):
            call()
    assert sorted(os.listdir(tmp_path)) == before
    assert read_npz(tmp_path / "g.npz", names=["y"])["y"].shape == (30,)
