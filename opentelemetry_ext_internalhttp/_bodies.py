"""Request and response body content as span attributes (opt-in): what is recorded, and how much.

``http.request.body.content`` and ``http.response.body.content`` (semantic
conventions main, Development, Opt-In) are recorded only for textual
content types, as text: the body with its content coding removed, cut to a
byte limit on a character boundary. Never parsed, never base64, never
consuming or changing the bytes the handler or the client reads.

>>> body_content(b'{"id": 7}', "application/json", None, 1024)
'{"id": 7}'
>>> body_content(b"\\x89PNG...", "image/png", None, 1024) is None
True
"""

from __future__ import annotations

import codecs
import re
import zlib
from typing import Optional

# Not in the semantic-conventions package yet: defined here, as the
# conventions name them (semantic-conventions #3521).
HTTP_REQUEST_BODY_CONTENT = "http.request.body.content"
HTTP_RESPONSE_BODY_CONTENT = "http.response.body.content"
BODY_CONTENT_ATTRIBUTES = (HTTP_REQUEST_BODY_CONTENT, HTTP_RESPONSE_BODY_CONTENT)
# The schema in which those attributes appear.
BODY_CONTENT_SCHEMA_URL = "https://opentelemetry.io/schemas/1.45.0"
DEFAULT_BODY_CAPTURE_LIMIT_KIB = 8

_TEXTUAL_SUFFIXES = ("+json", "+xml", "+yaml")
_TEXTUAL_SUBTYPES = ("json", "xml", "yaml")
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.IGNORECASE)
# Window bits for zlib: gzip framing, zlib framing (what "deflate" means in HTTP), raw deflate.
_GZIP, _ZLIB, _RAW_DEFLATE = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS


def textual_charset(content_type: Optional[str]) -> Optional[str]:
    """The charset to read a body of this ``Content-Type`` with, or None when it is not textual.

    Textual: ``text/*``, ``*/json``, ``*+json``, ``*/xml``, ``*+xml``,
    ``*/yaml``, ``*+yaml``, ``application/x-www-form-urlencoded``, or any
    type with a ``charset`` (compared case-insensitively). Without a
    charset, UTF-8.

    >>> textual_charset("Text/HTML; charset=ISO-8859-1"), textual_charset("application/vnd.api+json")
    ('iso-8859-1', 'utf-8')
    >>> textual_charset("application/octet-stream"), textual_charset(None)
    (None, None)
    """
    if not content_type:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    found = _CHARSET.search(content_type)
    charset = found.group(1).lower() if found else None
    kind, _, subtype = media_type.partition("/")
    textual = (
        kind == "text"
        or subtype in _TEXTUAL_SUBTYPES
        or subtype.endswith(_TEXTUAL_SUFFIXES)
        or media_type == "application/x-www-form-urlencoded"
        or charset is not None
    )
    if not textual:
        return None
    return charset if charset and _known_codec(charset) else "utf-8"


def _known_codec(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True


def decoded(body: bytes, content_encoding: Optional[str], limit: int) -> Optional[bytes]:
    """The body with its content coding removed, no more than ``limit`` bytes of it; None if it cannot be.

    ``identity``, ``gzip`` (``x-gzip``) and ``deflate``; a body in any other
    coding, or in several, is not decoded (None).

    >>> import gzip
    >>> decoded(gzip.compress(b"a" * 100), "gzip", 10), decoded(b"abc", None, 2), decoded(b"x", "br", 10)
    (b'aaaaaaaaaa', b'ab', None)
    """
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return body[:limit]
    if coding in ("gzip", "x-gzip"):
        return _inflate(body, (_GZIP,), limit)
    if coding == "deflate":
        # RFC 9110 says zlib framing; some servers send raw deflate.
        return _inflate(body, (_ZLIB, _RAW_DEFLATE), limit)
    return None


def _inflate(body: bytes, window_bits: tuple[int, ...], limit: int) -> Optional[bytes]:
    for bits in window_bits:
        try:
            # max_length bounds the output: a small body cannot inflate past the limit.
            return zlib.decompressobj(bits).decompress(body, limit)
        except zlib.error:
            continue
    return None


def cut_text(data: bytes, charset: str, limit: int) -> str:
    """``data`` (already no longer than ``limit``) as text, cut on a character boundary.

    A character that the cut split, at the end, is left out whole; bytes
    that are not valid in the charset become U+FFFD.

    >>> cut_text("h\u00e9llo".encode()[:2], "utf-8", 2)
    'h'
    """
    decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    # Not final: an incomplete character at the end is held back, not replaced.
    return decoder.decode(data[:limit], final=False)


def body_content(
    body: object, content_type: Optional[str], content_encoding: Optional[str], limit: int
) -> Optional[str]:
    """What ``http.*.body.content`` records for a body, or None when nothing is.

    >>> body_content("h\u00e9llo w\u00f6rld", "text/plain", None, 3)
    'h\u00e9'
    >>> body_content(b"", "text/plain", None, 10) is None
    True
    """
    charset = textual_charset(content_type)
    if charset is None or limit <= 0:
        return None
    if isinstance(body, str):
        data: Optional[bytes] = body.encode("utf-8")[:limit]
        charset = "utf-8"
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = decoded(bytes(body), content_encoding, limit)
    else:
        return None
    if not data:
        return None
    return cut_text(data, charset, limit) or None
