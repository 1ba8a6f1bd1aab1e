"""
DeleteObjects (``POST /bucket?delete``), and L{readDocument}: the checked
read of a bounded request body that every operation taking an XML document
(batch delete, tagging, ACLs) uses.

A L{SmallBody} only collects bytes.  L{readDocument} decodes aws-chunked
framing if the payload was streamed, then checks everything the headers
promised about the body: the signed payload SHA-256, ``Content-MD5`` and
the ``x-amz-checksum-*`` header or trailer.  DeleteObjects must carry
``Content-MD5`` or a checksum (AWS requires one; current botocore sends
``x-amz-checksum-crc32`` or ``-crc64nvme`` and no ``Content-MD5``).

The deletes of one request are queued together, so they share one group
commit round; each key gets its own ``<Deleted>`` or ``<Error>`` entry, in
request order.
Tests: tests/unit/test_batch.py.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any, List, Optional, Tuple
from xml.etree import ElementTree

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Request

from fasterstore.checksums import ALGORITHMS, newHasher
from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectRecord
from fasterstore.s3 import xml
from fasterstore.s3.body import SmallBody, uploadSpec
from fasterstore.s3.buckets import ownedBucket
from fasterstore.auth.chunked import AwsChunkedDecoder
from fasterstore.s3.conditions import checkPutConditions
from fasterstore.s3.context import S3Context
from fasterstore.s3.names import validateKey
from fasterstore.s3.responses import sendXML
from fasterstore.auth.payload import PayloadMode

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

log = Logger()

#: AWS's limit on the keys of one DeleteObjects request.
MAX_DELETE_KEYS = 1000

_STREAMING = (
    PayloadMode.STREAMING_SIGNED,
    PayloadMode.STREAMING_SIGNED_TRAILER,
    PayloadMode.STREAMING_UNSIGNED_TRAILER,
)
_TRAILER = (PayloadMode.STREAMING_SIGNED_TRAILER, PayloadMode.STREAMING_UNSIGNED_TRAILER)


# -- checked document bodies ------------------------------------------------


def _hasIntegrityHeader(call: "Call") -> bool:
    """Whether the request names a digest of its body (header or trailer)."""
    headers = call.headers
    if "content-md5" in headers:
        return True
    if any(f"x-amz-checksum-{a}" in headers for a in ALGORITHMS):
        return True
    return headers.get("x-amz-trailer", "").strip().lower().startswith("x-amz-checksum-")


async def readDocument(call: "Call", *, requireIntegrity: bool = False) -> bytes:
    """
    The request body, decoded and verified against every digest its headers
    declare.

    @param requireIntegrity: refuse a request with neither ``Content-MD5``
        nor an ``x-amz-checksum-*`` header or trailer, as AWS does for
        DeleteObjects.
    @raise S3Error: C{InvalidRequest} (missing digest header, bad checksum
        header, malformed aws-chunked framing), C{InvalidDigest},
        C{BadDigest}, C{XAmzContentSHA256Mismatch},
        C{MaxMessageLengthExceeded}.
    """
    if requireIntegrity and not _hasIntegrityHeader(call):
        raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")
    raw = await call.body.finish() if isinstance(call.body, SmallBody) else b""
    auth = call.auth
    payload = auth.payload if auth is not None else PayloadMode.UNSIGNED
    headers = dict(call.headers)
    if payload not in _STREAMING:
        # The body is complete: its length is what twisted.web delivered.
        headers["content-length"] = str(len(raw))
    spec = uploadSpec(headers, auth, 1 << 62)
    data = raw
    trailers: dict[str, str] = {}
    if payload in _STREAMING:
        pieces: List[bytes] = []
        decoder = AwsChunkedDecoder(
            pieces.append,
            signer=auth.chunkSigner if auth is not None else None,
            trailer=payload in _TRAILER,
            decodedLength=spec.size,
        )
        decoder.feed(raw)
        trailers = decoder.finish()
        data = b"".join(pieces)
    elif payload is PayloadMode.SIGNED and auth is not None and auth.payloadSHA256 is not None:
        computed = hashlib.sha256(raw).hexdigest()
        if computed != auth.payloadSHA256.lower():
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                extra={"ClientComputedContentSHA256": auth.payloadSHA256, "S3ComputedContentSHA256": computed},
            )
    if spec.contentMD5 is not None:
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        if md5 != spec.contentMD5:
            raise S3Error(
                "BadDigest",
                extra={
                    "ExpectedDigest": base64.b64encode(spec.contentMD5).decode(),
                    "CalculatedDigest": base64.b64encode(md5).decode(),
                },
            )
    expected = spec.checksum
    name = f"x-amz-checksum-{spec.algorithm}"
    if spec.trailerChecksum:
        if name not in trailers:
            raise S3Error("InvalidRequest", f"The {name} trailer was not sent.")
        try:
            expected = base64.b64decode(trailers[name].strip(), validate=True)
        except ValueError:
            raise S3Error("InvalidRequest", f"Value for {name} trailing header is invalid.") from None
    if expected is not None:
        hasher = newHasher(spec.algorithm)
        hasher.update(data)
        if hasher.digest() != expected:
            raise S3Error(
                "BadDigest", f"The {spec.algorithm.upper()} you specified did not match the calculated checksum."
            )
    return data


# -- DeleteObjects ----------------------------------------------------------


@attrs.frozen
class DeleteEntry:
    """
    One ``<Object>`` of a DeleteObjects request.

    @ivar etag: the ``<ETag>`` condition (delete only if it matches), if given.
    """

    key: str
    versionId: Optional[str] = None
    etag: Optional[str] = None


def parseDelete(body: bytes) -> Tuple[bool, List[DeleteEntry]]:
    """
    Read a ``<Delete>`` document: whether it is quiet, and its entries.

    @raise S3Error: C{MalformedXML} for anything but a ``Delete`` document
        naming 1 to 1000 objects, each with a ``Key``.
    """
    root = xml.parseXML(body)
    if xml.localName(root.tag) != "Delete":
        raise S3Error("MalformedXML")
    quiet = (xml.childText(root, "Quiet") or "").strip().lower() == "true"
    entries: List[DeleteEntry] = []
    for element in xml.findChildren(root, "Object"):
        key = xml.childText(element, "Key")
        if key is None:
            raise S3Error("MalformedXML")
        versionId = xml.childText(element, "VersionId")
        etag = xml.childText(element, "ETag")
        entries.append(DeleteEntry(key, versionId, etag.strip() if etag else None))
    if not entries or len(entries) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML")
    return quiet, entries


def deleteResult(outcomes: List[Tuple[DeleteEntry, Optional[S3Error]]], quiet: bool) -> bytes:
    """
    The ``<DeleteResult>`` document: a ``<Deleted>`` per success (none when
    quiet) and an ``<Error>`` per failure, in request order.
    """
    root = ElementTree.Element("DeleteResult", xmlns=xml.S3_NAMESPACE)
    for entry, error in outcomes:
        if error is None:
            if quiet:
                continue
            element = ElementTree.SubElement(root, "Deleted")
            ElementTree.SubElement(element, "Key").text = entry.key
            if entry.versionId is not None:
                ElementTree.SubElement(element, "VersionId").text = entry.versionId
        else:
            element = ElementTree.SubElement(root, "Error")
            ElementTree.SubElement(element, "Key").text = entry.key
            if entry.versionId is not None:
                ElementTree.SubElement(element, "VersionId").text = entry.versionId
            ElementTree.SubElement(element, "Code").text = error.code
            ElementTree.SubElement(element, "Message").text = error.message
    return xml.serialize(root)


def _startDelete(ctx: S3Context, bucket: str, entry: DeleteEntry) -> "Deferred[Optional[ObjectRecord]]":
    """Queue one delete; everything wrong with the entry itself raises."""
    validateKey(entry.key)
    if entry.versionId is not None and entry.versionId != "null":
        raise S3Error("NoSuchVersion", extra={"Key": entry.key, "VersionId": entry.versionId})
    precondition = None
    if entry.etag is not None:
        conditions = {"if-match": entry.etag}

        def precondition(current: Optional[ObjectRecord]) -> None:
            checkPutConditions(conditions, current)

    return ctx.engine.deleteObject(bucket, entry.key, precondition)


async def deleteObjects(ctx: S3Context, call: "Call", request: Request) -> None:
    """DeleteObjects: up to 1000 keys in one request, one result each."""
    bucket = ownedBucket(ctx, call)
    body = await readDocument(call, requireIntegrity=True)
    quiet, entries = parseDelete(body)
    started: List[Tuple[DeleteEntry, Any]] = []
    for entry in entries:
        try:
            started.append((entry, _startDelete(ctx, bucket.name, entry)))
        except S3Error as e:
            started.append((entry, e))
    outcomes: List[Tuple[DeleteEntry, Optional[S3Error]]] = []
    for entry, pending in started:
        if isinstance(pending, S3Error):
            outcomes.append((entry, pending))
            continue
        try:
            await pending
        except S3Error as e:
            outcomes.append((entry, e))
        except Exception:
            log.failure("DeleteObjects: deleting {bucket}/{key} failed", bucket=bucket.name, key=entry.key)
            outcomes.append((entry, S3Error("InternalError")))
        else:
            outcomes.append((entry, None))
    sendXML(request, deleteResult(outcomes, quiet))
