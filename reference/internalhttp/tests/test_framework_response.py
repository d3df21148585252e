"""normalize_response: what a handler's return value means on the wire."""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

import pytest
from internalhttp.response import (
    APPLICATION_JSON,
    TEXT_PLAIN,
    NormalizedResponse,
    internal_server_error,
    normalize_response,
    status_allows_body,
)


def test_a_dict_without_status_is_a_200() -> None:
    assert normalize_response({}) == (200, [("Content-Length", "0")], b"")


@pytest.mark.parametrize("status", [201, "201", HTTPStatus.CREATED, 201.0, " 201 "])
def test_the_status_is_anything_int_accepts(status: Any) -> None:
    assert normalize_response({"status": status}).status == 201


def test_the_result_is_a_plain_tuple_with_named_fields() -> None:
    status, headers, body = result = normalize_response({"status": 202, "body": b"x"})

    assert isinstance(result, tuple)
    assert result == NormalizedResponse(status=202, headers=[("Content-Length", "1")], body=b"x")
    assert (status, headers, body) == (result.status, result.headers, result.body)


@pytest.mark.parametrize("status", [True, False])
def test_a_bool_status_is_refused(status: bool) -> None:
    with pytest.raises(TypeError, match="bool"):
        normalize_response({"status": status})


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (None, TypeError),
        ([200], TypeError),
        ("OK", ValueError),
        (200.5, ValueError),
        (99, ValueError),
        (600, ValueError),
        (-200, ValueError),
    ],
)
def test_an_invalid_status_is_refused(status: Any, error: type) -> None:
    with pytest.raises(error, match="invalid response status"):
        normalize_response({"status": status})


@pytest.mark.parametrize("status", [100, 599])
def test_statuses_from_100_to_599_are_accepted(status: int) -> None:
    assert normalize_response({"status": status}).status == status


@pytest.mark.parametrize("body", [b"\x00\xff", bytearray(b"\x00\xff"), memoryview(b"\x00\xff")])
def test_a_bytes_like_body_is_sent_as_is_with_no_content_type(body: Any) -> None:
    assert normalize_response({"body": body}) == (200, [("Content-Length", "2")], b"\x00\xff")


def test_a_str_body_is_utf8_text() -> None:
    result = normalize_response({"body": "h\u00e9"})

    assert result == (200, [("Content-Type", TEXT_PLAIN), ("Content-Length", "3")], b"h\xc3\xa9")


def test_a_none_body_is_empty_content() -> None:
    assert normalize_response({"status": 202, "body": None}) == (202, [("Content-Length", "0")], b"")


@pytest.mark.parametrize(
    ("body", "encoded"),
    [
        ({"id": 1, "name": "\u00e9"}, '{"id":1,"name":"\u00e9"}'.encode()),
        ([1, 2], b"[1,2]"),
        (3, b"3"),
        (True, b"true"),
    ],
)
def test_any_other_body_is_compact_utf8_json(body: Any, encoded: bytes) -> None:
    result = normalize_response({"body": body})

    assert result.headers[0] == ("Content-Type", APPLICATION_JSON)
    assert result.body == encoded


def test_a_body_json_cannot_encode_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        normalize_response({"body": {1, 2}})


def test_a_nan_body_is_refused_rather_than_sent_as_invalid_json() -> None:
    with pytest.raises(ValueError, match="cannot be encoded as JSON"):
        normalize_response({"body": {"x": math.nan}})


def test_headers_may_be_a_mapping() -> None:
    headers = normalize_response({"headers": {"X-A": "1"}}).headers

    assert headers == [("X-A", "1"), ("Content-Length", "0")]


def test_headers_may_be_a_list_of_pairs_with_repeats() -> None:
    headers = normalize_response({"headers": [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]}).headers

    assert headers == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Length", "0")]


def test_a_user_content_type_wins_over_the_default_whatever_its_case() -> None:
    headers = normalize_response({"body": "<p>", "headers": {"content-type": "text/html"}}).headers

    assert headers == [("content-type", "text/html"), ("Content-Length", "3")]


