"""
Tests for L{fasterstore.metadata.engine}.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, List, Optional, Tuple

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata import wal
from fasterstore.metadata.engine import MetadataEngine, SnapshotService
from fasterstore.metadata.records import BlobRecord, ObjectRecord, PartRecord, UploadRecord
from fasterstore.metadata.snapshot import listSnapshots
from fasterstore.metadata.state import MetadataState
from fasterstore.metadata.wal import listWALs, walPath
from fasterstore.metrics import Metrics
from fasterstore.storage.blob import Extent, WrittenBlob
from fasterstore.threads import ImmediateRunner
from tests.unit.test_metadata_state import bucket, multipartObj, obj, uploadRecord


@attrs.define
class ManualRunner:
    """Queues blocking work until the test runs it: rounds become observable."""

    jobs: List[Tuple[Callable[..., Any], Tuple[Any, ...], "Deferred[Any]"]] = attrs.field(factory=list)

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.jobs.append((lambda: f(*args, **kwargs), (), d))
        return d

    def runNext(self) -> None:
        """Run the oldest queued job and report its outcome."""
        f, _, d = self.jobs.pop(0)
        try:
            result = f()
        except BaseException:
            d.errback(Failure())
        else:
            d.callback(result)

    def runAll(self) -> None:
        """Run jobs (including ones they queue) until none is left."""
        while self.jobs:
            self.runNext()


def written(content: bytes, segment: int = 1, offset: int = 0) -> WrittenBlob:
    """A blob as the segment store would report it, with one extent."""
    return WrittenBlob(
        size=len(content),
        extents=(Extent(segment, offset, len(content)),) if content else (),
        digests={"md5": hashlib.md5(content).digest(), "blake3": hashlib.sha256(content).digest()},
    )


def record(bucketName: str, key: str, blob: WrittenBlob) -> ObjectRecord:
    """An object record for a written blob."""
    return obj(bucketName, key, blob.contentAddress, blob.size)


def ifNoneMatch(current: Optional[ObjectRecord]) -> None:
    """The C{If-None-Match: *} precondition."""
    if current is not None:
        raise S3Error("PreconditionFailed")


class EngineTestCase(SynchronousTestCase):
    """Helpers: engines over a temp root, with recorded data syncs."""

    def setUp(self) -> None:
        self.root = self.mktemp()
        self.events: List[str] = []
        self.clock = Clock()

    def syncData(self) -> Callable[[], None]:
        self.events.append("prepare")
        return lambda: self.events.append("data-fsync")

    def engine(self, runner: Any = None, load: bool = True, **kw: Any) -> MetadataEngine:
        kw.setdefault("fsync", False)
        e = MetadataEngine(self.root, self.clock, runner or ImmediateRunner(), self.syncData, **kw)
        self.addCleanup(lambda: e._wal.close() if e._wal is not None else None)
        if load:
            d = e.load()
            if isinstance(e.runner, ManualRunner):
                e.runner.runNext()
            self.successResultOf(d)
        return e

    def loadedState(self) -> MetadataState:
        """The state a new engine recovers from disk."""
        return self.engine().state

    def withBucket(self, runner: Any = None, **kw: Any) -> MetadataEngine:
        e = self.engine(runner, **kw)
        d = e.createBucket(bucket("b"))
        if isinstance(runner, ManualRunner):
            runner.runAll()
        self.successResultOf(d)
        return e


class LifecycleTests(EngineTestCase):
    """Loading and refusing writes before it."""

    def test_loadEmpty(self) -> None:
        """A new root loads an empty state and creates WAL generation 1."""
        e = self.engine()
        self.assertTrue(e.ready)
        self.assertEqual(e.listBuckets(), [])
        self.assertEqual(listWALs(e.metaDirectory), [1])
        self.assertFalse(e.needsSnapshot)

    def test_writesBeforeLoad(self) -> None:
        """Writes before load are refused with ServiceUnavailable."""
        e = self.engine(load=False)
        self.assertFalse(e.ready)
        f = self.failureResultOf(e.createBucket(bucket("b")), S3Error)
        self.assertEqual(f.value.code, "ServiceUnavailable")

    def test_loadTwice(self) -> None:
        """Loading twice is a programming error."""
        e = self.engine()
        self.failureResultOf(e.load(), RuntimeError)


class BucketTests(EngineTestCase):
    """createBucket and deleteBucket."""

    def test_create(self) -> None:
        """A created bucket is visible once the Deferred fires."""
        e = self.engine()
        self.assertIsNone(self.successResultOf(e.createBucket(bucket("b"))))
        self.assertEqual(e.getBucket("b"), bucket("b"))
        self.assertEqual(e.listBuckets(), [bucket("b")])

    def test_createConflicts(self) -> None:
        """The same owner gets BucketAlreadyOwnedByYou, anyone else BucketAlreadyExists."""
        e = self.withBucket()
        f = self.failureResultOf(e.createBucket(bucket("b")), S3Error)
        self.assertEqual(f.value.code, "BucketAlreadyOwnedByYou")
        f = self.failureResultOf(e.createBucket(bucket("b", "bob")), S3Error)
        self.assertEqual(f.value.code, "BucketAlreadyExists")

    def test_createPendingConflict(self) -> None:
        """A creation not yet durable already takes the name."""
        runner = ManualRunner()
        e = self.engine(runner)
        first = e.createBucket(bucket("b"))
        f = self.failureResultOf(e.createBucket(bucket("b", "bob")), S3Error)
        self.assertEqual(f.value.code, "BucketAlreadyExists")
        self.assertIsNone(e.getBucket("b"))
        runner.runAll()
        self.successResultOf(first)

    def test_delete(self) -> None:
        """An empty bucket can be deleted by its owner."""
        e = self.withBucket()
        self.successResultOf(e.deleteBucket("b", "alice"))
        self.assertIsNone(e.getBucket("b"))

    def test_deleteErrors(self) -> None:
        """Missing bucket: NoSuchBucket; someone else's: AccessDenied; non-empty: BucketNotEmpty."""
        e = self.withBucket()
        self.assertEqual(self.failureResultOf(e.deleteBucket("zz", "alice"), S3Error).value.code, "NoSuchBucket")
        self.assertEqual(self.failureResultOf(e.deleteBucket("b", "bob"), S3Error).value.code, "AccessDenied")
        blob = written(b"x")
        self.successResultOf(e.putObject(record("b", "k", blob), blob))
        self.assertEqual(self.failureResultOf(e.deleteBucket("b", "alice"), S3Error).value.code, "BucketNotEmpty")

    def test_deleteWithPendingPut(self) -> None:
        """A put not yet durable makes the bucket non-empty."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        blob = written(b"x")
        put = e.putObject(record("b", "k", blob), blob)
        self.assertTrue(e.state.bucketIsEmpty("b"))
        self.assertEqual(self.failureResultOf(e.deleteBucket("b", "alice"), S3Error).value.code, "BucketNotEmpty")
        runner.runAll()
        self.successResultOf(put)

    def test_deleteWithPendingDelete(self) -> None:
        """Pending deletes of every object make the bucket deletable."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        blob = written(b"x")
        put = e.putObject(record("b", "k", blob), blob)
        runner.runAll()
        self.successResultOf(put)
        deleted = e.deleteObject("b", "k")
        gone = e.deleteBucket("b", "alice")
        runner.runAll()
        self.successResultOf(deleted)
        self.successResultOf(gone)
        self.assertEqual(e.listBuckets(), [])

    def test_putIntoPendingDeletedBucket(self) -> None:
        """A bucket whose deletion is pending takes no new objects."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        gone = e.deleteBucket("b", "alice")
        blob = written(b"x")
        self.assertEqual(
            self.failureResultOf(e.putObject(record("b", "k", blob), blob), S3Error).value.code, "NoSuchBucket"
        )
        runner.runAll()
        self.successResultOf(gone)


class ObjectTests(EngineTestCase):
    """putObject, deleteObject, discard and the reads."""

    def test_putAndRead(self) -> None:
        """A put object, its blob and its listing are visible once durable."""
        e = self.withBucket()
        blob = written(b"hello", 3, 100)
        rec = record("b", "k", blob)
        self.assertEqual(self.successResultOf(e.putObject(rec, blob)), rec)
        self.assertEqual(e.getObject("b", "k"), rec)
        self.assertEqual(e.getBlob(blob.contentAddress), BlobRecord(blob.contentAddress, 5, blob.extents, 1))
        self.assertEqual([o.key for o in e.listObjects("b").objects], ["k"])
        self.assertEqual(e.listObjects("b", maxKeys=0).objects, [])

    def test_readsHideUndurable(self) -> None:
        """Until the round's fsync completes nothing is visible and nothing fires."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        blob = written(b"hello")
        d = e.putObject(record("b", "k", blob), blob)
        self.assertNoResult(d)
        self.assertIsNone(e.getObject("b", "k"))
        self.assertEqual(e.listObjects("b").objects, [])
        runner.runNext()
        self.assertEqual(self.successResultOf(d).key, "k")
        self.assertIsNotNone(e.getObject("b", "k"))

    def test_noSuchBucket(self) -> None:
        """A put into a missing bucket fails and its bytes become garbage."""
        e = self.engine()
        blob = written(b"hello", 7)
        self.assertEqual(
            self.failureResultOf(e.putObject(record("zz", "k", blob), blob), S3Error).value.code, "NoSuchBucket"
        )
        self.assertEqual(e.state.garbage, {7: 5})
        f = self.failureResultOf(e.deleteObject("zz", "k"), S3Error)
        self.assertEqual(f.value.code, "NoSuchBucket")
        self.assertRaises(S3Error, e.listObjects, "zz")

    def test_deleteMissing(self) -> None:
        """Deleting a missing key succeeds at once with None, logging nothing."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        self.assertIsNone(self.successResultOf(e.deleteObject("b", "nope")))
        self.assertEqual(runner.jobs, [])

    def test_delete(self) -> None:
        """Deleting fires with the version deleted, and the key is gone."""
        e = self.withBucket()
        blob = written(b"x")
        rec = self.successResultOf(e.putObject(record("b", "k", blob), blob))
        self.assertEqual(self.successResultOf(e.deleteObject("b", "k")), rec)
        self.assertIsNone(e.getObject("b", "k"))
        self.assertIsNone(e.getBlob(blob.contentAddress))

    def test_deleteAfterPendingDelete(self) -> None:
        """
        A second delete racing a pending one waits for it, so its caller can
        never read the key back after being told it is gone.
        """
        runner = ManualRunner()
        e = self.withBucket(runner)
        blob = written(b"x")
        put = e.putObject(record("b", "k", blob), blob)
        runner.runAll()
        self.successResultOf(put)
        first = e.deleteObject("b", "k")
        second = e.deleteObject("b", "k")
        self.assertNoResult(second)
        runner.runAll()
        self.assertEqual(self.successResultOf(first).key, "k")  # type: ignore[union-attr]
        self.assertIsNone(self.successResultOf(second))

    def test_deletePrecondition(self) -> None:
        """A delete precondition sees the current version and can refuse."""
        e = self.withBucket()
        blob = written(b"x")
        rec = self.successResultOf(e.putObject(record("b", "k", blob), blob))
        seen: List[Optional[ObjectRecord]] = []

        def refuse(current: Optional[ObjectRecord]) -> None:
            seen.append(current)
            raise S3Error("PreconditionFailed")

        self.failureResultOf(e.deleteObject("b", "k", refuse), S3Error)
        self.assertEqual(seen, [rec])
        self.assertEqual(e.getObject("b", "k"), rec)

    def test_dedupRefcounts(self) -> None:
        """
        Two objects with the same content share one blob: deleting one keeps
        it, deleting the other drops it and counts its bytes as garbage.
        """
        e = self.withBucket()
        one, two = written(b"same", 1, 0), written(b"same", 1, 50)
        self.successResultOf(e.putObject(record("b", "one", one), one))
        self.successResultOf(e.putObject(record("b", "two", two), two))
        address = one.contentAddress
        self.assertEqual(e.getBlob(address), BlobRecord(address, 4, one.extents, 2))
        self.assertEqual(e.state.garbage, {1: 4})  # the second copy
        self.successResultOf(e.deleteObject("b", "one"))
        self.assertEqual(e.getBlob(address).refs, 1)  # type: ignore[union-attr]
        self.successResultOf(e.deleteObject("b", "two"))
        self.assertIsNone(e.getBlob(address))
        self.assertEqual(e.state.garbage, {1: 8})
        self.assertEqual(self.loadedState(), e.state)

    def test_discard(self) -> None:
        """discard records a failed upload's bytes as garbage."""
        e = self.engine()
        self.successResultOf(e.discard(written(b"abc", 4)))
        self.successResultOf(e.discard(written(b"")))
        self.assertEqual(e.state.garbage, {4: 3})
        self.assertEqual(self.loadedState().garbage, {4: 3})


