"""
Tests for L{fasterstore.storage.segments}: the segment store.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable, Dict, List, Tuple, Union, cast

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import ILogObserver, Logger, LogEvent
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from fasterstore.metrics import Metrics
from fasterstore.storage import segments
from fasterstore.storage.blob import Extent
from fasterstore.storage.records import (
    BLOCK_SIZE,
    HEADER_SIZE,
    RECORD_PAYLOAD,
    encodeRecord,
    recordLength,
)
from fasterstore.storage.segments import CorruptionError, ExtentMap, SegmentStore, StoreClosed
from fasterstore.threads import ImmediateRunner
from tests.unit.test_files import UMASKS, assertPrivateTree, setUmask


REAL_FDATASYNC = segments._fdatasync
REAL_SYNC_DIRECTORY = segments.syncDirectory


@attrs.define
class ManualRunner:
    """
    A runner that queues work until the test runs it, in any order: the
    interleavings a thread pool could produce, made deterministic.
    """

    jobs: List[Tuple["Deferred[Any]", Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]] = (
        attrs.Factory(list)
    )

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> "Deferred[Any]":
        d: "Deferred[Any]" = Deferred()
        self.jobs.append((d, f, args, kwargs))
        return d

    def runOne(self, index: int = 0) -> None:
        """Run the queued job at C{index} and fire its Deferred."""
        d, f, args, kwargs = self.jobs.pop(index)
        try:
            result = f(*args, **kwargs)
        except BaseException:
            d.errback()
        else:
            d.callback(result)

    def runAll(self) -> None:
        """Run jobs, including ones queued meanwhile, until none are left."""
        while self.jobs:
            self.runOne()


def payloadOf(length: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ between seeds and positions."""
    unit = bytes((i * 131 + seed * 7 + 1) & 0xFF for i in range(251))
    return (unit * (length // 251 + 1))[:length]


def flipByte(path: FilePath[str], offset: int) -> None:
    """Corrupt one byte of a file, as a bad disk would."""
    with open(path.path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x40]))


class StoreTestCase(SynchronousTestCase):
    """Helpers to make stores in a fresh directory."""

    def setUp(self) -> None:
        self.root = FilePath(self.mktemp())
        self.root.makedirs()

    def store(self, **kwargs: Any) -> SegmentStore:
        kwargs.setdefault("runner", ImmediateRunner())
        store = SegmentStore(self.root, **kwargs)
        self.addCleanup(store.close)
        return store

    def append(self, store: SegmentStore, payload: bytes) -> Extent:
        return self.successResultOf(store.append(payload))


class LayoutTests(StoreTestCase):
    """Files and where records land in them."""

    def test_firstSegment(self) -> None:
        """A new store creates C{segments/00000001.seg}, empty."""
        store = self.store()
        path = self.root.child("segments").child("00000001.seg")
        self.assertTrue(path.exists())
        self.assertEqual(path.getsize(), 0)
        self.assertEqual(store.activeSegment, 1)
        self.assertEqual(store.segmentPath(1), path)

    def test_rootAsString(self) -> None:
        """The root may be given as a path string."""
        store = SegmentStore(self.root.path, ImmediateRunner())
        self.addCleanup(store.close)
        self.assertEqual(store.root, self.root)

    def test_recordsAreAppended(self) -> None:
        """Records go one after the other; the file holds header, payload, table."""
        store = self.store()
        a = self.append(store, b"hello")
        b = self.append(store, payloadOf(BLOCK_SIZE + 1))
        self.assertEqual(a, Extent(1, 0, 5))
        self.assertEqual(b, Extent(1, recordLength(5), BLOCK_SIZE + 1))
        header, table = encodeRecord(b"hello")
        content = store.segmentPath(1).getContent()
        self.assertEqual(content[: recordLength(5)], header + b"hello" + table)
        self.assertEqual(len(content), recordLength(5) + recordLength(BLOCK_SIZE + 1))

    def test_payloadLimits(self) -> None:
        """Empty and over-1-MiB payloads are refused."""
        store = self.store()
        self.assertRaises(ValueError, store.append, b"")
        self.assertRaises(ValueError, store.append, bytes(RECORD_PAYLOAD + 1))
        self.assertEqual(self.append(store, bytes(RECORD_PAYLOAD)).length, RECORD_PAYLOAD)

    def test_appendParts(self) -> None:
        """A record can be given in pieces; beforeWrite sees the whole payload."""
        store = self.store()
        seen: List[bytes] = []
        extent = self.successResultOf(
            store.appendParts([b"ab", memoryview(b"xcdx")[1:3], bytearray(b"e")], seen.append)
        )
        self.assertEqual(seen, [b"abcde"])
        self.assertEqual(self.successResultOf(store.readRange([extent], 0, 5)), b"abcde")

    def test_rotation(self) -> None:
        """
        A record that would take the active segment past targetSize starts
        a new one; older segments stay readable.
        """
        size = recordLength(1000)
        store = self.store(targetSize=2 * size + 10)
        extents = [self.append(store, payloadOf(1000, i)) for i in range(5)]
        self.assertEqual([e.segment for e in extents], [1, 1, 2, 2, 3])
        self.assertEqual([e.offset for e in extents], [0, size, 0, size, 0])
        for i, extent in enumerate(extents):
            self.assertEqual(
                self.successResultOf(store.readRange([extent], 0, 1000)), payloadOf(1000, i)
            )
        for n in (1, 2):
            self.assertEqual(store.segmentPath(n).getsize(), 2 * size)

    def test_oversizedRecord(self) -> None:
        """A record bigger than targetSize gets a segment of its own."""
        store = self.store(targetSize=100)
        extents = [self.append(store, payloadOf(500)) for _ in range(3)]
        self.assertEqual([(e.segment, e.offset) for e in extents], [(1, 0), (2, 0), (3, 0)])


