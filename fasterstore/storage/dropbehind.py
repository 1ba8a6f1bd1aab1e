"""
Large uploads written through the page cache without filling it.

A large upload's records are written once and, if read at all, read much
later; kept in the page cache they push out what is read (small objects,
the metadata store) and every new page must be found first, which on a
virtual machine whose free memory goes back to its host costs as much as
writing it (measured here: 300 MB/s into fresh page-cache pages against
2.4-4.9 GB/s into pages just freed; docs/benchmarks.md, "Large objects").
So each large record starts its own writeback as soon as it is written,
and once a few records later that writeback is done its pages are
dropped: the next records reuse them, the final fsync that acknowledges
the upload waits for the last few records only, and the writer is paced by
the disk instead of by a writeback storm at the end.

Linux only (C{sync_file_range(2)} through ctypes, Python's os module has
none); elsewhere, and on any error, nothing is done: both calls are hints,
and the fsync before every acknowledgement reports real errors.
Tests: tests/unit/test_blob_writer.py (DropBehindTests).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Callable, Optional, Sequence, Tuple

#: Records at least this big are written back at once and dropped later.
DROP_MIN = 512 * 1024

#: Records of one upload whose writeback may be in flight before the oldest
#: is waited for and dropped.
WINDOW = 4

#: C{sync_file_range(2)} flags.
WAIT_BEFORE = 1
WRITE = 2
WAIT_AFTER = 4

#: A file range: descriptor, offset, length.
Range = Tuple[int, int, int]


def _libcSyncFileRange() -> Optional[Callable[[int, int, int, int], int]]:
    """Linux's C{sync_file_range(2)}, or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


syncFileRange = _libcSyncFileRange()


def startWriteback(fd: int, offset: int, length: int) -> None:
    """Start writing C{[offset, offset + length)} of C{fd} to the disk; wait for nothing."""
    if syncFileRange is not None:
        syncFileRange(fd, offset, length, WRITE)


def drop(ranges: Sequence[Range]) -> None:
    """Wait until these ranges are on the disk, then let their pages go."""
    for fd, offset, length in ranges:
        if syncFileRange is not None:
            syncFileRange(fd, offset, length, WAIT_BEFORE | WRITE | WAIT_AFTER)
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
