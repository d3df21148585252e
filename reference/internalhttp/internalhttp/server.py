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

from internalhttp.redaction import SENSITIVE_QUERY_PARAMETERS, escape_control, loggable_target

# The value types live in internalhttp.request; re-exported here (see __all__),
# where they were first defined and where callers import them from.
from internalhttp.request import ConnectionInfo, Headers, Refusal, Request
from internalhttp.response import NormalizedResponse, Outcome, internal_server_error, response_for
from internalhttp.routing import NOT_FOUND, Handler, Route, RouteMatch, compile_path, split_target

# An HTTP method is a token (RFC 9110, section 9.1): ASCII only, so that
# non-ASCII letters, which str.isalpha() accepts, cannot register a route no
# request line could ever reach. One definition, in the wire rules.
from internalhttp.wire import TOKEN as _METHOD_TOKEN

__all__ = [
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
# The request respond() is answering, until its handle_request call claims it
# (per thread and per task, as a context variable).
_RESPONDING: ContextVar[Optional[Request]] = ContextVar("internalhttp_responding", default=None)
access_logger = logging.getLogger("internalhttp.access")


class InternalHTTPServer:
    """An application: named, with routes, dispatching one request at a time.

    Handlers are called as ``handler(headers=..., body=..., **params)`` and
    return a response dict ``{"status": int, "body": ..., "headers": {...}}``
    (``status`` defaults to 200). ``handle_request`` returns the handler's
    value unchanged and lets its exceptions propagate; the serving layers turn
    them into responses through :meth:`serve_request`.

    One request flows through four public steps, each a method a subclass
    (instrumentation, middleware) may extend:

    ``serve_request`` (serving layers)
      → :meth:`prepare` (route and headers, once)
      → :meth:`respond` (the response the client gets; errors become 500)
      → :meth:`handle_request` (the application's answer, unchanged)
      → :meth:`dispatch` (call the handler, or answer 404/405).
    """

    # Query parameters whose values this server's log lines never show.
    sensitive_query_parameters: Tuple[str, ...] = SENSITIVE_QUERY_PARAMETERS

    def __init__(self, name: str) -> None:
        self.name = name
        # Static templates are looked up by exact path; parametrised ones are
        # tried in registration order.
        self._static: Dict[str, Dict[str, Route]] = {}
        self._dynamic: List[Tuple[re.Pattern[str], str, Dict[str, Route]]] = []
        self._methods: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

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
                return RouteMatch(status=200, route=template, handler=route.handler, params=params)
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
        return Request(method, target, path, query, headers, connection, found)

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
        case-insensitive however the application is served.
        """
        request = self.prepared_request(method, path, headers)
        if request is None:
            request = self.prepare(method, path, headers, connection)
        return self.dispatch(request, body)

    def prepared_request(self, method: Any, path: Any, headers: Any) -> Optional[Request]:
        """The request :meth:`respond` prepared, when this is the ``handle_request`` call it made.

        :meth:`respond` passes the request's own parts on; a ``handle_request``
        that receives exactly those objects answers that request instead of
        reading it again, so a served request is routed and parsed once.
        The request is claimed by the first such call; any other call (a
        subclass that rewrote the target, a handler calling another server)
        gets ``None`` and prepares its own.
        """
        prepared = _RESPONDING.get()
        if (
            prepared is None
            or path is not prepared.target
            or method is not prepared.method
            or headers is not prepared.headers
        ):
            return None
        _RESPONDING.set(None)
        return prepared

    def respond(self, request: Request, body: bytes = b"", *, raise_exceptions: bool = False) -> Outcome:
        """Answer a prepared request the way the client will receive it.

        Calls :meth:`handle_request` with the request's parts and translates
        its value with :func:`~internalhttp.response.normalize_response`.
        An ``Exception`` from either is logged on the ``internalhttp`` logger
        and answered with a 500 (or, with ``raise_exceptions``, propagates
        unchanged, as :class:`~internalhttp.testing.TestClient` wants).
        This is where a request ends, in every serving layer: code that
        extends it sees the response as sent, status and headers included.
        """
        responding = _RESPONDING.set(request)
        try:
            value = self.handle_request(
                request.method, request.target, request.headers, body, connection=request.connection
            )
        except Exception as error:
            if raise_exceptions:
                raise
            self.log_failure(request, error)
            outcome = Outcome(internal_server_error(), None, error)
        else:
            outcome = response_for(value)
            if outcome.error is not None:
                if raise_exceptions:
                    raise outcome.error
                self.log_failure(request, outcome.error)
        finally:
            _RESPONDING.reset(responding)
        self.log_access(request, outcome.response)
        return outcome

    def log_access(self, request: Request, response: NormalizedResponse) -> None:
        """Write the access line of a request, on the ``internalhttp.access`` logger at INFO.

        ``client - "METHOD target" status bytes``, the target with query
        credentials redacted and control characters escaped. Called by
        :meth:`respond` before the response is written, so whatever wraps
        ``respond`` (a span's context) is still current.
        """
        if access_logger.isEnabledFor(logging.INFO):
            client = getattr(request.connection, "client_address", None) or "-"
            access_logger.info(
                '%s - "%s %s" %d %d',
                client,
                escape_control(str(request.method)),
                loggable_target(request.target, self.sensitive_query_parameters),
                response.status,
                len(response.body),
            )

    def log_failure(self, request: Request, error: BaseException) -> None:
        """Log a request that failed (a 500), with the traceback, on the ``internalhttp`` logger at ERROR."""
        logger.error(
            "internalhttp: error while handling %s %s",
            escape_control(str(request.method)),
            loggable_target(request.target, self.sensitive_query_parameters),
            exc_info=error,
        )

    def refused(self, refusal: Refusal) -> None:
        """Called by a serving layer for each request it refused without dispatching it.

        The framework does nothing more (the serving layer has answered and
        logged it); a subclass may record it, as telemetry does.
        """

    def serve_request(
        self,
        method: str,
        target: str,
        headers: Any,
        body: bytes = b"",
        connection: Optional[ConnectionInfo] = None,
    ) -> NormalizedResponse:
        """What a serving layer calls for each request: the response to send, never raising."""
        return self.respond(self.prepare(method, target, headers, connection), body).response
