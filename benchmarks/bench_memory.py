"""Memory: does an instrumented server keep growing as hostile requests go by?

In this process: the SDK set up as in ``bench_dispatch.py`` (TracerProvider +
BatchSpanProcessor into a dropping exporter, MeterProvider +
InMemoryMetricReader), the instrumentation with its default configuration,
and two routes, ``/hello`` and ``/users/<user_id>`` (GET only), called
in-process through ``handle_request``. Every request varies what a client
controls (the hostile inputs of the first issue), most of it never seen twice:

- the path: a new ``/users/<n>``, a new unknown ``/scan/<n>/wp-admin.php``
  (404), or ``/hello``;
- the query: a new ``?q=<n>&sig=<n>`` on every request;
- the ``Host`` header: a new ``h<n>.example:<port>`` on every request;
- the HTTP version: ``1.0``, ``1.1`` or a new ``1.<n>`` (the socket layer
  passes on any ``HTTP/<digits>.<digits>`` a client sends);
- the method: GET, POST, PUT, DELETE or a new ``M<n>`` (405 on a route, 404
  elsewhere).

Two checks, at every reading:

- memory: the resident set size after a 10k-request warm-up and at 5 evenly
  spaced points up to 200k requests; the budget is a growth under 5 MB;
- metric streams: the data points of each metric must stay within what the
  bounded attributes allow (routes x methods x statuses x versions x
  schemes, ``STREAM_BOUND``); whatever a client can vary at will (host,
  path, query, a made-up version or method) must not open a new stream.
  The SDK (1.45) has no cardinality limit, so every stream it is handed is
  kept for the life of the process. Attributes with many distinct values
  are named in the output.

Before each reading the span queue is flushed, the metrics are collected
and the garbage collector runs, so that every reading is taken in the same
state and only what requests left behind remains.

``--capture-all-methods`` sets ``OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS``:
the methods as sent are then kept on spans and metrics, by the user's
choice, so the stream bound is not checked for methods (the memory budget is).

Why VmRSS from /proc/self/status and not ``resource.getrusage().ru_maxrss``:
ru_maxrss is the peak over the whole life of the process, so it can only
tell the largest the process ever was, never what it holds now; a
transient peak (the span queue filling up between two exports) would count
as growth, and a real leak smaller than an earlier peak would not show at
all. VmRSS is the resident size at the moment of reading. Where
/proc/self/status does not exist (macOS) the script falls back to ru_maxrss
and says so.

    python benchmarks/bench_memory.py [--requests 200000] [--warmup 10000] [--capture-all-methods]
                                      [--semconv http] [--check]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_dispatch  # noqa: E402  (a sibling script, importable once its folder is on the path)

ROUTE = "/users/<user_id>"
BUDGET_MB = 5.0
# What the requests cycle through; the last entry of each is made new per request.
METHODS = ("GET", "POST", "PUT", "DELETE", None)  # None: "M<n>"
VERSIONS = ("1.0", "1.1", None)  # None: "1.<n>"
PATHS = ("/users/{n}", "/scan/{n}/wp-admin.php", "/hello")
# The most metric streams bounded attributes allow: routes (/hello,
# /users/<user_id>, none) x methods (4 + _OTHER) x statuses (200, 404, 405)
# x versions (1.0, 1.1, one for anything else) x schemes (http).
STREAM_BOUND = 3 * 5 * 3 * 3 * 1
# Past this growth the budget is missed for certain: the run stops there
# (unless --keep-going) instead of spending minutes and a GB on the rest.
EARLY_STOP_MB = 4 * BUDGET_MB
# An attribute with more distinct values than this is named as a suspect.
MANY_VALUES = 16
SAMPLES = 5  # readings between the warm-up and the end, to show a trend
DEADLINE_CHECK_EVERY = 1000  # requests between two looks at the clock


def _user(headers: Any, body: bytes, user_id: str) -> dict[str, Any]:
    return {"status": 200, "body": user_id}


def rss_bytes() -> tuple[int, str]:
    """The resident set size now, and where it was read from."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024, "VmRSS"  # the kernel writes kB
    except OSError:
        pass
    # Kilobytes on Linux, bytes on macOS; only the macOS case gets here.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024), "ru_maxrss (peak, not current)"


