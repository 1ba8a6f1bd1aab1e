"""
Tests for L{fasterstore.s3.multipart} and the multipart side of
L{fasterstore.s3.objects} (C{partNumber} reads), through the real resource
tree with requests signed by botocore, answers parsed by botocore's own
response parser, and checksums compared with botocore's checksum classes.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple
from urllib.parse import quote
from xml.etree import ElementTree

import botocore.session
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest, HeadersDict
from botocore.credentials import Credentials as BotoCredentials
from botocore.httpchecksum import Crc32Checksum, CrtCrc32cChecksum, CrtCrc64NvmeChecksum, Sha256Checksum
from botocore.parsers import RestXMLParser
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.records import PartRecord, versionIdOf
from fasterstore.s3 import multipart
from fasterstore.http.dates import formatHTTPDate
from tests.unit.test_resource import ACCESS, BASE, OTHER, SECRET, ResourceTestCase

_MODEL = botocore.session.get_session().get_service_model("s3")

Response = Tuple[int, Dict[str, str], bytes]


def parse(operation: str, response: Response) -> Dict[str, Any]:
    """A response as botocore reads it for C{operation}."""
    status, headers, body = response
    shape = _MODEL.operation_model(operation).output_shape
    return RestXMLParser().parse(
        {"status_code": status, "headers": HeadersDict(headers), "body": body}, shape
    )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32(data: bytes) -> str:
    """CRC32 as botocore computes and sends it."""
    checksum = Crc32Checksum()
    checksum.update(data)
    return checksum.b64digest()


def crc32c(data: bytes) -> str:
    checksum = CrtCrc32cChecksum()
    checksum.update(data)
    return checksum.b64digest()


def crc64nvme(data: bytes) -> str:
    checksum = CrtCrc64NvmeChecksum()
    checksum.update(data)
    return checksum.b64digest()


def sha256(data: bytes) -> str:
    checksum = Sha256Checksum()
    checksum.update(data)
    return checksum.b64digest()


def expectedETag(parts: Sequence[bytes]) -> str:
    """The multipart ETag as AWS (and every tool that checks it) computes it."""
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    return '"%s-%d"' % (hashlib.md5(md5s).hexdigest(), len(parts))


def completeDocument(parts: Sequence[Tuple[int, str]], extra: Optional[Dict[int, Dict[str, str]]] = None) -> bytes:
    """A CompleteMultipartUpload body as botocore serialises it."""
    root = ElementTree.Element("CompleteMultipartUpload", xmlns="http://s3.amazonaws.com/doc/2006-03-01/")
    for number, etag in parts:
        part = ElementTree.SubElement(root, "Part")
        ElementTree.SubElement(part, "ETag").text = etag
        for name, value in (extra or {}).get(number, {}).items():
            ElementTree.SubElement(part, name).text = value
        ElementTree.SubElement(part, "PartNumber").text = str(number)
    return ElementTree.tostring(root)


class MultipartTestCase(ResourceTestCase):
    """Helpers for driving uploads."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()

    def lowerMinPartSize(self, size: int = 1024) -> None:
        """Lower the 5 MiB minimum part size for parts the tests can afford."""
        if hasattr(self.server.context, "minPartSize"):
            self.server.context.minPartSize = size
        else:
            self.patch(multipart, "MIN_PART_SIZE", size)

    def create(self, key: str = "k", headers: Optional[Dict[str, str]] = None) -> str:
        response = self.request("POST", f"/bucket/{key}?uploads", headers=headers)
        self.assertEqual(response[0], 200, response[2])
        parsed = parse("CreateMultipartUpload", response)
        self.assertEqual((parsed["Bucket"], parsed["Key"]), ("bucket", self.server.now.getUpload(parsed["UploadId"]).key))  # type: ignore[union-attr]
        return str(parsed["UploadId"])

    def putPart(self, uploadId: str, number: int, data: bytes, key: str = "k", headers: Optional[Dict[str, str]] = None) -> Response:
        return self.request("PUT", f"/bucket/{key}?partNumber={number}&uploadId={uploadId}", data, headers)

    def uploadParts(self, uploadId: str, parts: Sequence[bytes], key: str = "k", headers: Any = None) -> List[str]:
        etags = []
        for number, data in enumerate(parts, 1):
            extra = headers(data) if callable(headers) else headers
            status, h, body = self.putPart(uploadId, number, data, key, extra)
            self.assertEqual(status, 200, body)
            self.assertEqual(h["etag"], '"%s"' % hashlib.md5(data).hexdigest())
            etags.append(h["etag"])
        return etags

    def complete(self, uploadId: str, parts: Sequence[Tuple[int, str]], key: str = "k",
                 headers: Optional[Dict[str, str]] = None, extra: Optional[Dict[int, Dict[str, str]]] = None) -> Response:
        return self.request("POST", f"/bucket/{key}?uploadId={uploadId}", completeDocument(parts, extra), headers)


