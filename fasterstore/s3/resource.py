"""
The S3 resource: one leaf that routes every request on its raw URI.

A request becomes a L{Call} as soon as its headers are complete (when served
by L{StreamingRequest}) or when it renders (in a plain twisted.web Site): it
is routed, authenticated, matched to an operation and, for an upload, given
a body receiver that streams into the segment engine.  Then the operation's
handler writes the response.  Errors become S3 error documents; errors found
before a body is read are answered before it is read.
Tests: tests/unit/test_resource.py.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Union
from weakref import WeakKeyDictionary

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Request
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from fasterstore.errors import S3Error
from fasterstore.metadata.records import BucketRecord
from fasterstore.s3 import buckets, inspection, multipart, objects
from fasterstore.s3 import cors, objectlock, post
from fasterstore.s3.body import ObjectBody
from fasterstore.s3.context import S3Context
from fasterstore.s3.operations import ADMIN, SUBRESOURCES, Operation, levelOf, select
from fasterstore.s3.names import validateBucketName, validateKey
from fasterstore.http.request import EarlyResponse, IBodyReceiver, IStreamingBodyResource, newRequestId
from fasterstore.s3.responses import errorBody, sendError, setHeaders, useS3Headers
from fasterstore.s3.routing import Route, route
from fasterstore.auth.admission import admit, refuseUnsigned
from fasterstore.auth.canonical import RequestHead, headerValue
from fasterstore.auth.integrity import DOCUMENT_LIMIT, IGNORED_BODY_LIMIT, DocumentBody, uploadSpec
from fasterstore.http.redaction import redactURI
from fasterstore.auth.identity import Authenticated
from fasterstore.auth.payload import PayloadMode

log = Logger()

@attrs.define
class Call:
    """
    One S3 request, resolved.

    @ivar operation: the S3 operation and its handler.
    @ivar headers: header values as acted on (repeats joined, see
        L{fasterstore.auth.canonical.headerValue}), by lower-case name.
    @ivar body: where the body goes.
    """

    route: Route
    auth: Optional[Authenticated]
    operation: Operation
    headers: Dict[str, str]
    requestId: str
    attributes: Optional[objects.StoredAttributes] = None
    body: Optional[Union[ObjectBody, DocumentBody, "post.FormUpload"]] = None
    #: The addressed bucket, found at header time when the caller was
    #: checked to own it (None for service-level calls, CreateBucket, form
    #: POSTs and preflights).
    bucket: Optional[BucketRecord] = None
    #: The request's document, verified against every digest its head
    #: declares before the handler runs (b"" for operations that take none).
    document: bytes = b""
    #: The Object Lock a write's headers ask for the new version, checked
    #: at header time (None: none asked).
    lock: Optional[objectlock.Lock] = None


class _Refused(EarlyResponse):
    """An S3 error answered before (the rest of) the body is read."""

    def __init__(self, error: S3Error, status: int, headers: Dict[bytes, bytes], body: bytes) -> None:
        super().__init__(status, headers, body)
        self.error = error


def headerMap(request: Request) -> Dict[str, List[str]]:
    """Request headers by lower-case name, latin-1 decoded."""
    return {
        name.decode("latin-1").lower(): [v.decode("latin-1") for v in values]
        for name, values in request.requestHeaders.getAllRawHeaders()
    }


def _hasBody(request: Request) -> bool:
    length = request.requestHeaders.getRawHeaders(b"content-length", [b"0"])[0]
    chunked = request.requestHeaders.hasHeader(b"transfer-encoding")
    return chunked or length.strip() not in (b"0", b"")


@implementer(IStreamingBodyResource)
class S3Resource(Resource):
    """
    The S3 API (plus the reserved C{/_fasterstore/} paths) as a leaf resource.

    Mount it as a Site's root, or as a child anywhere in an existing tree:
    it routes on the raw URI below its mount point.
    """

    isLeaf = True

    def __init__(self, context: S3Context) -> None:
        super().__init__()
        self.context = context
        self.inFlight = 0
        self._idle: List[Deferred[None]] = []
        # Calls resolved at header time, for render to pick up.
        self._resolved: WeakKeyDictionary[Request, Union[Call, S3Error]] = WeakKeyDictionary()

    # -- header time -------------------------------------------------------

    def bodyReceiver(self, request: Request) -> "Deferred[Optional[IBodyReceiver]]":
        """
        Resolve the call once headers are in; refuse early if we can.  Fires
        at once unless the metadata store had to wait.
        """
        return Deferred.fromCoroutine(self._receiverFor(request))

    async def _receiverFor(self, request: Request) -> Optional[IBodyReceiver]:
        call = await self._resolve(request)
        self._resolved[request] = call
        if isinstance(call, S3Error):
            if _hasBody(request):
                raise self._refusal(request, await self._corsHeaders(None, request))(call)
            return None
        return call.body

    async def _corsHeaders(self, call: Optional[Call], request: Request) -> Dict[str, str]:
        return await cors.requestCORSHeaders(
            self.context, call.route if call is not None else None, call.headers if call is not None else None, request
        )

    def _refusal(self, request: Request, corsHeaders: Dict[str, str]) -> Callable[[S3Error], EarlyResponse]:
        """
        How to answer an error at once, for a request whose body will not
        be read; with the request's CORS headers (a browser reads the error
        only with them).
        """

        def refuse(error: S3Error) -> EarlyResponse:
            requestId = newRequestId()
            body = errorBody(error, request.path.decode("latin-1"), requestId)
            headers = {
                b"Content-Type": b"application/xml",
                b"x-amz-request-id": requestId.encode(),
                b"x-amz-id-2": requestId.encode(),
            }
            for name, value in corsHeaders.items():
                headers[name.encode("latin-1")] = value.encode("latin-1")
            self.context.metrics.errors.labels(error.code).inc()
            return _Refused(error, error.status, headers, body)

        return refuse

    async def _ignoredBody(
        self, request: Request, call: Optional[Call], headers: Dict[str, str], auth: Optional[Authenticated]
    ) -> Optional[DocumentBody]:
        """A receiver that verifies and drops a body nobody wants (bounded)."""
        if not _hasBody(request):
            return None
        refusal = self._refusal(request, await self._corsHeaders(call, request))
        return DocumentBody(headers, auth, IGNORED_BODY_LIMIT, refusal, keep=False)

    @staticmethod
    def _head(request: Request, r: Route, allHeaders: Dict[str, List[str]]) -> RequestHead:
        """What authentication reads of a request."""
        return RequestHead(
            method=request.method.decode("latin-1"),
            rawPath=r.rawPath,
            rawQuery=r.rawQuery,
            headers=allHeaders,
            virtualBucket=r.bucket if r.virtualHost else None,
            query=r.query,
            localPath=r.localPath,
        )

    async def _resolve(self, request: Request) -> Call | S3Error:
        ctx = self.context
        try:
            hosts = request.requestHeaders.getRawHeaders(b"host") or []
            if len(hosts) > 1:
                # RFC 9112 section 3.2: a request with two Hosts is refused.
                raise S3Error("InvalidRequest", "A request may carry only one Host header.")
            r = route(
                request.uri,
                len(request.prepath or ()),
                hosts[0] if hosts else None,
                ctx.domains,
            )
            allHeaders = headerMap(request)
            headers = {name: headerValue(values) for name, values in allHeaders.items()}
            requestId = newRequestId()
            if r.bucket == "_fasterstore" and not r.virtualHost:
                adminAuth = None
                if (r.key or "").startswith("admin/"):
                    # The node's admin API: signed, by an admin's key.
                    adminAuth = admit(self._head(request, r, allHeaders), ctx.lookup, ctx.region, ctx.clock.seconds(), SUBRESOURCES)
                    if adminAuth is None or not adminAuth.credentials.admin:
                        raise S3Error("AccessDenied", "The admin API needs an admin account's signature.")
                admin = Call(r, adminAuth, ADMIN, headers, requestId)
                admin.body = await self._ignoredBody(request, None, headers, adminAuth)
                return admin
            if ctx.draining:
                raise S3Error("ServiceUnavailable", "The server is shutting down.")
            if r.bucket is None and request.method == b"POST":
                # IAM and STS share S3's endpoint in some clients' eyes; their
                # signatures name another service, so answer before auth.
                raise S3Error("NotImplemented", "FasterStore serves the S3 API only; IAM and STS actions are not supported.")
            # -- browser POST uploads, CORS: no Authorization header --------
            unsigned = await self._unsignedCall(request, r, allHeaders, headers, requestId)
            if unsigned is not None:
                return unsigned
            auth = admit(self._head(request, r, allHeaders), ctx.lookup, ctx.region, ctx.clock.seconds(), SUBRESOURCES)
            if auth is None:
                if r.bucket is not None and await ctx.metadata.getBucket(r.bucket) is None:
                    # As AWS: a bucket's existence is not secret.
                    raise S3Error("NoSuchBucket", extra={"BucketName": r.bucket})
                raise S3Error("AccessDenied", "Anonymous access is not allowed.")
            operation = select(levelOf(r), request.method, r, headers)
            if operation.name in inspection.WRITES_WITH_ATTRIBUTES:
                inspection.refuseUnsupportedHeaders(levelOf(r), headers)
            call = Call(r, auth, operation, headers, requestId)
            if r.bucket is not None and operation.name != "CreateBucket":
                try:
                    validateBucketName(r.bucket)
                except S3Error:
                    raise S3Error("NoSuchBucket", extra={"BucketName": r.bucket}) from None
                # Every bucket and object operation is the bucket owner's:
                # decided here, once, so that no handler can forget it.
                call.bucket = await buckets.loadOwnedBucket(ctx, call)
            if r.key is not None:
                validateKey(r.key)
            if operation.name in objectlock.WRITES_WITH_LOCK and call.bucket is not None:
                call.lock = objectlock.requestedLock(headers, call.bucket, ctx.clock.seconds())
            if operation.body == "object":
                call.body = await self._objectBody(call)
            elif operation.body == "small":
                call.body = DocumentBody(
                    headers, auth, DOCUMENT_LIMIT, self._refusal(request, await self._corsHeaders(call, request)),
                    checksumHeaders=operation.checksumsDescribeBody,
                )
            else:
                call.body = await self._ignoredBody(request, call, headers, auth)
            return call
        except S3Error as e:
            return e

    # -- browser POST uploads, CORS ----------------------------------------

    async def _unsignedCall(
        self, request: Request, r: Route, allHeaders: Dict[str, List[str]], headers: Dict[str, str], requestId: str
    ) -> Optional[Call]:
        """
        A form POST upload or a CORS preflight, which S3 answers without an
        Authorization header (the form carries a signed policy, checked when
        its file part begins; browsers send preflights without credentials).
        None for every other request, which takes the signed path.

        Nothing signs a form's HTTP headers, so an C{x-amz-*} header on one
        is refused; a preflight acts on none.
        """
        if r.bucket is None or request.method not in (b"POST", b"OPTIONS"):
            return None
        try:
            operation = select(levelOf(r), request.method, r, headers)
        except S3Error:
            return None  # reported after authentication, as before
        if operation.body != "form" and operation.name != cors.PREFLIGHT:
            return None
        call = Call(r, None, operation, headers, requestId)
        if operation.body == "form":
            try:
                validateBucketName(r.bucket)
            except S3Error:
                raise S3Error("NoSuchBucket", extra={"BucketName": r.bucket}) from None
            refuseUnsigned(allHeaders, frozenset())
            refusal = self._refusal(request, await self._corsHeaders(call, request))
            call.body = await post.formBody(self.context, call, refusal)
        else:
            call.body = await self._ignoredBody(request, call, headers, None)
        return call

    # ----------------------------------------------------------------------

    async def _objectBody(self, call: Call) -> ObjectBody:
        ctx = self.context
        assert call.route.bucket is not None
        if call.operation.name == "PutObject":
            call.attributes = objects.storedAttributes(call.headers)
        spec = uploadSpec(call.headers, call.auth, ctx.maxObjectSize)
        if call.operation.name == "PutObject":
            assert call.bucket is not None
            objectlock.requireDigest(call.headers, call.bucket, call.lock, "Put Object")
            # Refuse, before any body byte is read, what the drive has no
            # room for (UploadPart is checked with its upload, below).
            ctx.checkSpace(spec.size or 0)
        algorithms = {spec.algorithm}
        if call.operation.name == "UploadPart":
            # The part's checksum in the same pass; refuses a bad part
            # number or an unknown upload before any body byte is read.
            algorithms |= await multipart.uploadPartAlgorithms(ctx, call)
        if call.auth is not None and call.auth.payload is PayloadMode.SIGNED:
            algorithms.add("sha256")
        writer = ctx.segments.openWriter(algorithms)
        return ObjectBody(writer, spec, call.auth, ctx.maxObjectSize, ctx.metadata.discard)

    # -- render time -------------------------------------------------------

    def render(self, request: Request) -> object:
        """Answer asynchronously; the request is always finished."""
        self.inFlight += 1
        d = Deferred.fromCoroutine(self._serve(request))
        d.addBoth(self._done)
        return NOT_DONE_YET

    def _done(self, result: object) -> None:
        self.inFlight -= 1
        if self.inFlight == 0:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    def whenIdle(self) -> Deferred[None]:
        """Fires when no request is being served (for graceful stop)."""
        if self.inFlight == 0:
            return Deferred.fromCoroutine(_nothing())
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    async def _serve(self, request: Request) -> None:
        ctx = self.context
        started = ctx.clock.seconds()
        call = self._resolved.pop(request, None)
        if call is None:
            call = await self._resolve(request)
            if isinstance(call, Call) and call.body is not None:
                try:
                    await _pump(request.content, call.body)
                except _Refused as refused:
                    call = refused.error
        operation = call.operation.name if isinstance(call, Call) else "Unknown"
        requestId = call.requestId if isinstance(call, Call) else newRequestId()
        useS3Headers(request)
        request.setHeader(b"x-amz-request-id", requestId.encode())
        request.setHeader(b"x-amz-id-2", requestId.encode())
        request.setHeader(b"Server", b"FasterStore")
        # -- browser POST uploads, CORS: Access-Control-* on actual requests --
        corsHeaders = await self._corsHeaders(call if isinstance(call, Call) else None, request)
        setHeaders(request, corsHeaders)
        try:
            if isinstance(call, S3Error):
                raise call
            if isinstance(call.body, DocumentBody):
                call.document = await call.body.finish()
            await call.operation.handler(ctx, call, request)
        except S3Error as e:
            ctx.metrics.errors.labels(e.code).inc()
            e.headers.update(corsHeaders)
            resource = call.route.resource if isinstance(call, Call) else request.path.decode("latin-1")
            sendError(request, e, resource, requestId)
        except Exception:
            log.failure("{operation} {uri} failed", operation=operation, uri=redactURI(request.uri))
            ctx.metrics.errors.labels("InternalError").inc()
            sendError(request, S3Error("InternalError", headers=corsHeaders), request.path.decode("latin-1"), requestId)
        if operation != "Admin":
            ctx.metrics.served(operation, request.code, ctx.clock.seconds() - started)


async def _nothing() -> None:
    return None


async def _pump(content: Any, body: Any, size: int = 1 << 20) -> None:
    """Feed a body twisted.web already buffered through the same receiver."""
    content.seek(0)
    while True:
        data = content.read(size)
        if not data:
            return
        wait = body.dataReceived(data)
        if wait is not None:
            await wait
