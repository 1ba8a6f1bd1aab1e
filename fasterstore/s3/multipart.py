"""
Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
ListParts, ListMultipartUploads, AbortMultipartUpload and
CompleteMultipartUpload, with the XML documents they read and write.

A part is a blob of its own, streamed into the segment engine like a
PutObject body (or copied server-side, piece by piece, from another object
for UploadPartCopy) and recorded in the upload by the metadata store.
Completing an upload commits a manifest: the object record lists the parts
chosen and no byte is rewritten; L{fasterstore.s3.objects.objectExtents}
reads such an object as its parts' blobs laid end to end.
A part the drive has no room for (its declared length, or its copy range,
beyond the space guard's reserve) is refused with 507 before a byte of it is
stored; the manifest commit is a metadata write and never is.

Checksums follow AWS: every part carries the checksum of the upload's
algorithm (CRC64NVME when the upload named none, as AWS now adds by
default).  A COMPOSITE object checksum is the algorithm over the
concatenated raw part checksums, suffixed C{-N}; a FULL_OBJECT one (CRC
algorithms only) is the parts' CRCs combined into the CRC of the whole
object, without reading a byte.  The ETag is the MD5 of the concatenated
part MD5s, suffixed C{-N}.

In a bucket with versioning, a completed upload is a new version like a
PutObject (its id answered in C{x-amz-version-id}); UploadPartCopy reads
the version its copy source names (C{?versionId=}), or the latest.  The
Object Lock named at creation is kept in the upload and given to the object
on completion (else the bucket's default retention, counted from then).
Tests: tests/unit/test_multipart.py, tests/unit/test_objectlock.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from typing import TYPE_CHECKING, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, unquote
from xml.etree import ElementTree

import attrs
from awscrt import checksums as crt
from twisted.web.server import Request

from fasterstore.checksums import ALGORITHMS, newHasher
from fasterstore.errors import S3Error, StorageWriteError
from fasterstore.metadata.records import BucketRecord, ObjectRecord, PartRecord, UploadRecord
from fasterstore.numbers import INT32_MAX, INT64_MAX, parseDecimal
from fasterstore.s3 import objectlock, xml
from fasterstore.auth.integrity import DEFAULT_CHECKSUM
from fasterstore.s3.body import ObjectBody, declaredLength, written
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.conditions import checkGetConditions, checkPutConditions
from fasterstore.s3.context import S3Context
from fasterstore.http.dates import formatISO8601
from fasterstore.s3.objects import (
    MAX_PARTS,
    WIRE_NAMES,
    addChecksums,
    document,
    element,
    nonNegativeInt,
    objectExtents,
    parsePartNumber,
    partsPage,
    storedAttributes,
)
from fasterstore.s3.responses import sendEmpty, sendXML, setHeaders
from fasterstore.s3.routing import Route
from fasterstore.s3 import lifecycle
from fasterstore.s3.versions import emptyVersionId, versionHeaders
from fasterstore.storage.blob import Extent, WrittenBlob
from fasterstore.storage.segments import CorruptionError, ExtentMap

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

#: AWS's minimum size of every part but the last.  Deployments and tests
#: may lower it with an C{S3Context.minPartSize} field.
MIN_PART_SIZE = 5 * 1024 * 1024

#: Bytes read from the source per step of an UploadPartCopy.
COPY_PIECE = 1024 * 1024

#: The most uploads one ListMultipartUploads answer lists.
MAX_UPLOADS = 1000

CHECKSUM_TYPES = ("FULL_OBJECT", "COMPOSITE")

#: CRC algorithms whose part values can be combined into a FULL_OBJECT
#: checksum: the combining function and the digest width in bytes.
_COMBINE: Dict[str, Tuple[Callable[[int, int, int], int], int]] = {
    "crc32": (crt.combine_crc32, 4),
    "crc32c": (crt.combine_crc32c, 4),
    "crc64nvme": (crt.combine_crc64nvme, 8),
}


def minPartSize(ctx: S3Context) -> int:
    """The smallest size allowed for every part of an object but its last."""
    size: int = getattr(ctx, "minPartSize", MIN_PART_SIZE)
    return size


def isPartCopy(route: Route, headers: Mapping[str, str]) -> bool:
    """Routing predicate: an UploadPart that names a copy source."""
    return "uploadId" in route.query and "partNumber" in route.query and "x-amz-copy-source" in headers


def newUploadId() -> str:
    """
    A fresh, unguessable, URL-safe upload id (256 random bits) of letters
    and digits only: one starting with C{-} reads as an option to command
    line clients (C{aws s3api upload-part --upload-id -x...} fails), and
    C{_} or C{-} anywhere gains nothing.
    """
    return "".join(secrets.choice(_UPLOAD_ID_ALPHABET) for _ in range(43))


_UPLOAD_ID_ALPHABET = string.ascii_letters + string.digits


# -- request parsing ------------------------------------------------------------


def checksumSettings(headers: Mapping[str, str]) -> Tuple[Optional[str], Optional[str]]:
    """
    The C{x-amz-checksum-algorithm} and C{x-amz-checksum-type} of a
    CreateMultipartUpload, with AWS's defaults and combinations: a type
    needs an algorithm; CRC64NVME is FULL_OBJECT only, SHA1 and SHA256
    COMPOSITE only, CRC32 and CRC32C either (COMPOSITE by default).

    @return: C{(algorithm, type)}, both C{None} when no algorithm is named.
    @raise S3Error: C{InvalidRequest}.
    """
    algorithmHeader = headers.get("x-amz-checksum-algorithm", "").strip()
    typeHeader = headers.get("x-amz-checksum-type", "").strip().upper()
    if not algorithmHeader:
        if typeHeader:
            raise S3Error("InvalidRequest", "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.")
        return None, None
    algorithm = algorithmHeader.lower()
    if algorithm not in ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
        )
    if typeHeader and typeHeader not in CHECKSUM_TYPES:
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    checksumType = typeHeader or ("FULL_OBJECT" if algorithm == "crc64nvme" else "COMPOSITE")
    if checksumType == "FULL_OBJECT" and algorithm not in _COMBINE:
        raise S3Error("InvalidRequest", f"The {WIRE_NAMES[algorithm]} checksum algorithm does not support the FULL_OBJECT checksum type.")
    if checksumType == "COMPOSITE" and algorithm == "crc64nvme":
        raise S3Error("InvalidRequest", "The CRC64NVME checksum algorithm does not support the COMPOSITE checksum type.")
    return algorithm, checksumType


def effectiveAlgorithm(upload: UploadRecord) -> str:
    """The checksum every part of C{upload} carries."""
    return upload.checksumAlgorithm or DEFAULT_CHECKSUM


def effectiveType(upload: UploadRecord) -> str:
    """How C{upload}'s part checksums make the object's."""
    return upload.checksumType or ("FULL_OBJECT" if effectiveAlgorithm(upload) in _COMBINE else "COMPOSITE")


def normalizeETag(value: str) -> str:
    """An ETag as given by a client, without quotes or surrounding space."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.strip()


