"""
Tests for L{fasterstore.http.channel} (head deadline, minimum upload rate,
bare-LF refusal, head size, connection bound) and the access log of
L{fasterstore.service._Site}, driven through a real Site, channel and
L{StreamingRequest} over a L{StringTransport} with a L{MemoryReactorClock}.

Every suite runs against both HTTP channels, twisted.web's
(L{GuardedChannel}) and httptools' (L{fasterstore.http.lean.LeanChannel}):
each C{...TestsMixin} holds the behaviour, and a C{...TwistedTests} and a
C{...LeanTests} class run it on one channel each.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Tuple
from unittest import mock

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from fasterstore.http.channel import (
    OVERFLOW_ABORT,
    OVERFLOW_LINGER,
    LARGE_BODY,
    LARGE_READ,
    OVERFLOW_LINGERING,
    ConnectionLimits,
    GuardedChannel,
    GuardedSite,
    defaultMaxConnections,
)
from fasterstore.http.request import EarlyResponse, IBodyReceiver, IStreamingBodyResource, StreamingRequest
from fasterstore.service import CHANNELS

IDLE = 120.0
PEER = IPv4Address("TCP", "192.0.2.7", 40000)


@implementer(IBodyReceiver)
class Receiver:
    """Keeps the body; may ask for a pause or refuse the body."""

    def __init__(self) -> None:
        self.chunks: List[bytes] = []
        self.lost: Optional[Failure] = None
        self.wait: Optional[Deferred[None]] = None
        self.refuseAt: Optional[int] = None

    def dataReceived(self, data: bytes) -> Optional[Deferred[None]]:
        self.chunks.append(data)
        if self.refuseAt is not None and sum(map(len, self.chunks)) >= self.refuseAt:
            raise EarlyResponse(400, {b"Content-Type": b"application/xml"}, b"<Error>refused</Error>")
        wait, self.wait = self.wait, None
        return wait

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason


@implementer(IStreamingBodyResource)
class Leaf(Resource):
    """Streams PUT bodies, buffers POST bodies (stock twisted.web), answers 200 with the body size."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.receiver = Receiver()
        self.rendered: List[bytes] = []
        #: When set, PUT's receiver is chosen asynchronously: this fires with it.
        self.choosing: Optional[Deferred[Optional[IBodyReceiver]]] = None

    def bodyReceiver(self, request: StreamingRequest) -> Any:
        if request.method != b"PUT":
            return None
        if self.choosing is not None:
            return self.choosing
        return self.receiver

    def render(self, request: StreamingRequest) -> object:
        self.rendered.append(request.uri)
        if request.bodyReceiver is not None:
            size = sum(map(len, self.receiver.chunks))
        else:
            assert request.content is not None
            size = len(request.content.read())
        body = b"%d" % size
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()
        return NOT_DONE_YET


class Connected:
    """One site, its clock and one connection to it, on channels of class C{protocol}."""

    def __init__(self, limits: ConnectionLimits, resource: Optional[Leaf] = None, protocol: Any = GuardedChannel) -> None:
        self.clock = MemoryReactorClock()
        self.leaf = resource if resource is not None else Leaf()
        self.site = GuardedSite(self.leaf, limits=limits, reactor=self.clock, timeout=IDLE, protocol=protocol)
        self.site.requestFactory = StreamingRequest
        self.channel, self.transport = self.connect()

    def connect(self) -> Tuple[Any, StringTransport]:
        """Another connection to the same site."""
        protocol = self.site.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def output(self) -> bytes:
        return self.transport.value()


class ChannelTestsMixin:
    """
    What a suite run on each channel needs: C{httpParser} (set by each
    concrete test case) names the channel, as C{--http-parser} does.
    """

    httpParser = "twisted"

    @property
    def protocol(self) -> Any:
        """The channel class under test."""
        return CHANNELS[self.httpParser]

    def connected(self, limits: ConnectionLimits, resource: Optional[Leaf] = None) -> Connected:
        """A site on the channel under test, and one connection to it."""
        return Connected(limits, resource, self.protocol)


def limits(**kw: Any) -> ConnectionLimits:
    """Limits for tests: a 20 s head deadline, 100 B/s over 10 s, no connection bound."""
    values: Dict[str, Any] = dict(headerTimeout=20.0, minUploadRate=100, uploadRateWindow=10.0, maxConnections=0)
    values.update(kw)
    return ConnectionLimits(**values)


