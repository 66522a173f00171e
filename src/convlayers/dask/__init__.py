"""convlayers on Dask: filters on images larger than memory, inference over many images.

Install the extra: ``pip install convlayers[dask]`` (dask.array, distributed,
zarr, tifffile).  Everything here is lazy: each function returns a dask array,
and ``.compute()`` (or writing it with :func:`save`) runs it on whatever
scheduler is active — the threaded one by default, or a ``distributed.Client``.

* :mod:`convlayers.dask.filters` — :func:`convolve2d`, :func:`correlate2d`,
  :func:`apply`, :func:`filter_bank`, :func:`gradient_magnitude`: the in-memory
  :mod:`convlayers.filters` ops chunk by chunk, with each chunk's halo read from
  its neighbours and scipy's boundary rule applied at the array's outer edge, so
  the result equals the in-memory one bit for bit on every chunking.
* :mod:`convlayers.dask.inference` — :func:`predict`: a model over a dask array
  of images (or a list of files), one batch per chunk, the weights shipped to
  each worker once.
* :mod:`convlayers.dask.storage` — :func:`open_array` (``.npy`` memory maps,
  zarr stores, tiled TIFF), :func:`save` (zarr or ``.npy``) and :func:`store`
  (into an array, a filter's blocks written in place), chunk-sized
  memory per worker.
* :func:`cluster` — a ``distributed`` client for an address, or a LocalCluster
  sized to the machine.
"""

from __future__ import annotations

try:
    import dask.array  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("convlayers.dask needs the 'dask' extra: pip install 'convlayers[dask]' "
                      f"({exc})") from None

from .cluster import cluster
from .filters import apply, convolve2d, correlate2d, filter_bank, gradient_magnitude
from .inference import predict
from .storage import open_array, save, store

__all__ = ["convolve2d", "correlate2d", "apply", "filter_bank", "gradient_magnitude", "predict",
           "open_array", "save", "store", "cluster"]
