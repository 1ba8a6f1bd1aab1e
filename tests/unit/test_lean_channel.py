"""
Tests for L{fasterstore.http.lean}: HTTP/1.1 as a client sees it (body
framing, keep-alive and pipelining, persistence, HEAD and bodiless answers,
chunked answers, C{100 Continue}, producers, TLS and PROXY-protocol
transports) on both channels, so that C{--http-parser httptools} answers
as twisted.web does; what only the httptools channel does (C{100 Continue}
held until the body is wanted, llhttp's strictness, its buffers); and,
property-based, that the two channels read the same headers and answer a
pipelined stream the same however it is split.

The guards (head deadline, upload rate, bare LF, head size, connection
bound, access log) are in tests/unit/test_channel.py, also on both
channels.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import httptools
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import ssl
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, connect
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.server import NOT_DONE_YET
from zope.interface import directlyProvides, implementer

from fasterstore.http.lean import EAGER_READ, LeanChannel, _newParser, fillHeaders
from fasterstore.http.request import EarlyResponse, StreamingRequest
from fasterstore.service import CHANNELS
from tests.unit.test_channel import (
    IDLE,
    PEER,
    ChannelTestsMixin,
    Connected,
    Leaf,
    errorCode,
    limits,
    parseResponse,
)

Response = Tuple[int, Dict[bytes, List[bytes]], bytes]


def readResponses(data: bytes, heads: int = 0) -> List[Response]:
    """
    Every complete response in C{data}, in order, each checked to be
    framed (C{Content-Length}, chunked, or no body: 1xx, 204, 304, and the
    first C{heads} answers, to HEAD requests); bytes after the last must
    not begin another.
    """
    responses: List[Response] = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, head
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers: Dict[bytes, List[bytes]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b": ")
            headers.setdefault(name.lower(), []).append(value)
        if status < 200 or status in (204, 304) or len(responses) < heads:
            body = b""
        elif headers.get(b"transfer-encoding") == [b"chunked"]:
            pieces = []
            while True:
                size, _, data = data.partition(b"\r\n")
                length = int(size, 16)
                pieces.append(data[:length])
                assert data[length : length + 2] == b"\r\n", data
                data = data[length + 2 :]
                if length == 0:
                    break
            body = b"".join(pieces)
        else:
            length = int(headers[b"content-length"][0])
            body, data = data[:length], data[length:]
            assert len(body) == length, (length, body)
        responses.append((status, headers, body))
    return responses


def statuses(data: bytes, heads: int = 0) -> List[int]:
    """The statuses of the responses in C{data}."""
    return [status for status, _, _ in readResponses(data, heads)]


@implementer(IPushProducer)
class Producer:
    """A push producer that records what the channel tells it."""

    def __init__(self) -> None:
        self.calls: List[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def answering(leaf: Leaf, answer: Any) -> List[StreamingRequest]:
    """Make C{leaf} render with C{answer(request)}; the requests it rendered."""
    seen: List[StreamingRequest] = []

    def render(request: StreamingRequest) -> object:
        seen.append(request)
        leaf.rendered.append(request.uri)
        answer(request)
        return NOT_DONE_YET

    leaf.render = render  # type: ignore[method-assign]
    return seen


def hang(request: StreamingRequest) -> None:
    """An answer that takes its time: nothing written yet."""


_CERTIFICATE: List[ssl.PrivateCertificate] = []


def certificate() -> ssl.PrivateCertificate:
    """A self-signed certificate for C{localhost}, made once."""
    if not _CERTIFICATE:
        key = ssl.KeyPair.generate(size=2048)
        _CERTIFICATE.append(key.selfSignedCert(1, CN="localhost"))
    return _CERTIFICATE[0]


class Client(Protocol):
    """Sends C{request} once connected; keeps what comes back."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class HTTPBehaviourTestsMixin(ChannelTestsMixin):
    """HTTP/1.1 as a client sees it, the same on either channel."""

    # -- bodies ------------------------------------------------------------

    def test_contentLengthBody(self) -> None:
        """A Content-Length body reaches the receiver exactly; the request pipelined after it is answered too."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n012")
        c.send(b"3456")
        c.send(b"789GET /b/next HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(b"".join(c.leaf.receiver.chunks), b"0123456789")
        self.assertEqual([body for _, _, body in readResponses(c.output())], [b"10", b"0"])
        self.assertEqual(c.leaf.rendered, [b"/b/k", b"/b/next"])
        self.assertFalse(c.transport.disconnecting)

    def test_chunkedBody(self) -> None:
        """A chunked body is decoded (trailer and extensions left out); the next request follows it."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
        c.send(b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nGET /b/next HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(b"".join(c.leaf.receiver.chunks), b"hello world")
        self.assertEqual([body for _, _, body in readResponses(c.output())], [b"11", b"0"])
        self.assertFalse(c.transport.disconnecting)

    def assertRefused(self, c: Connected) -> None:
        """A 400 BadRequest S3 error, nothing rendered, the connection closing."""
        [(status, headers, body)] = readResponses(c.output())
        self.assertEqual((status, errorCode(body)), (400, "BadRequest"))
        self.assertEqual(headers[b"connection"], [b"close"])
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(c.leaf.rendered, [])

    def test_lengthAndChunked(self) -> None:
        """Content-Length beside Transfer-Encoding (a smuggling attempt) is refused."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        self.assertRefused(c)

    def test_badLengths(self) -> None:
        """A Content-Length that is not plain digits is refused."""
        for length in [b"x", b"-1", b"+1", b"1 1", b"0x10", b"1_0"]:
            c = self.connected(limits())
            c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n")
            self.assertRefused(c)

    def test_twoLengths(self) -> None:
        """Two Content-Length headers are refused, even when they agree."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
        self.assertRefused(c)

    def test_otherCodings(self) -> None:
        """A Transfer-Encoding other than plain chunked is refused."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
        self.assertRefused(c)

    def test_malformedChunk(self) -> None:
        """A chunk size that is not hexadecimal is refused."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        [(status, _, body)] = readResponses(c.output())
        self.assertEqual((status, errorCode(body)), (400, "BadRequest"))
        self.assertTrue(c.transport.disconnecting)

    def test_connectionLostMidBody(self) -> None:
        """A body cut short by the client's leaving tells the receiver."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        c.channel.connectionLost(Failure(ConnectionDone()))
        self.assertIsNotNone(c.leaf.receiver.lost)

    # -- heads ---------------------------------------------------------------

    def test_malformedHead(self) -> None:
        """A head that is not HTTP is answered 400 and the connection closed; what follows is not read."""
        c = self.connected(limits())
        c.send(b"GET /b/k HTTP/1.1\r\nBad Header\r\n\r\n")
        c.send(b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertRefused(c)

    def test_versions(self) -> None:
        """Only HTTP/1.0 and HTTP/1.1 are served."""
        for head in [b"GET /b/k HTTP/2.0\r\n\r\n", b"GET /b/k HTTP/1.2\r\n\r\n", b"GET /b/k\r\n\r\n"]:
            c = self.connected(limits())
            c.send(head)
            self.assertRefused(c)

    def test_oneBlankLineBefore(self) -> None:
        """One empty line before a request is tolerated (clients send one after a POST body); two are not."""
        c = self.connected(limits())
        c.send(b"\r\n" + HEAD_GET)
        self.assertEqual(c.leaf.rendered, [b"/b/k"])
        c = self.connected(limits())
        c.send(b"\r\n\r\n" + HEAD_GET)
        self.assertRefused(c)

    def test_headerValues(self) -> None:
        """Values reach the request without the spaces and tabs around them; repeated headers keep every value."""
        c = self.connected(limits())
        seen = answering(c.leaf, lambda request: request.finish())
        c.send(b"GET /b/k HTTP/1.1\r\nHost: x\r\nX-A: \t one two \t\r\nx-b: 1\r\nX-B: 2\r\nX-Empty:\r\n\r\n")
        headers = seen[0].requestHeaders
        self.assertEqual(headers.getRawHeaders(b"x-a"), [b"one two"])
        self.assertEqual(headers.getRawHeaders(b"x-b"), [b"1", b"2"])
        self.assertEqual(headers.getRawHeaders(b"x-empty"), [b""])
        self.assertEqual((seen[0].method, seen[0].uri, seen[0].clientproto), (b"GET", b"/b/k", b"HTTP/1.1"))

    # -- persistence and pipelining ------------------------------------------

    def test_pipelinedInOrder(self) -> None:
        """Requests sent together are answered one after the other, in order, on one connection."""
        c = self.connected(limits())
        c.send(
            b"GET /b/1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"PUT /b/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /b/3 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        self.assertEqual(c.leaf.rendered, [b"/b/1", b"/b/2", b"/b/3"])
        self.assertEqual([body for _, _, body in readResponses(c.output())], [b"0", b"3", b"0"])
        self.assertFalse(c.transport.disconnecting)

    def test_pipelinedWhileAnswering(self) -> None:
        """A request that arrives while the one before is being answered waits for that answer."""
        c = self.connected(limits())
        seen = answering(c.leaf, hang)
        c.send(b"GET /b/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /b/2 HTTP/1.1\r\nHo")
        c.send(b"st: x\r\n\r\n")
        self.assertEqual(len(seen), 1)
        self.assertEqual(c.output(), b"")
        seen[0].setHeader(b"Content-Length", b"3")
        seen[0].write(b"one")
        seen[0].finish()
        self.assertEqual(len(seen), 2)
        self.assertEqual([body for _, _, body in readResponses(c.output())], [b"one"])
        seen[1].setHeader(b"Content-Length", b"3")
        seen[1].write(b"two")
        seen[1].finish()
        self.assertEqual([body for _, _, body in readResponses(c.output())], [b"one", b"two"])

    def test_http10Closes(self) -> None:
        """An HTTP/1.0 request is answered in HTTP/1.0 and the connection closed, keep-alive asked or not."""
        for head in [b"GET /b/k HTTP/1.0\r\n\r\n", b"GET /b/k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"]:
            c = self.connected(limits())
            c.send(head + HEAD_GET)
            self.assertTrue(c.output().startswith(b"HTTP/1.0 200 "), c.output())
            self.assertEqual(len(readResponses(c.output())), 1)
            self.assertEqual(c.leaf.rendered, [b"/b/k"])
            self.assertTrue(c.transport.disconnecting)

    def test_connectionClose(self) -> None:
        """C{Connection: close} is answered with C{Connection: close}, then the connection closes."""
        for value in [b"close", b"Close", b"keep-alive, close"]:
            c = self.connected(limits())
            c.send(b"GET /b/k HTTP/1.1\r\nHost: x\r\nConnection: " + value + b"\r\n\r\n" + HEAD_GET)
            [(status, headers, _)] = readResponses(c.output())
            self.assertEqual(headers[b"connection"], [b"close"])
            self.assertEqual(c.leaf.rendered, [b"/b/k"])
            self.assertTrue(c.transport.disconnecting)

    def test_idleOffWhileAnswering(self) -> None:
        """A request answered slowly is not idleness; the idle timeout runs again from its end."""
        c = self.connected(limits())
        seen = answering(c.leaf, hang)
        c.send(HEAD_GET)
        c.clock.advance(IDLE * 5)
        self.assertFalse(c.transport.disconnecting)
        seen[0].setHeader(b"Content-Length", b"0")
        seen[0].finish()
        c.clock.advance(IDLE - 1)
        self.assertFalse(c.transport.disconnecting)
        c.clock.advance(2)
        self.assertTrue(c.transport.disconnecting)

    # -- answers ---------------------------------------------------------------

    def test_head(self) -> None:
        """A HEAD answer keeps its Content-Length and carries no body; the connection stays usable."""
        c = self.connected(limits())
        c.send(b"HEAD /b/k HTTP/1.1\r\nHost: x\r\n\r\n" + HEAD_GET)
        [(_, headers, body), (_, _, second)] = readResponses(c.output(), heads=1)
        self.assertEqual((headers[b"content-length"], body, second), ([b"1"], b"", b"0"))

    def test_noBodyCodes(self) -> None:
        """204 and 304 answers have no body and no chunked framing."""
        for code in [204, 304]:
            c = self.connected(limits())

            def answer(request: StreamingRequest, code: int = code) -> None:
                request.setResponseCode(code)
                request.write(b"ignored")
                request.finish()

            answering(c.leaf, answer)
            c.send(HEAD_GET + HEAD_GET)
            responses = readResponses(c.output())
            self.assertEqual([status for status, _, _ in responses], [code, code])
            self.assertNotIn(b"transfer-encoding", responses[0][1])
            self.assertNotIn(b"ignored", c.output())

    def test_chunkedAnswer(self) -> None:
        """An answer without Content-Length goes out chunked on HTTP/1.1, and the connection stays open."""
        c = self.connected(limits())

        def answer(request: StreamingRequest) -> None:
            request.write(b"hello ")
            request.write(b"world")
            request.finish()

        answering(c.leaf, answer)
        c.send(HEAD_GET + HEAD_GET)
        responses = readResponses(c.output())
        self.assertEqual([body for _, _, body in responses], [b"hello world"] * 2)
        self.assertEqual(responses[0][1][b"transfer-encoding"], [b"chunked"])
        self.assertFalse(c.transport.disconnecting)

    def test_http10Answer(self) -> None:
        """On HTTP/1.0 an answer without Content-Length is not chunked: the close ends it."""
        c = self.connected(limits())
        answering(c.leaf, lambda request: (request.write(b"raw body"), request.finish()))
        c.send(b"GET /b/k HTTP/1.0\r\n\r\n")
        self.assertTrue(c.output().endswith(b"\r\n\r\nraw body"), c.output())
        self.assertNotIn(b"chunked", c.output())
        self.assertTrue(c.transport.disconnecting)

    def test_headersAsGiven(self) -> None:
        """Response headers go out as the request's Headers give them (S3's lower-case x-amz- names)."""

        class Lower(Headers):
            """Headers that give every name in lower case."""

            def getAllRawHeaders(self) -> Any:
                for name, values in super().getAllRawHeaders():
                    yield name.lower(), values

        c = self.connected(limits())

        def answer(request: StreamingRequest) -> None:
            headers = Lower()
            headers.setRawHeaders(b"X-Amz-Meta-Color", [b"blue"])
            headers.setRawHeaders(b"Content-Length", [b"0"])
            request.responseHeaders = headers
            request.finish()

        answering(c.leaf, answer)
        c.send(HEAD_GET)
        self.assertIn(b"\r\nx-amz-meta-color: blue\r\n", c.output())

    # -- Expect: 100-continue --------------------------------------------------

    def test_continue(self) -> None:
        """A body the server will read is invited with C{100 Continue}, before the answer."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        self.assertEqual(c.output(), b"HTTP/1.1 100 Continue\r\n\r\n")
        c.send(b"abc")
        self.assertEqual(statuses(c.output()), [100, 200])

    def test_noContinueAfterEarlyAnswer(self) -> None:
        """A request refused on its head (a bad signature, say) gets the refusal, never C{100 Continue}."""
        c = self.connected(limits())
        c.leaf.bodyReceiver = lambda request: (_ for _ in ()).throw(  # type: ignore[method-assign]
            EarlyResponse(403, {b"Content-Type": b"application/xml"}, b"<Error/>")
        )
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3000\r\n\r\n")
        self.assertEqual(statuses(c.output()), [403])
        self.assertTrue(c.transport.disconnecting)

    def test_noContinueOnHTTP10(self) -> None:
        """HTTP/1.0 has no C{100 Continue}."""
        c = self.connected(limits())
        c.send(b"PUT /b/k HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
        self.assertNotIn(b"100 Continue", c.output())
        self.assertEqual(c.leaf.receiver.chunks, [b"abc"])

    # -- producers and transports ------------------------------------------------

    def test_producerFollowsTransport(self) -> None:
        """The answer's producer is paused and resumed with the transport's buffer, and unregistered after."""
        c = self.connected(limits())
        producer = Producer()
        seen = answering(c.leaf, lambda request: request.registerProducer(producer, True))
        c.send(HEAD_GET)
        c.channel.pauseProducing()
        c.channel.resumeProducing()
        self.assertEqual(producer.calls, ["pause", "resume"])
        seen[0].unregisterProducer()
        seen[0].finish()
        c.channel.pauseProducing()
        self.assertEqual(producer.calls, ["pause", "resume"])

    def test_addresses(self) -> None:
        """The request's client and host are the transport's."""
        c = self.connected(limits())
        seen = answering(c.leaf, lambda request: request.finish())
        c.transport.hostAddr = IPv4Address("TCP", "198.51.100.1", 9000)
        c.send(HEAD_GET)
        self.assertEqual(seen[0].getClientAddress(), PEER)
        self.assertEqual(seen[0].getHost(), IPv4Address("TCP", "198.51.100.1", 9000))

    def test_isSecure(self) -> None:
        """A request is secure exactly when its transport is TLS (provides ISSLTransport)."""
        c = self.connected(limits())
        secure: List[bool] = []
        answering(c.leaf, lambda request: (secure.append(request.isSecure()), request.finish()))
        channel, transport = c.connect()
        directlyProvides(transport, ISSLTransport)
        channel.dataReceived(HEAD_GET)
        c.send(HEAD_GET)
        self.assertEqual(secure, [True, False])

    def test_overTLS(self) -> None:
        """Over a real TLS connection (as an C{ssl:} endpoint builds it) requests are answered, and secure."""
        c = Connected(limits(), protocol=self.protocol)
        secure: List[bool] = []
        answering(c.leaf, lambda request: (secure.append(request.isSecure()), request.setHeader(b"Content-Length", b"2"),
                                           request.write(b"ok"), request.finish()))
        clock = Clock()  # TLS batches small writes until the next reactor turn
        server = TLSMemoryBIOFactory(certificate().options(), False, c.site, clock=clock).buildProtocol(PEER)
        # The client does not check the certificate: the server's side is under test.
        client = TLSMemoryBIOFactory(
            ssl.CertificateOptions(), True, _ClientFactory(HEAD_GET + HEAD_GET), clock=clock
        ).buildProtocol(PEER)
        pump = connect(
            server, FakeTransport(server, isServer=True), client, FakeTransport(client, isServer=False), clock=clock
        )
        pump.flush()
        self.assertEqual([body for _, _, body in readResponses(client.wrappedProtocol.received)], [b"ok", b"ok"])
        self.assertEqual(secure, [True, True])
        self.assertEqual(c.site.openConnections, 2)  # this one and Connected's own

    def test_behindHAProxy(self) -> None:
        """Behind a C{haproxy:} endpoint the client is the one the PROXY header names; the site counts it."""
        c = self.connected(limits())
        seen = answering(c.leaf, lambda request: request.finish())
        reactor = MemoryReactor()
        serverFromString(reactor, "haproxy:tcp:9000").listen(c.site)
        wrapper = reactor.tcpServers[0][1].buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        wrapper.makeConnection(transport)
        self.assertEqual(c.site.openConnections, 2)
        wrapper.dataReceived(b"PROXY TCP4 203.0.113.9 198.51.100.1 51000 443\r\n" + HEAD_GET)
        self.assertEqual(seen[0].getClientAddress(), IPv4Address("TCP", "203.0.113.9", 51000))
        self.assertEqual(seen[0].getHost(), IPv4Address("TCP", "198.51.100.1", 443))
        wrapper.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(c.site.openConnections, 1)


class _ClientFactory:
    """A factory of one L{Client} (all TLSMemoryBIOFactory asks of it)."""

    def __init__(self, request: bytes) -> None:
        self.request = request

    def buildProtocol(self, addr: object) -> Client:
        return Client(self.request)

    def doStart(self) -> None:
        """Nothing to start."""

    def doStop(self) -> None:
        """Nothing to stop."""


HEAD_GET = b"GET /b/k HTTP/1.1\r\nHost: x\r\n\r\n"


class HTTPBehaviourTwistedTests(HTTPBehaviourTestsMixin, SynchronousTestCase):
    """HTTP/1.1 behaviour, on twisted.web's channel."""

    httpParser = "twisted"


class HTTPBehaviourLeanTests(HTTPBehaviourTestsMixin, SynchronousTestCase):
    """HTTP/1.1 behaviour, on the httptools channel."""

    httpParser = "httptools"


class LeanChannelTests(SynchronousTestCase):
    """What only the httptools channel does, or does better."""

    def connected(self, resource: Optional[Leaf] = None) -> Connected:
        """A site of L{LeanChannel}s and one connection to it."""
        return Connected(limits(), resource, LeanChannel)

    def test_continueOnceChosen(self) -> None:
        """
        While the resource is still choosing the body's receiver, no
        C{100 Continue}: it goes out once the receiver is chosen (twisted.web
        sends it at once, before anything is decided).
        """
        leaf = Leaf()
        leaf.choosing = Deferred()
        c = self.connected(leaf)
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        self.assertEqual(c.output(), b"")
        leaf.choosing.callback(leaf.receiver)
        self.assertEqual(c.output(), b"HTTP/1.1 100 Continue\r\n\r\n")
        c.send(b"abc")
        self.assertEqual(statuses(c.output()), [100, 200])

    def test_noContinueAfterLateRefusal(self) -> None:
        """A receiver choice that ends in a refusal sends the refusal alone."""
        leaf = Leaf()
        leaf.choosing = Deferred()
        c = self.connected(leaf)
        c.send(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3000\r\n\r\n")
        leaf.choosing.errback(EarlyResponse(403, {}, b"<Error/>"))
        self.assertEqual(statuses(c.output()), [403])
        self.assertTrue(c.transport.disconnecting)

    def test_continueWithoutBody(self) -> None:
        """
        A request without a body gets C{100 Continue} before its answer, at
        once, even while its resource decides (as from twisted.web and S3:
        botocore, answered without it, never reads the next answer on that
        connection, boto/botocore#3755).
        """
        leaf = Leaf()
        leaf.choosing = Deferred()
        c = self.connected(leaf)
        c.send(b"PUT /b/empty HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(c.output(), b"HTTP/1.1 100 Continue\r\n\r\n")
        leaf.choosing.callback(leaf.receiver)
        c.send(b"GET /b/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n")
        self.assertEqual(statuses(c.output()), [100, 200, 100, 200])
        self.assertFalse(c.transport.disconnecting)

    def assertRefused(self, c: Connected) -> None:
        """A 400 BadRequest S3 error, nothing rendered, the connection closing."""
        status, _, body = parseResponse(c.output())
        self.assertEqual((status, errorCode(body)), (400, "BadRequest"))
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(c.leaf.rendered, [])

    def test_foldingRefused(self) -> None:
        """A header continued on the next line (obsolete folding, which twisted.web accepts) is refused."""
        c = self.connected()
        c.send(b"GET /b/k HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n")
        self.assertRefused(c)

    def test_chunkedHTTP10Refused(self) -> None:
        """Transfer-Encoding on HTTP/1.0 is refused (RFC 9112, 6.1; twisted.web decodes it)."""
        c = self.connected()
        c.send(b"PUT /b/k HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        self.assertRefused(c)

    def test_identityRefused(self) -> None:
        """C{Transfer-Encoding: identity} (gone since RFC 7230; twisted.web ignores it) is refused."""
        c = self.connected()
        c.send(b"PUT /b/k HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n")
        self.assertRefused(c)

    def test_unknownMethodRefused(self) -> None:
        """A method llhttp does not know is refused (twisted.web hands any token to the resource)."""
        c = self.connected()
        c.send(b"get /b/k HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertRefused(c)

    def test_upgradeAnsweredPlainly(self) -> None:
        """An Upgrade request is answered as any other; the connection goes on as HTTP/1.1."""
        c = self.connected()
        c.send(b"GET /b/k HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + HEAD_GET)
        self.assertEqual(statuses(c.output()), [200, 200])
        self.assertEqual(c.leaf.rendered, [b"/b/k", b"/b/k"])

    def test_headBufferBounded(self) -> None:
        """An unfinished head is never held beyond the size bound plus one read."""
        c = self.connected()
        c.send(b"GET /b/k HTTP/1.1\r\n")
        held = 0
        for _ in range(100):
            c.send(b"X-Long: " + b"v" * 500 + b"\r\n")
            held = max(held, len(c.channel._buffer))
            if c.transport.disconnecting:
                break
        self.assertTrue(c.transport.disconnecting)
        self.assertLess(held, 16384 + 1024)

    def test_readAheadWhileAnswering(self) -> None:
        """
        Input arriving while a request is answered is kept, up to 16 KiB,
        then reading pauses; the answer's end resumes it and the input is
        parsed.
        """
        c = self.connected()
        seen = answering(c.leaf, hang)
        c.send(HEAD_GET)
        c.send(HEAD_GET * 10)
        self.assertEqual(c.transport.producerState, "producing")
        c.send(HEAD_GET * (EAGER_READ // len(HEAD_GET)))
        self.assertEqual(c.transport.producerState, "paused")
        self.assertEqual(len(seen), 1)
        seen[0].setHeader(b"Content-Length", b"0")
        seen[0].finish()
        self.assertEqual(c.transport.producerState, "producing")
        self.assertEqual(len(seen), 2)

    def test_writeBlockedPausesReading(self) -> None:
        """While the transport cannot write, no new request is read (a client that does not read its answers)."""
        c = self.connected()
        c.channel.pauseProducing()
        self.assertEqual(c.transport.producerState, "paused")
        c.channel.resumeProducing()
        self.assertEqual(c.transport.producerState, "producing")
        c.send(HEAD_GET)
        self.assertEqual(c.leaf.rendered, [b"/b/k"])

    def test_connectionLostStopsProducer(self) -> None:
        """A connection lost mid-answer stops the answer's producer, and the request hears of it."""
        c = self.connected()
        producer = Producer()
        seen = answering(c.leaf, lambda request: request.registerProducer(producer, True))
        c.send(HEAD_GET)
        finished = seen[0].notifyFinish()
        c.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(producer.calls, ["stop"])
        self.failureResultOf(finished, ConnectionDone)

    def test_requestDoneOutOfTurn(self) -> None:
        """Only the request being answered can be done."""
        c = self.connected()
        with self.assertRaises(TypeError):
            c.channel.requestDone(object())

    def test_strictParser(self) -> None:
        """The parser has every llhttp leniency off: what they would let through is an error."""
        for data in [
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        ]:
            parser = _newParser(object())
            with self.assertRaises(httptools.HttpParserError, msg=data):
                parser.feed_data(data)

    def test_fillHeaders(self) -> None:
        """L{fillHeaders} gives what L{Headers.addRawHeader} would, values' trailing spaces and tabs stripped."""
        pairs = [(b"Host", b"x"), (b"x-amz-date", b"20250101T000000Z \t"), (b"X-AMZ-DATE", b"again"), (b"etag", b"\"e\"")]
        filled = Headers()
        fillHeaders(filled, pairs)
        expected = Headers()
        for name, value in pairs:
            expected.addRawHeader(name, value.rstrip(b" \t"))
        self.assertEqual(list(filled.getAllRawHeaders()), list(expected.getAllRawHeaders()))


# -- the two channels compared ---------------------------------------------------

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE_CHARS = st.sampled_from([bytes([b]) for b in list(range(0x21, 0x7F)) + list(range(0x80, 0x100))] + [b" ", b"\t"])

headerNames = st.text(alphabet=_TCHAR, min_size=1, max_size=12).map(str.encode).filter(
    lambda name: name.lower() not in (b"content-length", b"transfer-encoding", b"connection", b"expect", b"host")
)
headerValues = st.lists(_VALUE_CHARS, max_size=20).map(b"".join)


def _requestOf(method: bytes, path: bytes, body: Optional[bytes], chunked: bool) -> bytes:
    """One request's bytes: a GET or HEAD without a body, a PUT with a Content-Length or chunked body."""
    head = method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n"
    if body is None:
        return head + b"\r\n"
    if chunked:
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
            b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces
        ) + b"0\r\n\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


requests = st.one_of(
    st.builds(_requestOf, st.sampled_from([b"GET", b"HEAD"]), st.sampled_from([b"/b/k", b"/b/a%2Fb?x=1"]),
              st.none(), st.just(False)),
    st.builds(_requestOf, st.just(b"PUT"), st.just(b"/b/k"), st.binary(max_size=40), st.booleans()),
)


def _answers(parser: str, stream: bytes, cuts: List[int]) -> Tuple[bytes, List[bytes], List[bytes]]:
    """What a connection on C{parser}'s channel answers to C{stream} cut at C{cuts}: output, URIs, bodies."""
    c = Connected(limits(), protocol=CHANNELS[parser])
    last = 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        c.send(stream[last:cut])
        last = cut
    output = b"\r\n".join(line for line in c.output().split(b"\r\n") if not line.startswith(b"Date: "))
    return output, c.leaf.rendered, [b"".join(c.leaf.receiver.chunks)]


class SameAsTwistedTests(SynchronousTestCase):
    """The httptools channel reads and answers what twisted.web's does, byte for byte."""

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(headerNames, headerValues), max_size=8))
    def test_sameHeaders(self, headers: List[Tuple[bytes, bytes]]) -> None:
        """Any valid header set reaches the request as the same L{Headers}, method, URI and version."""
        head = b"GET /b/k?a=1 HTTP/1.1\r\nHost: x\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"
        seen = {}
        for parser, protocol in CHANNELS.items():
            c = Connected(limits(), protocol=protocol)
            requests = answering(c.leaf, lambda request: request.finish())
            c.send(head)
            [request] = requests
            seen[parser] = (
                sorted(request.requestHeaders.getAllRawHeaders()), request.method, request.uri, request.clientproto
            )
        self.assertEqual(seen["twisted"], seen["httptools"])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(requests, min_size=1, max_size=6), st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
    def test_splitAnywhere(self, stream: List[bytes], cuts: List[int]) -> None:
        """A pipelined stream, however it is cut into reads, is answered as twisted.web answers it whole."""
        data = b"".join(stream)
        cuts = [cut % (len(data) + 1) for cut in cuts]
        lean = _answers("httptools", data, cuts)
        self.assertEqual(lean, _answers("twisted", data, []))
        self.assertEqual(len(lean[1]), len(stream))


class SiteWiringTests(SynchronousTestCase):
    """C{FasterStore.create(httpParser=...)} picks the channel of C{store.site()}."""

    def site(self, **options: Any) -> Any:
        """The site of a store built with C{options}."""
        from twisted.internet.testing import MemoryReactorClock
        from twisted.python.filepath import FilePath

        from fasterstore.auth.identity import Credentials
        from fasterstore.service import FasterStore

        store = FasterStore.create(
            MemoryReactorClock(), FilePath(self.mktemp()), Credentials("AK", "secret", "owner", "name"), fsync=False,
            lockDirectory=False, background=False, **options,
        )
        return store.site()

    def test_default(self) -> None:
        """twisted.web's channel by default."""
        from fasterstore.http.channel import GuardedChannel

        self.assertIsInstance(self.site().buildProtocol(PEER), GuardedChannel)

    def test_httptools(self) -> None:
        """httptools' channel when asked, with the store's limits and request factory."""
        site = self.site(httpParser="httptools")
        channel = site.buildProtocol(PEER)
        self.assertIsInstance(channel, LeanChannel)
        self.assertIs(channel.requestFactory, StreamingRequest)
        self.assertEqual(site.openConnections, 1)

    def test_unknown(self) -> None:
        """An unknown parser is refused when the store is built."""
        self.assertRaises(ValueError, self.site, httpParser="nginx")