class StartupTests(StoreTestCase):
    """Reopening a store: no scan, a new segment of its own."""

    def test_reopen(self) -> None:
        """A reopened store starts a new segment after the highest; the old ones still read."""
        first = self.store(targetSize=recordLength(100))
        a = self.append(first, payloadOf(100, 1))
        b = self.append(first, payloadOf(100, 2))
        self.successResultOf(first.close())
        second = self.store(targetSize=1 << 20)
        self.assertEqual(second.activeSegment, 3)
        c = self.append(second, payloadOf(100, 3))
        self.assertEqual(c, Extent(3, 0, 100))
        self.assertEqual(self.successResultOf(second.readRange([a, b, c], 0, 300)),
                         payloadOf(100, 1) + payloadOf(100, 2) + payloadOf(100, 3))

    def test_garbageAfterCrash(self) -> None:
        """
        A torn record left by a crash is never parsed nor appended after:
        new records go to a new segment and old ones still read.
        """
        first = self.store()
        a = self.append(first, b"committed")
        self.successResultOf(first.close())
        with open(first.segmentPath(1).path, "ab") as f:
            f.write(b"FSR1 torn record...")
        second = self.store()
        b = self.append(second, b"after")
        self.assertEqual(b, Extent(2, 0, 5))
        self.assertEqual(self.successResultOf(second.readRange([a, b], 0, 14)), b"committedafter")

    def test_twoProcessesTwoSegments(self) -> None:
        """
        Two stores on one directory (two worker processes) never share an
        active segment, even when one takes the number the other would
        have: each skips to the next free one.
        """
        one = self.store()
        two = self.store()
        self.assertNotEqual(one.activeSegment, two.activeSegment)
        # one rotates into the number two already holds: it skips past it.
        self.patch(one, "targetSize", 1)
        self.append(one, b"x")
        x = self.append(one, b"y")
        self.assertNotIn(x.segment, (two.activeSegment,))
        self.assertEqual(self.successResultOf(two.readRange([x], 0, 1)), b"y")

    def test_activeSegmentsBusy(self) -> None:
        """An active segment, of this store or another, is busy; a sealed one is not."""
        one = self.store()
        self.append(one, b"a")
        two = self.store()
        self.assertEqual(self.successResultOf(two.busySegments([1, 2, 99])), {1, 2})
        self.patch(one, "targetSize", 1)
        self.append(one, b"b")  # rotates: segment 1 is sealed
        self.assertEqual(self.successResultOf(two.busySegments([1, 2, one.activeSegment])), {2, one.activeSegment})

    def test_ignoresOtherFiles(self) -> None:
        """Files not named like segments do not confuse startup."""
        directory = self.root.child("segments")
        directory.makedirs()
        directory.child("00000007.seg.tmp").setContent(b"x")
        directory.child("notes").setContent(b"x")
        self.assertEqual(self.store().activeSegment, 1)


