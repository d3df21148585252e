"""The distribution and the package namespace: version, exports, doctests, class replacement."""

from __future__ import annotations

import doctest
import importlib
import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from framework_support import TIMEOUT
from internalhttp.testing import TestClient
from internalhttp.wsgi import make_wsgi_app


@pytest.mark.parametrize(
    "module",
    [
        "internalhttp",
        "internalhttp.server",
        "internalhttp.request",
        "internalhttp.response",
        "internalhttp.wire",
        "internalhttp.serving",
        "internalhttp.body",
        "internalhttp.workers",
        "internalhttp.wsgi",
        "internalhttp.testing",
    ],
)
def test_the_documentation_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)

    assert result.failed == 0
    assert result.attempted > 0


def test_the_installed_distribution_is_version_2() -> None:
    assert internalhttp.__version__ == "2.0.0"
    assert importlib.metadata.version("internalhttp") == internalhttp.__version__


def test_the_package_is_marked_as_typed() -> None:
    assert (Path(internalhttp.__file__).parent / "py.typed").is_file()


def test_every_public_name_is_exported() -> None:
    for name in internalhttp.__all__:
        assert getattr(internalhttp, name) is not None
    assert set(internalhttp.__all__) <= set(dir(internalhttp))
    assert internalhttp.InternalHTTPServer is internalhttp.server.InternalHTTPServer


def test_the_serving_layers_are_exported_from_their_modules() -> None:
    from internalhttp import serving, wsgi

    assert internalhttp.serve is serving.serve
    assert internalhttp.RunningServer is serving.RunningServer
    assert internalhttp.make_wsgi_app is wsgi.make_wsgi_app


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        internalhttp.nothing_here  # noqa: B018


def test_importing_the_package_does_not_import_the_socket_server() -> None:
    import subprocess

    layers = "'internalhttp.serving', 'internalhttp.wsgi'"
    code = f"import sys, internalhttp; print(*(m in sys.modules for m in ({layers})))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT * 6)

    assert output.stdout.split() == ["False", "False"]


def test_every_layer_honours_a_class_replaced_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the instrumentation does: rebind the class in both places, then
    # the application creates its server. No layer may hold the original.
    seen = []

    class Replacement(internalhttp.server.InternalHTTPServer):
        def handle_request(self, *args: Any, **kwargs: Any) -> Any:
            seen.append(args[:2])
            return super().handle_request(*args, **kwargs)

    monkeypatch.setattr(internalhttp.server, "InternalHTTPServer", Replacement)
    monkeypatch.setattr(internalhttp, "InternalHTTPServer", Replacement)
    app = internalhttp.InternalHTTPServer("replaced")
    app.add_route("/", lambda headers, body: "ok")

    assert TestClient(app).get("/").body == b"ok"
    make_wsgi_app(app)({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": None}, lambda *a: None)
    with internalhttp.serve(app) as running:
        import http.client

        client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        client.request("GET", "/?via=socket")
        assert client.getresponse().read() == b"ok"
        client.close()

    assert seen == [("GET", "/"), ("GET", "/"), ("GET", "/?via=socket")]
