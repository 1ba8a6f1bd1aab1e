"""
The real server on a store with far more segments than it may open files:
started with C{RLIMIT_NOFILE} lowered to L{LIMIT} and C{--segment-size 1}
(every object a segment of its own), it writes L{OBJECTS} objects, reads
every one back twice (in both orders, so the descriptor cache keeps
evicting), and still answers and accepts writes afterwards.  With an
unbounded descriptor cache the server would hit EMFILE after about
C{LIMIT} segments.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Dict, List

from twisted.trial.unittest import FailTest, SkipTest

from tests.integration.harness import Server, ServerTestCase, inCI, rawRequest, uniqueBody

#: The server's descriptor limit (soft and hard): its segment cache (128)
#: plus sockets, SQLite, logs and the reactor's own fit; 300 segments do not.
LIMIT = 192

#: Objects written, hence segments: well past L{LIMIT}.
OBJECTS = 320

#: Runs the server under a lowered limit: set it, then exec the command
#: (the harness starts its command as is, so the limit is applied here).
_EXEC_LIMITED = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


class LimitedServer(Server):
    """A L{Server} whose process runs with C{RLIMIT_NOFILE} = C{limit}."""

    def __init__(self, base: str, limit: int, **options: object) -> None:
        super().__init__(base, **options)  # type: ignore[arg-type]
        self.limit = limit

    def command(self) -> List[str]:
        command = super().command()
        if not os.path.isabs(command[0]):
            raise AssertionError(f"cannot exec {command[0]!r} without a path")
        return [sys.executable, "-c", _EXEC_LIMITED, str(self.limit)] + command


def openSegmentFiles(pid: int) -> int:
    """How many segment files process C{pid} has open now."""
    count = 0
    directory = f"/proc/{pid}/fd"
    for name in os.listdir(directory):
        try:
            target = os.readlink(os.path.join(directory, name))
        except OSError:
            continue  # closed meanwhile
        if target.endswith(".seg"):
            count += 1
    return count


class DescriptorLimitTests(ServerTestCase):
    """Many segments, few descriptors: every read and write still works."""

    def setUp(self) -> None:
        try:
            import boto3  # noqa: F401
        except ImportError:
            message = "boto3 is not installed"
            if inCI():
                raise FailTest(message + " (CI=true: a missing client is a failure, not a skip)")
            raise SkipTest(message)
        if not os.path.isdir("/proc/self/fd"):
            raise SkipTest("needs /proc to observe the server's descriptors")

    def startServer(self) -> Server:
        """A private server under the lowered limit, killed at cleanup."""
        server = LimitedServer(self.mktemp(), LIMIT, extraArgs=["--segment-size", "1"])
        self._use(server)
        self.addCleanup(server.kill)
        server.start()
        with open(f"/proc/{server.pid}/limits") as f:
            limits = [line.split() for line in f if line.startswith("Max open files")]
        self.assertEqual(limits[0][3:5], [str(LIMIT), str(LIMIT)], "the limit did not apply")
        return server

    def test_manySegmentsFewDescriptors(self) -> None:
        """
        320 one-segment objects under a limit of 192 descriptors: every
        GET returns the bytes PUT, in either order; the server keeps at
        most its cache's worth of segment files open, logs no EMFILE, and
        afterwards still answers and stores new objects.
        """
        server = self.startServer()
        s3 = server.client()
        bucket = self.bucketName("fds")
        s3.create_bucket(Bucket=bucket)
        digests: Dict[str, str] = {}
        for i in range(OBJECTS):
            key = f"object-{i:04d}"
            body = uniqueBody(512 + (i * 37) % 2048, key)
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            digests[key] = hashlib.sha256(body).hexdigest()
        segmentsDirectory = os.path.join(server.dataDir, "segments")
        segmentCount = sum(1 for name in os.listdir(segmentsDirectory) if name.endswith(".seg"))
        self.assertGreaterEqual(segmentCount, OBJECTS)
        self.assertGreater(segmentCount, LIMIT)

        for keys in (sorted(digests), sorted(digests, reverse=True)):
            for key in keys:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                self.assertEqual(hashlib.sha256(body).hexdigest(), digests[key], key)
            self.assertLessEqual(openSegmentFiles(server.pid), 128 + 8)
        first = sorted(digests)[0]
        ranged = s3.get_object(Bucket=bucket, Key=first, Range="bytes=10-99")["Body"].read()
        self.assertEqual(len(ranged), 90)

        ready = rawRequest(server, "GET", server.readyPath, sign=False)
        self.assertEqual(ready.status, 200)
        after = uniqueBody(4096, "after")
        s3.put_object(Bucket=bucket, Key="after", Body=after)
        self.assertEqual(s3.get_object(Bucket=bucket, Key="after")["Body"].read(), after)
        listed = s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)
        self.assertEqual(listed["KeyCount"], OBJECTS + 1)
        self.assertTrue(server.running())
        log = server.logSinceStart()
        self.assertNotIn("Too many open files", log)
        self.assertNotIn("EMFILE", log)
