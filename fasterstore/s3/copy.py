"""
CopyObject: ``PUT /bucket/key`` with ``x-amz-copy-source``.

No byte is read or written: the destination record takes references on the
source's blob (or, for a multipart object, its parts' blobs) and keeps the
source's size, ETag and checksums.  Everything about the source — its
existence, the ``x-amz-copy-source-if-*`` conditions, the 5 GiB limit, the
copy-onto-itself rule — is decided inside the metadata store's C{build} callback,
against the source as it will be when the copy commits (writes not yet
durable included), so a racing PUT or DELETE of the source can never make
the answer disagree with what was copied.

``x-amz-metadata-directive`` COPY (default) keeps the source's system
headers and user metadata; REPLACE takes them from the request.
``x-amz-tagging-directive`` COPY (default) keeps the source's tags; REPLACE
takes ``x-amz-tagging`` (no header: no tags).  ``?versionId=`` in the copy
source names the version to copy (the latest otherwise); naming one makes a
copy onto the same key legal without REPLACE (it restores that version, as
MinIO allows).  The answer names the new version (``x-amz-version-id``) and
the one copied (``x-amz-copy-source-version-id``) as their buckets'
versioning asks (L{fasterstore.s3.versions.versionHeaders}).  The caller
must own both buckets.  The copy gets the Object Lock its headers (or the
destination's default retention) give it, never its source's, as AWS
documents.
Since it stores no object bytes, a copy is never refused by the space guard
when the drive is full: like a delete, it is a metadata write, which the
reserve is there for (UploadPartCopy does copy bytes, and is checked).
Tests: tests/unit/test_copy.py, tests/unit/test_objectlock.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Tuple
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree

import attrs
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.metadata.records import BucketRecord, ObjectRecord
from fasterstore.s3 import objectlock, xml
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.conditions import NOT_MODIFIED, checkGetConditions, checkPutConditions
from fasterstore.s3.context import S3Context
from fasterstore.http.dates import formatISO8601
from fasterstore.s3.names import validateBucketName, validateKey, validateUserMetadata
from fasterstore.s3.objects import systemHeaders, userMetadata
from fasterstore.s3.responses import sendXML, setHeaders
from fasterstore.s3.tagging import parseTaggingHeader
from fasterstore.s3 import lifecycle
from fasterstore.s3.versions import emptyVersionId, versionHeaders

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

#: AWS's largest CopyObject source; larger objects are copied with
#: UploadPartCopy.
MAX_COPY_SIZE = 5 * 1024**3

SELF_COPY_MESSAGE = (
    "This copy request is illegal because it is trying to copy an object to itself without changing "
    "the object's metadata, storage class, website redirect location or encryption attributes."
)

#: Request headers that change an object's storage class, redirect or
#: encryption, which make a copy onto itself legal even with COPY.
_ATTRIBUTE_HEADERS = (
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
)

#: x-amz-copy-source-if-* to the plain conditional header it mirrors.
_SOURCE_CONDITIONS = {
    "x-amz-copy-source-if-match": "if-match",
    "x-amz-copy-source-if-none-match": "if-none-match",
    "x-amz-copy-source-if-modified-since": "if-modified-since",
    "x-amz-copy-source-if-unmodified-since": "if-unmodified-since",
}

_CHECKSUM_ELEMENTS = {
    "crc32": "ChecksumCRC32",
    "crc32c": "ChecksumCRC32C",
    "crc64nvme": "ChecksumCRC64NVME",
    "sha1": "ChecksumSHA1",
    "sha256": "ChecksumSHA256",
}


@attrs.frozen
class CopySource:
    """What ``x-amz-copy-source`` names."""

    bucket: str
    key: str
    versionId: Optional[str]


def parseCopySource(value: str) -> CopySource:
    """
    Read ``x-amz-copy-source``: ``bucket/key`` or ``/bucket/key``, the key
    URL-encoded, optionally followed by ``?versionId=...``.

    @raise S3Error: C{InvalidArgument} when no bucket and key can be read.
    """
    path, _, query = value.strip().partition("?")
    error = S3Error(
        "InvalidArgument",
        "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        extra={"ArgumentName": "x-amz-copy-source", "ArgumentValue": value},
    )
    try:
        decoded = unquote(path, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise error from None
    if decoded.startswith("/"):
        decoded = decoded[1:]
    bucket, slash, key = decoded.partition("/")
    if not bucket or not slash or not key:
        raise error
    versionIds = parse_qs(query, keep_blank_values=True).get("versionId")
    return CopySource(bucket, key, versionIds[0] if versionIds else None)


def _directive(headers: Dict[str, str], name: str) -> str:
    value = headers.get(name, "COPY").strip().upper()
    if value not in ("COPY", "REPLACE"):
        kind = "metadata" if "metadata" in name else "tagging"
        raise S3Error(
            "InvalidArgument", f"Unknown {kind} directive.",
            extra={"ArgumentName": name, "ArgumentValue": headers[name]},
        )
    return value


def checkCopySourceConditions(headers: Dict[str, str], source: ObjectRecord) -> None:
    """
    Evaluate ``x-amz-copy-source-if-*`` against the source, as AWS does:
    the GET rules (``if-match`` true overrides ``if-unmodified-since``
    false; ``if-none-match`` false fails whatever ``if-modified-since``
    says), except that every failure is 412.

    @raise S3Error: C{PreconditionFailed}, naming the failed header.
    """
    mapped = {plain: headers[name] for name, plain in _SOURCE_CONDITIONS.items() if name in headers}
    if not mapped:
        return
    try:
        status = checkGetConditions(mapped, source.etag, source.modified)
    except S3Error as e:
        if e.code == "PreconditionFailed" and "Condition" in e.extra:
            e.extra["Condition"] = "x-amz-copy-source-" + e.extra["Condition"]
        raise
    if status == NOT_MODIFIED:
        failed = "If-None-Match" if "if-none-match" in mapped else "If-Modified-Since"
        raise S3Error("PreconditionFailed", extra={"Condition": "x-amz-copy-source-" + failed})


async def _sourceBucket(ctx: S3Context, call: "Call", name: str) -> BucketRecord:
    """The source bucket, if it exists and belongs to the caller."""
    try:
        validateBucketName(name)
    except S3Error:
        raise S3Error("NoSuchBucket", extra={"BucketName": name}) from None
    bucket = await ctx.metadata.getBucket(name)
    if bucket is None:
        raise S3Error("NoSuchBucket", extra={"BucketName": name})
    if call.auth is None or bucket.owner != call.auth.credentials.owner:
        raise S3Error("AccessDenied")
    return bucket


def copySourceVersionHeaders(source: ObjectRecord, bucket: BucketRecord, named: bool) -> Dict[str, str]:
    """C{x-amz-copy-source-version-id}, when the source's bucket has versioning or the request named a version."""
    if versionHeaders(source, bucket.versioning, named):
        return {"x-amz-copy-source-version-id": source.wireVersionId}
    return {}