class ConcurrencyTests(StoreTestCase):
    """Reservations on the calling thread, writes completing in any order."""

    def test_interleavedCompletion(self) -> None:
        """
        Appends issued together get disjoint places at once, whatever
        order their writes finish in.
        """
        runner = ManualRunner()
        store = self.store(runner=runner, targetSize=3 * recordLength(3000))
        ds = [store.append(payloadOf(3000, i)) for i in range(7)]
        self.assertEqual(len(runner.jobs), 7)
        for index in (6, 0, 3, 1, 2, 0, 0):
            runner.runOne(min(index, len(runner.jobs) - 1))
        extents = [self.successResultOf(d) for d in ds]
        self.assertEqual(
            [(e.segment, e.offset // recordLength(3000)) for e in extents],
            [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0)],
        )
        d = store.readRange(extents, 0, 7 * 3000)
        runner.runAll()
        self.assertEqual(self.successResultOf(d), b"".join(payloadOf(3000, i) for i in range(7)))

    def test_shortWrites(self) -> None:
        """Short pwritev results are resumed until the whole record is written."""
        real = os.pwritev

        def stingy(fd: int, buffers: List[memoryview], offset: int) -> int:
            return real(fd, [memoryview(b"".join(buffers))[:777]], offset)

        self.patch(segments.os, "pwritev", stingy)
        store = self.store()
        payload = payloadOf(5000)
        extent = self.append(store, payload)
        self.patch(segments.os, "pwritev", real)
        self.assertEqual(self.successResultOf(store.readRange([extent], 0, 5000)), payload)

    def test_writeError(self) -> None:
        """A failed write (ENOSPC) fails the append."""

        def full(fd: int, buffers: object, offset: int) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(segments.os, "pwritev", full)
        store = self.store()
        failure = self.failureResultOf(store.append(b"data"), OSError)
        self.assertEqual(failure.value.errno, errno.ENOSPC)
        self.assertEqual(store._dirty, {}, "a failed write is not dirty")


class SyncTests(StoreTestCase):
    """prepareSync: which files a group commit must fdatasync."""

    def setUp(self) -> None:
        super().setUp()
        self.synced: List[Tuple[str, object]] = []
        self.patch(segments, "_fdatasync", lambda fd: self.synced.append(("file", fd)))
        self.patch(segments, "syncDirectory", lambda p: self.synced.append(("dir", p)))

    def fdOf(self, store: SegmentStore, segment: int) -> int:
        return store._fds[segment].fd

    def test_newStore(self) -> None:
        """A new store's directories need syncing once: segments/ and the root."""
        store = self.store()
        store.prepareSync()()
        self.assertEqual(
            self.synced,
            [("dir", store.directory.path), ("dir", self.root.path)],
        )
        del self.synced[:]
        store.prepareSync()()
        self.assertEqual(self.synced, [])

    def test_writtenSegments(self) -> None:
        """Exactly the segments written since the last call are synced, once."""
        store = self.store(targetSize=recordLength(10))
        store.prepareSync()()
        del self.synced[:]
        self.append(store, bytes(10))
        store.prepareSync()()
        self.assertEqual(self.synced, [("file", self.fdOf(store, 1))])
        del self.synced[:]
        self.append(store, bytes(10))  # rotates to segment 2
        self.append(store, bytes(10))  # and 3
        sync = store.prepareSync()
        self.assertEqual(self.synced, [], "prepareSync itself must not block")
        sync()
        self.assertEqual(
            self.synced,
            [("file", self.fdOf(store, 2)), ("file", self.fdOf(store, 3)),
             ("dir", store.directory.path)],
        )

    def test_inflightWriteNotLost(self) -> None:
        """
        A write still in flight during prepareSync is synced by the next
        round (it was not acknowledged, so nothing depends on it yet).
        """
        runner = ManualRunner()
        store = self.store(runner=runner)
        store.prepareSync()()
        del self.synced[:]
        d = store.append(b"slow")
        store.prepareSync()()
        self.assertEqual(self.synced, [])
        runner.runAll()
        self.successResultOf(d)
        store.prepareSync()()
        self.assertEqual(self.synced, [("file", self.fdOf(store, 1))])

    def test_reopenSyncsDirectory(self) -> None:
        """
        A reopened store's first sync fsyncs segments/ again: the newest
        segment may have been created just before a crash, its directory
        entry never synced.  The root's entry was not just made: not synced.
        """
        first = self.store()
        first.prepareSync()()
        self.successResultOf(first.close())
        del self.synced[:]
        second = self.store()
        sync = second.prepareSync()
        self.assertEqual(self.synced, [])
        sync()
        self.assertEqual(self.synced, [("dir", second.directory.path)])
        del self.synced[:]
        second.prepareSync()()
        self.assertEqual(self.synced, [])

    def test_noFsync(self) -> None:
        """With fsync=False, the sync function does nothing at all."""
        store = self.store(fsync=False)
        self.append(store, b"x")
        store.prepareSync()()
        self.assertEqual(self.synced, [])

    def test_realSync(self) -> None:
        """Unpatched, the sync function really fdatasyncs (smoke test)."""
        self.patch(segments, "_fdatasync", REAL_FDATASYNC)
        self.patch(segments, "syncDirectory", REAL_SYNC_DIRECTORY)
        store = self.store()
        self.append(store, b"x")
        store.prepareSync()()


class ReadTests(StoreTestCase):
    """Reading byte ranges of multi-extent blobs."""

    def blob(self, store: SegmentStore, sizes: List[int]) -> Tuple[List[Extent], bytes]:
        extents = []
        data = []
        for i, size in enumerate(sizes):
            payload = payloadOf(size, i)
            extents.append(self.append(store, payload))
            data.append(payload)
        return extents, b"".join(data)

    def test_empty(self) -> None:
        """An empty range (including of a zero-extent blob) is b''."""
        store = self.store()
        self.assertEqual(self.successResultOf(store.readRange([], 0, 0)), b"")

    def test_badRange(self) -> None:
        """A range outside the blob is a ValueError."""
        store = self.store()
        extents, _ = self.blob(store, [10])
        self.assertRaises(ValueError, store.readRange, extents, 0, 11)
        self.assertRaises(ValueError, store.readRange, extents, 5, 4)
        self.assertRaises(ValueError, store.readRange, extents, -1, 4)

    def test_acrossExtents(self) -> None:
        """A range spanning record boundaries joins the right pieces."""
        store = self.store()
        extents, data = self.blob(store, [RECORD_PAYLOAD, 70000, 5, RECORD_PAYLOAD])
        for start, end in [(0, len(data)), (RECORD_PAYLOAD - 3, RECORD_PAYLOAD + 70003),
                           (RECORD_PAYLOAD + 69999, RECORD_PAYLOAD + 70005), (5, 6)]:
            self.assertEqual(self.successResultOf(store.readRange(extents, start, end)),
                             data[start:end])

    def test_readsOnlyCoveringBlocks(self) -> None:
        """A small range reads the header, one block and one table entry."""
        store = self.store()
        extents, data = self.blob(store, [RECORD_PAYLOAD])
        reads: List[Tuple[int, int]] = []
        real = os.pread

        def pread(fd: int, n: int, offset: int) -> bytes:
            reads.append((n, offset))
            return real(fd, n, offset)

        self.patch(segments.os, "pread", pread)
        self.patch(segments, "_RWF_NOWAIT", None)  # the pool path
        got = self.successResultOf(store.readRange(extents, 5 * BLOCK_SIZE + 1, 5 * BLOCK_SIZE + 9))
        self.assertEqual(got, data[5 * BLOCK_SIZE + 1 : 5 * BLOCK_SIZE + 9])
        self.assertEqual(sum(n for n, _ in reads), HEADER_SIZE + BLOCK_SIZE + 4)

    def test_smallCachedReadInline(self) -> None:
        """
        A small read of cached bytes completes at once, without a pool job,
        reading the same spans with RWF_NOWAIT; a large one goes to the pool.
        """
        if segments._RWF_NOWAIT is None:
            raise SkipTest("no RWF_NOWAIT on this platform")
        store = self.store()
        extents, data = self.blob(store, [RECORD_PAYLOAD])
        runner = store.runner = ManualRunner()
        reads: List[int] = []
        real = os.preadv

        def preadv(fd: int, buffers: List[bytearray], offset: int, flags: int) -> int:
            reads.append(sum(len(b) for b in buffers))
            self.assertEqual(flags, segments._RWF_NOWAIT)
            return real(fd, buffers, offset, flags)

        self.patch(segments.os, "preadv", preadv)
        got = self.successResultOf(store.readRange(extents, 5 * BLOCK_SIZE + 1, 5 * BLOCK_SIZE + 9))
        self.assertEqual(got, data[5 * BLOCK_SIZE + 1 : 5 * BLOCK_SIZE + 9])
        self.assertEqual(sum(reads), HEADER_SIZE + BLOCK_SIZE + 4)
        self.assertEqual(runner.jobs, [])
        d = store.readRange(extents, 0, segments.INLINE_READ + 1)
        self.assertEqual(len(runner.jobs), 1)
        runner.runAll()
        self.assertEqual(self.successResultOf(d), data[: segments.INLINE_READ + 1])

    def test_uncachedReadGoesToPool(self) -> None:
        """Bytes not in the page cache (EAGAIN) are read in the pool instead."""
        store = self.store()
        extents, data = self.blob(store, [1000])
        runner = store.runner = ManualRunner()

        def notCached(fd: int, buffers: object, offset: int, flags: int) -> int:
            raise BlockingIOError()

        self.patch(segments.os, "preadv", notCached)
        self.patch(segments, "_RWF_NOWAIT", 8)
        d = store.readRange(extents, 0, 1000)
        self.assertEqual(len(runner.jobs), 1)
        runner.runAll()
        self.assertEqual(self.successResultOf(d), data)

    def test_extentMap(self) -> None:
        """ExtentMap finds the extents of a range and their local ranges."""
        extents = [Extent(1, 0, 10), Extent(1, 100, 20), Extent(2, 0, 5)]
        layout = ExtentMap.of(extents)
        self.assertIs(ExtentMap.of(layout), layout)
        self.assertEqual(layout.size, 35)
        self.assertEqual(layout.locate(0, 35),
                         [(extents[0], 0, 10), (extents[1], 0, 20), (extents[2], 0, 5)])
        self.assertEqual(layout.locate(10, 30), [(extents[1], 0, 20)])
        self.assertEqual(layout.locate(9, 11), [(extents[0], 9, 10), (extents[1], 0, 1)])
        self.assertEqual(layout.locate(31, 32), [(extents[2], 1, 2)])

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(st.integers(1, 3 * BLOCK_SIZE), min_size=1, max_size=5),
        st.data(),
    )
    def test_roundTrip(self, sizes: List[int], data: st.DataObject) -> None:
        """Any range of any blob reads back exactly the bytes written."""
        store = SegmentStore(FilePath(self.mktemp()), ImmediateRunner(),
                             targetSize=data.draw(st.integers(1, 4 * BLOCK_SIZE)))
        try:
            extents, blob = self.blob(store, sizes)
            start = data.draw(st.integers(0, len(blob)))
            end = data.draw(st.integers(start, len(blob)))
            layout: Union[List[Extent], ExtentMap] = extents
            if data.draw(st.booleans()):
                layout = ExtentMap.of(extents)
            self.assertEqual(self.successResultOf(store.readRange(layout, start, end)),
                             blob[start:end])
        finally:
            store.close()


