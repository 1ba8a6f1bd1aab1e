"""
One server per data directory, against the real ``twistd -n fasterstore``:
a second server started on a directory in use exits at once with a one-line
error naming the first one's pid, and the first keeps serving.  (Two servers
appending to the same segments would write at the same offsets and serve
each other's bytes.)
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import subprocess

from tests.integration.harness import Server, ServerTestCase, freePort


class DataDirectoryLockTests(ServerTestCase):
    """The data directory's lock."""

    def test_secondServerRefused(self) -> None:
        """The second server exits 1 naming the holder; the first is unaffected."""
        first = Server(self.mktemp())
        self._use(first)
        first.start()
        self.addCleanup(first.stop)
        s3 = first.client()
        s3.create_bucket(Bucket="locked")
        second = Server(self.mktemp())
        second.dataDir = first.dataDir
        second.port = freePort()
        result = subprocess.run(
            second.command(), env=second._environment(), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn(f"in use by another FasterStore server (pid {first.pid})", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        s3.put_object(Bucket="locked", Key="still", Body=b"serving")
        self.assertEqual(s3.get_object(Bucket="locked", Key="still")["Body"].read(), b"serving")
