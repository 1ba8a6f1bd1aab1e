"""
Tests for L{fasterstore.s3.lifecycle}: validation of every error, the
stored form and the GET document, evaluation as a pure function (with a
hypothesis model), and Put/Get/DeleteBucketLifecycleConfiguration and
C{x-amz-expiration} through the real resource, signed by botocore.
"""

from __future__ import annotations

import base64
import calendar
import datetime
import hashlib
import math
from typing import Any, Dict, List, Optional, Tuple
from xml.etree import ElementTree

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.http.dates import formatHTTPDate
from fasterstore.s3 import lifecycle
from fasterstore.s3.lifecycle import (
    AND, EXPIRE_CURRENT, EXPIRE_NONCURRENT, GREATER, LEGACY, NEEDS_TAGS, REMOVE_MARKER, Decision, Filter, Rule,
    Version, evaluate, expiration, expiryTime, lifecycleConfiguration, parseDate, parseLifecycleConfiguration,
    rulesFromJSON, rulesToJSON,
)
from tests.unit.test_batch import BotoTestCase
from tests.unit.test_multipart import completeDocument
from tests.unit.test_resource import NS, OTHER, ResourceTestCase

DAY = 86400


def day(year: int, month: int, dayOfMonth: int, hour: int = 0, minute: int = 0) -> float:
    """A UTC time as seconds since the epoch."""
    return float(calendar.timegm((year, month, dayOfMonth, hour, minute, 0)))


def document(*rules: str) -> bytes:
    """A LifecycleConfiguration holding these Rule bodies."""
    inner = "".join(f"<Rule>{rule}</Rule>" for rule in rules)
    return f'<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</LifecycleConfiguration>'.encode()


def rule(body: str = "<Expiration><Days>1</Days></Expiration>", filt: str = "<Filter/>", status: str = "Enabled",
         ruleId: Optional[str] = "r") -> str:
    """One Rule body."""
    idPart = f"<ID>{ruleId}</ID>" if ruleId is not None else ""
    return f"{idPart}{filt}<Status>{status}</Status>{body}"


def md5(body: bytes) -> Dict[str, str]:
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


