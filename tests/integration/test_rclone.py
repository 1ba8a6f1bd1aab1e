"""
rclone (remote type s3, provider Other) against the real server.  rclone
lists with ListObjects v1, HEADs after every PUT, keeps the modification time
in X-Amz-Meta-Mtime and checks MD5s against ETags.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from typing import Dict

from tests.integration.harness import ServerTestCase, requireTool

MTIME = 1_600_000_000  # 2020-09-13 12:26:40 UTC, set on every local file


class RcloneTests(ServerTestCase):
    """copy, ls/lsl, md5sum, check, cat, delete, purge."""

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
        for name, data in files.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (MTIME, MTIME))
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
