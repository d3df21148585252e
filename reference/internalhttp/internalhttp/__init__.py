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

from internalhttp.server import ConnectionInfo, Headers, InternalHTTPServer, Route, RouteMatch
from internalhttp.version import __version__

__all__ = [
    "ConnectionInfo",
    "Headers",
    "InternalHTTPServer",
    "Route",
    "RouteMatch",
    "__version__",
]
