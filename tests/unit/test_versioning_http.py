"""
Tests for L{fasterstore.s3.versions} and the versioning of every operation
that reads or writes versions (objects, copy, multipart, tagging, batch
delete, inspection), through the real resource on the SQLite store, with
botocore-signed requests and botocore's own client.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote
from xml.etree import ElementTree

from botocore.exceptions import ClientError

from fasterstore.http.dates import formatHTTPDate
from fasterstore.metadata.records import ENABLED, SUSPENDED, versionIdOf
from fasterstore.metadata.store import IMetadataStore
from fasterstore.s3.versions import parseVersioningConfiguration
from fasterstore.errors import S3Error
from tests.unit.test_batch import BotoTestCase, crc32Header, deleteDocument
from tests.unit.test_resource import NS, OTHER, ResourceTestCase

Response = Tuple[int, Dict[str, str], bytes]

#: A well-formed version id no version has.
UNKNOWN = versionIdOf(987654)


def versioningDocument(status: Optional[str], mfaDelete: Optional[str] = None) -> bytes:
    """A PutBucketVersioning body."""
    inner = f"<Status>{status}</Status>" if status is not None else ""
    if mfaDelete is not None:
        inner += f"<MfaDelete>{mfaDelete}</MfaDelete>"
    return f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'.encode()


class CountingStore:
    """A metadata store that counts the methods called on it."""

    def __init__(self, store: IMetadataStore) -> None:
        self._store = store
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        self.calls[name] += 1
        return getattr(self._store, name)


class VersioningTestCase(ResourceTestCase):
    """Helpers: set a bucket's versioning, put versions, read error documents."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()

    def setVersioning(self, status: str, bucket: str = "bucket") -> None:
        status_, _, body = self.request("PUT", f"/{bucket}?versioning", versioningDocument(status))
        self.assertEqual(status_, 200, body)

    def put(self, key: str, data: bytes, bucket: str = "bucket") -> Optional[str]:
        """PUT an object; its C{x-amz-version-id}, if answered."""
        status, headers, body = self.request("PUT", f"/{bucket}/{quote(key)}", data)
        self.assertEqual(status, 200, body)
        self.server.clock.advance(1)
        return headers.get("x-amz-version-id")

    def delete(self, key: str, versionId: Optional[str] = None) -> Dict[str, str]:
        """DELETE an object (or a version); the answer's headers."""
        query = f"?versionId={versionId}" if versionId is not None else ""
        status, headers, body = self.request("DELETE", f"/bucket/{quote(key)}{query}")
        self.assertEqual(status, 204, body)
        self.server.clock.advance(1)
        return headers

    def errorElement(self, result: Response, name: str) -> Optional[str]:
        return ElementTree.fromstring(result[2]).findtext(name)


