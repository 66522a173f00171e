"""PyTorch's own OpInfo samples, error inputs and ModuleInfo inputs for every pooling op and module.

Forward in float32 and float64, input gradients against torch autograd
(float64), and every error input refused with a ValueError/TypeError.
Fractional max pooling draws its windows from torch's generator; the tests
hand convlayers the samples torch drew (``_random_samples``), which is the
documented way to reproduce PyTorch's windows.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from _peer import module_cases, op_error_cases, op_samples, torch

import convlayers.functional as F
from convlayers import nn

OPS = {
    "max_pool1d": F.max_pool1d, "max_pool2d": F.max_pool2d, "max_pool3d": F.max_pool3d,
    "avg_pool1d": F.avg_pool1d, "avg_pool2d": F.avg_pool2d, "avg_pool3d": F.avg_pool3d,
    "adaptive_avg_pool1d": F.adaptive_avg_pool1d, "adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "adaptive_avg_pool3d": F.adaptive_avg_pool3d, "adaptive_max_pool1d": F.adaptive_max_pool1d,
    "adaptive_max_pool2d": F.adaptive_max_pool2d, "adaptive_max_pool3d": F.adaptive_max_pool3d,
    "lp_pool1d": F.lp_pool1d, "lp_pool2d": F.lp_pool2d, "lp_pool3d": F.lp_pool3d,
    "max_unpool1d": F.max_unpool1d, "max_unpool2d": F.max_unpool2d, "max_unpool3d": F.max_unpool3d,
    "fractional_max_pool2d": F.fractional_max_pool2d, "fractional_max_pool3d": F.fractional_max_pool3d,
}
# lp_pool has no OpInfo (its ModuleInfo inputs below and tests/test_pooling_nd.py's grid cover it).
VARIANTS = [(name, "") for name in OPS if not name.startswith("lp_")] + [(f"max_unpool{d}d", "grad") for d in (1, 2, 3)]
MODULES = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
           "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
           "LPPool1d", "LPPool2d", "LPPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d"]


def _prepare_for(name, case):
    """Fractional pooling: the samples torch's OpInfo wrapper drew (seed 42, then torch.rand as F does)."""
    if not name.startswith("fractional"):
        return None
    dims = int(name[-2])

    def prepare(x, args, kwargs):
        if kwargs.get("_random_samples") is not None:  # the sample gives its own
            return x, args, kwargs
        n = 1 if x.ndim == dims + 1 else x.shape[0]
        with torch.random.fork_rng():
            torch.manual_seed(42)
            samples = torch.rand(n, x.shape[-dims - 1], dims, dtype=case.torch_sample.input.dtype)
        return x, args, {**kwargs, "_random_samples": samples.numpy()}

    return prepare


# max_pool1d/2d/3d have 864/1440/576 samples and max_unpool1d/2d/3d 144/288/96: the default run takes every
# EVERY-th of those (about 30 per op and dtype); CONVLAYERS_FULL_OPINFO=1 runs them all (11,205 tests,
# all passing when last run; collection alone took 9.5 min on the loaded 2-core machine).
FULL = os.environ.get("CONVLAYERS_FULL_OPINFO") == "1"
EVERY = {"max_pool1d": 29, "max_pool2d": 47, "max_pool3d": 19, "max_unpool1d": 5, "max_unpool2d": 9,
         "max_unpool3d": 3}


@functools.cache
def _all_cases():
    out = []
    for name, variant in VARIANTS:
        every = 1 if FULL or variant else EVERY.get(name, 1)
        for case in op_samples(f"nn.functional.{name}", variant, every=every):
            out.append(pytest.param(name, case, id=f"{variant or 'fwd'}-{case}"))
    return out


def _cases(grad):
    """Forward: float32 and float64; gradients: the float64 samples (check_grad makes the input require grad)."""
    return [p for p in _all_cases() if not grad or p.values[1].dtype == np.float64]


@pytest.mark.parametrize("name, case", _cases(False))
def test_opinfo_forward(name, case):
    case.check(OPS[name], prepare=_prepare_for(name, case))


@pytest.mark.parametrize("name, case", _cases(True))
def test_opinfo_gradients(name, case):
    case.check_grad(OPS[name], wrt=["input"], prepare=_prepare_for(name, case))


@pytest.mark.parametrize("name, case", [pytest.param(n, c, id=str(c)) for n, _ in VARIANTS if _ == ""
                                        for c in op_error_cases(f"nn.functional.{n}")])
def test_opinfo_errors(name, case):
    case.check(OPS[name])


@pytest.mark.parametrize("case", [c for m in MODULES for c in module_cases(m)], ids=str)
def test_moduleinfo_forward(case):
    case.check(getattr(nn, case.cls_name))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, ceil_mode", [((3, 4, 8, 8), False), ((2, 3, 7, 9), False), ((2, 3, 7, 9), True)])
def test_max_pool_2x2_stride_2_values_and_indices_match_torch(dtype, shape, ceil_mode):
    """The 2x2/2 fast path of the max-pool kernel: ties, -inf windows and NaNs (the last NaN wins) as PyTorch."""
    import torch
    import convlayers.functional as F
    rng = np.random.default_rng(6)
    x = rng.integers(-2, 3, shape).astype(dtype)  # many ties
    x[0, 0, :2, :2] = -np.inf
    x[0, 1, 2, 2] = np.nan
    x[1, 0, 0, 1] = np.nan
    x[1, 0, 1, 0] = np.nan
    got, idx = F.max_pool2d(x, 2, ceil_mode=ceil_mode, return_indices=True)
    want, want_idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(got, want.numpy())
    np.testing.assert_array_equal(idx, want_idx.numpy())
