"""pyperf benchmarks: the cost of one dispatched request, per configuration.

Run through ``run_benchmarks.py``, which calls this script in interleaved
rounds and prints the table. Every pyperf worker process runs one scenario,
so each scenario builds its world (providers, instrumentation, environment)
lazily in its own process and none leaks into another.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from itertools import repeat
from timeit import default_timer
from typing import Any, NamedTuple

import pyperf

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
REQUEST_HEADERS = {
    "Host": "127.0.0.1:8080",
    "User-Agent": "bench/1.0",
    "Accept": "*/*",
    "traceparent": TRACEPARENT,
}
ROUTE = "/hello"
SERVER_ATTRIBUTES = {
    "http.request.method": "GET",
    "url.scheme": "http",
    "url.path": ROUTE,
    "http.route": ROUTE,
    "server.address": "127.0.0.1",
    "user_agent.original": "bench/1.0",
}
EXCLUDED_PATH = "/healthz"


def _hello(headers, body):
    return {"status": 200, "body": "hi"}


def _server(server_class=None):
    import internalhttp.server

    server = (server_class or internalhttp.server.InternalHTTPServer)("bench")
    server.add_route(ROUTE, _hello)
    server.add_route(EXCLUDED_PATH, _hello)
    return server


class SdkParts(NamedTuple):
    """One SDK set-up, with the pieces that tell what it recorded.

    The throughput and memory benchmarks check that every request really
    made a span and a duration measurement; the dispatch scenarios only need
    the two providers (``_sdk()``).
    """

    tracer_provider: Any
    meter_provider: Any
    exporter: Any  # has ``exported``: the number of spans it was handed
    reader: Any  # the InMemoryMetricReader


def _sdk_parts(sampler=None, exporter=None) -> SdkParts:
    """TracerProvider + BatchSpanProcessor into a dropping exporter, MeterProvider + in-memory reader.

    ``exporter`` replaces the dropping one (it must count into ``exported``
    too); the batch processor's settings are the SDK's, ``OTEL_BSP_*`` included.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class _DroppingExporter(SpanExporter):
        exported = 0

        def export(self, spans):
            # One addition per batch (up to 512 spans), on the processor's
            # own thread: too little to show in any measurement.
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

    exporter = exporter or _DroppingExporter()
    reader = InMemoryMetricReader()
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    return SdkParts(tracer_provider, meter_provider, exporter, reader)


def _sdk(sampler=None):
    """TracerProvider + BatchSpanProcessor into a dropping exporter, MeterProvider + in-memory reader."""
    parts = _sdk_parts(sampler)
    return parts.tracer_provider, parts.meter_provider


def _semconv(mode: str) -> None:
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability

    if mode:
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = mode
    else:
        os.environ.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
    _OpenTelemetrySemanticConventionStability._initialized = False


def _dispatch(server, path=ROUTE) -> Callable[[], object]:
    # serve_request is what every serving layer calls for a request: route,
    # handler, and the response as the client gets it. Every scenario and
    # reference goes through it, so all of them pay the same framework work.
    serve_request = server.serve_request
    return lambda: serve_request("GET", path, REQUEST_HEADERS, b"")


def _instrumented(mode: str = "", sdk: bool = True, sampler=None, **kwargs) -> object:
    from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

    _semconv(mode)
    if sdk:
        tracer_provider, meter_provider = _sdk(sampler)
        kwargs.update(tracer_provider=tracer_provider, meter_provider=meter_provider)
    InternalHTTPInstrumentor().instrument(**kwargs)
    return _server()


# -- scenarios: each returns the zero-argument call that is one request ----


def bare():
    return _dispatch(_server())


def instrumented_default():
    return _dispatch(_instrumented(""))


def instrumented_stable():
    return _dispatch(_instrumented("http"))


def instrumented_dup():
    return _dispatch(_instrumented("http/dup"))


def instrumented_api_only():
    return _dispatch(_instrumented("", sdk=False))


def instrumented_always_off():
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    return _dispatch(_instrumented("", sampler=ALWAYS_OFF))


def instrumented_suppressed():
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    call = _dispatch(_instrumented(""))
    # Entered once and never left: the whole run is inside the suppression.
    # The context manager is kept alive, since collecting it would exit it.
    suppression = suppress_instrumentation()
    suppression.__enter__()
    _kept_alive.append(suppression)
    return call


def instrumented_excluded():
    return _dispatch(_instrumented("", excluded_urls=EXCLUDED_PATH), EXCLUDED_PATH)


def after_uninstrument():
    from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

    server = _instrumented("")  # made while instrumented: the subclass stays
    InternalHTTPInstrumentor().uninstrument()
    return _dispatch(server)


# -- the references: OpenTelemetry calls written out, no instrumentation -----


