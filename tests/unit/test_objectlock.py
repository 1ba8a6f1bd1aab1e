"""
Tests for L{fasterstore.s3.objectlock}: Object Lock through the real
resource on the SQLite store, with botocore-signed requests and botocore's
own client, on the injected clock (a retention ends when the clock passes
its date; default retention is counted from the clock).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import attrs
from botocore.exceptions import ClientError
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.records import COMPLIANCE, ENABLED, GOVERNANCE, ObjectRecord, versionIdOf
from fasterstore.s3 import objectlock
from fasterstore.s3.objectlock import (
    DefaultRetention,
    changedRetention,
    formatRetainUntil,
    isLocked,
    parseISO8601,
    parseObjectLockConfiguration,
)
from tests.unit.test_batch import BotoTestCase, crc32Header, md5Header
from tests.unit.test_post import PostTestCase
from tests.unit.test_resource import NS, OTHER, ResourceTestCase

Response = Tuple[int, Dict[str, str], bytes]

MODE = "x-amz-object-lock-mode"
UNTIL = "x-amz-object-lock-retain-until-date"
HOLD = "x-amz-object-lock-legal-hold"
BYPASS = {"x-amz-bypass-governance-retention": "true"}
DIGEST_MESSAGE = (
    "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"
)

#: A well-formed version id no version has.
UNKNOWN = versionIdOf(987654)


def configuration(mode: Optional[str] = None, days: Optional[str] = None, years: Optional[str] = None) -> bytes:
    """A PutObjectLockConfiguration body (no Rule without a mode)."""
    rule = ""
    if mode is not None:
        period = (f"<Days>{days}</Days>" if days is not None else "") + (f"<Years>{years}</Years>" if years is not None else "")
        rule = f"<Rule><DefaultRetention><Mode>{mode}</Mode>{period}</DefaultRetention></Rule>"
    return (
        '<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<ObjectLockEnabled>Enabled</ObjectLockEnabled>{rule}</ObjectLockConfiguration>"
    ).encode()


def retention(mode: Optional[str], until: Optional[str]) -> bytes:
    """A PutObjectRetention body (elements left out when None)."""
    inner = (f"<Mode>{mode}</Mode>" if mode is not None else "") + (
        f"<RetainUntilDate>{escape(until)}</RetainUntilDate>" if until is not None else ""
    )
    return f'<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</Retention>'.encode()


def legalHold(status: str) -> bytes:
    """A PutObjectLegalHold body."""
    return f'<LegalHold xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>{status}</Status></LegalHold>'.encode()


def completion(etag: str) -> bytes:
    """A CompleteMultipartUpload body naming part 1."""
    return (
        f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{escape(etag)}</ETag></Part>"
        "</CompleteMultipartUpload>"
    ).encode()


class LockTestCase(ResourceTestCase):
    """Helpers: a bucket with Object Lock, uploads with a digest, retention and hold requests."""

    def setUp(self) -> None:
        super().setUp()
        # Whole seconds: a retention of N seconds ends exactly N seconds on.
        self.server.clock.rightNow = float(int(self.server.clock.seconds()))
        self.createLockedBucket()

    @property
    def now(self) -> float:
        return self.server.clock.seconds()

    def later(self, seconds: float) -> str:
        """A retain-until date C{seconds} from the clock's now."""
        return formatRetainUntil(self.now + seconds)

    def createLockedBucket(self, name: str = "locked") -> None:
        status, _, body = self.request("PUT", "/" + name, headers={"x-amz-bucket-object-lock-enabled": "true"})
        self.assertEqual(status, 200, body)

    def put(self, key: str, data: bytes = b"data", headers: Optional[Dict[str, str]] = None, bucket: str = "locked") -> str:
        """PUT with Content-MD5; the new version's id."""
        status, answered, body = self.request("PUT", f"/{bucket}/{quote(key)}", data, dict(md5Header(data), **(headers or {})))
        self.assertEqual(status, 200, body)
        return answered.get("x-amz-version-id", "")

    def version(self, key: str, versionId: Optional[str], bucket: str = "locked") -> ObjectRecord:
        record: Optional[ObjectRecord] = self.server.now.getVersion(bucket, key, versionId)
        assert record is not None
        return record

    def lock(self, key: str, mode: str, seconds: float, bucket: str = "locked") -> str:
        """PUT an object with a retention of C{seconds} from now; its version id."""
        return self.put(key, b"locked " + key.encode(), {MODE: mode, UNTIL: self.later(seconds)}, bucket)

    def setRetention(
        self, key: str, body: bytes, versionId: Optional[str] = None, headers: Optional[Dict[str, str]] = None,
        bucket: str = "locked",
    ) -> Response:
        query = f"&versionId={versionId}" if versionId is not None else ""
        return self.request("PUT", f"/{bucket}/{quote(key)}?retention{query}", body, headers)

    def deleteVersion(self, key: str, versionId: str, headers: Optional[Dict[str, str]] = None) -> Response:
        return self.request("DELETE", f"/locked/{quote(key)}?versionId={versionId}", headers=headers)

    def assertProtected(self, result: Response) -> None:
        """A 403 AccessDenied that says the object is protected by Object Lock."""
        self.assertError(result, 403, "AccessDenied")
        self.assertEqual(ElementTree.fromstring(result[2]).findtext("Message"), objectlock.PROTECTED)

    def assertArgument(self, result: Response, name: str, value: str, message: str) -> None:
        """An InvalidArgument naming the argument and its value, with AWS's message."""
        self.assertError(result, 400, "InvalidArgument")
        document = ElementTree.fromstring(result[2])
        self.assertEqual(
            (document.findtext("ArgumentName"), document.findtext("ArgumentValue") or "", document.findtext("Message")),
            (name, value, message),
        )

    def errorMessage(self, result: Response) -> Optional[str]:
        return ElementTree.fromstring(result[2]).findtext("Message")


