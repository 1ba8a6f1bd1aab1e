"""
Tests for L{fasterstore.s3.versions}: ListObjectVersions on buckets that
never had versioning (every object once, as its null version) and on
versioned buckets (versions and delete markers, newest first, paged by key
and version markers), through the real resource and botocore's paginator.
"""

from __future__ import annotations

from typing import List, Optional, Tuple
from urllib.parse import quote
from xml.etree import ElementTree

from fasterstore.http.dates import formatISO8601
from tests.unit.test_batch import BotoTestCase
from tests.unit.test_resource import NS, OTHER, ResourceTestCase
from tests.unit.test_versioning_http import VersioningTestCase, versioningDocument

KEYS = ["a", "b/1", "b/2", "c d", "e+f", "z"]


class ListVersionsTests(ResourceTestCase):
    """The ListVersionsResult document and its markers, in a bucket that never had versioning."""

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
        result = self.request("GET", "/bucket?versions&key-marker=a&version-id-marker=v1")
        self.assertError(result, 400, "InvalidArgument")
        self.assertEqual(ElementTree.fromstring(result[2]).findtext("ArgumentName"), "version-id-marker")
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


#: One entry of a listing: key, version id, is it the latest, is it a marker.
Entry = Tuple[Optional[str], Optional[str], Optional[str], bool]


