"""
Tests for L{fasterstore.numbers}, and for the numbers clients send reaching
it: each malformed value through the real resource tree gets the S3 error
AWS gives, never a 500.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit
from xml.etree import ElementTree

from botocore.auth import HmacV1QueryAuth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.auth import postpolicy
from fasterstore.auth.sigv4 import parseCredential
from fasterstore.errors import S3Error
from fasterstore.numbers import INT32_MAX, INT64_MAX, parseDecimal, parseHex, readDecimal
from tests.unit.test_multipart import MultipartTestCase, latin1Request
from tests.unit.test_resource import ACCESS, BASE, SECRET

Response = Tuple[int, Dict[str, str], bytes]

#: Texts Python's int() or str.isdigit() accept that S3 does not.
LENIENT = [
    "²",  # isdigit() is True, int() raises
    "٣",  # Arabic-Indic three: int() gives 3
    "１",  # fullwidth one: int() gives 1
    "1_000",  # int() gives 1000
    " 5",
    "5 ",
    "5\n",
    "+5",
    "0x10",
    "1e3",
    "1.0",
    "",
    "-",
]


def refused() -> S3Error:
    """The error the parser tests expect back."""
    return S3Error("InvalidArgument", "refused")


class ParseDecimalTests(SynchronousTestCase):
    """
    L{parseDecimal} reads ASCII digits within a range and refuses the rest
    with the caller's error.
    """

    def assertRefused(self, text: str, minimum: int = 0, maximum: int = INT32_MAX) -> None:
        """C{text} raises the caller's error, and L{readDecimal} gives C{None}."""
        error = self.assertRaises(S3Error, parseDecimal, text, minimum=minimum, maximum=maximum, error=refused)
        self.assertEqual((error.code, error.message), ("InvalidArgument", "refused"))
        self.assertIsNone(readDecimal(text, minimum=minimum, maximum=maximum))

    def test_digits(self) -> None:
        """ASCII digits, leading zeros included, are read as the integer they spell."""
        for text, value in [("0", 0), ("7", 7), ("0010", 10), ("2147483647", INT32_MAX), ("0" * 1000 + "42", 42)]:
            self.assertEqual(parseDecimal(text, maximum=INT32_MAX, error=refused), value, text)

    def test_lenientForms(self) -> None:
        """What int() or isdigit() would let through is refused."""
        for text in LENIENT:
            self.assertRefused(text)
            self.assertRefused(text, minimum=-10)

    def test_range(self) -> None:
        """Values outside [minimum, maximum] are refused."""
        self.assertRefused("0", minimum=1, maximum=10)
        self.assertRefused("11", minimum=1, maximum=10)
        self.assertRefused("2147483648")
        self.assertEqual(parseDecimal("10", minimum=1, maximum=10, error=refused), 10)

    def test_negative(self) -> None:
        """A leading minus is read only when the range has negative values."""
        self.assertRefused("-1")
        self.assertRefused("-0")
        self.assertEqual(parseDecimal("-5", minimum=-10, maximum=10, error=refused), -5)
        self.assertEqual(parseDecimal("-0", minimum=-10, maximum=10, error=refused), 0)
        self.assertRefused("-11", minimum=-10, maximum=10)
        self.assertRefused("--1", minimum=-10, maximum=10)

    def test_huge(self) -> None:
        """
        Values far too long are refused without converting them (int()
        refuses more than 4300 digits with ValueError).
        """
        self.assertRefused("9" * 100000)
        self.assertRefused("-" + "9" * 100000, minimum=-INT64_MAX - 1, maximum=INT64_MAX)
        self.assertEqual(parseDecimal(str(INT64_MAX), maximum=INT64_MAX, error=refused), INT64_MAX)

    @given(
        st.one_of(st.text(max_size=40), st.text(alphabet="0123456789-+_ ²٣１\n", max_size=40)),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.integers(min_value=0, max_value=2**70),
    )
    def test_anyText(self, text: str, minimum: int, span: int) -> None:
        """
        For any text, L{parseDecimal} returns C{int(text)} exactly when the
        text is ASCII digits (with a minus only if negative values are
        allowed) within range, and otherwise raises the given error: never
        anything else.
        """
        maximum = minimum + span
        wellFormed = re.fullmatch(r"-?[0-9]+", text) is not None and (minimum < 0 or not text.startswith("-"))
        expected = int(text) if wellFormed and minimum <= int(text) <= maximum else None
        try:
            result = parseDecimal(text, minimum=minimum, maximum=maximum, error=refused)
        except S3Error as e:
            self.assertEqual(e.message, "refused")
            self.assertIsNone(expected, text)
        else:
            self.assertEqual(result, expected, text)
            self.assertIs(type(result), int)


