"""
Tests for L{fasterstore.s3.inspection}: the sub-resources inspection tools
read, through the real resource and botocore's client.
"""

from __future__ import annotations

from typing import Any, Callable, Dict
from xml.etree import ElementTree

from botocore.exceptions import ClientError

from fasterstore.metadata.records import versionIdOf
from fasterstore.s3.inspection import isPrivatePolicy
from tests.unit.test_batch import BotoTestCase
from tests.unit.test_resource import NS, OTHER, ResourceTestCase

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


def policyBody(grantee: str = "owner-id", permission: str = "FULL_CONTROL", extra: str = "") -> bytes:
    """An AccessControlPolicy document."""
    return (
        '<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Owner><ID>owner-id</ID></Owner><AccessControlList>"
        '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
        f"<ID>{grantee}</ID></Grantee><Permission>{permission}</Permission></Grant>{extra}"
        "</AccessControlList></AccessControlPolicy>"
    ).encode()


class AclTests(ResourceTestCase):
    """?acl on buckets and objects."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        self.request("PUT", "/bucket/k", b"x")

    def test_get(self) -> None:
        """Bucket and object ACLs are the owner with FULL_CONTROL."""
        for path in ("/bucket?acl", "/bucket/k?acl", "/bucket/k?acl&versionId=null"):
            status, _, body = self.request("GET", path)
            self.assertEqual(status, 200, body)
            doc = ElementTree.fromstring(body)
            self.assertEqual(doc.tag, f"{NS}AccessControlPolicy")
            self.assertEqual(doc.findtext(f"{NS}Owner/{NS}ID"), "owner-id")
            self.assertEqual(doc.findtext(f"{NS}Owner/{NS}DisplayName"), "owner")
            grants = doc.findall(f"{NS}AccessControlList/{NS}Grant")
            self.assertEqual(len(grants), 1)
            grantee = grants[0].find(f"{NS}Grantee")
            assert grantee is not None
            self.assertEqual(grantee.get(f"{XSI}type"), "CanonicalUser")
            self.assertEqual(grantee.findtext(f"{NS}ID"), "owner-id")
            self.assertEqual(grants[0].findtext(f"{NS}Permission"), "FULL_CONTROL")

    def test_getErrors(self) -> None:
        """Missing object, bucket or version; another account."""
        self.assertError(self.request("GET", "/bucket/nope?acl"), 404, "NoSuchKey")
        self.assertError(self.request("GET", "/nobucket?acl"), 404, "NoSuchBucket")
        self.assertError(self.request("GET", "/bucket/k?acl&versionId=v1"), 400, "InvalidArgument")
        self.assertError(self.request("GET", "/bucket/k?acl&versionId=" + versionIdOf(99999)), 404, "NoSuchVersion")
        self.assertError(self.request("GET", "/bucket?acl", creds=OTHER), 403, "AccessDenied")

    def test_putPrivate(self) -> None:
        """The private canned ACL, or a body equal to it, is accepted."""
        self.assertEqual(self.request("PUT", "/bucket?acl", headers={"x-amz-acl": "private"})[0], 200)
        self.assertEqual(self.request("PUT", "/bucket/k?acl", headers={"x-amz-acl": "private"})[0], 200)
        self.assertEqual(self.request("PUT", "/bucket/k?acl", headers={"x-amz-acl": "bucket-owner-full-control"})[0], 200)
        self.assertEqual(self.request("PUT", "/bucket?acl", policyBody())[0], 200)

    def test_putOtherIsNotImplemented(self) -> None:
        """Any ACL other than private is refused, never pretended."""
        self.assertError(self.request("PUT", "/bucket?acl", headers={"x-amz-acl": "public-read"}), 501, "NotImplemented")
        self.assertError(self.request("PUT", "/bucket?acl", headers={"x-amz-acl": "bucket-owner-full-control"}), 501, "NotImplemented")
        self.assertError(self.request("PUT", "/bucket?acl", headers={"x-amz-grant-read": 'id="x"'}), 501, "NotImplemented")
        self.assertError(self.request("PUT", "/bucket?acl", policyBody(grantee="someone-else")), 501, "NotImplemented")
        self.assertError(self.request("PUT", "/bucket?acl", policyBody(permission="READ")), 501, "NotImplemented")
        public = '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>'
        self.assertError(self.request("PUT", "/bucket?acl", policyBody(extra=public)), 501, "NotImplemented")

    def test_putMalformed(self) -> None:
        """No ACL at all, a bad document, or both forms at once."""
        self.assertError(self.request("PUT", "/bucket?acl"), 400, "MissingSecurityHeader")
        self.assertError(self.request("PUT", "/bucket?acl", b"<nope"), 400, "MalformedACLError")
        self.assertError(self.request("PUT", "/bucket?acl", policyBody(), {"x-amz-acl": "private"}), 400, "InvalidRequest")
        self.assertError(self.request("PUT", "/bucket/nope?acl", headers={"x-amz-acl": "private"}), 404, "NoSuchKey")

    def test_privatePolicyParser(self) -> None:
        """The body check looks at the owner, the grantee type and the permission."""
        self.assertTrue(isPrivatePolicy(policyBody(), "owner-id"))
        self.assertFalse(isPrivatePolicy(policyBody(), "other"))


class SubresourceTests(ResourceTestCase):
    """The fixed answers of the other inspection sub-resources."""

    def setUp(self) -> None:
        super().setUp()
        self.createBucket()
        self.request("PUT", "/bucket/k", b"x")

    def test_documents(self) -> None:
        """Features never enabled answer with their empty document."""
        expected: Dict[str, Callable[[ElementTree.Element], Any]] = {
            "versioning": lambda d: self.assertEqual((d.tag, list(d)), (f"{NS}VersioningConfiguration", [])),
            "logging": lambda d: self.assertEqual((d.tag, list(d)), (f"{NS}BucketLoggingStatus", [])),
            "notification": lambda d: self.assertEqual((d.tag, list(d)), (f"{NS}NotificationConfiguration", [])),
            "accelerate": lambda d: self.assertEqual((d.tag, list(d)), (f"{NS}AccelerateConfiguration", [])),
            "requestPayment": lambda d: self.assertEqual(d.findtext(f"{NS}Payer"), "BucketOwner"),
        }
        for name, check in expected.items():
            status, _, body = self.request("GET", "/bucket?" + name)
            self.assertEqual(status, 200, (name, body))
            check(ElementTree.fromstring(body))
            self.assertError(self.request("GET", "/nobucket?" + name), 404, "NoSuchBucket")
            self.assertError(self.request("GET", "/bucket?" + name, creds=OTHER), 403, "AccessDenied")

    def test_missing(self) -> None:
        """Configurations a bucket cannot have are their NoSuch... 404."""
        for name, code in [
            ("policy", "NoSuchBucketPolicy"),
            ("policyStatus", "NoSuchBucketPolicy"),
            ("lifecycle", "NoSuchLifecycleConfiguration"),
            ("encryption", "ServerSideEncryptionConfigurationNotFoundError"),
            ("object-lock", "ObjectLockConfigurationNotFoundError"),
            ("website", "NoSuchWebsiteConfiguration"),
            ("ownershipControls", "OwnershipControlsNotFoundError"),
            ("publicAccessBlock", "NoSuchPublicAccessBlockConfiguration"),
        ]:
            result = self.request("GET", "/bucket?" + name)
            self.assertError(result, 404, code)
            self.assertEqual(ElementTree.fromstring(result[2]).findtext("BucketName"), "bucket")
            self.assertError(self.request("GET", "/nobucket?" + name), 404, "NoSuchBucket")

    def test_deletes(self) -> None:
        """Deleting a configuration the bucket cannot have is 204."""
        for name in ("policy", "lifecycle", "encryption", "website", "ownershipControls", "publicAccessBlock"):
            self.assertEqual(self.request("DELETE", "/bucket?" + name)[0], 204, name)
            self.assertError(self.request("DELETE", "/bucket?" + name, creds=OTHER), 403, "AccessDenied")

    def test_writesNotImplemented(self) -> None:
        """Writes we cannot honour are 501, never pretended."""
        for name in ("policy", "encryption", "logging", "website",
                     "notification", "requestPayment", "ownershipControls", "publicAccessBlock", "accelerate"):
            self.assertError(self.request("PUT", "/bucket?" + name, b"<x/>"), 501, "NotImplemented")

    def test_objectLock(self) -> None:
        """Object retention and legal hold in a bucket without Object Lock: InvalidRequest (tests/unit/test_objectlock.py has the rest)."""
        for name in ("retention", "legal-hold"):
            result = self.request("GET", "/bucket/k?" + name)
            self.assertError(result, 400, "InvalidRequest")
            self.assertIn(b"Bucket is missing Object Lock Configuration", result[2])


class BotocoreInspectionTests(BotoTestCase):
    """The calls SDK inspection code makes, as botocore makes them."""

    def setUp(self) -> None:
        super().setUp()
        self.s3.create_bucket(Bucket="bucket")
        self.s3.put_object(Bucket="bucket", Key="k", Body=b"x")

    def code(self, call: Callable[..., Any], **kwargs: Any) -> str:
        e = self.assertRaises(ClientError, call, **kwargs)
        return str(e.response["Error"]["Code"])

    def test_reads(self) -> None:
        """Every inspection read parses, or fails with the expected code."""
        acl = self.s3.get_bucket_acl(Bucket="bucket")
        self.assertEqual(acl["Owner"]["ID"], "owner-id")
        self.assertEqual(acl["Grants"], [{"Grantee": {"ID": "owner-id", "DisplayName": "owner", "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}])
        self.assertEqual(self.s3.get_object_acl(Bucket="bucket", Key="k")["Grants"][0]["Permission"], "FULL_CONTROL")
        self.assertNotIn("Status", self.s3.get_bucket_versioning(Bucket="bucket"))
        self.assertNotIn("LoggingEnabled", self.s3.get_bucket_logging(Bucket="bucket"))
        self.assertEqual(self.s3.get_bucket_request_payment(Bucket="bucket")["Payer"], "BucketOwner")
        self.assertNotIn("Status", self.s3.get_bucket_accelerate_configuration(Bucket="bucket"))
        self.s3.get_bucket_notification_configuration(Bucket="bucket")
        b = {"Bucket": "bucket"}
        self.assertEqual(self.code(self.s3.get_bucket_policy, **b), "NoSuchBucketPolicy")
        self.assertEqual(self.code(self.s3.get_bucket_policy_status, **b), "NoSuchBucketPolicy")
        self.assertEqual(self.code(self.s3.get_bucket_lifecycle_configuration, **b), "NoSuchLifecycleConfiguration")
        self.assertEqual(self.code(self.s3.get_bucket_encryption, **b), "ServerSideEncryptionConfigurationNotFoundError")
        self.assertEqual(self.code(self.s3.get_object_lock_configuration, **b), "ObjectLockConfigurationNotFoundError")
        self.assertEqual(self.code(self.s3.get_bucket_website, **b), "NoSuchWebsiteConfiguration")
        self.assertEqual(self.code(self.s3.get_bucket_ownership_controls, **b), "OwnershipControlsNotFoundError")
        self.assertEqual(self.code(self.s3.get_public_access_block, **b), "NoSuchPublicAccessBlockConfiguration")
        self.assertEqual(self.code(self.s3.get_object_retention, Bucket="bucket", Key="k"), "InvalidRequest")

    def test_writes(self) -> None:
        """put_bucket_acl private works; anything else is NotImplemented."""
        self.s3.put_bucket_acl(Bucket="bucket", ACL="private")
        self.s3.put_object_acl(Bucket="bucket", Key="k", ACL="private")
        self.assertEqual(self.code(self.s3.put_bucket_acl, Bucket="bucket", ACL="public-read"), "NotImplemented")
        # Lifecycle configurations are real (tests/unit/test_lifecycle.py): no rule is MalformedXML, as on AWS.
        self.assertEqual(
            self.code(self.s3.put_bucket_lifecycle_configuration, Bucket="bucket", LifecycleConfiguration={"Rules": []}),
            "MalformedXML",
        )
        self.s3.delete_bucket_policy(Bucket="bucket")
