"""The instrumentor: ``instrument()`` swaps the class, ``instrument_app()`` one server.

See the package documentation (its manual) for usage and configuration.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import internalhttp
import internalhttp.server
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from opentelemetry_ext_internalhttp._config import read_config_file
from opentelemetry_ext_internalhttp._instrument_options import (
    OPTIONS,
    InstrumentOptions,
    build_telemetry,
)
from opentelemetry_ext_internalhttp._instrumented import (
    _InstrumentedInternalHTTPServer,
    instrument_server,
    set_class_telemetry,
    telemetry_of,
    uninstrument_server,
)
from opentelemetry_ext_internalhttp.package import _instruments

if TYPE_CHECKING:
    from internalhttp.server import InternalHTTPServer
    from typing_extensions import Unpack


_logger = logging.getLogger("opentelemetry_ext_internalhttp")

_OriginalInternalHTTPServer = internalhttp.server.InternalHTTPServer

# What BaseInstrumentor.instrument() itself takes, beside our options.
_BASE_INSTRUMENTOR_OPTIONS = frozenset({"skip_dep_check", "raise_exception_on_conflict"})

# Every module attribute through which applications reach the class. One
# table drives both instrument and uninstrument so they cannot drift apart.
_CLASS_BINDINGS = (
    ("internalhttp.server", "InternalHTTPServer"),
    ("internalhttp", "InternalHTTPServer"),
)


class InternalHTTPInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """An instrumentor for ``internalhttp``.

    See the module documentation for usage and configuration.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        config_file = read_config_file()
        if config_file is not None and not config_file.enabled:
            # The SDK skips a block with enabled: false, and opentelemetry-instrument's
            # loader then instruments every installed instrumentation anyway.
            return
        set_class_telemetry(build_telemetry(kwargs, config_file, OPTIONS | _BASE_INSTRUMENTOR_OPTIONS))
        for module_name, attribute in _CLASS_BINDINGS:
            module = importlib.import_module(module_name)
            if getattr(module, attribute, None) is _OriginalInternalHTTPServer:
                setattr(module, attribute, _InstrumentedInternalHTTPServer)

    def _uninstrument(self, **kwargs: Any) -> None:
        for module_name, attribute in _CLASS_BINDINGS:
            module = importlib.import_module(module_name)
            if getattr(module, attribute, None) is _InstrumentedInternalHTTPServer:
                setattr(module, attribute, _OriginalInternalHTTPServer)
        set_class_telemetry(None)

    @staticmethod
    def instrument_app(server: InternalHTTPServer, **options: Unpack[InstrumentOptions]) -> None:
        """Instrument one existing server, whatever class it was made from.

        Takes the same keyword arguments as ``instrument()`` (``InstrumentOptions``).
        """
        if telemetry_of(server) is not None:
            _logger.warning("Attempting to instrument %r while already instrumented", server)
            return
        instrument_server(server, build_telemetry(options, read_config_file()))

    @staticmethod
    def uninstrument_app(server: InternalHTTPServer) -> None:
        """Stop one server's telemetry, whether instrument_app or instrument() started it."""
        if telemetry_of(server) is None:
            _logger.warning("Attempting to uninstrument %r while already uninstrumented", server)
            return
        uninstrument_server(server)