def parseResponse(data: bytes) -> Tuple[int, Dict[bytes, List[bytes]], bytes]:
    """Status, headers (lower-case names) and body of one complete response, checking its framing."""
    head, separator, rest = data.partition(b"\r\n\r\n")
    assert separator, data
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers: Dict[bytes, List[bytes]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        headers.setdefault(name.lower(), []).append(value)
    length = int(headers[b"content-length"][0])
    assert len(rest) == length, (length, rest)
    return status, headers, rest


def errorCode(body: bytes) -> Optional[str]:
    """The <Code> of an S3 error document."""
    return ET.fromstring(body).findtext("Code")


HEAD = b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n"


class HeadDeadlineTestsMixin(ChannelTestsMixin):
    """A request head must be complete within --header-timeout."""

    def assertTimedOut(self, c: Connected, already: bytes = b"") -> None:
        """The connection got a 400 RequestTimeout S3 error and is closing."""
        out = c.output()[len(already) :]
        status, headers, body = parseResponse(out)
        self.assertEqual(status, 400)
        self.assertEqual(errorCode(body), "RequestTimeout")
        self.assertIn(b"not read from or written to within the timeout period", body)
        self.assertEqual(headers[b"connection"], [b"close"])
        self.assertTrue(c.transport.disconnecting)

    def test_silentConnection(self) -> None:
        """A connection that never sends a head is refused when the deadline passes, not before."""
        c = self.connected(limits())
        c.clock.advance(19.9)
        self.assertEqual(c.output(), b"")
        self.assertFalse(c.transport.disconnecting)
        c.clock.advance(0.2)
        self.assertTimedOut(c)

    def test_drippingHead(self) -> None:
        """
        A byte every 5 s resets the idle timeout but not the deadline: the
        drip is cut off 20 s after the connection opened.
        """
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\r\n")
        for byte in b"X-Slow: 0123":
            c.clock.advance(1.5)
            c.send(bytes([byte]))
        self.assertEqual(c.output(), b"")
        c.clock.advance(20.0 - 1.5 * 12 + 0.01)
        self.assertTimedOut(c)
        c.send(b"\r\n\r\n")
        self.assertEqual(c.leaf.rendered, [])

    def test_headInTime(self) -> None:
        """A head completed in time is served; the expired deadline does nothing after."""
        c = self.connected(limits())
        c.clock.advance(19.0)
        c.send(HEAD)
        self.assertEqual(c.leaf.rendered, [b"/b/k"])
        c.clock.advance(5.0)
        self.assertNotIn(b"RequestTimeout", c.output())
        self.assertFalse(c.transport.disconnecting)

    def test_idleBetweenRequests(self) -> None:
        """
        Between keep-alive requests only the idle timeout applies; the next
        request's deadline runs from its first byte.
        """
        c = self.connected(limits())
        c.send(HEAD)
        served = c.output()
        c.clock.advance(100.0)
        self.assertEqual(c.output(), served)
        self.assertFalse(c.transport.disconnecting)
        c.send(b"G")
        c.clock.advance(19.9)
        self.assertEqual(c.output(), served)
        c.clock.advance(0.2)
        self.assertTimedOut(c, served)

    def test_idleTimeoutStillApplies(self) -> None:
        """An idle keep-alive connection is closed by the idle timeout, without an answer."""
        c = self.connected(limits())
        c.send(HEAD)
        served = c.output()
        c.clock.advance(IDLE + 0.1)
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(c.output(), served)

    def test_pipelinedHead(self) -> None:
        """A partial head that arrived with the previous request is under a deadline too."""
        c = self.connected(limits())
        c.send(HEAD + b"GET /b/other HTTP/1.1\r\nHo")
        self.assertEqual(c.leaf.rendered, [b"/b/k"])
        served = c.output()
        c.clock.advance(20.1)
        self.assertTimedOut(c, served)

    def test_deadlineOff(self) -> None:
        """C{headerTimeout=0} turns the deadline off."""
        c = self.connected(limits(headerTimeout=0.0))
        c.send(b"GET /b/k HTTP/1.1\r\n")
        c.clock.advance(IDLE - 1)
        self.assertEqual(c.output(), b"")
        self.assertFalse(c.transport.disconnecting)

    def test_abortedIfAnswerNotTaken(self) -> None:
        """A refused client that never reads its answer is aborted abortTimeout seconds later."""
        c = self.connected(limits())
        c.clock.advance(20.1)
        self.assertTrue(c.transport.disconnecting)
        self.assertFalse(c.transport.disconnected)
        c.clock.advance(self.protocol.abortTimeout + 0.1)
        self.assertTrue(c.transport.disconnected)

    def test_timersStopOnConnectionLost(self) -> None:
        """A connection that goes away leaves no timer of ours behind."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        c.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(c.clock.getDelayedCalls(), [])


class BareLineFeedTestsMixin(ChannelTestsMixin):
    """Lines of a request head must end with CRLF; a bare LF is refused at once."""

    def assertRefused(self, c: Connected) -> None:
        """A 400 BadRequest S3 error went out and the connection is closing."""
        status, headers, body = parseResponse(c.output())
        self.assertEqual(status, 400)
        self.assertEqual(errorCode(body), "BadRequest")
        self.assertEqual(headers[b"connection"], [b"close"])
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(c.leaf.rendered, [])

    def test_bareLF(self) -> None:
        """A request written with LF only is answered 400 at once, without waiting for any timeout."""
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\nHost: x\n\n")
        self.assertRefused(c)

    def test_everySplit(self) -> None:
        """However a bare-LF request is split in two, the refusal comes when the LF arrives."""
        request = b"GET /b/k HTTP/1.1\nHost: x\n\n"
        first = request.index(b"\n")
        for cut in range(1, len(request)):
            c = self.connected(limits())
            c.send(request[:cut])
            if cut <= first:
                self.assertEqual(c.output(), b"", cut)
            c.send(request[cut:])
            self.assertRefused(c)

    def test_byteByByte(self) -> None:
        """A bare LF sent as a chunk of its own after a CR-less line is refused."""
        c = self.connected(limits())
        for byte in b"GET /b/k HTTP/1.1\nHost: x\n\n":
            c.send(bytes([byte]))
            if c.transport.disconnecting:
                break
        self.assertRefused(c)

    def test_crlfSplitAnywhere(self) -> None:
        """A proper CRLF request split anywhere (a CR ending one chunk) is served."""
        for cut in range(1, len(HEAD)):
            c = self.connected(limits())
            c.send(HEAD[:cut])
            c.send(HEAD[cut:])
            self.assertEqual(c.leaf.rendered, [b"/b/k"], cut)
            self.assertNotIn(b"BadRequest", c.output())

    def test_bareLFInLaterHeader(self) -> None:
        """A bare LF between CRLF-terminated lines is refused too."""
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\r\nHost: x\nX-Other: y\r\n\r\n")
        self.assertRefused(c)

    def test_bareLFInRequestLine(self) -> None:
        """A bare LF inside a CRLF-terminated request line is refused with a complete S3 error."""
        c = self.connected(limits())
        c.send(b"GET /b/k\nX HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertRefused(c)

    def test_bareLFAfterTarget(self) -> None:
        """
        A request line ended by a bare LF right after its target (HTTP/0.9
        style, which llhttp would take) is refused when the LF arrives.
        """
        c = self.connected(limits())
        c.send(b"GET /b/k\n")
        self.assertRefused(c)

    def test_bareCR(self) -> None:
        """A bare CR inside a head line is refused."""
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\r\nHost: x\rX: y\r\n\r\n")
        self.assertRefused(c)

    def test_bareCRSplit(self) -> None:
        """A bare CR is refused as soon as what follows it arrives, before the head is complete."""
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\r\nHost: x\r")
        self.assertEqual(c.output(), b"")
        c.send(b"X: y\r\n")
        self.assertRefused(c)

    def test_pipelinedBareLF(self) -> None:
        """A bare-LF request after a good one on the same connection is refused once the first is served."""
        c = self.connected(limits())
        c.send(HEAD + b"GET /b/two HTTP/1.1\nHost: x\n\n")
        self.assertEqual(c.leaf.rendered, [b"/b/k"])
        self.assertIn(b"BadRequest", c.output())
        self.assertTrue(c.transport.disconnecting)

    def test_lineFeedsInBody(self) -> None:
        """LF bytes in a body are data, not line ends."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\na\nb\n\n\n")
        self.assertEqual(b"".join(c.leaf.receiver.chunks), b"a\nb\n\n\n")
        self.assertTrue(c.output().endswith(b"\r\n\r\n6"))
        self.assertFalse(c.transport.disconnecting)

    def test_twistedRefusalsComplete(self) -> None:
        """twisted.web's own 400s (a malformed header) are complete S3 errors as well."""
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\r\nno colon here\r\n\r\n")
        self.assertRefused(c)


