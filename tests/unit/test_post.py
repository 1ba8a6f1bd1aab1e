"""
Tests for L{fasterstore.s3.post}: browser-based uploads (POST Object),
driven through the real resource over a real HTTPChannel with
L{StreamingRequest}, with forms signed by botocore's own
C{generate_presigned_post} and encoded by C{requests}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import boto3
import requests
from botocore.config import Config
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from fasterstore.errors import S3Error
from fasterstore.auth.postpolicy import Condition, parsePolicy
from fasterstore.s3.post import expandFilename
from fasterstore.http.request import StreamingRequest
from fasterstore.auth.identity import Credentials
from fasterstore.auth.sigv4 import formatAmzDate, signingKey
from tests.unit.test_resource import BASE, OTHER, OWNER, ResourceTestCase

Response = Tuple[int, Dict[str, str], bytes]


class RecordingRequest(StreamingRequest):
    """A StreamingRequest that remembers itself, so tests can inspect it."""

    made: List["RecordingRequest"] = []
    #: The most bytes twisted.web held in C{content} while the body arrived.
    peakContent = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordingRequest.made.append(self)

    def handleContentChunk(self, data: bytes) -> None:
        super().handleContentChunk(data)
        self.peakContent = max(self.peakContent, len(self.content.getvalue()))


def parseResponse(raw: bytes) -> Response:
    """Status, headers (lower-case names) and body of one raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return int(lines[0].split()[1]), headers, body


def encodeForm(parts: Sequence[Tuple[str, bytes, Optional[str]]], boundary: str = "formboundary1234") -> Tuple[bytes, str]:
    """A multipart/form-data body from (name, value, filename) in order."""
    out = []
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class CountingSegments:
    """The segment store, counting the blob writers opened on it."""

    def __init__(self, test: "PostTestCase", segments: Any) -> None:
        self._test = test
        self._segments = segments

    def openWriter(self, *args: Any, **kwargs: Any) -> Any:
        self._test.writersOpened += 1
        return self._segments.openWriter(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._segments, name)


