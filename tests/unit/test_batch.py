"""
Tests for L{fasterstore.s3.batch}: DeleteObjects and the checked reading of
document bodies, through the real resource, with requests signed like
botocore signs them and with botocore's own S3 client (L{BotoTestCase}).
"""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HeadersDict
from botocore.config import Config
from botocore.exceptions import ClientError
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.s3.batch import MAX_DELETE_KEYS, parseDelete
from fasterstore.errors import S3Error
from tests.unit.test_resource import ACCESS, BASE, NS, OTHER, SECRET, ResourceTestCase


class _Raw(io.BytesIO):
    """A response body with the urllib3 C{stream} botocore reads."""

    def stream(self, amt: int = 65536, decode_content: bool = False) -> Iterator[bytes]:
        while True:
            chunk = self.read(amt)
            if not chunk:
                return
            yield chunk


class BotoTestCase(ResourceTestCase):
    """
    A L{ResourceTestCase} with C{self.s3}: botocore's S3 client, whose every
    request (serialised, checksummed and signed by botocore itself) is
    answered by the resource through StubTreq instead of the network.
    """

    def setUp(self) -> None:
        super().setUp()
        session = botocore.session.get_session()
        self.s3: Any = session.create_client(
            "s3", region_name="us-east-1", endpoint_url=BASE,
            aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        self.sent: List[AWSPreparedRequest] = []
        self.s3.meta.events.register("before-send.s3", self._send)

    def _send(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        self.sent.append(request)
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = {
            name: [value.decode("latin-1") if isinstance(value, bytes) else value]
            for name, value in request.headers.items()
            if name.lower() not in ("content-length", "expect")
        }
        stub = self.server.stub
        response = self.successResultOf(stub.request(request.method, request.url, data=body or None, headers=headers))
        content = self.successResultOf(stub.content(response))
        flat = HeadersDict()
        for name, values in response.headers.getAllRawHeaders():
            # Twisted's client capitalises names; the server sent x-amz-*
            # in lower case, and botocore keeps metadata names as received.
            flat[name.decode("latin-1").lower()] = values[0].decode("latin-1")
        if isinstance(response.length, int):
            flat.setdefault("content-length", str(response.length))
        return AWSResponse(request.url, response.code, flat, _Raw(content))


def deleteDocument(keys: List[str], quiet: bool = False, versions: Optional[Dict[str, str]] = None) -> bytes:
    """A DeleteObjects body."""
    objects = "".join(
        f"<Object><Key>{escape(k)}</Key>"
        + (f"<VersionId>{versions[k]}</VersionId>" if versions and k in versions else "")
        + "</Object>"
        for k in keys
    )
    q = "<Quiet>true</Quiet>" if quiet else ""
    return f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{q}{objects}</Delete>'.encode()


def crc32Header(body: bytes) -> Dict[str, str]:
    """The x-amz-checksum-crc32 header current botocore sends."""
    return {"x-amz-checksum-crc32": base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()}


def md5Header(body: bytes) -> Dict[str, str]:
    """A Content-MD5 header."""
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


def results(body: bytes) -> Tuple[List[str], List[Tuple[str, str]]]:
    """The deleted keys and the (key, code) errors of a DeleteResult."""
    doc = ElementTree.fromstring(body)
    deleted = [d.findtext(f"{NS}Key") or "" for d in doc.iter(f"{NS}Deleted")]
    errors = [(e.findtext(f"{NS}Key") or "", e.findtext(f"{NS}Code") or "") for e in doc.iter(f"{NS}Error")]
    return deleted, errors


class DeleteObjectsTests(ResourceTestCase):
    """DeleteObjects through the real resource."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        for key in ("a", "b", "dir/c d"):
            self.request("PUT", "/bucket/" + key.replace(" ", "%20"), key.encode())

    def test_checksumHeaderWithoutContentMD5(self) -> None:
        """A body with x-amz-checksum-crc32 and no Content-MD5 is accepted; every key gets a result."""
        body = deleteDocument(["a", "dir/c d", "missing"])
        status, _, content = self.request("POST", "/bucket?delete", body, crc32Header(body))
        self.assertEqual(status, 200, content)
        self.assertEqual(results(content), (["a", "dir/c d", "missing"], []))
        self.assertIsNone(self.server.now.getObject("bucket", "a"))
        self.assertIsNone(self.server.now.getObject("bucket", "dir/c d"))
        self.assertIsNotNone(self.server.now.getObject("bucket", "b"))

    def test_contentMD5(self) -> None:
        """Content-MD5 alone is accepted too."""
        body = deleteDocument(["b"])
        status, _, content = self.request("POST", "/bucket?delete", body, md5Header(body))
        self.assertEqual((status, results(content)), (200, (["b"], [])))

    def test_missingDigest(self) -> None:
        """Neither Content-MD5 nor a checksum header: InvalidRequest, nothing deleted."""
        result = self.request("POST", "/bucket?delete", deleteDocument(["a"]))
        self.assertError(result, 400, "InvalidRequest")
        self.assertIn(b"Missing required header for this request: Content-MD5", result[2])
        self.assertIsNotNone(self.server.now.getObject("bucket", "a"))

    def test_wrongDigests(self) -> None:
        """A checksum or Content-MD5 that does not match the body is BadDigest, nothing deleted."""
        body = deleteDocument(["a"])
        other = deleteDocument(["b"])
        self.assertError(self.request("POST", "/bucket?delete", body, crc32Header(other)), 400, "BadDigest")
        self.assertError(self.request("POST", "/bucket?delete", body, md5Header(other)), 400, "BadDigest")
        self.assertError(self.request("POST", "/bucket?delete", body, {"Content-MD5": "x"}), 400, "InvalidDigest")
        self.assertIsNotNone(self.server.now.getObject("bucket", "a"))

    def test_payloadHash(self) -> None:
        """A body that does not match its signed SHA-256 is refused."""
        body = deleteDocument(["a"])
        self.assertError(
            self.request("POST", "/bucket?delete", body, crc32Header(body), payloadHash=hashlib.sha256(b"x").hexdigest()),
            400, "XAmzContentSHA256Mismatch",
        )
        self.assertIsNotNone(self.server.now.getObject("bucket", "a"))

    def test_quiet(self) -> None:
        """Quiet mode lists only the errors (a malformed version id is one)."""
        body = deleteDocument(["a", "b"], quiet=True, versions={"b": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"})
        status, _, content = self.request("POST", "/bucket?delete", body, crc32Header(body))
        self.assertEqual(status, 200)
        self.assertEqual(results(content), ([], [("b", "InvalidArgument")]))
        self.assertIsNone(self.server.now.getObject("bucket", "a"))
        self.assertIsNotNone(self.server.now.getObject("bucket", "b"))

    def test_nullVersion(self) -> None:
        """VersionId null deletes the object and is echoed."""
        body = deleteDocument(["a"], versions={"a": "null"})
        content = self.request("POST", "/bucket?delete", body, crc32Header(body))[2]
        deleted = ElementTree.fromstring(content).find(f"{NS}Deleted")
        assert deleted is not None
        self.assertEqual(deleted.findtext(f"{NS}VersionId"), "null")
        self.assertIsNone(self.server.now.getObject("bucket", "a"))

    def test_perKeyErrors(self) -> None:
        """A bad key or a failed ETag condition is an <Error> for that key only."""
        body = (
            b"<Delete><Object><Key>a</Key><ETag>\"nope\"</ETag></Object>"
            b"<Object><Key>" + b"x" * 1025 + b"</Key></Object><Object><Key>b</Key></Object></Delete>"
        )
        status, _, content = self.request("POST", "/bucket?delete", body, crc32Header(body))
        self.assertEqual(status, 200)
        deleted, errors = results(content)
        self.assertEqual(deleted, ["b"])
        self.assertEqual(errors, [("a", "PreconditionFailed"), ("x" * 1025, "KeyTooLongError")])
        self.assertIsNotNone(self.server.now.getObject("bucket", "a"))

    def test_malformed(self) -> None:
        """No objects, too many, or no Delete document: MalformedXML."""
        for body in (b"<Delete></Delete>", deleteDocument(["k"] * (MAX_DELETE_KEYS + 1)), b"<nope", b"<Other/>"):
            self.assertError(self.request("POST", "/bucket?delete", body, crc32Header(body)), 400, "MalformedXML")

    def test_thousandKeys(self) -> None:
        """1000 keys is the limit, and allowed."""
        body = deleteDocument([f"k{i}" for i in range(MAX_DELETE_KEYS)], quiet=True)
        self.assertEqual(self.request("POST", "/bucket?delete", body, crc32Header(body))[0], 200)

    def test_awsChunkedWithTrailer(self) -> None:
        """An aws-chunked body with a checksum trailer is decoded and verified."""
        body = deleteDocument(["a"])
        checksum = crc32Header(body)["x-amz-checksum-crc32"]
        framed = b"%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % (len(body), body, checksum.encode())
        headers = {
            "Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
            "x-amz-decoded-content-length": str(len(body)),
        }
        status, _, content = self.request("POST", "/bucket?delete", framed, headers, payloadHash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        self.assertEqual((status, results(content)), (200, (["a"], [])))
        wrong = framed.replace(checksum.encode(), crc32Header(b"other")["x-amz-checksum-crc32"].encode())
        self.assertError(
            self.request("POST", "/bucket?delete", wrong, headers, payloadHash="STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            400, "BadDigest",
        )

    def test_otherAccount(self) -> None:
        """Another account's bucket is AccessDenied; a missing one NoSuchBucket."""
        body = deleteDocument(["a"])
        self.assertError(self.request("POST", "/bucket?delete", body, crc32Header(body), creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("POST", "/nobucket?delete", body, crc32Header(body)), 404, "NoSuchBucket")


class ParseTests(SynchronousTestCase):
    """The Delete document parser."""

    def test_namespaceOptional(self) -> None:
        """The document is read with or without the S3 namespace."""
        self.assertEqual(parseDelete(b"<Delete><Object><Key>k</Key></Object></Delete>")[1][0].key, "k")
        quiet, entries = parseDelete(deleteDocument(["a", "b"], quiet=True))
        self.assertEqual((quiet, [e.key for e in entries]), (True, ["a", "b"]))

    def test_keyRequired(self) -> None:
        """An Object without a Key is MalformedXML."""
        e = self.assertRaises(S3Error, parseDelete, b"<Delete><Object></Object></Delete>")
        self.assertEqual(e.code, "MalformedXML")


class BotocoreTests(BotoTestCase):
    """DeleteObjects exactly as current botocore sends it."""

    def test_deleteObjects(self) -> None:
        """botocore's delete_objects works, and sends a checksum header and no Content-MD5."""
        self.s3.create_bucket(Bucket="bucket")
        for key in ("a", "b+c", "d e"):
            self.s3.put_object(Bucket="bucket", Key=key, Body=b"x")
        response = self.s3.delete_objects(
            Bucket="bucket", Delete={"Objects": [{"Key": "a"}, {"Key": "b+c"}, {"Key": "d e", "VersionId": "null"}]}
        )
        self.assertEqual(sorted(d["Key"] for d in response["Deleted"]), ["a", "b+c", "d e"])
        names = {name.lower() for name in self.sent[-1].headers.keys()}
        self.assertNotIn("content-md5", names)
        self.assertTrue(any(name.startswith("x-amz-checksum-") for name in names), names)
        self.assertEqual(self.s3.list_objects_v2(Bucket="bucket")["KeyCount"], 0)

    def test_quietErrors(self) -> None:
        """botocore reads per-key errors."""
        self.s3.create_bucket(Bucket="bucket")
        response = self.s3.delete_objects(
            Bucket="bucket", Delete={"Objects": [{"Key": "a", "VersionId": "v1"}], "Quiet": True}
        )
        self.assertEqual((response["Errors"][0]["Code"], response["Errors"][0]["VersionId"]), ("InvalidArgument", "v1"))
        self.assertNotIn("Deleted", response)

    def test_clientError(self) -> None:
        """An error document reaches botocore as a ClientError."""
        e = self.assertRaises(ClientError, self.s3.delete_objects, Bucket="nobucket", Delete={"Objects": [{"Key": "a"}]})
        self.assertEqual(e.response["Error"]["Code"], "NoSuchBucket")
