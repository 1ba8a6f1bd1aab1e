"""
Free space on a drive, and the reserve data writes may not eat.

A full disk must fail the write at hand, not wedge the server: L{SpaceGuard}
refuses an upload (507 InsufficientStorage) before its body is read when the
drive could not take it without dipping into the reserve.  The reserve is
what keeps the metadata database, deletes and compaction (which must copy a
segment's live records before it can free the segment) working on a drive
that data has filled.

The free space is C{statvfs} (what an unprivileged user may still write,
C{f_bavail}), asked at most once a second of the injected clock and less what
the guard admitted since: a burst of uploads within one second is not
admitted against the same stale figure.  After a write failed with ENOSPC,
L{SpaceGuard.refresh} makes the next check ask again.  A drive whose
C{statvfs} fails (EIO) is "unknown": writes are allowed (the write itself
will tell), and the failure is logged once.
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

#: Seconds a C{statvfs} answer is trusted.
CACHE_SECONDS = 1.0


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

    _free: Optional[int] = attrs.field(init=False, default=None)
    _statAt: Optional[float] = attrs.field(init=False, default=None)
    _admitted: int = attrs.field(init=False, default=0)
    _statFailing: bool = attrs.field(init=False, default=False)
    _wasFull: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        if self.reserve < 0:
            raise ValueError(f"reserve must be zero or more bytes, not {self.reserve}")

    def free(self) -> Optional[int]:
        """
        Bytes an unprivileged user may still write on the drive, at most
        L{CACHE_SECONDS} old; None when C{statvfs} fails (unknown).
        """
        now = self.clock.seconds()
        if self._statAt is None or now - self._statAt >= CACHE_SECONDS or now < self._statAt:
            self._stat(now)
        return self._free

    def refresh(self) -> None:
        """Ask the drive again at the next call (after an ENOSPC, or for readiness)."""
        self._statAt = None

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
        if free - self._admitted - length < self.reserve:
            raise S3Error("InsufficientStorage")
        self._admitted += length

    @property
    def full(self) -> bool:
        """Whether less than the reserve is free (False when unknown)."""
        free = self.free()
        return free is not None and free < self.reserve

    def reason(self) -> Optional[str]:
        """Why data writes are refused, for readiness; None while they are not."""
        free = self.free()
        if free is None or free >= self.reserve:
            return None
        return f"disk full: {free} bytes free, reserve {self.reserve}"

    def _stat(self, now: float) -> None:
        self._statAt = now
        self._admitted = 0
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
            self._free = None
            return
        if self._statFailing:
            log.info("The free space of {path} can be read again", path=self.path)
            self._statFailing = False
        self._free = free
        full = free < self.reserve
        if full and not self._wasFull:
            log.warn(
                "Drive {path} is full: {free} bytes free, below the reserve of {reserve}; refusing data writes",
                path=self.path, free=free, reserve=self.reserve,
            )
        elif self._wasFull and not full:
            log.info("Drive {path} has room again: {free} bytes free; accepting data writes", path=self.path, free=free)
        self._wasFull = full
