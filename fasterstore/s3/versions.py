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
from xml.etree import ElementTree

from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectRecord
from fasterstore.s3 import xml
from fasterstore.s3.buckets import _maxKeys, ownedBucket
from fasterstore.s3.context import S3Context
from fasterstore.http.dates import formatISO8601
from fasterstore.s3.responses import sendXML

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

#: The id of the only version an object has without versioning.
NULL_VERSION = "null"

_CHECKSUM_NAMES = {"crc32": "CRC32", "crc32c": "CRC32C", "crc64nvme": "CRC64NVME", "sha1": "SHA1", "sha256": "SHA256"}


def _add(parent: ElementTree.Element, name: str, text: Optional[str] = None) -> ElementTree.Element:
    child = ElementTree.SubElement(parent, name)
    if text is not None:
        child.text = text
    return child


def listVersionsResult(
    bucket: str,
    *,
    prefix: str,
    delimiter: str,
    keyMarker: str,
    versionIdMarker: str,
    maxKeys: int,
    isTruncated: bool,
    objects: Sequence[ObjectRecord],
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

    root = ElementTree.Element("ListVersionsResult", xmlns=xml.S3_NAMESPACE)
    _add(root, "Name", bucket)
    _add(root, "Prefix", key(prefix))
    _add(root, "KeyMarker", key(keyMarker))
    _add(root, "VersionIdMarker", versionIdMarker)
    if isTruncated and nextKeyMarker is not None:
        _add(root, "NextKeyMarker", key(nextKeyMarker))
        _add(root, "NextVersionIdMarker", NULL_VERSION)
    _add(root, "MaxKeys", str(maxKeys))
    if delimiter:
        _add(root, "Delimiter", key(delimiter))
    if encodingType is not None:
        _add(root, "EncodingType", encodingType)
    _add(root, "IsTruncated", "true" if isTruncated else "false")
    for obj in objects:
        version = _add(root, "Version")
        _add(version, "Key", key(obj.key))
        _add(version, "VersionId", obj.versionId or NULL_VERSION)
        _add(version, "IsLatest", "true")
        _add(version, "LastModified", formatISO8601(obj.modified))
        _add(version, "ETag", f'"{obj.etag}"')
        for name, _ in obj.checksums:
            if name in _CHECKSUM_NAMES:
                _add(version, "ChecksumAlgorithm", _CHECKSUM_NAMES[name])
        if obj.checksums:
            _add(version, "ChecksumType", obj.checksumType or "FULL_OBJECT")
        _add(version, "Size", str(obj.size))
        _add(version, "StorageClass", "STANDARD")
        ownerElement = _add(version, "Owner")
        _add(ownerElement, "ID", owner[0])
        _add(ownerElement, "DisplayName", owner[1])
    for commonPrefix in commonPrefixes:
        _add(_add(root, "CommonPrefixes"), "Prefix", key(commonPrefix))
    return xml.serialize(root)


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
