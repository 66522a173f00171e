"""Training a classifier: the loop behind ``convlayers train`` (and the demo's short run).

``fit`` runs mini-batch Adam on cross-entropy with a cosine learning-rate
schedule, showing a tqdm progress bar (loss and running accuracy) when tqdm
is installed; ``evaluate`` measures accuracy in eval mode; ``save_weights``
writes a state_dict as ``.npz`` or safetensors, atomically, never as pickle.
"""

from __future__ import annotations

import numbers
import os
import sys
import tempfile
import time

import numpy as np

from . import functional as F
from .autograd import Tensor
from .data import DataLoader
from .data._archive import MAX_BYTES, read_npz
from .nn import Module
from .optim import Adam, CosineAnnealingLR

__all__ = ["fit", "evaluate", "predict", "save_weights", "load_weights"]


def predict(model, x, batch_size=512):
    """Logits of ``model`` (in eval mode, no graph) for every row of ``x``, batch by batch."""
    if not isinstance(model, Module):
        raise TypeError(f"model must be a convlayers.nn.Module, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model(np.ascontiguousarray(x[i:i + batch_size]))
                               for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def evaluate(model, x, y, batch_size=512):
    """Fraction of ``x`` that ``model`` classifies as ``y`` (eval mode).

    Examples
    --------
    >>> import numpy as np
    >>> from convlayers import nn
    >>> from convlayers.training import evaluate
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> 0.0 <= evaluate(model, np.zeros((3, 1, 2, 2), np.float32), np.array([0, 1, 0])) <= 1.0
    True
    """
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    return float(np.mean(predict(model, x, batch_size).argmax(axis=1) == y))


def _shift_augment(x, rng, max_shift):
    """Translate each image by up to ``max_shift`` pixels (zero fill): cheap invariance to position."""
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy = rng.integers(0, 2 * max_shift + 1, n)
    dx = rng.integers(0, 2 * max_shift + 1, n)
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


def fit(model, x_train, y_train, x_test=None, y_test=None, *, epochs=10, batch_size=64, lr=3e-3,
        weight_decay=0.0, label_smoothing=0.0, seed=0, augment=0, progress=True, log=None):
    """Train ``model`` to classify ``x_train`` as ``y_train``.

    Parameters
    ----------
    model : Module
        Maps ``(N, C, H, W)`` to ``(N, classes)`` logits.
    x_train : ndarray of float32, shape (N, C, H, W)
    y_train : ndarray of int, shape (N,)
    x_test, y_test : ndarray, optional
        Evaluated after every epoch when given.
    epochs : int, default 10
    batch_size : int, default 64
    lr : float, default 3e-3
        Adam's initial learning rate, annealed to 0 over ``epochs`` on a cosine.
    weight_decay : float, default 0
    label_smoothing : float, default 0
        Cross-entropy target smoothing (PyTorch's ``label_smoothing``); 0.1
        keeps the small digit models from over-confident fits.
    seed : int, default 0
        Seeds the batch order and the augmentation.
    augment : int, default 0
        Random translation of training images by up to this many pixels.
    progress : bool, default True
        Show a tqdm bar per epoch (plain lines if tqdm is missing).
    log : file-like, optional
        Where progress goes; default ``sys.stderr``.

    Returns
    -------
    dict
        ``loss`` (mean training loss per epoch), ``train_accuracy``,
        ``test_accuracy`` (per epoch, empty without a test set) and ``seconds``.

    Examples
    --------
    >>> from convlayers.data import load_digits, train_test_split
    >>> from convlayers.models import digits_cnn
    >>> from convlayers.training import fit
    >>> x_train, y_train, x_test, y_test = train_test_split(*load_digits())
    >>> history = fit(digits_cnn("separable", width=8), x_train[:256], y_train[:256], epochs=1, progress=False)
    >>> len(history["loss"])
    1
    """
    if not isinstance(model, Module):
        raise TypeError(f"model must be a convlayers.nn.Module, got {type(model).__name__}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(augment, bool) or not isinstance(augment, numbers.Integral) or augment < 0:
        raise ValueError(f"augment must be a non-negative int, got {augment!r}")
    x_train = np.ascontiguousarray(x_train)
    y_train = np.asarray(y_train, dtype=np.int64)
    if x_train.ndim != 4 or len(x_train) != len(y_train):
        raise ValueError(f"x_train must be (N, C, H, W) with N = len(y_train), got x_train {x_train.shape}, "
                         f"y_train {y_train.shape}")
    has_test = x_test is not None and y_test is not None
    log = sys.stderr if log is None else log
    tqdm = None
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:  # optional dependency: fall back to one line per epoch
            tqdm = None

    rng = np.random.default_rng(seed)
    loader = DataLoader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=seed)
    optimizer = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = CosineAnnealingLR(optimizer, T_max=epochs)
    history = {"loss": [], "train_accuracy": [], "test_accuracy": [], "seconds": 0.0}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        bar = None
        if tqdm is not None:
            bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{epochs}", file=log, leave=True,
                       dynamic_ncols=True, unit="batch")
        for xb, yb in loader:
            if augment:
                xb = _shift_augment(xb, rng, augment)
            logits = model(Tensor(xb))
            loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch_loss = float(loss.data)
            if not np.isfinite(batch_loss):
                raise FloatingPointError(f"training diverged at epoch {epoch}: loss is {batch_loss}; "
                                         "try a smaller learning rate")
            total_loss += batch_loss * len(yb)
            correct += int((logits.data.argmax(axis=1) == yb).sum())
            seen += len(yb)
            if bar is not None:
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{100 * correct / seen:.2f}%")
                bar.update(1)
        scheduler.step()
        history["loss"].append(total_loss / seen)
        history["train_accuracy"].append(correct / seen)
        summary = f"loss={total_loss / seen:.4f}, acc={100 * correct / seen:.2f}%"
        if has_test:
            history["test_accuracy"].append(evaluate(model, x_test, y_test))
            summary += f", test_acc={100 * history['test_accuracy'][-1]:.2f}%"
        if bar is not None:
            bar.set_postfix_str(summary)
            bar.close()
        elif progress:
            print(f"epoch {epoch}/{epochs}: {summary}", file=log, flush=True)
    model.eval()
    history["seconds"] = time.perf_counter() - start
    return history


