"""Request and response body content, opted in by name: textual bodies only, decoded, bounded.

``http.request.body.content`` and ``http.response.body.content``
(semantic conventions main, Opt-In, Development) are recorded in the
stable conventions when ``opt_in`` names them: the body with its content
coding removed, as text, cut to ``body_capture_limit`` bytes on a
character boundary. The handler and the client see the bytes unchanged.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from internalhttp.server import InternalHTTPServer
from layer_testing import LAYERS, call_directly, call_socket
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import ALL_MODES, DUP_MODE, OLD, STABLE, STABLE_MODE, STABLE_MODES, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

REQUEST_CONTENT = "http.request.body.content"
RESPONSE_CONTENT = "http.response.body.content"
BOTH = f"{REQUEST_CONTENT},{RESPONSE_CONTENT}"
SCHEMA_1_45 = "https://opentelemetry.io/schemas/1.45.0"


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    """A server with one POST route answering with ``handler``, instrumented with ``options``."""

    def make(handler: Callable[[Any, bytes], Any], **options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route("/orders", lambda headers, body: handler(headers, body), method="POST")
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


def reply(content_type: str, body: bytes, **headers: str) -> Callable[[Any, bytes], Any]:
    return lambda request_headers, request_body: {
        "status": 200,
        "headers": {"Content-Type": content_type, **headers},
        "body": body,
    }


def post(server: InternalHTTPServer, content_type: str, body: bytes, **headers: str) -> None:
    call_directly(server, "POST", "/orders", {"Content-Type": content_type, **headers}, body)


def raw_deflate(data: bytes) -> bytes:
    """Deflate without the zlib framing, as some servers send ``Content-Encoding: deflate``."""
    # compressobj, not compress(wbits=): Python 3.10 has no wbits there.
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


TEXTUAL_TYPES = [
    "text/plain",
    "text/csv",
    "application/json",
    "application/problem+json",
    "application/xml",
    "application/atom+xml",
    "application/yaml",
    "application/vnd.shop+yaml",
    "application/x-www-form-urlencoded",
    "application/vnd.shop.order; charset=utf-8",
    "Application/JSON",
    "TEXT/Plain; Charset=UTF-8",
]
BINARY_TYPES = ["application/octet-stream", "image/png", "multipart/form-data; boundary=x", "application/pdf"]


@STABLE
@pytest.mark.parametrize("content_type", TEXTUAL_TYPES)
def test_a_textual_request_body_is_recorded_as_text(
    make_app: Any, span_exporter: InMemorySpanExporter, content_type: str
) -> None:
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, content_type, b"id=7&item=tea")

    assert one_server_span(span_exporter).attributes[REQUEST_CONTENT] == "id=7&item=tea"


@STABLE
@pytest.mark.parametrize("content_type", TEXTUAL_TYPES)
def test_a_textual_response_body_is_recorded_as_text(
    make_app: Any, span_exporter: InMemorySpanExporter, content_type: str
) -> None:
    server = make_app(reply(content_type, b'{"id": 7}'), opt_in=RESPONSE_CONTENT)

    post(server, "text/plain", b"")

    assert one_server_span(span_exporter).attributes[RESPONSE_CONTENT] == '{"id": 7}'


@STABLE
@pytest.mark.parametrize("content_type", [*BINARY_TYPES, None])
def test_a_body_of_a_binary_or_unnamed_type_is_not_recorded(
    make_app: Any, span_exporter: InMemorySpanExporter, content_type: Any
) -> None:
    payload = b"\x89PNG\r\n\x1a\n\x00\x00"
    headers = {} if content_type is None else {"Content-Type": content_type}

    def handler(request_headers: Any, request_body: bytes) -> Any:
        return {"status": 200, "headers": headers, "body": payload}

    server = make_app(handler, opt_in=BOTH)

    call_directly(server, "POST", "/orders", headers, payload)

    attributes = one_server_span(span_exporter).attributes
    assert REQUEST_CONTENT not in attributes
    assert RESPONSE_CONTENT not in attributes


@STABLE
def test_the_charset_named_decodes_the_body(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app(reply("text/plain; charset=iso-8859-1", "déjà vu".encode("latin-1")), opt_in=BOTH)

    post(server, "text/plain; charset=iso-8859-1", "café".encode("latin-1"))

    attributes = one_server_span(span_exporter).attributes
    assert attributes[REQUEST_CONTENT] == "café"
    assert attributes[RESPONSE_CONTENT] == "déjà vu"


@STABLE_MODES
@pytest.mark.parametrize("layer", LAYERS)
def test_both_bodies_are_recorded_through_every_serving_layer(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    server = make_app(reply("application/json", b'{"total": 12}'), opt_in=BOTH)

    LAYERS[layer](server, "POST", "/orders", {"Content-Type": "application/json"}, b'{"item": "tea"}')

    attributes = one_server_span(span_exporter).attributes
    assert attributes[REQUEST_CONTENT] == '{"item": "tea"}'
    assert attributes[RESPONSE_CONTENT] == '{"total": 12}'


@ALL_MODES
def test_bodies_are_not_recorded_unless_opted_in(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app(reply("application/json", b"{}"))

    post(server, "application/json", b'{"card": "4111"}')

    attributes = one_server_span(span_exporter).attributes
    assert REQUEST_CONTENT not in attributes
    assert RESPONSE_CONTENT not in attributes


@ALL_MODES
def test_opt_in_all_does_not_record_bodies(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app(reply("application/json", b"{}"), opt_in="all")

    post(server, "application/json", b'{"card": "4111"}')

    attributes = one_server_span(span_exporter).attributes
    assert REQUEST_CONTENT not in attributes
    assert RESPONSE_CONTENT not in attributes


@OLD
def test_the_old_conventions_do_not_record_bodies_even_when_opted_in(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(reply("application/json", b"{}"), opt_in=BOTH)

    post(server, "application/json", b'{"item": "tea"}')

    span = one_server_span(span_exporter)
    assert REQUEST_CONTENT not in span.attributes
    assert RESPONSE_CONTENT not in span.attributes
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.schema_url != SCHEMA_1_45


@STABLE_MODES
def test_the_tracer_uses_schema_1_45_when_bodies_are_opted_in(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, "text/plain", b"x")

    scope = one_server_span(span_exporter).instrumentation_scope
    assert scope is not None
    assert scope.schema_url == SCHEMA_1_45


@STABLE
def test_the_schema_stays_1_44_without_the_body_opt_ins(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(reply("text/plain", b"ok"), opt_in="all")

    post(server, "text/plain", b"x")

    scope = one_server_span(span_exporter).instrumentation_scope
    assert scope is not None
    assert scope.schema_url == "https://opentelemetry.io/schemas/1.44.0"


@pytest.mark.parametrize("semconv_mode", [STABLE_MODE, DUP_MODE], indirect=True)
@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "raw-deflate"])
def test_the_content_coding_is_removed_from_the_recorded_request_body(
    make_app: Any, span_exporter: InMemorySpanExporter, coding: str
) -> None:
    text = b'{"item": "tea", "quantity": 3}'
    encoded = {
        "gzip": gzip.compress(text),
        "x-gzip": gzip.compress(text),
        "deflate": zlib.compress(text),
        "raw-deflate": raw_deflate(text),
    }[coding]
    header = "deflate" if coding == "raw-deflate" else coding
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, "application/json", encoded, **{"Content-Encoding": header})

    assert one_server_span(span_exporter).attributes[REQUEST_CONTENT] == text.decode()


@STABLE
def test_the_content_coding_is_removed_from_the_recorded_response_body(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(
        reply("text/html", gzip.compress(b"<p>thanks</p>"), **{"Content-Encoding": "gzip"}),
        opt_in=RESPONSE_CONTENT,
    )

    post(server, "text/plain", b"")

    assert one_server_span(span_exporter).attributes[RESPONSE_CONTENT] == "<p>thanks</p>"


@STABLE
def test_a_body_in_an_unknown_content_coding_is_not_recorded(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, "text/plain", b"\x1b\x00brotli?", **{"Content-Encoding": "br"})

    assert REQUEST_CONTENT not in one_server_span(span_exporter).attributes


@STABLE
def test_the_limit_is_in_bytes(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app(reply("text/plain", b"0123456789"), opt_in=BOTH, body_capture_limit=4)

    post(server, "text/plain", b"abcdefghij")

    attributes = one_server_span(span_exporter).attributes
    assert attributes[REQUEST_CONTENT] == "abcd"
    assert attributes[RESPONSE_CONTENT] == "0123"


@STABLE
@pytest.mark.parametrize(("limit", "recorded"), [(1, "a"), (2, "a"), (3, "a"), (4, "a€"), (5, "a€b")])
def test_the_limit_cuts_on_a_character_boundary(
    make_app: Any, span_exporter: InMemorySpanExporter, limit: int, recorded: str
) -> None:
    # "€" is three bytes in UTF-8: a limit inside it leaves it out whole.
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT, body_capture_limit=limit)

    post(server, "text/plain; charset=utf-8", "a€bc".encode())

    assert one_server_span(span_exporter).attributes[REQUEST_CONTENT] == recorded


@STABLE
def test_a_limit_of_zero_records_nothing(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app(reply("text/plain", b"ok"), opt_in=BOTH, body_capture_limit=0)

    post(server, "text/plain", b"hello")

    attributes = one_server_span(span_exporter).attributes
    assert REQUEST_CONTENT not in attributes
    assert RESPONSE_CONTENT not in attributes


@STABLE
def test_the_default_limit_is_8_kib(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, "text/plain", b"x" * 20000)

    assert one_server_span(span_exporter).attributes[REQUEST_CONTENT] == "x" * 8192


@STABLE
def test_the_limit_comes_from_its_environment_variable(
    make_app: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_BODY_CAPTURE_LIMIT", "5")
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, "text/plain", b"hello world")

    assert one_server_span(span_exporter).attributes[REQUEST_CONTENT] == "hello"


@STABLE
@pytest.mark.instrumentation_errors
def test_an_invalid_limit_variable_is_logged_and_the_default_applies(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_BODY_CAPTURE_LIMIT", "8k")
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, "text/plain", b"y" * 9000)

    assert one_server_span(span_exporter).attributes[REQUEST_CONTENT] == "y" * 8192
    [record] = instrumentation_errors.records
    assert "OTEL_PYTHON_INTERNALHTTP_BODY_CAPTURE_LIMIT" in record.getMessage()
    assert "'8k'" in record.getMessage()


@STABLE
@pytest.mark.timeout(60)
def test_a_decompression_bomb_is_inflated_no_further_than_the_limit(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))  # 10 MiB of zeros, about 10 KiB sent
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT, body_capture_limit=1024)

    tracemalloc.start()
    try:
        post(server, "text/plain", bomb, **{"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert one_server_span(span_exporter).attributes[REQUEST_CONTENT] == "\0" * 1024
    assert peak < 1024 * 1024, f"recording a 10 KiB body took {peak} bytes at its peak"


@STABLE
@pytest.mark.parametrize("layer", LAYERS)
def test_the_handler_receives_the_request_body_unchanged(make_app: Any, layer: str) -> None:
    sent = gzip.compress("héllo".encode() * 100)
    received: list[bytes] = []

    def handler(headers: Any, body: bytes) -> Any:
        received.append(body)
        return "ok"

    server = make_app(handler, opt_in=BOTH, body_capture_limit=3)

    LAYERS[layer](server, "POST", "/orders", {"Content-Type": "text/plain", "Content-Encoding": "gzip"}, sent)

    assert received == [sent]


@STABLE
@pytest.mark.parametrize("layer", LAYERS)
def test_the_client_receives_the_response_body_unchanged(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    sent = gzip.compress("wörld".encode() * 100)
    server = make_app(
        reply("text/plain", sent, **{"Content-Encoding": "gzip"}), opt_in=BOTH, body_capture_limit=3
    )

    received = LAYERS[layer](server, "POST", "/orders", {"Content-Type": "text/plain"}, b"")

    assert received.body == sent
    assert received.values("Content-Encoding") == ["gzip"]
    assert one_server_span(span_exporter).attributes[RESPONSE_CONTENT] == "wö"


@STABLE
def test_a_text_response_the_handler_returns_as_a_string_is_recorded(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(lambda headers, body: "grüße", opt_in=RESPONSE_CONTENT)

    received = call_socket(server, "POST", "/orders", {}, b"")

    assert received.body == "grüße".encode()
    assert one_server_span(span_exporter).attributes[RESPONSE_CONTENT] == "grüße"


@STABLE
def test_a_body_whose_content_coding_is_corrupt_is_not_recorded(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, "text/plain", b"not gzip at all", **{"Content-Encoding": "gzip"})

    span = one_server_span(span_exporter)
    assert REQUEST_CONTENT not in span.attributes
    assert span.attributes["http.response.status_code"] == 200


@STABLE
def test_bytes_invalid_in_the_charset_are_recorded_as_replacement_characters(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(reply("text/plain", b"ok"), opt_in=REQUEST_CONTENT)

    post(server, "application/json", b'{"a": "\xff"}')

    assert one_server_span(span_exporter).attributes[REQUEST_CONTENT] == '{"a": "\ufffd"}'
