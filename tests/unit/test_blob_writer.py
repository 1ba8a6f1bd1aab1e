"""
Tests for L{fasterstore.storage.writer}: streaming a blob into segments.
"""

from __future__ import annotations

import errno
import hashlib
import random
from typing import Any, List, Optional, Sequence, Tuple, Union

import blake3
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.checksums import ALGORITHMS, Digests
from fasterstore.storage import dropbehind, segments
from fasterstore.storage.blob import WrittenBlob
from fasterstore.storage.records import recordLength
from fasterstore.storage.segments import SegmentStore
from fasterstore.storage.writer import BlobWriter
from fasterstore.threads import ImmediateRunner
from tests.unit.test_segments import ManualRunner, payloadOf

MiB = 1 << 20


def expectedDigests(data: bytes, algorithms: Tuple[str, ...] = ()) -> dict:
    d = Digests(algorithms)
    d.update(data)
    return d.result()


def noSpace(fd: int, buffers: object, offset: int) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


class WriterTestCase(SynchronousTestCase):
    """A store in a fresh directory."""

    def makeStore(self, runner: Any = None, targetSize: int = 256 * MiB) -> SegmentStore:
        store = SegmentStore(FilePath(self.mktemp()), runner or ImmediateRunner(), targetSize)
        self.addCleanup(store.close)
        return store

    def writeAll(
        self, writer: BlobWriter, chunks: Sequence[Union[bytes, bytearray, memoryview]]
    ) -> WrittenBlob:
        for chunk in chunks:
            writer.write(chunk)
        return self.successResultOf(writer.finish())

    def readBack(self, store: SegmentStore, blob: WrittenBlob, start: int = 0,
                 end: Optional[int] = None) -> bytes:
        end = blob.size if end is None else end
        d = store.readRange(blob.extents, start, end)
        if isinstance(store.runner, ManualRunner):
            store.runner.runAll()
        return self.successResultOf(d)