class CorruptionTests(StoreTestCase):
    """Never return a wrong byte."""

    def setUp(self) -> None:
        super().setUp()
        self.events: List[LogEvent] = []
        self.patch(segments, "log", Logger(observer=cast(ILogObserver, self.events.append)))
        self.metrics = Metrics()
        self.store_ = self.store(metrics=self.metrics)
        self.payloads = [payloadOf(RECORD_PAYLOAD, 1), payloadOf(3 * BLOCK_SIZE + 7, 2)]
        self.extents = [self.append(self.store_, p) for p in self.payloads]
        self.path = self.store_.segmentPath(1)

    def corruptCount(self) -> float:
        return self.metrics.registry.get_sample_value("fasterstore_corrupt_reads_total") or 0.0

    def assertCorrupt(self, start: int, end: int, offset: int) -> CorruptionError:
        failure = self.failureResultOf(self.store_.readRange(self.extents, start, end),
                                       CorruptionError)
        error = failure.value
        assert isinstance(error, CorruptionError)
        self.assertEqual((error.segment, error.offset), (1, offset))
        self.assertIn("00000001", str(error))
        return error

    def test_payloadByte(self) -> None:
        """
        A flipped payload byte fails whole and ranged reads touching its
        block, is logged and counted; ranges avoiding its block still read.
        """
        second = self.extents[1].offset
        flipByte(self.path, second + HEADER_SIZE + BLOCK_SIZE + 10)
        base = RECORD_PAYLOAD
        self.assertIn("block 1", self.assertCorrupt(0, base + 3 * BLOCK_SIZE + 7, second).reason)
        self.assertCorrupt(base + BLOCK_SIZE + 10, base + BLOCK_SIZE + 11, second)
        self.assertCorrupt(base + BLOCK_SIZE - 1, base + BLOCK_SIZE + 1, second)
        self.assertEqual(self.corruptCount(), 3)
        self.assertEqual(len(self.events), 3)
        self.assertEqual(self.events[0]["segment"], 1)
        self.assertEqual(self.events[0]["offset"], second)
        self.assertEqual(self.events[0]["log_level"].name, "error")
        self.assertEqual(
            self.successResultOf(self.store_.readRange(self.extents, 0, base + BLOCK_SIZE)),
            self.payloads[0] + self.payloads[1][:BLOCK_SIZE],
        )

    def test_header(self) -> None:
        """A flipped header byte fails any read of the record."""
        flipByte(self.path, 6)
        self.assertCorrupt(100, 101, 0)
        self.assertEqual(self.corruptCount(), 1)

    def test_table(self) -> None:
        """A flipped checksum-table byte fails reads of the block it covers."""
        flipByte(self.path, HEADER_SIZE + RECORD_PAYLOAD + 4 * 15 + 2)
        self.assertCorrupt(RECORD_PAYLOAD - 1, RECORD_PAYLOAD, 0)
        self.successResultOf(self.store_.readRange(self.extents, 0, 15 * BLOCK_SIZE))

    def test_wrongExtent(self) -> None:
        """An extent whose length disagrees with the record header is corrupt."""
        extent = attrs.evolve(self.extents[1], length=5)
        d = self.store_.readRange([extent], 0, 5)
        self.assertIn("extent says 5", self.failureResultOf(d, CorruptionError).value.reason)

    def test_misplacedExtent(self) -> None:
        """An extent not pointing at a record header is corrupt."""
        extent = attrs.evolve(self.extents[1], offset=self.extents[1].offset + 1)
        self.failureResultOf(self.store_.readRange([extent], 0, 5), CorruptionError)

    def test_truncated(self) -> None:
        """A record cut short (lost tail of a file) is corrupt, not short data."""
        with open(self.path.path, "r+b") as f:
            f.truncate(self.extents[1].offset + 100)
        self.assertCorrupt(RECORD_PAYLOAD, RECORD_PAYLOAD + 50, self.extents[1].offset)

    def test_missingSegment(self) -> None:
        """
        An extent in a segment file that does not exist fails the read with
        SegmentMissing (a CorruptionError: no byte is returned), which is
        not counted as corruption: compaction removes segments, and a reader
        that looks its blob up again finds it.
        """
        d = self.store_.readRange([Extent(9, 0, 10)], 0, 10)
        failure = self.failureResultOf(d, segments.SegmentMissing)
        self.assertIsInstance(failure.value, CorruptionError)
        self.assertEqual(failure.value.segment, 9)
        self.assertEqual(self.corruptCount(), 0)


class CloseTests(StoreTestCase):
    """close() waits for work in flight, then refuses more."""

    def test_waitsForInflight(self) -> None:
        """Files are closed only after in-flight writes and reads finish."""
        runner = ManualRunner()
        store = self.store(runner=runner)
        d1 = store.append(b"abc")
        closed = store.close()
        self.assertNoResult(closed)
        self.assertRaises(StoreClosed, store.append, b"more")
        runner.runAll()
        self.successResultOf(d1)
        self.assertIsNone(self.successResultOf(closed))
        self.assertEqual(store._fds, {})

    def test_closeTwice(self) -> None:
        """Closing a closed store is harmless."""
        store = self.store()
        self.successResultOf(store.close())
        self.successResultOf(store.close())
        self.assertRaises(StoreClosed, store.readRange, [], 0, 0)

    def test_openWriter(self) -> None:
        """openWriter gives a BlobWriter on this store and its runner."""
        from fasterstore.storage.writer import BlobWriter

        store = self.store()
        writer = store.openWriter(["sha256"])
        self.assertIsInstance(writer, BlobWriter)
        self.assertIs(writer.store, store)
        self.assertIs(writer.runner, store.runner)


