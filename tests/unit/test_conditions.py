"""
Tests for L{fasterstore.s3.conditions}.
"""

from __future__ import annotations

from typing import Dict, Optional

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectRecord
from fasterstore.s3.conditions import (
    NOT_MODIFIED,
    checkGetConditions,
    checkPutConditions,
    parseETagList,
)
from fasterstore.http.dates import formatHTTPDate
from tests.unit.test_resource import ResourceTestCase

ETAG = "d41d8cd98f00b204e9800998ecf8427e"
OTHER = "0cc175b9c0f1b6a831c399e269772661"
# Object modified at T + 0.5: its Last-Modified names second T.
T = 1_000_000_000
MODIFIED = T + 0.5
BEFORE = formatHTTPDate(T - 1)
AT = formatHTTPDate(T)
AFTER = formatHTTPDate(T + 1)

RECORD = ObjectRecord(
    bucket="b", key="k", size=0, etag=ETAG, blob="x", modified=MODIFIED
)

etagValues = st.text(
    alphabet=st.characters(
        min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='",'
    ),
    min_size=1,
)


def get(**headers: str) -> Optional[int]:
    """
    Evaluate GET conditions given as keyword arguments (C{if_match=...}).
    """
    return checkGetConditions(
        {name.replace("_", "-"): value for name, value in headers.items()},
        ETAG,
        MODIFIED,
    )


class ParseETagListTests(SynchronousTestCase):
    """
    L{parseETagList} reads entity-tag lists as clients send them.
    """

    def test_star(self) -> None:
        """
        C{*} is reported as C{None}.
        """
        self.assertIsNone(parseETagList(" * "))

    def test_forms(self) -> None:
        """
        Quoted, unquoted and weak tags, with commas inside quotes.
        """
        self.assertEqual(
            parseETagList('"a", b ,W/"c",  "d,e",W/f,""'),
            [(False, "a"), (False, "b"), (True, "c"), (False, "d,e"), (True, "f"), (False, "")],
        )

    def test_unterminated(self) -> None:
        """
        An unterminated quote runs to the end rather than failing.
        """
        self.assertEqual(parseETagList('"abc'), [(False, "abc")])

    @given(st.lists(st.tuples(st.booleans(), etagValues, st.booleans()), min_size=1))
    def test_roundTrip(self, tags: list) -> None:
        """
        Any list of tags, each quoted or not and weak or not, parses back
        (but a lone unquoted C{*}, which is the wildcard).
        """
        value = ", ".join(
            ("W/" if weak else "") + (f'"{tag}"' if quoted else tag)
            for weak, tag, quoted in tags
        )
        assume(value != "*")
        self.assertEqual(parseETagList(value), [(weak, tag) for weak, tag, _ in tags])

    @given(st.text())
    def test_anyText(self, value: str) -> None:
        """
        Any text parses without raising.
        """
        parseETagList(value)