class BasicTests(WriterTestCase):
    """Sizes, extents and digests."""

    def test_empty(self) -> None:
        """A zero-byte blob has no extents and the digests of b''."""
        store = self.makeStore()
        blob = self.writeAll(store.openWriter(["crc32c"]), [])
        self.assertEqual(blob, WrittenBlob(0, (), expectedDigests(b"", ("crc32c",))))
        self.assertEqual(blob.digests["md5"], hashlib.md5(b"").digest())
        self.assertEqual(self.readBack(store, blob), b"")

    def test_emptyWrites(self) -> None:
        """Writing b'' is harmless."""
        store = self.makeStore()
        blob = self.writeAll(store.openWriter(), [b"", b"a", b""])
        self.assertEqual(blob.size, 1)
        self.assertEqual(len(blob.extents), 1)

    def test_small(self) -> None:
        """A small blob is one record, with every requested digest."""
        store = self.makeStore()
        blob = self.writeAll(BlobWriter(store, store.runner, ALGORITHMS), [b"hello ", b"world"])
        self.assertEqual(blob.size, 11)
        self.assertEqual(len(blob.extents), 1)
        self.assertEqual(blob.digests, expectedDigests(b"hello world", ALGORITHMS))
        self.assertEqual(blob.contentAddress, blake3.blake3(b"hello world").hexdigest())
        self.assertEqual(self.readBack(store, blob), b"hello world")

    def test_recordBoundaries(self) -> None:
        """Records are cut at exactly 1 MiB; the tail is the last record."""
        store = self.makeStore()
        for size, lengths in [
            (MiB, [MiB]),
            (MiB + 1, [MiB, 1]),
            (3 * MiB + MiB // 2, [MiB, MiB, MiB, MiB // 2]),
        ]:
            data = payloadOf(size, size % 97)
            blob = self.writeAll(store.openWriter(), [data])
            self.assertEqual([e.length for e in blob.extents], lengths)
            self.assertEqual(blob.digests, expectedDigests(data))
            self.assertEqual(self.readBack(store, blob), data)

    def test_bufferTypes(self) -> None:
        """bytearray and memoryview chunks are accepted."""
        store = self.makeStore()
        blob = self.writeAll(store.openWriter(), [bytearray(b"ab"), memoryview(b"cd")])
        self.assertEqual(self.readBack(store, blob), b"abcd")

    def test_misuse(self) -> None:
        """write() after finish() and a second finish() are programming errors."""
        store = self.makeStore()
        writer = store.openWriter()
        self.successResultOf(writer.finish())
        self.assertRaises(RuntimeError, writer.write, b"x")
        self.assertRaises(RuntimeError, writer.finish)

    @settings(max_examples=25, deadline=None)
    @given(
        st.lists(st.integers(0, 400_000), max_size=12),
        st.data(),
    )
    def test_roundTrip(self, sizes: List[int], data: st.DataObject) -> None:
        """
        Whatever the chunking, the blob reads back whole and in any range,
        and its digests are those of the whole stream.
        """
        store = self.makeStore(targetSize=data.draw(st.sampled_from([MiB, 3 * MiB, 256 * MiB])))
        chunks = [payloadOf(size, i) for i, size in enumerate(sizes)]
        whole = b"".join(chunks)
        blob = self.writeAll(store.openWriter(["sha256", "crc64nvme"]), chunks)
        self.assertEqual(blob.size, len(whole))
        self.assertEqual(blob.digests, expectedDigests(whole, ("sha256", "crc64nvme")))
        self.assertEqual(self.readBack(store, blob), whole)
        start = data.draw(st.integers(0, len(whole)))
        end = data.draw(st.integers(start, len(whole)))
        self.assertEqual(self.readBack(store, blob, start, end), whole[start:end])


class BackpressureTests(WriterTestCase):
    """Two lanes, two records in them; memory bounded by about three records."""

    def test_pauseAndResume(self) -> None:
        """
        With a record in the lanes and a full one buffered, write() returns
        a Deferred that fires once the write lane takes the buffered one.
        """
        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter()
        chunk = bytes(64 * 1024)
        accepted = 0
        result = None
        while result is None:
            result = writer.write(chunk)
            accepted += len(chunk)
            self.assertLessEqual(len(runner.jobs), 2, "one job per lane")
        self.assertEqual(accepted, 2 * MiB)
        self.assertEqual([job[1].__name__ for job in runner.jobs], ["_hashParts", "_writeRecord"])
        self.assertNoResult(result)
        runner.runOne(1)  # the first record's write: the next one may go in
        self.assertIsNone(self.successResultOf(result))
        self.assertEqual(len(runner.jobs), 2)
        d = writer.finish()
        runner.runAll()
        blob = self.successResultOf(d)
        self.assertEqual(blob.size, 2 * MiB)
        self.assertEqual(blob.digests["md5"], hashlib.md5(bytes(2 * MiB)).digest())

    def test_lanesInOrder(self) -> None:
        """
        The write lane may run ahead of the md5 lane by one record, no more;
        whatever order the pool runs the jobs in, each lane sees the records
        in order and the digests are those of the whole blob.
        """
        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter(["sha256"])
        data = payloadOf(4 * MiB + 10)
        writer.write(data)
        finished = writer.finish()
        names = lambda: [job[1].__name__ for job in runner.jobs]  # noqa: E731
        self.assertEqual(names(), ["_hashParts", "_writeRecord"])
        runner.runOne(1)  # record 1 written; record 2 goes in behind md5 of record 1
        self.assertEqual(names(), ["_hashParts", "_writeRecord"])
        runner.runOne(1)  # record 2 written; two records still in the md5 lane
        self.assertEqual(names(), ["_hashParts"])
        runner.runOne(0)  # md5 of record 1: record 3 may go in
        self.assertEqual(names(), ["_hashParts", "_writeRecord"])
        runner.runAll()
        blob = self.successResultOf(finished)
        self.assertEqual(blob.digests, expectedDigests(data, ("sha256",)))
        self.assertEqual(self.readBack(store, blob), data)

    def test_boundedMemory(self) -> None:
        """
        A caller honouring the Deferreds never has more than three records
        (plus one chunk) accepted but not yet through both lanes.
        """
        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter()
        chunk = payloadOf(100_000)
        rng = random.Random(4)
        written = 0
        jobsRun = 0
        for _ in range(100):
            d = writer.write(chunk)
            written += len(chunk)
            # Jobs run first in, first out: two of them finish a record.
            self.assertLessEqual(written - (jobsRun // 2) * MiB, 3 * MiB + len(chunk))
            while d is not None and not d.called:
                runner.runOne()
                jobsRun += 1
            if runner.jobs and rng.random() < 0.3:
                runner.runOne()
                jobsRun += 1
        finished = writer.finish()
        runner.runAll()
        blob = self.successResultOf(finished)
        self.assertEqual(self.readBack(store, blob), chunk * 100)

    def test_hugeWrite(self) -> None:
        """One write bigger than a record is accepted and cut up."""
        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter()
        data = payloadOf(5 * MiB + 3)
        d = writer.write(data)
        assert d is not None
        finished = writer.finish()
        runner.runAll()
        self.assertTrue(d.called)
        blob = self.successResultOf(finished)
        self.assertEqual(len(blob.extents), 6)
        self.assertEqual(self.readBack(store, blob), data)


class FailureTests(WriterTestCase):
    """Write errors and aborts."""

    def test_writeErrorFailsFinish(self) -> None:
        """ENOSPC while flushing fails finish() with that error."""
        store = self.makeStore()
        writer = store.openWriter()
        self.patch(segments.os, "pwritev", noSpace)
        writer.write(bytes(MiB + 5))
        self.assertIsNone(writer.write(b"dropped"))
        failure = self.failureResultOf(writer.finish(), OSError)
        self.assertEqual(failure.value.errno, errno.ENOSPC)

    def test_errorReleasesWaiters(self) -> None:
        """A paused caller is resumed (not errbacked) when a flush fails."""
        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter()
        writer.write(bytes(MiB))
        paused = writer.write(bytes(MiB))
        assert paused is not None
        self.patch(segments.os, "pwritev", noSpace)
        runner.runAll()
        self.assertIsNone(self.successResultOf(paused))
        self.assertEqual(runner.jobs, [])
        self.failureResultOf(writer.finish(), OSError)

    def test_errorDuringFinish(self) -> None:
        """The tail's write failing fails the pending finish()."""
        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter()
        writer.write(b"tail")
        self.patch(segments.os, "pwritev", noSpace)
        d = writer.finish()
        runner.runAll()
        self.failureResultOf(d, OSError)

    def test_smallTailInlineFullRecordsInPool(self) -> None:
        """
        A blob of one record of at most INLINE_LIMIT bytes is hashed and
        written at once, on the calling thread; bigger records take a job in
        each lane of the runner (the thread pool), and a small tail behind
        them is hashed and written on the calling thread in its turn.
        """
        from fasterstore.storage.writer import INLINE_LIMIT

        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter()
        writer.write(b"s" * INLINE_LIMIT)
        self.assertEqual(self.successResultOf(writer.finish()).size, INLINE_LIMIT)
        self.assertEqual(runner.jobs, [])
        writer = store.openWriter()
        writer.write(bytes(MiB) + b"x" * INLINE_LIMIT)
        d = writer.finish()
        self.assertEqual(len(runner.jobs), 2)
        self.assertNoResult(d)
        runner.runAll()
        blob = self.successResultOf(d)
        self.assertEqual([e.length for e in blob.extents], [MiB, INLINE_LIMIT])
        self.assertEqual(blob.digests, expectedDigests(bytes(MiB) + b"x" * INLINE_LIMIT))
        writer = store.openWriter()
        writer.write(b"y" * (INLINE_LIMIT + 1))
        d = writer.finish()
        self.assertEqual(len(runner.jobs), 2)
        runner.runAll()
        self.assertEqual(self.successResultOf(d).size, INLINE_LIMIT + 1)

    def test_abortPendingFinish(self) -> None:
        """abort() fails a pending finish() with CancelledError."""
        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter()
        writer.write(bytes(MiB + 1))
        d = writer.finish()
        writer.abort()
        self.failureResultOf(d, CancelledError)
        runner.runAll()  # the record in flight lands, as garbage
        self.assertEqual(runner.jobs, [])

    def test_abortBeforeFinish(self) -> None:
        """After abort(), writes are dropped and finish() fails."""
        runner = ManualRunner()
        store = self.makeStore(runner)
        writer = store.openWriter()
        writer.write(bytes(MiB))
        paused = writer.write(bytes(MiB))
        assert paused is not None
        writer.abort()
        self.assertIsNone(self.successResultOf(paused))
        self.assertIsNone(writer.write(b"more"))
        runner.runAll()
        self.failureResultOf(writer.finish(), CancelledError)
        writer.abort()

    def test_storeClosed(self) -> None:
        """Writing to a closed store fails finish() rather than raising from write()."""
        store = self.makeStore()
        writer = store.openWriter()
        self.successResultOf(store.close())
        self.assertIsNone(writer.write(b"x"))
        self.failureResultOf(writer.finish(), segments.StoreClosed)


class ConcurrentWritersTests(WriterTestCase):
    """Many uploads at once never mix their bytes."""

    def interleave(self, runner: Any, seed: int) -> None:
        rng = random.Random(seed)
        store = self.makeStore(runner, targetSize=3 * MiB)
        writers = [store.openWriter(["crc32"]) for _ in range(16)]
        remaining = [rng.randrange(0, 3 * MiB) for _ in writers]
        remaining[0] = 0
        remaining[1] = MiB
        sent: List[List[bytes]] = [[] for _ in writers]
        waiting: List[Optional["Deferred[None]"]] = [None for _ in writers]
        while any(remaining) or (isinstance(runner, ManualRunner) and runner.jobs):
            if isinstance(runner, ManualRunner) and runner.jobs and rng.random() < 0.4:
                runner.runOne(rng.randrange(len(runner.jobs)))
                continue
            i = rng.randrange(len(writers))
            paused = waiting[i]
            if not remaining[i] or (paused is not None and not paused.called):
                continue
            size = min(remaining[i], rng.choice([1, 100, 4096, 65536, 300_000]))
            chunk = payloadOf(size, rng.randrange(256))
            sent[i].append(chunk)
            remaining[i] -= size
            waiting[i] = writers[i].write(chunk)
        finishing = [w.finish() for w in writers]
        if isinstance(runner, ManualRunner):
            while runner.jobs:
                runner.runOne(rng.randrange(len(runner.jobs)))
        blobs = [self.successResultOf(d) for d in finishing]
        self.assertGreater(store.activeSegment, 3)
        for blob, chunks in zip(blobs, sent):
            whole = b"".join(chunks)
            self.assertEqual(blob.size, len(whole))
            self.assertEqual(blob.digests, expectedDigests(whole, ("crc32",)))
            self.assertEqual(self.readBack(store, blob), whole)
            for _ in range(5):
                start = rng.randrange(0, len(whole) + 1)
                end = rng.randrange(start, len(whole) + 1)
                self.assertEqual(self.readBack(store, blob, start, end), whole[start:end])

    def test_sixteenWritersShuffledCompletion(self) -> None:
        """
        16 writers interleaving writes of random sizes, flushes completing in
        random order, each blob reads back whole and in random ranges.
        """
        self.interleave(ManualRunner(), 1)
        self.interleave(ManualRunner(), 2)

    def test_sixteenWritersImmediate(self) -> None:
        """The same with every flush completing at once."""
        self.interleave(ImmediateRunner(), 3)


class DropBehindTests(WriterTestCase):
    """
    Large records start their writeback when written; a few records later
    their pages are waited for and dropped (L{fasterstore.storage.dropbehind}).
    """

    def setUp(self) -> None:
        self.calls: List[Tuple[str, int, int, int]] = []

        def syncFileRange(fd: int, offset: int, length: int, flags: int) -> int:
            self.calls.append(("sync", offset, length, flags))
            return 0

        def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
            self.calls.append(("fadvise", offset, length, advice))

        self.patch(dropbehind, "syncFileRange", syncFileRange)
        self.patch(dropbehind.os, "posix_fadvise", fadvise)

    def write(self, store: SegmentStore, data: bytes) -> WrittenBlob:
        writer = store.openWriter()
        blob = self.writeAll(writer, [data[i : i + 100_000] for i in range(0, len(data), 100_000)])
        self.assertEqual(self.readBack(store, blob), data)
        return blob

    def test_largeRecords(self) -> None:
        """
        Every full record starts its writeback; all but the last WINDOW are
        then waited for and dropped, each whole record once, in order.
        """
        store = self.makeStore()
        blob = self.write(store, payloadOf(7 * MiB + 5))
        full = [e for e in blob.extents if e.length >= dropbehind.DROP_MIN]
        self.assertEqual(len(full), 7)
        spans = [(e.offset, recordLength(e.length)) for e in full]
        started = [(o, n) for kind, o, n, flags in self.calls if kind == "sync" and flags == dropbehind.WRITE]
        self.assertEqual(started, spans)
        waited = [(o, n) for kind, o, n, flags in self.calls if kind == "sync" and flags != dropbehind.WRITE]
        dropped = [(o, n) for kind, o, n, advice in self.calls if kind == "fadvise"]
        self.assertEqual(waited, spans[: 7 - dropbehind.WINDOW])
        self.assertEqual(dropped, spans[: 7 - dropbehind.WINDOW])
        self.assertEqual(
            {flags for kind, _, _, flags in self.calls if kind == "sync" and flags != dropbehind.WRITE},
            {dropbehind.WAIT_BEFORE | dropbehind.WRITE | dropbehind.WAIT_AFTER},
        )

    def test_smallRecordsStay(self) -> None:
        """Records under DROP_MIN (small objects, tails) neither start writeback nor leave the cache."""
        store = self.makeStore()
        self.write(store, payloadOf(dropbehind.DROP_MIN - 1))
        self.assertEqual(self.calls, [])

    def test_noFsync(self) -> None:
        """A store that does not fsync leaves writeback to the kernel."""
        store = self.makeStore()
        store.fsync = False
        self.write(store, payloadOf(6 * MiB))
        self.assertEqual(self.calls, [])

    def test_elsewhere(self) -> None:
        """Without sync_file_range (not Linux) nothing is attempted."""
        self.patch(dropbehind, "syncFileRange", None)
        store = self.makeStore()
        self.write(store, payloadOf(6 * MiB))
        self.assertEqual(self.calls, [])
