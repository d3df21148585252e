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

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

Handler = Callable[..., Any]

_PARAM_SEGMENT = re.compile(r"^<([A-Za-z_][A-Za-z0-9_]*)>$")
# Characters a static segment may not hold: they would make the template
# ambiguous with a parameter or with the query/fragment part of a target.
_BAD_STATIC_CHARS = re.compile(r"[<>?#\s]")
# An HTTP method is a token (RFC 9110, section 9.1): ASCII only, so that
# non-ASCII letters, which str.isalpha() accepts, cannot register a route no
# request line could ever reach.
from internalhttp.wire import TOKEN as _METHOD_TOKEN  # noqa: E402  (the one definition)


@dataclass(frozen=True)
class ConnectionInfo:
    """What the serving layer knows about the connection a request came on.

    Serving layers pass it to ``handle_request(..., connection=...)``; handlers
    never see it. Every field is optional because a request may be dispatched
    in-process with no connection at all.
    """

    client_address: Optional[str] = None
    client_port: Optional[int] = None
    server_address: Optional[str] = None
    server_port: Optional[int] = None
    scheme: str = "http"
    protocol_version: Optional[str] = None


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive mapping of header names to values.

    Repeated header lines are joined with ``,`` (RFC 9110, section 5.3);
    iteration yields the names as first spelled.

    >>> headers = Headers([("Accept", "a/b"), ("accept", "c/d")])
    >>> headers["ACCEPT"]
    'a/b,c/d'
    >>> list(headers)
    ['Accept']
    """

    __slots__ = ("_names", "_values")

    def __init__(self, items: Iterable[Tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        self._values: Dict[str, str] = {}
        self._names: Dict[str, str] = {}
        if items is None:
            return
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            key = name.lower()
            if key in self._values:
                self._values[key] = f"{self._values[key]},{value}"
            else:
                self._values[key] = value
                self._names[key] = name

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self._values[name.lower()]
        except (KeyError, AttributeError):
            return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Headers({[(self._names[k], v) for k, v in self._values.items()]!r})"


@dataclass(frozen=True)
class Route:
    """One registered route: a path template, a method and its handler."""

    template: str
    method: str
    handler: Handler
    param_names: Tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteMatch:
    """The result of :meth:`InternalHTTPServer.match`.

    ``status`` is 200 when a handler was found, 404 when no route has this
    path, and 405 when a route has this path but not this method (``route``
    is then the template that matched and ``allowed_methods`` what it allows).
    """

    status: int
    route: Optional[str] = None
    handler: Optional[Handler] = None
    params: Dict[str, str] = field(default_factory=dict)
    allowed_methods: Tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.status == 200


def _split_target(target: str) -> str:
    """Return the path of a request target, without its query."""
    path, _, _ = target.partition("?")
    return path or "/"


class InternalHTTPServer:
    """An application: named, with routes, dispatching one request at a time.

    Handlers are called as ``handler(headers=..., body=..., **params)`` and
    return a response dict ``{"status": int, "body": ..., "headers": {...}}``
    (``status`` defaults to 200). ``handle_request`` returns the handler's
    value unchanged and lets its exceptions propagate; the serving layers turn
    them into responses.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        # Static templates are looked up by exact path; parametrised ones are
        # tried in registration order.
        self._static: Dict[str, Dict[str, Route]] = {}
        self._dynamic: List[Tuple[re.Pattern[str], str, Dict[str, Route]]] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # -- registration -----------------------------------------------------

    def route(self, path: str, method: str = "GET") -> Callable[[Handler], Handler]:
        """Register the decorated function for ``method`` requests to ``path``.

        ``path`` starts with ``/`` and may hold parameters written ``<name>``,
        each a whole segment: ``/users/<user_id>/orders/<order_id>``.
        Raises ``ValueError`` naming the route when the definition is invalid.
        """
        template, verb, param_names, pattern = self._parse_route(path, method)

        def register(handler: Handler) -> Handler:
            if not callable(handler):
                raise ValueError(f"route {verb} {template!r}: handler {handler!r} is not callable")
            routes = self._routes_for(template, pattern)
            if verb in routes:
                raise ValueError(f"route {verb} {template!r} is already registered")
            routes[verb] = Route(template, verb, handler, param_names)
            return handler

        return register

    def add_route(self, path: str, handler: Handler, method: str = "GET") -> None:
        """Register ``handler`` without the decorator syntax."""
        self.route(path, method)(handler)

    @staticmethod
    def _parse_route(
        path: object, method: object
    ) -> Tuple[str, str, Tuple[str, ...], Optional[re.Pattern[str]]]:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"route {path!r}: the path must be a string starting with '/'")
        if not isinstance(method, str) or not _METHOD_TOKEN.match(method):
            raise ValueError(f"route {path!r}: invalid method {method!r}")
        verb = method.upper()
        if path == "/":
            return path, verb, (), None
        if "//" in path:
            raise ValueError(f"route {path!r}: empty path segment")
        param_names: List[str] = []
        regex_parts: List[str] = []
        for segment in path[1:].split("/"):
            param = _PARAM_SEGMENT.match(segment)
            if param:
                name = param.group(1)
                if name in param_names:
                    raise ValueError(f"route {path!r}: parameter <{name}> appears twice")
                if name in ("headers", "body"):
                    raise ValueError(f"route {path!r}: parameter name <{name}> is reserved")
                param_names.append(name)
                regex_parts.append(f"(?P<{name}>[^/]+)")
            elif _BAD_STATIC_CHARS.search(segment):
                raise ValueError(f"route {path!r}: invalid segment {segment!r}")
            else:
                regex_parts.append(re.escape(segment))
        pattern = re.compile("/" + "/".join(regex_parts) + r"\Z") if param_names else None
        return path, verb, tuple(param_names), pattern

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
        first_fit: Optional[Tuple[str, Dict[str, str]]] = None
        allowed: Dict[str, None] = {}  # an ordered set
        for template, params, routes in self._candidates(_split_target(path)):
            route = routes.get(method)
            if route is not None:
                return RouteMatch(status=200, route=template, handler=route.handler, params=params)
            if first_fit is None:
                first_fit = (template, params)
            allowed.update(dict.fromkeys(routes))
        if first_fit is None:
            return RouteMatch(status=404)
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

        ``connection`` describes the socket the request came on, when there
        is one; the framework itself does not use it, it is there for the
        layers around dispatch (logging, telemetry).

        Handlers always receive a :class:`Headers`, whatever mapping (or
        ``None``) the caller passed, so their header look-ups are
        case-insensitive however the application is served.
        """
        found = self.match(method, path)
        if found.handler is None:
            if found.status == 405:
                return {
                    "status": 405,
                    "body": "Method Not Allowed",
                    "headers": {"Allow": ", ".join(found.allowed_methods)},
                }
            return {"status": 404, "body": "Not Found", "headers": {}}
        if not isinstance(headers, Headers):
            headers = Headers(headers)
        return found.handler(headers=headers, body=body, **found.params)
