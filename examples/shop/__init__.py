"""An example shop of two internalhttp services that contain no OpenTelemetry code.

``backend`` serves the catalogue; ``frontend`` serves checkout and calls the
backend over HTTP with ``urllib.request``. Telemetry is switched on from the
outside, by running either one under ``opentelemetry-instrument``::

    opentelemetry-instrument python -m shop.backend --port 8001
    opentelemetry-instrument python -m shop.frontend --port 8000 --backend-url http://127.0.0.1:8001
"""
