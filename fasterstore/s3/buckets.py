"""
Service and bucket operations: ListBuckets, CreateBucket (with Object Lock
if asked: L{fasterstore.s3.objectlock}), HeadBucket, DeleteBucket,
GetBucketLocation, ListObjects (v1) and ListObjectsV2.
Tests: tests/unit/test_resource.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Tuple

import attrs
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.metadata.records import ENABLED, BucketRecord
from fasterstore.numbers import INT32_MAX, parseDecimal
from fasterstore.s3 import xml
from fasterstore.s3.context import S3Context
from fasterstore.s3.names import validateBucketName
from fasterstore.s3.responses import sendEmpty, sendXML

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

MAX_KEYS = 1000


async def loadOwnedBucket(ctx: S3Context, call: "Call") -> BucketRecord:
    """The addressed bucket, if it exists and the caller owns it."""
    name = call.route.bucket
    assert name is not None
    bucket = await ctx.metadata.getBucket(name)
    if bucket is None:
        raise S3Error("NoSuchBucket", extra={"BucketName": name})
    if call.auth is None or bucket.owner != call.auth.credentials.owner:
        raise S3Error("AccessDenied")
    return bucket


def ownedBucket(call: "Call") -> BucketRecord:
    """
    The addressed bucket, as the resource found it when it checked the
    caller owns it (L{loadOwnedBucket}, once per request, at header time).
    """
    assert call.bucket is not None, "a bucket operation whose bucket was never checked"
    return call.bucket


def _owner(call: "Call") -> Tuple[str, str]:
    assert call.auth is not None
    return call.auth.credentials.owner, call.auth.credentials.displayName


MAX_BUCKETS = 10000


async def listBuckets(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    ListBuckets: the caller's buckets, by name; with C{max-buckets},
    C{continuation-token}, C{prefix} and C{bucket-region} as AWS pages and
    filters them.
    """
    ownerId, ownerName = _owner(call)
    q = call.route.query
    prefix, region, token = q.get("prefix"), q.get("bucket-region"), q.get("continuation-token")
    after = xml.decodeContinuationToken(token) if token else ""
    limit = None
    if "max-buckets" in q:
        raw = q["max-buckets"]
        limit = parseDecimal(
            raw, minimum=1, maximum=MAX_BUCKETS,
            error=lambda: S3Error("InvalidArgument", f"max-buckets must be between 1 and {MAX_BUCKETS}.",
                                  extra={"ArgumentName": "max-buckets", "ArgumentValue": raw}),
        )
    mine = [
        b for b in await ctx.metadata.listBuckets()
        if b.owner == ownerId and b.name > after
        and (not prefix or b.name.startswith(prefix)) and (not region or b.region == region)
    ]
    page = mine[:limit] if limit is not None else mine
    nextToken = xml.encodeContinuationToken(page[-1].name) if len(page) < len(mine) else None
    paginated = any(name in q for name in ("max-buckets", "continuation-token", "prefix", "bucket-region"))
    sendXML(request, xml.listAllMyBuckets(
        page, ownerId, ownerName, continuationToken=nextToken, prefix=prefix, includeRegion=paginated,
    ))


#: CreateBucket's request for Object Lock (which turns versioning on for good).
OBJECT_LOCK_HEADER = "x-amz-bucket-object-lock-enabled"


