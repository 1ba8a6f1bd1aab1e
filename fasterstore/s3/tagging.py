"""
Object and bucket tagging: Put/Get/DeleteObjectTagging and
Put/Get/DeleteBucketTagging (``?tagging``), the ``Tagging`` document, and
L{parseTaggingHeader} for the ``x-amz-tagging`` header of PutObject,
CreateMultipartUpload and CopyObject.

AWS limits apply: 10 tags per object, 50 per bucket, keys of 1 to 128 and
values of up to 256 Unicode characters made of letters, digits, spaces and
``+ - = . _ : / @``, no key twice, no ``aws:`` prefix (``InvalidTag``).

Each version of an object has its own tags, in its record
(L{ObjectRecord.tags}): C{versionId} addresses one, and the answer names it
(C{x-amz-version-id}) when the bucket has versioning or the request named a
version.  A bucket's tags are in its C{"tagging"} config entry, as a JSON
array of C{[key, value]} pairs (L{encodeTags}/L{decodeTags}).
Tests: tests/unit/test_tagging.py.
"""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING, Dict, Iterable, Optional, Tuple
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import attrs
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.metadata.records import ObjectRecord
from fasterstore.s3 import xml
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.context import S3Context
from fasterstore.s3.responses import sendEmpty, sendXML, setHeaders
from fasterstore.s3.versions import addressedVersion, requestedVersion, versionHeaders

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

Tags = Tuple[Tuple[str, str], ...]

MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256

#: The name of the bucket config entry holding the bucket's tags.
CONFIG_NAME = "tagging"

_PUNCTUATION = frozenset("+-=._:/@")


def _allowedText(text: str) -> bool:
    """Letters, digits, separators (spaces) and C{+ - = . _ : / @} only."""
    for char in text:
        if char in _PUNCTUATION:
            continue
        if unicodedata.category(char)[0] not in "LNZ":
            return False
    return True


def _invalid(message: str, key: Optional[str] = None) -> S3Error:
    return S3Error("InvalidTag", message, extra={"TagKey": key} if key is not None else None)


def validateTags(tags: Tags, limit: int = MAX_OBJECT_TAGS) -> None:
    """
    Refuse a tag set AWS would refuse.

    @param limit: L{MAX_OBJECT_TAGS} or L{MAX_BUCKET_TAGS}.
    @raise S3Error: C{InvalidTag}.
    """
    if len(tags) > limit:
        kind = "Object" if limit == MAX_OBJECT_TAGS else "Bucket"
        raise _invalid(f"{kind} tags cannot be greater than {limit}")
    seen = set()
    for key, value in tags:
        if not key or not _allowedText(key):
            raise _invalid("The TagKey you have provided is invalid", key)
        if len(key) > MAX_TAG_KEY:
            raise _invalid(f"The TagKey you have provided is too long, max {MAX_TAG_KEY}", key)
        if key.lower().startswith("aws:"):
            raise _invalid("Your TagKey cannot be prefixed with aws:", key)
        if len(value) > MAX_TAG_VALUE:
            raise _invalid(f"The TagValue you have provided is too long, max {MAX_TAG_VALUE}", key)
        if not _allowedText(value):
            raise _invalid("The TagValue you have provided is invalid", key)
        if key in seen:
            raise _invalid("Cannot provide multiple Tags with the same key", key)
        seen.add(key)


