"""
Bucket lifecycle configuration: Put/Get/DeleteBucketLifecycleConfiguration
(``?lifecycle``), the rules as AWS validates them, and the pure functions
that say what a rule does to a version, an upload, or a response header.

PutBucketLifecycleConfiguration validates a C{LifecycleConfiguration}
document as AWS does (up to 1,000 rules, unique IDs of at most 255
characters, C{Status}, a C{Filter} or the legacy top-level C{Prefix}, at
least one action) and stores the rules as compact JSON under the bucket's
C{"lifecycle"} config entry (L{rulesToJSON}); GetBucketLifecycleConfiguration
writes the XML back from them.  Like AWS, the call needs C{Content-MD5} or
an C{x-amz-checksum-*} of its body.

The actions FasterStore carries out (L{fasterstore.services.lifecycle}
walks every bucket and applies them):

  - C{Expiration} with C{Days} or C{Date}: the current version expires (a
    delete marker on a versioned bucket, a delete otherwise), and so does an
    I{expired object delete marker} (a latest delete marker that is its
    key's only version) once it is as old as the rule says;
  - C{Expiration} with C{ExpiredObjectDeleteMarker}: that marker is removed;
  - C{NoncurrentVersionExpiration}: a version C{NoncurrentDays} after it
    became noncurrent, keeping the C{NewerNoncurrentVersions} newest ones;
  - C{AbortIncompleteMultipartUpload}: uploads C{DaysAfterInitiation} old.

Days count as AWS counts them: from the object's creation (or the time it
became noncurrent, or the upload's initiation) plus the days, rounded up
to the next midnight UTC (L{expiryTime}).  C{Transition} and
C{NoncurrentVersionTransition} are refused with C{InvalidStorageClass}:
there is one storage class here and no tier to move objects to, and a rule
accepted and never carried out would lie.  Size filters do not apply to
delete markers (they have no size); tag filters never match them (they have
no tags).

L{expirationHeader} is the C{x-amz-expiration} header of GET, HEAD and PUT
answers for an object that an C{Expiration} rule will expire:
C{expiry-date="<RFC 1123 date>", rule-id="<URL-encoded ID>"}, the earliest
if several rules apply.
Tests: tests/unit/test_lifecycle.py, tests/unit/test_lifecycle_service.py.
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import quote
from xml.etree import ElementTree

import attrs
from twisted.web.server import Request

from fasterstore.auth.integrity import requireDigest
from fasterstore.errors import S3Error
from fasterstore.http.dates import formatHTTPDate, formatISO8601, utcTimestamp
from fasterstore.metadata.records import BucketRecord, ObjectRecord
from fasterstore.numbers import INT32_MAX, INT64_MAX, readDecimal
from fasterstore.s3 import xml
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.context import S3Context
from fasterstore.s3.responses import sendEmpty, sendXML
from fasterstore.s3.tagging import validateTags

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

Tags = Tuple[Tuple[str, str], ...]

#: The bucket config entry holding the rules.
CONFIG_NAME = "lifecycle"
#: AWS's limits.
MAX_RULES = 1000
MAX_ID = 255
MAX_NEWER_NONCURRENT = 100
DAY = 86400

#: The response header naming an object's expiry.
EXPIRATION_HEADER = "x-amz-expiration"

#: Filter shapes, so that GetBucketLifecycleConfiguration gives back the
#: shape that was put: the legacy top-level Prefix, an empty Filter, or a
#: Filter holding one predicate or an And.
LEGACY, ALL, PREFIX, TAG, GREATER, LESS, AND = "legacy", "all", "prefix", "tag", "greater", "less", "and"

#: What a rule does to a version (L{Decision.action}).
EXPIRE_CURRENT = "expire-current"
EXPIRE_NONCURRENT = "expire-noncurrent"
REMOVE_MARKER = "remove-marker"

_NO_TIERS = (
    "Transition and NoncurrentVersionTransition are not supported: this server has one storage class "
    "(STANDARD) and no storage tiers to move objects to."
)


@attrs.frozen
class Filter:
    """
    Which objects a rule applies to.

    @ivar shape: how it was written (L{LEGACY}, L{ALL}, L{PREFIX}, L{TAG},
        L{GREATER}, L{LESS} or L{AND}).
    @ivar tags: every one of these must be among the object's tags.
    @ivar greaterThan: the object must be strictly larger, if set.
    @ivar lessThan: the object must be strictly smaller, if set.
    """

    shape: str = ALL
    prefix: str = ""
    tags: Tags = ()
    greaterThan: Optional[int] = None
    lessThan: Optional[int] = None

    @property
    def sized(self) -> bool:
        """Whether the filter names a size."""
        return self.greaterThan is not None or self.lessThan is not None

    def matches(self, key: str, size: int, tags: Tags, deleteMarker: bool = False) -> bool:
        """Whether a version passes: prefix, tags (a marker has none), sizes (not applied to a marker)."""
        if not key.startswith(self.prefix):
            return False
        if self.tags:
            if deleteMarker:
                return False
            have = set(tags)
            if not all(tag in have for tag in self.tags):
                return False
        if not deleteMarker:
            if self.greaterThan is not None and not size > self.greaterThan:
                return False
            if self.lessThan is not None and not size < self.lessThan:
                return False
        return True


@attrs.frozen
class Rule:
    """
    One lifecycle rule, as validated.

    @ivar days: C{Expiration/Days}.
    @ivar date: C{Expiration/Date}, seconds since the epoch (a midnight UTC).
    @ivar expiredObjectDeleteMarker: C{Expiration/ExpiredObjectDeleteMarker}
        as given (C{None}: not given).
    @ivar noncurrentDays: C{NoncurrentVersionExpiration/NoncurrentDays}.
    @ivar newerNoncurrentVersions: its C{NewerNoncurrentVersions}.
    @ivar abortDays: C{AbortIncompleteMultipartUpload/DaysAfterInitiation}.
    """

    id: str
    enabled: bool
    filter: Filter = attrs.field(factory=Filter)
    days: Optional[int] = None
    date: Optional[float] = None
    expiredObjectDeleteMarker: Optional[bool] = None
    noncurrentDays: Optional[int] = None
    newerNoncurrentVersions: Optional[int] = None
    abortDays: Optional[int] = None

    @property
    def expires(self) -> bool:
        """Whether it expires current versions (Days or Date)."""
        return self.days is not None or self.date is not None

    @property
    def actsOnVersions(self) -> bool:
        """Whether it does anything to versions (not only to uploads)."""
        return self.expires or bool(self.expiredObjectDeleteMarker) or self.noncurrentDays is not None


# -- days and dates -------------------------------------------------------------


def expiryTime(since: float, days: int) -> float:
    """
    When something C{days} days old from C{since} is due, as AWS counts:
    C{since} plus the days, rounded up to the next midnight UTC (an object
    written at 10:30 on the 15th with 3 days is due at 00:00 on the 19th).
    """
    return float((int(since // DAY) + days + 1) * DAY)


_DATE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?P<fraction>\.[0-9]+)?"
    r"(?P<zone>Z|[+-][0-9]{2}:?[0-9]{2})?)?",
    re.ASCII,
)


def parseDate(text: str) -> float:
    """
    An C{Expiration/Date}: ISO 8601 (C{2025-01-01}, C{2025-01-01T00:00:00Z},
    C{...00.000Z}, C{...+00:00}), which must be midnight UTC.

    @raise S3Error: C{MalformedXML} for something that is not such a date,
        C{InvalidArgument} for one that is not at midnight UTC.
    """
    match = _DATE.fullmatch(text.strip())
    if match is None:
        raise S3Error("MalformedXML")
    parts = match.groupdict()
    timestamp = utcTimestamp(
        int(parts["year"]), int(parts["month"]), int(parts["day"]),
        int(parts["hour"] or 0), int(parts["minute"] or 0), int(parts["second"] or 0),
    )
    if timestamp is None:
        raise S3Error("MalformedXML")
    zone = (parts["zone"] or "Z").replace(":", "")
    fraction = parts["fraction"] or ""
    if zone not in ("Z", "+0000", "-0000") or fraction.strip(".0") or timestamp % DAY:
        raise S3Error("InvalidArgument", "'Date' must be at midnight GMT")
    return timestamp


# -- the document ---------------------------------------------------------------


def _children(element: ElementTree.Element, allowed: Sequence[str], single: Sequence[str]) -> Dict[str, List[ElementTree.Element]]:
    """
    The children of C{element} by local name.

    @raise S3Error: C{MalformedXML} for a child not in C{allowed}, or more
        than one of a name in C{single}.
    """
    found: Dict[str, List[ElementTree.Element]] = {}
    for child in element:
        name = xml.localName(child.tag)
        if name not in allowed:
            raise S3Error("MalformedXML")
        found.setdefault(name, []).append(child)
    for name in single:
        if len(found.get(name, ())) > 1:
            raise S3Error("MalformedXML")
    return found


def _text(element: ElementTree.Element) -> str:
    return (element.text or "").strip()


def _positive(element: ElementTree.Element, message: str) -> int:
    """
    A positive Integer element.

    @raise S3Error: C{MalformedXML} for something that is not an integer,
        C{InvalidArgument} with C{message} for zero, a negative one or one too large.
    """
    value = readDecimal(_text(element), minimum=-INT32_MAX, maximum=INT32_MAX * 10)
    if value is None:
        raise S3Error("MalformedXML")
    if not 0 < value <= INT32_MAX:
        raise S3Error("InvalidArgument", message)
    return value


def _size(element: ElementTree.Element, name: str) -> int:
    """An C{ObjectSize...} Long: not negative."""
    value = readDecimal(_text(element), minimum=-INT64_MAX, maximum=INT64_MAX)
    if value is None:
        raise S3Error("MalformedXML")
    if value < 0:
        raise S3Error("InvalidArgument", f"'{name}' must be a non-negative number")
    return value


def _tag(element: ElementTree.Element) -> Tuple[str, str]:
    found = _children(element, ("Key", "Value"), ("Key", "Value"))
    if "Key" not in found or "Value" not in found:
        raise S3Error("MalformedXML")
    return found["Key"][0].text or "", found["Value"][0].text or ""


def _filter(element: ElementTree.Element) -> Filter:
    """A C{Filter}: empty, or exactly one of Prefix, Tag, ObjectSize..., And."""
    names = ("Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan", "And")
    found = _children(element, names, names)
    if len(found) > 1:
        raise S3Error("MalformedXML")
    if not found:
        return Filter(ALL)
    if "Prefix" in found:
        return Filter(PREFIX, prefix=found["Prefix"][0].text or "")
    if "Tag" in found:
        tags = (_tag(found["Tag"][0]),)
        validateTags(tags, 1)
        return Filter(TAG, tags=tags)
    if "ObjectSizeGreaterThan" in found:
        return Filter(GREATER, greaterThan=_size(found["ObjectSizeGreaterThan"][0], "ObjectSizeGreaterThan"))
    if "ObjectSizeLessThan" in found:
        return Filter(LESS, lessThan=_size(found["ObjectSizeLessThan"][0], "ObjectSizeLessThan"))
    return _and(found["And"][0])


def _and(element: ElementTree.Element) -> Filter:
    """An C{And} of at least two predicates (AWS refuses fewer as MalformedXML)."""
    single = ("Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan")
    found = _children(element, single + ("Tag",), single)
    predicates = sum(len(v) for v in found.values())
    if predicates < 2:
        raise S3Error("MalformedXML")
    tags = tuple(_tag(t) for t in found.get("Tag", ()))
    validateTags(tags, len(tags))
    greater = _size(found["ObjectSizeGreaterThan"][0], "ObjectSizeGreaterThan") if "ObjectSizeGreaterThan" in found else None
    less = _size(found["ObjectSizeLessThan"][0], "ObjectSizeLessThan") if "ObjectSizeLessThan" in found else None
    if greater is not None and less is not None and not greater < less:
        raise S3Error("InvalidRequest", "ObjectSizeGreaterThan must be less than ObjectSizeLessThan")
    prefix = (found["Prefix"][0].text or "") if "Prefix" in found else ""
    return Filter(AND, prefix=prefix, tags=tags, greaterThan=greater, lessThan=less)


_RULE_CHILDREN = (
    "ID", "Status", "Filter", "Prefix", "Expiration", "NoncurrentVersionExpiration",
    "AbortIncompleteMultipartUpload", "Transition", "NoncurrentVersionTransition",
)
_RULE_SINGLE = tuple(name for name in _RULE_CHILDREN if not name.endswith("Transition"))


def _rule(element: ElementTree.Element, newId: Any) -> Rule:
    """One C{Rule}, validated (see L{parseLifecycleConfiguration})."""
    found = _children(element, _RULE_CHILDREN, _RULE_SINGLE)
    if "Transition" in found or "NoncurrentVersionTransition" in found:
        raise S3Error("InvalidStorageClass", _NO_TIERS)
    status = _text(found["Status"][0]) if "Status" in found else ""
    if status not in ("Enabled", "Disabled"):
        raise S3Error("MalformedXML")
    ruleId = (found["ID"][0].text or "") if "ID" in found else ""
    if len(ruleId) > MAX_ID:
        raise S3Error("InvalidArgument", f"ID length should not exceed allowed limit of {MAX_ID}")
    if ("Filter" in found) == ("Prefix" in found):
        raise S3Error("MalformedXML")
    if "Prefix" in found:
        ruleFilter = Filter(LEGACY, prefix=found["Prefix"][0].text or "")
    else:
        ruleFilter = _filter(found["Filter"][0])
    rule = Rule(ruleId or newId(), status == "Enabled", ruleFilter)
    if "Expiration" in found:
        rule = _expiration(found["Expiration"][0], rule)
    if "NoncurrentVersionExpiration" in found:
        rule = _noncurrent(found["NoncurrentVersionExpiration"][0], rule)
    if "AbortIncompleteMultipartUpload" in found:
        abort = _children(found["AbortIncompleteMultipartUpload"][0], ("DaysAfterInitiation",), ("DaysAfterInitiation",))
        if "DaysAfterInitiation" not in abort:
            raise S3Error("MalformedXML")
        days = _positive(abort["DaysAfterInitiation"][0], "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer")
        if ruleFilter.tags:
            raise S3Error("InvalidRequest", "AbortIncompleteMultipartUpload cannot be specified with Tags.")
        if ruleFilter.sized:
            raise S3Error("InvalidRequest", "AbortIncompleteMultipartUpload cannot be specified with an object size filter.")
        rule = attrs.evolve(rule, abortDays=days)
    if not ({"Expiration", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"} & found.keys()):
        raise S3Error("InvalidRequest", "At least one action needs to be specified in a rule")
    return rule


def _expiration(element: ElementTree.Element, rule: Rule) -> Rule:
    names = ("Days", "Date", "ExpiredObjectDeleteMarker")
    found = _children(element, names, names)
    if not found or ("Days" in found and "Date" in found):
        raise S3Error("MalformedXML")
    days = date = marker = None
    if "Days" in found:
        days = _positive(found["Days"][0], "'Days' for Expiration action must be a positive integer")
    if "Date" in found:
        date = parseDate(found["Date"][0].text or "")
    if "ExpiredObjectDeleteMarker" in found:
        text = _text(found["ExpiredObjectDeleteMarker"][0])
        if text not in ("true", "false"):
            raise S3Error("MalformedXML")
        if days is not None or date is not None:
            raise S3Error(
                "InvalidArgument",
                "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy",
            )
        marker = text == "true"
        if marker and rule.filter.tags:
            raise S3Error("InvalidRequest", "ExpiredObjectDeleteMarker cannot be specified with Tags.")
    return attrs.evolve(rule, days=days, date=date, expiredObjectDeleteMarker=marker)


def _noncurrent(element: ElementTree.Element, rule: Rule) -> Rule:
    names = ("NoncurrentDays", "NewerNoncurrentVersions")
    found = _children(element, names, names)
    if "NoncurrentDays" not in found:
        raise S3Error("MalformedXML")
    days = _positive(
        found["NoncurrentDays"][0], "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer"
    )
    newer = None
    if "NewerNoncurrentVersions" in found:
        newer = _positive(
            found["NewerNoncurrentVersions"][0],
            f"'NewerNoncurrentVersions' must be a positive integer, at most {MAX_NEWER_NONCURRENT}",
        )
        if newer > MAX_NEWER_NONCURRENT:
            raise S3Error(
                "InvalidArgument", f"'NewerNoncurrentVersions' must be a positive integer, at most {MAX_NEWER_NONCURRENT}"
            )
    return attrs.evolve(rule, noncurrentDays=days, newerNoncurrentVersions=newer)


def newRuleId() -> str:
    """An ID for a rule given without one (AWS makes one up too)."""
    return os.urandom(12).hex()


def parseLifecycleConfiguration(body: bytes, newId: Any = newRuleId) -> Tuple[Rule, ...]:
    """
    Read and validate a C{LifecycleConfiguration} document as AWS does.

    @param newId: makes an ID for a rule given without one.
    @raise S3Error: C{MalformedXML} for a document that is not one (no rule,
        an unknown element, an element twice, no or an unknown Status,
        neither or both of Filter and Prefix, a Filter with two predicates,
        an And with fewer than two, Days and Date together, a value that is
        not a number or a date); C{InvalidArgument} for a value out of range
        (Days, NoncurrentDays, DaysAfterInitiation not positive,
        NewerNoncurrentVersions above 100, a Date not at midnight UTC, an ID
        longer than 255 or used twice, ExpiredObjectDeleteMarker with Days or
        Date); C{InvalidRequest} for more than 1,000 rules, a rule without an
        action, sizes that exclude everything, ExpiredObjectDeleteMarker or
        AbortIncompleteMultipartUpload with a tag filter (the latter with a
        size filter too); C{InvalidTag} for a bad filter tag;
        C{InvalidStorageClass} for any transition.
    """
    root = xml.parseXML(body)
    if xml.localName(root.tag) != "LifecycleConfiguration":
        raise S3Error("MalformedXML")
    elements = list(_children(root, ("Rule",), ()).get("Rule", ()))
    if not elements:
        raise S3Error("MalformedXML")
    if len(elements) > MAX_RULES:
        raise S3Error("InvalidRequest", f"The number of lifecycle rules should not exceed allowed limit of {MAX_RULES} rules")
    given = {(xml.childText(element, "ID") or "") for element in elements}

    def uniqueId() -> str:
        while True:
            candidate = newId()
            if candidate not in given:
                given.add(candidate)
                return str(candidate)

    rules = tuple(_rule(element, uniqueId) for element in elements)
    seen = set()
    for rule in rules:
        if rule.id in seen:
            raise S3Error("InvalidArgument", "Rule ID must be unique. Found same ID for more than one rule")
        seen.add(rule.id)
    return rules


def rulesToJSON(rules: Sequence[Rule]) -> str:
    """
    The stored form of a bucket's rules: a compact JSON list, one object a
    rule (its fields, the filter an object of its own; unset fields left out).
    """

    def compact(d: Dict[str, Any]) -> Dict[str, Any]:
        return {k: (list(map(list, v)) if k == "tags" else v) for k, v in d.items() if v not in (None, (), "")}

    return json.dumps(
        [
            dict(compact(attrs.asdict(rule, recurse=False, filter=lambda a, v: a.name != "filter")),
                 filter=compact(attrs.asdict(rule.filter)), enabled=rule.enabled)
            for rule in rules
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


@functools.lru_cache(maxsize=256)
def rulesFromJSON(text: str) -> Tuple[Rule, ...]:
    """Read the stored form back (cached: every GET, HEAD and PUT of a bucket with rules consults it)."""
    rules = []
    for entry in json.loads(text):
        entry = dict(entry)
        given = dict(entry.pop("filter", {}))
        given["tags"] = tuple((str(k), str(v)) for k, v in given.get("tags", ()))
        rules.append(Rule(filter=Filter(**given), **entry))
    return tuple(rules)


def bucketRules(bucket: BucketRecord) -> Tuple[Rule, ...]:
    """The bucket's rules (C{()} without a configuration)."""
    stored = bucket.configValue(CONFIG_NAME)
    return rulesFromJSON(stored) if stored is not None else ()