class BucketConfigurationTests(LockTestCase):
    """CreateBucket with Object Lock, Put/GetObjectLockConfiguration, and versioning that cannot be suspended."""

    def getConfiguration(self, bucket: str = "locked") -> ElementTree.Element:
        status, _, body = self.request("GET", f"/{bucket}?object-lock")
        self.assertEqual(status, 200, body)
        return ElementTree.fromstring(body)

    def test_createWithLock(self) -> None:
        """The header makes a bucket with Object Lock and versioning Enabled from the start."""
        record = self.server.now.getBucket("locked")
        self.assertEqual((record.objectLock, record.versioning), (True, ENABLED))
        status, _, body = self.request("GET", "/locked?versioning")
        self.assertEqual(ElementTree.fromstring(body).findtext(f"{NS}Status"), "Enabled")
        document = self.getConfiguration()
        self.assertEqual(document.tag, f"{NS}ObjectLockConfiguration")
        self.assertEqual(document.findtext(f"{NS}ObjectLockEnabled"), "Enabled")
        self.assertIsNone(document.find(f"{NS}Rule"))

    def test_createWithoutLock(self) -> None:
        """A header other than true makes a plain bucket."""
        self.assertEqual(self.request("PUT", "/plain", headers={"x-amz-bucket-object-lock-enabled": "false"})[0], 200)
        record = self.server.now.getBucket("plain")
        self.assertEqual((record.objectLock, record.versioning), (False, None))
        result = self.request("GET", "/plain?object-lock")
        self.assertError(result, 404, "ObjectLockConfigurationNotFoundError")
        self.assertEqual(ElementTree.fromstring(result[2]).findtext("BucketName"), "plain")

    def test_recreate(self) -> None:
        """
        Re-creating one's own bucket (200 in us-east-1) asking for Object
        Lock is 409 BucketAlreadyOwnedByYou unless the bucket has it.
        """
        self.assertEqual(self.request("PUT", "/locked", headers={"x-amz-bucket-object-lock-enabled": "true"})[0], 200)
        self.createBucket("plain")
        result = self.request("PUT", "/plain", headers={"x-amz-bucket-object-lock-enabled": "true"})
        self.assertError(result, 409, "BucketAlreadyOwnedByYou")
        self.assertFalse(self.server.now.getBucket("plain").objectLock)

    def test_suspendRefused(self) -> None:
        """Versioning of a bucket with Object Lock cannot be suspended (409); Enabled again is a no-op."""
        body = b"<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"
        result = self.request("PUT", "/locked?versioning", body)
        self.assertError(result, 409, "InvalidBucketState")
        self.assertIn("Object Lock configuration is present", self.errorMessage(result) or "")
        self.assertEqual(self.server.now.getBucket("locked").versioning, ENABLED)
        body = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
        self.assertEqual(self.request("PUT", "/locked?versioning", body)[0], 200)

    def test_defaultRetention(self) -> None:
        """A default in years, replaced by one in days, then cleared by a configuration without Rule."""
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration("COMPLIANCE", years="6"))[0], 200)
        rule = self.getConfiguration().find(f"{NS}Rule/{NS}DefaultRetention")
        assert rule is not None
        self.assertEqual([(e.tag, e.text) for e in rule], [(f"{NS}Mode", "COMPLIANCE"), (f"{NS}Years", "6")])
        self.assertEqual(objectlock.defaultRetention(self.server.now.getBucket("locked")), DefaultRetention(COMPLIANCE, years=6))
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration("GOVERNANCE", days="30"))[0], 200)
        rule = self.getConfiguration().find(f"{NS}Rule/{NS}DefaultRetention")
        assert rule is not None
        self.assertEqual([(e.tag, e.text) for e in rule], [(f"{NS}Mode", "GOVERNANCE"), (f"{NS}Days", "30")])
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration())[0], 200)
        self.assertIsNone(self.getConfiguration().find(f"{NS}Rule"))
        record = self.server.now.getBucket("locked")
        self.assertEqual((record.objectLock, record.configValue("object-lock")), (True, None))

    def test_configurationErrors(self) -> None:
        """Each malformed configuration is refused as AWS refuses it, and nothing changes."""
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration("GOVERNANCE", days="1"))[0], 200)
        before = self.server.now.getBucket("locked")
        malformed = [
            b"", b"<nope", b"<Other/>", b"<ObjectLockConfiguration/>",
            b"<ObjectLockConfiguration><ObjectLockEnabled>Disabled</ObjectLockEnabled></ObjectLockConfiguration>",
            b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule/></ObjectLockConfiguration>",
            configuration("governance", days="1"), configuration("ABC", days="1"),
            configuration("GOVERNANCE"), configuration("GOVERNANCE", days="1", years="1"),
            configuration("GOVERNANCE", days="x"), configuration("GOVERNANCE", days="99999999999"),
        ]
        for body in malformed:
            self.assertError(self.request("PUT", "/locked?object-lock", body), 400, "MalformedXML")
        positive = "Default retention period must be a positive integer value."
        for name, value, message in [
            ("Days", "0", positive), ("Days", "-1", positive), ("Years", "0", positive),
            ("Days", "36501", "Default retention period too large."),
            ("Years", "101", "Default retention period too large."),
        ]:
            body = configuration("COMPLIANCE", **{name.lower(): value})
            self.assertArgument(self.request("PUT", "/locked?object-lock", body), name, value, message)
        self.assertEqual(self.server.now.getBucket("locked"), before)

    def test_enableOnExistingBucket(self) -> None:
        """
        A configuration on a bucket without Object Lock needs versioning
        Enabled (409 otherwise); then the bucket has Object Lock for good.
        """
        self.createBucket("plain")
        result = self.request("PUT", "/plain?object-lock", configuration())
        self.assertError(result, 409, "InvalidBucketState")
        self.assertEqual(self.errorMessage(result), objectlock.VERSIONING_REQUIRED)
        suspend = b"<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"
        enable = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"
        self.assertEqual(self.request("PUT", "/plain?versioning", suspend)[0], 200)
        self.assertError(self.request("PUT", "/plain?object-lock", configuration()), 409, "InvalidBucketState")
        self.assertFalse(self.server.now.getBucket("plain").objectLock)
        self.assertEqual(self.request("PUT", "/plain?versioning", enable)[0], 200)
        self.assertEqual(self.request("PUT", "/plain?object-lock", configuration("GOVERNANCE", days="2"))[0], 200)
        self.assertTrue(self.server.now.getBucket("plain").objectLock)
        self.assertError(self.request("PUT", "/plain?versioning", suspend), 409, "InvalidBucketState")

    def test_ownerOnly(self) -> None:
        """Another account can neither read nor set the configuration."""
        self.assertError(self.request("GET", "/locked?object-lock", creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("PUT", "/locked?object-lock", configuration(), creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("GET", "/nobucket?object-lock"), 404, "NoSuchBucket")


class UploadLockTests(LockTestCase):
    """The lock a new version gets: from its headers, or the bucket's default, on the injected clock."""

    def test_headersGiveTheLock(self) -> None:
        """Mode, date and hold headers are stored, and GET and HEAD answer them."""
        until = self.later(3600)
        versionId = self.put("k", b"kept", {MODE: "COMPLIANCE", UNTIL: until, HOLD: "ON"})
        record = self.version("k", versionId)
        self.assertEqual((record.lockMode, record.lockUntil, record.legalHold), (COMPLIANCE, parseISO8601(until), True))
        for method in ("GET", "HEAD"):
            status, headers, _ = self.request(method, "/locked/k")
            self.assertEqual(status, 200)
            self.assertEqual((headers[MODE], headers[UNTIL], headers[HOLD]), ("COMPLIANCE", until, "ON"))
        plain = self.put("plain")
        headers = self.request("HEAD", f"/locked/plain?versionId={plain}")[1]
        self.assertNotIn(MODE, headers)
        self.assertNotIn(HOLD, headers)

    def test_dateForms(self) -> None:
        """ISO 8601 with or without fractions, with Z or an offset; kept to the millisecond."""
        base = int(self.now) + 86400
        text = datetime.fromtimestamp(base, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        plus = datetime.fromtimestamp(base + 7200, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        for given, expected in [
            (text + "Z", base), (text + ".123456Z", base + 0.123), (plus + "+02:00", base), (text + ".5z", base + 0.5),
        ]:
            versionId = self.put("k", b"x", {MODE: "GOVERNANCE", UNTIL: given})
            self.assertAlmostEqual(self.version("k", versionId).lockUntil or 0, expected, places=6)
        self.assertEqual(self.request("HEAD", "/locked/k")[1][UNTIL], formatRetainUntil(base + 0.5))

    def test_headerErrors(self) -> None:
        """Each bad lock header is an InvalidArgument naming it, and nothing is stored."""
        future = self.later(60)
        past = formatRetainUntil(self.now - 1)
        both = objectlock.BOTH_HEADERS
        for headers, name, value, message in [
            ({MODE: "GOVERNANCE"}, UNTIL, "", both),
            ({UNTIL: future}, MODE, "", both),
            ({MODE: "governance", UNTIL: future}, MODE, "governance", "Unknown wormMode directive."),
            ({MODE: "GOVERNANCE", UNTIL: "Mon, 06 May 2024 07:08:09 GMT"}, UNTIL, "Mon, 06 May 2024 07:08:09 GMT",
             "The retain until date must be provided in ISO 8601 format"),
            ({MODE: "GOVERNANCE", UNTIL: "2030-02-30T00:00:00Z"}, UNTIL, "2030-02-30T00:00:00Z",
             "The retain until date must be provided in ISO 8601 format"),
            ({MODE: "GOVERNANCE", UNTIL: past}, UNTIL, past, objectlock.PAST_DATE),
            ({MODE: "GOVERNANCE", UNTIL: formatRetainUntil(self.now)}, UNTIL, formatRetainUntil(self.now), objectlock.PAST_DATE),
            ({HOLD: "on"}, HOLD, "on", "Legal Hold must be either of 'ON' or 'OFF'"),
        ]:
            result = self.request("PUT", "/locked/k", b"x", dict(md5Header(b"x"), **headers))
            self.assertArgument(result, name, value, message)
        self.assertIsNone(self.server.now.getVersion("locked", "k"))

    def test_bucketWithoutLock(self) -> None:
        """
        Lock headers in a bucket without Object Lock are InvalidRequest, on
        PutObject, CopyObject and CreateMultipartUpload; their values are
        checked first, as AWS does.
        """
        self.createBucket("plain")
        self.put("source", bucket="plain")
        lock = {MODE: "GOVERNANCE", UNTIL: self.later(60)}
        for headers in (lock, {HOLD: "ON"}, {HOLD: "OFF"}):
            for method, path, extra in [
                ("PUT", "/plain/k", md5Header(b"x")),
                ("PUT", "/plain/copy", {"x-amz-copy-source": "plain/source"}),
                ("POST", "/plain/mp?uploads", {}),
            ]:
                result = self.request(method, path, b"x" if "x-amz-copy-source" not in extra and method == "PUT" else b"",
                                      dict(extra, **headers))
                self.assertError(result, 400, "InvalidRequest")
                self.assertEqual(self.errorMessage(result), objectlock.MISSING_CONFIGURATION)
        self.assertArgument(self.request("PUT", "/plain/k", b"x", {MODE: "GOVERNANCE"}), UNTIL, "", objectlock.BOTH_HEADERS)
        self.assertIsNone(self.server.now.getObject("plain", "k"))
        self.assertIsNone(self.server.now.getObject("plain", "copy"))

    def test_digestRequired(self) -> None:
        """
        An upload with lock parameters (its own, or the bucket's default)
        needs Content-MD5 or a checksum header; a SigV4 payload hash does
        not count.  Without lock parameters none is needed.
        """
        lock = {MODE: "GOVERNANCE", UNTIL: self.later(60)}
        for headers in (lock, {HOLD: "ON"}, {HOLD: "OFF"}):
            result = self.request("PUT", "/locked/k", b"x", headers)
            self.assertError(result, 400, "InvalidRequest")
            self.assertEqual(self.errorMessage(result), DIGEST_MESSAGE)
        self.assertIsNone(self.server.now.getVersion("locked", "k"))
        self.assertEqual(self.request("PUT", "/locked/k", b"x", dict(lock, **md5Header(b"x")))[0], 200)
        self.assertEqual(self.request("PUT", "/locked/k", b"x", dict(lock, **crc32Header(b"x")))[0], 200)
        # No lock parameters, no default: no digest needed.
        self.assertEqual(self.request("PUT", "/locked/free", b"x")[0], 200)
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration("GOVERNANCE", days="1"))[0], 200)
        result = self.request("PUT", "/locked/free", b"y")
        self.assertEqual((result[0], self.errorMessage(result)), (400, DIGEST_MESSAGE))
        self.assertEqual(self.request("PUT", "/locked/free", b"y", md5Header(b"y"))[0], 200)

    def test_defaultRetentionFromTheClock(self) -> None:
        """The default's retain-until date is the version's creation time (the clock) plus the period."""
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration("GOVERNANCE", days="30"))[0], 200)
        self.server.clock.advance(12.25)
        created = self.now
        record = self.version("days", self.put("days"))
        self.assertEqual((record.lockMode, record.modified, record.lockUntil), (GOVERNANCE, created, created + 30 * 86400))
        self.assertEqual(self.request("HEAD", "/locked/days")[1][UNTIL], formatRetainUntil(created + 30 * 86400))
        # Its own headers win over the default; a legal hold alone keeps the default retention.
        own = self.later(60)
        record = self.version("own", self.put("own", headers={MODE: "COMPLIANCE", UNTIL: own}))
        self.assertEqual((record.lockMode, record.lockUntil), (COMPLIANCE, parseISO8601(own)))
        record = self.version("held", self.put("held", headers={HOLD: "ON"}))
        self.assertEqual((record.lockMode, record.lockUntil, record.legalHold), (GOVERNANCE, created + 30 * 86400, True))
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration("COMPLIANCE", years="1"))[0], 200)
        record = self.version("years", self.put("years"))
        start = datetime.fromtimestamp(created, timezone.utc)
        self.assertEqual(record.lockUntil, start.replace(year=start.year + 1).timestamp())

    def test_copyGetsItsOwnLock(self) -> None:
        """A copy never inherits its source's lock: it takes its headers', or its bucket's default."""
        source = self.put("source", headers={MODE: "COMPLIANCE", UNTIL: self.later(600), HOLD: "ON"})
        status, headers, body = self.request("PUT", "/locked/copy", headers={"x-amz-copy-source": f"locked/source?versionId={source}"})
        self.assertEqual(status, 200, body)
        record = self.version("copy", headers["x-amz-version-id"])
        self.assertEqual((record.lockMode, record.lockUntil, record.legalHold), (None, None, None))
        until = self.later(60)
        status, headers, body = self.request(
            "PUT", "/locked/copy", headers={"x-amz-copy-source": "locked/source", MODE: "GOVERNANCE", UNTIL: until}
        )
        self.assertEqual(status, 200, body)
        record = self.version("copy", headers["x-amz-version-id"])
        self.assertEqual((record.lockMode, record.lockUntil, record.legalHold), (GOVERNANCE, parseISO8601(until), None))
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration("COMPLIANCE", days="2"))[0], 200)
        status, headers, _ = self.request("PUT", "/locked/copy", headers={"x-amz-copy-source": "locked/source"})
        record = self.version("copy", headers["x-amz-version-id"])
        self.assertEqual((record.lockMode, record.lockUntil), (COMPLIANCE, record.modified + 2 * 86400))
        self.createBucket("plain")
        self.assertEqual(self.request("PUT", "/plain/copy", headers={"x-amz-copy-source": "locked/source"})[0], 200)
        record = self.version("copy", None, "plain")
        self.assertEqual((record.lockMode, record.legalHold), (None, None))

    def test_multipartKeepsTheLock(self) -> None:
        """
        CreateMultipartUpload's lock is kept in the upload and given to the
        object; its parts need a digest; the default is counted from completion.
        """
        self.server.context.minPartSize = 1
        until = self.later(600)
        status, _, body = self.request("POST", "/locked/mp?uploads", headers={MODE: "COMPLIANCE", UNTIL: until, HOLD: "ON"})
        self.assertEqual(status, 200, body)
        uploadId = ElementTree.fromstring(body).findtext(f"{NS}UploadId")
        upload = self.server.now.getUpload(uploadId)
        self.assertEqual((upload.lockMode, upload.lockUntil, upload.legalHold), (COMPLIANCE, parseISO8601(until), True))
        part = f"/locked/mp?partNumber=1&uploadId={uploadId}"
        result = self.request("PUT", part, b"part")
        self.assertError(result, 400, "InvalidRequest")
        self.assertEqual(self.errorMessage(result), objectlock.digestRequired("Put Part"))
        status, headers, _ = self.request("PUT", part, b"part", md5Header(b"part"))
        self.assertEqual(status, 200)
        status, headers, body = self.request("POST", f"/locked/mp?uploadId={uploadId}", completion(headers["etag"]))
        self.assertEqual(status, 200, body)
        record = self.version("mp", headers["x-amz-version-id"])
        self.assertEqual((record.lockMode, record.lockUntil, record.legalHold), (COMPLIANCE, parseISO8601(until), True))
        # A default retention: counted from the completion, on the clock.
        self.assertEqual(self.request("PUT", "/locked?object-lock", configuration("GOVERNANCE", days="1"))[0], 200)
        status, _, body = self.request("POST", "/locked/mp2?uploads")
        uploadId = ElementTree.fromstring(body).findtext(f"{NS}UploadId")
        part = f"/locked/mp2?partNumber=1&uploadId={uploadId}"
        self.assertEqual(self.request("PUT", part, b"part")[0], 400)
        status, headers, _ = self.request("PUT", part, b"part", crc32Header(b"part"))
        self.assertEqual(status, 200)
        self.server.clock.advance(100)
        status, headers, body = self.request("POST", f"/locked/mp2?uploadId={uploadId}", completion(headers["etag"]))
        self.assertEqual(status, 200, body)
        record = self.version("mp2", headers["x-amz-version-id"])
        self.assertEqual((record.lockMode, record.lockUntil, record.legalHold), (GOVERNANCE, self.now + 86400, None))