class ValidationTests(SynchronousTestCase):
    """Every refusal of PutBucketLifecycleConfiguration, as AWS answers it."""

    def code(self, body: bytes) -> Tuple[str, str]:
        e = self.assertRaises(S3Error, parseLifecycleConfiguration, body)
        return e.code, e.message

    def assertRefused(self, body: bytes, code: str, words: str = "") -> None:
        got, message = self.code(body)
        self.assertEqual(got, code, message)
        self.assertIn(words, message)

    def test_malformed(self) -> None:
        """Documents that are not lifecycle configurations: MalformedXML."""
        for body in [
            b"<nope", b"", b"<Other/>", document(),
            b"<LifecycleConfiguration><Foo/></LifecycleConfiguration>",
            document(rule(status="enabled")), document(rule(status="")), document("<ID>x</ID><Filter/>"
                                                                                   "<Expiration><Days>1</Days></Expiration>"),
            document(rule(filt="")),  # neither Filter nor Prefix
            document(rule(filt="<Filter/><Prefix>a</Prefix>")),  # both
            document(rule(filt="<Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter>")),
            document(rule(filt="<Filter><And><Prefix>a</Prefix></And></Filter>")),  # an And of one
            document(rule(filt="<Filter><Tag><Key>k</Key></Tag></Filter>")),  # a tag without Value
            document(rule(filt="<Filter><Bogus/></Filter>")),
            document(rule(filt="<Filter><ObjectSizeGreaterThan>big</ObjectSizeGreaterThan></Filter>")),
            document(rule("<Expiration/>")),
            document(rule("<Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>")),
            document(rule("<Expiration><Days>one</Days></Expiration>")),
            document(rule("<Expiration><Date>yesterday</Date></Expiration>")),
            document(rule("<Expiration><Date>2030-02-30T00:00:00Z</Date></Expiration>")),
            document(rule("<Expiration><ExpiredObjectDeleteMarker>yes</ExpiredObjectDeleteMarker></Expiration>")),
            document(rule("<Expiration><Days>1</Days></Expiration><Expiration><Days>2</Days></Expiration>")),
            document(rule("<NoncurrentVersionExpiration><NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>")),
            document(rule("<AbortIncompleteMultipartUpload/>")),
            document(rule("<Expiration><Days>1</Days><Hours>2</Hours></Expiration>")),
            document(rule("<Unknown/><Expiration><Days>1</Days></Expiration>")),
        ]:
            self.assertRefused(body, "MalformedXML")

    def test_outOfRange(self) -> None:
        """Values out of range: InvalidArgument, with AWS's words."""
        cases = [
            (rule("<Expiration><Days>0</Days></Expiration>"), "'Days'"),
            (rule("<Expiration><Days>-3</Days></Expiration>"), "'Days'"),
            (rule("<Expiration><Date>2030-01-01T12:00:00Z</Date></Expiration>"), "midnight GMT"),
            (rule("<Expiration><Date>2030-01-01T00:00:00+01:00</Date></Expiration>"), "midnight GMT"),
            (rule("<Expiration><Date>2030-01-01T00:00:00.5Z</Date></Expiration>"), "midnight GMT"),
            (rule("<Expiration><Days>3</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"),
             "ExpiredObjectDeleteMarker cannot be specified with Days or Date"),
            (rule("<NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays></NoncurrentVersionExpiration>"),
             "'NoncurrentDays'"),
            (rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
                  "<NewerNoncurrentVersions>101</NewerNoncurrentVersions></NoncurrentVersionExpiration>"), "at most 100"),
            (rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
                  "<NewerNoncurrentVersions>0</NewerNoncurrentVersions></NoncurrentVersionExpiration>"), "at most 100"),
            (rule("<AbortIncompleteMultipartUpload><DaysAfterInitiation>0</DaysAfterInitiation></AbortIncompleteMultipartUpload>"),
             "'DaysAfterInitiation'"),
            (rule(ruleId="x" * 256), "255"),
            (rule(filt="<Filter><ObjectSizeLessThan>-1</ObjectSizeLessThan></Filter>"), "non-negative"),
        ]
        for body, words in cases:
            self.assertRefused(document(body), "InvalidArgument", words)
        self.assertRefused(document(rule(ruleId="same"), rule(ruleId="same")), "InvalidArgument", "unique")

    def test_conflicts(self) -> None:
        """Combinations AWS refuses: InvalidRequest."""
        tagged = "<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>"
        andTagged = "<Filter><And><Prefix>p</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter>"
        sized = "<Filter><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></Filter>"
        abort = "<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
        marker = "<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
        for body, words in [
            (rule(marker, tagged), "ExpiredObjectDeleteMarker cannot be specified with Tags"),
            (rule(marker, andTagged), "ExpiredObjectDeleteMarker cannot be specified with Tags"),
            (rule(abort, tagged), "AbortIncompleteMultipartUpload cannot be specified with Tags"),
            (rule(abort, sized), "object size"),
            (rule("", "<Filter/>"), "At least one action"),
            (rule(filt="<Filter><And><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan>"
                       "<ObjectSizeLessThan>10</ObjectSizeLessThan></And></Filter>"), "less than"),
        ]:
            self.assertRefused(document(body), "InvalidRequest", words)
        self.assertRefused(document(*[rule(ruleId=f"r{i}") for i in range(1001)]), "InvalidRequest", "1000")

    def test_transitionsRefused(self) -> None:
        """Transitions name a storage tier that does not exist here: InvalidStorageClass, saying so."""
        for body in [
            "<Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>",
            "<NoncurrentVersionTransition><NoncurrentDays>30</NoncurrentDays>"
            "<StorageClass>STANDARD_IA</StorageClass></NoncurrentVersionTransition>",
            "<Expiration><Days>90</Days></Expiration><Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition>",
        ]:
            self.assertRefused(document(rule(body)), "InvalidStorageClass", "no storage tiers")

    def test_badTags(self) -> None:
        """A filter tag AWS would refuse on an object: InvalidTag."""
        for filt in [
            "<Filter><Tag><Key></Key><Value>v</Value></Tag></Filter>",
            "<Filter><Tag><Key>aws:x</Key><Value>v</Value></Tag></Filter>",
            "<Filter><And><Tag><Key>k</Key><Value>1</Value></Tag><Tag><Key>k</Key><Value>2</Value></Tag></And></Filter>",
        ]:
            self.assertRefused(document(rule(filt=filt)), "InvalidTag")

    def test_accepted(self) -> None:
        """Every filter shape and action reads as what it says."""
        rules = parseLifecycleConfiguration(document(
            rule(filt="<Prefix>logs/</Prefix>", ruleId="legacy"),
            rule("<Expiration><Date>2030-01-01T00:00:00.000Z</Date></Expiration>", "<Filter><Prefix>tmp/</Prefix></Filter>", ruleId="date"),
            rule("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
                 "<NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays><NewerNoncurrentVersions>3</NewerNoncurrentVersions>"
                 "</NoncurrentVersionExpiration>", ruleId="versions", status="Disabled"),
            rule("<AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload>",
                 "<Filter><Prefix></Prefix></Filter>", ruleId="uploads"),
            rule(filt="<Filter><And><Prefix>a/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>"
                      "<Tag><Key>j</Key><Value></Value></Tag><ObjectSizeGreaterThan>5</ObjectSizeGreaterThan>"
                      "<ObjectSizeLessThan>500</ObjectSizeLessThan></And></Filter>", ruleId="and"),
            rule(filt="<Filter><ObjectSizeGreaterThan>1048576</ObjectSizeGreaterThan></Filter>", ruleId="big"),
        ))
        self.assertEqual(rules[0], Rule("legacy", True, Filter(LEGACY, prefix="logs/"), days=1))
        self.assertEqual(rules[1].date, day(2030, 1, 1))
        self.assertEqual(rules[1].filter.prefix, "tmp/")
        self.assertEqual(
            (rules[2].enabled, rules[2].expiredObjectDeleteMarker, rules[2].noncurrentDays, rules[2].newerNoncurrentVersions),
            (False, True, 7, 3),
        )
        self.assertEqual(rules[3].abortDays, 2)
        self.assertEqual(rules[4].filter, Filter(AND, "a/", (("k", "v"), ("j", "")), 5, 500))
        self.assertEqual(rules[5].filter, Filter(GREATER, greaterThan=1048576))

    def test_generatedIds(self) -> None:
        """A rule without an ID gets one, never one another rule has."""
        made = iter(["taken", "taken", "fresh"])
        rules = parseLifecycleConfiguration(document(rule(ruleId="taken"), rule(ruleId=None)), newId=lambda: next(made))
        self.assertEqual([r.id for r in rules], ["taken", "fresh"])
        self.assertEqual(len(parseLifecycleConfiguration(document(rule(ruleId=None)))[0].id), 24)

    def test_dates(self) -> None:
        """ISO 8601 dates at midnight UTC in the forms SDKs send."""
        for text in ["2030-01-01", "2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000Z", "2030-01-01T00:00:00+00:00"]:
            self.assertEqual(parseDate(text), day(2030, 1, 1), text)

    def test_storedFormRoundTrip(self) -> None:
        """The JSON kept in the bucket reads back as the same rules, and the GET document parses to them again."""
        rules = parseLifecycleConfiguration(document(
            rule(filt="<Prefix>logs/</Prefix>", ruleId="legacy"),
            rule("<Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>", "<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>", ruleId="t"),
            rule("<Expiration><ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker></Expiration>"
                 "<NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays><NewerNoncurrentVersions>3</NewerNoncurrentVersions>"
                 "</NoncurrentVersionExpiration>"
                 "<AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload>",
                 ruleId="v &amp; &lt;w&gt;", status="Disabled"),
            rule(filt="<Filter><And><Prefix></Prefix><ObjectSizeGreaterThan>0</ObjectSizeGreaterThan>"
                      "<ObjectSizeLessThan>9</ObjectSizeLessThan></And></Filter>", ruleId="and"),
            rule(filt="<Filter><ObjectSizeLessThan>9</ObjectSizeLessThan></Filter>", ruleId="less"),
        ))
        stored = rulesToJSON(rules)
        self.assertEqual(rulesFromJSON(stored), rules)
        self.assertEqual(parseLifecycleConfiguration(lifecycleConfiguration(rules)), rules)


