"""Ablation: the instrumentation's OpenTelemetry calls, replayed with none of its code.

One request goes through the instrumented server with recording wrappers
around the tracer and meter providers. The wrappers note every call that
reaches the SDK: the span's name, kind and attributes, each later span call
(``is_recording``, ``set_attribute``, ``end``, ...), and each metric call with
its attributes and whether the server span was current when it was made.
From that list ``replay()`` writes straight-line Python that makes the same
calls on the same SDK objects with the attribute dicts as recorded, around a
bare server's ``handle_request``. Timed against the instrumented scenario,
the difference is the project's own Python; timed against ``b_sdk_batch``,
the replay shows what the project's choice of calls costs in the SDK.

The replay also makes the calls that the wrappers cannot see because they
go through the API's module functions, and that every server instrumentation
must make: the suppression check, ``get_current_span()``, W3C ``extract`` from
the (pre-lower-cased) headers, ``attach`` / ``detach`` of the span's context.

    python benchmarks/bench_replay.py [default|http|always_off]   # print the generated code
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from timeit import default_timer
from typing import Any, Optional

# Span methods whose calls are recorded and replayed in order.
_SPAN_CALLS = (
    "is_recording",
    "set_attribute",
    "set_attributes",
    "set_status",
    "add_event",
    "record_exception",
    "update_name",
    "end",
)


def _as_called(values: dict[str, Any]) -> dict[str, Any]:
    # Copies of the dicts as they were at the call: the instrumentation may
    # go on filling a dict it passed (its span attributes become the metric
    # attributes), which the SDK copied on the call.
    return {key: dict(value) if isinstance(value, dict) else value for key, value in values.items()}


class _Recording:
    """The calls one request made, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.active = False  # only the captured request is recorded

    def note(self, *event: Any) -> None:
        if self.active:
            self.events.append(event)


class _RecordingSpan:
    """The SDK's span, with the calls of ``_SPAN_CALLS`` noted before they run."""

    def __init__(self, span: Any, recording: _Recording) -> None:
        self._span = span
        self._recording = recording

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._span, name)
        if name not in _SPAN_CALLS:
            return target

        def noted(*args: Any, **kwargs: Any) -> Any:
            self._recording.note(
                "span", name, tuple(_as_called(dict(enumerate(args))).values()), _as_called(kwargs)
            )
            return target(*args, **kwargs)

        return noted


class _RecordingTracer:
    def __init__(self, tracer: Any, recording: _Recording) -> None:
        self.wrapped = tracer
        self._recording = recording

    def start_span(self, name: str, context: Any = None, **kwargs: Any) -> _RecordingSpan:
        self._recording.note("start_span", name, _as_called(kwargs))
        return _RecordingSpan(self.wrapped.start_span(name, context=context, **kwargs), self._recording)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        # The replay has no form for it: better to fail than replay a request without its span.
        raise NotImplementedError("bench_replay only knows start_span; teach it start_as_current_span")


class _RecordingTracerProvider:
    def __init__(self, provider: Any, recording: _Recording) -> None:
        self._provider = provider
        self._recording = recording

    def get_tracer(self, *args: Any, **kwargs: Any) -> _RecordingTracer:
        # The SDK tracer the instrumentation got: the replay starts its spans on it.
        self.tracer = self._provider.get_tracer(*args, **kwargs)
        return _RecordingTracer(self.tracer, self._recording)


class _RecordingInstrument:
    def __init__(self, instrument: Any, unit: str, recording: _Recording) -> None:
        self.wrapped = instrument
        self.unit = unit
        self._recording = recording

    def _note(self, call: str, amount: Any, attributes: Any, kwargs: dict[str, Any]) -> None:
        from opentelemetry import context
        from opentelemetry.trace.propagation import _SPAN_KEY

        # Read from the context itself: trace.get_current_span() would answer
        # INVALID_SPAN for this wrapper, which is not a trace.Span.
        current = context.get_value(_SPAN_KEY)
        in_span = current is not None and current.get_span_context().is_valid
        self._recording.note("metric", self, call, amount, dict(attributes or {}), in_span, kwargs)

    def add(self, amount: Any, attributes: Any = None, **kwargs: Any) -> None:
        self._note("add", amount, attributes, kwargs)
        self.wrapped.add(amount, attributes, **kwargs)

    def record(self, amount: Any, attributes: Any = None, **kwargs: Any) -> None:
        self._note("record", amount, attributes, kwargs)
        self.wrapped.record(amount, attributes, **kwargs)


