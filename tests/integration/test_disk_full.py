"""
A full disk, for real: the server on a 64 MiB tmpfs with a 4 MiB reserve.

Uploads are refused with 507 InsufficientStorage (before their body when it
is declared) while reads and deletes go on, readiness says why, writes come
back by themselves once space is freed from outside the server, and every
acknowledged object survives a kill -9.  Mounting needs root: without it
the test is skipped, or fails under C{CI=true}.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from typing import Callable, Dict, Optional, Tuple

from botocore.exceptions import ClientError
from twisted.trial.unittest import FailTest, SkipTest

from tests.integration.harness import (
    waitFor,
    Response,
    Server,
    ServerTestCase,
    canonicalPath,
    connection,
    errorCode,
    inCI,
    rawRequest,
    s3Path,
    splitTarget,
    uniqueBody,
)

MiB = 1024 * 1024
DISK = 64 * MiB
RESERVE = 4 * MiB
#: What the test itself puts on the disk, to take away later.
FILLER = 16 * MiB
OBJECT = 1 * MiB
#: Longest wait for something the server should do by itself.
DEADLINE = 10.0


def freeBytes(path: str) -> int:
    """What an unprivileged writer may still put on C{path}'s file system."""
    result = os.statvfs(path)
    return result.f_bavail * result.f_frsize


def writeFile(path: str, size: int) -> None:
    """A file of C{size} bytes, really allocated."""
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            chunk = min(remaining, MiB)
            f.write(b"\0" * chunk)
            remaining -= chunk