def copyObjectResult(record: ObjectRecord) -> bytes:
    """The ``CopyObjectResult`` document."""
    root = ElementTree.Element("CopyObjectResult", xmlns=xml.S3_NAMESPACE)
    ElementTree.SubElement(root, "ETag").text = f'"{record.etag}"'
    ElementTree.SubElement(root, "LastModified").text = formatISO8601(record.modified)
    if record.checksums:
        ElementTree.SubElement(root, "ChecksumType").text = record.checksumType or "FULL_OBJECT"
    for name, value in record.checksums:
        if name in _CHECKSUM_ELEMENTS:
            ElementTree.SubElement(root, _CHECKSUM_ELEMENTS[name]).text = value
    return xml.serialize(root)


async def copyObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """CopyObject: a new record sharing the source's bytes."""
    destination = ownedBucket(call)
    assert call.route.key is not None
    destinationKey = call.route.key
    headers = call.headers
    source = parseCopySource(headers["x-amz-copy-source"])
    sourceBucket = await _sourceBucket(ctx, call, source.bucket)
    validateKey(source.key)
    if source.versionId == "":
        raise emptyVersionId("x-amz-copy-source")
    replaceMetadata = _directive(headers, "x-amz-metadata-directive") == "REPLACE"
    replaceTags = _directive(headers, "x-amz-tagging-directive") == "REPLACE"
    newHeaders: Optional[Tuple[Tuple[str, str], ...]] = None
    newMeta: Optional[Tuple[Tuple[str, str], ...]] = None
    if replaceMetadata:
        newHeaders, newMeta = systemHeaders(headers), userMetadata(headers)
        validateUserMetadata(newMeta)
    newTags = parseTaggingHeader(headers.get("x-amz-tagging", "")) if replaceTags else None
    storageClass = headers.get("x-amz-storage-class")
    if storageClass is not None and storageClass.strip().upper() != "STANDARD":
        raise S3Error("InvalidStorageClass", "FasterStore stores every object in the STANDARD storage class.",
                      extra={"StorageClassRequested": storageClass})
    algorithm = headers.get("x-amz-checksum-algorithm", "").strip().lower() or None
    sameObject = source.bucket == destination.name and source.key == destinationKey and source.versionId is None
    changesAttributes = replaceMetadata or any(name in headers for name in _ATTRIBUTE_HEADERS)
    now = ctx.clock.seconds()
    lock = call.lock

    def build(current: ObjectRecord) -> ObjectRecord:
        if current.size > MAX_COPY_SIZE:
            raise S3Error(
                "InvalidRequest",
                f"The specified copy source is larger than the maximum allowable size for a copy source: {MAX_COPY_SIZE}",
            )
        checkCopySourceConditions(headers, current)
        if sameObject and not changesAttributes:
            raise S3Error("InvalidRequest", SELF_COPY_MESSAGE)
        if algorithm is not None and algorithm not in dict(current.checksums):
            raise S3Error(
                "NotImplemented",
                f"The source has no {algorithm.upper()} checksum, and a copy never rereads the source's bytes.",
            )
        copy = attrs.evolve(
            current,
            bucket=destination.name,
            key=destinationKey,
            modified=now,
            headers=current.headers if newHeaders is None else newHeaders,
            meta=current.meta if newMeta is None else newMeta,
            tags=current.tags if newTags is None else newTags,
            versionId=None,
            uploadId=None,  # no upload completed the copy
        )
        # The copy's own lock, never the source's.
        return objectlock.withLock(copy, lock, destination)

    conditions: Dict[str, str] = {name: headers[name] for name in ("if-match", "if-none-match") if name in headers}
    precondition = None
    if conditions:
        def precondition(current: Optional[ObjectRecord]) -> None:
            checkPutConditions(conditions, current)

    copied, record = await ctx.metadata.copyObject(
        source.bucket, source.key, build, precondition, sourceVersionId=source.versionId
    )
    headers = versionHeaders(record, destination.versioning)
    headers.update(copySourceVersionHeaders(copied, sourceBucket, source.versionId is not None))
    headers.update(lifecycle.expirationHeader(destination, record))
    setHeaders(request, headers)
    sendXML(request, copyObjectResult(record))
