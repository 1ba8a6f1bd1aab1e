"""
Bounds on what a client can make the HTTP server hold, before it has proved
who it is.

twisted.web's L{HTTPChannel} has one clock, an idle timeout that every byte
resets: a client dripping a header line now and then, or a body at a byte a
second, keeps its connection (and, for a body, a segment writer) for ever,
and nothing bounds how many such connections there are.  Here:

 - L{ChannelGuards}, the bounds themselves, shared by L{GuardedChannel}
   (on twisted.web's L{HTTPChannel}) and L{fasterstore.http.lean.LeanChannel}
   (on httptools, C{--http-parser httptools}), give the request head a deadline
   (L{ConnectionLimits.headerTimeout}), from connection open for the first
   request and from its first byte for later ones (an idle keep-alive
   connection between requests stays under the idle timeout); demands that a
   body keep a minimum average rate (L{ConnectionLimits.minUploadRate} over
   each L{ConnectionLimits.uploadRateWindow}), not counting time the server
   itself paused reading (L{IStreamingChannel}; the idle timeout is held
   off then too); refuses bare-LF line endings
   at once; and answers every refusal with a complete S3 error, then closes,
   aborting if the peer never takes the answer.
 - L{GuardedSite} counts connections across all its listeners and answers
   those past L{ConnectionLimits.maxConnections} with C{503 SlowDown}.

All times come from the Site's reactor (an L{IReactorTime}), so tests use
L{twisted.internet.task.Clock}.  HTTP/2 is not offered: either channel is
HTTP/1.1 only, without twisted's ALPN switch.
Tests: tests/unit/test_channel.py (every guard, on both channels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Type, cast

import attrs
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Site
from zope.interface import implementer

from fasterstore.http.request import IStreamingChannel, formatResponse, newRequestId

log = Logger()

#: The S3 text for a connection that was too slow.
TIMEOUT_MESSAGE = "Your socket connection to the server was not read from or written to within the timeout period."

#: How long a connection refused for being past the limit may stay open while
#: its request is read and dropped (closing with unread input would reset the
#: connection and could destroy the answer before the client reads it).
OVERFLOW_LINGER = 1.0

#: How long a refused connection that will not take its answer is given
#: before it is aborted.
OVERFLOW_ABORT = 5.0

#: At most this many refused connections linger at once; past it a new
#: connection is closed at once, unanswered, so that refusing never costs
#: more than a few descriptors.
OVERFLOW_LINGERING = 64


#: Bodies at least this long (and chunked ones) are read in pieces of up to
#: L{LARGE_READ} bytes instead of twisted's 64 KiB: 256 MiB PUTs over
#: loopback went from 343-354 to 380-403 MB/s, in three interleaved pairs
#: of runs (docs/benchmarks.md, "Large objects").  Small requests keep
#: 64 KiB: with 256 KiB for every read a 4 KiB GET cost 6% more CPU.
LARGE_BODY = 1024 * 1024
LARGE_READ = 256 * 1024


def defaultMaxConnections(cap: int = 1024) -> int:
    """
    The default bound on open connections: C{cap}, or three quarters of the
    soft C{RLIMIT_NOFILE} when that is lower, leaving the rest for segment
    files, the metadata store, logs and threads.  Past the descriptor limit
    C{accept()} fails with EMFILE and the listener spins; below it a new
    client gets a clear C{503 SlowDown} instead.
    """
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return cap
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return cap
    return max(1, min(cap, soft * 3 // 4))


@attrs.frozen
class ConnectionLimits:
    """
    What one client connection may cost.  Zero turns a bound off.

    @ivar headerTimeout: seconds a request head may take, from the
        connection's opening (first request) or the request's first byte.
    @ivar minUploadRate: bytes per second a request body must average over
        each window of L{uploadRateWindow} seconds.
    @ivar uploadRateWindow: seconds over which the upload rate is averaged.
    @ivar maxConnections: open connections served at once, over all
        listeners of the site.
    """

    headerTimeout: float = 20.0
    minUploadRate: int = 1024
    uploadRateWindow: float = 30.0
    maxConnections: int = attrs.field(factory=defaultMaxConnections)


def errorResponse(status: int, code: str, message: str, headers: Optional[Dict[bytes, bytes]] = None) -> bytes:
    """A complete S3 error response that closes the connection."""
    requestId = newRequestId()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{requestId}</RequestId><HostId>{requestId}</HostId></Error>"
    ).encode("ascii")
    allHeaders = {
        b"Content-Type": b"application/xml",
        b"x-amz-request-id": requestId.encode("ascii"),
        b"x-amz-id-2": requestId.encode("ascii"),
    }
    allHeaders.update(headers or {})
    return formatResponse(status, allHeaders, body)


class _BodyMeter:
    """
    Checks, at the end of every window, that a body brought at least
    C{rate * window} bytes during it.  Paused time does not count: the
    window's clock stops.
    """

    def __init__(self, clock: IReactorTime, rate: int, window: float, tooSlow: Callable[[], None]) -> None:
        self._clock = clock
        self._needed = rate * window
        self._window = window
        self._tooSlow = tooSlow
        self._received = 0
        self._left = window
        self._call: Optional[IDelayedCall] = None
        self._paused = False
        self._stopped = False

    def start(self) -> None:
        """The body starts now."""
        self._schedule()

    def received(self, count: int) -> None:
        """C{count} more body bytes arrived."""
        self._received += count

    def pause(self) -> None:
        """The server stopped reading: stop the window's clock."""
        if self._paused or self._stopped:
            return
        self._paused = True
        if self._call is not None:
            self._left = max(0.0, self._call.getTime() - self._clock.seconds())
            self._call.cancel()
            self._call = None

    def resume(self) -> None:
        """The server reads again: the window's clock runs on."""
        if self._paused and not self._stopped:
            self._paused = False
            self._schedule()

    def stop(self) -> None:
        """The body is over, one way or another."""
        self._stopped = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _schedule(self) -> None:
        self._call = self._clock.callLater(self._left, self._check)

    def _check(self) -> None:
        self._call = None
        if self._received >= self._needed:
            self._received = 0
            self._left = self._window
            self._schedule()
        else:
            self._stopped = True
            self._tooSlow()


