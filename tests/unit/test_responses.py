"""Tests for L{fasterstore.s3.responses}."""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import HTTPChannel

from fasterstore.s3.responses import S3Headers


class S3HeadersTests(SynchronousTestCase):
    """x-amz-* names go on the wire in lower case, others as twisted writes them."""

    def test_wireNames(self) -> None:
        """The bytes written by the channel carry lower-case x-amz-* names."""
        headers = S3Headers()
        headers.setRawHeaders(b"x-amz-meta-Color", [b"blue"])
        headers.setRawHeaders(b"content-type", [b"text/plain"])
        channel = HTTPChannel()
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.writeHeaders(b"HTTP/1.1", b"200", b"OK", headers)
        wire = transport.value()
        self.assertIn(b"\r\nx-amz-meta-color: blue\r\n", wire)
        self.assertIn(b"\r\nContent-Type: text/plain\r\n", wire)