class _RecordingMeter:
    def __init__(self, meter: Any, recording: _Recording) -> None:
        self._meter = meter
        self._recording = recording

    def __getattr__(self, name: str) -> Any:
        create = getattr(self._meter, name)
        if name not in ("create_histogram", "create_counter", "create_up_down_counter"):
            return create

        def wrapped(*args: Any, **kwargs: Any) -> _RecordingInstrument:
            unit = kwargs.get("unit", args[1] if len(args) > 1 else "")
            return _RecordingInstrument(create(*args, **kwargs), unit, self._recording)

        return wrapped


class _RecordingMeterProvider:
    def __init__(self, provider: Any, recording: _Recording) -> None:
        self._provider = provider
        self._recording = recording

    def get_meter(self, *args: Any, **kwargs: Any) -> _RecordingMeter:
        return _RecordingMeter(self._provider.get_meter(*args, **kwargs), self._recording)


class _Writer:
    """Straight-line source for one replayed request, and the objects it names."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}
        self.attached = False

    def name(self, prefix: str, value: Any) -> str:
        for known, existing in self.names.items():
            if existing is value:
                return known
        name = f"{prefix}{len(self.names)}"
        self.names[name] = value
        return name

    def line(self, text: str) -> None:
        self.lines.append(f"    {text}")

    def attach(self, wanted: bool) -> None:
        """Bring the span's context in (or out of) the current context, as the next call needs."""
        if wanted and not self.attached:
            self.line("token = attach(inner)")
        elif not wanted and self.attached:
            self.line("detach(token)")
        self.attached = wanted

    def span_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        arguments = [self.name("V", arg) for arg in args]
        arguments += [f"{key}={self.name('V', value)}" for key, value in kwargs.items()]
        self.line(f"span.{name}({', '.join(arguments)})")

    def metric_call(self, instrument: _RecordingInstrument, call: str, amount: Any, event: tuple) -> None:
        attributes, in_span, kwargs = event
        self.attach(in_span)
        if call == "record":
            # A duration: timed here, as the instrumentation times it.
            scale = " * 1000.0" if instrument.unit == "ms" else ""
            amount_text = f"(default_timer() - start){scale}"
        else:
            amount_text = repr(amount)
        extra = "".join(f", {key}=inner" for key in kwargs if key == "context")
        target = self.name("I", instrument.wrapped)
        self.line(f"{target}.{call}({amount_text}, {self.name('A', attributes)}{extra})")


def _write(events: list[tuple[Any, ...]], lowered_headers: dict[str, str], tracer: Any) -> _Writer:
    starts = [event for event in events if event[0] == "start_span"]
    if len(starts) != 1 or "dispatch" not in [event[0] for event in events]:
        raise RuntimeError(f"the recorded request made {len(starts)} spans; the replay expects one")
    writer = _Writer()
    writer.names.update(tracer=tracer, HEADERS=lowered_headers)
    writer.line("if not is_http_instrumentation_enabled():")
    writer.line("    return dispatch()")
    writer.line("parent = extract(HEADERS) if get_current_span() is INVALID_SPAN else None")
    for event in events:
        _write_event(writer, event)
    writer.attach(False)
    writer.line("return response")
    return writer


