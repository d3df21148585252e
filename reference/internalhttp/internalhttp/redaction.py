"""What may be written about a request: credentials redacted, control bytes escaped.

The one home of these rules, used by the framework's own log lines and by
any telemetry layered on it, so that both show a request target the same way.

>>> loggable_target("/pay?sig=abc&id=7\\x1b[2J")
'/pay?sig=REDACTED&id=7\\\\x1b[2J'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Optional
from urllib.parse import unquote_plus

__all__ = [
    "REDACTED",
    "SENSITIVE_PATH_PARAMETERS",
    "SENSITIVE_QUERY_PARAMETERS",
    "escape_control",
    "loggable_target",
    "redact_path",
    "redact_query",
]

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
# Path parameters (the <name> of a route template) whose values are
# credentials: tokens, passwords, secrets, API keys, signatures, session
# ids. Compared without case, "-" or "_": <apiKey>, <api-key> and <API_KEY>
# are all "apikey".
SENSITIVE_PATH_PARAMETERS = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "api_key",
    "signature",
    "sig",
    "session",
    "session_id",
    "sid",
    "otp",
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


def parameter_key(name: str) -> str:
    """How path parameter names are compared: lower case, without ``-`` and ``_``.

    >>> parameter_key("API-Key"), parameter_key("session_id")
    ('apikey', 'sessionid')
    """
    return name.lower().replace("-", "").replace("_", "")


@lru_cache(maxsize=32)  # a server has one or two lists: made once, not per request
def _parameter_keys(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(parameter_key(name) for name in names)


def redact_path(path: str, template: str, names: Iterable[str] = SENSITIVE_PATH_PARAMETERS) -> str:
    """``path`` with the segments of sensitive template parameters replaced by ``REDACTED``.

    Each ``<name>`` of a template is one whole segment, so the path's
    segment at the same place is its value; ``http.route`` keeps the template.

    >>> redact_path("/reset/abc123/confirm", "/reset/<token>/confirm")
    '/reset/REDACTED/confirm'
    >>> redact_path("/users/42", "/users/<user_id>")
    '/users/42'
    """
    if "<" not in template:
        return path
    keys = _parameter_keys(tuple(names))
    segments = path.split("/")
    template_segments = template.split("/")
    if len(segments) != len(template_segments):
        return path  # not this template's path: nothing is known of it
    for index, segment in enumerate(template_segments):
        if segment.startswith("<") and segment.endswith(">") and parameter_key(segment[1:-1]) in keys:
            segments[index] = REDACTED
    return "/".join(segments)


def escape_control(text: str) -> str:
    r"""``text`` with control characters written as ``\xNN``, so no client writes raw bytes into a log.

    >>> escape_control("GET\r\nX-Injected: 1")
    'GET\\x0d\\x0aX-Injected: 1'
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def loggable_target(
    target: str,
    names: Iterable[str] = SENSITIVE_QUERY_PARAMETERS,
    route: Optional[str] = None,
    path_names: Iterable[str] = SENSITIVE_PATH_PARAMETERS,
) -> str:
    """A request target as a log line may show it: credentials redacted, controls escaped.

    Query credentials (``names``) always; with the ``route`` template the
    request matched, the values of its sensitive path parameters too.

    >>> loggable_target("/reset/abc?sig=1", route="/reset/<token>")
    '/reset/REDACTED?sig=REDACTED'
    """
    path, question, query = target.partition("?")
    if route is not None and path.startswith("/"):
        path = redact_path(path, route, path_names)
    target = f"{path}?{redact_query(query, names)}" if question else path
    return escape_control(target)
