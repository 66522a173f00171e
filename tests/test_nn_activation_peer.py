"""PyTorch's ModuleInfo inputs for the activation and loss modules (forward float32/float64 and
gradients vs torch's autograd), plus reprs, state_dict keys and init of the modules not in module_db."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _peer import module_cases

import convlayers as cl
from convlayers import nn

MODULES = ["Sigmoid", "Tanh", "SiLU", "Hardswish", "GELU", "Mish", "ELU", "SELU", "CELU", "LeakyReLU", "PReLU",
           "Hardtanh", "Softplus", "LogSigmoid", "Softmin", "Softmax", "Softmax2d", "LogSoftmax", "Softsign",
           "Tanhshrink", "Threshold", "Hardshrink", "Softshrink", "GLU", "CrossEntropyLoss", "NLLLoss", "MSELoss",
           "BCELoss", "BCEWithLogitsLoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "KLDivLoss", "Linear", "ReLU",
           "ReLU6"]


def _params():
    for name in MODULES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for case in module_cases(name):
                yield pytest.param(case, id=str(case))


CASES = list(_params())


@pytest.mark.parametrize("case", CASES)
def test_module_forward(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.check(getattr(nn, case.cls_name))


@pytest.mark.parametrize("case", CASES)
def test_module_grad(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # PyTorch differentiates CrossEntropyLoss's probability targets; convlayers only its input.
        wrt = (0, "input") if case.cls_name in ("CrossEntropyLoss", "NLLLoss") else None
        case.check_grad(getattr(nn, case.cls_name), wrt=wrt)


def test_reprs_match_torch():
    torch = pytest.importorskip("torch")
    pairs = [("Sigmoid", ()), ("SiLU", (True,)), ("Hardswish", ()), ("Hardsigmoid", ()), ("GELU", ("tanh",)),
             ("ELU", (0.5, True)), ("CELU", ()), ("SELU", ()), ("LeakyReLU", (0.2,)), ("PReLU", (3,)),
             ("Hardtanh", (-2.0, 2.0)), ("Softplus", (2.0, 10.0)), ("Softmax", (1,)), ("Softmin", ()),
             ("LogSoftmax", (0,)), ("Softmax2d", ()), ("Threshold", (0.1, 20.0)), ("Hardshrink", ()),
             ("Softshrink", (1.0,)), ("GLU", (1,)), ("Dropout1d", (0.2,)), ("Dropout2d", ()), ("Dropout3d", ()),
             ("AlphaDropout", (0.1,)), ("FeatureAlphaDropout", (0.3,)), ("CrossEntropyLoss", ()),
             ("BCEWithLogitsLoss", ()), ("HuberLoss", ()), ("KLDivLoss", ())]
    for name, args in pairs:
        assert repr(getattr(nn, name)(*args)) == repr(getattr(torch.nn, name)(*args)), name


def test_prelu_state_and_init():
    m = nn.PReLU(4, init=0.1)
    assert list(m.state_dict()) == ["weight"] and m.weight.shape == (4,)
    np.testing.assert_array_equal(m.weight.data, np.full(4, 0.1, np.float32))
    w = nn.BCEWithLogitsLoss(weight=np.ones(3), pos_weight=np.full(3, 2.0))
    assert list(w.state_dict()) == ["weight", "pos_weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []


def test_hardsigmoid_and_dropout_modules_against_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).uniform(-5, 5, (2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(nn.Hardsigmoid()(x), torch.nn.Hardsigmoid()(torch.from_numpy(x)).numpy(),
                               rtol=1e-6, atol=1e-7)
    for name in ("Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"):
        m = getattr(nn, name)(0.4).eval()
        shape = {"Dropout1d": (2, 3, 5), "Dropout3d": (2, 3, 2, 2, 2)}.get(name, x.shape)
        y = np.ones(shape, np.float32)
        np.testing.assert_array_equal(m(y), y)                  # eval: the identity
        m.train()
        cl.manual_seed(0)
        out = m(cl.Tensor(y, requires_grad=True))
        assert out.shape == shape and out.dtype == np.float32


def test_legacy_reduction_flags_warn_like_torch():
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        m = nn.L1Loss(size_average=False)
    assert m.reduction == "sum"
