"""Thread-stress driver, run in a subprocess by tests/test_kernels_threading.py (an abort must not kill pytest).

Every parallel kernel is reached through a public op, with every size threshold
lowered so that even small inputs launch the parallel build.  ``THREADS``
threads then call the ops in shuffled order for ``SECONDS`` and compare each
result with the single-threaded one.  Prints one JSON line: calls, seconds,
threads, numba's layer and the kernels that ran.

Usage: python tests/_thread_stress.py THREADS SECONDS
"""

import importlib
import json
import pkgutil
import random
import sys
import threading
import time

import numpy as np

import convlayers.functional as F
from convlayers.functional import pooling_sized as _pooling_sized
from convlayers.functional import conv as _conv
from convlayers.functional import norm as _norm
from convlayers.functional import normalization as _normalization
from convlayers.functional import pointwise as _pointwise
from convlayers.functional import resample as _resample
from convlayers import _kernels, filters
from convlayers._kernels import KernelPair
from convlayers.functional import _threads
from convlayers.functional import _conv_channels_last as _cl
from convlayers.onnx.ops import pool as _onnx_pool

threads, seconds = int(sys.argv[1]), float(sys.argv[2])

# every size threshold off: small inputs launch the parallel builds
KernelPair.for_work = lambda self, work, minimum=0: self
_threads._SPLIT_MIN_MACS = 0
filters._BLOCK_MACS = 1
seen = set()
_call = KernelPair.__call__


def counting_call(self, *args):
    seen.add(self.parallel.py_func.__qualname__)
    return _call(self, *args)


KernelPair.__call__ = counting_call

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 8, 24, 24))
x_wide = rng.standard_normal((1, 6, 9, 81))  # one sample: one tile, so the conv runs its parallel kernels
w3 = rng.standard_normal((8, 8, 3, 3))
w_dw = rng.standard_normal((8, 1, 3, 3))
w_s = rng.standard_normal((5, 6, 3, 3))
rm, rv = rng.standard_normal(8), rng.random(8) + 0.5
gamma, beta = rng.standard_normal(8), rng.standard_normal(8)
img = rng.standard_normal((70, 90))
box = np.ones((5, 5)) / 25
rank2 = rng.standard_normal((4, 4))
idx = F.max_pool2d(x, 2, return_indices=True)[1]
pooled = F.max_pool2d(x, 2)
x5 = rng.standard_normal((2, 4, 8, 12, 12))
samples = rng.random((4, 8, 2))
x16, w16 = rng.standard_normal((3, 16, 22, 22)), rng.standard_normal((16, 16, 3, 3))  # Winograd-sized
x16_one = rng.standard_normal((1, 16, 40, 38))  # one sample: the workers split its tile rows
x16_3d = rng.standard_normal((2, 16, 5, 14, 14)).astype(np.float32)  # conv3d's Winograd over depth planes
w16_3d = rng.standard_normal((16, 16, 3, 3, 3)).astype(np.float32)
x32_12 = rng.standard_normal((8, 32, 12, 12)).astype(np.float32)  # the channels-last Winograd plan's size
w32_3 = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)


x_cl = _cl.to_channels_last(x)                      # a channels-last batch (the layout copy's kernel)
x32_cl = _cl.to_channels_last(x.astype(np.float32))
w3_32, wdw_32 = w3.astype(np.float32), w_dw.astype(np.float32)
x32_64 = rng.standard_normal((4, 8, 64, 64)).astype(np.float32)  # 4096 output pixels at stride 2
x32_small = np.ascontiguousarray(x[:, :, :12, :12], dtype=np.float32)
w_pw32 = rng.standard_normal((8, 8, 1, 1)).astype(np.float32)
ep32 = (np.ones(8, np.float32), np.zeros(8, np.float32), np.float32(0), np.float32(6))
x32_12_cl = _cl.to_channels_last(x32_12)
wino_cl = _cl.plan(x32_12.shape, np.float32, w32_3, (1, 1), (1, 1, 1, 1), (1, 1), 1, packed={})  # a kept weight
dw_pw = _cl.plan_depthwise_pointwise(x32_cl.shape, wdw_32, (1, 1), (1, 1, 1, 1), (1, 1), ep32, w_pw32, ep32, {}, {})
_strided_bytes, _cl._strided_block_bytes = _cl._strided_block_bytes, lambda: 0  # the band kernel, not the block's
ex_dw_pw = _cl.plan_expand_depthwise_pointwise(x32_cl.shape, w_pw32, ep32, wdw_32, (2, 2), (1, 1, 1, 1), (1, 1),
                                               ep32, w_pw32, ep32, {}, {}, {})
