"""internalhttp: a small HTTP framework with one dispatch seam.

Reference implementation shipped with opentelemetry-ext-internalhttp so that
the instrumentation can be installed, run and tested against a real framework.

>>> from internalhttp import InternalHTTPServer
>>> server = InternalHTTPServer("hello")
>>> @server.route("/hello/<name>")
... def hello(headers, body, name):
...     return {"body": f"hello {name}"}
>>> server.handle_request("GET", "/hello/world", {}, b"")
{'body': 'hello world'}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

from internalhttp.response import Outcome
from internalhttp.routing import Route, RouteMatch, compile_path, split_target
from internalhttp.server import ConnectionInfo, Headers, InternalHTTPServer, Refusal, Request
from internalhttp.version import __version__

if TYPE_CHECKING:
    from internalhttp.serving import RunningServer, serve
    from internalhttp.wsgi import make_wsgi_app

__all__ = [
    "ConnectionInfo",
    "Headers",
    "InternalHTTPServer",
    "Outcome",
    "Refusal",
    "Request",
    "Route",
    "RouteMatch",
    "RunningServer",
    "__version__",
    "compile_path",
    "make_wsgi_app",
    "serve",
    "split_target",
]

# The serving layers are imported on first use (PEP 562), so that
# ``import internalhttp`` for routing alone does not pull in the socket
# server (selectors, threads, http.client) or wsgiref. InternalHTTPServer stays a plain module attribute: the
# instrumentation replaces it (and internalhttp.server.InternalHTTPServer) at
# run time, and none of these modules holds on to the class.
_LAZY = {
    "RunningServer": "internalhttp.serving",
    "serve": "internalhttp.serving",
    "make_wsgi_app": "internalhttp.wsgi",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))
