"""
The canonical forms SigV4 and SigV2 sign: URI encoding, query strings,
header values; and L{RequestHead}, what authentication sees of a request.

What the server acts on is derived from the same functions, so what is
verified is exactly what is used (see docs/security.md).
Tests: tests/unit/test_sigv4.py.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import unquote_to_bytes

import attrs

from fasterstore.errors import S3Error


@attrs.frozen
class RequestHead:
    """
    What authentication needs of a request: everything but the body.

    @ivar method: the HTTP method, e.g. C{"GET"}.
    @ivar rawPath: the path exactly as on the request line, percent-encoded
        as sent, including any mount prefix, without the query.
    @ivar rawQuery: the raw query string after C{?}, C{b""} if none.
    @ivar headers: lower-case header name -> values (latin-1 decoded).
    @ivar virtualBucket: the bucket taken from the C{Host} header when the
        request is virtual-hosted style; SigV2's canonical resource needs it.
    @ivar query: the query already decoded as L{queryParameters} does, when
        the caller has it (the router does), so it is not parsed twice.
    @ivar localPath: C{rawPath} without the mount point's segments, when the
        S3 resource is mounted below the root of a Site (SigV2 clients sign
        the path below it).
    """

    method: str
    rawPath: bytes
    rawQuery: bytes
    headers: Mapping[str, Sequence[str]]
    virtualBucket: Optional[str] = None
    query: Optional[Mapping[str, str]] = None
    localPath: Optional[bytes] = None


# ---------------------------------------------------------------- encoding

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ENCODE = [bytes([b]) if b in _UNRESERVED else b"%%%02X" % b for b in range(256)]
_ENCODE_KEEP_SLASH = list(_ENCODE)
_ENCODE_KEEP_SLASH[ord("/")] = b"/"


_PLAIN = re.compile(rb"[A-Za-z0-9\-._~]*")
_PLAIN_PATH = re.compile(rb"[A-Za-z0-9\-._~/]*")


def uriEncode(data: bytes, keepSlash: bool = False) -> bytes:
    """
    SigV4's UriEncode: every byte but A-Za-z0-9-._~ as upper-case %XX.

    @param keepSlash: leave C{/} alone (for paths, not query components).
    """
    if (_PLAIN_PATH if keepSlash else _PLAIN).fullmatch(data):
        return data  # the common case, found at C speed
    table = _ENCODE_KEEP_SLASH if keepSlash else _ENCODE
    return b"".join([table[b] for b in data])


def percentDecode(data: bytes, plusIsSpace: bool = False) -> bytes:
    """
    Undo %XX escapes (malformed ones are kept as they are).

    @param plusIsSpace: decode C{+} as a space, as forms and most query
        parsers do.
    """
    if plusIsSpace and b"+" in data:
        data = data.replace(b"+", b" ")
    if b"%" not in data:
        return data  # the common case: nothing to undo
    return unquote_to_bytes(data)


def canonicalURI(rawPath: bytes) -> bytes:
    """
    The S3 flavour of SigV4's canonical URI: decode, then encode once.

    S3 neither double-encodes nor normalises C{.}, C{..} or C{//}.
    """
    if not rawPath:
        return b"/"
    return uriEncode(percentDecode(rawPath), keepSlash=True)


def splitQuery(rawQuery: bytes) -> List[Tuple[bytes, Optional[bytes]]]:
    """
    Split a raw query into still-encoded C{(name, value)} pairs, the value
    C{None} for a parameter without C{=}; empty pieces (C{a&&b}) are dropped.
    """
    pairs: List[Tuple[bytes, Optional[bytes]]] = []
    for piece in rawQuery.split(b"&"):
        if not piece:
            continue
        name, sep, value = piece.partition(b"=")
        pairs.append((name, value if sep else None))
    return pairs


def parseQuery(rawQuery: bytes) -> List[Tuple[bytes, bytes]]:
    """
    Split a raw query into still-encoded C{(name, value)} pairs; a
    parameter without C{=} has the value C{b""}.
    """
    return [(name, value or b"") for name, value in splitQuery(rawQuery)]


def text(data: bytes) -> str:
    """Decoded UTF-8, with U+FFFD for bytes that are not (for messages and signatures)."""
    return data.decode("utf-8", "replace")


def _strictText(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.") from None


#: The last query decoded, and its pairs: routing and the signature check
#: both decode the same request's query, one after the other.
_lastDecoded: Tuple[bytes, Tuple[Tuple[bytes, bytes], ...]] = (b"", ())


def decodedQuery(rawQuery: bytes) -> Tuple[Tuple[bytes, bytes], ...]:
    """
    The query's C{(name, value)} pairs, each percent-decoded with C{+} as a
    space (what the server acts on and what SigV4 re-encodes), in order.
    """
    global _lastDecoded
    if rawQuery == _lastDecoded[0]:
        return _lastDecoded[1]
    pairs = tuple(
        (percentDecode(name, True), percentDecode(value, True)) for name, value in parseQuery(rawQuery)
    )
    _lastDecoded = (rawQuery, pairs)
    return pairs


def queryParameters(rawQuery: bytes) -> Dict[str, str]:
    """
    The decoded query (C{+} is a space, as S3 and Go's net/url read it; a
    name without C{=} maps to C{""}): what the server acts on.

    @raise S3Error: C{InvalidURI} for a name or value that is not UTF-8;
        C{InvalidArgument} for a name given twice, since the signature
        covers both values while only one could be used.
    """
    params: Dict[str, str] = {}
    for name, value in decodedQuery(rawQuery):
        decoded = _strictText(name)
        if decoded in params:
            raise S3Error(
                "InvalidArgument",
                "Query parameters may not be repeated.",
                extra={"ArgumentName": decoded, "ArgumentValue": decoded},
            )
        params[decoded] = _strictText(value)
    return params


def canonicalQuery(rawQuery: bytes, exclude: Sequence[str] = (), plusIsSpace: bool = True) -> bytes:
    """
    SigV4's canonical query string: each name and value decoded, encoded
    again with L{uriEncode}, sorted by encoded name then value.

    @param exclude: decoded parameter names to leave out (C{X-Amz-Signature}
        for presigned URLs).
    """
    excluded = {name.encode("utf-8") for name in exclude}
    if plusIsSpace:
        decoded: Iterable[Tuple[bytes, bytes]] = decodedQuery(rawQuery)
    else:
        decoded = [(percentDecode(name), percentDecode(value)) for name, value in parseQuery(rawQuery)]
    pairs = [(uriEncode(name), uriEncode(value)) for name, value in decoded if name not in excluded]
    pairs.sort()
    return b"&".join(name + b"=" + value for name, value in pairs)


# ----------------------------------------------------------------- headers

#: The whitespace SigV4's Trimall collapses: HTTP's SP and HTAB, nothing else
#: (Python's C{str.split()} would also split on U+00A0 and other non-ASCII
#: spaces, letting a signature over C{a b} cover C{a\xa0b}).
_SPACES = re.compile(r"[ \t]+")


def headerValue(values: Sequence[str]) -> str:
    """
    One header's value as the server acts on it and as SigV2 signs it:
    repeated fields joined with C{,}, each trimmed of SP and HTAB.
    """
    return ",".join(v.strip(" \t") for v in values)


def canonicalHeaderValue(values: Sequence[str]) -> str:
    """
    SigV4's canonical form of L{headerValue}: runs of SP and HTAB inside
    it collapsed to one space (SigV4's Trimall).
    """
    return _SPACES.sub(" ", headerValue(values))


def header(head: RequestHead, name: str) -> Optional[str]:
    """A header of C{head} as the server acts on it, or None if absent."""
    values = head.headers.get(name)
    if not values:
        return None
    return headerValue(values)
