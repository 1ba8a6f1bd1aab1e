"""
Object operations: PutObject, GetObject, HeadObject, DeleteObject and
GetObjectAttributes.

A PUT's body has already streamed into the segment engine by the time its
handler runs (see L{fasterstore.s3.body}); the handler checks it, commits the
object record and answers once the record is durable.  A GET streams the
object's extents with a producer, verifying block checksums on the way.  A
multipart object is a manifest of parts: its bytes are its parts' blobs one
after the other, which L{objectExtents} (the one way to find an object's
bytes) lays end to end.  GET and HEAD take C{partNumber} to address one
part, as AWS does, and C{versionId} to address one version (see
L{fasterstore.s3.versions} for what a version id, a delete marker and
C{x-amz-version-id} mean to every operation).
Tests: tests/unit/test_resource.py, tests/unit/test_multipart.py,
tests/unit/test_object_attributes.py.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, cast
from xml.etree import ElementTree

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer

from twisted.logger import Logger
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.metadata.records import BlobRecord, ObjectRecord, PartRecord
from fasterstore.numbers import INT32_MAX, parseDecimal
from fasterstore.s3 import xml
from fasterstore.s3.body import ObjectBody, written
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.conditions import checkGetConditions, checkPutConditions
from fasterstore.s3.context import S3Context
from fasterstore.http.dates import formatHTTPDate
from fasterstore.s3.names import validateUserMetadata
from fasterstore.s3 import objectlock
from fasterstore.s3 import lifecycle
from fasterstore.s3.ranges import contentRange, parseRange
from fasterstore.s3.responses import finish, sendEmpty, sendXML, setHeaders
from fasterstore.s3.tagging import parseTaggingHeader
from fasterstore.s3.versions import (
    DELETE_MARKER_HEADER,
    VERSION_ID_HEADER,
    addressedVersion,
    deleteMarkerHeaders,
    requestedVersion,
    versionHeaders,
)
from fasterstore.storage.blob import Extent, WrittenBlob
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

#: Part numbers S3 accepts, in GET/HEAD C{partNumber} and in multipart uploads.
MAX_PART_NUMBER = 10000

#: The S3 checksum algorithms by their wire spelling (element names,
#: x-amz-checksum-algorithm values).
WIRE_NAMES = {
    "crc32": "CRC32",
    "crc32c": "CRC32C",
    "crc64nvme": "CRC64NVME",
    "sha1": "SHA1",
    "sha256": "SHA256",
}


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
            codings = [c.strip() for c in value.split(",")]
            if any(c.lower() == "aws-chunked" for c in codings):
                codings = [c for c in codings if c and c.lower() != "aws-chunked"]
                if not codings:
                    continue
                value = ", ".join(codings)
            # Otherwise stored exactly as sent, as AWS does.
        stored.append((name, value))
    return tuple(stored)


def _conditionHeaders(headers: Mapping[str, str]) -> Dict[str, str]:
    return {k: v for k, v in headers.items() if k in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")}


@attrs.frozen
class StoredAttributes:
    """What an upload stores besides its bytes, checked before the body is read."""

    headers: Tuple[Tuple[str, str], ...]
    meta: Tuple[Tuple[str, str], ...]
    tags: Tuple[Tuple[str, str], ...]


def storedAttributes(fields: Mapping[str, str], tags: Optional[Tuple[Tuple[str, str], ...]] = None) -> StoredAttributes:
    """
    The system headers, user metadata and tags an upload stores, from its
    headers (or form fields): metadata within AWS's 2 KB, tags within its
    limits (from C{x-amz-tagging} unless given).
    """
    meta = userMetadata(fields)
    validateUserMetadata(meta)
    if tags is None:
        tagging = fields.get("x-amz-tagging")
        tags = parseTaggingHeader(tagging) if tagging else ()
    return StoredAttributes(systemHeaders(fields), meta, tags)


def newObjectRecord(
    ctx: S3Context, bucket: str, key: str, blob: WrittenBlob, algorithms: Tuple[str, ...], attributes: StoredAttributes
) -> ObjectRecord:
    """The record of a single-blob object just uploaded."""
    return ObjectRecord(
        bucket=bucket,
        key=key,
        size=blob.size,
        etag=blob.digests["md5"].hex(),
        blob=blob.contentAddress,
        modified=ctx.clock.seconds(),
        headers=attributes.headers,
        meta=attributes.meta,
        tags=attributes.tags,
        checksums=tuple(
            (algorithm, base64.b64encode(blob.digests[algorithm]).decode()) for algorithm in sorted(algorithms)
        ),
    )


def uploadResponseHeaders(record: ObjectRecord, versioning: Optional[str]) -> Dict[str, str]:
    """
    ETag, checksum and version headers answering an upload into a bucket
    whose versioning state is C{versioning}.
    """
    headers = {"ETag": f'"{record.etag}"'}
    for algorithm, value in record.checksums:
        headers[f"x-amz-checksum-{algorithm}"] = value
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    headers.update(versionHeaders(record, versioning))
    return headers


async def putObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutObject: verify the streamed body, commit durably, answer."""
    bucket = ownedBucket(call)
    body = call.body
    assert isinstance(body, ObjectBody), "PutObject always gets an ObjectBody"
    assert call.attributes is not None, "resolved with the body, at header time"
    blob = await written(ctx, body.finish())
    assert call.route.bucket is not None and call.route.key is not None
    record = newObjectRecord(ctx, call.route.bucket, call.route.key, blob, body.algorithms, call.attributes)
    record = objectlock.withLock(record, call.lock, bucket)
    conditions = _conditionHeaders(call.headers)
    precondition = None
    if "if-match" in conditions or "if-none-match" in conditions:
        def precondition(current: Optional[ObjectRecord]) -> None:
            checkPutConditions(conditions, current)
    record = await ctx.metadata.putObject(record, blob, precondition)
    ctx.metrics.bytesIn.inc(blob.size)
    headers = uploadResponseHeaders(record, bucket.versioning)
    headers.update(lifecycle.expirationHeader(bucket, record))
    sendEmpty(request, 200, headers)


