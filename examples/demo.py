"""The shop demo: two services, one trace, no OpenTelemetry code in the services.

Starts an OTLP/HTTP receiver in this process, runs ``shop.backend`` and
``shop.frontend`` under ``opentelemetry-instrument`` exporting to it, sends the
frontend a few requests, stops both services (SIGTERM: they exit normally and
the SDK flushes), then prints every trace as a tree and a summary of the
``http.server.duration`` histograms.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the services export to that
collector instead and nothing is printed here but the requests.

Run it with ``tox -e demo``, or ``python examples/demo.py`` in an environment
that has the packages of the ``demo`` tox env installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from collector import HistogramPoint, Receiver, Span, merge_points
from launch import Service, otel_environment, start_service, stop_process

# (path, what it shows, expected status). Sent to the frontend in this order.
REQUESTS = [
    ("/checkout/42", "a checkout: the frontend asks the backend", 200),
    ("/checkout/999", "an item the backend does not know", 404),
    ("/no-such-page", "no route at all: the span is named after the method", 404),
    ("/reviews/42", "the backend's handler raises; the frontend passes it on", 500),
]
# A few more of the same checkout, so that the percentiles have something to summarise.
REPEATS = ("/checkout/7", 20)
SERVER_DURATION_METRICS = ("http.server.duration", "http.server.request.duration")


def main() -> int:
    user_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    started = time.monotonic()
    # The ExitStack unwinds first, on any error too: no service or thread outlives the
    # demo, and the log directory goes only after the services that write to it.
    with tempfile.TemporaryDirectory(prefix="shop-demo-") as logs, ExitStack() as cleanup:
        receiver: Optional[Receiver] = None
        endpoint: Optional[str] = None  # None: the services use the caller's OTEL_EXPORTER_OTLP_*
        if user_endpoint:
            print(f"OTEL_EXPORTER_OTLP_ENDPOINT is set: the services export OTLP to {user_endpoint}.")
            print("Look for services 'frontend' and 'backend' there; nothing is collected here.\n")
        else:
            receiver = cleanup.enter_context(Receiver())
            endpoint = receiver.endpoint
            print(f"OTLP/HTTP receiver listening on {endpoint} (in this process).")

        services: list[Service] = []
        try:
            backend = _start("shop.backend", "backend", endpoint, logs, services, cleanup)
            frontend = _start(
                "shop.frontend", "frontend", endpoint, logs, services, cleanup, ["--backend-url", backend.url]
            )
            print()
            ok = _send_requests(frontend.url)
            print()
            for service in reversed(services):  # stopping flushes their telemetry
                status = stop_process(service.process)
                if status != 0:
                    raise RuntimeError(f"{service.name} exited with status {status}")
            print("Stopped both services with SIGTERM; they flushed their telemetry on exit.")
        except Exception as exc:
            print(f"\ndemo failed: {exc}", file=sys.stderr)
            _show_logs(logs)
            return 1

        if receiver is not None:
            print()
            print_traces(receiver.spans())
            print()
            print_metrics(receiver)
            if not receiver.spans(kind="SERVER", service="backend"):
                print(
                    "\nno spans arrived from the backend: is the instrumentation installed?", file=sys.stderr
                )
                _show_logs(logs)
                return 1
        print(f"\nDone in {time.monotonic() - started:.1f} s.")
        return 0 if ok else 1


def _start(
    module: str,
    name: str,
    endpoint: Optional[str],
    logs: str,
    services: list[Service],
    cleanup: ExitStack,
    args: tuple[str, ...] | list[str] = (),
) -> Service:
    log = cleanup.enter_context(open(Path(logs) / f"{name}.log", "w"))  # noqa: SIM115
    service = start_service(module, otel_environment(name, endpoint), log, args)
    cleanup.callback(stop_process, service.process)  # a no-op once it has stopped
    services.append(service)
    print(
        f"  {name:<9} {service.url:<24} pid {service.process.pid}"
        f"  (opentelemetry-instrument python -m {module})"
    )
    return service


def _send_requests(base_url: str) -> bool:
    """Send REQUESTS and REPEATS; say what came back. False if a status was unexpected."""
    ok = True
    print("Requests to the frontend:")
    for path, meaning, expected in REQUESTS:
        status = _get(base_url + path)
        mark = "" if status == expected else f"  (expected {expected}!)"
        ok = ok and status == expected
        print(f"  GET {path:<15} -> {status}  {meaning}{mark}")
    path, count = REPEATS
    statuses = [_get(base_url + path) for _ in range(count)]
    print(
        f"  GET {path:<15} -> {', '.join(sorted({str(s) for s in statuses}))}  x{count}, for the percentiles"
    )
    return ok and set(statuses) == {200}


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def _show_logs(logs: str) -> None:
    for path in sorted(Path(logs).glob("*.log")):
        text = path.read_text(errors="replace").strip()
        if text:
            print(f"\n--- {path.stem} (stderr, last lines) ---", file=sys.stderr)
            print("\n".join(text.splitlines()[-30:]), file=sys.stderr)


# Traces


def print_traces(spans: list[Span]) -> None:
    """One tree per trace, children under their parent, alike traces shown once.

    Two traces are alike when they have the same shape (services, names,
    kinds, statuses), as the repeated checkouts do.
    """
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    shown: dict[tuple[tuple[int, str, str, str, str], ...], list[list[tuple[int, Span]]]] = {}
    for trace in sorted(traces.values(), key=lambda t: min(s.start_ns for s in t)):
        rows = list(_walk(trace))
        shape = tuple((depth, s.service, s.name, s.kind, s.status) for depth, s in rows)
        shown.setdefault(shape, []).append(rows)
    print(f"Traces: {len(traces)}, each a tree of spans (a child is indented under its parent)")
    labels = [_label(depth, span) for group in shown.values() for depth, span in group[0]]
    width = max(map(len, labels), default=0)
    print(f"    {'service   span name':<{width}}  {'kind':<6}  {'status':<6} {'http':>4}  {'ms':>7}")
    for group in shown.values():
        rows = group[0]
        root = rows[0][1]
        alike = f"  (and {len(group) - 1} more like it)" if len(group) > 1 else ""
        print(f"  trace {root.trace_id[:8]}  {_target(root)}{alike}")
        for depth, span in rows:
            print(
                f"    {_label(depth, span):<{width}}  {span.kind:<6}  {span.status:<6}"
                f" {_http_status(span):>4}  {span.duration_ms:7.2f}"
            )


def _walk(trace: list[Span]) -> Iterator[tuple[int, Span]]:
    """Spans depth first, each followed by its children in start order."""
    ids = {span.span_id for span in trace}
    children: dict[str, list[Span]] = defaultdict(list)
    for span in trace:
        # A parent that is not in the trace (not exported, or remote) makes a root.
        children[span.parent_span_id if span.parent_span_id in ids else ""].append(span)

    def visit(parent: str, depth: int) -> Iterator[tuple[int, Span]]:
        for span in sorted(children[parent], key=lambda s: s.start_ns):
            yield depth, span
            yield from visit(span.span_id, depth + 1)

    return visit("", 0)


def _label(depth: int, span: Span) -> str:
    return f"{'  ' * depth}{span.service:<8}  {span.name}"


def _target(span: Span) -> str:
    # The old and the stable HTTP conventions name the request target differently.
    method = span.attributes.get("http.method") or span.attributes.get("http.request.method", "")
    target = span.attributes.get("http.target") or span.attributes.get("url.path", "")
    return f"{method} {target}".strip()


def _http_status(span: Span) -> str:
    code = span.attributes.get("http.status_code") or span.attributes.get("http.response.status_code")
    return str(code) if code else "-"


# Metrics


def print_metrics(receiver: Receiver) -> None:
    """Request count and estimated p50/p95 per service, route and status."""
    name = next((n for n in SERVER_DURATION_METRICS if n in receiver.metric_names()), None)
    if name is None:
        print("Metrics: no HTTP server duration histogram arrived.")
        return
    groups: dict[tuple[str, str, str], list[HistogramPoint]] = defaultdict(list)
    for point in receiver.latest_histogram_points(name):
        groups[(point.service, _route(point), _status(point))].append(point)
    # The stable conventions measure in seconds, the old ones in milliseconds.
    scale = 1000.0 if groups and next(iter(groups.values()))[0].unit == "s" else 1.0
    route_w = max([len("route"), *(len(route) for _, route, _ in groups)])
    status_w = max([len("status"), *(len(status) for _, _, status in groups)])
    print(f"Metrics: {name} per service, route and status (ms; p50/p95 estimated from the buckets)")
    row = "    {:<9} {:<{route_w}}  {:<{status_w}}  {:>5} {:>7} {:>7}"
    print(row.format("service", "route", "status", "count", "p50", "p95", route_w=route_w, status_w=status_w))
    for (service, route, status), points in sorted(groups.items()):
        merged = merge_points(points)
        p50, p95 = (_ms(merged.quantile(q), scale) for q in (0.5, 0.95))
        print(row.format(service, route, status, merged.count, p50, p95, route_w=route_w, status_w=status_w))
    if not all(status.isdigit() for _, _, status in groups):
        print(
            "  A status that is not a number (and http '-' in the traces): the handler raised, so no"
            "\n  status code was recorded, only the exception; the serving layer then answered 500."
        )


def _route(point: HistogramPoint) -> str:
    return str(point.attributes.get("http.route", "(no route)"))


def _status(point: HistogramPoint) -> str:
    code = point.attributes.get("http.status_code") or point.attributes.get("http.response.status_code")
    if code:
        return str(code)
    # The handler raised: the instrumentation saw an exception, not a response
    # (the serving layer answered 500 after it). The stable conventions name it.
    return str(point.attributes.get("error.type", "raised"))


def _ms(value: Optional[float], scale: float) -> str:
    return "-" if value is None else f"{value * scale:.2f}"


if __name__ == "__main__":
    sys.exit(main())
