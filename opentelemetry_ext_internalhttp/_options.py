"""Every setting with a keyword argument: its name, variables, parse function, default and choices.

A new setting is one more ``Option`` in ``OPTIONS`` and one more field of
``config.Settings``. A parse function keeps the valid items of a value and
names the invalid ones (``Parsed``); it raises ``TypeError`` only for a value
of a type the setting does not take. ``_config`` reads each from its source.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from ipaddress import ip_network
from typing import Any, NamedTuple, Optional, Union

from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
)

from opentelemetry_ext_internalhttp._bodies import BODY_CONTENT_ATTRIBUTES, DEFAULT_BODY_CAPTURE_LIMIT_KIB
from opentelemetry_ext_internalhttp._internals import _StabilityMode
from opentelemetry_ext_internalhttp._proxies import (
    DEFAULT_TRUSTED_PROXIES,
    FORWARDED_HEADER_FAMILIES,
    X_FORWARDED,
    TrustedProxies,
)

_logger = logging.getLogger("opentelemetry_ext_internalhttp")

# Where excluded URLs are looked for, in this order.
EXCLUDED_URLS_VARIABLES = ("OTEL_PYTHON_INTERNALHTTP_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")


# The opt-in attributes and metrics of the HTTP server conventions that
# can be recorded, by the name users give them in the opt-in setting.
SPAN_OPT_INS = (
    "client.port",
    "network.local.address",
    "network.local.port",
    "network.transport",
    "user_agent.synthetic.type",
    "http.request.body.size",
    "http.response.body.size",
)
# On the duration metric (the synthetic type on the span too).
METRIC_OPT_INS = ("server.address", "server.port", "user_agent.synthetic.type")
HISTOGRAM_OPT_INS = ("http.server.request.body.size", "http.server.response.body.size")
# Where the route's handler lives, on the SERVER span.
CODE_OPT_INS = ("code.function.name", "code.file.path", "code.line.number")
# What "all" turns on.
ALL_OPT_INS = tuple(
    dict.fromkeys(
        (*SPAN_OPT_INS, *HISTOGRAM_OPT_INS, *METRIC_OPT_INS, "http.server.active_requests", *CODE_OPT_INS)
    )
)
# Opt-ins that "all" leaves out and that must be named one by one: bodies
# are personal data more often than not.
NAMED_ONLY_OPT_INS = BODY_CONTENT_ATTRIBUTES
OPT_INS = (*ALL_OPT_INS, *NAMED_ONLY_OPT_INS)
OPT_IN_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_OPT_IN"
KNOWN_METHODS_VARIABLE = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS"
SENSITIVE_QUERY_PARAMETERS_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS"
SENSITIVE_QUERY_PARAMETERS_REPLACE_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS_REPLACE"
EXCEPTION_SIGNAL_VARIABLE = "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN"
EXCEPTION_SIGNALS = ("logs", "logs/dup")
TRUSTED_PROXIES_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_TRUSTED_PROXIES"
FORWARDED_HEADERS_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_FORWARDED_HEADERS"
PUBLIC_ENDPOINT_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_PUBLIC_ENDPOINT"
# public_endpoint's third value: public when the peer is not a trusted proxy.
UNTRUSTED = "untrusted"
# Whether a request is public (its caller's trace context only linked):
# always, never, when its peer is untrusted, or as a function of the request.
PublicEndpoint = Union[bool, str, Callable[[Any], bool]]
CONFIG_FILE_VARIABLE = "OTEL_CONFIG_FILE"
# This package's key under instrumentation/development.python: the name of
# its opentelemetry_instrumentor entry point, which the SDK looks it up by.
CONFIG_FILE_NAME = "internalhttp"
CONFIG_FILE_BLOCK = f"instrumentation/development.python.{CONFIG_FILE_NAME}"
# A key of that block the SDK itself reads (enabled: false: not activated from the file).
CONFIG_FILE_SDK_KEYS = ("enabled",)

# OTEL_SEMCONV_STABILITY_OPT_IN is shared by every instrumentation in the
# process, so a value is wrong only when none of them knows it: the modes of
# the installed contrib helpers, and the values the semantic conventions'
# migration guides define for other domains.
SEMCONV_DOMAINS = ("http", "database", "messaging", "rpc", "code", "service.peer")
KNOWN_SEMCONV_OPT_INS = tuple(
    dict.fromkeys(
        (
            *(mode.value for mode in _StabilityMode if mode is not _StabilityMode.DEFAULT),
            *(value for domain in SEMCONV_DOMAINS for value in (domain, f"{domain}/dup")),
            "gen_ai_latest_experimental",
        )
    )
)

# RFC 9110, section 5.6.2: a method is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BOOLEANS = {"true": True, "false": False}


class Parsed(NamedTuple):
    """What a parse function makes of a value: the setting, and the invalid items, as shown to users."""

    value: Any
    rejected: tuple[str, ...]


class Option(NamedTuple):
    """A setting with a keyword argument, the same key in the configuration file, and maybe variables."""

    keyword: str
    # The environment variables read when no configuration file is in use, first set wins.
    variables: tuple[str, ...]
    # Raises TypeError for a value of the wrong type; otherwise keeps what is valid.
    parse: Callable[[Any], Parsed]
    default: Any
    # What a valid item is, for the error message.
    choices: str
    # Its key under instrumentation/development.general in a configuration file, if any.
    general: tuple[str, ...] = ()
    # Makes the setting from the parsed value (or the default): each call its own object.
    build: Callable[[Any], Any] = lambda value: value
    # Whether a variable set to "" is a value (else it counts as unset).
    empty_is_a_value: bool = False


def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty, stripped items.

    >>> split_list(" a, ,b ")
    ('a', 'b')
    """
    return tuple(item.strip() for item in text.split(",") if item.strip())


