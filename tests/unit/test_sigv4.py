"""
Tests for L{fasterstore.auth.sigv4}, L{fasterstore.auth.sigv2} and L{fasterstore.auth.admission}.

Requests are signed with botocore's own signers wherever botocore can
produce the form, so what is tested is compatibility with a real client,
not agreement of this module with itself.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
from email.utils import formatdate
from typing import Dict, List, Mapping, Optional, Sequence
from urllib.parse import parse_qsl, quote, urlsplit

import attrs
import botocore.auth
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.utils import percent_encode, percent_encode_sequence
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.auth.admission import authenticate
from fasterstore.auth.canonical import canonicalQuery, canonicalURI, RequestHead, uriEncode
from fasterstore.auth.identity import Authenticated, Credentials
from fasterstore.auth.payload import EMPTY_SHA256, parsePayloadMode, PayloadMode
from fasterstore.auth.sigv4 import formatAmzDate, parseAmzDate, parseHTTPDate, presignV4, signingKey

NOW = 1700000000.0  # 2023-11-14T22:13:20Z
REGION = "us-east-1"
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "owner-id", "owner")
BOTO = BotoCredentials(CREDENTIALS.accessKey, CREDENTIALS.secretKey)

KEYS = [
    "plain.txt",
    "with space/and+plus=eq",
    "unicode/é€漢字🙂",
    "double//slash///runs/",
    "special!*'()&$@;:,?#[]~%^`{}|\\\"<>",
    ".hidden/../dots/./x",
]
QUERIES = [
    "",
    "tagging",
    "versionId=3%2F4%2B5%20x",
    "prefix=a%2Fb%20c&delimiter=%2F&max-keys=10",
    "uploadId=abc&partNumber=3",
    "response-content-type=text%2Fplain%3B%20charset%3Dutf-8",
    "x=%E2%82%AC&y&z=",
]


def lookup(accessKey: str) -> Optional[Credentials]:
    """The server's one known key."""
    return CREDENTIALS if accessKey == CREDENTIALS.accessKey else None


def fixedNow(*args: object, **kwargs: object) -> datetime.datetime:
    """botocore's clock, stopped at L{NOW}."""
    return datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc).replace(tzinfo=None)


def url(key: str, query: str = "", host: str = "localhost:9000", bucket: Optional[str] = "bucket") -> str:
    """A path-style URL encoded the way botocore encodes keys."""
    path = ("/" + bucket if bucket else "") + "/" + percent_encode(key, safe="/~")
    return f"http://{host}{path}" + (f"?{query}" if query else "")


def headOf(request: AWSRequest, virtualBucket: Optional[str] = None) -> RequestHead:
    """What the server would see of a signed botocore request."""
    prepared = request.prepare()
    rest = prepared.url.split("://", 1)[1]
    target = rest[rest.index("/") :] if "/" in rest else "/"
    rawPath, _, rawQuery = target.partition("?")
    headers: Dict[str, List[str]] = {}
    for name, value in prepared.headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        headers.setdefault(name.lower(), []).append(text)
    headers.setdefault("host", [botocore.auth._host_from_url(prepared.url)])
    return RequestHead(prepared.method, rawPath.encode("latin-1"), rawQuery.encode("latin-1"), headers, virtualBucket)


def replaceHeaders(head: RequestHead, **changes: Optional[str]) -> RequestHead:
    """A copy of C{head} with headers changed (C{None} removes one); C{_} in names becomes C{-}."""
    headers: Dict[str, Sequence[str]] = dict(head.headers)
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = [value]
    return RequestHead(head.method, head.rawPath, head.rawQuery, headers, head.virtualBucket)


def withPath(head: RequestHead, rawPath: bytes) -> RequestHead:
    """A copy of C{head} with another raw path."""
    return RequestHead(head.method, rawPath, head.rawQuery, head.headers, head.virtualBucket)


def withQuery(head: RequestHead, rawQuery: bytes) -> RequestHead:
    """A copy of C{head} with another raw query."""
    return RequestHead(head.method, head.rawPath, rawQuery, head.headers, head.virtualBucket)


def flipLast(data: bytes) -> bytes:
    """C{data} with its last byte replaced by another printable one."""
    return data[:-1] + (b"Q" if data[-1:] != b"Q" else b"R")


class BotocoreTestCase(SynchronousTestCase):
    """Signs with botocore at L{NOW}."""

    def setUp(self) -> None:
        """Stop botocore's clock."""
        self.patch(botocore.auth, "get_current_datetime", fixedNow)

    def assertS3Error(self, code: str, head: RequestHead, now: float = NOW, region: str = REGION) -> S3Error:
        """authenticate() refuses C{head} with C{code}."""
        error = self.assertRaises(S3Error, authenticate, head, lookup, region, now)
        self.assertEqual(error.code, code, error.message)
        return error

    def assertAuthenticated(self, head: RequestHead, now: float = NOW) -> Authenticated:
        """authenticate() accepts C{head} as L{CREDENTIALS}."""
        result = authenticate(head, lookup, REGION, now)
        assert result is not None
        self.assertEqual(result.credentials, CREDENTIALS)
        return result

    def signV4(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: Optional[Mapping[str, str]] = None,
        region: str = REGION,
        unsignedPayload: bool = False,
    ) -> RequestHead:
        """A request signed with botocore's C{S3SigV4Auth}."""
        request = AWSRequest(method, target, data=body, headers=dict(headers or {}))
        if unsignedPayload:
            request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        S3SigV4Auth(BOTO, "s3", region).add_auth(request)
        return headOf(request)

    def presignV4(
        self, target: str, expires: int = 3600, headers: Optional[Mapping[str, str]] = None, region: str = REGION
    ) -> RequestHead:
        """A GET presigned with botocore's C{S3SigV4QueryAuth}."""
        request = AWSRequest("GET", target, headers=dict(headers or {}))
        S3SigV4QueryAuth(BOTO, "s3", region, expires=expires).add_auth(request)
        return headOf(request)


