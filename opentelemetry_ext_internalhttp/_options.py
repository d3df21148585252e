"""Every setting with a keyword argument: its name, variables, parse function, default and choices.

A new setting is one more ``Option`` in ``OPTIONS`` and one more field of
``config.Settings``. A parse function keeps the valid items of a value and
names the invalid ones (``Parsed``); it raises ``TypeError`` only for a value
of a type the setting does not take. ``_config`` reads each from its source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple, Union

from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
)

from opentelemetry_ext_internalhttp._bodies import BODY_CONTENT_ATTRIBUTES, DEFAULT_BODY_CAPTURE_LIMIT_KIB
from opentelemetry_ext_internalhttp._internals import _StabilityMode
from opentelemetry_ext_internalhttp._parsing import (
    SERVER_ERROR_RANGE,
    Parsed,
    list_items,
    parse_boolean,
    parse_byte_count,
    parse_callable,
    parse_choice,
    parse_methods,
    parse_names,
    parse_patterns,
    parse_statuses,
    parse_trusted_proxies,
    sorted_out,
)
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
SERVING_METRICS = Option(
    "serving_metrics", ("OTEL_PYTHON_INTERNALHTTP_SERVING_METRICS",), parse_boolean, True, "true, false"
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
    SERVING_METRICS,
)
