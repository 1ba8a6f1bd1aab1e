"""
A lean HTTP/1.1 channel for the standalone listener (C{--http-parser
httptools}): request heads parsed by httptools (llhttp, the C parser under
uvicorn and Node.js), requests answered by the very same twisted.web
C{Request} (L{fasterstore.http.request.StreamingRequest}) and Resource tree
as on twisted.web's L{twisted.web.http.HTTPChannel}, with every bound of
L{fasterstore.http.channel.ChannelGuards}.

twisted.web's channel spends a large fixed share of a small request in
Python: a line splitter, a request-line check per request, a split, strip,
name check and sanitising pass per header, two timers started and
cancelled per request.  Here a request head costs a C{bytes.find}, three
C{bytes.count}s and one llhttp pass, and the timers are moved on, not
replaced.  What this
channel is to a C{Request} is what L{twisted.web._http2.H2Stream} is to
one: C{write}, C{writeSequence}, C{writeHeaders}, C{requestDone},
C{getPeer}, C{getHost}, C{isSecure}, C{registerProducer},
C{unregisterProducer}, C{loseConnection}, C{transport}, C{site},
C{factory}.  Embedding FasterStore's resource in someone else's Site is
untouched: that Site has twisted.web's own channel.

What is checked, and where (twisted.web's channel answers all of these
with 400 too, except where noted):

 - Framing, here: a head ends at the first CRLF CRLF; an LF without
   its CR, or a CR without its LF, anywhere in a head is refused as soon
   as it arrives (llhttp refuses them too, but would take an LF right
   after the target of an HTTP/0.9-style request line, and sees a head
   only once it is whole); one empty line before a request is skipped,
   as twisted.web skips one.  Every leniency of llhttp is off,
   explicitly (L{_newParser}).
 - Size, here: the request line and header lines may hold 16384 bytes
   together (CRLFs not counted) and 500 header lines, twisted.web's
   C{totalHeadersSize} and C{maxHeaders}; a longer head is refused as soon
   as it is known to be too long, so no more than that is ever buffered or
   given to llhttp (which has no bound of its own).  twisted.web closes a
   single line over 16 KiB without an answer; both channels answer it
   now.
 - Syntax, by llhttp: a known method, a request target of visible ASCII,
   C{HTTP/x.y}; header names that are tokens; header values without
   control characters other than HTAB (so never CR, LF or NUL: no
   sanitising is needed before L{Headers} takes them); no obsolete line
   folding (twisted.web accepts it); a C{Content-Length} of digits only,
   given once, never beside C{Transfer-Encoding}; a
   C{Transfer-Encoding} ending in C{chunked}.
 - Then, here: HTTP/1.0 or 1.1 only; C{Transfer-Encoding} exactly
   C{chunked} (twisted.web's rule) and only on HTTP/1.1 (RFC 9112 6.1;
   twisted.web decodes it on 1.0 too); trailing spaces and tabs of values
   stripped (twisted.web strips them, llhttp keeps them).

Bodies are framed here, not by llhttp: a C{Content-Length} body is sliced
straight off the input, without a copy when a read holds only body; a
chunked one goes through twisted.web's own L{_ChunkedTransferDecoder}.
Either way the next request starts exactly where the body ends, so
pipelined requests are read one at a time: while one is answered, later
bytes wait in a buffer (the transport paused past 16 KiB, as twisted.web
does) and are parsed after L{requestDone}, in order.  C{Expect:
100-continue} is answered only once the body is really wanted: after the
resource took the head without answering it, or, when it chose its body
receiver asynchronously, once it resumed reading; never after an early
answer (twisted.web sends it before the resource has decided).  A request
without a body gets it at once, as from twisted.web and S3 (botocore
mishandles a kept-alive connection otherwise).

Persistence follows twisted.web: HTTP/1.1 stays open unless a
C{Connection} header has the token C{close} (then the answer says
C{Connection: close}); HTTP/1.0 is closed after every answer, whatever
it asks.
Tests: tests/unit/test_lean_channel.py; the guards on both channels in
tests/unit/test_channel.py.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set, Tuple, cast

import httptools
from twisted.internet._producer_helpers import _PullToPush
from twisted.internet.interfaces import IAddress, IConsumer, IDelayedCall, IProducer, IPushProducer, ISSLTransport, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from twisted.web.http import _ChunkedTransferDecoder, _MalformedChunkedDataError, _NoPushProducer
from twisted.web.http_headers import Headers
from twisted.web.iweb import INonQueuedRequestFactory
from zope.interface import implementer

from fasterstore.http.channel import ChannelGuards
from fasterstore.http.request import IStreamingChannel

log = Logger()

#: Bytes the request line and header lines may hold together, CRLFs not
#: counted (twisted.web's C{HTTPChannel.totalHeadersSize}).
MAX_HEAD_SIZE = 16384

#: Header lines a request may have (twisted.web's C{HTTPChannel.maxHeaders}).
MAX_HEADERS = 500

#: Bytes read ahead while a request is answered before the transport is
#: paused (twisted.web's C{HTTPChannel._optimisticEagerReadSize}): enough
#: for pipelined requests, and to notice a client that hangs up.
EAGER_READ = 0x4000

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}


def _canonicalHeaders() -> Any:
    """
    twisted's header-name canonicaliser, if L{Headers} keeps its values in a
    C{_rawHeaders} dict keyed by it (Twisted 24.7 and later); None otherwise.
    Checked here, once, against L{Headers} itself: with it, values llhttp
    has already checked go in without L{Headers}'s per-value sanitising
    pass (a no-op on them).
    """
    try:
        from twisted.web.http_headers import _nameEncoder
    except ImportError:  # pragma: no cover - older Twisted
        return None
    probe = Headers()
    probe.addRawHeader(b"x-probe", b"v")
    if getattr(probe, "_rawHeaders", None) != {_nameEncoder.encode(b"x-probe"): [b"v"]}:
        return None  # pragma: no cover - a Twisted that stores headers otherwise
    return _nameEncoder.encode


_canonical = _canonicalHeaders()


def fillHeaders(headers: Headers, pairs: List[Tuple[bytes, bytes]]) -> None:
    """
    Add C{pairs} (as llhttp gave them: names are tokens, values hold no CR,
    LF, NUL or other control character but HTAB) to C{headers}, trailing
    spaces and tabs stripped from values as twisted.web strips them.
    """
    canonical = _canonical
    if canonical is None:  # pragma: no cover - older Twisted
        for name, value in pairs:
            headers.addRawHeader(name, value.rstrip(b" \t"))
        return
    raw: Dict[bytes, List[bytes]] = headers._rawHeaders
    for name, value in pairs:
        key = canonical(name)
        values = raw.get(key)
        if values is None:
            raw[key] = [value.rstrip(b" \t")]
        else:
            values.append(value.rstrip(b" \t"))


#: The request headers the channel reads, by lower-case name, as L{Headers}
#: keys them.
_CANONICAL: Dict[bytes, bytes] = {
    name: (_canonical(name) if _canonical is not None else name)
    for name in (b"content-length", b"transfer-encoding", b"connection", b"expect", b"cookie")
}


def headerValues(headers: Headers, name: bytes) -> Optional[List[bytes]]:
    """The values of the header C{name} (lower case, one of L{_CANONICAL}'s), or None."""
    if _canonical is None:  # pragma: no cover - older Twisted
        return cast(Optional[List[bytes]], headers.getRawHeaders(name))
    values: Optional[List[bytes]] = headers._rawHeaders.get(_CANONICAL[name])
    return values


def _newParser(protocol: object) -> httptools.HttpRequestParser:
    """
    An llhttp request parser calling C{protocol}'s C{on_*} methods, every
    leniency off (llhttp 9's default, httptools 0.6.3 and later, said
    explicitly: no bare LF or CR, no obsolete line folding, no
    C{Transfer-Encoding} that does not end in C{chunked}, no data after
    C{Connection: close}).
    """
    parser = httptools.HttpRequestParser(protocol)
    parser.set_dangerous_leniencies(
        lenient_headers=False,
        lenient_chunked_length=False,
        lenient_keep_alive=False,
        lenient_transfer_encoding=False,
        lenient_version=False,
        lenient_data_after_close=False,
        lenient_optional_lf_after_cr=False,
        lenient_optional_cr_before_lf=False,
        lenient_optional_crlf_after_chunk=False,
        lenient_spaces_after_chunk_size=False,
    )
    return parser


def _hasToken(values: Optional[Any], token: bytes) -> bool:
    """Whether any of the comma-separated header C{values} is C{token} (case-insensitively)."""
    if not values:
        return False
    return any(token in [t.strip() for t in value.lower().split(b",")] for value in values)


@implementer(IStreamingChannel, IPushProducer, IConsumer)
class LeanChannel(ChannelGuards, TimeoutMixin, Protocol):
    """
    One HTTP/1.1 connection, parsed with httptools, answered by the site's
    C{requestFactory} requests one at a time.  Built by
    L{fasterstore.http.channel.GuardedSite} (C{protocol=LeanChannel}), which
    with twisted.web's C{Site} and C{HTTPFactory} sets C{site},
    C{requestFactory}, C{factory}, C{timeOut} (the idle timeout),
    C{callLater}, L{clock} and L{limits}.

    To the transport it is the push producer twisted.web's channel is:
    the response's producer is paused while the transport's buffer is full,
    and so is reading, unless a request is being answered.

    @ivar persistent: whether the connection stays open after the current
        request's answer.
    """

    site: Any
    requestFactory: Any
    abortTimeout: Optional[float] = 15
    _abortingCall: Optional[IDelayedCall] = None

    def __init__(self) -> None:
        self.persistent = True
        self._buffer = b""
        self._processing = False
        self._parser: Optional[httptools.HttpRequestParser] = None
        # Where the scan for the end of the head stopped; the CRLFs before it.
        self._checked = 0
        self._lines = 0
        self._blankSkipped = False
        # What llhttp reported of the head being parsed.
        self._url = b""
        self._headers: List[Tuple[bytes, bytes]] = []
        self._headComplete = False
        self._messageComplete = False
        # The request being read or answered, and its body's framing.
        self._request: Optional[Any] = None
        self._command = b""
        self._path = b""
        self._version = b""
        self._remaining = 0
        self._decoder: Optional[_ChunkedTransferDecoder] = None
        self._chunkedRest: Optional[bytes] = None
        self._continueOwed = False
        self._nonQueued: Optional[bool] = None
        # Why reading is paused ("body", "pipeline", "write"); the transport
        # as a producer, registered with; the response's producer.
        self._pauses: Set[str] = set()
        self._networkProducer: Any = None
        self._registered = False
        self._writeBlocked = False
        self._requestProducer: Optional[IPushProducer] = None
        self._requestProducerStreaming = True

    # -- the connection ------------------------------------------------------

    def connectionMade(self) -> None:
        """As twisted.web's channel: no Nagle, the idle timeout, our producer; the first head is due."""
        transport = self.transport
        if ITCPTransport.providedBy(transport):
            cast(Any, transport).setTcpNoDelay(True)
        self.setTimeout(self.timeOut)
        self._networkProducer = IPushProducer(transport, _NoPushProducer())
        self._networkProducer.registerProducer(self, True)
        self._registered = True
        self._startHead()

    def dataReceived(self, data: bytes) -> None:
        """Buffer, and parse unless a request is being answered or we are closing."""
        if self._closing:
            return
        cast(Any, self).resetTimeout()  # TimeoutMixin's, untyped
        self._buffer = self._buffer + data if self._buffer else data
        if self.phase == "handling":
            if len(self._buffer) > EAGER_READ:
                self._pauseReading("pipeline")
            return
        self._process()

    def _process(self) -> None:
        """Read heads and bodies from the buffer until it is empty or a request is being answered."""
        if self._processing:
            return  # requestDone from within: the loop below goes on
        self._processing = True
        try:
            while self._buffer and not self._closing:
                phase = self.phase
                if phase == "body":
                    self._readBody()
                elif phase == "head":
                    if not self._readHead():
                        break
                elif phase == "idle":
                    self._startHead()
                else:
                    break
        finally:
            self._processing = False

    # -- the head --------------------------------------------------------------

    def _readHead(self) -> bool:
        """Take one request head off the buffer and start its request; False while it is incomplete."""
        buf = self._buffer
        if self._checked == 0 and not self._blankSkipped and buf[:1] == b"\r":
            if len(buf) < 2:
                return False
            if buf[1:2] == b"\n":
                self._blankSkipped = True
                buf = self._buffer = buf[2:]
                if not buf:
                    return False
        checked = self._checked
        end = buf.find(b"\r\n\r\n", max(0, checked - 3))
        stop = end + 4 if end >= 0 else len(buf)
        region = buf[checked:stop]
        if end < 0 and region[-1:] == b"\r":
            region = region[:-1]  # its LF may come with the next read
        # A bare LF or CR is refused here, as soon as it arrives (llhttp
        # would take an LF right after the target of an HTTP/0.9-style
        # request line, and sees the rest only once the head is whole).
        crlf = region.count(b"\r\n")
        if region.count(b"\n") != crlf or region.count(b"\r") != crlf:
            self._refuseBareLineEnd()
            return False
        self._checked = checked = checked + len(region)
        self._lines = lines = self._lines + crlf
        if end < 0:
            if checked - 2 * lines > MAX_HEAD_SIZE or lines - 1 > MAX_HEADERS:
                self._respondToBadRequestAndDisconnect()
            return False
        headerLines = lines - 2
        self._buffer = buf[stop:]
        self._checked = self._lines = 0
        self._blankSkipped = False
        if end - 2 * headerLines > MAX_HEAD_SIZE or headerLines > MAX_HEADERS or buf[:2] == b"\r\n":
            self._respondToBadRequestAndDisconnect()
            return False
        self._parseHead(buf[:stop] if stop < len(buf) else buf)
        return True

    def _parseHead(self, head: bytes) -> None:
        """Parse one complete head with llhttp and start its request."""
        parser = self._parser
        if parser is None:
            parser = _newParser(self)
        self._url = b""
        self._headers = []
        self._headComplete = self._messageComplete = False
        reuse = True
        try:
            parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            reuse = False  # answered as any request; the parser is not trusted after it
        except httptools.HttpParserError:
            self._parser = None
            self._respondToBadRequestAndDisconnect()
            return
        # llhttp completes a message only when it expects no body; one that
        # waits for a body (read here, not by llhttp) is not used again.
        self._parser = parser if reuse and self._messageComplete else None
        version = _VERSIONS.get(parser.get_http_version())
        if not self._headComplete or version is None:
            self._respondToBadRequestAndDisconnect()
            return
        self._startRequest(parser.get_method(), self._url, version, self._headers)

    def on_url(self, url: bytes) -> None:
        """llhttp: (part of) the request target."""
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """llhttp: one header, name and value checked."""
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        """llhttp: the head is over."""
        self._headComplete = True

    def on_message_complete(self) -> None:
        """llhttp: the message is over (it expects no body)."""
        self._messageComplete = True

    def _startRequest(self, method: bytes, uri: bytes, version: bytes, pairs: List[Tuple[bytes, bytes]]) -> None:
        """A valid head: build its request, choose the body's framing, and hand the head over (C{gotLength})."""
        factory = self.requestFactory
        if self._nonQueued is None:
            self._nonQueued = INonQueuedRequestFactory.providedBy(factory)
        # As twisted.web's channel builds its requests.
        request = factory(self) if self._nonQueued else factory(self, 0)
        headers = request.requestHeaders
        fillHeaders(headers, pairs)
        length: Optional[int] = 0
        encoding = headerValues(headers, b"transfer-encoding")
        contentLength = headerValues(headers, b"content-length")
        if encoding is not None:
            if contentLength is not None or len(encoding) != 1 or encoding[0].lower() != b"chunked" or version != b"HTTP/1.1":
                self._respondToBadRequestAndDisconnect()
                return
            length = None
        elif contentLength is not None:
            if len(contentLength) != 1 or not contentLength[0].isdigit():
                self._respondToBadRequestAndDisconnect()
                return
            length = int(contentLength[0])
        if version == b"HTTP/1.1":
            if _hasToken(headerValues(headers, b"connection"), b"close"):
                self.persistent = False
                request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            expect = headerValues(headers, b"expect")
            self._continueOwed = expect is not None and expect[0].lower() == b"100-continue"
        else:
            self.persistent = False
            self._continueOwed = False
        self._request = request
        self._command, self._path, self._version = method, uri, version
        self._headDone()
        self.phase = "body"
        if length is None:
            self._decoder = _ChunkedTransferDecoder(request.handleContentChunk, self._chunkedEnd)
        else:
            self._decoder = None
            self._remaining = length
        if headerValues(headers, b"cookie") is not None:
            request.parseCookies()
        request.gotLength(length)
        if self._closing or self._request is not request:
            return  # answered early, or gone
        if length == 0:
            # No body to hold back, so no reason to wait, even while the
            # resource decides: S3 and twisted.web answer such a request
            # C{100 Continue} too, and botocore poisons a kept-alive
            # connection on a final answer to a bodiless one without it
            # (boto/botocore#3755: the next answer on it is never read).
            if self._continueOwed:
                self._sendContinue()
            self._allContentReceived()
            return
        self._startMeter(length)
        if self._continueOwed and not self._bodyHeld:
            self._sendContinue()

    def _sendContinue(self) -> None:
        self._continueOwed = False
        self.transport.write(CONTINUE)

    # -- the body ----------------------------------------------------------------

    def _readBody(self) -> None:
        """Hand what the buffer holds of the body to the request; the rest waits for the next head."""
        request = self._request
        assert request is not None
        data, self._buffer = self._buffer, b""
        decoder = self._decoder
        meter = self._meter
        if decoder is None:
            remaining = self._remaining
            if len(data) > remaining:
                self._buffer = data[remaining:]
                data = data[:remaining]
            self._remaining = remaining - len(data)
            if meter is not None:
                meter.received(len(data))
            request.handleContentChunk(data)
            if self._remaining == 0 and not self._closing and self._request is request:
                self._allContentReceived()
            return
        if meter is not None:
            meter.received(len(data))
        try:
            decoder.dataReceived(data)
        except _MalformedChunkedDataError:
            self._respondToBadRequestAndDisconnect()
            return
        rest, self._chunkedRest = self._chunkedRest, None
        if rest is not None:
            self._buffer = rest + self._buffer
            if not self._closing and self._request is request:
                self._allContentReceived()

    def _chunkedEnd(self, rest: bytes) -> None:
        """The chunked body's last chunk (and trailer) arrived; C{rest} is the next request's."""
        self._chunkedRest = rest

    def _allContentReceived(self) -> None:
        """
        The body is complete: the request is answered at its own pace, the
        idle timeout held off meanwhile (L{timeoutConnection} does not close
        while a request is being answered).
        """
        self._stopMeter()
        self.phase = "handling"
        self._continueOwed = False
        self._decoder = None
        # A pause still in force gives the idle timeout back.
        idle, self._idleWhilePaused = self._idleWhilePaused, None
        if idle is not None:
            self.setTimeout(idle)
        request = self._request
        assert request is not None
        request.requestReceived(self._command, self._path, self._version)

    # -- IStreamingChannel -----------------------------------------------------

    def bodyPaused(self) -> None:
        """The request paused the transport for its body: reading stays paused until it resumes."""
        super().bodyPaused()
        self._pauseReading("body")

    def bodyResumed(self) -> None:
        """
        The request resumed the transport: paused again if something else
        still wants it; an owed C{100 Continue} goes out now that the body is
        wanted.
        """
        super().bodyResumed()
        self._pauses.discard("body")
        if self._pauses and not self._closing:
            self._networkProducer.pauseProducing()
        if self._continueOwed and self.phase == "body" and not self._closing:
            self._sendContinue()

    def answeredEarly(self) -> None:
        """The request answered before its body: no C{100 Continue}; close after the answer."""
        self._continueOwed = False
        super().answeredEarly()

    # -- what a Request calls --------------------------------------------------

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Headers) -> None:
        """The status line and headers, in one write."""
        parts = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        self.transport.write(b"".join(parts))

    def write(self, data: bytes) -> None:
        """Response bytes, as they are."""
        self.transport.write(data)

    def writeSequence(self, iovec: List[bytes]) -> None:
        """Response bytes, several pieces."""
        self.transport.writeSequence(iovec)

    def requestDone(self, request: Any) -> None:
        """
        The answer is complete: close if the connection is not persistent,
        otherwise read (and parse what is already buffered) again.
        """
        if request is not self._request:
            raise TypeError("requestDone for a request that is not the current one")
        self._request = None
        self._continueOwed = False
        self._bodyHeld = False
        # The idle timeout runs from now (on a connection that closes too,
        # so that a peer that never takes the answer is timed out).
        cast(Any, self).resetTimeout()  # TimeoutMixin's, untyped
        if not self.persistent:
            self._closing = True
            self.loseConnection()
            return
        self.phase = "idle"
        self._pauses.discard("body")
        self._resumeReading("pipeline")
        if self._writeBlocked:
            self._pauseReading("write")
        if self._buffer:
            self._process()

    def getPeer(self) -> IAddress:
        """The client's address, as the transport (or a PROXY header) has it."""
        peer: IAddress = self.transport.getPeer()
        return peer

    def getHost(self) -> IAddress:
        """The server's address, as the transport (or a PROXY header) has it."""
        host: IAddress = self.transport.getHost()
        return host

    def isSecure(self) -> bool:
        """True over TLS (an L{ISSLTransport})."""
        return ISSLTransport(self.transport, None) is not None

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """The response's producer: paused and resumed with the transport's buffer."""
        if self._requestProducer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer}, because producer {self._requestProducer} was never unregistered."
            )
        if not streaming:
            # twisted.web's channel does the same (the helper is untyped).
            pusher: Any = cast(Any, _PullToPush)(producer, self)
            self._requestProducer = pusher
            self._requestProducerStreaming = False
            pusher.startStreaming()
        else:
            self._requestProducer = cast(IPushProducer, producer)
            self._requestProducerStreaming = True

    def unregisterProducer(self) -> None:
        """The response's producer is done."""
        producer, self._requestProducer = self._requestProducer, None
        if producer is not None and not self._requestProducerStreaming:
            cast(Any, producer).stopStreaming()

    def loseConnection(self) -> None:
        """Close once what was written is sent."""
        if self._registered:
            self._registered = False
            self._networkProducer.unregisterProducer()
        self.transport.loseConnection()

    # -- IPushProducer, for the transport ----------------------------------------

    def pauseProducing(self) -> None:
        """The transport's buffer is full: pause the response, and reading unless a request is being answered."""
        self._writeBlocked = True
        if self._requestProducer is not None:
            self._requestProducer.pauseProducing()
        if self.phase != "handling":
            self._pauseReading("write")

    def resumeProducing(self) -> None:
        """The transport's buffer drained: resume the response, and reading."""
        self._writeBlocked = False
        if self._requestProducer is not None:
            self._requestProducer.resumeProducing()
        self._resumeReading("write")

    def stopProducing(self) -> None:
        """The connection is going: the response's producer stops."""
        producer, self._requestProducer = self._requestProducer, None
        if producer is not None:
            producer.stopProducing()

    def _pauseReading(self, reason: str) -> None:
        if not self._pauses and not self._closing:
            self._networkProducer.pauseProducing()
        self._pauses.add(reason)

    def _resumeReading(self, reason: str) -> None:
        if reason in self._pauses:
            self._pauses.discard(reason)
            if not self._pauses and not self._closing:
                self._networkProducer.resumeProducing()

    # -- timeouts and the end ------------------------------------------------------

    def timeoutConnection(self) -> None:
        """
        Idle for the site's timeout: close, and abort if the close does not
        happen; but a request being answered is not idleness (twisted.web's
        channel stops its timer then; moving one timer on is cheaper than a
        new one per request).
        """
        if self.phase == "handling" and not self._closing:
            self.setTimeout(self.timeOut)
            return
        log.info("Timing out client: {peer}", peer=self._peer())
        self._closing = True
        if self.abortTimeout is not None and self._abortingCall is None:
            self._abortingCall = self.clock.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()

    def forceAbortClient(self) -> None:
        """A close that never completed: abort."""
        log.info("Forcibly timing out client: {peer}", peer=self._peer())
        self._abortingCall = None
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Stop every timer and the response's producer; the request hears of it; the site counts one fewer."""
        self._stopGuards()
        self.setTimeout(None)
        if self._abortingCall is not None:
            if self._abortingCall.active():
                self._abortingCall.cancel()
            self._abortingCall = None
        self.stopProducing()
        request, self._request = self._request, None
        self._parser = None
        self._decoder = None
        self._buffer = b""
        if request is not None:
            request.connectionLost(reason)
        self._closed()