class FixedV1Auth(HmacV1Auth):
    """botocore's SigV2 header signer with its clock stopped at L{NOW}."""

    def _get_date(self) -> str:
        return formatdate(NOW, usegmt=True)


class FixedV1QueryAuth(HmacV1QueryAuth):
    """botocore's SigV2 presigner with its clock stopped at L{NOW}."""

    def _get_date(self) -> str:
        return str(int(NOW + int(self._expires)))


# --------------------------------------------------------------- SigV4 header


class HeaderV4Tests(BotocoreTestCase):
    """SigV4 in the Authorization header."""

    def test_documentationExample(self) -> None:
        """The S3 documentation's GET Object example (a fixed vector)."""
        head = RequestHead(
            "GET",
            b"/test.txt",
            b"",
            {
                "host": ["examplebucket.s3.amazonaws.com"],
                "range": ["bytes=0-9"],
                "x-amz-content-sha256": [EMPTY_SHA256],
                "x-amz-date": ["20130524T000000Z"],
                "authorization": [
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
                ],
            },
        )
        example = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "o", "d")
        now = parseAmzDate("20130524T000000Z")
        result = authenticate(head, {example.accessKey: example}.get, "us-east-1", now)
        assert result is not None
        self.assertEqual((result.payload, result.payloadSHA256), (PayloadMode.SIGNED, EMPTY_SHA256))
        changed = replaceHeaders(head, range="bytes=0-8")
        error = self.assertRaises(S3Error, authenticate, changed, {example.accessKey: example}.get, "us-east-1", now)
        self.assertEqual(error.code, "SignatureDoesNotMatch")

    def test_keysAndQueries(self) -> None:
        """Every awkward key with every query, signed by botocore, is accepted."""
        for key in KEYS:
            for query in QUERIES:
                body = b"some data"
                head = self.signV4("PUT", url(key, query), body, {"x-amz-meta-Note": "  two   spaces ", "Content-Type": "text/plain"})
                result = self.assertAuthenticated(head)
                self.assertEqual(result.payload, PayloadMode.SIGNED)
                self.assertEqual(result.payloadSHA256, hashlib.sha256(body).hexdigest())
                self.assertFalse(result.presigned)
                self.assertIsNone(result.chunkSigner)

    def test_oneByteChanges(self) -> None:
        """One byte more or less in the path, query, a header or the secret breaks the signature."""
        for key in KEYS:
            for query in QUERIES[:4]:
                head = self.signV4("PUT", url(key, query), b"x", {"x-amz-meta-note": "value"})
                self.assertAuthenticated(head)
                self.assertS3Error("SignatureDoesNotMatch", withPath(head, flipLast(head.rawPath)))
                self.assertS3Error("SignatureDoesNotMatch", withQuery(head, flipLast(head.rawQuery) if head.rawQuery else b"a"))
                self.assertS3Error("SignatureDoesNotMatch", replaceHeaders(head, x_amz_meta_note="valuf"))
                self.assertS3Error("SignatureDoesNotMatch", replaceHeaders(head, host="localhost:9001"))
                other = Credentials(CREDENTIALS.accessKey, flipLast(CREDENTIALS.secretKey.encode()).decode(), "o", "d")
                error = self.assertRaises(S3Error, authenticate, head, lambda k: other, REGION, NOW)
                self.assertEqual(error.code, "SignatureDoesNotMatch")

    def test_methodIsSigned(self) -> None:
        """A PUT signature does not authorize a DELETE."""
        head = self.signV4("PUT", url("k"))
        self.assertS3Error("SignatureDoesNotMatch", RequestHead("DELETE", head.rawPath, head.rawQuery, head.headers))

    def test_signatureMismatchDetails(self) -> None:
        """SignatureDoesNotMatch carries the canonical request to help debug clients."""
        head = self.signV4("GET", url("k"))
        error = self.assertS3Error("SignatureDoesNotMatch", withPath(head, b"/bucket/j"))
        self.assertIn("/bucket/j\n", error.extra["CanonicalRequest"])
        self.assertTrue(error.extra["StringToSign"].startswith("AWS4-HMAC-SHA256\n"))
        self.assertEqual(error.extra["AWSAccessKeyId"], CREDENTIALS.accessKey)

    def test_virtualHosted(self) -> None:
        """A virtual-hosted request signs its own Host and path."""
        head = self.signV4("GET", url("a b", bucket=None, host="bucket.localhost:9000"))
        self.assertAuthenticated(head)

    def test_unsignedPayload(self) -> None:
        """UNSIGNED-PAYLOAD: no digest to check."""
        head = self.signV4("PUT", "https://localhost/bucket/k", b"data", unsignedPayload=True)
        self.assertEqual(head.headers["x-amz-content-sha256"], ["UNSIGNED-PAYLOAD"])
        result = self.assertAuthenticated(head)
        self.assertEqual((result.payload, result.payloadSHA256), (PayloadMode.UNSIGNED, None))

    def test_streamingUnsignedTrailer(self) -> None:
        """botocore's trailer-checksum uploads: STREAMING-UNSIGNED-PAYLOAD-TRAILER."""
        request = AWSRequest("PUT", url("k"), data=b"", headers={"Content-Encoding": "aws-chunked"})
        request.context["checksum"] = {"request_algorithm": {"in": "trailer", "name": "x-amz-checksum-crc32"}}
        S3SigV4Auth(BOTO, "s3", REGION).add_auth(request)
        result = self.assertAuthenticated(headOf(request))
        self.assertEqual(result.payload, PayloadMode.STREAMING_UNSIGNED_TRAILER)
        self.assertIsNone(result.chunkSigner)

    def test_streamingSigned(self) -> None:
        """
        The streaming modes are read from x-amz-content-sha256 alone, and
        the signed ones get a L{ChunkSigner} seeded with the request's
        signature.
        """
        for mode in [PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER]:
            request = AWSRequest("PUT", url("k"), headers={"X-Amz-Content-SHA256": mode.value})
            SigV4Auth(BOTO, "s3", REGION).add_auth(request)
            head = headOf(request)
            result = self.assertAuthenticated(head)
            self.assertEqual(result.payload, mode)
            signer = result.chunkSigner
            assert signer is not None
            self.assertEqual(signer.seedSignature, head.headers["authorization"][0].rsplit("=", 1)[1])
            self.assertEqual(signer.timestamp, "20231114T221320Z")
            self.assertEqual(signer.scope, "20231114/us-east-1/s3/aws4_request")
            self.assertEqual(signer.signingKey, signingKey(CREDENTIALS.secretKey, "20231114", REGION))

    def test_streamingDocumentationSeed(self) -> None:
        """The S3 documentation's chunked-upload examples give their seed signatures."""
        example = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "o", "d")
        headers = {
            "host": ["s3.amazonaws.com"],
            "x-amz-date": ["20130524T000000Z"],
            "x-amz-storage-class": ["REDUCED_REDUNDANCY"],
            "x-amz-content-sha256": ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD"],
            "content-encoding": ["aws-chunked"],
            "x-amz-decoded-content-length": ["66560"],
            "content-length": ["66824"],
            "authorization": [
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                "x-amz-decoded-content-length;x-amz-storage-class,"
                "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
            ],
        }
        head = RequestHead("PUT", b"/examplebucket/chunkObject.txt", b"", headers)
        now = parseAmzDate("20130524T000000Z")
        result = authenticate(head, {example.accessKey: example}.get, "us-east-1", now)
        assert result is not None and result.chunkSigner is not None
        self.assertEqual(result.payload, PayloadMode.STREAMING_SIGNED)
        self.assertEqual(
            result.chunkSigner.chunkSignature(result.chunkSigner.seedSignature, hashlib.sha256(b"a" * 65536).hexdigest()),
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        )

        trailerHeaders = dict(headers)
        del trailerHeaders["content-length"]
        trailerHeaders["x-amz-content-sha256"] = ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"]
        trailerHeaders["x-amz-trailer"] = ["x-amz-checksum-crc32c"]
        trailerHeaders["authorization"] = [
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
            "Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
        ]
        head = RequestHead("PUT", b"/examplebucket/chunkObject.txt", b"", trailerHeaders)
        result = authenticate(head, {example.accessKey: example}.get, "us-east-1", now)
        assert result is not None
        self.assertEqual(result.payload, PayloadMode.STREAMING_SIGNED_TRAILER)

    def test_noContentSHA256(self) -> None:
        """
        Without x-amz-content-sha256 the payload is the empty body's SHA-256,
        in the canonical request too (MinIO's behaviour).
        """
        request = AWSRequest("GET", url("k"))
        SigV4Auth(BOTO, "s3", REGION).add_auth(request)  # plain SigV4: no x-amz-content-sha256
        head = headOf(request)
        self.assertNotIn("x-amz-content-sha256", head.headers)
        result = self.assertAuthenticated(head)
        self.assertEqual((result.payload, result.payloadSHA256), (PayloadMode.SIGNED, EMPTY_SHA256))

    def test_badContentSHA256(self) -> None:
        """An x-amz-content-sha256 that is neither a digest nor a known mode is InvalidArgument."""
        request = AWSRequest("PUT", url("k"), headers={"X-Amz-Content-SHA256": "not-a-digest"})
        SigV4Auth(BOTO, "s3", REGION).add_auth(request)
        error = self.assertS3Error("InvalidArgument", headOf(request))
        self.assertEqual(error.extra["ArgumentName"], "x-amz-content-sha256")

    def test_dateHeader(self) -> None:
        """A Date header (RFC 1123) replaces a missing x-amz-date."""
        head = self.signV4("GET", url("k"), headers={"Date": "whatever"})
        self.assertNotIn("x-amz-date", head.headers)
        self.assertAuthenticated(head)

    def test_noDate(self) -> None:
        """Neither Date nor x-amz-date: AccessDenied."""
        head = replaceHeaders(self.signV4("GET", url("k")), x_amz_date=None)
        error = self.assertS3Error("AccessDenied", head)
        self.assertEqual(error.message, "AWS authentication requires a valid Date or x-amz-date header")
        self.assertS3Error("AccessDenied", replaceHeaders(head, x_amz_date="yesterday"))

    def test_skew(self) -> None:
        """More than 15 minutes between the clocks: RequestTimeTooSkewed, either way."""
        head = self.signV4("GET", url("k"))
        self.assertAuthenticated(head, now=NOW + 14 * 60)
        self.assertAuthenticated(head, now=NOW - 14 * 60)
        self.assertS3Error("RequestTimeTooSkewed", head, now=NOW + 16 * 60)
        self.assertS3Error("RequestTimeTooSkewed", head, now=NOW - 16 * 60)

    def test_unknownKey(self) -> None:
        """An access key the server does not know: InvalidAccessKeyId."""
        head = self.signV4("GET", url("k"))
        error = self.assertRaises(S3Error, authenticate, head, lambda key: None, REGION, NOW)
        self.assertEqual(error.code, "InvalidAccessKeyId")

    def test_wrongRegion(self) -> None:
        """A scope for another region names the right one."""
        head = self.signV4("GET", url("k"), region="us-west-2")
        error = self.assertS3Error("AuthorizationHeaderMalformed", head)
        self.assertIn("the region 'us-west-2' is wrong; expecting 'us-east-1'", error.message)
        self.assertEqual(error.extra["Region"], "us-east-1")

    def authorization(self, credential: str = "", signedHeaders: str = "host;x-amz-date", signature: str = "0" * 64) -> RequestHead:
        """A request with a hand-written SigV4 Authorization header."""
        credential = credential or f"{CREDENTIALS.accessKey}/20231114/{REGION}/s3/aws4_request"
        value = f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signedHeaders}, Signature={signature}"
        return RequestHead(
            "GET", b"/bucket/k", b"", {"host": ["localhost"], "x-amz-date": [formatAmzDate(NOW)], "authorization": [value]}
        )

    def test_malformed(self) -> None:
        """Each malformation of the Authorization header is AuthorizationHeaderMalformed."""
        for head in [
            self.authorization(credential="AKIDEXAMPLE/20231114/us-east-1/s3"),
            self.authorization(credential="AKIDEXAMPLE/20231114/us-east-1/ec2/aws4_request"),
            self.authorization(credential="AKIDEXAMPLE/20231114/us-east-1/s3/aws5_request"),
            self.authorization(credential="AKIDEXAMPLE/20231115/us-east-1/s3/aws4_request"),
            self.authorization(credential="AKIDEXAMPLE/2023-11-14/us-east-1/s3/aws4_request"),
            self.authorization(signedHeaders="x-amz-date"),
            self.authorization(signedHeaders=""),
            self.authorization(signature=""),
            replaceHeaders(self.authorization(), authorization="AWS4-HMAC-SHA256 Credential=a/b/c/d/e"),
            replaceHeaders(self.authorization(), authorization="AWS4-HMAC-SHA256 Foo=bar"),
            replaceHeaders(self.authorization(), authorization="AWS4-HMAC-SHA256"),
        ]:
            self.assertS3Error("AuthorizationHeaderMalformed", head)

    def test_layoutVariations(self) -> None:
        """Spaces and commas between the components are not significant."""
        head = self.signV4("GET", url("k"))
        value = head.headers["authorization"][0]
        algorithm, rest = value.split(" ", 1)
        parts = [p.strip() for p in rest.split(",")]
        for variant in [
            algorithm + " " + ",".join(parts),
            algorithm + "  " + " , ".join(parts) + " ",
            algorithm + " " + " ".join(parts),
        ]:
            self.assertAuthenticated(replaceHeaders(head, authorization=variant))

    def test_rawPathFallback(self) -> None:
        """
        A client that signs its path as sent (lower-case escapes, unencoded
        sub-delimiters) is accepted through the raw-path alternative.
        """
        for path in ["/bucket/a%2fb", "/bucket/a!b*c", "/bucket/%7euser"]:
            request = AWSRequest("GET", "http://localhost:9000" + path)
            S3SigV4Auth(BOTO, "s3", REGION).add_auth(request)
            head = headOf(request)
            self.assertEqual(head.rawPath, path.encode())
            self.assertNotEqual(canonicalURI(head.rawPath), head.rawPath)
            self.assertAuthenticated(head)

    def test_rawHeaderBytes(self) -> None:
        """
        A header value signed as its raw UTF-8 bytes (as Go clients do) is
        accepted though the server decodes header bytes as latin-1.
        """
        head = self.signV4("PUT", url("k"), b"", {"x-amz-meta-name": "é"})
        self.assertAuthenticated(head)  # botocore: UTF-8 of the text, sent as latin-1
        wire = replaceHeaders(head, x_amz_meta_name="é".encode("utf-8").decode("latin-1"))
        self.assertAuthenticated(wire)

    def test_plusInQuery(self) -> None:
        """
        A '+' in the query is a space.  A client that signs its query as
        sent (botocore, for a query already in the URL) is accepted; but a
        request signed for a literal '+' (%2B) cannot be rewritten to '+'.
        """
        for raw in [b"prefix=a+b", b"prefix=a%20b", b"prefix=a b"]:
            head = self.signV4("GET", url("") + "?prefix=a%20b")
            self.assertAuthenticated(withQuery(head, raw))
        asSent = self.signV4("GET", url("") + "?prefix=a+b")
        self.assertAuthenticated(asSent)
        head = self.signV4("GET", url("") + "?prefix=a%2Bb")
        self.assertAuthenticated(head)
        self.assertS3Error("SignatureDoesNotMatch", withQuery(head, b"prefix=a+b"))
        self.assertS3Error("SignatureDoesNotMatch", withQuery(head, b"prefix=a-b"))


