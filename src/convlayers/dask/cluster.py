"""A ``distributed`` client: an existing scheduler's address, or a LocalCluster sized to the machine."""

from __future__ import annotations

import os

__all__ = ["cluster"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cluster(address=None, *, n_workers=None, threads_per_worker=1, memory_limit="auto", **kwargs):
    """A ``distributed.Client``: connected to ``address``, or to a new LocalCluster.

    The LocalCluster has one single-threaded worker process per core (convlayers'
    kernels use the cores of their own process; several threads per worker only
    contend).  Its nanny would set ``MALLOC_TRIM_THRESHOLD_=65536`` in each worker,
    which made a model forward 2.2x slower here (every large temporary is returned
    to the OS and faulted back in); this client leaves glibc's default instead
    (``distributed.nanny.pre-spawn-environ``), and gives numba as many threads as
    the worker has (dask already limits BLAS and OpenMP to one).  Close it with ``client.close()``
    (its cluster closes with it) or use it as a context manager.

    Examples
    --------
    >>> from convlayers.dask import cluster
    >>> with cluster(n_workers=1) as client:          # doctest: +SKIP
    ...     print(len(client.scheduler_info()["workers"]))
    1
    """
    import dask
    from distributed import Client, LocalCluster

    if address is not None:
        if not isinstance(address, str) or not address:
            raise TypeError(f"cluster: address must be a scheduler address string such as "
                            f"'tcp://127.0.0.1:8786', got {address!r}")
        return Client(address, **kwargs)
    n = _cores() if n_workers is None else n_workers
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"cluster: n_workers must be a positive int, got {n_workers!r}")
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    # numba would start one thread per core in every worker: 2 workers x 2 threads fought for 2 cores.
    # It goes in the nanny's ``env`` (set inside the worker process), not in pre-spawn-environ: the
    # nanny writes pre-spawn-environ into *this* process's os.environ before it spawns, and numba
    # here then refuses every later compile ("Cannot set NUMBA_NUM_THREADS to a different value
    # once the threads have been launched") -- the CI failure of 2026-12-02.  numba reads the
    # variable when it first launches its threads, which a worker does long after ``env`` is set.
    worker_env = dict(kwargs.pop("env", None) or {})
    worker_env.setdefault("NUMBA_NUM_THREADS", str(threads_per_worker))
    saved = {key: os.environ.get(key) for key in environ}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            local = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                 memory_limit=memory_limit, dashboard_address=None, host="127.0.0.1",
                                 env=worker_env, **kwargs)
    finally:
        # the caller's environment is not ours to change (OMP/MKL/OPENBLAS_NUM_THREADS=1 would
        # otherwise reach every subprocess this process starts later)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    client = Client(local)
    client._convlayers_owns_cluster = local
    # closing the client closes the cluster it started
    original_close = client.close

    def close(*args, **kw):
        try:
            return original_close(*args, **kw)
        finally:
            local.close()

    client.close = close
    return client
