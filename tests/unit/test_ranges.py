"""
Tests for L{fasterstore.s3.ranges}.
"""

from __future__ import annotations

from typing import Optional, Tuple

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.s3.ranges import contentRange, parseRange
from tests.unit.test_resource import ResourceTestCase

sizes = st.integers(min_value=0, max_value=2**40)
positions = st.integers(min_value=0, max_value=2**41)
# Empty, ordinary, or runs of one digit up to thousands long.
positionTexts = st.one_of(
    st.just(""),
    st.integers(min_value=0, max_value=2**80).map(str),
    st.tuples(st.sampled_from("0123456789"), st.integers(min_value=1, max_value=6000)).map(lambda t: t[0] * t[1]),
)


class ParseRangeTests(SynchronousTestCase):
    """
    L{parseRange} serves one range, ignores what S3 ignores and refuses
    what S3 refuses.
    """

    def assertInvalidRange(self, header: str, size: int) -> S3Error:
        """
        C{header} is refused with 416 for an object of C{size} bytes.
        """
        error = self.assertRaises(S3Error, parseRange, header, size)
        self.assertEqual(error.code, "InvalidRange")
        self.assertEqual(error.status, 416)
        return error

    def test_noHeader(self) -> None:
        """
        Without a header the whole object is served.
        """
        self.assertIsNone(parseRange(None, 10))

    def test_closed(self) -> None:
        """
        C{bytes=a-b} is the inclusive range, as a half-open interval.
        """
        self.assertEqual(parseRange("bytes=0-0", 10), (0, 1))
        self.assertEqual(parseRange("bytes=2-5", 10), (2, 6))
        self.assertEqual(parseRange("bytes=0-9", 10), (0, 10))

    def test_endClamped(self) -> None:
        """
        A last byte past the end is clamped to the last byte.
        """
        self.assertEqual(parseRange("bytes=5-100", 10), (5, 10))
        self.assertEqual(parseRange("bytes=0-99999999999999999999999", 10), (0, 10))

    def test_open(self) -> None:
        """
        C{bytes=a-} runs to the end.
        """
        self.assertEqual(parseRange("bytes=4-", 10), (4, 10))
        self.assertEqual(parseRange("bytes=9-", 10), (9, 10))

    def test_suffix(self) -> None:
        """
        C{bytes=-n} is the last C{n} bytes, or all of a shorter object.
        """
        self.assertEqual(parseRange("bytes=-3", 10), (7, 10))
        self.assertEqual(parseRange("bytes=-10", 10), (0, 10))
        self.assertEqual(parseRange("bytes=-50", 10), (0, 10))

    def test_unitCaseInsensitive(self) -> None:
        """
        The range unit is case-insensitive (RFC 9110) and surrounding
        whitespace is dropped.
        """
        self.assertEqual(parseRange(" Bytes=1-2 ", 10), (1, 3))

    def test_ignored(self) -> None:
        """
        Malformed or multi-range headers are ignored: whole object, 200.
        """
        for header in (
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=-1-2",
            "bytes= 1-2",
            "bytes=1 -2",
            "bytes=0-1,3-4",
            "bytes=0-1, 3-4",
            "items=0-1",
            "bytes=１-2",
        ):
            self.assertIsNone(parseRange(header, 10), header)

    def test_startPastEnd(self) -> None:
        """
        A first byte at or past the end is unsatisfiable; the error carries
        what AWS reports and the 416 Content-Range.
        """
        error = self.assertInvalidRange("bytes=10-20", 10)
        self.assertEqual(
            error.extra, {"RangeRequested": "bytes=10-20", "ActualObjectSize": "10"}
        )
        self.assertEqual(error.headers, {"Content-Range": "bytes */10"})
        self.assertInvalidRange("bytes=11-", 10)

    def test_emptySuffix(self) -> None:
        """
        C{bytes=-0} selects nothing and is refused.
        """
        self.assertInvalidRange("bytes=-0", 10)

    def test_backwards(self) -> None:
        """
        A last byte before the first is refused, as S3 (and MinIO) do.
        """
        self.assertInvalidRange("bytes=5-3", 10)

    def test_emptyObject(self) -> None:
        """
        No range can be served from an empty object.
        """
        for header in ("bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0"):
            self.assertInvalidRange(header, 0)

    def test_emptyObjectIgnoredHeader(self) -> None:
        """
        A header S3 ignores is still ignored on an empty object.
        """
        self.assertIsNone(parseRange("bytes=0-1,2-3", 0))

    @given(st.text(), sizes)
    def test_anyText(self, header: str, size: int) -> None:
        """
        Any header gives C{None}, a valid interval, or C{InvalidRange}.
        """
        try:
            result = parseRange(header, size)
        except S3Error as e:
            self.assertEqual(e.code, "InvalidRange")
        else:
            if result is not None:
                start, end = result
                self.assertTrue(0 <= start < end <= size)

    @given(positions, st.one_of(st.none(), positions), sizes)
    def test_model(self, first: int, last: Optional[int], size: int) -> None:
        """
        C{bytes=first-[last]} agrees with a direct model of the rules.
        """
        header = f"bytes={first}-{'' if last is None else last}"
        expected: Optional[Tuple[int, int]]
        if (last is not None and last < first) or first >= size:
            self.assertInvalidRange(header, size)
            return
        expected = (first, size if last is None else min(last + 1, size))
        self.assertEqual(parseRange(header, size), expected)

    @given(positions, sizes)
    def test_suffixModel(self, length: int, size: int) -> None:
        """
        C{bytes=-n} is the last C{min(n, size)} bytes, refused only when
        nothing could be selected.
        """
        header = f"bytes=-{length}"
        if length == 0 or size == 0:
            self.assertInvalidRange(header, size)
        else:
            self.assertEqual(parseRange(header, size), (size - min(length, size), size))


