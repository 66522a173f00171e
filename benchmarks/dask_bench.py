"""convlayers.dask against dask-image and against itself in one process.

Rows (issue #15):
  1. 16384^2 float32 Sobel (3x3), 2048^2 chunks, on a LocalCluster of 2 single-threaded worker processes with the
     image already on the workers: convlayers.dask.convolve2d vs dask_image.ndfilters.convolve (same chunks);
  2. batch inference (mobilenet_v2-style digits CNN stand-in: convlayers.models.mobilenet_v2 at 96x96, 64 images in
     chunks of 8) on the cluster vs one process, per image;
  3. row 1's image on the threaded scheduler (2 threads), stored into one preallocated array with
     convlayers.dask.store (each block filtered in place), vs single-process convlayers.filters.convolve2d on the
     same in-memory array (the dask side reads it through da.from_array);
  4. the same through dask.array.store (dask makes each block, then copies it into the array);
  5. the same, but ``.compute()``: dask concatenates the blocks into a new array itself.

Ours and the peer run alternately, one untimed call each first; medians.

Usage: python benchmarks/dask_bench.py [--size 16384] [--chunks 2048] [--repeats 3]
Prints the machine and each row's median with the ratio; the machine is shared, read ratios as bands.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np


def _alternating(ours, peer, repeats):
    """Medians of ``ours`` and ``peer`` timed in turn (the machine is shared: load hits both alike)."""
    times = ([], [])
    ours(), peer()
    for _ in range(repeats):
        for fn, ts in zip((ours, peer), times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--chunks", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--json", default=None, help="write the rows to this file")
    args = ap.parse_args(argv)

    import dask
    import dask.array as da
    from dask_image import ndfilters

    import convlayers.dask as cd
    from convlayers import filters, models

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, dask {dask.__version__}")
    n, c = args.size, args.chunks
    rng = np.random.default_rng(0)
    img = rng.standard_normal((n, n), dtype=np.float32)
    k = filters.get_kernel("sobel_x").astype(np.float32)
    rows = []

    def row(name, ours, peer, peer_name):
        ratio = ours / peer
        rows.append({"case": name, "convlayers_s": ours, "peer": peer_name, "peer_s": peer, "ratio": ratio})
        print(f"{name:<48} convlayers {ours:8.3f} s   {peer_name} {peer:8.3f} s   ratio {ratio:5.2f}")

    # The threaded rows run first: after the cluster's workers exit, this VM hands freed memory back to its
    # host, and the in-memory peer's fresh 1 GiB result then took 1.25 s instead of 0.16 s to fault in.
    lazy = da.from_array(img, chunks=c)
    out = np.empty_like(img)
    in_memory = lambda: filters.convolve2d(img, k, "same", "symm")  # noqa: E731
    # stored into one preallocated array, as a pipeline writing to zarr or .npy would; .compute() adds dask's
    # own single-threaded concatenation of the blocks into a new array (0.31 s of 0.65 here), row 5
    out[...] = 0  # touched once: a VM backs fresh pages slowly the first time (1.5 s for 1 GiB here)
    ours, single = _alternating(lambda: cd.store(cd.convolve2d(lazy, k), out, scheduler="threads"),
                                in_memory, args.repeats)
    row(f"sobel {n}^2 f32, {c}^2 chunks, threaded scheduler, cd.store", ours, single, "1 process in memory")
    ours, single = _alternating(lambda: da.store(cd.convolve2d(lazy, k), out, lock=False, scheduler="threads"),
                                in_memory, args.repeats)
    row(f"sobel {n}^2 f32, {c}^2 chunks, threaded scheduler, da.store", ours, single, "1 process in memory")
    ours, single = _alternating(lambda: cd.convolve2d(lazy, k).compute(scheduler="threads"), in_memory,
                                args.repeats)
    row(f"sobel {n}^2 f32, {c}^2 chunks, threaded scheduler, .compute()", ours, single, "1 process in memory")
    with cd.cluster(n_workers=2) as client:
        # made on the workers, not sent through the graph
        on_workers = client.persist(da.random.default_rng(0).standard_normal((n, n), chunks=c, dtype=np.float32))
        from distributed import wait
        wait(on_workers)
        def on_cluster(lazy_result):  # computed and kept on the workers, as a pipeline's next step would use it
            kept = client.persist(lazy_result)
            wait(kept)
            del kept

        # scipy's convolve2d flips the kernel; ndimage's convolve does too: the same sum, mirrored boundary
        ours, peer = _alternating(lambda: on_cluster(cd.convolve2d(on_workers, k)),
                                  lambda: on_cluster(ndfilters.convolve(on_workers, k, mode="reflect")), args.repeats)
        row(f"sobel {n}^2 f32, {c}^2 chunks, LocalCluster(2)", ours, peer, "dask-image")

        model = models.mobilenet_v2(num_classes=10).eval()
        x = rng.standard_normal((args.images, 3, 96, 96), dtype=np.float32)
        xs = client.persist(da.from_array(x, chunks=(8, 3, 96, 96)))
        wait(xs)
        lazy_pred = cd.predict(model, xs)  # the model scattered once, as for a long run over many images
        ours, single = _alternating(lambda: lazy_pred.compute(),
                                    lambda: [model(x[i:i + 8]) for i in range(0, len(x), 8)], args.repeats)
    row(f"mobilenet_v2 96^2 x{args.images} in batches of 8, per image", ours / len(x), single / len(x), "1 process")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
