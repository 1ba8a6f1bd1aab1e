"""
What the real ``twistd -n fasterstore`` admits: a presigned upload URL cannot
be turned into a read of another object with unsigned ``x-amz-*`` headers
(issue 7 item 1), and bodies nobody wants are answered before they are read
(item 5).  Raw sockets, so that nothing between the test and the server
rewrites the request.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from typing import Tuple
from urllib.parse import urlsplit
from xml.etree import ElementTree

from tests.integration.harness import ServerTestCase
from tests.integration.test_slow_clients import parse, readUntilClosed


class AdmissionTests(ServerTestCase):
    """One shared server; each test uses its own bucket."""

    def setUp(self) -> None:
        self.server = self.sharedServer()
        self.s3 = self.server.client()
        #: Presigned SigV4 URLs (SignedHeaders=host), as the issue found them.
        self.presigner = self.server.client(signature_version="s3v4")
        self.bucket = "admission-" + "".join(ch for ch in self.id().rsplit(".", 1)[-1].lower() if ch.isalnum())
        self.s3.create_bucket(Bucket=self.bucket)
        self.s3.put_object(Bucket=self.bucket, Key="secret.txt", Body=b"the secret")

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.server.host.rsplit(":", 1)[0], self.server.port), timeout=10)
        self.addCleanup(sock.close)
        return sock

    def target(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path + ("?" + parts.query if parts.query else "")

    def exchange(self, head: bytes, body: bytes = b"", timeout: float = 10) -> Tuple[int, bytes, bool]:
        """Send a head (and body); the status, body, and whether the server closed."""
        sock = self.connect()
        sock.sendall(head + body)
        data, closedAt = readUntilClosed(sock, timeout)
        status, _, content = parse(data)
        return status, content, closedAt is not None

    def test_presignedPutWithCopySource(self) -> None:
        """
        A presigned PUT URL sent with an unsigned x-amz-copy-source is
        refused (403 AccessDenied, HeadersNotSigned); the matching presigned
        GET then finds nothing.
        """
        put = self.presigner.generate_presigned_url("put_object", Params={"Bucket": self.bucket, "Key": "upload.txt"})
        head = (
            f"PUT {self.target(put)} HTTP/1.1\r\nHost: {self.server.host}\r\n"
            f"x-amz-copy-source: {self.bucket}/secret.txt\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode()
        status, content, _ = self.exchange(head)
        self.assertEqual(status, 403, content)
        document = ElementTree.fromstring(content)
        self.assertEqual(document.findtext("Code"), "AccessDenied")
        self.assertEqual(document.findtext("HeadersNotSigned"), "x-amz-copy-source")
        get = self.presigner.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": "upload.txt"})
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(get, timeout=10)
        self.assertEqual(caught.exception.code, 404)

    def test_presignedPutAsSigned(self) -> None:
        """The same kind of URL used as signed uploads its body."""
        put = self.presigner.generate_presigned_url("put_object", Params={"Bucket": self.bucket, "Key": "upload.txt"})
        request = urllib.request.Request(put, data=b"mine", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 200)
        self.assertEqual(self.s3.get_object(Bucket=self.bucket, Key="upload.txt")["Body"].read(), b"mine")

    def test_reservedPathHugeBody(self) -> None:
        """
        300 MiB declared to a reserved path, without credentials: answered
        at once, before any of it is sent, and the connection closed.
        """
        started = time.monotonic()
        head = (
            f"POST /_fasterstore/health/live HTTP/1.1\r\nHost: {self.server.host}\r\n"
            f"Content-Length: {300 * 1024 * 1024}\r\n\r\n"
        ).encode()
        status, content, closed = self.exchange(head)
        self.assertEqual(status, 400, content)
        self.assertEqual(ElementTree.fromstring(content).findtext("Code"), "MaxMessageLengthExceeded")
        self.assertTrue(closed)
        self.assertLess(time.monotonic() - started, 5)

    def test_reservedPathChunkedBodyCutOff(self) -> None:
        """
        A chunked body to a reserved path is cut off once past the bound:
        the server answers and closes while the client still has megabytes
        to send.
        """
        sock = self.connect()
        sock.sendall(
            f"POST /_fasterstore/metrics HTTP/1.1\r\nHost: {self.server.host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
        sent = 0
        try:
            for _ in range(4096):  # up to 256 MiB; the server stops it long before
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, closedAt = readUntilClosed(sock, 10)
        self.assertIsNotNone(closedAt)
        self.assertLess(sent, 64 * 1024 * 1024)
        if data:
            status, _, content = parse(data)
            self.assertEqual(status, 400, content)
