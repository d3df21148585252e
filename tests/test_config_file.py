"""Declarative configuration: ``OTEL_CONFIG_FILE`` and its ``instrumentation/development`` block.

The SDK (1.44 and later, with ``opentelemetry-configuration``) activates
this package from ``python: internalhttp:`` with that block's keys; the
package reads the same block, and the shared ``general`` keys, when
``instrument()`` or ``instrument_app()`` runs. With a file in use the
settings' environment variables are not read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import internalhttp.server
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import INSTRUMENTATION_LOGGER, STABLE, one_server_span

configuration = pytest.importorskip(
    "opentelemetry.configuration", reason="SDK 1.44+ declarative configuration"
)

pytestmark = STABLE
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "otel-config.yaml"
FILE_FORMAT = 'file_format: "1.0"\n'


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a file with this ``instrumentation/development`` block; point OTEL_CONFIG_FILE at it."""

    def write(block: str) -> Path:
        path = tmp_path / "otel-config.yaml"
        path.write_text(FILE_FORMAT + "instrumentation/development:\n" + block)
        monkeypatch.setenv("OTEL_CONFIG_FILE", str(path))
        return path

    return write


def make_shop() -> Any:
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/healthz", lambda headers, body: {"body": "ok"})
    server.add_route("/search", lambda headers, body: {"headers": {"X-Served-By": "shop-1"}})
    return server


