"""
Tests for L{fasterstore.storage.space}: the free-space guard, on a clock
and an injected C{statvfs}.
"""

from __future__ import annotations

import errno
import os
from typing import List, Optional

from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.storage.space import ADMITTED_SECONDS, SpaceGuard

MiB = 1024 * 1024


class FakeDrive:
    """A C{statvfs} stand-in: C{free} bytes in 4 KiB fragments, or an error."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.error: Optional[OSError] = None
        self.calls: List[str] = []

    def statvfs(self, path: str) -> os.statvfs_result:
        self.calls.append(path)
        if self.error is not None:
            raise self.error
        blocks = self.free // 4096
        # f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail, f_flag, f_namemax
        return os.statvfs_result((4096, 4096, 1 << 20, blocks + 100, blocks, 1000, 1000, 1000, 0, 255))


class SpaceGuardTests(SynchronousTestCase):
    """L{SpaceGuard}: the drive asked each time, the reserve, admitted bytes and a failing statvfs."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.drive = FakeDrive(100 * MiB)
        self.guard = SpaceGuard("/drive/segments", self.clock, 10 * MiB, statvfs=self.drive.statvfs)

    def test_freeIsAvailableToUsers(self) -> None:
        """free() is f_bavail * f_frsize of the guarded path, not f_bfree (root's share is not ours)."""
        self.assertEqual(self.guard.free(), 100 * MiB)
        self.assertEqual(self.drive.calls, ["/drive/segments"])

    def test_askedEveryTime(self) -> None:
        """
        Every check asks the drive: a drive filled from outside, or by
        another worker on the data directory, refuses the next upload
        whatever the clock says.
        """
        self.guard.check(1)
        self.drive.free = 5 * MiB
        self.assertRaises(S3Error, self.guard.check, 1)
        self.assertEqual(self.guard.free(), 5 * MiB)
        self.assertEqual(len(self.drive.calls), 3)

    def test_checkKeepsTheReserve(self) -> None:
        """A write is admitted while it leaves at least the reserve free, refused with 507 past that."""
        self.guard.check(90 * MiB)
        self.clock.advance(ADMITTED_SECONDS)
        e = self.assertRaises(S3Error, self.guard.check, 90 * MiB + 1)
        self.assertEqual((e.code, e.status), ("InsufficientStorage", 507))

    def test_undeclaredLengthNeedsTheReserve(self) -> None:
        """check(0), for a body of unknown length, passes until less than the reserve is free."""
        self.drive.free = 10 * MiB
        self.guard.check(0)
        self.drive.free = 10 * MiB - 1
        self.assertRaises(S3Error, self.guard.check, 0)

    def test_admittedWritesCountForASecond(self) -> None:
        """
        Writes admitted within a second add up: a burst cannot overcommit
        free bytes none of it has written yet; a second later the drive's
        own figure (which by then shows what was written) is trusted alone.
        """
        self.guard.check(60 * MiB)
        self.assertRaises(S3Error, self.guard.check, 60 * MiB)
        self.guard.check(30 * MiB)
        self.clock.advance(ADMITTED_SECONDS - 0.01)
        self.assertRaises(S3Error, self.guard.check, 1)
        self.clock.advance(0.01)
        self.guard.check(60 * MiB)

    def test_zeroReserve(self) -> None:
        """With no reserve only what does not fit is refused."""
        guard = SpaceGuard("/d", self.clock, 0, statvfs=self.drive.statvfs)
        guard.check(100 * MiB)
        self.clock.advance(ADMITTED_SECONDS)
        self.assertRaises(S3Error, guard.check, 100 * MiB + 1)

    def test_negativeReserve(self) -> None:
        """A negative reserve is a programming error."""
        self.assertRaises(ValueError, SpaceGuard, "/d", self.clock, -1)

    def test_reason(self) -> None:
        """reason() describes a drive below its reserve, and clears as soon as space returns."""
        self.assertIsNone(self.guard.reason())
        self.drive.free = 4096
        self.assertEqual(self.guard.reason(), f"disk full: 4096 bytes free, reserve {10 * MiB}")
        self.drive.free = 20 * MiB
        self.assertIsNone(self.guard.reason())

    def test_failingStatvfsAllows(self) -> None:
        """
        A statvfs that fails (EIO) makes the space unknown: writes are
        admitted, the drive is not reported full, the failure is logged once
        (and its recovery once).
        """
        events: List[LogEvent] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.drive.error = OSError(errno.EIO, "Input/output error")
        self.assertIsNone(self.guard.free())
        self.guard.check(10 * 1024 * MiB)
        self.assertIsNone(self.guard.reason())
        for _ in range(3):
            self.guard.check(0)
        self.assertEqual(len(self.drive.calls), 6)
        failures = [e for e in events if "Cannot tell the free space" in e.get("log_format", "")]
        self.assertEqual(len(failures), 1)
        self.drive.error = None
        self.assertEqual(self.guard.free(), 100 * MiB)
        recovered = [e for e in events if "can be read again" in e.get("log_format", "")]
        self.assertEqual(len(recovered), 1)

    def test_fullnessLoggedOnChange(self) -> None:
        """Filling up and recovering are each logged once, not at every look."""
        events: List[LogEvent] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.drive.free = 1 * MiB
        for _ in range(3):
            self.guard.free()
        self.drive.free = 50 * MiB
        for _ in range(3):
            self.guard.free()
        formats = [e.get("log_format", "") for e in events]
        self.assertEqual(len([f for f in formats if "is full" in f]), 1)
        self.assertEqual(len([f for f in formats if "has room again" in f]), 1)
