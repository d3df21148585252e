"""The serving layer's observer seam: what the socket server tells about connections and queueing.

A :class:`ServingObserver` put on an application's ``serving_observer``
attribute (``None`` by default: nothing is told, and telling costs one
attribute read) hears, from the socket server (:mod:`internalhttp.serving`):

* ``connection_opened()``: a connection was accepted;
* ``connection_closed(duration_s, requests, reason)``: it closed, after
  ``duration_s`` seconds and ``requests`` requests, for one of
  :data:`CLOSE_REASONS`;
* ``connection_rejected(reason)``: a waiting connection was closed to make
  room for a new one, for one of :data:`REJECT_REASONS`;
* ``request_queued()``: a request (its head and body read) waits for a worker;
* ``request_dequeued(wait_s)``: a worker took it after ``wait_s`` seconds.

Events come from the serving loop's thread and from the workers. An
observer that raises is logged at DEBUG and serving goes on. The WSGI
adapter tells nothing: connections and queueing belong to the WSGI server.

>>> class Counting:
...     opened = 0
...     def connection_opened(self):
...         Counting.opened += 1
>>> class App:
...     serving_observer = Counting()
>>> notify(App(), "connection_opened")
>>> Counting.opened
1
>>> notify(App(), "request_queued")  # an observer that cannot hear it: logged, ignored
"""

from __future__ import annotations

import logging
from typing import Optional, Protocol

__all__ = ["CLOSE_REASONS", "REJECT_REASONS", "ServingObserver", "notify"]

logger = logging.getLogger("internalhttp")

#: Why a connection closed: the client closed it; the server closed it after
#: a response (``Connection: close``, or while stopping); it was idle between
#: requests past ``head_timeout``; its head or body came too late (408); the
#: server refused a request on it (400, 413, 414, 431, 501, 503, 505); it was
#: closed to make room (``capacity``, ``descriptors``); the server stopped; an
#: error on the connection (a reset, a write timeout, a bug).
CLOSE_REASONS = (
    "client_closed",
    "server_closed",
    "idle_timeout",
    "head_timeout",
    "body_timeout",
    "refused",
    "capacity",
    "descriptors",
    "shutdown",
    "error",
)
#: Why a connection was closed to make room: ``max_connections`` reached, or
#: the process out of file descriptors.
REJECT_REASONS = ("capacity", "descriptors")


class ServingObserver(Protocol):
    """What the socket server tells an observer (see the module documentation)."""

    def connection_opened(self) -> None: ...

    def connection_closed(self, duration_s: float, requests: int, reason: str) -> None: ...

    def connection_rejected(self, reason: str) -> None: ...

    def request_queued(self) -> None: ...

    def request_dequeued(self, wait_s: float) -> None: ...


def notify(app: object, event: str, *args: object) -> None:
    """Tell ``app``'s observer, if it has one, about ``event``; never raise."""
    observer: Optional[ServingObserver] = getattr(app, "serving_observer", None)
    if observer is None:
        return
    try:
        getattr(observer, event)(*args)
    except Exception:
        logger.debug("internalhttp: serving observer failed on %s", event, exc_info=True)
