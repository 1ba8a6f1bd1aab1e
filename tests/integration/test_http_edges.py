"""
Raw HTTP edge cases against the real server, with http.client and sockets
and an independent SigV4 signer: addressing quirks, refused input, bad
credentials, broken uploads and a corrupted segment file.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import datetime
import glob
import http.client
import os
import socket
import time
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

from tests.integration.harness import (
    Response,
    ServerTestCase,
    SigV4,
    amzDate,
    canonicalPath,
    childText,
    errorCode,
    findAll,
    localName,
    rawRequest,
    s3Path,
    splitTarget,
    uriEncode,
)

FIVE_GIB = 5 * (1 << 30)


class EdgeCase(ServerTestCase):
    """Helpers for raw requests on the class's shared server."""

    def setUp(self) -> None:
        self.server = self.sharedServer()

    def request(self, method: str, target: str, headers=None, body=None, **kw) -> Response:
        response = rawRequest(self.server, method, target, headers, body, **kw)
        self.assertNotIn(b"Traceback", response.body, "a traceback leaked to the client")
        self.assertNotEqual(response.status, 500, f"{method} {target}: {response!r}")
        return response

    def makeBucket(self) -> str:
        name = self.bucketName()
        response = self.request("PUT", "/" + name)
        self.assertEqual(response.status, 200, response.body)
        return name

    def put(self, target: str, body: bytes, **kw) -> Response:
        response = self.request("PUT", target, body=body, **kw)
        self.assertEqual(response.status, 200, f"PUT {target}: {response!r}")
        return response

    def listKeys(self, bucket: str, prefix: str = "") -> List[str]:
        target = s3Path(bucket) + "?list-type=2"
        if prefix:
            target += "&prefix=" + uriEncode(prefix)
        response = self.request("GET", target)
        self.assertEqual(response.status, 200, response.body)
        root = ET.fromstring(response.body)
        return [childText(c, "Key") or "" for c in findAll(root, "Contents")]

    def assertNoKey(self, bucket: str, key: str) -> None:
        response = self.request("HEAD", s3Path(bucket, key))
        self.assertEqual(response.status, 404, f"{key!r} exists: {response!r}")

    def exchange(
        self,
        head: bytes,
        body: bytes = b"",
        *,
        shutdownWrite: bool = False,
        close: bool = False,
        timeout: float = 15,
        method: str = "PUT",
    ) -> Optional[Tuple[int, Dict[str, str], bytes]]:
        """
        Send raw bytes on a fresh socket and read one response (1xx skipped).

        @param close: close the socket after sending, reading nothing.
        @return: (status, headers, body), or None if the server closed the
            connection without a response.
        """
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)
        try:
            sock.sendall(head + body)
            if close:
                return None
            if shutdownWrite:
                sock.shutdown(socket.SHUT_WR)
            response = http.client.HTTPResponse(sock, method=method)
            try:
                response.begin()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                return None
            try:
                data = response.read()
            except (http.client.IncompleteRead, ConnectionResetError) as e:
                data = getattr(e, "partial", b"")
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            sock.close()

    def signedHead(self, method: str, target: str, headers: Dict[str, str], payload: str = "UNSIGNED-PAYLOAD") -> bytes:
        """A signed request head (request line and headers) as bytes."""
        all = {"host": self.server.host}
        all.update(headers)
        path, query = splitTarget(target)
        self.server.signer().signHeaders(method, canonicalPath(path), query, all, payload)
        lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in all.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def assertHealthy(self) -> None:
        """The server still answers: ready, and a PUT/GET round trip works."""
        self.assertEqual(self.request("GET", "/_fasterstore/health/ready", sign=False).status, 200)
        bucket = self.makeBucket()
        self.put(s3Path(bucket, "after"), b"still fine")
        self.assertEqual(self.request("GET", s3Path(bucket, "after")).body, b"still fine")