def _metrics(reader: Any) -> dict[str, list[Any]]:
    """Every metric the reader collected now: name -> its data points."""
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _suspects(points: list[Any]) -> str:
    """The attributes with many distinct values over ``points``, most first."""
    values: dict[str, set[Any]] = {}
    for point in points:
        for key, value in (point.attributes or {}).items():
            values.setdefault(key, set()).add(value)
    many = sorted(((len(seen), key) for key, seen in values.items() if len(seen) > MANY_VALUES), reverse=True)
    return ", ".join(f"{key} ({count} values)" for count, key in many) or "none"


def _stream_problems(metrics: dict[str, list[Any]], bound: Optional[int]) -> list[str]:
    problems = []
    for name, points in metrics.items():
        if bound is not None and len(points) > bound:
            problems.append(
                f"{name}: {len(points)} metric streams, more than bounded attributes allow ({bound});"
                f" attributes with many values: {_suspects(points)}"
            )
    return problems


def _request(number: int) -> tuple[str, str, dict[str, str], Any]:
    """Method, target, headers and connection of request ``number``: hostile, mostly never seen before."""
    from internalhttp.server import ConnectionInfo

    method = METHODS[number % len(METHODS)] or f"M{number}"
    version = VERSIONS[number % len(VERSIONS)] or f"1.{number}"
    path = PATHS[number % len(PATHS)].format(n=number)
    headers = dict(bench_dispatch.REQUEST_HEADERS)
    headers["Host"] = f"h{number}.example:{1024 + number % 60000}"
    connection = ConnectionInfo(
        client_address="127.0.0.1", client_port=40000 + number % 20000, protocol_version=version
    )
    return method, f"{path}?q={number}&sig={number}", headers, connection


class MemoryBenchmark:
    """An instrumented server, its SDK, and the requests sent to it so far."""

    def __init__(self, stream_bound: Optional[int], semconv: str = "") -> None:
        self.sdk = bench_dispatch._sdk_parts()
        self.server = bench_dispatch._instrumented(
            semconv,
            sdk=False,
            tracer_provider=self.sdk.tracer_provider,
            meter_provider=self.sdk.meter_provider,
        )
        self.server.add_route(ROUTE, _user)
        self.stream_bound = stream_bound
        self.sent = 0
        self.problems: list[str] = []
        self.streams: dict[str, int] = {}

    def send(self, count: int, deadline: float) -> None:
        handle_request: Callable[..., Any] = self.server.handle_request
        for number in range(self.sent, self.sent + count):
            method, target, headers, connection = _request(number)
            response = handle_request(method, target, headers, b"", connection=connection)
            if response["status"] not in (200, 404, 405):
                raise RuntimeError(f"request {number} answered {response!r}")
            if number % DEADLINE_CHECK_EVERY == 0 and time.monotonic() > deadline:
                raise TimeoutError(f"stopped after {number} requests: over --max-seconds")
        self.sent += count

    def settle(self) -> tuple[int, str]:
        """Bring the process to the same state as at every other reading; return the RSS."""
        self.sdk.tracer_provider.force_flush()
        metrics = _metrics(self.sdk.reader)
        durations = metrics.get("http.server.duration", []) + metrics.get("http.server.request.duration", [])
        counted = sum(point.count for point in durations)
        # The state at the latest reading: streams only ever grow.
        self.problems = _stream_problems(metrics, self.stream_bound)
        if counted != self.sent:
            self.problems.append(f"the duration histogram counted {counted} of {self.sent} requests")
        self.streams = {name: len(points) for name, points in metrics.items()}
        del metrics, durations
        gc.collect()
        return rss_bytes()


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--warmup", type=int, default=10_000, help="requests before the baseline (default 10k)"
    )
    parser.add_argument("--requests", type=int, default=200_000, help="requests in all (default 200k)")
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="give up after this long (default 600)"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="list the source lines whose allocations grew most, to find a leak; several times"
        " slower, and no budget check since tracemalloc's own bookkeeping then counts in the RSS",
    )
    parser.add_argument(
        "--capture-all-methods",
        action="store_true",
        help="set OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS (methods as sent are then kept)",
    )
    parser.add_argument(
        "--semconv",
        default="",
        help="OTEL_SEMCONV_STABILITY_OPT_IN for the run: http or http/dup (default: unset, old conventions)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help=f"do not stop once the growth is over {EARLY_STOP_MB:g} MB"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the budget is not met")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.requests:
        parser.error("need 0 < --warmup < --requests")
    if args.check and args.tracemalloc:
        parser.error("--tracemalloc inflates the RSS; it cannot be combined with --check")
    return args


