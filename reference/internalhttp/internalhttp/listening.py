"""The serving loop's listening socket and waker: what it watches besides connections.

Internal to :mod:`internalhttp.loop`.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
from typing import Optional

__all__ = ["ACCEPT", "FD_WARNING_INTERVAL", "Listener", "Waker"]

ACCEPT = object()  # selector key data of the listening socket
FD_WARNING_INTERVAL = 60.0


class Waker:
    """A socket pair through which other threads wake the loop from its ``select()``."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # full: the loop is awake anyway; closed: it is gone
            self._writer.send(b"\0")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while self.reader.recv(4096):
                pass

    def close_writer(self) -> None:
        self._writer.close()


class Listener:
    """The listening socket, and whether the loop is watching it for new connections.

    Accepting pauses when every connection is busy (until one ends) or when
    the process ran out of file descriptors (for a moment).
    """

    def __init__(self, sock: socket.socket, selector: selectors.BaseSelector) -> None:
        self.sock = sock
        self._selector = selector
        self.accepting = False
        self.paused_until: Optional[float] = None
        self.last_fd_warning = -FD_WARNING_INTERVAL

    def pause(self, until: Optional[float]) -> None:
        if self.accepting:
            self._selector.unregister(self.sock)
            self.accepting = False
        self.paused_until = until

    def resume(self) -> None:
        self._selector.register(self.sock, selectors.EVENT_READ, ACCEPT)
        self.accepting = True

    def may_resume(self, now: float) -> bool:
        return not self.accepting and (self.paused_until is None or now >= self.paused_until)
