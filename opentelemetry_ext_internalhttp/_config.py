"""Settings, read once when ``instrument()`` or ``instrument_app()`` runs.

Each setting comes from a keyword argument or, when that is not given, from
the environment. An invalid keyword argument is the caller's bug and raises
``ValueError`` naming it. An invalid environment variable is logged as an
error naming the variable, and only that setting is ignored: under
``opentelemetry-instrument`` an exception here would stop the whole
instrumentor loader, and every instrumentation after this one with it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, TypeVar, Union, cast

from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS,
    ExcludeList,
    SanitizeValue,
)

from opentelemetry_ext_internalhttp._attributes import DEFAULT_REDACTED_QUERY_PARAMS
from opentelemetry_ext_internalhttp._proxies import (
    DEFAULT_TRUSTED_PROXIES,
    FORWARDED_HEADER_FAMILIES,
    X_FORWARDED,
    ProxyRules,
    TrustedProxies,
)

_logger = logging.getLogger("opentelemetry_ext_internalhttp")

_T = TypeVar("_T")
_NONE: tuple[str, ...] = ()

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
OPT_INS = tuple(
    dict.fromkeys((*SPAN_OPT_INS, *HISTOGRAM_OPT_INS, *METRIC_OPT_INS, "http.server.active_requests"))
)
OPT_IN_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_OPT_IN"
KNOWN_METHODS_VARIABLE = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS"
SENSITIVE_QUERY_PARAMETERS_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS"
EXCEPTION_SIGNAL_VARIABLE = "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN"
TRUSTED_PROXIES_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_TRUSTED_PROXIES"
FORWARDED_HEADERS_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_FORWARDED_HEADERS"
PUBLIC_ENDPOINT_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_PUBLIC_ENDPOINT"
# public_endpoint's third value: public when the peer is not a trusted proxy.
UNTRUSTED = "untrusted"
# Whether a request is public (its caller's trace context only linked):
# always, never, when its peer is untrusted, or as a function of the request.
PublicEndpoint = Union[bool, str, Callable[[Any], bool]]


class Settings(NamedTuple):
    """Everything configurable, in its parsed form."""

    excluded: Optional[ExcludeList]
    captured_request_headers: tuple[str, ...]
    captured_response_headers: tuple[str, ...]
    sanitizer: SanitizeValue
    capture_all_methods: bool
    redacted_query_params: tuple[str, ...]
    known_methods: Optional[tuple[str, ...]]
    opt_in: frozenset[str]
    # Where a handler's exception is recorded: a span event, a log event, or both.
    exception_span_events: bool
    exception_logs: bool
    # Whose forwarding headers are believed, and which family they write.
    proxies: ProxyRules
    public_endpoint: PublicEndpoint


def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty, stripped items.

    >>> split_list(" a, ,b ")
    ('a', 'b')
    """
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _compiled(patterns: Sequence[str]) -> tuple[str, ...]:
    """``patterns`` after checking that they form one valid regular expression."""
    re.compile("|".join(patterns))
    return tuple(patterns)


def _from_argument(name: str, value: Any, parse: Callable[[Any], _T]) -> _T:
    try:
        return parse(value)
    except (re.error, TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r}: {_problem(exc)}") from exc


def _from_environment(variables: Sequence[str], parse: Callable[[str], _T], default: _T) -> _T:
    """The parsed value of the first of ``variables`` that is set, or ``default``."""
    for variable in variables:
        text = os.environ.get(variable)
        if not text:
            continue
        try:
            return parse(text)
        except (re.error, TypeError, ValueError) as exc:
            _logger.error("%s=%r is ignored: %s", variable, text, _problem(exc))
            return default
    return default


def _problem(exc: Exception) -> str:
    if isinstance(exc, re.error):
        return f"not a valid regular expression ({exc})"
    return str(exc)


def _setting(
    argument_name: str,
    argument: Any,
    variables: Sequence[str],
    parse: Callable[[Any], _T],
    default: _T,
) -> _T:
    """A keyword argument's value if given (invalid: ValueError), else the environment's."""
    if argument is not None:
        return _from_argument(argument_name, argument, parse)
    return _from_environment(variables, parse, default)


def _patterns(value: Any) -> tuple[str, ...]:
    """A list of regular expressions, from a comma-separated string or a sequence of strings."""
    if isinstance(value, str):
        return _compiled(split_list(value))
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return _compiled([item.strip() for item in value if item.strip()])
    raise TypeError("expected a comma-separated string or a list of strings")


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return split_list(value)
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise TypeError("expected a comma-separated string or a list of strings")


def _opt_ins(value: Any) -> frozenset[str]:
    """The opt-ins named, ``all`` for every one; an unknown name is an error.

    >>> sorted(_opt_ins("client.port, network.transport"))
    ['client.port', 'network.transport']
    """
    names = _names(value)
    if "all" in names:
        return frozenset(OPT_INS)
    unknown = sorted(set(names) - set(OPT_INS))
    if unknown:
        raise ValueError(f"unknown opt-in {', '.join(unknown)} (known: all, {', '.join(OPT_INS)})")
    return frozenset(names)


