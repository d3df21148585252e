"""Every OpenTelemetry internal the fast paths read is still there in the installed releases.

A release that removes one does not break the instrumentation (the
public, slower way is taken instead), so only these tests notice: run in
the pinned, the oldest and the newest release sets (tox envs tests,
tests-oldest, tests-newest), each fails when its internal is gone.
"""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from opentelemetry_ext_internalhttp import _internals


@pytest.mark.parametrize("internal", sorted(_internals.FAST_PATHS))
def test_the_internal_each_fast_path_reads_is_present(internal: str) -> None:
    assert _internals.FAST_PATHS[internal], f"{internal} is gone: its fast path is off"


def test_the_sdk_tracer_still_says_which_sampler_it_has() -> None:
    assert _internals.never_samples(TracerProvider(sampler=ALWAYS_OFF).get_tracer("t"))
    assert not _internals.never_samples(TracerProvider(sampler=ALWAYS_ON).get_tracer("t"))


def test_an_unset_global_provider_is_told_apart_directly_and_through_the_public_getter() -> None:
    # The test session never sets global providers: both ways must say "unset".
    assert _internals.global_tracer_provider_unset(direct=True)
    assert _internals.global_tracer_provider_unset(direct=False)
    assert _internals.global_meter_provider_unset(direct=True)
    assert _internals.global_meter_provider_unset(direct=False)


def test_the_labeler_key_finds_what_a_handler_labels() -> None:
    from opentelemetry import context
    from opentelemetry.instrumentation._labeler import get_labeler

    token = context.attach(context.get_current())
    try:
        assert not _internals.has_labels()
        get_labeler().add("tenant", "acme")
        assert _internals.has_labels()
    finally:
        context.detach(token)


def test_the_context_variable_read_directly_holds_the_current_context() -> None:
    from opentelemetry import context

    token = context.attach(context.set_value("probe", "here"))
    try:
        assert _internals._CONTEXT_VAR.get() is context.get_current()
    finally:
        context.detach(token)
