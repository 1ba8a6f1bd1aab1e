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

    def test_rendersResourceFoundAtHeaders(self) -> None:
        """
        The resource chosen at header time renders the request, without a
        second traversal or twisted.web's query parsing (it routes on the
        raw URI); the response has a Date and a Server header.
        """
        leaf = StreamingLeaf()
        root = Resource()
        root.putChild(b"mount", leaf)
        rendered: List[StreamingRequest] = []
        render = leaf.render

        def recording(request: StreamingRequest) -> object:
            rendered.append(request)
            return render(request)

        leaf.render = recording  # type: ignore[method-assign]
        channel, transport = connect(root)
        channel.dataReceived(b"GET /mount/b/k?a=1&b=%2F HTTP/1.1\r\nHost: x\r\n\r\n")
        [request] = rendered
        self.assertEqual(request.args, {})
        self.assertEqual((request.prepath, request.postpath), ([b"mount"], [b"b", b"k"]))
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"), out)
        self.assertIn(b"\r\nDate: ", out)
        self.assertIn(b"\r\nServer: TwistedWeb/", out)

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



@implementer(IBodyReceiver)
class ChoosingLeaf(StreamingLeaf):
    """A leaf whose receiver is chosen later, as when choosing needs I/O."""

    def __init__(self) -> None:
        super().__init__()
        self.choice: Deferred[Optional[IBodyReceiver]] = Deferred()

    def bodyReceiver(self, request: StreamingRequest) -> "Deferred[Optional[IBodyReceiver]]":  # type: ignore[override]
        self.seenAtHeaders.append(request.method + b" " + request.uri)
        return self.choice


class DeferredChoiceTests(SynchronousTestCase):
    """A receiver chosen asynchronously: reading stops and what arrived is held."""

    def test_heldThenDelivered(self) -> None:
        """A body complete before the choice reaches the receiver in order, then renders."""
        leaf = ChoosingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        self.assertEqual(transport.producerState, "paused")
        channel.dataReceived(b"def")
        self.assertEqual(leaf.receiver.chunks, [])
        self.assertEqual(transport.value(), b"")
        leaf.choice.callback(leaf.receiver)
        self.assertEqual(leaf.receiver.chunks, [b"abc", b"def"])
        self.assertEqual(transport.producerState, "producing")
        self.assertIn(b"\r\n\r\nabc|def", transport.value())

    def test_restArrivesAfter(self) -> None:
        """After the choice, reading resumes and later chunks stream as usual."""
        leaf = ChoosingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        leaf.choice.callback(leaf.receiver)
        self.assertEqual(transport.producerState, "producing")
        channel.dataReceived(b"cd")
        self.assertIn(b"ab|cd", transport.value())

    def test_noReceiverBuffersAsUsual(self) -> None:
        """Choosing no receiver falls back to twisted.web's buffering, held bytes included."""
        leaf = ChoosingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz")
        leaf.choice.callback(None)
        self.assertTrue(transport.value().endswith(b"\r\n\r\nxyz"))

    def test_refusedLater(self) -> None:
        """An L{EarlyResponse} failure answers at once and closes; held bytes go nowhere."""
        leaf = ChoosingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nabc")
        leaf.choice.errback(EarlyResponse(403, {}, b"<Error/>"))
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 403 Forbidden\r\n"), out)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(leaf.receiver.chunks, [])

    def test_clientLeftMeanwhile(self) -> None:
        """A receiver chosen after the client left is told at once."""
        leaf = ChoosingLeaf()
        channel, transport = connect(leaf)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        channel.connectionLost(Failure(ConnectionError("gone")))
        leaf.choice.callback(leaf.receiver)
        self.assertIsNotNone(leaf.receiver.lost)
        self.assertEqual(leaf.receiver.chunks, [])


class RefusingReceiver(RecordingReceiver):
    """Refuses the body, with C{error}, once C{after} bytes have come."""

    def __init__(self, after: int, error: BaseException) -> None:
        super().__init__()
        self.after = after
        self.error = error
        self.lostCount = 0

    def dataReceived(self, data: bytes) -> Optional[Deferred[None]]:
        self.chunks.append(data)
        if sum(map(len, self.chunks)) >= self.after:
            raise self.error
        return self.wait

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason
        self.lostCount += 1


def splitResponse(data: bytes) -> tuple:
    """(status line, header lines, body) of one response, checking Content-Length frames the body."""
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, data
    lines = head.split(b"\r\n")
    lengths = [line for line in lines[1:] if line.lower().startswith(b"content-length:")]
    assert len(lengths) == 1, lines
    assert int(lengths[0].split(b":", 1)[1]) == len(body), (lengths, body)
    return lines[0], lines[1:], body