class EvaluationTests(SynchronousTestCase):
    """What a rule does to a version, as a pure function."""

    def rules(self, *bodies: str) -> Tuple[Rule, ...]:
        return parseLifecycleConfiguration(document(*bodies))

    def test_daysRoundToNextMidnight(self) -> None:
        """AWS's example: created 10:30 on 1/15 with 3 days is due 00:00 on 1/19; so is one created at midnight on 1/15."""
        self.assertEqual(expiryTime(day(2014, 1, 15, 10, 30), 3), day(2014, 1, 19))
        self.assertEqual(expiryTime(day(2014, 1, 15), 3), day(2014, 1, 19))
        self.assertEqual(expiryTime(day(2014, 1, 15, 23, 59), 1), day(2014, 1, 17))

    def test_currentExpiration(self) -> None:
        """A current version expires at its due time, not a second before."""
        rules = self.rules(rule())
        v = Version("k", 10, day(2024, 5, 1, 9), True, False)
        self.assertIsNone(evaluate(rules, v, day(2024, 5, 3) - 1))
        self.assertEqual(evaluate(rules, v, day(2024, 5, 3)), Decision(EXPIRE_CURRENT, "r"))

    def test_date(self) -> None:
        """A Date rule expires every matching current version from that date on, whatever its age."""
        rules = self.rules(rule("<Expiration><Date>2024-06-01T00:00:00Z</Date></Expiration>"))
        v = Version("k", 10, day(2024, 5, 31, 23), True, False)
        self.assertIsNone(evaluate(rules, v, day(2024, 6, 1) - 1))
        self.assertEqual(evaluate(rules, v, day(2024, 6, 1)), Decision(EXPIRE_CURRENT, "r"))
        later = Version("k", 10, day(2024, 7, 1), True, False)
        self.assertEqual(evaluate(rules, later, day(2024, 7, 1)), Decision(EXPIRE_CURRENT, "r"))

    def test_disabled(self) -> None:
        """A disabled rule does nothing."""
        v = Version("k", 10, 0.0, True, False)
        self.assertIsNone(evaluate(self.rules(rule(status="Disabled")), v, day(2030, 1, 1)))

    def test_filters(self) -> None:
        """Prefix, tags (all of them), strict size bounds, And of everything."""
        now = day(2030, 1, 1)

        def decided(filt: str, key: str = "a/k", size: int = 100, tags: Tuple[Tuple[str, str], ...] = ()) -> bool:
            return evaluate(self.rules(rule(filt=filt)), Version(key, size, 0.0, True, False), now, tags) is not None

        self.assertTrue(decided("<Filter><Prefix>a/</Prefix></Filter>"))
        self.assertFalse(decided("<Filter><Prefix>a/</Prefix></Filter>", key="b/a/k"))
        self.assertTrue(decided("<Prefix></Prefix>", key="anything"))
        tag = "<Filter><Tag><Key>t</Key><Value>1</Value></Tag></Filter>"
        self.assertTrue(decided(tag, tags=(("t", "1"), ("u", "2"))))
        self.assertFalse(decided(tag, tags=(("t", "2"),)))
        self.assertFalse(decided(tag))
        self.assertTrue(decided("<Filter><ObjectSizeGreaterThan>99</ObjectSizeGreaterThan></Filter>"))
        self.assertFalse(decided("<Filter><ObjectSizeGreaterThan>100</ObjectSizeGreaterThan></Filter>"))
        self.assertTrue(decided("<Filter><ObjectSizeLessThan>101</ObjectSizeLessThan></Filter>"))
        self.assertFalse(decided("<Filter><ObjectSizeLessThan>100</ObjectSizeLessThan></Filter>"))
        both = ("<Filter><And><Prefix>a/</Prefix><Tag><Key>t</Key><Value>1</Value></Tag><Tag><Key>u</Key><Value>2</Value></Tag>"
                "<ObjectSizeGreaterThan>10</ObjectSizeGreaterThan><ObjectSizeLessThan>1000</ObjectSizeLessThan></And></Filter>")
        self.assertTrue(decided(both, tags=(("u", "2"), ("t", "1"))))
        self.assertFalse(decided(both, tags=(("t", "1"),)))
        self.assertFalse(decided(both, key="b/k", tags=(("u", "2"), ("t", "1"))))
        self.assertFalse(decided(both, size=5, tags=(("u", "2"), ("t", "1"))))

    def test_needsTags(self) -> None:
        """With the tags not read yet, only a tag rule that would act asks for them."""
        rules = self.rules(rule(filt="<Filter><And><Prefix>a/</Prefix><Tag><Key>t</Key><Value>1</Value></Tag></And></Filter>"))
        self.assertIs(evaluate(rules, Version("a/k", 1, 0.0, True, False), day(2030, 1, 1), None), NEEDS_TAGS)
        self.assertIsNone(evaluate(rules, Version("b/k", 1, 0.0, True, False), day(2030, 1, 1), None))
        self.assertIsNone(evaluate(rules, Version("a/k", 1, day(2030, 1, 1), True, False), day(2030, 1, 1), None))
        both = self.rules(rule(filt="<Filter><Tag><Key>t</Key><Value>1</Value></Tag></Filter>", ruleId="t"), rule(ruleId="all"))
        self.assertEqual(evaluate(both, Version("k", 1, 0.0, True, False), day(2030, 1, 1), None), Decision(EXPIRE_CURRENT, "all"))

    def test_noncurrent(self) -> None:
        """NoncurrentDays counts from when the version stopped being current; NewerNoncurrentVersions keeps that many."""
        rules = self.rules(rule("<NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>"
                                "<NewerNoncurrentVersions>1</NewerNoncurrentVersions></NoncurrentVersionExpiration>"))
        since = day(2024, 5, 10, 15)
        v = Version("k", 1, day(2024, 1, 1), False, False, noncurrentSince=since, newerNoncurrent=1)
        self.assertIsNone(evaluate(rules, v, day(2024, 5, 13) - 1))
        self.assertEqual(evaluate(rules, v, day(2024, 5, 13)), Decision(EXPIRE_NONCURRENT, "r"))
        self.assertIsNone(evaluate(rules, v._replace(newerNoncurrent=0), day(2030, 1, 1)))
        self.assertIsNone(evaluate(rules, v._replace(noncurrentSince=0.0), day(2030, 1, 1)), "unknown: never")
        marker = v._replace(deleteMarker=True, size=0)
        self.assertEqual(evaluate(rules, marker, day(2030, 1, 1)), Decision(EXPIRE_NONCURRENT, "r"))
        self.assertIsNone(evaluate(self.rules(rule()), v, day(2030, 1, 1)), "Expiration acts on current versions only")

    def test_expiredObjectDeleteMarker(self) -> None:
        """A latest marker that is its key's only version goes under ExpiredObjectDeleteMarker, or once Days old."""
        marker = Version("k", 0, day(2024, 5, 1, 12), True, True, onlyVersion=True)
        flagged = self.rules(rule("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"))
        self.assertEqual(evaluate(flagged, marker, day(2024, 5, 1, 13)), Decision(REMOVE_MARKER, "r"))
        self.assertIsNone(evaluate(flagged, marker._replace(onlyVersion=False), day(2030, 1, 1)))
        off = self.rules(rule("<Expiration><ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker></Expiration>"))
        self.assertIsNone(evaluate(off, marker, day(2030, 1, 1)))
        days = self.rules(rule("<Expiration><Days>3</Days></Expiration>"))
        self.assertIsNone(evaluate(days, marker, day(2024, 5, 5) - 1))
        self.assertEqual(evaluate(days, marker, day(2024, 5, 5)), Decision(REMOVE_MARKER, "r"))
        tagged = self.rules(rule(filt="<Filter><Tag><Key>t</Key><Value>1</Value></Tag></Filter>"))
        self.assertIsNone(evaluate(tagged, marker, day(2030, 1, 1), None), "a marker has no tags")
        sized = self.rules(rule("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>",
                                "<Filter><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></Filter>"))
        self.assertEqual(evaluate(sized, marker, day(2030, 1, 1)), Decision(REMOVE_MARKER, "r"), "sizes do not apply to markers")

    def test_abort(self) -> None:
        """An upload is aborted DaysAfterInitiation after it started, rounded to midnight; prefix filtered."""
        rules = self.rules(rule("<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
                                "</AbortIncompleteMultipartUpload>", "<Filter><Prefix>up/</Prefix></Filter>"))
        self.assertIsNone(lifecycle.abortDue(rules, "up/k", day(2024, 5, 1, 8), day(2024, 5, 3) - 1))
        self.assertEqual(lifecycle.abortDue(rules, "up/k", day(2024, 5, 1, 8), day(2024, 5, 3)), "r")
        self.assertIsNone(lifecycle.abortDue(rules, "other", day(2024, 5, 1, 8), day(2030, 1, 1)))

    def test_expirationEarliest(self) -> None:
        """The header names the rule that expires the object first."""
        rules = self.rules(
            rule("<Expiration><Days>30</Days></Expiration>", ruleId="late"),
            rule("<Expiration><Days>2</Days></Expiration>", "<Filter><Prefix>tmp/</Prefix></Filter>", ruleId="early"),
            rule("<Expiration><Days>1</Days></Expiration>", status="Disabled", ruleId="off"),
            rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration>", ruleId="nc"),
        )
        created = day(2024, 5, 1, 10)
        self.assertEqual(expiration(rules, "tmp/x", 1, (), created), (day(2024, 5, 4), "early"))
        self.assertEqual(expiration(rules, "x", 1, (), created), (day(2024, 6, 1), "late"))
        self.assertIsNone(expiration(self.rules(rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
                                                     "</NoncurrentVersionExpiration>")), "x", 1, (), created))


