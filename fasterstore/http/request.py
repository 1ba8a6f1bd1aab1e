"""
A twisted.web Request that streams bodies instead of buffering them.

twisted.web renders a resource only after the whole body has arrived, spooled
to memory or a temporary file.  L{StreamingRequest} asks the addressed
resource for a L{IBodyReceiver} as soon as the headers are complete: the
resource can authenticate and refuse the request before any body byte is
read, and then receives the body chunk by chunk, pausing the TCP transport
while its consumer lags behind.  Resources that do not provide
L{IStreamingBodyResource} get the stock behaviour.
Tests: tests/unit/test_request.py.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Optional, cast
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import RESPONSES
from zope.interface import Interface

log = Logger()


class IBodyReceiver(Interface):
    """Takes a request body as it arrives."""

    def dataReceived(data: bytes) -> Optional[Deferred[None]]:
        """
        Take a piece of the body.  A Deferred asks the sender to pause
        reading from the network until it fires.
        """

    def connectionLost(reason: Failure) -> None:
        """The body will never be complete: release what was taken."""


class IStreamingBodyResource(Interface):
    """A resource that wants request bodies as they arrive."""

    def bodyReceiver(request: "StreamingRequest") -> Optional[IBodyReceiver]:
        """
        Called once the request's headers are complete, with C{method},
        C{uri}, C{path} and C{prepath} already set.  Return a receiver for
        the body, or None to let twisted.web buffer it as usual.
        """


class EarlyResponse(Exception):
    """
    Raised by L{IStreamingBodyResource.bodyReceiver} to answer before the
    body is read; the connection is closed afterwards since the body's
    framing is abandoned.

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
        try:
            resource = self.site.getResourceFor(self)
            streaming = IStreamingBodyResource(resource, None)
            if streaming is not None:
                self.bodyReceiver = streaming.bodyReceiver(self)
        except EarlyResponse as early:
            self._answerEarly(early)
        except BaseException:
            log.failure("choosing a body receiver for {uri}", uri=self.uri)
            self._answerEarly(EarlyResponse(500, {}, b""))
        if self.bodyReceiver is None and not self._answeredEarly:
            super().gotLength(length)
        else:
            self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        """Hand a body chunk to the receiver; pause the network if it lags."""
        if self._answeredEarly:
            return
        if self.bodyReceiver is None:
            super().handleContentChunk(data)
            return
        wait = self.bodyReceiver.dataReceived(data)
        if wait is not None and not self._paused:
            self._paused = True
            self._transport().pauseProducing()
            wait.addBoth(self._resume)

    def _resume(self, result: object) -> object:
        if self._paused:
            self._paused = False
            if not self._disconnected:
                self._transport().resumeProducing()
        return result

    def _transport(self) -> Any:
        """The connection's transport (TCP or TLS), as a push producer."""
        return cast(Any, self.channel).transport

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """The body is complete: render, unless the answer already went out."""
        if self._answeredEarly:
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Failure) -> None:
        """Tell an unfinished receiver that its body is gone."""
        super().connectionLost(reason)
        receiver, self.bodyReceiver = self.bodyReceiver, None
        if receiver is not None and not self.finished:
            receiver.connectionLost(reason)

    def _answerEarly(self, early: EarlyResponse) -> None:
        """
        Write a complete response now and close the connection.

        twisted.web cannot write a response through the Request before the
        body has arrived, so the status line and headers are written raw.  The
        C{Expect: 100-continue} header is dropped so that the client, which
        may be waiting for it, gets this final answer instead.
        """
        self._answeredEarly = True
        self.requestHeaders.removeHeader(b"expect")
        reason = RESPONSES.get(early.status, b"Error")
        headers = dict(early.headers)
        headers[b"Content-Length"] = b"%d" % len(early.body)
        headers[b"Connection"] = b"close"
        lines = [b"HTTP/1.1 %d %s" % (early.status, reason)]
        lines += [name + b": " + value for name, value in headers.items()]
        transport = self._transport()
        transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + early.body)
        transport.loseConnection()
