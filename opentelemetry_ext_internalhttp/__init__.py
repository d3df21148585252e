"""OpenTelemetry instrumentation for the internalhttp framework.

Every request an internalhttp server dispatches becomes one SERVER span
named after its route template ("GET /users/<user_id>"), with the HTTP
semantic-convention attributes, W3C trace context taken from the request
headers, the HTTP server metrics, and the framework's log lines written in
the span's context so that logs, traces and metrics line up.

Usage
-----
Instrument every server created from now on, before the application
imports InternalHTTPServer (see Limitations):

    from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

    InternalHTTPInstrumentor().instrument()

    from internalhttp.server import InternalHTTPServer

    server = InternalHTTPServer("shop")

    @server.route("/users/<user_id>")
    def get_user(headers, body, user_id):
        return {"status": 200, "body": {"id": user_id}}

Or with no code change, through the opentelemetry_instrumentor entry point
(console output; see the README for OTLP):

    OTEL_PYTHON_LOG_CORRELATION=true opentelemetry-instrument --traces_exporter console \
        --metrics_exporter console --logs_exporter console --service_name shop python app.py

Instrument one server that already exists (made before instrument(), from
a class reference taken before it, or of your own subclass), and undo it:

    InternalHTTPInstrumentor.instrument_app(server, tracer_provider=provider)
    InternalHTTPInstrumentor.uninstrument_app(server)

InternalHTTPInstrumentor().uninstrument() restores the original class;
servers created while instrumented stop recording too, and record again,
with the new configuration, after the next instrument(). A server given its
own configuration by instrument_app keeps it until uninstrument_app; one
switched off by uninstrument_app stays off through later instrument()
calls. Instrumenting what is instrumented, or the reverse, logs a warning
and changes nothing.

Configuration
-------------
instrument() and instrument_app(server) take the same keyword arguments
(typed as InstrumentOptions); an unknown keyword is named in a warning.
Each falls back to the configuration file OTEL_CONFIG_FILE names, when one
is used (see Configuration file), else to its environment variable, read
when instrument() or instrument_app() runs, then to the default.

  tracer_provider      where spans go. Default: the global provider.
  meter_provider       where metrics go. Default: the global provider.
  logger_provider      where exception log events go (see Logs).
                       Default: the global provider.
  excluded_urls        comma-separated regexes; a request is not recorded
                       when one matches its path or scheme://host[:port]/path
                       (never the query). Env: OTEL_PYTHON_INTERNALHTTP_EXCLUDED_URLS,
                       else OTEL_PYTHON_EXCLUDED_URLS. Default: none.
  request_hook         hook(span, request) after the span starts.
  response_hook        hook(span, request, response) when the handler
                       returned, before its response is made: response is
                       its value, and what the hook changes in a response
                       dict (a header) is what the client gets.
                       A hook's request is a read-only RequestView: method,
                       path (the target as sent), headers (lower-case names),
                       body, server.
  http_capture_headers_server_request
                       request headers to record, regexes (string or list).
                       Env: OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST.
  http_capture_headers_server_response
                       response headers to record, as the client receives
                       them (Content-Type and Content-Length included).
                       Env: OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE.
  http_capture_headers_sanitize_fields
                       captured headers recorded as "[REDACTED]".
                       Env: OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS.
  known_methods        the methods recorded as sent (HTTP tokens,
                       case-sensitive); replaces the default list CONNECT,
                       DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, QUERY, TRACE.
                       Env: OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS.
  sensitive_query_parameters
                       query parameters whose values become REDACTED, on
                       spans and in the framework's log lines, added to the
                       default AWSAccessKeyId, Signature, sig, X-Goog-Signature,
                       X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token
                       (adding a name never un-redacts another).
                       Env: OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS.
  sensitive_query_parameters_replace
                       the list that replaces those defaults (an empty list
                       redacts nothing); sensitive_query_parameters still adds
                       to it. Env: OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS_REPLACE.
  opt_in               opt-in attributes and metrics to record (string or
                       list), "all" for every one. Env: OTEL_PYTHON_INTERNALHTTP_OPT_IN.
                       Default: none. The names:
                         client.port, network.local.address, network.local.port,
                         network.transport, user_agent.synthetic.type,
                         http.request.body.size, http.response.body.size
                                          span attributes;
                         http.server.request.body.size,
                         http.server.response.body.size
                                          histograms (old conventions:
                                          http.server.request.size / .response.size);
                         server.address, server.port
                                          on the metrics, from the serving
                                          layer's local address, at most 16 pairs;
                         user_agent.synthetic.type
                                          on the duration metric too;
                         http.server.active_requests
                                          the counter in the "http" mode;
                         http.request.body.content,
                         http.response.body.content
                                          the bodies, as text (see What is
                                          recorded); not turned on by "all":
                                          bodies are often personal data.
  trusted_proxies      the peers whose forwarding headers are believed (see
                       Proxies and trust): IP addresses and CIDR ranges
                       (string or list), "*" for every peer, "" or [] for
                       none. Env: OTEL_PYTHON_INTERNALHTTP_TRUSTED_PROXIES.
                       Default: 127.0.0.0/8, ::1, 10.0.0.0/8, 172.16.0.0/12,
                       192.168.0.0/16, fc00::/7 (what Rails trusts).
  forwarded_headers    the header family the trusted proxies write:
                       "x-forwarded" (X-Forwarded-For, -Proto, -Host, -Port,
                       -Prefix), "forwarded" (RFC 7239), or "both" (Forwarded
                       first). Env: OTEL_PYTHON_INTERNALHTTP_FORWARDED_HEADERS.
                       Default: x-forwarded.
  public_endpoint      True: every request starts a new trace and only links
                       the caller's; "untrusted": so do requests whose peer
                       is not a trusted proxy; a callable: given the
                       RequestView, returns whether the request is public
                       (one that raises counts as public, and is logged).
                       Env: OTEL_PYTHON_INTERNALHTTP_PUBLIC_ENDPOINT (true,
                       false, untrusted). Default: false.
  body_capture_limit   bytes of each body the body content opt-ins record.
                       Env: OTEL_PYTHON_INTERNALHTTP_BODY_CAPTURE_LIMIT.
                       Default: 8192 (8 KiB).
  sensitive_path_parameters
                       path parameters (the <name>s of route templates) whose
                       values become REDACTED in url.path and http.target,
                       added to the default token, access_token,
                       refresh_token, id_token, auth_token, password, passwd,
                       secret, client_secret, api_key, signature, sig,
                       session, session_id, sid, otp; names compared ignoring
                       case, "-" and "_". Env: OTEL_PYTHON_INTERNALHTTP_SENSITIVE_PATH_PARAMETERS.
  sensitive_path_parameters_replace
                       the list that replaces those defaults (an empty list
                       redacts nothing); sensitive_path_parameters still adds
                       to it. Env: OTEL_PYTHON_INTERNALHTTP_SENSITIVE_PATH_PARAMETERS_REPLACE.
  server_timing        True: every response a serving layer sends carries
                       Server-Timing: traceparent;desc="00-<trace-id>-<span-id>-<flags>"
                       naming the SERVER span, and Access-Control-Expose-Headers:
                       Server-Timing (Timing-Allow-Origin is the application's).
                       Env: OTEL_PYTHON_INTERNALHTTP_SERVER_TIMING (true,
                       false). Default: false.
  exclude              a callable given the RequestView, returning whether
                       the request is not to be recorded (no span, no metric
                       point); one that raises is logged and the request
                       recorded. Default: none.
  excluded_methods     methods never recorded, HTTP tokens, case-sensitive
                       (OPTIONS,HEAD: CORS preflights and probes).
                       Env: OTEL_PYTHON_INTERNALHTTP_EXCLUDED_METHODS. Default: none.
  server_error_statuses
                       the statuses that make a SERVER span ERROR, with
                       error.type: codes and ranges within 500-599, "!" to
                       leave some out ("500-599,!501,!505"; exclusions alone
                       are taken out of every 5xx). Narrowing only: an item
                       outside 500-599 (a 4xx) is rejected and logged.
                       Env: OTEL_PYTHON_INTERNALHTTP_SERVER_ERROR_STATUSES.
                       Default: every 5xx.
  serving_metrics      the socket server's internalhttp.server.* metrics
                       (connections, rejections, queueing, keep-alive reuse;
                       see the README) and internalhttp.request.queue_time (s)
                       on SERVER spans. Env: OTEL_PYTHON_INTERNALHTTP_SERVING_METRICS
                       (true, false). Default: true.
  skip_dep_check       (instrument() only) instrument even if the installed
                       internalhttp is outside >= 2.0, < 3.0. Default: False.

Other environment variables:

  OTEL_SEMCONV_STABILITY_OPT_IN          unset: the old conventions (schema
                                         1.11.0); "http": the stable ones as of
                                         semantic conventions v1.44.0 (schema
                                         1.44.0; 1.45.0 with a body content
                                         opt-in); "http/dup": both.
  OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN   unset: a handler's exception is a span
                                         event; "logs": a log event instead;
                                         "logs/dup": both.
  OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS
                                         "true": keep unknown methods as sent (at
                                         most 32 distinct ones; later ones are
                                         _OTHER); "false" or unset: _OTHER.
  OTEL_PYTHON_DISABLED_INSTRUMENTATIONS  "internalhttp" turns this package off
                                         under opentelemetry-instrument.

These four are read with or without a configuration file.

Invalid settings are named, never silently dropped. A keyword argument of
a type its setting does not take (a number for a list, say) raises
ValueError naming it. Anything else invalid, in a keyword argument, the
configuration file or an environment variable, is logged as an error on
the "opentelemetry_ext_internalhttp" logger, once per instrument() or
instrument_app() call, naming the setting and where it came from, each
invalid item (a regex that does not compile, a method that is not an HTTP
token, an unknown opt-in, an address that is not one) and the valid
choices; the valid items of a list are kept, and if none is, the default
applies. Nothing read from the
environment or the file raises, so that under opentelemetry-instrument the
other instrumentations still load. OTEL_SEMCONV_STABILITY_OPT_IN is shared
by every instrumentation: only values none knows (not http, database,
messaging, rpc, code, service.peer, each with or without /dup, nor
gen_ai_latest_experimental) are named, and the conventions then fall back
as contrib's helpers decide (an unknown value alone: the old conventions).

Configuration file
------------------
With OTEL_CONFIG_FILE naming a declarative configuration file (SDK 1.44
and later, with opentelemetry-sdk[file-configuration]; examples/otel-config.yaml),
the SDK activates this package from the file's block

  instrumentation/development:
    python:
      internalhttp:          # the entry point name
        excluded_urls: [/healthz]
        opt_in: [client.port]
        sensitive_query_parameters: [token]

whose keys are the keyword arguments above that a file can hold (all but
the providers and hooks), plus the SDK's own enabled: false, which keeps
instrument() from instrumenting anything. Keys of the shared general block
apply too, below this block's own:
general.http.server.request_captured_headers, .response_captured_headers,
.known_methods, and general.sanitization.url.sensitive_query_parameters
(which replaces the defaults, as the schema says). Precedence: keyword
argument, then the file; as the declarative configuration specification
asks, the environment variables of these settings are then not read, except
through ${VAR} substitution in the file. An unknown key of the block is
named in an error; a file that cannot be read is named in an error and the
environment variables apply. general.http.semconv and
general.stability_opt_in_list are not read: the conventions follow
OTEL_SEMCONV_STABILITY_OPT_IN, as in every contrib instrumentation.

Captured headers become http.request.header.<name> / http.response.header.<name>
in lower case: dashes kept in the stable conventions (x-request-id),
underscores in the old ones (x_request_id). They go on the SERVER span only.

What is recorded
----------------
Span: named "{method} {route}", "{method}" when no route matched, "HTTP ..."
for a method that is not known (recorded as _OTHER, with the method as
sent in http.request.method_original). A method some route of the server
answers is known (a PURGE /cache route records PURGE). Kind SERVER, its
parent from the request headers (the global propagator); INTERNAL, and a
child, when a span is already current. Every attribute known at the start,
opt-ins and captured request headers included, is given to the sampler.

The route and the headers are the framework's own reading of the request
(InternalHTTPServer.prepare): routed once, whatever the target's form
(an absolute-form target "GET http://h/p?q" records url.path /p).

Status: the status the client received, whatever the handler returned:

  handler returns                        status recorded   error.type
  a dict, status given or 200            that status       the status, if 5xx
  "text" or b"bytes"                     200
  None                                   204
  {"status": 200.0}, HTTPStatus.OK       200
  a value the framework cannot send      500               its exception's type
  (bad status, body not JSON, ...)
  raises                                 500               the exception's type

Span status ERROR for 5xx (those of server_error_statuses) and exceptions
(the description is the exception message alone), UNSET otherwise (4xx
included, and the 5xx server_error_statuses leaves out, which carry no
error.type either; the serving layer's own refusals too). error.type (stable
conventions only) is an exception's fully qualified type, as the SDK writes
exception.type. The exception propagates unchanged; the handler's value is
returned unchanged.

Metrics: http.server.request.duration (s, stable) and http.server.duration
(ms, old), recorded inside the span's context so that exemplars link to the
trace; http.server.active_requests in the old and dup modes (opt-in in
"http"). Their attributes are bounded whatever a client sends: method
(known, _OTHER, or one of at most 32 captured), url.scheme (http or https:
X-Forwarded-Proto and Forwarded: proto= are believed for those only), route,
status code, error.type, and the HTTP version when it is 1.0, 1.1, 2 or 3.
Never the path, the query, the client, or the host (Host, X-Forwarded-Host,
Forwarded: host=, :authority stay on the span). url.scheme is the
connection's unless a trusted proxy says http or https; the application
root a trusted proxy names (X-Forwarded-Prefix) is part of http.route, at
most 16 distinct roots per instrumentation (a later one is left out). Attributes a handler adds
with contrib's labeler (opentelemetry.instrumentation._labeler.get_labeler)
are added to its request's duration point: the application owns their
cardinality.

Query credentials (see sensitive_query_parameters) are REDACTED in url.query
and http.target. So are the values of secret path parameters (see
sensitive_path_parameters) in url.path and http.target: the route template
says which segment holds which parameter, so a request to /reset/<token>
records url.path /reset/REDACTED while http.route keeps the template; a
path that matched no route is recorded as sent, and the application root
comes first, unredacted.

Bodies (opt-ins http.request.body.content, http.response.body.content;
stable conventions only) are recorded for textual content types only:
text/*, */json, */*+json, */xml, */*+xml, */yaml, */*+yaml,
application/x-www-form-urlencoded, or any type with a charset (compared
case-insensitively), decoded in that charset (UTF-8 without one; invalid
bytes become U+FFFD). The gzip or deflate content coding is removed,
inflating no more than body_capture_limit bytes, and the text is cut to that
limit on a character boundary. Other types, other or broken codings: not
recorded. Never parsed, never base64, and the handler and the client get
the bytes unchanged. Bodies often hold personal data: opt in knowingly.

Excluded (excluded_urls, excluded_methods, exclude) and suppressed requests (suppress_instrumentation(),
suppress_http_instrumentation()) record nothing. With no SDK behind the API
and no hooks, only the caller's trace context is carried into the handler
(an excluded request's is not).
A failure inside the telemetry is logged and the request goes on; no
request content makes the instrumentation log at WARNING or above. A hook
that raises is logged, recorded as an exception event on the span, and
ignored.

Proxies and trust
-----------------
Forwarding headers are text any client can send, so they are believed only
when the connection's peer is a trusted proxy (trusted_proxies; a peer on
a unix socket is always trusted, as gunicorn does), and only the family
the proxies write (forwarded_headers): behind the usual nginx, a client's
own Forwarded header changes nothing. Through trusted proxies:

  client.address (old http.client_ip)
      the rightmost address of X-Forwarded-For (or Forwarded for=) that is
      not a trusted proxy, walking from the right as nginx's
      real_ip_recursive and Rails' RemoteIp do; the leftmost when every one
      is trusted. "unknown", "_hidden" and anything that is not an IP
      address stop the walk and are not recorded (client.address is then
      left out). network.peer.address is always the socket's peer.
  url.scheme, server.address, server.port, the application root
      what the outermost trusted hop wrote: X-Forwarded-Proto, -Host,
      -Port (wins over the host's port) and -Prefix, each counted from the
      right past one item per trusted hop, so an item a client sent before
      them is skipped; or the Forwarded element whose for= is the client.
      Without them, Host (or an absolute-form target) and the connection's
      scheme and local address.

From any other peer, the connection's own values are recorded. The
application root is X-Forwarded-Prefix followed by the serving layer's
root (a WSGI SCRIPT_NAME): url.path, http.target and http.route (so the
span name and the metric's route) include it, "/api/users/<user_id>";
routing itself is unchanged. network.local.address / .port and the metrics'
server.address / .port come from the accepted socket only (never a
wildcard bind address or a Host header); on a unix socket,
network.transport is "unix" and the local address is the socket's path.

public_endpoint draws a trust boundary for trace context, as Go's
otelhttp.WithPublicEndpoint does: a public request starts a new trace (a
root SERVER span, sampled as a root) with a span link to the caller's
span context, the caller's baggage is dropped, and traceresponse carries
the new trace. Whatever the setting, a traceparent or tracestate over 512
characters is treated as absent, and what the API's propagators would say
about malformed trace headers is logged at DEBUG, so that no client makes
any logger write a WARNING.

Logs
----
The framework writes each request's access line (internalhttp.access, INFO)
and the error record of a failed request (internalhttp, ERROR) inside the
request's span context, in every serving layer, so a logging bridge gives
them the span's trace and span ids: install opentelemetry-instrumentation-logging
and opentelemetry-instrument attaches its handler to the root logger (or add
its LoggingHandler yourself). That handler replaces Python's last-resort
output to stderr: keep a stderr handler beside it, or tracebacks, failed
exports and configuration errors leave the terminal.
OTEL_PYTHON_LOG_CORRELATION=true does that (the bridge calls
logging.basicConfig(), root logger at INFO), as does logging.basicConfig() in
the application. Python's loggers pass only WARNING and up by default: with
neither, set logging.getLogger("internalhttp").setLevel(logging.INFO) to
send the access lines too. Those lines never show a query credential and write a
client's control characters escaped. With OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN
set to logs or logs/dup, a handler's exception is the log event
http.server.request.exception (severity ERROR, exception.type,
exception.message, exception.stacktrace, in the span's context), and the
framework's own error line is not written, so it is said once. With a global
response propagator set (opentelemetry.instrumentation.propagators.
set_global_response_propagator), every response carries traceresponse and
Access-Control-Expose-Headers: traceresponse.

Limitations
-----------
instrument() replaces the class binding internalhttp.server.InternalHTTPServer
(and internalhttp.InternalHTTPServer). A name imported before it still
refers to the original class, so servers made from it are not traced:

    from internalhttp.server import InternalHTTPServer   # taken too early
    InternalHTTPInstrumentor().instrument()
    server = InternalHTTPServer("shop")                   # not traced

Either call instrument() (or run under opentelemetry-instrument) before the
framework is imported, or instrument such servers with instrument_app. The
same holds for your own subclasses: one defined before instrument() derives
from the original class. While instrumented, isinstance(old_server,
internalhttp.server.InternalHTTPServer) is false for servers made from the
original class; compare with a class reference taken at import time.

instrument_app on a server of the original class sets attributes on that
server (the class is left alone); a copy of it shares them, so instrument
copies separately.

Requests a serving layer refuses before the application sees them (a
malformed request line, 413, 414, 431, 505) reach the telemetry through
InternalHTTPServer.refused: each is a span and a duration point with the
status sent, named after its method, with no route, no headers and no
hooks (nothing a client sent becomes an attribute name).
"""

from __future__ import annotations

from opentelemetry_ext_internalhttp._instrument_options import InstrumentOptions
from opentelemetry_ext_internalhttp._instrumented import (
    _InstrumentedInternalHTTPServer as _InstrumentedInternalHTTPServer,  # what instrument() puts in place
)
from opentelemetry_ext_internalhttp._instrumentor import InternalHTTPInstrumentor
from opentelemetry_ext_internalhttp._request_state import RequestHook, RequestView, ResponseHook
from opentelemetry_ext_internalhttp.version import __version__

__all__ = [
    "InstrumentOptions",
    "InternalHTTPInstrumentor",
    "RequestHook",
    "RequestView",
    "ResponseHook",
    "__version__",
]