# -- a model of the rules, for hypothesis ---------------------------------------------

_KEYS = st.sampled_from(["a", "a/b", "ab", "b/c", "logs/1", "logs/2"])
_TAGS = st.lists(st.sampled_from([("t", "1"), ("t", "2"), ("u", "1")]), unique_by=lambda t: t[0], max_size=2).map(tuple)
_MIDNIGHTS = st.integers(min_value=19000, max_value=19010).map(lambda d: float(d * DAY))
_TIMES = st.floats(min_value=19000 * DAY, max_value=19012 * DAY, allow_nan=False)
_EARLY = st.floats(min_value=19000 * DAY, max_value=19004 * DAY, allow_nan=False)


@st.composite
def rules(draw: Any) -> Rule:
    """A valid rule: any filter, some actions."""
    prefix = draw(st.sampled_from(["", "", "a", "a/", "logs/"]))
    tags = draw(st.just(()) | _TAGS)
    greater = draw(st.one_of(st.none(), st.none(), st.integers(0, 20)))
    less = draw(st.one_of(st.none(), st.none(), st.integers(0, 40)))
    if greater is not None and less is not None and not greater < less:
        less = None
    marker = draw(st.none() | st.booleans())
    days = date = None
    if marker is None:
        days = draw(st.none() | st.integers(1, 5))
        date = draw(st.none() | _MIDNIGHTS) if days is None else None
    if tags and marker:
        marker = None
    noncurrent = draw(st.none() | st.integers(1, 4))
    newer = draw(st.none() | st.integers(1, 3)) if noncurrent is not None else None
    return Rule(
        draw(st.text("abc", min_size=1, max_size=3)), draw(st.sampled_from([True, True, False])),
        Filter(AND, prefix, tags, greater, less), days=days, date=date, expiredObjectDeleteMarker=marker,
        noncurrentDays=noncurrent, newerNoncurrentVersions=newer,
    )


