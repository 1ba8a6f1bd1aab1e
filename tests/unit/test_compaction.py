"""
Tests for L{fasterstore.services.compaction}: real segment files and a real
SQLite store in a temporary directory, everything run synchronously, time
on a L{Clock}.
"""

from __future__ import annotations

import os
from typing import Dict, List, cast

import attrs

from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.metadata.records import BlobRecord, BucketRecord, ObjectRecord
from fasterstore.metadata.sqlite import DATABASE_NAME, SQLiteMetadataStore
from fasterstore.metadata.store import IMetadataStore
from fasterstore.services import compaction
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
        # No settling (tests of it ask for it): a pass takes its candidates at once.
        self.compactor = Compactor(
            self.metadata, self.segments, self.clock, threshold=0.25, rate=1 << 30, grace=5.0, settle=0.0
        )

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

    def firstSegmentHalfDead(self) -> int:
        """Fill 60 objects (k0000...), delete the 20 after the first; the first's segment (a candidate)."""
        keys = self.fill(60)
        for key in keys[1:21]:
            self.h.delete(key)
        return self.h.blob(keys[0]).extents[0].segment

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
        """
        A read that pinned the old segment before the move still reads it;
        the pass does not wait for it (its removal does), and the file goes
        once the read is done.
        """
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
        self.assertEqual(self.successResultOf(d), 0)
        self.assertEqual(list(self.h.compactor.pending), [old[0].segment])
        self.assertEqual(self.successResultOf(self.h.segments.readRange(old, 0, blob.size)), content(0))
        self.assertIn(old[0].segment, self.h.files())
        self.assertEqual(self.h.run(), 0)  # a pass meanwhile leaves it to its removal
        self.assertIn(old[0].segment, self.h.files())
        release()
        self.assertNotIn(old[0].segment, self.h.files())
        self.assertEqual(self.h.compactor.pending, {})
        self.assertEqual(self.h.compactor.progress.segmentsRemoved, 1)
        self.assertEqual(self.h.read("k0000"), content(0))

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

    def test_deadSegmentRemovedAtOnce(self) -> None:
        """
        A segment with no live bytes left is taken first, costs no copying,
        and is removed one grace later while the pass goes on copying
        another segment's records.
        """
        keys = self.fill(64)  # segments 1, 2 and 3 full, 4 active
        dead = self.h.blob(keys[21]).extents[0].segment
        partly = self.h.blob(keys[0]).extents[0].segment
        for key in keys[21:42]:
            self.h.delete(key)
        for key in keys[:10]:
            self.h.delete(key)
        self.patch(compaction, "PACED_UNTIL", float("inf"))  # paced whatever the balance
        self.h.compactor.rate = 3000  # a record a second: the other segment's 11 take 11 s
        self.h.compactor.settle = 3.0  # it waits for that first; the dead one does not
        d = ensureDeferred(self.h.compactor.run())
        for _ in range(6):  # the grace is 5 s
            self.h.clock.advance(1)
        self.assertNoResult(d)
        self.assertNotIn(dead, self.h.files())
        self.assertIn(partly, self.h.files())
        self.assertLess(self.h.compactor.progress.bytesMoved, 11 * 3000)
        for _ in range(30):
            self.h.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 2)
        self.assertNotIn(partly, self.h.files())
        self.assertEqual(self.h.compactor.progress.bytesMoved, 11 * 3000)
        for i in range(10, 21):
            self.assertEqual(self.h.read(keys[i]), content(i))

    def test_emptiedSegmentRemovedDuringPass(self) -> None:
        """Each emptied segment is removed one grace after its last move, not at the end of the pass."""
        keys = self.fill(64)
        first, second = self.h.blob(keys[0]).extents[0].segment, self.h.blob(keys[21]).extents[0].segment
        for key in keys[:11] + keys[21:32]:
            self.h.delete(key)
        self.patch(compaction, "PACED_UNTIL", float("inf"))  # paced whatever the balance
        self.h.compactor.rate = 3000
        d = ensureDeferred(self.h.compactor.run())
        for _ in range(16):  # 10 s to copy the first segment's records, 5 s of grace
            self.h.clock.advance(1)
        self.assertNoResult(d)
        gone = {first, second} - set(self.h.files())
        self.assertEqual(len(gone), 1)
        self.assertEqual(self.h.compactor.progress.segmentsRemoved, 1)
        for _ in range(30):
            self.h.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 2)
        self.assertFalse({first, second} & set(self.h.files()))

    def test_garbageArrivingDuringPassTaken(self) -> None:
        """A segment that crosses the threshold while a pass runs is compacted by that pass."""
        keys = self.fill(64)
        late = self.h.blob(keys[42]).extents[0].segment
        for key in keys[:10]:
            self.h.delete(key)
        self.patch(compaction, "PACED_UNTIL", float("inf"))  # paced whatever the balance
        self.h.compactor.rate = 3000
        d = ensureDeferred(self.h.compactor.run())
        self.h.clock.advance(2)
        self.assertNoResult(d)
        for key in keys[42:63]:
            self.h.delete(key)
        for _ in range(40):
            self.h.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 2)
        self.assertNotIn(late, self.h.files())
        self.assertEqual(self.h.compactor.progress.passes, 1)

    def test_settleLetsDeletesPass(self) -> None:
        """
        A segment just past the threshold is copied only once it has been
        past it for C{settle} seconds: the deletes sweeping through it
        meanwhile are not copied first.
        """
        keys = self.fill(64)
        segment = self.h.blob(keys[0]).extents[0].segment
        self.h.compactor.settle = 2.0
        for key in keys[:8]:
            self.h.delete(key)
        d = ensureDeferred(self.h.compactor.run())
        self.h.clock.advance(1)
        self.assertEqual(self.h.compactor.progress.bytesMoved, 0)
        for key in keys[8:20]:
            self.h.delete(key)
        for _ in range(10):
            self.h.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertNotIn(segment, self.h.files())
        self.assertEqual(self.h.compactor.progress.bytesMoved, len(content(20)))  # the one record left
        self.assertEqual(self.h.read(keys[20]), content(20))

    def test_mostSpaceFreedPerByteCopiedFirst(self) -> None:
        """
        Candidates come by the fewest live bytes for their size, not by the
        most dead bytes: a small segment 80% dead before a full one 62% dead
        (which holds more dead bytes).
        """
        keys = self.fill(47)  # segments 1 and 2 full, 5 records in 3
        self.h.close()
        self.h.open()  # segment 3 sealed, small
        full, small = self.h.blob(keys[0]).extents[0].segment, self.h.blob(keys[42]).extents[0].segment
        for key in keys[:13] + keys[42:46]:
            self.h.delete(key)
        files = self.h.files()
        usage = self.successResultOf(self.h.metadata.segmentUsage())
        self.assertGreater(files[full] - usage[full], files[small] - usage[small])
        self.assertEqual(self.successResultOf(ensureDeferred(self.h.compactor.survey())), [small, full])

    def test_passEndsAfterPassSeconds(self) -> None:
        """A pass that has worked L{compaction.PASS_SECONDS} takes on no other segment; the next pass does."""
        self.patch(compaction, "PASS_SECONDS", 3.0)
        keys = self.fill(64)
        first, second = self.h.blob(keys[0]).extents[0].segment, self.h.blob(keys[21]).extents[0].segment
        for key in keys[:10] + keys[21:31]:
            self.h.delete(key)
        self.patch(compaction, "PACED_UNTIL", float("inf"))  # paced whatever the balance
        self.h.compactor.rate = 3000
        self.assertEqual(self.h.run(), 1)
        self.assertEqual(len({first, second} & set(self.h.files())), 1)
        self.assertEqual(self.h.run(), 1)
        self.assertFalse({first, second} & set(self.h.files()))
        self.assertEqual(self.h.compactor.progress.passes, 2)

    def test_stoppedDuringGrace(self) -> None:
        """Stopping while an emptied segment waits out its grace keeps the file; a later pass removes it."""
        segment = self.firstSegmentHalfDead()
        d = ensureDeferred(self.h.compactor.run())
        self.h.clock.advance(1)
        self.h.compactor.stopping = True
        self.h.clock.advance(10)
        self.assertEqual(self.successResultOf(d), 0)
        self.assertIn(segment, self.h.files())
        self.assertEqual(self.h.read("k0000"), content(0))
        self.h.compactor.stopping = False
        self.assertEqual(self.h.run(), 1)
        self.assertNotIn(segment, self.h.files())

    def test_failedPassStillRemoves(self) -> None:
        """A pass that fails after emptying a segment still removes it, one grace later, before it fails."""
        keys = self.fill(64)
        segment = self.h.blob(keys[0]).extents[0].segment
        for key in keys[1:21]:
            self.h.delete(key)
        store = self.h.metadata

        class SecondSurveyFails:
            """The metadata store, but its segment usage fails after the first call."""

            calls = 0

            def __getattr__(self, name: str) -> object:
                return getattr(store, name)

            def segmentUsage(self) -> "Deferred[Dict[int, int]]":
                self.calls += 1
                if self.calls > 1:
                    return fail(RuntimeError("metadata gone"))
                return store.segmentUsage()

        compactor = attrs.evolve(self.h.compactor, metadata=cast(IMetadataStore, SecondSurveyFails()))
        d = ensureDeferred(compactor.run())
        self.h.clock.advance(1)
        self.assertNoResult(d)
        self.h.clock.advance(5)
        self.failureResultOf(d, RuntimeError)
        self.assertNotIn(segment, self.h.files())
        self.assertEqual(compactor.progress.segmentsRemoved, 1)

    def test_heldBeforeReadEnds(self) -> None:
        """A removal waiting for a read does not remove the file if compaction is held when the read ends."""
        segment = self.firstSegmentHalfDead()
        d = ensureDeferred(self.h.compactor.run())
        release = self.h.segments.pin([segment])
        self.h.clock.advance(10)
        self.assertEqual(self.successResultOf(d), 0)
        hold = os.path.join(self.h.path, "compaction.hold")
        self.h.compactor.holdPath = hold
        open(hold, "w").close()
        release()
        self.assertIn(segment, self.h.files())
        self.assertEqual(self.h.compactor.pending, {})
        os.unlink(hold)
        self.assertEqual(self.h.run(), 1)
        self.assertNotIn(segment, self.h.files())
        self.assertEqual(self.h.read("k0000"), content(0))

    def test_paced(self) -> None:
        """Copying waits on the clock so as not to go faster than the rate."""
        keys = self.fill(84)  # four segments of 21 records
        for key in keys[:12]:
            self.h.delete(key)
        self.h.compactor.rate = 3000  # about a record a second
        d = ensureDeferred(self.h.compactor.run())
        self.h.clock.advance(2)
        self.assertNoResult(d)
        progress = self.h.compactor.progress
        self.assertLessEqual(progress.segmentBytes, compaction.PACED_UNTIL * progress.liveBytes)
        self.assertLessEqual(progress.bytesMoved, 3 * 3000)
        for _ in range(200):
            self.h.clock.advance(1)
        self.assertEqual(self.successResultOf(d), 1)

    def test_nothingWaitsPastTheBalance(self) -> None:
        """
        While the segment files hold more than L{compaction.PACED_UNTIL}
        times the live bytes, nothing waits: three segments two-thirds dead
        are emptied without the clock moving, though the rate would take
        7 s a segment and each has to settle for 3 s, and each is removed
        without the grace.
        """
        keys = self.fill(84)  # four segments of 21 records
        segments = {self.h.blob(keys[i]).extents[0].segment for i in (0, 21, 42)}
        for start in (0, 21, 42):
            for key in keys[start:start + 14]:
                self.h.delete(key)
        self.h.compactor.rate = 3000
        self.h.compactor.settle = 3.0
        d = ensureDeferred(self.h.compactor.run())
        self.assertTrue(self.h.compactor.pressed)
        self.assertEqual(self.h.compactor.progress.bytesMoved, 3 * 7 * 3000)
        self.h.clock.advance(0)
        self.assertEqual(self.successResultOf(d), 3)
        self.assertFalse(segments & set(self.h.files()))
        for key in keys[14:21] + keys[35:42] + keys[56:]:
            self.assertEqual(self.h.read(key), content(keys.index(key)))