class PreconditionRaceTests(EngineTestCase):
    """Conditional writes see the writes that are not durable yet."""

    def test_ifNoneMatchRace(self) -> None:
        """
        Of two racing C{If-None-Match: *} PUTs only the first wins; the
        loser's bytes are discarded.
        """
        runner = ManualRunner()
        e = self.withBucket(runner)
        a, b = written(b"first", 1, 0), written(b"second", 2, 0)
        first = e.putObject(record("b", "k", a), a, ifNoneMatch)
        second = e.putObject(record("b", "k", b), b, ifNoneMatch)
        self.assertEqual(self.failureResultOf(second, S3Error).value.code, "PreconditionFailed")
        runner.runAll()
        self.assertEqual(self.successResultOf(first).blob, a.contentAddress)
        self.assertEqual(e.getObject("b", "k").blob, a.contentAddress)  # type: ignore[union-attr]
        self.assertEqual(e.state.garbage, {2: 6})

    def test_seesPending(self) -> None:
        """The precondition is given the latest pending version of the key."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        a = written(b"first")
        rec = record("b", "k", a)
        e.putObject(rec, a)
        seen: List[Optional[ObjectRecord]] = []
        e.putObject(rec, a, seen.append)
        e.deleteObject("b", "k")
        e.putObject(rec, a, seen.append)
        self.assertEqual(seen, [rec, None])
        runner.runAll()
        self.assertEqual(e.getObject("b", "k"), rec)

    def test_anyExceptionRefuses(self) -> None:
        """Any exception from a precondition refuses the write and discards the bytes."""
        e = self.withBucket()
        a = written(b"abc", 9)

        def broken(current: Optional[ObjectRecord]) -> None:
            raise ZeroDivisionError()

        self.failureResultOf(e.putObject(record("b", "k", a), a, broken), ZeroDivisionError)
        self.assertEqual(e.state.garbage, {9: 3})


class GroupCommitTests(EngineTestCase):
    """Rounds: batching, durability order, failures, metrics."""

    def test_batching(self) -> None:
        """
        Writes arriving while a round runs share the next round: 50 puts
        take two runner jobs, two WAL records and two fsyncs.
        """
        runner = ManualRunner()
        metrics = Metrics()
        e = self.withBucket(runner, metrics=metrics)
        self.events.clear()
        blobs = [written(b"%d" % i) for i in range(50)]
        ds = [e.putObject(record("b", "k%02d" % i, blob), blob) for i, blob in enumerate(blobs)]
        self.assertEqual(len(runner.jobs), 1)  # the first put's round
        runner.runNext()
        for d in ds[1:]:
            self.assertNoResult(d)
        self.assertEqual(len(runner.jobs), 1)  # everything else, in one round
        runner.runNext()
        self.assertEqual([self.successResultOf(d).key for d in ds], ["k%02d" % i for i in range(50)])
        self.assertEqual(self.events.count("prepare"), 2)
        self.assertEqual(e.state.objectCount, 50)
        sample = metrics.registry.get_sample_value
        self.assertEqual(sample("fasterstore_group_commit_batch_count"), 3.0)  # bucket + 2 rounds
        self.assertEqual(sample("fasterstore_group_commit_batch_sum"), 51.0)
        self.assertEqual(sample("fasterstore_fsync_seconds_count"), 3.0)
        self.assertEqual(sample("fasterstore_objects"), 50.0)
        self.assertEqual(sample("fasterstore_stored_bytes"), float(sum(b.size for b in blobs)))
        with open(walPath(e.metaDirectory, 1), "rb") as f:
            data = f.read()
        records = 0
        offset = 0
        while offset < len(data):
            length, _ = wal.HEADER.unpack_from(data, offset)
            offset += wal.HEADER.size + length
            records += 1
        self.assertEqual(records, 3)

    def test_durabilityOrder(self) -> None:
        """
        C{syncData} is called on the reactor when the round starts; its
        blocking function runs before the WAL is written and fdatasynced;
        the writer hears back only after both.
        """
        runner = ManualRunner()
        self.patch(wal, "_fdatasync", lambda fd: self.events.append("wal-fsync"))
        realWrite = wal._write

        def recordingWrite(fd: int, data: Any) -> int:
            self.events.append("wal-write")
            return realWrite(fd, data)

        self.patch(wal, "_write", recordingWrite)
        e = self.withBucket(runner, fsync=True)
        self.events.clear()
        blob = written(b"x")
        d = e.putObject(record("b", "k", blob), blob)
        self.assertEqual(self.events, ["prepare"])
        runner.runNext()
        self.assertEqual(self.events, ["prepare", "data-fsync", "wal-write", "wal-fsync"])
        self.successResultOf(d)

    def test_noFsync(self) -> None:
        """With fsync=False the WAL is never fdatasynced (data sync still runs)."""
        calls: List[int] = []
        self.patch(wal, "_fdatasync", calls.append)
        e = self.withBucket(fsync=False)
        self.assertEqual(calls, [])
        self.assertIn("data-fsync", self.events)
        self.assertIsNotNone(e.getBucket("b"))

    def test_roundFailure(self) -> None:
        """
        An I/O error fails every write in the round and every queued one,
        and the engine refuses writes afterwards; reads still work.
        """
        runner = ManualRunner()
        e = self.withBucket(runner, fsync=True)

        def broken(fd: int) -> None:
            raise OSError(5, "Input/output error")

        self.patch(wal, "_fdatasync", broken)
        a, b = written(b"a"), written(b"b")
        first = e.putObject(record("b", "a", a), a)
        second = e.putObject(record("b", "b", b), b)
        runner.runNext()
        self.failureResultOf(first, OSError)
        self.failureResultOf(second, OSError)
        self.assertIsNone(e.getObject("b", "a"))
        self.assertEqual(e.getBucket("b"), bucket("b"))
        f = self.failureResultOf(e.createBucket(bucket("c")), S3Error)
        self.assertEqual(f.value.code, "InternalError")
        self.assertEqual(runner.jobs, [])
        self.flushLoggedErrors(OSError)

    def test_syncDataFailure(self) -> None:
        """A failing data sync fails the round before anything is logged."""
        e = self.withBucket()

        def broken() -> None:
            raise OSError(28, "No space left on device")

        e.syncData = lambda: broken
        blob = written(b"x")
        self.failureResultOf(e.putObject(record("b", "k", blob), blob), OSError)
        self.flushLoggedErrors(OSError)
        self.assertEqual(self.loadedState(), e.state)
        self.assertIsNone(e.getObject("b", "k"))


class RecoveryTests(EngineTestCase):
    """Restart after a crash, snapshots and closing."""

    def populate(self, e: MetadataEngine) -> None:
        """Buckets and objects, with replacements and deletes."""
        self.successResultOf(e.createBucket(bucket("b")))
        self.successResultOf(e.createBucket(bucket("c", "bob")))
        for i in range(10):
            blob = written(b"%d" % (i % 3), 1, i * 10)
            self.successResultOf(e.putObject(record("b" if i % 2 else "c", "k%d" % (i % 4), blob), blob))
        self.successResultOf(e.deleteObject("b", "k1"))
        self.successResultOf(e.discard(written(b"lost", 5)))

    def test_crashReplay(self) -> None:
        """
        After a crash (no close) with torn bytes at the end of the WAL, a new
        engine recovers exactly the acknowledged state and appends cleanly.
        """
        e = self.engine()
        self.populate(e)
        with open(walPath(e.metaDirectory, 1), "ab") as f:
            f.write(b"\x40\x00\x00\x00\x11\x22\x33\x44[{\"op\":\"delete_b")
        again = self.engine()
        self.assertEqual(again.state, e.state)
        blob = written(b"after")
        self.successResultOf(again.putObject(record("b", "after", blob), blob))
        third = self.engine()
        self.assertEqual(third.state, again.state)
        self.assertIsNotNone(third.getObject("b", "after"))

    def test_snapshot(self) -> None:
        """A snapshot covers the log so far; a restart loads it and replays the rest."""
        e = self.engine()
        self.populate(e)
        self.assertTrue(e.needsSnapshot)
        self.successResultOf(e.snapshot())
        self.assertFalse(e.needsSnapshot)
        self.assertEqual(listSnapshots(e.metaDirectory), [1])
        self.assertEqual(listWALs(e.metaDirectory), [2])
        self.successResultOf(e.deleteObject("c", "k0"))
        self.assertEqual(self.loadedState(), e.state)

    def test_snapshotWithoutWrites(self) -> None:
        """Without new writes a snapshot neither rotates nor writes anything."""
        e = self.engine()
        self.successResultOf(e.snapshot())
        self.assertEqual(listSnapshots(e.metaDirectory), [])
        self.assertEqual(listWALs(e.metaDirectory), [1])

    def test_snapshotBetweenRounds(self) -> None:
        """
        Rotation waits for the running round; writes queued meanwhile go to
        the new generation; the snapshot is built by a separate runner job.
        """
        runner = ManualRunner()
        e = self.withBucket(runner)
        a, b = written(b"a"), written(b"b")
        first = e.putObject(record("b", "a", a), a)
        snap = e.snapshot()
        second = e.putObject(record("b", "b", b), b)
        runner.runNext()  # round with "a"
        self.successResultOf(first)
        self.assertNoResult(snap)
        runner.runNext()  # rotation
        self.assertEqual(listWALs(e.metaDirectory), [1, 2])
        runner.runAll()  # round with "b" and the checkpoint, in either order
        self.successResultOf(second)
        self.successResultOf(snap)
        self.assertEqual(listSnapshots(e.metaDirectory), [1])
        self.assertEqual(self.loadedState(), e.state)

    def test_oneSnapshotAtATime(self) -> None:
        """A snapshot requested while one runs waits for it instead of starting another."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        first = e.snapshot()
        second = e.snapshot()
        self.assertEqual(len(runner.jobs), 1)
        runner.runAll()
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual(listSnapshots(e.metaDirectory), [1])

    def test_failedCheckpointRetried(self) -> None:
        """If building the snapshot fails, the next one still covers the sealed files."""
        e = self.engine()
        self.populate(e)
        from fasterstore.metadata import snapshot as snapshotModule

        def boom(*a: Any) -> None:
            raise OSError(28, "No space left on device")

        original = snapshotModule.writeSnapshot
        self.patch(snapshotModule, "writeSnapshot", boom)
        self.failureResultOf(e.snapshot(), OSError)
        self.assertTrue(e.needsSnapshot)
        self.patch(snapshotModule, "writeSnapshot", original)
        self.successResultOf(e.snapshot())
        self.assertEqual(listSnapshots(e.metaDirectory), [1])
        self.assertEqual(self.loadedState(), e.state)

    def test_close(self) -> None:
        """close waits for pending writes, takes a final snapshot and refuses writes."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        blob = written(b"x")
        put = e.putObject(record("b", "k", blob), blob)
        closed = e.close()
        self.assertNoResult(closed)
        self.assertEqual(self.failureResultOf(e.createBucket(bucket("c")), S3Error).value.code,
                         "ServiceUnavailable")
        runner.runAll()
        self.successResultOf(put)
        self.successResultOf(closed)
        self.assertFalse(e.ready)
        self.assertEqual(listSnapshots(e.metaDirectory), [1])
        self.assertEqual(listWALs(e.metaDirectory), [2])
        self.assertEqual(os.path.getsize(walPath(e.metaDirectory, 2)), 0)
        self.assertEqual(self.loadedState(), e.state)

    def test_closeTwice(self) -> None:
        """A second close while the first runs waits for it; after it, close is a no-op."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        first, second = e.close(), e.close()
        self.assertNoResult(second)
        runner.runAll()
        self.successResultOf(first)
        self.successResultOf(second)
        self.successResultOf(e.close())
        self.assertEqual(listSnapshots(e.metaDirectory), [1])

    def test_restartSnapshotsSealed(self) -> None:
        """Generations sealed before a crash but never snapshotted are snapshotted next time."""
        e = self.engine()
        self.populate(e)
        e._wal.rotate()  # type: ignore[union-attr]  # as if the checkpoint crashed
        again = self.engine()
        self.assertTrue(again.needsSnapshot)
        self.successResultOf(again.snapshot())
        self.assertEqual(listSnapshots(again.metaDirectory), [1])
        self.assertEqual(self.loadedState(), e.state)


