"""The command line both services share: ``--host``/``--port``, serve, stop on a signal."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import TYPE_CHECKING

from internalhttp.serving import serve

if TYPE_CHECKING:
    from internalhttp.server import InternalHTTPServer


def argument_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=0, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    return parser


def serve_until_stopped(server: InternalHTTPServer, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then shut down and return normally.

    Prints ``<name> listening on <url>`` once the socket is bound, so that a
    parent process that asked for port 0 can read the real port from stdout.

    Returning (instead of dying from the signal's default action) matters under
    ``opentelemetry-instrument``: the SDK flushes the last spans and metrics
    from an ``atexit`` hook, which only runs when the interpreter exits normally.
    """
    # The service's log lines, the framework's access lines among them, on
    # stderr. Under opentelemetry-instrument, opentelemetry-instrumentation-logging
    # (when installed) also sends them to OpenTelemetry, each in its span's context.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with serve(server, host, port) as running:
        print(f"{server.name} listening on {running.url}", flush=True)
        # A timeout keeps the main thread waking up, so the handler runs promptly.
        while not stop.wait(0.5):
            pass