class ChannelGuards:
    """
    The bounds both HTTP channels enforce, written once: L{GuardedChannel}
    (on twisted.web's L{HTTPChannel}) and
    L{fasterstore.http.lean.LeanChannel} (on httptools) each drive these
    from their own parsing.

    The head deadline (L{_startHead}, L{_headDone}), the body rate meter
    (L{_startMeter}, L{_stopMeter}), the server's own pauses not counted
    against the client (L{IStreamingChannel}'s L{bodyPaused} and
    L{bodyResumed}), and every refusal: a complete S3 error, then read no
    more, close once it is written and abort if the peer never takes it
    (L{_refuse}, L{_closeAfterAnswer}).

    A channel using it is a protocol with a C{transport}, twisted's
    L{twisted.protocols.policies.TimeoutMixin} C{setTimeout} (the idle
    timeout), C{loseConnection}, C{abortTimeout}, C{_abortingCall} and
    C{forceAbortClient}, as L{HTTPChannel} has them.  Built by
    L{GuardedSite}, which sets L{clock} and L{limits}.

    @ivar clock: the Site's reactor, for every timer here.
    @ivar limits: the bounds to apply.
    @ivar phase: C{"head"} (reading a request head, under the deadline),
        C{"body"} (reading its body, under the rate meter), C{"handling"}
        (the request is being answered; later input waits in a buffer) or
        C{"idle"} (between requests: only the idle timeout applies).
    """

    clock: IReactorTime
    limits: ConnectionLimits = ConnectionLimits(maxConnections=0)
    phase = "head"
    _headCall: Optional[IDelayedCall] = None
    _headDue = False
    _meter: Optional[_BodyMeter] = None
    _closing = False
    # The server paused reading the body (between bodyPaused and bodyResumed).
    _bodyHeld = False
    _idleWhilePaused: Optional[float] = None
    _onClose: Optional[Callable[[], None]] = None
    # The transport's read size while a large body raised it (L{_readLarge}).
    _readSize: Optional[int] = None

    if TYPE_CHECKING:
        # What the channel using these guards provides (see the class docstring).
        transport: Any
        abortTimeout: Any  # seconds, or None for never
        _abortingCall: Optional[IDelayedCall]

        def setTimeout(self, period: Optional[float]) -> Optional[float]:
            """The idle timeout (TimeoutMixin): set C{period}, return the previous one."""

        def loseConnection(self) -> None:
            """Close once what was written is sent."""

        def forceAbortClient(self) -> None:
            """Abort the connection at once."""

    # -- IStreamingChannel ---------------------------------------------------

    def bodyPaused(self) -> None:
        """
        The server stopped reading the body: its time is not the client's,
        neither for the rate nor for the idle timeout.
        """
        self._bodyHeld = True
        if self._meter is not None:
            self._meter.pause()
        if not self._closing and self._idleWhilePaused is None:
            self._idleWhilePaused = self.setTimeout(None)

    def bodyResumed(self) -> None:
        """The server reads the body again: both clocks run on."""
        self._bodyHeld = False
        if self._meter is not None:
            self._meter.resume()
        idle, self._idleWhilePaused = self._idleWhilePaused, None
        if idle is not None and not self._closing:
            self.setTimeout(idle)

    def answeredEarly(self) -> None:
        """The request answered before its body ended: close after the answer."""
        self._closeAfterAnswer()

    # -- the guards ----------------------------------------------------------

    def _startHead(self) -> None:
        """A request head is due: its deadline runs from now (unless one already does)."""
        self.phase = "head"
        timeout = self.limits.headerTimeout
        if timeout <= 0 or self._headDue or self._closing:
            return
        self._headDue = True
        call = self._headCall
        if call is not None and call.active():
            # The timer of an earlier head, idle since it completed: moved
            # on, which is cheaper than a new timer for every request.
            call.reset(timeout)
        else:
            self._headCall = self.clock.callLater(timeout, self._headTimedOut)

    def _headDone(self) -> None:
        """The head is complete in time: no deadline (its timer stays, for the next head to move on)."""
        self._headDue = False

    def _cancelHead(self) -> None:
        """The connection is closing: no deadline, no timer."""
        self._headDue = False
        call, self._headCall = self._headCall, None
        if call is not None and call.active():
            call.cancel()

    def _startMeter(self, length: Optional[int]) -> None:
        """
        A body of C{length} bytes (None: chunked) follows its head: meter
        its rate from now, the meter's clock stopped if the server has
        already paused reading (a receiver still being chosen); read a large
        one in larger pieces.
        """
        self._readLarge(length is None or length >= LARGE_BODY)
        limits = self.limits
        if self._closing or limits.minUploadRate <= 0 or limits.uploadRateWindow <= 0:
            return
        self._meter = _BodyMeter(self.clock, limits.minUploadRate, limits.uploadRateWindow, self._bodyTooSlow)
        self._meter.start()
        if self._bodyHeld:
            self._meter.pause()

    def _readLarge(self, large: bool) -> None:
        """
        Let a TCP transport read up to L{LARGE_READ} bytes at a time while a
        large body arrives, and twisted's default otherwise: each read of a
        body costs a system call and a pass through the channel, but a large
        buffer costs every small request its allocation.
        """
        transport = self.transport
        if not ITCPTransport.providedBy(transport):
            return
        if large and self._readSize is None:
            self._readSize = cast(Any, transport).bufferSize
            cast(Any, transport).bufferSize = LARGE_READ
        elif not large and self._readSize is not None:
            cast(Any, transport).bufferSize, self._readSize = self._readSize, None

    def _stopMeter(self) -> None:
        """The body is over: no more metering, and reads of the usual size."""
        self._readLarge(False)
        if self._meter is not None:
            self._meter.stop()
            self._meter = None

    def _headTimedOut(self) -> None:
        self._headCall = None
        if not self._headDue:
            return  # the timer of a head completed in time
        log.info("Request head not complete within {timeout}s: closing {peer}", timeout=self.limits.headerTimeout, peer=self._peer())
        self._refuse(400, "RequestTimeout", TIMEOUT_MESSAGE)

    def _bodyTooSlow(self) -> None:
        self._meter = None
        log.info(
            "Request body slower than {rate} bytes/s over {window}s: closing {peer}",
            rate=self.limits.minUploadRate,
            window=self.limits.uploadRateWindow,
            peer=self._peer(),
        )
        self._refuse(400, "RequestTimeout", TIMEOUT_MESSAGE)

    def _refuseBareLineEnd(self) -> None:
        self._refuse(400, "BadRequest", "Request line and header lines must end with CRLF.")

    def _respondToBadRequestAndDisconnect(self) -> None:
        """Malformed HTTP (twisted.web's own refusals too), as a complete S3 error."""
        self._refuse(400, "BadRequest", "The request is not valid HTTP/1.1.")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer with an S3 error (nothing else is on the wire for this request) and close."""
        if self._closing:
            return
        self.transport.write(errorResponse(status, code, message))
        self._closeAfterAnswer()

    def _closeAfterAnswer(self) -> None:
        """Read no more; close once the answer is written; abort if it never is."""
        if self._closing:
            return
        self._closing = True
        self._cancelHead()
        self._stopMeter()
        self.setTimeout(None)
        if self.abortTimeout is not None and self._abortingCall is None:
            self._abortingCall = self.clock.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()

    def _peer(self) -> str:
        try:
            return str(self.transport.getPeer())
        except Exception:
            return "?"

    def _stopGuards(self) -> None:
        """The connection is gone: read no more, no deadline, no meter."""
        self._closing = True
        self._cancelHead()
        self._stopMeter()

    def _closed(self) -> None:
        """The site counts one connection fewer (once, however often the loss is reported)."""
        onClose, self._onClose = self._onClose, None
        if onClose is not None:
            onClose()


@implementer(IStreamingChannel)
class GuardedChannel(ChannelGuards, HTTPChannel):
    """
    An L{HTTPChannel} with a deadline for each request head, a minimum
    body rate, and no patience for bare LF (see L{ChannelGuards}).  Built
    by L{GuardedSite}, which sets L{clock} and L{limits}.
    """

    # -- the phases of a request -------------------------------------------

    def connectionMade(self) -> None:
        """The first request's head is due from now."""
        super().connectionMade()
        self._startHead()

    def dataReceived(self, data: bytes) -> None:
        """
        Parse, unless we are closing; a first byte after an idle spell starts
        a head deadline; a line ending in bare LF is refused.
        """
        if self._closing:
            return
        if self.phase == "idle" and data:
            self._startHead()
        super().dataReceived(data)
        if self._closing or self._busyReceiving or getattr(self.transport, "disconnecting", False):
            return
        if self.line_mode and not self._handlingRequest:
            # Whatever is left unparsed in line mode holds no CRLF; any LF in
            # it ends a line with a bare LF, however the bytes were split.
            if b"\n" in self._buffer:
                self._refuseBareLineEnd()
            elif self.phase == "idle" and self._buffer:
                self._startHead()

    def lineReceived(self, line: bytes) -> None:
        """A line of a request head: must not hide a bare LF or CR."""
        if self._closing:
            return
        if b"\n" in line or b"\r" in line:
            self._refuseBareLineEnd()
            return
        if self.phase == "idle":
            self._startHead()
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A head line longer than twisted.web allows (16 KiB): answered like a
        head over twisted.web's total size, not just closed.
        """
        self._respondToBadRequestAndDisconnect()

    def allHeadersReceived(self) -> None:
        """The head is complete in time: its body, if any, is metered."""
        self._headDone()
        self.phase = "body"
        super().allHeadersReceived()
        if self._closing or getattr(self.transport, "disconnecting", False):
            return
        if self.length != 0:
            self._startMeter(self.length)

    def rawDataReceived(self, data: bytes) -> None:
        """Body bytes count towards the rate."""
        if self._meter is not None and not self._handlingRequest:
            self._meter.received(len(data))
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        """The body is complete: the request is answered at its own pace."""
        self._stopMeter()
        self.phase = "handling"
        # A pause still in force hands the idle timeout back to twisted,
        # which keeps it off while the request is handled.
        idle, self._idleWhilePaused = self._idleWhilePaused, None
        if idle is not None:
            self.setTimeout(idle)
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        """Between requests only the idle timeout applies, until a byte comes."""
        self._bodyHeld = False
        if self.persistent:
            self.phase = "idle"
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Stop every timer; the site counts one connection fewer."""
        self._stopGuards()
        super().connectionLost(reason)
        self._closed()


