"""The shop demo: two services, one trace, no OpenTelemetry code in the services.

Starts an OTLP/HTTP receiver in this process, runs ``shop.backend`` and
``shop.frontend`` under ``opentelemetry-instrument`` exporting to it, sends the
frontend a few requests, stops both services (SIGTERM: they exit normally and
the SDK flushes), then prints every trace as a tree, with the log records
under the span each was written in (the framework's access and error lines,
the handlers' own lines), and a summary of the ``http.server.duration``
histograms: the three signals, correlated.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the services export to that
collector instead and nothing is printed here but the requests. The demo
fails (exit status 1) when nothing listens there, or when a service logged
that an export failed.

The receiver and the printing are those of ``otlp_tree.py``, which also runs
on its own as a local endpoint for your services.

Run it with ``tox -e demo``, or ``python examples/demo.py`` in an environment
that has the packages of the ``demo`` tox env installed.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from launch import Service, otel_environment, start_service, stop_process
from otlp_tree import Receiver, print_metrics, print_traces

# (path, what it shows, expected status). Sent to the frontend in this order.
REQUESTS = [
    ("/checkout/42", "a checkout: the frontend asks the backend", 200),
    ("/checkout/999", "an item the backend does not know", 404),
    ("/no-such-page", "no route at all: the span is named after the method", 404),
    ("/reviews/42", "the backend's handler raises; the frontend passes it on", 500),
]
# A few more of the same checkout, so that the percentiles have something to summarise.
REPEATS = ("/checkout/7", 20)
# What the OTLP exporters of every supported SDK log when a batch is lost.
EXPORT_FAILED = re.compile(r"^.*Failed to export.*$", re.MULTILINE)


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
            problem = _unreachable(user_endpoint)
            if problem:
                print(
                    f"\ndemo: export failed: nothing answers at {user_endpoint} ({problem}).\n"
                    "Start your collector there, or unset OTEL_EXPORTER_OTLP_ENDPOINT to use the"
                    " demo's own receiver.\ndemo: FAILED",
                    file=sys.stderr,
                )
                return 1
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
            failures = _export_failures(logs)
            if failures:
                raise RuntimeError(
                    "export failed: the services could not deliver their telemetry to"
                    f" {user_endpoint or endpoint}:\n  " + "\n  ".join(failures)
                )
            print("Stopped both services with SIGTERM; they exported their telemetry on exit.")
        except Exception as exc:
            print(f"\ndemo: {exc}", file=sys.stderr)
            _show_logs(logs)
            print("demo: FAILED", file=sys.stderr)
            return 1

        if receiver is not None:
            print()
            print_traces(receiver.spans(), logs=receiver.logs())
            print()
            print_metrics(receiver)
            missing = _missing_telemetry(receiver)
            if missing:
                print(f"\n{missing}", file=sys.stderr)
                _show_logs(logs)
                print("demo: FAILED", file=sys.stderr)
                return 1
        print(f"\nDone in {time.monotonic() - started:.1f} s.")
        print("demo: OK" if ok else "demo: FAILED (a request got an unexpected status)")
        return 0 if ok else 1


def _missing_telemetry(receiver: Receiver) -> str:
    """What did not arrive from the backend that should have; "" when all is there."""
    if not receiver.spans(kind="SERVER", service="backend"):
        return "no spans arrived from the backend: is the instrumentation installed?"
    if not any(record.trace_id for record in receiver.logs(service="backend")):
        return (
            "no log records in a span arrived from the backend:"
            " is opentelemetry-instrumentation-logging installed?"
        )
    return ""


def _unreachable(endpoint: str) -> str:
    """Why nothing can be reached at the OTLP ``endpoint`` URL; "" if a TCP connection opens."""
    url = urllib.parse.urlsplit(endpoint)
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError as exc:
        return str(exc)
    if not url.hostname:
        return "not a URL with a host"
    try:
        socket.create_connection((url.hostname, port), timeout=5).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def _export_failures(logs: str) -> list[str]:
    """The lines in which a service's exporter said that it lost telemetry."""
    return [
        f"{path.stem}: {line.strip()}"
        for path in sorted(Path(logs).glob("*.log"))
        for line in EXPORT_FAILED.findall(path.read_text(errors="replace"))
    ]


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


if __name__ == "__main__":
    sys.exit(main())