class BucketVersioningTests(VersioningTestCase):
    """PutBucketVersioning and GetBucketVersioning."""

    def get(self, bucket: str = "bucket") -> ElementTree.Element:
        status, _, body = self.request("GET", f"/{bucket}?versioning")
        self.assertEqual(status, 200, body)
        return ElementTree.fromstring(body)

    def test_neverSet(self) -> None:
        """A bucket that never had versioning answers the empty document, in the S3 namespace."""
        document = self.get()
        self.assertEqual((document.tag, list(document)), (f"{NS}VersioningConfiguration", []))
        self.assertIsNone(self.server.now.getBucket("bucket").versioning)

    def test_enableThenSuspend(self) -> None:
        """Enabled, then Suspended: stored durably in the bucket's record and answered back."""
        self.setVersioning("Enabled")
        self.assertEqual(self.get().findtext(f"{NS}Status"), "Enabled")
        self.assertEqual(self.server.now.getBucket("bucket").versioning, ENABLED)
        self.setVersioning("Suspended")
        self.assertEqual(self.get().findtext(f"{NS}Status"), "Suspended")
        self.assertEqual(self.server.now.getBucket("bucket").versioning, SUSPENDED)

    def test_suspendFirst(self) -> None:
        """Suspending a bucket that never had versioning makes it Suspended (there is no way back to none)."""
        self.setVersioning("Suspended")
        self.assertEqual(self.get().findtext(f"{NS}Status"), "Suspended")

    def test_otherConfigKept(self) -> None:
        """Setting versioning keeps the bucket's other sub-resource documents."""
        tagging = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>"
        self.assertEqual(self.request("PUT", "/bucket?tagging", tagging)[0], 204)
        self.setVersioning("Enabled")
        self.assertEqual(self.request("GET", "/bucket?tagging")[0], 200)
        self.assertEqual(self.request("DELETE", "/bucket?tagging")[0], 204)
        self.assertEqual(self.server.now.getBucket("bucket").versioning, ENABLED)

    def test_malformed(self) -> None:
        """Another document, no or an unknown Status (case-sensitive), bad XML: MalformedXML, nothing changed."""
        for body in (
            b"<Other/>", b"<nope", b"", versioningDocument(None), versioningDocument("enabled"),
            versioningDocument("Disabled"), versioningDocument("Enabled", "maybe"),
        ):
            self.assertError(self.request("PUT", "/bucket?versioning", body), 400, "MalformedXML")
        self.assertIsNone(self.server.now.getBucket("bucket").versioning)

    def test_mfaDelete(self) -> None:
        """MfaDelete Enabled is refused as not supported (501); Disabled is what there is."""
        result = self.request("PUT", "/bucket?versioning", versioningDocument("Enabled", "Enabled"))
        self.assertError(result, 501, "NotImplemented")
        self.assertIn("MFA delete", self.errorElement(result, "Message") or "")
        self.assertIsNone(self.server.now.getBucket("bucket").versioning)
        self.assertEqual(self.request("PUT", "/bucket?versioning", versioningDocument("Enabled", "Disabled"))[0], 200)
        self.assertEqual(self.server.now.getBucket("bucket").versioning, ENABLED)

    def test_ownerOnly(self) -> None:
        """Only the bucket's owner reads or sets it; a missing bucket is NoSuchBucket."""
        self.assertError(self.request("PUT", "/bucket?versioning", versioningDocument("Enabled"), creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("GET", "/bucket?versioning", creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("PUT", "/nobucket?versioning", versioningDocument("Enabled")), 404, "NoSuchBucket")
        self.assertIsNone(self.server.now.getBucket("bucket").versioning)

    def test_parse(self) -> None:
        """The parser reads Status without the namespace too, and refuses MFA delete."""
        self.assertEqual(parseVersioningConfiguration(b"<VersioningConfiguration><Status> Suspended </Status></VersioningConfiguration>"), "Suspended")
        e = self.assertRaises(S3Error, parseVersioningConfiguration, versioningDocument("Suspended", "Enabled"))
        self.assertEqual(e.code, "NotImplemented")


class ObjectVersionTests(VersioningTestCase):
    """PUT, GET, HEAD with versions."""

    def test_unversionedAnswersNoVersion(self) -> None:
        """A bucket that never had versioning names no version on PUT, GET, HEAD or DELETE."""
        self.assertIsNone(self.put("k", b"one"))
        for method in ("GET", "HEAD"):
            self.assertNotIn("x-amz-version-id", self.request(method, "/bucket/k")[1])
        headers = self.delete("k")
        self.assertNotIn("x-amz-version-id", headers)
        self.assertNotIn("x-amz-delete-marker", headers)

    def test_enabledVersions(self) -> None:
        """Each PUT makes a new version with its own id; each reads back by id; the latest without one."""
        self.setVersioning("Enabled")
        bodies = [b"first", b"second!", b"third..."]
        ids = [self.put("k", body) for body in bodies]
        self.assertEqual(len(set(ids)), 3)
        self.assertNotIn(None, ids)
        self.assertNotIn("null", ids)
        for versionId, body in zip(ids, bodies):
            status, headers, content = self.request("GET", f"/bucket/k?versionId={versionId}")
            self.assertEqual((status, content, headers["x-amz-version-id"]), (200, body, versionId))
            self.assertEqual(headers["etag"], '"%s"' % hashlib.md5(body).hexdigest())
            status, headers, content = self.request("HEAD", f"/bucket/k?versionId={versionId}")
            self.assertEqual((status, headers["content-length"], headers["x-amz-version-id"]), (200, str(len(body)), versionId))
        status, headers, content = self.request("GET", "/bucket/k")
        self.assertEqual((status, content, headers["x-amz-version-id"]), (200, b"third...", ids[2]))
        assert ids[0] is not None
        self.assertEqual(self.server.now.getVersion("bucket", "k", ids[0]).etag, hashlib.md5(b"first").hexdigest())

    def test_preexistingObjectIsNullVersion(self) -> None:
        """An object written before versioning was enabled stays readable as the null version."""
        self.put("k", b"before")
        self.setVersioning("Enabled")
        versionId = self.put("k", b"after")
        status, headers, content = self.request("GET", "/bucket/k?versionId=null")
        self.assertEqual((status, content, headers["x-amz-version-id"]), (200, b"before", "null"))
        self.assertEqual(self.request("GET", f"/bucket/k?versionId={versionId}")[2], b"after")

    def test_suspendedWritesNullVersion(self) -> None:
        """A suspended bucket answers version null, each PUT replacing the null version and keeping the others."""
        self.setVersioning("Enabled")
        kept = self.put("k", b"kept")
        self.setVersioning("Suspended")
        self.assertEqual(self.put("k", b"null one"), "null")
        self.assertEqual(self.put("k", b"null two"), "null")
        self.assertEqual(self.request("GET", "/bucket/k?versionId=null")[2], b"null two")
        self.assertEqual(self.request("GET", f"/bucket/k?versionId={kept}")[2], b"kept")
        status, headers, content = self.request("GET", "/bucket/k")
        self.assertEqual((content, headers["x-amz-version-id"]), (b"null two", "null"))
        page = self.server.now.listVersions("bucket")
        self.assertEqual([v.versionId for v in page.versions], [None, kept])

    def test_conditionsApplyToTheVersion(self) -> None:
        """If-Match and If-None-Match are judged against the version named, not the latest."""
        self.setVersioning("Enabled")
        old = self.put("k", b"old")
        self.put("k", b"new")
        oldTag = '"%s"' % hashlib.md5(b"old").hexdigest()
        status, headers, _ = self.request("GET", f"/bucket/k?versionId={old}", headers={"If-None-Match": oldTag})
        self.assertEqual((status, headers.get("x-amz-version-id"), headers.get("etag")), (304, old, oldTag))
        self.assertEqual(self.request("GET", f"/bucket/k?versionId={old}", headers={"If-Match": oldTag})[0], 200)
        self.assertError(self.request("GET", "/bucket/k", headers={"If-Match": oldTag}), 412, "PreconditionFailed")

    def test_rangeOfAVersion(self) -> None:
        """Range and partNumber read the version named."""
        self.setVersioning("Enabled")
        old = self.put("k", b"0123456789")
        self.put("k", b"abcdefghij")
        status, _, content = self.request("GET", f"/bucket/k?versionId={old}", headers={"Range": "bytes=2-4"})
        self.assertEqual((status, content), (206, b"234"))
        status, _, content = self.request("GET", f"/bucket/k?versionId={old}&partNumber=1")
        self.assertEqual((status, content), (206, b"0123456789"))

    def test_unknownAndMalformedVersions(self) -> None:
        """An unknown id is NoSuchVersion naming the key and id; a malformed or empty one InvalidArgument."""
        self.setVersioning("Enabled")
        self.put("k", b"x")
        result = self.request("GET", f"/bucket/k?versionId={UNKNOWN}")
        self.assertError(result, 404, "NoSuchVersion")
        self.assertEqual((self.errorElement(result, "Key"), self.errorElement(result, "VersionId")), ("k", UNKNOWN))
        self.assertError(self.request("GET", f"/bucket/missing?versionId={UNKNOWN}"), 404, "NoSuchVersion")
        self.assertEqual(self.request("HEAD", f"/bucket/k?versionId={UNKNOWN}")[0], 404)
        result = self.request("GET", "/bucket/k?versionId=not-an-id")
        self.assertError(result, 400, "InvalidArgument")
        self.assertEqual(self.errorElement(result, "ArgumentName"), "versionId")
        self.assertError(self.request("GET", "/bucket/k?versionId="), 400, "InvalidArgument")


class DeleteMarkerTests(VersioningTestCase):
    """DELETE with and without versionId, and reads meeting delete markers."""

    def setUp(self) -> None:
        super().setUp()
        self.setVersioning("Enabled")
        self.first = self.put("k", b"first")
        self.second = self.put("k", b"second")

    def test_deleteMakesMarker(self) -> None:
        """DELETE without versionId answers the delete marker it made; every version stays."""
        headers = self.delete("k")
        self.assertEqual(headers["x-amz-delete-marker"], "true")
        marker = self.server.now.getVersion("bucket", "k")
        self.assertTrue(marker.deleteMarker)
        self.assertEqual(headers["x-amz-version-id"], marker.wireVersionId)
        self.assertNotIn(headers["x-amz-version-id"], (self.first, self.second, "null"))
        self.assertIsNone(self.server.now.getObject("bucket", "k"))
        self.assertEqual(self.request("GET", f"/bucket/k?versionId={self.second}")[2], b"second")

    def test_getMeetsMarker(self) -> None:
        """GET and HEAD of a key whose latest version is a delete marker: 404 NoSuchKey saying so."""
        markerId = self.delete("k")["x-amz-version-id"]
        result = self.request("GET", "/bucket/k")
        self.assertError(result, 404, "NoSuchKey")
        self.assertEqual((result[1]["x-amz-delete-marker"], result[1]["x-amz-version-id"]), ("true", markerId))
        status, headers, body = self.request("HEAD", "/bucket/k")
        self.assertEqual((status, body, headers["x-amz-delete-marker"], headers["x-amz-version-id"]), (404, b"", "true", markerId))

    def test_plainMissIsNoMarker(self) -> None:
        """A key that never existed is a plain NoSuchKey, without marker headers."""
        status, headers, _ = self.request("GET", "/bucket/never")
        self.assertEqual(status, 404)
        self.assertNotIn("x-amz-delete-marker", headers)
        self.assertNotIn("x-amz-version-id", headers)

    def test_markerNamedByVersion(self) -> None:
        """GET or HEAD naming a delete marker: 405 MethodNotAllowed, marker headers, Allow: DELETE, Last-Modified."""
        markerId = self.delete("k")["x-amz-version-id"]
        marker = self.server.now.getVersion("bucket", "k", markerId)
        for method in ("GET", "HEAD"):
            result = self.request(method, f"/bucket/k?versionId={markerId}")
            status, headers, body = result
            self.assertEqual(status, 405, body)
            self.assertEqual(headers["x-amz-delete-marker"], "true")
            self.assertEqual(headers["x-amz-version-id"], markerId)
            self.assertEqual(headers["allow"], "DELETE")
            self.assertEqual(headers["last-modified"], formatHTTPDate(marker.modified))
            if method == "GET":
                self.assertError(result, 405, "MethodNotAllowed")
                self.assertEqual(
                    (self.errorElement(result, "Method"), self.errorElement(result, "ResourceType")), ("GET", "DeleteMarker")
                )

    def test_deleteMarkerById(self) -> None:
        """Deleting the marker by id says it was a marker, and brings the object back."""
        markerId = self.delete("k")["x-amz-version-id"]
        headers = self.delete("k", markerId)
        self.assertEqual((headers["x-amz-version-id"], headers["x-amz-delete-marker"]), (markerId, "true"))
        status, headers, content = self.request("GET", "/bucket/k")
        self.assertEqual((status, content, headers["x-amz-version-id"]), (200, b"second", self.second))

    def test_deleteVersionById(self) -> None:
        """Deleting a version by id removes it for good; the next newest becomes the latest."""
        headers = self.delete("k", self.second)
        self.assertEqual(headers["x-amz-version-id"], self.second)
        self.assertNotIn("x-amz-delete-marker", headers)
        self.assertError(self.request("GET", f"/bucket/k?versionId={self.second}"), 404, "NoSuchVersion")
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"first")

    def test_deleteUnknownVersion(self) -> None:
        """Deleting a version that does not exist succeeds (204), echoing the id; a malformed one is refused."""
        headers = self.delete("k", UNKNOWN)
        self.assertEqual(headers["x-amz-version-id"], UNKNOWN)
        self.assertNotIn("x-amz-delete-marker", headers)
        self.assertError(self.request("DELETE", "/bucket/k?versionId=bad"), 400, "InvalidArgument")
        self.assertError(self.request("DELETE", "/bucket/k?versionId="), 400, "InvalidArgument")
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"second")

    def test_deleteTwiceStacksMarkers(self) -> None:
        """A second DELETE adds another marker (as S3 does), with its own id."""
        one = self.delete("k")["x-amz-version-id"]
        two = self.delete("k")["x-amz-version-id"]
        self.assertNotEqual(one, two)
        page = self.server.now.listVersions("bucket")
        self.assertEqual([(v.versionId, v.deleteMarker) for v in page.versions],
                         [(two, True), (one, True), (self.second, False), (self.first, False)])

    def test_suspendedDeleteIsNullMarker(self) -> None:
        """In a suspended bucket DELETE makes the null delete marker."""
        self.setVersioning("Suspended")
        headers = self.delete("k")
        self.assertEqual((headers["x-amz-delete-marker"], headers["x-amz-version-id"]), ("true", "null"))
        self.assertEqual(self.request("GET", f"/bucket/k?versionId={self.second}")[2], b"second")

    def test_conditionalDeleteOfVersion(self) -> None:
        """If-Match on a DELETE with versionId is judged against that version."""
        firstTag = '"%s"' % hashlib.md5(b"first").hexdigest()
        self.assertError(
            self.request("DELETE", f"/bucket/k?versionId={self.second}", headers={"If-Match": firstTag}),
            412, "PreconditionFailed",
        )
        status, _, _ = self.request("DELETE", f"/bucket/k?versionId={self.first}", headers={"If-Match": firstTag})
        self.assertEqual(status, 204)
        self.assertError(self.request("GET", f"/bucket/k?versionId={self.first}"), 404, "NoSuchVersion")

    def test_deleteBucketWithOnlyVersions(self) -> None:
        """A bucket whose keys are all deleted but whose versions remain is not empty."""
        markerId = self.delete("k")["x-amz-version-id"]
        self.assertEqual(self.server.now.listObjects("bucket").objects, [])
        self.assertError(self.request("DELETE", "/bucket"), 409, "BucketNotEmpty")
        self.delete("k", self.first)
        self.delete("k", self.second)
        self.assertError(self.request("DELETE", "/bucket"), 409, "BucketNotEmpty")
        self.delete("k", markerId)
        self.assertEqual(self.request("DELETE", "/bucket")[0], 204)


