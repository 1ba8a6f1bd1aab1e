"""
Object versioning against the real server, with boto3 and the aws cli:
enabling, three versions of a key, ListObjectVersions walked by boto3's
paginator one entry a page, each version read back by id, a DELETE making a
delete marker (GET then 404 with ``x-amz-delete-marker``), the marker
deleted by id bringing the object back, suspending (the null version
replaced, the others kept); the same through ``aws s3api``; and ``kill -9``
of the server after acknowledged versions and markers: everything listed
before is listed, and reads back, after the restart.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List, Tuple

from botocore.exceptions import ClientError

from tests.integration.harness import AwsCliMixin, ServerTestCase

#: One listing entry: key, version id, whether it is the latest.
Entry = Tuple[str, str, bool]


def walkVersions(s3: Any, bucket: str, pageSize: int = 1) -> Tuple[List[Entry], List[Entry]]:
    """
    Every version and every delete marker, each in the server's order (by
    key, newest first), walked by boto3's paginator C{pageSize} entries a
    page: botocore parses a page's versions and markers into two lists.
    """
    versions: List[Entry] = []
    markers: List[Entry] = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": pageSize}):
        assert len(page.get("Versions", [])) + len(page.get("DeleteMarkers", [])) <= pageSize, page
        versions += [(v["Key"], v["VersionId"], v["IsLatest"]) for v in page.get("Versions", [])]
        markers += [(m["Key"], m["VersionId"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])]
    return versions, markers


class Boto3VersioningTests(ServerTestCase):
    """The whole life of a versioned key, with boto3."""

    def setUp(self) -> None:
        self.server = self.sharedServer()
        self.s3 = self.server.client()
        self.bucket = self.bucketName("ver")
        self.s3.create_bucket(Bucket=self.bucket)

    def test_lifecycle(self) -> None:
        """Enable, 3 versions, paginated listing, reads by id, marker, marker deleted, suspend."""
        s3, bucket = self.s3, self.bucket
        self.assertNotIn("Status", s3.get_bucket_versioning(Bucket=bucket))
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        self.assertEqual(s3.get_bucket_versioning(Bucket=bucket)["Status"], "Enabled")

        bodies = [b"version one", b"version two!", b"version three..."]
        ids = [s3.put_object(Bucket=bucket, Key="doc", Body=body)["VersionId"] for body in bodies]
        self.assertEqual(len(set(ids)), 3)
        other = s3.put_object(Bucket=bucket, Key="other", Body=b"o")["VersionId"]

        self.assertEqual(walkVersions(s3, bucket, pageSize=1), ([
            ("doc", ids[2], True), ("doc", ids[1], False), ("doc", ids[0], False), ("other", other, True),
        ], []))
        for versionId, body in zip(ids, bodies):
            got = s3.get_object(Bucket=bucket, Key="doc", VersionId=versionId)
            self.assertEqual((got["Body"].read(), got["VersionId"]), (body, versionId))
            self.assertEqual(got["ETag"], '"%s"' % hashlib.md5(body).hexdigest())
        self.assertEqual(s3.get_object(Bucket=bucket, Key="doc")["Body"].read(), bodies[2])

        deleted = s3.delete_object(Bucket=bucket, Key="doc")
        self.assertTrue(deleted["DeleteMarker"])
        markerId = deleted["VersionId"]
        self.assertNotIn(markerId, ids)
        error = self.assertRaises(ClientError, s3.get_object, Bucket=bucket, Key="doc")
        self.assertEqual(error.response["Error"]["Code"], "NoSuchKey")
        headers = error.response["ResponseMetadata"]["HTTPHeaders"]
        self.assertEqual((headers["x-amz-delete-marker"], headers["x-amz-version-id"]), ("true", markerId))
        error = self.assertRaises(ClientError, s3.get_object, Bucket=bucket, Key="doc", VersionId=markerId)
        self.assertEqual(error.response["Error"]["Code"], "MethodNotAllowed")
        self.assertEqual([o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])], ["other"])
        versions, markers = walkVersions(s3, bucket, pageSize=1)
        self.assertEqual(markers, [("doc", markerId, True)])
        self.assertEqual(versions[:3], [("doc", ids[2], False), ("doc", ids[1], False), ("doc", ids[0], False)])

        removed = s3.delete_object(Bucket=bucket, Key="doc", VersionId=markerId)
        self.assertEqual((removed["DeleteMarker"], removed["VersionId"]), (True, markerId))
        got = s3.get_object(Bucket=bucket, Key="doc")
        self.assertEqual((got["Body"].read(), got["VersionId"]), (bodies[2], ids[2]))

        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
        self.assertEqual(s3.get_bucket_versioning(Bucket=bucket)["Status"], "Suspended")
        self.assertEqual(s3.put_object(Bucket=bucket, Key="doc", Body=b"null one")["VersionId"], "null")
        self.assertEqual(s3.put_object(Bucket=bucket, Key="doc", Body=b"null two")["VersionId"], "null")
        self.assertEqual(s3.get_object(Bucket=bucket, Key="doc", VersionId="null")["Body"].read(), b"null two")
        self.assertEqual(
            [e for e in walkVersions(s3, bucket)[0] if e[0] == "doc"],
            [("doc", "null", True)] + [("doc", v, False) for v in reversed(ids)],
        )

        # The bucket empties only once every version is gone.
        error = self.assertRaises(ClientError, s3.delete_bucket, Bucket=bucket)
        self.assertEqual(error.response["Error"]["Code"], "BucketNotEmpty")
        versions, markers = walkVersions(s3, bucket, 1000)
        everything = [{"Key": key, "VersionId": versionId} for key, versionId, _ in versions + markers]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": everything})
        self.assertEqual(len(response["Deleted"]), len(everything))
        s3.delete_bucket(Bucket=bucket)

    def test_copyAndRestore(self) -> None:
        """copy_object of an older version onto its own key restores it as the newest version."""
        s3, bucket = self.s3, self.bucket
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        old = s3.put_object(Bucket=bucket, Key="k", Body=b"old")["VersionId"]
        s3.put_object(Bucket=bucket, Key="k", Body=b"new")
        copied = s3.copy_object(Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k", "VersionId": old})
        self.assertEqual(copied["CopySourceVersionId"], old)
        got = s3.get_object(Bucket=bucket, Key="k")
        self.assertEqual((got["Body"].read(), got["VersionId"]), (b"old", copied["VersionId"]))
        self.assertEqual(len(walkVersions(s3, bucket, 1000)[0]), 3)


class AwsCliVersioningTests(AwsCliMixin, ServerTestCase):
    """``aws s3api`` versioning commands."""

    def setUp(self) -> None:
        self.server = self.sharedServer()
        self.setUpAwsCli()

    def test_s3api(self) -> None:
        """put/get-bucket-versioning, versions by put-object, list-object-versions, get-object and delete-object by id."""
        bucket = self.bucketName("cliver")
        self.json("s3api", "create-bucket", "--bucket", bucket)
        self.json("s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
        self.assertEqual(self.json("s3api", "get-bucket-versioning", "--bucket", bucket)["Status"], "Enabled")
        bodies = [b"cli one", b"cli two!", b"cli three.."]
        ids = []
        for i, body in enumerate(bodies):
            put = self.json("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", self.file(f"in{i}", body))
            ids.append(put["VersionId"])
        # --page-size 1: the cli's paginator follows both markers.
        listing = self.json("s3api", "list-object-versions", "--bucket", bucket, "--page-size", "1")
        self.assertEqual([(v["Key"], v["VersionId"], v["IsLatest"]) for v in listing["Versions"]],
                         [("k", ids[2], True), ("k", ids[1], False), ("k", ids[0], False)])
        out = os.path.join(self.home, "out")
        for versionId, body in zip(ids, bodies):
            got = self.json("s3api", "get-object", "--bucket", bucket, "--key", "k", "--version-id", versionId, out)
            self.assertEqual(got["VersionId"], versionId)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), body)
        marker = self.json("s3api", "delete-object", "--bucket", bucket, "--key", "k")
        self.assertTrue(marker["DeleteMarker"])
        failed = self.run_aws("s3api", "get-object", "--bucket", bucket, "--key", "k", out, check=False)
        self.assertNotEqual(failed.returncode, 0)
        self.assertIn("NoSuchKey", failed.stderr)
        listing = self.json("s3api", "list-object-versions", "--bucket", bucket)
        self.assertEqual([(m["Key"], m["VersionId"], m["IsLatest"]) for m in listing["DeleteMarkers"]],
                         [("k", marker["VersionId"], True)])
        removed = self.json("s3api", "delete-object", "--bucket", bucket, "--key", "k", "--version-id", marker["VersionId"])
        self.assertEqual((removed["DeleteMarker"], removed["VersionId"]), (True, marker["VersionId"]))
        self.json("s3api", "delete-object", "--bucket", bucket, "--key", "k", "--version-id", ids[2])
        got = self.json("s3api", "get-object", "--bucket", bucket, "--key", "k", out)
        self.assertEqual(got["VersionId"], ids[1])
        self.json("s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Suspended")
        put = self.json("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", self.file("n", b"null"))
        self.assertEqual(put["VersionId"], "null")
        listing = self.json("s3api", "list-object-versions", "--bucket", bucket)
        self.assertEqual([v["VersionId"] for v in listing["Versions"]], ["null", ids[1], ids[0]])


class CrashVersioningTests(ServerTestCase):
    """Versions and delete markers survive kill -9."""

    def test_killNine(self) -> None:
        """Everything listed before a SIGKILL is listed after the restart, and every version reads back."""
        server = self.privateServer()
        s3 = server.client()
        bucket = self.bucketName("verkill")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="before", Body=b"null version")
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        contents: Dict[Tuple[str, str], bytes] = {}
        for i in range(3):
            for key in ("a", "b", "before"):
                body = f"{key} {i}".encode() * (i + 1)
                contents[(key, s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"])] = body
        s3.delete_object(Bucket=bucket, Key="a")
        s3.delete_object(Bucket=bucket, Key="b")
        s3.delete_object(Bucket=bucket, Key="b")
        oldest = [k for k in contents if k[0] == "b"][0]
        s3.delete_object(Bucket=bucket, Key="b", VersionId=oldest[1])
        del contents[oldest]
        contents[("before", "null")] = b"null version"
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
        contents[("c", "null")] = b"suspended"
        self.assertEqual(s3.put_object(Bucket=bucket, Key="c", Body=b"suspended")["VersionId"], "null")
        before = walkVersions(s3, bucket, pageSize=2)
        self.assertEqual(len(before[1]), 3)
        self.assertEqual(sorted((k, v) for k, v, _ in before[0]), sorted(contents))

        server.kill()
        server.start()
        s3 = server.client()
        self.assertEqual(walkVersions(s3, bucket, pageSize=2), before)
        self.assertEqual(s3.get_bucket_versioning(Bucket=bucket)["Status"], "Suspended")
        for (key, versionId), body in contents.items():
            self.assertEqual(s3.get_object(Bucket=bucket, Key=key, VersionId=versionId)["Body"].read(), body, (key, versionId))
        for key in ("a", "b"):
            error = self.assertRaises(ClientError, s3.head_object, Bucket=bucket, Key=key)
            self.assertEqual(error.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"], "true")