def read_settings(
    excluded_urls: Any = None,
    http_capture_headers_server_request: Any = None,
    http_capture_headers_server_response: Any = None,
    http_capture_headers_sanitize_fields: Any = None,
    known_methods: Any = None,
    sensitive_query_parameters: Any = None,
    opt_in: Any = None,
    trusted_proxies: Any = None,
    forwarded_headers: Any = None,
    public_endpoint: Any = None,
) -> Settings:
    """The settings for one ``instrument*()`` call, keyword arguments first."""
    excluded = _setting("excluded_urls", excluded_urls, EXCLUDED_URLS_VARIABLES, _patterns, _NONE)
    sanitized = _setting(
        "http_capture_headers_sanitize_fields",
        http_capture_headers_sanitize_fields,
        (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,),
        _patterns,
        _NONE,
    )
    return Settings(
        excluded=ExcludeList(list(excluded)) if excluded else None,
        captured_request_headers=_setting(
            "http_capture_headers_server_request",
            http_capture_headers_server_request,
            (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,),
            _patterns,
            _NONE,
        ),
        captured_response_headers=_setting(
            "http_capture_headers_server_response",
            http_capture_headers_server_response,
            (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,),
            _patterns,
            _NONE,
        ),
        sanitizer=SanitizeValue(list(sanitized)),
        capture_all_methods=bool(os.environ.get(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS)),
        redacted_query_params=_setting(
            "sensitive_query_parameters",
            sensitive_query_parameters,
            (SENSITIVE_QUERY_PARAMETERS_VARIABLE,),
            _names,
            DEFAULT_REDACTED_QUERY_PARAMS,
        ),
        known_methods=_setting("known_methods", known_methods, (KNOWN_METHODS_VARIABLE,), _names, None),
        opt_in=_setting("opt_in", opt_in, (OPT_IN_VARIABLE,), _opt_ins, frozenset()),
        **_exception_signal(),
        proxies=ProxyRules(
            _trusted_proxies_setting(trusted_proxies),
            _setting(
                "forwarded_headers",
                forwarded_headers,
                (FORWARDED_HEADERS_VARIABLE,),
                _forwarded_family,
                X_FORWARDED,
            ),
        ),
        public_endpoint=_setting(
            "public_endpoint",
            public_endpoint,
            (PUBLIC_ENDPOINT_VARIABLE,),
            _public_endpoint,
            cast(PublicEndpoint, False),
        ),
    )


def _trusted_proxies(value: Any) -> TrustedProxies:
    """Addresses and CIDR ranges, ``*`` for every peer; an empty list trusts no one.

    >>> _trusted_proxies("10.0.0.0/8, ::1")
    TrustedProxies(['10.0.0.0/8', '::1/128'])
    """
    return TrustedProxies.parse(_names(value))


def _trusted_proxies_setting(argument: Any) -> TrustedProxies:
    """``trusted_proxies=``, else the variable, else the default; here an empty value means "none"."""
    if argument is None and os.environ.get(TRUSTED_PROXIES_VARIABLE) == "":
        return TrustedProxies((), everyone=False)
    default = TrustedProxies.parse(DEFAULT_TRUSTED_PROXIES)
    return _setting("trusted_proxies", argument, (TRUSTED_PROXIES_VARIABLE,), _trusted_proxies, default)


def _forwarded_family(value: Any) -> str:
    """``x-forwarded``, ``forwarded`` or ``both``.

    >>> _forwarded_family(" Forwarded ")
    'forwarded'
    """
    family = value.strip().lower() if isinstance(value, str) else value
    if family not in FORWARDED_HEADER_FAMILIES:
        raise ValueError(f"expected one of {', '.join(FORWARDED_HEADER_FAMILIES)}")
    return str(family)


def _public_endpoint(value: Any) -> PublicEndpoint:
    """True, False, ``untrusted``, or a callable given the request's view.

    >>> _public_endpoint("TRUE"), _public_endpoint("untrusted"), _public_endpoint(False)
    (True, 'untrusted', False)
    """
    if isinstance(value, bool):
        return value
    if callable(value):
        decide: Callable[[Any], bool] = value
        return decide
    text = value.strip().lower() if isinstance(value, str) else ""
    choices: dict[str, PublicEndpoint] = {"true": True, "false": False, UNTRUSTED: UNTRUSTED}
    if text not in choices:
        raise ValueError("expected true, false, untrusted, or a callable")
    return choices[text]


def _exception_signal() -> dict[str, bool]:
    """``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``: ``logs``, ``logs/dup``, or unset for span events.

    Read like ``OTEL_SEMCONV_STABILITY_OPT_IN``: a comma-separated list, the
    first value that names this signal wins.
    """
    values = split_list(os.environ.get(EXCEPTION_SIGNAL_VARIABLE, ""))
    if "logs/dup" in values:
        return {"exception_span_events": True, "exception_logs": True}
    if "logs" in values:
        return {"exception_span_events": False, "exception_logs": True}
    return {"exception_span_events": True, "exception_logs": False}