@attrs.frozen
class CompletedPart:
    """
    One C{<Part>} of a CompleteMultipartUpload request.

    @ivar number: its C{PartNumber}.
    @ivar etag: its C{ETag}, unquoted.
    @ivar checksums: the C{ChecksumCRC32}-style values given, by algorithm.
    """

    number: int
    etag: str
    checksums: Tuple[Tuple[str, str], ...] = ()


def parseCompleteMultipartUpload(body: bytes) -> List[CompletedPart]:
    """
    Read a CompleteMultipartUpload document.

    @raise S3Error: C{MalformedXML} for a document that is not one, has no
        part, or a part whose C{PartNumber} is not an integer (the schema's
        C{xs:int}: ASCII digits within 32 bits); C{InvalidPart} for a part
        number no upload can have or a part without C{ETag}.
    """
    if not body.strip():
        raise S3Error("MalformedXML")
    root = xml.parseXML(body)
    if xml.localName(root.tag) != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    parts: List[CompletedPart] = []
    for entry in xml.findChildren(root, "Part"):
        number = parseDecimal(
            (xml.childText(entry, "PartNumber") or "").strip(), maximum=INT32_MAX,
            error=lambda: S3Error("MalformedXML"),
        )
        etag = xml.childText(entry, "ETag")
        if etag is None or not 1 <= number <= 10000:
            raise S3Error("InvalidPart")
        checksums = []
        for algorithm, wire in WIRE_NAMES.items():
            value = xml.childText(entry, "Checksum" + wire)
            if value is not None:
                checksums.append((algorithm, value.strip()))
        parts.append(CompletedPart(number, normalizeETag(etag), tuple(checksums)))
    if not parts:
        raise S3Error("MalformedXML")
    return parts


