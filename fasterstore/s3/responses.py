"""
Writing responses on a twisted.web Request: XML documents, empty bodies and
S3 error documents, with the request-id headers every S3 response carries.
Tests: tests/unit/test_resource.py.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Optional, Sequence, Tuple

from twisted.web.http_headers import Headers
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.s3 import xml


class S3Headers(Headers):
    """
    Response headers that go out with C{x-amz-*} names in lower case, as
    AWS sends them: twisted.web would write C{X-Amz-Meta-Color}, and SDKs
    hand user-metadata names back to applications exactly as received.
    """

    def getAllRawHeaders(self) -> Iterator[Tuple[bytes, Sequence[bytes]]]:
        for name, values in super().getAllRawHeaders():
            yield (name.lower() if name[:6] == b"X-Amz-" else name), values


def useS3Headers(request: Request) -> None:
    """Give a request L{S3Headers}, keeping what was set already."""
    if not isinstance(request.responseHeaders, S3Headers):
        headers = S3Headers()
        for name, values in request.responseHeaders.getAllRawHeaders():
            headers.setRawHeaders(name, values)
        request.responseHeaders = headers




def setHeaders(request: Request, headers: Mapping[str, str]) -> None:
    """Set response headers from a str mapping."""
    for name, value in headers.items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1"))


def finish(request: Request) -> None:
    """Finish the response unless the client is already gone."""
    if not getattr(request, "_disconnected", False) and not request.finished:
        request.finish()


def sendXML(request: Request, body: bytes, status: int = 200) -> None:
    """Send a complete XML document."""
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/xml")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    finish(request)


def sendEmpty(request: Request, status: int = 200, headers: Optional[Mapping[str, str]] = None) -> None:
    """Send a response with no body (Content-Length 0 unless HEAD set one)."""
    request.setResponseCode(status)
    if headers:
        setHeaders(request, headers)
    if status not in (204, 304) and not request.responseHeaders.hasHeader(b"Content-Length"):
        request.setHeader(b"Content-Length", b"0")
    finish(request)


def errorBody(error: S3Error, resource: str, requestId: str) -> bytes:
    """The S3 C{<Error>} document for an error."""
    return xml.errorDocument(error, resource, requestId, requestId)


def sendError(request: Request, error: S3Error, resource: str, requestId: str) -> None:
    """
    Send an S3 error.  HEAD responses carry no body; 304 is no error body
    either.  Headers set for a success response that never came are dropped.
    """
    if request.startedWriting:
        # Too late for a status: cut the connection so the client sees a
        # truncated body rather than a wrong one.
        transport = getattr(getattr(request, "channel", None), "transport", None)
        if transport is not None:
            transport.abortConnection()
        return
    for name in list(request.responseHeaders.getAllRawHeaders()):
        if name[0].lower() not in (b"server", b"date", b"x-amz-request-id", b"x-amz-id-2"):
            request.responseHeaders.removeHeader(name[0])
    request.setResponseCode(error.status)
    setHeaders(request, error.headers)
    if request.method == b"HEAD" or error.status == 304:
        request.setHeader(b"Content-Length", b"0")
        finish(request)
        return
    sendXML(request, errorBody(error, resource, requestId), error.status)
