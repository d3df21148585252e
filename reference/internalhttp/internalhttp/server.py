"""Routing and dispatch: the one place every request goes through.

``InternalHTTPServer.handle_request`` is the single dispatch seam. The socket
server (:mod:`internalhttp.serving`), the WSGI adapter (:mod:`internalhttp.wsgi`)
and the test client (:mod:`internalhttp.testing`) all call it, so wrapping that
one method sees every request however the application is served.

>>> server = InternalHTTPServer("shop")
>>> @server.route("/users/<user_id>")
... def get_user(headers, body, user_id):
...     return {"status": 200, "body": {"id": user_id}}
>>> server.handle_request("GET", "/users/42?verbose=1", {}, b"")
{'status': 200, 'body': {'id': '42'}}
>>> server.match("GET", "/users/42").route
'/users/<user_id>'
>>> server.match("POST", "/users/42").status
405
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from internalhttp.observe import ServingObserver
from internalhttp.redaction import (
    SENSITIVE_PATH_PARAMETERS,
    SENSITIVE_QUERY_PARAMETERS,
    escape_control,
    loggable_target,
)

# The value types live in internalhttp.request; re-exported here (see __all__),
# where they were first defined and where callers import them from.
from internalhttp.request import UNKNOWN_CONNECTION, ConnectionInfo, Exchange, Headers, Refusal, Request
from internalhttp.response import NormalizedResponse, Outcome, outcome_of
from internalhttp.routing import NOT_FOUND, Handler, Route, RouteMatch, compile_path, split_target

# An HTTP method is a token (RFC 9110, section 9.1): ASCII only, so that
# non-ASCII letters, which str.isalpha() accepts, cannot register a route no
# request line could ever reach. One definition, in the wire rules.
from internalhttp.wire import TOKEN as _METHOD_TOKEN

__all__ = [
    "UNKNOWN_CONNECTION",
    "ConnectionInfo",
    "Headers",
    "InternalHTTPServer",
    "Outcome",
    "Refusal",
    "Request",
    "Route",
    "RouteMatch",
]

logger = logging.getLogger("internalhttp")
# The request a serving layer is serving, until the prepare() of the
# handle_request call it made takes it (per thread and per task).
_SERVING: ContextVar[Optional[Exchange]] = ContextVar("internalhttp_serving", default=None)
access_logger = logging.getLogger("internalhttp.access")


class InternalHTTPServer:
    """An application: named, with routes, dispatching one request at a time.

    Handlers are called as ``handler(headers=..., body=..., **params)`` and
    return a response dict ``{"status": int, "body": ..., "headers": {...}}``
    (``status`` defaults to 200). ``handle_request`` returns the handler's
    value unchanged and lets its exceptions propagate; the serving layers turn
    them into responses through :meth:`exchange`.

    One request flows one way through public steps, each a method a
    subclass (instrumentation, middleware) may extend:

    :meth:`exchange` (serving layers; :meth:`serve_request` for the response alone)
      → :meth:`handle_request` (one entry: the application's answer, unchanged)
        → :meth:`prepare` (route and headers, read once)
        → :meth:`dispatch` (call the handler, or answer 404/405)
        → :meth:`conclude` (the response the client gets and the request's
          log lines; where a request ends).
    """

    # Query parameters whose values this server's log lines never show.
    sensitive_query_parameters: Tuple[str, ...] = SENSITIVE_QUERY_PARAMETERS
    # Path parameters (of the route a request matched) whose values its log lines never show.
    sensitive_path_parameters: Tuple[str, ...] = SENSITIVE_PATH_PARAMETERS
    # Told about connections and queueing by the socket server (see internalhttp.observe).
    serving_observer: Optional[ServingObserver] = None

    def __init__(self, name: str) -> None:
        self.name = name
        # Static templates are looked up by exact path; parametrised ones are
        # tried in registration order.
        self._static: Dict[str, Dict[str, Route]] = {}
        self._dynamic: List[Tuple[re.Pattern[str], str, Dict[str, Route]]] = []
        self._methods: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        # A private subclass (what an instrumentation puts in this class's place)
        # is an implementation detail: name the nearest public class instead.
        public = next(cls for cls in type(self).__mro__ if not cls.__name__.startswith("_"))
        return f"{public.__name__}({self.name!r})"

    # -- registration -----------------------------------------------------

    def route(self, path: str, method: str = "GET") -> Callable[[Handler], Handler]:
        """Register the decorated function for ``method`` requests to ``path``.

        ``path`` starts with ``/`` and may hold parameters written ``<name>``,
        each a whole segment: ``/users/<user_id>/orders/<order_id>``.
        Raises ``ValueError`` naming the route when the definition is invalid.
        """
        pattern, param_names = compile_path(path)
        if not isinstance(method, str) or not _METHOD_TOKEN.match(method):
            raise ValueError(f"route {path!r}: invalid method {method!r}")
        verb = method.upper()

        def register(handler: Handler) -> Handler:
            if not callable(handler):
                raise ValueError(f"route {verb} {path!r}: handler {handler!r} is not callable")
            routes = self._routes_for(path, pattern)
            if verb in routes:
                raise ValueError(f"route {verb} {path!r} is already registered")
            routes[verb] = Route(path, verb, handler, param_names)
            self._methods = self._methods | {verb}
            return handler

        return register

    def add_route(self, path: str, handler: Handler, method: str = "GET") -> None:
        """Register ``handler`` without the decorator syntax."""
        self.route(path, method)(handler)

    def _routes_for(self, template: str, pattern: Optional[re.Pattern[str]]) -> Dict[str, Route]:
        if pattern is None:
            return self._static.setdefault(template, {})
        for _, known_template, known_routes in self._dynamic:
            if known_template == template:
                return known_routes
        routes: Dict[str, Route] = {}
        self._dynamic.append((pattern, template, routes))
        return routes

    @property
    def methods(self) -> frozenset[str]:
        """Every method some route of this server answers: the methods the application knows.

        >>> app = InternalHTTPServer("doc")
        >>> app.add_route("/cache", lambda headers, body: None, method="PURGE")
        >>> sorted(app.methods)
        ['PURGE']
        """
        return self._methods

    @property
    def routes(self) -> List[Route]:
        """Every registered route, static ones first."""
        found = [r for routes in self._static.values() for r in routes.values()]
        found += [r for _, _, routes in self._dynamic for r in routes.values()]
        return found

    # -- dispatch ---------------------------------------------------------

    def match(self, method: str, path: str) -> RouteMatch:
        """Find what ``handle_request`` would dispatch to, without calling it.

        ``path`` is a request target; its query is ignored. The result tells
        the route template (for telemetry: ``http.route``), the handler, the
        path parameters, and whether the request is a 404 or a 405.

        ``method`` is compared case-sensitively, as HTTP methods are. Every
        template whose shape fits the path is considered (the static one
        first, then parametrised ones in registration order) so that, say, a
        ``GET /users/me`` route does not hide ``DELETE /users/<user_id>``. A
        405 reports the first template that fitted and the union of the
        methods all fitting templates allow.
        """
        return self._match_path(method, split_target(path)[0])

    def _match_path(self, method: str, request_path: str) -> RouteMatch:
        first_fit: Optional[Tuple[str, Dict[str, str]]] = None
        allowed: Dict[str, None] = {}  # an ordered set
        for template, params, routes in self._candidates(request_path):
            route = routes.get(method)
            if route is not None:
                return RouteMatch(200, template, route.handler, params, location=route.location)
            if first_fit is None:
                first_fit = (template, params)
            allowed.update(dict.fromkeys(routes))
        if first_fit is None:
            return NOT_FOUND
        template, params = first_fit
        return RouteMatch(status=405, route=template, params=params, allowed_methods=tuple(allowed))

    def _candidates(self, request_path: str) -> Iterator[Tuple[str, Dict[str, str], Dict[str, Route]]]:
        """Yield ``(template, params, routes by method)`` for each template fitting the path."""
        static = self._static.get(request_path)
        if static is not None:
            yield request_path, {}, static
        for pattern, template, routes in self._dynamic:
            found = pattern.match(request_path)
            if found:
                yield template, found.groupdict(), routes

    def prepare(
        self,
        method: str,
        target: str,
        headers: Any = None,
        connection: Optional[ConnectionInfo] = None,
    ) -> Request:
        """Read a request once: split its target, match its route, wrap its headers.

        ``headers`` may be a :class:`Headers` (kept as it is), any mapping,
        an iterable of ``(name, value)`` pairs (read once, so a generator
        works) or ``None``.

        >>> app = InternalHTTPServer("doc")
        >>> app.add_route("/items/<item_id>", lambda headers, body, item_id: item_id)
        >>> request = app.prepare("GET", "/items/7?page=2", {"Accept": "text/plain"})
        >>> request.path, request.query, request.match.route, request.headers["accept"]
        ('/items/7', 'page=2', '/items/<item_id>', 'text/plain')
        """
        path, query = split_target(target)
        found = self._match_path(method, path)
        if type(headers) is not Headers:
            headers = Headers(headers)
        # A serving layer's exchange goes to the first request prepared
        # while it serves: its own handle_request call's, never a nested one's.
        exchange = _SERVING.get()
        if exchange is not None:
            _SERVING.set(None)
        known = connection if connection is not None else UNKNOWN_CONNECTION
        return Request(method, target, path, query, headers, known, found, exchange)

    def dispatch(self, request: Request, body: bytes = b"") -> Any:
        """Answer a prepared request: call its handler, or build the 404 or 405 response."""
        found = request.match
        if found.handler is not None:
            return found.handler(headers=request.headers, body=body, **found.params)
        if found.status == 405:
            return {
                "status": 405,
                "body": "Method Not Allowed",
                "headers": {"Allow": ", ".join(found.allowed_methods)},
            }
        return {"status": 404, "body": "Not Found", "headers": {}}

    def handle_request(
        self,
        method: str,
        path: str,
        headers: Optional[Mapping[str, str]] = None,
        body: bytes = b"",
        *,
        connection: Optional[ConnectionInfo] = None,
    ) -> Any:
        """Dispatch one request and return the handler's response unchanged.

        ``path`` is the request target, query included. ``connection``
        describes the socket the request came on, when there is one; the
        framework itself does not use it, it is there for the layers around
        dispatch (logging, telemetry).

        Handlers always receive a :class:`Headers`, whatever mapping (or
        ``None``) the caller passed, so their header look-ups are
        case-insensitive however the application is served. When a serving
        layer serves the request, it ends here, in :meth:`conclude`.
        """
        request = self.prepare(method, path, headers, connection)
        if request.exchange is None:
            return self.dispatch(request, body)
        try:
            value = self.dispatch(request, body)
        except Exception as error:
            self.conclude(request, error=error)
            raise
        self.conclude(request, value)
        return value

    def conclude(self, request: Request, value: Any = None, error: Optional[Exception] = None) -> Outcome:
        """End a dispatched request: the response the client receives, and its log lines.

        ``value`` is what the handler returned, or ``error`` what it raised.
        The response is :func:`~internalhttp.response.response_for` the
        value (the one rule every serving layer applies), or the 500 every
        serving layer sends for an exception. When a serving layer serves
        the request, the failure (if any) and the access line are logged
        here, inside whatever wraps the request (a span's context), and the
        outcome is left for the serving layer, which sends it as it is.
        """
        outcome = outcome_of(value, error)
        exchange = request.exchange
        if exchange is not None:
            if outcome.error is not None and not exchange.raise_exceptions:
                self.log_failure(request, outcome.error)
            self.log_access(request, outcome.response)
            exchange.outcome = outcome
        return outcome

    def log_access(self, request: Request, response: NormalizedResponse) -> None:
        """Write the access line of a request, on the ``internalhttp.access`` logger at INFO.

        ``client - "METHOD target" status bytes``, the target with query
        credentials redacted and control characters escaped. Called by
        :meth:`conclude` before the response is written, so whatever wraps
        ``handle_request`` (a span's context) is still current.
        """
        if access_logger.isEnabledFor(logging.INFO):
            client = request.connection.client_address or "-"
            access_logger.info(
                '%s - "%s %s" %d %d',
                client,
                escape_control(str(request.method)),
                self._loggable(request.target, request.match.route),
                response.status,
                len(response.body),
            )

    def log_failure(self, request: Request, error: BaseException) -> None:
        """Log a request that failed (a 500), with the traceback, on the ``internalhttp`` logger at ERROR."""
        self._log_failure_line(request.method, request.target, error, request.match.route)

    def _log_failure_line(
        self, method: Any, target: Any, error: BaseException, route: Optional[str] = None
    ) -> None:
        logger.error(
            "internalhttp: error while handling %s %s",
            escape_control(str(method)),
            self._loggable(str(target), route),
            exc_info=error,
        )

    def _loggable(self, target: str, route: Optional[str]) -> str:
        """A target as this server's log lines show it: credentials redacted, controls escaped."""
        return loggable_target(target, self.sensitive_query_parameters, route, self.sensitive_path_parameters)

    def refused(self, refusal: Refusal) -> None:
        """Called by a serving layer for each request it refused without dispatching it.

        The framework does nothing more (the serving layer has answered and
        logged it); a subclass may record it, as telemetry does.
        """

    def exchange(
        self,
        method: str,
        target: str,
        headers: Any,
        body: bytes = b"",
        connection: Optional[ConnectionInfo] = None,
        *,
        raise_exceptions: bool = False,
    ) -> Outcome:
        """What a serving layer calls for each request: how it ended, the response to send included.

        Calls :meth:`handle_request` and takes the outcome its
        :meth:`conclude` left. An ``Exception`` is answered with a 500
        (logged in :meth:`conclude`), or, with ``raise_exceptions``,
        propagates unchanged, as :class:`~internalhttp.testing.TestClient`
        wants; so does the error of a value that cannot be sent.
        """
        exchange = Exchange(raise_exceptions)
        serving = _SERVING.set(exchange)
        try:
            value = self.handle_request(method, target, headers, body, connection=connection)
        except Exception as error:
            if raise_exceptions:
                raise
            return exchange.outcome or self._unconcluded(method, target, error=error)
        finally:
            _SERVING.reset(serving)
        outcome = exchange.outcome
        if outcome is None or outcome.value is not value:
            # Not concluded, or a wrapper around handle_request answered
            # something else: the client gets what handle_request returned.
            outcome = self._unconcluded(method, target, value)
        if outcome.error is not None and raise_exceptions:
            raise outcome.error
        return outcome

    def _unconcluded(
        self, method: Any, target: Any, value: Any = None, error: Optional[Exception] = None
    ) -> Outcome:
        """The outcome of a request whose ``handle_request`` value was not the one concluded.

        A subclass or wrapper that answers without (or around) the
        framework's ``handle_request``: its value still gets the one rule,
        and a failure its log line.
        """
        outcome = outcome_of(value, error)
        if outcome.error is not None:
            self._log_failure_line(method, target, outcome.error)
        return outcome

    def serve_request(
        self,
        method: str,
        target: str,
        headers: Any,
        body: bytes = b"",
        connection: Optional[ConnectionInfo] = None,
    ) -> NormalizedResponse:
        """The response to send for one request, never raising: :meth:`exchange`'s response."""
        return self.exchange(method, target, headers, body, connection).response
