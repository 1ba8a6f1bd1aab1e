"""
Free space on a drive, and the reserve data writes may not eat.

A full disk must fail the write at hand, not wedge the server: L{SpaceGuard}
refuses an upload (507 InsufficientStorage) before its body is read when the
drive could not take it without dipping into the reserve.  The reserve is
what keeps the metadata database, deletes and compaction (which must copy a
segment's live records before it can free the segment) working on a drive
that data has filled.

The free space is C{statvfs} (what an unprivileged user may still write,
C{f_bavail}), asked at every check: a call costs well under a microsecond,
and every worker on the data directory then sees a drive filled from outside
(or by another worker) at once, not one cache period later.  Less what the
guard admitted in the last L{ADMITTED_SECONDS} of the injected clock: a
burst of uploads is not admitted against free bytes none of them has
written yet (what they have written is counted twice, which errs on the
safe side for at most that long).  A drive whose C{statvfs} fails (EIO) is
"unknown": writes are allowed (the write itself will tell), and the failure
is logged once.
Tests: tests/unit/test_space.py.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fasterstore.errors import S3Error

log = Logger()

#: Seconds the bytes admitted count against the free space.
ADMITTED_SECONDS = 1.0


@attrs.define(eq=False)
class SpaceGuard:
    """
    Admits data writes while the drive has room for them and the reserve.

    @ivar path: a directory on the drive (the one segments go to).
    @ivar clock: for the age of the cached answer.
    @ivar reserve: bytes data writes must leave free.
    @ivar statvfs: C{os.statvfs}, or a stand-in for tests.
    """

    path: str
    clock: IReactorTime
    reserve: int
    statvfs: Callable[[str], Any] = os.statvfs

    _admittedSince: Optional[float] = attrs.field(init=False, default=None)
    _admitted: int = attrs.field(init=False, default=0)
    _statFailing: bool = attrs.field(init=False, default=False)
    _wasFull: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        if self.reserve < 0:
            raise ValueError(f"reserve must be zero or more bytes, not {self.reserve}")

    def free(self) -> Optional[int]:
        """Bytes an unprivileged user may still write on the drive now; None when C{statvfs} fails (unknown)."""
        try:
            result = self.statvfs(self.path)
            free = int(result.f_bavail) * int(result.f_frsize)
        except OSError as e:
            if not self._statFailing:
                log.error(
                    "Cannot tell the free space of {path} ({error}); admitting writes until it can be",
                    path=self.path, error=e,
                )
            self._statFailing = True
            return None
        if self._statFailing:
            log.info("The free space of {path} can be read again", path=self.path)
            self._statFailing = False
        full = free < self.reserve
        if full and not self._wasFull:
            log.warn(
                "Drive {path} is full: {free} bytes free, below the reserve of {reserve}; refusing data writes",
                path=self.path, free=free, reserve=self.reserve,
            )
        elif self._wasFull and not full:
            log.info("Drive {path} has room again: {free} bytes free; accepting data writes", path=self.path, free=free)
        self._wasFull = full
        return free

    def check(self, length: int) -> None:
        """
        Admit a data write of C{length} bytes (0 when not declared: the
        reserve must still be free), or refuse it.

        @raise S3Error: C{InsufficientStorage} when it would leave less than
            the reserve free.
        """
        free = self.free()
        if free is None:
            return
        now = self.clock.seconds()
        since = self._admittedSince
        if since is None or now - since >= ADMITTED_SECONDS or now < since:
            self._admittedSince, self._admitted = now, 0
        if free - self._admitted - length < self.reserve:
            raise S3Error("InsufficientStorage")
        self._admitted += length

    def reason(self) -> Optional[str]:
        """Why data writes are refused, for readiness; None while they are not."""
        free = self.free()
        if free is None or free >= self.reserve:
            return None
        return f"disk full: {free} bytes free, reserve {self.reserve}"