class PermissionTests(SynchronousTestCase):
    """Segment files and directories hold customer data: private whatever the umask."""

    def test_privateWhateverTheUmask(self) -> None:
        """
        Under umask 022, 0 and 277, a store on a missing root creates the
        root and C{segments/} 0700 and every segment file (first and
        rotated) 0600.
        """
        for mask in UMASKS:
            setUmask(self, mask)
            root = FilePath(self.mktemp()).child("data")
            store = SegmentStore(root, ImmediateRunner(), targetSize=recordLength(100))
            self.addCleanup(store.close)
            for i in range(3):
                self.successResultOf(store.append(payloadOf(100, i)))
            modes = assertPrivateTree(self, root.path, f"umask {mask:#o}")
            self.assertEqual(
                sorted(name for name in modes if name.endswith(".seg")),
                [os.path.join("segments", "%08d.seg" % n) for n in (1, 2, 3)],
            )


def oneRecordPerSegment() -> int:
    """A targetSize that gives every record a segment of its own."""
    return 1


class DescriptorCacheTests(StoreTestCase):
    """At most maxOpenFiles descriptors stay open; none closes under a user."""

    def segmentsOf(self, store: SegmentStore, count: int) -> List[Extent]:
        """Write C{count} records, one per segment (1 to C{count})."""
        extents = [self.append(store, payloadOf(100, i)) for i in range(count)]
        self.assertEqual([e.segment for e in extents], list(range(1, count + 1)))
        return extents

    def read(self, store: SegmentStore, extent: Extent) -> bytes:
        return self.successResultOf(store.readRange([extent], 0, extent.length))

    def assertClosed(self, fd: int) -> None:
        """C{fd} is no longer open (or is some other file's by now)."""
        try:
            os.fstat(fd)
        except OSError as e:
            self.assertEqual(e.errno, errno.EBADF)

    def test_maxOpenFilesArgument(self) -> None:
        """maxOpenFiles is keyword-only, 128 by default, and at least 2."""
        self.assertEqual(self.store().maxOpenFiles, 128)
        self.assertEqual(self.store(maxOpenFiles=2).maxOpenFiles, 2)
        self.assertRaises(ValueError, SegmentStore, self.root, ImmediateRunner(), maxOpenFiles=1)
        self.assertRaises(TypeError, cast(Any, SegmentStore), self.root, ImmediateRunner(),
                          1 << 20, None, True, 5)

    def test_bounded(self) -> None:
        """
        Reading 20 segments through a cache of 3 keeps at most 3 open,
        always including the active one, and every read is right; evicted
        descriptors are closed.
        """
        store = self.store(targetSize=oneRecordPerSegment(), fsync=False, maxOpenFiles=3)
        extents = self.segmentsOf(store, 20)
        self.assertLessEqual(len(store._fds), 3)
        seen: Dict[int, segments._Descriptor] = {}
        for round in range(2):
            for i, extent in enumerate(extents):
                self.assertEqual(self.read(store, extent), payloadOf(100, i))
                self.assertLessEqual(len(store._fds), 3)
                self.assertIn(20, store._fds)
                seen.update(store._fds)
        evicted = [d for n, d in seen.items() if n not in store._fds]
        self.assertEqual(len(evicted), 20 - len(store._fds))
        self.assertTrue(all(d.closed and d.users == 0 for d in evicted))
        self.assertEqual(self.append(store, b"still writing").segment, 21)

    def test_leastRecentlyUsedFirst(self) -> None:
        """A hit makes a descriptor the most recent; a miss evicts the oldest idle one."""
        store = self.store(targetSize=oneRecordPerSegment(), fsync=False, maxOpenFiles=3)
        extents = self.segmentsOf(store, 5)
        self.read(store, extents[2])
        self.read(store, extents[3])
        self.assertEqual(set(store._fds), {3, 4, 5})
        self.read(store, extents[2])  # 3 is now the most recent
        self.read(store, extents[0])  # evicts 4, not 3 nor the active 5
        self.assertEqual(set(store._fds), {1, 3, 5})
        self.assertEqual(list(store._fds)[-1], 1)

    def test_inUseNotEvicted(self) -> None:
        """
        A descriptor a read is using (here: in the middle of its pread)
        stays open while other reads evict around it; the cache shrinks
        back to its bound afterwards.
        """
        store = self.store(targetSize=oneRecordPerSegment(), fsync=False, maxOpenFiles=2)
        extents = self.segmentsOf(store, 5)
        self.patch(segments, "_RWF_NOWAIT", None)
        self.read(store, extents[0])
        first = store._fds[1]
        real = os.pread
        nested: List[bytes] = []

        def pread(fd: int, n: int, offset: int) -> bytes:
            if fd == first.fd and not nested:
                # Other threads' reads, while this one holds segment 1.
                nested.append(store._read([(extents[1], 0, 100)]))
                nested.append(store._read([(extents[2], 0, 100)]))
                self.assertFalse(first.closed)
                self.assertEqual(first.users, 1)
            return real(fd, n, offset)

        self.patch(segments.os, "pread", pread)
        self.assertEqual(self.read(store, extents[0]), payloadOf(100, 0))
        self.assertEqual(nested, [payloadOf(100, 1), payloadOf(100, 2)])
        self.assertFalse(first.closed)
        self.assertEqual(first.users, 0)
        self.read(store, extents[3])
        self.assertEqual(set(store._fds), {4, 5})
        self.assertTrue(first.closed)

    def test_writeKeepsDescriptor(self) -> None:
        """
        A write still queued for a segment that is no longer active keeps
        its descriptor open through evictions, and lands in that file (a
        closed descriptor's number could meanwhile be another segment's).
        """
        old = self.store(targetSize=oneRecordPerSegment(), fsync=False)
        extents = self.segmentsOf(old, 4)
        self.successResultOf(old.close())
        runner = ManualRunner()
        store = self.store(runner=runner, targetSize=oneRecordPerSegment(), fsync=False,
                           maxOpenFiles=2)
        self.patch(segments, "_RWF_NOWAIT", None)
        late = store.append(b"late write")  # to segment 5
        store.append(b"rotates")  # to segment 6
        self.assertEqual(store.activeSegment, 6)
        reads = [store.readRange([extent], 0, 100) for extent in extents]
        for _ in reads:
            runner.runOne(2)  # the reads run before the queued writes
        for i, d in enumerate(reads):
            self.assertEqual(self.successResultOf(d), payloadOf(100, i))
        self.assertIn(5, store._fds)
        self.assertEqual(len(store._fds), 3, "past the bound while in use")
        runner.runAll()
        extent = self.successResultOf(late)
        self.assertEqual(extent.segment, 5)
        d = store.readRange([extent], 0, extent.length)
        runner.runAll()
        self.assertEqual(self.successResultOf(d), b"late write")

    def test_syncKeepsDescriptor(self) -> None:
        """
        A segment written but not yet synced keeps its descriptor open
        through evictions, so the sync fdatasyncs that very file.
        """
        synced: List[int] = []

        def fdatasync(fd: int) -> None:
            synced.append(os.fstat(fd).st_ino)

        self.patch(segments, "_fdatasync", fdatasync)
        self.patch(segments, "syncDirectory", lambda path: None)
        store = self.store(targetSize=oneRecordPerSegment(), maxOpenFiles=2)
        extents = self.segmentsOf(store, 4)
        store.prepareSync()()
        del synced[:]
        self.append(store, b"unsynced")  # segment 5
        written = self.append(store, b"rotates")  # segment 6
        self.assertEqual(written.segment, 6)
        for extent in extents:
            self.read(store, extent)
        self.assertIn(5, store._fds)
        held = store._fds[5]
        store.prepareSync()()
        inode = os.stat(store.segmentPath(5).path).st_ino
        self.assertIn(inode, synced)
        self.assertEqual(held.users, 0)
        self.read(store, extents[0])
        self.assertNotIn(5, store._fds)
        self.assertTrue(held.closed)

    def test_outOfDescriptors(self) -> None:
        """
        EMFILE opening a segment fails that read with the OSError (not a
        CorruptionError, not counted as corruption); the next read, once
        descriptors are available again, succeeds.
        """
        metrics = Metrics()
        store = self.store(targetSize=oneRecordPerSegment(), fsync=False, metrics=metrics,
                           maxOpenFiles=2)
        extents = self.segmentsOf(store, 3)
        real = os.open

        def exhausted(path: str, flags: int, *args: Any) -> int:
            raise OSError(errno.EMFILE, "Too many open files")

        self.patch(segments.os, "open", exhausted)
        failure = self.failureResultOf(store.readRange([extents[0]], 0, 100), OSError)
        self.assertEqual(failure.value.errno, errno.EMFILE)
        self.assertNotIsInstance(failure.value, CorruptionError)
        self.assertEqual(
            metrics.registry.get_sample_value("fasterstore_corrupt_reads_total") or 0.0, 0.0
        )
        self.assertNotIn(1, store._fds)
        self.patch(segments.os, "open", real)
        self.assertEqual(self.read(store, extents[0]), payloadOf(100, 0))

    def test_outOfDescriptorsSheds(self) -> None:
        """
        On EMFILE the store closes its idle descriptors (not the active
        one) and tries once more, so the read succeeds.
        """
        store = self.store(targetSize=oneRecordPerSegment(), fsync=False, maxOpenFiles=6)
        extents = self.segmentsOf(store, 7)
        self.assertEqual(set(store._fds), {2, 3, 4, 5, 6, 7})
        real = os.open
        calls: List[str] = []

        def onceExhausted(path: str, flags: int, *args: Any) -> int:
            calls.append(path)
            if len(calls) == 1:
                raise OSError(errno.EMFILE, "Too many open files")
            return real(path, flags, *args)

        self.patch(segments.os, "open", onceExhausted)
        self.assertEqual(self.read(store, extents[0]), payloadOf(100, 0))
        self.assertEqual(len(calls), 2)
        self.assertEqual(set(store._fds), {1, 7})

    def test_inlineReadUsesCache(self) -> None:
        """
        The inline (RWF_NOWAIT) path takes and gives back a reference
        like the pool path, and leaves a segment it finds closed to the pool.
        """
        if segments._RWF_NOWAIT is None:
            raise SkipTest("no RWF_NOWAIT on this platform")
        store = self.store(targetSize=oneRecordPerSegment(), fsync=False, maxOpenFiles=2)
        extents = self.segmentsOf(store, 3)
        runner = store.runner = ManualRunner()
        users: List[int] = []
        real = os.preadv

        def preadv(fd: int, buffers: List[bytearray], offset: int, flags: int) -> int:
            users.append(store._fds[3].users)
            return real(fd, buffers, offset, flags)

        self.patch(segments.os, "preadv", preadv)
        self.assertEqual(self.successResultOf(store.readRange([extents[2]], 0, 100)),
                         payloadOf(100, 2))
        self.assertEqual(set(users), {1})
        self.assertEqual(store._fds[3].users, 0)
        self.assertEqual(runner.jobs, [])
        self.assertRaises(segments._NotCached, store._acquire, 1, openFile=False)
        d = store.readRange([extents[0]], 0, 100)
        self.assertEqual(len(runner.jobs), 1)
        runner.runAll()
        self.assertEqual(self.successResultOf(d), payloadOf(100, 0))

    def test_closeClosesAll(self) -> None:
        """close() closes every cached descriptor and those held for a sync."""
        self.patch(segments, "_fdatasync", lambda fd: None)
        store = self.store(targetSize=oneRecordPerSegment(), maxOpenFiles=3)
        extents = self.segmentsOf(store, 3)
        self.read(store, extents[0])
        descriptors = list(store._fds.values())
        self.successResultOf(store.close())
        self.assertEqual(store._fds, {})
        self.assertTrue(all(d.closed for d in descriptors))


