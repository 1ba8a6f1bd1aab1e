"""Tests for L{fasterstore.durable}."""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from fasterstore import durable


class SyncDirectoryTests(SynchronousTestCase):
    """L{durable.syncDirectory} fsyncs the directory and closes what it opened."""

    def test_fsyncsTheDirectory(self) -> None:
        """The descriptor fsynced is the directory's, and it is closed after."""
        path = self.mktemp()
        os.mkdir(path)
        synced = []
        realFsync = os.fsync

        def recordingFsync(fd: int) -> None:
            synced.append(os.fstat(fd).st_ino)
            realFsync(fd)

        self.patch(durable.os, "fsync", recordingFsync)
        before = len(os.listdir("/proc/self/fd"))
        durable.syncDirectory(path)
        self.assertEqual(synced, [os.stat(path).st_ino])
        self.assertEqual(len(os.listdir("/proc/self/fd")), before)

    def test_notADirectory(self) -> None:
        """A file is refused rather than silently fsynced as if it were one."""
        path = self.mktemp()
        open(path, "w").close()
        self.assertRaises(NotADirectoryError, durable.syncDirectory, path)
