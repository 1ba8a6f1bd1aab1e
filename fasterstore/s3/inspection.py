"""
The sub-resources clients read while inspecting a bucket or an object
(``s3cmd info``, SDK and console-style inspection, Terraform refreshes):
each answers with the document a bucket that never had the feature would
give on AWS, or with the right ``NoSuch...`` 404.

  - ``?acl`` (bucket and object): the canned ``private`` view, the owner
    with ``FULL_CONTROL``.  PUT accepts only what equals that view
    (``x-amz-acl: private``, or a body granting the owner ``FULL_CONTROL``
    and nothing else); anything else is ``NotImplemented``.  An object's
    ACL is read for its latest version or the one C{versionId} names
    (L{fasterstore.s3.versions.addressedVersion}).
  - ``?logging``, ``?notification``, ``?accelerate``: empty documents;
    ``?requestPayment``: ``BucketOwner``.  (``?versioning`` is real:
    L{fasterstore.s3.versions}.)
  - ``?policy``, ``?policyStatus``, ``?encryption``, ``?website``,
    ``?ownershipControls``, ``?publicAccessBlock``: their 404 error.
    (``?object-lock``, ``?retention`` and ``?legal-hold`` are real:
    L{fasterstore.s3.objectlock}; ``?lifecycle`` too:
    L{fasterstore.s3.lifecycle}.)

DELETE of a configuration that cannot exist succeeds (204): afterwards the
bucket has none, which is true.  Other writes are never pretended: no rule
claims them, so they get 501 ``NotImplemented``.
Tests: tests/unit/test_inspection.py.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Mapping, Optional, TYPE_CHECKING, Tuple
from xml.etree import ElementTree

from twisted.web.server import Request

from fasterstore.errors import S3Error
from fasterstore.s3 import xml
from fasterstore.s3.buckets import ownedBucket
from fasterstore.s3.context import S3Context
from fasterstore.s3.responses import sendEmpty, sendXML
from fasterstore.s3.versions import addressedVersion

if TYPE_CHECKING:
    from fasterstore.s3.resource import Call

Handler = Callable[[S3Context, "Call", Request], Awaitable[None]]

XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"

#: Canned ACLs that mean exactly the private owner view here: an object's
#: owner is always its bucket's owner, so "bucket-owner-full-control"
#: grants nothing more.
_PRIVATE_ACLS = {"bucket": ("private",), "object": ("private", "bucket-owner-full-control")}

_GRANT_HEADERS = (
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
)

_ENCRYPTION_HEADERS = (
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
)

#: Writes whose headers can ask for ACLs or encryption.
WRITES_WITH_ATTRIBUTES = frozenset({"CreateBucket", "PutObject", "CopyObject", "CreateMultipartUpload"})


def refuseUnsupportedHeaders(level: str, headers: Mapping[str, str]) -> None:
    """
    Refuse a write whose headers ask for a protection FasterStore does not
    give yet, before any body is read: server-side encryption (501).
    Dropping it silently would let a client believe its data is encrypted.
    (Object Lock headers are read by L{fasterstore.s3.objectlock}.)

    Canned ACLs, grants and object ownership on writes are accepted and
    ignored, as MinIO does (many upload tools send C{public-read} by
    default): everything stays private, which fails safe and shows at the
    first anonymous read.  PutBucketAcl/PutObjectAcl still refuse them.

    @param level: C{"bucket"} or C{"object"}.
    @param headers: lower-case names, first values.
    """
    if any(name in headers for name in _ENCRYPTION_HEADERS):
        raise S3Error("NotImplemented", "Server-side encryption is not supported yet.")


def _owner(ctx: S3Context, call: "Call") -> Tuple[str, str]:
    """The owning account of the addressed bucket: (canonical id, display name)."""
    bucket = ownedBucket(call)
    assert call.auth is not None
    # ownedBucket ensured the caller is the owner.
    return bucket.owner, call.auth.credentials.displayName


async def _checkObject(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    An object-level request names an existing object: its latest version,
    or the version C{versionId} (a delete marker has no ACL: 405).
    """
    await addressedVersion(ctx, call, request.method.decode("latin-1"))


# -- ACLs ---------------------------------------------------------------------


def accessControlPolicy(ownerId: str, displayName: str) -> bytes:
    """The canned ``private`` ACL: the owner, granted ``FULL_CONTROL``."""
    root = ElementTree.Element("AccessControlPolicy", xmlns=xml.S3_NAMESPACE)
    owner = ElementTree.SubElement(root, "Owner")
    ElementTree.SubElement(owner, "ID").text = ownerId
    ElementTree.SubElement(owner, "DisplayName").text = displayName
    grants = ElementTree.SubElement(root, "AccessControlList")
    grant = ElementTree.SubElement(grants, "Grant")
    # xsi declared on the grantee, as AWS does: s3cmd strips the S3
    # namespace only when xmlns is the root's sole attribute.
    grantee = ElementTree.SubElement(grant, "Grantee", {"xmlns:xsi": XSI_NAMESPACE, "xsi:type": "CanonicalUser"})
    ElementTree.SubElement(grantee, "ID").text = ownerId
    ElementTree.SubElement(grantee, "DisplayName").text = displayName
    ElementTree.SubElement(grant, "Permission").text = "FULL_CONTROL"
    return xml.serialize(root)