class LookupCostTests(VersioningTestCase):
    """An unversioned bucket's reads cost no extra look-up."""

    def setUp(self) -> None:
        super().setUp()
        self.store = CountingStore(self.server.metadata)
        self.server.context.metadata = self.store  # type: ignore[assignment]

    def test_unversionedMissLooksOnce(self) -> None:
        """A GET miss in a bucket that never had versioning never asks for a delete marker."""
        self.assertError(self.request("GET", "/bucket/missing"), 404, "NoSuchKey")
        self.put("k", b"x")
        self.assertEqual(self.request("GET", "/bucket/k")[0], 200)
        self.assertEqual(self.store.calls["getVersion"], 0)

    def test_versionedMissLooksForMarker(self) -> None:
        """In a versioned bucket only a miss asks for the latest version; a hit does not."""
        self.setVersioning("Enabled")
        self.put("k", b"x")
        self.assertEqual(self.request("GET", "/bucket/k")[0], 200)
        self.assertEqual(self.store.calls["getVersion"], 0)
        self.assertError(self.request("GET", "/bucket/missing"), 404, "NoSuchKey")
        self.assertEqual(self.store.calls["getVersion"], 1)


class CopyVersionTests(VersioningTestCase):
    """CopyObject and UploadPartCopy from a version."""

    def setUp(self) -> None:
        super().setUp()
        self.setVersioning("Enabled")
        self.old = self.put("src", b"old bytes")
        self.new = self.put("src", b"new bytes")

    def copy(self, destination: str, source: str, headers: Optional[Dict[str, str]] = None) -> Response:
        h = {"x-amz-copy-source": source}
        h.update(headers or {})
        result = self.request("PUT", destination, headers=h)
        self.server.clock.advance(1)
        return result

    def test_copyAVersion(self) -> None:
        """versionId in the copy source copies that version; both versions are named in the answer."""
        status, headers, body = self.copy("/bucket/dst", f"bucket/src?versionId={self.old}")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["x-amz-copy-source-version-id"], self.old)
        destination = self.server.now.getObject("bucket", "dst")
        self.assertEqual(headers["x-amz-version-id"], destination.wireVersionId)
        self.assertNotEqual(destination.versionId, None)
        self.assertEqual(self.request("GET", "/bucket/dst")[2], b"old bytes")

    def test_copyLatest(self) -> None:
        """Without versionId the latest is copied and its id answered."""
        status, headers, _ = self.copy("/bucket/dst", "bucket/src")
        self.assertEqual((status, headers["x-amz-copy-source-version-id"]), (200, self.new))
        self.assertEqual(self.request("GET", "/bucket/dst")[2], b"new bytes")

    def test_restoreOntoItself(self) -> None:
        """Copying an older version onto its own key restores it as a new version, without REPLACE."""
        status, headers, body = self.copy("/bucket/src", f"bucket/src?versionId={self.old}")
        self.assertEqual(status, 200, body)
        self.assertNotIn(headers["x-amz-version-id"], (self.old, self.new))
        self.assertEqual(self.request("GET", "/bucket/src")[2], b"old bytes")
        self.assertEqual(len(self.server.now.listVersions("bucket").versions), 3)
        self.assertError(self.copy("/bucket/src", "bucket/src"), 400, "InvalidRequest")

    def test_unversionedNamesNothing(self) -> None:
        """Between buckets that never had versioning, neither version header is answered."""
        self.createBucket("plain")
        self.put("a", b"a", bucket="plain")
        status, headers, _ = self.copy("/plain/b", "plain/a")
        self.assertEqual(status, 200)
        self.assertNotIn("x-amz-version-id", headers)
        self.assertNotIn("x-amz-copy-source-version-id", headers)
        status, headers, _ = self.copy("/plain/c", "plain/a?versionId=null")
        self.assertEqual((status, headers["x-amz-copy-source-version-id"]), (200, "null"))
        status, headers, _ = self.copy("/plain/d", f"bucket/src?versionId={self.old}")
        self.assertEqual((status, headers["x-amz-copy-source-version-id"]), (200, self.old))
        self.assertNotIn("x-amz-version-id", headers)

    def test_copyFromMarkers(self) -> None:
        """A source whose latest is a marker is NoSuchKey; a marker named by id is InvalidRequest; unknown NoSuchVersion."""
        markerId = self.delete("src")["x-amz-version-id"]
        self.assertError(self.copy("/bucket/dst", "bucket/src"), 404, "NoSuchKey")
        self.assertError(self.copy("/bucket/dst", f"bucket/src?versionId={markerId}"), 400, "InvalidRequest")
        result = self.copy("/bucket/dst", f"bucket/src?versionId={UNKNOWN}")
        self.assertError(result, 404, "NoSuchVersion")
        self.assertEqual(self.errorElement(result, "VersionId"), UNKNOWN)
        self.assertEqual(self.copy("/bucket/dst", f"bucket/src?versionId={self.old}")[0], 200)

    def startUpload(self, key: str = "mp") -> str:
        status, _, body = self.request("POST", f"/bucket/{key}?uploads")
        self.assertEqual(status, 200, body)
        uploadId = ElementTree.fromstring(body).findtext(f"{NS}UploadId")
        assert uploadId is not None
        return uploadId

    def complete(self, uploadId: str, etag: str, key: str = "mp") -> Response:
        document = (
            f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>"
            "</CompleteMultipartUpload>"
        ).encode()
        return self.request("POST", f"/bucket/{key}?uploadId={uploadId}", document)

    def test_uploadPartCopyOfAVersion(self) -> None:
        """UploadPartCopy reads the version named and names it; the completed upload is a new version."""
        uploadId = self.startUpload()
        status, headers, body = self.copy(
            f"/bucket/mp?partNumber=1&uploadId={uploadId}", f"bucket/src?versionId={self.old}"
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["x-amz-copy-source-version-id"], self.old)
        etag = ElementTree.fromstring(body).findtext(f"{NS}ETag") or ""
        status, headers, body = self.complete(uploadId, etag)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["x-amz-version-id"], self.server.now.getObject("bucket", "mp").wireVersionId)
        self.assertEqual(self.request("GET", "/bucket/mp")[2], b"old bytes")

    def test_uploadPartCopySourceErrors(self) -> None:
        """UploadPartCopy: unknown version, a marker by id, a latest marker, a malformed id."""
        uploadId = self.startUpload()
        path = f"/bucket/mp?partNumber=1&uploadId={uploadId}"
        self.assertError(self.copy(path, f"bucket/src?versionId={UNKNOWN}"), 404, "NoSuchVersion")
        markerId = self.delete("src")["x-amz-version-id"]
        self.assertError(self.copy(path, f"bucket/src?versionId={markerId}"), 400, "InvalidRequest")
        self.assertError(self.copy(path, "bucket/src"), 404, "NoSuchKey")
        self.assertError(self.copy(path, "bucket/src?versionId=nope"), 400, "InvalidArgument")

    def test_completeInSuspendedBucket(self) -> None:
        """A completed upload in a suspended bucket is the null version."""
        self.setVersioning("Suspended")
        uploadId = self.startUpload()
        status, headers, body = self.request("PUT", f"/bucket/mp?partNumber=1&uploadId={uploadId}", b"part")
        self.assertEqual(status, 200, body)
        status, headers, body = self.complete(uploadId, headers["etag"])
        self.assertEqual((status, headers["x-amz-version-id"]), (200, "null"))