def lifecycleConfiguration(rules: Sequence[Rule]) -> bytes:
    """The GetBucketLifecycleConfiguration document."""
    root = ElementTree.Element("LifecycleConfiguration", xmlns=xml.S3_NAMESPACE)
    for rule in rules:
        element = ElementTree.SubElement(root, "Rule")
        ElementTree.SubElement(element, "ID").text = rule.id
        _writeFilter(element, rule.filter)
        ElementTree.SubElement(element, "Status").text = "Enabled" if rule.enabled else "Disabled"
        if rule.expires or rule.expiredObjectDeleteMarker is not None:
            expiration = ElementTree.SubElement(element, "Expiration")
            if rule.days is not None:
                ElementTree.SubElement(expiration, "Days").text = str(rule.days)
            if rule.date is not None:
                ElementTree.SubElement(expiration, "Date").text = formatISO8601(rule.date)
            if rule.expiredObjectDeleteMarker is not None:
                ElementTree.SubElement(expiration, "ExpiredObjectDeleteMarker").text = (
                    "true" if rule.expiredObjectDeleteMarker else "false"
                )
        if rule.noncurrentDays is not None:
            noncurrent = ElementTree.SubElement(element, "NoncurrentVersionExpiration")
            ElementTree.SubElement(noncurrent, "NoncurrentDays").text = str(rule.noncurrentDays)
            if rule.newerNoncurrentVersions is not None:
                ElementTree.SubElement(noncurrent, "NewerNoncurrentVersions").text = str(rule.newerNoncurrentVersions)
        if rule.abortDays is not None:
            abort = ElementTree.SubElement(element, "AbortIncompleteMultipartUpload")
            ElementTree.SubElement(abort, "DaysAfterInitiation").text = str(rule.abortDays)
    return xml.serialize(root)


