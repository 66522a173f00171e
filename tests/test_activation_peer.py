"""PyTorch's OpInfo samples and error inputs for the activations, softmax family, dropout variants and
element-wise losses: forward (float32 and float64), gradients through ``Tensor`` vs torch's autograd, errors.

Per-op counts (forward / grad / error samples) are what ``pytest --collect-only`` lists per op id.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _peer import op_error_cases, op_samples

import convlayers.functional as F

# OpInfo name, variant -> the convlayers function with the same call signature.
OPS = {
    ("sigmoid", ""): F.sigmoid,
    ("tanh", ""): F.tanh,
    ("nn.functional.silu", ""): F.silu,
    ("nn.functional.hardswish", ""): F.hardswish,
    ("nn.functional.hardsigmoid", ""): F.hardsigmoid,
    ("nn.functional.gelu", ""): F.gelu,
    ("nn.functional.mish", ""): F.mish,
    ("nn.functional.elu", ""): F.elu,
    ("nn.functional.selu", ""): F.selu,
    ("nn.functional.celu", ""): F.celu,
    ("nn.functional.leaky_relu", ""): F.leaky_relu,
    ("nn.functional.prelu", ""): F.prelu,
    ("nn.functional.hardtanh", ""): F.hardtanh,
    ("nn.functional.softplus", ""): F.softplus,
    ("nn.functional.logsigmoid", ""): F.logsigmoid,
    ("nn.functional.softmin", ""): F.softmin,
    ("nn.functional.softmin", "with_dtype"): F.softmin,
    ("softmax", ""): F.softmax,
    ("softmax", "with_dtype"): F.softmax,
    ("log_softmax", ""): F.log_softmax,
    ("log_softmax", "with_dtype"): F.log_softmax,
    ("nn.functional.softsign", ""): F.softsign,
    ("nn.functional.tanhshrink", ""): F.tanhshrink,
    ("nn.functional.threshold", ""): F.threshold,
    ("nn.functional.hardshrink", ""): F.hardshrink,
    ("nn.functional.softshrink", ""): F.softshrink,
    ("nn.functional.glu", ""): F.glu,
    ("nn.functional.binary_cross_entropy", ""): F.binary_cross_entropy,
    ("nn.functional.binary_cross_entropy_with_logits", ""): F.binary_cross_entropy_with_logits,
    ("nn.functional.l1_loss", ""): F.l1_loss,
    ("nn.functional.smooth_l1_loss", ""): F.smooth_l1_loss,
    ("nn.functional.huber_loss", ""): F.huber_loss,
    ("nn.functional.kl_div", ""): F.kl_div,
}
# Arguments PyTorch itself cannot differentiate (weights of the losses; BCE's target has a gradient).
NO_GRAD_ARGS = {"weight", "pos_weight"}


def _samples():
    for (name, variant), fn in OPS.items():
        for case in op_samples(name, variant):
            yield pytest.param(case, fn, id=f"{name}{'-' + variant if variant else ''}-{case}")


def _errors():
    for (name, variant), fn in OPS.items():
        for case in op_error_cases(name, variant):
            yield pytest.param(case, fn, id=str(case))


SAMPLES = list(_samples())


@pytest.mark.parametrize("case, fn", SAMPLES)
def test_forward(case, fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.check(fn)


@pytest.mark.parametrize("case, fn", SAMPLES)
def test_grad(case, fn):
    root = {"input": case.input, **dict(enumerate(case.args)), **case.kwargs}
    wrt = [k for k, v in root.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"
           and k not in NO_GRAD_ARGS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert case.check_grad(fn, wrt=wrt) == len(wrt)


@pytest.mark.parametrize("case, fn", list(_errors()))
def test_error(case, fn):
    case.check(fn)
