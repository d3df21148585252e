"""Running the shop's services under ``opentelemetry-instrument``, for the demo and the tests.

This is the "deployment" side: the services themselves contain no OpenTelemetry
code, everything here is command line and environment variables, exactly what
one would put in a container spec or a systemd unit.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional

EXAMPLES_DIR = Path(__file__).resolve().parent
# The console scripts live next to the interpreter of the environment that has
# the packages installed (a virtualenv or a tox env); PATH may point elsewhere.
BIN_DIR = Path(sys.executable).parent
OPENTELEMETRY_INSTRUMENT = str(BIN_DIR / "opentelemetry-instrument")


def otel_environment(service_name: str, endpoint: Optional[str], **overrides: str) -> dict[str, str]:
    """The environment for one service: this process's, plus OpenTelemetry's settings.

    ``endpoint`` is the OTLP/HTTP base URL (the exporters append ``/v1/traces``,
    ``/v1/metrics`` and ``/v1/logs``); ``None`` keeps whatever ``OTEL_EXPORTER_OTLP_*``
    and ``OTEL_LOGS_EXPORTER`` the caller's environment already has.
    """
    env = dict(os.environ)
    env.update(
        OTEL_SERVICE_NAME=service_name,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        # The third signal: the log lines (the framework's access and error lines,
        # the handlers' own), each in its span's context through the logging
        # bridge. A caller's collector may not take logs: its OTEL_LOGS_EXPORTER
        # (e.g. "none") is kept when the caller chose the endpoint too.
        OTEL_LOGS_EXPORTER=os.environ.get("OTEL_LOGS_EXPORTER", "otlp") if endpoint is None else "otlp",
        # opentelemetry-distro defaults to grpc; only the HTTP exporter is installed.
        OTEL_EXPORTER_OTLP_PROTOCOL=os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        # Export soon after the fact (defaults: 5 s and 60 s), so that nothing
        # waits on the shutdown flush alone.
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        # Seconds (in the Python exporters) each export may take, so that a stop
        # with an unreachable collector takes about 5 s, not 15 (README, Deploying;
        # measured for the backend after 9 requests, a collector that never answers:
        # 5.0 s with the logs exporter on, 2.3 s with it off).
        OTEL_EXPORTER_OTLP_TIMEOUT=os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", "2"),
        # process.pid & co. in the resource: tells gunicorn workers apart.
        OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="process",
        PYTHONPATH=os.pathsep.join(filter(None, [str(EXAMPLES_DIR), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        # Per-signal endpoints would win over the base one; drop the caller's.
        env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
        env.pop("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", None)
        env.pop("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", None)
    env.update(overrides)
    return env


@dataclass
class Service:
    """A service process and the URL it announced."""

    name: str
    process: subprocess.Popen[str]
    url: str


def start_service(
    module: str,
    env: Mapping[str, str],
    stderr: IO[str],
    args: Sequence[str] = (),
    timeout: float = 20.0,
) -> Service:
    """Run ``opentelemetry-instrument python -m <module> --port 0 <args>``; wait for its URL.

    The service prints ``<name> listening on <url>`` once it is bound; this
    reads that line. If it does not come within ``timeout`` seconds the
    process is killed and ``RuntimeError`` raised.
    """
    command = [OPENTELEMETRY_INSTRUMENT, sys.executable, "-m", module, "--port", "0", *args]
    process = subprocess.Popen(
        command, env=dict(env), cwd=EXAMPLES_DIR, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    assert process.stdout is not None
    line = ""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if selector.select(timeout):
            line = process.stdout.readline()
    name, _, url = line.strip().partition(" listening on ")
    if not url:
        status = process.poll()
        if status is None and not line:  # stdout closed: the process is on its way out
            with contextlib.suppress(subprocess.TimeoutExpired):
                status = process.wait(2)
        stop_process(process)
        if status is not None:
            raise RuntimeError(f"{module} exited with status {status} before it was listening")
        raise RuntimeError(f"{module} did not report its address within {timeout:.0f} s (got {line!r})")
    return Service(name, process, url)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> Optional[int]:
    """SIGTERM, so the service exits normally and the SDK flushes; SIGKILL if it hangs.

    Returns the exit status, or ``None`` if the process had to be killed.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode
