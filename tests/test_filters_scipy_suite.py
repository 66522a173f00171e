"""scipy's own tests of ``convolve2d``/``correlate2d`` (``scipy/signal/tests/test_signaltools.py``'s
``TestConvolve2d`` and ``TestCorrelate2d``, imported from the installed wheel, no code copied), run with
scipy's functions swapped for ``convlayers.filters``' within each test.

A few of scipy's tests exercise what convlayers deliberately does differently (complex kernels of a
real image, empty inputs, which scipy quietly accepts) would be listed in ``KNOWN_DIFFERENCES`` with
the reason; today the list is empty: all 24 of scipy's tests pass (``test_large_array`` is marked slow).
"""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

sig = pytest.importorskip("scipy.signal")
suite = pytest.importorskip("scipy.signal.tests.test_signaltools")

from convlayers import filters  # noqa: E402

SWAP = {sig.convolve2d: filters.convolve2d, sig.correlate2d: filters.correlate2d}

KNOWN_DIFFERENCES = {}
# scipy's int-overflow regression test convolves a 2.1e8-element image: 200 s here, so CI-only.
SLOW = {"test_large_array"}


def _expand(cls):
    """(class, method name, kwargs) for every test of ``cls`` and every combination of its parametrize marks."""
    for name, method in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("test_"):
            continue
        marks = [m for m in getattr(method, "pytestmark", []) if m.name == "parametrize"]
        grids = []
        for mark in marks:
            names = [n.strip() for n in mark.args[0].split(",")] if isinstance(mark.args[0], str) \
                else list(mark.args[0])
            values = [v.values if hasattr(v, "values") and hasattr(v, "marks") else v for v in mark.args[1]]
            grids.append([dict(zip(names, v if len(names) > 1 else (v,))) for v in values])
        for i, combo in enumerate(itertools.product(*grids) if grids else [()]):
            kwargs = {}
            for part in combo:
                kwargs.update(part)
            kwargs = {k: SWAP.get(v, v) if callable(v) else v for k, v in kwargs.items()}
            yield pytest.param(cls, name, kwargs, id=f"{cls.__name__}.{name}[{i}]",
                               marks=[pytest.mark.slow] if name in SLOW else [])


CASES = [*_expand(suite.TestConvolve2d), *_expand(suite.TestCorrelate2d)]


@pytest.mark.parametrize("cls, name, kwargs", CASES)
def test_scipy_suite(cls, name, kwargs, monkeypatch):
    for module in (suite, sig):
        monkeypatch.setattr(module, "convolve2d", filters.convolve2d, raising=False)
        monkeypatch.setattr(module, "correlate2d", filters.correlate2d, raising=False)
    reason = KNOWN_DIFFERENCES.get(name)
    method = getattr(cls(), name)
    if "xp" in inspect.signature(method).parameters:
        kwargs = {**kwargs, "xp": np}
    if reason:
        with pytest.raises(Exception):
            method(**kwargs)
        pytest.xfail(reason)
    method(**kwargs)