class RetentionTests(LockTestCase):
    """Put/GetObjectRetention: who may change what, and when."""

    def getRetention(self, key: str, versionId: Optional[str] = None) -> Tuple[Optional[str], Optional[str]]:
        query = f"&versionId={versionId}" if versionId is not None else ""
        status, _, body = self.request("GET", f"/locked/{key}?retention{query}")
        self.assertEqual(status, 200, body)
        document = ElementTree.fromstring(body)
        self.assertEqual(document.tag, f"{NS}Retention")
        return document.findtext(f"{NS}Mode"), document.findtext(f"{NS}RetainUntilDate")

    def test_setAndRead(self) -> None:
        """A version without retention is NoSuchObjectLockConfiguration; one set is read back, by version too."""
        old = self.put("k", b"old")
        new = self.put("k", b"new")
        result = self.request("GET", "/locked/k?retention")
        self.assertError(result, 404, "NoSuchObjectLockConfiguration")
        until = self.later(3600)
        self.assertEqual(self.setRetention("k", retention("GOVERNANCE", until), old)[0], 200)
        self.assertEqual(self.getRetention("k", old), ("GOVERNANCE", until))
        self.assertError(self.request("GET", f"/locked/k?retention&versionId={new}"), 404, "NoSuchObjectLockConfiguration")
        self.assertEqual(self.setRetention("k", retention("COMPLIANCE", until))[0], 200)
        self.assertEqual(self.getRetention("k"), ("COMPLIANCE", until))
        self.assertEqual(self.version("k", new).lockMode, COMPLIANCE)

    def test_governance(self) -> None:
        """GOVERNANCE: extended by anyone; shortened, removed or made COMPLIANCE only with the bypass."""
        versionId = self.lock("k", "GOVERNANCE", 600)
        until = self.version("k", versionId).lockUntil or 0
        shorter, longer = formatRetainUntil(until - 300), formatRetainUntil(until + 300)
        for body in (retention("GOVERNANCE", shorter), retention("COMPLIANCE", longer), retention(None, None)):
            self.assertProtected(self.setRetention("k", body))
            self.assertProtected(self.setRetention("k", body, headers={"x-amz-bypass-governance-retention": "false"}))
        self.assertEqual(self.version("k", versionId).lockUntil, until)
        self.assertEqual(self.setRetention("k", retention("GOVERNANCE", longer))[0], 200)
        self.assertEqual(self.setRetention("k", retention("GOVERNANCE", shorter), headers=BYPASS)[0], 200)
        self.assertEqual(self.version("k", versionId).lockUntil, parseISO8601(shorter))
        self.assertEqual(self.setRetention("k", retention(None, None), headers=BYPASS)[0], 200)
        self.assertError(self.request("GET", "/locked/k?retention"), 404, "NoSuchObjectLockConfiguration")
        self.assertEqual(self.setRetention("k", retention("GOVERNANCE", shorter))[0], 200)
        self.assertEqual(self.setRetention("k", retention("COMPLIANCE", shorter), headers=BYPASS)[0], 200)
        self.assertEqual(self.getRetention("k"), ("COMPLIANCE", shorter))

    def test_complianceNeverShortened(self) -> None:
        """COMPLIANCE: only extended, even with the bypass, until the clock passes its date."""
        versionId = self.lock("k", "COMPLIANCE", 600)
        until = self.version("k", versionId).lockUntil or 0
        shorter, longer = formatRetainUntil(until - 300), formatRetainUntil(until + 300)
        for body in (retention("COMPLIANCE", shorter), retention("GOVERNANCE", longer), retention(None, None)):
            for headers in (None, BYPASS):
                self.assertProtected(self.setRetention("k", body, headers=headers))
        self.assertEqual((self.version("k", versionId).lockMode, self.version("k", versionId).lockUntil), (COMPLIANCE, until))
        self.assertEqual(self.setRetention("k", retention("COMPLIANCE", formatRetainUntil(until)))[0], 200)
        self.assertEqual(self.setRetention("k", retention("COMPLIANCE", longer))[0], 200)
        self.server.clock.advance(899)
        self.assertProtected(self.setRetention("k", retention(None, None), headers=BYPASS))
        self.server.clock.advance(1)
        # The retention ended: it may be replaced or removed.
        self.assertEqual(self.setRetention("k", retention("GOVERNANCE", self.later(10)))[0], 200)
        self.assertEqual(self.setRetention("k", retention(None, None), headers=BYPASS)[0], 200)
        self.assertIsNone(self.version("k", versionId).lockMode)

    def test_errors(self) -> None:
        """Malformed documents, past dates, missing keys and versions, delete markers, buckets without lock."""
        versionId = self.put("k")
        for body in (
            b"", b"<nope", b"<Other/>", retention("GOVERNANCE", None), retention(None, self.later(60)),
            retention("governance", self.later(60)), retention("GOVERNANCE", "tomorrow"),
        ):
            self.assertError(self.setRetention("k", body), 400, "MalformedXML")
        past = formatRetainUntil(self.now - 1)
        self.assertArgument(self.setRetention("k", retention("GOVERNANCE", past)), "RetainUntilDate", past, objectlock.PAST_DATE)
        self.assertIsNone(self.version("k", versionId).lockMode)
        body = retention("GOVERNANCE", self.later(60))
        self.assertError(self.setRetention("missing", body), 404, "NoSuchKey")
        self.assertError(self.request("GET", "/locked/missing?retention"), 404, "NoSuchKey")
        self.assertError(self.setRetention("k", body, UNKNOWN), 404, "NoSuchVersion")
        self.assertError(self.setRetention("k", body, "bad"), 400, "InvalidArgument")
        marker = self.request("DELETE", "/locked/k")[1]["x-amz-version-id"]
        self.assertError(self.setRetention("k", body, marker), 405, "MethodNotAllowed")
        self.assertError(self.request("GET", f"/locked/k?retention&versionId={marker}"), 405, "MethodNotAllowed")
        self.assertError(self.setRetention("k", body), 404, "NoSuchKey")
        self.createBucket("plain")
        self.put("k", bucket="plain")
        for result in (self.setRetention("k", body, bucket="plain"), self.request("GET", "/plain/k?retention")):
            self.assertError(result, 400, "InvalidRequest")
            self.assertEqual(self.errorMessage(result), objectlock.MISSING_CONFIGURATION)
        self.assertError(self.request("PUT", "/locked/k?retention", body, creds=OTHER), 403, "AccessDenied")