@st.composite
def versions(draw: Any) -> Version:
    marker = draw(st.booleans())
    latest = draw(st.booleans())
    return Version(
        draw(_KEYS), 0 if marker else draw(st.integers(0, 50)), draw(_EARLY), latest, marker,
        noncurrentSince=0.0 if latest else draw(st.just(0.0) | _EARLY), newerNoncurrent=draw(st.integers(0, 4)),
        onlyVersion=latest and marker and draw(st.booleans()),
    )


def _utc(when: float) -> datetime.datetime:
    """
    C{when} as a datetime, rounded down to the microsecond: C{fromtimestamp}
    rounds to the nearest, which moves a time a fraction of a microsecond
    before midnight onto the next day, where the float comparisons of the
    code under test (rightly) do not.
    """
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return epoch + datetime.timedelta(microseconds=math.floor(when * 1e6))


def _midnightAfter(when: float, days: int) -> datetime.datetime:
    """A second formulation of AWS's rounding: the date of C{when} plus C{days} plus one, at 00:00 UTC."""
    start = _utc(when).date()
    due = start + datetime.timedelta(days=days + 1)
    return datetime.datetime(due.year, due.month, due.day, tzinfo=datetime.timezone.utc)


def model(rules: List[Rule], v: Version, now: float, tags: Tuple[Tuple[str, str], ...]) -> Optional[str]:
    """What the rules do, written out longhand from AWS's documentation."""
    moment = _utc(now)
    for r in rules:
        if not r.enabled or not v.key.startswith(r.filter.prefix):
            continue
        if v.deleteMarker:
            if r.filter.tags:
                continue
        else:
            if not set(r.filter.tags) <= set(tags):
                continue
            if r.filter.greaterThan is not None and v.size <= r.filter.greaterThan:
                continue
            if r.filter.lessThan is not None and v.size >= r.filter.lessThan:
                continue
        dated = r.date is not None and moment >= _utc(r.date)
        aged = r.days is not None and moment >= _midnightAfter(v.modified, r.days)
        if v.isLatest and not v.deleteMarker and (dated or aged):
            return EXPIRE_CURRENT
        if v.isLatest and v.deleteMarker and v.onlyVersion and (r.expiredObjectDeleteMarker or dated or aged):
            return REMOVE_MARKER
        if not v.isLatest and r.noncurrentDays is not None and v.noncurrentSince > 0:
            if moment >= _midnightAfter(v.noncurrentSince, r.noncurrentDays):
                if r.newerNoncurrentVersions is None or v.newerNoncurrent >= r.newerNoncurrentVersions:
                    return EXPIRE_NONCURRENT
    return None


