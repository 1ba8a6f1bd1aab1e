"""
Slow and excess clients against the real ``twistd -n fasterstore``, with raw
sockets: a dripped request head is cut off by the head deadline, a trickled
body by the minimum upload rate, a connection past ``--max-connections`` gets
``503 SlowDown`` while the open ones carry on, and a bare-LF request is
refused at once.  The server runs with small limits so that each test takes
about a second.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import time
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

from tests.integration.harness import (
    ServerTestCase,
    canonicalPath,
    rawRequest,
    s3Path,
    splitTarget,
    uniqueBody,
)

HEADER_TIMEOUT = 1.0
MIN_RATE = 1000
WINDOW = 1.0
MAX_CONNECTIONS = 3
READY = "/_fasterstore/health/ready"


class _Buffered(io.RawIOBase):
    """Bytes already read from a socket, for http.client to parse."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class _FakeSocket:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_Buffered(self._data))


def parse(data: bytes, method: str = "GET") -> Tuple[int, Dict[str, str], bytes]:
    """One response from raw bytes: status, lower-case headers, body."""
    response = http.client.HTTPResponse(_FakeSocket(data), method=method)  # type: ignore[arg-type]
    response.begin()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def code(body: bytes) -> Optional[str]:
    """The <Code> of an S3 error document."""
    return ET.fromstring(body).findtext("Code")


def readUntilClosed(sock: socket.socket, timeout: float) -> Tuple[bytes, Optional[float]]:
    """Everything the server sends until it closes; and when it closed (monotonic), or None on timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, None
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data, time.monotonic()
        if not chunk:
            return data, time.monotonic()
        data += chunk


def readOneResponse(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """The bytes of one complete response (framed by Content-Length) on a kept-alive connection."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if separator:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) >= length:
                return data
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no complete response within {timeout}s: {data!r}")
        readable, _, _ = select.select([sock], [], [], left)
        if readable:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