class LegalHoldTests(LockTestCase):
    """Put/GetObjectLegalHold, and the hold's effect on deletes."""

    def getHold(self, key: str, versionId: Optional[str] = None) -> Optional[str]:
        query = f"&versionId={versionId}" if versionId is not None else ""
        status, _, body = self.request("GET", f"/locked/{key}?legal-hold{query}")
        self.assertEqual(status, 200, body)
        document = ElementTree.fromstring(body)
        self.assertEqual(document.tag, f"{NS}LegalHold")
        return document.findtext(f"{NS}Status")

    def test_holdBlocksUntilRemoved(self) -> None:
        """A hold blocks the version's delete, bypass or not, retention or not, until it is taken off."""
        versionId = self.lock("k", "GOVERNANCE", 10)
        self.assertError(self.request("GET", "/locked/k?legal-hold"), 404, "NoSuchObjectLockConfiguration")
        self.assertNotIn(HOLD, self.request("HEAD", "/locked/k")[1])
        self.assertEqual(self.request("PUT", f"/locked/k?legal-hold&versionId={versionId}", legalHold("ON"))[0], 200)
        self.assertEqual(self.getHold("k", versionId), "ON")
        self.assertEqual(self.request("HEAD", "/locked/k")[1][HOLD], "ON")
        self.assertProtected(self.deleteVersion("k", versionId))
        self.assertProtected(self.deleteVersion("k", versionId, BYPASS))
        self.server.clock.advance(11)
        self.assertProtected(self.deleteVersion("k", versionId))
        self.assertEqual(self.request("PUT", "/locked/k?legal-hold", legalHold("OFF"))[0], 200)
        self.assertEqual(self.getHold("k"), "OFF")
        self.assertEqual(self.request("HEAD", "/locked/k")[1][HOLD], "OFF")
        self.assertEqual(self.deleteVersion("k", versionId)[0], 204)
        self.assertIsNone(self.server.now.getVersion("locked", "k", versionId))

    def test_errors(self) -> None:
        """Bad documents are MalformedXML; a bucket without lock InvalidRequest; a missing key NoSuchKey."""
        self.put("k")
        for body in (b"", b"<LegalHold/>", legalHold("on"), legalHold("MAYBE"), b"<Retention/>"):
            self.assertError(self.request("PUT", "/locked/k?legal-hold", body), 400, "MalformedXML")
        self.assertFalse(self.version("k", None).legalHold)
        self.assertError(self.request("PUT", "/locked/missing?legal-hold", legalHold("ON")), 404, "NoSuchKey")
        self.assertError(self.request("GET", f"/locked/k?legal-hold&versionId={UNKNOWN}"), 404, "NoSuchVersion")
        self.createBucket("plain")
        self.put("k", bucket="plain")
        for result in (self.request("PUT", "/plain/k?legal-hold", legalHold("ON")), self.request("GET", "/plain/k?legal-hold")):
            self.assertError(result, 400, "InvalidRequest")