class ParseHexTests(SynchronousTestCase):
    """L{parseHex} reads the hex sizes of aws-chunked chunk headers."""

    def test_hex(self) -> None:
        """Either case, leading zeros, up to the maximum."""
        self.assertEqual(parseHex("fF", maximum=255, error=refused), 255)
        self.assertEqual(parseHex("000a", maximum=255, error=refused), 10)
        self.assertEqual(parseHex("f" * 16, maximum=2**64 - 1, error=refused), 2**64 - 1)

    def test_refused(self) -> None:
        """Signs, prefixes, underscores, spaces, non-ASCII digits and values too big are refused."""
        for text in ["", "-1", "+1", "0x1", "1_0", " 1", "1 ", "²", "٣", "ｆ", "100", "f" * 100000]:
            self.assertRaises(S3Error, parseHex, text, maximum=255, error=refused)


class ClientDateAndBoundTests(SynchronousTestCase):
    """The authentication parsers built on the strict readers."""

    def test_credentialDate(self) -> None:
        """
        A credential scope date must be ASCII digits: Arabic-Indic digits
        passed C{\\d} and then failed to encode when deriving the key.
        """

        def fail(detail: str) -> S3Error:
            return S3Error("AuthorizationHeaderMalformed", detail)

        for date in ["٢٠١٣٠٥٢٤", "2013052４", "2013052"]:
            error = self.assertRaises(
                S3Error, parseCredential, f"AKID/{date}/us-east-1/s3/aws4_request", fail, "us-east-1"
            )
            self.assertIn("incorrect date format", error.message)

    def test_policyExpiration(self) -> None:
        """A POST policy expiration in another script's digits, or on 31 February, is refused."""
        import base64
        import json

        def policy(expiration: str) -> str:
            return base64.b64encode(json.dumps({"expiration": expiration, "conditions": []}).encode()).decode()

        self.assertEqual(postpolicy.parsePolicy(policy("2030-01-01T00:00:00.5Z")).expiration, 1893456000.5)
        for expiration in ["٢٠٣٠-01-01T00:00:00Z", "2030-02-31T00:00:00Z", "0000-01-01T00:00:00Z", "2030-01-01T00:00:00.٥Z"]:
            error = self.assertRaises(S3Error, postpolicy.parsePolicy, policy(expiration))
            self.assertEqual(error.code, "InvalidPolicyDocument", expiration)

    def test_contentLengthRangeBounds(self) -> None:
        """Policy bounds given as strings are read as ASCII integers only."""
        self.assertEqual(postpolicy._bound(" 10 "), 10)
        self.assertEqual(postpolicy._bound("-1"), -1)
        self.assertEqual(postpolicy._bound(7), 7)
        for value in ["٣", "1_000", "+1", "9" * 5000, True, None, 1.5]:
            self.assertIsNone(postpolicy._bound(value), value)


