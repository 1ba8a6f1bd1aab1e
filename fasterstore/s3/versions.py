"""
Object versions in the HTTP layer: PutBucketVersioning and
GetBucketVersioning (``?versioning``), ListObjectVersions (``?versions``),
and how every other operation reads ``versionId`` and answers with
``x-amz-version-id``.

A bucket's versioning state is in its record (L{BucketRecord.versioning}):
C{None} until it is first set, then C{Enabled} or C{Suspended}, never
C{None} again, as on AWS; a bucket with Object Lock stays C{Enabled}.  The metadata store reads it inside each write's
own transaction, so what a PUT or DELETE does to the version it replaces
follows the state the write found, whatever raced it.

Reads that name a version (GET, HEAD, tagging, GetObjectAttributes, ACLs)
find it with L{addressedVersion}: an unknown version is C{404 NoSuchVersion},
a delete marker C{405 MethodNotAllowed} with C{x-amz-delete-marker}, as AWS
answers.  Without C{versionId}, a key whose latest version is a delete
marker is C{404 NoSuchKey} with C{x-amz-delete-marker}; that second look-up
happens only after a miss, in a bucket that ever had versioning, so a read
in an unversioned bucket costs what it always did.

Responses name the version (L{versionHeaders}) when the bucket has
versioning (C{null} for the null version of a suspended bucket) or the
request named one.  MFA delete is not supported: a configuration enabling
it is C{501 NotImplemented}, never accepted and ignored.
Tests: tests/unit/test_versions.py, tests/unit/test_versioning_http.py,
tests/unit/test_objectlock.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple
from xml.etree import ElementTree

import attrs
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.http.dates import formatHTTPDate, formatISO8601
from fasterstore.metadata.records import ENABLED, SUSPENDED, BucketRecord, ObjectRecord, VersionSummary
from fasterstore.s3 import xml
from fasterstore.s3.buckets import _maxKeys, ownedBucket
from fasterstore.s3.context import S3Context
from fasterstore.s3.responses import sendEmpty, sendXML

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

#: The response headers naming a version and saying it is a delete marker.
VERSION_ID_HEADER = "x-amz-version-id"
DELETE_MARKER_HEADER = "x-amz-delete-marker"

#: The states PutBucketVersioning accepts.
STATES = (ENABLED, SUSPENDED)


# -- versionId ----------------------------------------------------------------


def requestedVersion(call: "Call") -> Optional[str]:
    """
    The C{versionId} query parameter, if given (C{"null"} names the null
    version).  A malformed id is the metadata store's to refuse.

    @raise S3Error: C{InvalidArgument} for an empty one, as AWS answers.
    """
    versionId = call.route.query.get("versionId")
    if versionId is not None and not versionId:
        raise emptyVersionId("versionId")
    return versionId


def emptyVersionId(name: str) -> S3Error:
    """AWS's answer to an empty version id."""
    return S3Error(
        "InvalidArgument", "Version id cannot be the empty string", extra={"ArgumentName": name, "ArgumentValue": ""}
    )


def versionHeaders(record: ObjectRecord, versioning: Optional[str], named: bool = False) -> Dict[str, str]:
    """
    C{x-amz-version-id} for a response about C{record}: when its bucket has
    versioning, when the record has an id (the bucket's state may have
    changed since the request looked), or when the request C{named} a
    version; nothing for an unversioned bucket, as AWS answers.
    """
    if named or versioning is not None or record.versionId is not None:
        return {VERSION_ID_HEADER: record.wireVersionId}
    return {}


def deleteMarkerHeaders(marker: ObjectRecord) -> Dict[str, str]:
    """The headers that say a response met a delete marker, and which."""
    return {DELETE_MARKER_HEADER: "true", VERSION_ID_HEADER: marker.wireVersionId}


def deleteMarkerNamed(marker: ObjectRecord, method: str) -> S3Error:
    """
    AWS's answer to a GET, HEAD or other read naming a delete marker by
    version: 405, with the marker's headers and C{Allow: DELETE} (the one
    method a marker takes).
    """
    headers = deleteMarkerHeaders(marker)
    headers["Allow"] = "DELETE"
    headers["Last-Modified"] = formatHTTPDate(marker.modified)
    return S3Error("MethodNotAllowed", extra={"Method": method, "ResourceType": "DeleteMarker"}, headers=headers)