class _Overloaded(Protocol):
    """
    A connection past the limit: answered C{503 SlowDown} at once, its input
    read and dropped for L{OVERFLOW_LINGER} seconds (or not at all), then
    closed; aborted L{OVERFLOW_ABORT} seconds later if still open.
    """

    def __init__(self, clock: IReactorTime, linger: float, answer: bool, onClose: Callable[[], None]) -> None:
        self._clock = clock
        self._linger = linger
        self._answer = answer
        self._onClose: Optional[Callable[[], None]] = onClose
        self._call: Optional[IDelayedCall] = None

    def connectionMade(self) -> None:
        """Answer, and close soon."""
        if self._answer:
            cast(Any, self.transport).write(
                errorResponse(503, "SlowDown", "Please reduce your request rate.", {b"Retry-After": b"1"})
            )
        if self._linger > 0:
            self._call = self._clock.callLater(self._linger, self._close)
        else:
            self._close()

    def dataReceived(self, data: bytes) -> None:
        """The request is not read: its bytes are dropped."""

    def _close(self) -> None:
        self._call = self._clock.callLater(OVERFLOW_ABORT, self._abort)
        cast(Any, self.transport).loseConnection()

    def _abort(self) -> None:
        self._call = None
        cast(Any, self.transport).abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Gone: no more timers; the site counts one refusal fewer."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        onClose, self._onClose = self._onClose, None
        if onClose is not None:
            onClose()


