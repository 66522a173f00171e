"""Shared test helpers: tolerances and a seeded random source."""

from __future__ import annotations

import threading

import numpy as np
import pytest

# Issue 2's contract: 1e-4 relative in float32, 1e-10 in float64.  "Relative" is
# taken against the output's scale, since single elements of a sum can cancel to ~0.
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


def assert_close(actual, expected, dtype=None, rtol=None):
    """Compare with the dtype's tolerance, relative to the larger of 1 and the output's magnitude."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    if dtype is None:
        dtype = actual.dtype
    tol = RTOL[np.dtype(dtype)] if rtol is None else rtol
    finite = np.isfinite(expected)
    scale = max(1.0, float(np.abs(expected[finite]).max()) if finite.any() else 1.0)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, equal_nan=True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def run_in_threads(work, count):
    """``work(i)`` on ``count`` threads at once; the first exception any of them raised, re-raised here."""
    errors = []

    def guarded(i):
        try:
            work(i)
        except Exception as exc:  # noqa: BLE001  (re-raised below, in the test's thread)
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