def _writeTag(parent: ElementTree.Element, key: str, value: str) -> None:
    tag = ElementTree.SubElement(parent, "Tag")
    ElementTree.SubElement(tag, "Key").text = key
    ElementTree.SubElement(tag, "Value").text = value


def _writeFilter(parent: ElementTree.Element, f: Filter) -> None:
    if f.shape == LEGACY:
        ElementTree.SubElement(parent, "Prefix").text = f.prefix
        return
    element = ElementTree.SubElement(parent, "Filter")
    if f.shape == PREFIX:
        ElementTree.SubElement(element, "Prefix").text = f.prefix
    elif f.shape == TAG:
        _writeTag(element, *f.tags[0])
    elif f.shape == GREATER:
        ElementTree.SubElement(element, "ObjectSizeGreaterThan").text = str(f.greaterThan)
    elif f.shape == LESS:
        ElementTree.SubElement(element, "ObjectSizeLessThan").text = str(f.lessThan)
    elif f.shape == AND:
        both = ElementTree.SubElement(element, "And")
        ElementTree.SubElement(both, "Prefix").text = f.prefix
        for key, value in f.tags:
            _writeTag(both, key, value)
        if f.greaterThan is not None:
            ElementTree.SubElement(both, "ObjectSizeGreaterThan").text = str(f.greaterThan)
        if f.lessThan is not None:
            ElementTree.SubElement(both, "ObjectSizeLessThan").text = str(f.lessThan)