class SnapshotServiceTests(EngineTestCase):
    """The periodic snapshot service."""

    def test_periodic(self) -> None:
        """Every interval a snapshot is taken, only if the WAL has grown."""
        e = self.engine()
        service = SnapshotService(e, self.clock, interval=30)
        service.startService()
        self.assertEqual(listSnapshots(e.metaDirectory), [])
        self.successResultOf(e.createBucket(bucket("b")))
        self.clock.advance(30)
        self.assertEqual(listSnapshots(e.metaDirectory), [1])
        self.clock.advance(30)
        self.assertEqual(listWALs(e.metaDirectory), [2])  # nothing new: no rotation
        self.successResultOf(e.createBucket(bucket("c")))
        self.clock.advance(30)
        self.assertEqual(listSnapshots(e.metaDirectory), [2])
        self.successResultOf(service.stopService())

    def test_failureKeepsRunning(self) -> None:
        """A failed snapshot is logged, retried next interval, and the service keeps going."""
        from fasterstore.metadata import snapshot as snapshotModule

        def boom(*a: Any) -> None:
            raise OSError(28, "No space left on device")

        original = snapshotModule.writeSnapshot
        self.patch(snapshotModule, "writeSnapshot", boom)
        e = self.engine()
        self.successResultOf(e.createBucket(bucket("b")))
        service = SnapshotService(e, self.clock, interval=10)
        service.startService()
        self.clock.advance(10)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)
        self.assertTrue(service.running)
        self.patch(snapshotModule, "writeSnapshot", original)
        self.clock.advance(10)
        self.assertEqual(listSnapshots(e.metaDirectory), [1])
        self.successResultOf(service.stopService())

    def test_notLoaded(self) -> None:
        """Before the engine is loaded the service does nothing."""
        e = self.engine(load=False)
        service = SnapshotService(e, self.clock)
        service.startService()
        self.clock.advance(120)
        self.successResultOf(service.stopService())


