"""The shop's frontend: checkout, which asks the backend about the item.

``GET /checkout/<item_id>`` fetches ``/items/<item_id>`` from the backend with
``urllib.request``; a missing item is a 404. ``GET /reviews/<item_id>`` passes
the backend's failure on: ``urlopen`` raises for its 500 and so does the handler.
Any other path is the framework's own 404.

The backend's address comes from ``--backend-url`` or ``SHOP_BACKEND_URL``.
Nothing here propagates trace context by hand: under ``opentelemetry-instrument``
the urllib instrumentation adds the W3C ``traceparent`` header to every request.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from internalhttp.server import InternalHTTPServer
from internalhttp.wsgi import make_wsgi_app

from shop._cli import argument_parser, serve_until_stopped

BACKEND_TIMEOUT_S = 5.0

backend_url = os.environ.get("SHOP_BACKEND_URL", "http://127.0.0.1:8001")

server = InternalHTTPServer("frontend")
# Plain logging, as in the backend: the bridge correlates each line with its span.
# Named, not __name__: run with ``python -m`` the module is "__main__".
logger = logging.getLogger("shop.frontend")


def _fetch_json(path: str) -> Any:
    with urllib.request.urlopen(f"{backend_url}{path}", timeout=BACKEND_TIMEOUT_S) as response:
        return json.load(response)


@server.route("/checkout/<item_id>")
def checkout(headers: Any, body: bytes, item_id: str) -> dict[str, Any]:
    logger.info("checkout of item %s: asking the backend", item_id)
    try:
        item = _fetch_json(f"/items/{item_id}")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        logger.info("checkout of item %s: not for sale", item_id)
        return {"status": 404, "body": {"error": f"item {item_id} is not for sale"}}
    return {"body": {"item": item["name"], "total": item["price"], "currency": "EUR"}}


@server.route("/reviews/<item_id>")
def reviews(headers: Any, body: bytes, item_id: str) -> dict[str, Any]:
    logger.info("reviews of item %s: asking the backend", item_id)
    return {"body": _fetch_json(f"/items/{item_id}/reviews")}


wsgi_app = make_wsgi_app(server)


def main(argv: list[str] | None = None) -> None:
    global backend_url
    parser = argument_parser("The shop's frontend service.")
    parser.add_argument("--backend-url", default=backend_url, help="the backend (default: %(default)s)")
    args = parser.parse_args(argv)
    backend_url = args.backend_url.rstrip("/")
    serve_until_stopped(server, args.host, args.port)


if __name__ == "__main__":
    main()