class EnforcementTests(LockTestCase):
    """What a lock keeps from happening to a version: permanent deletes; and what it never blocks."""

    def test_retentionEndsWithTheClock(self) -> None:
        """A version in COMPLIANCE cannot be deleted, even with the bypass, until the clock reaches its date."""
        versionId = self.lock("k", "COMPLIANCE", 300)
        self.assertProtected(self.deleteVersion("k", versionId))
        self.assertProtected(self.deleteVersion("k", versionId, BYPASS))
        self.server.clock.advance(299.5)
        self.assertProtected(self.deleteVersion("k", versionId))
        self.server.clock.advance(0.5)
        status, headers, _ = self.deleteVersion("k", versionId)
        self.assertEqual((status, headers["x-amz-version-id"]), (204, versionId))
        self.assertError(self.request("GET", f"/locked/k?versionId={versionId}"), 404, "NoSuchVersion")

    def test_governanceBypass(self) -> None:
        """A GOVERNANCE version is deleted only with x-amz-bypass-governance-retention: true."""
        versionId = self.lock("k", "GOVERNANCE", 300)
        self.assertProtected(self.deleteVersion("k", versionId))
        self.assertProtected(self.deleteVersion("k", versionId, {"x-amz-bypass-governance-retention": "false"}))
        self.assertEqual(self.deleteVersion("k", versionId, BYPASS)[0], 204)
        self.assertIsNone(self.server.now.getVersion("locked", "k", versionId))

    def test_deleteWithoutVersionAddsMarker(self) -> None:
        """A DELETE without a version id only adds a delete marker, which may itself be deleted."""
        versionId = self.lock("k", "COMPLIANCE", 300)
        status, headers, _ = self.request("DELETE", "/locked/k")
        self.assertEqual((status, headers["x-amz-delete-marker"]), (204, "true"))
        marker = headers["x-amz-version-id"]
        self.assertEqual(self.request("GET", f"/locked/k?versionId={versionId}")[0], 200)
        self.assertEqual(self.deleteVersion("k", marker)[0], 204)
        self.assertEqual(self.request("GET", "/locked/k")[2], b"locked k")

    def test_overwriteKeepsTheVersion(self) -> None:
        """An upload over a locked version adds a version; the locked one stays readable."""
        versionId = self.lock("k", "COMPLIANCE", 300)
        newer = self.put("k", b"newer")
        self.assertNotEqual(newer, versionId)
        self.assertEqual(self.request("GET", f"/locked/k?versionId={versionId}")[2], b"locked k")
        page = self.server.now.listVersions("locked")
        self.assertEqual([v.versionId for v in page.versions], [newer, versionId])

    def test_deleteObjects(self) -> None:
        """DeleteObjects refuses each locked version by entry; the bypass frees only GOVERNANCE ones."""
        ids = {
            "governance": self.lock("governance", "GOVERNANCE", 300),
            "compliance": self.lock("compliance", "COMPLIANCE", 300),
            "held": self.put("held", headers={HOLD: "ON"}),
            "free": self.put("free"),
        }
        objects = "".join(f"<Object><Key>{k}</Key><VersionId>{v}</VersionId></Object>" for k, v in ids.items())
        body = f"<Delete>{objects}<Object><Key>compliance</Key></Object></Delete>".encode()

        def deleteObjects(headers: Dict[str, str]) -> Tuple[List[str], List[Tuple[str, str, str]]]:
            status, _, answer = self.request("POST", "/locked?delete", body, dict(md5Header(body), **headers))
            self.assertEqual(status, 200, answer)
            document = ElementTree.fromstring(answer)
            deleted = [(d.findtext(f"{NS}Key") or "") for d in document.iter(f"{NS}Deleted")]
            errors = [
                (e.findtext(f"{NS}Key") or "", e.findtext(f"{NS}Code") or "", e.findtext(f"{NS}Message") or "")
                for e in document.iter(f"{NS}Error")
            ]
            return deleted, errors

        denied = ("AccessDenied", objectlock.PROTECTED)
        self.assertEqual(deleteObjects({}), (["free", "compliance"], [(k, *denied) for k in ("governance", "compliance", "held")]))
        self.assertEqual(deleteObjects(BYPASS), (["governance", "free", "compliance"], [(k, *denied) for k in ("compliance", "held")]))
        for key in ("compliance", "held"):
            self.assertIsNotNone(self.server.now.getVersion("locked", key, ids[key]))
        self.assertIsNone(self.server.now.getVersion("locked", "governance", ids["governance"]))

    def test_bypassHeaderWithoutLock(self) -> None:
        """The bypass header on a bucket without Object Lock is InvalidArgument, as AWS answers."""
        self.createBucket("plain")
        self.put("k", bucket="plain")
        message = "x-amz-bypass-governance-retention is only applicable to Object Lock enabled buckets."
        self.assertArgument(self.request("DELETE", "/plain/k", headers=BYPASS), "x-amz-bypass-governance-retention", "true", message)
        body = b"<Delete><Object><Key>k</Key></Object></Delete>"
        result = self.request("POST", "/plain?delete", body, dict(md5Header(body), **BYPASS))
        self.assertArgument(result, "x-amz-bypass-governance-retention", "true", message)
        self.assertIsNotNone(self.server.now.getObject("plain", "k"))

    def test_judgedAtCommit(self) -> None:
        """
        A retention set after a DELETE was admitted but before it commits
        still holds: the store judges the version as its delete finds it.
        """
        versionId = self.put("k")
        store = self.server.metadata
        until = self.now + 300

        class LockingFirst:
            """The store, where another request locks the version just before this delete's write."""

            def __getattr__(self, name: str) -> Any:
                return getattr(store, name)

            def deleteObject(self, *args: Any, **kwargs: Any) -> Any:
                store.updateVersion("locked", "k", versionId, lambda v: attrs.evolve(v, lockMode=COMPLIANCE, lockUntil=until))
                return store.deleteObject(*args, **kwargs)

        self.server.context.metadata = LockingFirst()  # type: ignore[assignment]
        self.assertProtected(self.deleteVersion("k", versionId))
        self.assertIsNotNone(self.server.now.getVersion("locked", "k", versionId))