class TaggingVersionTests(VersioningTestCase):
    """Object tagging of one version."""

    def setUp(self) -> None:
        super().setUp()
        self.setVersioning("Enabled")
        self.old = self.put("k", b"old")
        self.new = self.put("k", b"new")

    def tagging(self, tags: List[Tuple[str, str]]) -> bytes:
        inner = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in tags)
        return f"<Tagging><TagSet>{inner}</TagSet></Tagging>".encode()

    def tags(self, query: str = "") -> Tuple[List[Tuple[Optional[str], Optional[str]]], Optional[str]]:
        status, headers, body = self.request("GET", "/bucket/k?tagging" + query)
        self.assertEqual(status, 200, body)
        document = ElementTree.fromstring(body)
        tags = [(t.findtext(f"{NS}Key"), t.findtext(f"{NS}Value")) for t in document.iter(f"{NS}Tag")]
        return tags, headers.get("x-amz-version-id")

    def test_tagOneVersion(self) -> None:
        """Put, get and delete the tags of one version; the others keep theirs."""
        status, headers, body = self.request("PUT", f"/bucket/k?tagging&versionId={self.old}", self.tagging([("a", "1")]))
        self.assertEqual((status, headers["x-amz-version-id"]), (200, self.old), body)
        self.assertEqual(self.tags(f"&versionId={self.old}"), ([("a", "1")], self.old))
        self.assertEqual(self.tags(), ([], self.new))
        status, headers, _ = self.request("PUT", "/bucket/k?tagging", self.tagging([("b", "2")]))
        self.assertEqual((status, headers["x-amz-version-id"]), (200, self.new))
        self.assertEqual(self.server.now.getVersion("bucket", "k", self.new).tags, (("b", "2"),))
        status, headers, _ = self.request("DELETE", f"/bucket/k?tagging&versionId={self.old}")
        self.assertEqual((status, headers["x-amz-version-id"]), (204, self.old))
        self.assertEqual(self.tags(f"&versionId={self.old}"), ([], self.old))
        self.assertEqual(self.tags(), ([("b", "2")], self.new))

    def test_markers(self) -> None:
        """A delete marker has no tags: 405 by id, NoSuchKey as the latest; an unknown id NoSuchVersion."""
        markerId = self.delete("k")["x-amz-version-id"]
        for method, body in (("GET", b""), ("PUT", self.tagging([("a", "1")])), ("DELETE", b"")):
            result = self.request(method, f"/bucket/k?tagging&versionId={markerId}", body)
            self.assertError(result, 405, "MethodNotAllowed")
            self.assertEqual(result[1]["x-amz-delete-marker"], "true")
            result = self.request(method, "/bucket/k?tagging", body)
            self.assertError(result, 404, "NoSuchKey")
            self.assertEqual(result[1]["x-amz-delete-marker"], "true")
            self.assertError(self.request(method, f"/bucket/k?tagging&versionId={UNKNOWN}", body), 404, "NoSuchVersion")
        self.assertEqual(self.tags(f"&versionId={self.old}"), ([], self.old))


