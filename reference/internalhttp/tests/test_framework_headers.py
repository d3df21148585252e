"""Headers: the read-only, case-insensitive mapping handlers receive."""

from __future__ import annotations

import pytest
from internalhttp import Headers


def test_lookups_ignore_the_case_of_the_name() -> None:
    headers = Headers([("Content-Type", "text/plain")])

    assert headers["content-type"] == headers["CONTENT-TYPE"] == "text/plain"


def test_repeated_names_are_joined_with_a_comma_in_order() -> None:
    headers = Headers([("Accept", "a/b"), ("X-Other", "1"), ("ACCEPT", "c/d"), ("accept", "e/f")])

    assert headers["Accept"] == "a/b,c/d,e/f"


def test_iteration_yields_each_name_once_as_first_spelled() -> None:
    headers = Headers([("X-Trace", "1"), ("x-trace", "2"), ("Host", "h")])

    assert list(headers) == ["X-Trace", "Host"]
    assert len(headers) == 2


def test_a_mapping_can_be_given_instead_of_pairs() -> None:
    headers = Headers({"Host": "example", "X-Id": "7"})

    assert dict(headers) == {"Host": "example", "X-Id": "7"}


def test_no_argument_or_none_gives_empty_headers() -> None:
    assert len(Headers()) == 0
    assert len(Headers(None)) == 0


def test_get_returns_the_default_for_a_missing_or_non_string_name() -> None:
    headers = Headers({"Host": "h"})

    assert headers.get("HOST") == "h"
    assert headers.get("missing") is None
    assert headers.get("missing", "fallback") == "fallback"
    assert headers.get(42, "fallback") == "fallback"  # type: ignore[arg-type]


def test_a_missing_name_raises_key_error() -> None:
    with pytest.raises(KeyError):
        Headers()["Host"]


def test_membership_ignores_case_and_rejects_non_strings() -> None:
    headers = Headers({"Host": "h"})

    assert "host" in headers
    assert "Accept" not in headers
    assert 1 not in headers


def test_headers_compare_equal_to_a_dict_with_the_same_spelling() -> None:
    assert Headers([("Host", "h")]) == {"Host": "h"}


def test_headers_are_read_only() -> None:
    headers = Headers({"Host": "h"})

    with pytest.raises(TypeError):
        headers["Host"] = "other"  # type: ignore[index]


def test_the_repr_shows_the_joined_pairs() -> None:
    assert repr(Headers([("A", "1"), ("a", "2")])) == "Headers([('A', '1,2')])"