class FormUploadLockTests(PostTestCase):
    """A browser form upload in a bucket with Object Lock."""

    def test_formGetsTheLock(self) -> None:
        """The default retention applies; x-amz-object-lock-* fields (covered by the policy) are honoured."""
        status, _, body = self.request("PUT", "/locked", headers={"x-amz-bucket-object-lock-enabled": "true"})
        self.assertEqual(status, 200, body)
        document = configuration("GOVERNANCE", days="3")
        self.assertEqual(self.request("PUT", "/locked?object-lock", document)[0], 200)
        status, _, body = self.post(self.presign("plain.txt", bucket="locked"))
        self.assertEqual(status, 204, body)
        record = self.server.now.getObject("locked", "plain.txt")
        self.assertEqual((record.lockMode, record.lockUntil), (GOVERNANCE, record.modified + 3 * 86400))
        until = formatRetainUntil(self.server.clock.seconds() + 60)
        fields = {MODE: "COMPLIANCE", UNTIL: until, HOLD: "ON"}
        conditions = [{name: value} for name, value in fields.items()]
        status, _, body = self.post(self.presign("own.txt", bucket="locked", fields=fields, conditions=conditions))
        self.assertEqual(status, 204, body)
        record = self.server.now.getObject("locked", "own.txt")
        self.assertEqual((record.lockMode, record.lockUntil, record.legalHold), (COMPLIANCE, parseISO8601(until), True))
        # Bad fields, or lock fields in a bucket without Object Lock, store nothing.
        bad = {MODE: "COMPLIANCE"}
        result = self.post(self.presign("bad.txt", bucket="locked", fields=bad, conditions=[bad]))
        self.assertPostError(result, 400, "InvalidArgument", objectlock.BOTH_HEADERS)
        hold = {HOLD: "ON"}
        result = self.post(self.presign("held.txt", fields=hold, conditions=[hold]))
        self.assertPostError(result, 400, "InvalidRequest", objectlock.MISSING_CONFIGURATION)
        self.assertIsNone(self.server.now.getObject("locked", "bad.txt"))
        self.assertIsNone(self.server.now.getObject("bucket", "held.txt"))


