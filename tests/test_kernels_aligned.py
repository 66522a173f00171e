"""convlayers._kernels.aligned: arrays that start on a cache line."""

import numpy as np
import pytest

from convlayers._kernels import gemm
from convlayers._kernels.aligned import aligned_empty, aligned_zeros
from convlayers.functional import _threads, to_channels_last


@pytest.mark.parametrize("shape", [0, 1, 7, (3, 5), (2, 3, 4, 5), (1, 64, 56, 56)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int64])
def test_aligned_arrays(shape, dtype):
    a = aligned_empty(shape, dtype)
    want = (shape,) if isinstance(shape, int) else shape
    assert a.shape == want and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert a.size == 0 or a.ctypes.data % 64 == 0
    z = aligned_zeros(shape, dtype, align=128)
    assert (z.size == 0 or z.ctypes.data % 128 == 0) and not z.any()
    a[...] = 1                                               # the whole extent is writable memory
    assert a.sum() == a.size


@pytest.mark.parametrize("k,n", [(1, 1), (147, 64), (576, 64), (1152, 100)])
def test_packed_panels_are_aligned_and_hold_the_matrix(k, n):
    b = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    p = gemm.pack_panels(b)
    assert p.ctypes.data % 64 == 0 and p.shape == (-(-n // gemm.NR), k, gemm.NR)
    unpacked = p.transpose(1, 0, 2).reshape(k, -1)
    np.testing.assert_array_equal(unpacked[:, :n], b)
    assert not unpacked[:, n:].any()


def test_scratch_and_channels_last_copies_are_aligned():
    for size in (5, 1000, 123457):
        assert _threads.scratch("t", size, np.float32).ctypes.data % 64 == 0
    x = np.ones((2, 3, 9, 9), np.float32)
    assert to_channels_last(x).ctypes.data % 64 == 0