async def addressedVersion(ctx: S3Context, call: "Call", method: str) -> ObjectRecord:
    """
    The object version a read addresses: version C{versionId}, or the
    key's latest.

    @param method: the request's method, for a delete marker's 405.
    @raise S3Error: C{NoSuchKey} (with the marker's headers when the latest
        version is a delete marker), C{NoSuchVersion}, C{MethodNotAllowed}
        (the version named is a delete marker), C{InvalidArgument} (a
        malformed id).
    """
    bucket = ownedBucket(call)
    key = call.route.key
    assert key is not None
    versionId = requestedVersion(call)
    if versionId is None:
        record = await ctx.metadata.getObject(bucket.name, key)
        if record is not None:
            return record
        headers: Dict[str, str] = {}
        if bucket.versioning is not None:
            latest = await ctx.metadata.getVersion(bucket.name, key)
            if latest is not None and latest.deleteMarker:
                headers = deleteMarkerHeaders(latest)
        raise S3Error("NoSuchKey", extra={"Key": key}, headers=headers)
    found = await ctx.metadata.getVersion(bucket.name, key, versionId)
    if found is None:
        raise S3Error("NoSuchVersion", extra={"Key": key, "VersionId": versionId})
    if found.deleteMarker:
        raise deleteMarkerNamed(found, method)
    return found


# -- Put/GetBucketVersioning ------------------------------------------------


def parseVersioningConfiguration(body: bytes) -> str:
    """
    The state a C{VersioningConfiguration} document asks for.

    @raise S3Error: C{MalformedXML} for another document, a missing or
        unknown C{Status} or C{MfaDelete} value (they are case-sensitive, as
        on AWS); C{NotImplemented} for C{MfaDelete} C{Enabled}.
    """
    root = xml.parseXML(body)
    if xml.localName(root.tag) != "VersioningConfiguration":
        raise S3Error("MalformedXML")
    mfaDelete = xml.childText(root, "MfaDelete")
    if mfaDelete is not None:
        mfaDelete = mfaDelete.strip()
        if mfaDelete == "Enabled":
            raise S3Error("NotImplemented", "MFA delete is not supported.")
        if mfaDelete != "Disabled":
            raise S3Error("MalformedXML")
    status = (xml.childText(root, "Status") or "").strip()
    if status not in STATES:
        raise S3Error("MalformedXML")
    return status


def versioningConfiguration(bucket: BucketRecord) -> bytes:
    """The GetBucketVersioning document: empty until versioning was first set."""
    root = ElementTree.Element("VersioningConfiguration", xmlns=xml.S3_NAMESPACE)
    if bucket.versioning is not None:
        ElementTree.SubElement(root, "Status").text = bucket.versioning
    return xml.serialize(root)


#: AWS's answer to suspending the versioning of a bucket with Object Lock.
LOCKED_VERSIONING = "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."


def setVersioning(record: BucketRecord, status: str) -> BucketRecord:
    """
    The bucket with versioning C{status}, run inside PutBucketVersioning's
    write: a bucket with Object Lock keeps C{Enabled} (asking for it again
    is a no-op).

    @raise S3Error: C{InvalidBucketState} (409) for suspending a bucket
        with Object Lock, as AWS answers.
    """
    if record.objectLock and status != ENABLED:
        raise S3Error("InvalidBucketState", LOCKED_VERSIONING)
    return attrs.evolve(record, versioning=status)