class GetConditionTests(SynchronousTestCase):
    """
    L{checkGetConditions} follows RFC 9110 precedence as S3 does.
    """

    def assertPreconditionFailed(self, condition: str, **headers: str) -> None:
        """
        The headers give 412 naming C{condition}.
        """
        error = self.assertRaises(S3Error, get, **headers)
        self.assertEqual((error.code, error.status), ("PreconditionFailed", 412))
        self.assertEqual(error.extra, {"Condition": condition})

    def test_none(self) -> None:
        """
        No conditions: serve.
        """
        self.assertIsNone(get())

    def test_ifMatch(self) -> None:
        """
        If-Match succeeds on a strong match in any spelling S3 accepts.
        """
        for value in (f'"{ETAG}"', ETAG, f'"{OTHER}", "{ETAG}"', "*", f"{OTHER},{ETAG}"):
            self.assertIsNone(get(if_match=value), value)

    def test_ifMatchFails(self) -> None:
        """
        If-Match fails with 412 on a mismatch or a weak tag.
        """
        for value in (f'"{OTHER}"', f'W/"{ETAG}"', '""'):
            self.assertPreconditionFailed("If-Match", if_match=value)

    def test_ifUnmodifiedSince(self) -> None:
        """
        If-Unmodified-Since holds at or after Last-Modified, compared to
        the second.
        """
        self.assertIsNone(get(if_unmodified_since=AT))
        self.assertIsNone(get(if_unmodified_since=AFTER))
        self.assertPreconditionFailed("If-Unmodified-Since", if_unmodified_since=BEFORE)

    def test_ifMatchOverridesIfUnmodifiedSince(self) -> None:
        """
        If-Match true and If-Unmodified-Since false: 200, per the S3 docs.
        """
        self.assertIsNone(get(if_match=ETAG, if_unmodified_since=BEFORE))

    def test_ifMatchFailsFirst(self) -> None:
        """
        A failing If-Match is reported even when If-Unmodified-Since holds.
        """
        self.assertPreconditionFailed("If-Match", if_match=OTHER, if_unmodified_since=AFTER)

    def test_ifNoneMatch(self) -> None:
        """
        If-None-Match gives 304 on a weak match and serves otherwise.
        """
        for value in (f'"{ETAG}"', ETAG, f'W/"{ETAG}"', "*", f'"{OTHER}", W/"{ETAG}"'):
            self.assertEqual(get(if_none_match=value), NOT_MODIFIED, value)
        self.assertIsNone(get(if_none_match=f'"{OTHER}"'))

    def test_ifModifiedSince(self) -> None:
        """
        If-Modified-Since gives 304 unless modified after the date, to the
        second: echoing Last-Modified gives 304.
        """
        self.assertEqual(get(if_modified_since=AT), NOT_MODIFIED)
        self.assertEqual(get(if_modified_since=AFTER), NOT_MODIFIED)
        self.assertIsNone(get(if_modified_since=BEFORE))

    def test_ifNoneMatchFalseBeatsIfModifiedSince(self) -> None:
        """
        If-None-Match false and If-Modified-Since true: 304, per the S3
        docs.
        """
        self.assertEqual(
            get(if_none_match=ETAG, if_modified_since=BEFORE), NOT_MODIFIED
        )

    def test_ifNoneMatchTrueOverridesIfModifiedSince(self) -> None:
        """
        If-None-Match true: If-Modified-Since is not evaluated (RFC 9110).
        """
        self.assertIsNone(get(if_none_match=OTHER, if_modified_since=AFTER))

    def test_preconditionFailedBeats304(self) -> None:
        """
        412 conditions are evaluated before 304 ones.
        """
        self.assertPreconditionFailed("If-Match", if_match=OTHER, if_none_match=ETAG)
        self.assertPreconditionFailed(
            "If-Unmodified-Since", if_unmodified_since=BEFORE, if_modified_since=AFTER
        )

    def test_badDatesIgnored(self) -> None:
        """
        Unparseable dates are ignored.
        """
        self.assertIsNone(get(if_unmodified_since="yesterday"))
        self.assertIsNone(get(if_modified_since="tomorrow"))

    def test_emptyHeadersIgnored(self) -> None:
        """
        Empty headers count as absent.
        """
        self.assertIsNone(get(if_match="", if_none_match=" ", if_modified_since=""))

    @given(
        st.one_of(st.none(), st.sampled_from([ETAG, OTHER, "*", f'W/"{ETAG}"'])),
        st.one_of(st.none(), st.integers(T - 3, T + 3)),
        st.one_of(st.none(), st.sampled_from([ETAG, OTHER, "*", f'W/"{ETAG}"'])),
        st.one_of(st.none(), st.integers(T - 3, T + 3)),
    )
    def test_model(
        self,
        ifMatch: Optional[str],
        unmodifiedSince: Optional[int],
        ifNoneMatch: Optional[str],
        modifiedSince: Optional[int],
    ) -> None:
        """
        Any combination agrees with RFC 9110 section 13.2.2 written out.
        """
        headers: Dict[str, str] = {}
        if ifMatch is not None:
            headers["if-match"] = ifMatch
        if unmodifiedSince is not None:
            headers["if-unmodified-since"] = formatHTTPDate(unmodifiedSince)
        if ifNoneMatch is not None:
            headers["if-none-match"] = ifNoneMatch
        if modifiedSince is not None:
            headers["if-modified-since"] = formatHTTPDate(modifiedSince)

        expected: object = None
        if ifMatch is not None:
            if ifMatch not in (ETAG, "*"):
                expected = "If-Match"
        elif unmodifiedSince is not None and T > unmodifiedSince:
            expected = "If-Unmodified-Since"
        if expected is None:
            if ifNoneMatch is not None:
                if ifNoneMatch != OTHER:
                    expected = NOT_MODIFIED
            elif modifiedSince is not None and T <= modifiedSince:
                expected = NOT_MODIFIED

        if isinstance(expected, str):
            error = self.assertRaises(S3Error, checkGetConditions, headers, ETAG, MODIFIED)
            self.assertEqual(error.extra["Condition"], expected)
        else:
            self.assertEqual(checkGetConditions(headers, ETAG, MODIFIED), expected)


