"""A minimal OTLP/HTTP receiver for the throughput benchmark: accepts, counts, answers 200.

It takes ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``, reads the
body and answers ``200`` with an empty body (an empty protobuf message is
a valid, fully successful export response), without decoding anything: the
benchmark measures what exporting costs the server, not what a collector
does with the data. Run as a subprocess of ``bench_throughput.py``:

    python benchmarks/otlp_receiver.py    # prints "ready PORT"; "stop" on stdin ends it

On stop it prints one JSON line: requests and bytes received per path.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

_PATHS = ("/v1/traces", "/v1/metrics", "/v1/logs")


class _Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the exporter's HTTP session expects.
    protocol_version = "HTTP/1.1"
    # Shared by every connection's handler.
    requests: ClassVar[Counter[str]] = Counter()
    received: ClassVar[Counter[str]] = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path not in _PATHS:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with self.lock:
            self.requests[self.path] += 1
            self.received[self.path] += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        # One line per export on stderr would only add noise and work.
        return


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    print(f"ready {server.server_address[1]}", flush=True)
    sys.stdin.readline()  # "stop", or end of file when the parent goes away
    server.shutdown()
    print(json.dumps({"requests": dict(_Handler.requests), "bytes": dict(_Handler.received)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