class PostTestCase(ResourceTestCase):
    """Helpers: presigned forms, and posting them over a real channel."""

    def setUp(self) -> None:
        super().setUp()
        self.server.context.maxObjectSize = 16 << 20
        self.createBucket()
        self.writersOpened = 0
        self.server.context.segments = CountingSegments(self, self.server.segments)  # type: ignore[assignment]

    def presign(
        self,
        key: str = "uploads/${filename}",
        fields: Optional[Dict[str, str]] = None,
        conditions: Optional[List[Any]] = None,
        bucket: str = "bucket",
        creds: Credentials = OWNER,
        expires: int = 3600,
    ) -> Dict[str, Any]:
        """botocore's presigned POST (SigV4) for this server."""
        client = boto3.client(
            "s3", endpoint_url=BASE, region_name="us-east-1",
            aws_access_key_id=creds.accessKey, aws_secret_access_key=creds.secretKey,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        result: Dict[str, Any] = client.generate_presigned_post(
            bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=expires
        )
        return result

    def send(
        self, path: str, body: bytes, contentType: str, chunk: int = 65536, headers: Optional[Mapping[str, str]] = None
    ) -> Response:
        """POST C{body} in pieces of C{chunk} bytes through a real HTTPChannel."""
        site = Site(self.server.resource)
        site.requestFactory = RecordingRequest
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        head = f"POST {path} HTTP/1.1\r\nHost: s3.test\r\nContent-Type: {contentType}\r\nContent-Length: {len(body)}\r\n"
        for name, value in (headers or {}).items():
            head += f"{name}: {value}\r\n"
        channel.dataReceived(head.encode() + b"\r\n")
        for offset in range(0, len(body), chunk):
            channel.dataReceived(body[offset:offset + chunk])
        return parseResponse(transport.value())

    def post(
        self,
        presigned: Mapping[str, Any],
        content: bytes = b"hello, form",
        filename: str = "hello.txt",
        extra: Optional[Mapping[str, str]] = None,
        drop: Sequence[str] = (),
        chunk: int = 65536,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Response:
        """Post a presigned form, encoded by requests, with the file last."""
        fields = {k: v for k, v in presigned["fields"].items() if k not in drop}
        fields.update(extra or {})
        prepared = requests.Request("POST", presigned["url"], data=fields, files={"file": (filename, content)}).prepare()
        body = prepared.body
        assert isinstance(body, bytes)
        path = urlsplit(presigned["url"]).path
        return self.send(path, body, prepared.headers["Content-Type"], chunk, headers)

    def assertPostError(self, result: Response, status: int, code: str, message: Optional[str] = None) -> ElementTree.Element:
        """The response is the S3 error C{code}; return its document."""
        got, _, body = result
        self.assertEqual(got, status, body)
        document = ElementTree.fromstring(body)
        self.assertEqual(document.findtext("Code"), code, body)
        if message is not None:
            self.assertEqual(document.findtext("Message"), message)
        return document

    def getObject(self, key: str) -> Tuple[int, Dict[str, str], bytes]:
        """GET an object with the owner's credentials."""
        return self.request("GET", "/bucket/" + key)


def signForm(policy: Any, creds: Credentials = OWNER, now: Optional[float] = None) -> Dict[str, str]:
    """
    SigV4 form fields for an arbitrary policy: a dict (conditions on the
    SigV4 fields are added to it, as botocore adds them), or raw JSON text.
    """
    now = time.time() if now is None else now
    amzDate = formatAmzDate(now)
    credential = f"{creds.accessKey}/{amzDate[:8]}/us-east-1/s3/aws4_request"
    if not isinstance(policy, str):
        policy = dict(policy, conditions=policy["conditions"] + [
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"x-amz-credential": credential}, {"x-amz-date": amzDate},
        ])
    text = policy if isinstance(policy, str) else json.dumps(policy)
    encoded = base64.b64encode(text.encode()).decode()
    key = signingKey(creds.secretKey, amzDate[:8], "us-east-1")
    return {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": credential,
        "x-amz-date": amzDate,
        "policy": encoded,
        "x-amz-signature": hmac.new(key, encoded.encode(), hashlib.sha256).hexdigest(),
    }


def expiresIn(seconds: float) -> str:
    """A policy expiration C{seconds} from now."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


class UploadTests(PostTestCase):
    """Forms from botocore's generate_presigned_post, end to end."""

    def test_presignedPost(self) -> None:
        """A presigned POST stores the file: 204 with ETag and Location, readable back."""
        status, headers, body = self.post(self.presign(key="greeting.txt"), b"hello, form")
        self.assertEqual(status, 204, body)
        etag = hashlib.md5(b"hello, form").hexdigest()
        self.assertEqual(headers["etag"], f'"{etag}"')
        self.assertEqual(headers["location"], "http://s3.test/bucket/greeting.txt")
        self.assertIn("x-amz-checksum-crc64nvme", headers)
        status, got, content = self.getObject("greeting.txt")
        self.assertEqual((status, content), (200, b"hello, form"))
        self.assertEqual(got["etag"], f'"{etag}"')
        self.assertEqual(got["content-type"], "binary/octet-stream")

    def test_filenameSubstitution(self) -> None:
        """C{${filename}} becomes the file part's file name (its last path segment)."""
        status, _, body = self.post(self.presign(), b"photo", filename="photo.jpg")
        self.assertEqual(status, 204, body)
        self.assertEqual(self.getObject("uploads/photo.jpg")[2], b"photo")
        self.assertEqual(expandFilename("a/${filename}", "C:\\Users\\me\\cat.png"), "a/cat.png")
        self.assertEqual(expandFilename("a/${filename}", "dir/dog.png"), "a/dog.png")
        self.assertEqual(expandFilename("a/${filename}", None), "a/${filename}")

    def test_successActionStatus201(self) -> None:
        """C{success_action_status=201} answers a PostResponse document."""
        presigned = self.presign(fields={"success_action_status": "201"}, conditions=[{"success_action_status": "201"}])
        status, headers, body = self.post(presigned, b"x", filename="a b.txt")
        self.assertEqual(status, 201, body)
        document = ElementTree.fromstring(body)
        self.assertEqual(document.tag, "PostResponse")
        self.assertEqual(document.findtext("Bucket"), "bucket")
        self.assertEqual(document.findtext("Key"), "uploads/a b.txt")
        self.assertEqual(document.findtext("ETag"), '"%s"' % hashlib.md5(b"x").hexdigest())
        self.assertEqual(document.findtext("Location"), "http://s3.test/bucket/uploads%2Fa%20b.txt")
        self.assertEqual(headers["content-type"], "application/xml")

    def test_successActionStatus200(self) -> None:
        """C{success_action_status=200} answers an empty 200."""
        presigned = self.presign(fields={"success_action_status": "200"}, conditions=[{"success_action_status": "200"}])
        status, _, body = self.post(presigned)
        self.assertEqual((status, body), (200, b""))

    def test_invalidSuccessActionStatus(self) -> None:
        """Any other status value gives the default 204."""
        presigned = self.presign(fields={"success_action_status": "404"}, conditions=[{"success_action_status": "404"}])
        self.assertEqual(self.post(presigned)[0], 204)

    def test_redirect(self) -> None:
        """C{success_action_redirect}: 303 to it with bucket, key and etag added."""
        target = "https://app.example.com/done?from=form"
        presigned = self.presign(
            fields={"success_action_redirect": target},
            conditions=[["starts-with", "$success_action_redirect", "https://app.example.com/"]],
        )
        status, headers, body = self.post(presigned, b"r", filename="r.txt")
        self.assertEqual(status, 303, body)
        location = urlsplit(headers["location"])
        self.assertEqual(location.netloc, "app.example.com")
        query = parse_qs(location.query)
        self.assertEqual(query["from"], ["form"])
        self.assertEqual(query["bucket"], ["bucket"])
        self.assertEqual(query["key"], ["uploads/r.txt"])
        self.assertEqual(query["etag"], ['"%s"' % hashlib.md5(b"r").hexdigest()])

    def test_relativeRedirectIgnored(self) -> None:
        """A redirect S3 cannot interpret as a URL is ignored (204)."""
        presigned = self.presign(fields={"redirect": "/relative"}, conditions=[{"redirect": "/relative"}])
        self.assertEqual(self.post(presigned)[0], 204)

    def test_metadataAndSystemHeaders(self) -> None:
        """x-amz-meta-* and Content-Type fields are stored with the object."""
        presigned = self.presign(
            key="meta.txt",
            fields={"x-amz-meta-Color": "blue", "Content-Type": "text/plain"},
            conditions=[["starts-with", "$x-amz-meta-color", "bl"], ["starts-with", "$Content-Type", "text/"]],
        )
        status, _, body = self.post(presigned)
        self.assertEqual(status, 204, body)
        _, headers, _ = self.getObject("meta.txt")
        self.assertEqual(headers["x-amz-meta-color"], "blue")
        self.assertEqual(headers["content-type"], "text/plain")

    def test_largeFileStreams(self) -> None:
        """
        A 5 MiB file goes through in 64 KiB pieces without being buffered:
        twisted.web's content stays empty and only the small fields are held.
        """
        RecordingRequest.made = []
        content = bytes(range(256)) * (5 * 4096)
        presigned = self.presign(key="big.bin", conditions=[["content-length-range", 1, 6 << 20]])
        status, _, body = self.post(presigned, content)
        self.assertEqual(status, 204, body)
        (request,) = RecordingRequest.made
        self.assertEqual(request.peakContent, 0)
        receiver: Any = request.bodyReceiver
        self.assertLess(receiver.peakBuffered, 4096)
        got = self.getObject("big.bin")[2]
        self.assertEqual(hashlib.md5(got).digest(), hashlib.md5(content).digest())

    def test_backpressure(self) -> None:
        """While the segment writer lags, the transport is paused; then resumed."""
        waits: List[Deferred[None]] = []

        class SlowWriter:
            def __init__(self, writer: Any) -> None:
                self._writer = writer

            def write(self, data: bytes) -> Optional[Deferred[None]]:
                self._writer.write(data)
                wait: Deferred[None] = Deferred()
                waits.append(wait)
                return wait

            def __getattr__(self, name: str) -> Any:
                return getattr(self._writer, name)

        segments = self.server.context.segments
        openWriter = segments.openWriter
        segments.openWriter = lambda *a, **k: SlowWriter(openWriter(*a, **k))  # type: ignore[method-assign]
        presigned = self.presign(key="slow")
        fields = dict(presigned["fields"])
        prepared = requests.Request("POST", presigned["url"], data=fields, files={"file": ("f", b"s" * 100000)}).prepare()
        body = prepared.body
        assert isinstance(body, bytes)
        site = Site(self.server.resource)
        site.requestFactory = StreamingRequest
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(
            f"POST /bucket HTTP/1.1\r\nHost: s3.test\r\nContent-Type: {prepared.headers['Content-Type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        channel.dataReceived(body[:60000])
        self.assertEqual(len(waits), 1)
        self.assertEqual(transport.producerState, "paused")
        waits[0].callback(None)
        self.assertEqual(transport.producerState, "producing")
        for wait in waits[1:]:
            wait.callback(None)
        channel.dataReceived(body[60000:])
        self.assertEqual(parseResponse(transport.value())[0], 204)
        self.assertEqual(self.getObject("slow")[2], b"s" * 100000)

    def test_tinyChunks(self) -> None:
        """The parser copes with a body arriving a few bytes at a time."""
        status, _, body = self.post(self.presign(key="tiny.txt"), b"0123456789" * 50, chunk=7)
        self.assertEqual(status, 204, body)
        self.assertEqual(self.getObject("tiny.txt")[2], b"0123456789" * 50)

    def test_sigV2(self) -> None:
        """An AWSAccessKeyId/signature form (SigV2) is accepted too."""
        policy = {"expiration": expiresIn(600), "conditions": [{"bucket": "bucket"}, ["starts-with", "$key", "v2/"]]}
        encoded = base64.b64encode(json.dumps(policy).encode()).decode()
        signature = base64.b64encode(hmac.new(OWNER.secretKey.encode(), encoded.encode(), hashlib.sha1).digest()).decode()
        body, contentType = encodeForm([
            ("key", b"v2/${filename}", None), ("AWSAccessKeyId", OWNER.accessKey.encode(), None),
            ("policy", encoded.encode(), None), ("signature", signature.encode(), None),
            ("file", b"old school", "f.txt"),
        ])
        status, _, response = self.send("/bucket", body, contentType)
        self.assertEqual(status, 204, response)
        self.assertEqual(self.getObject("v2/f.txt")[2], b"old school")

    def test_fieldsAfterFileIgnored(self) -> None:
        """Fields after the file part are ignored (not even policy-checked)."""
        fields = signForm({"expiration": expiresIn(600), "conditions": [{"bucket": "bucket"}, {"key": "k"}]})
        fields["key"] = "k"
        parts = [(n, v.encode(), None) for n, v in fields.items()]
        parts += [("file", b"data", "f"), ("submit", b"Upload", None), ("x-amz-meta-late", b"1", None)]
        body, contentType = encodeForm(parts)
        status, _, response = self.send("/bucket", body, contentType)
        self.assertEqual(status, 204, response)
        self.assertNotIn("x-amz-meta-late", self.getObject("k")[1])

    def test_checksumField(self) -> None:
        """An x-amz-checksum-* field is verified; a wrong one stores nothing."""
        good = base64.b64encode(hashlib.sha256(b"sum").digest()).decode()
        presigned = self.presign(key="sum.txt", fields={"x-amz-checksum-sha256": good},
                                 conditions=[{"x-amz-checksum-sha256": good}])
        status, headers, body = self.post(presigned, b"sum")
        self.assertEqual(status, 204, body)
        self.assertEqual(headers["x-amz-checksum-sha256"], good)
        bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
        presigned = self.presign(key="bad.txt", fields={"x-amz-checksum-sha256": bad},
                                 conditions=[{"x-amz-checksum-sha256": bad}])
        self.assertPostError(self.post(presigned, b"sum"), 400, "BadDigest")
        self.assertEqual(self.getObject("bad.txt")[0], 404)

    def test_corsHeadersOnUpload(self) -> None:
        """A form posted from another origin gets the bucket's CORS headers."""
        cors = (b"<CORSConfiguration><CORSRule><AllowedOrigin>https://app.example.com</AllowedOrigin>"
                b"<AllowedMethod>POST</AllowedMethod></CORSRule></CORSConfiguration>")
        self.assertEqual(self.request("PUT", "/bucket?cors", cors)[0], 200)
        status, headers, _ = self.post(self.presign(), headers={"Origin": "https://app.example.com"})
        self.assertEqual(status, 204)
        self.assertEqual(headers["access-control-allow-origin"], "https://app.example.com")
        status, headers, _ = self.post(self.presign(), drop=["policy"], headers={"Origin": "https://app.example.com"})
        self.assertEqual(status, 400)
        self.assertEqual(headers["access-control-allow-origin"], "https://app.example.com")


class VersionedUploadTests(PostTestCase):
    """A form upload into a bucket with versioning is a new version, named in the answer."""

    def setVersioning(self, status: str) -> None:
        document = f"<VersioningConfiguration><Status>{status}</Status></VersioningConfiguration>".encode()
        self.assertEqual(self.request("PUT", "/bucket?versioning", document)[0], 200)

    def test_versionIdAnswered(self) -> None:
        """No version header without versioning; a new id per upload when enabled; null when suspended."""
        status, headers, body = self.post(self.presign(key="k"), b"plain")
        self.assertEqual(status, 204, body)
        self.assertNotIn("x-amz-version-id", headers)
        self.setVersioning("Enabled")
        ids = []
        for content in (b"one", b"two"):
            status, headers, body = self.post(self.presign(key="k"), content)
            self.assertEqual(status, 204, body)
            ids.append(headers["x-amz-version-id"])
        self.assertNotEqual(ids[0], ids[1])
        self.assertEqual(self.server.now.getObject("bucket", "k").wireVersionId, ids[1])
        self.assertEqual(self.request("GET", f"/bucket/k?versionId={ids[0]}")[2], b"one")
        self.assertEqual(self.request("GET", "/bucket/k?versionId=null")[2], b"plain")
        self.setVersioning("Suspended")
        presigned = self.presign(key="k", fields={"success_action_status": "201"}, conditions=[{"success_action_status": "201"}])
        status, headers, body = self.post(presigned, b"three")
        self.assertEqual((status, headers["x-amz-version-id"]), (201, "null"), body)


class PolicyTests(PostTestCase):
    """Every condition type, passing and failing, with S3's answers."""

    def assertDenied(self, result: Response, message: str) -> None:
        """403 AccessDenied with this message, and nothing was stored."""
        self.assertPostError(result, 403, "AccessDenied", message)
        self.assertEqual(self.writersOpened, 0)

    def test_eq(self) -> None:
        """["eq", "$field", value] and {"field": value}: exact, case-sensitive values."""
        presigned = self.presign(key="eq.txt", fields={"acl": "private", "x-amz-meta-a": "One"},
                                 conditions=[["eq", "$acl", "private"], {"x-amz-meta-a": "One"}])
        self.assertEqual(self.post(presigned)[0], 204)
        self.writersOpened = 0
        self.assertDenied(
            self.post(presigned, extra={"x-amz-meta-a": "one"}),
            'Invalid according to Policy: Policy Condition failed: ["eq", "$x-amz-meta-a", "One"]',
        )

    def test_startsWith(self) -> None:
        """["starts-with", "$key", prefix]."""
        presigned = self.presign(key="user/alice/${filename}")
        self.assertEqual(self.post(presigned)[0], 204)
        self.writersOpened = 0
        self.assertDenied(
            self.post(presigned, extra={"key": "user/bob/x"}),
            'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "user/alice/"]',
        )

    def test_startsWithEmptyAllowsAnything(self) -> None:
        """An empty prefix accepts any value, but the field must be present."""
        presigned = self.presign(key="any.txt", fields={"x-amz-meta-note": "anything at all"},
                                 conditions=[["starts-with", "$x-amz-meta-note", ""]])
        self.assertEqual(self.post(presigned)[0], 204)
        self.writersOpened = 0
        self.assertDenied(
            self.post(presigned, drop=["x-amz-meta-note"]),
            'Invalid according to Policy: Policy Condition failed: ["starts-with", "$x-amz-meta-note", ""]',
        )

    def test_contentTypeList(self) -> None:
        """For Content-Type, each member of a comma list must start with the prefix."""
        presigned = self.presign(key="ct", fields={"Content-Type": "image/png, image/gif"},
                                 conditions=[["starts-with", "$Content-Type", "image/"]])
        self.assertEqual(self.post(presigned)[0], 204)
        self.writersOpened = 0
        self.assertDenied(
            self.post(presigned, extra={"Content-Type": "image/png,text/plain"}),
            'Invalid according to Policy: Policy Condition failed: ["starts-with", "$Content-Type", "image/"]',
        )

    def test_contentLengthRange(self) -> None:
        """content-length-range bounds are inclusive; outside them, S3's size errors."""
        presigned = self.presign(key="sized", conditions=[["content-length-range", 5, 10]])
        self.assertEqual(self.post(presigned, b"12345")[0], 204)
        self.assertEqual(self.post(presigned, b"1234567890")[0], 204)
        document = self.assertPostError(self.post(presigned, b"x" * 12), 400, "EntityTooLarge",
                                        "Your proposed upload exceeds the maximum allowed size")
        self.assertEqual((document.findtext("ProposedSize"), document.findtext("MaxSizeAllowed")), ("12", "10"))
        document = self.assertPostError(self.post(presigned, b"x"), 400, "EntityTooSmall",
                                        "Your proposed upload is smaller than the minimum allowed size")
        self.assertEqual((document.findtext("ProposedSize"), document.findtext("MinSizeAllowed")), ("1", "5"))
        self.assertEqual(self.getObject("sized")[2], b"1234567890")

    def test_contentLengthRangeStopsWriting(self) -> None:
        """A file over the range stops being stored as soon as it passes the maximum."""
        presigned = self.presign(key="huge", conditions=[["content-length-range", 0, 1 << 20]])
        document = self.assertPostError(self.post(presigned, b"z" * (3 << 20)), 400, "EntityTooLarge")
        self.assertEqual(document.findtext("ProposedSize"), str(3 << 20))
        self.assertEqual(self.getObject("huge")[0], 404)

    def test_extraInputFields(self) -> None:
        """A field no condition names is refused; x-ignore-* fields are exempt."""
        presigned = self.presign(key="extra")
        self.assertDenied(
            self.post(presigned, extra={"x-amz-meta-Surprise": "1", "Another": "2"}),
            "Invalid according to Policy: Extra input fields: Another, x-amz-meta-Surprise",
        )
        self.assertEqual(self.post(presigned, extra={"x-ignore-tracker": "1"})[0], 204)

    def test_bucketCondition(self) -> None:
        """A policy for another bucket does not upload to this one."""
        self.createBucket("other")
        presigned = self.presign(key="k", bucket="other")
        presigned["url"] = BASE + "/bucket"
        self.assertDenied(
            self.post(presigned),
            'Invalid according to Policy: Policy Condition failed: ["eq", "$bucket", "other"]',
        )

    def test_expired(self) -> None:
        """An expired policy: AccessDenied "Policy expired."."""
        presigned = self.presign(key="late", expires=60)
        self.server.clock.advance(120)
        self.assertDenied(self.post(presigned), "Invalid according to Policy: Policy expired.")

    def test_badSignature(self) -> None:
        """A signature that does not match the policy: SignatureDoesNotMatch, nothing stored."""
        presigned = self.presign(key="sig")
        presigned["fields"]["x-amz-signature"] = "0" * 64
        document = self.assertPostError(self.post(presigned), 403, "SignatureDoesNotMatch")
        self.assertEqual(document.findtext("StringToSign"), presigned["fields"]["policy"])
        self.assertEqual(self.writersOpened, 0)

    def test_tamperedPolicy(self) -> None:
        """Changing the policy after signing breaks the signature."""
        presigned = self.presign(key="sig")
        fields = presigned["fields"]
        policy = json.loads(base64.b64decode(fields["policy"]))
        policy["conditions"].append(["starts-with", "$x-amz-meta-x", ""])
        fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
        self.assertPostError(self.post(presigned), 403, "SignatureDoesNotMatch")

    def test_unknownAccessKey(self) -> None:
        """An unknown access key: InvalidAccessKeyId."""
        stranger = Credentials("NOSUCHKEY", "secret", "nobody", "nobody")
        self.assertPostError(self.post(self.presign(key="k", creds=stranger)), 403, "InvalidAccessKeyId")

    def test_otherAccountsBucket(self) -> None:
        """Another account's valid policy cannot upload into this bucket."""
        self.assertPostError(self.post(self.presign(key="k", creds=OTHER)), 403, "AccessDenied", "Access Denied")
        self.assertEqual(self.writersOpened, 0)

    def test_missingFields(self) -> None:
        """Missing key or signature fields: InvalidArgument naming them."""
        presigned = self.presign(key="k")
        document = self.assertPostError(
            self.post(presigned, drop=["key"]), 400, "InvalidArgument",
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        )
        self.assertEqual(document.findtext("ArgumentName"), "key")
        document = self.assertPostError(self.post(presigned, drop=["x-amz-signature"]), 400, "InvalidArgument")
        self.assertEqual(document.findtext("ArgumentName"), "X-Amz-Signature")

    def test_noSignatureIsAnonymous(self) -> None:
        """A form with neither SigV4 nor SigV2 fields is anonymous: AccessDenied."""
        presigned = self.presign(key="k")
        result = self.post(presigned, drop=["x-amz-signature", "x-amz-algorithm", "x-amz-credential", "x-amz-date"])
        self.assertPostError(result, 403, "AccessDenied")

    def test_noFile(self) -> None:
        """A form without a file part: InvalidArgument."""
        fields = self.presign(key="k")["fields"]
        body, contentType = encodeForm([(n, v.encode(), None) for n, v in fields.items()])
        document = self.assertPostError(self.send("/bucket", body, contentType), 400, "InvalidArgument",
                                        "POST requires exactly one file upload per request.")
        self.assertEqual(document.findtext("ArgumentName"), "file")

    def test_fileFirst(self) -> None:
        """A file before the key: the key is missing, as on S3."""
        fields = self.presign(key="k")["fields"]
        parts = [("file", b"data", "f")] + [(n, v.encode(), None) for n, v in fields.items()]
        body, contentType = encodeForm(parts)
        self.assertPostError(self.send("/bucket", body, contentType), 400, "InvalidArgument")

    def test_malformedPolicies(self) -> None:
        """Policies that are not policies: InvalidPolicyDocument with S3's messages."""
        cases = [
            ("not json", "Invalid Policy: Invalid JSON."),
            (json.dumps({"conditions": []}), "Invalid Policy: Policy missing expiration."),
            (json.dumps({"expiration": expiresIn(60)}), "Invalid Policy: Policy missing conditions."),
            (json.dumps({"expiration": "2030-01-01 00:00:00", "conditions": []}),
             "Invalid Policy: Invalid 'expiration' value: '2030-01-01 00:00:00'"),
            (json.dumps({"expiration": expiresIn(60), "CONDITIONS": []}), "Invalid Policy: Unexpected: 'conditions'"),
            (json.dumps({"expiration": expiresIn(60), "conditions": [{"a": "1", "b": "2"}]}),
             "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one property specified."),
            (json.dumps({"expiration": expiresIn(60), "conditions": [{"a": 1}]}),
             "Invalid Policy: Invalid Simple-Condition: value must be a string."),
            (json.dumps({"expiration": expiresIn(60), "conditions": [["content-length-range", 0]]}),
             "Invalid Policy: Invalid content-length-range: wrong number of arguments."),
            (json.dumps({"expiration": expiresIn(60), "conditions": [["content-length-range", 0, 512.0]]}),
             "Invalid Policy: Invalid JSON."),
            (json.dumps({"expiration": expiresIn(60), "conditions": [["matches", "$key", "x"]]}),
             "Invalid Policy: Invalid Condition: unknown operation 'matches'."),
        ]
        for policy, message in cases:
            fields = signForm(policy)
            fields["key"] = "k"
            body, contentType = encodeForm([(n, v.encode(), None) for n, v in fields.items()] + [("file", b"x", "f")])
            self.assertPostError(self.send("/bucket", body, contentType), 400, "InvalidPolicyDocument", message)
        self.assertEqual(self.writersOpened, 0)

    def test_caseInsensitiveNames(self) -> None:
        """Field names, condition names and operators are case-insensitive; values are not."""
        policy: Dict[str, Any] = {"expiration": expiresIn(600), "conditions": [
            {"bUcKeT": "bucket"}, ["StArTs-WiTh", "$KeY", "ci/"], ["content-length-range", "0", "100"],
        ]}
        fields = signForm(policy)
        parts = [("Key", b"ci/${filename}", None)] + [(n.upper() if n != "policy" else "Policy", v.encode(), None)
                                                     for n, v in fields.items()]
        body, contentType = encodeForm(parts + [("file", b"ok", "x.txt")])
        status, _, response = self.send("/bucket", body, contentType)
        self.assertEqual(status, 204, response)
        self.assertEqual(self.getObject("ci/x.txt")[2], b"ok")

    def test_notMultipart(self) -> None:
        """A bucket POST that is not multipart/form-data: 412, before the body."""
        status, _, body = self.send("/bucket", b"a=b", "application/x-www-form-urlencoded")
        self.assertEqual(status, 412)
        self.assertEqual(ElementTree.fromstring(body).findtext("Condition"),
                         "Bucket POST must be of the enclosure-type multipart/form-data")

    def test_noSuchBucket(self) -> None:
        """A form to a bucket that does not exist: NoSuchBucket, before the body."""
        presigned = self.presign(key="k", bucket="missing")
        self.assertPostError(self.post(presigned), 404, "NoSuchBucket")

    def test_preDataLimit(self) -> None:
        """More than 20 KiB of fields before the file: MaxPostPreDataLengthExceeded."""
        presigned = self.presign(key="k", fields={"x-amz-meta-big": "x" * 30000},
                                 conditions=[["starts-with", "$x-amz-meta-big", ""]])
        document = self.assertPostError(self.post(presigned), 400, "MaxPostPreDataLengthExceeded")
        self.assertEqual(document.findtext("MaxPostPreDataLengthBytes"), "20480")

    def test_malformedBody(self) -> None:
        """A body that is not well-formed multipart: MalformedPOSTRequest."""
        fields = self.presign(key="k")["fields"]
        body, contentType = encodeForm([(n, v.encode(), None) for n, v in fields.items()] + [("file", b"x", "f")])
        truncated = body[: -len("--formboundary1234--\r\n") - 3]
        self.assertPostError(self.send("/bucket", truncated, contentType), 400, "MalformedPOSTRequest")
        self.assertEqual(self.getObject("k")[0], 404)


class ParsePolicyTests(SynchronousTestCase):
    """L{parsePolicy} on its own."""

    def test_fractionalExpiration(self) -> None:
        """Expirations with milliseconds, as AWS's examples write them."""
        policy = parsePolicy(base64.b64encode(b'{"expiration": "2015-12-30T12:00:00.000Z", "conditions": []}').decode())
        self.assertEqual(policy.expiration, 1451476800.0)

    def test_rendering(self) -> None:
        """Conditions are quoted in messages the way S3 quotes them."""
        text = json.dumps({"expiration": "2030-01-01T00:00:00Z", "conditions": [
            {"acl": "private"}, ["starts-with", "$Key", "a\"b"], ["content-length-range", "x", 10], ["eq", "key", "v"],
        ]})
        conditions = parsePolicy(base64.b64encode(text.encode()).decode()).conditions
        self.assertEqual([c.rendered for c in conditions], [
            '["eq", "$acl", "private"]', '["starts-with", "$Key", "a\\"b"]',
            '["content-length-range", "x", 10]', '["eq", "key", "v"]',
        ])
        self.assertEqual(conditions[1], Condition("starts-with", '["starts-with", "$Key", "a\\"b"]', "key", 'a"b'))
        self.assertEqual([c.op for c in conditions[2:]], ["invalid", "invalid"])

    def test_notBase64(self) -> None:
        """A policy that is not base64 is not JSON either."""
        with self.assertRaises(S3Error) as caught:
            parsePolicy("***")
        self.assertEqual(caught.exception.code, "InvalidPolicyDocument")