def parseCopySource(value: str) -> Tuple[str, str, Optional[str]]:
    """
    An C{x-amz-copy-source}: C{bucket/key}, URL-encoded, with an optional
    leading slash and C{?versionId=}.

    @return: C{(bucket, key, versionId)}.
    @raise S3Error: C{InvalidArgument} when it names no bucket and key.
    """
    rawPath, _, rawQuery = value.strip().partition("?")
    try:
        path = unquote(rawPath, errors="strict")
    except UnicodeDecodeError:
        path = ""
    if path.startswith("/"):
        path = path[1:]
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            extra={"ArgumentName": "x-amz-copy-source", "ArgumentValue": value},
        )
    versionId = None
    for name, v in parse_qsl(rawQuery, keep_blank_values=True):
        if name == "versionId":
            versionId = v
    return bucket, key, versionId


# ASCII digits only (\d would take any script's); lengths bounded below.
_COPY_RANGE = re.compile(r"bytes=([0-9]+)-([0-9]+)")


def parseCopySourceRange(value: Optional[str], size: int) -> Tuple[int, int]:
    """
    An C{x-amz-copy-source-range} (C{bytes=first-last}, both inclusive and
    within the source) as C{[start, end)}; the whole source when absent.

    @raise S3Error: C{InvalidArgument} for another form; C{InvalidRange}
        for a range outside the source.
    """
    if value is None:
        return 0, size

    def malformed() -> S3Error:
        return S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
            extra={"ArgumentName": "x-amz-copy-source-range", "ArgumentValue": value},
        )

    match = _COPY_RANGE.fullmatch(value.strip())
    if match is None:
        raise malformed()
    first, last = (parseDecimal(match.group(i), maximum=INT64_MAX, error=malformed) for i in (1, 2))
    if first > last or last >= size:
        raise S3Error("InvalidRange", f"Range specified is not valid for source object of size: {size}",
                      extra={"RangeRequested": value, "ActualObjectSize": str(size)})
    return first, last + 1


_COPY_CONDITIONS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
_CONDITION_NAMES = {
    "if-match": "x-amz-copy-source-If-Match",
    "if-none-match": "x-amz-copy-source-If-None-Match",
    "if-modified-since": "x-amz-copy-source-If-Modified-Since",
    "if-unmodified-since": "x-amz-copy-source-If-Unmodified-Since",
}


def checkCopySourceConditions(headers: Mapping[str, str], source: ObjectRecord) -> None:
    """
    The C{x-amz-copy-source-if-*} conditions: read-condition precedence,
    but every failure (a "not modified" one too) is a 412, as AWS answers
    copies.

    @raise S3Error: C{PreconditionFailed} naming the header.
    """
    mapped = {
        name: headers[f"x-amz-copy-source-{name}"]
        for name in _COPY_CONDITIONS
        if f"x-amz-copy-source-{name}" in headers
    }
    if not mapped:
        return
    try:
        status = checkGetConditions(mapped, source.etag, source.modified)
    except S3Error as e:
        condition = e.extra.get("Condition", "").lower()
        raise S3Error("PreconditionFailed", extra={"Condition": _CONDITION_NAMES.get(condition, condition)}) from None
    if status is not None:
        failed = "if-none-match" if "if-none-match" in mapped else "if-modified-since"
        raise S3Error("PreconditionFailed", extra={"Condition": _CONDITION_NAMES[failed]})


def _requestNamesChecksum(headers: Mapping[str, str]) -> bool:
    """Whether an UploadPart request names a checksum algorithm itself."""
    return (
        any(f"x-amz-checksum-{a}" in headers for a in ALGORITHMS)
        or bool(headers.get("x-amz-trailer", "").strip())
        or bool(headers.get("x-amz-sdk-checksum-algorithm", "").strip())
    )


# -- checksums -------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def multipartETag(parts: Sequence[PartRecord]) -> str:
    """The ETag of an object made of C{parts}: MD5 of their MD5s, C{-N}."""
    md5 = hashlib.md5(usedforsecurity=False)
    for part in parts:
        md5.update(bytes.fromhex(part.etag))
    return f"{md5.hexdigest()}-{len(parts)}"


def objectChecksum(algorithm: str, checksumType: str, parts: Sequence[PartRecord]) -> Optional[str]:
    """
    The object checksum of C{parts} from their part checksums, or C{None}
    if a part has none for C{algorithm}.

    COMPOSITE: C{algorithm} over the concatenated raw part checksums, with
    C{-N}.  FULL_OBJECT: the part CRCs combined into the whole object's.
    """
    values: List[bytes] = []
    for part in parts:
        value = dict(part.checksums).get(algorithm)
        if value is None:
            return None
        values.append(base64.b64decode(value))
    if checksumType == "COMPOSITE":
        hasher = newHasher(algorithm)
        for raw in values:
            hasher.update(raw)
        return f"{_b64(hasher.digest())}-{len(parts)}"
    combine, width = _COMBINE[algorithm]
    crc = int.from_bytes(values[0], "big")
    for part, raw in zip(parts[1:], values[1:]):
        crc = combine(crc, int.from_bytes(raw, "big"), part.size)
    return _b64(crc.to_bytes(width, "big"))


