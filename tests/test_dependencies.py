"""Issue #3, lifecycle: which ``internalhttp`` the instrumentation accepts,
how a mismatch is handled, and how ``opentelemetry-instrument`` finds it.

An incompatible installed ``internalhttp`` is simulated by answering the
dependency check's version look-up with another version; everything else
(declared ranges, metadata, entry points) is the real installed distribution.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from lifecycle_testing import SPAN_NAME, get_user, users_server
from opentelemetry.instrumentation import dependencies
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import BASE_INSTRUMENTOR_LOGGER, one_server_span
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor, _InstrumentedInternalHTTPServer
from opentelemetry_ext_internalhttp.package import _instruments

DISTRIBUTION = "opentelemetry-ext-internalhttp"


def _instruments_extra() -> list[Requirement]:
    """The requirements of the ``instruments`` extra in the installed distribution's metadata."""
    declared = [Requirement(text) for text in importlib.metadata.requires(DISTRIBUTION) or ()]
    return [
        req for req in declared if req.marker is not None and req.marker.evaluate({"extra": "instruments"})
    ]


@pytest.fixture
def installed_internalhttp(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Call with a version string to make the dependency check see that internalhttp version."""
    real_version = dependencies.version

    def pretend(version: str) -> None:
        def lookup(name: str) -> str:
            return version if canonicalize_name(name) == "internalhttp" else real_version(name)

        monkeypatch.setattr(dependencies, "version", lookup)

    return pretend


# -- what is declared -------------------------------------------------------------


def test_instrumentation_dependencies_are_the_supported_internalhttp_range() -> None:
    assert tuple(InternalHTTPInstrumentor().instrumentation_dependencies()) == ("internalhttp >= 2.0, < 3.0",)


def test_instrumentation_dependencies_are_the_package_instruments() -> None:
    assert tuple(InternalHTTPInstrumentor().instrumentation_dependencies()) == tuple(_instruments)


def test_the_instruments_extra_of_the_distribution_declares_the_same_range() -> None:
    declared = [(canonicalize_name(req.name), req.specifier) for req in _instruments_extra()]
    expected = [(canonicalize_name(req.name), req.specifier) for req in map(Requirement, _instruments)]

    assert declared == expected


def test_the_installed_internalhttp_satisfies_the_declared_range() -> None:
    assert dependencies.get_dependency_conflicts(_instruments) is None


# -- a manual instrument() against an incompatible internalhttp ------------------


@pytest.mark.parametrize("version", ["3.0.0", "1.9.9"])
def test_instrument_against_an_incompatible_internalhttp_logs_an_error(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    installed_internalhttp: Any,
    caplog: pytest.LogCaptureFixture,
    version: str,
) -> None:
    installed_internalhttp(version)

    with caplog.at_level(logging.ERROR, logger=BASE_INSTRUMENTOR_LOGGER):
        instrumentor.instrument(**providers)

    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert f"internalhttp {version}" in errors[0]


@pytest.mark.parametrize("version", ["3.0.0", "1.9.9"])
def test_instrument_against_an_incompatible_internalhttp_leaves_the_class_untouched(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    installed_internalhttp: Any,
    version: str,
) -> None:
    before = (internalhttp.server.InternalHTTPServer, internalhttp.InternalHTTPServer)
    installed_internalhttp(version)

    instrumentor.instrument(**providers)

    assert (internalhttp.server.InternalHTTPServer, internalhttp.InternalHTTPServer) == before
    assert not instrumentor.is_instrumented_by_opentelemetry
    get_user(users_server(internalhttp.server.InternalHTTPServer))
    assert span_exporter.get_finished_spans() == ()


def test_skip_dep_check_instruments_despite_an_incompatible_internalhttp(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    installed_internalhttp: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    installed_internalhttp("3.0.0")

    with caplog.at_level(logging.ERROR, logger=BASE_INSTRUMENTOR_LOGGER):
        instrumentor.instrument(skip_dep_check=True, **providers)

    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert internalhttp.server.InternalHTTPServer is _InstrumentedInternalHTTPServer
    get_user(users_server(internalhttp.server.InternalHTTPServer))
    assert one_server_span(span_exporter).name == SPAN_NAME


# -- auto-instrumentation ---------------------------------------------------------


def _entry_point() -> importlib.metadata.EntryPoint:
    [entry_point] = importlib.metadata.entry_points(group="opentelemetry_instrumentor", name="internalhttp")
    return entry_point


def test_the_internalhttp_instrumentor_entry_point_loads_the_instrumentor() -> None:
    assert _entry_point().load() is InternalHTTPInstrumentor


def test_the_internalhttp_instrumentor_entry_point_belongs_to_this_distribution() -> None:
    dist = _entry_point().dist

    assert dist is not None
    assert canonicalize_name(dist.metadata["Name"]) == canonicalize_name(DISTRIBUTION)


def test_auto_instrumentation_accepts_the_installed_internalhttp() -> None:
    # opentelemetry-instrument checks the entry point's distribution metadata
    # (the instruments extra), not instrumentation_dependencies().
    assert dependencies.get_dist_dependency_conflicts(_entry_point().dist) is None


def test_auto_instrumentation_rejects_an_incompatible_internalhttp(installed_internalhttp: Any) -> None:
    installed_internalhttp("3.0.0")

    conflict = dependencies.get_dist_dependency_conflicts(_entry_point().dist)

    assert conflict is not None
    assert conflict.found == "internalhttp 3.0.0"
