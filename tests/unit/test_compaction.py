"""
Tests for L{fasterstore.services.compaction}: real segment files and a real
SQLite store in a temporary directory, everything run synchronously, time
on a L{Clock}.
"""

from __future__ import annotations

import os
from typing import Dict, List

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.metadata.records import BlobRecord, BucketRecord, ObjectRecord
from fasterstore.metadata.sqlite import DATABASE_NAME, SQLiteMetadataStore
from fasterstore.services.compaction import CompactionService, Compactor
from fasterstore.storage.blob import WrittenBlob
from fasterstore.storage.segments import SegmentStore
from fasterstore.threads import ImmediateRunner

SEGMENT = 64 * 1024


class Harness:
    """A segment store and a metadata store on one temporary data directory."""

    def __init__(self, case: SynchronousTestCase, path: str) -> None:
        self.case = case
        self.path = path
        self.clock = Clock()
        self.open()

    def open(self) -> None:
        runner = ImmediateRunner()
        self.segments = SegmentStore(FilePath(self.path), runner, targetSize=SEGMENT, fsync=False)
        self.metadata = SQLiteMetadataStore(
            os.path.join(self.path, "meta", DATABASE_NAME), runner, self.segments.prepareSync,
            fsync=False, lost=self.segments.lost,
        )
        self.case.successResultOf(self.metadata.open())
        self.compactor = Compactor(self.metadata, self.segments, self.clock, threshold=0.25, rate=1 << 30, grace=5.0)

    def close(self) -> None:
        self.case.successResultOf(self.metadata.close())
        self.case.successResultOf(self.segments.close())

    def bucket(self, name: str = "b") -> None:
        self.case.successResultOf(self.metadata.createBucket(BucketRecord(name, "owner", "", 1.0)))

    def write(self, content: bytes) -> WrittenBlob:
        writer = self.segments.openWriter()
        self.case.assertIsNone(writer.write(content))
        return self.case.successResultOf(writer.finish())

    def put(self, key: str, content: bytes) -> ObjectRecord:
        blob = self.write(content)
        record = ObjectRecord("b", key, blob.size, blob.digests["md5"].hex(), blob.contentAddress, 2.0)
        return self.case.successResultOf(self.metadata.putObject(record, blob))

    def delete(self, key: str) -> None:
        self.case.successResultOf(self.metadata.deleteObject("b", key))

    def blob(self, key: str) -> BlobRecord:
        """The blob record of an object."""
        record = self.case.successResultOf(self.metadata.getObject("b", key))
        assert record is not None, key
        blob = self.case.successResultOf(self.metadata.getBlob(record.blob))
        assert blob is not None
        return blob

    def read(self, key: str) -> bytes:
        blob = self.blob(key)
        return self.case.successResultOf(self.segments.readRange(blob.extents, 0, blob.size))

    def files(self) -> Dict[int, int]:
        return self.case.successResultOf(self.segments.segmentSizes())

    def run(self) -> int:
        """A whole pass, the clock advanced through its waits."""
        d: Deferred[int] = ensureDeferred(self.compactor.run())
        for _ in range(1000):
            if d.called:
                break
            self.clock.advance(1)
        return self.case.successResultOf(d)