def list_items(value: object) -> tuple[str, ...]:
    """A list setting's items, from a comma-separated string or a list of strings.

    >>> list_items("GET, PUT"), list_items(["GET", " PUT "])
    (('GET', 'PUT'), ('GET', 'PUT'))
    """
    if isinstance(value, str):
        return split_list(value)
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise TypeError("expected a comma-separated string or a list of strings")


def sorted_out(items: Iterable[str], is_valid: Callable[[str], bool]) -> Parsed:
    """``items`` split into the valid ones, kept in order, and the others, quoted.

    >>> sorted_out(["a", "b c", "d"], str.isalpha)
    Parsed(value=('a', 'd'), rejected=("'b c'",))
    """
    kept: list[str] = []
    rejected: list[str] = []
    for item in items:
        (kept if is_valid(item) else rejected).append(item)
    return Parsed(tuple(kept), tuple(repr(item) for item in rejected))


def parse_patterns(value: object) -> Parsed:
    """Regular expressions, each kept only if it compiles, alone and joined to those before it.

    They are used joined into one expression, so one that compiles alone but
    not joined (a repeated group name) is rejected too.

    >>> parse_patterns("/healthz, /broken(")
    Parsed(value=('/healthz',), rejected=("'/broken(' (missing ), unterminated subpattern at position 7)",))
    """
    kept: list[str] = []
    rejected: list[str] = []
    for item in list_items(value):
        problem = _regex_problem(item) or _regex_problem("|".join((*kept, item)))
        if problem:
            rejected.append(f"{item!r} ({problem})")
        else:
            kept.append(item)
    return Parsed(tuple(kept), tuple(rejected))


