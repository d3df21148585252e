"""A plain keep-alive socket client, for requests ``http.client`` will not send.

Odd methods, versions, header bytes and request targets go on the wire as
given; each response is read by its ``Content-Length`` so the connection
can carry the next request.
"""

from __future__ import annotations

import socket
from typing import NamedTuple, Optional

TIMEOUT = 10.0


class WireResponse(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


class WireClient:
    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._socket: Optional[socket.socket] = None
        self._buffer = b""

    def send(self, raw: bytes) -> WireResponse:
        """Send one raw request; return its response (status 0 if the server closed without one)."""
        if self._socket is None:
            self._socket = socket.create_connection(self._address, timeout=TIMEOUT)
            self._buffer = b""
        self._socket.sendall(raw)
        response = self._read_response()
        if response.status == 0 or response.headers.get("connection", "").lower() == "close":
            self.close()
        return response

    def request(
        self, method: str, target: str, headers: dict[str, str], version: str = "HTTP/1.1"
    ) -> WireResponse:
        lines = [f"{method} {target} {version}", *(f"{name}: {value}" for name, value in headers.items())]
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _read_response(self) -> WireResponse:
        head = self._read_until(b"\r\n\r\n")
        if head is None:
            return WireResponse(0, {}, b"")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self._read_exactly(int(headers.get("content-length", "0")))
        return WireResponse(int(status_line.split()[1]), headers, body)

    def _read_until(self, marker: bytes) -> Optional[bytes]:
        while marker not in self._buffer:
            if not self._receive():
                return None
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size and self._receive():
            pass
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return body

    def _receive(self) -> bool:
        assert self._socket is not None
        try:
            data = self._socket.recv(65536)
        except (ConnectionError, TimeoutError):
            data = b""
        self._buffer += data
        return bool(data)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