def parseTaggingHeader(value: str) -> Tags:
    """
    The tags of an ``x-amz-tagging`` header: URL query syntax
    (``k1=v1&k2=v2``, form-encoded UTF-8), validated as an object's tags.

    @return: the tags in header order (C{()} for an empty header).
    @raise S3Error: C{InvalidArgument} for bad encoding or a repeated key,
        C{InvalidTag} for AWS's tag limits.
    """
    try:
        pairs = parse_qsl(value.strip(), keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        pairs = None
    if pairs is None or len({k for k, _ in pairs}) != len(pairs):
        raise S3Error(
            "InvalidArgument",
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters "
            "without tag name duplicates.",
            extra={"ArgumentName": "x-amz-tagging", "ArgumentValue": value},
        )
    tags = tuple(pairs)
    validateTags(tags, MAX_OBJECT_TAGS)
    return tags


def parseTagging(body: bytes, limit: int = MAX_OBJECT_TAGS) -> Tags:
    """
    The tags of a ``<Tagging><TagSet><Tag>...`` document, validated.

    @raise S3Error: C{MalformedXML}, C{InvalidTag}.
    """
    root = xml.parseXML(body)
    if xml.localName(root.tag) != "Tagging":
        raise S3Error("MalformedXML")
    tagSet = xml.findChild(root, "TagSet")
    if tagSet is None:
        raise S3Error("MalformedXML")
    tags = []
    for tag in xml.findChildren(tagSet, "Tag"):
        key = xml.childText(tag, "Key")
        value = xml.childText(tag, "Value")
        if key is None or value is None:
            raise S3Error("MalformedXML")
        tags.append((key, value))
    result = tuple(tags)
    validateTags(result, limit)
    return result


def taggingDocument(tags: Iterable[Tuple[str, str]]) -> bytes:
    """The ``Tagging`` document Get*Tagging answers with."""
    root = ElementTree.Element("Tagging", xmlns=xml.S3_NAMESPACE)
    tagSet = ElementTree.SubElement(root, "TagSet")
    for key, value in tags:
        tag = ElementTree.SubElement(tagSet, "Tag")
        ElementTree.SubElement(tag, "Key").text = key
        ElementTree.SubElement(tag, "Value").text = value
    return xml.serialize(root)


def encodeTags(tags: Tags) -> str:
    """A bucket's tags as stored in its C{"tagging"} config entry."""
    return json.dumps([list(pair) for pair in tags], ensure_ascii=False)


def decodeTags(text: Optional[str]) -> Tags:
    """The tags stored by L{encodeTags} (C{()} for none)."""
    if not text:
        return ()
    return tuple((str(k), str(v)) for k, v in json.loads(text))


# -- object tagging -----------------------------------------------------------


async def _object(ctx: S3Context, call: "Call", request: Request) -> ObjectRecord:
    """The addressed version (in a bucket the caller owns): the latest, or C{versionId}."""
    return await addressedVersion(ctx, call, request.method.decode("latin-1"))


def _versionHeaders(call: "Call", record: ObjectRecord) -> Dict[str, str]:
    """Name the version whose tags the answer is about (as GET and HEAD do)."""
    return versionHeaders(record, ownedBucket(call).versioning, "versionId" in call.route.query)


async def _setTags(ctx: S3Context, call: "Call", record: ObjectRecord, tags: Tags) -> ObjectRecord:
    """
    Replace the tags of the version the request addresses (the latest one
    as the write finds it, unless it names one); fires with it updated.
    """
    return await ctx.metadata.updateVersion(
        record.bucket, record.key, requestedVersion(call), lambda version: attrs.evolve(version, tags=tags)
    )


async def putObjectTagging(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutObjectTagging: replace the tag set of the object's latest version, or of C{versionId}."""
    record = await _object(ctx, call, request)
    tags = parseTagging(call.document, MAX_OBJECT_TAGS)
    record = await _setTags(ctx, call, record, tags)
    sendEmpty(request, 200, _versionHeaders(call, record))


async def getObjectTagging(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetObjectTagging: the tag set, empty when the version has none."""
    record = await _object(ctx, call, request)
    setHeaders(request, _versionHeaders(call, record))
    sendXML(request, taggingDocument(record.tags))


async def deleteObjectTagging(ctx: S3Context, call: "Call", request: Request) -> None:
    """DeleteObjectTagging: remove every tag (204 even if there were none)."""
    record = await _object(ctx, call, request)
    if record.tags:
        record = await _setTags(ctx, call, record, ())
    sendEmpty(request, 204, _versionHeaders(call, record))


# -- bucket tagging -----------------------------------------------------------


async def putBucketTagging(ctx: S3Context, call: "Call", request: Request) -> None:
    """PutBucketTagging: replace the bucket's tag set (204, as AWS answers)."""
    bucket = ownedBucket(call)
    tags = parseTagging(call.document, MAX_BUCKET_TAGS)
    value = encodeTags(tags) if tags else None
    await ctx.metadata.updateBucket(bucket.name, lambda record: record.withConfig(CONFIG_NAME, value))
    sendEmpty(request, 204)


async def getBucketTagging(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetBucketTagging: the tag set, or C{NoSuchTagSet} when there is none."""
    bucket = ownedBucket(call)
    tags = decodeTags(bucket.configValue(CONFIG_NAME))
    if not tags:
        raise S3Error("NoSuchTagSet", extra={"BucketName": bucket.name})
    sendXML(request, taggingDocument(tags))


async def deleteBucketTagging(ctx: S3Context, call: "Call", request: Request) -> None:
    """DeleteBucketTagging: 204 whether or not there were tags."""
    bucket = ownedBucket(call)
    if bucket.configValue(CONFIG_NAME) is not None:
        await ctx.metadata.updateBucket(bucket.name, lambda record: record.withConfig(CONFIG_NAME, None))
    sendEmpty(request, 204)