async def putBucketVersioning(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutBucketVersioning: enable or suspend, durably (a bucket never returns to unversioned)."""
    bucket = ownedBucket(call)
    status = parseVersioningConfiguration(call.document)
    await ctx.metadata.updateBucket(bucket.name, lambda record: setVersioning(record, status))
    sendEmpty(request, 200)


async def getBucketVersioning(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetBucketVersioning: the bucket's state, or the empty document if it never had one."""
    sendXML(request, versioningConfiguration(ownedBucket(call)))


# -- ListObjectVersions -------------------------------------------------------


def listVersionsResult(
    bucket: str,
    *,
    prefix: str,
    delimiter: str,
    keyMarker: str,
    versionIdMarker: str,
    maxKeys: int,
    isTruncated: bool,
    versions: Sequence[VersionSummary],
    commonPrefixes: Sequence[str],
    nextKeyMarker: Optional[str],
    nextVersionIdMarker: Optional[str],
    encodingType: Optional[str],
    owner: Tuple[str, str],
) -> bytes:
    """
    The ``ListVersionsResult`` document, shaped as AWS emits it: a
    ``<Version>`` or ``<DeleteMarker>`` per entry, in the store's order (by
    key, newest first), then the common prefixes.

    With C{encodingType="url"} the key-valued elements (``Prefix``,
    ``KeyMarker``, ``NextKeyMarker``, ``Delimiter``, ``Key`` and the common
    prefixes) are URL-encoded and ``EncodingType`` is echoed.
    """
    encode = encodingType == "url"

    def key(text: str) -> str:
        return xml.urlEncode(text) if encode else text

    element = xml.element
    parts = [element("Name", bucket), element("Prefix", key(prefix)), element("KeyMarker", key(keyMarker)),
             element("VersionIdMarker", versionIdMarker)]
    if nextKeyMarker is not None:
        parts.append(element("NextKeyMarker", key(nextKeyMarker)))
    if nextVersionIdMarker is not None:
        parts.append(element("NextVersionIdMarker", nextVersionIdMarker))
    parts.append(element("MaxKeys", str(maxKeys)))
    if delimiter:
        parts.append(element("Delimiter", key(delimiter)))
    if encodingType is not None:
        parts.append(element("EncodingType", encodingType))
    parts.append(element("IsTruncated", "true" if isTruncated else "false"))
    ownerText = xml.ownerMarkup(owner)
    for v in versions:
        head = (
            f"{element('Key', key(v.key))}{element('VersionId', v.wireVersionId)}"
            f"<IsLatest>{'true' if v.isLatest else 'false'}</IsLatest>"
            f"<LastModified>{formatISO8601(v.modified)}</LastModified>"
        )
        if v.deleteMarker:
            parts.append(f"<DeleteMarker>{head}{ownerText}</DeleteMarker>")
            continue
        checksumType = element("ChecksumType", v.checksumType or "FULL_OBJECT") if v.checksumAlgorithms else ""
        parts.append(
            f"<Version>{head}{element('ETag', chr(34) + v.etag + chr(34))}"
            f"{xml.checksumAlgorithmsMarkup(v.checksumAlgorithms)}{checksumType}"
            f"<Size>{v.size}</Size><StorageClass>STANDARD</StorageClass>{ownerText}</Version>"
        )
    parts.extend(f"<CommonPrefixes>{element('Prefix', key(p))}</CommonPrefixes>" for p in commonPrefixes)
    return xml.document("ListVersionsResult", parts)


async def listObjectVersions(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    ListObjectVersions: every version and delete marker, by key, newest
    first; C{key-marker} and C{version-id-marker} resume where a truncated
    page's C{NextKeyMarker} and C{NextVersionIdMarker} say (the latter
    left out when the page ended on a common prefix).
    """
    bucket = ownedBucket(call)
    q = call.route.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    keyMarker, versionIdMarker = q.get("key-marker", ""), q.get("version-id-marker", "")
    if versionIdMarker and not keyMarker:
        raise S3Error(
            "InvalidArgument", "A version-id marker cannot be specified without a key marker.",
            extra={"ArgumentName": "version-id-marker", "ArgumentValue": versionIdMarker},
        )
    maxKeys = _maxKeys(call)
    encoding = xml.validateEncodingType(q.get("encoding-type"))
    try:
        page = await ctx.metadata.listVersions(bucket.name, prefix, delimiter, keyMarker, versionIdMarker, maxKeys)
    except S3Error as e:
        if e.code == "InvalidArgument":
            # The store names its own argument; the client sent this one.
            e.extra = {"ArgumentName": "version-id-marker", "ArgumentValue": versionIdMarker}
        raise
    assert call.auth is not None
    sendXML(
        request,
        listVersionsResult(
            bucket.name, prefix=prefix, delimiter=delimiter, keyMarker=keyMarker,
            versionIdMarker=versionIdMarker, maxKeys=maxKeys, isTruncated=page.isTruncated,
            versions=page.versions, commonPrefixes=page.commonPrefixes,
            nextKeyMarker=page.nextKeyMarker if page.isTruncated else None,
            nextVersionIdMarker=page.nextVersionIdMarker if page.isTruncated and page.nextVersionIdMarker else None,
            encodingType=encoding, owner=(bucket.owner, call.auth.credentials.displayName),
        ),
    )
