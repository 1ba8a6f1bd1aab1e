"""
A twisted.web Request that streams bodies instead of buffering them.

twisted.web renders a resource only after the whole body has arrived, spooled
to memory or a temporary file.  L{StreamingRequest} asks the addressed
resource for a L{IBodyReceiver} as soon as the headers are complete: the
resource can authenticate and refuse the request before any body byte is
read, and then receives the body chunk by chunk, pausing the TCP transport
while its consumer lags behind.  The receiver may also refuse the body part
way through (L{EarlyResponse} from L{IBodyReceiver.dataReceived}).
Resources that do not provide L{IStreamingBodyResource} get the stock
behaviour.

The request works on any L{twisted.web.http.HTTPChannel}; a channel that
also provides L{IStreamingChannel} (L{fasterstore.http.channel.GuardedChannel})
is told when the request pauses reading and when it answers early, so that
the server's own pauses never count against a client's upload rate.
Tests: tests/unit/test_request.py.
"""

from __future__ import annotations

import itertools
import os
from io import BytesIO
from typing import Any, List, Mapping, Optional, Tuple, Union, cast
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import RESPONSES
from zope.interface import Interface

from fasterstore.http.dates import httpDateNow
from fasterstore.http.redaction import redactURI

log = Logger()


class IBodyReceiver(Interface):
    """Takes a request body as it arrives."""

    def dataReceived(data: bytes) -> Optional[Deferred[None]]:
        """
        Take a piece of the body.  A Deferred asks the sender to pause
        reading from the network until it fires.

        @raise EarlyResponse: to refuse the body part way through.  The
            request stops reading, writes that response, and closes the
            connection.  Nothing more is delivered to this receiver except
            one immediate call of L{connectionLost} whose reason wraps this
            very L{EarlyResponse} (so the receiver releases what it holds in
            the one place it always does).  Any other exception is logged
            and answered with a 500 the same way, C{connectionLost} getting
            that exception.
        """

    def connectionLost(reason: Failure) -> None:
        """
        The body will never be complete: release what was taken.  Called at
        most once, and never once the request has finished.  The reason is
        the L{EarlyResponse} (or other exception) the receiver raised when
        it refused the body, otherwise the connection's loss (a client that
        hung up, or a connection the server closed: too slow, timed out).
        """


class IStreamingChannel(Interface):
    """
    What a channel may offer L{StreamingRequest} beyond
    L{twisted.web.http.HTTPChannel}: to hear about the request's own flow
    control.  Optional; the request works on a stock channel without it.
    """

    def bodyPaused() -> None:
        """
        The request stopped reading the body because its receiver lags (the
        disk, not the client): time passes on the server's account until
        L{bodyResumed}.
        """

    def bodyResumed() -> None:
        """The request reads the body again."""

    def answeredEarly() -> None:
        """
        The request wrote a complete response before the end of its body
        (the transport already paused): stop reading and timing, close once
        the response is written, and abort if the peer never takes it.
        """


#: Request ids count up from a random start, with no system call per
#: request: unique within a process; two workers' counts overlap with a
#: chance of 2N/2**64 after N requests each.  Nothing relies on an id
#: being unguessable.
_requestIds = itertools.count(int.from_bytes(os.urandom(8), "big"))


def newRequestId() -> str:
    """A fresh request id (16 hex digits, like S3's), for every response and refusal."""
    return "%016X" % (next(_requestIds) & 0xFFFFFFFFFFFFFFFF)


def formatResponse(status: int, headers: Mapping[bytes, bytes], body: bytes, *, withBody: bool = True) -> bytes:
    """
    A complete, self-delimiting HTTP/1.1 response that closes the connection,
    for code that must answer outside twisted.web's Request machinery.

    C{Content-Length} and C{Connection: close} are always set here (any
    given C{Content-Length}, C{Connection} or C{Transfer-Encoding} is
    replaced); CR, LF and NUL in names or values become spaces, so a
    header can never end the head early.  C{withBody=False} (a HEAD
    request) keeps the length but sends no body.
    """
    reason = RESPONSES.get(status, b"Error")
    lines = [b"HTTP/1.1 %d %s" % (status, reason)]
    for name, value in headers.items():
        if name.lower() in (b"content-length", b"connection", b"transfer-encoding"):
            continue
        lines.append(_clean(name) + b": " + _clean(value))
    lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body if withBody else b"")


_UNSAFE_IN_HEADERS = bytes.maketrans(b"\r\n\x00", b"   ")


