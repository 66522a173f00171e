"""``conv1d``, ``conv2d``, ``conv3d``, ``conv_transpose1d/2d/3d`` and their gradients.

Every op is one call of the same three pieces, whatever its rank: the
validation of :mod:`._conv_args`, explicit padding for a non-zero
``padding_mode`` (N-d :func:`.padding.pad`), and the N-d cores of
:mod:`._conv_nd` (which run everything on the 2-D kernels of :mod:`.conv`).
A transposed convolution is the input gradient of the convolution it
transposes, so it reuses the same cores the other way round.
"""

from __future__ import annotations

import numpy as np

from .._dispatch import tensor_aware
from . import _conv_channels_last as _cl
from . import _conv_nd as _core
from ._conv_args import conv_args, torch_pad_order, transpose_args
from ._validate import as_array
from .padding import pad as _pad
from .padding import pad_backward as _pad_backward

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "conv1d_backward", "conv2d_backward", "conv3d_backward",
           "conv_transpose1d_backward", "conv_transpose2d_backward", "conv_transpose3d_backward"]


def explicit_padding(x, pads, mode):
    """Pad for a non-zero ``padding_mode``; return the padded input and the zero pads left for the core."""
    if mode == "zeros" or not any(pads):
        return x, pads
    return _pad.ndarray_impl(x, torch_pad_order(pads), mode=mode), (0,) * len(pads)


def _bias_view(b, dtype, nd):
    return b.astype(dtype, copy=False).reshape((-1,) + (1,) * nd)


def _conv(nd, input, weight, bias, stride, padding, dilation, groups, padding_mode):
    c = conv_args(f"conv{nd}d", nd, input, weight, bias, stride, padding, dilation, groups, padding_mode)
    x, pads = explicit_padding(c.x.astype(c.dtype, copy=False), c.pads, c.mode)
    out = _core.forward(x, c.w.astype(c.dtype, copy=False), c.stride, pads, c.dilation, c.groups)
    if c.b is not None:
        out += _bias_view(c.b, c.dtype, nd)
    out = keep_layout(c.x, x, out)
    return out[0] if c.unbatched else out


def keep_layout(given, padded, out):
    """A channels-last input padded into a C-ordered array (a non-zero ``padding_mode``) still gives a
    channels-last output, as in PyTorch."""
    if padded is not given and _cl.is_channels_last(given) and not _cl.is_channels_last(out) and out.ndim == 4:
        return _cl.to_channels_last(out)
    return out


def _conv_backward(nd, grad_output, input, weight, stride, padding, dilation, groups, padding_mode, output_mask):
    op = f"conv{nd}d_backward"
    c = conv_args(op, nd, input, weight, None, stride, padding, dilation, groups, padding_mode)
    go = _grad_output(op, grad_output, c)
    x = c.x.astype(c.dtype, copy=False)
    w = c.w.astype(c.dtype, copy=False)
    xp, core_pads = explicit_padding(x, c.pads, c.mode)
    gi = gw = gb = None
    if output_mask[0]:
        gi = _core.input_grad(go, w, xp.shape, c.stride, core_pads, c.dilation, c.groups)
        if xp is not x:
            gi = _pad_backward(gi, x.shape, torch_pad_order(c.pads), c.mode)
        if c.unbatched:
            gi = gi[0]
    if output_mask[1]:
        gw = _core.weight_grad(xp, go, w.shape, c.stride, core_pads, c.dilation, c.groups)
    if output_mask[2]:
        gb = go.sum(axis=(0, *range(2, nd + 2)))
    return gi, gw, gb


def _grad_output(op, grad_output, c):
    go = as_array(grad_output, "grad_output")
    gob = go[None] if c.unbatched else go
    if gob.shape != c.out_shape:
        raise ValueError(f"{op}: grad_output must have shape {c.out_shape[c.unbatched:]}, got {go.shape}")
    return np.ascontiguousarray(gob, dtype=c.dtype)


