"""
Object Lock (write once, read many): the bucket's configuration
(``?object-lock``), each version's retention (``?retention``) and legal hold
(``?legal-hold``), the lock a new version gets, and the rules that keep a
locked version from being destroyed.

A bucket created with C{x-amz-bucket-object-lock-enabled: true}, or given a
configuration while its versioning is C{Enabled}, has Object Lock for good
(L{BucketRecord.objectLock}), and its versioning can no longer be suspended
(L{fasterstore.s3.versions.setVersioning}): an upload never replaces a
version, it adds one.  Its default retention is
the bucket's C{"object-lock"} sub-resource document, kept in the compact
form of L{DefaultRetention.encode}.

A new version (PutObject, CopyObject, CompleteMultipartUpload, a form POST)
takes the retention its request names in C{x-amz-object-lock-mode} and
C{x-amz-object-lock-retain-until-date}, or else the bucket's default
(counted from the version's creation time, on the injected clock), and the
legal hold of C{x-amz-object-lock-legal-hold}; a copy never inherits its
source's lock, as AWS documents.  A write with lock parameters (its own, or
the bucket's default) must carry C{Content-MD5} or an C{x-amz-checksum-*}
header or trailer.

A version is protected while its legal hold is on, or until its retain-until
date (L{isLocked}): a DELETE naming it is C{403 AccessDenied}, except that a
caller who may bypass governance (L{bypassesGovernance}) removes a
GOVERNANCE version.  The store runs the check inside the delete's own
transaction, against the version as the delete finds it, so no race lets a
locked version go.  A DELETE without a version id only adds a delete marker
and is always allowed.  A retention can always be extended; COMPLIANCE can
never be shortened, removed or turned into GOVERNANCE before it expires;
GOVERNANCE only with the bypass (L{changedRetention}).
Tests: tests/unit/test_objectlock.py.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Dict, Mapping, Optional, Tuple
from xml.etree import ElementTree

import attrs
from twisted.web.server import Request

from fasterstore.auth.integrity import requireDigest as _requireBodyDigest
from fasterstore.errors import S3Error
from fasterstore.http.dates import MAX_TIMESTAMP, utcTimestamp
from fasterstore.metadata.records import COMPLIANCE, ENABLED, GOVERNANCE, BucketRecord, ObjectRecord, UploadRecord
from fasterstore.s3 import xml
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.context import S3Context
from fasterstore.s3.responses import sendEmpty, sendXML
from fasterstore.s3.versions import addressedVersion, requestedVersion

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

#: The bucket sub-resource document holding the default retention.
CONFIG_NAME = "object-lock"

MODE_HEADER = "x-amz-object-lock-mode"
UNTIL_HEADER = "x-amz-object-lock-retain-until-date"
HOLD_HEADER = "x-amz-object-lock-legal-hold"
BYPASS_HEADER = "x-amz-bypass-governance-retention"

#: The retention modes, as spelled on the wire (case-sensitive, as on AWS).
MODES = (GOVERNANCE, COMPLIANCE)

#: The longest default retention AWS accepts.
MAX_DAYS = 36500
MAX_YEARS = 100

#: The operations whose headers may ask for a new version's lock.
WRITES_WITH_LOCK = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload"})

MISSING_CONFIGURATION = "Bucket is missing Object Lock Configuration"
PROTECTED = "Access Denied because object protected by object lock."
PAST_DATE = "The retain until date must be in the future!"
BOTH_HEADERS = "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
VERSIONING_REQUIRED = "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"


def digestRequired(operation: str) -> str:
    """AWS's message for a locked upload without a digest (C{"Put Object"} or C{"Put Part"})."""
    return f"Content-MD5 OR x-amz-checksum- HTTP header is required for {operation} requests with Object Lock parameters"


def _argument(name: str, value: str, message: str) -> S3Error:
    return S3Error("InvalidArgument", message, extra={"ArgumentName": name, "ArgumentValue": value})


def protected() -> S3Error:
    """The answer to a write a lock forbids."""
    return S3Error("AccessDenied", PROTECTED)


def missingConfiguration() -> S3Error:
    """The answer to a lock operation or header in a bucket without Object Lock."""
    return S3Error("InvalidRequest", MISSING_CONFIGURATION)


