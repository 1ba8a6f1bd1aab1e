"""
Tests for L{fasterstore.s3.cors}: Put/Get/DeleteBucketCors, OPTIONS
preflights and the CORS headers of actual requests, through the real
resource; and the rule matching on its own.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Dict, Optional, Tuple
from xml.etree import ElementTree

from twisted.trial.unittest import SynchronousTestCase

from fasterstore.s3.cors import (
    NOT_ALLOWED,
    CORSRule,
    matchRule,
    parseCORSConfiguration,
    rulesFromJSON,
    rulesToJSON,
)
from tests.unit.test_resource import NS, OTHER, ResourceTestCase

CONFIG = b"""<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <CORSRule>
    <ID>app</ID>
    <AllowedOrigin>https://app.example.com</AllowedOrigin>
    <AllowedOrigin>http://*.example.org</AllowedOrigin>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>PUT</AllowedMethod>
    <AllowedHeader>x-amz-*</AllowedHeader>
    <AllowedHeader>Content-Type</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <ExposeHeader>x-amz-request-id</ExposeHeader>
    <MaxAgeSeconds>3000</MaxAgeSeconds>
  </CORSRule>
  <CORSRule>
    <AllowedOrigin>*</AllowedOrigin>
    <AllowedMethod>HEAD</AllowedMethod>
  </CORSRule>