class AddressingTests(EdgeCase):
    """Trailing slashes, key encodings, unknown parameters, sub-resources."""

    def test_trailingSlashOnBucket(self) -> None:
        """/bucket/ is the bucket, for PUT, HEAD, GET (list) and DELETE."""
        name = self.bucketName()
        self.assertEqual(self.request("PUT", f"/{name}/").status, 200)
        self.assertEqual(self.request("HEAD", f"/{name}/").status, 200)
        self.assertEqual(self.request("HEAD", f"/{name}").status, 200)
        self.put(s3Path(name, "k"), b"v")
        for target in (f"/{name}/", f"/{name}/?list-type=2", f"/{name}?list-type=2"):
            response = self.request("GET", target)
            self.assertEqual(response.status, 200, (target, response.body))
            root = ET.fromstring(response.body)
            self.assertEqual(localName(root.tag), "ListBucketResult")
            self.assertEqual(childText(root, "Name"), name)
            self.assertEqual([childText(c, "Key") for c in findAll(root, "Contents")], ["k"])
        self.assertEqual(self.request("DELETE", s3Path(name, "k")).status, 204)
        self.assertEqual(self.request("DELETE", f"/{name}/").status, 204)
        self.assertEqual(self.request("HEAD", f"/{name}").status, 404)

    def _getEitherSigning(self, target: str) -> Response:
        """
        GET a raw target, signing its canonical URI either as sent or
        re-encoded from the decoded key (the spec is ambiguous for a raw '+').
        """
        path, _ = splitTarget(target)
        response = self.request("GET", target, signPath=path)
        if response.status == 403 and errorCode(response.body) == "SignatureDoesNotMatch":
            response = self.request("GET", target, signPath=canonicalPath(path))
        return response

    def test_keyEncodings(self) -> None:
        """Keys are percent-decoded from the raw URI once: + stays +, %2B is +, // is kept."""
        bucket = self.makeBucket()
        cases = [
            ("a%2Bb", "a+b"),
            ("sp%20ace", "sp ace"),
            ("%C3%A9t%C3%A9/%E2%98%83", "été/☃"),
            ("x//y///z", "x//y///z"),
            ("slash%2Fencoded", "slash/encoded"),
            ("/lead", "/lead"),
            ("pct%2525", "pct%25"),
        ]
        for i, (raw, key) in enumerate(cases):
            self.put(f"/{bucket}/{raw}", f"body{i}".encode())
        self.assertEqual(self.listKeys(bucket), sorted((k for _, k in cases), key=lambda k: k.encode()))
        for i, (raw, key) in enumerate(cases):
            response = self.request("GET", s3Path(bucket, key))
            self.assertEqual(response.status, 200, key)
            self.assertEqual(response.body, f"body{i}".encode(), key)
        # A raw '+' in the path is a plus, not a space.
        response = self._getEitherSigning(f"/{bucket}/a+b")
        self.assertEqual((response.status, response.body), (200, b"body0"))
        self.assertEqual(self.request("GET", s3Path(bucket, "a b")).status, 404)
        # Runs of slashes are not collapsed.
        self.assertEqual(self.request("GET", f"/{bucket}/x/y/z").status, 404)
        self.assertEqual(self.request("GET", f"/{bucket}/lead").status, 404)

    def test_unknownQueryParametersIgnored(self) -> None:
        """Unknown query parameters change nothing."""
        bucket = self.makeBucket()
        self.put(s3Path(bucket, "k") + "?x-id=PutObject&unknown=1", b"value")
        response = self.request("GET", s3Path(bucket, "k") + "?foo=bar&x-id=GetObject&flag")
        self.assertEqual((response.status, response.body), (200, b"value"))
        self.assertEqual(self.request("HEAD", s3Path(bucket, "k") + "?whatever=1").status, 200)
        response = self.request("GET", s3Path(bucket) + "?foo=1&bar")
        self.assertEqual(response.status, 200, response.body)
        root = ET.fromstring(response.body)
        self.assertEqual(localName(root.tag), "ListBucketResult")
        self.assertEqual([childText(c, "Key") for c in findAll(root, "Contents")], ["k"])
        response = self.request("GET", "/?unknown=yes")
        self.assertEqual(response.status, 200)
        self.assertEqual(localName(ET.fromstring(response.body).tag), "ListAllMyBucketsResult")

    #: Query parameters that name an S3 sub-resource (AWS API reference).
    SUBRESOURCES = (
        "accelerate acl analytics attributes cors delete encryption intelligent-tiering inventory "
        "legal-hold lifecycle logging metrics notification object-lock ownershipControls policy "
        "policyStatus publicAccessBlock replication requestPayment restore retention select "
        "tagging torrent versioning versions website"
    ).split()

    def test_unimplementedSubresources(self) -> None:
        """
        Sub-resources not built yet answer a well-formed 501 NotImplemented.
        (Ones far from the roadmap, so this stays true as features land.)
        """
        bucket = self.makeBucket()
        self.put(s3Path(bucket, "k"), b"v")
        cases = [
            ("GET", s3Path(bucket, "k") + "?torrent", None),
            ("POST", s3Path(bucket, "k") + "?restore", b"<RestoreRequest><Days>1</Days></RestoreRequest>"),
            ("POST", s3Path(bucket, "k") + "?select&select-type=2", b"<SelectObjectContentRequest/>"),
        ]
        for method, target, body in cases:
            response = self.request(method, target, body=body)
            self.assertS3Error(response, 501, "NotImplemented")
        self.assertEqual(self.request("GET", s3Path(bucket, "k")).body, b"v")

    def test_subresourcesNeverMisrouted(self) -> None:
        """
        Every sub-resource, with every method, on a bucket and on an object,
        gets its own operation or 501 NotImplemented: never a 500, and never
        the plain operation (GetObject, ListObjects, CreateBucket,
        PutObject, DeleteObject, DeleteBucket) by mistake.
        """
        bucket = self.makeBucket()
        empty = self.makeBucket()
        self.put(s3Path(bucket, "k"), b"v")
        problems = []
        for sub in self.SUBRESOURCES:
            for method in ("GET", "PUT", "POST", "DELETE"):
                body = b"<Unrelated/>" if method in ("PUT", "POST") else None
                for target, level in ((s3Path(empty) + "?" + sub, "bucket"), (s3Path(bucket, "k") + "?" + sub, "object")):
                    response = self.request(method, target, body=body)
                    where = f"{method} {level}?{sub}: {response.status} {response.body[:200]!r}"
                    if response.status >= 500 and response.status != 501:
                        problems.append("server error: " + where)
                    if response.status == 501 and errorCode(response.body) != "NotImplemented":
                        problems.append("501 without NotImplemented: " + where)
                    if method == "GET" and level == "object" and response.status == 200 and response.body == b"v":
                        problems.append("served as GetObject: " + where)
                    if method == "GET" and level == "bucket" and b"<ListBucketResult" in response.body:
                        problems.append("served as ListObjects: " + where)
                    if method == "PUT" and level == "bucket" and (
                        errorCode(response.body) == "BucketAlreadyOwnedByYou" or "location" in response.headers
                    ):
                        problems.append("served as CreateBucket: " + where)
        # No side effect of a plain operation: the object and both buckets are intact.
        if self.request("GET", s3Path(bucket, "k")).body != b"v":
            problems.append("the object was overwritten or deleted by a sub-resource request")
        if self.request("HEAD", s3Path(empty)).status != 200:
            problems.append("the empty bucket was deleted by a sub-resource request")
        if self.listKeys(bucket) != ["k"]:
            problems.append(f"the bucket now lists {self.listKeys(bucket)}, not ['k']")
        self.assertEqual(problems, [], "\n".join(problems))