class BotocoreLockTests(BotoTestCase):
    """The Object Lock calls as botocore makes them (checksums, dates and all)."""

    def test_calls(self) -> None:
        """create_bucket with lock, the configuration, put_object with a lock, retention, legal hold, deletes."""
        s3 = self.s3
        s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
        self.assertEqual(s3.get_bucket_versioning(Bucket="locked")["Status"], "Enabled")
        s3.put_object_lock_configuration(Bucket="locked", ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 6}},
        })
        got = s3.get_object_lock_configuration(Bucket="locked")["ObjectLockConfiguration"]
        self.assertEqual(got, {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 6}}})
        versionId = s3.put_object(Bucket="locked", Key="k", Body=b"worm")["VersionId"]
        head = s3.head_object(Bucket="locked", Key="k")
        self.assertEqual(head["ObjectLockMode"], "COMPLIANCE")
        self.assertGreater(head["ObjectLockRetainUntilDate"].timestamp(), self.server.clock.seconds() + 6 * 365 * 86400)
        retained = s3.get_object_retention(Bucket="locked", Key="k", VersionId=versionId)["Retention"]
        self.assertEqual(retained["Mode"], "COMPLIANCE")
        self.assertEqual(retained["RetainUntilDate"], head["ObjectLockRetainUntilDate"])
        error = self.assertRaises(ClientError, s3.delete_object, Bucket="locked", Key="k", VersionId=versionId,
                                  BypassGovernanceRetention=True)
        self.assertEqual(error.response["Error"]["Code"], "AccessDenied")
        error = self.assertRaises(ClientError, s3.put_object_retention, Bucket="locked", Key="k", VersionId=versionId,
                                  Retention={"Mode": "GOVERNANCE", "RetainUntilDate": retained["RetainUntilDate"]},
                                  BypassGovernanceRetention=True)
        self.assertEqual(error.response["Error"]["Code"], "AccessDenied")
        s3.put_object_legal_hold(Bucket="locked", Key="k", LegalHold={"Status": "ON"})
        self.assertEqual(s3.get_object_legal_hold(Bucket="locked", Key="k")["LegalHold"]["Status"], "ON")
        self.assertEqual(s3.head_object(Bucket="locked", Key="k")["ObjectLockLegalHoldStatus"], "ON")
        result = s3.delete_objects(Bucket="locked", Delete={"Objects": [{"Key": "k", "VersionId": versionId}]})
        self.assertEqual([e["Code"] for e in result["Errors"]], ["AccessDenied"])
        marker = s3.delete_object(Bucket="locked", Key="k")
        self.assertTrue(marker["DeleteMarker"])
        error = self.assertRaises(ClientError, s3.put_bucket_versioning, Bucket="locked",
                                  VersioningConfiguration={"Status": "Suspended"})
        self.assertEqual(error.response["Error"]["Code"], "InvalidBucketState")