# -- evaluation -----------------------------------------------------------------


class Version(NamedTuple):
    """
    What the rules look at in one version or delete marker.

    @ivar noncurrentSince: when it stopped being the latest (0: unknown, or
        the latest).
    @ivar newerNoncurrent: how many noncurrent versions of the key newer than
        this one are kept (for C{NewerNoncurrentVersions}).
    @ivar onlyVersion: for a latest delete marker, whether it is the key's
        only version (an expired object delete marker).
    """

    key: str
    size: int
    modified: float
    isLatest: bool
    deleteMarker: bool
    noncurrentSince: float = 0.0
    newerNoncurrent: int = 0
    onlyVersion: bool = False


@attrs.frozen
class Decision:
    """What to do to a version, and which rule says so."""

    action: str
    rule: str


class _NeedsTags:
    """L{evaluate}'s answer when only the version's tags can decide."""

    def __repr__(self) -> str:
        return "NEEDS_TAGS"


NEEDS_TAGS = _NeedsTags()


def _due(rule: Rule, v: Version, now: float) -> Optional[str]:
    """The action C{rule} takes on C{v} now, its filter aside."""
    if v.isLatest and not v.deleteMarker:
        if rule.days is not None and now >= expiryTime(v.modified, rule.days):
            return EXPIRE_CURRENT
        if rule.date is not None and now >= rule.date:
            return EXPIRE_CURRENT
        return None
    if v.isLatest:
        if not v.onlyVersion:
            return None
        if rule.expiredObjectDeleteMarker:
            return REMOVE_MARKER
        if rule.days is not None and now >= expiryTime(v.modified, rule.days):
            return REMOVE_MARKER
        if rule.date is not None and now >= rule.date:
            return REMOVE_MARKER
        return None
    if rule.noncurrentDays is None or v.noncurrentSince <= 0:
        return None
    if now < expiryTime(v.noncurrentSince, rule.noncurrentDays):
        return None
    if rule.newerNoncurrentVersions is not None and v.newerNoncurrent < rule.newerNoncurrentVersions:
        return None
    return EXPIRE_NONCURRENT