class InspectionVersionTests(VersioningTestCase):
    """GetObjectAttributes and the object ACL of one version."""

    def setUp(self) -> None:
        super().setUp()
        self.setVersioning("Enabled")
        self.old = self.put("k", b"old version")
        self.new = self.put("k", b"new")
        self.marker = self.delete("k")["x-amz-version-id"]

    def attributes(self, query: str) -> Response:
        return self.request("GET", "/bucket/k?attributes" + query, headers={"x-amz-object-attributes": "ObjectSize,ETag"})

    def test_attributesOfAVersion(self) -> None:
        """GetObjectAttributes reads the version named, and names it."""
        status, headers, body = self.attributes(f"&versionId={self.old}")
        self.assertEqual(status, 200, body)
        document = ElementTree.fromstring(body)
        self.assertEqual(document.findtext(f"{NS}ObjectSize"), str(len(b"old version")))
        self.assertEqual(document.findtext(f"{NS}ETag"), hashlib.md5(b"old version").hexdigest())
        self.assertEqual(headers["x-amz-version-id"], self.old)

    def test_attributesErrors(self) -> None:
        """A marker by id is 405; the latest being a marker NoSuchKey; an unknown id NoSuchVersion."""
        result = self.attributes(f"&versionId={self.marker}")
        self.assertError(result, 405, "MethodNotAllowed")
        self.assertEqual(result[1]["x-amz-delete-marker"], "true")
        result = self.attributes("")
        self.assertError(result, 404, "NoSuchKey")
        self.assertEqual(result[1]["x-amz-version-id"], self.marker)
        self.assertError(self.attributes(f"&versionId={UNKNOWN}"), 404, "NoSuchVersion")

    def test_acl(self) -> None:
        """GetObjectAcl and PutObjectAcl resolve the version named."""
        status, _, body = self.request("GET", f"/bucket/k?acl&versionId={self.old}")
        self.assertEqual(status, 200, body)
        self.assertEqual(ElementTree.fromstring(body).findtext(f"{NS}Owner/{NS}ID"), "owner-id")
        self.assertEqual(self.request("PUT", f"/bucket/k?acl&versionId={self.new}", headers={"x-amz-acl": "private"})[0], 200)
        self.assertError(self.request("GET", f"/bucket/k?acl&versionId={self.marker}"), 405, "MethodNotAllowed")
        self.assertError(
            self.request("PUT", f"/bucket/k?acl&versionId={self.marker}", headers={"x-amz-acl": "private"}),
            405, "MethodNotAllowed",
        )
        self.assertError(self.request("GET", f"/bucket/k?acl&versionId={UNKNOWN}"), 404, "NoSuchVersion")
        self.assertError(self.request("GET", "/bucket/k?acl"), 404, "NoSuchKey")


