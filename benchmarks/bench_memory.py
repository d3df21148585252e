"""Memory: does an instrumented server keep growing as requests go by?

In this process: the SDK set up as in ``bench_dispatch.py`` (TracerProvider +
BatchSpanProcessor into a dropping exporter, MeterProvider +
InMemoryMetricReader), the instrumentation with its default configuration,
and one parametrised route, ``/users/<user_id>``, called in-process through
``handle_request`` with a different ``user_id`` on every request. The paths
(and so ``url.path`` / ``http.target`` on the spans) never repeat, while the
route template, the only path-derived value allowed into metric attributes
and span names, stays one; whatever the instrumentation caches per path
instead of per route shows up as growth.

The resident set size is read after a 10k-request warm-up and again after
200k requests in all, with samples in between; the budget (issue 6) is a
growth under 5 MB. Before each reading the span queue is flushed, the
metrics are collected and the garbage collector runs, so that every reading
is taken in the same state and only what requests left behind remains.

Why VmRSS from /proc/self/status and not ``resource.getrusage().ru_maxrss``:
ru_maxrss is the peak over the whole life of the process, so it can only
tell the largest the process ever was, never what it holds now; a
transient peak (the span queue filling up between two exports) would count
as growth, and a real leak smaller than an earlier peak would not show at
all. VmRSS is the resident size at the moment of reading. Where
/proc/self/status does not exist (macOS) the script falls back to ru_maxrss
and says so.

    python benchmarks/bench_memory.py [--requests 200000] [--warmup 10000] [--check]
"""

from __future__ import annotations

import argparse
import gc
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


def _durations(reader: Any) -> tuple[int, int]:
    """Requests counted by the duration histogram, and its number of attribute sets."""
    data = reader.get_metrics_data()
    count = points = 0
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name in ("http.server.duration", "http.server.request.duration"):
                    points += len(metric.data.data_points)
                    count += sum(point.count for point in metric.data.data_points)
    return count, points


class MemoryBenchmark:
    """An instrumented server, its SDK, and the requests sent to it so far."""

    def __init__(self) -> None:
        self.sdk = bench_dispatch._sdk_parts()
        self.server = bench_dispatch._instrumented(
            "", sdk=False, tracer_provider=self.sdk.tracer_provider, meter_provider=self.sdk.meter_provider
        )
        self.server.add_route(ROUTE, _user)
        self.sent = 0

    def send(self, count: int, deadline: float) -> None:
        handle_request: Callable[..., Any] = self.server.handle_request
        headers = bench_dispatch.REQUEST_HEADERS
        for number in range(self.sent, self.sent + count):
            response = handle_request("GET", f"/users/{number}", headers, b"")
            if response["status"] != 200:
                raise RuntimeError(f"request {number} answered {response!r}")
            if number % DEADLINE_CHECK_EVERY == 0 and time.monotonic() > deadline:
                raise TimeoutError(f"stopped after {number} requests: over --max-seconds")
        self.sent += count

    def settle(self) -> tuple[int, str]:
        """Bring the process to the same state as at every other reading; return the RSS."""
        self.sdk.tracer_provider.force_flush()
        counted, attribute_sets = _durations(self.sdk.reader)
        if counted != self.sent:
            raise RuntimeError(f"the duration histogram counted {counted} of {self.sent} requests")
        if attribute_sets != 1:
            raise RuntimeError(f"{attribute_sets} metric attribute sets for one route: unbounded cardinality")
        gc.collect()
        return rss_bytes()


def main(argv: Optional[Sequence[str]] = None) -> int:
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
    parser.add_argument("--check", action="store_true", help="exit 1 when the budget is not met")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.requests:
        parser.error("need 0 < --warmup < --requests")
    if args.check and args.tracemalloc:
        parser.error("--tracemalloc inflates the RSS; it cannot be combined with --check")

    deadline = time.monotonic() + args.max_seconds
    bench = MemoryBenchmark()
    started = time.perf_counter()
    bench.send(args.warmup, deadline)
    baseline, source = bench.settle()
    snapshot = None
    if args.tracemalloc:
        tracemalloc.start()
        snapshot = tracemalloc.take_snapshot()
    print(f"memory: {source} of one instrumented process, route {ROUTE} with a new user_id per request")
    print(f"  after {bench.sent:>7} requests: {baseline / 2**20:8.1f} MB  (baseline)")

    # Evenly spaced readings up to the end: a leak grows steadily, while a
    # one-off allocation (a cache filling up to its bound) is a single step.
    remaining = args.requests - args.warmup
    for sample in range(1, SAMPLES + 1):
        bench.send(remaining * sample // SAMPLES - remaining * (sample - 1) // SAMPLES, deadline)
        rss, _ = bench.settle()
        print(
            f"  after {bench.sent:>7} requests: {rss / 2**20:8.1f} MB  ({(rss - baseline) / 2**20:+.2f} MB)"
        )
    seconds = time.perf_counter() - started

    if snapshot is not None:
        print("\nlargest growth by source line (tracemalloc):")
        for difference in tracemalloc.take_snapshot().compare_to(snapshot, "lineno")[:10]:
            print(f"  {difference}")
        tracemalloc.stop()

    growth_mb = (rss - baseline) / 2**20
    bench.sdk.tracer_provider.shutdown()
    bench.sdk.meter_provider.shutdown()
    exported = bench.sdk.exporter.exported
    # The batch processor drops spans when its queue (2048) is full: an SDK
    # behaviour under a tight loop, not something this benchmark judges.
    dropped = f", {bench.sent - exported} dropped by the full span queue" if exported < bench.sent else ""
    print(f"\n{bench.sent} requests in {seconds:.1f} s; {exported} spans exported{dropped}")
    if snapshot is not None:
        print("(no budget check with --tracemalloc: its own bookkeeping is in the RSS above)")
        return 0
    met = growth_mb < BUDGET_MB
    print("\nbudget")
    print(
        f"  {'ok  ' if met else 'FAIL'} memory growth from {args.warmup} to {bench.sent} requests"
        f" = {growth_mb:+.2f} MB (under {BUDGET_MB:g} MB)"
    )
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
