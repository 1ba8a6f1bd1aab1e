"""
Tests for GetObjectAttributes (L{fasterstore.s3.objects.getObjectAttributes})
through the real resource tree, answers read by botocore's own parser.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict

from fasterstore.http.dates import formatHTTPDate
from tests.unit.test_multipart import MultipartTestCase, crc32, crc64nvme, expectedETag, parse
from tests.unit.test_resource import OTHER

ALL = "ETag,Checksum,ObjectParts,StorageClass,ObjectSize"


class ObjectAttributesTests(MultipartTestCase):
    """GetObjectAttributes of single-PUT and multipart objects."""

    def attributes(self, key: str, names: str = ALL, **headers: str) -> Dict[str, Any]:
        h = {"x-amz-object-attributes": names}
        h.update({k.replace("_", "-"): v for k, v in headers.items()})
        response = self.request("GET", f"/bucket/{key}?attributes", headers=h)
        self.assertEqual(response[0], 200, response[2])
        return parse("GetObjectAttributes", response)

    def test_singleObject(self) -> None:
        """ETag (unquoted, as AWS sends it here), size, class and the default checksum; no parts."""
        self.request("PUT", "/bucket/k", b"hello")
        result = self.attributes("k")
        self.assertEqual(result["ETag"], hashlib.md5(b"hello").hexdigest())
        self.assertEqual((result["ObjectSize"], result["StorageClass"]), (5, "STANDARD"))
        self.assertEqual(result["Checksum"], {"ChecksumCRC64NVME": crc64nvme(b"hello"), "ChecksumType": "FULL_OBJECT"})
        self.assertNotIn("ObjectParts", result)
        record = self.server.now.getObject("bucket", "k")
        assert record is not None
        self.assertEqual(result["ResponseMetadata"]["HTTPHeaders"]["last-modified"], formatHTTPDate(record.modified))

    def test_onlyWhatIsAsked(self) -> None:
        """Only the attributes named are in the answer."""
        self.request("PUT", "/bucket/k", b"hello")
        result = self.attributes("k", "ObjectSize")
        self.assertEqual(result["ObjectSize"], 5)
        for name in ("ETag", "Checksum", "StorageClass", "ObjectParts"):
            self.assertNotIn(name, result)

    def test_multipartObject(self) -> None:
        """A multipart object lists its parts with their sizes and checksums, paged."""
        self.lowerMinPartSize()
        uploadId = self.create(headers={"x-amz-checksum-algorithm": "CRC32"})
        parts = [b"a" * 1024, b"b" * 2048, b"c" * 3]
        etags = self.uploadParts(uploadId, parts, headers=lambda d: {"x-amz-checksum-crc32": crc32(d)})
        self.assertEqual(self.complete(uploadId, list(enumerate(etags, 1)))[0], 200)
        result = self.attributes("k")
        self.assertEqual(result["ETag"], expectedETag(parts).strip('"'))
        self.assertEqual(result["ObjectSize"], 1024 + 2048 + 3)
        self.assertEqual(result["Checksum"]["ChecksumType"], "COMPOSITE")
        self.assertTrue(result["Checksum"]["ChecksumCRC32"].endswith("-3"))
        objectParts = result["ObjectParts"]
        self.assertEqual((objectParts["TotalPartsCount"], objectParts["IsTruncated"]), (3, False))
        self.assertEqual([(p["PartNumber"], p["Size"], p["ChecksumCRC32"]) for p in objectParts["Parts"]],
                         [(n, len(d), crc32(d)) for n, d in enumerate(parts, 1)])
        page = self.attributes("k", "ObjectParts", x_amz_max_parts="1", x_amz_part_number_marker="1")["ObjectParts"]
        self.assertEqual([p["PartNumber"] for p in page["Parts"]], [2])
        self.assertEqual((page["IsTruncated"], page["NextPartNumberMarker"], page["MaxParts"], page["PartNumberMarker"]), (True, 2, 1, 1))

    def test_errors(self) -> None:
        """No or unknown attribute names are InvalidArgument; missing keys NoSuchKey; others' buckets AccessDenied."""
        self.request("PUT", "/bucket/k", b"hello")
        self.assertError(self.request("GET", "/bucket/k?attributes"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket/k?attributes", headers={"x-amz-object-attributes": "ETag,Colour"}), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket/nope?attributes", headers={"x-amz-object-attributes": "ETag"}), 404, "NoSuchKey")
        self.assertError(self.request("GET", "/bucket/k?attributes", headers={"x-amz-object-attributes": "ETag"}, creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("GET", "/bucket/k?attributes", headers={"x-amz-object-attributes": "ObjectParts", "x-amz-max-parts": "x"}), 400, "InvalidArgument")
