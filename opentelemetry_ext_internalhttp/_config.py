"""Settings, read once when ``instrument()`` or ``instrument_app()`` runs.

A new setting is one more ``Option`` in ``OPTIONS`` (its keyword, variables,
parse function, default and valid choices) and one more field of
``Settings``; the rules below then hold for it too.

A setting that has a keyword argument (an ``Option`` below) comes from the
first of: the keyword argument; the configuration file named by
``OTEL_CONFIG_FILE``, when one is in use (its
``instrumentation/development`` block: ``python: internalhttp:`` under the
keyword's own name, then the shared ``general`` key, if there is one); its
environment variable(s), only when no configuration file is in use (the
declarative configuration specification makes the file the one source;
``${VAR}`` in the file brings a variable in); its default.

Every value goes through the parse function of its setting, which keeps
the valid items of a list and names the invalid ones. A keyword argument of
a type the setting does not take raises ``ValueError`` naming it: the
caller's bug. Anything else invalid is logged
as an error naming the setting, where it came from, each invalid item and
the valid choices; the valid items are kept, and when none is, the default
applies. Nothing read from the environment or the file raises: under
``opentelemetry-instrument`` an exception here would stop the whole
instrumentor loader, and every instrumentation after this one with it.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

from internalhttp.redaction import SENSITIVE_PATH_PARAMETERS as SENSITIVE_PATH_PARAMETERS_DEFAULTS
from opentelemetry.util.http import (
    OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS,
    ExcludeList,
    SanitizeValue,
)

from opentelemetry_ext_internalhttp._attributes import DEFAULT_REDACTED_QUERY_PARAMS
from opentelemetry_ext_internalhttp._internals import OTEL_SEMCONV_STABILITY_OPT_IN
from opentelemetry_ext_internalhttp._options import (
    BODY_CAPTURE_LIMIT,
    CAPTURED_REQUEST_HEADERS,
    CAPTURED_RESPONSE_HEADERS,
    CONFIG_FILE_BLOCK,
    CONFIG_FILE_NAME,
    CONFIG_FILE_SDK_KEYS,
    CONFIG_FILE_VARIABLE,
    EXCEPTION_SIGNAL_VARIABLE,
    EXCEPTION_SIGNALS,
    EXCLUDE,
    EXCLUDED_METHODS,
    EXCLUDED_URLS,
    FORWARDED_HEADERS,
    KNOWN_METHODS,
    KNOWN_SEMCONV_OPT_INS,
    OPT_IN,
    OPTIONS,
    PUBLIC_ENDPOINT,
    SANITIZED_HEADERS,
    SENSITIVE_PATH_PARAMETERS,
    SENSITIVE_PATH_PARAMETERS_REPLACE,
    SENSITIVE_QUERY_PARAMETERS,
    SENSITIVE_QUERY_PARAMETERS_REPLACE,
    SERVER_ERROR_STATUSES,
    SERVER_TIMING,
    SERVING_METRICS,
    TRUSTED_PROXIES,
    Option,
    PublicEndpoint,
)
from opentelemetry_ext_internalhttp._parsing import _BOOLEANS, add_or_replace, sorted_out, split_list
from opentelemetry_ext_internalhttp._proxies import ProxyRules

_logger = logging.getLogger("opentelemetry_ext_internalhttp")


# These are frozen dataclasses with slots, not NamedTuples: their fields are read on
# every request, and CPython specializes a slot read, never a NamedTuple's
# field (about 150 machine instructions a read on 3.11).
@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which requests are not recorded: by URL pattern, by method, by a function of the request."""

    urls: Optional[ExcludeList]
    methods: frozenset[str]
    function: Optional[Callable[[Any], bool]]


@dataclass(frozen=True, slots=True)
class ExceptionSignal:
    """Where a handler's exception is recorded: a span event, a log event, or both."""

    span_events: bool
    logs: bool


