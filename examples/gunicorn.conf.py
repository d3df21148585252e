"""gunicorn settings for running a shop service behind gunicorn, instrumented.

Used as, from the repository root or from this folder::

    opentelemetry-instrument gunicorn -c examples/gunicorn.conf.py -w 2 -b 127.0.0.1:8001 \
        shop.backend:wsgi_app

There is deliberately no ``post_fork`` hook. ``opentelemetry-instrument`` sets up
the SDK once, in the master, before any worker is forked; with the pinned
opentelemetry-sdk (1.45.1) each provider re-initialises itself in the child
(``os.register_at_fork``): new export threads, and the process-dependent resource
attributes (``service.instance.id``, and ``process.pid`` when
``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS=process``) detected again, so every worker
exports on its own and under its own pid. ``tests/test_gunicorn.py`` checks that.
Older SDK releases kept the master's resource in every worker; there, set the SDK up
per worker in a ``post_fork`` hook instead of running under ``opentelemetry-instrument``.
"""

from pathlib import Path

# Recent gunicorn releases open a control socket under ~/.gunicorn by default; the
# example needs none, and two instances would compete for the same path. Releases
# without the setting ignore it (gunicorn skips unknown names in a config file).
control_socket_disable = True

# The example application, the package ``shop``, lives beside this file: put
# this folder on the import path, so that ``shop.backend:wsgi_app`` loads from
# any working directory (the README runs it from the repository root).
pythonpath = str(Path(__file__).resolve().parent)

# On SIGTERM (a stop, or the old workers of a reload) each worker finishes its
# request, then the SDK's final export runs before it exits. With a collector that
# does not answer, that export waits up to OTEL_EXPORTER_OTLP_TIMEOUT (seconds in the
# Python OTLP exporters) for traces and again for metrics: set it to 2 in the
# environment of opentelemetry-instrument (raw_env here would come too late: the SDK
# is set up before this file is read). 10 s then covers a request of a few seconds
# plus a 2 x 2 s flush; measured, a stop takes about 5 s with a silent collector.
graceful_timeout = 10
