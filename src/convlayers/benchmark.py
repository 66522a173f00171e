"""The benchmark harness: convlayers and PyTorch (or scipy/OpenCV for filters) side by side.

Both sides run in one process, on the same float32 NCHW arrays, limited to
the same number of threads (numba, BLAS/OpenMP through threadpoolctl, and
torch), alternating the two sides so that drifts in machine load hit both (each
timed call follows 30 ms of untimed calls of the same side, see :func:`time_pair`).
Each figure is the median of ``repeats`` runs after a warm-up.  Ratios are
convlayers time / peer time: below 1 convlayers is faster.  Every run starts
with the machine's record (:mod:`._machine`: CPU, ISA, cores, caches, numba's
threads, the BLAS kernel) and stores it in the results as ``"machine"``.

Run ``python benchmarks/bench.py`` (full) or ``convlayers bench`` (quick).
Needs the ``bench`` extra: torch==2.13.0, scipy, threadpoolctl.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

# The speed issue's targets (#14), per group of op rows against PyTorch: (text, geometric mean, worst case).
TARGETS = {
    "forward": ("geometric mean <= 0.8, no case above 1.2", 0.8, 1.2),
    "backward": ("geometric mean <= 1.0, no case above 1.3", 1.0, 1.3),
    "model": ("every model <= 1.0x PyTorch's best CPU path (torch.jit.freeze + optimize_for_inference)", 1.0, 1.0),
}


@dataclass
class Result:
    name: str
    group: str
    peer: str
    ours_ms: float
    peer_ms: float
    ratio: float = field(init=False)

    def __post_init__(self):
        self.ratio = self.ours_ms / self.peer_ms


def limit_threads(threads: int):
    """Give numba, BLAS/OpenMP and torch the same thread budget; return the threadpoolctl limiter."""
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    from . import _kernels  # noqa: F401  (picks numba's threading layer before set_num_threads starts one)

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    return threadpool_limits(threads)


# Untimed calls of a side before each timed call add up to at least this long: past the other side's
# idle spinning.  OpenBLAS's workers spin for 2^28 cycles (~0.1 s) after a threaded product (convlayers'
# batch-1 convolutions leave the product's threading to BLAS): onnxruntime's mobilenet_v2 batch 1 took
# 7.7 ms timed 30 ms after convlayers' last call, 3.3 ms on its own (2-core Intel Xeon VM).
_WARM_SECONDS = 0.15


def time_pair(ours, peer, repeats, warm=_WARM_SECONDS):
    """Median seconds of each callable, alternating the two sides.

    Each timed call follows untimed calls of the same side lasting at least
    ``warm`` seconds (one call at least).  Both runtimes' thread pools behave
    differently warm and cold: PyTorch's OpenMP workers keep spinning for about
    15 ms after a call (libgomp's default spin), stealing a core from whatever
    runs next, and idle workers take long to wake on this kind of VM.
    Measured on the 8×64×56×56 pointwise conv, convlayers' calls took 0.63 ms
    in the first 10 ms after PyTorch's last call, 0.52 ms at 10–15 ms, and
    0.38 ms from 15 ms on (0.38 ms back to back); OpenBLAS's workers, which
    convlayers' batch-1 products use, spin for ~0.1 s.  With ``warm`` past that,
    each side is timed in the steady state of a loop of its own calls, as in
    real use.
    """
    a, b = [], []
    for _ in range(repeats):
        for fn, times in ((ours, a), (peer, b)):
            t0 = time.perf_counter()
            fn()
            while time.perf_counter() - t0 < warm:
                fn()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


# --------------------------------------------------------------------------- cases


def _conv_case(rng, x_shape, w_shape, op="conv2d", **kw):
    import torch
    import torch.nn.functional as TF

    import convlayers.functional as F
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
    ours, peer = getattr(F, op), getattr(TF, op)
    return (lambda: ours(x, w, **kw),
            lambda: peer(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy())


def _pool_case(rng, op, shape, *args):
    import torch
    import torch.nn.functional as TF

    import convlayers.functional as F
    x = rng.standard_normal(shape, dtype=np.float32)
    return (lambda: getattr(F, op)(x, *args), lambda: getattr(TF, op)(torch.from_numpy(x), *args).numpy())


def _op_case(rng, op, shape, *args, **kw):
    import torch
    import torch.nn.functional as TF

    import convlayers.functional as F
    x = rng.standard_normal(shape, dtype=np.float32)
    return (lambda: getattr(F, op)(x, *args, **kw), lambda: getattr(TF, op)(torch.from_numpy(x), *args, **kw).numpy())


def _module_case(rng, module, shape, frozen=False):
    """Eager: ``module(x)`` against the torch twin called under no_grad.  Frozen: each side's best inference
    path -- :func:`convlayers.onnx.freeze` against ``torch.jit.freeze(torch.jit.trace(twin))`` with
    ``torch.jit.optimize_for_inference`` (oneDNN convolutions with fused epilogues)."""
    import torch

    from .interop import to_torch
    module = module.eval()
    twin = to_torch(module).eval()
    x = rng.standard_normal(shape, dtype=np.float32)
    xt = torch.from_numpy(x)
    if frozen:
        import warnings

        from .onnx import freeze
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            twin = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(twin, xt)))
        module = freeze(module)

    def peer():
        with torch.no_grad():
            return twin(xt).numpy()
    return (lambda: module(x)), peer


def _backward_case(rng, x_shape, w_shape, **kw):
    import torch
    import torch.nn.functional as TF

    import convlayers.functional as F
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
    go = F.conv2d(x, w, **kw)
    go = rng.standard_normal(go.shape, dtype=np.float32)
    xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    out = TF.conv2d(xt, wt, **kw)
    got = torch.from_numpy(go)

    def peer():
        gi, gw = torch.autograd.grad(out, (xt, wt), got, retain_graph=True)
        return gi.numpy(), gw.numpy()
    return (lambda: F.conv2d_backward(go, x, w, output_mask=(True, True, False), **kw)), peer


def _train_case(rng):
    import torch

    import convlayers
    from . import functional as F
    from .interop import to_torch
    from .models import digits_cnn
    from .optim import Adam
    model = digits_cnn("standard").train()
    twin = to_torch(model).train()
    x = rng.random((64, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    opt = Adam(model.parameters(), lr=1e-3)
    topt = torch.optim.Adam(twin.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ours():
        opt.zero_grad()
        loss = F.cross_entropy(model(convlayers.tensor(x)), y)
        loss.backward()
        opt.step()

    def peer():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(twin(xt), yt)
        loss.backward()
        topt.step()
    return ours, peer


def cases(quick: bool):
    """(name, group, peer, factory) for every case; quick keeps the forward ops and one model."""
    from . import models, nn
    out = [
        ("conv 3->64 3x3 @224", "forward", lambda r: _conv_case(r, (8, 3, 224, 224), (64, 3, 3, 3), padding=1)),
        ("conv 64->64 3x3 @56", "forward", lambda r: _conv_case(r, (8, 64, 56, 56), (64, 64, 3, 3), padding=1)),
        ("conv 64->128 3x3 s2 @56", "forward",
         lambda r: _conv_case(r, (8, 64, 56, 56), (128, 64, 3, 3), stride=2, padding=1)),
        ("pointwise 64->32 @56", "forward", lambda r: _conv_case(r, (8, 64, 56, 56), (32, 64, 1, 1))),
        ("depthwise 3x3 64ch @56", "forward",
         lambda r: _conv_case(r, (8, 64, 56, 56), (64, 1, 3, 3), padding=1, groups=64)),
        ("depthwise 3x3 384ch @28", "forward",
         lambda r: _conv_case(r, (8, 384, 28, 28), (384, 1, 3, 3), padding=1, groups=384)),
        ("grouped 64->128 g4 @56", "forward",
         lambda r: _conv_case(r, (8, 64, 56, 56), (128, 16, 3, 3), padding=1, groups=4)),
        ("conv 256->256 3x3 @14 b16", "forward",
         lambda r: _conv_case(r, (16, 256, 14, 14), (256, 256, 3, 3), padding=1)),
        ("max_pool2d 2x2/2 64x112", "forward", lambda r: _pool_case(r, "max_pool2d", (8, 64, 112, 112), 2, 2)),
        ("avg_pool2d 3x3/2 p1 64x112", "forward",
         lambda r: _pool_case(r, "avg_pool2d", (8, 64, 112, 112), 3, 2, 1)),
        ("DepthwiseSeparable 64->128 @56", "forward",
         lambda r: _module_case(r, nn.DepthwiseSeparable(64, 128), (8, 64, 56, 56))),
        ("InvertedResidual 24->24 t6 @56", "forward",
         lambda r: _module_case(r, nn.InvertedResidual(24, 24, 1, 6), (8, 24, 56, 56))),
        ("mobilenet_v2 @224 b1 (frozen)", "model",
         lambda r: _module_case(r, models.mobilenet_v2(), (1, 3, 224, 224), frozen=True)),
    ]
    out += [
        ("interpolate bilinear x2 64x56", "forward",
         lambda r: _op_case(r, "interpolate", (8, 64, 56, 56), scale_factor=2, mode="bilinear")),
        ("group_norm 32 groups 64x56", "forward", lambda r: _op_case(r, "group_norm", (8, 64, 56, 56), 32)),
    ]
    if quick:
        return out
    out += [
        ("conv1d 64->64 k9 @16000", "forward",
         lambda r: _conv_case(r, (8, 64, 16000), (64, 64, 9), op="conv1d", padding=4)),
        ("conv3d 64->64 3x3x3 @16x28x28", "forward",
         lambda r: _conv_case(r, (8, 64, 16, 28, 28), (64, 64, 3, 3, 3), op="conv3d", padding=1)),
        ("mobilenet_v2 @224 b8 (frozen)", "model",
         lambda r: _module_case(r, models.mobilenet_v2(), (8, 3, 224, 224), frozen=True)),
        ("resnet18 @224 b1 (frozen)", "model",
         lambda r: _module_case(r, models.resnet18(), (1, 3, 224, 224), frozen=True)),
        ("resnet18 @224 b8 (frozen)", "model",
         lambda r: _module_case(r, models.resnet18(), (8, 3, 224, 224), frozen=True)),
        # module(x) as called, against the torch twin as called (no target: a user after speed freezes)
        ("mobilenet_v2 @224 b1", "eager", lambda r: _module_case(r, models.mobilenet_v2(), (1, 3, 224, 224))),
        ("mobilenet_v2 @224 b8", "eager", lambda r: _module_case(r, models.mobilenet_v2(), (8, 3, 224, 224))),
        ("resnet18 @224 b1", "eager", lambda r: _module_case(r, models.resnet18(), (1, 3, 224, 224))),
        ("resnet18 @224 b8", "eager", lambda r: _module_case(r, models.resnet18(), (8, 3, 224, 224))),
        ("backward conv 64->64 3x3 @56", "backward",
         lambda r: _backward_case(r, (8, 64, 56, 56), (64, 64, 3, 3), padding=1)),
        ("backward depthwise 64ch @56", "backward",
         lambda r: _backward_case(r, (8, 64, 56, 56), (64, 1, 3, 3), padding=1, groups=64)),
        ("train step digits b64", "backward", _train_case),
    ]
    return out


@contextlib.contextmanager
def _opencv_threads(threads):
    """OpenCV's own thread pool, which threadpoolctl does not reach, limited like the others meanwhile."""
    try:
        import cv2
    except ImportError:
        yield
        return
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def filter_cases():
    """Each seed filter on a 2048² float32 image against scipy.signal, scipy.ndimage and OpenCV (if installed)."""
    from scipy import ndimage, signal

    from . import filters
    rng = np.random.default_rng(0)
    image = rng.random((2048, 2048), dtype=np.float32)
    try:
        import cv2
    except ImportError:
        cv2 = None
    out = []
    for name in ("vertical", "horizontal", "sobel_x", "sobel_y", "blur", "laplacian"):
        k = np.asarray(filters.FILTERS[name], dtype=np.float32)

        def ours(k=k):
            return filters.apply(image, k, mode="same", boundary="symm")
        peers = [("scipy.signal", lambda k=k: signal.convolve2d(image, k, mode="same", boundary="symm")),
                 ("scipy.ndimage", lambda k=k: ndimage.convolve(image, k, mode="reflect"))]
        if cv2 is not None:
            # filter2D correlates: flip the kernel to convolve; BORDER_REFLECT repeats the edge like 'symm'
            peers.append(("opencv", lambda k=k: cv2.filter2D(image, -1, k[::-1, ::-1].copy(),
                                                             borderType=cv2.BORDER_REFLECT)))
        out.append((name, ours, peers))
    return out


# --------------------------------------------------------------------------- memory and start-up

_MEM_SCRIPT = r"""
import os, sys, threading, time, numpy as np
side, n, c, h, co = sys.argv[1], *map(int, sys.argv[2:6])
x = np.random.default_rng(0).standard_normal((n, c, h, h), dtype=np.float32)
w = np.random.default_rng(1).standard_normal((co, c, 3, 3), dtype=np.float32)
if side == "torch":
    import torch, torch.nn.functional as TF
    torch.set_num_threads(2)
    run = lambda a: TF.conv2d(torch.from_numpy(a), torch.from_numpy(w), padding=1).numpy()
else:
    import convlayers.functional as F
    run = lambda a: F.conv2d(a, w, padding=1)
run(x[:1, :, :9, :9])  # load libraries and compile before the baseline
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page
peak, done = [rss()], [False]
def sample():  # RSS high-water mark while the call runs
    while not done[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.0002)
base = rss()
t = threading.Thread(target=sample)
t.start()
out = run(x)
done[0] = True
t.join()
print((max(peak[0], rss()) - base - out.nbytes) / 2**20)
"""


def peak_extra_memory(n=8, c=64, h=56, co=64):
    """Peak memory (MiB) a conv2d call needs beyond its output, each side in a fresh process.

    A thread samples the resident set size while the call runs; the figure is
    the high-water mark above the pre-call baseline, minus the output itself.
    """
    res = {}
    for side in ("convlayers", "torch"):
        p = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, side, str(n), str(c), str(h), str(co)],
                           capture_output=True, text=True, check=True)
        res[side] = max(float(p.stdout.strip()), 0.0)
    return res