def _objectHeaders(call: "Call", record: ObjectRecord) -> Dict[str, str]:
    headers: Dict[str, str] = {"Content-Type": DEFAULT_CONTENT_TYPE}
    headers.update(versionHeaders(record, ownedBucket(call).versioning, "versionId" in call.route.query))
    headers.update(dict(record.headers))
    headers["ETag"] = f'"{record.etag}"'
    headers["Last-Modified"] = formatHTTPDate(record.modified)
    headers["Accept-Ranges"] = "bytes"
    for name, value in record.meta:
        headers["x-amz-meta-" + name] = value
    if record.tags:
        headers["x-amz-tagging-count"] = str(len(record.tags))
    headers.update(objectlock.lockHeaders(record))
    for parameter, header in OVERRIDES.items():
        if parameter in call.route.query:
            headers[header] = call.route.query[parameter]
    return headers


def partsPage(
    parent: ElementTree.Element, parts: Sequence[PartRecord], marker: int, maxParts: int
) -> Sequence[PartRecord]:
    """
    The parts after C{marker}, at most C{maxParts}, with the pagination
    elements ListParts and GetObjectAttributes share added to C{parent}.
    """
    after = [p for p in parts if p.number > marker]
    page = after[:maxParts]
    element(parent, "PartNumberMarker", str(marker))
    element(parent, "NextPartNumberMarker", str(page[-1].number if page else marker))
    element(parent, "MaxParts", str(maxParts))
    element(parent, "IsTruncated", "true" if len(after) > len(page) else "false")
    return page


async def objectExtents(ctx: S3Context, record: ObjectRecord) -> Tuple[Extent, ...]:
    """
    Where an object's bytes are, in order: its blob's extents, or for a
    multipart object its parts' blobs' extents laid end to end.  Every read
    of object bytes (GET, copies, UploadPartCopy) goes through here.

    @raise S3Error: C{InternalError} if a blob the record names is missing
        (logged: the metadata is inconsistent).
    """
    extents, _ = await objectLayout(ctx, record)
    return extents


