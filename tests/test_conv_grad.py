"""The register-blocked convolution gradients (``functional._conv_grad``, ``_kernels.gemm.conv_weight_grad``)."""

import numpy as np
import pytest
import torch

import convlayers.functional as F
from convlayers._kernels import gemm
from convlayers.functional import _conv_grad

# (n, cin, cout, h, w, k, stride, padding, dilation): panels and row tiles with ragged ends (C_out not a multiple
# of MR, kh·kw·C not of NR), blocks of several samples, of rows of one sample (over PIXEL_BLOCK pixels a
# sample), strides, dilations, rectangular windows, padding on one side only
CASES = [
    (64, 1, 48, 8, 8, (3, 3), 1, 1, 1),        # the digits CNN's stem
    (5, 17, 13, 9, 7, (3, 3), 1, 1, 1),
    (3, 16, 2 * gemm.MR + 1, 6, 6, (3, 3), 1, 1, 1),
    (2, 16, 7, 20, 23, (3, 3), 1, 1, 1),       # 460 pixels a sample: blocks of rows
    (2, 19, 33, 17, 40, (5, 3), 2, (2, 1), 1),
    (3, 24, 9, 12, 12, (3, 3), 1, 2, 2),
    (1, 16, 5, 9, 300, (1, 3), 1, (0, 1), (1, 3)),  # a row wider than PIXEL_BLOCK
    (4, 20, 11, 7, 5, (2, 2), 1, 0, 1),
]


def _torch_grads(x, w, go, stride, padding, dilation, dtype):
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    wt = torch.tensor(w, dtype=dtype, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=padding, dilation=dilation)
    out.backward(torch.tensor(go, dtype=dtype))
    return xt.grad.numpy(), wt.grad.numpy()


@pytest.mark.parametrize("case", CASES)
def test_weight_grad_matches_torch(case):
    n, cin, cout, h, wd, k, stride, padding, dilation = case
    rng = np.random.default_rng(cin * 1000 + cout)
    x = rng.standard_normal((n, cin, h, wd)).astype(np.float32)
    w = rng.standard_normal((cout, cin, *k)).astype(np.float32)
    ho = torch.nn.functional.conv2d(torch.zeros(1, cin, h, wd), torch.tensor(w), stride=stride, padding=padding,
                                    dilation=dilation).shape[2:]
    go = rng.standard_normal((n, cout, *ho)).astype(np.float32)
    _, gw64 = _torch_grads(x, w, go, stride, padding, dilation, torch.float64)
    _, gw32 = _torch_grads(x, w, go, stride, padding, dilation, torch.float32)
    pad = (padding, padding) if isinstance(padding, int) else padding
    st = (stride, stride) if isinstance(stride, int) else stride
    dl = (dilation, dilation) if isinstance(dilation, int) else dilation
    got = _conv_grad.weight_grad(x, go, w.shape, st, (pad[0], pad[0], pad[1], pad[1]), dl)
    assert got.dtype == np.float32 and got.shape == w.shape
    # as close to float64's as PyTorch's own float32 gradient is (with a margin of a few roundings)
    scale = np.abs(gw64).max()
    assert np.abs(got - gw64).max() <= 4 * np.abs(gw32 - gw64).max() + 1e-6 * scale
    # and through the public op, which routes here
    gi, gw, _ = F.conv2d_backward(go, x, w, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(gw, gw32, rtol=1e-4, atol=1e-4 * scale)


def test_route():
    x32, g32 = np.zeros((2, 16, 8, 8), np.float32), np.zeros((2, 4, 8, 8), np.float32)
    assert _conv_grad.weight_grad_route(x32, g32, (4, 16, 3, 3), 1) == "first"
    assert _conv_grad.weight_grad_route(x32, np.zeros((2, 4, 20, 20), np.float32), (4, 16, 3, 3), 1) == "last"
    assert _conv_grad.weight_grad_route(x32.astype(np.float64), g32, (4, 16, 3, 3), 1) is None
    assert _conv_grad.weight_grad_route(x32, g32, (4, 16, 1, 1), 1) is None
    assert _conv_grad.weight_grad_route(x32, g32, (4, 8, 3, 3), 2) is None
    assert _conv_grad.weight_grad_route(np.zeros((1, 3, 9, 9), np.float32), np.zeros((1, 4, 20, 20), np.float32),
                                        (4, 3, 7, 7), 1) is None


@pytest.mark.parametrize("build", ["parallel", "serial"])
@pytest.mark.parametrize("chunks", [1, 2, 5])
def test_kernel_builds_and_task_counts_agree(build, chunks):
    rng = np.random.default_rng(3)
    xp = rng.standard_normal((3, 8, 9, 20)).astype(np.float32)
    go = rng.standard_normal((3, 14, 6, 7)).astype(np.float32)
    gw = np.full((14, 3 * 3 * 20), np.nan, np.float32)
    nans = getattr(gemm.conv_weight_grad, build)(xp, 3, 3, 1, 1, 1, 1, go, gw, chunks)
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))[:, :6, :7]  # n, ho, wo, c, i, j
    want = np.einsum("nohw,nhwcij->oijc", go.astype(np.float64), cols.astype(np.float64)).reshape(14, -1)
    assert nans == 0
    np.testing.assert_allclose(gw, want, rtol=1e-5, atol=1e-4)


def test_nan_is_counted_and_propagates():
    x = np.ones((2, 16, 5, 5), np.float32)
    x[1, 3, 2, 2] = np.nan
    go = np.ones((2, 4, 5, 5), np.float32)
    gw = _conv_grad.weight_grad(x, go, (4, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1))
    assert np.isnan(gw[:, 3]).all() and np.isfinite(np.delete(gw, 3, axis=1)).all()


@pytest.mark.parametrize("shape", [(96, 48, 3, 3), (5, 3, 2, 3), (gemm.NR + 1, 2 * gemm.NR - 1, 3, 1), (7, 1, 5, 5)])
def test_conv_panels_are_the_reordered_packing(shape):
    from convlayers.functional import _layout
    w = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(gemm.conv_panels(w), gemm.pack_panels(_layout.taps_channels_out(w)))
    np.testing.assert_array_equal(gemm.conv_panels(w, flip=True),
                                  gemm.pack_panels(_layout.taps_channels_out(_layout.flipped_transposed(w, 1))))


@pytest.mark.parametrize("case", [(64, 48, 96, 8, (1, 1)), (16, 20, 17, 9, (2, 1))])  # (dilated along the width: no implicit product)
def test_input_grad_through_the_implicit_product_matches_torch(monkeypatch, case):
    """The stride-1 input gradient runs as the implicit product on panels packed from the weight itself."""
    n, cin, cout, h, dilation = case
    rng = np.random.default_rng(n + cin)
    x = rng.standard_normal((n, cin, h, h)).astype(np.float32)
    w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    go = rng.standard_normal((n, cout, h, h)).astype(np.float32)
    flips = []
    real = gemm.conv_panels
    monkeypatch.setattr(gemm, "conv_panels", lambda w, flip=False: flips.append(flip) or real(w, flip))
    gi, _, _ = F.conv2d_backward(go, x, w, padding=dilation, dilation=dilation, output_mask=(True, False, False))
    assert True in flips, "the implicit product did not run"
    gi64, _ = _torch_grads(x, w, go, 1, dilation, dilation, torch.float64)
    gi32, _ = _torch_grads(x, w, go, 1, dilation, dilation, torch.float32)
    assert np.abs(gi - gi64).max() <= 4 * np.abs(gi32 - gi64).max() + 1e-6 * np.abs(gi64).max()