# -- equivalence of live state, replay and snapshots --------------------------

_buckets = st.sampled_from(["b1", "b1", "b1", "b2"])
_ops = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(["b1", "b2"]), st.sampled_from(["alice", "bob"])),
    st.tuples(st.just("deleteBucket"), _buckets, st.sampled_from(["alice", "bob"])),
    st.tuples(st.just("put"), _buckets, st.sampled_from(["k1", "k2", "a/k3"]),
              st.sampled_from([b"", b"x", b"yy", b"zzz"]), st.booleans()),
    st.tuples(st.just("put"), _buckets, st.sampled_from(["k1", "k2", "a/k3"]),
              st.sampled_from([b"", b"x", b"yy", b"zzz"]), st.booleans()),
    st.tuples(st.just("delete"), _buckets, st.sampled_from(["k1", "k2", "a/k3"])),
    st.tuples(st.just("discard"), st.sampled_from([b"q", b"rr"])),
    st.tuples(st.just("snapshot")),
    st.tuples(st.just("round")),
    st.tuples(st.just("createUpload"), _buckets, st.sampled_from(["k1", "a/k3"])),
    st.tuples(st.just("part"), st.integers(0, 2), st.integers(1, 3), st.sampled_from([b"x", b"yy", b"p"])),
    st.tuples(st.just("part"), st.integers(0, 2), st.integers(1, 3), st.sampled_from([b"x", b"yy", b"p"])),
    st.tuples(st.just("complete"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("abort"), st.integers(0, 2)),
    st.tuples(st.just("copy"), _buckets, st.sampled_from(["k1", "k2", "a/k3"]), _buckets,
              st.sampled_from(["k1", "k2"])),
    st.tuples(st.just("tags"), _buckets, st.sampled_from(["k1", "k2", "a/k3"])),
    st.tuples(st.just("config"), _buckets, st.sampled_from([None, "<x/>"])),
)