def test_the_packages_block_sets_the_options_of_instrument(
    config_file: Any, instrumentor: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    config_file(
        "  python:\n    internalhttp:\n      excluded_urls: [/healthz]\n      opt_in: network.transport\n"
    )
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/healthz", {}, b"")
    server.handle_request("GET", "/search", {}, b"", connection=internalhttp.ConnectionInfo("192.0.2.1", 1))

    span = one_server_span(span_exporter)
    assert (span.name, span.attributes["network.transport"]) == ("GET /search", "tcp")


def test_the_general_http_server_keys_capture_headers_and_replace_the_known_methods(
    config_file: Any, instrumentor: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    config_file(
        "  general:\n    http:\n      server:\n"
        "        request_captured_headers: [x-request-id]\n"
        "        response_captured_headers: [x-served-by]\n"
        "        known_methods: [GET, BREW]\n"
    )
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/search", {"X-Request-Id": "r-1"}, b"")
    server.handle_request("BREW", "/search", {}, b"")
    server.handle_request("DELETE", "/search", {}, b"")

    get, *others = span_exporter.get_finished_spans()
    assert [span.attributes["http.request.method"] for span in others] == ["BREW", "_OTHER"]
    assert get.attributes["http.request.header.x-request-id"] == ("r-1",)
    assert get.attributes["http.response.header.x-served-by"] == ("shop-1",)


def test_the_general_sanitization_list_replaces_the_defaults_and_the_packages_key_adds_to_it(
    config_file: Any, instrumentor: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    config_file(
        "  general:\n    sanitization:\n      url:\n        sensitive_query_parameters: [session]\n"
        "  python:\n    internalhttp:\n      sensitive_query_parameters: [token]\n"
    )
    instrumentor.instrument(**providers)

    make_shop().handle_request("GET", "/search?session=a&token=b&sig=c", {}, b"")

    assert one_server_span(span_exporter).attributes["url.query"] == "session=REDACTED&token=REDACTED&sig=c"


def test_a_keyword_argument_wins_over_the_file(
    config_file: Any, instrumentor: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    config_file("  python:\n    internalhttp:\n      excluded_urls: /search\n")
    instrumentor.instrument(excluded_urls="/healthz", **providers)
    server = make_shop()

    server.handle_request("GET", "/healthz", {}, b"")
    server.handle_request("GET", "/search", {}, b"")

    assert one_server_span(span_exporter).name == "GET /search"


def test_the_environment_variables_of_the_settings_are_not_read_when_a_file_is_in_use(
    config_file: Any,
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_EXCLUDED_URLS", "/search")
    config_file("  python:\n    internalhttp:\n      opt_in: [network.transport]\n")
    instrumentor.instrument(**providers)

    make_shop().handle_request("GET", "/search", {}, b"")

    assert one_server_span(span_exporter).name == "GET /search"


def test_a_variable_substituted_in_the_file_applies(
    config_file: Any,
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_EXCLUDED_URLS", "/healthz")
    config_file("  python:\n    internalhttp:\n      excluded_urls: ${SHOP_EXCLUDED_URLS}\n")
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/healthz", {}, b"")
    server.handle_request("GET", "/search", {}, b"")

    assert one_server_span(span_exporter).name == "GET /search"


@pytest.mark.instrumentation_errors
def test_an_invalid_value_in_the_file_is_named_after_its_key_and_the_valid_items_kept(
    config_file: Any,
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    instrumentation_errors: Any,
) -> None:
    path = config_file("  python:\n    internalhttp:\n      known_methods: [GET, BAD METHOD]\n")
    instrumentor.instrument(**providers)

    make_shop().handle_request("GET", "/search", {}, b"")

    [record] = instrumentation_errors.records
    assert record.getMessage().startswith(
        f"OTEL_CONFIG_FILE {path}: instrumentation/development.python.internalhttp.known_methods="
        "['GET', 'BAD METHOD']: 'BAD METHOD' ignored"
    )
    assert one_server_span(span_exporter).attributes["http.request.method"] == "GET"


@pytest.mark.instrumentation_errors
def test_a_value_of_the_wrong_type_in_the_file_is_named_not_raised(
    config_file: Any, instrumentor: Any, providers: dict[str, Any], instrumentation_errors: Any
) -> None:
    config_file("  python:\n    internalhttp:\n      opt_in: 5\n")

    instrumentor.instrument(**providers)

    [record] = instrumentation_errors.records
    assert "internalhttp.opt_in=5 is ignored: expected a comma-separated string" in record.getMessage()


@pytest.mark.instrumentation_errors
def test_the_sdk_activates_the_package_from_the_file_and_unknown_keys_are_named_once(
    config_file: Any,
    instrumentor: Any,
    instrumentation_errors: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = config_file(
        "  python:\n    internalhttp:\n      sensitive_query_parameters: [token]\n"
        "      exclude_urls: /healthz\n"
    )
    from opentelemetry.configuration.instrumentation import configure_instrumentation

    # What the SDK does with the file under opentelemetry-instrument (configure_sdk).
    configure_instrumentation(configuration.load_config_file(path).instrumentation_development)

    assert instrumentor.is_instrumented_by_opentelemetry
    assert internalhttp.server.InternalHTTPServer("shop").sensitive_query_parameters[-1] == "token"
    [record] = instrumentation_errors.records
    assert record.getMessage().startswith(
        f"OTEL_CONFIG_FILE {path}: instrumentation/development.python.internalhttp has unknown key(s) "
        "exclude_urls, ignored; known: excluded_urls, http_capture_headers_server_request, "
    )
    assert [r for r in caplog.records if r.name == INSTRUMENTATION_LOGGER and r.levelname == "WARNING"] == []


def test_enabled_false_in_the_packages_block_keeps_instrument_from_replacing_the_class(
    config_file: Any, instrumentor: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    # opentelemetry-instrument's loader calls instrument() for every installed
    # instrumentation, after the SDK has skipped the disabled ones.
    config_file("  python:\n    internalhttp:\n      enabled: false\n")
    instrumentor.instrument(**providers)

    make_shop().handle_request("GET", "/search", {}, b"")

    assert span_exporter.get_finished_spans() == ()


def test_the_example_file_is_valid_and_names_no_unknown_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry_ext_internalhttp._config import read_config_file, read_settings

    monkeypatch.setenv("OTEL_CONFIG_FILE", str(EXAMPLE))

    settings = read_settings({}, read_config_file())

    assert (settings.captured_request_headers, settings.redacted_query_params[-1]) == (
        ("x-request-id",),
        "token",
    )


APP = """\
from internalhttp.server import InternalHTTPServer

server = InternalHTTPServer("shop")
server.add_route("/healthz", lambda headers, body: {"body": "ok"})
server.add_route("/search", lambda headers, body: {"body": "found"})
server.handle_request("GET", "/healthz", {}, b"")
server.handle_request("GET", "/search?token=t&q=1", {}, b"")
"""

CONSOLE_FILE = """\
file_format: "1.0"
tracer_provider:
  processors:
    - simple:
        exporter:
          console:
instrumentation/development:
  python:
    internalhttp:
      excluded_urls: [/healthz]
      sensitive_query_parameters: [token]
"""


@pytest.mark.timeout(60)
def test_opentelemetry_instrument_with_a_config_file_activates_the_package_with_its_keys(
    tmp_path: Path,
) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "otel-config.yaml").write_text(CONSOLE_FILE)
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(OTEL_CONFIG_FILE=str(tmp_path / "otel-config.yaml"), OTEL_SEMCONV_STABILITY_OPT_IN="http")
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"

    result = subprocess.run(
        [str(instrument), sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert '"name": "GET /healthz"' not in result.stdout
    assert '"url.query": "token=REDACTED&q=1"' in result.stdout