async def _digestExtents(ctx: S3Context, extents: Sequence[Extent], algorithm: str) -> bytes:
    """
    Compute C{algorithm} over stored bytes, read back piece by piece (for a
    part whose request did not compute the upload's checksum).
    """
    hasher = newHasher(algorithm)
    layout = ExtentMap.of(extents)
    position = 0
    while position < layout.size:
        stop = min(position + COPY_PIECE, layout.size)
        data = await ctx.segments.readRange(layout, position, stop)
        await ctx.segments.runner.run(hasher.update, data)
        position = stop
    return hasher.digest()


async def _copyRange(ctx: S3Context, extents: Sequence[Extent], start: int, end: int, algorithms: Iterable[str]) -> WrittenBlob:
    """
    Copy bytes C{[start, end)} of stored extents into a new blob, at most
    L{COPY_PIECE} bytes in memory at a time (plus the writer's buffer).

    @raise StorageWriteError: when a segment write failed (a full disk...).
    """
    writer = ctx.segments.openWriter(algorithms)
    layout = ExtentMap.of(extents)
    try:
        position = start
        while position < end:
            stop = min(position + COPY_PIECE, end)
            data = await ctx.segments.readRange(layout, position, stop)
            wait = writer.write(data)
            if wait is not None:
                await wait
            position = stop
    except BaseException:
        writer.abort()
        raise
    try:
        return await writer.finish()
    except Exception as e:
        raise StorageWriteError(e) from e


# -- XML out ---------------------------------------------------------------------


def _addOwner(parent: ElementTree.Element, name: str, ownerId: str, displayName: str) -> None:
    owner = element(parent, name)
    element(owner, "ID", ownerId)
    element(owner, "DisplayName", displayName)


def initiateMultipartUploadResult(upload: UploadRecord) -> bytes:
    """The CreateMultipartUpload answer."""
    root = document("InitiateMultipartUploadResult")
    element(root, "Bucket", upload.bucket)
    element(root, "Key", upload.key)
    element(root, "UploadId", upload.uploadId)
    return xml.serialize(root)


def copyPartResult(part: PartRecord) -> bytes:
    """The UploadPartCopy answer."""
    root = document("CopyPartResult")
    element(root, "ETag", f'"{part.etag}"')
    element(root, "LastModified", formatISO8601(part.modified))
    addChecksums(root, part.checksums)
    return xml.serialize(root)


def completeMultipartUploadResult(location: str, record: ObjectRecord) -> bytes:
    """The CompleteMultipartUpload answer."""
    root = document("CompleteMultipartUploadResult")
    element(root, "Location", location)
    element(root, "Bucket", record.bucket)
    element(root, "Key", record.key)
    element(root, "ETag", f'"{record.etag}"')
    addChecksums(root, record.checksums)
    if record.checksums:
        element(root, "ChecksumType", record.checksumType or "FULL_OBJECT")
    return xml.serialize(root)


def listPartsResult(
    upload: UploadRecord,
    owner: Tuple[str, str],
    partNumberMarker: int,
    maxParts: int,
) -> bytes:
    """
    The ListParts answer: the parts numbered above C{partNumberMarker}, at
    most C{maxParts} of them.
    """
    root = document("ListPartsResult")
    element(root, "Bucket", upload.bucket)
    element(root, "Key", upload.key)
    element(root, "UploadId", upload.uploadId)
    for part in partsPage(root, upload.parts, partNumberMarker, maxParts):
        entry = element(root, "Part")
        element(entry, "PartNumber", str(part.number))
        element(entry, "LastModified", formatISO8601(part.modified))
        element(entry, "ETag", f'"{part.etag}"')
        element(entry, "Size", str(part.size))
        addChecksums(entry, part.checksums)
    _addOwner(root, "Initiator", *owner)
    _addOwner(root, "Owner", *owner)
    element(root, "StorageClass", "STANDARD")
    element(root, "ChecksumAlgorithm", WIRE_NAMES[effectiveAlgorithm(upload)])
    element(root, "ChecksumType", effectiveType(upload))
    return xml.serialize(root)


