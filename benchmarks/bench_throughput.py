"""Socket throughput over loopback: bare server vs instrumented server.

Every run starts a fresh server subprocess (``--serve bare`` or ``--serve
instrumented``), so the bare server never imports OpenTelemetry at all, and
drives it from this process with 8 client threads, each with one kept-alive
``http.client`` connection. Runs alternate bare/instrumented, in the order
ABBA across rounds, so that drift on a shared machine lands on both alike.
Each run sends a fixed number of requests, after a short untimed warm-up on
the same connections.

The budget (issue 6): instrumented requests/s at least 85% of bare, compared
as the medians over the rounds.

    python benchmarks/bench_throughput.py [--rounds 5] [--requests 6000] [--reference] [--check]

``--reference`` adds a third server to every round: a bare server doing the
minimal SDK reference work of ``bench_dispatch.py`` around each request, to
tell how much throughput the SDK calls alone cost on this machine.

Besides req/s it prints the CPU each side used. The server's CPU time per
request is the steadier number on a busy machine; the client's CPU share
tells whether the client, not the server, was the bottleneck (then the
ratio understates the instrumentation's cost).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import select
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
# "reference" (with --reference) serves the minimal SDK reference of
# bench_dispatch.py: the throughput that the bare SDK calls alone leave.
MODES = ("bare", "instrumented", "reference")
PATH = "/hello"  # the route of bench_dispatch._server(), answering b"hi"
EXPECTED_BODY = b"hi"
# http.client adds Host and Accept-Encoding; the traceparent makes the
# instrumented server extract a remote parent, as behind another service.
CLIENT_HEADERS = {
    "User-Agent": "bench/1.0",
    "Accept": "*/*",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}
BUDGET_RATIO = 0.85
SOCKET_TIMEOUT_S = 10.0  # a stuck server fails the run instead of hanging it
STARTUP_TIMEOUT_S = 30.0  # importing the SDK on a busy machine can be slow
STOP_TIMEOUT_S = 30.0


# -- the server subprocess --------------------------------------------------


def _serve(mode: str) -> int:
    """Serve one app until told to stop on stdin, then report what it recorded."""
    sys.path.insert(0, str(HERE))
    import bench_dispatch
    import internalhttp

    sdk: Optional[bench_dispatch.SdkParts] = None
    if mode == "instrumented":
        # The same providers and configuration as the dispatch benchmark's
        # instrumented_default scenario (default semantic conventions).
        sdk = bench_dispatch._sdk_parts()
        app = bench_dispatch._instrumented(
            "", sdk=False, tracer_provider=sdk.tracer_provider, meter_provider=sdk.meter_provider
        )
    elif mode == "reference":
        # A bare server whose every request also does the dispatch
        # benchmark's minimal SDK reference work, no instrumentation.
        sdk = bench_dispatch._sdk_parts()
        app = bench_dispatch._server()
        one_request = bench_dispatch._sdk_batch_wrapper(
            sdk.tracer_provider.get_tracer("bench"), sdk.meter_provider.get_meter("bench")
        )
        # An instance attribute shadows the class's method for every caller,
        # the serving layer included.
        app.handle_request = functools.partial(one_request, app.handle_request)
    else:
        app = bench_dispatch._server()
    leaked = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
    running = internalhttp.serve(app, host="127.0.0.1", port=0)
    print(f"ready {running.port}", flush=True)
    # Blocks until the parent writes "stop" or goes away (end of file), so
    # the server never outlives the benchmark.
    sys.stdin.readline()
    running.shutdown()
    stats: dict[str, Any] = {"mode": mode, "opentelemetry_modules": len(leaked)}
    if sdk is not None:
        sdk.tracer_provider.force_flush()
        stats["spans_exported"] = sdk.exporter.exported
        stats["durations_recorded"] = _durations_recorded(sdk.reader)
        sdk.tracer_provider.shutdown()
        sdk.meter_provider.shutdown()
    print(json.dumps(stats), flush=True)
    return 0


def _durations_recorded(reader: Any) -> int:
    """How many requests the duration histogram counted, over all its attribute sets."""
    data = reader.get_metrics_data()
    total = 0
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                # One histogram per convention mode; the default mode has the old one.
                if metric.name in ("http.server.duration", "http.server.request.duration"):
                    total += sum(point.count for point in metric.data.data_points)
    return total


# -- the client -------------------------------------------------------------


@dataclass
class RunResult:
    mode: str
    requests: int
    seconds: float
    server_cpu_s: Optional[float]  # None where /proc is not available
    client_cpu_s: float
    server_stats: dict[str, Any]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds


class _ServerProcess:
    """A ``--serve MODE`` subprocess, ready to take connections once constructed."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        # select() rather than a bare readline(), so that a server that dies
        # or hangs while starting fails the run within the timeout.
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT_S)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"{mode} server did not start (got {line!r})")
        self.port = int(line.split()[1])

    def cpu_seconds(self) -> Optional[float]:
        """User + system CPU time of the server process so far, from /proc."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                # The command name, field 2, may hold spaces: count from the
                # ")" that ends it. utime and stime are fields 14 and 15.
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict[str, Any]:
        """Stop the server; return the statistics it printed."""
        try:
            output, _ = self.process.communicate("stop\n", timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"{self.mode} server did not stop within {STOP_TIMEOUT_S} s") from None
        if self.process.returncode != 0:
            raise RuntimeError(f"{self.mode} server exited with {self.process.returncode}")
        return json.loads(output.strip().splitlines()[-1])


def _one_request(connection: http.client.HTTPConnection) -> None:
    connection.request("GET", PATH, headers=CLIENT_HEADERS)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200 or body != EXPECTED_BODY:
        raise RuntimeError(f"unexpected response {response.status} {body[:80]!r}")
    if response.will_close:
        # http.client would silently reconnect, and we would be timing
        # connection set-up instead of requests on a kept-alive connection.
        raise RuntimeError("the server closed a keep-alive connection")


def _client(
    port: int,
    warmup: int,
    count: int,
    start: threading.Barrier,
    deadline: float,
    errors: list[BaseException],
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT_S)
    try:
        for _ in range(warmup):
            _one_request(connection)
        start.wait()
        for _ in range(count):
            _one_request(connection)
            # A bound in time as well as in count: a server slowed to a crawl
            # fails the run instead of keeping the machine busy.
            if time.monotonic() > deadline:
                raise TimeoutError("run took longer than --max-seconds")
    except BaseException as exc:
        errors.append(exc)
        start.abort()  # release the others (and the timer) if still waiting
    finally:
        connection.close()


def run_once(mode: str, threads: int, requests: int, warmup: int, max_seconds: float) -> RunResult:
    """One server subprocess, warmed up, then ``requests`` timed requests from ``threads`` clients."""
    server = _ServerProcess(mode)
    try:
        per_thread, extra = divmod(requests, threads)
        errors: list[BaseException] = []
        start = threading.Barrier(threads + 1, timeout=STARTUP_TIMEOUT_S + max_seconds)
        deadline = time.monotonic() + max_seconds
        workers = [
            threading.Thread(
                target=_client,
                args=(server.port, warmup, per_thread + (index < extra), start, deadline, errors),
                name=f"bench-client-{index}",
            )
            for index in range(threads)
        ]
        for worker in workers:
            worker.start()
        # Every connection is open and warm once this returns; a broken
        # barrier means a client failed, which is reported below.
        with contextlib.suppress(threading.BrokenBarrierError):
            start.wait()
        began = time.perf_counter()
        server_cpu_before = server.cpu_seconds()
        client_cpu_before = time.process_time()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - began
        client_cpu = time.process_time() - client_cpu_before
        server_cpu_after = server.cpu_seconds()
        if errors:
            raise RuntimeError(f"{mode} run failed: {errors[0]!r}") from errors[0]
    finally:
        stats = server.stop()
    server_cpu = None
    if server_cpu_before is not None and server_cpu_after is not None:
        server_cpu = server_cpu_after - server_cpu_before
    return RunResult(mode, requests, seconds, server_cpu, client_cpu, stats)


def _check_server_stats(result: RunResult, warmup_total: int) -> list[str]:
    """What is wrong with what the server said it recorded, if anything."""
    stats = result.server_stats
    problems = []
    if result.mode == "bare" and stats["opentelemetry_modules"]:
        problems.append(f"the bare server imported {stats['opentelemetry_modules']} opentelemetry modules")
    if result.mode != "bare":
        served = result.requests + warmup_total
        if stats["durations_recorded"] != served:
            problems.append(f"{stats['durations_recorded']} durations recorded for {served} requests")
        # The batch processor drops spans when its queue (2048) is full,
        # so fewer spans than requests is possible; none at all is not.
        if not stats["spans_exported"]:
            problems.append("no span was exported")
    return problems


def _describe(result: RunResult) -> str:
    text = f"{result.mode:13} {result.requests_per_s:9.0f} req/s"
    if result.server_cpu_s is not None:
        text += (
            f"   server {result.server_cpu_s / result.requests * 1e6:6.0f} us CPU/request,"
            f" {result.server_cpu_s / result.seconds:4.0%} of a core"
        )
    text += f"   client {result.client_cpu_s / result.seconds:4.0%} of a core"
    if result.mode != "bare":
        text += f"   ({result.server_stats['spans_exported']} spans exported)"
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)  # the server subprocess
    parser.add_argument("--rounds", type=int, default=5, help="bare+instrumented pairs (default 5)")
    parser.add_argument("--requests", type=int, default=6000, help="timed requests per run (default 6000)")
    parser.add_argument("--threads", type=int, default=8, help="client threads = connections (default 8)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests per thread (default 50)")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="fail a run that takes longer (default 60)"
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also serve the minimal SDK reference of bench_dispatch.py, for comparison",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the budget is not met")
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.serve)
    if args.rounds < 1 or args.requests < args.threads or args.threads < 1:
        parser.error("need --rounds >= 1 and --requests >= --threads >= 1")

    modes = MODES if args.reference else MODES[:2]
    print(
        f"socket throughput: {args.threads} client threads x 1 keep-alive connection, "
        f"{args.requests} requests per run, {args.rounds} rounds"
    )
    results: dict[str, list[RunResult]] = {mode: [] for mode in modes}
    problems: list[str] = []
    for round_number in range(args.rounds):
        # ABBA: each mode runs first in half of the rounds.
        order = modes if round_number % 2 == 0 else modes[::-1]
        for mode in order:
            result = run_once(mode, args.threads, args.requests, args.warmup, args.max_seconds)
            results[mode].append(result)
            problems += _check_server_stats(result, args.warmup * args.threads)
            print(f"  round {round_number + 1}  {_describe(result)}", flush=True)

    medians = {mode: statistics.median(r.requests_per_s for r in results[mode]) for mode in modes}
    ratio = medians["instrumented"] / medians["bare"]
    print(f"\n{'':13} {'median req/s':>12} {'x bare':>7} {'server us CPU/request':>22}")
    for mode in modes:
        cpu = [r.server_cpu_s / r.requests * 1e6 for r in results[mode] if r.server_cpu_s is not None]
        cpu_text = f"{statistics.median(cpu):22.0f}" if cpu else f"{'n/a':>22}"
        print(f"{mode:13} {medians[mode]:12.0f} {medians[mode] / medians['bare']:7.1%} {cpu_text}")
    client_share = statistics.median(r.client_cpu_s / r.seconds for r in results["bare"])
    if client_share > 0.9:
        # The client is a Python process too: past ~one core it cannot go
        # faster, and the bare server's real capacity is hidden.
        print(
            f"\nnote: the client used {client_share:.0%} of a core during the bare runs; it may be"
            " the bottleneck, which makes the ratio look better than it is"
        )
    for problem in problems:
        print(f"\nproblem: {problem}")

    met = ratio >= BUDGET_RATIO and not problems
    print("\nbudget")
    print(
        f"  {'ok  ' if met else 'FAIL'} instrumented throughput = {ratio:.1%} of bare"
        f" (at least {BUDGET_RATIO:.0%})"
    )
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
