"""
ListObjectVersions (``GET /bucket?versions``) before versioning exists.

Every object has exactly one version, the null version, so the listing is
the bucket listing with each object shown once as a ``<Version>`` whose
``VersionId`` is ``null`` and ``IsLatest`` is true; there are no delete
markers.  ``key-marker`` resumes after that key (all its versions are
before the marker); ``version-id-marker`` may only be ``null`` and only with
a ``key-marker``.  A truncated page always names ``NextKeyMarker`` (a key or
a common prefix) and ``NextVersionIdMarker`` ``null``, which boto3's
paginator passes back.
Tests: tests/unit/test_versions.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple

from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectSummary
from fasterstore.s3 import xml
from fasterstore.s3.buckets import _maxKeys, ownedBucket
from fasterstore.s3.context import S3Context
from fasterstore.http.dates import formatISO8601
from fasterstore.s3.responses import sendXML

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

#: The id of the only version an object has without versioning.
NULL_VERSION = "null"

def listVersionsResult(
    bucket: str,
    *,
    prefix: str,
    delimiter: str,
    keyMarker: str,
    versionIdMarker: str,
    maxKeys: int,
    isTruncated: bool,
    objects: Sequence[ObjectSummary],
    commonPrefixes: Sequence[str],
    nextKeyMarker: Optional[str],
    encodingType: Optional[str],
    owner: Tuple[str, str],
) -> bytes:
    """
    The ``ListVersionsResult`` document, shaped as AWS emits it.

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
    if isTruncated and nextKeyMarker is not None:
        parts += [element("NextKeyMarker", key(nextKeyMarker)), element("NextVersionIdMarker", NULL_VERSION)]
    parts.append(element("MaxKeys", str(maxKeys)))
    if delimiter:
        parts.append(element("Delimiter", key(delimiter)))
    if encodingType is not None:
        parts.append(element("EncodingType", encodingType))
    parts.append(element("IsTruncated", "true" if isTruncated else "false"))
    ownerText = xml.ownerMarkup(owner)
    for obj in objects:
        checksumType = element("ChecksumType", obj.checksumType or "FULL_OBJECT") if obj.checksumAlgorithms else ""
        parts.append(
            f"<Version>{element('Key', key(obj.key))}<VersionId>{NULL_VERSION}</VersionId><IsLatest>true</IsLatest>"
            f"<LastModified>{formatISO8601(obj.modified)}</LastModified>{element('ETag', chr(34) + obj.etag + chr(34))}"
            f"{xml.checksumAlgorithmsMarkup(obj.checksumAlgorithms)}{checksumType}"
            f"<Size>{obj.size}</Size><StorageClass>STANDARD</StorageClass>{ownerText}</Version>"
        )
    parts.extend(f"<CommonPrefixes>{element('Prefix', key(p))}</CommonPrefixes>" for p in commonPrefixes)
    return xml.document("ListVersionsResult", parts)


async def listObjectVersions(ctx: S3Context, call: "Call", request: Request) -> None:
    """ListObjectVersions: each object once, as its null version."""
    bucket = ownedBucket(call)
    q = call.route.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    keyMarker, versionIdMarker = q.get("key-marker", ""), q.get("version-id-marker", "")
    if versionIdMarker:
        if not keyMarker:
            raise S3Error(
                "InvalidArgument", "A version-id marker cannot be specified without a key marker.",
                extra={"ArgumentName": "version-id-marker", "ArgumentValue": versionIdMarker},
            )
        if versionIdMarker != NULL_VERSION:
            raise S3Error(
                "InvalidArgument", "Invalid version id specified",
                extra={"ArgumentName": "version-id-marker", "ArgumentValue": versionIdMarker},
            )
    maxKeys = _maxKeys(call)
    encoding = xml.validateEncodingType(q.get("encoding-type"))
    # The null version is an object's only one: after the key marker's
    # (null) version comes the next key, with or without a version marker.
    page = await ctx.metadata.listObjects(bucket.name, prefix=prefix, delimiter=delimiter, after=keyMarker, maxKeys=maxKeys)
    assert call.auth is not None
    credentials = call.auth.credentials
    sendXML(
        request,
        listVersionsResult(
            bucket.name, prefix=prefix, delimiter=delimiter, keyMarker=keyMarker,
            versionIdMarker=versionIdMarker, maxKeys=maxKeys, isTruncated=page.isTruncated,
            objects=page.objects, commonPrefixes=page.commonPrefixes,
            nextKeyMarker=page.nextAfter if page.isTruncated else None,
            encodingType=encoding, owner=(bucket.owner, credentials.displayName),
        ),
    )
