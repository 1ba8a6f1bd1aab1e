"""
Object operations: PutObject, GetObject, HeadObject, DeleteObject.

A PUT's body has already streamed into the segment engine by the time its
handler runs (see L{fasterstore.s3.body}); the handler checks it, commits the
object record and answers once the record is durable.  A GET streams the
blob's extents with a producer, verifying block checksums on the way.
Tests: tests/unit/test_resource.py.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, cast

from twisted.internet.interfaces import IConsumer

from twisted.logger import Logger
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectRecord
from fasterstore.s3.body import ObjectBody
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.conditions import checkGetConditions, checkPutConditions
from fasterstore.s3.context import S3Context
from fasterstore.s3.httpdates import formatHTTPDate
from fasterstore.s3.ranges import contentRange, parseRange
from fasterstore.s3.responses import finish, sendEmpty, setHeaders
from fasterstore.storage.reader import RangeProducer
from fasterstore.storage.segments import CorruptionError

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

log = Logger()

#: System headers stored with an object and returned on GET/HEAD.
SYSTEM_HEADERS = (
    "Content-Type",
    "Content-Encoding",
    "Content-Disposition",
    "Content-Language",
    "Cache-Control",
    "Expires",
)

#: GET query parameters that override a response header.
OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}

DEFAULT_CONTENT_TYPE = "binary/octet-stream"


def userMetadata(headers: Mapping[str, str]) -> Tuple[Tuple[str, str], ...]:
    """The x-amz-meta-* headers, names lower-cased without the prefix."""
    return tuple(sorted((name[11:], value) for name, value in headers.items() if name.startswith("x-amz-meta-")))


def systemHeaders(headers: Mapping[str, str]) -> Tuple[Tuple[str, str], ...]:
    """The stored system headers; C{aws-chunked} is a transfer detail, dropped."""
    stored: List[Tuple[str, str]] = []
    for name in SYSTEM_HEADERS:
        value = headers.get(name.lower())
        if value is None:
            continue
        if name == "Content-Encoding":
            codings = [c.strip() for c in value.split(",") if c.strip() and c.strip().lower() != "aws-chunked"]
            if not codings:
                continue
            value = ",".join(codings)
        stored.append((name, value))
    return tuple(stored)


def _conditionHeaders(headers: Mapping[str, str]) -> Dict[str, str]:
    return {k: v for k, v in headers.items() if k in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")}


def _checkVersion(call: "Call") -> None:
    versionId = call.route.query.get("versionId")
    if versionId is not None and versionId != "null":
        raise S3Error("NoSuchVersion", extra={"Key": call.route.key or "", "VersionId": versionId})


def _current(ctx: S3Context, call: "Call") -> ObjectRecord:
    ownedBucket(ctx, call)
    _checkVersion(call)
    assert call.route.bucket is not None and call.route.key is not None
    record = ctx.engine.getObject(call.route.bucket, call.route.key)
    if record is None:
        raise S3Error("NoSuchKey", extra={"Key": call.route.key})
    return record


async def putObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutObject: verify the streamed body, commit durably, answer."""
    ownedBucket(ctx, call)
    body = call.body
    assert isinstance(body, ObjectBody), "PutObject always gets an ObjectBody"
    blob = await body.finish()
    assert call.route.bucket is not None and call.route.key is not None
    checksums = tuple(
        (algorithm, base64.b64encode(blob.digests[algorithm]).decode())
        for algorithm in sorted(body.algorithms)
    )
    record = ObjectRecord(
        bucket=call.route.bucket,
        key=call.route.key,
        size=blob.size,
        etag=blob.digests["md5"].hex(),
        blob=blob.contentAddress,
        modified=ctx.clock.seconds(),
        headers=systemHeaders(call.headers),
        meta=userMetadata(call.headers),
        checksums=checksums,
    )
    conditions = _conditionHeaders(call.headers)
    precondition = None
    if "if-match" in conditions or "if-none-match" in conditions:
        def precondition(current: Optional[ObjectRecord]) -> None:
            checkPutConditions(conditions, current)
    record = await ctx.engine.putObject(record, blob, precondition)
    ctx.metrics.bytesIn.inc(blob.size)
    headers = {"ETag": f'"{record.etag}"'}
    for algorithm, value in record.checksums:
        headers[f"x-amz-checksum-{algorithm}"] = value
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    sendEmpty(request, 200, headers)


