"""
Tests for L{fasterstore.s3.tagging}: object and bucket tagging through the
real resource and botocore's client, the Tagging document and the
x-amz-tagging header parser.
"""

from __future__ import annotations

from typing import List, Tuple
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from botocore.exceptions import ClientError
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.records import versionIdOf
from fasterstore.s3.tagging import (
    MAX_BUCKET_TAGS,
    MAX_OBJECT_TAGS,
    decodeTags,
    encodeTags,
    parseTagging,
    parseTaggingHeader,
    validateTags,
)
from tests.unit.test_batch import BotoTestCase
from tests.unit.test_resource import NS, OTHER, ResourceTestCase


def taggingBody(tags: List[Tuple[str, str]]) -> bytes:
    """A Tagging document."""
    inner = "".join(f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>" for k, v in tags)
    return f'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>{inner}</TagSet></Tagging>'.encode()


def tagsOf(body: bytes) -> List[Tuple[str, str]]:
    """The tags of a Tagging response."""
    return [
        (t.findtext(f"{NS}Key") or "", t.findtext(f"{NS}Value") or "")
        for t in ElementTree.fromstring(body).iter(f"{NS}Tag")
    ]


class ValidationTests(SynchronousTestCase):
    """AWS's tag limits."""

    def invalid(self, tags: Tuple[Tuple[str, str], ...], limit: int = MAX_OBJECT_TAGS) -> str:
        e = self.assertRaises(S3Error, validateTags, tags, limit)
        self.assertEqual(e.code, "InvalidTag")
        return e.message

    def test_limits(self) -> None:
        """Count, key and value lengths, duplicates, aws: prefix, characters."""
        validateTags(tuple((f"k{i}", "v") for i in range(MAX_OBJECT_TAGS)))
        validateTags(tuple((f"k{i}", "v") for i in range(MAX_BUCKET_TAGS)), MAX_BUCKET_TAGS)
        validateTags((("k" * 128, "v" * 256), ("ünï cödé +-=._:/@", ""), ("a1", " spaced ")))
        self.assertIn("greater than 10", self.invalid(tuple((f"k{i}", "v") for i in range(11))))
        self.assertIn("greater than 50", self.invalid(tuple((f"k{i}", "v") for i in range(51)), MAX_BUCKET_TAGS))
        self.assertIn("too long", self.invalid((("k" * 129, "v"),)))
        self.assertIn("too long", self.invalid((("k", "v" * 257),)))
        self.assertIn("same key", self.invalid((("k", "1"), ("k", "2"))))
        self.assertIn("aws:", self.invalid((("aws:x", "1"),)))
        self.invalid((("", "v"),))
        self.invalid((("a,b", "v"),))
        self.invalid((("k", "a&b"),))

    def test_header(self) -> None:
        """x-amz-tagging is form-encoded query syntax; duplicates are InvalidArgument."""
        self.assertEqual(parseTaggingHeader("a=1&b=x%20y&c=&d"), (("a", "1"), ("b", "x y"), ("c", ""), ("d", "")))
        self.assertEqual(parseTaggingHeader("k=a+b"), (("k", "a b"),))
        self.assertEqual(parseTaggingHeader(""), ())
        self.assertEqual(self.assertRaises(S3Error, parseTaggingHeader, "a=1&a=2").code, "InvalidArgument")
        self.assertEqual(self.assertRaises(S3Error, parseTaggingHeader, "a=%FF").code, "InvalidArgument")
        self.assertEqual(self.assertRaises(S3Error, parseTaggingHeader, "aws:a=1").code, "InvalidTag")

    def test_document(self) -> None:
        """The Tagging document, with or without namespace; a missing TagSet is MalformedXML."""
        self.assertEqual(parseTagging(taggingBody([("a", "1"), ("b", "")])), (("a", "1"), ("b", "")))
        self.assertEqual(parseTagging(b"<Tagging><TagSet/></Tagging>"), ())
        for bad in (b"<Tagging/>", b"<Other><TagSet/></Other>", b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>"):
            self.assertEqual(self.assertRaises(S3Error, parseTagging, bad).code, "MalformedXML")

    def test_storage(self) -> None:
        """Bucket tags round-trip through their config entry."""
        tags = (("a", "1"), ("ü", "x y"))
        self.assertEqual(decodeTags(encodeTags(tags)), tags)
        self.assertEqual(decodeTags(None), ())


class ObjectTaggingTests(ResourceTestCase):
    """Put/Get/DeleteObjectTagging."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        self.request("PUT", "/bucket/k", b"data")

    def test_roundTrip(self) -> None:
        """Put, get, replace, delete."""
        status, _, body = self.request("GET", "/bucket/k?tagging")
        self.assertEqual((status, tagsOf(body)), (200, []))
        self.assertIsNotNone(ElementTree.fromstring(body).find(f"{NS}TagSet"))
        status, _, body = self.request("PUT", "/bucket/k?tagging", taggingBody([("a", "1"), ("b", "2")]))
        self.assertEqual(status, 200, body)
        self.assertEqual(tagsOf(self.request("GET", "/bucket/k?tagging")[2]), [("a", "1"), ("b", "2")])
        self.request("PUT", "/bucket/k?tagging", taggingBody([("c", "3")]))
        self.assertEqual(tagsOf(self.request("GET", "/bucket/k?versionId=null&tagging")[2]), [("c", "3")])
        self.assertEqual(self.request("DELETE", "/bucket/k?tagging")[0], 204)
        self.assertEqual(tagsOf(self.request("GET", "/bucket/k?tagging")[2]), [])
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"data")

    def test_tagsInRecord(self) -> None:
        """Tags are stored in the object record."""
        self.request("PUT", "/bucket/k?tagging", taggingBody([("a", "1")]))
        record = self.server.now.getObject("bucket", "k")
        assert record is not None
        self.assertEqual(record.tags, (("a", "1"),))

    def test_errors(self) -> None:
        """Missing object or version, bad tags, other account."""
        self.assertError(self.request("GET", "/bucket/nope?tagging"), 404, "NoSuchKey")
        self.assertError(self.request("PUT", "/bucket/nope?tagging", taggingBody([("a", "1")])), 404, "NoSuchKey")
        self.assertError(self.request("DELETE", "/bucket/nope?tagging"), 404, "NoSuchKey")
        self.assertError(self.request("GET", "/bucket/k?tagging&versionId=v1"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket/k?tagging&versionId=" + versionIdOf(99999)), 404, "NoSuchVersion")
        eleven = [(f"k{i}", "v") for i in range(11)]
        self.assertError(self.request("PUT", "/bucket/k?tagging", taggingBody(eleven)), 400, "InvalidTag")
        self.assertError(self.request("PUT", "/bucket/k?tagging", taggingBody([("aws:x", "1")])), 400, "InvalidTag")
        self.assertError(self.request("PUT", "/bucket/k?tagging", b"<Tagging>"), 400, "MalformedXML")
        self.assertError(self.request("GET", "/bucket/k?tagging", creds=OTHER), 403, "AccessDenied")
        record = self.server.now.getObject("bucket", "k")
        assert record is not None
        self.assertEqual(record.tags, ())


class BucketTaggingTests(ResourceTestCase):
    """Put/Get/DeleteBucketTagging."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()

    def test_roundTrip(self) -> None:
        """NoSuchTagSet until tags are put; 204 for put and delete."""
        self.assertError(self.request("GET", "/bucket?tagging"), 404, "NoSuchTagSet")
        tags = [(f"k{i}", f"v {i}") for i in range(MAX_BUCKET_TAGS)]
        status, _, body = self.request("PUT", "/bucket?tagging", taggingBody(tags))
        self.assertEqual(status, 204, body)
        status, _, body = self.request("GET", "/bucket?tagging")
        self.assertEqual((status, tagsOf(body)), (200, tags))
        bucket = self.server.now.getBucket("bucket")
        assert bucket is not None
        self.assertEqual(decodeTags(bucket.configValue("tagging")), tuple(tags))
        self.assertEqual(self.request("DELETE", "/bucket?tagging")[0], 204)
        self.assertError(self.request("GET", "/bucket?tagging"), 404, "NoSuchTagSet")
        self.assertEqual(self.request("DELETE", "/bucket?tagging")[0], 204)

    def test_emptyTagSetRemoves(self) -> None:
        """Putting an empty TagSet leaves the bucket without tags."""
        self.request("PUT", "/bucket?tagging", taggingBody([("a", "1")]))
        self.assertEqual(self.request("PUT", "/bucket?tagging", taggingBody([]))[0], 204)
        self.assertError(self.request("GET", "/bucket?tagging"), 404, "NoSuchTagSet")

    def test_errors(self) -> None:
        """Over 50 tags, a missing bucket, another account."""
        tags = [(f"k{i}", "v") for i in range(MAX_BUCKET_TAGS + 1)]
        self.assertError(self.request("PUT", "/bucket?tagging", taggingBody(tags)), 400, "InvalidTag")
        self.assertError(self.request("GET", "/nobucket?tagging"), 404, "NoSuchBucket")
        self.assertError(self.request("PUT", "/bucket?tagging", taggingBody([("a", "1")]), creds=OTHER), 403, "AccessDenied")


class BotocoreTaggingTests(BotoTestCase):
    """The tagging calls as botocore makes them."""

    def test_objectTagging(self) -> None:
        """put/get/delete_object_tagging."""
        self.s3.create_bucket(Bucket="bucket")
        self.s3.put_object(Bucket="bucket", Key="k", Body=b"x")
        self.s3.put_object_tagging(Bucket="bucket", Key="k", Tagging={"TagSet": [{"Key": "ü", "Value": "a b"}]})
        self.assertEqual(self.s3.get_object_tagging(Bucket="bucket", Key="k")["TagSet"], [{"Key": "ü", "Value": "a b"}])
        self.s3.delete_object_tagging(Bucket="bucket", Key="k")
        self.assertEqual(self.s3.get_object_tagging(Bucket="bucket", Key="k")["TagSet"], [])

    def test_bucketTagging(self) -> None:
        """put/get/delete_bucket_tagging; NoSuchTagSet as a ClientError."""
        self.s3.create_bucket(Bucket="bucket")
        e = self.assertRaises(ClientError, self.s3.get_bucket_tagging, Bucket="bucket")
        self.assertEqual(e.response["Error"]["Code"], "NoSuchTagSet")
        self.s3.put_bucket_tagging(Bucket="bucket", Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
        self.assertEqual(self.s3.get_bucket_tagging(Bucket="bucket")["TagSet"], [{"Key": "team", "Value": "storage"}])
        self.s3.delete_bucket_tagging(Bucket="bucket")
        self.assertRaises(ClientError, self.s3.get_bucket_tagging, Bucket="bucket")
