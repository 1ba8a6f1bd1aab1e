"""
One strict reader for every integer a client sends.

Python's own tools are too lenient to read untrusted numbers with:
C{int()} accepts surrounding whitespace, a C{+} sign, underscores
(C{int("1_000") == 1000}) and digits of every script (C{int("٣") == 3});
C{str.isdigit()} accepts characters C{int()} then refuses (C{"²"}), which
turned a bad C{max-parts} into a 500; regex C{\\d} matches any Unicode
digit; and C{int()} of a long enough string raises (Python limits
conversions to 4300 digits) after quadratic work.  S3 reads these values
as Java integers: ASCII digits, an optional C{-}, within a fixed range.

So every query parameter, header, XML element or policy bound that holds a
number is read here: ASCII C{[0-9]+} only (a leading C{-} only when the
caller allows negative values), with the length checked before any
conversion so that a huge value is refused in linear time.  Callers
that tolerate surrounding whitespace strip it themselves.  A value that is
not such a number, or is outside the caller's range, raises the S3 error
the caller names, which is the error AWS gives for that parameter.

Tests: tests/unit/test_numbers.py.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from fasterstore.errors import S3Error

__all__ = ["INT32_MAX", "INT64_MAX", "readDecimal", "parseDecimal", "parseHex"]

#: The largest value of S3's C{Integer} parameters (C{max-keys}...).
INT32_MAX = 2**31 - 1
#: The largest value of S3's C{Long} parameters (sizes, offsets).
INT64_MAX = 2**63 - 1

# Explicit ASCII classes (never \d), matched with fullmatch (never $, which
# also matches before a final newline).
_DECIMAL = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _digits(text: str, pattern: "re.Pattern[str]", allowMinus: bool, limit: int) -> Optional[str]:
    """
    C{text} without leading zeros (and its sign), if it matches C{pattern}
    and has at most C{limit} significant digits; else C{None}.
    """
    if pattern.fullmatch(text) is None:
        return None
    negative = text.startswith("-")
    if negative and not allowMinus:
        return None
    significant = (text[1:] if negative else text).lstrip("0") or "0"
    if len(significant) > limit:
        return None
    return ("-" if negative else "") + significant


def readDecimal(text: str, *, minimum: int = 0, maximum: int) -> Optional[int]:
    """
    Read a decimal integer, strictly.

    @param text: the value as sent, already stripped if the caller allows
        surrounding whitespace.
    @param minimum: the smallest value accepted; a leading C{-} is accepted
        only when it is negative.
    @param maximum: the largest value accepted.
    @return: the value, or C{None} if C{text} is not ASCII C{-?[0-9]+} or
        the value is outside C{[minimum, maximum]}.
    """
    limit = len(str(max(abs(minimum), abs(maximum))))
    digits = _digits(text, _DECIMAL, minimum < 0, limit)
    if digits is None:
        return None
    value = int(digits)
    if not minimum <= value <= maximum:
        return None
    return value


def parseDecimal(text: str, *, minimum: int = 0, maximum: int, error: Callable[[], S3Error]) -> int:
    """
    Read a decimal integer, strictly, or refuse it with C{error()}.

    @param error: makes the S3 error to raise for anything
        L{readDecimal} would not read.
    @raise S3Error: C{error()}.
    """
    value = readDecimal(text, minimum=minimum, maximum=maximum)
    if value is None:
        raise error()
    return value


def parseHex(text: str, *, maximum: int, error: Callable[[], S3Error]) -> int:
    """
    Read a non-negative hexadecimal integer (ASCII C{[0-9a-fA-F]+}, no
    C{0x}, no sign), strictly, or refuse it with C{error()}.

    @param maximum: the largest value accepted.
    @raise S3Error: C{error()}.
    """
    digits = _digits(text, _HEX, False, len(f"{maximum:x}"))
    if digits is None:
        raise error()
    value = int(digits, 16)
    if value > maximum:
        raise error()
    return value