class ModelTests(SynchronousTestCase):
    """L{evaluate} agrees with a longhand model of AWS's rules."""

    @settings(max_examples=400, deadline=None)
    @given(st.lists(rules(), min_size=1, max_size=4), versions(), _TIMES, _TAGS)
    def test_agreesWithModel(self, ruleList: List[Rule], v: Version, now: float, tags: Tuple[Tuple[str, str], ...]) -> None:
        """Same action (or none) for every rule set, version, time and tag set; asked without tags first, it only ever asks for them."""
        expected = model(ruleList, v, now, tags)
        decision = evaluate(ruleList, v, now, tags)
        self.assertEqual(decision.action if isinstance(decision, Decision) else decision, expected)
        first = evaluate(ruleList, v, now, None)
        if first is NEEDS_TAGS:
            self.assertFalse(v.deleteMarker)
        else:
            self.assertEqual(first.action if isinstance(first, Decision) else first, expected)

    @settings(max_examples=200, deadline=None)
    @given(st.floats(min_value=0, max_value=4e9, allow_nan=False), st.integers(1, 4000))
    def test_roundingAgreesWithCalendar(self, when: float, days: int) -> None:
        """L{expiryTime} is the calendar's next midnight after the days."""
        self.assertEqual(expiryTime(when, days), _midnightAfter(when, days).timestamp())


# -- through the resource ------------------------------------------------------------


