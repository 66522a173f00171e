"""Every docstring example in the package runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import convlayers

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(convlayers.__path__, "convlayers.")
                 if not name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with np.printoptions(legacy=False):
        for test in finder.find(module, name):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_public_function_has_an_example():
    """The public functional ops document themselves with a runnable example."""
    import convlayers.functional as F
    missing = [n for n in F.__all__ if callable(getattr(F, n)) and ">>>" not in (getattr(F, n).__doc__ or "")]
    assert not missing, f"no example in the docstring of: {missing}"
