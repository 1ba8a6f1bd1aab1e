"""
rclone (remote type s3, provider Other) against the real server, a
versioned bucket included (backend versioning, --s3-versions,
cleanup-hidden).  rclone
lists with ListObjects v1, HEADs after every PUT, keeps the modification time
in X-Amz-Meta-Mtime and checks MD5s against ETags (for multipart objects,
against the X-Amz-Meta-Md5chksum it stores).  Above --s3-upload-cutoff it
uploads in parts, above --s3-copy-cutoff it copies server-side with
UploadPartCopy.

The environment's AWS_* variables are dropped: rclone reads AWS_CA_BUNDLE
even for an http endpoint and fails ("LoadCustomCABundleError") when set.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from typing import Dict

from tests.integration.harness import Server, ServerTestCase, rawRequest, requireTool, writeTree

MTIME = 1_600_000_000  # 2020-09-13 12:26:40 UTC, set on every local file


def operationCount(server: Server, operation: str) -> float:
    """How many successful requests of C{operation} the server has answered (its Prometheus metrics)."""
    metrics = rawRequest(server, "GET", "/_fasterstore/metrics", sign=False).body.decode()
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("fasterstore_requests_total{") and f'operation="{operation}"' in line and 'status="2' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


class RcloneTests(ServerTestCase):
    """copy, ls/lsl, md5sum, check, cat, move, delete, purge; multipart uploads and copies."""

    def setUp(self) -> None:
        self.rclone = requireTool("rclone")
        self.server = self.sharedServer()
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)
        config = os.path.join(self.home, "rclone.conf")
        open(config, "w").close()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
        self.env.update(
            {
                "RCLONE_CONFIG": config,
                "RCLONE_CONFIG_FS_TYPE": "s3",
                "RCLONE_CONFIG_FS_PROVIDER": "Other",
                "RCLONE_CONFIG_FS_ENV_AUTH": "false",
                "RCLONE_CONFIG_FS_ACCESS_KEY_ID": self.server.accessKey,
                "RCLONE_CONFIG_FS_SECRET_ACCESS_KEY": self.server.secretKey,
                "RCLONE_CONFIG_FS_ENDPOINT": self.server.endpoint,
                "RCLONE_CONFIG_FS_REGION": self.server.region,
                "RCLONE_CONFIG_FS_FORCE_PATH_STYLE": "true",
                "HOME": self.home,
                "TZ": "UTC",
            }
        )

    def run_rclone(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [self.rclone, "--low-level-retries", "1", "--retries", "1", "--contimeout", "10s", "--timeout", "60s"] + list(args)
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            self.fail(f"rclone {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def makeTree(self, root: str) -> Dict[str, bytes]:
        files = {
            "a.txt": b"alpha\n",
            "empty.dat": b"",
            "dir/b.bin": os.urandom(150_000),
            "dir/sub/c.bin": os.urandom(2_000_000),
            "dir/with space & plus+.txt": b"odd name",
            "unicodé/ß.txt": "grüße".encode(),
        }
        writeTree(root, files, MTIME)
        return files

    def test_treeLifecycle(self) -> None:
        """Copy a tree up, list it with sizes and mtimes, verify hashes, read, delete, purge."""
        bucket = self.bucketName("rc")
        local = os.path.join(self.home, "local")
        files = self.makeTree(local)
        self.run_rclone("mkdir", f"fs:{bucket}")
        self.run_rclone("copy", local, f"fs:{bucket}/tree")

        ls = self.run_rclone("ls", f"fs:{bucket}/tree").stdout
        listed = {}
        for line in ls.splitlines():
            size, name = line.strip().split(" ", 1)
            listed[name] = int(size)
        self.assertEqual(listed, {name: len(data) for name, data in files.items()})

        lsl = self.run_rclone("lsl", f"fs:{bucket}/tree").stdout
        for line in lsl.splitlines():
            parts = line.split()
            self.assertTrue(parts[1] == "2020-09-13" and parts[2].startswith("12:26:40"), f"mtime not kept: {line}")

        md5sums = self.run_rclone("md5sum", f"fs:{bucket}/tree").stdout
        remote = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in md5sums.splitlines()}
        self.assertEqual(remote, {name: hashlib.md5(data).hexdigest() for name, data in files.items()})

        self.run_rclone("check", local, f"fs:{bucket}/tree")
        self.run_rclone("check", "--download", local, f"fs:{bucket}/tree")

        self.assertEqual(self.run_rclone("cat", f"fs:{bucket}/tree/unicodé/ß.txt").stdout, "grüße")
        cat = subprocess.run(
            [self.rclone, "cat", f"fs:{bucket}/tree/dir/sub/c.bin"], env=self.env, capture_output=True, timeout=120
        )
        self.assertEqual(cat.returncode, 0, cat.stderr)
        self.assertEqual(cat.stdout, files["dir/sub/c.bin"])

        # A second copy transfers nothing: sizes and mtimes come back right.
        second = self.run_rclone("copy", "-v", local, f"fs:{bucket}/tree")
        self.assertEqual(second.stderr.count(": Copied"), 0, second.stderr)
        # A changed file is noticed by check, and copied again alone.
        with open(os.path.join(local, "a.txt"), "wb") as f:
            f.write(b"ALPHA, changed\n")
        self.assertNotEqual(self.run_rclone("check", local, f"fs:{bucket}/tree", check=False).returncode, 0)
        third = self.run_rclone("copy", "-v", local, f"fs:{bucket}/tree")
        self.assertEqual(third.stderr.count(": Copied"), 1, third.stderr)
        self.run_rclone("check", local, f"fs:{bucket}/tree")

        self.run_rclone("delete", f"fs:{bucket}/tree/dir/b.bin")
        ls = self.run_rclone("ls", f"fs:{bucket}/tree").stdout
        self.assertNotIn("dir/b.bin", ls)
        self.assertIn("dir/sub/c.bin", ls)
        self.run_rclone("purge", f"fs:{bucket}")
        buckets = self.run_rclone("lsd", "fs:").stdout
        self.assertNotIn(bucket, buckets)

    def test_versionedBucket(self) -> None:
        """
        rclone turns versioning on (backend versioning), and with
        --s3-versions lists and reads the old versions an overwrite and a
        delete left; a plain listing shows only the latest; cleanup-hidden
        removes the old versions and the delete marker.
        """
        bucket = self.bucketName("rcv")
        local = os.path.join(self.home, "versioned")
        self.run_rclone("mkdir", f"fs:{bucket}")
        self.assertEqual(self.run_rclone("backend", "versioning", f"fs:{bucket}", "Enabled").stdout.strip(), "Enabled")
        s3 = self.server.client()
        self.assertEqual(s3.get_bucket_versioning(Bucket=bucket)["Status"], "Enabled")
        for content in (b"first\n", b"second, longer\n"):
            writeTree(local, {"doc.txt": content}, MTIME)
            self.run_rclone("copyto", os.path.join(local, "doc.txt"), f"fs:{bucket}/doc.txt")
        writeTree(local, {"gone.txt": b"gone\n"}, MTIME)
        self.run_rclone("copyto", os.path.join(local, "gone.txt"), f"fs:{bucket}/gone.txt")
        self.run_rclone("delete", f"fs:{bucket}/gone.txt")

        self.assertEqual(self.run_rclone("ls", f"fs:{bucket}").stdout.split(), [str(len(b"second, longer\n")), "doc.txt"])
        listed = {}
        for line in self.run_rclone("ls", "--s3-versions", f"fs:{bucket}").stdout.splitlines():
            size, name = line.strip().split(" ", 1)
            listed[name] = int(size)
        old = [name for name in listed if name.startswith("doc-v")]
        self.assertEqual(len(old), 1, listed)
        self.assertEqual(listed[old[0]], len(b"first\n"))
        self.assertEqual(len([name for name in listed if name.startswith("gone-v")]), 1, listed)
        self.assertEqual(self.run_rclone("cat", "--s3-versions", f"fs:{bucket}/{old[0]}").stdout, "first\n")

        self.run_rclone("backend", "cleanup-hidden", f"fs:{bucket}")
        versions = s3.list_object_versions(Bucket=bucket)
        self.assertEqual([(v["Key"], v["IsLatest"]) for v in versions.get("Versions", [])], [("doc.txt", True)])
        self.assertEqual(versions.get("DeleteMarkers", []), [])
        self.assertEqual(self.run_rclone("cat", f"fs:{bucket}/doc.txt").stdout, "second, longer\n")

    def test_multipartCopyMoveDelete(self) -> None:
        """
        Files above a 5 MiB upload cutoff go up in 5 MiB parts; check and
        md5sum agree with the local files; a server-side move (copies above a
        5 MiB copy cutoff become UploadPartCopy) and a move from local disk;
        delete.
        """
        bucket = self.bucketName("rc")
        local = os.path.join(self.home, "big")
        mib = 1 << 20
        files = {
            "twelve.bin": os.urandom(12 * mib),
            "nested/dir/six + ü.bin": os.urandom(6 * mib + 123),
            "nested/small.txt": b"small\n",
            "exactly-five.bin": os.urandom(5 * mib),
        }
        writeTree(local, files, MTIME)
        multipart = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--s3-copy-cutoff", "5M", "--transfers", "2"]
        self.run_rclone("mkdir", f"fs:{bucket}")
        self.run_rclone("copy", *multipart, local, f"fs:{bucket}/big")
        # The large files really are multipart objects: rclone keeps their MD5 in metadata.
        s3 = self.server.client()
        etag = s3.head_object(Bucket=bucket, Key="big/twelve.bin")["ETag"]
        self.assertTrue(etag.endswith('-3"'), etag)
        etag = s3.head_object(Bucket=bucket, Key="big/nested/dir/six + ü.bin")["ETag"]
        self.assertTrue(etag.endswith('-2"'), etag)

        self.run_rclone("check", local, f"fs:{bucket}/big")
        local_md5 = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
        md5sums = self.run_rclone("md5sum", f"fs:{bucket}/big").stdout
        remote = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in md5sums.splitlines()}
        self.assertEqual(remote, local_md5)

        # Server-side move of the whole tree: parts copied with UploadPartCopy.
        partCopies = operationCount(self.server, "UploadPartCopy")
        self.run_rclone("move", *multipart, f"fs:{bucket}/big", f"fs:{bucket}/moved")
        self.assertGreaterEqual(operationCount(self.server, "UploadPartCopy") - partCopies, 3 + 2)
        self.assertEqual(self.run_rclone("ls", f"fs:{bucket}/big", check=False).stdout.strip(), "")
        self.run_rclone("check", local, f"fs:{bucket}/moved")
        moved = self.run_rclone("md5sum", f"fs:{bucket}/moved").stdout
        self.assertEqual({l.split("  ", 1)[1]: l.split("  ", 1)[0] for l in moved.splitlines()}, local_md5)
        cat = subprocess.run(
            [self.rclone, "cat", f"fs:{bucket}/moved/nested/dir/six + ü.bin"], env=self.env, capture_output=True, timeout=120
        )
        self.assertEqual(cat.returncode, 0, cat.stderr)
        self.assertEqual(cat.stdout, files["nested/dir/six + ü.bin"])

        # Move from local disk: the local files go away once uploaded.
        self.run_rclone("move", *multipart, local, f"fs:{bucket}/fromdisk")
        leftover = [n for n in files if os.path.exists(os.path.join(local, n))]
        self.assertEqual(leftover, [])
        fromDisk = self.run_rclone("md5sum", f"fs:{bucket}/fromdisk").stdout
        self.assertEqual({l.split("  ", 1)[1]: l.split("  ", 1)[0] for l in fromDisk.splitlines()}, local_md5)

        self.run_rclone("delete", "--include", "*.bin", f"fs:{bucket}/moved")
        self.assertEqual(self.run_rclone("ls", f"fs:{bucket}/moved").stdout.split(), [str(len(files["nested/small.txt"])), "nested/small.txt"])
        self.run_rclone("delete", f"fs:{bucket}")
        self.assertEqual(self.run_rclone("ls", f"fs:{bucket}").stdout.strip(), "")
        self.assertEqual(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []), [])