class LifecycleHTTPTests(ResourceTestCase):
    """Put/Get/DeleteBucketLifecycleConfiguration and x-amz-expiration on the wire."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()

    def put(self, body: bytes, headers: Optional[Dict[str, str]] = None, bucket: str = "bucket") -> Tuple[int, Dict[str, str], bytes]:
        return self.request("PUT", f"/{bucket}?lifecycle", body, headers=md5(body) if headers is None else headers)

    def test_roundTrip(self) -> None:
        """Put, get back (the shape put), replace, delete (204 twice), then NoSuchLifecycleConfiguration."""
        self.assertError(self.request("GET", "/bucket?lifecycle"), 404, "NoSuchLifecycleConfiguration")
        body = document(rule(filt="<Prefix>logs/</Prefix>", ruleId="old"))
        self.assertEqual(self.put(body)[0], 200)
        status, _, got = self.request("GET", "/bucket?lifecycle")
        self.assertEqual(status, 200)
        root = ElementTree.fromstring(got)
        self.assertEqual(root.tag, f"{NS}LifecycleConfiguration")
        self.assertEqual([r.findtext(f"{NS}ID") for r in root.iter(f"{NS}Rule")], ["old"])
        self.assertEqual(root.findtext(f"{NS}Rule/{NS}Prefix"), "logs/")
        self.assertEqual(root.findtext(f"{NS}Rule/{NS}Expiration/{NS}Days"), "1")
        replacement = document(rule(ruleId="new"))
        self.assertEqual(self.put(replacement)[0], 200)
        got = self.request("GET", "/bucket?lifecycle")[2]
        self.assertEqual([r.findtext(f"{NS}ID") for r in ElementTree.fromstring(got).iter(f"{NS}Rule")], ["new"])
        self.assertEqual(self.request("DELETE", "/bucket?lifecycle")[0], 204)
        self.assertEqual(self.request("DELETE", "/bucket?lifecycle")[0], 204)
        self.assertError(self.request("GET", "/bucket?lifecycle"), 404, "NoSuchLifecycleConfiguration")
        self.assertIsNone(self.server.now.getBucket("bucket").configValue("lifecycle"))

    def test_digestRequired(self) -> None:
        """As on AWS the body needs Content-MD5 or a checksum; a wrong one is BadDigest."""
        body = document(rule())
        result = self.put(body, headers={})
        self.assertError(result, 400, "InvalidRequest")
        self.assertIn(b"Content-MD5", result[2])
        self.assertError(self.put(body, headers=md5(b"other")), 400, "BadDigest")
        sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
        self.assertEqual(self.put(body, headers={"x-amz-checksum-sha256": sha})[0], 200)

    def test_refusedLeavesConfiguration(self) -> None:
        """A refused document changes nothing."""
        self.assertEqual(self.put(document(rule(ruleId="kept")))[0], 200)
        self.assertError(self.put(document(rule("<Expiration><Days>0</Days></Expiration>"))), 400, "InvalidArgument")
        self.assertError(self.put(b"<LifecycleConfiguration/>"), 400, "MalformedXML")
        self.assertIn(b"kept", self.request("GET", "/bucket?lifecycle")[2])

    def test_ownerOnly(self) -> None:
        """Only the owner reads, writes or deletes it; a missing bucket is NoSuchBucket."""
        body = document(rule())
        self.assertError(self.request("PUT", "/bucket?lifecycle", body, headers=md5(body), creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("GET", "/bucket?lifecycle", creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("DELETE", "/bucket?lifecycle", creds=OTHER), 403, "AccessDenied")
        self.assertError(self.put(body, bucket="nobucket"), 404, "NoSuchBucket")

    def test_otherConfigurationKept(self) -> None:
        """Putting and deleting rules keeps the bucket's other documents (its tags)."""
        tagging = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>"
        self.assertEqual(self.request("PUT", "/bucket?tagging", tagging)[0], 204)
        self.assertEqual(self.put(document(rule()))[0], 200)
        self.assertEqual(self.request("DELETE", "/bucket?lifecycle")[0], 204)
        self.assertEqual(self.request("GET", "/bucket?tagging")[0], 200)

    def test_expirationHeader(self) -> None:
        """PUT, GET and HEAD answer x-amz-expiration for an object a rule expires; not for others."""
        body = document(rule("<Expiration><Days>3</Days></Expiration>", "<Filter><Prefix>tmp/</Prefix></Filter>", ruleId="tmp rule"))
        self.assertEqual(self.put(body)[0], 200)
        status, headers, _ = self.request("PUT", "/bucket/tmp/a", b"data")
        self.assertEqual(status, 200)
        expected = f'expiry-date="{formatHTTPDate(expiryTime(self.server.clock.seconds(), 3))}", rule-id="tmp%20rule"'
        self.assertEqual(headers["x-amz-expiration"], expected)
        for method in ("GET", "HEAD"):
            status, headers, _ = self.request(method, "/bucket/tmp/a")
            self.assertEqual((status, headers.get("x-amz-expiration")), (200, expected), method)
        self.request("PUT", "/bucket/keep", b"data")
        self.assertNotIn("x-amz-expiration", self.request("HEAD", "/bucket/keep")[1])
        self.assertEqual(self.request("DELETE", "/bucket?lifecycle")[0], 204)
        self.assertNotIn("x-amz-expiration", self.request("HEAD", "/bucket/tmp/a")[1])

    def test_expirationHeaderOnCopyAndCompletion(self) -> None:
        """CopyObject and CompleteMultipartUpload answer x-amz-expiration for the object they make."""
        body = document(rule("<Expiration><Days>3</Days></Expiration>", "<Filter><Prefix>tmp/</Prefix></Filter>"))
        self.assertEqual(self.put(body)[0], 200)
        self.assertEqual(self.request("PUT", "/bucket/source", b"data")[0], 200)
        status, headers, _ = self.request("PUT", "/bucket/tmp/copy", headers={"x-amz-copy-source": "bucket/source"})
        self.assertEqual(status, 200)
        self.assertIn("expiry-date=", headers["x-amz-expiration"])
        status, headers, _ = self.request("PUT", "/bucket/kept-copy", headers={"x-amz-copy-source": "bucket/source"})
        self.assertNotIn("x-amz-expiration", headers)
        created = self.request("POST", "/bucket/tmp/parts?uploads")[2]
        uploadId = ElementTree.fromstring(created).findtext(f"{NS}UploadId")
        etag = self.request("PUT", f"/bucket/tmp/parts?partNumber=1&uploadId={uploadId}", b"part")[1]["etag"]
        complete = completeDocument([(1, etag)])
        status, headers, _ = self.request("POST", f"/bucket/tmp/parts?uploadId={uploadId}", complete)
        self.assertEqual(status, 200)
        self.assertIn("expiry-date=", headers["x-amz-expiration"])

    def test_expirationHeaderOnLatestOnly(self) -> None:
        """A GET naming an older version gets no header (the rules expire current versions); naming the latest does."""
        document_ = b'<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>'
        self.assertEqual(self.request("PUT", "/bucket?versioning", document_)[0], 200)
        self.assertEqual(self.put(document(rule()))[0], 200)
        old = self.request("PUT", "/bucket/k", b"1")[1]["x-amz-version-id"]
        new = self.request("PUT", "/bucket/k", b"2")[1]["x-amz-version-id"]
        self.assertNotIn("x-amz-expiration", self.request("HEAD", f"/bucket/k?versionId={old}")[1])
        self.assertIn("x-amz-expiration", self.request("HEAD", f"/bucket/k?versionId={new}")[1])
        self.assertIn("x-amz-expiration", self.request("GET", "/bucket/k")[1])


