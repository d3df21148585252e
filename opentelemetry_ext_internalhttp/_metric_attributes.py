"""The attributes every request with one method, route, scheme and HTTP version shares.

Worked out once per combination (all four are bounded: see ``_methods``,
the application's routes, ``request_scheme`` and ``protocol_version``) and
cached, so that a request copies small dicts instead of picking keys. Only
these bounded values, plus the status code and ``error.type``, ever reach a
metric: never the path, the query, the host or anything else a client can
vary at will.

>>> from opentelemetry_ext_internalhttp._attributes import AttributeKeys
>>> shared = shared_attributes(AttributeKeys.for_mode(False, True), "GET", "/items/<id>", "https", "1.1")
>>> shared.span_name
'GET /items/<id>'
>>> shared.duration_new_with(503, "503")["error.type"]
'503'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_STATUS_CODE
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE

from opentelemetry_ext_internalhttp._attributes import AttributeKeys
from opentelemetry_ext_internalhttp._methods import OTHER_METHOD


@dataclass(frozen=True, slots=True)  # slots: read on every request (see _config.Settings)
class SharedAttributes:
    span_name: str
    span: dict[str, Any]
    duration_old: dict[str, Any]
    duration_new: dict[str, Any]
    active: dict[str, Any]
    # The finished duration attributes of each convention, per (status,
    # error.type) and per status: bounded by the statuses and the
    # application's exception types. Never mutated once made, so one dict
    # serves every request with that outcome; a request reads them here
    # first and asks duration_*_with only on a miss (a call saved).
    new_outcomes: dict[tuple[Optional[int], Optional[str]], dict[str, Any]]
    old_outcomes: dict[Optional[int], dict[str, Any]]
    # The span's share with the server the client addressed added, per
    # (host, forwarded port, socket address, socket port): a request copies
    # one dict. Filled by RequestReading; the host is the client's to
    # choose, so only the first few are kept.
    addressed: dict[tuple[Optional[str], Optional[int], Optional[str], Optional[int]], dict[str, Any]]

    def duration_new_with(self, status: Optional[int], error_type: Optional[str]) -> dict[str, Any]:
        """The stable duration attributes of a request that ended so, made once per outcome."""
        key = (status, error_type)
        attributes = self.new_outcomes.get(key)
        if attributes is None:
            attributes = dict(self.duration_new)
            if status is not None:
                attributes[HTTP_RESPONSE_STATUS_CODE] = status
            if error_type is not None:
                attributes[ERROR_TYPE] = error_type
            if len(self.new_outcomes) < _OUTCOME_CACHE_LIMIT:
                self.new_outcomes[key] = attributes
        return attributes

    def duration_old_with(self, status: Optional[int]) -> dict[str, Any]:
        """The old conventions' duration attributes of a request that ended with ``status``."""
        attributes = self.old_outcomes.get(status)
        if attributes is None:
            attributes = dict(self.duration_old)
            if status is not None:
                attributes[HTTP_STATUS_CODE] = status
            if len(self.old_outcomes) < _OUTCOME_CACHE_LIMIT:
                self.old_outcomes[status] = attributes
        return attributes


_OUTCOME_CACHE_LIMIT = 64


def span_name(method: str, route: Optional[str]) -> str:
    """``{method} {route}``, ``HTTP`` for an unknown method, the method alone with no route.

    >>> span_name("GET", "/users/<id>"), span_name("_OTHER", None), span_name("GET", None)
    ('GET /users/<id>', 'HTTP', 'GET')
    """
    prefix = "HTTP" if method == OTHER_METHOD else method
    return f"{prefix} {route}" if route else prefix


def shared_attributes(
    keys: AttributeKeys, method: str, route: Optional[str], scheme: str, version: Optional[str]
) -> SharedAttributes:
    """The span's and each metric's share of the bounded request attributes."""
    old_method, new_method = _split(keys.method, keys)
    old_scheme, new_scheme = _split(keys.scheme, keys)
    old_protocol, new_protocol = _split(keys.protocol, keys)
    routed = {HTTP_ROUTE: route} if route is not None else {}
    versioned_old = {old_protocol: version} if version and old_protocol else {}
    versioned_new = {new_protocol: version} if version and new_protocol else {}
    old = {old_method: method, old_scheme: scheme, **versioned_old} if keys.old else {}
    new = {new_method: method, new_scheme: scheme} if keys.new else {}
    return SharedAttributes(
        span_name=span_name(method, route),
        span={**old, **new, **versioned_new, **routed},
        duration_old={**old, **routed},
        duration_new={**new, **routed, **versioned_new},
        # The active-requests attributes of each convention: no route (not
        # known for every request yet), no status.
        active={**old, **new},
        new_outcomes={},
        old_outcomes={},
        addressed={},
    )


def _split(pair: tuple[str, ...], keys: AttributeKeys) -> tuple[str, str]:
    """The old and the new key of a fact, "" for the one the mode does not write."""
    old = pair[0] if keys.old else ""
    new = pair[-1] if keys.new else ""
    return old, new