class PutConditionTests(SynchronousTestCase):
    """
    L{checkPutConditions} implements S3 conditional writes.
    """

    def assertS3Error(self, code: str, headers: Dict[str, str], current: Optional[ObjectRecord]) -> S3Error:
        """
        The write is refused with C{code}.
        """
        error = self.assertRaises(S3Error, checkPutConditions, headers, current)
        self.assertEqual(error.code, code)
        return error

    def test_unconditional(self) -> None:
        """
        Without conditions any write proceeds.
        """
        checkPutConditions({}, None)
        checkPutConditions({}, RECORD)

    def test_ifNoneMatchStar(self) -> None:
        """
        C{If-None-Match: *} creates only.
        """
        checkPutConditions({"if-none-match": "*"}, None)
        error = self.assertS3Error("PreconditionFailed", {"if-none-match": "*"}, RECORD)
        self.assertEqual(error.extra, {"Condition": "If-None-Match"})

    def test_ifNoneMatchETag(self) -> None:
        """
        An If-None-Match ETag list refuses a write only when it names the
        current version (as RGW and MinIO do; AWS answers 501).
        """
        self.assertIsNone(checkPutConditions({"if-none-match": f'"{OTHER}"'}, RECORD))
        self.assertIsNone(checkPutConditions({"if-none-match": ETAG}, None))
        error = self.assertS3Error("PreconditionFailed", {"if-none-match": f'"{OTHER}", "{ETAG}"'}, RECORD)
        self.assertEqual(error.status, 412)

    def test_bothHeaders(self) -> None:
        """
        If-Match with If-None-Match is not implemented, as on AWS.
        """
        self.assertS3Error(
            "NotImplemented", {"if-none-match": "*", "if-match": ETAG}, RECORD
        )

    def test_ifMatch(self) -> None:
        """
        C{If-Match} replaces only the object with that ETag, quoted or not.
        """
        checkPutConditions({"if-match": f'"{ETAG}"'}, RECORD)
        checkPutConditions({"if-match": ETAG}, RECORD)
        error = self.assertS3Error("PreconditionFailed", {"if-match": OTHER}, RECORD)
        self.assertEqual(error.extra, {"Condition": "If-Match"})
        self.assertS3Error("PreconditionFailed", {"if-match": f'W/"{ETAG}"'}, RECORD)

    def test_ifMatchMissing(self) -> None:
        """
        C{If-Match} on a missing object is 404 NoSuchKey.
        """
        error = self.assertS3Error("NoSuchKey", {"if-match": ETAG}, None)
        self.assertEqual(error.status, 404)

    def test_readHeadersIgnored(self) -> None:
        """
        Date conditions do not apply to writes.
        """
        checkPutConditions(
            {"if-modified-since": AFTER, "if-unmodified-since": BEFORE}, RECORD
        )


#: Date-shaped values that are no date: RFC 9110 says to ignore them.
IMPOSSIBLE_DATES = [
    "Sat, 01 Jan 0000 00:00:00 GMT",
    "Sat, 99 Jan 2000 00:00:00 GMT",
    "Thu, 29 Feb 2001 00:00:00 GMT",
    "Sat, 01 Jan 10000 00:00:00 GMT",
    "Sat, 01 Jan 2000 99:00:00 GMT",
    "Sat, 01 Jan 99999999999999999999 00:00:00 GMT",
]


class ImpossibleDateTests(SynchronousTestCase):
    """
    A date-shaped condition that names no real time is ignored, like any
    other invalid date, rather than raising.
    """

    def test_ignored(self) -> None:
        """
        Year 0000 (which made C{calendar} raise), day 99, 29 February of a
        common year and the like are ignored by both date conditions.
        """
        for value in IMPOSSIBLE_DATES:
            self.assertIsNone(get(if_modified_since=value), value)
            self.assertIsNone(get(if_unmodified_since=value), value)


class ImpossibleDateRequestTests(ResourceTestCase):
    """
    Impossible dates in the conditional headers of real requests are
    ignored: the object is served (or copied), nothing logged as a failure.
    """

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        self.assertEqual(self.request("PUT", "/bucket/k", b"hello")[0], 200)

    def tearDown(self) -> None:
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_get(self) -> None:
        """GET and HEAD with If-Modified-Since / If-Unmodified-Since of year 0000 are 200."""
        for value in IMPOSSIBLE_DATES:
            for name in ("If-Modified-Since", "If-Unmodified-Since"):
                status, _, body = self.request("GET", "/bucket/k", headers={name: value})
                self.assertEqual((status, body), (200, b"hello"), (name, value))
                self.assertEqual(self.request("HEAD", "/bucket/k", headers={name: value})[0], 200, (name, value))

    def test_copy(self) -> None:
        """CopyObject with x-amz-copy-source-if-(un)modified-since of year 0000 copies."""
        for value in IMPOSSIBLE_DATES:
            for name in ("x-amz-copy-source-if-modified-since", "x-amz-copy-source-if-unmodified-since"):
                status, _, body = self.request("PUT", "/bucket/copy", headers={"x-amz-copy-source": "bucket/k", name: value})
                self.assertEqual(status, 200, (name, value, body))
