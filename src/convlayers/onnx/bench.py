"""The harness's ONNX rows: convlayers.onnx against onnxruntime (and OpenCV dnn) on the same ONNX file.

Each model is a ``convlayers.models`` network exported once through its
PyTorch twin (``convlayers.interop.to_torch``, ``torch.onnx.export`` with
the TorchScript exporter) to an ONNX file with a dynamic batch axis; every
runtime loads those same bytes.  onnxruntime gets
``intra_op_num_threads = inter_op_num_threads = threads`` and sequential
execution, OpenCV ``cv2.setNumThreads(threads)``, convlayers numba's and
BLAS's limits set by :func:`convlayers.benchmark.limit_threads`.  Timing is
:func:`convlayers.benchmark.time_pair`: alternating, each side warm.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

__all__ = ["export_model", "onnx_model_cases", "MODELS"]

MODELS = [("mobilenet_v2", 1), ("mobilenet_v2", 8), ("resnet18", 1), ("resnet18", 8)]


def export_model(name, image=224, seed=0):
    """ONNX bytes of ``convlayers.models.<name>()`` (random weights, BN running stats randomised), batch dynamic."""
    import torch

    from .. import models
    from ..interop import to_torch

    torch.manual_seed(seed)
    twin = to_torch(getattr(models, name)()).eval()
    g = torch.Generator().manual_seed(seed)
    for m in twin.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(twin, (torch.zeros(1, 3, image, image),), buf, input_names=["input"],
                          output_names=["output"], opset_version=17, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return buf.getvalue()


def _ort_session(data, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def _opencv_net(data):
    try:
        import cv2
    except ImportError:
        return None
    try:
        return cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
    except Exception:  # noqa: BLE001  (an OpenCV build without this importer: no OpenCV column)
        return None


def onnx_model_cases(threads=2, models=MODELS, image=224):
    """``[(row name, ours, [(peer name, peer), ...], check)]`` for the ONNX model rows.

    ``check()`` returns the largest absolute difference between convlayers'
    and onnxruntime's outputs on the row's input.
    """
    from . import load

    exported = {}
    rows = []
    rng = np.random.default_rng(0)
    for name, batch in models:
        if name not in exported:
            exported[name] = export_model(name, image)
        data = exported[name]
        model = load(data)
        sess = _ort_session(data, threads)
        x = rng.standard_normal((batch, 3, image, image), dtype=np.float32)
        peers = [("onnxruntime", lambda s=sess, x=x: s.run(None, {"input": x})[0])]
        net = _opencv_net(data)
        if net is not None:
            def cv_run(net=net, x=x):
                net.setInput(x)
                return net.forward()
            peers.append(("opencv-dnn", cv_run))

        def check(model=model, sess=sess, x=x):
            return float(np.abs(model(x) - sess.run(None, {"input": x})[0]).max())
        rows.append((f"{name} @{image} b{batch} (onnx)", lambda m=model, x=x: m(x), peers, check))
    return rows