class CreateTests(MultipartTestCase):
    """CreateMultipartUpload."""

    def test_storesHeadersMetadataTags(self) -> None:
        """Content-Type, x-amz-meta-* and x-amz-tagging are kept for the object."""
        uploadId = self.create(headers={
            "Content-Type": "text/x-parts", "x-amz-meta-Color": "red",
            "x-amz-tagging": "a=1&b=two%20words&empty=", "Content-Encoding": "aws-chunked",
        })
        upload = self.server.now.getUpload(uploadId)
        assert upload is not None
        self.assertEqual(dict(upload.headers), {"Content-Type": "text/x-parts"})
        self.assertEqual(upload.meta, (("color", "red"),))
        self.assertEqual(upload.tags, (("a", "1"), ("b", "two words"), ("empty", "")))
        self.assertEqual((upload.checksumAlgorithm, upload.checksumType), (None, None))
        self.assertEqual(upload.owner, "owner-id")

    def test_uploadIdsAreURLSafeAndUnique(self) -> None:
        """Upload ids need no escaping in a query string and never repeat."""
        ids = {self.create() for _ in range(5)}
        self.assertEqual(len(ids), 5)
        for uploadId in ids:
            self.assertEqual(quote(uploadId, safe=""), uploadId)

    def test_checksumDefaults(self) -> None:
        """The checksum type defaults as AWS's: COMPOSITE, but FULL_OBJECT for CRC64NVME."""
        for algorithm, checksumType in [("CRC32", "COMPOSITE"), ("crc32c", "COMPOSITE"), ("SHA256", "COMPOSITE"), ("CRC64NVME", "FULL_OBJECT")]:
            response = self.request("POST", "/bucket/k?uploads", headers={"x-amz-checksum-algorithm": algorithm})
            parsed = parse("CreateMultipartUpload", response)
            self.assertEqual((parsed["ChecksumAlgorithm"], parsed["ChecksumType"]), (algorithm.upper(), checksumType))
            upload = self.server.now.getUpload(parsed["UploadId"])
            assert upload is not None
            self.assertEqual((upload.checksumAlgorithm, upload.checksumType), (algorithm.lower(), checksumType))

    def test_badChecksumSettings(self) -> None:
        """Unknown algorithms and impossible algorithm/type pairs are InvalidRequest."""
        for headers in [
            {"x-amz-checksum-algorithm": "MD5"},
            {"x-amz-checksum-type": "COMPOSITE"},
            {"x-amz-checksum-algorithm": "CRC32", "x-amz-checksum-type": "PARTIAL"},
            {"x-amz-checksum-algorithm": "CRC64NVME", "x-amz-checksum-type": "COMPOSITE"},
            {"x-amz-checksum-algorithm": "SHA1", "x-amz-checksum-type": "FULL_OBJECT"},
        ]:
            self.assertError(self.request("POST", "/bucket/k?uploads", headers=headers), 400, "InvalidRequest")
        self.assertEqual(self.server.now.listUploads("bucket").uploads, [])

    def test_badTags(self) -> None:
        """Tags beyond AWS's limits are InvalidTag; a repeated key InvalidArgument (the tagging module's rules)."""
        for tagging in [
            "&".join(f"k{i}=v" for i in range(11)),
            "k" * 129 + "=v",
            "k=" + "v" * 257,
            "=novalue",
        ]:
            self.assertError(self.request("POST", "/bucket/k?uploads", headers={"x-amz-tagging": tagging}), 400, "InvalidTag")
        self.assertError(self.request("POST", "/bucket/k?uploads", headers={"x-amz-tagging": "k=1&k=2"}), 400, "InvalidArgument")
        self.assertEqual(self.request("POST", "/bucket/k?uploads", headers={"x-amz-tagging": "k" * 128 + "=" + "v" * 256})[0], 200)

    def test_otherAccount(self) -> None:
        """Another account cannot start an upload in the bucket."""
        self.assertError(self.request("POST", "/bucket/k?uploads", creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("POST", "/nobucket/k?uploads"), 404, "NoSuchBucket")


class CompleteTests(MultipartTestCase):
    """UploadPart and CompleteMultipartUpload: the object, its ETag, its errors."""

    def test_roundTrip(self) -> None:
        """Parts become one object: its bytes, its -N ETag, the upload's headers and tags."""
        self.lowerMinPartSize()
        uploadId = self.create(headers={"Content-Type": "text/x-parts", "x-amz-meta-color": "red", "x-amz-tagging": "t=1"})
        parts = [b"a" * 2000, bytes(range(256)) * 12, b"tail"]
        etags = self.uploadParts(uploadId, parts)
        response = self.complete(uploadId, list(enumerate(etags, 1)))
        self.assertEqual(response[0], 200, response[2])
        result = parse("CompleteMultipartUpload", response)
        self.assertEqual(result["ETag"], expectedETag(parts))
        self.assertEqual((result["Bucket"], result["Key"]), ("bucket", "k"))
        self.assertEqual(result["Location"], "http://s3.test/bucket/k")
        status, headers, body = self.request("GET", "/bucket/k")
        self.assertEqual((status, body), (200, b"".join(parts)))
        self.assertEqual(headers["etag"], expectedETag(parts))
        self.assertEqual(headers["content-type"], "text/x-parts")
        self.assertEqual(headers["x-amz-meta-color"], "red")
        self.assertNotIn("x-amz-mp-parts-count", headers)
        record = self.server.now.getObject("bucket", "k")
        assert record is not None
        self.assertEqual((record.blob, [p.number for p in record.parts], record.tags), ("", [1, 2, 3], (("t", "1"),)))
        self.assertIsNone(self.server.now.getUpload(uploadId))
        self.assertEqual(self.server.now.listUploads("bucket").uploads, [])

    def test_retriedCompleteGetsTheSameAnswer(self) -> None:
        """
        A complete repeated after success (its answer lost) gets the same
        200 and ETag, as on AWS; with other parts, or for another key, it is
        still NoSuchUpload.
        """
        self.lowerMinPartSize()
        uploadId = self.create()
        parts = [b"a" * 2000, b"tail"]
        etags = self.uploadParts(uploadId, parts)
        first = self.complete(uploadId, list(enumerate(etags, 1)))
        self.assertEqual(first[0], 200, first[2])
        again = self.complete(uploadId, list(enumerate(etags, 1)))
        self.assertEqual(again[0], 200, again[2])
        self.assertEqual(parse("CompleteMultipartUpload", again)["ETag"], expectedETag(parts))
        self.assertError(self.complete(uploadId, [(1, etags[0])]), 404, "NoSuchUpload")
        self.assertError(
            self.request("POST", f"/bucket/other?uploadId={uploadId}", completeDocument(list(enumerate(etags, 1)))),
            404, "NoSuchUpload",
        )

    def test_quotesOptionalAndSubsetOfParts(self) -> None:
        """ETags may come unquoted; parts left out are not in the object."""
        self.lowerMinPartSize()
        uploadId = self.create()
        parts = [b"1" * 1024, b"2" * 1024, b"3" * 1024]
        etags = self.uploadParts(uploadId, parts)
        response = self.complete(uploadId, [(1, etags[0].strip('"')), (3, etags[2])])
        self.assertEqual(response[0], 200, response[2])
        self.assertEqual(self.request("GET", "/bucket/k")[2], parts[0] + parts[2])
        self.assertEqual(parse("CompleteMultipartUpload", response)["ETag"], expectedETag([parts[0], parts[2]]))

    def test_reuploadKeepsLast(self) -> None:
        """A part number uploaded twice keeps the last bytes."""
        uploadId = self.create()
        self.putPart(uploadId, 1, b"first")
        _, headers, _ = self.putPart(uploadId, 1, b"second")
        self.assertError(self.complete(uploadId, [(1, '"%s"' % hashlib.md5(b"first").hexdigest())]), 400, "InvalidPart")
        self.assertEqual(self.complete(uploadId, [(1, headers["etag"])])[0], 200)
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"second")

    def test_invalidPartOrder(self) -> None:
        """Parts must be listed in ascending order, without repeats."""
        self.lowerMinPartSize()
        uploadId = self.create()
        etags = self.uploadParts(uploadId, [b"x" * 1024, b"y" * 1024])
        self.assertError(self.complete(uploadId, [(2, etags[1]), (1, etags[0])]), 400, "InvalidPartOrder")
        self.assertError(self.complete(uploadId, [(1, etags[0]), (1, etags[0])]), 400, "InvalidPartOrder")
        self.assertIsNotNone(self.server.now.getUpload(uploadId))

    def test_invalidPart(self) -> None:
        """A part never uploaded, or with another ETag, is InvalidPart."""
        uploadId = self.create()
        etags = self.uploadParts(uploadId, [b"x"])
        self.assertError(self.complete(uploadId, [(1, etags[0]), (2, etags[0])]), 400, "InvalidPart")
        self.assertError(self.complete(uploadId, [(1, '"%s"' % ("0" * 32))]), 400, "InvalidPart")
        self.assertError(self.complete(uploadId, [(10001, etags[0])]), 400, "InvalidPart")
        self.assertIsNotNone(self.server.now.getUpload(uploadId))

    def test_entityTooSmall(self) -> None:
        """Every part but the last must be at least 5 MiB (the real default here)."""
        uploadId = self.create()
        etags = self.uploadParts(uploadId, [b"x" * 1000, b"y"])
        response = self.complete(uploadId, list(enumerate(etags, 1)))
        self.assertError(response, 400, "EntityTooSmall")
        doc = ElementTree.fromstring(response[2])
        self.assertEqual((doc.findtext("ProposedSize"), doc.findtext("MinSizeAllowed")), ("1000", str(5 * 1024 * 1024)))
        # The last part alone may be small.
        self.assertEqual(self.complete(uploadId, [(2, etags[1])])[0], 200)

    def test_minPartSizeIsConfigurable(self) -> None:
        """The minimum is read from the context when it has one."""
        self.lowerMinPartSize(1000)
        uploadId = self.create()
        etags = self.uploadParts(uploadId, [b"x" * 999, b"y"])
        self.assertError(self.complete(uploadId, list(enumerate(etags, 1))), 400, "EntityTooSmall")
        etags = self.uploadParts(uploadId, [b"x" * 1000, b"y"])
        self.assertEqual(self.complete(uploadId, list(enumerate(etags, 1)))[0], 200)

    def test_malformed(self) -> None:
        """Empty, broken or partless documents are MalformedXML."""
        uploadId = self.create()
        self.uploadParts(uploadId, [b"x"])
        for body in [b"", b"<CompleteMultipartUpload>", b"<CompleteMultipartUpload/>",
                     b"<Other><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Other>",
                     b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>"]:
            self.assertError(self.request("POST", f"/bucket/k?uploadId={uploadId}", body), 400, "MalformedXML")

    def test_noSuchUpload(self) -> None:
        """Unknown ids, and ids used under another key, are NoSuchUpload everywhere."""
        uploadId = self.create()
        for method, path, body in [
            ("PUT", "/bucket/k?partNumber=1&uploadId=nope", b"x"),
            ("PUT", f"/bucket/other?partNumber=1&uploadId={uploadId}", b"x"),
            ("GET", "/bucket/k?uploadId=nope", b""),
            ("DELETE", "/bucket/k?uploadId=nope", b""),
            ("POST", "/bucket/k?uploadId=nope", completeDocument([(1, "x")])),
        ]:
            self.assertError(self.request(method, path, body), 404, "NoSuchUpload")

    def test_partNumberRange(self) -> None:
        """Part numbers run from 1 to 10,000."""
        uploadId = self.create()
        for number in ["0", "10001", "abc", "-1"]:
            self.assertError(self.request("PUT", f"/bucket/k?partNumber={number}&uploadId={uploadId}", b"x"), 400, "InvalidArgument")
        self.assertEqual(self.putPart(uploadId, 10000, b"x")[0], 200)
        self.assertEqual(self.server.now.getUpload(uploadId).parts[0].number, 10000)  # type: ignore[union-attr]

    def test_partContentMD5(self) -> None:
        """A part's body is checked like a PutObject's: Content-MD5 mismatch is BadDigest."""
        uploadId = self.create()
        wrong = b64(hashlib.md5(b"other").digest())
        self.assertError(self.putPart(uploadId, 1, b"data", headers={"Content-MD5": wrong}), 400, "BadDigest")
        self.assertEqual(self.server.now.getUpload(uploadId).parts, ())  # type: ignore[union-attr]

    def test_conditionalComplete(self) -> None:
        """If-None-Match: * refuses to replace an object; If-Match needs its ETag."""
        self.request("PUT", "/bucket/k", b"existing")
        uploadId = self.create()
        etags = self.uploadParts(uploadId, [b"new"])
        self.assertError(self.complete(uploadId, [(1, etags[0])], headers={"If-None-Match": "*"}), 412, "PreconditionFailed")
        self.assertError(self.complete(uploadId, [(1, etags[0])], headers={"If-Match": '"nope"'}), 412, "PreconditionFailed")
        self.assertIsNotNone(self.server.now.getUpload(uploadId))
        current = '"%s"' % hashlib.md5(b"existing").hexdigest()
        self.assertEqual(self.complete(uploadId, [(1, etags[0])], headers={"If-Match": current})[0], 200)
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"new")

    def test_onlyOneOutcome(self) -> None:
        """
        After a complete, an abort (or a complete naming other parts) is
        NoSuchUpload — the same complete again is answered as before; after
        an abort, a complete is NoSuchUpload.
        """
        uploadId = self.create()
        etags = self.uploadParts(uploadId, [b"x"])
        self.assertEqual(self.complete(uploadId, [(1, etags[0])])[0], 200)
        self.assertError(self.complete(uploadId, [(2, etags[0])]), 404, "NoSuchUpload")
        self.assertError(self.request("DELETE", f"/bucket/k?uploadId={uploadId}"), 404, "NoSuchUpload")
        other = self.create()
        etags = self.uploadParts(other, [b"y"])
        self.assertEqual(self.request("DELETE", f"/bucket/k?uploadId={other}")[0], 204)
        self.assertError(self.complete(other, [(1, etags[0])]), 404, "NoSuchUpload")
        self.assertEqual(self.request("GET", "/bucket/k")[2], b"x")

    def test_racingCompleteAndAbort(self) -> None:
        """Enqueued together, the complete wins and the abort is NoSuchUpload."""
        uploadId = self.create()
        etags = self.uploadParts(uploadId, [b"x"])
        engine = self.server.metadata
        upload = self.server.now.getUpload(uploadId)
        assert upload is not None
        requested = [multipart.CompletedPart(1, etags[0].strip('"'))]
        completed = engine.completeUpload(uploadId, lambda u: multipart._assemble(self.server.context, u, requested, {}))
        aborted = engine.abortUpload(uploadId)
        self.assertEqual(self.successResultOf(completed).etag, expectedETag([b"x"]).strip('"'))
        self.failureResultOf(aborted, S3Error)

    def test_otherAccount(self) -> None:
        """Another account cannot touch an upload in a bucket it does not own."""
        uploadId = self.create()
        for method, path in [("PUT", f"/bucket/k?partNumber=1&uploadId={uploadId}"), ("GET", f"/bucket/k?uploadId={uploadId}"),
                             ("DELETE", f"/bucket/k?uploadId={uploadId}"), ("GET", "/bucket?uploads")]:
            self.assertError(self.request(method, path, b"x" if method == "PUT" else b"", creds=OTHER), 403, "AccessDenied")


