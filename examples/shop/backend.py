"""The shop's backend: the item catalogue, as JSON.

``GET /items/<item_id>`` answers the item or a 404;
``GET /items/<item_id>/reviews`` always raises, which the framework turns into a 500
(and the instrumentation into an ERROR span with the exception recorded).

Run it with ``python -m shop.backend --port 8001``, or under any WSGI server
through ``shop.backend:wsgi_app`` (``gunicorn shop.backend:wsgi_app``).
"""

from __future__ import annotations

import logging
from typing import Any

# Imported at the top, as applications do: under opentelemetry-instrument the
# instrumentation has already replaced the class by the time this line runs.
from internalhttp.server import InternalHTTPServer
from internalhttp.wsgi import make_wsgi_app

from shop._cli import argument_parser, serve_until_stopped

CATALOGUE: dict[str, dict[str, Any]] = {
    "42": {"name": "teapot", "price": 18.5},
    "7": {"name": "mug", "price": 6.0},
}

server = InternalHTTPServer("backend")
# Plain logging: under opentelemetry-instrument the logging bridge sends each
# line to OpenTelemetry too, with the trace and span ids of the request's span.
# Named, not __name__: run with ``python -m`` the module is "__main__".
logger = logging.getLogger("shop.backend")


@server.route("/items/<item_id>")
def get_item(headers: Any, body: bytes, item_id: str) -> dict[str, Any]:
    logger.info("looking up item %s", item_id)
    item = CATALOGUE.get(item_id)
    if item is None:
        logger.warning("no item %s in the catalogue", item_id)
        return {"status": 404, "body": {"error": f"no item {item_id}"}}
    return {"body": {"id": item_id, **item}}


@server.route("/items/<item_id>/reviews")
def get_reviews(headers: Any, body: bytes, item_id: str) -> dict[str, Any]:
    logger.info("fetching the reviews of item %s", item_id)
    raise RuntimeError("the reviews database is unreachable")


wsgi_app = make_wsgi_app(server)


def main(argv: list[str] | None = None) -> None:
    args = argument_parser("The shop's backend service.").parse_args(argv)
    serve_until_stopped(server, args.host, args.port)


if __name__ == "__main__":
    main()
