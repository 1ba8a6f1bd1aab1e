"""
Conditional requests: ``If-Match``, ``If-None-Match``, ``If-Modified-Since``
and ``If-Unmodified-Since``, for reads and for conditional writes.

Reads follow RFC 9110 section 13.2.2 precedence, which is also what the S3
GetObject/HeadObject reference describes, including its two called-out
cases (``If-Match`` true + ``If-Unmodified-Since`` false gives 200;
``If-None-Match`` false + ``If-Modified-Since`` true gives 304).

Writes follow S3 conditional writes: only ``If-None-Match: *`` and
``If-Match: <etag>`` are supported.  L{checkPutConditions} is pure so the
metadata store can evaluate it against the current record at commit time,
which is what makes the check atomic.

ETags are compared on their opaque value: S3 accepts them quoted or
unquoted.  ``If-Match`` uses the strong comparison (a ``W/`` tag never
matches), ``If-None-Match`` the weak one.

Tests: tests/unit/test_conditions.py.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Tuple

from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectRecord
from fasterstore.http.dates import parseHTTPDate, wholeSeconds

__all__ = [
    "NOT_MODIFIED",
    "parseETagList",
    "checkGetConditions",
    "checkPutConditions",
]

NOT_MODIFIED = 304

ANY = "*"

# (weak, opaque value without quotes)
ETagList = List[Tuple[bool, str]]


def parseETagList(value: str) -> Optional[ETagList]:
    """
    Split an ``If-Match``/``If-None-Match`` value into entity tags.

    Quoted tags may contain commas; unquoted tokens (which S3 tolerates)
    end at a comma or whitespace.

    @return: C{None} for ``*``, else the tags in order as C{(weak, value)}.
    """
    if value.strip() == ANY:
        return None
    tags: ETagList = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c in " \t,":
            i += 1
            continue
        weak = False
        if value.startswith("W/", i):
            weak = True
            i += 2
        if i < n and value[i] == '"':
            close = value.find('"', i + 1)
            if close == -1:
                close = n
            tags.append((weak, value[i + 1 : close]))
            i = close + 1
        else:
            start = i
            while i < n and value[i] not in " \t,":
                i += 1
            tags.append((weak, value[start:i]))
    return tags


def _present(headers: Mapping[str, str], name: str) -> Optional[str]:
    """
    The header's value, treating an empty one as absent (clients that
    build headers from optional fields sometimes send them empty).
    """
    value = headers.get(name)
    if value is None or not value.strip():
        return None
    return value


def _strongMatch(value: str, etag: str) -> bool:
    """
    Whether an ``If-Match`` value matches the current ETag of an existing
    object.
    """
    tags = parseETagList(value)
    if tags is None:
        return True
    return any(not weak and tag == etag for weak, tag in tags)


def _weakMatch(value: str, etag: str) -> bool:
    """
    Whether an ``If-None-Match`` value matches the current ETag of an
    existing object.
    """
    tags = parseETagList(value)
    if tags is None:
        return True
    return any(tag == etag for _, tag in tags)


def _preconditionFailed(condition: str) -> S3Error:
    """
    The 412 S3 sends, naming the failed header in ``<Condition>`` as AWS
    does.
    """
    return S3Error("PreconditionFailed", extra={"Condition": condition})


def checkGetConditions(
    headers: Mapping[str, str], etag: str, modified: float
) -> Optional[int]:
    """
    Evaluate read preconditions against an existing object.

    @param headers: request headers, names lower-cased.
    @param etag: the object's ETag without quotes.
    @param modified: the object's last-modified time; compared at the
        one-second resolution of ``Last-Modified``.
    @return: C{None} to serve the object, or L{NOT_MODIFIED} (304).
    @raise S3Error: C{PreconditionFailed} (412).
    """
    seconds = wholeSeconds(modified)

    ifMatch = _present(headers, "if-match")
    if ifMatch is not None:
        if not _strongMatch(ifMatch, etag):
            raise _preconditionFailed("If-Match")
    else:
        since = _present(headers, "if-unmodified-since")
        if since is not None:
            date = parseHTTPDate(since)
            if date is not None and seconds > date:
                raise _preconditionFailed("If-Unmodified-Since")

    ifNoneMatch = _present(headers, "if-none-match")
    if ifNoneMatch is not None:
        if _weakMatch(ifNoneMatch, etag):
            return NOT_MODIFIED
    else:
        since = _present(headers, "if-modified-since")
        if since is not None:
            date = parseHTTPDate(since)
            if date is not None and seconds <= date:
                return NOT_MODIFIED
    return None


def checkPutConditions(
    headers: Mapping[str, str], current: Optional[ObjectRecord]
) -> None:
    """
    Evaluate conditional-write preconditions against the object a write
    would replace.

    @param headers: request headers, names lower-cased.
    @param current: the current record for the key, or C{None}.
    @raise S3Error: C{NotImplemented} (501) for ``If-Match`` and
        ``If-None-Match`` together (as AWS answers); C{PreconditionFailed}
        (412) when ``If-None-Match: *`` meets an existing object, an
        ``If-None-Match`` ETag list names the current one, or ``If-Match``
        does not;
        C{NoSuchKey} (404) when ``If-Match`` names a missing object.
    """
    ifMatch = _present(headers, "if-match")
    ifNoneMatch = _present(headers, "if-none-match")
    if ifNoneMatch is not None:
        if ifMatch is not None:
            raise S3Error("NotImplemented", extra={"Header": "If-None-Match"})
        # "*": only if nothing is there.  An ETag list (which AWS answers
        # with 501, and RGW and MinIO honour): only if none of them is the
        # current version's.
        if current is not None and (ifNoneMatch.strip() == ANY or _weakMatch(ifNoneMatch, current.etag)):
            raise _preconditionFailed("If-None-Match")
    if ifMatch is not None:
        if current is None:
            raise S3Error("NoSuchKey")
        if not _strongMatch(ifMatch, current.etag):
            raise _preconditionFailed("If-Match")
