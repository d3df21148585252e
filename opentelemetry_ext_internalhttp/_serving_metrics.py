"""The socket server's own metrics: connections, queueing and keep-alive reuse, modelled on Kestrel's.

A :class:`ServingMetrics` is the serving observer
(:mod:`internalhttp.observe`) that ``instrument()`` and ``instrument_app()``
give a server when ``serving_metrics`` is on (the default). It records,
under the ``internalhttp.server.`` prefix:

* ``internalhttp.server.active_connections`` (UpDownCounter, ``{connection}``);
* ``internalhttp.server.connection.duration`` (Histogram, ``s``), with
  ``internalhttp.connection.close_reason``;
* ``internalhttp.server.connection.requests`` (Histogram, ``{request}``):
  keep-alive reuse;
* ``internalhttp.server.rejected_connections`` (Counter, ``{connection}``),
  with ``internalhttp.rejection.reason``;
* ``internalhttp.server.queued_requests`` (UpDownCounter, ``{request}``);
* ``internalhttp.server.request.queue_time`` (Histogram, ``s``).

Each also has ``network.transport`` (``tcp``). Every attribute value comes
from a fixed list the framework defines (``CLOSE_REASONS``,
``REJECT_REASONS``); nothing a client sends reaches a metric. Each
recording is guarded: a failure is logged and serving goes on.
"""

from __future__ import annotations

from typing import Any

from internalhttp.observe import CLOSE_REASONS, REJECT_REASONS
from opentelemetry.metrics import Meter

from opentelemetry_ext_internalhttp import _guard

__all__ = ["QUEUE_TIME_ATTRIBUTE", "ServingMetrics"]

#: The SERVER span attribute holding how long the request waited for a worker, in seconds.
QUEUE_TIME_ATTRIBUTE = "internalhttp.request.queue_time"
CLOSE_REASON_ATTRIBUTE = "internalhttp.connection.close_reason"
REJECTION_REASON_ATTRIBUTE = "internalhttp.rejection.reason"

# The socket server serves TCP only; the attribute is there so that these
# points sit beside Kestrel's and the HTTP metrics in the same queries.
_TCP = {"network.transport": "tcp"}
# Attribute sets made once: recording a point allocates nothing.
_CLOSED = {reason: {**_TCP, CLOSE_REASON_ATTRIBUTE: reason} for reason in CLOSE_REASONS}
_REJECTED = {reason: {**_TCP, REJECTION_REASON_ATTRIBUTE: reason} for reason in REJECT_REASONS}
_OTHER = "_OTHER"  # a reason this version does not know (a newer framework): still bounded
# Seconds: a queue wait is short when all is well, a connection may last minutes.
_QUEUE_BUCKETS = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CONNECTION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_REQUESTS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class ServingMetrics:
    """The serving observer that turns what the socket server tells into metric points."""

    __slots__ = ("_active", "_duration", "_queue_time", "_queued", "_rejected", "_requests")

    def __init__(self, meter: Meter) -> None:
        self._active = meter.create_up_down_counter(
            "internalhttp.server.active_connections", "{connection}", "Number of open connections."
        )
        self._duration = meter.create_histogram(
            "internalhttp.server.connection.duration",
            "s",
            "Duration of connections, from accept to close, by why they closed.",
            explicit_bucket_boundaries_advisory=_CONNECTION_BUCKETS,
        )
        self._requests = meter.create_histogram(
            "internalhttp.server.connection.requests",
            "{request}",
            "Requests made on each connection (keep-alive reuse).",
            explicit_bucket_boundaries_advisory=_REQUESTS_BUCKETS,
        )
        self._rejected = meter.create_counter(
            "internalhttp.server.rejected_connections",
            "{connection}",
            "Waiting connections closed to make room for new ones.",
        )
        self._queued = meter.create_up_down_counter(
            "internalhttp.server.queued_requests", "{request}", "Requests read and waiting for a worker."
        )
        self._queue_time = meter.create_histogram(
            "internalhttp.server.request.queue_time",
            "s",
            "Time requests waited for a worker once read.",
            explicit_bucket_boundaries_advisory=_QUEUE_BUCKETS,
        )

    def connection_opened(self) -> None:
        with _guard.RECORD_SERVING:
            self._active.add(1, _TCP)

    def connection_closed(self, duration_s: float, requests: int, reason: str) -> None:
        with _guard.RECORD_SERVING:
            self._active.add(-1, _TCP)
            self._duration.record(duration_s, _CLOSED.get(reason) or _attributes(CLOSE_REASON_ATTRIBUTE))
            self._requests.record(requests, _TCP)

    def connection_rejected(self, reason: str) -> None:
        with _guard.RECORD_SERVING:
            self._rejected.add(1, _REJECTED.get(reason) or _attributes(REJECTION_REASON_ATTRIBUTE))

    def request_queued(self) -> None:
        with _guard.RECORD_SERVING:
            self._queued.add(1, _TCP)

    def request_dequeued(self, wait_s: float) -> None:
        with _guard.RECORD_SERVING:
            self._queued.add(-1, _TCP)
            self._queue_time.record(wait_s, _TCP)


def _attributes(name: str) -> dict[str, Any]:
    return {**_TCP, name: _OTHER}
