"""
Tests for L{fasterstore.s3.resource} and its operations, through the real
Resource tree with StubTreq, real engines on a temporary directory, and
requests signed by botocore's own signer.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple
from xml.etree import ElementTree

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from fasterstore.metadata.records import versionIdOf
from fasterstore.metadata.sqlite import SQLiteMetadataStore
from fasterstore.metadata.store import IMetadataStore
from fasterstore.metrics import Metrics
from fasterstore.s3.body import declaredLength
from fasterstore.s3.context import S3Context
from fasterstore.s3.resource import S3Resource
from fasterstore.auth.identity import Authenticated, Credentials
from fasterstore.auth.payload import PayloadMode
from fasterstore.http.request import StreamingRequest
from fasterstore.storage import segments as segmentsModule
from fasterstore.storage.segments import SegmentStore
from fasterstore.storage.space import ADMITTED_SECONDS, SpaceGuard
from fasterstore.threads import ImmediateRunner

ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
OWNER = Credentials(ACCESS, SECRET, "owner-id", "owner")
OTHER = Credentials("OTHERKEY", "othersecret", "other-id", "other")
ADMIN = Credentials("ADMINKEY", "adminsecret", "admin-id", "admin", admin=True)
BASE = "http://s3.test"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class ReadsNow:
    """
    A metadata store's reads as plain results, for assertions: the store
    must have answered at once (the SQLite store always does).
    """

    def __init__(self, store: IMetadataStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        def now(*args: Any, **kwargs: Any) -> Any:
            outcome: List[Any] = []
            method(*args, **kwargs).addBoth(outcome.append)
            assert outcome, f"{name} did not answer at once"
            if isinstance(outcome[0], Failure):
                outcome[0].raiseException()
            return outcome[0]

        return now


class Server:
    """A FasterStore resource on real engines in a temporary directory."""

    def __init__(self, root: FilePath[str]) -> None:
        self.root = root
        self.clock = Clock()
        self.clock.advance(time.time())
        runner = ImmediateRunner()
        self.metrics = Metrics()
        self.segments = SegmentStore(root, runner, targetSize=4 << 20, metrics=self.metrics)
        self.metadata = SQLiteMetadataStore(
            root.child("meta").child("metadata.sqlite").path, runner=runner,
            syncData=self.segments.prepareSync, metrics=self.metrics, fsync=False,
        )
        self.metadata.open()
        self.now = ReadsNow(self.metadata)
        keys = {OWNER.accessKey: OWNER, OTHER.accessKey: OTHER, ADMIN.accessKey: ADMIN}
        self.context = S3Context(
            metadata=self.metadata, segments=self.segments, clock=self.clock,
            lookup=keys.get, metrics=self.metrics, maxObjectSize=1 << 20,
        )
        self.resource = S3Resource(self.context)
        self.stub = StubTreq(self.resource)


class ResourceTestCase(SynchronousTestCase):
    """Helpers: signed requests and response parsing."""

    def setUp(self) -> None:
        self.server = Server(FilePath(self.mktemp()))

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Optional[Dict[str, str]] = None,
        creds: Optional[Credentials] = OWNER,
        payloadHash: Optional[str] = None,
    ) -> Tuple[int, Dict[str, str], bytes]:
        """Send a request signed like botocore signs it; return status, headers, body."""
        url = BASE + path
        headers = dict(headers or {})
        if creds is not None:
            aws = AWSRequest(method=method, url=url, data=body, headers=headers)
            signer = S3SigV4Auth(BotoCredentials(creds.accessKey, creds.secretKey), "s3", "us-east-1")
            if payloadHash is not None:
                signer.payload = lambda request: payloadHash  # type: ignore[method-assign]
            signer.add_auth(aws)
            headers = dict(aws.headers.items())
        stub = self.server.stub
        response = self.successResultOf(
            stub.request(method, url, data=body or None, headers={k: [v] for k, v in headers.items()})
        )
        content = self.successResultOf(stub.content(response))
        flat = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
        if isinstance(response.length, int):
            # Twisted's HTTP client moves Content-Length into .length.
            flat.setdefault("content-length", str(response.length))
        return response.code, flat, content

    def assertError(self, result: Tuple[int, Dict[str, str], bytes], status: int, code: str) -> None:
        """The response is the S3 error C{code} with C{status}."""
        got, headers, body = result
        self.assertEqual(got, status, body)
        if body:
            self.assertEqual(ElementTree.fromstring(body).findtext("Code"), code)
            self.assertEqual(headers["content-type"], "application/xml")

    def createBucket(self, name: str = "bucket") -> None:
        status, _, body = self.request("PUT", "/" + name)
        self.assertEqual(status, 200, body)


class BucketTests(ResourceTestCase):
    """Service and bucket operations."""

    def test_listBucketsEmptyThenOne(self) -> None:
        """ListBuckets shows the caller's buckets only."""
        status, _, body = self.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertEqual(ElementTree.fromstring(body).findall(f"{NS}Buckets/{NS}Bucket"), [])
        self.createBucket("mine")
        self.assertEqual(self.request("PUT", "/theirs", creds=OTHER)[0], 200)
        names = [b.findtext(f"{NS}Name") for b in ElementTree.fromstring(self.request("GET", "/")[2]).iter(f"{NS}Bucket")]
        self.assertEqual(names, ["mine"])

    def test_listBucketsPaginated(self) -> None:
        """max-buckets pages with a continuation token; prefix filters."""
        for name in ["aaa", "bbb", "bcc", "ccc"]:
            self.createBucket(name)

        def names(query: str) -> tuple:
            doc = ElementTree.fromstring(self.request("GET", "/?" + query)[2])
            return [b.findtext(f"{NS}Name") for b in doc.iter(f"{NS}Bucket")], doc.findtext(f"{NS}ContinuationToken")

        first, token = names("max-buckets=3")
        self.assertEqual(first, ["aaa", "bbb", "bcc"])
        from urllib.parse import quote
        rest, token = names("max-buckets=3&continuation-token=" + quote(token, safe=""))
        self.assertEqual((rest, token), (["ccc"], None))
        self.assertEqual(names("prefix=b")[0], ["bbb", "bcc"])
        self.assertError(self.request("GET", "/?max-buckets=0"), 400, "InvalidArgument")

    def test_createTwice(self) -> None:
        """
        A second create by the owner is 200 in us-east-1 (AWS's legacy rule;
        elsewhere BucketAlreadyOwnedByYou: tests/integration/test_awscli.py
        runs in eu-central-1); by another account, BucketAlreadyExists.
        """
        self.createBucket()
        self.assertEqual(self.request("PUT", "/bucket")[0], 200)
        self.assertError(self.request("PUT", "/bucket", creds=OTHER), 409, "BucketAlreadyExists")

    def test_invalidName(self) -> None:
        """Bucket names follow AWS's rules."""
        self.assertError(self.request("PUT", "/Bad_Name"), 400, "InvalidBucketName")

    def test_locationConstraint(self) -> None:
        """A matching LocationConstraint is accepted, another refused, garbage is MalformedXML."""
        doc = b'<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>'
        self.assertError(self.request("PUT", "/bucket", doc), 400, "IllegalLocationConstraintException")
        self.assertError(self.request("PUT", "/bucket", b"<not xml"), 400, "MalformedXML")
        self.assertEqual(self.server.now.getBucket("bucket"), None)
        status, _, body = self.request("GET", "/bucket?location")
        self.assertEqual(status, 404)

    def test_headAndDelete(self) -> None:
        """HeadBucket and DeleteBucket, including BucketNotEmpty."""
        self.assertEqual(self.request("HEAD", "/bucket")[0], 404)
        self.createBucket()
        status, headers, _ = self.request("HEAD", "/bucket/")
        self.assertEqual((status, headers["x-amz-bucket-region"]), (200, "us-east-1"))
        self.assertEqual(self.request("HEAD", "/bucket", creds=OTHER)[0], 403)
        self.request("PUT", "/bucket/k", b"x")
        self.assertError(self.request("DELETE", "/bucket"), 409, "BucketNotEmpty")
        self.request("DELETE", "/bucket/k")
        self.assertEqual(self.request("DELETE", "/bucket")[0], 204)
        self.assertError(self.request("GET", "/bucket"), 404, "NoSuchBucket")

    def test_listObjectsV2Pages(self) -> None:
        """ListObjectsV2 pages with continuation tokens and groups by delimiter."""
        self.createBucket()
        for key in ["a/1", "a/2", "b", "c/x/y", "d"]:
            self.request("PUT", "/bucket/" + key, key.encode())
        status, _, body = self.request("GET", "/bucket?list-type=2&delimiter=/&max-keys=2")
        doc = ElementTree.fromstring(body)
        self.assertEqual([p.findtext(f"{NS}Prefix") for p in doc.iter(f"{NS}CommonPrefixes")], ["a/"])
        self.assertEqual([c.findtext(f"{NS}Key") for c in doc.iter(f"{NS}Contents")], ["b"])
        self.assertEqual(doc.findtext(f"{NS}IsTruncated"), "true")
        token = doc.findtext(f"{NS}NextContinuationToken")
        from urllib.parse import quote
        body = self.request("GET", "/bucket?list-type=2&delimiter=/&continuation-token=" + quote(token, safe=""))[2]
        doc = ElementTree.fromstring(body)
        self.assertEqual([p.findtext(f"{NS}Prefix") for p in doc.iter(f"{NS}CommonPrefixes")], ["c/"])
        self.assertEqual([c.findtext(f"{NS}Key") for c in doc.iter(f"{NS}Contents")], ["d"])
        self.assertEqual(doc.findtext(f"{NS}IsTruncated"), "false")

    def test_listObjectsV1Marker(self) -> None:
        """ListObjects v1 starts after the marker."""
        self.createBucket()
        for key in ["a", "b", "c"]:
            self.request("PUT", "/bucket/" + key, b"1")
        doc = ElementTree.fromstring(self.request("GET", "/bucket?marker=a")[2])
        self.assertEqual([c.findtext(f"{NS}Key") for c in doc.iter(f"{NS}Contents")], ["b", "c"])

    def test_badMaxKeys(self) -> None:
        """A non-numeric max-keys is InvalidArgument."""
        self.createBucket()
        self.assertError(self.request("GET", "/bucket?max-keys=x"), 400, "InvalidArgument")