class SlowClientTests(ServerTestCase):
    """The connection bounds, on one server started with small limits."""

    serverOptions = {
        "extraArgs": [
            "--header-timeout", str(HEADER_TIMEOUT),
            "--min-upload-rate", str(MIN_RATE),
            "--upload-rate-window", str(WINDOW),
            "--max-connections", str(MAX_CONNECTIONS),
        ]
    }

    def setUp(self) -> None:
        self.server = self.sharedServer()
        self.sockets: List[socket.socket] = []

        def closeAll() -> None:
            for sock in self.sockets:
                sock.close()

        self.addCleanup(closeAll)

    def open(self) -> socket.socket:
        """A new connection to the server, closed at cleanup."""
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        self.sockets.append(sock)
        return sock

    def readyRequest(self) -> bytes:
        return f"GET {READY} HTTP/1.1\r\nHost: {self.server.host}\r\n\r\n".encode()

    def test_drippingHeadCutOff(self) -> None:
        """
        A client sending its head one byte every 0.1 s (each byte would reset
        the idle timeout) is answered 400 RequestTimeout and disconnected
        once --header-timeout has passed since it connected.
        """
        sock = self.open()
        started = time.monotonic()
        sock.sendall(f"GET {READY} HTTP/1.1\r\nHost: {self.server.host}\r\n".encode())
        answer = b""
        closedAt: Optional[float] = None
        while time.monotonic() - started < 10:
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                answer, closedAt = readUntilClosed(sock, 5)
                break
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                answer, closedAt = readUntilClosed(sock, 5)
                break
        self.assertIsNotNone(closedAt, f"the dripping client was never disconnected: {answer!r}")
        assert closedAt is not None
        elapsed = closedAt - started
        self.assertGreaterEqual(elapsed, HEADER_TIMEOUT * 0.9)
        self.assertLess(elapsed, HEADER_TIMEOUT + 3)
        status, headers, body = parse(answer)
        self.assertEqual(status, 400)
        self.assertEqual(code(body), "RequestTimeout")
        self.assertEqual(headers.get("connection"), "close")

    def test_tricklingBodyCutOff(self) -> None:
        """
        A signed PUT whose body trickles at 100 B/s, a tenth of
        --min-upload-rate, is answered 400 RequestTimeout within about a
        window and leaves no object; an ordinary upload still works.
        """
        bucket = self.bucketName("slow")
        self.assertEqual(rawRequest(self.server, "PUT", "/" + bucket).status, 200)
        target = s3Path(bucket, "trickled")
        headers = {"host": self.server.host, "content-length": "100000"}
        path, query = splitTarget(target)
        self.server.signer().signHeaders("PUT", canonicalPath(path), query, headers, "UNSIGNED-PAYLOAD")
        head = f"PUT {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock = self.open()
        sock.sendall(head.encode())
        started = time.monotonic()
        answer = b""
        closedAt: Optional[float] = None
        while time.monotonic() - started < 10:
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                answer, closedAt = readUntilClosed(sock, 5)
                break
            try:
                sock.sendall(b"x" * 10)
            except (BrokenPipeError, ConnectionResetError):
                answer, closedAt = readUntilClosed(sock, 5)
                break
        self.assertIsNotNone(closedAt, f"the trickling upload was never cut off: {answer!r}")
        assert closedAt is not None
        self.assertLess(closedAt - started, WINDOW + 3)
        status, responseHeaders, body = parse(answer)
        self.assertEqual(status, 400, body)
        self.assertEqual(code(body), "RequestTimeout")
        self.assertEqual(responseHeaders.get("connection"), "close")
        self.assertEqual(rawRequest(self.server, "HEAD", target).status, 404)
        data = uniqueBody(256 * 1024, "fast")
        self.assertEqual(rawRequest(self.server, "PUT", s3Path(bucket, "fast"), body=data).status, 200)
        self.assertEqual(rawRequest(self.server, "GET", s3Path(bucket, "fast")).body, data)

    def openServed(self, count: int, timeout: float = 10.0) -> List[socket.socket]:
        """
        C{count} kept-alive connections, each of which has been served a
        request (connections the server has not yet seen closed may still
        count for a moment: retry until all are served).
        """
        deadline = time.monotonic() + timeout
        while True:
            served: List[socket.socket] = []
            for _ in range(count):
                sock = self.open()
                sock.sendall(self.readyRequest())
                status, _, _ = parse(readOneResponse(sock))
                if status != 200:
                    break
                served.append(sock)
            if len(served) == count:
                return served
            for sock in self.sockets:
                sock.close()
            self.sockets.clear()
            if time.monotonic() > deadline:
                raise AssertionError(f"could not get {count} connections served")
            time.sleep(0.05)

    def test_connectionLimit(self) -> None:
        """
        With --max-connections 3 open and served, a fourth connection is
        answered 503 SlowDown (Retry-After: 1, Connection: close) and closed;
        the three keep working; once one closes, a new one is served.
        """
        served = self.openServed(MAX_CONNECTIONS)
        extra = self.open()
        extra.sendall(self.readyRequest())
        answer, closedAt = readUntilClosed(extra, 5)
        self.assertIsNotNone(closedAt, f"the refused connection stayed open: {answer!r}")
        status, headers, body = parse(answer)
        self.assertEqual(status, 503)
        self.assertEqual(code(body), "SlowDown")
        self.assertEqual(headers.get("retry-after"), "1")
        self.assertEqual(headers.get("connection"), "close")
        for sock in served:
            sock.sendall(self.readyRequest())
            self.assertEqual(parse(readOneResponse(sock))[0], 200)
        served[0].close()
        deadline = time.monotonic() + 5
        while True:
            sock = self.open()
            sock.sendall(self.readyRequest())
            status = parse(readOneResponse(sock))[0]
            if status == 200:
                break
            self.assertEqual(status, 503)
            self.assertLess(time.monotonic(), deadline, "the freed slot was never reused")
            time.sleep(0.05)

    def test_bareLineFeedRefused(self) -> None:
        """
        A request whose lines end in a bare LF is answered 400 BadRequest at
        once (not by the head deadline, let alone the 120 s idle timeout) and
        the connection is closed.
        """
        sock = self.open()
        started = time.monotonic()
        sock.sendall(f"GET {READY} HTTP/1.1\nHost: {self.server.host}\n\n".encode())
        answer, closedAt = readUntilClosed(sock, 5)
        self.assertIsNotNone(closedAt, f"the connection stayed open: {answer!r}")
        assert closedAt is not None
        self.assertLess(closedAt - started, HEADER_TIMEOUT / 2)
        status, headers, body = parse(answer)
        self.assertEqual(status, 400)
        self.assertEqual(code(body), "BadRequest")
        self.assertEqual(headers.get("connection"), "close")
