"""Parse functions for settings: what is valid in a value, kept, and what is not, named.

A parse function takes what a user wrote (a keyword argument, a
configuration-file value or an environment variable's text) and returns a
``Parsed``: the setting made of the valid items, and the invalid ones as
shown to users. It raises ``TypeError`` only for a value of a type the
setting does not take. Pure functions, shown by example.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from ipaddress import ip_network
from typing import Any, NamedTuple, Optional

# RFC 9110, section 5.6.2: a method is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


_BOOLEANS = {"true": True, "false": False}


class Parsed(NamedTuple):
    """What a parse function makes of a value: the setting, and the invalid items, as shown to users."""

    value: Any
    rejected: tuple[str, ...]


def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty, stripped items.

    >>> split_list(" a, ,b ")
    ('a', 'b')
    """
    return tuple(item.strip() for item in text.split(",") if item.strip())


def list_items(value: object) -> tuple[str, ...]:
    """A list setting's items, from a comma-separated string or a list of strings.

    >>> list_items("GET, PUT"), list_items(["GET", " PUT "])
    (('GET', 'PUT'), ('GET', 'PUT'))
    """
    if isinstance(value, str):
        return split_list(value)
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise TypeError("expected a comma-separated string or a list of strings")


def sorted_out(items: Iterable[str], is_valid: Callable[[str], bool]) -> Parsed:
    """``items`` split into the valid ones, kept in order, and the others, quoted.

    >>> sorted_out(["a", "b c", "d"], str.isalpha)
    Parsed(value=('a', 'd'), rejected=("'b c'",))
    """
    kept: list[str] = []
    rejected: list[str] = []
    for item in items:
        (kept if is_valid(item) else rejected).append(item)
    return Parsed(tuple(kept), tuple(repr(item) for item in rejected))


def parse_patterns(value: object) -> Parsed:
    """Regular expressions, each kept only if it compiles, alone and joined to those before it.

    They are used joined into one expression, so one that compiles alone but
    not joined (a repeated group name) is rejected too.

    >>> parse_patterns("/healthz, /broken(")
    Parsed(value=('/healthz',), rejected=("'/broken(' (missing ), unterminated subpattern at position 7)",))
    """
    kept: list[str] = []
    rejected: list[str] = []
    for item in list_items(value):
        problem = _regex_problem(item) or _regex_problem("|".join((*kept, item)))
        if problem:
            rejected.append(f"{item!r} ({problem})")
        else:
            kept.append(item)
    return Parsed(tuple(kept), tuple(rejected))