def _clean(text: bytes) -> bytes:
    """C{text} with CR, LF and NUL replaced by spaces."""
    return text.translate(_UNSAFE_IN_HEADERS)


class IStreamingBodyResource(Interface):
    """A resource that wants request bodies as they arrive."""

    def bodyReceiver(
        request: "StreamingRequest",
    ) -> "Union[Optional[IBodyReceiver], Deferred[Optional[IBodyReceiver]]]":
        """
        Called once the request's headers are complete, with C{method},
        C{uri}, C{path} and C{prepath} already set.  Return a receiver for
        the body, or None to let twisted.web buffer it as usual; or a
        Deferred of either (or failing with L{EarlyResponse}) when choosing
        needs I/O: the request stops reading and holds what already arrived
        until it fires.
        """


class EarlyResponse(Exception):
    """
    Raised by L{IStreamingBodyResource.bodyReceiver} to answer before the
    body is read, or by L{IBodyReceiver.dataReceived} to answer before the
    rest of it is; the connection is closed afterwards since the body's
    framing is abandoned.  C{Content-Length} and C{Connection} are set by
    the request, not taken from C{headers}.

    @ivar status: HTTP status.
    @ivar headers: response headers.
    @ivar body: complete response body.
    """

    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body


class StreamingRequest(server.Request):
    """
    A L{server.Request} whose body goes to the addressed resource's
    L{IBodyReceiver}, with backpressure.

    @ivar bodyReceiver: the receiver chosen when the headers arrived, if any.
    """

    bodyReceiver: Optional[IBodyReceiver] = None
    _paused: bool = False
    _answeredEarly: bool = False
    # While a receiver is being chosen: the body chunks that arrived, and
    # the arguments of requestReceived if the body is already complete.
    _held: Optional[List[bytes]] = None
    _heldCompletion: Optional[Tuple[bytes, bytes, bytes]] = None
    _length: Optional[int] = None
    # The streaming resource found at header time, which renders the request.
    _resource: Optional[Any] = None

    def gotLength(self, length: Optional[int]) -> None:
        """Headers are complete: find the resource and ask for a receiver."""
        channel = self.channel
        self.method = channel._command
        self.uri = channel._path
        self.path = self.uri.split(b"?", 1)[0]
        self.clientproto = channel._version
        self.site = cast(Any, channel).site
        self.prepath = []
        self.postpath = [unquote_to_bytes(s) for s in self.path[1:].split(b"/")]
        self._length = length
        try:
            resource = self.site.getResourceFor(self)
            streaming = IStreamingBodyResource(resource, None)
            if streaming is not None:
                self._resource = resource
                chosen = streaming.bodyReceiver(self)
                if isinstance(chosen, Deferred):
                    outcome: List[Any] = []

                    def grab(result: Any) -> Any:
                        outcome.append(result)
                        return result

                    chosen.addBoth(grab)
                    if not outcome:
                        self._holdUntil(chosen)
                        return
                    chosen.addErrback(lambda f: None)  # raised below instead
                    if isinstance(outcome[0], Failure):
                        outcome[0].raiseException()
                    chosen = outcome[0]
                self.bodyReceiver = chosen
        except EarlyResponse as early:
            self._answerEarly(early)
        except BaseException:
            log.failure("choosing a body receiver for {uri}", uri=redactURI(self.uri))
            self._answerEarly(EarlyResponse(500, {}, b""))
        self._startBody()

    def _startBody(self) -> None:
        if self.bodyReceiver is None and not self._answeredEarly:
            super().gotLength(self._length)
        else:
            self.content = BytesIO()

    def _holdUntil(self, chosen: "Deferred[Optional[IBodyReceiver]]") -> None:
        """Stop reading until the receiver is chosen; keep what arrives meanwhile."""
        self._held = []
        self.content = BytesIO()
        self._paused = True
        self._transport().pauseProducing()
        streaming = IStreamingChannel(self.channel, None)
        if streaming is not None:
            streaming.bodyPaused()
        chosen.addCallbacks(self._receiverChosen, self._receiverRefused)

    def _receiverRefused(self, failure: Failure) -> None:
        self._held = self._heldCompletion = None
        if self._disconnected:
            return
        if failure.check(EarlyResponse):
            early = failure.value
            assert isinstance(early, EarlyResponse)
            self._answerEarly(early)
        else:
            log.failure("choosing a body receiver for {uri}", failure, uri=redactURI(self.uri))
            self._answerEarly(EarlyResponse(500, {}, b""))

    def _receiverChosen(self, receiver: Optional[IBodyReceiver]) -> None:
        held, completion = self._held or [], self._heldCompletion
        self._held = self._heldCompletion = None
        if self._disconnected:
            if receiver is not None:
                receiver.connectionLost(Failure(ConnectionDone("the client left before its body was read")))
            return
        self.bodyReceiver = receiver
        self._startBody()
        # Read again, then replay: a chunk the receiver cannot take at once
        # pauses anew, within this same turn.
        self._resume(None)
        for data in held:
            self.handleContentChunk(data)
        if completion is not None and not self._answeredEarly:
            self.requestReceived(*completion)

    def handleContentChunk(self, data: bytes) -> None:
        """
        Hand a body chunk to the receiver; pause the network if it lags;
        answer at once if it refuses the body.
        """
        if self._answeredEarly:
            return
        if self._held is not None:
            self._held.append(data)
            return
        receiver = self.bodyReceiver
        if receiver is None:
            super().handleContentChunk(data)
            return
        try:
            wait = receiver.dataReceived(data)
        except EarlyResponse as early:
            self._refuseMidBody(receiver, early, Failure())
            return
        except BaseException:
            failure = Failure()
            log.failure("receiving the body of {uri}", failure, uri=redactURI(self.uri))
            self._refuseMidBody(receiver, EarlyResponse(500, {}, b""), failure)
            return
        if wait is not None and not self._paused:
            self._paused = True
            self._transport().pauseProducing()
            streaming = IStreamingChannel(self.channel, None)
            if streaming is not None:
                streaming.bodyPaused()
            wait.addBoth(self._resume)

    def _resume(self, result: object) -> object:
        """The receiver caught up: read the body again."""
        if self._paused:
            self._paused = False
            if not self._disconnected and not self._answeredEarly:
                self._transport().resumeProducing()
                streaming = IStreamingChannel(self.channel, None)
                if streaming is not None:
                    streaming.bodyResumed()
        return result

    def _refuseMidBody(self, receiver: IBodyReceiver, early: EarlyResponse, reason: Failure) -> None:
        """
        The receiver refused the body part way through: it hears the reason
        once, now, and nothing more; the client gets C{early}.
        """
        self.bodyReceiver = None
        self._answerEarly(early)
        try:
            receiver.connectionLost(reason)
        except BaseException:
            log.failure("releasing the refused body of {uri}", uri=redactURI(self.uri))

    def _transport(self) -> Any:
        """The connection's transport (TCP or TLS), as a push producer."""
        return cast(Any, self.channel).transport

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The body is complete: render, unless the answer already went out."""
        if self._answeredEarly:
            return
        if self._held is not None:
            self._heldCompletion = (command, path, version)
            return
        if self._resource is None:
            super().requestReceived(command, path, version)
            return
        # A streaming resource, found at header time, has had the body: no
        # query arguments or form parsing (it routes on the raw URI), no
        # second traversal.
        cast(BytesIO, self.content).seek(0, 0)
        self.args = {}
        self.method, self.uri, self.clientproto = command, path, version
        self.setHeader(b"Server", server.version)
        self.setHeader(b"Date", httpDateNow())
        try:
            self.render(self._resource)
        except BaseException:
            self.processingFailed(Failure())

    def connectionLost(self, reason: Failure) -> None:
        """Tell an unfinished receiver that its body is gone."""
        super().connectionLost(reason)
        receiver, self.bodyReceiver = self.bodyReceiver, None
        if receiver is not None and not self.finished:
            receiver.connectionLost(reason)

    def _answerEarly(self, early: EarlyResponse) -> None:
        """
        Stop reading, write a complete response now and close the connection.

        twisted.web cannot write a response through the Request before the
        body has arrived, so the status line and headers are written raw (by
        L{formatResponse}: self-delimiting, C{Connection: close}, no body for
        HEAD).  Nothing else has been written for this request by then, bar
        perhaps an interim C{100 Continue}; at header time the
        C{Expect: 100-continue} header is dropped so that the client, which
        may be waiting for it, gets this final answer instead.
        """
        self._answeredEarly = True
        self.requestHeaders.removeHeader(b"expect")
        transport = self._transport()
        if not self._paused:
            transport.pauseProducing()
        transport.write(formatResponse(early.status, early.headers, early.body, withBody=self.method != b"HEAD"))
        streaming = IStreamingChannel(self.channel, None)
        if streaming is not None:
            streaming.answeredEarly()
        else:
            transport.loseConnection()