def _sdk_batch_wrapper(tracer, meter) -> Callable[..., object]:
    """``b_sdk_batch``: what one request minimally costs with the SDK defaults (issue 14).

    W3C extract from the request headers (global propagator); ``start_span``
    (SERVER, 6 attributes); the active-requests up/down counter +1 (4
    attributes) outside the span's context; the span's context attached
    around the handler; one more span attribute after it; the duration
    histogram (4 attributes) recorded inside the span's context, so the
    default trace-based exemplar filter runs; end; detach; counter -1.

    Returns ``one_request(dispatch, method, path, headers, body, **kwargs)``,
    which does that work around ``dispatch(...)``: here around a bare
    server's ``handle_request``, and in ``bench_throughput.py`` around the
    socket server's calls, so that both measure the same SDK calls.
    """
    from opentelemetry import context
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind, set_span_in_context

    attach, detach = context.attach, context.detach
    histogram = meter.create_histogram("http.server.request.duration", unit="s")
    active_requests = meter.create_up_down_counter("http.server.active_requests", unit="{request}")

    def one_request(dispatch, method, path, headers, body, **kwargs):
        parent = extract(headers)
        span = tracer.start_span(
            "GET /hello", context=parent, kind=SpanKind.SERVER, attributes=SERVER_ATTRIBUTES
        )
        active_attributes = {
            "http.request.method": "GET",
            "url.scheme": "http",
            "server.address": "127.0.0.1",
            "server.port": 8080,
        }
        active_requests.add(1, active_attributes)
        token = attach(set_span_in_context(span, parent))
        start = default_timer()
        try:
            response = dispatch(method, path, headers, body, **kwargs)
            status = response["status"]
            span.set_attribute("http.response.status_code", status)
            histogram.record(
                default_timer() - start,
                {
                    "http.request.method": "GET",
                    "url.scheme": "http",
                    "http.route": ROUTE,
                    "http.response.status_code": status,
                },
            )
        finally:
            span.end()
            detach(token)
            active_requests.add(-1, active_attributes)
        return response

    return one_request


def _issue6_wrapper(tracer, meter) -> Callable[..., object]:
    """``b_sdk_issue6``: issue 6's "minimal SDK reference", kept as a second line.

    ``start_as_current_span`` with 6 attributes and one set after the
    handler; the active-requests counter (3 attributes) and the duration
    histogram (4 attributes) both outside the span's context, so no
    exemplar is offered. It under-states what a server instrumentation
    needs: a duration recorded outside the span cannot link to the trace.
    """
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    histogram = meter.create_histogram("http.server.request.duration", unit="s")
    active_requests = meter.create_up_down_counter("http.server.active_requests", unit="{request}")

    def one_request(dispatch, method, path, headers, body, **kwargs):
        context = extract(headers)
        active_attributes = {
            "http.request.method": "GET",
            "url.scheme": "http",
            "server.address": "127.0.0.1",
        }
        active_requests.add(1, active_attributes)
        start = default_timer()
        with tracer.start_as_current_span(
            "GET /hello", context=context, kind=SpanKind.SERVER, attributes=SERVER_ATTRIBUTES
        ) as span:
            response = dispatch(method, path, headers, body, **kwargs)
            span.set_attribute("http.response.status_code", response["status"])
        histogram.record(
            default_timer() - start,
            {
                "http.request.method": "GET",
                "url.scheme": "http",
                "http.route": ROUTE,
                "http.response.status_code": 200,
            },
        )
        active_requests.add(-1, active_attributes)
        return response

    return one_request


def _around_bare(wrapper, tracer, meter):
    one_request = wrapper(tracer, meter)
    server = _server()
    # The SDK calls around the handler, inside a bare server's serve_request,
    # as bench_throughput's reference server has them around the socket's.
    server.handle_request = partial(one_request, server.handle_request)
    return partial(server.serve_request, "GET", ROUTE, REQUEST_HEADERS, b"")


def _with_sdk(wrapper, sampler=None):
    tracer_provider, meter_provider = _sdk(sampler)
    return _around_bare(wrapper, tracer_provider.get_tracer("bench"), meter_provider.get_meter("bench"))


def _with_api_only(wrapper):
    from opentelemetry import metrics, trace

    return _around_bare(wrapper, trace.get_tracer("bench"), metrics.get_meter("bench"))


def b_sdk_batch():
    return _with_sdk(_sdk_batch_wrapper)


def b_sdk_issue6():
    return _with_sdk(_issue6_wrapper)


def b_sdk_always_off():
    """b_sdk_batch's calls with the ALWAYS_OFF sampler: the written-out sampled-out request."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    return _with_sdk(_sdk_batch_wrapper, ALWAYS_OFF)


def b_api_only():
    """b_sdk_batch's calls against the API's no-op providers (no SDK installed)."""
    return _with_api_only(_sdk_batch_wrapper)


def b_api_context_only():
    """The least a no-SDK request needs: the caller's extracted context attached around the handler."""
    from opentelemetry import context
    from opentelemetry.propagate import extract

    attach, detach = context.attach, context.detach
    server = _server()
    handle_request = server.handle_request

    def one_request(method, target, headers, body, **kwargs):
        token = attach(extract(headers))
        try:
            return handle_request(method, target, headers, body, **kwargs)
        finally:
            detach(token)

    server.handle_request = one_request
    return partial(server.serve_request, "GET", ROUTE, REQUEST_HEADERS, b"")


# -- the ablation: the project's calls replayed with none of its code --------


