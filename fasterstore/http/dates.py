"""
HTTP and S3 timestamps, in and out.

S3 keeps object times at one-second resolution on the wire: ``Last-Modified``
is an RFC 1123 date and listings carry ISO 8601 with a constant ``.000``
millisecond field.  Both are produced here from the same floor of the stored
float so a HEAD and a listing never disagree.  Incoming conditional dates may
be in any of the three forms RFC 9110 section 5.6.7 obliges recipients to
accept; anything else is reported as ``None`` so callers can ignore it, as
RFC 9110 requires for an invalid ``If-Modified-Since``.  Every date a
client sends (HTTP dates, ``x-amz-date``, POST policy expirations) is checked
by L{utcTimestamp}: a day that is not in its month, or a year outside
0001-9999 (``Sat, 01 Jan 0000 00:00:00 GMT`` made ``calendar`` raise),
is not a date.

Tests: tests/unit/test_http_dates.py.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
import time
from typing import Optional, Tuple

__all__ = ["MAX_TIMESTAMP", "parseHTTPDate", "utcTimestamp", "formatHTTPDate", "httpDateNow", "formatISO8601", "wholeSeconds"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_MONTH_NUMBERS = {name.lower(): i + 1 for i, name in enumerate(_MONTHS)}

#: 9999-12-31T23:59:59Z, the last second these formats (and C{time.gmtime}
#: on every platform) can show.
MAX_TIMESTAMP = 253402300799

# re.ASCII throughout: \d and \s must not accept other scripts' digits.
_TIME = r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"
_MONTH = r"(?P<month>[A-Za-z]{3})"

# Sun, 06 Nov 1994 08:49:37 GMT  (IMF-fixdate; one-digit days tolerated, and
# "UTC" / "+0000" / "-0000" which some clients send).
_RFC1123 = re.compile(
    r"[A-Za-z]{3},\s+(?P<day>\d{1,2})\s+" + _MONTH + r"\s+(?P<year>\d{4})\s+"
    + _TIME + r"\s+(?:GMT|UTC|[+-]0000)",
    re.ASCII,
)
# Sunday, 06-Nov-94 08:49:37 GMT
_RFC850 = re.compile(
    r"[A-Za-z]{6,9},\s+(?P<day>\d{1,2})-" + _MONTH + r"-(?P<year>\d{2})\s+"
    + _TIME + r"\s+GMT",
    re.ASCII,
)
# Sun Nov  6 08:49:37 1994
_ASCTIME = re.compile(
    r"[A-Za-z]{3}\s+" + _MONTH + r"\s+(?P<day>\d{1,2})\s+" + _TIME
    + r"\s+(?P<year>\d{4})",
    re.ASCII,
)


def wholeSeconds(when: float) -> int:
    """
    The one-second timestamp S3 shows for C{when}.

    Every formatter and every date comparison goes through this, so that a
    client echoing our ``Last-Modified`` back in ``If-Modified-Since`` gets
    a 304.
    """
    return int(math.floor(when))


def parseHTTPDate(value: str) -> Optional[float]:
    """
    Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime).

    @return: seconds since the epoch, or C{None} if C{value} is not a valid
        date (callers must then ignore the header).  RFC 850 two-digit years
        00-69 are read as 20xx and 70-99 as 19xx (the POSIX pivot: the RFC's
        "50 years in the future" rule would need a clock).
    """
    text = value.strip()
    for pattern in (_RFC1123, _RFC850, _ASCTIME):
        match = pattern.fullmatch(text)
        if match is not None:
            break
    else:
        return None
    month = _MONTH_NUMBERS.get(match["month"].lower())
    if month is None:
        return None
    year = int(match["year"])
    if pattern is _RFC850:
        year += 2000 if year < 70 else 1900
    return utcTimestamp(
        year,
        month,
        int(match["day"]),
        int(match["hour"]),
        int(match["minute"]),
        int(match["second"]),
    )


def utcTimestamp(
    year: int, month: int, day: int, hour: int, minute: int, second: int
) -> Optional[float]:
    """
    The POSIX time of a UTC calendar date and time read from a client.

    @return: seconds since the epoch, or C{None} unless C{year} is 1-9999
        (what C{calendar} and C{datetime} can represent: year 0 made them
        raise), C{month} 1-12, C{day} a day of that month, C{hour} 0-23,
        C{minute} 0-59 and C{second} 0-60.  A leap second (:60) is the
        first second of the next minute.
    """
    if not (
        1 <= year <= 9999
        and 1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year, month)[1]
        and 0 <= hour < 24
        and 0 <= minute < 60
        and 0 <= second <= 60
    ):
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def formatHTTPDate(when: float) -> str:
    """
    Format C{when} as an IMF-fixdate (``Last-Modified``, ``Date``), always
    GMT and never locale-dependent.
    """
    t = time.gmtime(wholeSeconds(when))
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday],
        t.tm_mday,
        _MONTHS[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


_lastDate: Tuple[int, bytes] = (-1, b"")


def httpDateNow(now: Optional[float] = None) -> bytes:
    """
    The C{Date} header for now (C{time.time()} unless given), formatted
    once a second: every response carries one.
    """
    global _lastDate
    second = int(time.time() if now is None else now)
    if _lastDate[0] != second:
        _lastDate = (second, formatHTTPDate(second).encode("ascii"))
    return _lastDate[1]


def formatISO8601(when: float) -> str:
    """
    Format C{when} the way S3 XML bodies do: ``2006-02-03T16:45:09.123Z``.

    Milliseconds are kept (AWS shows C{.000}, MinIO the real value): sync
    tools compare listing times with file times, and a file written in the
    same second as its upload would otherwise look newer than its copy.
    HTTP C{Last-Modified} has whole seconds, as HTTP dates do.
    """
    seconds = wholeSeconds(when)
    millis = min(999, int((when - seconds) * 1000))
    day, second = divmod(seconds, 86400)
    minute, second = divmod(second, 60)
    return f"{_isoDay(day)}T{_HOURS_MINUTES[minute]}:{second:02d}.{millis:03d}Z"


_HOURS_MINUTES = tuple("%02d:%02d" % divmod(m, 60) for m in range(1440))


@functools.lru_cache(maxsize=4096)
def _isoDay(day: int) -> str:
    """The date of day number C{day} since the epoch: cached, as a listing's objects share few days."""
    t = time.gmtime(day * 86400)
    return "%04d-%02d-%02d" % (t.tm_year, t.tm_mon, t.tm_mday)
