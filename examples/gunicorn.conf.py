"""gunicorn settings for running a shop service behind gunicorn, instrumented.

Used as::

    cd examples
    opentelemetry-instrument gunicorn -c gunicorn.conf.py -w 2 -b 127.0.0.1:8001 shop.backend:wsgi_app

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

# Recent gunicorn releases open a control socket under ~/.gunicorn by default; the
# example needs none, and two instances would compete for the same path. Releases
# without the setting ignore it (gunicorn skips unknown names in a config file).
control_socket_disable = True