class DeleteObjectsVersionTests(VersioningTestCase):
    """DeleteObjects with and without VersionId."""

    def deleteObjects(self, keys: List[str], versions: Optional[Dict[str, str]] = None) -> ElementTree.Element:
        body = deleteDocument(keys, versions=versions)
        status, _, content = self.request("POST", "/bucket?delete", body, crc32Header(body))
        self.assertEqual(status, 200, content)
        return ElementTree.fromstring(content)

    def deleted(self, document: ElementTree.Element) -> List[Tuple[Optional[str], ...]]:
        return [
            tuple(d.findtext(f"{NS}{name}") for name in ("Key", "VersionId", "DeleteMarker", "DeleteMarkerVersionId"))
            for d in document.iter(f"{NS}Deleted")
        ]

    def test_versioned(self) -> None:
        """A marker made, a version deleted by id, a marker deleted by id: each said as AWS says it."""
        self.setVersioning("Enabled")
        a1 = self.put("a", b"a1")
        self.put("a", b"a2")
        b1 = self.put("b", b"b1")
        markerC = (self.put("c", b"c1"), self.delete("c")["x-amz-version-id"])[1]
        document = self.deleteObjects(["a", "b", "c"], versions={"b": b1 or "", "c": markerC})
        latestA = self.server.now.getVersion("bucket", "a")
        self.assertTrue(latestA.deleteMarker)
        self.assertEqual(self.deleted(document), [
            ("a", None, "true", latestA.wireVersionId),
            ("b", b1, None, None),
            ("c", markerC, "true", markerC),
        ])
        self.assertEqual(self.request("GET", f"/bucket/a?versionId={a1}")[2], b"a1")
        self.assertError(self.request("GET", f"/bucket/b?versionId={b1}"), 404, "NoSuchVersion")
        self.assertEqual(self.request("GET", "/bucket/c")[2], b"c1")

    def test_unversioned(self) -> None:
        """A bucket that never had versioning: plain Deleted entries, no marker elements."""
        self.put("a", b"a")
        self.assertEqual(self.deleted(self.deleteObjects(["a", "gone"])), [("a", None, None, None), ("gone", None, None, None)])

    def test_entryErrors(self) -> None:
        """A malformed or empty VersionId is that entry's error; an unknown one deletes nothing, successfully."""
        self.setVersioning("Enabled")
        self.put("a", b"a")
        document = self.deleteObjects(["a", "b", "c"], versions={"a": "bad", "b": "", "c": UNKNOWN})
        errors = [(e.findtext(f"{NS}Key"), e.findtext(f"{NS}VersionId"), e.findtext(f"{NS}Code")) for e in document.iter(f"{NS}Error")]
        self.assertEqual(errors, [("a", "bad", "InvalidArgument"), ("b", "", "InvalidArgument")])
        self.assertEqual(self.deleted(document), [("c", UNKNOWN, None, None)])
        self.assertEqual(self.request("GET", "/bucket/a")[2], b"a")