def listMultipartUploadsResult(
    bucket: str,
    *,
    prefix: str,
    delimiter: str,
    keyMarker: str,
    uploadIdMarker: str,
    maxUploads: int,
    encodingType: Optional[str],
    uploads: Sequence[UploadRecord],
    commonPrefixes: Sequence[str],
    isTruncated: bool,
    nextKeyMarker: str,
    nextUploadIdMarker: str,
    owners: Callable[[str], Tuple[str, str]],
) -> bytes:
    """
    The ListMultipartUploads answer.  With C{encodingType="url"} the
    key-valued elements are URL-encoded as in object listings.

    @param owners: the C{(ID, DisplayName)} of a canonical owner id.
    """
    encode = encodingType == "url"

    def key(text: str) -> str:
        return xml.urlEncode(text) if encode else text

    root = document("ListMultipartUploadsResult")
    element(root, "Bucket", bucket)
    element(root, "KeyMarker", key(keyMarker))
    element(root, "UploadIdMarker", uploadIdMarker)
    element(root, "NextKeyMarker", key(nextKeyMarker))
    element(root, "NextUploadIdMarker", nextUploadIdMarker)
    if delimiter:
        element(root, "Delimiter", key(delimiter))
    element(root, "Prefix", key(prefix))
    element(root, "MaxUploads", str(maxUploads))
    if encodingType is not None:
        element(root, "EncodingType", encodingType)
    element(root, "IsTruncated", "true" if isTruncated else "false")
    for upload in uploads:
        entry = element(root, "Upload")
        element(entry, "Key", key(upload.key))
        element(entry, "UploadId", upload.uploadId)
        _addOwner(entry, "Initiator", *owners(upload.owner))
        _addOwner(entry, "Owner", *owners(upload.owner))
        element(entry, "StorageClass", "STANDARD")
        element(entry, "Initiated", formatISO8601(upload.initiated))
        if upload.checksumAlgorithm is not None:
            element(entry, "ChecksumAlgorithm", WIRE_NAMES[upload.checksumAlgorithm])
            element(entry, "ChecksumType", effectiveType(upload))
    for commonPrefix in commonPrefixes:
        element(element(root, "CommonPrefixes"), "Prefix", key(commonPrefix))
    return xml.serialize(root)


# -- helpers ----------------------------------------------------------------------


def _callerOwner(call: "Call") -> Tuple[str, str]:
    assert call.auth is not None
    return call.auth.credentials.owner, call.auth.credentials.displayName


def _ownerNames(call: "Call") -> Callable[[str], Tuple[str, str]]:
    ownerId, displayName = _callerOwner(call)
    return lambda owner: (owner, displayName if owner == ownerId else owner)


def _noSuchUpload(uploadId: str) -> S3Error:
    return S3Error("NoSuchUpload", extra={"UploadId": uploadId})


async def _upload(ctx: S3Context, call: "Call") -> UploadRecord:
    """The upload the request names, in the bucket and under the key it addresses."""
    ownedBucket(call)
    uploadId = call.route.query.get("uploadId", "")
    upload = await ctx.metadata.getUpload(uploadId) if uploadId else None
    if upload is None or (upload.bucket, upload.key) != (call.route.bucket, call.route.key):
        raise _noSuchUpload(uploadId)
    return upload


async def uploadPartAlgorithms(ctx: S3Context, call: "Call") -> FrozenSet[str]:
    """
    For the resource, at header time of an UploadPart: the checksums the
    part's writer must compute besides the one its headers name (the
    upload's algorithm).  Also refuses, before a body byte is read, a bad
    part number, an unknown upload or a part the drive has no room for.

    Also refuses a part of an upload with Object Lock parameters that
    names no digest of its body, as AWS does.

    @raise S3Error: C{InvalidArgument}, C{NoSuchUpload}, C{InvalidRequest},
        C{InsufficientStorage}.
    """
    parsePartNumber(call.route.query.get("partNumber", ""))
    upload = await _upload(ctx, call)
    objectlock.requireDigest(call.headers, ownedBucket(call), objectlock.Lock.ofUpload(upload), "Put Part")
    ctx.checkSpace(declaredLength(call.headers, call.auth))
    return frozenset({effectiveAlgorithm(upload)})


def _partRecord(ctx: S3Context, number: int, blob: WrittenBlob, algorithm: str, digest: bytes) -> PartRecord:
    return PartRecord(
        number=number,
        size=blob.size,
        etag=blob.digests["md5"].hex(),
        blob=blob.contentAddress,
        modified=ctx.clock.seconds(),
        checksums=((algorithm, _b64(digest)),),
    )


# -- handlers ---------------------------------------------------------------------