</CORSConfiguration>"""

VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


def md5Header(body: bytes) -> Dict[str, str]:
    """A Content-MD5 header for C{body}."""
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


def rulesDocument(*rules: str) -> bytes:
    """A CORSConfiguration holding these CORSRule bodies."""
    return ("<CORSConfiguration>" + "".join(f"<CORSRule>{r}</CORSRule>" for r in rules) + "</CORSConfiguration>").encode()


class CORSTestCase(ResourceTestCase):
    """A bucket, and helpers for CORS requests."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()

    def putCors(self, body: bytes = CONFIG, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
        """PutBucketCors, with Content-MD5 unless headers are given."""
        return self.request("PUT", "/bucket?cors", body, md5Header(body) if headers is None else headers)

    def preflight(self, path: str, origin: Optional[str], method: Optional[str] = "GET",
                  requestHeaders: Optional[str] = None) -> Tuple[int, Dict[str, str], bytes]:
        """An unauthenticated OPTIONS preflight."""
        headers = {}
        if origin is not None:
            headers["Origin"] = origin
        if method is not None:
            headers["Access-Control-Request-Method"] = method
        if requestHeaders is not None:
            headers["Access-Control-Request-Headers"] = requestHeaders
        return self.request("OPTIONS", path, headers=headers, creds=None)


class BucketCorsTests(CORSTestCase):
    """Put/Get/DeleteBucketCors."""

    def test_roundTrip(self) -> None:
        """The rules put are the rules got back, in S3's element order."""
        self.assertEqual(self.putCors()[0], 200)
        status, headers, body = self.request("GET", "/bucket?cors")
        self.assertEqual(status, 200, body)
        root = ElementTree.fromstring(body)
        self.assertEqual(root.tag, f"{NS}CORSConfiguration")
        first, second = root.findall(f"{NS}CORSRule")
        self.assertEqual([child.tag[len(NS):] for child in first], [
            "ID", "AllowedHeader", "AllowedHeader", "AllowedMethod", "AllowedMethod",
            "AllowedOrigin", "AllowedOrigin", "ExposeHeader", "ExposeHeader", "MaxAgeSeconds",
        ])
        self.assertEqual([e.text for e in first.findall(f"{NS}AllowedOrigin")],
                         ["https://app.example.com", "http://*.example.org"])
        self.assertEqual(first.findtext(f"{NS}MaxAgeSeconds"), "3000")
        self.assertEqual([e.text for e in second.findall(f"{NS}AllowedMethod")], ["HEAD"])
        self.assertIsNone(second.find(f"{NS}ID"))

    def test_getWithoutConfiguration(self) -> None:
        """GetBucketCors on a bucket without rules: 404 NoSuchCORSConfiguration."""
        result = self.request("GET", "/bucket?cors")
        self.assertError(result, 404, "NoSuchCORSConfiguration")
        document = ElementTree.fromstring(result[2])
        self.assertEqual(document.findtext("Message"), "The CORS configuration does not exist")
        self.assertEqual(document.findtext("BucketName"), "bucket")

    def test_delete(self) -> None:
        """DeleteBucketCors: 204, also when there was nothing to delete."""
        self.assertEqual(self.request("DELETE", "/bucket?cors")[0], 204)
        self.putCors()
        self.assertEqual(self.request("DELETE", "/bucket?cors")[0], 204)
        self.assertError(self.request("GET", "/bucket?cors"), 404, "NoSuchCORSConfiguration")

    def test_otherOwner(self) -> None:
        """Another account can neither read nor set a bucket's rules."""
        self.assertError(self.request("GET", "/bucket?cors", creds=OTHER), 403, "AccessDenied")
        self.assertError(self.request("PUT", "/bucket?cors", CONFIG, md5Header(CONFIG), creds=OTHER), 403, "AccessDenied")

    def test_invalidDocuments(self) -> None:
        """S3's refusals: unsupported methods, missing elements, too many rules."""
        result = self.putCors(rulesDocument("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>MYMETHOD</AllowedMethod>"))
        self.assertError(result, 400, "InvalidRequest")
        self.assertEqual(ElementTree.fromstring(result[2]).findtext("Message"),
                         "Found unsupported HTTP method in CORS config. Unsupported method is MYMETHOD")
        self.assertError(self.putCors(b"<CORSConfiguration></CORSConfiguration>"), 400, "MalformedXML")
        self.assertError(self.putCors(rulesDocument("<AllowedOrigin>*</AllowedOrigin>")), 400, "MalformedXML")
        self.assertError(self.putCors(b"not xml"), 400, "MalformedXML")
        many = rulesDocument(*["<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"] * 101)
        self.assertError(self.putCors(many), 400, "InvalidRequest")
        twoStars = rulesDocument("<AllowedOrigin>http://*.*.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod>")
        self.assertError(self.putCors(twoStars), 400, "InvalidRequest")
        for age in ("x", "²", "٣", "1_0", "9" * 5000):
            badAge = rulesDocument(
                f"<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>{age}</MaxAgeSeconds>"
            )
            self.assertError(self.putCors(badAge), 400, "MalformedXML")
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertError(self.request("GET", "/bucket?cors"), 404, "NoSuchCORSConfiguration")

    def test_digests(self) -> None:
        """Content-MD5 and x-amz-checksum-* (what newer botocore sends) are verified."""
        self.assertError(self.putCors(CONFIG, md5Header(b"other")), 400, "BadDigest")
        crc = base64.b64encode(zlib.crc32(CONFIG).to_bytes(4, "big")).decode()
        self.assertEqual(self.putCors(CONFIG, {"x-amz-checksum-crc32": crc})[0], 200)
        self.assertError(self.putCors(CONFIG, {"x-amz-checksum-crc32": "AAAAAA=="}), 400, "BadDigest")


class PreflightTests(CORSTestCase):
    """OPTIONS, answered from the bucket's rules without authentication."""

    def setUp(self) -> None:
        super().setUp()
        self.assertEqual(self.putCors()[0], 200)

    def test_allowed(self) -> None:
        """A matching preflight: 200 with the rule's headers."""
        status, headers, body = self.preflight("/bucket/some/key", "https://app.example.com", "PUT",
                                               "X-Amz-Meta-Color, content-type")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, b"")
        self.assertEqual(headers["access-control-allow-origin"], "https://app.example.com")
        self.assertEqual(headers["access-control-allow-credentials"], "true")
        self.assertEqual(headers["access-control-allow-methods"], "GET, PUT")
        self.assertEqual(headers["access-control-allow-headers"], "x-amz-meta-color, content-type")
        self.assertEqual(headers["access-control-expose-headers"], "ETag, x-amz-request-id")
        self.assertEqual(headers["access-control-max-age"], "3000")
        self.assertEqual(headers["vary"], VARY)

    def test_wildcardOrigin(self) -> None:
        """C{http://*.example.org} matches subdomains, not the bare domain."""
        self.assertEqual(self.preflight("/bucket", "http://cdn.example.org")[0], 200)
        self.assertEqual(self.preflight("/bucket", "http://a.b.example.org")[0], 200)
        self.assertError(self.preflight("/bucket", "http://example.org"), 403, "AccessForbidden")
        self.assertError(self.preflight("/bucket", "https://cdn.example.org"), 403, "AccessForbidden")

    def test_anyOrigin(self) -> None:
        """A C{*} origin answers C{*} and no credentials."""
        status, headers, _ = self.preflight("/bucket/k", "https://anywhere.test", "HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(headers["access-control-allow-origin"], "*")
        self.assertNotIn("access-control-allow-credentials", headers)
        self.assertEqual(headers["access-control-allow-methods"], "HEAD")

    def test_denied(self) -> None:
        """No matching rule (method, origin or header): 403 AccessForbidden."""
        result = self.preflight("/bucket/k", "https://app.example.com", "DELETE")
        self.assertError(result, 403, "AccessForbidden")
        document = ElementTree.fromstring(result[2])
        self.assertEqual(document.findtext("Message"), NOT_ALLOWED)
        self.assertEqual(document.findtext("Method"), "DELETE")
        self.assertEqual(document.findtext("ResourceType"), "OBJECT")
        self.assertError(self.preflight("/bucket/k", "https://app.example.com", "GET", "authorization"),
                         403, "AccessForbidden")
        self.assertError(self.preflight("/bucket/k", "https://evil.test", "GET"), 403, "AccessForbidden")
        self.assertError(self.preflight("/bucket/k", "https://app.example.com", None), 403, "AccessForbidden")
        self.assertError(self.preflight("/bucket/k", "https://app.example.com", "get"), 403, "AccessForbidden")

    def test_noOrigin(self) -> None:
        """A preflight without Origin: 400 BadRequest."""
        result = self.preflight("/bucket", None)
        self.assertError(result, 400, "BadRequest")
        self.assertEqual(ElementTree.fromstring(result[2]).findtext("Message"),
                         "Insufficient information. Origin request header needed.")

    def test_noConfiguration(self) -> None:
        """A bucket without rules, or no bucket at all: 403 AccessForbidden."""
        self.createBucket("plain")
        result = self.preflight("/plain", "https://app.example.com", "PUT")
        self.assertError(result, 403, "AccessForbidden")
        document = ElementTree.fromstring(result[2])
        self.assertEqual(document.findtext("Message"), "CORSResponse: CORS is not enabled for this bucket.")
        self.assertEqual((document.findtext("Method"), document.findtext("ResourceType")), ("PUT", "BUCKET"))
        result = self.preflight("/nosuchbucket/k", "https://app.example.com")
        self.assertEqual(ElementTree.fromstring(result[2]).findtext("Message"), "CORSResponse: Bucket not found")


class ActualRequestTests(CORSTestCase):
    """CORS headers on requests other than preflights."""

    def setUp(self) -> None:
        super().setUp()
        self.assertEqual(self.putCors()[0], 200)
        self.assertEqual(self.request("PUT", "/bucket/k", b"data")[0], 200)

    def test_matchingOrigin(self) -> None:
        """A GET from an allowed origin carries the rule's headers."""
        status, headers, body = self.request("GET", "/bucket/k", headers={"Origin": "https://app.example.com"})
        self.assertEqual((status, body), (200, b"data"))
        self.assertEqual(headers["access-control-allow-origin"], "https://app.example.com")
        self.assertEqual(headers["access-control-allow-credentials"], "true")
        self.assertEqual(headers["access-control-allow-methods"], "GET, PUT")
        self.assertEqual(headers["access-control-expose-headers"], "ETag, x-amz-request-id")
        self.assertEqual(headers["vary"], VARY)

    def test_errorResponses(self) -> None:
        """Errors carry them too, so that the page can read the error."""
        result = self.request("GET", "/bucket/missing", headers={"Origin": "https://app.example.com"})
        self.assertError(result, 404, "NoSuchKey")
        self.assertEqual(result[1]["access-control-allow-origin"], "https://app.example.com")
        result = self.request("GET", "/bucket/k", headers={"Origin": "https://app.example.com"}, creds=None)
        self.assertError(result, 403, "AccessDenied")
        self.assertEqual(result[1]["access-control-allow-origin"], "https://app.example.com")

    def test_noHeaders(self) -> None:
        """No Origin, another origin, or a method no rule allows: no CORS headers."""
        for headers, method in (({}, "GET"), ({"Origin": "https://evil.test"}, "GET"),
                                ({"Origin": "https://app.example.com"}, "DELETE")):
            _, got, _ = self.request(method, "/bucket/k", headers=headers)
            self.assertNotIn("access-control-allow-origin", got)

    def test_requestHeadersIgnored(self) -> None:
        """Access-Control-Request-Headers plays no part outside preflights (as on S3)."""
        _, headers, _ = self.request("GET", "/bucket/k", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Headers": "authorization"})
        self.assertEqual(headers["access-control-allow-origin"], "https://app.example.com")


class MatchingTests(SynchronousTestCase):
    """The rule model on its own."""

    def test_firstMatchingRuleWins(self) -> None:
        """Rules are tried in order."""
        rules = (CORSRule(("https://a.test",), ("GET",), maxAge=1), CORSRule(("*",), ("GET",), maxAge=2))
        self.assertEqual(matchRule(rules, "https://a.test", "GET"), rules[0])
        self.assertEqual(matchRule(rules, "https://b.test", "GET"), rules[1])
        self.assertIsNone(matchRule(rules, "https://b.test", "PUT"))

    def test_headerWildcards(self) -> None:
        """AllowedHeader patterns match case-insensitively, with C{*} anywhere."""
        rule = CORSRule(("*",), ("GET",), headers=("X-Amz-*", "*-token", "content-type"))
        self.assertTrue(rule.allowsHeader("x-amz-date"))
        self.assertTrue(rule.allowsHeader("my-token"))
        self.assertTrue(rule.allowsHeader("Content-Type"))
        self.assertFalse(rule.allowsHeader("authorization"))
        self.assertFalse(CORSRule(("*",), ("GET",)).allowsHeader("content-type"))
        self.assertTrue(CORSRule(("*",), ("GET",), headers=("*",)).allowsHeader("anything"))

    def test_storedForm(self) -> None:
        """The JSON stored in the bucket record reads back to the same rules."""
        rules = parseCORSConfiguration(CONFIG)
        self.assertEqual(rulesFromJSON(rulesToJSON(rules)), rules)

