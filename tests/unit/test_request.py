"""Tests for L{fasterstore.http.request}, through a real HTTPChannel."""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from fasterstore.http.request import EarlyResponse, IBodyReceiver, IStreamingBodyResource, StreamingRequest


@implementer(IBodyReceiver)
class RecordingReceiver:
    """Keeps the chunks; can ask for a pause."""

    def __init__(self) -> None:
        self.chunks: List[bytes] = []
        self.lost: Optional[Failure] = None
        self.wait: Optional[Deferred[None]] = None

    def dataReceived(self, data: bytes) -> Optional[Deferred[None]]:
        self.chunks.append(data)
        return self.wait

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason


@implementer(IStreamingBodyResource)
class StreamingLeaf(Resource):
    """A leaf that streams PUT bodies and answers with what it got."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.receiver = RecordingReceiver()
        self.early: Optional[EarlyResponse] = None
        self.seenAtHeaders: List[bytes] = []

    def bodyReceiver(self, request: StreamingRequest) -> Optional[IBodyReceiver]:
        self.seenAtHeaders.append(request.method + b" " + request.uri)
        if self.early is not None:
            raise self.early
        return self.receiver if request.method == b"PUT" else None

    def render(self, request: StreamingRequest) -> object:
        body = b"|".join(self.receiver.chunks) if request.bodyReceiver else request.content.read()
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()
        return NOT_DONE_YET


def connect(resource: Resource) -> tuple:
    site = Site(resource)
    site.requestFactory = StreamingRequest
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


class StreamingRequestTests(SynchronousTestCase):
    """Bodies reach the receiver as they arrive, with backpressure."""

    def test_chunksStream(self) -> None:
        """Each body chunk reaches the receiver before the request renders."""
        leaf = StreamingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        self.assertEqual(leaf.seenAtHeaders, [b"PUT /b/k"])
        channel.dataReceived(b"abc")
        self.assertEqual(leaf.receiver.chunks, [b"abc"])
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"def")
        self.assertIn(b"\r\n\r\nabc|def", transport.value())

    def test_backpressure(self) -> None:
        """A receiver's Deferred pauses the transport until it fires."""
        leaf = StreamingLeaf()
        leaf.receiver.wait = Deferred()
        channel, transport = connect(leaf)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        self.assertEqual(transport.producerState, "paused")
        wait, leaf.receiver.wait = leaf.receiver.wait, None
        wait.callback(None)
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(b"cd")
        self.assertIn(b"ab|cd", transport.value())

    def test_earlyResponse(self) -> None:
        """
        An early answer goes out before the body, instead of C{100 Continue},
        and closes the connection.
        """
        leaf = StreamingLeaf()
        leaf.early = EarlyResponse(403, {b"Content-Type": b"application/xml"}, b"<Error/>")
        channel, transport = connect(leaf)
        channel.dataReceived(
            b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n"
        )
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 403 Forbidden\r\n"), out)
        self.assertNotIn(b"100 Continue", out)
        self.assertIn(b"Connection: close", out)
        self.assertTrue(out.endswith(b"\r\n\r\n<Error/>"))
        self.assertTrue(transport.disconnecting)
        channel.dataReceived(b"x" * 100)
        self.assertEqual(leaf.receiver.chunks, [])

    def test_connectionLost(self) -> None:
        """A body cut short tells the receiver, which can release its bytes."""
        leaf = StreamingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        channel.connectionLost(Failure(ConnectionError("gone")))
        self.assertIsNotNone(leaf.receiver.lost)

    def test_stockBehaviourWithoutReceiver(self) -> None:
        """Without a receiver, twisted.web buffers the body as usual."""
        leaf = StreamingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz")
        self.assertTrue(transport.value().endswith(b"\r\n\r\nxyz"))

    def test_chunkedTransfer(self) -> None:
        """Chunked transfer coding is decoded before the receiver sees it."""
        leaf = StreamingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(
            b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        self.assertEqual(b"".join(leaf.receiver.chunks), b"abcde")
        self.assertIn(b"abc|de", transport.value())