def test_a_user_content_length_is_kept_when_it_is_right() -> None:
    headers = normalize_response({"body": "abc", "headers": {"Content-Length": "3"}}).headers

    assert headers == [("Content-Type", TEXT_PLAIN), ("Content-Length", "3")]


def test_a_wrong_user_content_length_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):
        normalize_response({"body": "abc", "headers": {"Content-Length": "10"}})


def test_a_user_transfer_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="Transfer-Encoding"):
        normalize_response({"headers": {"Transfer-Encoding": "chunked"}})


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ("X-A: 1", TypeError, "mapping or a list of pairs"),
        (b"X-A: 1", TypeError, "mapping or a list of pairs"),
        (42, TypeError, "mapping or a list of pairs"),
        ([("X-A",)], TypeError, "not a \\(name, value\\) pair"),
        ([42], TypeError, "not a \\(name, value\\) pair"),
        ({"X-A": 1}, TypeError, "must be str"),
        ({1: "x"}, TypeError, "must be str"),
        ({"X A": "1"}, ValueError, "invalid response header name"),
        ({"": "1"}, ValueError, "invalid response header name"),
        ({"X-A": "1\r\nSet-Cookie: evil"}, ValueError, "CR, LF or NUL"),
        ({"X-A": "\u20ac"}, ValueError, "Latin-1"),
    ],
)
def test_invalid_headers_are_refused(headers: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        normalize_response({"headers": headers})


def test_a_latin1_header_value_is_accepted() -> None:
    assert normalize_response({"headers": {"X-A": "caf\u00e9"}}).headers[0] == ("X-A", "caf\u00e9")


def test_a_str_return_value_is_a_200_text_body() -> None:
    assert normalize_response("hi") == (200, [("Content-Type", TEXT_PLAIN), ("Content-Length", "2")], b"hi")


def test_a_bytes_return_value_is_a_200_raw_body() -> None:
    assert normalize_response(b"hi") == (200, [("Content-Length", "2")], b"hi")


def test_none_is_a_204_without_content_or_content_length() -> None:
    assert normalize_response(None) == (204, [], b"")


@pytest.mark.parametrize("value", [42, 1.5, ["body"], ("a", "b"), object()])
def test_any_other_return_value_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="a handler must return"):
        normalize_response(value)


@pytest.mark.parametrize("status", [101, 204])
def test_statuses_without_content_get_no_content_length(status: int) -> None:
    assert normalize_response({"status": status}) == (status, [], b"")


@pytest.mark.parametrize("status", [101, 204])
def test_statuses_without_content_refuse_a_content_length(status: int) -> None:
    with pytest.raises(ValueError, match="cannot have a Content-Length"):
        normalize_response({"status": status, "headers": {"Content-Length": "0"}})


@pytest.mark.parametrize("status", [100, 204, 304])
def test_statuses_without_content_refuse_a_body(status: int) -> None:
    with pytest.raises(ValueError, match="cannot have content"):
        normalize_response({"status": status, "body": "x"})


def test_a_304_keeps_the_content_length_of_the_cached_representation() -> None:
    result = normalize_response({"status": 304, "headers": {"Content-Length": "1234"}})

    assert result == (304, [("Content-Length", "1234")], b"")


def test_a_304_without_content_length_declares_zero() -> None:
    assert normalize_response({"status": 304}) == (304, [("Content-Length", "0")], b"")


@pytest.mark.parametrize(
    ("status", "allowed"), [(100, False), (199, False), (200, True), (204, False), (304, False), (404, True)]
)
def test_status_allows_body_follows_rfc_9110(status: int, allowed: bool) -> None:
    assert status_allows_body(status) is allowed


def test_internal_server_error_is_a_plain_text_500_that_callers_may_modify() -> None:
    first = internal_server_error()
    first.headers.append(("X-Changed", "1"))

    assert internal_server_error() == (
        500,
        [("Content-Type", TEXT_PLAIN), ("Content-Length", "21")],
        b"Internal Server Error",
    )