class MidBodyEarlyResponseTests(SynchronousTestCase):
    """A receiver may refuse a body part way through by raising EarlyResponse."""

    def refusing(self, error: BaseException, after: int = 4) -> tuple:
        """A leaf whose receiver refuses after C{after} bytes, and a connection to it."""
        leaf = StreamingLeaf()
        leaf.receiver = RefusingReceiver(after, error)
        channel, transport = connect(leaf)
        return leaf, channel, transport

    def test_answeredAndClosed(self) -> None:
        """
        The answer goes out complete and well-formed, reading stops, the
        connection closes, and nothing more reaches the receiver.
        """
        early = EarlyResponse(400, {b"Content-Type": b"application/xml"}, b"<Error><Code>X</Code></Error>")
        leaf, channel, transport = self.refusing(early)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(b"cd")
        status, headers, body = splitResponse(transport.value())
        self.assertEqual(status, b"HTTP/1.1 400 Bad Request")
        self.assertIn(b"Connection: close", headers)
        self.assertIn(b"Content-Type: application/xml", headers)
        self.assertEqual(body, b"<Error><Code>X</Code></Error>")
        self.assertEqual(transport.producerState, "paused")
        self.assertTrue(transport.disconnecting)
        channel.dataReceived(b"e" * 96)
        self.assertEqual(leaf.receiver.chunks, [b"ab", b"cd"])
        self.assertEqual(leaf.seenAtHeaders, [b"PUT /b/k"])

    def test_receiverToldOnce(self) -> None:
        """
        The receiver's connectionLost gets the very EarlyResponse it raised,
        at once, and is not called again when the connection goes.
        """
        early = EarlyResponse(413, {}, b"")
        leaf, channel, transport = self.refusing(early)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabcd")
        receiver = leaf.receiver
        assert isinstance(receiver, RefusingReceiver)
        self.assertEqual(receiver.lostCount, 1)
        assert receiver.lost is not None
        self.assertIs(receiver.lost.value, early)
        channel.connectionLost(Failure(ConnectionError("gone")))
        self.assertEqual(receiver.lostCount, 1)
        self.assertIs(receiver.lost.value, early)

    def test_afterContinue(self) -> None:
        """After an interim 100 Continue, the early answer is a complete second response."""
        leaf, channel, transport = self.refusing(EarlyResponse(400, {}, b"no"))
        channel.dataReceived(
            b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n"
        )
        self.assertEqual(transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        channel.dataReceived(b"abcd")
        final = transport.value()[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        status, _, body = splitResponse(final)
        self.assertEqual((status, body), (b"HTTP/1.1 400 Bad Request", b"no"))

    def test_headersSanitised(self) -> None:
        """
        The request sets Content-Length and Connection itself (whatever their
        case in the given headers), and CR/LF cannot split a header.
        """
        early = EarlyResponse(
            400,
            {b"content-length": b"999", b"CONNECTION": b"keep-alive", b"X-Evil": b"a\r\nSet-Cookie: b"},
            b"body",
        )
        leaf, channel, transport = self.refusing(early)
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabcd")
        _, headers, body = splitResponse(transport.value())
        self.assertEqual(body, b"body")
        self.assertEqual([h for h in headers if h.lower().startswith(b"connection")], [b"Connection: close"])
        self.assertIn(b"X-Evil: a  Set-Cookie: b", headers)
        self.assertFalse(any(h.startswith(b"Set-Cookie") for h in headers))

    def test_unexpectedError(self) -> None:
        """A receiver failing otherwise is logged and answered 500; it hears its own error."""
        leaf, channel, transport = self.refusing(ZeroDivisionError("oops"))
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabcd")
        status, _, body = splitResponse(transport.value())
        self.assertEqual((status, body), (b"HTTP/1.1 500 Internal Server Error", b""))
        self.assertTrue(transport.disconnecting)
        assert leaf.receiver.lost is not None
        self.assertIsInstance(leaf.receiver.lost.value, ZeroDivisionError)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_noResumeAfterAnswer(self) -> None:
        """A pause still pending when the body is refused never resumes reading."""
        leaf, channel, transport = self.refusing(EarlyResponse(400, {}, b""), after=4)
        wait: Deferred[None] = Deferred()
        leaf.receiver.wait = wait
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        self.assertEqual(transport.producerState, "paused")
        channel.dataReceived(b"cd")
        self.assertTrue(transport.disconnecting)
        wait.callback(None)
        self.assertEqual(transport.producerState, "paused")

    def test_headEarlyAnswerHasNoBody(self) -> None:
        """An early answer to HEAD carries its length but no body."""
        leaf = StreamingLeaf()
        leaf.early = EarlyResponse(403, {}, b"<Error/>")
        channel, transport = connect(leaf)
        channel.dataReceived(b"HEAD /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        out = transport.value()
        self.assertTrue(out.startswith(b"HTTP/1.1 403 Forbidden\r\n"), out)
        self.assertIn(b"Content-Length: 8\r\n", out)
        self.assertTrue(out.endswith(b"\r\n\r\n"), out)
