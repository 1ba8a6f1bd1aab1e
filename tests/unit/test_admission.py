"""
Tests for L{fasterstore.auth.admission} and L{fasterstore.auth.integrity}
through the real resource tree: nothing a signature does not cover is acted
on, and no body reaches a handler unverified.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Dict, List, Optional, Tuple
from xml.etree import ElementTree

from botocore.auth import HmacV1QueryAuth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.web.server import Site

from fasterstore.auth.canonical import canonicalHeaderValue, headerValue
from fasterstore.auth.integrity import DOCUMENT_LIMIT
from fasterstore.http.request import StreamingRequest
from fasterstore.auth.sigv4 import presignV4
from fasterstore.s3.operations import RULES
from tests.unit.test_post import parseResponse
from tests.unit.test_resource import BASE, OWNER, ResourceTestCase

Response = Tuple[int, Dict[str, str], bytes]

CORS = b"""<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>
<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>"""
EVIL_CORS = b"""<CORSConfiguration><CORSRule><AllowedOrigin>https://evil.test</AllowedOrigin>
<AllowedMethod>PUT</AllowedMethod></CORSRule></CORSConfiguration>"""


class AdmissionTestCase(ResourceTestCase):
    """Helpers: raw sends, presigned URLs, signed-then-changed requests."""

    def send(self, method: str, url: str, body: bytes = b"", headers: Optional[Dict[str, List[str]]] = None) -> Response:
        """Send exactly these headers (no signing)."""
        stub = self.server.stub
        response = self.successResultOf(stub.request(method, url, data=body or None, headers=headers or {}))
        content = self.successResultOf(stub.content(response))
        flat = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
        return response.code, flat, content

    def presign(self, method: str, path: str) -> str:
        """A SigV4 presigned URL (SignedHeaders=host), as botocore makes them."""
        return presignV4(method, BASE + path, OWNER, "us-east-1", 3600, self.server.clock.seconds())

    def signed(self, method: str, path: str, body: bytes = b"", headers: Optional[Dict[str, str]] = None) -> Dict[str, List[str]]:
        """The headers botocore's SigV4 signer sends for this request."""
        aws = AWSRequest(method=method, url=BASE + path, data=body, headers=dict(headers or {}))
        S3SigV4Auth(BotoCredentials(OWNER.accessKey, OWNER.secretKey), "s3", "us-east-1").add_auth(aws)
        sent: Dict[str, List[str]] = {}
        for name, value in aws.headers.items():
            sent.setdefault(name, []).append(value)
        return sent

    def put(self, path: str, body: bytes) -> None:
        status, _, content = self.request("PUT", path, body)
        self.assertEqual(status, 200, content)

    def assertNotSigned(self, result: Response, *names: str) -> None:
        """403 AccessDenied naming the unsigned headers."""
        self.assertError(result, 403, "AccessDenied")
        document = ElementTree.fromstring(result[2])
        self.assertEqual(document.findtext("HeadersNotSigned"), ", ".join(sorted(names)))

    def exists(self, path: str) -> bool:
        return self.request("HEAD", path)[0] == 200

    def raw(self, *pieces: bytes) -> Tuple[bytes, StringTransport]:
        """
        Feed C{pieces} to a real HTTPChannel with FasterStore's streaming
        request; return what was written back, and the transport.
        """
        site = Site(self.server.resource)
        site.requestFactory = StreamingRequest
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        for piece in pieces:
            if transport.disconnecting:
                break
            channel.dataReceived(piece)
        return transport.value(), transport