class ParsingTests(SynchronousTestCase):
    """The pure parts: dates, configurations, the rules."""

    def test_parseISO8601(self) -> None:
        """Full ISO 8601 timestamps only; out-of-range fields are not dates."""
        self.assertEqual(parseISO8601("2030-01-01T00:00:00Z"), float(calendar.timegm((2030, 1, 1, 0, 0, 0))))
        self.assertEqual(parseISO8601("2030-01-01T01:30:00+01:30"), float(calendar.timegm((2030, 1, 1, 0, 0, 0))))
        self.assertEqual(parseISO8601("2029-12-31T23:00:00-0100"), float(calendar.timegm((2030, 1, 1, 0, 0, 0))))
        for text in ("2030-01-01", "2030-01-01T00:00:00", "2030-13-01T00:00:00Z", "2030-01-01T24:00:00Z",
                     "２０30-01-01T00:00:00Z", "2030-01-01T00:00:00+25:00", "tomorrow", ""):
            self.assertIsNone(parseISO8601(text), text)

    def test_formatRoundTrips(self) -> None:
        """Formatted dates read back to the same millisecond."""
        for when in (0.0, 1_900_000_000.123, 1_900_000_000.999, 1_900_000_000.5):
            self.assertEqual(parseISO8601(formatRetainUntil(when)), round(when, 3))
        self.assertEqual(formatRetainUntil(1_900_000_000.123), "2030-03-17T17:46:40.123Z")

    def test_years(self) -> None:
        """Years are calendar years; 29 February moves to 1 March in a common year."""
        leap = float(calendar.timegm((2028, 2, 29, 12, 0, 0)))
        self.assertEqual(DefaultRetention(GOVERNANCE, years=1).until(leap), float(calendar.timegm((2029, 3, 1, 12, 0, 0))))
        self.assertEqual(DefaultRetention(GOVERNANCE, years=4).until(leap), float(calendar.timegm((2032, 2, 29, 12, 0, 0))))
        self.assertEqual(DefaultRetention(GOVERNANCE, days=2).until(leap), leap + 2 * 86400)
        default = DefaultRetention(COMPLIANCE, years=6)
        self.assertEqual(DefaultRetention.decode(default.encode()), default)

    def test_configurationWithoutNamespace(self) -> None:
        """The parser reads documents without the S3 namespace and with whitespace."""
        body = b"<ObjectLockConfiguration><ObjectLockEnabled> Enabled </ObjectLockEnabled><Rule><DefaultRetention>" \
               b"<Days> 7 </Days><Mode>GOVERNANCE</Mode></DefaultRetention></Rule></ObjectLockConfiguration>"
        self.assertEqual(parseObjectLockConfiguration(body), DefaultRetention(GOVERNANCE, days=7))

    def test_rules(self) -> None:
        """isLocked and changedRetention, at the edges of the retain-until date."""
        record = ObjectRecord("b", "k", 1, "e", "x", 0.0, lockMode=GOVERNANCE, lockUntil=100.0)
        self.assertTrue(isLocked(record, 99.999))
        self.assertFalse(isLocked(record, 99.999, bypass=True))
        self.assertFalse(isLocked(record, 100.0))
        self.assertTrue(isLocked(attrs.evolve(record, lockMode=COMPLIANCE), 50.0, bypass=True))
        self.assertTrue(isLocked(attrs.evolve(record, lockMode=None, lockUntil=None, legalHold=True), 500.0, bypass=True))
        self.assertFalse(isLocked(attrs.evolve(record, deleteMarker=True), 50.0))
        self.assertEqual(changedRetention(record, GOVERNANCE, 200.0, 50.0, False).lockUntil, 200.0)
        e = self.assertRaises(S3Error, changedRetention, attrs.evolve(record, lockMode=COMPLIANCE), COMPLIANCE, 99.0, 50.0, True)
        self.assertEqual(e.code, "AccessDenied")
        self.assertIsNone(changedRetention(record, None, None, 100.0, False).lockMode)
