"""
Tests for L{fasterstore.s3.copy}: CopyObject through the real resource,
with botocore-signed requests and botocore's own client.
"""

from __future__ import annotations

import base64
import zlib
from typing import Dict, Optional, Tuple
from urllib.parse import quote
from xml.etree import ElementTree

import attrs
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectRecord, versionIdOf
from fasterstore.metadata.testing import tagsSetter
from fasterstore.s3.copy import MAX_COPY_SIZE, SELF_COPY_MESSAGE, parseCopySource
from fasterstore.http.dates import formatHTTPDate
from tests.unit.test_batch import BotoTestCase
from tests.unit.test_resource import NS, OTHER, ResourceTestCase

DATA = b"the quick brown fox " * 100


class CopyTests(ResourceTestCase):
    """CopyObject semantics."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        self.createBucket("other-bucket")
        status, _, _ = self.request(
            "PUT", "/bucket/src", DATA,
            {"Content-Type": "text/plain", "x-amz-meta-color": "blue", "Cache-Control": "no-cache"},
        )
        self.assertEqual(status, 200)

    def copy(self, destination: str, source: str = "bucket/src", headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
        """Send a CopyObject."""
        return self.request("PUT", destination, b"", {"x-amz-copy-source": source, **(headers or {})})

    def record(self, key: str, bucket: str = "bucket") -> ObjectRecord:
        """The stored record of an object."""
        record = self.server.now.getObject(bucket, key)
        assert record is not None
        return record

    def test_sharesBytes(self) -> None:
        """A copy takes a reference on the source's blob, and outlives the source."""
        status, headers, body = self.copy("/other-bucket/dst")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "application/xml")
        doc = ElementTree.fromstring(body)
        self.assertEqual(doc.tag, f"{NS}CopyObjectResult")
        source = self.record("src")
        self.assertEqual(doc.findtext(f"{NS}ETag"), f'"{source.etag}"')
        self.assertRegex(doc.findtext(f"{NS}LastModified", ""), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(doc.findtext(f"{NS}ChecksumCRC64NVME"), dict(source.checksums)["crc64nvme"])
        copied = self.record("dst", "other-bucket")
        self.assertEqual((copied.blob, copied.etag, copied.size, copied.checksums), (source.blob, source.etag, source.size, source.checksums))
        blob = self.server.now.getBlob(source.blob)
        assert blob is not None
        self.assertEqual(blob.refs, 2)
        self.assertEqual(self.request("DELETE", "/bucket/src")[0], 204)
        status, headers, body = self.request("GET", "/other-bucket/dst")
        self.assertEqual((status, body), (200, DATA))
        self.assertEqual((headers["content-type"], headers["x-amz-meta-color"], headers["cache-control"]),
                         ("text/plain", "blue", "no-cache"))
        blob = self.server.now.getBlob(source.blob)
        assert blob is not None
        self.assertEqual(blob.refs, 1)

    def test_urlEncodedSource(self) -> None:
        """The source key is URL-decoded, with or without a leading slash and ?versionId=null."""
        key = "dir/a b+c ü?x"
        self.request("PUT", "/bucket/" + quote(key, safe="/"), b"odd")
        for source in ("bucket/" + quote(key), "/bucket/" + quote(key) + "?versionId=null"):
            status, _, body = self.copy("/bucket/copied", source)
            self.assertEqual(status, 200, body)
            self.assertEqual(self.request("GET", "/bucket/copied")[2], b"odd")

    def test_replaceMetadata(self) -> None:
        """REPLACE takes system headers and user metadata from the request only."""
        status, _, _ = self.copy("/bucket/dst", headers={
            "x-amz-metadata-directive": "REPLACE", "Content-Type": "image/png", "x-amz-meta-size": "big",
        })
        self.assertEqual(status, 200)
        copied = self.record("dst")
        self.assertEqual((copied.headers, copied.meta), ((("Content-Type", "image/png"),), (("size", "big"),)))

    def test_copyIgnoresRequestMetadata(self) -> None:
        """COPY (the default) ignores the request's metadata headers."""
        self.copy("/bucket/dst", headers={"Content-Type": "image/png", "x-amz-meta-x": "y"})
        self.assertEqual(self.record("dst").meta, (("color", "blue"),))

    def test_selfCopy(self) -> None:
        """Onto itself: refused without REPLACE; with it, a metadata update sharing the same bytes."""
        result = self.copy("/bucket/src")
        self.assertError(result, 400, "InvalidRequest")
        self.assertIn(SELF_COPY_MESSAGE.encode(), result[2])
        before = self.record("src")
        self.server.clock.advance(10)
        status, _, body = self.copy("/bucket/src", headers={"x-amz-metadata-directive": "REPLACE", "x-amz-meta-color": "red"})
        self.assertEqual(status, 200, body)
        after = self.record("src")
        self.assertEqual((after.meta, after.headers, after.etag), ((("color", "red"),), (), before.etag))
        self.assertGreater(after.modified, before.modified)
        blob = self.server.now.getBlob(after.blob)
        assert blob is not None
        self.assertEqual(blob.refs, 1)
        self.assertEqual(self.request("GET", "/bucket/src")[2], DATA)

    def test_selfCopyStorageClass(self) -> None:
        """Naming the storage class makes a copy onto itself legal; another class is refused."""
        self.assertEqual(self.copy("/bucket/src", headers={"x-amz-storage-class": "STANDARD"})[0], 200)
        self.assertError(self.copy("/bucket/dst", headers={"x-amz-storage-class": "GLACIER"}), 400, "InvalidStorageClass")

    def test_tagging(self) -> None:
        """Tags are copied by default, replaced from x-amz-tagging with REPLACE."""
        self.successResultOf(self.server.metadata.updateVersion("bucket", "src", None, tagsSetter((("a", "1"),))))
        self.copy("/bucket/d1")
        self.assertEqual(self.record("d1").tags, (("a", "1"),))
        self.copy("/bucket/d2", headers={"x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "b=2&c=x%20y"})
        self.assertEqual(self.record("d2").tags, (("b", "2"), ("c", "x y")))
        self.copy("/bucket/d3", headers={"x-amz-tagging-directive": "REPLACE"})
        self.assertEqual(self.record("d3").tags, ())
        self.copy("/bucket/d4", headers={"x-amz-tagging": "ignored=1"})
        self.assertEqual(self.record("d4").tags, (("a", "1"),))
        self.assertError(self.copy("/bucket/d5", headers={"x-amz-tagging-directive": "MOVE"}), 400, "InvalidArgument")
        self.assertError(self.copy("/bucket/d5", headers={"x-amz-metadata-directive": "MOVE"}), 400, "InvalidArgument")
        self.assertError(
            self.copy("/bucket/d5", headers={"x-amz-tagging-directive": "REPLACE", "x-amz-tagging": "aws:x=1"}),
            400, "InvalidTag",
        )

    def test_sourceConditions(self) -> None:
        """x-amz-copy-source-if-* follow AWS's rules, every failure a 412."""
        source = self.record("src")
        etag = f'"{source.etag}"'
        past, future = formatHTTPDate(source.modified - 3600), formatHTTPDate(source.modified + 3600)
        ok = [
            {"x-amz-copy-source-if-match": etag},
            {"x-amz-copy-source-if-none-match": '"other"'},
            {"x-amz-copy-source-if-modified-since": past},
            {"x-amz-copy-source-if-unmodified-since": future},
            # if-match true wins over if-unmodified-since false.
            {"x-amz-copy-source-if-match": etag, "x-amz-copy-source-if-unmodified-since": past},
        ]
        failed = [
            ({"x-amz-copy-source-if-match": '"other"'}, "x-amz-copy-source-If-Match"),
            ({"x-amz-copy-source-if-none-match": etag}, "x-amz-copy-source-If-None-Match"),
            ({"x-amz-copy-source-if-modified-since": future}, "x-amz-copy-source-If-Modified-Since"),
            ({"x-amz-copy-source-if-unmodified-since": past}, "x-amz-copy-source-If-Unmodified-Since"),
            # if-none-match false fails whatever if-modified-since says.
            ({"x-amz-copy-source-if-none-match": etag, "x-amz-copy-source-if-modified-since": past},
             "x-amz-copy-source-If-None-Match"),
        ]
        for headers in ok:
            self.assertEqual(self.copy("/bucket/dst", headers=headers)[0], 200, headers)
        for headers, condition in failed:
            result = self.copy("/bucket/nope", headers=headers)
            self.assertError(result, 412, "PreconditionFailed")
            self.assertEqual(ElementTree.fromstring(result[2]).findtext("Condition"), condition)
        self.assertIsNone(self.server.now.getObject("bucket", "nope"))

    def test_destinationConditions(self) -> None:
        """If-None-Match: * on the destination refuses to overwrite."""
        self.copy("/bucket/dst")
        self.assertError(self.copy("/bucket/dst", headers={"If-None-Match": "*"}), 412, "PreconditionFailed")
        self.assertEqual(self.copy("/bucket/new", headers={"If-None-Match": "*"})[0], 200)

    def test_sourceErrors(self) -> None:
        """Missing source key, bucket, version; another account's bucket; an unreadable header."""
        self.assertError(self.copy("/bucket/dst", "bucket/missing"), 404, "NoSuchKey")
        self.assertError(self.copy("/bucket/dst", "nobucket/src"), 404, "NoSuchBucket")
        self.assertError(self.copy("/bucket/dst", "bucket/src?versionId=abc"), 400, "InvalidArgument")
        self.assertError(self.copy("/bucket/dst", "bucket/src?versionId=" + versionIdOf(99999)), 404, "NoSuchVersion")
        self.assertError(self.copy("/bucket/dst", "bucket/src?versionId="), 400, "InvalidArgument")
        self.assertEqual(self.request("PUT", "/theirs", creds=OTHER)[0], 200)
        self.request("PUT", "/theirs/k", b"x", creds=OTHER)
        self.assertError(self.copy("/bucket/dst", "theirs/k"), 403, "AccessDenied")
        self.assertError(self.copy("/theirs/dst", "bucket/src"), 403, "AccessDenied")
        for bad in ("bucket", "bucket/", "/src", "%FF/x"):
            self.assertError(self.copy("/bucket/dst", bad), 400, "InvalidArgument")

    def test_tooLarge(self) -> None:
        """A source over 5 GiB is refused with AWS's message."""
        self.successResultOf(self.server.metadata.copyObject(
            "bucket", "src", lambda s: attrs.evolve(s, key="huge", size=MAX_COPY_SIZE + 1)
        ))
        result = self.copy("/bucket/dst", "bucket/huge")
        self.assertError(result, 400, "InvalidRequest")
        self.assertIn(b"larger than the maximum allowable size for a copy source: 5368709120", result[2])

    def test_checksumsKept(self) -> None:
        """The destination keeps the source's checksums; another algorithm cannot be had without reading."""
        body = b"checked"
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        self.request("PUT", "/bucket/c", body, {"x-amz-checksum-crc32": crc})
        status, _, content = self.copy("/bucket/c2", "bucket/c")
        self.assertEqual(ElementTree.fromstring(content).findtext(f"{NS}ChecksumCRC32"), crc)
        _, headers, _ = self.request("HEAD", "/bucket/c2", headers={"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual(headers["x-amz-checksum-crc32"], crc)
        self.assertEqual(self.copy("/bucket/c3", "bucket/c", {"x-amz-checksum-algorithm": "CRC32"})[0], 200)
        self.assertError(self.copy("/bucket/c4", "bucket/c", {"x-amz-checksum-algorithm": "SHA256"}), 501, "NotImplemented")


class ParseCopySourceTests(SynchronousTestCase):
    """L{parseCopySource}."""

    def test_forms(self) -> None:
        """Both forms, URL-decoding, version ids."""
        self.assertEqual(attrs.astuple(parseCopySource("b/k%20x/y")), ("b", "k x/y", None))
        self.assertEqual(attrs.astuple(parseCopySource("/b/a%3Fb?versionId=null")), ("b", "a?b", "null"))
        self.assertEqual(parseCopySource("b/a+b").key, "a+b")

    def test_bad(self) -> None:
        """No key is InvalidArgument."""
        self.assertEqual(self.assertRaises(S3Error, parseCopySource, "b").code, "InvalidArgument")


class BotocoreCopyTests(BotoTestCase):
    """copy_object from botocore."""

    def test_copyObject(self) -> None:
        """botocore's copy_object, with a unicode source and REPLACE, round-trips."""
        self.s3.create_bucket(Bucket="bucket")
        self.s3.put_object(Bucket="bucket", Key="dir/ü +x", Body=b"data", Metadata={"a": "1"})
        response = self.s3.copy_object(
            Bucket="bucket", Key="copy", CopySource={"Bucket": "bucket", "Key": "dir/ü +x"},
            MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/x",
        )
        self.assertTrue(response["CopyObjectResult"]["ETag"].startswith('"'))
        head = self.s3.head_object(Bucket="bucket", Key="copy")
        self.assertEqual((head["Metadata"], head["ContentType"]), ({"b": "2"}, "text/x"))
        self.assertEqual(self.s3.get_object(Bucket="bucket", Key="copy")["Body"].read(), b"data")
        self.s3.copy_object(
            Bucket="bucket", Key="copy", CopySource="bucket/copy",
            MetadataDirective="REPLACE", Metadata={"c": "3"},
        )
        self.assertEqual(self.s3.head_object(Bucket="bucket", Key="copy")["Metadata"], {"c": "3"})