async def objectLayout(ctx: S3Context, record: ObjectRecord) -> Tuple[Tuple[Extent, ...], Tuple[Tuple[str, int], ...]]:
    """
    L{objectExtents}, and the C{(address, size)} of each blob they hold, for
    a whole read to verify what it serves (L{RangeProducer.identities}).
    """
    blobs = await _blobs(ctx, record.blobAddresses(), f"object {record.bucket}/{record.key}")
    return tuple(e for blob in blobs for e in blob.extents), tuple((blob.address, blob.size) for blob in blobs)


async def _extentsOf(ctx: S3Context, identities: Sequence[Tuple[str, int]]) -> Sequence[Extent]:
    """The current extents of these blobs (compaction moves them), in order; fails if one is gone or changed."""
    blobs = await _blobs(ctx, [address for address, _ in identities], "a read looking its blobs up again")
    if [blob.size for blob in blobs] != [size for _, size in identities]:
        raise S3Error("InternalError")
    return [e for blob in blobs for e in blob.extents]


async def _blobs(ctx: S3Context, addresses: Sequence[str], who: str) -> List[BlobRecord]:
    """The blob records of C{addresses}, in order; C{InternalError} (logged) for a missing one."""
    blobs: List[BlobRecord] = []
    for address in addresses:
        blob = await ctx.metadata.getBlob(address)
        if blob is None:
            log.error("{who} points at missing blob {blob}", who=who, blob=address)
            raise S3Error("InternalError")
        blobs.append(blob)
    return blobs


def parsePartNumber(value: str) -> int:
    """
    A C{partNumber} parameter: an integer from 1 to 10,000.

    @raise S3Error: C{InvalidArgument} otherwise, with AWS's message.
    """
    return parseDecimal(
        value.strip(), minimum=1, maximum=MAX_PART_NUMBER,
        error=lambda: S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
            extra={"ArgumentName": "partNumber", "ArgumentValue": value},
        ),
    )


def partSpan(record: ObjectRecord, number: int) -> Tuple[int, int, Optional[int]]:
    """
    The bytes C{[start, end)} of part C{number} of an object, and its parts
    count (C{None} for an object not uploaded in parts, whose only part is
    number 1: the whole object, as AWS serves it).

    @raise S3Error: C{InvalidPartNumber} (416) for a part the object does not
        have.
    """
    if not record.parts:
        if number != 1:
            raise S3Error("InvalidPartNumber")
        return 0, record.size, None
    position = 0
    for part in record.parts:
        if part.number == number:
            return position, position + part.size, len(record.parts)
        position += part.size
    raise S3Error("InvalidPartNumber")


def _checksumHeaders(checksums: Tuple[Tuple[str, str], ...], checksumType: Optional[str]) -> Dict[str, str]:
    headers: Dict[str, str] = {}
    for algorithm, value in checksums:
        headers[f"x-amz-checksum-{algorithm}"] = value
        if checksumType is not None:
            headers["x-amz-checksum-type"] = checksumType
    return headers


async def _prepareRead(ctx: S3Context, call: "Call", request: Request) -> Tuple[ObjectRecord, Optional[Tuple[int, int]], Dict[str, str]]:
    """Look up the version, evaluate conditions, Range or partNumber; set status and headers."""
    record = await addressedVersion(ctx, call, request.method.decode("latin-1"))
    partNumber = call.route.query.get("partNumber")
    number = None
    if partNumber is not None:
        number = parsePartNumber(partNumber)
        if call.headers.get("range") is not None:
            raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
    headers = _objectHeaders(call, record)
    headers.update(await lifecycle.readExpirationHeader(ctx, ownedBucket(call), record, "versionId" in call.route.query))
    status = checkGetConditions(_conditionHeaders(call.headers), record.etag, record.modified)
    if status == 304:
        raise S3Error(
            "NotModified",
            headers={name: headers[name] for name in ("ETag", "Last-Modified", VERSION_ID_HEADER) if name in headers},
        )
    checksumMode = call.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    span: Optional[Tuple[int, int]]
    if number is not None:
        start, end, count = partSpan(record, number)
        if count is not None:
            headers["x-amz-mp-parts-count"] = str(count)
            if checksumMode:
                headers.update(_checksumHeaders(record.parts[_partIndex(record, number)].checksums, None))
        elif checksumMode:
            headers.update(_checksumHeaders(record.checksums, record.checksumType or "FULL_OBJECT"))
        if end == start:
            # An empty object has no byte range to name.
            request.setResponseCode(200)
            headers["Content-Length"] = "0"
            return record, None, headers
        span = (start, end)
    else:
        try:
            span = parseRange(call.headers.get("range"), record.size)
        except S3Error as e:
            e.headers["Content-Range"] = f"bytes */{record.size}"
            raise
    if span is None:
        request.setResponseCode(200)
        headers["Content-Length"] = str(record.size)
        if checksumMode:
            headers.update(_checksumHeaders(record.checksums, record.checksumType or "FULL_OBJECT"))
    else:
        start, end = span
        request.setResponseCode(206)
        headers["Content-Length"] = str(end - start)
        headers["Content-Range"] = contentRange(start, end, record.size)
    return record, span, headers


