"""
restic (the Debian package) against the real server, through its ``s3:``
backend (minio-go: path-style for an IP endpoint, region found with
GetBucketLocation, HEADs and ListObjectsV2 everywhere): ``init`` (which
creates the bucket), ``backup``, ``check --read-data``, ``restore``
compared file by file, then a second backup, ``forget --prune`` (deletes
and rewrites packs) and ``check`` again.

The environment's AWS_* variables are replaced: only the test's key pair
reaches restic.  No TLS: the repository URL is ``s3:http://...``.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Dict, List

from tests.integration.harness import ServerTestCase, requireTool


def readTree(root: str) -> Dict[str, bytes]:
    """Every file under C{root}, by relative path."""
    out: Dict[str, bytes] = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


class ResticTests(ServerTestCase):
    """A restic repository in a FasterStore bucket."""

    def setUp(self) -> None:
        self.restic = requireTool("restic")
        self.server = self.sharedServer()
        self.home = os.path.abspath(self.mktemp())
        os.makedirs(self.home)
        self.bucket = self.bucketName("restic")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
        self.env.update(
            {
                "HOME": self.home,
                "AWS_ACCESS_KEY_ID": self.server.accessKey,
                "AWS_SECRET_ACCESS_KEY": self.server.secretKey,
                "AWS_DEFAULT_REGION": self.server.region,
                "RESTIC_REPOSITORY": f"s3:{self.server.endpoint}/{self.bucket}/repo",
                "RESTIC_PASSWORD": "correct horse battery staple",
                "RESTIC_CACHE_DIR": os.path.join(self.home, "cache"),
            }
        )

    def run_restic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [self.restic, "--quiet"] + list(args)
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            self.fail(f"restic {' '.join(args)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def snapshots(self) -> List[Dict]:
        return json.loads(self.run_restic("snapshots", "--no-lock", "--json").stdout)

    def test_backupCheckRestore(self) -> None:
        """init, backup, check --read-data, restore byte-identical; a second backup, forget --prune, check."""
        source = os.path.join(self.home, "source")
        files = {
            "notes.txt": b"restic on fasterstore\n",
            "empty": b"",
            "photos/big.raw": os.urandom(6 * (1 << 20)),
            "photos/with space + ü.jpg": os.urandom(300_000),
            "deep/a/b/c/d.bin": os.urandom(70_000),
        }
        for name, data in files.items():
            path = os.path.join(source, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)

        self.run_restic("init")
        # init made the bucket and the repository's config object in it.
        s3 = self.server.client()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=self.bucket)["Contents"]]
        self.assertIn("repo/config", keys)
        self.assertTrue([k for k in keys if k.startswith("repo/keys/")], keys)
        # A second init refuses: the repository is found.
        self.assertNotEqual(self.run_restic("init", check=False).returncode, 0)

        self.run_restic("backup", "--host", "testhost", source)
        snapshots = self.snapshots()
        self.assertEqual(len(snapshots), 1, snapshots)
        self.run_restic("check", "--read-data")

        target = os.path.join(self.home, "restored")
        self.run_restic("restore", "latest", "--target", target)
        # restic restores the absolute path under the target.
        restored = readTree(os.path.join(target, source.lstrip("/")))
        self.assertEqual(restored, files)

        # A changed tree, a second snapshot, then prune the first away.
        with open(os.path.join(source, "notes.txt"), "wb") as f:
            f.write(b"changed notes\n")
        os.remove(os.path.join(source, "photos", "big.raw"))
        files["notes.txt"] = b"changed notes\n"
        del files["photos/big.raw"]
        self.run_restic("backup", "--host", "testhost", source)
        self.assertEqual(len(self.snapshots()), 2)
        packsBefore = {o["Key"] for o in self.listAll(s3, "repo/data/")}
        self.run_restic("forget", "--keep-last", "1", "--prune")
        self.assertEqual(len(self.snapshots()), 1)
        packsAfter = {o["Key"] for o in self.listAll(s3, "repo/data/")}
        self.assertTrue(packsBefore - packsAfter, "prune deleted no pack")
        self.run_restic("check", "--read-data")
        again = os.path.join(self.home, "restored-again")
        self.run_restic("restore", "latest", "--target", again)
        self.assertEqual(readTree(os.path.join(again, source.lstrip("/"))), files)

    def listAll(self, s3, prefix: str) -> List[Dict]:
        """Every object under C{prefix}, through the paginator."""
        out: List[Dict] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(page.get("Contents", []))
        return out