class RefusedInputTests(EdgeCase):
    """Bad input gets a clear S3 error and changes nothing."""

    def test_missingContentLength(self) -> None:
        """A PUT with neither Content-Length nor chunked encoding: 411 MissingContentLength."""
        bucket = self.makeBucket()
        response = self.request("PUT", s3Path(bucket, "k"))
        self.assertS3Error(response, 411, "MissingContentLength")
        self.assertNoKey(bucket, "k")

    def test_entityTooLarge(self) -> None:
        """A single PUT declaring more than 5 GiB is refused before any body byte."""
        bucket = self.makeBucket()
        for extra in ({}, {"expect": "100-continue"}):
            headers = {"content-length": str(FIVE_GIB + 1)}
            headers.update(extra)
            started = time.monotonic()
            result = self.exchange(self.signedHead("PUT", s3Path(bucket, "huge"), headers), timeout=10)
            self.assertIsNotNone(result, "connection closed without an answer")
            status, _, body = result  # type: ignore[misc]
            self.assertEqual(status, 400, body)
            self.assertEqual(errorCode(body), "EntityTooLarge", body)
            self.assertLess(time.monotonic() - started, 10)
        # Streaming form: the decoded length is what counts.
        headers = {
            "content-length": "100",
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(FIVE_GIB + 1),
        }
        result = self.exchange(
            self.signedHead("PUT", s3Path(bucket, "huge"), headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), timeout=10
        )
        self.assertIsNotNone(result)
        self.assertEqual(errorCode(result[2]), "EntityTooLarge", result)  # type: ignore[index]
        self.assertNoKey(bucket, "huge")

    def test_keyTooLong(self) -> None:
        """Keys are limited to 1024 bytes of UTF-8, not characters."""
        bucket = self.makeBucket()
        self.put(s3Path(bucket, "k" * 1024), b"ok")
        self.put(s3Path(bucket, "é" * 512), b"ok")
        for key in ("k" * 1025, "é" * 513):
            response = self.request("PUT", s3Path(bucket, key), body=b"no")
            self.assertS3Error(response, 400, "KeyTooLongError")
            self.assertNotIn(key, self.listKeys(bucket))
        response = self.request("GET", s3Path(bucket, "k" * 1025))
        self.assertIn(response.status, (400, 404))

    def test_invalidBucketNames(self) -> None:
        """AWS bucket-name rules: every bad name is InvalidBucketName and nothing is created."""
        bad = [
            "ab",
            "a" * 64,
            "UpperCase",
            "under_score",
            "-leading",
            "trailing-",
            "192.168.5.4",
            "double..dot",
            "xn--punycode",
            "sthree-prefix",
            "name-s3alias",
            "name--ol-s3",
            ".leadingdot",
        ]
        for name in bad:
            response = self.request("PUT", "/" + name)
            self.assertS3Error(response, 400, "InvalidBucketName")
        listing = self.request("GET", "/").body.decode()
        for name in bad:
            self.assertNotIn(f"<Name>{name}</Name>", listing)
        for good in ("abc", "a" * 63, "a.b-c.d1"):
            self.assertEqual(self.request("PUT", "/" + good).status, 200, good)
            self.assertEqual(self.request("DELETE", "/" + good).status, 204, good)

    def test_malformedXML(self) -> None:
        """A broken CreateBucketConfiguration is MalformedXML and creates nothing."""
        bodies = [
            b"<CreateBucketConfiguration><LocationConstraint>",
            b"this is not xml",
            b"<CreateBucketConfiguration xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
            b"<LocationConstraint>us-east-1</LocationConstraint></Wrong>",
        ]
        for body in bodies:
            name = self.bucketName()
            response = self.request("PUT", "/" + name, body=body)
            self.assertS3Error(response, 400, "MalformedXML")
            self.assertEqual(self.request("HEAD", "/" + name).status, 404)
        # Entity expansion is refused, promptly, by a hardened parser.
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + b"".join(
                f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">'.encode() for i in range(1, 9)
            )
            + b"]><CreateBucketConfiguration><LocationConstraint>&lol8;</LocationConstraint></CreateBucketConfiguration>"
        )
        name = self.bucketName()
        started = time.monotonic()
        response = self.request("PUT", "/" + name, body=bomb)
        self.assertEqual(response.status, 400, response.body)
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(self.request("HEAD", "/" + name).status, 404)

    def test_badRange(self) -> None:
        """Unsatisfiable ranges are 416; unparseable Range headers are ignored."""
        bucket = self.makeBucket()
        data = b"0123456789"
        self.put(s3Path(bucket, "r"), data)
        for header in ("bytes=10-", "bytes=20-30"):
            response = self.request("GET", s3Path(bucket, "r"), {"range": header})
            self.assertS3Error(response, 416, "InvalidRange")
            self.assertEqual(response.headers.get("content-range"), "bytes */10")
        for header in ("bytes=abc", "items=0-1", "bytes=", "bytes=--1"):
            response = self.request("GET", s3Path(bucket, "r"), {"range": header})
            self.assertEqual((response.status, response.body), (200, data), header)

    def test_badDatesIgnored(self) -> None:
        """Unparseable conditional dates are ignored, as RFC 7232 says."""
        bucket = self.makeBucket()
        self.put(s3Path(bucket, "d"), b"dated")
        for name in ("if-modified-since", "if-unmodified-since"):
            for value in ("garbage", "Mon, 99 Foo 2020 99:99:99 GMT", ""):
                response = self.request("GET", s3Path(bucket, "d"), {name: value})
                self.assertEqual((response.status, response.body), (200, b"dated"), (name, value))
                self.assertEqual(self.request("HEAD", s3Path(bucket, "d"), {name: value}).status, 200)
        # A bad Expires on PUT does not break the upload.
        self.put(s3Path(bucket, "e"), b"x", headers={"expires": "not a date"})
        self.assertEqual(self.request("GET", s3Path(bucket, "e")).body, b"x")


