"""
The real server keeps customer data private (issue 7, item 8): started with
explicit keys under umask 022 (and 0), everything it creates in its data
directory is 0700/0600 after PUTs and a segment rotation (the metadata
database and SQLite's -wal and -shm files included), and after a clean stop; and a data or drive directory that
already exists readable by others is warned about at start, not changed.
Fixture: tests/integration/harness.py.
"""

from __future__ import annotations

import os
import stat
from typing import Dict

from tests.integration.harness import Server, ServerTestCase, uniqueBody


def modesUnder(root: str) -> Dict[str, str]:
    """The octal modes of C{root} (as C{"."}) and of everything under it."""
    modes = {".": oct(stat.S_IMODE(os.lstat(root).st_mode))}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            modes[os.path.relpath(path, root)] = oct(stat.S_IMODE(os.lstat(path).st_mode))
    return modes


class FilePermissionTests(ServerTestCase):
    """File and directory modes of a real C{twistd -n fasterstore}."""

    def setUmask(self, mask: int) -> None:
        """Run the rest of this test (and the servers it spawns) under C{mask}."""
        previous = os.umask(mask)
        self.addCleanup(os.umask, previous)

    def server(self, *extraArgs: str) -> Server:
        """A private server, not started yet; killed at cleanup."""
        server = Server(self.mktemp(), extraArgs=extraArgs)
        self._use(server)
        self.addCleanup(server.kill)
        return server

    def assertPrivateAfterUse(self, mask: int) -> None:
        """Under C{mask}, a server on a new data directory creates nothing but 0700 directories and 0600 files."""
        self.setUmask(mask)
        server = self.server("--segment-size", "1MiB")
        server.start()
        s3 = server.client()
        bucket = self.bucketName("modes")
        s3.create_bucket(Bucket=bucket)
        for i in range(3):
            s3.put_object(Bucket=bucket, Key=f"k{i}", Body=uniqueBody(700 * 1024, f"k{i}"))
        running = modesUnder(server.dataDir)
        database = os.path.join("meta", "metadata.sqlite")
        for name in (database, database + "-wal", database + "-shm"):
            self.assertIn(name, running)
        segments = [name for name in running if name.endswith(".seg")]
        self.assertGreater(len(segments), 1, f"no segment rotation: {running}")
        server.stop()
        for modes in (running, modesUnder(server.dataDir)):
            expected = {
                name: oct(0o700 if os.path.isdir(os.path.join(server.dataDir, name)) else 0o600) for name in modes
            }
            self.assertEqual(modes, expected)
        self.assertNotIn("chmod 700", server.logSinceStart())

    def test_privateUnderUmask022(self) -> None:
        """Under the usual umask 022: 0700 directories and 0600 files only."""
        self.assertPrivateAfterUse(0o022)

    def test_privateUnderUmask0(self) -> None:
        """Under umask 0, which hides nothing: still 0700 directories and 0600 files only."""
        self.assertPrivateAfterUse(0o000)

    def test_sharedDirectoriesWarned(self) -> None:
        """
        A pre-existing 0755 data directory and 0750 drive are used as they
        are, and the start log names each, its mode and C{chmod 700 PATH}.
        """
        self.setUmask(0o022)
        drive = os.path.abspath(self.mktemp())
        server = self.server("--drive", drive)
        os.makedirs(server.dataDir)
        os.chmod(server.dataDir, 0o755)
        os.makedirs(drive)
        os.chmod(drive, 0o750)
        server.start()
        log = server.logSinceStart()
        for path, mode in ((server.dataDir, "0o755"), (drive, "0o750")):
            lines = [line for line in log.splitlines() if f"chmod 700 {path}" in line]
            self.assertEqual(len(lines), 1, log)
            self.assertIn(mode, lines[0])
        self.assertEqual(stat.S_IMODE(os.stat(server.dataDir).st_mode), 0o755)
        self.assertEqual(stat.S_IMODE(os.stat(drive).st_mode), 0o750)

    def test_privateDirectoryQuiet(self) -> None:
        """A pre-existing 0700 data directory is not warned about."""
        self.setUmask(0o022)
        server = self.server()
        os.makedirs(server.dataDir)
        os.chmod(server.dataDir, 0o700)
        server.start()
        self.assertNotIn("chmod 700", server.logSinceStart())