# ------------------------------------------------------------ SigV4 presigned


class PresignedV4Tests(BotocoreTestCase):
    """SigV4 query-string authentication."""

    def test_documentationExample(self) -> None:
        """The S3 documentation's presigned URL example, verified and regenerated."""
        example = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "o", "d")
        now = parseAmzDate("20130524T000000Z")
        presigned = presignV4("GET", "https://examplebucket.s3.amazonaws.com/test.txt", example, "us-east-1", 86400, now)
        self.assertTrue(presigned.endswith("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"))
        parts = urlsplit(presigned)
        head = RequestHead("GET", parts.path.encode(), parts.query.encode(), {"host": ["examplebucket.s3.amazonaws.com"]})
        result = authenticate(head, {example.accessKey: example}.get, "us-east-1", now + 3600)
        assert result is not None
        self.assertTrue(result.presigned)

    def test_keysAndQueries(self) -> None:
        """Every awkward key with every query, presigned by botocore, is accepted."""
        for key in KEYS:
            for query in QUERIES:
                head = self.presignV4(url(key, query))
                result = self.assertAuthenticated(head)
                self.assertTrue(result.presigned)
                self.assertEqual((result.payload, result.payloadSHA256), (PayloadMode.UNSIGNED, None))

    def test_oneByteChanges(self) -> None:
        """One byte changed in the path, a parameter or the signature breaks it."""
        for key in KEYS:
            head = self.presignV4(url(key, "versionId=3"))
            self.assertS3Error("SignatureDoesNotMatch", withPath(head, flipLast(head.rawPath)))
            self.assertS3Error("SignatureDoesNotMatch", withQuery(head, head.rawQuery.replace(b"versionId=3", b"versionId=4")))
            self.assertS3Error("SignatureDoesNotMatch", withQuery(head, flipLast(head.rawQuery)))
            self.assertS3Error("SignatureDoesNotMatch", replaceHeaders(head, host="localhost:9001"))

    def test_presignV4MatchesBotocore(self) -> None:
        """L{presignV4} computes botocore's signature for the same URL and time."""
        for key in KEYS:
            for query in QUERIES:
                ours = presignV4("GET", url(key, query), CREDENTIALS, REGION, 600, NOW)
                theirs = self.presignV4(url(key, query), expires=600)
                self.assertEqual(
                    dict(parse_qsl(urlsplit(ours).query))["X-Amz-Signature"],
                    dict(parse_qsl(theirs.rawQuery.decode()))["X-Amz-Signature"],
                )
                parts = urlsplit(ours)
                head = RequestHead("GET", parts.path.encode(), parts.query.encode(), {"host": ["localhost:9000"]})
                self.assertAuthenticated(head)

    def test_presignV4DefaultPort(self) -> None:
        """The signed host leaves out the scheme's default port, like clients' Host header."""
        presigned = presignV4("PUT", "https://s3.example.com:443/b/k", CREDENTIALS, REGION, 60, NOW)
        parts = urlsplit(presigned)
        head = RequestHead("PUT", parts.path.encode(), parts.query.encode(), {"host": ["s3.example.com"]})
        self.assertTrue(self.assertAuthenticated(head).presigned)

    def test_expired(self) -> None:
        """After X-Amz-Date + X-Amz-Expires: AccessDenied, Request has expired."""
        head = self.presignV4(url("k"), expires=60)
        self.assertAuthenticated(head, now=NOW + 60)
        error = self.assertS3Error("AccessDenied", head, now=NOW + 61)
        self.assertEqual(error.message, "Request has expired")
        self.assertEqual(error.extra["X-Amz-Expires"], "60")

    def test_notYetValid(self) -> None:
        """More than 15 minutes before X-Amz-Date: AccessDenied, Request is not valid yet."""
        head = self.presignV4(url("k"))
        self.assertAuthenticated(head, now=NOW - 14 * 60)
        error = self.assertS3Error("AccessDenied", head, now=NOW - 16 * 60)
        self.assertEqual(error.message, "Request is not valid yet")

    def test_badExpires(self) -> None:
        """X-Amz-Expires must be a whole number of seconds from 1 to 604800."""
        head = self.presignV4(url("k"), expires=60)
        self.assertAuthenticated(withQuery(head, head.rawQuery))
        for bad in [b"0", b"604801", b"-5", b"1.5", b"sixty"]:
            error = self.assertS3Error("AuthorizationQueryParametersError", withQuery(head, head.rawQuery.replace(b"X-Amz-Expires=60", b"X-Amz-Expires=" + bad)))
            if bad == b"604801":
                self.assertEqual(error.message, "X-Amz-Expires must be less than a week (in seconds) that is 604800")
        week = self.presignV4(url("k"), expires=604800)
        self.assertAuthenticated(week)

    def test_missingParameter(self) -> None:
        """Some but not all of the X-Amz-* parameters: AuthorizationQueryParametersError."""
        head = self.presignV4(url("k"))
        for name in [b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Date", b"X-Amz-Expires", b"X-Amz-SignedHeaders", b"X-Amz-Signature"]:
            query = b"&".join(p for p in head.rawQuery.split(b"&") if not p.startswith(name + b"="))
            self.assertS3Error("AuthorizationQueryParametersError", withQuery(head, query))

    def test_badAlgorithm(self) -> None:
        """Only AWS4-HMAC-SHA256 is a presigning algorithm."""
        head = self.presignV4(url("k"))
        query = head.rawQuery.replace(b"AWS4-HMAC-SHA256", b"AWS4-HMAC-SHA512")
        self.assertS3Error("AuthorizationQueryParametersError", withQuery(head, query))

    def test_wrongRegion(self) -> None:
        """A credential scope for another region names the right one."""
        head = self.presignV4(url("k"), region="eu-west-1")
        error = self.assertS3Error("AuthorizationQueryParametersError", head)
        self.assertIn("the region 'eu-west-1' is wrong; expecting 'us-east-1'", error.message)
        self.assertEqual(error.extra["Region"], "us-east-1")

    def test_credentialDate(self) -> None:
        """The credential's day must be X-Amz-Date's."""
        head = self.presignV4(url("k"))
        query = head.rawQuery.replace(b"%2F20231114%2F", b"%2F20231113%2F")
        self.assertS3Error("AuthorizationQueryParametersError", withQuery(head, query))

    def test_unknownKey(self) -> None:
        """A presigned URL for an unknown key: InvalidAccessKeyId."""
        head = self.presignV4(url("k"))
        error = self.assertRaises(S3Error, authenticate, head, lambda key: None, REGION, NOW)
        self.assertEqual(error.code, "InvalidAccessKeyId")

    def test_securityToken(self) -> None:
        """X-Amz-Security-Token is signed like any parameter and otherwise ignored."""
        request = AWSRequest("GET", url("k"))
        S3SigV4QueryAuth(BotoCredentials(CREDENTIALS.accessKey, CREDENTIALS.secretKey, "token/+="), "s3", REGION).add_auth(request)
        head = headOf(request)
        self.assertIn(b"X-Amz-Security-Token=", head.rawQuery)
        self.assertAuthenticated(head)

    def test_signedContentSHA256(self) -> None:
        """A signed x-amz-content-sha256 header makes a presigned PUT's payload SIGNED."""
        digest = hashlib.sha256(b"body").hexdigest()
        request = AWSRequest("PUT", url("k"), headers={"X-Amz-Content-SHA256": digest})
        S3SigV4QueryAuth(BOTO, "s3", REGION).add_auth(request)
        result = self.assertAuthenticated(headOf(request))
        self.assertEqual((result.payload, result.payloadSHA256), (PayloadMode.SIGNED, digest))

    def test_unsignedContentSHA256(self) -> None:
        """An x-amz-content-sha256 header added after presigning changes nothing."""
        head = replaceHeaders(self.presignV4(url("k")), x_amz_content_sha256="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        result = self.assertAuthenticated(head)
        self.assertEqual(result.payload, PayloadMode.UNSIGNED)

    def test_headerAndQuery(self) -> None:
        """An Authorization header as well as query authentication: InvalidArgument."""
        head = self.presignV4(url("k"))
        signed = self.signV4("GET", url("k"))
        both = replaceHeaders(head, authorization=signed.headers["authorization"][0])
        self.assertS3Error("InvalidArgument", both)


# --------------------------------------------------------------------- SigV2


class HeaderV2Tests(BotocoreTestCase):
    """SigV2 in the Authorization header (botocore's C{HmacV1Auth})."""

    def signV2(self, method: str, target: str, body: bytes = b"", headers: Optional[Mapping[str, str]] = None, authPath: Optional[str] = None) -> AWSRequest:
        """A request signed with botocore's SigV2 header signer."""
        request = AWSRequest(method, target, data=body, headers=dict(headers or {}), auth_path=authPath)
        FixedV1Auth(BOTO).add_auth(request)
        return request

    def test_keysAndQueries(self) -> None:
        """Every awkward key with every query is accepted, payload unsigned."""
        for key in KEYS:
            for query in QUERIES:
                request = self.signV2("PUT", url(key, query), b"x", {"Content-Type": "text/plain", "Content-MD5": "abc=", "x-amz-meta-a": " 1 ", "X-Amz-Meta-B": "2"})
                result = self.assertAuthenticated(headOf(request))
                self.assertEqual((result.payload, result.payloadSHA256, result.presigned), (PayloadMode.UNSIGNED, None, False))

    def test_oneByteChanges(self) -> None:
        """Path, sub-resource, x-amz-* header, Content-Type, Date and secret are all signed."""
        for key in KEYS:
            head = headOf(self.signV2("PUT", url(key, "versionId=3&prefix=p"), b"x", {"Content-Type": "text/plain", "x-amz-meta-a": "1"}))
            self.assertAuthenticated(head)
            self.assertS3Error("SignatureDoesNotMatch", withPath(head, flipLast(head.rawPath)))
            self.assertS3Error("SignatureDoesNotMatch", withQuery(head, head.rawQuery.replace(b"versionId=3", b"versionId=4")))
            self.assertS3Error("SignatureDoesNotMatch", replaceHeaders(head, x_amz_meta_a="2"))
            self.assertS3Error("SignatureDoesNotMatch", replaceHeaders(head, content_type="text/plaim"))
            self.assertS3Error("SignatureDoesNotMatch", replaceHeaders(head, date=formatdate(NOW + 1, usegmt=True)))
            other = Credentials(CREDENTIALS.accessKey, flipLast(CREDENTIALS.secretKey.encode()).decode(), "o", "d")
            error = self.assertRaises(S3Error, authenticate, head, lambda k: other, REGION, NOW)
            self.assertEqual(error.code, "SignatureDoesNotMatch")
            # A parameter that is not a sub-resource is not part of SigV2's signature.
            self.assertAuthenticated(withQuery(head, head.rawQuery.replace(b"prefix=p", b"prefix=q")))

    def test_virtualHosted(self) -> None:
        """The bucket from the Host header leads the canonical resource."""
        for key in ["k", "a b/c", ""]:
            request = self.signV2("GET", url(key, bucket=None, host="bucket.localhost:9000"), authPath="/bucket/" + percent_encode(key, safe="/~"))
            self.assertAuthenticated(headOf(request, virtualBucket="bucket"))
            self.assertS3Error("SignatureDoesNotMatch", headOf(request))

    def test_amzDate(self) -> None:
        """With x-amz-date the Date line of the string to sign is empty (AWS's rule)."""
        amzDate = formatdate(NOW, usegmt=True)
        stringToSign = f"GET\n\n\n\nx-amz-date:{amzDate}\n/bucket/k"
        signature = base64.b64encode(hmac.new(CREDENTIALS.secretKey.encode(), stringToSign.encode(), hashlib.sha1).digest()).decode()
        head = RequestHead("GET", b"/bucket/k", b"", {"host": ["localhost"], "x-amz-date": [amzDate], "authorization": [f"AWS {CREDENTIALS.accessKey}:{signature}"]})
        self.assertAuthenticated(head)
        self.assertS3Error("RequestTimeTooSkewed", head, now=NOW + 3600)

    def test_noDate(self) -> None:
        """Neither Date nor x-amz-date: AccessDenied."""
        head = replaceHeaders(headOf(self.signV2("GET", url("k"))), date=None)
        error = self.assertS3Error("AccessDenied", head)
        self.assertEqual(error.message, "AWS authentication requires a valid Date or x-amz-date header")

    def test_skew(self) -> None:
        """More than 15 minutes off: RequestTimeTooSkewed."""
        head = headOf(self.signV2("GET", url("k")))
        self.assertAuthenticated(head, now=NOW + 14 * 60)
        self.assertS3Error("RequestTimeTooSkewed", head, now=NOW + 16 * 60)

    def test_unknownKey(self) -> None:
        """An unknown access key: InvalidAccessKeyId."""
        head = headOf(self.signV2("GET", url("k")))
        error = self.assertRaises(S3Error, authenticate, head, lambda key: None, REGION, NOW)
        self.assertEqual(error.code, "InvalidAccessKeyId")

    def test_malformed(self) -> None:
        """C{AWS} without C{key:signature}: InvalidArgument."""
        head = replaceHeaders(headOf(self.signV2("GET", url("k"))), authorization="AWS nocolon")
        self.assertS3Error("InvalidArgument", head)

    def test_contentSHA256(self) -> None:
        """A hex x-amz-content-sha256 is still an integrity check under SigV2."""
        digest = hashlib.sha256(b"x").hexdigest()
        result = self.assertAuthenticated(headOf(self.signV2("PUT", url("k"), b"x", {"x-amz-content-sha256": digest})))
        self.assertEqual((result.payload, result.payloadSHA256), (PayloadMode.SIGNED, digest))
        streaming = headOf(self.signV2("PUT", url("k"), b"x", {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}))
        self.assertS3Error("InvalidRequest", streaming)


class PresignedV2Tests(BotocoreTestCase):
    """SigV2 query-string authentication (what awscli v1's C{s3 presign} emits)."""

    def presignV2(self, target: str, expires: int = 3600, headers: Optional[Mapping[str, str]] = None) -> RequestHead:
        """A GET presigned with botocore's C{HmacV1QueryAuth}."""
        request = AWSRequest("GET", target, headers=dict(headers or {}))
        FixedV1QueryAuth(BOTO, expires=expires).add_auth(request)
        return headOf(request)

    def test_keysAndQueries(self) -> None:
        """Every awkward key with every query is accepted."""
        for key in KEYS:
            for query in QUERIES:
                result = self.assertAuthenticated(self.presignV2(url(key, query)))
                self.assertTrue(result.presigned)

    def test_oneByteChanges(self) -> None:
        """Path, sub-resource, Expires and signature are all signed."""
        for key in KEYS:
            head = self.presignV2(url(key, "uploadId=u1&partNumber=2"))
            self.assertS3Error("SignatureDoesNotMatch", withPath(head, flipLast(head.rawPath)))
            self.assertS3Error("SignatureDoesNotMatch", withQuery(head, head.rawQuery.replace(b"partNumber=2", b"partNumber=3")))
            later = re.sub(rb"Expires=(\d+)", lambda m: b"Expires=%d" % (int(m.group(1)) + 1), head.rawQuery)
            self.assertS3Error("SignatureDoesNotMatch", withQuery(head, later))

    def test_literalPlusInSignature(self) -> None:
        """A signature with '+' left unencoded in the URL is still read right."""
        for attempt in range(40):
            head = self.presignV2(url(f"k{attempt}"))
            if b"%2B" in head.rawQuery:
                self.assertAuthenticated(withQuery(head, head.rawQuery.replace(b"%2B", b"+")))
                return
        self.fail("no signature with a '+' in 40 attempts")

    def test_amzHeadersInQuery(self) -> None:
        """botocore moves signed x-amz-* headers into the query; they count as headers."""
        head = self.presignV2(url("k"), headers={"x-amz-security-token": "tok"})
        self.assertIn(b"x-amz-security-token=tok", head.rawQuery)
        self.assertAuthenticated(replaceHeaders(head, x_amz_security_token=None))

    def test_expired(self) -> None:
        """After Expires: AccessDenied, Request has expired."""
        head = self.presignV2(url("k"), expires=60)
        self.assertAuthenticated(head, now=NOW + 60)
        error = self.assertS3Error("AccessDenied", head, now=NOW + 61)
        self.assertEqual(error.message, "Request has expired")

    def test_missingParameter(self) -> None:
        """Some but not all of AWSAccessKeyId, Expires, Signature: AccessDenied."""
        head = self.presignV2(url("k"))
        for name in [b"AWSAccessKeyId", b"Expires", b"Signature"]:
            query = b"&".join(p for p in head.rawQuery.split(b"&") if not p.startswith(name + b"="))
            self.assertS3Error("AccessDenied", withQuery(head, query))

    def test_unknownKey(self) -> None:
        """An unknown access key: InvalidAccessKeyId."""
        head = self.presignV2(url("k"))
        error = self.assertRaises(S3Error, authenticate, head, lambda key: None, REGION, NOW)
        self.assertEqual(error.code, "InvalidAccessKeyId")

    def test_expiresCapped(self) -> None:
        """
        Expires more than a week after the server's time is refused, like a
        SigV4 X-Amz-Expires over 604800; a week exactly is accepted.
        """
        head = self.presignV2(url("k"), expires=604800)
        self.assertAuthenticated(head)
        error = self.assertS3Error("AccessDenied", self.presignV2(url("k"), expires=604801))
        self.assertIn("a week", error.message)
        self.assertS3Error("AccessDenied", self.presignV2(url("k"), expires=10 * 365 * 86400))

    def test_belowMountPoint(self) -> None:
        """
        Mounted below the root of a Site, SigV2 verifies over the path as
        sent or over the path below the mount point (what botocore and so
        C{aws s3 presign} sign); another path is still refused.
        """
        signed = self.presignV2(url("photos/plain.txt", bucket=None))
        mounted = RequestHead(
            signed.method, b"/storage/s3" + signed.rawPath, signed.rawQuery, signed.headers,
            localPath=signed.rawPath,
        )
        self.assertAuthenticated(mounted)
        self.assertS3Error("SignatureDoesNotMatch", attrs.evolve(mounted, localPath=None))
        self.assertS3Error("SignatureDoesNotMatch", attrs.evolve(mounted, localPath=b"/photos/other.txt"))


class DispatchTests(BotocoreTestCase):
    """Choosing the authentication form."""

    def test_anonymous(self) -> None:
        """No Authorization header and no authentication parameters: anonymous."""
        head = RequestHead("GET", b"/bucket/k", b"prefix=a&X-Amz-Meta=1", {"host": ["localhost"]})
        self.assertIsNone(authenticate(head, lookup, REGION, NOW))

    def test_unsupportedType(self) -> None:
        """An Authorization scheme we do not know: InvalidArgument."""
        head = RequestHead("GET", b"/", b"", {"host": ["localhost"], "authorization": ["Bearer abc"]})
        error = self.assertS3Error("InvalidArgument", head)
        self.assertEqual(error.message, "Unsupported Authorization Type")

    def test_sigV4A(self) -> None:
        """SigV4A is recognised and refused as not implemented."""
        head = RequestHead("GET", b"/", b"", {"host": ["localhost"], "authorization": ["AWS4-ECDSA-P256-SHA256 Credential=x"]})
        self.assertS3Error("NotImplemented", head)

    def test_twoQueryForms(self) -> None:
        """SigV2 and SigV4 query parameters together: InvalidArgument."""
        head = RequestHead("GET", b"/", b"X-Amz-Credential=a&Signature=b", {"host": ["localhost"]})
        self.assertS3Error("InvalidArgument", head)


# -------------------------------------------------------------------- parsers


PATH_BYTES = st.binary(max_size=60).map(lambda b: b"/" + b)
NAMES = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
VALUES = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


class ParserTests(SynchronousTestCase):
    """The canonicalisation helpers, against botocore's."""

    @settings(max_examples=300, deadline=None)
    @given(path=PATH_BYTES, safe=st.sampled_from(["/~", "/", "/~!*'()", "/~@:$&,;="]))
    def test_canonicalURI(self, path: bytes, safe: str) -> None:
        """However a path was percent-encoded, its canonical form is botocore's encoding of it."""
        sent = quote(path, safe=safe).encode("ascii")
        self.assertEqual(canonicalURI(sent), percent_encode(path, safe="/~").encode("ascii"))
        self.assertEqual(canonicalURI(canonicalURI(sent)), canonicalURI(sent))

    @settings(max_examples=300, deadline=None)
    @given(params=st.dictionaries(NAMES, VALUES, max_size=6))
    def test_canonicalQuery(self, params: Dict[str, str]) -> None:
        """The canonical query of an encoded parameter list is botocore's."""
        raw = percent_encode_sequence(params).encode("ascii")
        expected = SigV4Auth(BOTO, "s3", REGION)._canonical_query_string_params(params)
        self.assertEqual(canonicalQuery(raw).decode("ascii"), expected)

    def test_canonicalQueryDetails(self) -> None:
        """'+' is a space, a bare name has an empty value, and '/' is encoded."""
        self.assertEqual(canonicalQuery(b"b=2&a&c=x+y%2Fz"), b"a=&b=2&c=x%20y%2Fz")
        self.assertEqual(canonicalQuery(b"X-Amz-Signature=s&a=1", exclude=["X-Amz-Signature"]), b"a=1")
        self.assertEqual(uriEncode("é /".encode()), b"%C3%A9%20%2F")
        self.assertEqual(uriEncode(b"a/b", keepSlash=True), b"a/b")

    @given(st.integers(min_value=0, max_value=2**33))
    def test_amzDateRoundTrip(self, t: int) -> None:
        """formatAmzDate and parseAmzDate are inverses."""
        self.assertEqual(parseAmzDate(formatAmzDate(t)), t)

    @given(st.integers(min_value=0, max_value=2**33))
    def test_httpDate(self, t: int) -> None:
        """RFC 1123 dates parse to their POSIX time."""
        self.assertEqual(parseHTTPDate(formatdate(t, usegmt=True)), t)
        self.assertEqual(parseHTTPDate(formatdate(t)), t)

    def test_badDates(self) -> None:
        """Malformed timestamps are ValueError."""
        for bad in ["2013-05-24T00:00:00Z", "20130524T000000", "20131324T000000Z", "20130524T250000Z", ""]:
            self.assertRaises(ValueError, parseAmzDate, bad)
        self.assertRaises(ValueError, parseHTTPDate, "not a date")

    def test_payloadModes(self) -> None:
        """Every x-amz-content-sha256 value maps to its mode."""
        digest = "AB" * 32
        self.assertEqual(parsePayloadMode(digest), (PayloadMode.SIGNED, digest.lower()))
        self.assertEqual(parsePayloadMode(None), (PayloadMode.SIGNED, EMPTY_SHA256))
        self.assertEqual(parsePayloadMode(None, PayloadMode.UNSIGNED), (PayloadMode.UNSIGNED, None))
        for mode in PayloadMode:
            if mode is not PayloadMode.SIGNED:
                self.assertEqual(parsePayloadMode(mode.value), (mode, None))
        self.assertEqual(self.assertRaises(S3Error, parsePayloadMode, "a" * 63).code, "InvalidArgument")
        self.assertTrue(PayloadMode.STREAMING_SIGNED_TRAILER.streaming and PayloadMode.STREAMING_SIGNED_TRAILER.trailer)
        self.assertFalse(PayloadMode.UNSIGNED.streaming)

    def test_secretNotInRepr(self) -> None:
        """Credentials never show their secret in logs."""
        self.assertNotIn(CREDENTIALS.secretKey, repr(CREDENTIALS))