def save_weights(model_or_state, path):
    """Write a state_dict to ``path`` as ``.npz`` or ``.safetensors``, atomically (no pickle).

    The file is written to a temporary name in the same directory and then
    renamed, so an interrupted save never leaves a half-written file behind.

    Parameters
    ----------
    model_or_state : Module or mapping of str to ndarray
    path : str or path-like
        Ends in ``.npz`` or ``.safetensors`` (the latter needs the
        ``safetensors`` package).

    Raises
    ------
    ValueError
        For another extension.
    ImportError
        For ``.safetensors`` without the ``safetensors`` package.
    """
    path = os.fspath(path)
    state = model_or_state.state_dict() if isinstance(model_or_state, Module) else dict(model_or_state)
    arrays = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"state_dict keys must be str, got {key!r}")
        array = np.array(value.data if isinstance(value, Tensor) else value, order="C")   # (not
        # ascontiguousarray: it makes 0-d arrays 1-d)
        if array.dtype.hasobject or array.dtype.kind not in "biufc":   # np.savez would pickle an object array
            raise ValueError(f"state_dict[{key!r}]: expected a numeric array, got dtype {array.dtype}")
        arrays[key] = array
    if path.endswith(".npz"):
        def write(fh):
            np.savez(fh, **arrays)
    elif path.endswith(".safetensors"):
        try:
            from safetensors.numpy import save
        except ImportError:
            raise ImportError("saving .safetensors needs the 'safetensors' package "
                              "(pip install 'convlayers[train]'), or use a .npz path") from None

        def write(fh):
            fh.write(save(arrays, metadata={"format": "np"}))
    else:
        raise ValueError(f"path must end in .npz or .safetensors, got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".convlayers-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp creates 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_weights(path, max_bytes=MAX_BYTES):
    """Read a state_dict written by :func:`save_weights` (``.npz`` or ``.safetensors``), without pickle.

    Untrusted files are checked before anything is allocated: array headers
    against the file's real size and ``max_bytes`` (see :func:`convlayers.data.load_npz`);
    safetensors validates its own header and offsets.

    Raises
    ------
    ValueError
        For another extension, or a file that is missing, unreadable,
        truncated, corrupt, over-claiming or holds non-numeric arrays, naming
        the file.
    ImportError
        For ``.safetensors`` without the ``safetensors`` package.
    """
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        try:
            from safetensors import SafetensorError
            from safetensors.numpy import load_file
        except ImportError:
            raise ImportError("reading .safetensors needs the 'safetensors' package "
                              "(pip install 'convlayers[train]')") from None
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise ValueError(f"cannot read {path!r}: {exc.strerror or exc}") from None
        if size > max_bytes:
            raise ValueError(f"{path!r}: {size:,} bytes, over the {max_bytes:,}-byte bound "
                             "(pass max_bytes= to raise it deliberately)")
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{path!r} is not a valid .safetensors file: {' '.join(str(exc).split())}") from None
    if path.endswith(".npz"):
        return read_npz(path, max_bytes=max_bytes)
    raise ValueError(f"path must end in .npz or .safetensors, got {path!r}")