class SyncFailureTests(StoreTestCase):
    """A failed sync (EIO) is remembered: lost records, a fresh segment."""

    def setUp(self) -> None:
        super().setUp()
        self.patch(segments, "syncDirectory", lambda path: None)

    def failSyncs(self) -> None:
        def eio(fd: int) -> None:
            raise OSError(errno.EIO, "Input/output error")

        self.patch(segments, "_fdatasync", eio)

    def test_lostAndRotated(self) -> None:
        """
        After a sync that raised, extents it covered are lost; the next
        append starts a new segment, and what goes there is not lost.
        """
        self.patch(segments, "_fdatasync", lambda fd: None)
        store = self.store()
        a = self.append(store, b"before")
        b = self.append(store, b"also before")
        self.assertFalse(store.lost([a, b]))
        sync = store.prepareSync()
        self.failSyncs()
        failure = self.assertRaises(OSError, sync)
        self.assertEqual(failure.errno, errno.EIO)
        self.assertTrue(store.lost([a]))
        self.assertTrue(store.lost([b]))
        self.assertEqual(store.activeSegment, 1, "rotation waits for the next append")
        c = self.append(store, b"after")
        self.assertEqual((c.segment, c.offset), (2, 0))
        self.assertEqual(store.activeSegment, 2)
        self.assertFalse(store.lost([c]))
        self.assertFalse(store.lost([]))
        self.assertTrue(store.lost([c, a]))
        self.assertEqual(store._fds[1].users, 0, "the failed sync gave its descriptor back")
        self.patch(segments, "_fdatasync", lambda fd: None)
        store.prepareSync()()
        d = self.append(store, b"later")
        self.assertEqual(d.segment, 2, "one rotation per failure")
        self.assertFalse(store.lost([c, d]))
        self.assertEqual(self.successResultOf(store.readRange([a], 0, 6)), b"before")

    def test_inflightAppendLost(self) -> None:
        """
        An append in flight when prepareSync ran lies below the end it
        recorded: its pages may have been dropped too, so it is lost.
        """
        runner = ManualRunner()
        store = self.store(runner=runner)
        first = store.append(b"acknowledged")
        runner.runAll()
        a = self.successResultOf(first)
        pending = store.append(b"in flight")
        sync = store.prepareSync()
        self.failSyncs()
        self.assertRaises(OSError, sync)
        runner.runAll()
        b = self.successResultOf(pending)
        self.assertEqual(b.segment, 1)
        self.assertTrue(store.lost([a]))
        self.assertTrue(store.lost([b]))
        after = store.append(b"after")
        runner.runAll()
        self.assertFalse(store.lost([self.successResultOf(after)]))

    def test_sealedSegmentLostWhole(self) -> None:
        """A sealed segment covered by a failed sync is lost as a whole."""
        store = self.store(targetSize=oneRecordPerSegment())
        a = self.append(store, b"segment one")
        b = self.append(store, b"segment two")
        sync = store.prepareSync()
        self.failSyncs()
        self.assertRaises(OSError, sync)
        self.assertTrue(store.lost([a]))
        self.assertTrue(store.lost([b]))
        self.assertTrue(store.lost([attrs.evolve(a, offset=1 << 40)]))
        self.assertFalse(store.lost([Extent(9, 0, 1)]), "a segment it did not cover")

    def test_directorySyncFailure(self) -> None:
        """A failing directory fsync counts as a failed sync too."""
        self.patch(segments, "_fdatasync", lambda fd: None)
        store = self.store()
        a = self.append(store, b"x")

        def eio(path: str) -> None:
            raise OSError(errno.EIO, "Input/output error")

        self.patch(segments, "syncDirectory", eio)
        self.assertRaises(OSError, store.prepareSync())
        self.assertTrue(store.lost([a]))
        self.assertEqual(self.append(store, b"y").segment, 2)

    def test_unsyncedStoreLosesNothing(self) -> None:
        """With fsync=False there is no sync to fail: nothing is ever lost."""
        self.failSyncs()
        store = self.store(fsync=False)
        a = self.append(store, b"x")
        store.prepareSync()()
        self.assertFalse(store.lost([a]))


