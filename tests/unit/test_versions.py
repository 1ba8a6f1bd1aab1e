"""
Tests for L{fasterstore.s3.versions}: ListObjectVersions on buckets without
versioning, through the real resource and botocore's paginator.
"""

from __future__ import annotations

from typing import List, Optional
from urllib.parse import quote
from xml.etree import ElementTree

from tests.unit.test_batch import BotoTestCase
from tests.unit.test_resource import NS, OTHER, ResourceTestCase

KEYS = ["a", "b/1", "b/2", "c d", "e+f", "z"]


class ListVersionsTests(ResourceTestCase):
    """The ListVersionsResult document and its markers."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        for key in KEYS:
            self.request("PUT", "/bucket/" + quote(key), key.encode())

    def list(self, query: str = "") -> ElementTree.Element:
        status, _, body = self.request("GET", "/bucket?versions" + query)
        self.assertEqual(status, 200, body)
        return ElementTree.fromstring(body)

    def keys(self, doc: ElementTree.Element) -> List[Optional[str]]:
        return [v.findtext(f"{NS}Key") for v in doc.iter(f"{NS}Version")]

    def test_everyObjectOnceAsNull(self) -> None:
        """Each object is one latest Version with VersionId null, owner and size."""
        doc = self.list()
        self.assertEqual(doc.tag, f"{NS}ListVersionsResult")
        self.assertEqual(self.keys(doc), KEYS)
        self.assertEqual(doc.findtext(f"{NS}IsTruncated"), "false")
        self.assertIsNone(doc.find(f"{NS}NextKeyMarker"))
        self.assertEqual(list(doc.iter(f"{NS}DeleteMarker")), [])
        version = doc.find(f"{NS}Version")
        assert version is not None
        self.assertEqual(version.findtext(f"{NS}VersionId"), "null")
        self.assertEqual(version.findtext(f"{NS}IsLatest"), "true")
        self.assertEqual(version.findtext(f"{NS}Size"), "1")
        self.assertEqual(version.findtext(f"{NS}StorageClass"), "STANDARD")
        self.assertEqual(version.findtext(f"{NS}Owner/{NS}ID"), "owner-id")
        record = self.server.now.getObject("bucket", "a")
        assert record is not None
        self.assertEqual(version.findtext(f"{NS}ETag"), f'"{record.etag}"')

    def test_paging(self) -> None:
        """Truncated pages name NextKeyMarker and NextVersionIdMarker null; markers resume."""
        doc = self.list("&max-keys=2")
        self.assertEqual(self.keys(doc), ["a", "b/1"])
        self.assertEqual(doc.findtext(f"{NS}IsTruncated"), "true")
        self.assertEqual(doc.findtext(f"{NS}NextKeyMarker"), "b/1")
        self.assertEqual(doc.findtext(f"{NS}NextVersionIdMarker"), "null")
        doc = self.list("&max-keys=2&key-marker=b/1&version-id-marker=null")
        self.assertEqual(self.keys(doc), ["b/2", "c d"])
        self.assertEqual(doc.findtext(f"{NS}KeyMarker"), "b/1")
        self.assertEqual(doc.findtext(f"{NS}VersionIdMarker"), "null")
        doc = self.list("&key-marker=c%20d")
        self.assertEqual(self.keys(doc), ["e+f", "z"])

    def test_delimiterAndPrefix(self) -> None:
        """Delimiter rolls keys up into CommonPrefixes; a prefix marker skips them."""
        doc = self.list("&delimiter=/")
        self.assertEqual(self.keys(doc), ["a", "c d", "e+f", "z"])
        self.assertEqual([p.findtext(f"{NS}Prefix") for p in doc.iter(f"{NS}CommonPrefixes")], ["b/"])
        doc = self.list("&delimiter=/&max-keys=2")
        self.assertEqual(doc.findtext(f"{NS}NextKeyMarker"), "b/")
        doc = self.list("&delimiter=/&key-marker=b/&version-id-marker=null")
        self.assertEqual(self.keys(doc), ["c d", "e+f", "z"])
        self.assertEqual(self.keys(self.list("&prefix=b/")), ["b/1", "b/2"])

    def test_urlEncoding(self) -> None:
        """encoding-type=url encodes keys and markers."""
        doc = self.list("&encoding-type=url&key-marker=b/2")
        self.assertEqual(self.keys(doc), ["c%20d", "e%2Bf", "z"])
        self.assertEqual(doc.findtext(f"{NS}EncodingType"), "url")

    def test_errors(self) -> None:
        """Bad markers, bad encoding, missing bucket, another account."""
        self.assertError(self.request("GET", "/bucket?versions&version-id-marker=null"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket?versions&key-marker=a&version-id-marker=v1"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket?versions&encoding-type=xml"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket?versions&max-keys=x"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/nobucket?versions"), 404, "NoSuchBucket")
        self.assertError(self.request("GET", "/bucket?versions", creds=OTHER), 403, "AccessDenied")

    def test_emptyBucket(self) -> None:
        """An empty bucket lists nothing, IsTruncated false."""
        self.createBucket("empty")
        status, _, body = self.request("GET", "/empty?versions")
        doc = ElementTree.fromstring(body)
        self.assertEqual((status, self.keys(doc), doc.findtext(f"{NS}IsTruncated")), (200, [], "false"))


class BotocoreVersionsTests(BotoTestCase):
    """What boto3-based cleanup code does."""

    def test_paginateAndDelete(self) -> None:
        """Paginate list_object_versions (url-encoded keys) and delete every version."""
        self.s3.create_bucket(Bucket="bucket")
        keys = [f"dir/{i:02d} ü+\x01" for i in range(7)] + ["top"]
        for key in keys:
            self.s3.put_object(Bucket="bucket", Key=key, Body=b"x")
        seen = []
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket="bucket", PaginationConfig={"PageSize": 3}):
            self.assertNotIn("DeleteMarkers", page)
            for version in page.get("Versions", []):
                self.assertEqual((version["VersionId"], version["IsLatest"]), ("null", True))
                seen.append(version["Key"])
                self.s3.delete_object(Bucket="bucket", Key=version["Key"], VersionId=version["VersionId"])
        self.assertEqual(seen, sorted(keys))
        self.s3.delete_bucket(Bucket="bucket")