async def createBucket(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    CreateBucket, with an optional LocationConstraint document; with
    C{x-amz-bucket-object-lock-enabled: true}, a bucket with Object Lock
    and versioning C{Enabled} from the start.
    """
    name = call.route.bucket
    assert name is not None
    validateBucketName(name)
    constraint = xml.parseCreateBucketConfiguration(call.document)
    if constraint and constraint != ctx.region:
        raise S3Error(
            "IllegalLocationConstraintException",
            f"The {constraint} location constraint is incompatible for the region specific endpoint this request was sent to.",
        )
    ownerId, _ = _owner(call)
    record = BucketRecord(name=name, owner=ownerId, region=ctx.region, created=ctx.clock.seconds())
    if call.headers.get(OBJECT_LOCK_HEADER, "").strip().lower() == "true":
        record = attrs.evolve(record, objectLock=True, versioning=ENABLED)
    try:
        await ctx.metadata.createBucket(record)
    except S3Error as e:
        # AWS: "BucketAlreadyOwnedByYou ... in all AWS Regions except in the
        # North Virginia Region", where re-creating your own bucket is 200.
        if e.code != "BucketAlreadyOwnedByYou" or ctx.region != "us-east-1":
            raise
        if record.objectLock:
            existing = await ctx.metadata.getBucket(name)
            if existing is None or not existing.objectLock:
                # A 200 would tell the client its bucket has Object Lock.
                raise
    sendEmpty(request, 200, {"Location": "/" + name})


async def headBucket(ctx: S3Context, call: "Call", request: Request) -> None:
    """HeadBucket: 200 with the region, or a bodiless error."""
    bucket = ownedBucket(call)
    sendEmpty(request, 200, {"x-amz-bucket-region": bucket.region})


async def deleteBucket(ctx: S3Context, call: "Call", request: Request) -> None:
    """DeleteBucket: only an empty bucket."""
    bucket = ownedBucket(call)
    await ctx.metadata.deleteBucket(bucket.name, bucket.owner)
    sendEmpty(request, 204)


async def getBucketLocation(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetBucketLocation: empty for us-east-1, as AWS answers."""
    bucket = ownedBucket(call)
    sendXML(request, xml.locationConstraint(bucket.region))


def _maxKeys(call: "Call") -> int:
    raw = call.route.query.get("max-keys")
    if raw is None:
        return MAX_KEYS
    # Up to S3's integer range, then capped at 1000 as AWS does.
    value = parseDecimal(
        raw.strip(), maximum=INT32_MAX,
        error=lambda: S3Error("InvalidArgument", "Provided max-keys not an integer or within integer range",
                              extra={"ArgumentName": "max-keys", "ArgumentValue": raw}),
    )
    return min(value, MAX_KEYS)


async def listObjectsV1(ctx: S3Context, call: "Call", request: Request) -> None:
    """ListObjects (v1): Marker / NextMarker pagination."""
    bucket = ownedBucket(call)
    q = call.route.query
    prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
    maxKeys = _maxKeys(call)
    encoding = xml.validateEncodingType(call.route.query.get("encoding-type"))
    page = await ctx.metadata.listObjects(bucket.name, prefix=prefix, delimiter=delimiter, after=marker, maxKeys=maxKeys)
    sendXML(
        request,
        xml.listObjectsV1(
            bucket=bucket.name, prefix=prefix, marker=marker, delimiter=delimiter,
            maxKeys=maxKeys, isTruncated=page.isTruncated, objects=page.objects,
            commonPrefixes=page.commonPrefixes,
            nextMarker=page.nextAfter if page.isTruncated else None,
            encodingType=encoding, owner=_owner(call),
        ),
    )


async def listObjectsV2(ctx: S3Context, call: "Call", request: Request) -> None:
    """ListObjectsV2: continuation tokens, start-after, fetch-owner."""
    bucket = ownedBucket(call)
    q = call.route.query
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    token = q.get("continuation-token")
    startAfter = q.get("start-after", "")
    # An empty token is no token (AWS starts from the beginning).
    after = xml.decodeContinuationToken(token) if token else startAfter
    maxKeys = _maxKeys(call)
    encoding = xml.validateEncodingType(call.route.query.get("encoding-type"))
    fetchOwner = q.get("fetch-owner", "").lower() == "true"
    page = await ctx.metadata.listObjects(bucket.name, prefix=prefix, delimiter=delimiter, after=after, maxKeys=maxKeys)
    sendXML(
        request,
        xml.listObjectsV2(
            bucket=bucket.name, prefix=prefix, delimiter=delimiter, maxKeys=maxKeys,
            keyCount=len(page.objects) + len(page.commonPrefixes),
            isTruncated=page.isTruncated, objects=page.objects,
            commonPrefixes=page.commonPrefixes, continuationToken=token,
            nextContinuationToken=xml.encodeContinuationToken(page.nextAfter) if page.isTruncated else None,
            startAfter=q.get("start-after"), encodingType=encoding,
            owner=_owner(call) if fetchOwner else None,
        ),
    )