class ContentRangeTests(SynchronousTestCase):
    """
    L{contentRange} renders the 206 header.
    """

    def test_format(self) -> None:
        """
        The interval is written inclusive, with the full size.
        """
        self.assertEqual(contentRange(0, 1, 10), "bytes 0-0/10")
        self.assertEqual(contentRange(2, 10, 10), "bytes 2-9/10")

    @given(positions, positions, sizes)
    def test_roundTrip(self, a: int, b: int, size: int) -> None:
        """
        Asking for the range a Content-Range describes gives it back.
        """
        size = max(size, 1)
        start = min(a, size - 1)
        end = min(start + 1 + b, size)
        value = contentRange(start, end, size)
        inclusive = value.split(" ")[1].split("/")[0]
        self.assertEqual(parseRange("bytes=" + inclusive, size), (start, end))


class StrictPositionTests(SynchronousTestCase):
    """
    Positions are read by the strict number parser: any length, ASCII only,
    never a traceback.
    """

    def test_hugePositions(self) -> None:
        """
        Positions of thousands of digits (which C{int()} refuses with
        ValueError past 4300) are read as past every end: a last byte is
        clamped, a first byte unsatisfiable, a suffix the whole object.
        """
        huge = "9" * 5000
        self.assertEqual(parseRange("bytes=0-" + huge, 10), (0, 10))
        self.assertEqual(parseRange("bytes=-" + huge, 10), (0, 10))
        for header in ("bytes=" + huge + "-", "bytes=" + huge + "-" + huge, "bytes=" + huge + "-5"):
            error = self.assertRaises(S3Error, parseRange, header, 10)
            self.assertEqual(error.code, "InvalidRange")
        self.assertEqual(parseRange("bytes=" + "0" * 5000 + "2-" + "0" * 5000 + "3", 10), (2, 4))

    def test_asciiUnit(self) -> None:
        """
        The unit is matched ASCII case-insensitively only: C{byteſ} (long
        s, which Unicode case folding equates with C{s}) is not C{bytes}.
        """
        self.assertIsNone(parseRange("byteſ=0-1", 10))
        self.assertIsNone(parseRange("bytes=٠-١", 10))

    @given(positionTexts, positionTexts, sizes)
    def test_anyPositions(self, first: str, last: str, size: int) -> None:
        """
        Positions of any length give C{None}, a valid interval or
        C{InvalidRange}.
        """
        try:
            result = parseRange(f"bytes={first}-{last}", size)
        except S3Error as e:
            self.assertEqual(e.code, "InvalidRange")
        else:
            if result is not None:
                start, end = result
                self.assertTrue(0 <= start < end <= size)


class RangeRequestTests(ResourceTestCase):
    """A GET with a huge Range position through the real resource tree."""

    def test_hugeRangeServed(self) -> None:
        """
        C{bytes=0-<5000 nines>} is the whole object as a 206 (it was a 500),
        and nothing is logged as a failure.
        """
        self.createBucket()
        self.request("PUT", "/bucket/k", b"0123456789")
        status, headers, body = self.request("GET", "/bucket/k", headers={"Range": "bytes=0-" + "9" * 5000})
        self.assertEqual((status, body, headers["content-range"]), (206, b"0123456789", "bytes 0-9/10"))
        self.assertError(self.request("GET", "/bucket/k", headers={"Range": "bytes=" + "9" * 5000 + "-"}), 416, "InvalidRange")
        self.assertEqual(self.flushLoggedErrors(), [])