def _partIndex(record: ObjectRecord, number: int) -> int:
    for index, part in enumerate(record.parts):
        if part.number == number:
            return index
    raise S3Error("InvalidPartNumber")


async def headObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """HeadObject: GetObject's headers, no body."""
    _, _, headers = await _prepareRead(ctx, call, request)
    setHeaders(request, headers)
    finish(request)


async def getObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetObject: stream the (ranged, or one part's) content with backpressure."""
    record, span, headers = await _prepareRead(ctx, call, request)
    start, end = span if span is not None else (0, record.size)
    extents, identities = await objectLayout(ctx, record)
    producer = RangeProducer(
        ctx.segments, extents, start, end, cast(IConsumer, request), identities=identities,
        relocated=lambda: Deferred.fromCoroutine(_extentsOf(ctx, identities)),
    )
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
    if producer.stopped:
        # The client went away mid-body; twisted.web tears the request
        # down itself, and finishing it now would be an error.
        return
    ctx.metrics.bytesOut.inc(end - start)
    finish(request)


# -- GetObjectAttributes ------------------------------------------------------

#: The attributes x-amz-object-attributes may name.
OBJECT_ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")

#: The most parts one GetObjectAttributes (or ListParts) answer lists.
MAX_PARTS = 1000


def element(parent: ElementTree.Element, name: str, text: Optional[str] = None) -> ElementTree.Element:
    """Append a child element, with text if given (for response documents)."""
    child = ElementTree.SubElement(parent, name)
    if text is not None:
        child.text = text
    return child


def document(name: str) -> ElementTree.Element:
    """A response document's root element, in the S3 namespace."""
    return ElementTree.Element(name, xmlns=xml.S3_NAMESPACE)


def addChecksums(parent: ElementTree.Element, checksums: Tuple[Tuple[str, str], ...]) -> None:
    """Append C{ChecksumCRC32}-style elements, in AWS's order."""
    values = dict(checksums)
    for algorithm, wire in WIRE_NAMES.items():
        if algorithm in values:
            element(parent, "Checksum" + wire, values[algorithm])


def nonNegativeInt(value: Optional[str], name: str, default: int) -> int:
    """
    A non-negative integer request parameter, or C{default} when absent.

    @raise S3Error: C{InvalidArgument} naming the parameter, for anything
        but ASCII digits up to S3's integer range.
    """
    if value is None:
        return default
    return parseDecimal(
        value.strip(), maximum=INT32_MAX,
        error=lambda: S3Error(
            "InvalidArgument",
            f"Provided {name} not an integer or within integer range",
            extra={"ArgumentName": name, "ArgumentValue": value},
        ),
    )


def objectAttributesDocument(
    record: ObjectRecord, attributes: Tuple[str, ...], partNumberMarker: int, maxParts: int
) -> bytes:
    """
    The GetObjectAttributesResponse for C{record}: only the elements named in
    C{attributes}.  C{ObjectParts} is left out for an object not uploaded in
    parts, as AWS does.
    """
    root = document("GetObjectAttributesResponse")
    if "ETag" in attributes:
        element(root, "ETag", record.etag)
    if "Checksum" in attributes and record.checksums:
        checksum = element(root, "Checksum")
        addChecksums(checksum, record.checksums)
        element(checksum, "ChecksumType", record.checksumType or "FULL_OBJECT")
    if "ObjectParts" in attributes and record.parts:
        parts = element(root, "ObjectParts")
        element(parts, "PartsCount", str(len(record.parts)))
        for part in partsPage(parts, record.parts, partNumberMarker, maxParts):
            entry = element(parts, "Part")
            element(entry, "PartNumber", str(part.number))
            element(entry, "Size", str(part.size))
            addChecksums(entry, part.checksums)
    if "StorageClass" in attributes:
        element(root, "StorageClass", "STANDARD")
    if "ObjectSize" in attributes:
        element(root, "ObjectSize", str(record.size))
    return xml.serialize(root)


async def getObjectAttributes(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    GetObjectAttributes: the attributes named in C{x-amz-object-attributes}
    (ETag, Checksum, ObjectParts, StorageClass, ObjectSize); parts are paged
    with C{x-amz-max-parts} and C{x-amz-part-number-marker} (or the query
    parameters of the same names without the prefix).
    """
    record = await addressedVersion(ctx, call, request.method.decode("latin-1"))
    named = [n.strip() for n in call.headers.get("x-amz-object-attributes", "").split(",") if n.strip()]
    if not named:
        raise S3Error("InvalidArgument", "Missing required header for this request: x-amz-object-attributes",
                      extra={"ArgumentName": "x-amz-object-attributes", "ArgumentValue": ""})
    for name in named:
        if name not in OBJECT_ATTRIBUTES:
            raise S3Error("InvalidArgument", "Invalid attribute name specified.",
                          extra={"ArgumentName": "x-amz-object-attributes", "ArgumentValue": name})
    query = call.route.query
    maxParts = nonNegativeInt(
        call.headers.get("x-amz-max-parts", query.get("max-parts")), "max-parts", MAX_PARTS
    )
    marker = nonNegativeInt(
        call.headers.get("x-amz-part-number-marker", query.get("part-number-marker")), "part-number-marker", 0
    )
    body = objectAttributesDocument(record, tuple(named), marker, min(maxParts, MAX_PARTS))
    headers = {"Last-Modified": formatHTTPDate(record.modified)}
    headers.update(versionHeaders(record, ownedBucket(call).versioning, "versionId" in call.route.query))
    setHeaders(request, headers)
    sendXML(request, body)


async def notImplemented(ctx: S3Context, call: "Call", request: Request) -> None:
    """An operation that is routed but not built yet."""
    raise S3Error("NotImplemented", f"{call.operation.name} is not implemented yet.")


async def deleteObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    DeleteObject: 204 whether or not the key (or the version named) existed.

    Without C{versionId}, a versioned bucket gets a delete marker, which the
    answer names (C{x-amz-delete-marker}, C{x-amz-version-id}); with one,
    that version goes for good and the answer echoes its id (and says so if
    it was a delete marker).  With C{If-Match} (AWS's conditional delete)
    only that version: 412 otherwise, 404 if there is none, checked at
    commit time like a conditional PUT.  A version under Object Lock is
    403 (L{objectlock.guardDeletion}), judged at commit time too.
    """
    bucket = ownedBucket(call)
    versionId = requestedVersion(call)
    assert call.route.key is not None
    precondition = None
    if "if-match" in call.headers:
        ifMatch = {"if-match": call.headers["if-match"]}

        def precondition(current: Optional[ObjectRecord]) -> None:
            checkPutConditions(ifMatch, current)

    now = ctx.clock.seconds()
    guarded = objectlock.guardDeletion(call, versionId, precondition, now)
    removed = await ctx.metadata.deleteObject(
        bucket.name, call.route.key, guarded, versionId=versionId, modified=now
    )
    sendEmpty(request, 204, deleteHeaders(versionId, removed))


def deleteHeaders(versionId: Optional[str], removed: Optional[ObjectRecord]) -> Dict[str, str]:
    """
    What a DeleteObject answers: the version named and whether it was a
    delete marker, or the delete marker it made.
    """
    headers: Dict[str, str] = {}
    if versionId is not None:
        headers[VERSION_ID_HEADER] = versionId
        if removed is not None and removed.deleteMarker:
            headers[DELETE_MARKER_HEADER] = "true"
    elif removed is not None and removed.deleteMarker:
        headers.update(deleteMarkerHeaders(removed))
    return headers
