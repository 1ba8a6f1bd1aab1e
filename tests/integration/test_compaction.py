"""
Compaction on a real server: deleted space comes back as files removed,
objects stay byte-identical, and a kill -9 in the middle of a pass loses
nothing (the next start finishes the job).
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import urllib.request
from typing import Dict

from tests.integration.harness import Server, ServerTestCase, waitFor

SEGMENT = 1 << 20
OBJECT = 200_000


def segmentBytes(server: Server) -> int:
    directory = os.path.join(server.dataDir, "segments")
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))


def movedBytes(server: Server) -> float:
    with urllib.request.urlopen(f"{server.endpoint}/_fasterstore/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("fasterstore_compaction_moved_bytes_total "):
            return float(line.split()[1])
    return 0.0


class CompactionTests(ServerTestCase):
    def server(self, rate: str = "64MiB") -> Server:
        return self.privateServer(extraArgs=[
            "--segment-size", str(SEGMENT), "--compaction-interval", "1", "--compaction-rate", rate,
        ])

    def fill(self, server: Server, bucket: str, n: int) -> Dict[str, bytes]:
        s3 = server.client()
        s3.create_bucket(Bucket=bucket)
        rng = random.Random(7)
        objects = {}
        for i in range(n):
            body = rng.randbytes(OBJECT)
            key = f"o/{i:04d}"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            objects[key] = body
        return objects

    def check(self, server: Server, bucket: str, objects: Dict[str, bytes]) -> None:
        s3 = server.client()
        for key, body in objects.items():
            got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(body).hexdigest(), key)
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        self.assertEqual(listed, sorted(objects))

    def deleteMost(self, server: Server, bucket: str, objects: Dict[str, bytes]) -> Dict[str, bytes]:
        s3 = server.client()
        kept = {k: v for i, (k, v) in enumerate(sorted(objects.items())) if i % 10 == 0}
        for key in objects:
            if key not in kept:
                s3.delete_object(Bucket=bucket, Key=key)
        return kept

    def test_spaceGivenBack(self) -> None:
        """Delete 90%: the segment files shrink to about the live bytes; every kept object reads back."""
        server = self.server()
        bucket = self.bucketName()
        objects = self.fill(server, bucket, 60)
        before = segmentBytes(server)
        kept = self.deleteMost(server, bucket, objects)
        live = sum(len(v) for v in kept.values())
        waitFor("compaction", lambda: segmentBytes(server) <= 1.3 * live + SEGMENT, 60)
        self.assertLess(segmentBytes(server), before / 3)
        self.check(server, bucket, kept)
        # The admin API reports it, to the operator's key (presigned, as the docs show).
        url = server.client().generate_presigned_url(
            "get_object", Params={"Bucket": "_fasterstore", "Key": "admin/storage"}, ExpiresIn=60)
        with urllib.request.urlopen(url, timeout=10) as response:
            report = json.loads(response.read())
        self.assertEqual(report["objects"], len(kept))
        self.assertGreater(report["compaction"]["segmentsRemoved"], 0)
        self.assertLessEqual(report["segmentBytes"], 1.3 * live + SEGMENT)
        server.stop()
        server.start()
        self.check(server, bucket, kept)

    def test_killNineDuringCompaction(self) -> None:
        """SIGKILL while a slow pass is moving records: after a restart everything is there and the pass completes."""
        server = self.server(rate="256KiB")
        bucket = self.bucketName()
        objects = self.fill(server, bucket, 60)
        kept = self.deleteMost(server, bucket, objects)
        # The slow pass (about a second per record) is under way once a
        # batch of moves has committed: kill it there.
        waitFor("compaction to move records", lambda: movedBytes(server) > 0, 60)
        server.kill()
        server.start()
        self.check(server, bucket, kept)
        live = sum(len(v) for v in kept.values())
        waitFor("compaction after the restart", lambda: segmentBytes(server) <= 1.3 * live + SEGMENT, 90)
        self.check(server, bucket, kept)
