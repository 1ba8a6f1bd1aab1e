"""
The blob writer alone: 256 MiB fed in 64 KiB chunks (the size twisted
reads), backpressure honoured, through a real thread pool into a
fresh segment store with fsync on, four rounds; prints MB/s to the end
of ``finish()`` (written, not yet synced) and how long each lane's jobs
ran (md5; blake3, checksums and the append).

    .venv/bin/python benchmarks/blobwriter.py [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, reactor  # noqa: E402
from twisted.python.filepath import FilePath  # noqa: E402
from twisted.python.threadpool import ThreadPool  # noqa: E402

from fasterstore.storage import segments, writer  # noqa: E402
from fasterstore.storage.segments import SegmentStore  # noqa: E402
from fasterstore.threads import PoolRunner  # noqa: E402

CHUNK = 64 << 10
SIZE = 256 << 20


def timed(function: Any, busy: dict[str, float], lane: str) -> Any:
    """C{function}, adding its running time to C{busy[lane]}."""

    def run(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            busy[lane] += time.perf_counter() - started

    return run


async def rounds(store: SegmentStore, busy: dict[str, float]) -> None:
    chunk = os.urandom(CHUNK)
    for _ in range(4):
        busy.update(md5=0.0, write=0.0)
        blobWriter = store.openWriter(["crc64nvme"])
        started = time.perf_counter()
        for _ in range(SIZE // CHUNK):
            wait = blobWriter.write(chunk)
            if wait is not None:
                await wait
        blob = await blobWriter.finish()
        elapsed = time.perf_counter() - started
        blob.release()
        print("%4.0f MB/s; md5 lane busy %.2f s, write lane busy %.2f s, of %.2f s"
              % (SIZE / 1e6 / elapsed, busy["md5"], busy["write"], elapsed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=None, help="where the segments go (default: the system temp dir)")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="fasterstore-blobwriter-", dir=args.dir)
    busy = {"md5": 0.0, "write": 0.0}
    writer._hashParts = timed(writer._hashParts, busy, "md5")  # type: ignore[assignment]
    segments._writeRecord = timed(segments._writeRecord, busy, "write")  # type: ignore[assignment]
    pool = ThreadPool(minthreads=1, maxthreads=8)
    pool.start()
    store = SegmentStore(FilePath(directory), PoolRunner(reactor, pool), 1 << 30)

    async def everything() -> None:
        try:
            await rounds(store, busy)
        finally:
            store.close()
            pool.stop()
            shutil.rmtree(directory, ignore_errors=True)
            reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: defer.ensureDeferred(everything()))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