def _regex_problem(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return ""


def parse_methods(value: object) -> Parsed:
    """HTTP methods: tokens, case-sensitive.

    >>> parse_methods("GET,BAD METHOD")
    Parsed(value=('GET',), rejected=("'BAD METHOD'",))
    """
    return sorted_out(list_items(value), lambda item: _TOKEN.fullmatch(item) is not None)


def parse_names(value: object) -> Parsed:
    """Names compared as written (query parameter names): every non-empty string is one.

    >>> parse_names("token, api_key")
    Parsed(value=('token', 'api_key'), rejected=())
    """
    return Parsed(list_items(value), ())


def parse_boolean(value: object) -> Parsed:
    """True or False, or ``true`` / ``false`` in any case.

    >>> parse_boolean("TRUE"), parse_boolean("yes")
    (Parsed(value=True, rejected=()), Parsed(value=None, rejected=("'yes'",)))
    """
    if isinstance(value, bool):
        return Parsed(value, ())
    if not isinstance(value, str):
        raise TypeError("expected True, False, true or false")
    flag = _BOOLEANS.get(value.strip().lower())
    return Parsed(flag, ()) if flag is not None else Parsed(None, (repr(value),))


def parse_byte_count(value: object) -> Parsed:
    """A whole number of bytes, 0 or more.

    >>> parse_byte_count("16384"), parse_byte_count(-1)
    (Parsed(value=16384, rejected=()), Parsed(value=None, rejected=('-1',)))
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError("expected a whole number of bytes")
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        return Parsed(int(text), ())
    return Parsed(None, (repr(value),))


def parse_callable(value: object) -> Parsed:
    """A callable (keyword arguments only)."""
    if not callable(value):
        raise TypeError("expected a callable")
    return Parsed(value, ())


# Every status code a SERVER span may call an error: the 5xx range. A 4xx
# is the client's error, never the server's (http-spans.md, Status).
SERVER_ERROR_RANGE = range(500, 600)


def parse_statuses(value: object) -> Parsed:
    """Status codes that make a SERVER span an error: codes and ranges, ``!`` to leave some out.

    Narrowing only: what is outside 500-599 is named and ignored. With only
    exclusions, they are taken out of the whole 5xx range.

    >>> parsed = parse_statuses("500-599,!501,!505")
    >>> (501 in parsed.value, 502 in parsed.value, len(parsed.value))
    (False, True, 98)
    >>> sorted(parse_statuses("!500-598").value), parse_statuses("404,5xx").rejected
    ([599], ("'404'", "'5xx'"))
    """
    included: set[int] = set()
    excluded: set[int] = set()
    rejected: list[str] = []
    for item in list_items(value):
        codes = _status_range(item.removeprefix("!").strip())
        if codes is None:
            rejected.append(repr(item))
        else:
            (excluded if item.startswith("!") else included).update(codes)
    if not included and (excluded or not rejected):
        included.update(SERVER_ERROR_RANGE)
    return Parsed(frozenset(included - excluded) if included or excluded else None, tuple(rejected))


def _status_range(text: str) -> Optional[range]:
    """``503`` or ``500-504`` as a range of 5xx codes, or None.

    >>> _status_range("500-504"), _status_range("503"), _status_range("499-500")
    (range(500, 505), range(503, 504), None)
    """
    low, dash, high = text.partition("-")
    if not (low.isascii() and low.isdigit() and (not dash or (high.isascii() and high.isdigit()))):
        return None
    first, last = int(low), int(high) if dash else int(low)
    if first > last or first not in SERVER_ERROR_RANGE or last not in SERVER_ERROR_RANGE:
        return None
    return range(first, last + 1)


def parse_trusted_proxies(value: object) -> Parsed:
    """IP addresses and CIDR ranges, ``*`` for every peer; an empty list trusts no one.

    >>> parse_trusted_proxies("10.0.0.0/8, ::1, not-a-network")
    Parsed(value=('10.0.0.0/8', '::1'), rejected=("'not-a-network'",))
    """
    return sorted_out(list_items(value), lambda item: item == "*" or not _network_problem(item))


def _network_problem(item: str) -> str:
    try:
        ip_network(item, strict=False)
    except ValueError as exc:
        return str(exc)
    return ""


def parse_choice(choices: Sequence[str]) -> Callable[[Any], Parsed]:
    """A parse function for one of ``choices``, in any case.

    >>> parse_choice(("x-forwarded", "forwarded"))(" Forwarded ")
    Parsed(value='forwarded', rejected=())
    """

    def parse(value: object) -> Parsed:
        if not isinstance(value, str):
            raise TypeError(f"expected one of {', '.join(choices)}")
        choice = value.strip().lower()
        return Parsed(choice, ()) if choice in choices else Parsed(None, (repr(value),))

    return parse


def add_or_replace(
    defaults: tuple[str, ...], replacing: Optional[tuple[str, ...]], adding: tuple[str, ...]
) -> tuple[str, ...]:
    """A list with both forms of setting: ``replacing`` (when set) instead of the defaults, plus ``adding``.

    Adding to the list can never remove a default; only the replacing form can.

    >>> add_or_replace(("sig", "Signature"), None, ("token",))
    ('sig', 'Signature', 'token')
    >>> add_or_replace(("sig", "Signature"), ("token",), ("sig",))
    ('token', 'sig')
    """
    return tuple(dict.fromkeys((*(defaults if replacing is None else replacing), *adding)))
