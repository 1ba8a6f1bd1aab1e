"""
The ``Range`` header of GetObject/HeadObject, as S3 interprets it.

S3 serves one byte range per request.  Following AWS (and MinIO, which copies
it), a ``Range`` header that cannot be parsed, or that asks for several
ranges, is ignored and the whole object is returned with 200.  Only two
well-formed-but-impossible forms are refused with 416 ``InvalidRange``:

  - a range that is not satisfiable for this object (first byte at or past
    the end, or any range at all on an empty object);
  - a range whose last byte is before its first (``bytes=5-3``) and an empty
    suffix (``bytes=-0``), which MinIO, mirroring S3, also answers with 416
    although RFC 9110 would ignore the first.

Positions are read by L{fasterstore.numbers.readDecimal} (ASCII digits
only); one too large for any object (more than 63 bits) stands for "past
every end": a last byte that large is clamped, a first byte that large is
unsatisfiable, a suffix that large is the whole object.

Tests: tests/unit/test_ranges.py.
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

from fasterstore.errors import S3Error
from fasterstore.numbers import INT64_MAX, readDecimal

__all__ = ["parseRange", "contentRange", "unsatisfiable"]

# re.ASCII: IGNORECASE alone would let "byteſ" (long s) match "bytes".
_SINGLE = re.compile(r"bytes=(?P<first>[0-9]*)-(?P<last>[0-9]*)", re.IGNORECASE | re.ASCII)

#: Any position at or past this is past the end of every object.
_BEYOND = INT64_MAX + 1


def _position(digits: str) -> int:
    """
    A byte position the pattern matched, or L{_BEYOND} for one too large to
    be in any object: no quadratic C{int()} of thousands of digits (which
    Python refuses with C{ValueError} past 4300).
    """
    value = readDecimal(digits, maximum=INT64_MAX)
    return _BEYOND if value is None else value


def unsatisfiable(header: str, size: int) -> S3Error:
    """
    The 416 error S3 sends for a range it will not serve.

    The body carries ``RangeRequested`` and ``ActualObjectSize`` as AWS does;
    the ``Content-Range: bytes */size`` header RFC 9110 asks for on 416 is
    included in the error's headers.
    """
    return S3Error(
        "InvalidRange",
        extra={"RangeRequested": header, "ActualObjectSize": str(size)},
        headers={"Content-Range": f"bytes */{size}"},
    )


def parseRange(header: Optional[str], size: int) -> Optional[Tuple[int, int]]:
    """
    Interpret a ``Range`` header against an object of C{size} bytes.

    @return: C{None} to serve the whole object (no header, or one S3
        ignores), else the half-open byte interval C{(start, end)} with
        C{0 <= start < end <= size}.
    @raise S3Error: C{InvalidRange} (416) when the range cannot be served.
    """
    if header is None:
        return None
    match = _SINGLE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match["first"], match["last"]
    if not first and not last:
        # "bytes=-" is not a range at all.
        return None
    if not first:
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise unsatisfiable(header, size)
        return (max(size - suffix, 0), size)
    start = _position(first)
    if last and _position(last) < start:
        raise unsatisfiable(header, size)
    if start >= size:
        raise unsatisfiable(header, size)
    end = size if not last else min(_position(last) + 1, size)
    return (start, end)


def contentRange(start: int, end: int, size: int) -> str:
    """
    The ``Content-Range`` value for a 206 carrying the half-open interval
    C{[start, end)} of a C{size}-byte object.
    """
    return f"bytes {start}-{end - 1}/{size}"