class BotocoreVersioningTests(BotoTestCase):
    """What boto3 code does with versions, parsed by botocore."""

    def setUp(self) -> None:
        super().setUp()
        self.s3.create_bucket(Bucket="bucket")

    def test_lifecycle(self) -> None:
        """Enable, put, get by id, delete (marker), read the marker's answers, delete it, suspend."""
        self.assertNotIn("Status", self.s3.get_bucket_versioning(Bucket="bucket"))
        self.s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
        self.assertEqual(self.s3.get_bucket_versioning(Bucket="bucket")["Status"], "Enabled")
        ids = [self.s3.put_object(Bucket="bucket", Key="k", Body=body)["VersionId"] for body in (b"1", b"22")]
        self.assertEqual(self.s3.get_object(Bucket="bucket", Key="k", VersionId=ids[0])["Body"].read(), b"1")
        head = self.s3.head_object(Bucket="bucket", Key="k", VersionId=ids[1])
        self.assertEqual((head["VersionId"], head["ContentLength"]), (ids[1], 2))
        deleted = self.s3.delete_object(Bucket="bucket", Key="k")
        self.assertTrue(deleted["DeleteMarker"])
        e = self.assertRaises(ClientError, self.s3.get_object, Bucket="bucket", Key="k")
        self.assertEqual(e.response["Error"]["Code"], "NoSuchKey")
        self.assertEqual(e.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"], "true")
        e = self.assertRaises(ClientError, self.s3.head_object, Bucket="bucket", Key="k", VersionId=deleted["VersionId"])
        self.assertEqual(e.response["Error"]["Code"], "405")
        removed = self.s3.delete_object(Bucket="bucket", Key="k", VersionId=deleted["VersionId"])
        self.assertEqual((removed["DeleteMarker"], removed["VersionId"]), (True, deleted["VersionId"]))
        self.assertEqual(self.s3.get_object(Bucket="bucket", Key="k")["VersionId"], ids[1])
        copied = self.s3.copy_object(Bucket="bucket", Key="copy", CopySource={"Bucket": "bucket", "Key": "k", "VersionId": ids[0]})
        self.assertEqual(copied["CopySourceVersionId"], ids[0])
        self.assertEqual(self.s3.get_object(Bucket="bucket", Key="copy", VersionId=copied["VersionId"])["Body"].read(), b"1")
        self.s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Suspended"})
        self.assertEqual(self.s3.put_object(Bucket="bucket", Key="k", Body=b"n")["VersionId"], "null")
        self.assertEqual(self.s3.get_bucket_versioning(Bucket="bucket")["Status"], "Suspended")

    def test_mfaDeleteRefused(self) -> None:
        """boto3's MFADelete Enabled is a 501 NotImplemented ClientError."""
        e = self.assertRaises(
            ClientError, self.s3.put_bucket_versioning, Bucket="bucket",
            VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
        )
        self.assertEqual(e.response["Error"]["Code"], "NotImplemented")
        self.assertNotIn("Status", self.s3.get_bucket_versioning(Bucket="bucket"))

    def test_deleteObjects(self) -> None:
        """botocore reads DeleteMarker and DeleteMarkerVersionId."""
        self.s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
        versionId = self.s3.put_object(Bucket="bucket", Key="a", Body=b"a")["VersionId"]
        response = self.s3.delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "a"}]})
        marker = response["Deleted"][0]
        self.assertTrue(marker["DeleteMarker"])
        response = self.s3.delete_objects(
            Bucket="bucket",
            Delete={"Objects": [{"Key": "a", "VersionId": marker["DeleteMarkerVersionId"]}, {"Key": "a", "VersionId": versionId}]},
        )
        self.assertEqual(
            [(d["VersionId"], d.get("DeleteMarker", False)) for d in response["Deleted"]],
            [(marker["DeleteMarkerVersionId"], True), (versionId, False)],
        )
        self.assertNotIn("Versions", self.s3.list_object_versions(Bucket="bucket"))

    def test_tagging(self) -> None:
        """get/put_object_tagging with VersionId answer it."""
        self.s3.put_bucket_versioning(Bucket="bucket", VersioningConfiguration={"Status": "Enabled"})
        old = self.s3.put_object(Bucket="bucket", Key="k", Body=b"a")["VersionId"]
        self.s3.put_object(Bucket="bucket", Key="k", Body=b"b")
        put = self.s3.put_object_tagging(Bucket="bucket", Key="k", VersionId=old, Tagging={"TagSet": [{"Key": "t", "Value": "v"}]})
        self.assertEqual(put["VersionId"], old)
        got = self.s3.get_object_tagging(Bucket="bucket", Key="k", VersionId=old)
        self.assertEqual((got["VersionId"], got["TagSet"]), (old, [{"Key": "t", "Value": "v"}]))
        self.assertEqual(self.s3.get_object_tagging(Bucket="bucket", Key="k")["TagSet"], [])