class GuardedSite(Site):
    """
    A L{Site} of L{GuardedChannel}s that counts its open connections, over
    all the listeners it serves, and refuses those past
    L{ConnectionLimits.maxConnections}: such a connection is answered
    C{503 SlowDown} (S3 XML, C{Retry-After: 1}, C{Connection: close})
    without its request being parsed, and closed within a second; the
    connections already open are untouched.  While more than
    L{OVERFLOW_LINGERING} refusals are still closing, a new connection past
    the limit is closed at once, unanswered.

    The channel is L{GuardedChannel} (twisted.web's HTTP/1.1 parser), or
    whichever C{protocol} is given: L{fasterstore.http.lean.LeanChannel},
    on httptools, is the other one that carries these guards.

    @ivar limits: the bounds every channel gets.
    @ivar openConnections: connections being served now.
    @ivar refusingConnections: connections refused and not yet closed.
    """

    protocol = GuardedChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: Any,
        *args: Any,
        limits: Optional[ConnectionLimits] = None,
        protocol: Optional[Type[ChannelGuards]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(resource, *args, **kwargs)
        if protocol is not None:
            self.protocol = protocol  # type: ignore[assignment]
        self.limits = limits if limits is not None else ConnectionLimits()
        self.openConnections = 0
        self.refusingConnections = 0
        self._overloaded = False

    def buildProtocol(self, addr: Optional[IAddress]) -> Protocol:  # type: ignore[override]
        """A channel, or, past the limit, a refusal; counted either way."""
        limit = self.limits.maxConnections
        if limit > 0 and self.openConnections >= limit:
            return self._refusal()
        channel = super().buildProtocol(addr)
        channel.clock = self.reactor
        channel.limits = self.limits
        channel._onClose = self._channelClosed
        self.openConnections += 1
        return channel

    def _refusal(self) -> Protocol:
        if not self._overloaded:
            self._overloaded = True
            log.warn(
                "{open} connections open, the --max-connections limit: refusing new ones with 503 SlowDown",
                open=self.openConnections,
            )
        lingering = self.refusingConnections < OVERFLOW_LINGERING
        self.refusingConnections += 1
        refusal = _Overloaded(
            self.reactor, OVERFLOW_LINGER if lingering else 0.0, answer=lingering, onClose=self._refusalClosed
        )
        refusal.factory = self
        return refusal

    def _channelClosed(self) -> None:
        self.openConnections -= 1
        if self._overloaded and self.openConnections < self.limits.maxConnections:
            self._overloaded = False
            log.info("{open} connections open: accepting new ones again", open=self.openConnections)

    def _refusalClosed(self) -> None:
        self.refusingConnections -= 1
