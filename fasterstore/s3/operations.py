"""
The table of S3 operations: which method, level and sub-resource select
which handler, and what kind of body it takes.

Rules are tried in order; the first that matches wins.  A request naming an
S3 sub-resource that no rule claims gets 501 NotImplemented (never a wrong
answer from a default rule, which only matches when no sub-resource is
named).
Tests: tests/unit/test_operations.py.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Dict, List, Literal, Mapping, Optional, TYPE_CHECKING, Tuple

import attrs
from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.s3 import admin, buckets, objects
from fasterstore.s3 import cors, post
from fasterstore.s3 import multipart
from fasterstore.s3 import batch, copy, inspection, tagging, versions
from fasterstore.s3 import objectlock
from fasterstore.s3 import lifecycle
from fasterstore.s3.context import S3Context
from fasterstore.s3.routing import Route

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

Handler = Callable[[S3Context, "Call", Request], Awaitable[None]]
Level = Literal["service", "bucket", "object"]
#: What the body of a request is for: none expected ("none": any body is
#: still read into a bounded buffer and ignored), a bounded document
#: ("small"), object data streamed into the segment engine ("object"), or an
#: HTML form with a file part ("form").
BodyKind = Literal["none", "small", "object", "form"]
Predicate = Callable[[Route, Mapping[str, str]], bool]

#: S3 sub-resources: query parameters that select an operation.  Parameters
#: that only modify one (versionId, partNumber, response-*) are not here.
SUBRESOURCES = frozenset(
    """accelerate acl analytics attributes cors delete encryption
    intelligent-tiering inventory legal-hold lifecycle location logging metrics
    notification object-lock ownershipControls policy policyStatus
    publicAccessBlock replication requestPayment restore retention select
    tagging torrent uploadId uploads versioning versions website session
    renameObject metadataTable""".split()
)


@attrs.frozen
class Operation:
    """
    An S3 operation.

    @ivar name: the S3 API name, for metrics and logs.
    @ivar handler: the coroutine that answers it.
    @ivar body: what its request body is.
    @ivar checksumsDescribeBody: whether C{x-amz-checksum-*} headers are
        digests of the request body (for CompleteMultipartUpload they are
        the object's).
    """

    name: str
    handler: Handler
    body: BodyKind = "none"
    checksumsDescribeBody: bool = True


@attrs.frozen
class Rule:
    """Selects C{operation} for C{method} at C{level} when C{when} holds."""

    level: Level
    method: bytes
    operation: Operation
    when: Optional[Predicate] = None

    def matches(self, level: Level, method: bytes, route: Route, headers: Mapping[str, str]) -> bool:
        """Whether this rule selects the request."""
        if self.level != level or self.method != method:
            return False
        if self.when is None:
            return not (route.query.keys() & SUBRESOURCES)
        return self.when(route, headers)


def query(*names: str) -> Predicate:
    """The request names every one of these query parameters."""
    return lambda route, headers: all(name in route.query for name in names)


def header(name: str) -> Predicate:
    """The request carries this header (lower-case name), and no sub-resource."""
    return lambda route, headers: name in headers and not (route.query.keys() & SUBRESOURCES)


def listType2(route: Route, headers: Mapping[str, str]) -> bool:
    """ListObjectsV2 is a bucket GET with list-type=2."""
    return route.query.get("list-type") == "2" and not (route.query.keys() & SUBRESOURCES)


RULES: List[Rule] = [
    # -- rules that name a sub-resource or a header: tried first -------------
    Rule("bucket", b"GET", Operation("GetBucketLocation", buckets.getBucketLocation), query("location")),
    Rule("bucket", b"GET", Operation("ListObjectsV2", buckets.listObjectsV2), listType2),
    # -- multipart uploads ---------------------------------------------------
    Rule("bucket", b"GET", Operation("ListMultipartUploads", multipart.listMultipartUploads), query("uploads")),
    Rule("object", b"POST", Operation("CreateMultipartUpload", multipart.createMultipartUpload), query("uploads")),
    Rule("object", b"POST", Operation("CompleteMultipartUpload", multipart.completeMultipartUpload, "small", checksumsDescribeBody=False), query("uploadId")),
    Rule("object", b"PUT", Operation("UploadPartCopy", multipart.uploadPartCopy), multipart.isPartCopy),
    Rule("object", b"PUT", Operation("UploadPart", multipart.uploadPart, "object"), query("partNumber", "uploadId")),
    Rule("object", b"GET", Operation("ListParts", multipart.listParts), query("uploadId")),
    Rule("object", b"DELETE", Operation("AbortMultipartUpload", multipart.abortMultipartUpload), query("uploadId")),
    Rule("object", b"GET", Operation("GetObjectAttributes", objects.getObjectAttributes), query("attributes")),
    # -- copy, batch delete, tagging, versions, inspection sub-resources ----
    Rule("object", b"PUT", Operation("CopyObject", copy.copyObject), header("x-amz-copy-source")),
    Rule("bucket", b"POST", Operation("DeleteObjects", batch.deleteObjects, "small"), query("delete")),
    Rule("object", b"PUT", Operation("PutObjectTagging", tagging.putObjectTagging, "small"), query("tagging")),
    Rule("object", b"GET", Operation("GetObjectTagging", tagging.getObjectTagging), query("tagging")),
    Rule("object", b"DELETE", Operation("DeleteObjectTagging", tagging.deleteObjectTagging), query("tagging")),
    Rule("bucket", b"PUT", Operation("PutBucketTagging", tagging.putBucketTagging, "small"), query("tagging")),
    Rule("bucket", b"GET", Operation("GetBucketTagging", tagging.getBucketTagging), query("tagging")),
    Rule("bucket", b"DELETE", Operation("DeleteBucketTagging", tagging.deleteBucketTagging), query("tagging")),
    Rule("bucket", b"GET", Operation("ListObjectVersions", versions.listObjectVersions), query("versions")),
    Rule("bucket", b"GET", Operation("GetBucketVersioning", versions.getBucketVersioning), query("versioning")),
    Rule("bucket", b"PUT", Operation("PutBucketVersioning", versions.putBucketVersioning, "small"), query("versioning")),
    Rule("bucket", b"GET", Operation("GetBucketAcl", inspection.getAcl), query("acl")),
    Rule("bucket", b"PUT", Operation("PutBucketAcl", inspection.putAcl, "small"), query("acl")),
    Rule("object", b"GET", Operation("GetObjectAcl", inspection.getAcl), query("acl")),
    Rule("object", b"PUT", Operation("PutObjectAcl", inspection.putAcl, "small"), query("acl")),
    Rule("bucket", b"GET", Operation("GetBucketPolicy", inspection.getBucketPolicy), query("policy")),
    Rule("bucket", b"GET", Operation("GetBucketPolicyStatus", inspection.getBucketPolicyStatus), query("policyStatus")),
    Rule("bucket", b"GET", Operation("GetBucketLifecycleConfiguration", lifecycle.getBucketLifecycleConfiguration), query("lifecycle")),
    Rule("bucket", b"PUT", Operation("PutBucketLifecycleConfiguration", lifecycle.putBucketLifecycleConfiguration, "small"), query("lifecycle")),
    Rule("bucket", b"GET", Operation("GetBucketEncryption", inspection.getBucketEncryption), query("encryption")),
    Rule("bucket", b"GET", Operation("GetBucketLogging", inspection.getBucketLogging), query("logging")),
    Rule("bucket", b"GET", Operation("GetBucketWebsite", inspection.getBucketWebsite), query("website")),
    Rule("bucket", b"GET", Operation("GetBucketNotificationConfiguration", inspection.getBucketNotification), query("notification")),
    Rule("bucket", b"GET", Operation("GetBucketRequestPayment", inspection.getBucketRequestPayment), query("requestPayment")),
    Rule("bucket", b"GET", Operation("GetBucketOwnershipControls", inspection.getBucketOwnershipControls), query("ownershipControls")),
    Rule("bucket", b"GET", Operation("GetPublicAccessBlock", inspection.getPublicAccessBlock), query("publicAccessBlock")),
    Rule("bucket", b"GET", Operation("GetBucketAccelerateConfiguration", inspection.getBucketAccelerate), query("accelerate")),
    Rule("bucket", b"DELETE", Operation("DeleteBucketPolicy", inspection.deleteAbsent), query("policy")),
    Rule("bucket", b"DELETE", Operation("DeleteBucketLifecycle", lifecycle.deleteBucketLifecycle), query("lifecycle")),
    Rule("bucket", b"DELETE", Operation("DeleteBucketEncryption", inspection.deleteAbsent), query("encryption")),
    Rule("bucket", b"DELETE", Operation("DeleteBucketWebsite", inspection.deleteAbsent), query("website")),
    Rule("bucket", b"DELETE", Operation("DeleteBucketOwnershipControls", inspection.deleteAbsent), query("ownershipControls")),
    Rule("bucket", b"DELETE", Operation("DeletePublicAccessBlock", inspection.deleteAbsent), query("publicAccessBlock")),
    # -- Object Lock ---------------------------------------------------------
    Rule("bucket", b"GET", Operation("GetObjectLockConfiguration", objectlock.getObjectLockConfiguration), query("object-lock")),
    Rule("bucket", b"PUT", Operation("PutObjectLockConfiguration", objectlock.putObjectLockConfiguration, "small"), query("object-lock")),
    Rule("object", b"GET", Operation("GetObjectRetention", objectlock.getObjectRetention), query("retention")),
    Rule("object", b"PUT", Operation("PutObjectRetention", objectlock.putObjectRetention, "small"), query("retention")),
    Rule("object", b"GET", Operation("GetObjectLegalHold", objectlock.getObjectLegalHold), query("legal-hold")),
    Rule("object", b"PUT", Operation("PutObjectLegalHold", objectlock.putObjectLegalHold, "small"), query("legal-hold")),
    # -- browser POST uploads, CORS ------------------------------------------
    Rule("bucket", b"POST", Operation("PostObject", post.postObject, "form")),
    Rule("bucket", b"GET", Operation("GetBucketCors", cors.getBucketCors), query("cors")),
    Rule("bucket", b"PUT", Operation("PutBucketCors", cors.putBucketCors, "small"), query("cors")),
    Rule("bucket", b"DELETE", Operation("DeleteBucketCors", cors.deleteBucketCors), query("cors")),
    Rule("bucket", b"OPTIONS", Operation(cors.PREFLIGHT, cors.preflight), cors.anyRequest),
    Rule("object", b"OPTIONS", Operation(cors.PREFLIGHT, cors.preflight), cors.anyRequest),
    # -- defaults: match only when no sub-resource is named -----------------
    Rule("service", b"GET", Operation("ListBuckets", buckets.listBuckets)),
    Rule("bucket", b"GET", Operation("ListObjects", buckets.listObjectsV1)),
    Rule("bucket", b"PUT", Operation("CreateBucket", buckets.createBucket, "small")),
    Rule("bucket", b"HEAD", Operation("HeadBucket", buckets.headBucket)),
    Rule("bucket", b"DELETE", Operation("DeleteBucket", buckets.deleteBucket)),
    Rule("object", b"PUT", Operation("PutObject", objects.putObject, "object")),
    Rule("object", b"GET", Operation("GetObject", objects.getObject)),
    Rule("object", b"HEAD", Operation("HeadObject", objects.headObject)),
    Rule("object", b"DELETE", Operation("DeleteObject", objects.deleteObject)),
]

#: The reserved /_fasterstore/ paths: no credentials.
ADMIN = Operation("Admin", admin.handle)


def _index(rules: List[Rule]) -> Dict[Tuple[str, bytes], List[Rule]]:
    """The rules by level and method, each list in table order."""
    index: Dict[Tuple[str, bytes], List[Rule]] = {}
    for rule in rules:
        index.setdefault((rule.level, rule.method), []).append(rule)
    return index


_BY_LEVEL_AND_METHOD = _index(RULES)


def select(level: Level, method: bytes, route: Route, headers: Mapping[str, str]) -> Operation:
    """The operation a request asks for, or the S3 error for none."""
    for rule in _BY_LEVEL_AND_METHOD.get((level, method), ()):
        if rule.matches(level, method, route, headers):
            return rule.operation
    named = sorted(route.query.keys() & SUBRESOURCES)
    if named:
        raise S3Error("NotImplemented", f"The {named[0]} sub-resource is not implemented.")
    if method == b"POST":
        raise S3Error("NotImplemented", "This POST operation is not implemented.")
    raise S3Error("MethodNotAllowed", extra={"Method": method.decode("latin-1"), "ResourceType": level.upper()})


def levelOf(route: Route) -> Level:
    """Whether a request addresses the service, a bucket or an object."""
    if route.bucket is None:
        return "service"
    return "bucket" if route.key is None else "object"


