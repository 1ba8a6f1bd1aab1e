"""
Tests for L{fasterstore.http.dates}.
"""

from __future__ import annotations

import email.utils
from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.http.dates import (
    formatHTTPDate,
    formatISO8601,
    parseHTTPDate,
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