class VersionedListingTests(VersioningTestCase):
    """Versions and delete markers of a versioned bucket."""

    def setUp(self) -> None:
        super().setUp()
        self.put("a", b"null")  # before versioning: the null version
        self.request("PUT", "/bucket?versioning", versioningDocument("Enabled"))
        self.a = [self.put("a", b"a" * n) for n in (2, 3)]
        self.b = self.put("b/1", b"b")
        self.bMarker = self.delete("b/1")["x-amz-version-id"]
        self.c = self.put("c d", b"c")

    def list(self, query: str = "") -> ElementTree.Element:
        status, _, body = self.request("GET", "/bucket?versions" + query)
        self.assertEqual(status, 200, body)
        return ElementTree.fromstring(body)

    def entries(self, document: ElementTree.Element) -> List[Entry]:
        return [
            (e.findtext(f"{NS}Key"), e.findtext(f"{NS}VersionId"), e.findtext(f"{NS}IsLatest"), e.tag == f"{NS}DeleteMarker")
            for e in document
            if e.tag in (f"{NS}Version", f"{NS}DeleteMarker")
        ]

    def expected(self) -> List[Entry]:
        return [
            ("a", self.a[1], "true", False), ("a", self.a[0], "false", False), ("a", "null", "false", False),
            ("b/1", self.bMarker, "true", True), ("b/1", self.b, "false", False),
            ("c d", self.c, "true", False),
        ]

    def test_everyVersionNewestFirst(self) -> None:
        """Every version and marker, by key then newest first, with the wire ids the writes answered."""
        document = self.list()
        self.assertEqual(self.entries(document), self.expected())
        self.assertEqual(document.findtext(f"{NS}IsTruncated"), "false")
        self.assertIsNone(document.find(f"{NS}NextKeyMarker"))
        self.assertIsNone(document.find(f"{NS}NextVersionIdMarker"))

    def test_entryElements(self) -> None:
        """A Version has ETag, Size, StorageClass and Owner; a DeleteMarker only Owner besides its identity."""
        document = self.list()
        version = document.find(f"{NS}Version")
        assert version is not None
        record = self.server.now.getVersion("bucket", "a", self.a[1])
        self.assertEqual(version.findtext(f"{NS}ETag"), f'"{record.etag}"')
        self.assertEqual(version.findtext(f"{NS}Size"), "3")
        self.assertEqual(version.findtext(f"{NS}StorageClass"), "STANDARD")
        self.assertEqual(version.findtext(f"{NS}LastModified"), formatISO8601(record.modified))
        self.assertEqual(version.findtext(f"{NS}Owner/{NS}ID"), "owner-id")
        marker = document.find(f"{NS}DeleteMarker")
        assert marker is not None
        self.assertEqual(
            [child.tag.replace(NS, "") for child in marker], ["Key", "VersionId", "IsLatest", "LastModified", "Owner"]
        )
        markerRecord = self.server.now.getVersion("bucket", "b/1", self.bMarker)
        self.assertEqual(marker.findtext(f"{NS}LastModified"), formatISO8601(markerRecord.modified))
        self.assertEqual(marker.findtext(f"{NS}Owner/{NS}DisplayName"), "owner")

    def test_pageByOne(self) -> None:
        """max-keys=1 walks every entry with NextKeyMarker and NextVersionIdMarker, and ends untruncated."""
        seen: List[Entry] = []
        query = "&max-keys=1"
        while True:
            document = self.list(query)
            seen.extend(self.entries(document))
            if document.findtext(f"{NS}IsTruncated") == "false":
                self.assertIsNone(document.find(f"{NS}NextKeyMarker"))
                break
            keyMarker = document.findtext(f"{NS}NextKeyMarker") or ""
            versionMarker = document.findtext(f"{NS}NextVersionIdMarker") or ""
            self.assertEqual((keyMarker, versionMarker), seen[-1][:2])
            query = f"&max-keys=1&key-marker={quote(keyMarker)}&version-id-marker={versionMarker}"
        self.assertEqual(seen, self.expected())

    def test_keyMarkerAlone(self) -> None:
        """key-marker without a version marker skips every version of that key."""
        self.assertEqual(self.entries(self.list("&key-marker=a")), self.expected()[3:])

    def test_versionMarkerOfNull(self) -> None:
        """version-id-marker null resumes after a key's null version."""
        self.assertEqual(self.entries(self.list(f"&key-marker=a&version-id-marker={self.a[1]}")), self.expected()[1:])
        self.assertEqual(self.entries(self.list("&key-marker=a&version-id-marker=null")), self.expected()[3:])

    def test_prefixAndDelimiter(self) -> None:
        """Prefixes roll markers and versions up; a page ending on a prefix names no NextVersionIdMarker."""
        document = self.list("&delimiter=/")
        self.assertEqual([p.findtext(f"{NS}Prefix") for p in document.iter(f"{NS}CommonPrefixes")], ["b/"])
        self.assertEqual([e[0] for e in self.entries(document)], ["a", "a", "a", "c d"])
        document = self.list("&delimiter=/&key-marker=a&max-keys=1")
        self.assertEqual(document.findtext(f"{NS}IsTruncated"), "true")
        self.assertEqual(document.findtext(f"{NS}NextKeyMarker"), "b/")
        self.assertIsNone(document.find(f"{NS}NextVersionIdMarker"))
        self.assertEqual(self.entries(self.list("&prefix=b/")), self.expected()[3:5])

    def test_urlEncoding(self) -> None:
        """encoding-type=url encodes the keys of versions and of markers."""
        document = self.list("&encoding-type=url&key-marker=a")
        self.assertEqual([e[0] for e in self.entries(document)], ["b/1", "b/1", "c%20d"])

    def test_markerVersionDeletedBetweenPages(self) -> None:
        """A page's NextVersionIdMarker still resumes after that version is deleted: nothing older is skipped."""
        document = self.list("&max-keys=1")
        self.assertEqual(document.findtext(f"{NS}NextVersionIdMarker"), self.a[1])
        self.delete("a", self.a[1])
        rest = self.entries(self.list(f"&key-marker=a&version-id-marker={self.a[1]}"))
        self.assertEqual(rest, [("a", self.a[0], "true", False)] + self.expected()[2:])


class BotocoreVersionedTests(BotoTestCase):
    """boto3's paginator over a versioned bucket."""

    def test_paginateVersionsAndMarkers(self) -> None:
        """PageSize 1 walks every version and marker once; deleting them all empties the bucket."""
        self.s3.create_bucket(Bucket="bucket")
        self.s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
        made = []
        for key in ("dir/ü+\x01", "k", "k", "z"):
            made.append((key, self.s3.put_object(Bucket="bucket", Key=key, Body=b"x")["VersionId"], False))
        made.append(("k", self.s3.delete_object(Bucket="bucket", Key="k")["VersionId"], True))
        seen = []
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket="bucket", PaginationConfig={"PageSize": 1}):
            for version in page.get("Versions", []):
                seen.append((version["Key"], version["VersionId"], False))
            for marker in page.get("DeleteMarkers", []):
                self.assertTrue(marker["IsLatest"])
                seen.append((marker["Key"], marker["VersionId"], True))
        self.assertEqual(sorted(seen), sorted(made))
        for key, versionId, _ in seen:
            self.s3.delete_object(Bucket="bucket", Key=key, VersionId=versionId)
        self.s3.delete_bucket(Bucket="bucket")