def _measure(args: argparse.Namespace, bench: MemoryBenchmark) -> float:
    """Send the requests, print the readings; return the growth in MB."""
    deadline = time.monotonic() + args.max_seconds
    started = time.perf_counter()
    bench.send(args.warmup, deadline)
    baseline, source = bench.settle()
    snapshot = None
    if args.tracemalloc:
        tracemalloc.start()
        snapshot = tracemalloc.take_snapshot()
    setting = ", all methods captured" if args.capture_all_methods else ""
    print(f"memory: {source} of one instrumented process, hostile requests{setting}")
    print(f"  after {bench.sent:>7} requests: {baseline / 2**20:8.1f} MB  (baseline)")

    # Evenly spaced readings up to the end: a leak grows steadily, while a
    # one-off allocation (a cache filling up to its bound) is a single step.
    remaining = args.requests - args.warmup
    for sample in range(1, SAMPLES + 1):
        bench.send(remaining * sample // SAMPLES - remaining * (sample - 1) // SAMPLES, deadline)
        rss, _ = bench.settle()
        streams = " ".join(f"{name}={count}" for name, count in sorted(bench.streams.items()))
        print(
            f"  after {bench.sent:>7} requests: {rss / 2**20:8.1f} MB  ({(rss - baseline) / 2**20:+.2f} MB)"
            f"  streams: {streams}"
        )
        if (rss - baseline) / 2**20 > EARLY_STOP_MB and not args.keep_going:
            print(f"  stopped early: over {EARLY_STOP_MB:g} MB of growth already (--keep-going to go on)")
            break
    seconds = time.perf_counter() - started

    if snapshot is not None:
        print("\nlargest growth by source line (tracemalloc):")
        for difference in tracemalloc.take_snapshot().compare_to(snapshot, "lineno")[:10]:
            print(f"  {difference}")
        tracemalloc.stop()

    bench.sdk.tracer_provider.shutdown()
    bench.sdk.meter_provider.shutdown()
    exported = bench.sdk.exporter.exported
    # The batch processor drops spans when its queue (2048) is full: an SDK
    # behaviour under a tight loop, not something this benchmark judges.
    dropped = f", {bench.sent - exported} dropped by the full span queue" if exported < bench.sent else ""
    print(f"\n{bench.sent} requests in {seconds:.1f} s; {exported} spans exported{dropped}")
    return (rss - baseline) / 2**20


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse(argv)
    stream_bound: Optional[int] = STREAM_BOUND
    if args.capture_all_methods:
        # Read by instrument(), which MemoryBenchmark() calls.
        os.environ["OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS"] = "true"
        stream_bound = None
    bench = MemoryBenchmark(stream_bound, args.semconv)
    growth_mb = _measure(args, bench)
    if args.tracemalloc:
        print("(no budget check with --tracemalloc: its own bookkeeping is in the RSS above)")
        return 0
    for problem in bench.problems:
        print(f"\nproblem: {problem}")
    met = growth_mb < BUDGET_MB
    print("\nbudget (issue 14)")
    print(
        f"  {'ok  ' if met else 'FAIL'} memory growth from {args.warmup} to {bench.sent} requests"
        f" = {growth_mb:+.2f} MB (under {BUDGET_MB:g} MB)"
    )
    if stream_bound is not None:
        print(
            f"  {'ok  ' if not bench.problems else 'FAIL'} metric streams bounded"
            f" (at most {stream_bound} per metric, every request counted)"
        )
    return 1 if args.check and not (met and not bench.problems) else 0


if __name__ == "__main__":
    sys.exit(main())