class ObjectTests(ResourceTestCase):
    """Object operations, their checks and their errors."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()

    def test_roundTrip(self) -> None:
        """PUT then GET returns the bytes, the MD5 ETag and the stored headers."""
        data = bytes(range(256)) * 1000
        status, headers, _ = self.request(
            "PUT", "/bucket/dir/k%2Bey%20x", data,
            {"Content-Type": "text/x-test", "x-amz-meta-Color": "blue", "Cache-Control": "no-cache"},
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers["etag"], '"%s"' % hashlib.md5(data).hexdigest())
        status, headers, body = self.request("GET", "/bucket/dir/k%2Bey%20x")
        self.assertEqual((status, body), (200, data))
        self.assertEqual(headers["content-type"], "text/x-test")
        self.assertEqual(headers["x-amz-meta-color"], "blue")
        self.assertEqual(headers["cache-control"], "no-cache")
        self.assertEqual(headers["content-length"], str(len(data)))
        self.assertIsNotNone(self.server.now.getObject("bucket", "dir/k+ey x"))

    def test_contentEncodingKept(self) -> None:
        """Content-Encoding is stored as sent, less the aws-chunked transfer coding."""
        def stored(key: str) -> dict:
            record = self.server.now.getObject("bucket", key)
            assert record is not None
            return dict(record.headers)

        self.request("PUT", "/bucket/k", b"x", {"Content-Encoding": "deflate, gzip"})
        self.assertEqual(stored("k")["Content-Encoding"], "deflate, gzip")
        self.request("PUT", "/bucket/j", b"x", {"Content-Encoding": "aws-chunked,gzip"})
        self.assertEqual(stored("j")["Content-Encoding"], "gzip")

    def test_head(self) -> None:
        """HEAD has GET's headers, including Content-Length, and no body."""
        self.request("PUT", "/bucket/k", b"12345")
        status, headers, body = self.request("HEAD", "/bucket/k")
        self.assertEqual((status, headers["content-length"], body), (200, "5", b""))
        status, _, body = self.request("HEAD", "/bucket/missing")
        self.assertEqual((status, body), (404, b""))

    def test_missing(self) -> None:
        """GET of a missing key is NoSuchKey naming the key."""
        status, _, body = self.request("GET", "/bucket/nope")
        self.assertError((status, {"content-type": "application/xml"}, body), 404, "NoSuchKey")
        self.assertEqual(ElementTree.fromstring(body).findtext("Key"), "nope")

    def test_responseOverrides(self) -> None:
        """response-* query parameters override the returned headers."""
        self.request("PUT", "/bucket/k", b"x", {"Content-Type": "text/plain"})
        _, headers, _ = self.request("GET", "/bucket/k?response-content-type=image/png&response-content-disposition=attachment")
        self.assertEqual(headers["content-type"], "image/png")
        self.assertEqual(headers["content-disposition"], "attachment")

    def test_badContentMD5(self) -> None:
        """A Content-MD5 mismatch is BadDigest and stores nothing."""
        wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
        self.assertError(self.request("PUT", "/bucket/k", b"data", {"Content-MD5": wrong}), 400, "BadDigest")
        self.assertIsNone(self.server.now.getObject("bucket", "k"))
        self.assertError(self.request("PUT", "/bucket/k", b"data", {"Content-MD5": "nope"}), 400, "InvalidDigest")

    def test_payloadHashMismatch(self) -> None:
        """A body that does not match the signed SHA-256 stores nothing."""
        self.assertError(
            self.request("PUT", "/bucket/k", b"data", payloadHash=hashlib.sha256(b"else").hexdigest()),
            400, "XAmzContentSHA256Mismatch",
        )
        self.assertIsNone(self.server.now.getObject("bucket", "k"))

    def test_checksums(self) -> None:
        """A correct x-amz-checksum-* is stored and returned with checksum mode; a wrong one is BadDigest."""
        import zlib

        data = b"checksummed"
        crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        self.assertError(self.request("PUT", "/bucket/k", data, {"x-amz-checksum-crc32": "AAAAAA=="}), 400, "BadDigest")
        status, headers, _ = self.request("PUT", "/bucket/k", data, {"x-amz-checksum-crc32": crc})
        self.assertEqual((status, headers["x-amz-checksum-crc32"]), (200, crc))
        _, headers, _ = self.request("GET", "/bucket/k", headers={"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual(headers["x-amz-checksum-crc32"], crc)
        _, headers, _ = self.request("GET", "/bucket/k", headers={"x-amz-checksum-mode": "ENABLED", "Range": "bytes=0-1"})
        self.assertNotIn("x-amz-checksum-crc32", headers)
        _, headers, _ = self.request("GET", "/bucket/k")
        self.assertNotIn("x-amz-checksum-crc32", headers)

    def test_defaultChecksum(self) -> None:
        """With no checksum named, CRC64NVME is computed and stored, as AWS does."""
        self.request("PUT", "/bucket/k", b"abc")
        _, headers, _ = self.request("HEAD", "/bucket/k", headers={"x-amz-checksum-mode": "ENABLED"})
        self.assertIn("x-amz-checksum-crc64nvme", headers)

    def test_ranges(self) -> None:
        """Ranged GETs answer 206 with Content-Range; unsatisfiable ones 416."""
        data = b"0123456789" * 10000
        self.request("PUT", "/bucket/k", data)
        for header, expected in [("bytes=5-9", data[5:10]), ("bytes=99990-", data[99990:]), ("bytes=-3", data[-3:])]:
            status, headers, body = self.request("GET", "/bucket/k", headers={"Range": header})
            self.assertEqual((status, body), (206, expected), header)
        status, headers, _ = self.request("GET", "/bucket/k", headers={"Range": "bytes=100000-"})
        self.assertEqual((status, headers["content-range"]), (416, "bytes */100000"))

    def test_conditionalGet(self) -> None:
        """If-None-Match gives 304, If-Match a 412."""
        _, headers, _ = self.request("PUT", "/bucket/k", b"x")
        etag = headers["etag"]
        self.assertEqual(self.request("GET", "/bucket/k", headers={"If-None-Match": etag})[0], 304)
        self.assertError(self.request("GET", "/bucket/k", headers={"If-Match": '"nope"'}), 412, "PreconditionFailed")
        self.assertEqual(self.request("GET", "/bucket/k", headers={"If-Match": etag})[0], 200)

    def test_conditionalPut(self) -> None:
        """If-None-Match: * creates once; If-Match must match the current ETag."""
        self.assertEqual(self.request("PUT", "/bucket/k", b"1", {"If-None-Match": "*"})[0], 200)
        self.assertError(self.request("PUT", "/bucket/k", b"2", {"If-None-Match": "*"}), 412, "PreconditionFailed")
        self.assertError(self.request("PUT", "/bucket/k", b"2", {"If-Match": '"nope"'}), 412, "PreconditionFailed")
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"1")

    def test_taggingHeader(self) -> None:
        """x-amz-tagging on PUT stores tags, counted on GET/HEAD; bad tags store nothing."""
        self.assertEqual(self.request("PUT", "/bucket/k", b"x", {"x-amz-tagging": "a=1&b=two%20words"})[0], 200)
        _, headers, _ = self.request("HEAD", "/bucket/k")
        self.assertEqual(headers["x-amz-tagging-count"], "2")
        record = self.server.now.getObject("bucket", "k")
        assert record is not None
        self.assertEqual(dict(record.tags), {"a": "1", "b": "two words"})
        self.assertError(self.request("PUT", "/bucket/j", b"x", {"x-amz-tagging": "aws:x=1"}), 400, "InvalidTag")
        self.assertIsNone(self.server.now.getObject("bucket", "j"))
        _, headers, _ = self.request("PUT", "/bucket/plain", b"x")
        self.assertNotIn("x-amz-tagging-count", self.request("HEAD", "/bucket/plain")[1])

    def test_tooLarge(self) -> None:
        """A body over the limit is EntityTooLarge."""
        self.assertError(self.request("PUT", "/bucket/k", b"x" * ((1 << 20) + 1)), 400, "EntityTooLarge")

    def test_keyTooLong(self) -> None:
        """Keys over 1024 UTF-8 bytes are refused."""
        self.assertError(self.request("PUT", "/bucket/" + "k" * 1025, b"x"), 400, "KeyTooLongError")

    def test_deleteIdempotent(self) -> None:
        """DELETE answers 204 whether or not the key exists."""
        self.request("PUT", "/bucket/k", b"x")
        self.assertEqual(self.request("DELETE", "/bucket/k")[0], 204)
        self.assertEqual(self.request("DELETE", "/bucket/k")[0], 204)
        self.assertEqual(self.request("GET", "/bucket/k")[0], 404)

    def test_conditionalDelete(self) -> None:
        """DELETE with If-Match deletes only that version: 412 otherwise, 404 if absent."""
        _, headers, _ = self.request("PUT", "/bucket/k", b"x")
        self.assertError(self.request("DELETE", "/bucket/k", headers={"If-Match": '"nope"'}), 412, "PreconditionFailed")
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"x")
        self.assertEqual(self.request("DELETE", "/bucket/k", headers={"If-Match": headers["etag"]})[0], 204)
        self.assertError(self.request("DELETE", "/bucket/k", headers={"If-Match": headers["etag"]}), 404, "NoSuchKey")

    def test_versionIdNull(self) -> None:
        """
        versionId=null names the only version of an unversioned bucket's
        object; another id does not exist; a malformed or empty one is no id.
        """
        self.request("PUT", "/bucket/k", b"x")
        status, headers, _ = self.request("GET", "/bucket/k?versionId=null")
        self.assertEqual((status, headers.get("x-amz-version-id")), (200, "null"))
        self.assertNotIn("x-amz-version-id", self.request("GET", "/bucket/k")[1])
        result = self.request("GET", "/bucket/k?versionId=" + versionIdOf(99999))
        self.assertError(result, 404, "NoSuchVersion")
        error = ElementTree.fromstring(result[2])
        self.assertEqual((error.findtext("Key"), error.findtext("VersionId")), ("k", versionIdOf(99999)))
        self.assertError(self.request("GET", "/bucket/k?versionId=abc"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket/k?versionId="), 400, "InvalidArgument")

    def test_otherAccount(self) -> None:
        """Another account cannot read or write the bucket."""
        self.request("PUT", "/bucket/k", b"x")
        self.assertError(self.request("GET", "/bucket/k", creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("PUT", "/bucket/j", b"x", creds=OTHER), 403, "AccessDenied")

    def test_corruptionIsAnErrorNotWrongBytes(self) -> None:
        """A flipped byte in a segment gives a 500, never the corrupted bytes."""
        data = b"A" * 200000
        self.request("PUT", "/bucket/k", data)
        segment = self.server.root.child("segments").child("00000001.seg")
        # In place: the store keeps its file open, so a rename would not do.
        with segment.open("r+") as f:
            offset = f.read().index(b"A" * 100) + 50000
            f.seek(offset)
            f.write(b"B")
        status, _, body = self.request("GET", "/bucket/k")
        self.assertEqual(status, 500)
        self.assertNotIn(b"A" * 100, body)
        self.assertEqual(self.server.metrics.corruption._value.get(), 1)

    def test_reuploadRepairs(self) -> None:
        """
        The same content uploaded again over a rotten copy is stored afresh,
        not deduplicated onto the bad bytes: every object sharing it reads
        back whole again.
        """
        data = b"A" * 200000
        self.request("PUT", "/bucket/k", data)
        self.request("PUT", "/bucket/twin", data)
        segment = self.server.root.child("segments").child("00000001.seg")
        with segment.open("r+") as f:
            # The stored copy is the latest written (the first is garbage).
            f.seek(f.read().rindex(b"A" * 100) - 50000)
            f.write(b"B")
        self.assertEqual(self.request("GET", "/bucket/twin")[0], 500)
        self.assertEqual(self.request("PUT", "/bucket/k", data)[0], 200)
        for key in ("k", "twin"):
            status, _, body = self.request("GET", "/bucket/" + key)
            self.assertEqual((status, body == data), (200, True), key)
        self.flushLoggedErrors()


class DispatchTests(ResourceTestCase):
    """Authentication, sub-resources and reserved paths."""

    def test_adminNeedsAnAdmin(self) -> None:
        """The admin API refuses unsigned requests and other accounts' signatures."""
        self.assertError(self.request("GET", "/_fasterstore/admin/storage", creds=None), 403, "AccessDenied")
        self.assertError(self.request("GET", "/_fasterstore/admin/storage"), 403, "AccessDenied")
        bad = Credentials(ADMIN.accessKey, "wrong", "x", "x")
        self.assertError(self.request("GET", "/_fasterstore/admin/storage", creds=bad), 403, "SignatureDoesNotMatch")

    def test_adminStorage(self) -> None:
        """An admin sees objects, bytes, segment use and compaction's progress."""
        from fasterstore.services.compaction import Compactor

        compactor = Compactor(self.server.metadata, self.server.segments, self.server.clock)
        self.server.context.storageReport = compactor.report
        self.createBucket()
        self.request("PUT", "/bucket/a", b"x" * 1000)
        self.request("PUT", "/bucket/b", b"y" * 500)
        self.request("DELETE", "/bucket/b")
        status, headers, body = self.request("GET", "/_fasterstore/admin/storage", creds=ADMIN)
        self.assertEqual((status, headers["content-type"]), (200, "application/json"))
        report = json.loads(body)
        self.assertEqual((report["objects"], report["objectBytes"], report["blobBytes"]), (1, 1000, 1000))
        self.assertGreater(report["segmentBytes"], 1500)
        self.assertEqual(report["garbageBytes"], report["segmentBytes"] - report["liveBytes"])
        self.assertEqual(report["compaction"]["passes"], 0)

    def test_anonymous(self) -> None:
        """Unsigned requests are AccessDenied; to a missing bucket, NoSuchBucket (as AWS)."""
        self.assertError(self.request("GET", "/", creds=None), 403, "AccessDenied")
        self.assertError(self.request("GET", "/nobucket/k", creds=None), 404, "NoSuchBucket")
        self.createBucket()
        self.assertError(self.request("GET", "/bucket/k", creds=None), 403, "AccessDenied")

    def test_badSecret(self) -> None:
        """A wrong secret is SignatureDoesNotMatch; an unknown key InvalidAccessKeyId."""
        bad = Credentials(ACCESS, "wrong", "x", "x")
        self.assertError(self.request("GET", "/", creds=bad), 403, "SignatureDoesNotMatch")
        unknown = Credentials("NOBODY", "x", "x", "x")
        self.assertError(self.request("GET", "/", creds=unknown), 403, "InvalidAccessKeyId")

    def test_notImplemented(self) -> None:
        """Sub-resources not built yet are 501 NotImplemented, never a 500."""
        self.createBucket()
        for path in ["/bucket?replication", "/bucket?inventory", "/bucket/k?restore", "/bucket?analytics"]:
            self.assertError(self.request("GET", path), 501, "NotImplemented")

    def test_stsActionIsNotImplemented(self) -> None:
        """A form-encoded POST / (an STS or IAM action) is a prompt 501."""
        status, _, body = self.request(
            "POST", "/", b"Action=AssumeRole&Version=2011-06-15",
            {"Content-Type": "application/x-www-form-urlencoded"}, creds=None,
        )
        self.assertEqual(status, 501)
        self.assertEqual(ElementTree.fromstring(body).findtext("Code"), "NotImplemented")

    def test_unsupportedProtectionRefused(self) -> None:
        """
        Headers asking for encryption, or for object lock in a bucket
        without it, are refused before anything is stored; canned ACLs on
        writes are accepted and the object stays private (fails safe, as
        MinIO does).
        """
        self.assertEqual(self.request("PUT", "/bucket", headers={"x-amz-acl": "public-read"})[0], 200)
        lock = {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2999-01-01T00:00:00Z"}
        for headers, status, code in [
            ({"x-amz-server-side-encryption": "AES256"}, 501, "NotImplemented"),
            ({"x-amz-server-side-encryption-customer-algorithm": "AES256"}, 501, "NotImplemented"),
            (lock, 400, "InvalidRequest"),
            ({"x-amz-object-lock-legal-hold": "ON"}, 400, "InvalidRequest"),
        ]:
            self.assertError(self.request("PUT", "/bucket/k", b"x", headers), status, code)
        self.assertIsNone(self.server.now.getObject("bucket", "k"))
        self.assertEqual(self.request("PUT", "/bucket/k", b"x", {"x-amz-acl": "public-read"})[0], 200)
        self.assertError(self.request("GET", "/bucket/k", creds=None), 403, "AccessDenied")

    def test_unknownQueryIgnored(self) -> None:
        """Query parameters S3 does not define are ignored."""
        self.createBucket()
        self.request("PUT", "/bucket/k?foo=bar", b"x")
        self.assertEqual(self.request("GET", "/bucket/k?x-id=GetObject&zzz")[2], b"x")

    def test_health(self) -> None:
        """Health and metrics answer without credentials."""
        self.assertEqual(self.request("GET", "/_fasterstore/health/live", creds=None)[0], 200)
        self.assertEqual(self.request("GET", "/_fasterstore/health/ready", creds=None)[0], 200)
        self.createBucket()
        status, _, body = self.request("GET", "/_fasterstore/metrics", creds=None)
        self.assertEqual(status, 200)
        self.assertIn(b'fasterstore_requests_total{operation="CreateBucket",status="200"} 1.0', body)

    def test_draining(self) -> None:
        """During shutdown new requests get 503 and readiness goes down."""
        self.server.context.draining = True
        self.assertError(self.request("GET", "/"), 503, "ServiceUnavailable")
        self.assertEqual(self.request("GET", "/_fasterstore/health/ready", creds=None)[0], 503)


class FakeDrive:
    """A C{statvfs} stand-in reporting C{free} bytes available."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.looks = 0

    def statvfs(self, path: str) -> os.statvfs_result:
        self.looks += 1
        blocks = self.free // 512
        return os.statvfs_result((512, 512, 1 << 30, blocks, blocks, 1000, 1000, 1000, 0, 255))


class DiskFullTests(ResourceTestCase):
    """
    A full drive, through the resource: uploads are refused before their
    body with 507 while reads, deletes and metadata writes go on; a segment
    write that fails with ENOSPC is a 507, with EIO a 500; readiness says so.
    """

    reserve = 1 << 20

    def setUp(self) -> None:
        super().setUp()
        self.drive = FakeDrive(64 << 20)
        self.server.context.space = SpaceGuard(
            self.server.root.path, self.server.clock, self.reserve, statvfs=self.drive.statvfs
        )
        self.createBucket()

    def setFree(self, free: int) -> None:
        """
        A second later the drive has C{free} bytes available (and uploads
        admitted before then count only as the drive's figure shows them).
        """
        self.drive.free = free
        self.server.clock.advance(ADMITTED_SECONDS)

    def sendHead(self, method: str, path: str, headers: Dict[str, str], creds: Optional[Credentials] = OWNER) -> bytes:
        """
        Send only a request's head (signed, body unsigned) over a real
        channel with L{StreamingRequest}; return what the server wrote
        before any body byte was sent.
        """
        url = BASE + path
        if creds is not None:
            aws = AWSRequest(method=method, url=url, data=b"", headers=headers)
            signer = S3SigV4Auth(BotoCredentials(creds.accessKey, creds.secretKey), "s3", "us-east-1")
            payload = headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            signer.payload = lambda request: payload  # type: ignore[method-assign]
            signer.add_auth(aws)
            headers = dict(aws.headers.items())
        site = Site(self.server.resource, reactor=self.server.clock)
        site.requestFactory = StreamingRequest  # type: ignore[assignment]
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        head = f"{method} {path} HTTP/1.1\r\nHost: s3.test\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        channel.dataReceived(head.encode() + b"\r\n")
        return transport.value()

    def assertRefusedEarly(self, raw: bytes) -> None:
        """C{raw} is a complete 507 InsufficientStorage S3 error, not a 100 Continue."""
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 507 "), raw[:200])
        self.assertIn(b"Connection: close", head)
        self.assertEqual(ElementTree.fromstring(body).findtext("Code"), "InsufficientStorage")

    def createUpload(self, key: str = "big") -> str:
        """A new multipart upload's id."""
        status, _, body = self.request("POST", f"/bucket/{key}?uploads")
        self.assertEqual(status, 200, body)
        uploadId = ElementTree.fromstring(body).findtext(f"{NS}UploadId")
        assert uploadId is not None
        return uploadId

    def parts(self, uploadId: str, key: str = "big") -> Sequence[str]:
        """The part numbers an upload holds."""
        status, _, body = self.request("GET", f"/bucket/{key}?uploadId={uploadId}")
        self.assertEqual(status, 200, body)
        return [p.findtext(f"{NS}PartNumber") or "" for p in ElementTree.fromstring(body).iter(f"{NS}Part")]

    def failWrites(self, code: int) -> Any:
        """
        Make every segment write fail with C{code}, until the test ends or
        the returned patch is C{restore()}d.
        """

        def pwriteAll(fd: int, buffers: Any, offset: int) -> None:
            raise OSError(code, os.strerror(code))

        return self.patch(segmentsModule, "_pwriteAll", pwriteAll)

    def writeErrors(self, reason: str) -> float:
        """The C{fasterstore_write_errors_total} count for C{reason}."""
        value = self.server.metrics.registry.get_sample_value("fasterstore_write_errors_total", {"reason": reason})
        return value or 0.0

    # -- refused before the body ----------------------------------------

    def test_putRefused(self) -> None:
        """
        A PUT whose declared length would eat into the reserve gets 507
        InsufficientStorage, an S3 error document, and stores nothing.
        """
        self.setFree(self.reserve + 1000)
        self.assertError(self.request("PUT", "/bucket/k", b"x" * 2000), 507, "InsufficientStorage")
        self.assertIsNone(self.server.now.getObject("bucket", "k"))


    def test_putRefusedBeforeItsBody(self) -> None:
        """The 507 is the answer to the head alone: no 100 Continue, no body byte read."""
        self.setFree(self.reserve + 1000)
        raw = self.sendHead("PUT", "/bucket/k", {"Content-Length": "2000", "Expect": "100-continue"})
        self.assertRefusedEarly(raw)


    def test_putThatFits(self) -> None:
        """A PUT that leaves the reserve free is stored."""
        self.setFree(self.reserve + 5000)
        self.assertEqual(self.request("PUT", "/bucket/k", b"x" * 4000)[0], 200)
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"x" * 4000)

    def test_uploadPartRefusedBeforeItsBody(self) -> None:
        """
        UploadPart is refused with 507 at its head, by Content-Length, or
        for an aws-chunked body by its decoded length; no part is recorded.
        """
        uploadId = self.createUpload()
        self.setFree(self.reserve + 1000)
        path = f"/bucket/big?partNumber=1&uploadId={uploadId}"
        self.assertError(self.request("PUT", path, b"p" * 2000), 507, "InsufficientStorage")
        self.assertRefusedEarly(self.sendHead("PUT", path, {"Content-Length": "2000", "Expect": "100-continue"}))
        chunked = {
            "Content-Length": "100",
            "Content-Encoding": "aws-chunked",
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            "x-amz-decoded-content-length": "2000",
            "x-amz-trailer": "x-amz-checksum-crc32",
        }
        self.assertRefusedEarly(self.sendHead("PUT", path, chunked))
        self.assertEqual(self.parts(uploadId), [])
        self.assertEqual(self.request("PUT", path, b"p" * 500)[0], 200)
        self.assertEqual(self.parts(uploadId), ["1"])

    def test_unknownUploadBeforeSpace(self) -> None:
        """An UploadPart to no upload is still NoSuchUpload on a full drive."""
        self.setFree(0)
        self.assertError(self.request("PUT", "/bucket/k?partNumber=1&uploadId=nope", b"p"), 404, "NoSuchUpload")

    def test_uploadPartCopyRefused(self) -> None:
        """UploadPartCopy is refused by the size of the range it would copy; a smaller range fits."""
        source = os.urandom(100_000)
        self.assertEqual(self.request("PUT", "/bucket/source", source)[0], 200)
        uploadId = self.createUpload()
        self.setFree(self.reserve + 50_000)
        path = f"/bucket/big?partNumber=1&uploadId={uploadId}"
        copy = {"x-amz-copy-source": "bucket/source"}
        self.assertError(self.request("PUT", path, headers=copy), 507, "InsufficientStorage")
        self.assertEqual(self.parts(uploadId), [])
        status, _, body = self.request("PUT", path, headers=dict(copy, **{"x-amz-copy-source-range": "bytes=0-9999"}))
        self.assertEqual(status, 200, body)
        self.assertEqual(self.parts(uploadId), ["1"])

    def test_postRefusedBeforeItsBody(self) -> None:
        """A browser form upload is refused by its Content-Length, before the form is read."""
        self.setFree(self.reserve + 1000)
        raw = self.sendHead(
            "POST", "/bucket",
            {"Content-Type": "multipart/form-data; boundary=formboundary", "Content-Length": "5000"},
            creds=None,
        )
        self.assertRefusedEarly(raw)

    def test_copyObjectWhileFull(self) -> None:
        """CopyObject stores no bytes (it shares the source's), so a full drive does not refuse it."""
        self.assertEqual(self.request("PUT", "/bucket/source", b"shared")[0], 200)
        self.setFree(0)
        status, _, body = self.request("PUT", "/bucket/copy", headers={"x-amz-copy-source": "bucket/source"})
        self.assertEqual(status, 200, body)
        self.assertEqual(self.request("GET", "/bucket/copy")[2], b"shared")

    def test_readsDeletesAndMetadataWhileFull(self) -> None:
        """Reads, deletes and small metadata writes live on the reserve: a full drive refuses none."""
        self.assertEqual(self.request("PUT", "/bucket/k", b"kept")[0], 200)
        self.assertEqual(self.request("PUT", "/bucket/gone", b"doomed")[0], 200)
        self.setFree(0)
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"kept")
        self.assertEqual(self.request("HEAD", "/bucket/k")[0], 200)
        self.assertEqual(self.request("GET", "/bucket?list-type=2")[0], 200)
        tagging = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>"
        self.assertEqual(self.request("PUT", "/bucket/k?tagging", tagging)[0], 200)
        self.assertEqual(self.request("PUT", "/another")[0], 200)
        uploadId = self.createUpload()
        self.assertEqual(self.request("DELETE", f"/bucket/big?uploadId={uploadId}")[0], 204)
        self.assertEqual(self.request("DELETE", "/bucket/gone")[0], 204)
        self.assertError(self.request("GET", "/bucket/gone"), 404, "NoSuchKey")

    def test_writesResumeWhenSpaceReturns(self) -> None:
        """Once the drive has room again, uploads are accepted by themselves."""
        uploadId = self.createUpload()
        path = f"/bucket/big?partNumber=1&uploadId={uploadId}"
        self.setFree(0)
        self.assertError(self.request("PUT", path, b"p" * 100), 507, "InsufficientStorage")
        self.drive.free = 64 << 20
        self.assertEqual(self.request("PUT", path, b"p" * 100)[0], 200)
        self.assertEqual(self.request("PUT", "/bucket/k", b"back")[0], 200)
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"back")

    def test_putRefusedThenResumes(self) -> None:
        """The same for PUT: refused while full, stored once space returns."""
        self.setFree(0)
        self.assertError(self.request("PUT", "/bucket/k", b"x"), 507, "InsufficientStorage")
        self.setFree(64 << 20)
        self.assertEqual(self.request("PUT", "/bucket/k", b"x")[0], 200)


    # -- failed segment writes -------------------------------------------

    def test_enospcWhileWriting(self) -> None:
        """
        A segment write failing with ENOSPC (the drive filled under the
        guard's feet) is 507 InsufficientStorage, not a 500: no object, no
        part; it is counted, and the guard looks at the drive again at once.
        """
        uploadId = self.createUpload()
        self.failWrites(errno.ENOSPC)
        self.assertError(self.request("PUT", "/bucket/k", b"x" * 2000), 507, "InsufficientStorage")
        self.assertIsNone(self.server.now.getObject("bucket", "k"))
        self.assertEqual(self.writeErrors("enospc"), 1)
        looks = self.drive.looks
        path = f"/bucket/big?partNumber=1&uploadId={uploadId}"
        self.assertError(self.request("PUT", path, b"p" * 200_000), 507, "InsufficientStorage")
        self.assertEqual(self.drive.looks, looks + 1, "the guard did not look again after ENOSPC")
        self.assertEqual(self.parts(uploadId), [])
        self.assertEqual(self.writeErrors("enospc"), 2)
        metrics = self.request("GET", "/_fasterstore/metrics", creds=None)[2]
        self.assertIn(b'fasterstore_write_errors_total{reason="enospc"} 2.0', metrics)

    def test_writesResumeAfterEnospc(self) -> None:
        """Nothing sticks after an ENOSPC: the next write that finds room succeeds."""
        failing = self.failWrites(errno.ENOSPC)
        self.assertError(self.request("PUT", "/bucket/k", b"x" * 2000), 507, "InsufficientStorage")
        failing.restore()
        self.assertEqual(self.request("PUT", "/bucket/k", b"y" * 2000)[0], 200)
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"y" * 2000)

    def test_uploadPartCopyEnospc(self) -> None:
        """A server-side copy whose write fails with ENOSPC is a 507 too."""
        self.assertEqual(self.request("PUT", "/bucket/source", b"s" * 1000)[0], 200)
        uploadId = self.createUpload()
        self.failWrites(errno.ENOSPC)
        path = f"/bucket/big?partNumber=1&uploadId={uploadId}"
        self.assertError(self.request("PUT", path, headers={"x-amz-copy-source": "bucket/source"}), 507, "InsufficientStorage")
        self.assertEqual(self.parts(uploadId), [])
        self.assertEqual(self.writeErrors("enospc"), 1)

    def test_eioWhileWriting(self) -> None:
        """EIO is no full disk: 500 InternalError, nothing stored, counted apart."""
        self.failWrites(errno.EIO)
        self.assertError(self.request("PUT", "/bucket/k", b"x" * 2000), 500, "InternalError")
        self.assertIsNone(self.server.now.getObject("bucket", "k"))
        self.assertEqual((self.writeErrors("eio"), self.writeErrors("enospc")), (1, 0))

    # -- readiness ---------------------------------------------------------

    def test_readiness(self) -> None:
        """
        Readiness answers 503 with the reason while the drive is below its
        reserve, and 200 as soon as it is not (it looks at the drive itself).
        """
        self.setFree(4096)
        status, _, body = self.request("GET", "/_fasterstore/health/ready", creds=None)
        self.assertEqual((status, body), (503, f"not ready: disk full: 4096 bytes free, reserve {self.reserve}\n".encode()))
        self.assertEqual(self.request("GET", "/_fasterstore/health/live", creds=None)[0], 200)
        self.drive.free = 64 << 20
        self.assertEqual(self.request("GET", "/_fasterstore/health/ready", creds=None)[:3:2], (200, b"ready\n"))


class DeclaredLengthTests(SynchronousTestCase):
    """L{declaredLength}: the size the space guard is asked about."""

    def test_contentLength(self) -> None:
        """A plain body declares its Content-Length."""
        self.assertEqual(declaredLength({"content-length": "1234"}, None), 1234)

    def test_awsChunked(self) -> None:
        """An aws-chunked body declares x-amz-decoded-content-length, not its framed length."""
        auth = Authenticated(OWNER, PayloadMode.STREAMING_UNSIGNED_TRAILER, None, None, False)
        headers = {"content-length": "1300", "x-amz-decoded-content-length": "1234"}
        self.assertEqual(declaredLength(headers, auth), 1234)

    def test_undeclared(self) -> None:
        """Without a usable length (chunked, or nonsense the upload is refused for anyway): 0."""
        self.assertEqual(declaredLength({"transfer-encoding": "chunked"}, None), 0)
        self.assertEqual(declaredLength({"content-length": "-5"}, None), 0)