async def createMultipartUpload(ctx: S3Context, call: "Call", request: Request) -> None:
    """CreateMultipartUpload: record the future object's headers, metadata, tags, checksum and lock."""
    ownedBucket(call)
    assert call.route.bucket is not None and call.route.key is not None
    attributes = storedAttributes(call.headers)
    algorithm, checksumType = checksumSettings(call.headers)
    lock = call.lock or objectlock.Lock()
    upload = await ctx.metadata.createUpload(
        UploadRecord(
            uploadId=newUploadId(),
            bucket=call.route.bucket,
            key=call.route.key,
            owner=_callerOwner(call)[0],
            initiated=ctx.clock.seconds(),
            headers=attributes.headers,
            meta=attributes.meta,
            tags=attributes.tags,
            checksumAlgorithm=algorithm,
            checksumType=checksumType,
            lockMode=lock.mode,
            lockUntil=lock.until,
            legalHold=lock.legalHold,
        )
    )
    if algorithm is not None and checksumType is not None:
        setHeaders(request, {"x-amz-checksum-algorithm": WIRE_NAMES[algorithm], "x-amz-checksum-type": checksumType})
    sendXML(request, initiateMultipartUploadResult(upload))


async def uploadPart(ctx: S3Context, call: "Call", request: Request) -> None:
    """UploadPart: the streamed, verified body becomes part N (replacing any earlier one)."""
    body = call.body
    assert isinstance(body, ObjectBody), "UploadPart always gets an ObjectBody"
    blob = await written(ctx, body.finish())
    try:
        number = parsePartNumber(call.route.query.get("partNumber", ""))
        upload = await _upload(ctx, call)
        algorithm = effectiveAlgorithm(upload)
        named = body.algorithms[0] if _requestNamesChecksum(call.headers) else None
        if upload.checksumAlgorithm is not None and named is not None and named != algorithm:
            raise S3Error(
                "InvalidRequest",
                f"Checksum Type mismatch occurred, expected checksum Type: {algorithm}, actual checksum Type: {named}",
            )
        digest = blob.digests.get(algorithm)
        if digest is None:
            digest = await _digestExtents(ctx, blob.extents, algorithm)
    except BaseException:
        ctx.metadata.discard(blob)
        raise
    part = await ctx.metadata.putPart(upload.uploadId, _partRecord(ctx, number, blob, algorithm, digest), blob)
    ctx.metrics.bytesIn.inc(blob.size)
    sendEmpty(request, 200, {"ETag": f'"{part.etag}"', f"x-amz-checksum-{algorithm}": dict(part.checksums)[algorithm]})


async def _copySource(ctx: S3Context, bucket: str, key: str, versionId: Optional[str]) -> ObjectRecord:
    """
    The object an UploadPartCopy reads: the key's latest version, or
    version C{versionId}.

    @raise S3Error: C{NoSuchKey}, C{NoSuchVersion}, C{InvalidRequest} (the
        version named is a delete marker, as AWS answers a copy),
        C{InvalidArgument} (an empty or malformed id).
    """
    if versionId is None:
        source = await ctx.metadata.getObject(bucket, key)
        if source is None:
            raise S3Error("NoSuchKey", extra={"Key": key})
        return source
    if not versionId:
        raise emptyVersionId("x-amz-copy-source")
    found = await ctx.metadata.getVersion(bucket, key, versionId)
    if found is None:
        raise S3Error("NoSuchVersion", extra={"Key": key, "VersionId": versionId})
    if found.deleteMarker:
        raise S3Error(
            "InvalidRequest", "The source of a copy request may not specifically refer to a delete marker by version id."
        )
    return found


async def uploadPartCopy(ctx: S3Context, call: "Call", request: Request) -> None:
    """UploadPartCopy: part N is (a range of) another object, or one version of it, copied server-side."""
    number = parsePartNumber(call.route.query.get("partNumber", ""))
    upload = await _upload(ctx, call)
    sourceBucket, sourceKey, versionId = parseCopySource(call.headers["x-amz-copy-source"])
    bucket = await ctx.metadata.getBucket(sourceBucket)
    if bucket is None:
        raise S3Error("NoSuchBucket", extra={"BucketName": sourceBucket})
    if call.auth is None or bucket.owner != call.auth.credentials.owner:
        raise S3Error("AccessDenied")
    source = await _copySource(ctx, sourceBucket, sourceKey, versionId)
    checkCopySourceConditions(call.headers, source)
    start, end = parseCopySourceRange(call.headers.get("x-amz-copy-source-range"), source.size)
    if end - start > ctx.maxObjectSize:
        raise S3Error("EntityTooLarge", extra={"ProposedSize": str(end - start), "MaxSizeAllowed": str(ctx.maxObjectSize)})
    ctx.checkSpace(end - start)
    algorithm = effectiveAlgorithm(upload)
    try:
        extents = await objectExtents(ctx, source)
        blob = await written(ctx, _copyRange(ctx, extents, start, end, (algorithm,)))
    except CorruptionError:
        raise S3Error("InternalError", "The source object's stored data failed its checksum.") from None
    part = await ctx.metadata.putPart(
        upload.uploadId, _partRecord(ctx, number, blob, algorithm, blob.digests[algorithm]), blob
    )
    if versionHeaders(source, bucket.versioning, versionId is not None):
        setHeaders(request, {"x-amz-copy-source-version-id": source.wireVersionId})
    sendXML(request, copyPartResult(part))