class AbortTests(MultipartTestCase):
    """AbortMultipartUpload."""

    def test_abort(self) -> None:
        """204, then the upload is gone and its parts unreferenced."""
        uploadId = self.create()
        self.uploadParts(uploadId, [b"abandoned part"])
        address = self.server.now.getUpload(uploadId).parts[0].blob  # type: ignore[union-attr]
        status, _, body = self.request("DELETE", f"/bucket/k?uploadId={uploadId}")
        self.assertEqual((status, body), (204, b""))
        self.assertIsNone(self.server.now.getUpload(uploadId))
        self.assertIsNone(self.server.now.getBlob(address))
        self.assertError(self.request("DELETE", f"/bucket/k?uploadId={uploadId}"), 404, "NoSuchUpload")
        self.assertError(self.putPart(uploadId, 2, b"late"), 404, "NoSuchUpload")


class ChecksumTests(MultipartTestCase):
    """Part checksums, and object checksums as AWS (and botocore) define them."""

    def setUp(self) -> None:
        super().setUp()
        self.lowerMinPartSize()
        self.parts = [bytes(range(256)) * 8, b"\x00\xff" * 700, b"last part"]

    def test_compositeCRC32(self) -> None:
        """COMPOSITE: CRC32 of the raw part CRC32s, -N; per-part values checked on complete."""
        uploadId = self.create(headers={"x-amz-checksum-algorithm": "CRC32"})
        etags = self.uploadParts(uploadId, self.parts, headers=lambda d: {"x-amz-checksum-crc32": crc32(d)})
        partSums = [crc32(p) for p in self.parts]
        extra = {n: {"ChecksumCRC32": v} for n, v in enumerate(partSums, 1)}
        response = self.complete(uploadId, list(enumerate(etags, 1)), extra=extra)
        self.assertEqual(response[0], 200, response[2])
        raw = b"".join(base64.b64decode(v) for v in partSums)
        expected = b64(zlib.crc32(raw).to_bytes(4, "big")) + "-3"
        result = parse("CompleteMultipartUpload", response)
        self.assertEqual((result["ChecksumCRC32"], result["ChecksumType"]), (expected, "COMPOSITE"))
        _, headers, _ = self.request("HEAD", "/bucket/k", headers={"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual((headers["x-amz-checksum-crc32"], headers["x-amz-checksum-type"]), (expected, "COMPOSITE"))

    def test_wrongPartChecksumOnComplete(self) -> None:
        """A part checksum in the complete document that does not match is InvalidPart."""
        uploadId = self.create(headers={"x-amz-checksum-algorithm": "CRC32"})
        etags = self.uploadParts(uploadId, self.parts[:1])
        self.assertError(self.complete(uploadId, [(1, etags[0])], extra={1: {"ChecksumCRC32": crc32(b"other")}}), 400, "InvalidPart")

    def test_defaultFullObjectCRC64NVME(self) -> None:
        """With no algorithm named, the object gets the whole-object CRC64NVME botocore computes."""
        uploadId = self.create()
        etags = self.uploadParts(uploadId, self.parts)
        response = self.complete(uploadId, list(enumerate(etags, 1)))
        whole = crc64nvme(b"".join(self.parts))
        result = parse("CompleteMultipartUpload", response)
        self.assertEqual((result["ChecksumCRC64NVME"], result["ChecksumType"]), (whole, "FULL_OBJECT"))
        _, headers, body = self.request("GET", "/bucket/k", headers={"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual((headers["x-amz-checksum-crc64nvme"], headers["x-amz-checksum-type"]), (whole, "FULL_OBJECT"))
        self.assertEqual(body, b"".join(self.parts))

    def test_fullObjectCRC32CWithoutPartHeaders(self) -> None:
        """FULL_OBJECT CRC32C combines part CRCs; parts sent without a checksum get the upload's computed."""
        uploadId = self.create(headers={"x-amz-checksum-algorithm": "CRC32C", "x-amz-checksum-type": "FULL_OBJECT"})
        etags = []
        for number, data in enumerate(self.parts, 1):
            status, headers, _ = self.putPart(uploadId, number, data)
            self.assertEqual(headers["x-amz-checksum-crc32c"], crc32c(data))
            etags.append(headers["etag"])
        whole = crc32c(b"".join(self.parts))
        response = self.complete(uploadId, list(enumerate(etags, 1)), headers={"x-amz-checksum-crc32c": whole, "x-amz-checksum-type": "FULL_OBJECT"})
        self.assertEqual(response[0], 200, response[2])
        self.assertEqual(parse("CompleteMultipartUpload", response)["ChecksumCRC32C"], whole)

    def test_compositeSHA256(self) -> None:
        """SHA256 uploads are COMPOSITE: SHA256 of the raw part digests, -N."""
        uploadId = self.create(headers={"x-amz-checksum-algorithm": "SHA256"})
        etags = self.uploadParts(uploadId, self.parts, headers=lambda d: {"x-amz-checksum-sha256": sha256(d)})
        response = self.complete(uploadId, list(enumerate(etags, 1)))
        raw = b"".join(hashlib.sha256(p).digest() for p in self.parts)
        self.assertEqual(parse("CompleteMultipartUpload", response)["ChecksumSHA256"], b64(hashlib.sha256(raw).digest()) + "-3")

    def test_completeChecksumHeaderVerified(self) -> None:
        """A whole-object checksum given on complete must match: BadDigest otherwise."""
        uploadId = self.create()
        etags = self.uploadParts(uploadId, self.parts)
        parts = list(enumerate(etags, 1))
        self.assertError(self.complete(uploadId, parts, headers={"x-amz-checksum-crc64nvme": crc64nvme(b"other")}), 400, "BadDigest")
        self.assertError(self.complete(uploadId, parts, headers={"x-amz-checksum-type": "COMPOSITE"}), 400, "BadDigest")
        self.assertError(self.complete(uploadId, parts, headers={"x-amz-checksum-crc32": crc32(b"x")}), 400, "InvalidRequest")
        whole = crc64nvme(b"".join(self.parts))
        self.assertEqual(self.complete(uploadId, parts, headers={"x-amz-checksum-crc64nvme": whole})[0], 200)

    def test_partAlgorithmMismatch(self) -> None:
        """A part naming another algorithm than the upload's is refused."""
        uploadId = self.create(headers={"x-amz-checksum-algorithm": "SHA1"})
        self.assertError(self.putPart(uploadId, 1, b"x", headers={"x-amz-checksum-crc32": crc32(b"x")}), 400, "InvalidRequest")
        self.assertError(self.putPart(uploadId, 1, b"x", headers={"x-amz-checksum-sha1": b64(hashlib.sha1(b"y").digest())}), 400, "BadDigest")
        self.assertEqual(self.server.now.getUpload(uploadId).parts, ())  # type: ignore[union-attr]

    def test_objectChecksumFunction(self) -> None:
        """L{multipart.objectChecksum} combines CRCs exactly as a CRC over the whole would be."""
        data = [b"abc" * 1000, b"", b"defgh" * 333]
        for algorithm, whole in [("crc32", crc32), ("crc32c", crc32c), ("crc64nvme", crc64nvme)]:
            parts = [PartRecord(i, len(d), "", "", 0.0, ((algorithm, whole(d)),)) for i, d in enumerate(data, 1)]
            self.assertEqual(multipart.objectChecksum(algorithm, "FULL_OBJECT", parts), whole(b"".join(data)))
        self.assertIsNone(multipart.objectChecksum("crc32", "COMPOSITE", [PartRecord(1, 1, "", "", 0.0)]))


class ListTests(MultipartTestCase):
    """ListParts and ListMultipartUploads, as botocore reads them."""

    def test_listParts(self) -> None:
        """Parts by number, paged with max-parts and part-number-marker."""
        uploadId = self.create(headers={"x-amz-checksum-algorithm": "CRC32"})
        for number in (1, 2, 3, 5):
            self.putPart(uploadId, number, b"part %d" % number)
        first = parse("ListParts", self.request("GET", f"/bucket/k?uploadId={uploadId}&max-parts=2"))
        self.assertEqual([p["PartNumber"] for p in first["Parts"]], [1, 2])
        self.assertEqual((first["IsTruncated"], first["NextPartNumberMarker"], first["MaxParts"]), (True, 2, 2))
        self.assertEqual(first["Parts"][0]["ETag"], '"%s"' % hashlib.md5(b"part 1").hexdigest())
        self.assertEqual(first["Parts"][0]["Size"], 6)
        self.assertEqual(first["Parts"][0]["ChecksumCRC32"], crc32(b"part 1"))
        self.assertEqual((first["Initiator"]["ID"], first["Owner"]["DisplayName"]), ("owner-id", "owner"))
        self.assertEqual((first["StorageClass"], first["ChecksumAlgorithm"], first["ChecksumType"]), ("STANDARD", "CRC32", "COMPOSITE"))
        second = parse("ListParts", self.request("GET", f"/bucket/k?uploadId={uploadId}&max-parts=2&part-number-marker=2"))
        self.assertEqual([p["PartNumber"] for p in second["Parts"]], [3, 5])
        self.assertEqual((second["IsTruncated"], second["PartNumberMarker"]), (False, 2))
        self.assertError(self.request("GET", f"/bucket/k?uploadId={uploadId}&max-parts=x"), 400, "InvalidArgument")
        everything = parse("ListParts", self.request("GET", f"/bucket/k?uploadId={uploadId}&max-parts=5000"))
        self.assertEqual((len(everything["Parts"]), everything["MaxParts"]), (4, 1000))

    def test_listUploads(self) -> None:
        """Uploads by key then time; prefix, delimiter, markers, max-uploads."""
        ids: Dict[str, List[str]] = {}
        for key in ["a/1", "a/2", "b", "b", "c d"]:
            ids.setdefault(key, []).append(self.create(quote(key)))
            self.server.clock.advance(1)
        everything = parse("ListMultipartUploads", self.request("GET", "/bucket?uploads"))
        self.assertEqual([u["Key"] for u in everything["Uploads"]], ["a/1", "a/2", "b", "b", "c d"])
        self.assertEqual([u["UploadId"] for u in everything["Uploads"]][2:4], ids["b"])
        self.assertEqual(everything["Uploads"][0]["Initiator"]["ID"], "owner-id")
        self.assertEqual(everything["IsTruncated"], False)
        grouped = parse("ListMultipartUploads", self.request("GET", "/bucket?uploads&delimiter=/"))
        self.assertEqual([p["Prefix"] for p in grouped["CommonPrefixes"]], ["a/"])
        self.assertEqual([u["Key"] for u in grouped["Uploads"]], ["b", "b", "c d"])
        prefixed = parse("ListMultipartUploads", self.request("GET", "/bucket?uploads&prefix=a/"))
        self.assertEqual([u["Key"] for u in prefixed["Uploads"]], ["a/1", "a/2"])
        page = parse("ListMultipartUploads", self.request("GET", "/bucket?uploads&max-uploads=3"))
        self.assertEqual((page["IsTruncated"], page["NextKeyMarker"], page["NextUploadIdMarker"]), (True, "b", ids["b"][0]))
        rest = parse("ListMultipartUploads", self.request(
            "GET", f"/bucket?uploads&key-marker=b&upload-id-marker={ids['b'][0]}"))
        self.assertEqual([u["UploadId"] for u in rest["Uploads"]], [ids["b"][1], ids["c d"][0]])
        encoded = self.request("GET", "/bucket?uploads&encoding-type=url")
        self.assertIn(b"<Key>c%20d</Key>", encoded[2])
        self.assertError(self.request("GET", "/bucket?uploads&max-uploads=-1"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket?uploads&encoding-type=xml"), 400, "InvalidArgument")


class PartNumberReadTests(MultipartTestCase):
    """GetObject and HeadObject with partNumber."""

    def setUp(self) -> None:
        super().setUp()
        self.lowerMinPartSize()
        self.parts = [b"A" * 1500, b"B" * 1200, b"C" * 10]
        uploadId = self.create("mp")
        etags = self.uploadParts(uploadId, self.parts, key="mp")
        self.assertEqual(self.complete(uploadId, list(enumerate(etags, 1)), key="mp")[0], 200)

    def test_getPart(self) -> None:
        """A part of a multipart object is a 206 of its span, with the parts count."""
        status, headers, body = self.request("GET", "/bucket/mp?partNumber=2")
        self.assertEqual((status, body), (206, self.parts[1]))
        self.assertEqual(headers["content-range"], "bytes 1500-2699/2710")
        self.assertEqual(headers["x-amz-mp-parts-count"], "3")
        self.assertEqual(headers["etag"], expectedETag(self.parts))
        status, headers, body = self.request("HEAD", "/bucket/mp?partNumber=3")
        self.assertEqual((status, headers["content-length"], body), (206, "10", b""))
        self.assertEqual(headers["content-range"], "bytes 2700-2709/2710")
        self.assertEqual(headers["x-amz-mp-parts-count"], "3")

    def test_partChecksum(self) -> None:
        """With checksum mode, a part read carries that part's checksum (which botocore can verify)."""
        _, headers, body = self.request("GET", "/bucket/mp?partNumber=2", headers={"x-amz-checksum-mode": "ENABLED"})
        self.assertEqual(headers["x-amz-checksum-crc64nvme"], crc64nvme(self.parts[1]))

    def test_noSuchPart(self) -> None:
        """A part the object lacks is InvalidPartNumber (416); a bad number InvalidArgument."""
        self.assertError(self.request("GET", "/bucket/mp?partNumber=4"), 416, "InvalidPartNumber")
        self.assertError(self.request("GET", "/bucket/mp?partNumber=0"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket/mp?partNumber=x"), 400, "InvalidArgument")
        self.assertEqual(self.request("HEAD", "/bucket/mp?partNumber=4")[0], 416)

    def test_partNumberWithRange(self) -> None:
        """partNumber and Range together are InvalidRequest, as AWS answers."""
        self.assertError(self.request("GET", "/bucket/mp?partNumber=1", headers={"Range": "bytes=0-1"}), 400, "InvalidRequest")

    def test_singlePartObject(self) -> None:
        """A PutObject object is its own part 1: a 206 of the whole, no parts count."""
        self.request("PUT", "/bucket/plain", b"0123456789")
        status, headers, body = self.request("GET", "/bucket/plain?partNumber=1")
        self.assertEqual((status, body, headers["content-range"]), (206, b"0123456789", "bytes 0-9/10"))
        self.assertNotIn("x-amz-mp-parts-count", headers)
        self.assertError(self.request("GET", "/bucket/plain?partNumber=2"), 416, "InvalidPartNumber")

    def test_rangeOverParts(self) -> None:
        """A Range across part boundaries reads from consecutive part blobs."""
        status, _, body = self.request("GET", "/bucket/mp", headers={"Range": "bytes=1490-2705"})
        self.assertEqual((status, body), (206, b"".join(self.parts)[1490:2706]))

    def test_conditionsApply(self) -> None:
        """Read conditions apply to part reads too."""
        etag = expectedETag(self.parts)
        self.assertEqual(self.request("GET", "/bucket/mp?partNumber=1", headers={"If-None-Match": etag})[0], 304)


class CopyPartTests(MultipartTestCase):
    """UploadPartCopy."""

    def setUp(self) -> None:
        super().setUp()
        self.lowerMinPartSize()
        self.source = bytes(range(256)) * 20
        _, headers, _ = self.request("PUT", "/bucket/src%20key", self.source)
        self.sourceETag = headers["etag"]
        self.uploadId = self.create()

    def copy(self, number: int, source: str = "bucket/src%20key", headers: Optional[Dict[str, str]] = None, creds: Any = None) -> Response:
        h = {"x-amz-copy-source": source}
        h.update(headers or {})
        if creds is not None:
            return self.request("PUT", f"/bucket/k?partNumber={number}&uploadId={self.uploadId}", headers=h, creds=creds)
        return self.request("PUT", f"/bucket/k?partNumber={number}&uploadId={self.uploadId}", headers=h)

    def test_copyRangeAndWhole(self) -> None:
        """A range and a whole object become parts; the object reads back byte for byte."""
        response = self.copy(1, headers={"x-amz-copy-source-range": "bytes=100-1123"})
        self.assertEqual(response[0], 200, response[2])
        result = parse("UploadPartCopy", response)["CopyPartResult"]
        self.assertEqual(result["ETag"], '"%s"' % hashlib.md5(self.source[100:1124]).hexdigest())
        self.assertEqual(result["ChecksumCRC64NVME"], crc64nvme(self.source[100:1124]))
        whole = parse("UploadPartCopy", self.copy(2, "/bucket/src%20key?versionId=null"))["CopyPartResult"]
        self.assertEqual(whole["ETag"], self.sourceETag)
        response = self.complete(self.uploadId, [(1, result["ETag"]), (2, whole["ETag"])])
        self.assertEqual(response[0], 200, response[2])
        self.assertEqual(self.request("GET", "/bucket/k")[2], self.source[100:1124] + self.source)

    def test_copyFromMultipartInPieces(self) -> None:
        """A multipart source larger than one copy piece is read across its parts, piece by piece."""
        self.server.context.maxObjectSize = 4 << 20
        self.patch(multipart, "COPY_PIECE", 100000)
        parts = [bytes([i]) * (1 << 20) for i in range(3)]
        sourceId = self.create("big")
        etags = self.uploadParts(sourceId, parts, key="big")
        self.assertEqual(self.complete(sourceId, list(enumerate(etags, 1)), key="big")[0], 200)
        response = self.copy(1, "bucket/big", {"x-amz-copy-source-range": "bytes=1000000-2100000"})
        self.assertEqual(response[0], 200, response[2])
        expected = b"".join(parts)[1000000:2100001]
        self.assertEqual(parse("UploadPartCopy", response)["CopyPartResult"]["ETag"], '"%s"' % hashlib.md5(expected).hexdigest())
        self.assertEqual(self.server.now.getUpload(self.uploadId).parts[0].size, len(expected))  # type: ignore[union-attr]

    def test_conditions(self) -> None:
        """The copy-source conditions fail with 412, as AWS answers copies."""
        past, future = formatHTTPDate(self.server.clock.seconds() - 3600), formatHTTPDate(self.server.clock.seconds() + 3600)
        for headers in [
            {"x-amz-copy-source-if-match": '"nope"'},
            {"x-amz-copy-source-if-none-match": self.sourceETag},
            {"x-amz-copy-source-if-modified-since": future},
            {"x-amz-copy-source-if-unmodified-since": past},
        ]:
            self.assertError(self.copy(1, headers=headers), 412, "PreconditionFailed")
        for headers in [
            {"x-amz-copy-source-if-match": self.sourceETag, "x-amz-copy-source-if-unmodified-since": past},
            {"x-amz-copy-source-if-none-match": '"other"'},
            {"x-amz-copy-source-if-modified-since": past},
        ]:
            self.assertEqual(self.copy(1, headers=headers)[0], 200, headers)

    def test_badRanges(self) -> None:
        """Ranges outside the source are InvalidRange; other forms InvalidArgument."""
        for value in ["bytes=0-5120", "bytes=10-5"]:
            self.assertError(self.copy(1, headers={"x-amz-copy-source-range": value}), 416, "InvalidRange")
        for value in ["bytes=-5", "bytes=5-", "0-5", "bytes=1-2,4-5"]:
            self.assertError(self.copy(1, headers={"x-amz-copy-source-range": value}), 400, "InvalidArgument")
        self.assertEqual(self.copy(1, headers={"x-amz-copy-source-range": "bytes=5119-5119"})[0], 200)

    def test_badSources(self) -> None:
        """Missing sources, unowned buckets and malformed names are refused."""
        self.assertError(self.copy(1, "bucket/missing"), 404, "NoSuchKey")
        self.assertError(self.copy(1, "nobucket/k"), 404, "NoSuchBucket")
        self.assertError(self.copy(1, "bucket"), 400, "InvalidArgument")
        self.assertError(self.copy(1, "bucket/src%20key?versionId=abc"), 400, "InvalidArgument")
        self.assertError(self.copy(1, "bucket/src%20key?versionId=" + versionIdOf(99999)), 404, "NoSuchVersion")
        self.assertError(self.copy(1, "bucket/src%20key?versionId="), 400, "InvalidArgument")
        self.assertEqual(self.request("PUT", "/theirs", creds=OTHER)[0], 200)
        self.assertEqual(self.request("PUT", "/theirs/k", b"x", creds=OTHER)[0], 200)
        self.assertError(self.copy(1, "theirs/k"), 403, "AccessDenied")
        self.assertError(self.request("PUT", "/bucket/k?partNumber=1&uploadId=nope", headers={"x-amz-copy-source": "bucket/src%20key"}), 404, "NoSuchUpload")
        self.assertEqual(self.server.now.getUpload(self.uploadId).parts, ())  # type: ignore[union-attr]


class ParserTests(SynchronousTestCase):
    """The request parsers on their own."""

    def test_copySource(self) -> None:
        """Copy sources are URL-decoded, with an optional slash and versionId."""
        self.assertEqual(multipart.parseCopySource("/b/dir/a%20b%2Bc"), ("b", "dir/a b+c", None))
        self.assertEqual(multipart.parseCopySource("b/k%3Fq?versionId=null"), ("b", "k?q", "null"))

    def test_multipartETag(self) -> None:
        """The ETag formula, checked against an independent computation."""
        data = [b"x" * 10, b"y" * 3]
        parts = [PartRecord(i, len(d), hashlib.md5(d).hexdigest(), "", 0.0) for i, d in enumerate(data, 1)]
        self.assertEqual('"%s"' % multipart.multipartETag(parts), expectedETag(data))


class HeaderTimeHookTests(MultipartTestCase):
    """L{multipart.uploadPartAlgorithms}, for the resource to call before a part's body is read."""

    def call(self, query: Dict[str, str]) -> Any:
        from fasterstore.s3.operations import Operation
        from fasterstore.s3.resource import Call
        from fasterstore.s3.routing import Route
        from fasterstore.auth.identity import Authenticated
        from fasterstore.auth.payload import PayloadMode
        from tests.unit.test_resource import OWNER

        route = Route("bucket", "k", query, b"/bucket/k", b"", False)
        auth = Authenticated(OWNER, PayloadMode.UNSIGNED, None, None, False)
        call = Call(route, auth, Operation("UploadPart", multipart.uploadPart, "object"), {}, "request-id")
        call.bucket = self.server.now.getBucket("bucket")
        return call

    def algorithms(self, query: Dict[str, str]) -> "Deferred[FrozenSet[str]]":
        return Deferred.fromCoroutine(multipart.uploadPartAlgorithms(self.server.context, self.call(query)))

    def test_algorithms(self) -> None:
        """The upload's algorithm (CRC64NVME when it named none) is what the part's writer must add."""
        sha1 = self.create(headers={"x-amz-checksum-algorithm": "SHA1"})
        plain = self.create()
        self.assertEqual(self.successResultOf(self.algorithms({"partNumber": "1", "uploadId": sha1})), frozenset({"sha1"}))
        self.assertEqual(self.successResultOf(self.algorithms({"partNumber": "2", "uploadId": plain})), frozenset({"crc64nvme"}))

    def test_refusesEarly(self) -> None:
        """Bad part numbers and unknown uploads are refused before any body byte."""
        uploadId = self.create()
        for query, code in [({"partNumber": "0", "uploadId": uploadId}, "InvalidArgument"),
                            ({"partNumber": "1", "uploadId": "nope"}, "NoSuchUpload")]:
            error = self.failureResultOf(self.algorithms(query), S3Error).value
            self.assertEqual(error.code, code)


def latin1Request(case: ResourceTestCase, method: str, path: str, headers: Dict[str, str]) -> Response:
    """
    Like L{ResourceTestCase.request}, but header values go on the wire as
    latin-1 (one byte per character, as the server decodes them) rather
    than UTF-8, so that C{²} arrives as C{²}.  Every header is signed.
    """
    url = BASE + path
    aws = AWSRequest(method=method, url=url, data=b"", headers=headers)
    S3SigV4Auth(BotoCredentials(ACCESS, SECRET), "s3", "us-east-1").add_auth(aws)
    raw = {k.encode("latin-1"): [v.encode("latin-1")] for k, v in aws.headers.items()}
    stub = case.server.stub
    response = case.successResultOf(stub.request(method, url, headers=raw))
    content = case.successResultOf(stub.content(response))
    return response.code, {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}, content


class StrictNumberTests(MultipartTestCase):
    """
    Numbers in multipart requests are ASCII integers or refused with AWS's
    error: never a 500, never read as another script's digits.
    """

    def tearDown(self) -> None:
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_completePartNumber(self) -> None:
        """
        A C{<PartNumber>} that is not an ASCII integer within 32 bits is
        MalformedXML: the schema types it C{xs:int}, so the document does
        not validate (InvalidPart is for numbers that are integers but name
        no part).  C{²} gave a 500 and C{١} (Arabic-Indic one) completed
        the upload with part 1.
        """
        uploadId = self.create()
        etags = self.uploadParts(uploadId, [b"x"])
        for number in ["²", "١", "１", "1_0", "+1", "-1", "9" * 5000, "2147483648"]:
            body = (
                "<CompleteMultipartUpload><Part><PartNumber>%s</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>"
                % (number, etags[0])
            ).encode("utf-8")
            self.assertError(self.request("POST", f"/bucket/k?uploadId={uploadId}", body), 400, "MalformedXML")
        self.assertIsNotNone(self.server.now.getUpload(uploadId))
        self.assertIsNone(self.server.now.getObject("bucket", "k"))
        body = b"<CompleteMultipartUpload><Part><PartNumber> 1 </PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>" % etags[0].encode()
        self.assertEqual(self.request("POST", f"/bucket/k?uploadId={uploadId}", body)[0], 200)

    def test_copySourceRange(self) -> None:
        """
        An x-amz-copy-source-range with an offset too long for 64 bits (a
        500: int() refuses over 4300 digits) or in superscript digits is
        InvalidArgument.
        """
        self.lowerMinPartSize()
        self.request("PUT", "/bucket/src", b"0123456789")
        uploadId = self.create()
        for value in ["bytes=0-" + "9" * 5000, "bytes=" + "9" * 5000 + "-" + "9" * 5000,
                      "bytes=0-99999999999999999999", "bytes=0-³", "bytes=²-3"]:
            response = latin1Request(self, "PUT", f"/bucket/k?partNumber=1&uploadId={uploadId}",
                                     {"x-amz-copy-source": "bucket/src", "x-amz-copy-source-range": value})
            self.assertError(response, 400, "InvalidArgument")
        self.assertEqual(self.server.now.getUpload(uploadId).parts, ())  # type: ignore[union-attr]
        response = latin1Request(self, "PUT", f"/bucket/k?partNumber=1&uploadId={uploadId}",
                                 {"x-amz-copy-source": "bucket/src", "x-amz-copy-source-range": "bytes=0-3"})
        self.assertEqual(response[0], 200, response[2])

    def test_parseCopySourceRange(self) -> None:
        """
        L{multipart.parseCopySourceRange} refuses another script's digits,
        which C{\\d} matched and C{int()} read.
        """
        for value in ["bytes=٠-٣", "bytes=０-３"]:
            error = self.assertRaises(S3Error, multipart.parseCopySourceRange, value, 10)
            self.assertEqual(error.code, "InvalidArgument")
        self.assertEqual(multipart.parseCopySourceRange("bytes=0-3", 10), (0, 4))


class UploadIdTests(SynchronousTestCase):
    """Upload ids are safe to pass on a command line."""

    def test_lettersAndDigits(self) -> None:
        """No id starts with '-' (aws cli would read it as an option): letters and digits only, 256 bits."""
        from fasterstore.s3.multipart import newUploadId

        ids = {newUploadId() for _ in range(2000)}
        self.assertEqual(len(ids), 2000)
        for uploadId in ids:
            self.assertRegex(uploadId, r"\A[A-Za-z0-9]{43}\Z")
