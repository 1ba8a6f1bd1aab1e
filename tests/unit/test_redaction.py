"""
Tests for L{fasterstore.http.redaction}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.http.redaction import redactURI


class RedactURITests(SynchronousTestCase):
    """Signatures never reach a log line."""

    def test_sigV4(self) -> None:
        """X-Amz-Signature's value goes; the rest of the query stays."""
        uri = b"/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc123&x-id=GetObject"
        self.assertEqual(
            redactURI(uri), b"/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=REDACTED&x-id=GetObject"
        )

    def test_sigV2AndToken(self) -> None:
        """SigV2's Signature and a session token go too, whatever their case."""
        uri = b"/b/k?AWSAccessKeyId=AK&Signature=a%2Bb&Expires=1&x-amz-security-token=T"
        self.assertEqual(redactURI(uri), b"/b/k?AWSAccessKeyId=AK&Signature=REDACTED&Expires=1&x-amz-security-token=REDACTED")

    def test_pathUntouched(self) -> None:
        """A key that merely contains the word is not changed."""
        self.assertEqual(redactURI(b"/b/Signature=x"), b"/b/Signature=x")
        self.assertEqual(redactURI(b"/b/k?mySignature=x"), b"/b/k?mySignature=x")

    @given(st.binary(max_size=40).filter(lambda s: b"&" not in s and b"#" not in s))
    def test_neverLeaks(self, secret: bytes) -> None:
        """No signature value survives, whatever bytes it holds."""
        uri = b"/b/k?a=1&X-Amz-Signature=" + secret + b"&b=2"
        redacted = redactURI(uri)
        self.assertEqual(redacted, b"/b/k?a=1&X-Amz-Signature=REDACTED&b=2")