def _regex_problem(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return ""


def parse_methods(value: object) -> Parsed:
    """HTTP methods: tokens, case-sensitive.

    >>> parse_methods("GET,BAD METHOD")
    Parsed(value=('GET',), rejected=("'BAD METHOD'",))
    """
    return sorted_out(list_items(value), lambda item: _TOKEN.fullmatch(item) is not None)


def parse_names(value: object) -> Parsed:
    """Names compared as written (query parameter names): every non-empty string is one.

    >>> parse_names("token, api_key")
    Parsed(value=('token', 'api_key'), rejected=())
    """
    return Parsed(list_items(value), ())


def parse_opt_ins(value: object) -> Parsed:
    """The opt-ins named, ``all`` for every one but the body contents, which are named one by one.

    >>> parsed = parse_opt_ins("client.port,client.prot")
    >>> sorted(parsed.value), parsed.rejected
    (['client.port'], ("'client.prot'",))
    >>> "http.request.body.content" in parse_opt_ins("all").value
    False
    """
    names, rejected = sorted_out(list_items(value), lambda item: item == "all" or item in OPT_INS)
    chosen = frozenset(names)
    if "all" in chosen:
        chosen = (chosen - {"all"}) | frozenset(ALL_OPT_INS)
    return Parsed(chosen, rejected)


def parse_boolean(value: object) -> Parsed:
    """True or False, or ``true`` / ``false`` in any case.

    >>> parse_boolean("TRUE"), parse_boolean("yes")
    (Parsed(value=True, rejected=()), Parsed(value=None, rejected=("'yes'",)))
    """
    if isinstance(value, bool):
        return Parsed(value, ())
    if not isinstance(value, str):
        raise TypeError("expected True, False, true or false")
    flag = _BOOLEANS.get(value.strip().lower())
    return Parsed(flag, ()) if flag is not None else Parsed(None, (repr(value),))


def parse_byte_count(value: object) -> Parsed:
    """A whole number of bytes, 0 or more.

    >>> parse_byte_count("16384"), parse_byte_count(-1)
    (Parsed(value=16384, rejected=()), Parsed(value=None, rejected=('-1',)))
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError("expected a whole number of bytes")
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        return Parsed(int(text), ())
    return Parsed(None, (repr(value),))


def parse_callable(value: object) -> Parsed:
    """A callable (keyword arguments only)."""
    if not callable(value):
        raise TypeError("expected a callable")
    return Parsed(value, ())


# Every status code a SERVER span may call an error: the 5xx range. A 4xx
# is the client's error, never the server's (http-spans.md, Status).
SERVER_ERROR_RANGE = range(500, 600)


def parse_statuses(value: object) -> Parsed:
    """Status codes that make a SERVER span an error: codes and ranges, ``!`` to leave some out.

    Narrowing only: what is outside 500-599 is named and ignored. With only
    exclusions, they are taken out of the whole 5xx range.

    >>> parsed = parse_statuses("500-599,!501,!505")
    >>> (501 in parsed.value, 502 in parsed.value, len(parsed.value))
    (False, True, 98)
    >>> sorted(parse_statuses("!500-598").value), parse_statuses("404,5xx").rejected
    ([599], ("'404'", "'5xx'"))
    """
    included: set[int] = set()
    excluded: set[int] = set()
    rejected: list[str] = []
    for item in list_items(value):
        codes = _status_range(item.removeprefix("!").strip())
        if codes is None:
            rejected.append(repr(item))
        else:
            (excluded if item.startswith("!") else included).update(codes)
    if not included and (excluded or not rejected):
        included.update(SERVER_ERROR_RANGE)
    return Parsed(frozenset(included - excluded) if included or excluded else None, tuple(rejected))


def _status_range(text: str) -> Optional[range]:
    """``503`` or ``500-504`` as a range of 5xx codes, or None.

    >>> _status_range("500-504"), _status_range("503"), _status_range("499-500")
    (range(500, 505), range(503, 504), None)
    """
    low, dash, high = text.partition("-")
    if not (low.isascii() and low.isdigit() and (not dash or (high.isascii() and high.isdigit()))):
        return None
    first, last = int(low), int(high) if dash else int(low)
    if first > last or first not in SERVER_ERROR_RANGE or last not in SERVER_ERROR_RANGE:
        return None
    return range(first, last + 1)


def parse_trusted_proxies(value: object) -> Parsed:
    """IP addresses and CIDR ranges, ``*`` for every peer; an empty list trusts no one.

    >>> parse_trusted_proxies("10.0.0.0/8, ::1, not-a-network")
    Parsed(value=('10.0.0.0/8', '::1'), rejected=("'not-a-network'",))
    """
    return sorted_out(list_items(value), lambda item: item == "*" or not _network_problem(item))


def _network_problem(item: str) -> str:
    try:
        ip_network(item, strict=False)
    except ValueError as exc:
        return str(exc)
    return ""


def parse_choice(choices: Sequence[str]) -> Callable[[Any], Parsed]:
    """A parse function for one of ``choices``, in any case.

    >>> parse_choice(("x-forwarded", "forwarded"))(" Forwarded ")
    Parsed(value='forwarded', rejected=())
    """

    def parse(value: object) -> Parsed:
        if not isinstance(value, str):
            raise TypeError(f"expected one of {', '.join(choices)}")
        choice = value.strip().lower()
        return Parsed(choice, ()) if choice in choices else Parsed(None, (repr(value),))

    return parse


def parse_public_endpoint(value: object) -> Parsed:
    """True, False, ``untrusted``, or a callable given the request's view.

    >>> [parse_public_endpoint(value).value for value in ("TRUE", "untrusted", False)]
    [True, 'untrusted', False]
    """
    if isinstance(value, bool) or callable(value):
        return Parsed(value, ())
    choices: dict[str, PublicEndpoint] = {"true": True, "false": False, UNTRUSTED: UNTRUSTED}
    if not isinstance(value, str):
        raise TypeError("expected true, false, untrusted, or a callable")
    text = value.strip().lower()
    return Parsed(choices[text], ()) if text in choices else Parsed(None, (repr(value),))


def add_or_replace(
    defaults: tuple[str, ...], replacing: Optional[tuple[str, ...]], adding: tuple[str, ...]
) -> tuple[str, ...]:
    """A list with both forms of setting: ``replacing`` (when set) instead of the defaults, plus ``adding``.

    Adding to the list can never remove a default; only the replacing form can.

    >>> add_or_replace(("sig", "Signature"), None, ("token",))
    ('sig', 'Signature', 'token')
    >>> add_or_replace(("sig", "Signature"), ("token",), ("sig",))
    ('token', 'sig')
    """
    return tuple(dict.fromkeys((*(defaults if replacing is None else replacing), *adding)))


PATTERNS = "regular expressions, comma-separated or a list"
EXCLUDED_URLS = Option("excluded_urls", EXCLUDED_URLS_VARIABLES, parse_patterns, (), PATTERNS)
CAPTURED_REQUEST_HEADERS = Option(
    "http_capture_headers_server_request",
    (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,),
    parse_patterns,
    (),
    PATTERNS,
    ("http", "server", "request_captured_headers"),
)
CAPTURED_RESPONSE_HEADERS = Option(
    "http_capture_headers_server_response",
    (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,),
    parse_patterns,
    (),
    PATTERNS,
    ("http", "server", "response_captured_headers"),
)
SANITIZED_HEADERS = Option(
    "http_capture_headers_sanitize_fields",
    (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,),
    parse_patterns,
    (),
    PATTERNS,
)
KNOWN_METHODS = Option(
    "known_methods",
    (KNOWN_METHODS_VARIABLE,),
    parse_methods,
    None,
    "HTTP method tokens (letters, digits and !#$%&'*+-.^_`|~), case-sensitive",
    ("http", "server", "known_methods"),
)
SENSITIVE_QUERY_PARAMETERS = Option(
    "sensitive_query_parameters",
    (SENSITIVE_QUERY_PARAMETERS_VARIABLE,),
    parse_names,
    (),
    "query parameter names",
)
SENSITIVE_QUERY_PARAMETERS_REPLACE = Option(
    "sensitive_query_parameters_replace",
    (SENSITIVE_QUERY_PARAMETERS_REPLACE_VARIABLE,),
    parse_names,
    None,
    "query parameter names",
    # The schema's list replaces the defaults too.
    ("sanitization", "url", "sensitive_query_parameters"),
)
OPT_IN = Option("opt_in", (OPT_IN_VARIABLE,), parse_opt_ins, frozenset(), ", ".join(("all", *OPT_INS)))
TRUSTED_PROXIES = Option(
    "trusted_proxies",
    (TRUSTED_PROXIES_VARIABLE,),
    parse_trusted_proxies,
    DEFAULT_TRUSTED_PROXIES,
    "IP addresses, CIDR ranges, *",
    build=TrustedProxies.parse,
    # OTEL_PYTHON_INTERNALHTTP_TRUSTED_PROXIES="" trusts no one.
    empty_is_a_value=True,
)
FORWARDED_HEADERS = Option(
    "forwarded_headers",
    (FORWARDED_HEADERS_VARIABLE,),
    parse_choice(FORWARDED_HEADER_FAMILIES),
    X_FORWARDED,
    ", ".join(FORWARDED_HEADER_FAMILIES),
)
PUBLIC_ENDPOINT = Option(
    "public_endpoint",
    (PUBLIC_ENDPOINT_VARIABLE,),
    parse_public_endpoint,
    False,
    f"true, false, {UNTRUSTED}, or (keyword only) a callable",
)
BODY_CAPTURE_LIMIT = Option(
    "body_capture_limit",
    ("OTEL_PYTHON_INTERNALHTTP_BODY_CAPTURE_LIMIT",),
    parse_byte_count,
    DEFAULT_BODY_CAPTURE_LIMIT_KIB * 1024,
    "a whole number of bytes, 0 or more",
)
SENSITIVE_PATH_PARAMETERS = Option(
    "sensitive_path_parameters",
    ("OTEL_PYTHON_INTERNALHTTP_SENSITIVE_PATH_PARAMETERS",),
    parse_names,
    (),
    "path parameter names",
)
SENSITIVE_PATH_PARAMETERS_REPLACE = Option(
    "sensitive_path_parameters_replace",
    ("OTEL_PYTHON_INTERNALHTTP_SENSITIVE_PATH_PARAMETERS_REPLACE",),
    parse_names,
    None,
    "path parameter names",
)
SERVER_TIMING = Option(
    "server_timing", ("OTEL_PYTHON_INTERNALHTTP_SERVER_TIMING",), parse_boolean, False, "true, false"
)
EXCLUDE = Option("exclude", (), parse_callable, None, "a callable given the request view")
EXCLUDED_METHODS = Option(
    "excluded_methods",
    ("OTEL_PYTHON_INTERNALHTTP_EXCLUDED_METHODS",),
    parse_methods,
    (),
    "HTTP method tokens, case-sensitive",
)
SERVER_ERROR_STATUSES = Option(
    "server_error_statuses",
    ("OTEL_PYTHON_INTERNALHTTP_SERVER_ERROR_STATUSES",),
    parse_statuses,
    frozenset(SERVER_ERROR_RANGE),
    "status codes and ranges within 500-599, each may start with ! to leave it out",
)
OPTIONS = (
    EXCLUDED_URLS,
    CAPTURED_REQUEST_HEADERS,
    CAPTURED_RESPONSE_HEADERS,
    SANITIZED_HEADERS,
    KNOWN_METHODS,
    SENSITIVE_QUERY_PARAMETERS,
    SENSITIVE_QUERY_PARAMETERS_REPLACE,
    OPT_IN,
    TRUSTED_PROXIES,
    FORWARDED_HEADERS,
    PUBLIC_ENDPOINT,
    BODY_CAPTURE_LIMIT,
    SENSITIVE_PATH_PARAMETERS,
    SENSITIVE_PATH_PARAMETERS_REPLACE,
    SERVER_TIMING,
    EXCLUDE,
    EXCLUDED_METHODS,
    SERVER_ERROR_STATUSES,
)
