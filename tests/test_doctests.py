"""Every docstring example runs: the installed modules of both packages and the examples' tools.

The packages are imported from where they are installed (the tox env's
site-packages), the same files the coverage is measured on.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

PACKAGES = ("opentelemetry_ext_internalhttp", "internalhttp")
# Modules of examples/ (on sys.path through the pytest configuration) with examples in their docstrings.
EXAMPLE_MODULES = ("otlp_tree", "launch", "demo")


def _modules() -> list[str]:
    names = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        names.extend(info.name for info in pkgutil.walk_packages(package.__path__, f"{package_name}."))
    return [*names, *EXAMPLE_MODULES]


# The guard's example shows it logging a failure: an instrumentation error on purpose.
LOGS_AN_ERROR = {"opentelemetry_ext_internalhttp._guard"}


@pytest.mark.parametrize(
    "module_name",
    [
        pytest.param(name, marks=pytest.mark.instrumentation_errors) if name in LOGS_AN_ERROR else name
        for name in _modules()
    ],
)
def test_the_docstring_examples_of_the_module_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder().find(module)
    output = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=output.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, output.getvalue()


def test_the_packages_have_docstring_examples_at_all() -> None:
    # Guards the discovery above: an empty module list would pass vacuously.
    examples = sum(
        len(test.examples)
        for name in _modules()
        for test in doctest.DocTestFinder().find(importlib.import_module(name))
    )
    assert examples >= 30