PUT_HEAD = b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"


class UploadRateTestsMixin(ChannelTestsMixin):
    """A body must average --min-upload-rate over each --upload-rate-window."""

    def assertCutOff(self, c: Connected) -> None:
        """The upload was answered 400 RequestTimeout and its connection is closing."""
        status, headers, body = parseResponse(c.output())
        self.assertEqual(status, 400)
        self.assertEqual(errorCode(body), "RequestTimeout")
        self.assertEqual(headers[b"connection"], [b"close"])
        self.assertTrue(c.transport.disconnecting)

    def trickle(self, c: Connected, perSecond: int, seconds: int) -> None:
        """Send C{perSecond} bytes, then let a second pass, C{seconds} times."""
        for _ in range(seconds):
            if c.transport.disconnecting:
                return
            c.send(b"x" * perSecond)
            c.clock.advance(1.0)

    def test_tooSlow(self) -> None:
        """50 B/s against a 100 B/s minimum is cut off at the end of the first window, and the receiver told."""
        c = self.connected(limits())
        c.send(PUT_HEAD)
        self.trickle(c, 50, 9)
        self.assertEqual(c.output(), b"")
        self.trickle(c, 50, 2)
        self.assertCutOff(c)
        c.channel.connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(c.leaf.receiver.lost)

    def test_fastEnough(self) -> None:
        """A body at twice the minimum runs for many windows and completes."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n")
        self.trickle(c, 200, 50)
        self.assertFalse(c.transport.disconnecting)
        self.assertTrue(c.output().endswith(b"\r\n\r\n10000"), c.output())

    def test_stallAfterGoodWindows(self) -> None:
        """Good windows earn nothing for later ones: a stall is cut off within a window."""
        c = self.connected(limits())
        c.send(PUT_HEAD)
        self.trickle(c, 200, 30)
        self.assertEqual(c.output(), b"")
        c.clock.advance(10.0)
        self.assertCutOff(c)

    def test_serverPauseNotCounted(self) -> None:
        """
        While the receiver holds the transport paused, the window's clock
        stops (and so does the idle timeout); it runs on, for what was left
        of the window, once reading resumes.
        """
        c = self.connected(limits())
        c.send(PUT_HEAD)
        c.clock.advance(3.0)
        wait: Deferred[None] = Deferred()
        c.leaf.receiver.wait = wait
        c.send(b"x" * 100)
        self.assertEqual(c.transport.producerState, "paused")
        c.clock.advance(500.0)
        self.assertEqual(c.output(), b"")
        self.assertFalse(c.transport.disconnecting)
        wait.callback(None)
        self.assertEqual(c.transport.producerState, "producing")
        c.clock.advance(6.9)
        self.assertEqual(c.output(), b"")
        c.clock.advance(0.2)
        self.assertCutOff(c)

    def test_pausedAtTheEnd(self) -> None:
        """
        A body whose last chunk pauses reading hands the idle timeout back
        to twisted: off while the request is handled, on again after it.
        """
        leaf = Leaf()
        hanging: List[StreamingRequest] = []

        def render(request: StreamingRequest) -> object:
            hanging.append(request)
            return NOT_DONE_YET

        leaf.render = render  # type: ignore[method-assign]
        c = self.connected(limits(), leaf)
        wait: Deferred[None] = Deferred()
        leaf.receiver.wait = wait
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        self.assertEqual(len(hanging), 1)
        c.clock.advance(500.0)
        wait.callback(None)
        c.clock.advance(500.0)
        self.assertFalse(c.transport.disconnecting)
        hanging[0].setHeader(b"Content-Length", b"0")
        hanging[0].finish()
        c.clock.advance(IDLE - 1)
        self.assertFalse(c.transport.disconnecting)
        c.clock.advance(2.0)
        self.assertTrue(c.transport.disconnecting)

    def test_smallBodyCompletesLate(self) -> None:
        """A body that completes before the window ends is never cut off, however slow."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        c.clock.advance(9.0)
        c.send(b"0123456789")
        c.clock.advance(30.0)
        self.assertTrue(c.output().endswith(b"\r\n\r\n10"))
        self.assertNotIn(b"RequestTimeout", c.output())

    def test_bufferedBodies(self) -> None:
        """Bodies twisted.web buffers itself (no receiver) are metered too."""
        c = self.connected(limits())
        c.send(b"POST /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        self.trickle(c, 10, 11)
        self.assertCutOff(c)

    def test_chunkedBodies(self) -> None:
        """A chunked body that stalls is cut off like any other."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        c.clock.advance(10.1)
        self.assertCutOff(c)

    def test_rateOff(self) -> None:
        """C{minUploadRate=0} turns the check off."""
        c = self.connected(limits(minUploadRate=0))
        c.send(PUT_HEAD)
        self.trickle(c, 1, 100)
        self.assertEqual(c.output(), b"")
        self.assertFalse(c.transport.disconnecting)

    def test_receiverBeingChosen(self) -> None:
        """
        While the resource is still choosing the body's receiver (its I/O,
        not the client's), the window's clock stands still; it runs once
        the receiver is chosen and reading resumes.
        """
        leaf = Leaf()
        leaf.choosing = Deferred()
        c = self.connected(limits(), leaf)
        c.send(PUT_HEAD)
        self.assertEqual(c.transport.producerState, "paused")
        c.clock.advance(500.0)
        self.assertFalse(c.transport.disconnecting)
        leaf.choosing.callback(leaf.receiver)
        self.assertEqual(c.transport.producerState, "producing")
        c.clock.advance(9.9)
        self.assertEqual(c.output().count(b"RequestTimeout"), 0)
        c.clock.advance(0.2)
        self.assertCutOff(c)

    def test_earlyAnswerStopsMeter(self) -> None:
        """
        A receiver refusing the body mid-way closes through the channel: the
        meter stops, and a client that never takes the answer is aborted.
        """
        c = self.connected(limits())
        c.leaf.receiver.refuseAt = 3
        c.send(PUT_HEAD + b"abc")
        status, _, body = parseResponse(c.output())
        self.assertEqual((status, body), (400, b"<Error>refused</Error>"))
        self.assertTrue(c.transport.disconnecting)
        answered = c.output()
        c.clock.advance(11.0)
        self.assertEqual(c.output(), answered)
        self.assertFalse(c.transport.disconnected)
        c.clock.advance(self.protocol.abortTimeout)
        self.assertTrue(c.transport.disconnected)


class ConnectionLimitTestsMixin(ChannelTestsMixin):
    """Past --max-connections a new connection gets 503 SlowDown; open ones carry on."""

    def test_overLimit(self) -> None:
        """
        The third connection on a site limited to two is answered 503
        SlowDown with Retry-After, without its request being parsed, and
        closed after the linger; the first two still serve requests.
        """
        c = self.connected(limits(maxConnections=2))
        second, secondTransport = c.connect()
        self.assertEqual(c.site.openConnections, 2)
        third, thirdTransport = c.connect()
        self.assertNotIsInstance(third, self.protocol)
        status, headers, body = parseResponse(thirdTransport.value())
        self.assertEqual(status, 503)
        self.assertEqual(errorCode(body), "SlowDown")
        self.assertEqual(headers[b"retry-after"], [b"1"])
        self.assertEqual(headers[b"connection"], [b"close"])
        third.dataReceived(HEAD)
        self.assertEqual(c.leaf.rendered, [])
        self.assertFalse(thirdTransport.disconnecting)
        c.clock.advance(OVERFLOW_LINGER)
        self.assertTrue(thirdTransport.disconnecting)
        self.assertEqual(c.site.refusingConnections, 1)
        third.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(c.site.refusingConnections, 0)
        c.send(HEAD)
        second.dataReceived(HEAD)
        self.assertEqual(c.leaf.rendered, [b"/b/k", b"/b/k"])

    def test_slotFreed(self) -> None:
        """A closed connection frees its slot: the next one is served."""
        c = self.connected(limits(maxConnections=1))
        c.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(c.site.openConnections, 0)
        channel, transport = c.connect()
        self.assertIsInstance(channel, self.protocol)
        channel.dataReceived(HEAD)
        self.assertTrue(transport.value().endswith(b"\r\n\r\n0"))

    def test_countedOnce(self) -> None:
        """A channel lost twice still frees exactly one slot."""
        c = self.connected(limits(maxConnections=3))
        c.connect()
        c.channel.connectionLost(Failure(ConnectionDone()))
        c.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(c.site.openConnections, 1)

    def test_refusalAborted(self) -> None:
        """A refused client that never takes its answer is aborted."""
        c = self.connected(limits(maxConnections=1))
        _, transport = c.connect()
        c.clock.advance(OVERFLOW_LINGER)
        self.assertTrue(transport.disconnecting)
        c.clock.advance(OVERFLOW_ABORT - 0.1)
        self.assertFalse(transport.disconnected)
        c.clock.advance(0.2)
        self.assertTrue(transport.disconnected)

    def test_refusalsBounded(self) -> None:
        """Past OVERFLOW_LINGERING refusals still closing, a new one is closed at once, unanswered."""
        c = self.connected(limits(maxConnections=1))
        for _ in range(OVERFLOW_LINGERING):
            _, transport = c.connect()
            self.assertIn(b"SlowDown", transport.value())
        _, transport = c.connect()
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_unlimited(self) -> None:
        """C{maxConnections=0} serves any number."""
        c = self.connected(limits(maxConnections=0))
        for _ in range(100):
            channel, _ = c.connect()
            self.assertIsInstance(channel, self.protocol)


class HeadSizeTestsMixin(ChannelTestsMixin):
    """
    A request head may hold 16384 bytes of lines (CRLFs not counted) and
    500 header lines, twisted.web's bounds; past them it is refused with a
    complete 400 S3 error.
    """

    def assertRefused(self, c: Connected) -> None:
        """A 400 BadRequest S3 error went out, nothing was rendered, and the connection is closing."""
        status, headers, body = parseResponse(c.output())
        self.assertEqual((status, errorCode(body)), (400, "BadRequest"))
        self.assertEqual(headers[b"connection"], [b"close"])
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(c.leaf.rendered, [])

    def headers(self, count: int, size: int = 1) -> bytes:
        """A GET head with C{count} headers of C{size}-byte values."""
        return b"GET /b/k HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * size) for i in range(count)) + b"\r\n"

    def test_headerCount(self) -> None:
        """500 header lines are served; 501 are refused."""
        c = self.connected(limits())
        c.send(self.headers(500))
        self.assertEqual(c.leaf.rendered, [b"/b/k"])
        c = self.connected(limits())
        c.send(self.headers(501))
        self.assertRefused(c)

    def test_totalSize(self) -> None:
        """Lines of 16384 bytes in all are served; one byte more is refused."""
        line = b"GET /b/k HTTP/1.1"
        fits = line + b"\r\nX: " + b"v" * (16384 - len(line) - 3) + b"\r\n\r\n"
        c = self.connected(limits())
        c.send(fits)
        self.assertEqual(c.leaf.rendered, [b"/b/k"])
        c = self.connected(limits())
        c.send(fits.replace(b"vv", b"vvv", 1))
        self.assertRefused(c)

    def test_manySmallHeaders(self) -> None:
        """The size bound is over all lines together, not per line."""
        c = self.connected(limits())
        c.send(self.headers(17, 1000))
        self.assertRefused(c)

    def test_longLine(self) -> None:
        """
        One header line longer than 16 KiB is refused with an answer (stock
        twisted.web would close without one).
        """
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\r\nX: " + b"v" * 17000 + b"\r\n\r\n")
        self.assertRefused(c)

    def test_longLineDripped(self) -> None:
        """
        An unfinished head is refused as soon as it is too long, whatever
        its pieces: it never gets to be buffered whole.
        """
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\r\nX: ")
        sent = 0
        while not c.transport.disconnecting and sent < 40:
            c.send(b"v" * 1000)
            sent += 1
        self.assertRefused(c)
        self.assertLessEqual(sent, 17)


class DefaultMaxConnectionsTests(SynchronousTestCase):
    """The default bound follows the open-file limit."""

    def limited(self, soft: int) -> int:
        """L{defaultMaxConnections} under a soft RLIMIT_NOFILE of C{soft}."""
        import resource

        with mock.patch.object(resource, "getrlimit", return_value=(soft, soft)):
            return defaultMaxConnections()

    def test_lowLimit(self) -> None:
        """Three quarters of a soft limit below 1366."""
        self.assertEqual(self.limited(1024), 768)
        self.assertEqual(self.limited(256), 192)

    def test_highLimit(self) -> None:
        """1024 when the soft limit allows more."""
        import resource

        self.assertEqual(self.limited(65536), 1024)
        self.assertEqual(self.limited(resource.RLIM_INFINITY), 1024)

    def test_limitsDefault(self) -> None:
        """L{ConnectionLimits} uses it, and the documented other defaults."""
        self.assertEqual(
            ConnectionLimits(),
            ConnectionLimits(20.0, 1024, 30.0, defaultMaxConnections()),
        )


class AccessLogTestsMixin(ChannelTestsMixin):
    """The access log of FasterStore's Site never shows a signature."""

    def test_presignedRedacted(self) -> None:
        """A presigned URL is logged with X-Amz-Signature=REDACTED; so is a signed Referer."""
        from fasterstore.service import _Site

        clock = MemoryReactorClock()
        site = _Site(Leaf(), "-", IDLE, limits=limits(), reactor=clock, httpParser=self.httpParser)
        site.requestFactory = StreamingRequest
        site.startFactory()
        self.addCleanup(site.stopFactory)
        logged = io.StringIO()
        site.logFile = logged
        protocol = site.buildProtocol(PEER)
        protocol.makeConnection(StringTransport(peerAddress=PEER))
        protocol.dataReceived(
            b"GET /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20250101%2Fus-east-1%2Fs3%2Faws4_request"
            b"&X-Amz-Signature=0123456789abcdef&X-Amz-SignedHeaders=host HTTP/1.1\r\n"
            b"Host: x\r\nReferer: http://x/b/page?Signature=secretv2sig&a=1\r\n\r\n"
        )
        line = logged.getvalue()
        self.assertIn("X-Amz-Signature=REDACTED&X-Amz-SignedHeaders=host", line)
        self.assertIn("Signature=REDACTED&a=1", line)
        self.assertIn("X-Amz-Credential=AK", line)
        self.assertNotIn("0123456789abcdef", line)
        self.assertNotIn("secretv2sig", line)
        self.assertIn('"192.0.2.7"', line)
        self.assertIn(" 200 ", line)

    def test_offUnlessAsked(self) -> None:
        """Without an access log path nothing is logged."""
        from fasterstore.service import _Site

        site = _Site(Leaf(), None, IDLE, limits=limits(), reactor=MemoryReactorClock(), httpParser=self.httpParser)
        site.requestFactory = StreamingRequest
        logged = io.StringIO()
        site.logFile = logged
        protocol = site.buildProtocol(PEER)
        protocol.makeConnection(StringTransport(peerAddress=PEER))
        protocol.dataReceived(HEAD)
        self.assertEqual(logged.getvalue(), "")

    def test_logFilePrivate(self) -> None:
        """An access log file is created 0600 whatever the umask: it names buckets and keys."""
        import os
        import stat

        from fasterstore.service import _Site

        previous = os.umask(0o022)
        self.addCleanup(os.umask, previous)
        path = os.path.abspath(self.mktemp())
        site = _Site(Leaf(), path, IDLE, limits=limits(), reactor=MemoryReactorClock(), httpParser=self.httpParser)
        site.startFactory()
        self.addCleanup(site.stopFactory)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)



