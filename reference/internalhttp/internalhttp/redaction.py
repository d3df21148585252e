"""What may be written about a request: credentials redacted, control bytes escaped.

The one home of these rules, used by the framework's own log lines and by
any telemetry layered on it, so that both show a request target the same way.

>>> loggable_target("/pay?sig=abc&id=7\\x1b[2J")
'/pay?sig=REDACTED&id=7\\\\x1b[2J'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

__all__ = ["REDACTED", "SENSITIVE_QUERY_PARAMETERS", "escape_control", "loggable_target", "redact_query"]

REDACTED = "REDACTED"
# Query parameters whose values are credentials (the HTTP semantic
# conventions' list, v1.44: url.query). Names are compared case-sensitively.
SENSITIVE_QUERY_PARAMETERS = (
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
)
# C0 and C1 controls and DEL: what a terminal or a log viewer may act on.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def redact_query(query: str, names: Iterable[str] = SENSITIVE_QUERY_PARAMETERS) -> str:
    """Replace the values of credential parameters; keep the rest as sent.

    A name is compared decoded, so ``s%69g`` is ``sig`` too.

    >>> redact_query("a=1&sig=abc&b=&X-Amz-Credential=xyz")
    'a=1&sig=REDACTED&b=&X-Amz-Credential=REDACTED'
    """
    if "%" not in query and "+" not in query and not any(name in query for name in names):
        return query
    redacted = frozenset(names)
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, equals, _ = part.partition("=")
        if equals and unquote_plus(name) in redacted:
            parts[index] = f"{name}={REDACTED}"
    return "&".join(parts)


def escape_control(text: str) -> str:
    r"""``text`` with control characters written as ``\xNN``, so no client writes raw bytes into a log.

    >>> escape_control("GET\r\nX-Injected: 1")
    'GET\\x0d\\x0aX-Injected: 1'
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def loggable_target(target: str, names: Iterable[str] = SENSITIVE_QUERY_PARAMETERS) -> str:
    """A request target as a log line may show it: query credentials redacted, controls escaped."""
    path, question, query = target.partition("?")
    if question:
        target = f"{path}?{redact_query(query, names)}"
    return escape_control(target)
