"""
MinIO's Python SDK (``minio`` from PyPI) against the real server, plain
http with the region set: put/get/stat/list/copy (CopySource, with and
without REPLACE)/remove, batch removal (DeleteObjects), tags, listing with
versions (ListObjectVersions), versioning (versions by id, delete markers,
an old version copied back), Object Lock (a default retention, retention and
legal hold on a version), fput_object in 5 MiB parts and
compose_object (UploadPartCopy), and presigned GET/PUT URLs used with
requests.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
from typing import List

import requests

from tests.integration.harness import ServerTestCase, inCI
from twisted.trial.unittest import FailTest, SkipTest

MIB = 1 << 20


def multipartETag(parts: List[bytes]) -> str:
    """MD5 of the part MD5s, ``-N`` (unquoted, as the SDK reports ETags)."""
    return "%s-%d" % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))


class MinioSDKTests(ServerTestCase):
    """One minio.Minio client on the class's shared server."""

    def setUp(self) -> None:
        try:
            from minio import Minio
        except ImportError:
            message = "the minio SDK is not installed"
            if inCI():
                raise FailTest(message + " (CI=true: a missing client is a failure, not a skip)")
            raise SkipTest(message)
        self.server = self.sharedServer()
        self.client = Minio(
            f"127.0.0.1:{self.server.port}",
            access_key=self.server.accessKey,
            secret_key=self.server.secretKey,
            secure=False,
            region=self.server.region,
        )
        self.bucket = self.bucketName("minio")
        self.client.make_bucket(self.bucket)

    def read(self, name: str, **kw: object) -> bytes:
        response = self.client.get_object(self.bucket, name, **kw)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def test_objectOperations(self) -> None:
        """put, get (whole and ranged), stat, list, copy, tags, versions listing, remove, remove_objects."""
        from minio.commonconfig import REPLACE, CopySource, Tags
        from minio.deleteobjects import DeleteObject
        from minio.error import S3Error

        self.assertTrue(self.client.bucket_exists(self.bucket))
        data = os.urandom(250_000)
        written = self.client.put_object(
            self.bucket, "dir/ob ject+ü.bin", io.BytesIO(data), len(data),
            content_type="application/x-minio", metadata={"x-amz-meta-color": "teal"},
        )
        self.assertEqual(written.etag, hashlib.md5(data).hexdigest())
        self.assertEqual(self.read("dir/ob ject+ü.bin"), data)
        self.assertEqual(self.read("dir/ob ject+ü.bin", offset=1000, length=500), data[1000:1500])
        stat = self.client.stat_object(self.bucket, "dir/ob ject+ü.bin")
        self.assertEqual((stat.size, stat.etag, stat.content_type), (len(data), hashlib.md5(data).hexdigest(), "application/x-minio"))
        self.assertEqual(stat.metadata.get("x-amz-meta-color"), "teal")

        for name in ("top.txt", "dir/sub/deep.txt"):
            self.client.put_object(self.bucket, name, io.BytesIO(name.encode()), len(name))
        # The SDK yields a page's objects, then its common prefixes.
        shallow = sorted((o.object_name, o.is_dir) for o in self.client.list_objects(self.bucket))
        self.assertEqual(shallow, [("dir/", True), ("top.txt", False)])
        everything = [o.object_name for o in self.client.list_objects(self.bucket, recursive=True)]
        self.assertEqual(everything, ["dir/ob ject+ü.bin", "dir/sub/deep.txt", "top.txt"])
        prefixed = [o.object_name for o in self.client.list_objects(self.bucket, prefix="dir/sub/", recursive=True)]
        self.assertEqual(prefixed, ["dir/sub/deep.txt"])
        versions = list(self.client.list_objects(self.bucket, recursive=True, include_version=True))
        self.assertEqual([(o.object_name, o.version_id, o.is_latest) for o in versions], [(n, "null", "true") for n in everything])

        copied = self.client.copy_object(self.bucket, "copy", CopySource(self.bucket, "dir/ob ject+ü.bin"))
        self.assertEqual(copied.etag, hashlib.md5(data).hexdigest())
        self.assertEqual(self.read("copy"), data)
        self.assertEqual(self.client.stat_object(self.bucket, "copy").metadata.get("x-amz-meta-color"), "teal")
        self.client.copy_object(
            self.bucket, "replaced", CopySource(self.bucket, "copy"),
            metadata={"x-amz-meta-color": "plum"}, metadata_directive=REPLACE,
        )
        self.assertEqual(self.client.stat_object(self.bucket, "replaced").metadata.get("x-amz-meta-color"), "plum")

        tags = Tags.new_object_tags()
        tags["project"] = "fasterstore"
        tags["stage"] = "test"
        self.client.set_object_tags(self.bucket, "copy", tags)
        self.assertEqual(dict(self.client.get_object_tags(self.bucket, "copy") or {}), {"project": "fasterstore", "stage": "test"})

        self.client.remove_object(self.bucket, "copy")
        with self.assertRaises(S3Error) as raised:
            self.client.stat_object(self.bucket, "copy")
        self.assertIn(raised.exception.code, ("NoSuchKey", "ResponseError"))
        errors = list(
            self.client.remove_objects(
                self.bucket, [DeleteObject(n) for n in ["dir/ob ject+ü.bin", "dir/sub/deep.txt", "top.txt", "replaced"]]
            )
        )
        self.assertEqual(errors, [])
        self.assertEqual(list(self.client.list_objects(self.bucket, recursive=True)), [])
        self.client.remove_bucket(self.bucket)
        self.assertFalse(self.client.bucket_exists(self.bucket))

    def test_versioning(self) -> None:
        """
        set/get_bucket_versioning, versions by id through get, stat and
        list, a delete marker, removing a version by id, copying an old
        version back as the latest.
        """
        from minio.commonconfig import ENABLED, CopySource
        from minio.error import S3Error as MinioError
        from minio.versioningconfig import VersioningConfig

        self.assertIsNone(self.client.get_bucket_versioning(self.bucket).status)  # never set: an empty document
        self.client.set_bucket_versioning(self.bucket, VersioningConfig(ENABLED))
        self.assertEqual(self.client.get_bucket_versioning(self.bucket).status, ENABLED)
        ids = [self.client.put_object(self.bucket, "doc", io.BytesIO(body), len(body)).version_id
               for body in (b"one", b"two", b"three")]
        self.assertEqual(len(set(ids)), 3)
        for versionId, body in zip(ids, (b"one", b"two", b"three")):
            self.assertEqual(self.read("doc", version_id=versionId), body)
            self.assertEqual(self.client.stat_object(self.bucket, "doc", version_id=versionId).size, len(body))
        listed = list(self.client.list_objects(self.bucket, include_version=True))
        self.assertEqual([(o.version_id, o.is_latest) for o in listed],
                         [(ids[2], "true"), (ids[1], "false"), (ids[0], "false")])
        self.client.remove_object(self.bucket, "doc")
        with self.assertRaises(MinioError) as raised:
            self.client.stat_object(self.bucket, "doc")
        self.assertEqual(raised.exception.code, "NoSuchKey")
        markers = [o for o in self.client.list_objects(self.bucket, include_version=True) if o.is_delete_marker]
        self.assertEqual(len(markers), 1)
        self.client.remove_object(self.bucket, "doc", version_id=markers[0].version_id)
        self.client.remove_object(self.bucket, "doc", version_id=ids[2])
        self.assertEqual(self.read("doc"), b"two")
        restored = self.client.copy_object(self.bucket, "doc", CopySource(self.bucket, "doc", version_id=ids[0]))
        self.assertNotIn(restored.version_id, ids)
        self.assertEqual(self.read("doc"), b"one")
        self.assertEqual(len(list(self.client.list_objects(self.bucket, include_version=True))), 3)

    def test_objectLock(self) -> None:
        """
        make_bucket(object_lock=True), a default retention set and read back,
        COMPLIANCE and GOVERNANCE retentions set on versions, a legal hold:
        removing a version fails while any of them holds.  (The SDK sends no
        Content-MD5 with put_object, which AWS requires under a default
        retention: the versions are written without one, then locked.)
        """
        import datetime as dt

        from minio.commonconfig import COMPLIANCE, GOVERNANCE
        from minio.error import S3Error as MinioError
        from minio.objectlockconfig import DAYS, ObjectLockConfig
        from minio.retention import Retention

        bucket = self.bucketName("minio-lock")
        self.client.make_bucket(bucket, object_lock=True)
        self.client.set_object_lock_config(bucket, ObjectLockConfig(COMPLIANCE, 1, DAYS))
        config = self.client.get_object_lock_config(bucket)
        self.assertEqual((config.mode, config.duration, config.duration_unit), (COMPLIANCE, 1, DAYS))
        self.client.delete_object_lock_config(bucket)
        until = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=1)

        kept = self.client.put_object(bucket, "kept", io.BytesIO(b"kept"), 4)
        self.client.set_object_retention(bucket, "kept", Retention(COMPLIANCE, until), version_id=kept.version_id)
        retention = self.client.get_object_retention(bucket, "kept", version_id=kept.version_id)
        self.assertEqual(retention.mode, COMPLIANCE)
        with self.assertRaises(MinioError) as raised:
            self.client.remove_object(bucket, "kept", version_id=kept.version_id)
        self.assertEqual(raised.exception.code, "AccessDenied")

        held = self.client.put_object(bucket, "held", io.BytesIO(b"held"), 4)
        self.client.set_object_retention(bucket, "held", Retention(GOVERNANCE, until), version_id=held.version_id)
        self.client.enable_object_legal_hold(bucket, "held", version_id=held.version_id)
        self.assertTrue(self.client.is_object_legal_hold_enabled(bucket, "held", version_id=held.version_id))
        with self.assertRaises(MinioError):
            self.client.remove_object(bucket, "held", version_id=held.version_id)
        self.client.disable_object_legal_hold(bucket, "held", version_id=held.version_id)
        self.assertFalse(self.client.is_object_legal_hold_enabled(bucket, "held", version_id=held.version_id))
        with self.assertRaises(MinioError) as raised:
            self.client.remove_object(bucket, "held", version_id=held.version_id)  # GOVERNANCE, no bypass
        self.assertEqual(raised.exception.code, "AccessDenied")
        self.assertEqual(self.read_from(bucket, "held", held.version_id), b"held")

    def read_from(self, bucket: str, name: str, versionId: str) -> bytes:
        response = self.client.get_object(bucket, name, version_id=versionId)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def test_fputMultipartAndCompose(self) -> None:
        """fput_object of 12 MiB in 5 MiB parts (ETag ``-3``), fget_object, and compose_object of two objects."""
        from minio.commonconfig import ComposeSource

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(2 * MIB + 17)]
        source = os.path.join(directory, "twelve.bin")
        with open(source, "wb") as f:
            for part in parts:
                f.write(part)
        written = self.client.fput_object(self.bucket, "twelve.bin", source, part_size=5 * MIB)
        self.assertEqual(written.etag, multipartETag(parts))
        stat = self.client.stat_object(self.bucket, "twelve.bin")
        self.assertEqual((stat.size, stat.etag), (sum(map(len, parts)), multipartETag(parts)))
        target = os.path.join(directory, "twelve.down")
        self.client.fget_object(self.bucket, "twelve.bin", target)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"".join(parts))
        # compose_object copies parts server-side (UploadPartCopy); all but the last must be >= 5 MiB.
        self.client.put_object(self.bucket, "tail", io.BytesIO(b"the tail"), 8)
        composed = self.client.compose_object(
            self.bucket, "composed", [ComposeSource(self.bucket, "twelve.bin"), ComposeSource(self.bucket, "tail")]
        )
        self.assertTrue(composed.etag.endswith("-2"), composed.etag)
        self.assertEqual(self.read("composed"), b"".join(parts) + b"the tail")

    def test_presignedGetAndPut(self) -> None:
        """presigned_put_object then presigned_get_object, used with requests."""
        data = os.urandom(80_000)
        putURL = self.client.presigned_put_object(self.bucket, "pre/signed + ü", expires=datetime.timedelta(minutes=10))
        response = requests.put(putURL, data=data, timeout=30)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.headers.get("ETag"), '"%s"' % hashlib.md5(data).hexdigest())
        getURL = self.client.presigned_get_object(self.bucket, "pre/signed + ü", expires=datetime.timedelta(minutes=10))
        response = requests.get(getURL, timeout=30)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.content, data)
        overridden = self.client.presigned_get_object(
            self.bucket, "pre/signed + ü", response_headers={"response-content-type": "text/x-override"}
        )
        response = requests.get(overridden, timeout=30)
        self.assertEqual(response.headers.get("Content-Type"), "text/x-override")
        # A tampered URL is refused.
        tampered = getURL.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        self.assertEqual(requests.get(tampered, timeout=30).status_code, 403)
