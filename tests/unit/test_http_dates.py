"""
Tests for L{fasterstore.http.dates}.
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.auth.sigv4 import parseAmzDate
from fasterstore.http.dates import (
    httpDateNow,
    MAX_TIMESTAMP,
    formatHTTPDate,
    formatISO8601,
    parseHTTPDate,
    utcTimestamp,
    wholeSeconds,
)

# 1994-11-06T08:49:37Z, the RFC 9110 example.
EXAMPLE = 784111777.0

# Whole-second times from 1970 to 9999.
times = st.integers(min_value=0, max_value=253402300799)


class ParseTests(SynchronousTestCase):
    """
    L{parseHTTPDate} accepts the three forms RFC 9110 requires and nothing
    else.
    """

    def test_imfFixdate(self) -> None:
        """
        The preferred form parses.
        """
        self.assertEqual(parseHTTPDate("Sun, 06 Nov 1994 08:49:37 GMT"), EXAMPLE)

    def test_rfc850(self) -> None:
        """
        The obsolete RFC 850 form with a two-digit year parses.
        """
        self.assertEqual(parseHTTPDate("Sunday, 06-Nov-94 08:49:37 GMT"), EXAMPLE)

    def test_rfc850Pivot(self) -> None:
        """
        Two-digit years below 70 are in the 2000s.
        """
        self.assertEqual(
            parseHTTPDate("Thursday, 01-Jan-30 00:00:00 GMT"),
            datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp(),
        )

    def test_asctime(self) -> None:
        """
        The asctime form, with its space-padded day, parses.
        """
        self.assertEqual(parseHTTPDate("Sun Nov  6 08:49:37 1994"), EXAMPLE)

    def test_lenientZones(self) -> None:
        """
        "UTC" and "+0000", which some clients send, are the same as GMT;
        surrounding whitespace and case are tolerated.
        """
        for value in (
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "  Sun, 6 NOV 1994 08:49:37 GMT ",
        ):
            self.assertEqual(parseHTTPDate(value), EXAMPLE, value)

    def test_garbage(self) -> None:
        """
        Anything else is C{None}, so that callers ignore the header.
        """
        for value in (
            "",
            "yesterday",
            "784111777",
            "1994-11-06T08:49:37Z",
            "Sun, 06 Nov 1994 08:49:37 +0100",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 GMT trailing",
            "Sun, ０6 Nov 1994 08:49:37 GMT",
        ):
            self.assertIsNone(parseHTTPDate(value), value)

    @given(st.text())
    def test_neverRaises(self, value: str) -> None:
        """
        Any text gives a float or C{None}, never an exception.
        """
        result = parseHTTPDate(value)
        self.assertTrue(result is None or isinstance(result, float))

    @given(times)
    def test_roundTrip(self, when: int) -> None:
        """
        What L{formatHTTPDate} writes, L{parseHTTPDate} reads back.
        """
        self.assertEqual(parseHTTPDate(formatHTTPDate(when)), float(when))

    @given(times)
    def test_asctimeAgreesWithFixdate(self, when: int) -> None:
        """
        The asctime rendering of a time parses to the same time.
        """
        value = datetime.fromtimestamp(when, timezone.utc).strftime(
            "%a %b %e %H:%M:%S %Y"
        )
        self.assertEqual(parseHTTPDate(value), float(when))


class FormatTests(SynchronousTestCase):
    """
    L{formatHTTPDate} and L{formatISO8601} write one-second S3 timestamps.
    """

    def test_httpDate(self) -> None:
        """
        The HTTP form is an IMF-fixdate in GMT.
        """
        self.assertEqual(formatHTTPDate(EXAMPLE), "Sun, 06 Nov 1994 08:49:37 GMT")

    def test_httpDateNow(self) -> None:
        """
        The Date header of now is formatted once a second and follows the
        clock, backwards too.
        """
        self.assertEqual(httpDateNow(EXAMPLE + 0.2), b"Sun, 06 Nov 1994 08:49:37 GMT")
        self.assertIs(httpDateNow(EXAMPLE + 0.9), httpDateNow(EXAMPLE))
        self.assertEqual(httpDateNow(EXAMPLE + 1), b"Sun, 06 Nov 1994 08:49:38 GMT")
        self.assertEqual(httpDateNow(EXAMPLE), b"Sun, 06 Nov 1994 08:49:37 GMT")

    def test_httpDateTruncates(self) -> None:
        """
        Fractions of a second are dropped, never rounded up.
        """
        self.assertEqual(
            formatHTTPDate(EXAMPLE + 0.999), "Sun, 06 Nov 1994 08:49:37 GMT"
        )

    def test_iso8601(self) -> None:
        """
        The XML form keeps milliseconds (floored), so listings order writes
        within one second the way they happened.
        """
        self.assertEqual(formatISO8601(EXAMPLE), "1994-11-06T08:49:37.000Z")
        self.assertEqual(formatISO8601(EXAMPLE + 0.5), "1994-11-06T08:49:37.500Z")
        self.assertEqual(formatISO8601(EXAMPLE + 0.9999), "1994-11-06T08:49:37.999Z")

    def test_wholeSeconds(self) -> None:
        """
        L{wholeSeconds} is the floor.
        """
        self.assertEqual(wholeSeconds(10.9), 10)
        self.assertEqual(wholeSeconds(10.0), 10)

    @given(times)
    def test_matchesEmailUtils(self, when: int) -> None:
        """
        The HTTP form agrees with the standard library's rendering.
        """
        self.assertEqual(
            formatHTTPDate(when), email.utils.formatdate(when, usegmt=True)
        )

    @given(st.floats(min_value=0, max_value=253402300799, allow_nan=False))
    def test_formsAgree(self, when: float) -> None:
        """
        Both forms name the same second, so listings and HEAD agree.
        """
        iso = datetime.strptime(formatISO8601(when)[:19], "%Y-%m-%dT%H:%M:%S")
        http = datetime.strptime(formatHTTPDate(when), "%a, %d %b %Y %H:%M:%S GMT")
        self.assertEqual(iso, http)


_MONTH_INDEX = {"Jan": 1, "Feb": 2, "Apr": 4, "Dec": 12}


class ClientDateTests(SynchronousTestCase):
    """
    Dates a client sends never make the parsers raise: a year C{calendar}
    cannot represent, a day not in its month or another script's digits is
    no date at all.
    """

    def test_yearZero(self) -> None:
        """
        Year 0000 is not a date (C{calendar} raised ValueError for it, a
        traceback for C{If-Modified-Since: Sat, 01 Jan 0000 00:00:00 GMT}).
        """
        for value in (
            "Sat, 01 Jan 0000 00:00:00 GMT",
            "Sat Jan  1 00:00:00 0000",
        ):
            self.assertIsNone(parseHTTPDate(value), value)

    def test_extremeYears(self) -> None:
        """
        Years 1 and 9999 are dates; five-digit years are not.
        """
        self.assertEqual(
            parseHTTPDate("Mon, 01 Jan 0001 00:00:00 GMT"),
            datetime(1, 1, 1, tzinfo=timezone.utc).timestamp(),
        )
        self.assertEqual(parseHTTPDate("Fri, 31 Dec 9999 23:59:59 GMT"), float(MAX_TIMESTAMP))
        self.assertIsNone(parseHTTPDate("Sat, 01 Jan 10000 00:00:00 GMT"))

    def test_impossibleDays(self) -> None:
        """
        Day 0, day 99 and 29 February of a common year are not dates.
        """
        for value in (
            "Sat, 00 Jan 2000 00:00:00 GMT",
            "Sat, 99 Jan 2000 00:00:00 GMT",
            "Sat, 29 Feb 2001 00:00:00 GMT",
        ):
            self.assertIsNone(parseHTTPDate(value), value)
        self.assertIsNotNone(parseHTTPDate("Tue, 29 Feb 2000 00:00:00 GMT"))

    def test_utcTimestamp(self) -> None:
        """
        L{utcTimestamp} is C{None} outside the calendar and POSIX time
        inside it, a leap second being the next minute's first.
        """
        self.assertEqual(utcTimestamp(1994, 11, 6, 8, 49, 37), EXAMPLE)
        self.assertEqual(utcTimestamp(1994, 11, 6, 8, 48, 60), EXAMPLE - 37)
        for fields in [
            (0, 1, 1, 0, 0, 0),
            (10000, 1, 1, 0, 0, 0),
            (2000, 0, 1, 0, 0, 0),
            (2000, 13, 1, 0, 0, 0),
            (2000, 4, 31, 0, 0, 0),
            (2000, 1, 1, 24, 0, 0),
            (2000, 1, 1, 0, 60, 0),
            (2000, 1, 1, 0, 0, 61),
            (2000, 1, 1, -1, 0, 0),
        ]:
            self.assertIsNone(utcTimestamp(*fields), fields)

    def test_amzDate(self) -> None:
        """
        C{x-amz-date} is ASCII digits only, exactly, of a real day; anything
        else is ValueError (which the signers answer with their own error).
        """
        self.assertEqual(parseAmzDate("19941106T084937Z"), EXAMPLE)
        for value in (
            "19941106T084937Z\n",
            "٢٠١٣٠٥٢٤T000000Z",
            "２０１３0524T000000Z",
            "00000101T000000Z",
            "20010229T000000Z",
            "20000431T000000Z",
            "20000101T240000Z",
        ):
            self.assertRaises(ValueError, parseAmzDate, value)

    @given(
        st.sampled_from(["Sat, {d} {m} {y} {H}:{M}:{S} GMT", "Saturday, {d}-{m}-{y} {H}:{M}:{S} GMT", "Sat {m} {d} {H}:{M}:{S} {y}"]),
        st.sampled_from(["Jan", "Feb", "Apr", "Dec", "Foo"]),
        st.lists(
            st.one_of(
                st.integers(min_value=0, max_value=99999).map(str),
                st.integers(min_value=0, max_value=99).map("{:02d}".format),
                st.sampled_from(["٣", "²", "０", "-1", "1_0", "9" * 40]),
            ),
            min_size=5,
            max_size=5,
        ),
    )
    def test_dateShapedNeverRaises(self, shape: str, month: str, fields: list) -> None:
        """
        Any numbers in the fields of a date-shaped value give C{None} or the
        time C{datetime} gives for them, never an exception.
        """
        day, year, hour, minute, second = fields
        value = shape.format(d=day, m=month, y=year, H=hour, M=minute, S=second)
        result = parseHTTPDate(value)
        if result is not None:
            self.assertTrue(0 <= int(second) <= 60)
            moment = datetime(
                int(year) if len(year) == 4 else (2000 + int(year) if int(year) < 70 else 1900 + int(year)),
                _MONTH_INDEX[month], int(day), int(hour), int(minute), min(int(second), 59), tzinfo=timezone.utc,
            )
            self.assertEqual(result, moment.timestamp() + (int(second) == 60))

    @given(st.text(alphabet="0123456789TZ٣２\n ", max_size=20))
    def test_amzDateOnlyValueError(self, value: str) -> None:
        """
        L{parseAmzDate} of any text returns a float or raises ValueError.
        """
        try:
            result = parseAmzDate(value)
        except ValueError:
            pass
        else:
            self.assertIsInstance(result, float)