class UnsignedHeaderTests(AdmissionTestCase):
    """Item 1: an x-amz-* header the signature does not cover is refused."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        self.put("/bucket/secret.txt", b"the secret")

    def test_presignedPutBecomesCopy(self) -> None:
        """
        A presigned PUT sent with an unsigned x-amz-copy-source does not copy
        another object into place (it used to, readable with the matching
        presigned GET).
        """
        url = self.presign("PUT", "/bucket/upload.txt")
        result = self.send("PUT", url, headers={"x-amz-copy-source": ["bucket/secret.txt"]})
        self.assertNotSigned(result, "x-amz-copy-source")
        self.assertFalse(self.exists("/bucket/upload.txt"))

    def test_presignedPutWithoutExtrasWorks(self) -> None:
        """The same URL used as signed uploads the body."""
        url = self.presign("PUT", "/bucket/upload.txt")
        self.assertEqual(self.send("PUT", url, b"mine")[0], 200)
        self.assertEqual(self.request("GET", "/bucket/upload.txt")[2], b"mine")

    def test_presignedUploadPartBecomesPartCopy(self) -> None:
        """UploadPart with an unsigned x-amz-copy-source is not UploadPartCopy."""
        status, _, body = self.request("POST", "/bucket/big?uploads")
        self.assertEqual(status, 200, body)
        uploadId = ElementTree.fromstring(body).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}UploadId")
        url = self.presign("PUT", f"/bucket/big?partNumber=1&uploadId={uploadId}")
        result = self.send("PUT", url, headers={"x-amz-copy-source": ["bucket/secret.txt"]})
        self.assertNotSigned(result, "x-amz-copy-source")

    def test_presignedMetadataTaggingDirective(self) -> None:
        """Metadata, tagging and the copy directive are refused unsigned too."""
        url = self.presign("PUT", "/bucket/upload.txt")
        extras = {
            "x-amz-meta-owner": ["mallory"],
            "x-amz-tagging": ["public=yes"],
            "x-amz-metadata-directive": ["REPLACE"],
        }
        self.assertNotSigned(self.send("PUT", url, b"x", headers=extras), *extras)
        self.assertFalse(self.exists("/bucket/upload.txt"))

    def test_replayedHeaderRequestWithAddedHeader(self) -> None:
        """A captured header-signed PUT replayed with an added x-amz-* header is refused."""
        headers = self.signed("PUT", "/bucket/copy.txt")
        self.assertEqual(self.send("PUT", BASE + "/bucket/copy.txt", headers=headers)[0], 200)
        headers["x-amz-copy-source"] = ["bucket/secret.txt"]
        self.assertNotSigned(self.send("PUT", BASE + "/bucket/copy.txt", headers=headers), "x-amz-copy-source")
        self.assertEqual(self.request("GET", "/bucket/copy.txt")[2], b"")

    def test_signedCopyWorks(self) -> None:
        """A CopyObject whose signature covers x-amz-copy-source copies."""
        status, _, body = self.request("PUT", "/bucket/copy.txt", headers={"x-amz-copy-source": "bucket/secret.txt"})
        self.assertEqual(status, 200, body)
        self.assertEqual(self.request("GET", "/bucket/copy.txt")[2], b"the secret")

    def test_payloadHashNeedNotBeNamed(self) -> None:
        """
        x-amz-content-sha256 is bound by the canonical request itself, so a
        presigned URL that does not name it is not refused for it (it is
        ignored: the payload is unsigned).
        """
        url = self.presign("PUT", "/bucket/upload.txt")
        headers = {"x-amz-content-sha256": [hashlib.sha256(b"other").hexdigest()]}
        self.assertEqual(self.send("PUT", url, b"mine", headers=headers)[0], 200)

    @settings(max_examples=40)
    @given(
        name=st.from_regex(r"x-amz-[a-z0-9][a-z0-9-]{0,20}", fullmatch=True).filter(
            lambda n: n not in ("x-amz-content-sha256", "x-amz-date")
        ),
        value=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
        signedFirst=st.booleans(),
    )
    def test_anyAddedHeaderIsCoveredOrRefused(self, name: str, value: str, signedFirst: bool) -> None:
        """
        Any x-amz-* header on a validly signed GET is either covered by its
        signature (signed with it) or gets 403; it is never acted on unsigned.
        """
        if signedFirst:
            headers = self.signed("GET", "/bucket/secret.txt", headers={name: value})
        else:
            headers = self.signed("GET", "/bucket/secret.txt")
            headers.setdefault(name, []).append(value)
        status, _, body = self.send("GET", BASE + "/bucket/secret.txt", headers=headers)
        if signedFirst:
            self.assertNotEqual(status, 403, body)
        else:
            self.assertEqual(status, 403, body)

    def test_formPostWithAmzHeader(self) -> None:
        """
        A browser form POST carries no signed headers: x-amz-* ones are
        refused, before the body is read.
        """
        body = b"--XX\r\nContent-Disposition: form-data; name=key\r\n\r\nk\r\n--XX--\r\n"
        written, transport = self.raw(
            b"POST /bucket HTTP/1.1\r\nHost: s3.test\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
            b"x-amz-copy-source: bucket/secret.txt\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        self.assertNotSigned(parseResponse(written), "x-amz-copy-source")
        self.assertTrue(transport.disconnecting)

    def test_sigV2UnsignedSubresource(self) -> None:
        """
        SigV2 does not sign ?publicAccessBlock: a presigned V2 listing with
        it added is refused rather than turned into another operation.
        """
        request = AWSRequest("GET", BASE + "/bucket")
        HmacV1QueryAuth(BotoCredentials(OWNER.accessKey, OWNER.secretKey), expires=600).add_auth(request)
        self.assertEqual(self.send("GET", request.url)[0], 200)
        self.assertError(self.send("GET", request.url + "&publicAccessBlock"), 403, "AccessDenied")


class CanonicalFormTests(AdmissionTestCase):
    """Item 3: what is verified is exactly what is used."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()

    def test_repeatedHeaderActsOnSignedForm(self) -> None:
        """A repeated header is acted on as signed: both values, joined."""
        aws = AWSRequest(method="PUT", url=BASE + "/bucket/k", data=b"x")
        aws.headers["x-amz-meta-a"] = "1"
        aws.headers["x-amz-meta-a"] = "2"
        S3SigV4Auth(BotoCredentials(OWNER.accessKey, OWNER.secretKey), "s3", "us-east-1").add_auth(aws)
        headers: Dict[str, List[str]] = {}
        for name, value in aws.headers.items():
            headers.setdefault(name, []).append(value)
        self.assertEqual(headers["x-amz-meta-a"], ["1", "2"])
        self.assertEqual(self.send("PUT", BASE + "/bucket/k", b"x", headers=headers)[0], 200)
        self.assertEqual(self.request("HEAD", "/bucket/k")[1]["x-amz-meta-a"], "1,2")

    def test_nonASCIISpaceNotCollapsed(self) -> None:
        """A signature over 'a b' does not authorize 'a\\xa0b' (or any other non-ASCII space)."""
        self.assertEqual(canonicalHeaderValue(["  a \t  b "]), "a b")
        for space in ("\xa0", "\u2003", "\x1c", "\x85"):
            self.assertNotEqual(canonicalHeaderValue([f"a{space}b"]), "a b")
        headers = self.signed("PUT", "/bucket/k", b"x", headers={"x-amz-meta-a": "a b"})
        headers["x-amz-meta-a"] = ["a\xa0b"]
        self.assertError(self.send("PUT", BASE + "/bucket/k", b"x", headers=headers), 403, "SignatureDoesNotMatch")
        self.assertFalse(self.exists("/bucket/k"))

    def test_headerValueTrimsOnlyHTTPSpace(self) -> None:
        """Values are trimmed of SP and HTAB only, and repeats joined with ','."""
        self.assertEqual(headerValue([" a ", "\tb\xa0"]), "a,b\xa0")

    def test_repeatedQueryParameter(self) -> None:
        """A parameter named twice is refused, signed or not."""
        self.assertError(self.request("GET", "/bucket?prefix=a&prefix=b"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket/k?uploadId=1&uploadId=2"), 400, "InvalidArgument")

    def test_twoHosts(self) -> None:
        """Two Host headers are refused (RFC 9112; a signature covers their join)."""
        written, _ = self.raw(b"GET /bucket HTTP/1.1\r\nHost: s3.test\r\nHost: other.test\r\n\r\n")
        self.assertError(parseResponse(written), 400, "InvalidRequest")


class DocumentIntegrityTests(AdmissionTestCase):
    """Item 2: every body is checked against the signed hash and digests."""

    #: Every operation whose body is a document, with a request for it.
    DOCUMENTS = {
        "CreateBucket": ("PUT", "/newbucket"),
        "PutBucketCors": ("PUT", "/bucket?cors"),
        "PutBucketTagging": ("PUT", "/bucket?tagging"),
        "PutBucketVersioning": ("PUT", "/bucket?versioning"),
        "PutObjectTagging": ("PUT", "/bucket/k?tagging"),
        "PutBucketAcl": ("PUT", "/bucket?acl"),
        "PutObjectAcl": ("PUT", "/bucket/k?acl"),
        "DeleteObjects": ("POST", "/bucket?delete"),
        "CompleteMultipartUpload": ("POST", "/bucket/k?uploadId=UPLOAD"),
        "PutObjectLockConfiguration": ("PUT", "/bucket?object-lock"),
        "PutObjectRetention": ("PUT", "/bucket/k?retention"),
        "PutObjectLegalHold": ("PUT", "/bucket/k?legal-hold"),
        "PutBucketLifecycleConfiguration": ("PUT", "/bucket?lifecycle"),
    }

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        self.put("/bucket/k", b"data")

    def test_everyDocumentOperationListed(self) -> None:
        """A new operation taking a document must be added to L{DOCUMENTS}."""
        documents = {rule.operation.name for rule in RULES if rule.operation.body == "small"}
        self.assertEqual(documents, set(self.DOCUMENTS))

    def test_swappedBodyRefused(self) -> None:
        """
        Every document operation refuses a body other than the one whose
        SHA-256 was signed, before its handler acts on it.
        """
        status, _, body = self.request("POST", "/bucket/k?uploads")
        uploadId = ElementTree.fromstring(body).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}UploadId")
        assert uploadId is not None
        signedBody = b"<Tagging><TagSet/></Tagging>"
        for name, (method, path) in self.DOCUMENTS.items():
            path = path.replace("UPLOAD", uploadId)
            headers = self.signed(method, path, signedBody, headers={"Content-MD5": _md5(EVIL_CORS)})
            result = self.send(method, BASE + path, EVIL_CORS, headers=headers)
            self.assertError(result, 400, "XAmzContentSHA256Mismatch")
        self.assertEqual(self.request("HEAD", "/newbucket")[0], 404)
        self.assertError(self.request("GET", "/bucket?cors"), 404, "NoSuchCORSConfiguration")
        self.assertEqual(self.request("GET", f"/bucket/k?uploadId={uploadId}")[0], 200)

    def test_corsDigests(self) -> None:
        """Content-MD5 and x-amz-checksum-* are checked on PutBucketCors."""
        self.assertError(self.request("PUT", "/bucket?cors", CORS, headers={"Content-MD5": _md5(b"x")}), 400, "BadDigest")
        checksum = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
        self.assertError(
            self.request("PUT", "/bucket?cors", CORS, headers={"x-amz-checksum-sha256": checksum}), 400, "BadDigest"
        )
        self.assertEqual(self.request("PUT", "/bucket?cors", CORS, headers={"Content-MD5": _md5(CORS)})[0], 200)

    def test_unsignedPresignedDocumentIsUnsigned(self) -> None:
        """A presigned document upload (UNSIGNED-PAYLOAD) is still held to Content-MD5."""
        url = self.presign("PUT", "/bucket?cors")
        self.assertError(self.send("PUT", url, CORS, headers={"Content-MD5": [_md5(b"x")]}), 400, "BadDigest")

    def test_ignoredBodyVerified(self) -> None:
        """A body sent to an operation that takes none is checked, not silently accepted."""
        headers = self.signed("GET", "/bucket/k", b"abc")
        self.assertEqual(self.send("GET", BASE + "/bucket/k", b"abc", headers=headers)[0], 200)
        self.assertError(self.send("GET", BASE + "/bucket/k", b"abd", headers=headers), 400, "XAmzContentSHA256Mismatch")


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


class BodyBoundTests(AdmissionTestCase):
    """Item 5: no unwanted body is read beyond a small bound, on any path."""

    def test_reservedPathLargeBody(self) -> None:
        """
        A large body to a reserved path is refused at header time: nothing
        is read (or spooled by twisted.web), the connection is closed.
        """
        written, transport = self.raw(
            b"POST /_fasterstore/health/live HTTP/1.1\r\nHost: s3.test\r\nContent-Length: 314572800\r\n\r\n",
            b"x" * 65536,
        )
        self.assertError(parseResponse(written), 400, "MaxMessageLengthExceeded")
        self.assertTrue(transport.disconnecting)

    def test_reservedPathSmallBodyIgnored(self) -> None:
        """A small body there is read, dropped and the path answered."""
        written, _ = self.raw(b"GET /_fasterstore/health/live HTTP/1.1\r\nHost: s3.test\r\nContent-Length: 3\r\n\r\nabc")
        self.assertEqual(parseResponse(written)[0], 200)

    def test_reservedPathChunkedBodyCutOff(self) -> None:
        """
        A chunked body with no declared length is cut off as soon as it
        passes the bound, and answered at once.
        """
        chunk = b"%x\r\n%s\r\n" % (16384, b"y" * 16384)
        written, transport = self.raw(
            b"POST /_fasterstore/metrics HTTP/1.1\r\nHost: s3.test\r\nTransfer-Encoding: chunked\r\n\r\n",
            *([chunk] * 64),
        )
        self.assertError(parseResponse(written), 400, "MaxMessageLengthExceeded")
        self.assertTrue(transport.disconnecting)

    def test_anonymousLargeBody(self) -> None:
        """An anonymous PUT with a large body is refused before it is read."""
        self.createBucket()
        written, transport = self.raw(b"PUT /bucket/k HTTP/1.1\r\nHost: s3.test\r\nContent-Length: 314572800\r\n\r\n")
        self.assertError(parseResponse(written), 403, "AccessDenied")
        self.assertTrue(transport.disconnecting)

    def test_noBodyOperationLargeBody(self) -> None:
        """A signed GET declaring a large body is refused before it is read."""
        self.createBucket()
        target = self.presign("GET", "/bucket")[len(BASE):].encode()
        written, transport = self.raw(b"GET %s HTTP/1.1\r\nHost: s3.test\r\nContent-Length: 10485760\r\n\r\n" % target)
        self.assertError(parseResponse(written), 400, "MaxMessageLengthExceeded")
        self.assertTrue(transport.disconnecting)

    def test_documentTooLarge(self) -> None:
        """A document past the document limit is refused before it is read."""
        self.createBucket()
        target = self.presign("PUT", "/bucket?tagging")[len(BASE):].encode()
        written, transport = self.raw(
            b"PUT %s HTTP/1.1\r\nHost: s3.test\r\nContent-Length: %d\r\n\r\n" % (target, DOCUMENT_LIMIT + 1)
        )
        self.assertError(parseResponse(written), 400, "MaxMessageLengthExceeded")
        self.assertTrue(transport.disconnecting)

    def test_unsignedFormCutOff(self) -> None:
        """
        A form whose signature fails is answered when its file part begins,
        and the rest of its body (declared as 300 MiB) is never read.
        """
        self.createBucket()
        fields = b"".join(
            b"--XX\r\nContent-Disposition: form-data; name=%s\r\n\r\n%s\r\n" % (name, value)
            for name, value in [(b"key", b"k"), (b"AWSAccessKeyId", OWNER.accessKey.encode()),
                                (b"policy", b"e30="), (b"signature", b"AAAA")]
        )
        fileStart = b"--XX\r\nContent-Disposition: form-data; name=file; filename=f\r\n\r\n"
        written, transport = self.raw(
            b"POST /bucket HTTP/1.1\r\nHost: s3.test\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
            b"Content-Length: 314572800\r\n\r\n" + fields + fileStart,
            b"z" * 65536,
        )
        self.assertError(parseResponse(written), 403, "SignatureDoesNotMatch")
        self.assertTrue(transport.disconnecting)

    def test_formPreDataCutOff(self) -> None:
        """Form fields past S3's 20 KiB before the file are cut off at once."""
        self.createBucket()
        written, transport = self.raw(
            b"POST /bucket HTTP/1.1\r\nHost: s3.test\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
            b"Content-Length: 314572800\r\n\r\n--XX\r\nContent-Disposition: form-data; name=junk\r\n\r\n",
            b"j" * 30000,
            b"j" * 65536,
        )
        self.assertError(parseResponse(written), 400, "MaxPostPreDataLengthExceeded")
        self.assertTrue(transport.disconnecting)


class OwnershipTests(AdmissionTestCase):
    """Every bucket and object operation is refused to another account, whichever handler it reaches."""

    #: Operations another account may reach by design.
    OPEN = {"CreateBucket", "PostObject", "PreflightCORS"}

    def test_noHandlerRunsForAnotherAccount(self) -> None:
        """
        For every method, level and sub-resource (and the header that makes
        a copy), a request signed by another account never reaches a
        handler: a new operation cannot forget the owner check.
        """
        from fasterstore.s3 import cors
        from fasterstore.s3.operations import SUBRESOURCES
        from tests.unit.test_resource import OTHER

        self.assertIn(cors.PREFLIGHT, self.OPEN)
        self.createBucket()
        self.put("/bucket/k", b"data")
        reached: List[str] = []
        for rule in RULES:
            original = rule.operation.handler

            async def record(ctx: object, call: object, request: object, name: str = rule.operation.name) -> None:
                reached.append(name)
                raise AssertionError(name)

            object.__setattr__(rule.operation, "handler", record)
            self.addCleanup(object.__setattr__, rule.operation, "handler", original)
        queries = [""] + sorted(SUBRESOURCES) + ["list-type=2", "partNumber=1&uploadId=x"]
        for method in ("GET", "HEAD", "PUT", "POST", "DELETE"):
            for path in ("/bucket", "/bucket/k"):
                for query in queries:
                    for headers in ({}, {"x-amz-copy-source": "bucket/k"}):
                        target = path + ("?" + query if query else "")
                        status, _, _ = self.request(method, target, headers=headers, creds=OTHER)
                        self.assertNotEqual(status, 200, (method, target, headers))
        self.assertEqual(sorted(set(reached) - self.OPEN), [])
        self.flushLoggedErrors(AssertionError)


class LoggedURITests(AdmissionTestCase):
    """Item 4: a failure logged for a presigned request never shows its signature."""

    def test_failureLogRedacted(self) -> None:
        """The InternalError log line names the URI with X-Amz-Signature=REDACTED."""
        from twisted.logger import formatEvent, globalLogPublisher

        self.createBucket()
        self.put("/bucket/k", b"data")
        events: List[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        (rule,) = [r for r in RULES if r.operation.name == "GetObject"]
        original = rule.operation.handler

        async def broken(ctx: object, call: object, request: object) -> None:
            raise RuntimeError("broken handler")

        object.__setattr__(rule.operation, "handler", broken)
        self.addCleanup(object.__setattr__, rule.operation, "handler", original)
        url = self.presign("GET", "/bucket/k")
        signature = url.rsplit("X-Amz-Signature=", 1)[1]
        self.assertError(self.send("GET", url), 500, "InternalError")
        self.flushLoggedErrors(RuntimeError)
        lines = [formatEvent(event) for event in events]
        failures = [line for line in lines if "GetObject" in line and "failed" in line]
        self.assertEqual(len(failures), 1, lines)
        self.assertIn("X-Amz-Signature=REDACTED", failures[0])
        self.assertFalse([line for line in lines if signature in line])
