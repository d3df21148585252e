"""Multi-process serving: the backend's WSGI app under gunicorn with two workers.

Instrumented the documented way, ``opentelemetry-instrument gunicorn ...``: the
SDK is set up once in the master and forked into the workers (see
examples/gunicorn.conf.py for why no ``post_fork`` hook is needed). Each
worker must export on its own, under its own ``process.pid``.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from launch import BIN_DIR, EXAMPLES_DIR, OPENTELEMETRY_INSTRUMENT, otel_environment, stop_process
from otlp_tree import Receiver

pytest.importorskip("gunicorn", reason="gunicorn is not installed (the tox 'tests' env installs it)")

# SDK 1.44.0 is the first whose providers re-detect the process resource and
# restart their threads in a forked worker; with older ones (constraints-oldest.txt)
# the workers report the master's pid unless a post_fork hook sets the SDK up.
_SDK = tuple(int(part) for part in importlib.metadata.version("opentelemetry-sdk").split(".")[:2])
pytestmark = pytest.mark.skipif(
    _SDK < (1, 44), reason="before opentelemetry-sdk 1.44 forked workers keep the master's resource"
)

GUNICORN = BIN_DIR / "gunicorn"
WORKERS = 2
BATCH, MAX_BATCHES = 20, 10  # requests until both workers have served, bounded
TIMEOUT_S = 15


@dataclass
class GunicornRun:
    receiver: Receiver
    master_pid: int
    worker_pids: set[int]
    exit_status: int | None
    log: Path

    def span_pids(self) -> set[int | None]:
        return {span.pid for span in self.receiver.spans(kind="SERVER")}


def _wait_for_log(log: Path, pattern: str, count: int, process: subprocess.Popen[bytes]) -> list[str]:
    """The first ``count`` matches of ``pattern`` in gunicorn's log, waiting up to TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        found = re.findall(pattern, log.read_text(errors="replace"))
        if len(found) >= count:
            return found[:count]
        time.sleep(0.05)
    raise AssertionError(f"gunicorn did not log {pattern!r} {count}x:\n{log.read_text(errors='replace')}")


def _all_workers_served(receiver: Receiver) -> bool:
    return len({span.pid for span in receiver.spans(kind="SERVER")}) >= WORKERS


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        response.read()


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornRun]:
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    command = [
        OPENTELEMETRY_INSTRUMENT,
        str(GUNICORN),
        # Short options: opentelemetry-instrument's argument parser takes a long
        # one that prefixes its own (--config: --config_file?) as ambiguous.
        "-c",
        str(EXAMPLES_DIR / "gunicorn.conf.py"),
        "-w",
        str(WORKERS),
        "-b",
        "127.0.0.1:0",  # gunicorn logs the port it got
        "shop.backend:wsgi_app",
    ]
    with Receiver() as receiver, open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            env=otel_environment("backend", receiver.endpoint),
            cwd=EXAMPLES_DIR,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            (port,) = _wait_for_log(log, r"Listening at: http://127\.0\.0\.1:(\d+)", 1, process)
            workers = {
                int(pid) for pid in _wait_for_log(log, r"Booting worker with pid: (\d+)", WORKERS, process)
            }
            url = f"http://127.0.0.1:{port}/items/42"
            for _ in range(MAX_BATCHES):
                for _ in range(BATCH):
                    _get(url)
                if receiver.wait_until(_all_workers_served, timeout=1.0):
                    break
        finally:
            exit_status = stop_process(process)
        yield GunicornRun(receiver, process.pid, workers, exit_status, log)


def test_spans_arrive_from_both_worker_pids(gunicorn: GunicornRun) -> None:
    assert gunicorn.span_pids() == gunicorn.worker_pids


def test_no_span_carries_the_master_pid(gunicorn: GunicornRun) -> None:
    # The resource is detected again in each forked worker, not inherited from the master.
    assert gunicorn.master_pid not in gunicorn.span_pids()


def test_each_worker_exports_its_own_duration_histogram(gunicorn: GunicornRun) -> None:
    points = [
        point
        for name in ("http.server.duration", "http.server.request.duration")
        for point in gunicorn.receiver.latest_histogram_points(name)
    ]
    pids = {point.resource.get("process.pid") for point in points}
    assert pids == gunicorn.worker_pids


def test_every_span_carries_the_service_name(gunicorn: GunicornRun) -> None:
    assert {span.service for span in gunicorn.receiver.spans()} == {"backend"}


def test_gunicorn_stops_cleanly_on_sigterm(gunicorn: GunicornRun) -> None:
    assert gunicorn.exit_status == 0, gunicorn.log.read_text(errors="replace")