class BrokenUploadTests(EdgeCase):
    """Short bodies and vanished clients leave no object and a healthy server."""

    def _waitAbsent(self, bucket: str, key: str, seconds: float = 2.0) -> None:
        """Watch for C{seconds}: the key never becomes visible."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.assertNoKey(bucket, key)
            self.assertNotIn(key, self.listKeys(bucket))

    def test_bodyShorterThanDeclared(self) -> None:
        """Half the declared bytes, then end of input: an error or a close, never an object."""
        bucket = self.makeBucket()
        body = os.urandom(200_000)
        head = self.signedHead("PUT", s3Path(bucket, "short"), {"content-length": str(len(body) * 2)})
        result = self.exchange(head, body, shutdownWrite=True, timeout=30)
        if result is not None:
            status, _, data = result
            self.assertGreaterEqual(status, 400, data)
            self.assertLess(status, 500, data)
        self._waitAbsent(bucket, "short")
        self.assertHealthy()

    def test_clientDisconnectMidUpload(self) -> None:
        """The client vanishes mid-upload: no object, server unaffected."""
        bucket = self.makeBucket()
        for size in (300_000, 5_000_000):
            key = f"gone-{size}"
            head = self.signedHead("PUT", s3Path(bucket, key), {"content-length": str(size * 4)})
            self.exchange(head, os.urandom(size), close=True)
            self._waitAbsent(bucket, key, 1.0)
        # Signed streaming upload cut between chunks.
        signer = self.server.signer()
        now = datetime.datetime.now(datetime.timezone.utc)
        data = os.urandom(300_000)
        length = len(signer.signedChunkedBody(amzDate(now), "0" * 64, data))
        headers = {
            "host": self.server.host,
            "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(data)),
            "content-length": str(length),
        }
        seed = signer.signHeaders("PUT", s3Path(bucket, "gone-chunked"), [], headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", now=now)
        body = signer.signedChunkedBody(amzDate(now), seed, data)
        lines = [f"PUT {s3Path(bucket, 'gone-chunked')} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
        self.exchange(("\r\n".join(lines) + "\r\n\r\n").encode(), body[: len(body) // 2], close=True)
        self._waitAbsent(bucket, "gone-chunked", 1.0)
        self.assertHealthy()


class AuthTests(EdgeCase):
    """Wrong credentials, skew, payload hashes and presigned URL limits."""

    def test_wrongCredentials(self) -> None:
        """Unknown key, wrong secret, no auth, malformed auth: refused, nothing stored."""
        bucket = self.makeBucket()
        self.put(s3Path(bucket, "k"), b"secret")
        unknown = SigV4("AKIDONTKNOWTHISKEY00", self.server.secretKey, self.server.region)
        wrongSecret = SigV4(self.server.accessKey, "not-the-secret", self.server.region)
        wrongRegion = SigV4(self.server.accessKey, self.server.secretKey, "eu-west-3")
        for method, target, body in (("GET", s3Path(bucket, "k"), None), ("PUT", s3Path(bucket, "new"), b"x"), ("GET", "/", None)):
            self.assertS3Error(self.request(method, target, body=body, signer=unknown), 403, "InvalidAccessKeyId")
            self.assertS3Error(self.request(method, target, body=body, signer=wrongSecret), 403, "SignatureDoesNotMatch")
            self.assertS3Error(self.request(method, target, body=body, sign=False), 403, "AccessDenied")
            self.assertS3Error(
                self.request(method, target, body=body, signer=wrongRegion), 400, "AuthorizationHeaderMalformed"
            )
            self.assertS3Error(
                self.request(method, target, body=body, sign=False, headers={"authorization": "AWS4-HMAC-SHA256 Credential=junk"}),
                400,
                ("AuthorizationHeaderMalformed", "InvalidArgument"),
            )
        self.assertNoKey(bucket, "new")

    def test_payloadHashMismatch(self) -> None:
        """A body that does not match its signed SHA-256 stores nothing."""
        bucket = self.makeBucket()
        response = self.request(
            "PUT", s3Path(bucket, "k"), body=b"actual", payloadHash="a" * 64
        )
        self.assertS3Error(response, 400, "XAmzContentSHA256Mismatch")
        self.assertNoKey(bucket, "k")

    def test_clockSkew(self) -> None:
        """A header-signed request an hour old is RequestTimeTooSkewed."""
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        response = self.request("GET", "/", now=old)
        self.assertS3Error(response, 403, "RequestTimeTooSkewed")

    def _presigned(self, target: str, expires: int, now: datetime.datetime, method: str = "GET") -> str:
        path, query = splitTarget(target)
        full = self.server.signer().presign(method, self.server.host, canonicalPath(path), expires, query, now=now)
        return path + "?" + "&".join(f"{uriEncode(k)}={uriEncode(v)}" for k, v in full)

    def test_presignedExpiry(self) -> None:
        """A valid presigned URL works; an expired one is AccessDenied; over 7 days is refused."""
        bucket = self.makeBucket()
        self.put(s3Path(bucket, "k"), b"presigned")
        now = datetime.datetime.now(datetime.timezone.utc)
        response = self.request("GET", self._presigned(s3Path(bucket, "k"), 300, now), sign=False)
        self.assertEqual((response.status, response.body), (200, b"presigned"))
        expired = self._presigned(s3Path(bucket, "k"), 60, now - datetime.timedelta(hours=2))
        self.assertS3Error(self.request("GET", expired, sign=False), 403, "AccessDenied")
        tooLong = self._presigned(s3Path(bucket, "k"), 604801, now)
        self.assertS3Error(self.request("GET", tooLong, sign=False), 400, "AuthorizationQueryParametersError")
        week = self._presigned(s3Path(bucket, "k"), 604800, now)
        self.assertEqual(self.request("GET", week, sign=False).status, 200)
        # A presigned PUT that has expired stores nothing.
        expiredPut = self._presigned(s3Path(bucket, "p"), 60, now - datetime.timedelta(hours=2), "PUT")
        self.assertS3Error(self.request("PUT", expiredPut, body=b"x", sign=False), 403, "AccessDenied")
        self.assertNoKey(bucket, "p")


class ReservedPathTests(EdgeCase):
    """The /_fasterstore/ endpoints."""

    def test_healthAndMetrics(self) -> None:
        """Health answers 200, metrics are Prometheus text, unknown reserved paths are not 500."""
        for path in ("/_fasterstore/health/live", "/_fasterstore/health/ready"):
            self.assertEqual(self.request("GET", path, sign=False).status, 200, path)
        metrics = self.request("GET", "/_fasterstore/metrics", sign=False)
        self.assertEqual(metrics.status, 200)
        self.assertIn(b"# TYPE", metrics.body)
        self.assertIn("text/plain", metrics.headers.get("content-type", ""))
        response = self.request("GET", "/_fasterstore/no-such-thing", sign=False)
        self.assertIn(response.status, (403, 404))


class CorruptionTests(ServerTestCase):
    """A flipped byte in a segment file is detected on read, never served."""

    def _flip(self, dataDir: str, sample: bytes) -> Tuple[str, int]:
        """Flip one byte of the first segment containing C{sample}, inside it."""
        segments = sorted(glob.glob(os.path.join(dataDir, "**", "*.seg"), recursive=True))
        self.assertTrue(segments, f"no segment files under {dataDir}")
        for path in segments:
            with open(path, "rb") as f:
                content = f.read()
            where = content.find(sample)
            if where >= 0:
                offset = where + len(sample) // 2
                break
        else:
            # Stored transformed (encrypted/compressed)? Flip the middle of the largest file.
            path = max(segments, key=os.path.getsize)
            offset = os.path.getsize(path) // 2
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0xFF]))
            f.flush()
            os.fsync(f.fileno())
        return path, offset

    def _get(self, server, target: str, headers=None) -> Tuple[Optional[int], bytes, str]:
        """GET, tolerating a connection cut mid-body: (status, bytes, problem)."""
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            all = {"host": server.host}
            all.update(headers or {})
            path, query = splitTarget(target)
            server.signer().signHeaders("GET", canonicalPath(path), query, all, "UNSIGNED-PAYLOAD")
            conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
            for k, v in all.items():
                conn.putheader(k, v)
            conn.endheaders()
            response = conn.getresponse()
            try:
                return response.status, response.read(), ""
            except (http.client.IncompleteRead, ConnectionError) as e:
                return response.status, getattr(e, "partial", b""), repr(e)
        except (http.client.HTTPException, ConnectionError) as e:
            return None, b"", repr(e)
        finally:
            conn.close()

    def test_corruptedByteDetected(self) -> None:
        """Whole and ranged reads over the bad byte fail; reads elsewhere still work."""
        server = self.privateServer()
        bucket = self.bucketName()
        self.assertEqual(rawRequest(server, "PUT", "/" + bucket).status, 200)
        data = os.urandom(3 << 20)
        other = os.urandom(100_000)
        self.assertEqual(rawRequest(server, "PUT", s3Path(bucket, "victim"), body=data).status, 200)
        self.assertEqual(rawRequest(server, "PUT", s3Path(bucket, "bystander"), body=other).status, 200)
        middle = len(data) // 2
        sample = data[middle - 32 : middle + 32]
        path, offset = self._flip(server.dataDir, sample)
        for headers in ({}, {"range": f"bytes={middle - 10}-{middle + 10}"}, {"range": f"bytes={middle - 100000}-"}):
            status, body, problem = self._get(server, s3Path(bucket, "victim"), headers)
            if headers:
                first = int(headers["range"][6:].split("-")[0])
                expected = data[first : (int(headers["range"].split("-")[1]) + 1) if headers["range"].split("-")[1] else None]
            else:
                expected = data
            self.assertFalse(
                status in (200, 206) and not problem and len(body) == len(expected) and body != expected,
                f"corrupted bytes served as good data ({headers}, flipped {path}@{offset})",
            )
            self.assertFalse(
                status in (200, 206) and not problem and body == expected,
                f"read over the flipped byte succeeded: corruption not detected ({headers}, {path}@{offset})",
            )
            if status is not None and status >= 400:
                self.assertEqual(status, 500, body)
                self.assertIn(errorCode(body), ("InternalError",), body)
        # Bytes far from the damage, and other objects, still read fine.
        status, body, problem = self._get(server, s3Path(bucket, "victim"), {"range": "bytes=0-999"})
        self.assertEqual((status, body, problem), (206, data[:1000], ""))
        self.assertEqual(rawRequest(server, "GET", s3Path(bucket, "bystander")).body, other)
        self.assertEqual(rawRequest(server, "GET", "/_fasterstore/health/ready", sign=False).status, 200)
        self.assertTrue(server.running())
        # It was logged, and counted in a metric whose name says so.
        logged = [
            line for line in server.logSinceStart().splitlines()
            if "corrupt" in line.lower() and not line.startswith("=== harness")
        ]
        self.assertTrue(logged, "no log line mentions the corruption")
        metrics = rawRequest(server, "GET", "/_fasterstore/metrics", sign=False).body.decode()
        counted = [
            line for line in metrics.splitlines()
            if not line.startswith("#") and "corrupt" in line.split(" ")[0].lower() and float(line.rsplit(" ", 1)[1]) >= 1
        ]
        self.assertTrue(counted, "no metric counts the corrupt read")


class AbandonedDownloadTests(ServerTestCase):
    """Clients that hang up in the middle of a GET leave no error behind."""

    def test_hangUpMidBody(self) -> None:
        """
        Five clients read 10 bytes of an 8 MiB object and close: the server
        logs no error (twisted.web once reported the producer as never
        unregistered) and keeps serving the object whole.
        """
        server = self.privateServer()
        s3 = server.client()
        bucket = self.bucketName("abandon")
        s3.create_bucket(Bucket=bucket)
        body = os.urandom(8 << 20)
        s3.put_object(Bucket=bucket, Key="big", Body=body)
        url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"}, ExpiresIn=600)
        path = url.split(str(server.port), 1)[1]
        for _ in range(5):
            connection = socket.create_connection(("127.0.0.1", server.port))
            connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
            self.assertTrue(connection.recv(10))
            connection.close()
        # The hang-ups are seen by the server before this request is answered.
        self.assertEqual(s3.get_object(Bucket=bucket, Key="big")["Body"].read(), body)
        log = server.logSinceStart()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Producer was not unregistered", log)