async def listParts(ctx: S3Context, call: "Call", request: Request) -> None:
    """ListParts: the parts uploaded so far, paged by part number."""
    upload = await _upload(ctx, call)
    query = call.route.query
    maxParts = min(nonNegativeInt(query.get("max-parts"), "max-parts", MAX_PARTS), MAX_PARTS)
    marker = nonNegativeInt(query.get("part-number-marker"), "part-number-marker", 0)
    owner = _ownerNames(call)(upload.owner)
    sendXML(request, listPartsResult(upload, owner, marker, maxParts))


async def listMultipartUploads(ctx: S3Context, call: "Call", request: Request) -> None:
    """ListMultipartUploads: uploads in progress by key, then initiation time."""
    bucket = ownedBucket(call)
    query = call.route.query
    prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
    keyMarker, uploadIdMarker = query.get("key-marker", ""), query.get("upload-id-marker", "")
    maxUploads = min(nonNegativeInt(query.get("max-uploads"), "max-uploads", MAX_UPLOADS), MAX_UPLOADS)
    encoding = xml.validateEncodingType(query.get("encoding-type"))
    page = await ctx.metadata.listUploads(bucket.name, prefix, delimiter, keyMarker, uploadIdMarker, maxUploads)
    sendXML(
        request,
        listMultipartUploadsResult(
            bucket.name, prefix=prefix, delimiter=delimiter, keyMarker=keyMarker,
            uploadIdMarker=uploadIdMarker, maxUploads=maxUploads, encodingType=encoding,
            uploads=page.uploads, commonPrefixes=page.commonPrefixes, isTruncated=page.isTruncated,
            nextKeyMarker=page.nextKeyMarker, nextUploadIdMarker=page.nextUploadIdMarker,
            owners=_ownerNames(call),
        ),
    )


async def abortMultipartUpload(ctx: S3Context, call: "Call", request: Request) -> None:
    """AbortMultipartUpload: the upload goes away; its parts' space becomes reclaimable."""
    upload = await _upload(ctx, call)
    await ctx.metadata.abortUpload(upload.uploadId)
    sendEmpty(request, 204)


def _assemble(
    ctx: S3Context,
    upload: UploadRecord,
    requested: Sequence[CompletedPart],
    headers: Mapping[str, str],
) -> ObjectRecord:
    """
    The object record a CompleteMultipartUpload commits: run by the metadata
    store against the upload as it will be, so a part still being recorded
    counts.

    @raise S3Error: C{InvalidPart}, C{EntityTooSmall}, C{InvalidRequest},
        C{BadDigest}.
    """
    chosen: List[PartRecord] = []
    for wanted in requested:
        part = upload.getPart(wanted.number)
        if part is None or part.etag != wanted.etag:
            raise S3Error("InvalidPart", extra={"UploadId": upload.uploadId, "PartNumber": str(wanted.number), "ETag": wanted.etag})
        stored = dict(part.checksums)
        for algorithm, claimed in wanted.checksums:
            if algorithm in stored and stored[algorithm] != claimed:
                raise S3Error("InvalidPart", f"The {WIRE_NAMES[algorithm]} you specified for part {wanted.number} did not match what we received.")
        chosen.append(part)
    smallest = minPartSize(ctx)
    for part in chosen[:-1]:
        if part.size < smallest:
            raise S3Error(
                "EntityTooSmall",
                extra={"ProposedSize": str(part.size), "MinSizeAllowed": str(smallest),
                       "PartNumber": str(part.number), "ETag": part.etag},
            )
    size = sum(p.size for p in chosen)
    declared = headers.get("x-amz-mp-object-size")
    if declared is not None and declared.strip() != str(size):
        raise S3Error("InvalidRequest", f"The provided 'x-amz-mp-object-size' header value {declared} does not match what was computed: {size}")
    algorithm, checksumType = effectiveAlgorithm(upload), effectiveType(upload)
    givenType = headers.get("x-amz-checksum-type", "").strip().upper()
    if givenType and givenType != checksumType:
        raise S3Error("BadDigest", f"The upload was created using the {checksumType} checksum mode. The complete request must use the same checksum mode.")
    value = objectChecksum(algorithm, checksumType, chosen)
    for name in ALGORITHMS:
        given = headers.get(f"x-amz-checksum-{name}")
        if given is None:
            continue
        if name != algorithm:
            raise S3Error("InvalidRequest", f"The upload was created using the {WIRE_NAMES[algorithm]} checksum algorithm; the complete request named {WIRE_NAMES[name]}.")
        if value is None or given.strip() not in (value, value.split("-")[0]):
            raise S3Error("BadDigest", f"The {WIRE_NAMES[name]} you specified did not match the calculated checksum.")
    return ObjectRecord(
        bucket=upload.bucket,
        key=upload.key,
        size=size,
        etag=multipartETag(chosen),
        blob="",
        modified=ctx.clock.seconds(),
        headers=upload.headers,
        meta=upload.meta,
        checksums=((algorithm, value),) if value is not None else (),
        parts=tuple(chosen),
        tags=upload.tags,
        checksumType=checksumType if value is not None else None,
        uploadId=upload.uploadId,
    )