class HeadDeadlineTwistedTests(HeadDeadlineTestsMixin, SynchronousTestCase):
    """The request-head deadline, on twisted.web's channel."""

    httpParser = "twisted"


class HeadDeadlineLeanTests(HeadDeadlineTestsMixin, SynchronousTestCase):
    """The request-head deadline, on the httptools channel."""

    httpParser = "httptools"


class BareLineFeedTwistedTests(BareLineFeedTestsMixin, SynchronousTestCase):
    """The bare-LF refusal, on twisted.web's channel."""

    httpParser = "twisted"


class BareLineFeedLeanTests(BareLineFeedTestsMixin, SynchronousTestCase):
    """The bare-LF refusal, on the httptools channel."""

    httpParser = "httptools"


class UploadRateTwistedTests(UploadRateTestsMixin, SynchronousTestCase):
    """The minimum upload rate, on twisted.web's channel."""

    httpParser = "twisted"


class UploadRateLeanTests(UploadRateTestsMixin, SynchronousTestCase):
    """The minimum upload rate, on the httptools channel."""

    httpParser = "httptools"


class ConnectionLimitTwistedTests(ConnectionLimitTestsMixin, SynchronousTestCase):
    """The connection bound, on twisted.web's channel."""

    httpParser = "twisted"


class ConnectionLimitLeanTests(ConnectionLimitTestsMixin, SynchronousTestCase):
    """The connection bound, on the httptools channel."""

    httpParser = "httptools"


