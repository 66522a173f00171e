"""convlayers.dask against dask-image and against itself in one process.

Rows (issue #15):
  1. 16384^2 float32 Sobel (3x3), 2048^2 chunks, on a LocalCluster of 2 single-threaded worker processes with the
     image already on the workers: convlayers.dask.convolve2d vs dask_image.ndfilters.convolve (same chunks);
  2. the same on the threaded scheduler vs single-process convlayers.filters.convolve2d on the whole array;
  3. batch inference (mobilenet_v2-style digits CNN stand-in: convlayers.models.mobilenet_v2 at 96x96, 64 images in
     chunks of 8) on the cluster vs one process, per image.

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


def _median(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


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

    with cd.cluster(n_workers=2) as client:
        lazy = da.from_array(img, chunks=c)
        # made on the workers, not sent through the graph
        on_workers = client.persist(da.random.default_rng(0).standard_normal((n, n), chunks=c, dtype=np.float32))
        from distributed import wait
        wait(on_workers)
        def on_cluster(lazy_result):  # computed and kept on the workers, as a pipeline's next step would use it
            kept = client.persist(lazy_result)
            wait(kept)
            del kept

        ours = _median(lambda: on_cluster(cd.convolve2d(on_workers, k)), args.repeats)
        # scipy's convolve2d flips the kernel; ndimage's convolve does too: the same sum, mirrored boundary
        peer = _median(lambda: on_cluster(ndfilters.convolve(on_workers, k, mode="reflect")), args.repeats)
        row(f"sobel {n}^2 f32, {c}^2 chunks, LocalCluster(2)", ours, peer, "dask-image")

        model = models.mobilenet_v2(num_classes=10).eval()
        x = rng.standard_normal((args.images, 3, 96, 96), dtype=np.float32)
        xs = client.persist(da.from_array(x, chunks=(8, 3, 96, 96)))
        wait(xs)
        lazy_pred = cd.predict(model, xs)  # the model scattered once, as for a long run over many images
        lazy_pred.compute()
        ours = _median(lambda: lazy_pred.compute(), args.repeats)
    model(x[:8])
    single = _median(lambda: [model(x[i:i + 8]) for i in range(0, len(x), 8)], args.repeats)
    row(f"mobilenet_v2 96^2 x{args.images} in batches of 8, per image", ours / len(x), single / len(x), "1 process")

    out = np.empty_like(img)
    with dask.config.set(scheduler="threads"):
        # stored into one preallocated array: .compute() would add dask's own gather of the blocks (3.5 of
        # 4.1 s for 8192^2 here), which a pipeline writing to zarr or .npy never pays
        ours = _median(lambda: da.store(cd.convolve2d(lazy, k), out, lock=False), args.repeats)
    single = _median(lambda: filters.convolve2d(img, k, "same", "symm"), args.repeats)
    row(f"sobel {n}^2 f32, {c}^2 chunks, threaded scheduler", ours, single, "1 process in memory")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": cpu, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