def evaluate(rules: Sequence[Rule], v: Version, now: float, tags: Optional[Tags] = ()) -> Union[Decision, None, _NeedsTags]:
    """
    What the enabled rules do to a version now: a L{Decision}, or C{None}.

    @param tags: the version's tags; C{None} if not known yet, and then the
        answer is L{NEEDS_TAGS} when only a rule with a tag filter would act
        (the caller reads the record and asks again).  A delete marker has
        no tags.
    """
    needsTags = False
    for rule in rules:
        if not rule.enabled:
            continue
        action = _due(rule, v, now)
        if action is None:
            continue
        if rule.filter.tags and tags is None and not v.deleteMarker:
            if rule.filter.matches(v.key, v.size, rule.filter.tags, v.deleteMarker):
                needsTags = True
            continue
        if rule.filter.matches(v.key, v.size, tags or (), v.deleteMarker):
            return Decision(action, rule.id)
    return NEEDS_TAGS if needsTags else None


def abortDue(rules: Sequence[Rule], key: str, initiated: float, now: float) -> Optional[str]:
    """The ID of an enabled rule that aborts an upload of C{key} initiated at C{initiated}, now; or C{None}."""
    for rule in rules:
        if rule.enabled and rule.abortDays is not None and key.startswith(rule.filter.prefix):
            if now >= expiryTime(initiated, rule.abortDays):
                return rule.id
    return None


