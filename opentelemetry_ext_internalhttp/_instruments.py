"""The HTTP server metrics one ``instrument*()`` call records, and how a request's points are written.

Which instruments exist follows the semantic-convention mode and the
opt-ins: ``http.server.request.duration`` (s, stable) and
``http.server.duration`` (ms, old); ``http.server.active_requests`` in the
old and dup modes (opt-in in ``http``); the body-size histograms when opted
in. Attributes arrive finished and bounded (``_metric_attributes``).
"""

from __future__ import annotations

from typing import Any, Optional

from internalhttp.response import NormalizedResponse
from opentelemetry.metrics import Meter, UpDownCounter
from opentelemetry.semconv._incubating.metrics.http_metrics import (
    HTTP_SERVER_REQUEST_BODY_SIZE,
    HTTP_SERVER_RESPONSE_BODY_SIZE,
)
from opentelemetry.semconv.metrics import MetricInstruments
from opentelemetry.semconv.metrics.http_metrics import HTTP_SERVER_REQUEST_DURATION

from opentelemetry_ext_internalhttp._attributes import AttributeKeys
from opentelemetry_ext_internalhttp._internals import (
    HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
    enrich_metric_attributes,
    has_labels,
)
from opentelemetry_ext_internalhttp._metric_attributes import SharedAttributes

_DESCRIPTION = "Duration of HTTP server requests."


class Instruments:
    """The instruments of one configuration, and the points of one request."""

    __slots__ = ("_body_sizes", "_duration_ms", "_duration_s", "active")

    def __init__(self, meter: Meter, keys: AttributeKeys, opt_in: frozenset[str]) -> None:
        self._duration_ms = None
        self._duration_s = None
        if keys.old:
            self._duration_ms = meter.create_histogram(
                name=MetricInstruments.HTTP_SERVER_DURATION, unit="ms", description=_DESCRIPTION
            )
        if keys.new:
            self._duration_s = meter.create_histogram(
                name=HTTP_SERVER_REQUEST_DURATION,
                unit="s",
                description=_DESCRIPTION,
                explicit_bucket_boundaries_advisory=HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
            )
        # http.server.active_requests: +1 and -1 around each request, outside
        # the span's context (an exemplar of a +1 says nothing, and offering
        # one costs as much as the count), with the shared ``active``
        # attributes. The lifecycle adds to it itself: a method call for each
        # count was 5% of the instrumentation's own Python per request.
        # Opt-in in the stable conventions (v1.44); what users of the old
        # ones have always had, so kept there and in http/dup.
        self.active: Optional[UpDownCounter] = None
        if keys.old or "http.server.active_requests" in opt_in:
            self.active = meter.create_up_down_counter(
                name=MetricInstruments.HTTP_SERVER_ACTIVE_REQUESTS,
                unit="{request}",
                description="Number of active HTTP server requests.",
            )
        self._body_sizes = _BodySizeHistograms(meter, keys, opt_in)

    def record(
        self,
        duration_s: float,
        shared: SharedAttributes,
        status: Optional[int],
        error_type: Optional[str],
        extras: Optional[dict[str, Any]],
        request_size: Optional[int],
        response: Optional[NormalizedResponse],
    ) -> None:
        """A request's duration (and body sizes), inside its span's context so exemplars link to it.

        ``extras`` are the request's opt-in attributes (stable conventions);
        attributes a handler added through contrib's labeler are the
        application's own, and its to keep bounded. ``response`` is the one
        sent, None when none was.
        """
        labeled = has_labels()
        new = old = None
        if self._duration_s is not None:
            # The cache read here: a call fewer on every request but an outcome's first.
            new = shared.new_outcomes.get((status, error_type))
            if new is None:
                new = shared.duration_new_with(status, error_type)
            if extras:
                new = {**new, **extras}  # the shared dict stays as made
            if labeled:
                new = enrich_metric_attributes(new)
            self._duration_s.record(duration_s, new)
        if self._duration_ms is not None:
            old = shared.old_outcomes.get(status)
            if old is None:
                old = shared.duration_old_with(status)
            if labeled:
                old = enrich_metric_attributes(old)
            self._duration_ms.record(duration_s * 1000.0, old)
        if self._body_sizes.enabled:
            sizes = (request_size, len(response.body) if response is not None else None)
            self._body_sizes.record(sizes, new, old)


class _BodySizeHistograms:
    """The opt-in request and response body size histograms of each convention."""

    def __init__(self, meter: Meter, keys: AttributeKeys, opt_in: frozenset[str]) -> None:
        self.instruments: dict[tuple[str, str], Any] = {}
        for direction, new_name, old_name in (
            ("request", HTTP_SERVER_REQUEST_BODY_SIZE, MetricInstruments.HTTP_SERVER_REQUEST_SIZE),
            ("response", HTTP_SERVER_RESPONSE_BODY_SIZE, MetricInstruments.HTTP_SERVER_RESPONSE_SIZE),
        ):
            if new_name not in opt_in:
                continue
            description = f"Size of HTTP server {direction} bodies."
            if keys.new:
                self.instruments[direction, "new"] = meter.create_histogram(new_name, "By", description)
            if keys.old:
                self.instruments[direction, "old"] = meter.create_histogram(old_name, "By", description)
        self.enabled = bool(self.instruments)

    def record(
        self,
        sizes: tuple[Optional[int], Optional[int]],
        new: Optional[dict[str, Any]],
        old: Optional[dict[str, Any]],
    ) -> None:
        request_size, response_size = sizes
        for (direction, convention), histogram in self.instruments.items():
            size = request_size if direction == "request" else response_size
            attributes = new if convention == "new" else old
            if size is not None:
                histogram.record(size, attributes)
