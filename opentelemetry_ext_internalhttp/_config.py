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
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import ip_network
from typing import Any, NamedTuple, Optional, Union

from opentelemetry.instrumentation._semconv import OTEL_SEMCONV_STABILITY_OPT_IN, _StabilityMode
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


def list_items(value: Any) -> tuple[str, ...]:
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


def parse_patterns(value: Any) -> Parsed:
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


def parse_methods(value: Any) -> Parsed:
    """HTTP methods: tokens, case-sensitive.

    >>> parse_methods("GET,BAD METHOD")
    Parsed(value=('GET',), rejected=("'BAD METHOD'",))
    """
    return sorted_out(list_items(value), lambda item: _TOKEN.fullmatch(item) is not None)


def parse_names(value: Any) -> Parsed:
    """Names compared as written (query parameter names): every non-empty string is one.

    >>> parse_names("token, api_key")
    Parsed(value=('token', 'api_key'), rejected=())
    """
    return Parsed(list_items(value), ())


def parse_opt_ins(value: Any) -> Parsed:
    """The opt-ins named, ``all`` for every one.

    >>> parsed = parse_opt_ins("client.port,client.prot")
    >>> sorted(parsed.value), parsed.rejected
    (['client.port'], ("'client.prot'",))
    """
    names, rejected = sorted_out(list_items(value), lambda item: item == "all" or item in OPT_INS)
    return Parsed(frozenset(OPT_INS) if "all" in names else frozenset(names), rejected)


def parse_trusted_proxies(value: Any) -> Parsed:
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

    def parse(value: Any) -> Parsed:
        if not isinstance(value, str):
            raise TypeError(f"expected one of {', '.join(choices)}")
        choice = value.strip().lower()
        return Parsed(choice, ()) if choice in choices else Parsed(None, (repr(value),))

    return parse


def parse_public_endpoint(value: Any) -> Parsed:
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
)


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
        excluded=ExcludeList(list(excluded)) if excluded else None,
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
        **_exception_signal(),
        proxies=ProxyRules(value(TRUSTED_PROXIES), value(FORWARDED_HEADERS)),
        public_endpoint=value(PUBLIC_ENDPOINT),
    )


def _exception_signal() -> dict[str, bool]:
    """``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``: ``logs``, ``logs/dup``, or unset for span events.

    Read like ``OTEL_SEMCONV_STABILITY_OPT_IN``: a comma-separated list, in
    which ``logs/dup`` wins over ``logs``.
    """
    values = environment_list(EXCEPTION_SIGNAL_VARIABLE, EXCEPTION_SIGNALS)
    if "logs/dup" in values:
        return {"exception_span_events": True, "exception_logs": True}
    if "logs" in values:
        return {"exception_span_events": False, "exception_logs": True}
    return {"exception_span_events": True, "exception_logs": False}