@dataclass(frozen=True, slots=True)
class Additions:
    """What is recorded or sent beyond what the HTTP conventions ask for."""

    # Server-Timing: traceparent on every response sent.
    server_timing: bool
    # The socket server's connection and queueing metrics, and the queue time on SERVER spans.
    serving_metrics: bool


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, in its parsed form."""

    filters: RequestFilter
    captured_request_headers: tuple[str, ...]
    captured_response_headers: tuple[str, ...]
    sanitizer: SanitizeValue
    capture_all_methods: bool
    redacted_query_params: tuple[str, ...]
    known_methods: Optional[tuple[str, ...]]
    opt_in: frozenset[str]
    exception_signal: ExceptionSignal
    # Whose forwarding headers are believed, and which family they write.
    proxies: ProxyRules
    public_endpoint: PublicEndpoint
    # Opt-in body content: at most this many bytes of each body.
    body_capture_limit: int
    # Path parameters whose values url.path, http.target and log lines redact.
    redacted_path_params: tuple[str, ...]
    # What is recorded or sent beyond the conventions.
    additions: Additions
    # The status codes that make a SERVER span an error.
    server_error_statuses: frozenset[int]


class ConfigFile(NamedTuple):
    """What a configuration file says about this package."""

    path: str
    # instrumentation/development.python.internalhttp, as written.
    block: Mapping[str, Any]
    # instrumentation/development.general, as the SDK's model holds it (None if absent).
    general: Any

    @property
    def enabled(self) -> bool:
        return self.block.get("enabled", True) is not False

    def lookup(self, option: Option) -> Optional[tuple[str, Any]]:
        """Where the file sets ``option`` and to what: this package's key first, then the general one.

        >>> from types import SimpleNamespace as Node
        >>> general = Node(http=Node(server=Node(known_methods=["GET"])))
        >>> ConfigFile("otel.yaml", {"known_methods": ["PUT"]}, general).lookup(KNOWN_METHODS)
        ('OTEL_CONFIG_FILE otel.yaml: instrumentation/development.python.internalhttp.known_methods', ['PUT'])
        >>> ConfigFile("otel.yaml", {}, general).lookup(KNOWN_METHODS)[1]
        ['GET']
        >>> ConfigFile("otel.yaml", {}, None).lookup(KNOWN_METHODS) is None
        True
        """
        where = f"{CONFIG_FILE_VARIABLE} {self.path}: instrumentation/development"
        own = self.block.get(option.keyword)
        if own is not None:
            return f"{where}.python.{CONFIG_FILE_NAME}.{option.keyword}", own
        shared = self.general
        for name in option.general:
            shared = getattr(shared, name, None)
        if option.general and shared is not None:
            return f"{where}.general.{'.'.join(option.general)}", shared
        return None


def read_config_file() -> Optional[ConfigFile]:
    """The configuration file ``OTEL_CONFIG_FILE`` names, read as the SDK reads it; None if none is in use.

    Read with the SDK's own loader (``opentelemetry-configuration``, SDK
    1.44 and later: ``opentelemetry-sdk[file-configuration]``), so that
    ``${VAR}`` substitution and validation are the SDK's. A file that cannot
    be read is logged as an error, and the environment variables apply.
    """
    path = os.environ.get(CONFIG_FILE_VARIABLE)
    if not path:
        return None
    try:
        loader = importlib.import_module("opentelemetry.configuration")
        model = loader.load_config_file(path)
    except Exception as exc:  # ImportError, ConfigurationError, anything the loader raises
        _logger.error(
            "%s=%r is not used by this instrumentation, which reads its environment variables instead: %s%s",
            CONFIG_FILE_VARIABLE,
            path,
            f"{type(exc).__name__}: {exc}",
            " (install opentelemetry-sdk[file-configuration])" if isinstance(exc, ImportError) else "",
        )
        return None
    instrumentation = model.instrumentation_development
    languages = getattr(instrumentation, "python", None) or {}
    general = getattr(instrumentation, "general", None)
    config_file = ConfigFile(path, languages.get(CONFIG_FILE_NAME) or {}, general)
    _report_unknown_keys(config_file)
    return config_file


def _report_unknown_keys(config_file: ConfigFile) -> None:
    known = (*(option.keyword for option in OPTIONS), *CONFIG_FILE_SDK_KEYS)
    unknown = sorted(set(config_file.block) - set(known))
    if unknown:
        _logger.error(
            "%s %s: %s has unknown key(s) %s, ignored; known: %s",
            CONFIG_FILE_VARIABLE,
            config_file.path,
            CONFIG_FILE_BLOCK,
            ", ".join(unknown),
            ", ".join(known),
        )


def keywords_from_code(options: Mapping[str, Any], config_file: Optional[ConfigFile]) -> dict[str, Any]:
    """The keyword arguments the caller wrote, without those passed on from the configuration file.

    The SDK calls ``instrument(**block)`` with this package's block of the
    file. Those values are read from the file itself, under the file's rules
    (errors logged and named after the file, never raised), not again as
    keywords.

    >>> from_file = ConfigFile("otel.yaml", {"opt_in": "all"}, None)
    >>> keywords_from_code({"opt_in": "all", "excluded_urls": "/healthz"}, from_file)
    {'excluded_urls': '/healthz'}
    """
    block = config_file.block if config_file is not None else {}
    return {key: value for key, value in options.items() if not (key in block and block[key] == value)}


class _Reader:
    """Reads each Option from its first source, reporting what is invalid there."""

    def __init__(self, options: Mapping[str, Any], config_file: Optional[ConfigFile]) -> None:
        self._options = options
        self._config_file = config_file

    def value(self, option: Option) -> Any:
        given = self._options.get(option.keyword)
        if given is not None:
            return _checked(option, option.keyword, given, raising=True)
        if self._config_file is not None:
            found = self._config_file.lookup(option)
            return option.build(option.default) if found is None else _checked(option, *found)
        for variable in option.variables:
            text = os.environ.get(variable)
            if text or (text == "" and option.empty_is_a_value):
                return _checked(option, variable, text)
        return option.build(option.default)


def _checked(option: Option, source: str, value: Any, raising: bool = False) -> Any:
    """``value`` parsed; its invalid items reported (a wrong type raises for a keyword argument)."""
    try:
        parsed = option.parse(value)
    except TypeError as exc:
        if raising:
            raise ValueError(f"{source}={value!r}: {exc}") from exc
        _logger.error("%s=%r is ignored: %s", source, value, exc)
        return option.build(option.default)
    if not parsed.rejected:
        return option.build(parsed.value)
    _logger.error(
        "%s=%r: %s ignored (valid: %s)%s",
        source,
        value,
        ", ".join(parsed.rejected),
        option.choices,
        "" if parsed.value else "; the default applies",
    )
    return option.build(parsed.value if parsed.value else option.default)


def environment_list(variable: str, known: Sequence[str]) -> tuple[str, ...]:
    """A comma-separated variable's items that are in ``known``; the others are reported."""
    parsed = sorted_out(split_list(os.environ.get(variable, "")), lambda item: item in known)
    if parsed.rejected:
        _logger.error(
            "%s=%r: %s ignored (valid: %s)",
            variable,
            os.environ[variable],
            ", ".join(parsed.rejected),
            ", ".join(known),
        )
    return tuple(parsed.value)