class HeadSizeTwistedTests(HeadSizeTestsMixin, SynchronousTestCase):
    """The head size bounds, on twisted.web's channel."""

    httpParser = "twisted"


class HeadSizeLeanTests(HeadSizeTestsMixin, SynchronousTestCase):
    """The head size bounds, on the httptools channel."""

    httpParser = "httptools"


class AccessLogTwistedTests(AccessLogTestsMixin, SynchronousTestCase):
    """The access log, on twisted.web's channel."""

    httpParser = "twisted"


class AccessLogLeanTests(AccessLogTestsMixin, SynchronousTestCase):
    """The access log, on the httptools channel."""

    httpParser = "httptools"


@implementer(ITCPTransport)
class _TCPStringTransport(StringTransport):
    """A memory transport that says it is TCP, with twisted's read size."""

    bufferSize = 65536

    def setTcpNoDelay(self, enabled: bool) -> None:
        """No Nagle to turn off in memory."""


class ReadSizeTestsMixin(ChannelTestsMixin):
    """A large body is read in LARGE_READ pieces; everything else in twisted's."""

    def tcpConnection(self) -> Tuple[Connected, Any, _TCPStringTransport]:
        """A site, and a connection to it over a TCP-like transport."""
        connected = self.connected(limits())
        channel = connected.site.buildProtocol(PEER)
        transport = _TCPStringTransport(peerAddress=PEER)
        channel.makeConnection(transport)
        return connected, channel, transport

    def test_largeBody(self) -> None:
        """From the head of a body of LARGE_BODY bytes to its end, reads are LARGE_READ."""
        connected, channel, transport = self.tcpConnection()
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (LARGE_BODY,))
        self.assertEqual(transport.bufferSize, LARGE_READ)
        channel.dataReceived(b"x" * LARGE_BODY)
        self.assertEqual(transport.bufferSize, 65536)
        self.assertEqual(parseResponse(transport.value())[2], b"%d" % (LARGE_BODY,))

    def test_chunkedBody(self) -> None:
        """A chunked body (of unknown length) is read in LARGE_READ pieces too."""
        connected, channel, transport = self.tcpConnection()
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.assertEqual(transport.bufferSize, LARGE_READ)
        channel.dataReceived(b"3\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(transport.bufferSize, 65536)

    def test_smallBody(self) -> None:
        """A body under LARGE_BODY leaves the read size alone."""
        connected, channel, transport = self.tcpConnection()
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (LARGE_BODY - 1,))
        self.assertEqual(transport.bufferSize, 65536)

    def test_lostDuringBody(self) -> None:
        """A connection lost during a large body gives its read size back."""
        connected, channel, transport = self.tcpConnection()
        channel.dataReceived(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (LARGE_BODY,))
        channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(transport.bufferSize, 65536)


class ReadSizeTwistedTests(ReadSizeTestsMixin, SynchronousTestCase):
    """The read size of bodies, on twisted.web's channel."""

    httpParser = "twisted"


class ReadSizeLeanTests(ReadSizeTestsMixin, SynchronousTestCase):
    """The read size of bodies, on the httptools channel."""

    httpParser = "httptools"