def _transpose(nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    c = transpose_args(f"conv_transpose{nd}d", nd, input, weight, bias, stride, padding, output_padding, groups,
                       dilation)
    out = _core.input_grad(np.ascontiguousarray(c.x, dtype=c.dtype), c.w.astype(c.dtype, copy=False),
                           c.out_shape, c.stride, c.pads, c.dilation, c.groups)
    if c.b is not None:
        out += _bias_view(c.b, c.dtype, nd)
    return out[0] if c.unbatched else out


def _transpose_backward(nd, grad_output, input, weight, stride, padding, output_padding, groups, dilation,
                        output_mask):
    op = f"conv_transpose{nd}d_backward"
    c = transpose_args(op, nd, input, weight, None, stride, padding, output_padding, groups, dilation)
    go = _grad_output(op, grad_output, c)
    x = c.x.astype(c.dtype, copy=False)
    w = c.w.astype(c.dtype, copy=False)
    gi = gw = gb = None
    if output_mask[0]:
        gi = _core.forward(go, w, c.stride, c.pads, c.dilation, c.groups)
        if gi.shape[2:] != x.shape[2:]:  # output_padding rows never reach back to the input
            gi = np.ascontiguousarray(gi[(slice(None), slice(None)) + tuple(slice(0, s) for s in x.shape[2:])])
        if c.unbatched:
            gi = gi[0]
    if output_mask[1]:
        gw = _core.weight_grad(go, x, w.shape, c.stride, c.pads, c.dilation, c.groups)
    if output_mask[2]:
        gb = go.sum(axis=(0, *range(2, nd + 2)))
    return gi, gw, gb


# --------------------------------------------------------------------------- public ops


@tensor_aware
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    r"""1-D convolution (cross-correlation), as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    input : ndarray, shape (N, C_in, L) or (C_in, L)
    weight : ndarray, shape (C_out, C_in / groups, k)
    bias : ndarray, shape (C_out,), optional
    stride, padding, dilation, groups, padding_mode
        As :func:`conv2d`, with ints or 1-tuples.

    Returns
    -------
    ndarray, shape (N, C_out, L_out)

    Notes
    -----
    Shape: ``L_out = ⌊(L + 2p − d(k−1) − 1)/s⌋ + 1``.  Runs on the 2-D kernels
    through a free ``H = 1`` view.

    Examples
    --------
    >>> import numpy as np
    >>> conv1d(np.array([[[1., 2., 3., 4.]]]), np.array([[[1., -1.]]]))
    array([[[-1., -1., -1.]]])
    >>> conv1d(np.ones((2, 4, 100), np.float32), np.ones((8, 2, 5), np.float32), padding="same", groups=2).shape
    (2, 8, 100)
    """
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, padding_mode)


@tensor_aware
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    r"""2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    Every output pixel is the dot product of the kernel with the window of the
    input under it: no kernel flip, as deep learning uses the word.

    Parameters
    ----------
    input : ndarray, shape (N, C_in, H, W) or (C_in, H, W)
        Floating point (PyTorch has no integer convolution).
    weight : ndarray, shape (C_out, C_in / groups, kH, kW)
    bias : ndarray, shape (C_out,), optional
    stride : int or (int, int), default 1
    padding : int, (int, int), 'valid' or 'same', default 0
        Pixels added on both sides.  ``'same'`` keeps H and W (stride 1 only);
        for an even dilated kernel the extra pixel goes to the bottom/right,
        as in PyTorch.
    dilation : int or (int, int), default 1
        Spacing between kernel taps.
    groups : int, default 1
        Split channels into ``groups`` independent convolutions: ``groups=C_in``
        is a depthwise convolution (``C_out = m·C_in`` for a channel multiplier m).
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, keyword-only
        What the padding is filled with (``torch.nn.Conv2d``'s argument).

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)
        In the promoted float dtype of the inputs (float32 stays float32).

    Notes
    -----
    Shape: ``H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1``, likewise for ``W_out``.
    Cost: ``N·C_out·H_out·W_out·(C_in/groups)·kH·kW`` multiply-adds.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4) + 1
    >>> w = np.tile([1.0, 0.0, -1.0], (3, 1)).reshape(1, 1, 3, 3)   # vertical edges
    >>> conv2d(x, w)
    array([[[[-6., -6.],
             [-6., -6.]]]])
    >>> conv2d(np.ones((8, 4, 5, 5), np.float32), np.ones((16, 1, 3, 3), np.float32),
    ...        stride=2, padding=1, groups=4).shape
    (8, 16, 3, 3)
    """
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, padding_mode)


