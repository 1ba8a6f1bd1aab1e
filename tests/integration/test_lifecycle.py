"""
Lifecycle rules against the real server, which runs with the test-only
C{--test-clock-offset-file} (and a pass every second): boto3 and the aws cli
put a lifecycle configuration, write objects, versions, markers and an
upload; C{x-amz-expiration} is seen on HEAD; the test then moves the
server's background clock three days on by rewriting the offset file and
polls, with a deadline, until the rules have been carried out.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any, Dict, List

from tests.integration.harness import REGION, AwsCliMixin, Server, ServerTestCase, waitFor

DAY = 86400

#: How long the rules may take once due: passes start every second.
DEADLINE = 60.0


class LifecycleCase(ServerTestCase):
    """A server of the test's own, whose background clock the test moves."""

    def setUp(self) -> None:
        self.offsetPath = os.path.abspath(self.mktemp())
        self.server: Server = self.privateServer(
            extraArgs=["--test-clock-offset-file", self.offsetPath, "--lifecycle-interval", "1"]
        )
        self.s3 = self.server.client()

    def advance(self, seconds: float) -> None:
        """Move the server's background clock to C{seconds} ahead of real time (atomically)."""
        temporary = self.offsetPath + ".tmp"
        with open(temporary, "w") as f:
            f.write(f"{seconds}\n")
        os.replace(temporary, self.offsetPath)

    def keys(self, bucket: str) -> List[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


class Boto3LifecycleTests(LifecycleCase):
    """Current versions and uploads, with boto3."""

    def test_expireAndAbort(self) -> None:
        """An expiring prefix and stale uploads go once the server's clock is three days on; the rest stays."""
        bucket = self.bucketName("lc")
        self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
            {"ID": "tmp files", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
            {"ID": "uploads", "Filter": {}, "Status": "Enabled",
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        ]})
        rules = self.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        self.assertEqual([r["ID"] for r in rules], ["tmp files", "uploads"])
        put = self.s3.put_object(Bucket=bucket, Key="tmp/a", Body=b"temporary")
        self.assertIn('rule-id="tmp%20files"', put["Expiration"])
        self.s3.put_object(Bucket=bucket, Key="keep/b", Body=b"kept")
        uploadId = self.s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
        head = self.s3.head_object(Bucket=bucket, Key="tmp/a")
        self.assertTrue(head["Expiration"].startswith('expiry-date="'), head["Expiration"])
        self.assertTrue(head["Expiration"].endswith(' 00:00:00 GMT", rule-id="tmp%20files"'), head["Expiration"])
        self.assertNotIn("Expiration", self.s3.head_object(Bucket=bucket, Key="keep/b"))

        self.assertEqual(sorted(self.keys(bucket)), ["keep/b", "tmp/a"])
        self.advance(3 * DAY)
        waitFor("tmp/a expired", lambda: self.keys(bucket) == ["keep/b"], DEADLINE)
        waitFor("the upload aborted", lambda: not self.s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), DEADLINE)
        self.assertEqual(self.s3.get_object(Bucket=bucket, Key="keep/b")["Body"].read(), b"kept")
        from botocore.exceptions import ClientError

        e = self.assertRaises(ClientError, self.s3.list_parts, Bucket=bucket, Key="big", UploadId=uploadId)
        self.assertEqual(e.response["Error"]["Code"], "NoSuchUpload")
        metrics = self.metrics()
        self.assertIn("fasterstore_lifecycle_objects_expired_total 1.0", metrics)
        self.assertIn("fasterstore_lifecycle_uploads_aborted_total 1.0", metrics)

    def test_resumesAfterRestart(self) -> None:
        """The walk's state is in the data directory: after a restart, rules keep being carried out."""
        bucket = self.bucketName("lc")
        self.s3.create_bucket(Bucket=bucket)
        self.s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
            {"ID": "all", "Filter": {}, "Status": "Enabled", "Expiration": {"Days": 2}},
        ]})
        for i in range(5):
            self.s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
        state = os.path.join(self.server.dataDir, "lifecycle.state")
        waitFor("a pass recorded", lambda: os.path.exists(state), DEADLINE)
        self.assertIn(self.server.stop(), (0, -signal.SIGTERM))  # twistd ends by its own SIGTERM
        with open(state) as f:
            self.assertIn("nextPass", json.load(f))
        self.server.start()
        self.advance(4 * DAY)
        waitFor("every object expired", lambda: self.keys(bucket) == [], DEADLINE)

    def metrics(self) -> str:
        from tests.integration.harness import rawRequest

        return rawRequest(self.server, "GET", "/_fasterstore/metrics", sign=False).body.decode()


class AwsCliLifecycleTests(AwsCliMixin, LifecycleCase):
    """Noncurrent versions and expired delete markers, with ``aws s3api``."""

    def setUp(self) -> None:
        super().setUp()
        self.setUpAwsCli(REGION)

    def s3api(self, *args: str) -> Dict[str, Any]:
        return self.json("s3api", *args)

    def versions(self, bucket: str) -> List[Any]:
        listed = self.s3api("list-object-versions", "--bucket", bucket)
        return [(v["Key"], False) for v in listed.get("Versions", [])] + [(m["Key"], True) for m in listed.get("DeleteMarkers", [])]

    def test_noncurrentAndMarkers(self) -> None:
        """Old versions go a day after they were replaced, then the marker left alone goes too."""
        bucket = self.bucketName("lccli")
        self.s3api("create-bucket", "--bucket", bucket)
        self.s3api("put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
        configuration = os.path.join(self.home, "lifecycle.json")
        with open(configuration, "w") as f:
            json.dump({"Rules": [
                {"ID": "versions", "Filter": {"Prefix": ""}, "Status": "Enabled",
                 "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                 "Expiration": {"ExpiredObjectDeleteMarker": True}},
                {"ID": "current", "Filter": {"Prefix": "current/"}, "Status": "Enabled", "Expiration": {"Days": 1}},
            ]}, f)
        self.s3api("put-bucket-lifecycle-configuration", "--bucket", bucket,
                   "--lifecycle-configuration", f"file://{configuration}")
        got = self.s3api("get-bucket-lifecycle-configuration", "--bucket", bucket)
        self.assertEqual([r["ID"] for r in got["Rules"]], ["versions", "current"])
        body = os.path.join(self.home, "body")
        with open(body, "wb") as f:
            f.write(b"version")
        for _ in range(2):
            self.s3api("put-object", "--bucket", bucket, "--key", "doc", "--body", body)
        self.s3api("delete-object", "--bucket", bucket, "--key", "doc")
        self.s3api("put-object", "--bucket", bucket, "--key", "current/c", "--body", body)
        head = self.s3api("head-object", "--bucket", bucket, "--key", "current/c")
        self.assertIn('rule-id="current"', head["Expiration"])
        self.assertEqual(sorted(self.versions(bucket)), [("current/c", False), ("doc", False), ("doc", False), ("doc", True)])

        self.advance(3 * DAY)
        # doc's versions go, then its marker; current/c gets a marker, its version goes three days later.
        waitFor("doc's versions and marker gone", lambda: all(key != "doc" for key, _ in self.versions(bucket)), DEADLINE)
        waitFor("current/c behind a marker", lambda: sorted(self.versions(bucket)) == [("current/c", False), ("current/c", True)], DEADLINE)
        self.advance(7 * DAY)
        waitFor("everything gone", lambda: self.versions(bucket) == [], DEADLINE)