# -- dates --------------------------------------------------------------------

# ISO 8601 as S3 reads it: a full date and time, optional fractional
# seconds, and Z or an offset (botocore sends "%Y-%m-%dT%H:%M:%S[.%f]Z").
_ISO8601 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d)[Tt]"
    r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)(?P<fraction>\.\d{1,9})?"
    r"(?P<zone>[Zz]|[+-]\d\d:?\d\d)",
    re.ASCII,
)


def parseISO8601(text: str) -> Optional[float]:
    """
    A retain-until date, in seconds since the epoch, kept to the
    millisecond as AWS keeps it; C{None} if C{text} is no such date.
    """
    match = _ISO8601.fullmatch(text.strip())
    if match is None:
        return None
    when = utcTimestamp(*(int(match[name]) for name in ("year", "month", "day", "hour", "minute", "second")))
    if when is None:
        return None
    zone = match["zone"]
    if zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            return None
        offset = hours * 3600 + minutes * 60
        when += -offset if zone[0] == "+" else offset
    millis = int(match["fraction"][1:4].ljust(3, "0")) if match["fraction"] else 0
    return when + millis / 1000


def formatRetainUntil(when: float) -> str:
    """A retain-until date as S3 shows it, in headers and documents: C{2030-01-01T00:00:00.000Z}."""
    seconds, millis = divmod(int(round(when * 1000)), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _addYears(when: float, years: int) -> float:
    """C{when} plus calendar years (29 February lands on 1 March in a common year)."""
    start = datetime.fromtimestamp(when, timezone.utc)
    year = start.year + years
    if year > 9999:
        return float(MAX_TIMESTAMP)
    day = start.day
    if start.month == 2 and day == 29 and not calendar.isleap(year):
        moved = start.replace(year=year, month=3, day=1)
    else:
        moved = start.replace(year=year, day=day)
    return moved.timestamp()


# -- the bucket's configuration ----------------------------------------------


@attrs.frozen
class DefaultRetention:
    """
    The retention a bucket gives a new version that asks for none.

    @ivar days: the period in days, or C{None} when it is in C{years}.
    """

    mode: str
    days: Optional[int] = None
    years: Optional[int] = None

    def until(self, created: float) -> float:
        """The retain-until date of a version created at C{created}."""
        if self.days is not None:
            return created + self.days * 86400
        assert self.years is not None
        return _addYears(created, self.years)

    def encode(self) -> str:
        """The compact form kept as the bucket's C{"object-lock"} document."""
        period = {"days": self.days} if self.days is not None else {"years": self.years}
        return json.dumps({"mode": self.mode, **period}, sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> "DefaultRetention":
        """The default L{encode} kept."""
        d = json.loads(text)
        return cls(str(d["mode"]), d.get("days"), d.get("years"))


def defaultRetention(bucket: BucketRecord) -> Optional[DefaultRetention]:
    """The bucket's default retention, if it has Object Lock and one."""
    if not bucket.objectLock:
        return None
    text = bucket.configValue(CONFIG_NAME)
    return DefaultRetention.decode(text) if text else None


def _period(text: str, name: str, maximum: int) -> int:
    """A C{Days} or C{Years} value: an C{xs:int}, positive and within AWS's limit."""
    value = text.strip()
    if re.fullmatch(r"[+-]?[0-9]{1,10}", value, re.ASCII) is None or not -(2**31) <= int(value) < 2**31:
        raise S3Error("MalformedXML")
    number = int(value)
    if number <= 0:
        raise _argument(name, value, "Default retention period must be a positive integer value.")
    if number > maximum:
        raise _argument(name, value, "Default retention period too large.")
    return number


def parseObjectLockConfiguration(body: bytes) -> Optional[DefaultRetention]:
    """
    The default retention an C{ObjectLockConfiguration} document sets
    (C{None}: none, the configuration only keeps Object Lock enabled).

    @raise S3Error: C{MalformedXML} for another document, an
        C{ObjectLockEnabled} other than C{Enabled}, a C{Rule} without a
        mode (case-sensitive) or with both or neither of C{Days} and
        C{Years}; C{InvalidArgument} for a period that is not positive or
        is too long (36,500 days, 100 years), as AWS answers.
    """
    root = xml.parseXML(body)
    if xml.localName(root.tag) != "ObjectLockConfiguration":
        raise S3Error("MalformedXML")
    if (xml.childText(root, "ObjectLockEnabled") or "").strip() != "Enabled":
        raise S3Error("MalformedXML")
    rule = xml.findChild(root, "Rule")
    if rule is None:
        return None
    retention = xml.findChild(rule, "DefaultRetention")
    if retention is None:
        raise S3Error("MalformedXML")
    mode = (xml.childText(retention, "Mode") or "").strip()
    days, years = xml.childText(retention, "Days"), xml.childText(retention, "Years")
    if mode not in MODES or (days is None) == (years is None):
        raise S3Error("MalformedXML")
    if days is not None:
        return DefaultRetention(mode, days=_period(days, "Days", MAX_DAYS))
    assert years is not None
    return DefaultRetention(mode, years=_period(years, "Years", MAX_YEARS))


def objectLockConfiguration(default: Optional[DefaultRetention]) -> bytes:
    """The GetObjectLockConfiguration document of a bucket with Object Lock."""
    root = ElementTree.Element("ObjectLockConfiguration", xmlns=xml.S3_NAMESPACE)
    ElementTree.SubElement(root, "ObjectLockEnabled").text = "Enabled"
    if default is not None:
        retention = ElementTree.SubElement(ElementTree.SubElement(root, "Rule"), "DefaultRetention")
        ElementTree.SubElement(retention, "Mode").text = default.mode
        if default.days is not None:
            ElementTree.SubElement(retention, "Days").text = str(default.days)
        else:
            ElementTree.SubElement(retention, "Years").text = str(default.years)
    return xml.serialize(root)


def lockBucket(default: Optional[DefaultRetention]) -> Callable[[BucketRecord], BucketRecord]:
    """
    The bucket change PutObjectLockConfiguration makes, run inside the
    store's write: enable Object Lock if the bucket's versioning is
    C{Enabled} as the write finds it, and set (or clear) the default.

    @raise S3Error: C{InvalidBucketState} (409) for a bucket without Object
        Lock whose versioning is not C{Enabled}.
    """

    def change(record: BucketRecord) -> BucketRecord:
        if not record.objectLock:
            if record.versioning != ENABLED:
                raise S3Error("InvalidBucketState", VERSIONING_REQUIRED)
            record = attrs.evolve(record, objectLock=True)
        return record.withConfig(CONFIG_NAME, default.encode() if default is not None else None)

    return change


# -- a new version's lock ------------------------------------------------------


@attrs.frozen
class Lock:
    """
    The lock a write asks for a new version: a retention (C{mode} and
    C{until} together) and a legal hold (C{None}: not asked).
    """

    mode: Optional[str] = None
    until: Optional[float] = None
    legalHold: Optional[bool] = None

    @property
    def requested(self) -> bool:
        """Whether the write named any Object Lock parameter."""
        return self.mode is not None or self.legalHold is not None

    @classmethod
    def ofUpload(cls, upload: UploadRecord) -> "Lock":
        """What a multipart upload asked for at its creation."""
        return cls(upload.lockMode, upload.lockUntil, upload.legalHold)


def requestedLock(headers: Mapping[str, str], bucket: BucketRecord, now: float) -> Optional[Lock]:
    """
    The lock a write's C{x-amz-object-lock-*} headers (or a form's fields)
    ask for, checked as AWS checks them: their values first, then that the
    bucket has Object Lock.  C{None} when none is given.

    @raise S3Error: C{InvalidArgument} (a mode without a date or the other
        way round, an unknown mode, a date that is not ISO 8601 or not in
        the future, a legal hold other than C{ON} or C{OFF}), naming the
        header; C{InvalidRequest} for a bucket without Object Lock.
    """
    mode, until, hold = headers.get(MODE_HEADER), headers.get(UNTIL_HEADER), headers.get(HOLD_HEADER)
    if mode is None and until is None and hold is None:
        return None
    lock = Lock()
    if mode is not None or until is not None:
        if until is None:
            raise _argument(UNTIL_HEADER, "", BOTH_HEADERS)
        if mode is None:
            raise _argument(MODE_HEADER, "", BOTH_HEADERS)
        if mode.strip() not in MODES:
            raise _argument(MODE_HEADER, mode, "Unknown wormMode directive.")
        date = parseISO8601(until)
        if date is None:
            raise _argument(UNTIL_HEADER, until, "The retain until date must be provided in ISO 8601 format")
        if date <= now:
            raise _argument(UNTIL_HEADER, until, PAST_DATE)
        lock = Lock(mode.strip(), date)
    if hold is not None:
        if hold.strip() not in ("ON", "OFF"):
            raise _argument(HOLD_HEADER, hold, "Legal Hold must be either of 'ON' or 'OFF'")
        lock = attrs.evolve(lock, legalHold=hold.strip() == "ON")
    if not bucket.objectLock:
        raise missingConfiguration()
    return lock


def requireDigest(headers: Mapping[str, str], bucket: BucketRecord, lock: Optional[Lock], operation: str) -> None:
    """
    Refuse, before its body is read, an upload with Object Lock parameters
    (its own, or the bucket's default retention) whose head names no digest
    of it: neither C{Content-MD5} nor an C{x-amz-checksum-*} header or
    trailer (a SigV4 payload hash does not count, as on AWS).

    @param operation: C{"Put Object"} or C{"Put Part"}, for AWS's message.
    @raise S3Error: C{InvalidRequest}.
    """
    if not bucket.objectLock:
        return
    if (lock is None or not lock.requested) and defaultRetention(bucket) is None:
        return
    try:
        _requireBodyDigest(headers)
    except S3Error:
        raise S3Error("InvalidRequest", digestRequired(operation)) from None


def withLock(record: ObjectRecord, lock: Optional[Lock], bucket: BucketRecord) -> ObjectRecord:
    """
    C{record} (a new version) with the lock it gets: the retention C{lock}
    names, else the bucket's default counted from the version's creation
    (C{record.modified}); the legal hold C{lock} names.  Whatever lock
    C{record} had (a copy's source's) is dropped.
    """
    mode: Optional[str] = None
    until: Optional[float] = None
    if lock is not None and lock.mode is not None:
        mode, until = lock.mode, lock.until
    else:
        default = defaultRetention(bucket)
        if default is not None:
            mode, until = default.mode, default.until(record.modified)
    hold = None if lock is None else lock.legalHold
    return attrs.evolve(record, lockMode=mode, lockUntil=until, legalHold=hold)


def lockHeaders(record: ObjectRecord) -> Dict[str, str]:
    """What GET and HEAD answer about a version's lock (nothing for none)."""
    headers: Dict[str, str] = {}
    if record.lockMode is not None and record.lockUntil is not None:
        headers[MODE_HEADER] = record.lockMode
        headers[UNTIL_HEADER] = formatRetainUntil(record.lockUntil)
    if record.legalHold is not None:
        headers[HOLD_HEADER] = "ON" if record.legalHold else "OFF"
    return headers


# -- what a lock forbids -------------------------------------------------------


def retentionActive(record: ObjectRecord, now: float) -> bool:
    """Whether the version's retention still runs at C{now} (it ends at its retain-until date)."""
    return record.lockMode is not None and record.lockUntil is not None and now < record.lockUntil


def isLocked(record: ObjectRecord, now: float, bypass: bool = False) -> bool:
    """
    Whether nothing may remove the version at C{now}: its legal hold is on,
    or its retention runs (a GOVERNANCE one does not hold against
    C{bypass}).  Delete markers are never locked.  Every path that removes
    a version asks this (deletes here; lifecycle rules).
    """
    if record.deleteMarker:
        return False
    if record.legalHold:
        return True
    return retentionActive(record, now) and (record.lockMode == COMPLIANCE or not bypass)


def bypassesGovernance(call: "Call") -> bool:
    """
    Whether the request may act on GOVERNANCE versions as if they were
    unlocked: it asks to (C{x-amz-bypass-governance-retention: true}) and
    its caller may (AWS's C{s3:BypassGovernanceRetention}: today the bucket
    owner, the only caller a bucket operation gets this far with).  The one
    place a policy engine has to answer.
    """
    if call.headers.get(BYPASS_HEADER, "").strip().lower() != "true":
        return False
    bucket = ownedBucket(call)
    return call.auth is not None and call.auth.credentials.owner == bucket.owner


Precondition = Callable[[Optional[ObjectRecord]], None]


def guardDeletion(call: "Call", versionId: Optional[str], precondition: Optional[Precondition], now: float) -> Optional[Precondition]:
    """
    The precondition a DELETE (or a DeleteObjects entry) hands the store:
    C{precondition}, then, when it names a version, that version's lock,
    judged against the version as the delete's transaction finds it.

    @raise S3Error: C{InvalidArgument} for the bypass header in a bucket
        without Object Lock, as AWS answers.
    """
    bucket = ownedBucket(call)
    if BYPASS_HEADER in call.headers and not bucket.objectLock:
        raise _argument(
            BYPASS_HEADER, call.headers[BYPASS_HEADER],
            "x-amz-bypass-governance-retention is only applicable to Object Lock enabled buckets.",
        )
    if versionId is None:
        return precondition
    # Even in a bucket that had no Object Lock when the request began: the
    # check costs nothing for a version without a lock.
    bypass = bypassesGovernance(call)

    def guarded(version: Optional[ObjectRecord]) -> None:
        if precondition is not None:
            precondition(version)
        if version is not None and isLocked(version, now, bypass):
            raise protected()

    return guarded


def changedRetention(
    current: ObjectRecord, mode: Optional[str], until: Optional[float], now: float, bypass: bool
) -> ObjectRecord:
    """
    The version with the retention PutObjectRetention asks for (C{None}:
    removed), run inside the store's write against the version as it finds
    it.  While a retention runs, extending it in the same mode is always
    allowed; any other change (shorter, removed, another mode) only to a
    GOVERNANCE retention with C{bypass}, never to a COMPLIANCE one.

    @raise S3Error: C{AccessDenied}.
    """
    if retentionActive(current, now):
        assert current.lockUntil is not None
        extends = mode == current.lockMode and until is not None and until >= current.lockUntil
        if not extends and (current.lockMode == COMPLIANCE or not bypass):
            raise protected()
    return attrs.evolve(current, lockMode=mode, lockUntil=until)


# -- retention and legal hold documents ---------------------------------------


def parseRetention(body: bytes, now: float) -> Tuple[Optional[str], Optional[float]]:
    """
    The mode and retain-until date of a C{Retention} document; both
    C{None} for an empty one, which removes the retention.

    @raise S3Error: C{MalformedXML} for another document, a mode without a
        date (or the other way round), an unknown mode or a date that is
        not one; C{InvalidArgument} for a date not in the future.
    """
    root = xml.parseXML(body)
    if xml.localName(root.tag) != "Retention":
        raise S3Error("MalformedXML")
    mode, until = xml.childText(root, "Mode"), xml.childText(root, "RetainUntilDate")
    if mode is None and until is None:
        return None, None
    if mode is None or until is None or mode.strip() not in MODES:
        raise S3Error("MalformedXML")
    date = parseISO8601(until)
    if date is None:
        raise S3Error("MalformedXML")
    if date <= now:
        raise _argument("RetainUntilDate", until, PAST_DATE)
    return mode.strip(), date


def retentionDocument(record: ObjectRecord) -> bytes:
    """The GetObjectRetention document of a version with a retention."""
    assert record.lockMode is not None and record.lockUntil is not None
    root = ElementTree.Element("Retention", xmlns=xml.S3_NAMESPACE)
    ElementTree.SubElement(root, "Mode").text = record.lockMode
    ElementTree.SubElement(root, "RetainUntilDate").text = formatRetainUntil(record.lockUntil)
    return xml.serialize(root)


def parseLegalHold(body: bytes) -> bool:
    """
    Whether a C{LegalHold} document puts the hold on.

    @raise S3Error: C{MalformedXML} for another document or a C{Status}
        other than C{ON} or C{OFF}.
    """
    root = xml.parseXML(body)
    if xml.localName(root.tag) != "LegalHold":
        raise S3Error("MalformedXML")
    status = (xml.childText(root, "Status") or "").strip()
    if status not in ("ON", "OFF"):
        raise S3Error("MalformedXML")
    return status == "ON"


def legalHoldDocument(on: bool) -> bytes:
    """The GetObjectLegalHold document."""
    root = ElementTree.Element("LegalHold", xmlns=xml.S3_NAMESPACE)
    ElementTree.SubElement(root, "Status").text = "ON" if on else "OFF"
    return xml.serialize(root)


# -- handlers ------------------------------------------------------------------


def _lockedBucket(call: "Call") -> BucketRecord:
    """The addressed bucket, which must have Object Lock."""
    bucket = ownedBucket(call)
    if not bucket.objectLock:
        raise missingConfiguration()
    return bucket


async def putObjectLockConfiguration(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    PutObjectLockConfiguration: set or clear the default retention, and
    enable Object Lock on a bucket whose versioning is C{Enabled} (it never
    goes off again).
    """
    bucket = ownedBucket(call)
    default = parseObjectLockConfiguration(call.document)
    await ctx.metadata.updateBucket(bucket.name, lockBucket(default))
    sendEmpty(request, 200)


async def getObjectLockConfiguration(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetObjectLockConfiguration: C{ObjectLockConfigurationNotFoundError} for a bucket without Object Lock."""
    bucket = ownedBucket(call)
    if not bucket.objectLock:
        raise S3Error("ObjectLockConfigurationNotFoundError", extra={"BucketName": bucket.name})
    sendXML(request, objectLockConfiguration(defaultRetention(bucket)))


async def putObjectRetention(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutObjectRetention: set, extend, shorten or remove a version's retention, as its lock allows."""
    now = ctx.clock.seconds()
    mode, until = parseRetention(call.document, now)
    bucket = _lockedBucket(call)
    record = await addressedVersion(ctx, call, request.method.decode("latin-1"))
    bypass = bypassesGovernance(call)
    await ctx.metadata.updateVersion(
        bucket.name, record.key, requestedVersion(call),
        lambda version: changedRetention(version, mode, until, now, bypass),
    )
    sendEmpty(request, 200)


async def getObjectRetention(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetObjectRetention: C{NoSuchObjectLockConfiguration} (404) for a version without one."""
    _lockedBucket(call)
    record = await addressedVersion(ctx, call, request.method.decode("latin-1"))
    if record.lockMode is None or record.lockUntil is None:
        raise S3Error("NoSuchObjectLockConfiguration")
    sendXML(request, retentionDocument(record))


async def putObjectLegalHold(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutObjectLegalHold: put a version's legal hold on or off (anyone who may write it can)."""
    on = parseLegalHold(call.document)
    bucket = _lockedBucket(call)
    record = await addressedVersion(ctx, call, request.method.decode("latin-1"))
    await ctx.metadata.updateVersion(
        bucket.name, record.key, requestedVersion(call), lambda version: attrs.evolve(version, legalHold=on)
    )
    sendEmpty(request, 200)


async def getObjectLegalHold(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    GetObjectLegalHold: C{ON} or C{OFF}; C{NoSuchObjectLockConfiguration}
    (404) for a version whose legal hold was never set, as AWS answers.
    """
    _lockedBucket(call)
    record = await addressedVersion(ctx, call, request.method.decode("latin-1"))
    if record.legalHold is None:
        raise S3Error("NoSuchObjectLockConfiguration")
    sendXML(request, legalHoldDocument(record.legalHold))


__all__ = [
    "CONFIG_NAME",
    "DefaultRetention",
    "Lock",
    "WRITES_WITH_LOCK",
    "bypassesGovernance",
    "changedRetention",
    "defaultRetention",
    "formatRetainUntil",
    "getObjectLegalHold",
    "getObjectLockConfiguration",
    "getObjectRetention",
    "guardDeletion",
    "isLocked",
    "lockHeaders",
    "parseISO8601",
    "putObjectLegalHold",
    "putObjectLockConfiguration",
    "putObjectRetention",
    "requestedLock",
    "requireDigest",
    "withLock",
]