_cl._strided_block_bytes = _strided_bytes
ex_dw_pw_1 = _cl.plan_expand_depthwise_pointwise(x32_cl.shape, w_pw32, ep32, wdw_32, (1, 1), (1, 1, 1, 1), (1, 1),
                                                 ep32, w_pw32, ep32, {}, {}, {})  # the one-launch block


def _taped_model():
    """A small channels-last ONNX model: its runs past the second replay a tape (``onnx._tape``) into each
    thread's own buffers."""
    from onnx import TensorProto, helper, numpy_helper
    import convlayers.onnx as conx

    k = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])],
        "stress", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(k, "k")])
    return conx.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


taped = _taped_model()
x32_12x = np.ascontiguousarray(x[:, :, :12, :12], dtype=np.float32)


def bn_train():
    y, saved = _norm.batch_norm_forward(x, rm.copy(), rv.copy(), gamma, beta, training=True)
    return (y,) + tuple(g for g in _norm.batch_norm_train_backward(np.ones_like(y), saved) if g is not None)


def adam_step():  # a fresh optimizer each call: the result depends on the inputs only
    from convlayers import optim
    from convlayers.autograd import Tensor
    p = Tensor(x.copy(), requires_grad=True)
    p.grad = np.ones_like(x)
    opt = optim.Adam([p], lr=0.1)
    opt.step()
    opt.step()
    return p.data


def correlate_valid():  # compiled but not reached by convlayers.filters today: called directly
    out = np.empty((67, 87))
    _kernels.filters.correlate_valid(img, rank2, out)
    return out


def interpolate_backward():
    tables = _resample.interpolate_tables(x, scale_factor=2, mode="bilinear")
    return _resample.interpolate_backward(np.ones((4, 8, 48, 48)), x.shape, tables)