async def _completedBy(ctx: S3Context, call: "Call", requested: Sequence[CompletedPart]) -> Optional[ObjectRecord]:
    """The current object, if this very upload completed it with these parts."""
    assert call.route.bucket is not None and call.route.key is not None
    current = await ctx.metadata.getObject(call.route.bucket, call.route.key)
    uploadId = call.route.query.get("uploadId")
    if current is None or not uploadId or current.uploadId != uploadId:
        return None
    if [(p.number, p.etag) for p in current.parts] != [(p.number, p.etag) for p in requested]:
        return None
    return current


def _location(call: "Call", request: Request) -> str:
    scheme = "https" if request.isSecure() else "http"
    host = call.headers.get("host", "")
    return f"{scheme}://{host}{call.route.rawPath.decode('latin-1')}"


async def completeMultipartUpload(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    CompleteMultipartUpload: commit the object as a manifest of the parts
    named, atomically with the upload's end (a racing abort or second
    complete gets NoSuchUpload); If-None-Match / If-Match honoured.
    """
    ownedBucket(call)
    requested = parseCompleteMultipartUpload(call.document)
    for previous, following in zip(requested, requested[1:]):
        if following.number <= previous.number:
            raise S3Error("InvalidPartOrder", extra={"UploadId": call.route.query.get("uploadId", "")})
    try:
        upload = await _upload(ctx, call)
    except S3Error as e:
        completed = await _completedBy(ctx, call, requested)
        if e.code != "NoSuchUpload" or completed is None:
            raise
        # A retry (the first answer was lost): the same answer, as AWS gives.
        setHeaders(request, completionHeaders(ownedBucket(call), completed))
        sendXML(request, completeMultipartUploadResult(_location(call, request), completed))
        return
    headers = call.headers
    conditions = {k: v for k, v in headers.items() if k in ("if-match", "if-none-match")}
    precondition = None
    if conditions:
        def precondition(current: Optional[ObjectRecord]) -> None:
            checkPutConditions(conditions, current)
    bucket = ownedBucket(call)
    record = await ctx.metadata.completeUpload(
        upload.uploadId,
        lambda latest: objectlock.withLock(
            _assemble(ctx, latest, requested, headers), objectlock.Lock.ofUpload(latest), bucket
        ),
        precondition,
    )
    setHeaders(request, completionHeaders(ownedBucket(call), record))
    sendXML(request, completeMultipartUploadResult(_location(call, request), record))


def completionHeaders(bucket: BucketRecord, record: ObjectRecord) -> Dict[str, str]:
    """The version and expiration headers answering a completed upload."""
    headers = versionHeaders(record, bucket.versioning)
    headers.update(lifecycle.expirationHeader(bucket, record))
    return headers


__all__ = [
    "MIN_PART_SIZE",
    "CompletedPart",
    "abortMultipartUpload",
    "checkCopySourceConditions",
    "checksumSettings",
    "completeMultipartUpload",
    "copyPartResult",
    "createMultipartUpload",
    "isPartCopy",
    "listMultipartUploads",
    "listParts",
    "multipartETag",
    "objectChecksum",
    "parseCompleteMultipartUpload",
    "parseCopySource",
    "parseCopySourceRange",
    "uploadPart",
    "uploadPartAlgorithms",
    "uploadPartCopy",
]