def _copyTo(bucketName: str, key: str) -> Callable[[ObjectRecord], ObjectRecord]:
    def build(source: ObjectRecord) -> ObjectRecord:
        return attrs.evolve(source, bucket=bucketName, key=key)
    return build


def _completeAll(upload: UploadRecord) -> ObjectRecord:
    if not upload.parts:
        raise S3Error("InvalidPart")
    return multipartObj(upload.bucket, upload.key, upload.parts)


class EquivalenceTests(EngineTestCase):
    """Whatever happens, disk recovery equals the live state."""

    @given(st.lists(_ops, max_size=40))
    @settings(max_examples=100, deadline=None)
    def test_replayEqualsLive(self, ops: List[Tuple[Any, ...]]) -> None:
        """
        Random writes, with random group-commit boundaries and snapshots in
        between: recovering from disk (snapshot + WAL replay) gives the state
        built live, and so does recovering after a final snapshot.
        """
        self.root = self.mktemp()
        runner = ManualRunner()
        e = self.engine(runner)
        offset = 0
        results = []
        uploads: List[str] = []
        for op in [("create", "b1", "alice")] + ops:
            kind = op[0]
            d: Deferred[Any]
            if kind == "create":
                d = e.createBucket(bucket(op[1], op[2]))
            elif kind == "deleteBucket":
                d = e.deleteBucket(op[1], op[2])
            elif kind == "put":
                offset += 10
                blob = written(op[3], 1 + offset % 3, offset)
                d = e.putObject(record(op[1], op[2], blob), blob, ifNoneMatch if op[4] else None)
            elif kind == "delete":
                d = e.deleteObject(op[1], op[2])
            elif kind == "discard":
                offset += 10
                d = e.discard(written(op[1], 4, offset))
            elif kind == "snapshot":
                d = e.snapshot()
            elif kind == "createUpload":
                uploads.append("u%d" % len(uploads))
                d = e.createUpload(uploadRecord(uploads[-1], op[1], op[2], float(len(uploads))))
            elif kind in ("part", "complete", "abort"):
                uploadId = uploads[-1 - op[1]] if op[1] < len(uploads) else "none"
                if kind == "part":
                    offset += 10
                    blob = written(op[3], 1 + offset % 3, offset)
                    p = PartRecord(op[2], blob.size, "e" * 32, blob.contentAddress, 1.0, (("crc32", "AA=="),))
                    d = e.putPart(uploadId, p, blob)
                elif kind == "complete":
                    d = e.completeUpload(uploadId, _completeAll, ifNoneMatch if op[2] else None)
                else:
                    d = e.abortUpload(uploadId)
            elif kind == "copy":
                d = e.copyObject(op[1], op[2], _copyTo(op[3], op[4]))
            elif kind == "tags":
                d = e.setObjectTags(op[1], op[2], (("t", "v"),))
            elif kind == "config":
                d = e.setBucketConfig(op[1], "cors", op[2])
            else:
                runner.runAll()
                continue
            results.append(d.addErrback(lambda f: f.trap(S3Error)))
        runner.runAll()
        for d in results:
            self.successResultOf(d)
        live = e.state
        recovered = self.loadedState()
        self.assertEqual(recovered, live)
        self.successResultOf(self.engine().snapshot())
        self.assertEqual(self.loadedState(), live)

