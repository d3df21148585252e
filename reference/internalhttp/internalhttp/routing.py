"""Routing: path templates, request targets and what a request matches.

Pure functions and value types, no I/O: :class:`InternalHTTPServer` keeps
the route table and asks this module how to read a template and a target.

>>> split_target("http://shop.example:8080/items/7?page=2#top")
('/items/7', 'page=2')
>>> compile_path("/users/<user_id>")
(re.compile('/users/(?P<user_id>[^/]+)\\\\Z'), ('user_id',))
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

__all__ = ["CodeLocation", "Handler", "Route", "RouteMatch", "code_location", "compile_path", "split_target"]

Handler = Callable[..., Any]

_PARAM_SEGMENT = re.compile(r"^<([A-Za-z_][A-Za-z0-9_]*)>$")
# Characters a static segment may not hold: they would make the template
# ambiguous with a parameter or with the query/fragment part of a target.
_BAD_STATIC_CHARS = re.compile(r"[<>?#\s]")
# Parameter names a handler already receives as keyword arguments.
_RESERVED_PARAMS = ("headers", "body")
# The schemes of an absolute-form target (RFC 9112, section 3.2.2).
_ABSOLUTE_FORM_PREFIXES = ("http://", "https://")


class CodeLocation(NamedTuple):
    """Where a handler's code is: what a route's handler is, for the layers around dispatch.

    ``function`` is fully qualified (``module.Class.method``); ``file`` and
    ``line`` are None when the handler has no Python code (a builtin).
    """

    function: str
    file: Optional[str]
    line: Optional[int]


def code_location(handler: Handler) -> CodeLocation:
    """The code a handler runs: through ``functools.wraps`` decorators, partials and callable objects.

    >>> def get_user(headers, body, user_id): ...
    >>> location = code_location(functools.partial(get_user, body=b""))
    >>> location.function.endswith("get_user"), location.line > 0
    (True, True)
    """
    target: Any = handler
    while isinstance(target, functools.partial):
        target = target.func
    target = inspect.unwrap(target) if callable(target) else target
    target = getattr(target, "__func__", target)  # a bound method's function
    if not (inspect.isfunction(target) or inspect.isbuiltin(target) or inspect.isclass(target)):
        target = type(target).__call__  # a callable object: its __call__
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    code = getattr(target, "__code__", None)
    return CodeLocation(
        f"{module}.{name}" if module else str(name),
        code.co_filename if code is not None else None,
        code.co_firstlineno if code is not None else None,
    )


@dataclass(frozen=True)
class Route:
    """One registered route: a path template, a method and its handler.

    ``location`` says where the handler's code is, worked out once, when
    the route is registered.
    """

    template: str
    method: str
    handler: Handler
    param_names: Tuple[str, ...] = ()
    location: Optional[CodeLocation] = None

    def __post_init__(self) -> None:
        if self.location is None:
            object.__setattr__(self, "location", code_location(self.handler))


@dataclass(frozen=True)
class RouteMatch:
    """What a request matched: the result of :meth:`InternalHTTPServer.match`.

    ``status`` is 200 when a handler was found, 404 when no route has this
    path, and 405 when a route has this path but not this method (``route``
    is then the template that matched and ``allowed_methods`` what it allows).
    """

    status: int
    route: Optional[str] = None
    handler: Optional[Handler] = None
    params: Dict[str, str] = field(default_factory=dict)
    allowed_methods: Tuple[str, ...] = ()
    # Where the handler's code is (see Route), when a handler was found.
    location: Optional[CodeLocation] = None

    @property
    def found(self) -> bool:
        return self.status == 200


NOT_FOUND = RouteMatch(status=404)


def split_target(target: str) -> Tuple[str, Optional[str]]:
    """Split a request target into its path and its query.

    The query is ``None`` when the target has no ``?`` at all and ``""``
    when it has an empty one. A fragment is dropped (clients should not
    send one). The absolute form a proxy sends, and that a server must
    accept (RFC 9112, section 3.2.2), gives the same path as the origin
    form; an empty path is ``/``.

    >>> split_target("/items/7?page=2")
    ('/items/7', 'page=2')
    >>> split_target("/items/7?")
    ('/items/7', '')
    >>> split_target("https://shop.example")
    ('/', None)
    """
    # The origin form ("/path") is the common case and is told apart first.
    if not target.startswith("/") and target[:8].lower().startswith(_ABSOLUTE_FORM_PREFIXES):
        scheme_end = target.index("//") + 2
        slash = _first_of(target, "/?#", scheme_end)
        target = target[slash:]
    if "#" in target:
        target = target.partition("#")[0]
    path, question, query = target.partition("?")
    return path or "/", query if question else None


def _first_of(text: str, characters: str, start: int) -> int:
    """Index of the first of ``characters`` in ``text`` from ``start``, or ``len(text)``."""
    found = [index for index in (text.find(c, start) for c in characters) if index >= 0]
    return min(found, default=len(text))


def compile_path(template: str) -> Tuple[Optional[re.Pattern[str]], Tuple[str, ...]]:
    """Compile a path template into the regex that matches it and its parameter names.

    A static template compiles to ``None`` (it is looked up by exact path).
    Raises ``ValueError`` naming the template when it is invalid.

    >>> compile_path("/users/<user_id>/orders/<order_id>")[1]
    ('user_id', 'order_id')
    >>> compile_path("/health")
    (None, ())
    """
    if not isinstance(template, str) or not template.startswith("/"):
        raise ValueError(f"route {template!r}: the path must be a string starting with '/'")
    if template == "/":
        return None, ()
    if "//" in template:
        raise ValueError(f"route {template!r}: empty path segment")
    param_names: list[str] = []
    regex_parts: list[str] = []
    for segment in template[1:].split("/"):
        param = _PARAM_SEGMENT.match(segment)
        if param:
            param_names.append(_checked_param(template, param.group(1), param_names))
            regex_parts.append(f"(?P<{param.group(1)}>[^/]+)")
        elif _BAD_STATIC_CHARS.search(segment):
            raise ValueError(f"route {template!r}: invalid segment {segment!r}")
        else:
            regex_parts.append(re.escape(segment))
    if not param_names:
        return None, ()
    return re.compile("/" + "/".join(regex_parts) + r"\Z"), tuple(param_names)


def _checked_param(template: str, name: str, seen: list[str]) -> str:
    if name in seen:
        raise ValueError(f"route {template!r}: parameter <{name}> appears twice")
    if name in _RESERVED_PARAMS:
        raise ValueError(f"route {template!r}: parameter name <{name}> is reserved")
    return name