def _objectHeaders(call: "Call", record: ObjectRecord) -> Dict[str, str]:
    headers: Dict[str, str] = {"Content-Type": DEFAULT_CONTENT_TYPE}
    headers.update(dict(record.headers))
    headers["ETag"] = f'"{record.etag}"'
    headers["Last-Modified"] = formatHTTPDate(record.modified)
    headers["Accept-Ranges"] = "bytes"
    for name, value in record.meta:
        headers["x-amz-meta-" + name] = value
    for parameter, header in OVERRIDES.items():
        if parameter in call.route.query:
            headers[header] = call.route.query[parameter]
    return headers


def _prepareRead(ctx: S3Context, call: "Call", request: Request) -> Tuple[ObjectRecord, Optional[Tuple[int, int]], Dict[str, str]]:
    """Look up, evaluate conditions and Range; set status and headers."""
    record = _current(ctx, call)
    if "partNumber" in call.route.query:
        raise S3Error("NotImplemented", "partNumber is not implemented yet.")
    headers = _objectHeaders(call, record)
    status = checkGetConditions(_conditionHeaders(call.headers), record.etag, record.modified)
    if status == 304:
        raise S3Error(
            "NotModified",
            headers={"ETag": headers["ETag"], "Last-Modified": headers["Last-Modified"]},
        )
    try:
        span = parseRange(call.headers.get("range"), record.size)
    except S3Error as e:
        e.headers["Content-Range"] = f"bytes */{record.size}"
        raise
    if span is None:
        request.setResponseCode(200)
        headers["Content-Length"] = str(record.size)
        if call.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
            for algorithm, value in record.checksums:
                headers[f"x-amz-checksum-{algorithm}"] = value
                headers["x-amz-checksum-type"] = "FULL_OBJECT"
    else:
        start, end = span
        request.setResponseCode(206)
        headers["Content-Length"] = str(end - start)
        headers["Content-Range"] = contentRange(start, end, record.size)
    return record, span, headers


async def headObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """HeadObject: GetObject's headers, no body."""
    _, _, headers = _prepareRead(ctx, call, request)
    setHeaders(request, headers)
    finish(request)


async def getObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetObject: stream the (ranged) content with backpressure."""
    record, span, headers = _prepareRead(ctx, call, request)
    start, end = span if span is not None else (0, record.size)
    blob = ctx.engine.getBlob(record.blob)
    if blob is None:
        log.error("object {bucket}/{key} points at missing blob {blob}", bucket=record.bucket, key=record.key, blob=record.blob)
        raise S3Error("InternalError")
    producer = RangeProducer(ctx.segments, blob.extents, start, end, cast(IConsumer, request))
    try:
        await producer.prefetch()
    except CorruptionError:
        raise S3Error("InternalError", "The object's stored data failed its checksum.") from None
    setHeaders(request, headers)
    try:
        await producer.start()
    except CorruptionError:
        # Headers and good bytes are out: cut the connection so the client
        # sees a short body, never wrong bytes.
        cast(Any, request.channel).transport.abortConnection()
        return
    ctx.metrics.bytesOut.inc(end - start)
    finish(request)


async def notImplemented(ctx: S3Context, call: "Call", request: Request) -> None:
    """An operation that is routed but not built yet."""
    raise S3Error("NotImplemented", f"{call.operation.name} is not implemented yet.")


async def deleteObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """DeleteObject: 204 whether or not the key existed."""
    ownedBucket(ctx, call)
    _checkVersion(call)
    assert call.route.bucket is not None and call.route.key is not None
    await ctx.engine.deleteObject(call.route.bucket, call.route.key)
    sendEmpty(request, 204)
