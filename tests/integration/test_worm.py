"""
Write once, read many against the real server, with boto3 and the aws cli:
a bucket created with Object Lock, a default COMPLIANCE retention, an object
put into it; then every way of destroying that version fails (deleting it by
id, with and without the governance bypass, alone or in DeleteObjects;
overwriting it; shortening or removing its retention; switching it to
GOVERNANCE; suspending versioning; deleting the bucket) while a plain DELETE
only adds a delete marker; and after ``kill -9`` and a restart the
configuration and the lock are still there and still refuse.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from typing import Any, Callable

from botocore.exceptions import ClientError

from tests.integration.harness import AwsCliMixin, Server, ServerTestCase

#: The default retention the scenario sets, in days.
DAYS = 2


def errorCode(call: Callable[..., Any], **kwargs: Any) -> str:
    """The S3 error code a boto3 call fails with (it must fail)."""
    try:
        call(**kwargs)
    except ClientError as e:
        return str(e.response["Error"]["Code"])
    raise AssertionError(f"{call.__name__} succeeded")


class Boto3WormTests(ServerTestCase):
    """The WORM scenario with boto3, across a kill -9."""

    def refusals(self, s3: Any, bucket: str, versionId: str, until: datetime.datetime) -> None:
        """Every attempt to destroy or unlock the version fails; it still reads back."""
        version = {"Bucket": bucket, "Key": "ledger", "VersionId": versionId}
        self.assertEqual(errorCode(s3.delete_object, **version), "AccessDenied")
        self.assertEqual(errorCode(s3.delete_object, BypassGovernanceRetention=True, **version), "AccessDenied")
        result = s3.delete_objects(
            Bucket=bucket, BypassGovernanceRetention=True,
            Delete={"Objects": [{"Key": "ledger", "VersionId": versionId}]},
        )
        self.assertEqual([(e["Key"], e["Code"]) for e in result.get("Errors", [])], [("ledger", "AccessDenied")])
        sooner = until - datetime.timedelta(days=1)
        for mode, date in (("COMPLIANCE", sooner), ("GOVERNANCE", until), ("GOVERNANCE", sooner)):
            for bypass in (False, True):
                code = errorCode(
                    s3.put_object_retention, Retention={"Mode": mode, "RetainUntilDate": date},
                    BypassGovernanceRetention=bypass, **version,
                )
                self.assertEqual(code, "AccessDenied", (mode, date, bypass))
        self.assertEqual(errorCode(s3.put_object_retention, Retention={}, BypassGovernanceRetention=True, **version),
                         "AccessDenied")
        self.assertEqual(
            errorCode(s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}),
            "InvalidBucketState",
        )
        self.assertEqual(errorCode(s3.delete_bucket, Bucket=bucket), "BucketNotEmpty")
        retained = s3.get_object_retention(**version)["Retention"]
        self.assertEqual((retained["Mode"], retained["RetainUntilDate"]), ("COMPLIANCE", until))
        self.assertEqual(s3.get_object(**version)["Body"].read(), b"entry 1")

    def test_compliance(self) -> None:
        """Create, default COMPLIANCE retention, put, refuse everything; kill -9, restart, still refused."""
        server = self.privateServer()
        s3 = server.client()
        bucket = self.bucketName("worm")
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        self.assertEqual(s3.get_bucket_versioning(Bucket=bucket)["Status"], "Enabled")
        rule = {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": DAYS}}
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": rule})
        self.assertEqual(s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"], rule)

        before = time.time()
        versionId = s3.put_object(Bucket=bucket, Key="ledger", Body=b"entry 1")["VersionId"]
        head = s3.head_object(Bucket=bucket, Key="ledger", VersionId=versionId)
        until = head["ObjectLockRetainUntilDate"]
        self.assertEqual(head["ObjectLockMode"], "COMPLIANCE")
        self.assertLess(abs(until.timestamp() - (before + DAYS * 86400)), 60)

        # An overwrite adds a version; the locked one stays.
        newer = s3.put_object(Bucket=bucket, Key="ledger", Body=b"entry 2")["VersionId"]
        self.assertNotEqual(newer, versionId)
        # A plain delete only adds a delete marker.
        self.assertTrue(s3.delete_object(Bucket=bucket, Key="ledger")["DeleteMarker"])
        self.assertEqual(errorCode(s3.get_object, Bucket=bucket, Key="ledger"), "NoSuchKey")
        self.refusals(s3, bucket, versionId, until)

        server.kill()
        server.start()
        s3 = server.client()
        self.assertEqual(s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"], rule)
        self.refusals(s3, bucket, versionId, until)
        # Extending is still allowed.
        later = until + datetime.timedelta(days=1)
        s3.put_object_retention(Bucket=bucket, Key="ledger", VersionId=versionId,
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later})
        self.assertEqual(s3.head_object(Bucket=bucket, Key="ledger", VersionId=versionId)["ObjectLockRetainUntilDate"], later)

    def test_governanceAndLegalHold(self) -> None:
        """GOVERNANCE yields to the bypass; a legal hold to nothing but its removal; both survive kill -9."""
        server = self.privateServer()
        s3 = server.client()
        bucket = self.bucketName("gov")
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        governed = s3.put_object(Bucket=bucket, Key="g", Body=b"g", ObjectLockMode="GOVERNANCE",
                                 ObjectLockRetainUntilDate=until)["VersionId"]
        held = s3.put_object(Bucket=bucket, Key="h", Body=b"h", ObjectLockLegalHoldStatus="ON")["VersionId"]
        server.kill()
        server.start()
        s3 = server.client()
        self.assertEqual(errorCode(s3.delete_object, Bucket=bucket, Key="g", VersionId=governed), "AccessDenied")
        self.assertEqual(errorCode(s3.delete_object, Bucket=bucket, Key="h", VersionId=held, BypassGovernanceRetention=True),
                         "AccessDenied")
        s3.delete_object(Bucket=bucket, Key="g", VersionId=governed, BypassGovernanceRetention=True)
        self.assertEqual(s3.get_object_legal_hold(Bucket=bucket, Key="h")["LegalHold"]["Status"], "ON")
        s3.put_object_legal_hold(Bucket=bucket, Key="h", VersionId=held, LegalHold={"Status": "OFF"})
        s3.delete_object(Bucket=bucket, Key="h", VersionId=held)
        self.assertEqual([v["Key"] for v in s3.list_object_versions(Bucket=bucket).get("Versions", [])], [])


class AwsCliWormTests(AwsCliMixin, ServerTestCase):
    """The WORM recipe of docs/versioning.md, with ``aws s3api``, across a kill -9."""

    def setUp(self) -> None:
        self.server: Server = self.privateServer()
        self.setUpAwsCli()

    def refusals(self, bucket: str, versionId: str, until: str) -> None:
        """The cli cannot delete, shorten, remove or soften the retention, nor suspend versioning."""
        version = ("--bucket", bucket, "--key", "ledger", "--version-id", versionId)
        self.assertFails("s3api", "delete-object", *version, expect="AccessDenied")
        self.assertFails("s3api", "delete-object", *version, "--bypass-governance-retention", expect="AccessDenied")
        sooner = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for mode, date in (("COMPLIANCE", sooner), ("GOVERNANCE", until)):
            document = json.dumps({"Mode": mode, "RetainUntilDate": date})
            self.assertFails("s3api", "put-object-retention", *version, "--retention", document,
                             "--bypass-governance-retention", expect="AccessDenied")
        self.assertFails("s3api", "put-object-retention", *version, "--retention", "{}",
                         "--bypass-governance-retention", expect="AccessDenied")
        self.assertFails("s3api", "put-bucket-versioning", "--bucket", bucket,
                         "--versioning-configuration", "Status=Suspended", expect="InvalidBucketState")
        retained = self.json("s3api", "get-object-retention", *version)["Retention"]
        self.assertEqual(retained["Mode"], "COMPLIANCE")

    def test_recipe(self) -> None:
        """The documented commands: create, configure six years of COMPLIANCE, put; nobody can shorten it."""
        bucket = self.bucketName("cliworm")
        self.json("s3api", "create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket")
        self.json(
            "s3api", "put-object-lock-configuration", "--bucket", bucket, "--object-lock-configuration",
            '{"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 6}}}',
        )
        got = self.json("s3api", "get-object-lock-configuration", "--bucket", bucket)["ObjectLockConfiguration"]
        self.assertEqual(got["Rule"]["DefaultRetention"], {"Mode": "COMPLIANCE", "Years": 6})
        path = os.path.join(self.home, "ledger.txt")
        with open(path, "wb") as f:
            f.write(b"entry 1")
        put = self.json("s3api", "put-object", "--bucket", bucket, "--key", "ledger", "--body", path)
        versionId = put["VersionId"]
        head = self.json("s3api", "head-object", "--bucket", bucket, "--key", "ledger", "--version-id", versionId)
        self.assertEqual(head["ObjectLockMode"], "COMPLIANCE")
        until = head["ObjectLockRetainUntilDate"]
        self.assertTrue(until.startswith(str(datetime.datetime.now(datetime.timezone.utc).year + 6)), until)
        self.assertEqual(head["ETag"], '"%s"' % hashlib.md5(b"entry 1").hexdigest())
        marker = self.json("s3api", "delete-object", "--bucket", bucket, "--key", "ledger")
        self.assertTrue(marker["DeleteMarker"])
        self.refusals(bucket, versionId, until)

        self.server.kill()
        self.server.start()
        got = self.json("s3api", "get-object-lock-configuration", "--bucket", bucket)["ObjectLockConfiguration"]
        self.assertEqual(got["Rule"]["DefaultRetention"], {"Mode": "COMPLIANCE", "Years": 6})
        self.refusals(bucket, versionId, until)
        out = os.path.join(self.home, "out")
        self.json("s3api", "get-object", "--bucket", bucket, "--key", "ledger", "--version-id", versionId, out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"entry 1")
