"""HTTP methods as the semantic conventions record them: known ones as sent, the rest ``_OTHER``.

>>> methods = MethodNormalizer()
>>> methods.normalize("GET"), methods.normalize("get"), methods.normalize("BREW")
('GET', '_OTHER', '_OTHER')
>>> MethodNormalizer(capture_all=True).normalize("BREW")
'BREW'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

OTHER_METHOD = "_OTHER"
# The methods of RFC 9110 and RFC 5789 (PATCH): the conventions' default list.
DEFAULT_KNOWN_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
# With every method captured, how many distinct unknown ones are kept as
# sent before the rest become _OTHER: the method is a metric attribute, and
# the client chooses it.
CAPTURED_METHODS_LIMIT = 32


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

    def normalize(self, method: Any) -> str:
        known = self._known.get(method) if isinstance(method, str) else None
        if known is not None:
            return known
        if self._capture_all and isinstance(method, str) and self._captured < CAPTURED_METHODS_LIMIT:
            # Counted once each: from now on it is looked up like a known method.
            self._captured += 1
            self._known[method] = method
            return method
        return OTHER_METHOD