class CompactionServiceTests(SynchronousTestCase):
    def harness(self) -> Harness:
        h = Harness(self, self.mktemp())
        self.addCleanup(h.close)
        h.bucket()
        return h

    def test_againAtOnceAfterProgress(self) -> None:
        """
        A pass that removed segments is followed by another at once; after
        one that found nothing the next waits 1 s, then 2, 4... up to the
        interval.
        """
        self.patch(compaction, "PACED_UNTIL", float("inf"))  # removals wait out the grace
        h = self.harness()
        for i in range(60):
            h.put("k%d" % i, content(i))
        for i in range(60):
            h.delete("k%d" % i)
        service = CompactionService(h.compactor, interval=10)
        service.startService()
        h.clock.advance(0)
        h.clock.advance(6)  # the first pass's grace: it removes segments, and the second starts at once
        self.assertGreater(h.compactor.progress.segmentsRemoved, 0)
        self.assertEqual(h.compactor.progress.passes, 2)
        for wait in (1, 2, 4, 8, 10, 10):  # the second found nothing
            h.clock.advance(wait - 0.5)
            passes = h.compactor.progress.passes
            h.clock.advance(0.5)
            self.assertEqual(h.compactor.progress.passes, passes + 1, wait)
        self.successResultOf(service.stopService())

    def test_sealedSegmentWakesIdleService(self) -> None:
        """
        An idle service sleeps the interval, unless this process seals a
        segment meanwhile (it is being written): then a pass comes within
        a second.
        """
        h = self.harness()
        service = CompactionService(h.compactor, interval=1000)
        service.startService()
        h.clock.advance(0)
        self.assertEqual(h.compactor.progress.passes, 1)
        for _ in range(100):
            h.clock.advance(1)
        self.assertEqual(h.compactor.progress.passes, 1)
        active = h.segments.activeSegment
        i = 0
        while h.segments.activeSegment == active:
            h.put("k%d" % i, content(i))
            i += 1
        h.clock.advance(1)
        self.assertEqual(h.compactor.progress.passes, 2)
        for _ in range(500):  # nothing sealed since the second pass
            h.clock.advance(1)
        self.assertEqual(h.compactor.progress.passes, 2)
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