def _capture_all_methods() -> bool:
    """The contrib switch, read as the specification reads a boolean variable: ``true``, else false."""
    text = os.environ.get(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS, "").strip()
    flag = _BOOLEANS.get(text.lower())
    if text and flag is None:
        _logger.error(
            "%s=%r is ignored (valid: true, false)",
            OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS,
            text,
        )
    return bool(flag)


def read_settings(options: Mapping[str, Any], config_file: Optional[ConfigFile] = None) -> Settings:
    """The settings for one ``instrument*()`` call: keyword arguments, then the file or the environment."""
    value = _Reader(options, config_file).value
    excluded = value(EXCLUDED_URLS)
    # Contrib's helpers read this shared variable; only values no instrumentation knows are named.
    environment_list(OTEL_SEMCONV_STABILITY_OPT_IN, KNOWN_SEMCONV_OPT_INS)
    return Settings(
        filters=RequestFilter(
            ExcludeList(list(excluded)) if excluded else None,
            frozenset(value(EXCLUDED_METHODS)),
            value(EXCLUDE),
        ),
        captured_request_headers=value(CAPTURED_REQUEST_HEADERS),
        captured_response_headers=value(CAPTURED_RESPONSE_HEADERS),
        sanitizer=SanitizeValue(list(value(SANITIZED_HEADERS))),
        capture_all_methods=_capture_all_methods(),
        redacted_query_params=add_or_replace(
            DEFAULT_REDACTED_QUERY_PARAMS,
            value(SENSITIVE_QUERY_PARAMETERS_REPLACE),
            value(SENSITIVE_QUERY_PARAMETERS),
        ),
        known_methods=value(KNOWN_METHODS),
        opt_in=value(OPT_IN),
        exception_signal=_exception_signal(),
        proxies=ProxyRules(value(TRUSTED_PROXIES), value(FORWARDED_HEADERS)),
        public_endpoint=value(PUBLIC_ENDPOINT),
        body_capture_limit=value(BODY_CAPTURE_LIMIT),
        redacted_path_params=add_or_replace(
            SENSITIVE_PATH_PARAMETERS_DEFAULTS,
            value(SENSITIVE_PATH_PARAMETERS_REPLACE),
            value(SENSITIVE_PATH_PARAMETERS),
        ),
        additions=Additions(value(SERVER_TIMING), value(SERVING_METRICS)),
        server_error_statuses=value(SERVER_ERROR_STATUSES),
    )


def _exception_signal() -> ExceptionSignal:
    """``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``: ``logs``, ``logs/dup``, or unset for span events.

    Read like ``OTEL_SEMCONV_STABILITY_OPT_IN``: a comma-separated list, in
    which ``logs/dup`` wins over ``logs``.
    """
    values = environment_list(EXCEPTION_SIGNAL_VARIABLE, EXCEPTION_SIGNALS)
    if "logs/dup" in values:
        return ExceptionSignal(span_events=True, logs=True)
    if "logs" in values:
        return ExceptionSignal(span_events=False, logs=True)
    return ExceptionSignal(span_events=True, logs=False)