def scanPrefix(rules: Sequence[Rule]) -> str:
    """The longest prefix every key some rule could match starts with (a walk need look no further)."""
    prefixes = [rule.filter.prefix for rule in rules]
    return os.path.commonprefix(prefixes) if prefixes else ""


def expiration(rules: Sequence[Rule], key: str, size: int, tags: Tags, modified: float) -> Optional[Tuple[float, str]]:
    """
    When an C{Expiration} rule expires the current version described, and
    which: the earliest of the enabled rules whose filter matches; C{None}
    if none does.
    """
    best: Optional[Tuple[float, str]] = None
    for rule in rules:
        if not rule.enabled or not rule.expires or not rule.filter.matches(key, size, tags):
            continue
        when = expiryTime(modified, rule.days) if rule.days is not None else rule.date
        assert when is not None
        if best is None or when < best[0]:
            best = (when, rule.id)
    return best


def expirationHeader(bucket: BucketRecord, record: ObjectRecord) -> Dict[str, str]:
    """
    The C{x-amz-expiration} header for a response about C{record}, the
    current version of its key: C{{}} unless a rule of C{bucket} expires it.
    """
    if record.deleteMarker or bucket.configValue(CONFIG_NAME) is None:
        return {}
    found = expiration(bucketRules(bucket), record.key, record.size, record.tags, record.modified)
    if found is None:
        return {}
    when, ruleId = found
    return {EXPIRATION_HEADER: f'expiry-date="{formatHTTPDate(when)}", rule-id="{quote(ruleId, safe="")}"'}