def content(i: int, size: int = 3000) -> bytes:
    return (b"%06d" % i) * (size // 6)


class CompactorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(self, self.mktemp())
        self.addCleanup(self.h.close)
        self.h.bucket()

    def fill(self, n: int) -> List[str]:
        keys = ["k%04d" % i for i in range(n)]
        for i, key in enumerate(keys):
            self.h.put(key, content(i))
        return keys

    def test_deletedSpaceGivenBack(self) -> None:
        """Delete 90%: afterwards the segment files hold at most 1.3x the live bytes (plus the active segment)."""
        keys = self.fill(200)
        before = sum(self.h.files().values())
        kept = keys[::10]
        for key in keys:
            if key not in kept:
                self.h.delete(key)
        removed = self.h.run()
        self.assertGreater(removed, 0)
        files = self.h.files()
        sealed = sum(size for segment, size in files.items() if segment != self.h.segments.activeSegment)
        live = sum(len(content(keys.index(k))) for k in kept)
        self.assertLess(sum(files.values()), before / 3)
        self.assertLessEqual(sealed, 1.3 * live)
        for key in kept:
            self.assertEqual(self.h.read(key), content(keys.index(key)))
        self.assertEqual(self.h.compactor.progress.segmentsRemoved, removed)

    def test_belowThresholdLeftAlone(self) -> None:
        """A segment less dead than the threshold is not rewritten."""
        keys = self.fill(60)
        self.h.delete(keys[0])
        files = self.h.files()
        self.assertEqual(self.h.run(), 0)
        self.assertEqual(set(self.h.files()), set(files))

    def test_activeSegmentLeftAlone(self) -> None:
        """The segment being appended to is never compacted, however dead."""
        keys = self.fill(3)
        for key in keys:
            self.h.delete(key)
        active = self.h.segments.activeSegment
        self.h.run()
        self.assertIn(active, self.h.files())

    def test_readInFlightFinishes(self) -> None:
        """A read that pinned the old segment before the move still reads it; the file goes after."""
        keys = self.fill(60)
        for key in keys[1:25]:
            self.h.delete(key)
        blob = self.h.blob(keys[0])
        old = blob.extents
        d = ensureDeferred(self.h.compactor.run())
        # The records are moved (the runner is synchronous), the removal
        # waits out its grace: a response that looked the blob up before
        # the move starts now, and pins the old segment.
        release = self.h.segments.pin(e.segment for e in old)
        self.h.clock.advance(60)
        self.assertNoResult(d)
        self.assertEqual(self.successResultOf(self.h.segments.readRange(old, 0, blob.size)), content(0))
        self.assertIn(old[0].segment, self.h.files())
        release()
        self.h.clock.advance(60)
        self.assertGreater(self.successResultOf(d), 0)
        self.assertNotIn(old[0].segment, self.h.files())
        self.assertEqual(self.h.read(keys[0]), content(0))

    def test_pinnedSegmentSkipped(self) -> None:
        """A segment pinned when the pass looks (a long read) waits for a later pass."""
        keys = self.fill(60)
        for key in keys[1:25]:
            self.h.delete(key)
        blob = self.h.blob(keys[0])
        release = self.h.segments.pin(e.segment for e in blob.extents)
        self.h.run()
        self.assertIn(blob.extents[0].segment, self.h.files())
        release()
        self.h.run()
        self.assertNotIn(blob.extents[0].segment, self.h.files())

    def test_uncommittedUploadProtected(self) -> None:
        """Records of an upload not yet committed pin their segment: it is not compacted away under it."""
        keys = self.fill(30)
        writer = self.h.segments.openWriter()
        writer.write(b"x" * 3000)
        pending = self.successResultOf(writer.finish())
        for key in keys:
            self.h.delete(key)
        self.fill(30)  # more, so that the pending upload's segment is sealed
        self.h.run()
        self.assertIn(pending.extents[0].segment, self.h.files())
        self.successResultOf(self.h.metadata.putObject(
            ObjectRecord("b", "late", 3000, pending.digests["md5"].hex(), pending.contentAddress, 3.0), pending))
        self.h.run()
        self.assertEqual(self.h.read("late"), b"x" * 3000)

    def test_writesDuringPass(self) -> None:
        """An object deleted or replaced while its record is being moved stays deleted or replaced."""
        keys = self.fill(60)
        for key in keys[:30]:
            self.h.delete(key)
        d = ensureDeferred(self.h.compactor.run())
        self.h.delete(keys[40])
        self.h.put(keys[41], b"replaced")
        for _ in range(100):
            self.h.clock.advance(1)
        self.successResultOf(d)
        self.assertIsNone(self.successResultOf(self.h.metadata.getObject("b", keys[40])))
        self.assertEqual(self.h.read(keys[41]), b"replaced")
        for i in range(42, 60):
            self.assertEqual(self.h.read(keys[i]), content(i))

    def test_resumesAfterRestart(self) -> None:
        """A pass stopped half-way (as by kill -9) leaves everything readable; the next one finishes."""
        keys = self.fill(120)
        for key in keys[:100]:
            self.h.delete(key)
        self.h.compactor.stopping = True
        self.h.run()
        self.h.close()
        self.h.open()
        self.h.run()
        for i in range(100, 120):
            self.assertEqual(self.h.read(keys[i]), content(i))
        files = self.h.files()
        self.assertLess(sum(files.values()), 4 * SEGMENT)

    def test_forgetsMissingSegments(self) -> None:
        """A segment the store counts but whose file is gone (removed before a crash) is forgotten."""
        keys = self.fill(60)
        for key in keys:
            self.h.delete(key)
        self.successResultOf(self.h.metadata.relocate([]))
        usage = self.successResultOf(self.h.metadata.segmentUsage())
        self.assertTrue(usage)
        self.h.run()
        self.assertTrue(set(self.successResultOf(self.h.metadata.segmentUsage())) <= set(self.h.files()))

    def test_corruptRecordKept(self) -> None:
        """A record that fails its checksum is not copied: its segment stays (for repair) and the rest moves."""
        keys = self.fill(60)
        for key in keys[1:25]:
            self.h.delete(key)
        blob = self.h.blob(keys[0])
        extent = blob.extents[0]
        with open(self.h.segments.segmentPath(extent.segment).path, "r+b") as f:
            f.seek(extent.offset + 100)
            f.write(b"\xff\xff")
        self.h.run()
        self.assertIn(extent.segment, self.h.files())
        for i in range(25, 60):
            self.assertEqual(self.h.read(keys[i]), content(i))
        self.flushLoggedErrors()

    def test_otherProcesses(self) -> None:
        """
        Another process's active segment is left alone however dead it
        looks; once sealed, its upload that never committed in time is
        refused at commit, never committed pointing at a removed file.
        """
        keys = self.fill(40)
        for key in keys:
            self.h.delete(key)
        other = SegmentStore(FilePath(self.h.path), ImmediateRunner(), targetSize=SEGMENT, fsync=False)
        self.addCleanup(other.close)
        writer = other.openWriter()
        writer.write(b"z" * 3000)
        pending = self.successResultOf(writer.finish())
        pending.release()  # its pins are the other process's: this one cannot see them
        self.h.run()
        self.assertIn(other.activeSegment, self.h.files())
        sealed = other.activeSegment
        self.patch(other, "targetSize", 1)
        other.append(b"rotate")
        other.append(b"again")  # now in a newer segment: the pending record's is sealed
        self.h.run()
        self.assertNotIn(sealed, self.h.files())
        record = ObjectRecord("b", "late", 3000, pending.digests["md5"].hex(), pending.contentAddress, 3.0)
        failure = self.failureResultOf(self.h.metadata.putObject(record, pending))
        self.assertEqual(failure.value.code, "InternalError")  # type: ignore[attr-defined]

    def test_held(self) -> None:
        """While the hold file exists nothing moves and nothing is removed; then the next pass goes on."""
        keys = self.fill(60)
        for key in keys[:40]:
            self.h.delete(key)
        hold = os.path.join(self.h.path, "compaction.hold")
        self.h.compactor.holdPath = hold
        open(hold, "w").close()
        files = self.h.files()
        self.assertEqual(self.h.run(), 0)
        self.assertEqual(self.h.files(), files)
        self.assertEqual(self.h.compactor.progress.bytesMoved, 0)
        os.unlink(hold)
        self.assertGreater(self.h.run(), 0)

    def test_paced(self) -> None:
        """Copying waits on the clock so as not to go faster than the rate."""
        keys = self.fill(60)
        for key in keys[:40]:
            self.h.delete(key)
        self.h.compactor.rate = 3000  # about a record a second
        d = ensureDeferred(self.h.compactor.run())
        self.h.clock.advance(2)
        self.assertNoResult(d)
        moved = self.h.compactor.progress.bytesMoved
        self.assertLessEqual(moved, 3 * 3000)
        for _ in range(200):
            self.h.clock.advance(1)
        self.successResultOf(d)


class CompactionServiceTests(SynchronousTestCase):
    def test_againAtOnceAfterProgress(self) -> None:
        """A pass that removed segments is followed by another at once, not after the interval."""
        h = Harness(self, self.mktemp())
        self.addCleanup(h.close)
        h.bucket()
        for i in range(60):
            h.put("k%d" % i, content(i))
        for i in range(60):
            h.delete("k%d" % i)
        service = CompactionService(h.compactor, interval=1000)
        service.startService()
        h.clock.advance(0)
        h.clock.advance(6)  # the first pass's grace: it removes segments, and the second starts at once
        self.assertGreater(h.compactor.progress.segmentsRemoved, 0)
        self.assertEqual(h.compactor.progress.passes, 2)
        h.clock.advance(999)  # the second found nothing: the third waits the interval
        self.assertEqual(h.compactor.progress.passes, 2)
        h.clock.advance(2)
        self.assertEqual(h.compactor.progress.passes, 3)
        self.successResultOf(service.stopService())

    def test_passesOnSchedule(self) -> None:
        """A pass at start and one every interval; stopping ends the schedule."""
        h = Harness(self, self.mktemp())
        self.addCleanup(h.close)
        service = CompactionService(h.compactor, interval=30)
        service.startService()
        h.clock.advance(0)
        h.clock.advance(6)
        self.assertEqual(h.compactor.progress.passes, 1)
        h.clock.advance(30)
        h.clock.advance(6)
        self.assertEqual(h.compactor.progress.passes, 2)
        self.successResultOf(service.stopService())
        h.clock.advance(100)
        self.assertEqual(h.compactor.progress.passes, 2)

