"""
What this machine's page cache costs a streaming writer: a loop of 1 MiB
``pwrite`` calls (256 MiB) into fresh files and into one file truncated and
rewritten (pages just freed), then one read of a file after its pages were
dropped (``POSIX_FADV_DONTNEED``) and one while cached.  The figures behind
``fasterstore/storage/dropbehind.py``.

    .venv/bin/python benchmarks/pagecache.py [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

SIZE = 256 << 20
PIECE = 1 << 20


def writeLoop(path: str, buffer: bytes) -> tuple[float, float]:
    """Seconds to pwrite SIZE bytes to C{path}, then to fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        for offset in range(0, SIZE, PIECE):
            os.pwrite(fd, buffer, offset)
        written = time.perf_counter()
        os.fsync(fd)
        return written - started, time.perf_counter() - written
    finally:
        os.close(fd)


def readLoop(path: str) -> float:
    """Seconds to pread the whole of C{path} in 1 MiB pieces."""
    fd = os.open(path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        offset = 0
        while True:
            data = os.pread(fd, PIECE, offset)
            if not data:
                return time.perf_counter() - started
            offset += len(data)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=None, help="where to write (default: the system temp dir)")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="fasterstore-pagecache-", dir=args.dir)
    buffer = os.urandom(PIECE)
    megabytes = SIZE / 1e6
    try:
        for i in range(3):
            write, sync = writeLoop(os.path.join(directory, "fresh%d" % i), buffer)
            print("fresh file:  pwrite %4.0f MB/s, fsync %.3f s" % (megabytes / write, sync))
        for i in range(3):
            write, sync = writeLoop(os.path.join(directory, "fresh0"), buffer)
            print("rewritten:   pwrite %4.0f MB/s, fsync %.3f s" % (megabytes / write, sync))
        path = os.path.join(directory, "fresh1")
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        print("cold read:   %4.0f MB/s" % (megabytes / readLoop(path)))
        print("warm read:   %4.0f MB/s" % (megabytes / readLoop(path)))
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


if __name__ == "__main__":
    main()