@tensor_aware
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    r"""3-D convolution (cross-correlation), as ``torch.nn.functional.conv3d``.

    Parameters
    ----------
    input : ndarray, shape (N, C_in, D, H, W) or (C_in, D, H, W)
    weight : ndarray, shape (C_out, C_in / groups, kD, kH, kW)
    bias : ndarray, shape (C_out,), optional
    stride, padding, dilation, groups, padding_mode
        As :func:`conv2d`, with ints or 3-tuples.

    Returns
    -------
    ndarray, shape (N, C_out, D_out, H_out, W_out)

    Notes
    -----
    Shape: ``D_out = ⌊(D + 2p − d(k−1) − 1)/s⌋ + 1``, likewise ``H_out``, ``W_out``.
    Runs as one batch of ``N·D_out`` 2-D convolutions of the depth taps
    gathered as channels (see :mod:`convlayers.functional._conv_nd`).

    Examples
    --------
    >>> import numpy as np
    >>> conv3d(np.ones((1, 1, 3, 3, 3)), np.ones((1, 1, 2, 2, 2)))[0, 0]
    array([[[8., 8.],
            [8., 8.]],
    <BLANKLINE>
           [[8., 8.],
            [8., 8.]]])
    >>> conv3d(np.ones((2, 4, 6, 8, 8), np.float32), np.ones((8, 4, 3, 3, 3), np.float32), padding=1).shape
    (2, 8, 6, 8, 8)
    """
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, padding_mode)


def _backward_doc(nd):
    return f"""Gradients of :func:`conv{nd}d` with respect to input, weight and bias.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to ``conv{nd}d``'s output.
    input, weight, stride, padding, dilation, groups, padding_mode
        As given to :func:`conv{nd}d`.
    output_mask : (bool, bool, bool)
        Which of (input, weight, bias) gradients to compute.

    Returns
    -------
    (grad_input, grad_weight, grad_bias)
        ``None`` where ``output_mask`` is False; shapes those of input, weight, (C_out,).
    """


def conv1d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", output_mask=(True, True, True)):
    return _conv_backward(1, grad_output, input, weight, stride, padding, dilation, groups, padding_mode,
                          output_mask)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", output_mask=(True, True, True)):
    return _conv_backward(2, grad_output, input, weight, stride, padding, dilation, groups, padding_mode,
                          output_mask)


def conv3d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", output_mask=(True, True, True)):
    return _conv_backward(3, grad_output, input, weight, stride, padding, dilation, groups, padding_mode,
                          output_mask)


_BACKWARD_EXAMPLES = {
    1: """
    Examples
    --------
    >>> import numpy as np
    >>> gx, gw, gb = conv1d_backward(np.ones((1, 1, 3)), np.ones((1, 1, 4)), np.ones((1, 1, 2)))
    >>> gx, gb
    (array([[[1., 2., 2., 1.]]]), array([3.]))
    """,
    2: """
    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    >>> gx, gw, gb = conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
    >>> gx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> gb
    array([4.])
    """,
    3: """
    Examples
    --------
    >>> import numpy as np
    >>> gx, gw, gb = conv3d_backward(np.ones((1, 1, 1, 1, 1)), np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 2, 2, 2)))
    >>> gx[0, 0, 0], gw.shape
    (array([[1., 1.],
           [1., 1.]]), (1, 1, 2, 2, 2))
    """,
}
for _nd, _f in ((1, conv1d_backward), (2, conv2d_backward), (3, conv3d_backward)):
    _f.__doc__ = _backward_doc(_nd) + _BACKWARD_EXAMPLES[_nd]


@tensor_aware
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    r"""Transposed 1-D convolution, as ``torch.nn.functional.conv_transpose1d``.

    Parameters
    ----------
    input : ndarray, shape (N, C_in, L) or (C_in, L)
    weight : ndarray, shape (C_in, C_out / groups, k)
    bias : ndarray, shape (C_out,), optional
    stride, padding, output_padding, groups, dilation
        As :func:`conv_transpose2d`, with ints or 1-tuples.

    Returns
    -------
    ndarray, shape (N, C_out, L_out)

    Notes
    -----
    Shape: ``L_out = (L − 1)·s − 2p + d(k−1) + output_padding + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose1d(np.array([[[1., 2.]]]), np.array([[[1., 1., 1.]]]), stride=2)
    array([[[1., 1., 3., 2., 2.]]])
    """
    return _transpose(1, input, weight, bias, stride, padding, output_padding, groups, dilation)