async def readExpirationHeader(ctx: S3Context, bucket: BucketRecord, record: ObjectRecord, named: bool) -> Dict[str, str]:
    """
    L{expirationHeader} for a GET or HEAD: when the request C{named} a
    version, only if that version is the key's latest (rules on current
    versions say nothing of older ones).
    """
    if bucket.configValue(CONFIG_NAME) is None:
        return {}
    if named and bucket.versioning is not None:
        latest = await ctx.metadata.getVersion(bucket.name, record.key)
        if latest is None or latest.versionId != record.versionId:
            return {}
    return expirationHeader(bucket, record)


# -- Put/Get/DeleteBucketLifecycleConfiguration ---------------------------------


async def putBucketLifecycleConfiguration(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutBucketLifecycleConfiguration: validate the document, replace the bucket's rules durably."""
    bucket = ownedBucket(call)
    requireDigest(call.headers)
    value = rulesToJSON(parseLifecycleConfiguration(call.document))
    await ctx.metadata.updateBucket(bucket.name, lambda record: record.withConfig(CONFIG_NAME, value))
    sendEmpty(request, 200)


async def getBucketLifecycleConfiguration(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetBucketLifecycleConfiguration: the rules, or 404 NoSuchLifecycleConfiguration."""
    bucket = ownedBucket(call)
    if bucket.configValue(CONFIG_NAME) is None:
        raise S3Error("NoSuchLifecycleConfiguration", extra={"BucketName": bucket.name})
    sendXML(request, lifecycleConfiguration(bucketRules(bucket)))


async def deleteBucketLifecycle(ctx: S3Context, call: "Call", request: Request) -> None:
    """DeleteBucketLifecycle: 204, whether or not there were rules."""
    bucket = ownedBucket(call)
    if bucket.configValue(CONFIG_NAME) is not None:
        await ctx.metadata.updateBucket(bucket.name, lambda record: record.withConfig(CONFIG_NAME, None))
    sendEmpty(request, 204)