class RemovalTests(StoreTestCase):
    """pin, removeSegment and segmentSizes: what compaction builds on."""

    def setUp(self) -> None:
        super().setUp()
        self.dirSyncs: List[str] = []
        self.patch(segments, "syncDirectory", self.dirSyncs.append)
        self.patch(segments, "_fdatasync", lambda fd: None)

    def twoSegments(self, **kwargs: Any) -> Tuple[SegmentStore, Extent, Extent]:
        """A store with one record in sealed segment 1, one in active 2."""
        kwargs.setdefault("targetSize", oneRecordPerSegment())
        store = self.store(**kwargs)
        if isinstance(store.runner, ManualRunner):
            da, db = store.append(payloadOf(100, 1)), store.append(payloadOf(100, 2))
            store.runner.runAll()
            a, b = self.successResultOf(da), self.successResultOf(db)
        else:
            a, b = self.append(store, payloadOf(100, 1)), self.append(store, payloadOf(100, 2))
        self.assertEqual((a.segment, b.segment, store.activeSegment), (1, 2, 2))
        store.prepareSync()()
        del self.dirSyncs[:]
        return store, a, b

    def assertMissing(self, store: SegmentStore, extent: Extent) -> None:
        """Reading C{extent} fails: its segment file is missing."""
        d = store.readRange([extent], 0, extent.length)
        if isinstance(store.runner, ManualRunner):
            store.runner.runAll()
        error = self.failureResultOf(d, CorruptionError).value
        assert isinstance(error, CorruptionError)
        self.assertEqual((error.segment, error.reason), (extent.segment, "segment file missing"))

    def test_remove(self) -> None:
        """
        Removing a sealed segment unlinks its file, closes its descriptor
        and fsyncs the directory; reads of it then fail with
        CorruptionError, reads of others still work.
        """
        store, a, b = self.twoSegments()
        self.successResultOf(store.readRange([a], 0, 100))
        descriptor = store._fds[1]
        self.assertIsNone(self.successResultOf(store.removeSegment(1)))
        self.assertFalse(store.segmentPath(1).exists())
        self.assertTrue(descriptor.closed)
        self.assertNotIn(1, store._fds)
        self.assertEqual(self.dirSyncs, [store.directory.path])
        self.assertMissing(store, a)
        self.assertEqual(self.successResultOf(store.readRange([b], 0, 100)), payloadOf(100, 2))

    def test_removeActiveRefused(self) -> None:
        """The active segment cannot be removed."""
        store, a, b = self.twoSegments()
        self.failureResultOf(store.removeSegment(2), ValueError)
        self.assertTrue(store.segmentPath(2).exists())
        self.assertEqual(self.successResultOf(store.readRange([b], 0, 100)), payloadOf(100, 2))
        self.assertEqual(self.dirSyncs, [])

    def test_readInFlight(self) -> None:
        """
        A pool read started before removeSegment completes with the right
        bytes; the unlink is queued only after the read finished.
        """
        self.patch(segments, "_RWF_NOWAIT", None)
        store, a, b = self.twoSegments(runner=ManualRunner())
        runner = cast(ManualRunner, store.runner)
        read = store.readRange([a], 0, 100)
        removed = store.removeSegment(1)
        self.assertEqual(len(runner.jobs), 1, "only the read is queued")
        self.assertNoResult(removed)
        runner.runOne()
        self.assertEqual(self.successResultOf(read), payloadOf(100, 1))
        self.assertTrue(store.segmentPath(1).exists())
        self.assertNoResult(removed)
        self.assertEqual(len(runner.jobs), 1, "now the unlink")
        runner.runAll()
        self.assertIsNone(self.successResultOf(removed))
        self.assertFalse(store.segmentPath(1).exists())
        self.assertMissing(store, a)

    def test_readsOfOtherSegments(self) -> None:
        """A read in flight of another segment does not delay the removal."""
        self.patch(segments, "_RWF_NOWAIT", None)
        store, a, b = self.twoSegments(runner=ManualRunner())
        runner = cast(ManualRunner, store.runner)
        read = store.readRange([b], 0, 100)
        removed = store.removeSegment(1)
        runner.runOne(1)
        self.assertIsNone(self.successResultOf(removed))
        runner.runAll()
        self.assertEqual(self.successResultOf(read), payloadOf(100, 2))

    def test_pinned(self) -> None:
        """
        A pinned segment is unlinked only once every pin is released;
        releasing twice is harmless.
        """
        store, a, b = self.twoSegments()
        release = store.pin([1, 2])
        other = store.pin(iter([1]))
        removed = store.removeSegment(1)
        self.assertNoResult(removed)
        release()
        release()
        self.assertNoResult(removed)
        self.assertTrue(store.segmentPath(1).exists())
        self.assertEqual(self.successResultOf(store.readRange([a], 0, 100)), payloadOf(100, 1))
        other()
        self.assertIsNone(self.successResultOf(removed))
        self.assertFalse(store.segmentPath(1).exists())
        other()
        self.assertEqual(store._holds, {})

    def test_confirm(self) -> None:
        """
        The confirmation runs once the pins are gone, before the unlink; if
        it fails, the file stays, the removal fails with its error, and a
        later removal can succeed.
        """
        store, a, b = self.twoSegments()
        asked: List[int] = []

        def refuse() -> "Deferred[object]":
            asked.append(1)
            return fail(ValueError("a blob names it"))

        release = store.pin([1])
        self.assertTrue(store.pinned(1))
        refused = store.removeSegment(1, refuse)
        self.assertEqual(asked, [])
        release()
        self.assertFalse(store.pinned(1))
        self.failureResultOf(refused, ValueError)
        self.assertEqual(asked, [1])
        self.assertTrue(store.segmentPath(1).exists())
        self.assertEqual(self.successResultOf(store.readRange([a], 0, 100)), payloadOf(100, 1))
        self.successResultOf(store.removeSegment(1, lambda: succeed(None)))
        self.assertFalse(store.segmentPath(1).exists())

    def test_appendPins(self) -> None:
        """An append in flight pins its segment until it completes."""
        store = self.store(runner=ManualRunner())
        d = store.append(payloadOf(100, 1))
        self.assertTrue(store.pinned(1))
        cast(ManualRunner, store.runner).runAll()
        self.successResultOf(d)
        self.assertFalse(store.pinned(1))

    def test_removeTwice(self) -> None:
        """Two removals of one segment both fire, after one unlink."""
        store, a, b = self.twoSegments()
        release = store.pin([1])
        first, second = store.removeSegment(1), store.removeSegment(1)
        release()
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(self.dirSyncs, [store.directory.path])
        self.successResultOf(store.removeSegment(1))  # already gone: fine

    def test_missingFile(self) -> None:
        """A segment file already gone is removed without complaint."""
        store, a, b = self.twoSegments()
        store.segmentPath(1).remove()
        self.assertIsNone(self.successResultOf(store.removeSegment(1)))

    def test_noFsync(self) -> None:
        """With fsync=False the directory is not fsynced."""
        store, a, b = self.twoSegments(fsync=False)
        self.successResultOf(store.removeSegment(1))
        self.assertFalse(store.segmentPath(1).exists())
        self.assertEqual(self.dirSyncs, [])

    def test_descriptorInUse(self) -> None:
        """
        A descriptor still held (here for a sync not yet run) when its
        segment is removed is closed when that sync gives it back.
        """
        store = self.store(targetSize=oneRecordPerSegment())
        a = self.append(store, b"unsynced")
        self.append(store, b"rotates")
        held = store._fds[1]
        self.successResultOf(store.removeSegment(1))
        self.assertFalse(held.closed)
        self.assertNotIn(1, store._fds)
        store.prepareSync()()
        self.assertTrue(held.closed)
        self.assertMissing(store, a)

    def test_unlinkFails(self) -> None:
        """An unlink error fails the removal; the segment still reads."""
        store, a, b = self.twoSegments()

        def denied(path: str) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", path)

        self.patch(segments.os, "unlink", denied)
        self.failureResultOf(store.removeSegment(1), PermissionError)
        self.assertEqual(store._removing, {})
        self.assertEqual(self.successResultOf(store.readRange([a], 0, 100)), payloadOf(100, 1))

    def test_closeFailsWaitingRemoval(self) -> None:
        """close() fails removals still waiting for a pin; later ones fail at once."""
        store, a, b = self.twoSegments()
        store.pin([1])
        removed = store.removeSegment(1)
        self.successResultOf(store.close())
        self.failureResultOf(removed, StoreClosed)
        self.assertTrue(store.segmentPath(1).exists())
        self.failureResultOf(store.removeSegment(1), StoreClosed)
        self.failureResultOf(store.segmentSizes(), StoreClosed)

    def test_closeWaitsForUnlink(self) -> None:
        """An unlink already in the runner is waited for by close()."""
        store, a, b = self.twoSegments(runner=ManualRunner())
        runner = cast(ManualRunner, store.runner)
        removed = store.removeSegment(1)
        closed = store.close()
        self.assertNoResult(closed)
        runner.runAll()
        self.successResultOf(removed)
        self.successResultOf(closed)

    def test_segmentSizes(self) -> None:
        """
        segmentSizes gives every segment file's size from the runner,
        leaving out other files and files that vanish meanwhile.
        """
        store = self.store(targetSize=recordLength(100) + 1, runner=ManualRunner())
        runner = cast(ManualRunner, store.runner)
        for i in range(5):
            store.append(payloadOf(100 + i, i))
        runner.runAll()
        self.assertEqual(store.activeSegment, 5)
        store.directory.child("notes").setContent(b"x")
        real = os.listdir

        def listdir(path: str) -> List[str]:
            return real(path) + ["00000099.seg"]

        self.patch(segments.os, "listdir", listdir)
        d = store.segmentSizes()
        self.assertNoResult(d)
        runner.runAll()
        self.assertEqual(
            self.successResultOf(d),
            {n: recordLength(100 + n - 1) for n in range(1, 6)},
        )
        removed = store.removeSegment(2)
        runner.runAll()
        self.successResultOf(removed)
        d = store.segmentSizes()
        runner.runAll()
        sizes = self.successResultOf(d)
        self.assertEqual(sorted(sizes), [1, 3, 4, 5])