@tensor_aware
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    r"""Transposed 2-D convolution, as ``torch.nn.functional.conv_transpose2d``.

    The adjoint of :func:`conv2d` with respect to its input: every input pixel
    stamps the kernel, scaled by its value, onto the output ``stride`` pixels
    apart.  Used to upsample (decoders, segmentation heads).

    Parameters
    ----------
    input : ndarray, shape (N, C_in, H, W) or (C_in, H, W)
    weight : ndarray, shape (C_in, C_out / groups, kH, kW)
    bias : ndarray, shape (C_out,), optional
    stride, padding, dilation, groups
        As the :func:`conv2d` that this op transposes.
    output_padding : int or (int, int), default 0
        Extra rows/columns at the bottom/right, to pick one of the input sizes
        a strided conv2d maps to the same output size.

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out)

    Notes
    -----
    Shape: ``H_out = (H − 1)·s − 2p + d(k−1) + output_padding + 1``.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)), stride=2)[0, 0]
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    return _transpose(2, input, weight, bias, stride, padding, output_padding, groups, dilation)


@tensor_aware
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    r"""Transposed 3-D convolution, as ``torch.nn.functional.conv_transpose3d``.

    Parameters
    ----------
    input : ndarray, shape (N, C_in, D, H, W) or (C_in, D, H, W)
    weight : ndarray, shape (C_in, C_out / groups, kD, kH, kW)
    bias : ndarray, shape (C_out,), optional
    stride, padding, output_padding, groups, dilation
        As :func:`conv_transpose2d`, with ints or 3-tuples.

    Returns
    -------
    ndarray, shape (N, C_out, D_out, H_out, W_out)

    Notes
    -----
    Shape: ``D_out = (D − 1)·s − 2p + d(k−1) + output_padding + 1``, likewise ``H_out``, ``W_out``.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose3d(np.ones((1, 2, 2, 2, 2)), np.ones((2, 3, 2, 2, 2)), stride=2).shape
    (1, 3, 4, 4, 4)
    """
    return _transpose(3, input, weight, bias, stride, padding, output_padding, groups, dilation)


def _transpose_backward_doc(nd):
    return f"""Gradients of :func:`conv_transpose{nd}d` with respect to input, weight and bias.

    Returns ``(grad_input, grad_weight, grad_bias)``, ``None`` where
    ``output_mask`` is False.  The input gradient is a plain :func:`conv{nd}d` of
    ``grad_output``: transposing twice gives the original operator back.
    """


def conv_transpose1d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, output_mask=(True, True, True)):
    return _transpose_backward(1, grad_output, input, weight, stride, padding, output_padding, groups, dilation,
                               output_mask)


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, output_mask=(True, True, True)):
    return _transpose_backward(2, grad_output, input, weight, stride, padding, output_padding, groups, dilation,
                               output_mask)


def conv_transpose3d_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, output_mask=(True, True, True)):
    return _transpose_backward(3, grad_output, input, weight, stride, padding, output_padding, groups, dilation,
                               output_mask)


_TRANSPOSE_EXAMPLES = {
    1: """
    Examples
    --------
    >>> import numpy as np
    >>> gx, gw, gb = conv_transpose1d_backward(np.ones((1, 1, 4)), np.ones((1, 1, 2)), np.ones((1, 1, 2)), stride=2)
    >>> gx
    array([[[2., 2.]]])
    """,
    2: """
    Examples
    --------
    >>> import numpy as np
    >>> gx, gw, gb = conv_transpose2d_backward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)),
    ...                                        np.ones((1, 1, 2, 2)), stride=2)
    >>> gx[0, 0]
    array([[4., 4.],
           [4., 4.]])
    """,
    3: """
    Examples
    --------
    >>> import numpy as np
    >>> gx, gw, gb = conv_transpose3d_backward(np.ones((1, 1, 2, 2, 2)), np.ones((1, 1, 1, 1, 1)),
    ...                                        np.ones((1, 1, 2, 2, 2)))
    >>> gx.ravel(), gb
    (array([8.]), array([8.]))
    """,
}
for _nd, _f in ((1, conv_transpose1d_backward), (2, conv_transpose2d_backward), (3, conv_transpose3d_backward)):
    _f.__doc__ = _transpose_backward_doc(_nd) + _TRANSPOSE_EXAMPLES[_nd]