class BotocoreLifecycleTests(BotoTestCase):
    """The calls as botocore makes them (its checksum, its XML), and what it parses back."""

    def setUp(self) -> None:
        super().setUp()
        self.s3.create_bucket(Bucket="bucket")

    def test_putGetDelete(self) -> None:
        """boto3's shapes go in and come back out."""
        configuration = {"Rules": [
            {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 30}},
            {"ID": "versions", "Filter": {"And": {"Prefix": "v/", "Tags": [{"Key": "k", "Value": "v"}],
                                                  "ObjectSizeGreaterThan": 10}},
             "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2}},
            {"ID": "markers", "Filter": {}, "Status": "Disabled", "Expiration": {"ExpiredObjectDeleteMarker": True},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}},
            {"ID": "date", "Filter": {"Prefix": "d/"}, "Status": "Enabled",
             "Expiration": {"Date": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)}},
        ]}
        self.s3.put_bucket_lifecycle_configuration(Bucket="bucket", LifecycleConfiguration=configuration)
        got = self.s3.get_bucket_lifecycle_configuration(Bucket="bucket")["Rules"]
        self.assertEqual([r["ID"] for r in got], ["logs", "versions", "markers", "date"])
        self.assertEqual(got[0]["Filter"], {"Prefix": "logs/"})
        self.assertEqual(got[0]["Expiration"], {"Days": 30})
        self.assertEqual(got[1]["Filter"]["And"], {"Prefix": "v/", "Tags": [{"Key": "k", "Value": "v"}], "ObjectSizeGreaterThan": 10})
        self.assertEqual(got[1]["NoncurrentVersionExpiration"], {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2})
        self.assertEqual((got[2]["Status"], got[2]["Expiration"], got[2]["AbortIncompleteMultipartUpload"]),
                         ("Disabled", {"ExpiredObjectDeleteMarker": True}, {"DaysAfterInitiation": 3}))
        self.assertEqual(got[3]["Expiration"]["Date"], datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
        self.s3.put_object(Bucket="bucket", Key="logs/a", Body=b"x")
        head = self.s3.head_object(Bucket="bucket", Key="logs/a")
        self.assertIn('rule-id="logs"', head["Expiration"])
        self.s3.delete_bucket_lifecycle(Bucket="bucket")
        from botocore.exceptions import ClientError

        e = self.assertRaises(ClientError, self.s3.get_bucket_lifecycle_configuration, Bucket="bucket")
        self.assertEqual(e.response["Error"]["Code"], "NoSuchLifecycleConfiguration")

    def test_transitionRefused(self) -> None:
        """A transition is InvalidStorageClass, as botocore reports it."""
        from botocore.exceptions import ClientError

        e = self.assertRaises(
            ClientError, self.s3.put_bucket_lifecycle_configuration, Bucket="bucket",
            LifecycleConfiguration={"Rules": [{"ID": "t", "Filter": {}, "Status": "Enabled",
                                               "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]},
        )
        self.assertEqual(e.response["Error"]["Code"], "InvalidStorageClass")
