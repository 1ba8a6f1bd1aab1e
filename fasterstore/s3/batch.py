"""
DeleteObjects (``POST /bucket?delete``).

The document arrives verified (L{fasterstore.auth.integrity.DocumentBody});
DeleteObjects must also carry ``Content-MD5`` or a checksum (AWS requires
one; current botocore sends ``x-amz-checksum-crc32`` or ``-crc64nvme`` and
no ``Content-MD5``).

The deletes of one request are queued together, so they share one group
commit round; each key gets its own ``<Deleted>`` or ``<Error>`` entry, in
request order.  An entry's ``<VersionId>`` deletes that version for good;
without one, a versioned bucket gets a delete marker.  ``<Deleted>`` says
what happened as AWS does: ``<DeleteMarker>true</DeleteMarker>`` with
``<DeleteMarkerVersionId>`` for a marker made, or for a marker that was the
version deleted (then the id is that version's).  A version under Object
Lock is an C{AccessDenied} entry (GOVERNANCE ones go with
C{x-amz-bypass-governance-retention: true}), judged at commit time
(L{fasterstore.s3.objectlock.guardDeletion}).
Tests: tests/unit/test_batch.py, tests/unit/test_objectlock.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Union
from xml.etree import ElementTree

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Request

from fasterstore.auth.integrity import requireDigest
from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectRecord
from fasterstore.s3 import objectlock, xml
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.conditions import checkPutConditions
from fasterstore.s3.context import S3Context
from fasterstore.s3.names import validateKey
from fasterstore.s3.responses import sendXML
from fasterstore.s3.versions import emptyVersionId

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

log = Logger()

#: AWS's limit on the keys of one DeleteObjects request.
MAX_DELETE_KEYS = 1000



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


#: What became of one entry: the version removed or the delete marker made
#: (C{None}: there was nothing to delete, a success), or the error.
Outcome = Tuple[DeleteEntry, Union[Optional[ObjectRecord], S3Error]]


def deleteResult(outcomes: Sequence[Outcome], quiet: bool) -> bytes:
    """
    The ``<DeleteResult>`` document: a ``<Deleted>`` per success (none when
    quiet) and an ``<Error>`` per failure, in request order.
    """
    root = ElementTree.Element("DeleteResult", xmlns=xml.S3_NAMESPACE)
    for entry, outcome in outcomes:
        if not isinstance(outcome, S3Error):
            if quiet:
                continue
            element = ElementTree.SubElement(root, "Deleted")
            ElementTree.SubElement(element, "Key").text = entry.key
            if entry.versionId is not None:
                ElementTree.SubElement(element, "VersionId").text = entry.versionId
            if outcome is not None and outcome.deleteMarker:
                ElementTree.SubElement(element, "DeleteMarker").text = "true"
                ElementTree.SubElement(element, "DeleteMarkerVersionId").text = (
                    entry.versionId if entry.versionId is not None else outcome.wireVersionId
                )
        else:
            element = ElementTree.SubElement(root, "Error")
            ElementTree.SubElement(element, "Key").text = entry.key
            if entry.versionId is not None:
                ElementTree.SubElement(element, "VersionId").text = entry.versionId
            ElementTree.SubElement(element, "Code").text = outcome.code
            ElementTree.SubElement(element, "Message").text = outcome.message
    return xml.serialize(root)


def _startDelete(ctx: S3Context, call: "Call", entry: DeleteEntry, now: float) -> "Deferred[Optional[ObjectRecord]]":
    """Queue one delete; everything wrong with the entry itself raises."""
    validateKey(entry.key)
    if entry.versionId == "":
        raise emptyVersionId("VersionId")
    precondition = None
    if entry.etag is not None:
        conditions = {"if-match": entry.etag}

        def precondition(current: Optional[ObjectRecord]) -> None:
            checkPutConditions(conditions, current)

    guarded = objectlock.guardDeletion(call, entry.versionId, precondition, now)
    return ctx.metadata.deleteObject(
        ownedBucket(call).name, entry.key, guarded, versionId=entry.versionId, modified=now
    )


async def deleteObjects(ctx: S3Context, call: "Call", request: Request) -> None:
    """DeleteObjects: up to 1000 keys in one request, one result each."""
    ownedBucket(call)
    requireDigest(call.headers)
    body = call.document
    quiet, entries = parseDelete(body)
    now = ctx.clock.seconds()
    # The bypass header in a bucket without Object Lock fails the request.
    objectlock.guardDeletion(call, None, None, now)
    started: List[Tuple[DeleteEntry, Any]] = []
    for entry in entries:
        try:
            started.append((entry, _startDelete(ctx, call, entry, now)))
        except S3Error as e:
            started.append((entry, e))
    outcomes: List[Outcome] = []
    for entry, pending in started:
        if isinstance(pending, S3Error):
            outcomes.append((entry, pending))
            continue
        try:
            removed = await pending
        except S3Error as e:
            outcomes.append((entry, e))
        except Exception:
            log.failure("DeleteObjects: deleting {bucket}/{key} failed", bucket=ownedBucket(call).name, key=entry.key)
            outcomes.append((entry, S3Error("InternalError")))
        else:
            outcomes.append((entry, removed))
    sendXML(request, deleteResult(outcomes, quiet))