class DiskFullTests(ServerTestCase):
    """The whole story of a disk that fills up and is freed again."""

    def setUp(self) -> None:
        self.mount = os.path.abspath(self.mktemp())
        os.makedirs(self.mount)
        self.mountTmpfs()
        self.server = Server(
            self.mktemp(), extraArgs=["--reserve", str(RESERVE), "--segment-size", "1MiB", "--threads", "2"]
        )
        # The data (segments and metadata) on the small disk; the log not.
        self.server.dataDir = os.path.join(self.mount, "data")
        self._use(self.server)
        self.addCleanup(self.server.kill)  # runs before the unmount
        writeFile(os.path.join(self.mount, "filler"), FILLER)
        self.server.start()
        self.client = self.server.client()

    def mountTmpfs(self) -> None:
        """A tmpfs of L{DISK} bytes at C{self.mount}, unmounted at cleanup."""
        problem: Optional[str] = None
        if os.geteuid() != 0:
            problem = "mounting a tmpfs needs root"
        elif shutil.which("mount") is None:
            problem = "no mount command"
        else:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={DISK // MiB}m,mode=0700", "tmpfs", self.mount],
                capture_output=True, text=True,
            )
            if done.returncode != 0:
                problem = f"mount -t tmpfs failed: {done.stderr.strip() or done.returncode}"
        if problem is not None:
            if inCI():
                raise FailTest(problem + " (CI=true: the disk-full test must run)")
            raise SkipTest(problem)

        def unmount() -> None:
            if subprocess.run(["umount", self.mount], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", self.mount], capture_output=True)

        self.addCleanup(unmount)

    # -- helpers -------------------------------------------------------------

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """PutObject with a file-like body, so that boto3 sends Expect: 100-continue."""
        self.client.put_object(Bucket=bucket, Key=key, Body=io.BytesIO(data))

    def assertInsufficientStorage(self, call: Callable[[], object]) -> None:
        """C{call} fails with a 507 InsufficientStorage S3 error."""
        try:
            call()
        except ClientError as e:
            self.assertEqual(e.response["Error"]["Code"], "InsufficientStorage", e.response)
            self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 507)
        else:
            self.fail("expected 507 InsufficientStorage")

    def ready(self) -> Response:
        """The readiness answer."""
        return rawRequest(self.server, "GET", "/_fasterstore/health/ready", sign=False, timeout=5)

    def assertAllIntact(self, bucket: str, objects: Dict[str, bytes]) -> None:
        """Every object reads back exactly."""
        for key, data in objects.items():
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
            self.assertEqual(body, data, f"{key} changed")

    def headOnlyPut(self, target: str, length: int, expect: bool) -> Tuple[int, bytes]:
        """
        Send a signed PUT's head announcing C{length} bytes and no body
        byte at all, then read the answer.
        """
        path, query = splitTarget(target)
        headers = {"host": self.server.host, "content-length": str(length)}
        if expect:
            headers["expect"] = "100-continue"
        self.server.signer().signHeaders("PUT", canonicalPath(path), query, headers)
        conn = connection(self.server, timeout=10)
        try:
            conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    # -- the test ------------------------------------------------------------

    def test_fullDisk(self) -> None:
        """
        Fill the disk until 507; everything acknowledged reads back; deletes
        and readiness work; a too-large upload is refused before its body;
        freeing space outside the server brings writes back by themselves;
        a kill -9 loses nothing acknowledged; a write that meets a truly
        full disk (ENOSPC) is a 507 too, not a 500.
        """
        bucket = self.bucketName("full")
        self.client.create_bucket(Bucket=bucket)
        stored: Dict[str, bytes] = {}

        # 1. Fill it: PUTs are acknowledged until one would eat the reserve.
        refused = False
        for i in range(DISK // OBJECT):
            data = uniqueBody(OBJECT, f"fill-{i}")
            try:
                self.put(bucket, f"fill/{i:03d}", data)
            except ClientError as e:
                self.assertEqual(e.response["Error"]["Code"], "InsufficientStorage", e.response)
                self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 507)
                refused = True
                break
            stored[f"fill/{i:03d}"] = data
        self.assertTrue(refused, "the disk never filled")
        self.assertGreater(len(stored), 10)
        # (Less record framing and metadata pages, which no declared length counts.)
        self.assertGreater(freeBytes(self.mount), RESERVE - MiB, "admitted uploads ate the reserve")

        # 2. Something else eats into the reserve: the node is not ready for writes.
        writeFile(os.path.join(self.mount, "other"), freeBytes(self.mount) - 2 * MiB)
        response = self.ready()
        self.assertEqual(response.status, 503, response)
        self.assertTrue(response.body.startswith(b"not ready: disk full: "), response.body)
        self.assertIn(f"reserve {RESERVE}".encode(), response.body)
        self.assertEqual(rawRequest(self.server, "GET", "/_fasterstore/health/live", sign=False).status, 200)

        # 3. Every upload is refused at once, by every worker, those with a
        #    length before their body.
        self.assertInsufficientStorage(lambda: self.put(bucket, "small", b"tiny"))
        for expect in (True, False):
            status, body = self.headOnlyPut(s3Path(bucket, "huge"), 32 * MiB, expect)
            self.assertEqual((status, errorCode(body)), (507, "InsufficientStorage"), body)
        uploadId = self.client.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
        self.assertInsufficientStorage(
            lambda: self.client.upload_part(
                Bucket=bucket, Key="parts", UploadId=uploadId, PartNumber=1, Body=io.BytesIO(b"p" * MiB)
            )
        )
        status, body = self.headOnlyPut(f"{s3Path(bucket, 'parts')}?partNumber=1&uploadId={uploadId}", 5 * MiB, True)
        self.assertEqual((status, errorCode(body)), (507, "InsufficientStorage"), body)

        # 4. Reads and deletes go on; nothing acknowledged is damaged.
        self.assertAllIntact(bucket, stored)
        self.client.delete_object(Bucket=bucket, Key="fill/000")
        del stored["fill/000"]
        self.assertEqual(self.client.list_objects_v2(Bucket=bucket, Prefix="fill/")["KeyCount"], sum(k.startswith("fill/") for k in stored))

        # 5. Space comes back from outside: readiness and writes follow by themselves.
        os.remove(os.path.join(self.mount, "other"))
        os.remove(os.path.join(self.mount, "filler"))
        waitFor("readiness back to 200", lambda: self.ready().status == 200)
        again = uniqueBody(OBJECT, "again")

        def putAgain() -> bool:
            try:
                self.put(bucket, "again", again)
            except ClientError:
                return False
            return True

        waitFor("a PUT accepted again", putAgain)
        stored["again"] = again
        parts = [uniqueBody(5 * MiB, "part-1"), uniqueBody(OBJECT, "part-2")]
        etags = [
            self.client.upload_part(
                Bucket=bucket, Key="parts", UploadId=uploadId, PartNumber=n, Body=io.BytesIO(part)
            )["ETag"]
            for n, part in enumerate(parts, 1)
        ]
        self.client.complete_multipart_upload(
            Bucket=bucket, Key="parts", UploadId=uploadId,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
        )
        stored["parts"] = b"".join(parts)
        self.assertAllIntact(bucket, stored)

        # 6. kill -9 and restart: everything acknowledged is there, intact.
        self.server.kill()
        self.server.start()
        self.client = self.server.client()
        self.assertAllIntact(bucket, stored)
        self.assertEqual(
            sorted(o["Key"] for o in self.client.list_objects_v2(Bucket=bucket)["Contents"]), sorted(stored)
        )

        # 7. An upload of undeclared length runs into a truly full disk:
        #    ENOSPC is answered 507, the server goes on serving reads.
        status, body = self.chunkedPut(s3Path(bucket, "overflow"), freeBytes(self.mount) + 8 * MiB)
        self.assertEqual((status, errorCode(body)), (507, "InsufficientStorage"), body)
        self.assertTrue(self.server.running())
        self.assertAllIntact(bucket, {k: stored[k] for k in list(stored)[:3]})
        self.assertIn(b"not ready: ", self.ready().body)


    def chunkedPut(self, target: str, size: int) -> Tuple[int, bytes]:
        """A signed PUT with a chunked body (no declared length) of C{size} bytes."""
        headers = {"host": self.server.host, "transfer-encoding": "chunked"}
        self.server.signer().signHeaders("PUT", canonicalPath(target), [], headers)
        conn = connection(self.server, timeout=30)
        try:
            conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            piece = b"o" * MiB
            sent = 0
            while sent < size:
                chunk = piece[: min(MiB, size - sent)]
                conn.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
            conn.send(b"0\r\n\r\n")
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()