def isPrivatePolicy(body: bytes, ownerId: str) -> bool:
    """
    Whether an ``AccessControlPolicy`` body is the private owner view: only
    ``FULL_CONTROL`` for the owner's canonical id.

    @raise S3Error: C{MalformedACLError} if it is no such document.
    """
    try:
        root = xml.parseXML(body)
    except S3Error:
        raise S3Error("MalformedACLError") from None
    if xml.localName(root.tag) != "AccessControlPolicy":
        raise S3Error("MalformedACLError")
    owner = xml.findChild(root, "Owner")
    if owner is not None and (xml.childText(owner, "ID") or "").strip() not in ("", ownerId):
        return False
    acl = xml.findChild(root, "AccessControlList")
    if acl is None:
        raise S3Error("MalformedACLError")
    grants = list(xml.findChildren(acl, "Grant"))
    if len(grants) != 1:
        return False
    grantee = xml.findChild(grants[0], "Grantee")
    permission = (xml.childText(grants[0], "Permission") or "").strip()
    if grantee is None or not permission:
        raise S3Error("MalformedACLError")
    granteeType = grantee.get(f"{{{XSI_NAMESPACE}}}type", "CanonicalUser")
    granteeId = (xml.childText(grantee, "ID") or "").strip()
    return granteeType == "CanonicalUser" and granteeId == ownerId and permission == "FULL_CONTROL"


async def getAcl(ctx: S3Context, call: "Call", request: Request) -> None:
    """GetBucketAcl / GetObjectAcl: the private owner view."""
    ownerId, displayName = _owner(ctx, call)
    if call.route.key is not None:
        await _checkObject(ctx, call, request)
    sendXML(request, accessControlPolicy(ownerId, displayName))


async def putAcl(ctx: S3Context, call: "Call", request: Request) -> None:
    """
    PutBucketAcl / PutObjectAcl: 200 for the private view it already has;
    C{NotImplemented} for any other ACL.
    """
    ownerId, _ = _owner(ctx, call)
    level = "object" if call.route.key is not None else "bucket"
    if level == "object":
        await _checkObject(ctx, call, request)
    body = call.document
    canned = call.headers.get("x-amz-acl")
    grants = [name for name in _GRANT_HEADERS if name in call.headers]
    if body.strip() and (canned is not None or grants):
        raise S3Error("InvalidRequest", "Specify an ACL with either headers or a request body, not both.")
    if grants:
        raise S3Error("NotImplemented", "Only the canned ACL private is supported; x-amz-grant-* headers are not.")
    if canned is not None:
        if canned.strip() not in _PRIVATE_ACLS[level]:
            raise S3Error("NotImplemented", f"Only the canned ACL private is supported, not {canned.strip()!r}.")
    elif body.strip():
        if not isPrivatePolicy(body, ownerId):
            raise S3Error("NotImplemented", "Only the private ACL (the owner with FULL_CONTROL) is supported.")
    else:
        raise S3Error("MissingSecurityHeader", "Your request was missing a required header",
                      extra={"MissingHeaderName": "x-amz-acl"})
    sendEmpty(request, 200)


# -- fixed documents and 404s -------------------------------------------------


def _emptyDocument(rootName: str, *children: Tuple[str, str]) -> bytes:
    root = ElementTree.Element(rootName, xmlns=xml.S3_NAMESPACE)
    for name, text in children:
        ElementTree.SubElement(root, name).text = text
    return xml.serialize(root)


def document(rootName: str, *children: Tuple[str, str]) -> Handler:
    """A handler answering a bucket GET with a fixed document."""
    body = _emptyDocument(rootName, *children)

    async def handler(ctx: S3Context, call: "Call", request: Request) -> None:
        ownedBucket(call)
        sendXML(request, body)

    handler.__doc__ = f"Answer with an empty {rootName}."
    return handler


def missing(code: str, message: Optional[str] = None) -> Handler:
    """A handler answering with the S3 error C{code} for the bucket."""

    async def handler(ctx: S3Context, call: "Call", request: Request) -> None:
        bucket = ownedBucket(call)
        raise S3Error(code, message, extra={"BucketName": bucket.name})

    handler.__doc__ = f"Answer with {code}."
    return handler


async def deleteAbsent(ctx: S3Context, call: "Call", request: Request) -> None:
    """Delete a configuration the bucket cannot have: 204, nothing to do."""
    ownedBucket(call)
    sendEmpty(request, 204)


getBucketLogging = document("BucketLoggingStatus")
getBucketNotification = document("NotificationConfiguration")
getBucketAccelerate = document("AccelerateConfiguration")
getBucketRequestPayment = document("RequestPaymentConfiguration", ("Payer", "BucketOwner"))

getBucketPolicy = missing("NoSuchBucketPolicy")
getBucketPolicyStatus = missing("NoSuchBucketPolicy")
getBucketEncryption = missing("ServerSideEncryptionConfigurationNotFoundError")
getBucketWebsite = missing("NoSuchWebsiteConfiguration")
getBucketOwnershipControls = missing("OwnershipControlsNotFoundError")
getPublicAccessBlock = missing("NoSuchPublicAccessBlockConfiguration")