class RequestTests(MultipartTestCase):
    """
    Malformed numbers sent through the real resource tree: the S3 error AWS
    gives for that parameter, and nothing logged as a failure.
    """

    def tearDown(self) -> None:
        self.assertEqual(self.flushLoggedErrors(), [])

    def assertInvalidArgument(self, response: Response, name: Optional[str] = None) -> None:
        """400 InvalidArgument, naming the parameter C{name} when given."""
        self.assertError(response, 400, "InvalidArgument")
        if name is not None:
            self.assertEqual(ElementTree.fromstring(response[2]).findtext("ArgumentName"), name)

    def test_maxBuckets(self) -> None:
        """ListBuckets: max-buckets in non-ASCII digits is InvalidArgument."""
        for value in ["%C2%B2", "%D9%A3", "1_0", "9" * 5000]:
            self.assertInvalidArgument(self.request("GET", "/?max-buckets=" + value), "max-buckets")
        self.assertEqual(self.request("GET", "/?max-buckets=5")[0], 200)

    def test_maxKeys(self) -> None:
        """
        ListObjects (v1, v2) and ListObjectVersions: max-keys that int()
        would read (C{٣}, C{1_000}, C{+5}) or not (C{²}) is InvalidArgument;
        a large one is capped, as AWS does.
        """
        for value in ["%C2%B2", "%D9%A3", "1_000", "%2B5", "-1", "9" * 5000, "2147483648"]:
            for prefix in ["", "list-type=2&", "versions&"]:
                self.assertInvalidArgument(self.request("GET", f"/bucket?{prefix}max-keys={value}"), "max-keys")
        status, _, body = self.request("GET", "/bucket?list-type=2&max-keys=2147483647")
        self.assertEqual(status, 200, body)
        self.assertEqual(ElementTree.fromstring(body).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}MaxKeys"), "1000")

    def test_maxUploads(self) -> None:
        """ListMultipartUploads: max-uploads in non-ASCII digits is InvalidArgument."""
        for value in ["%C2%B2", "%D9%A3", "1_0", "9" * 5000]:
            self.assertInvalidArgument(self.request("GET", "/bucket?uploads&max-uploads=" + value), "max-uploads")

    def test_listParts(self) -> None:
        """ListParts: max-parts and part-number-marker in non-ASCII digits are InvalidArgument."""
        uploadId = self.create()
        for name in ["max-parts", "part-number-marker"]:
            for value in ["%C2%B2", "%D9%A3", "1_0", "9" * 5000]:
                self.assertInvalidArgument(self.request("GET", f"/bucket/k?uploadId={uploadId}&{name}={value}"), name)

    def test_partNumber(self) -> None:
        """UploadPart and GetObject: partNumber in non-ASCII digits is InvalidArgument."""
        uploadId = self.create()
        self.request("PUT", "/bucket/plain", b"x")
        for value in ["%C2%B2", "%D9%A1", "1_0", "9" * 5000]:
            self.assertInvalidArgument(self.request("PUT", f"/bucket/k?partNumber={value}&uploadId={uploadId}", b"x"), "partNumber")
            self.assertInvalidArgument(self.request("GET", f"/bucket/plain?partNumber={value}"), "partNumber")
        self.assertEqual(self.server.now.getUpload(uploadId).parts, ())  # type: ignore[union-attr]

    def test_objectAttributes(self) -> None:
        """
        GetObjectAttributes: x-amz-max-parts and x-amz-part-number-marker
        (signed headers) in non-ASCII digits are InvalidArgument.
        """
        self.request("PUT", "/bucket/k", b"hello")
        for name in ["x-amz-max-parts", "x-amz-part-number-marker"]:
            for value in ["²", "¹", "1_0", "9" * 5000]:
                response = latin1Request(self, "GET", "/bucket/k?attributes", {"x-amz-object-attributes": "ObjectParts", name: value})
                self.assertInvalidArgument(response)
        self.assertEqual(latin1Request(self, "GET", "/bucket/k?attributes", {"x-amz-object-attributes": "ObjectParts", "x-amz-max-parts": "5"})[0], 200)

    def test_presignedExpires(self) -> None:
        """
        A presigned URL's X-Amz-Expires or SigV2 Expires too long to be a
        number (or a date) is refused as the signers refuse a malformed one.
        """
        self.request("PUT", "/bucket/k", b"hello")
        aws = AWSRequest("GET", BASE + "/bucket/k")
        S3SigV4QueryAuth(BotoCredentials(ACCESS, SECRET), "s3", "us-east-1", expires=60).add_auth(aws)
        target = urlsplit(aws.url)
        self.assertEqual(self.request("GET", target.path + "?" + target.query, creds=None)[0], 200)
        for value in ["9" * 5000, "%D9%A3", "1_0"]:
            query = target.query.replace("X-Amz-Expires=60", "X-Amz-Expires=" + value)
            self.assertError(self.request("GET", target.path + "?" + query, creds=None), 400, "AuthorizationQueryParametersError")
        aws = AWSRequest("GET", BASE + "/bucket/k")
        HmacV1QueryAuth(BotoCredentials(ACCESS, SECRET), expires=60).add_auth(aws)
        target = urlsplit(aws.url)
        for value in ["100000000000000000", "9" * 5000]:
            query = re.sub(r"Expires=[0-9]+", "Expires=" + value, target.query)
            self.assertError(self.request("GET", target.path + "?" + query, creds=None), 403, "AccessDenied")

    def test_presignedDate(self) -> None:
        """
        A presigned URL dated in Arabic-Indic digits (which C{\\d} and
        C{int()} accepted) is refused before any key is derived from it.
        """
        self.request("PUT", "/bucket/k", b"hello")
        aws = AWSRequest("GET", BASE + "/bucket/k")
        S3SigV4QueryAuth(BotoCredentials(ACCESS, SECRET), "s3", "us-east-1", expires=60).add_auth(aws)
        target = urlsplit(aws.url)
        stamp = re.search(r"X-Amz-Date=([0-9]{8})", target.query)
        assert stamp is not None
        arabic = "".join(chr(0x660 + int(c)) for c in stamp.group(1))
        query = target.query.replace(stamp.group(1), "".join("%%%02X" % b for b in arabic.encode()))
        status, _, body = self.request("GET", target.path + "?" + query, creds=None)
        self.assertEqual(status, 400, body)
        self.assertEqual(ElementTree.fromstring(body).findtext("Code"), "AuthorizationQueryParametersError")