def _write_event(writer: _Writer, event: tuple[Any, ...]) -> None:
    kind = event[0]
    if kind == "start_span":
        _, name, kwargs = event
        arguments = "".join(f", {key}={writer.name('V', value)}" for key, value in kwargs.items())
        writer.line(f"span = tracer.start_span({name!r}, context=parent{arguments})")
        writer.line("inner = set_span_in_context(span, parent)")
    elif kind == "dispatch":
        writer.attach(True)
        writer.line("start = default_timer()")
        writer.line("response = dispatch()")
    elif kind == "span":
        writer.span_call(event[1], event[2], event[3])
    elif kind == "metric":
        writer.metric_call(event[1], event[2], event[3], event[4:])


def _compile(writer: _Writer) -> Callable[[Callable[[], Any]], Any]:
    from opentelemetry import context, trace
    from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
    from opentelemetry.propagate import extract

    source = "def one_request(dispatch):\n" + "\n".join(writer.lines) + "\n"
    namespace: dict[str, Any] = dict(writer.names)
    namespace.update(
        attach=context.attach,
        detach=context.detach,
        extract=extract,
        get_current_span=trace.get_current_span,
        set_span_in_context=trace.set_span_in_context,
        INVALID_SPAN=trace.INVALID_SPAN,
        is_http_instrumentation_enabled=is_http_instrumentation_enabled,
        default_timer=default_timer,
    )
    exec(compile(source, f"<replay of {len(writer.lines)} lines>", "exec"), namespace)
    one_request = namespace["one_request"]
    # What the printed source names, for main() and the README.
    one_request.source = source
    one_request.names = writer.names
    return one_request


def replay(mode: str, sampler: Optional[Any] = None) -> Callable[[], Any]:
    """Record one instrumented request in ``mode`` and return its replay around a bare dispatch."""
    import bench_dispatch
    import internalhttp.server

    from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

    sdk = bench_dispatch._sdk_parts(sampler)
    recording = _Recording()
    tracer_provider = _RecordingTracerProvider(sdk.tracer_provider, recording)
    bench_dispatch._semconv(mode)
    InternalHTTPInstrumentor().instrument(
        tracer_provider=tracer_provider, meter_provider=_RecordingMeterProvider(sdk.meter_provider, recording)
    )
    server = internalhttp.server.InternalHTTPServer("bench")

    def noting_handler(headers: Any, body: Any) -> Any:
        recording.note("dispatch")
        return bench_dispatch._hello(headers, body)

    server.add_route(bench_dispatch.ROUTE, noting_handler)
    recording.active = True
    server.serve_request("GET", bench_dispatch.ROUTE, bench_dispatch.REQUEST_HEADERS, b"")
    recording.active = False
    InternalHTTPInstrumentor().uninstrument()

    lowered = {name.lower(): value for name, value in bench_dispatch.REQUEST_HEADERS.items()}
    one_request = _compile(_write(recording.events, lowered, tracer_provider.tracer))
    bare = bench_dispatch._server()
    handle_request = bare.handle_request
    headers = bench_dispatch.REQUEST_HEADERS

    # The replayed calls around the handler, inside a bare server's
    # serve_request, as the scenarios run (bench_dispatch._dispatch).
    def replayed(method: str, target: str, request_headers: Any, body: bytes, **kwargs: Any) -> Any:
        return one_request(lambda: handle_request(method, target, request_headers, body, **kwargs))

    bare.handle_request = replayed  # type: ignore[method-assign]
    call = partial(bare.serve_request, "GET", bench_dispatch.ROUTE, headers, b"")
    call.source = one_request.source  # type: ignore[attr-defined]
    call.names = one_request.names  # type: ignore[attr-defined]
    return call


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    mode = sys.argv[1] if len(sys.argv) > 1 else "default"
    sampler = None
    if mode == "always_off":
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        sampler = ALWAYS_OFF
    call = replay("http" if mode == "http" else "", sampler)
    print(call.source)  # type: ignore[attr-defined]
    for name, value in call.names.items():  # type: ignore[attr-defined]
        if name[0] in "AV":
            print(f"{name} = {value!r}")
    call()
    return 0


if __name__ == "__main__":
    sys.exit(main())