OPS = {
    "max_pool2d": lambda: F.max_pool2d(x, 3, 2, 1),
    "max_pool2d indices": lambda: F.max_pool2d(x, 2, return_indices=True),
    "max_pool2d backward": lambda: F.max_pool2d_backward(np.ones((4, 8, 12, 12)), idx, x.shape),
    "avg_pool2d": lambda: F.avg_pool2d(x, 3, 2, 1),
    "avg_pool2d backward": lambda: F.avg_pool2d_backward(np.ones((4, 8, 12, 12)), x.shape, 3, 2, 1),
    "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(x, 5),
    "adaptive_avg_pool2d backward": lambda: F.adaptive_avg_pool2d_backward(np.ones((4, 8, 5, 5)), x.shape),
    "adaptive_max_pool2d": lambda: F.adaptive_max_pool2d(x, 5, return_indices=True),
    "batch_norm eval": lambda: F.batch_norm(x, rm, rv, gamma, beta),
    "batch_norm train": bn_train,
    "group_norm": lambda: _normalization.group_norm(x, 4, gamma, beta),
    "layer_norm": lambda: _normalization.layer_norm(x, (24,)),
    "interpolate": lambda: _resample.interpolate(x, scale_factor=2, mode="bilinear"),
    "interpolate backward": interpolate_backward,
    "gelu": lambda: _pointwise.gelu(x),
    "gelu backward": lambda: _pointwise._d_gelu(x, x, None, {"approximate": "none"}),
    "relu backward": lambda: F.relu_backward(x, x),
    "relu6 backward": lambda: F.relu6_backward(x, x),
    "conv2d": lambda: F.conv2d(x, w3, padding=1),
    "conv2d strided": lambda: F.conv2d(x_wide, w_s, stride=(1, 2), padding=1),
    "conv2d backward": lambda: F.conv2d_backward(np.ones((4, 8, 24, 24)), x, w3, padding=1),
    "conv2d backward 1 sample": lambda: F.conv2d_backward(np.ones((1, 5, 5, 41)), x_wide, w_s, stride=2,
                                                           padding=1),
    "conv2d backward float32": lambda: F.conv2d_backward(np.ones((4, 8, 12, 12), np.float32), x32_small, w3_32,
                                                          padding=1),  # the register-blocked weight gradient
    "conv2d_affine": lambda: _conv.conv2d_affine(x[:1, :, :12, :12], w3, None, 1, 1, 1, 1, "zeros", gamma, beta,
                                                 0.0, 6.0),
    "conv2d winograd": lambda: F.conv2d(x16, w16, padding=1),
    "conv2d winograd 1 sample": lambda: F.conv2d(x16_one, w16, padding=(1, 2)),
    "conv3d winograd": lambda: F.conv3d(x16_3d, w16_3d, padding=1),
    "conv2d winograd channels-last": lambda: wino_cl(x32_12_cl),
    "depthwise": lambda: F.conv2d(x, w_dw, padding=1, groups=8),
    "depthwise backward": lambda: F.conv2d_backward(np.ones((4, 8, 24, 24)), x, w_dw, padding=1, groups=8),
    "filters separable": lambda: filters.correlate2d(img, box, mode="same", boundary="symm"),
    "filters fft/direct": lambda: filters.correlate2d(img, rank2, mode="same", boundary="wrap"),
    "filters valid": lambda: filters.correlate2d(img, rank2, mode="valid"),
    "correlate_valid kernel": correlate_valid,
    "max_pool3d": lambda: F.max_pool3d(x5, 2),
    "avg_pool3d": lambda: F.avg_pool3d(x5, 3, 2, 1),
    "max_unpool2d": lambda: F.max_unpool2d(pooled, idx, 2),
    "max_unpool backward": lambda: _pooling_sized.max_unpool_backward(np.ones((4, 8, 24, 24)), idx),
    "to channels-last": lambda: _cl.to_channels_last(x),
    "from channels-last": lambda: _cl.from_channels_last(x_cl),
    "channels-last depthwise": lambda: F.conv2d(x_cl, w_dw, padding=1, groups=8),
    "channels-last 1x1 float64": lambda: F.conv2d(x_cl, w3[:, :, :1, :1]),
    "channels-last 1x1": lambda: F.conv2d(x32_cl, w_pw32),
    "NCHW 1x1 float32": lambda: F.conv2d(x.astype(np.float32), w_pw32),
    "channels-last 3x3": lambda: F.conv2d(x32_cl, w3_32, padding=1),
    # NCHW float32 by the implicit product: the vector-tile padding copy and the tile transpose back
    "NCHW 3x3/2 float32": lambda: F.conv2d(x32_64, w3_32, stride=2, padding=1),
    "channels-last 3x3 dilated": lambda: F.conv2d(x32_cl, w3_32, padding=2, dilation=(1, 2)),
    "channels-last max_pool2d": lambda: F.max_pool2d(x_cl, 3, 2, 1),
    "channels-last depthwise + 1x1": lambda: dw_pw(x32_cl),
    "channels-last 1x1 + depthwise/2 + 1x1": lambda: ex_dw_pw(x32_cl),
    "inverted residual block, one launch": lambda: ex_dw_pw_1(x32_cl, res=x32_cl),
    "adam step": adam_step,
    "channels-last global average pool": lambda: _onnx_pool.global_average_pool(None, x32_cl),
    "ONNX model, taped": lambda: taped(x32_12x),
    "fractional_max_pool2d": lambda: F.fractional_max_pool2d(x, 2, output_size=(10, 10), return_indices=True,
                                                             _random_samples=samples),
}


def results(op):
    out = OPS[op]()
    return out if isinstance(out, tuple) else (out,)


want = {op: results(op) for op in OPS}
errors, calls = [], [0] * threads
stop = time.monotonic() + seconds


def worker(i):
    order = list(OPS)
    r = random.Random(i)
    try:
        while time.monotonic() < stop:
            r.shuffle(order)
            for op in order:
                for got, exp in zip(results(op), want[op]):
                    if got is not None and not np.allclose(got, exp, rtol=1e-10, atol=1e-10, equal_nan=True):
                        errors.append(f"thread {i}: {op} differs from the single-threaded result")
                calls[i] += 1
    except Exception as exc:  # noqa: BLE001  (reported to the test)
        errors.append(f"thread {i}: {type(exc).__name__}: {exc}")


t0 = time.monotonic()
pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
modules = [importlib.import_module(f"convlayers._kernels.{m.name}") for m in pkgutil.iter_modules(_kernels.__path__)]
pairs = sorted({v.parallel.py_func.__qualname__ for m in modules for v in vars(m).values() if isinstance(v, KernelPair)})
import numba  # noqa: E402

pairs.remove("im2col")  # only its serial build is ever called (on worker threads)
print(json.dumps({"threads": threads, "seconds": round(time.monotonic() - t0, 2), "calls": sum(calls),
                  "layer": numba.threading_layer(), "kernels": sorted(seen), "all_kernels": pairs,
                  "errors": errors[:10]}))
