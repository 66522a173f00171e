"""Batch inference of a model over a dask array of images, or a list of image files.

One batch per chunk along the first axis.  With a ``distributed`` client the
model (its weights) is scattered to every worker once and each task refers to
it, rather than pickling it into every task; without one the model is one node
of the graph that every task depends on.  The model runs in evaluation mode:
the tasks call a copy put in ``eval()``, the caller's model is not changed.
"""

from __future__ import annotations

import copy
import numbers

import dask
import dask.array as da
import numpy as np

__all__ = ["predict"]


def _client():
    try:
        from distributed import get_client
        return get_client()
    except (ImportError, ValueError):
        return None


def _run(batch, model, preprocess):
    x = batch if preprocess is None else preprocess(batch)
    y = model(x)
    return np.asarray(y)


def _run_paths(paths, model, preprocess):
    return _run(np.stack([np.asarray(preprocess(p)) for p in paths]), model, None)


def _eval_copy(model):
    if not callable(model):
        raise TypeError(f"predict: model must be callable on a batch of arrays, got {type(model).__name__}")
    m = copy.deepcopy(model)
    if hasattr(m, "eval"):
        m.eval()
    return m


def _ship(model):
    """The model as a graph argument: a scattered future with a client, else a delayed value."""
    client = _client()
    if client is not None:
        return client.scatter(model, broadcast=True, hash=False)
    return dask.delayed(model, pure=False, traverse=False)


def _check_batch(batch_size):
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"predict: batch_size must be a positive int or None, got {batch_size!r}")
    return int(batch_size)


def predict(model, images, batch_size=None, preprocess=None):
    """Run ``model`` over ``images`` lazily, one batch per chunk; returns a dask array.

    Parameters
    ----------
    model : callable
        A :class:`convlayers.nn.Module` (or a ``convlayers.onnx`` model, or any picklable
        callable) mapping a batch ndarray (B, ...) to an output (B, ...).
    images : dask.array.Array or sequence of str / dask.bag.Bag
        A dask array (N, C, H, W) (any number of trailing axes), batched along its first
        axis; or image file paths, which need ``preprocess``.
    batch_size : int, optional
        Images per task (rechunks the first axis); default: the array's own chunks, or
        32 paths per task.
    preprocess : callable, optional
        For an array: applied to each batch before the model.  For paths: maps one
        path to one (C, H, W) sample (required).

    Returns
    -------
    dask.array.Array
        (N, *out_shape), one chunk per batch, dtype as the model gives.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from convlayers import nn
    >>> from convlayers.dask import predict
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten())
    >>> x = da.zeros((10, 1, 4, 4), chunks=(4, 1, 4, 4), dtype=np.float32)
    >>> predict(model, x).shape
    (10, 32)
    """
    batch_size = _check_batch(batch_size)
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"predict: preprocess must be callable or None, got {type(preprocess).__name__}")
    if isinstance(images, da.Array):
        return _predict_array(model, images, batch_size, preprocess)
    try:
        import dask.bag as db
        if isinstance(images, db.Bag):
            images = images.compute()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(images, (str, bytes)) or not hasattr(images, "__iter__"):
        raise TypeError(f"predict: images must be a dask array or a sequence of paths, got {type(images).__name__}")
    paths = [str(p) for p in images]
    if not paths:
        raise ValueError("predict: images is empty")
    if preprocess is None:
        raise ValueError("predict: image paths need preprocess, a function from one path to a (C, H, W) array")
    return _predict_paths(model, paths, batch_size or 32, preprocess)


def _predict_array(model, images, batch_size, preprocess):
    if images.ndim < 2:
        raise ValueError(f"predict: images must be (N, ...) with at least 2 axes, got shape {images.shape}")
    if any(np.isnan(s) for s in images.shape):
        raise ValueError("predict: images has unknown chunk sizes; call images.compute_chunk_sizes() first")
    rows = images.chunks[0] if batch_size is None else batch_size
    images = images.rechunk((rows,) + tuple(-1 for _ in images.shape[1:]))
    m = _eval_copy(model)
    probe = _run(np.zeros((1,) + images.shape[1:], dtype=images.dtype), m, preprocess)
    out_shape = probe.shape[1:]
    shipped = _ship(m)
    in_nd, out_nd = images.ndim, 1 + len(out_shape)
    extra = {}
    if out_nd < in_nd:
        extra["drop_axis"] = list(range(out_nd, in_nd))
    elif out_nd > in_nd:
        extra["new_axis"] = list(range(in_nd, out_nd))
    return da.map_blocks(_run, images, shipped, preprocess, dtype=probe.dtype,
                         chunks=(images.chunks[0],) + tuple((s,) for s in out_shape),
                         meta=np.empty((0,) * out_nd, probe.dtype), **extra)


def _predict_paths(model, paths, batch_size, preprocess):
    m = _eval_copy(model)
    probe = _run_paths(paths[:1], m, preprocess)
    shipped = _ship(m)
    parts = []
    for i in range(0, len(paths), batch_size):
        chunk = paths[i:i + batch_size]
        value = dask.delayed(_run_paths, pure=True)(chunk, shipped, preprocess)
        parts.append(da.from_delayed(value, (len(chunk),) + probe.shape[1:], dtype=probe.dtype))
    return da.concatenate(parts, axis=0)