def startup_times():
    """Seconds for ``import convlayers`` and the first conv2d call with a cold and a warm numba cache."""
    import tempfile
    code_import = "import time; t=time.perf_counter(); import convlayers; print(time.perf_counter()-t)"
    code_first = ("import numpy as np, convlayers.functional as F, time; x=np.ones((1,3,8,8),np.float32); "
                  "w=np.ones((4,3,3,3),np.float32); t=time.perf_counter(); F.conv2d(x,w,padding=1); "
                  "print(time.perf_counter()-t)")
    out = {}
    p = subprocess.run([sys.executable, "-c", code_import], capture_output=True, text=True, check=True)
    out["import_s"] = float(p.stdout)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("first_conv_cold_s", "first_conv_warm_s"):
            p = subprocess.run([sys.executable, "-c", code_first], capture_output=True, text=True, check=True,
                               env=env)
            out[label] = float(p.stdout)
    return out


# --------------------------------------------------------------------------- driver


def geomean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def blas_info():
    from threadpoolctl import threadpool_info
    return [{k: i.get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
            for i in threadpool_info()]


def onnx_rows(threads, repeats, echo=print):
    """The model rows as ONNX files: convlayers.onnx vs onnxruntime and OpenCV dnn (see convlayers.onnx.bench)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        echo("\nONNX rows skipped: needs onnx and onnxruntime")
        return []
    from .onnx.bench import onnx_model_cases

    results = []
    echo(f"\n{'model (same ONNX file)':30s} {'convlayers':>11s} {'peer':12s} {'peer time':>10s} {'ratio':>7s}")
    with _opencv_threads(threads):
        for name, ours, peers, check in onnx_model_cases(threads):
            for peer_name, peer in peers:
                a, b = time_pair(ours, peer, repeats)
                r = Result(name, "onnx", peer_name, a * 1e3, b * 1e3)
                results.append(r)
                echo(f"{name:30s} {r.ours_ms:9.2f}ms {peer_name:12s} {r.peer_ms:8.2f}ms {r.ratio:7.2f}")
    return results


def run(threads=2, repeats=7, quick=False, with_filters=True, with_system=True, out_path=None, echo=print,
        with_onnx=True):
    """Run the benchmark; print a table and return (and optionally write) the results as a dict."""
    import torch
    limiter = limit_threads(threads)
    echo(f"convlayers vs PyTorch {torch.__version__}, float32 NCHW, {threads} threads, median of {repeats} "
         f"(ratio = convlayers / peer; below 1 is faster)")
    from . import _machine
    machine = _machine.record()   # after limit_threads: the threads both sides get
    from .functional import conv as _conv
    serial, worker = _conv._machine_budgets()
    machine["conv_tile_bytes"] = {"calling_thread": serial, "worker": worker}
    echo(f"  machine: {_machine.summary(machine)}")
    echo(f"  chosen from it: im2col tiles of {serial / 2**20:g} MiB (calling thread), {worker / 2**20:g} MiB "
         f"(per worker thread)")
    for info in blas_info():
        echo(f"  thread pool: {info}")
    import numba
    echo(f"  numba threading layer: {numba.threading_layer()}")
    if os.environ.get("OPENBLAS_CORETYPE"):
        echo(f"  note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} forces NumPy's BLAS kernel; unset it "
             f"(and OPENBLAS_L2_SIZE) to let OpenBLAS pick the best one for this CPU")
    rng = np.random.default_rng(0)
    results = []
    echo(f"\n{'case':34s} {'group':9s} {'convlayers':>11s} {'peer':>11s} {'ratio':>7s}")
    for name, group, make in cases(quick):
        ours, peer = make(rng)
        a, b = time_pair(ours, peer, repeats)
        r = Result(name, group, "torch", a * 1e3, b * 1e3)
        results.append(r)
        echo(f"{name:34s} {group:9s} {r.ours_ms:9.2f}ms {r.peer_ms:9.2f}ms {r.ratio:7.2f}")
    summary = {}
    for group, (text, gm_target, max_target) in TARGETS.items():
        ratios = [r.ratio for r in results if r.group == group]
        if not ratios:
            continue
        gm = geomean(ratios)
        ok = gm <= gm_target and (max_target is None or max(ratios) <= max_target)
        summary[group] = {"geomean": gm, "max": max(ratios), "target": text, "met": ok}
        echo(f"{group:9s} geometric mean {gm:5.2f}, worst {max(ratios):5.2f}  target: {text}  "
             f"{'MET' if ok else 'NOT MET'}")
    filter_results = []
    if with_filters and not quick:
        echo(f"\n{'filter 2048x2048 float32':26s} {'convlayers':>11s} {'peer':14s} {'peer time':>10s} {'ratio':>7s}")
        with _opencv_threads(threads):
            for name, ours, peers in filter_cases():
                for peer_name, peer in peers:
                    a, b = time_pair(ours, peer, repeats)
                    r = Result(name, "filter", peer_name, a * 1e3, b * 1e3)
                    filter_results.append(r)
                    echo(f"{name:26s} {r.ours_ms:9.2f}ms {peer_name:14s} {r.peer_ms:8.2f}ms {r.ratio:7.3f}")
        vs_scipy = [r.ratio for r in filter_results if r.peer == "scipy.signal"]
        vs_cv = [r.ratio for r in filter_results if r.peer == "opencv"]
        ok = max(vs_scipy) <= 0.1 and (not vs_cv or max(vs_cv) <= 1.2)
        summary["filter"] = {"worst_vs_scipy_signal": max(vs_scipy), "worst_vs_opencv": max(vs_cv) if vs_cv else None,
                             "target": ">= 10x faster than scipy.signal.convolve2d, <= 1.2x OpenCV", "met": ok}
        echo(f"filters: worst ratio vs scipy.signal {max(vs_scipy):.3f}"
             + (f", vs OpenCV {max(vs_cv):.2f}" if vs_cv else ", OpenCV not installed")
             + f"  {'MET' if ok else 'NOT MET'}")
    onnx_results = []
    if with_onnx and not quick:
        onnx_results = onnx_rows(threads, repeats, echo)
        if onnx_results:
            ratios = [r.ratio for r in onnx_results if r.peer == "onnxruntime"]
            summary["onnx"] = {"worst_vs_onnxruntime": max(ratios), "geomean_vs_onnxruntime": geomean(ratios),
                               "target": "<= 1.2x onnxruntime on every row (1.5x: the ONNX issue's first step)",
                               "met": max(ratios) <= 1.2}
    system = {}
    if with_system and not quick:
        mem = peak_extra_memory()
        system["peak_extra_memory_mib"] = mem
        ok = mem["convlayers"] <= 1.5 * mem["torch"]
        summary["memory"] = {"ratio": mem["convlayers"] / mem["torch"], "target": "<= 1.5x PyTorch's", "met": ok}
        echo(f"\npeak extra memory of conv2d 8x64x56x56 3x3: convlayers {mem['convlayers']:.1f} MiB, "
             f"torch {mem['torch']:.1f} MiB  target: <= 1.5x PyTorch's  {'MET' if ok else 'NOT MET'}")
        st = startup_times()
        system["startup"] = st
        ok = st["import_s"] < 0.5 and st["first_conv_cold_s"] < 3 and st["first_conv_warm_s"] < 0.3
        summary["startup"] = {"target": "import < 0.5 s, first conv2d < 3 s cold, < 0.3 s warm", "met": ok}
        echo(f"import convlayers {st['import_s']:.2f}s; first conv2d cold cache {st['first_conv_cold_s']:.2f}s, "
             f"warm {st['first_conv_warm_s']:.2f}s  target: import < 0.5 s, first conv2d < 3 s cold, < 0.3 s "
             f"warm  {'MET' if ok else 'NOT MET'}")
    limiter.restore_original_limits()
    payload = {"threads": threads, "repeats": repeats, "torch": torch.__version__, "machine": machine,
               "processor": platform.processor(), "blas": blas_info(), "cases": [asdict(r) for r in results],
               "filters": [asdict(r) for r in filter_results], "onnx": [asdict(r) for r in onnx_results],
               "summary": summary, "system": system}
    if out_path:
        from .io import atomic_write   # temp file beside out_path, renamed when complete, removed on failure

        with atomic_write(out_path) as fh:
            fh.write(json.dumps(payload, indent=1).encode())
        echo(f"\nwrote {out_path}")
    return payload
