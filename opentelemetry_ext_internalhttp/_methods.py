"""HTTP methods as the semantic conventions record them: known ones as sent, the rest ``_OTHER``.

A method is known when it is in the known list (the conventions' default,
or ``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS``, which replaces it) or when
the server has a route for it: the application bounds those.

>>> methods = MethodNormalizer()
>>> methods.normalize("GET"), methods.normalize("get"), methods.normalize("BREW")
('GET', '_OTHER', '_OTHER')
>>> methods.normalize("PURGE", route_methods=frozenset({"PURGE"}))
'PURGE'
>>> MethodNormalizer(capture_all=True).normalize("BREW")
'BREW'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

OTHER_METHOD = "_OTHER"
# RFC 9110's methods, PATCH (RFC 5789) and QUERY: the conventions' default list.
DEFAULT_KNOWN_METHODS = (
    "CONNECT",
    "DELETE",
    "GET",
    "HEAD",
    "OPTIONS",
    "PATCH",
    "POST",
    "PUT",
    "QUERY",
    "TRACE",
)
# With every method captured, how many distinct unknown ones are kept as
# sent before the rest become _OTHER: the method is a metric attribute, and
# the client chooses it.
CAPTURED_METHODS_LIMIT = 32
NO_METHODS: frozenset[str] = frozenset()


class MethodNormalizer:
    """Maps a request's method to the value recorded, with bounded memory.

    Methods are case-sensitive (RFC 9110, section 9.1), as is the router:
    ``get`` is not ``GET``.
    """

    __slots__ = ("_capture_all", "_captured", "_known")

    def __init__(self, known: Optional[Iterable[str]] = None, capture_all: bool = False) -> None:
        names = DEFAULT_KNOWN_METHODS if known is None else known
        self._known: dict[str, str] = {name: name for name in names}
        self._capture_all = capture_all
        self._captured = 0

    def knows(self, method: str) -> bool:
        """Whether ``method`` is recorded as sent by every server, whatever its routes.

        >>> MethodNormalizer().knows("GET"), MethodNormalizer().knows("PURGE")
        (True, False)
        """
        return method in self._known

    def normalize(self, method: Any, route_methods: frozenset[str] = NO_METHODS) -> str:
        if not isinstance(method, str):
            return OTHER_METHOD
        known = self._known.get(method)
        if known is not None:
            return known
        if method in route_methods:
            return method
        if self._capture_all and self._captured < CAPTURED_METHODS_LIMIT:
            # Counted once each: from now on it is looked up like a known method.
            self._captured += 1
            self._known[method] = method
            return method
        return OTHER_METHOD