def replay_default():
    from bench_replay import replay

    return replay("")


def replay_stable():
    from bench_replay import replay

    return replay("http")


def replay_always_off():
    from bench_replay import replay
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    return replay("", ALWAYS_OFF)


# -- contrib, for comparison -------------------------------------------------


def _trivial_wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "2")])
    return [b"hi"]


_WSGI_ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": ROUTE,
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8080",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "HTTP_HOST": "127.0.0.1:8080",
    "HTTP_USER_AGENT": "bench/1.0",
    "HTTP_ACCEPT": "*/*",
    "HTTP_TRACEPARENT": TRACEPARENT,
    "wsgi.url_scheme": "http",
}


def _call_wsgi(app):
    def start_response(status, headers, exc_info=None):
        return None

    def one_request():
        return b"".join(app(dict(_WSGI_ENVIRON), start_response))

    return one_request


def wsgi_bare():
    return _call_wsgi(_trivial_wsgi_app)


def wsgi_contrib_middleware():
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    _semconv("")
    tracer_provider, meter_provider = _sdk()
    return _call_wsgi(
        OpenTelemetryMiddleware(
            _trivial_wsgi_app, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    )


def _flask_app():
    import flask

    app = flask.Flask("bench")
    app.add_url_rule(ROUTE, "hello", lambda: "hi")
    return app


def _call_flask(app):
    import io

    def start_response(status, headers, exc_info=None):
        return None

    def one_request():
        environ = dict(_WSGI_ENVIRON)
        environ["wsgi.input"] = io.BytesIO(b"")
        return b"".join(app(environ, start_response))

    return one_request


def flask_bare():
    return _call_flask(_flask_app())


def flask_contrib():
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    _semconv("")
    tracer_provider, meter_provider = _sdk()
    app = _flask_app()
    FlaskInstrumentor.instrument_app(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
    return _call_flask(app)


def _flask_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("flask") is not None and find_spec("opentelemetry.instrumentation.flask") is not None


# Every scenario, in table order. The "ablation" ones run only with
# run_benchmarks.py --ablation, the Flask ones only where Flask and its
# instrumentation are installed (the tox env has them).
SCENARIOS: dict[str, Callable[[], Callable[[], object]]] = {
    scenario.__name__: scenario
    for scenario in (
        bare,
        b_sdk_batch,
        b_sdk_issue6,
        instrumented_default,
        instrumented_stable,
        instrumented_dup,
        b_api_only,
        b_api_context_only,
        instrumented_api_only,
        b_sdk_always_off,
        instrumented_always_off,
        instrumented_suppressed,
        instrumented_excluded,
        after_uninstrument,
        replay_default,
        replay_stable,
        replay_always_off,
        wsgi_bare,
        wsgi_contrib_middleware,
        flask_bare,
        flask_contrib,
    )
}
ABLATION = ("replay_default", "replay_stable", "replay_always_off")
FLASK = ("flask_bare", "flask_contrib")


def default_scenarios(ablation: bool) -> list[str]:
    """The scenarios a run times: all but the ablation ones unless asked, and Flask only if installed."""
    skipped = set() if ablation else set(ABLATION)
    if not _flask_installed():
        skipped.update(FLASK)
    return [name for name in SCENARIOS if name not in skipped]


def _time_scenario(loops: int, name: str, clock: Callable[[], float]) -> float:
    call = _built.get(name)
    if call is None:
        call = _built[name] = SCENARIOS[name]()
    start = clock()
    for _ in repeat(None, loops):
        call()
    return clock() - start


# "cpu": the CPU time of the worker process (all its threads, the span
# processor's included). On a machine shared with other jobs a process
# that waits for a core is not charged for the wait, so this is far less
# disturbed than the wall clock, which counts every moment descheduled.
# "wall": the wall clock, for a quiet machine.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": default_timer}


_built: dict[str, Callable[[], object]] = {}
_kept_alive: list[object] = []


def _pass_order_to_workers(cmd: list[str], args: Any) -> None:
    # pyperf tells a worker which benchmark to run by its position, so the
    # workers must register the same scenarios in the same order as the parent.
    if args.reverse_order:
        cmd.append("--reverse-order")
    if args.scenarios:
        cmd.extend(("--scenarios", args.scenarios))
    cmd.extend(("--clock", args.clock))


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=_pass_order_to_workers)
    runner.argparser.add_argument(
        "--reverse-order",
        action="store_true",
        help="run the scenarios last to first (run_benchmarks.py does so every other round)",
    )
    runner.argparser.add_argument(
        "--scenarios",
        help="comma-separated scenarios to time, in this order (default: all but the ablation ones)",
    )
    runner.argparser.add_argument(
        "--clock", choices=CLOCKS, default="cpu", help="what a value measures (default: cpu, see CLOCKS)"
    )
    args = runner.parse_args()
    names = args.scenarios.split(",") if args.scenarios else default_scenarios(ablation=False)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        runner.argparser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    for name in reversed(names) if args.reverse_order else names:
        runner.bench_time_func(name, _time_scenario, name, CLOCKS[args.clock])


if __name__ == "__main__":
    main()
