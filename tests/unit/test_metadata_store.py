"""
Tests for L{fasterstore.metadata.sqlite}, L{fasterstore.metadata.listing} and
L{fasterstore.metadata.records}: the behaviour suite of
L{fasterstore.metadata.testing} run against the SQLite store (each write its
own round, and writes batched into shared rounds), plus what only the SQLite
store has: group commit, failing rounds, several processes on one file,
file modes.
"""

from __future__ import annotations

import bisect
import errno
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.listing import commonPrefix, prefixSuccessor, walk
from fasterstore.metadata.records import ENABLED, BucketRecord, ObjectRecord, ObjectSummary, PartRecord, UploadRecord
from fasterstore.metadata.sqlite import DATABASE_NAME, SCHEMA_VERSION, SQLiteMetadataStore, connect
from fasterstore.metadata.store import IMetadataStore, Totals
from fasterstore.metadata.testing import (
    MetadataStoreBehaviour,
    bucket,
    ifNoneMatch,
    multipartObj,
    obj,
    partRecord,
    record,
    uploadRecord,
    versioningSetter,
    written,
)
from fasterstore.metrics import Metrics
from fasterstore.threads import ImmediateRunner
from tests.unit.test_files import UMASKS, assertPrivateTree, modeOf, setUmask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@attrs.define
class ManualRunner:
    """Queues blocking work until the test runs it: rounds become observable."""

    jobs: List[Tuple[Callable[[], Any], "Deferred[Any]"]] = attrs.field(factory=list)

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.jobs.append((lambda: f(*args, **kwargs), d))
        return d

    def runNext(self) -> None:
        """Run the oldest queued job and report its outcome."""
        f, d = self.jobs.pop(0)
        try:
            result = f()
        except BaseException:
            d.errback(Failure())
        else:
            d.callback(result)

    def runRound(self) -> None:
        """
        Run the oldest job, a commit round's first step, and the last step
        it queued, if it did: one whole round of a store.
        """
        waiting = len(self.jobs)
        self.runNext()
        if len(self.jobs) == waiting:
            f, d = self.jobs.pop()
            self.jobs.insert(0, (f, d))
            self.runNext()

    def runAll(self) -> None:
        """Run jobs (including ones they queue) until none is left."""
        while self.jobs:
            self.runNext()


def runConcurrently(
    jobs: Sequence[Tuple[Callable[[], Any], "Deferred[Any]"]], then: Callable[[int], None] = lambda i: None
) -> None:
    """
    Run runner jobs in threads of their own, all released at once (as two
    processes' commit rounds would run); report each outcome here as it
    comes, and call C{then} with its index (to run what the outcome
    queued, such as the rest of a round) before waiting for the next.
    """
    outcomes: "queue.Queue[Tuple[int, bool, Any]]" = queue.Queue()
    start = threading.Barrier(len(jobs))

    def work(i: int, f: Callable[[], Any]) -> None:
        start.wait()
        try:
            outcomes.put((i, True, f()))
        except BaseException:
            outcomes.put((i, False, Failure()))

    threads = [threading.Thread(target=work, args=(i, f), daemon=True) for i, (f, _) in enumerate(jobs)]
    for t in threads:
        t.start()
    for _ in jobs:
        i, ok, value = outcomes.get(timeout=60)
        d = jobs[i][1]
        if ok:
            d.callback(value)
        else:
            d.errback(value)
        then(i)
    for t in threads:
        t.join(60)


def sqliteError(message: str, code: int, name: str, kind: type = sqlite3.OperationalError) -> sqlite3.Error:
    """An error as SQLite's module raises it, with its result code."""
    e = kind(message)
    e.sqlite_errorcode = code
    e.sqlite_errorname = name
    return e


def diskFull() -> sqlite3.Error:
    return sqliteError("database or disk is full", sqlite3.SQLITE_FULL, "SQLITE_FULL")


class FaultyConnection:
    """
    A writer connection that records the statements it runs and raises the
    errors queued for one (C{None} in the queue lets that execution through).
    """

    def __init__(self, db: sqlite3.Connection, events: List[str], faults: Dict[str, List[Optional[BaseException]]]):
        self._db = db
        self._events = events
        self._faults = faults

    def execute(self, sql: str, *args: Any) -> Any:
        pending = self._faults.get(sql)
        if pending:
            fault = pending.pop(0)
            if fault is not None:
                self._events.append("failed " + sql)
                raise fault
        if sql in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            self._events.append(sql)
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


class SQLiteCase(SynchronousTestCase):
    """Helpers: stores in temp directories with recorded data syncs and faultable writers."""

    def setUp(self) -> None:
        self.events: List[str] = []
        self.faults: Dict[str, List[Optional[BaseException]]] = {}
        self.writers: List[FaultyConnection] = []

    def syncData(self) -> Callable[[], None]:
        self.events.append("prepare")
        return lambda: self.events.append("data-fsync")

    def connector(self, path: str, readOnly: bool, fsync: bool) -> Any:
        db = connect(path, readOnly, fsync)
        if readOnly:
            return db
        writer = FaultyConnection(db, self.events, self.faults)
        self.writers.append(writer)
        return writer

    def newPath(self) -> str:
        return os.path.join(self.mktemp(), "meta", DATABASE_NAME)

    def openStore(self, path: Optional[str] = None, runner: Any = None, **kw: Any) -> SQLiteMetadataStore:
        """An opened store on C{path} (a new one by default), closed at cleanup."""
        kw.setdefault("fsync", False)
        kw.setdefault("connector", self.connector)
        store = SQLiteMetadataStore(path or self.newPath(), runner or ImmediateRunner(), self.syncData, **kw)
        d = store.open()
        if isinstance(store.runner, ManualRunner):
            store.runner.runAll()
        self.successResultOf(d)
        self.addCleanup(lambda: store.close() and None)
        return store

    def done(self, store: SQLiteMetadataStore, d: "Deferred[Any]") -> Any:
        if isinstance(store.runner, ManualRunner):
            store.runner.runAll()
        return self.successResultOf(d)

    def code(self, d: "Deferred[Any]") -> str:
        value = self.failureResultOf(d, S3Error).value
        assert isinstance(value, S3Error)
        return value.code


# -- the behaviour suite -------------------------------------------------------------


class SQLiteStoreTests(MetadataStoreBehaviour, SQLiteCase):
    """The behaviour suite, each write committing in a round of its own (ImmediateRunner)."""

    def makeStore(self) -> IMetadataStore:
        return self.openStore()

    def reopen(self, store: IMetadataStore) -> IMetadataStore:
        assert isinstance(store, SQLiteMetadataStore)
        self.settle()
        self.successResultOf(store.close())
        return self.openStore(store.path, store.runner)


class SQLiteBatchedStoreTests(SQLiteStoreTests):
    """
    The behaviour suite with rounds the test runs: writes issued together
    share commit rounds, so validation must see the batch's earlier writes.
    """

    def setUp(self) -> None:
        super().setUp()
        self.runner = ManualRunner()

    def makeStore(self) -> IMetadataStore:
        return self.openStore(runner=self.runner)

    def settle(self) -> None:
        self.runner.runAll()


# -- what only the SQLite store has ---------------------------------------------------


class LifecycleTests(SQLiteCase):
    """Opening, closing, schema and file modes."""

    def test_openTwice(self) -> None:
        """Opening an open store is a programming error."""
        store = self.openStore()
        self.failureResultOf(store.open(), RuntimeError)
        self.assertTrue(store.ready)

    def test_refusedUntilOpen(self) -> None:
        """
        Writes and reads issued while open() runs are refused with
        ServiceUnavailable (the interface); once open, they succeed.
        """
        runner = ManualRunner()
        store = SQLiteMetadataStore(self.newPath(), runner, self.syncData, fsync=False)
        opened = store.open()
        self.addCleanup(lambda: store.close() and None)
        self.assertFalse(store.ready)
        for d in (store.createBucket(bucket("b")), store.getBucket("b")):
            self.assertEqual(self.failureResultOf(d, S3Error).value.code, "ServiceUnavailable")
        runner.runAll()
        self.successResultOf(opened)
        created = store.createBucket(bucket("b"))
        runner.runAll()
        self.assertIsNone(self.successResultOf(created))
        self.assertEqual(self.successResultOf(store.getBucket("b")), bucket("b"))

    def test_notOpen(self) -> None:
        """Before open nothing is ready; probe and discard do nothing and never fail."""
        store = SQLiteMetadataStore(self.newPath(), ImmediateRunner(), self.syncData, fsync=False)
        self.assertFalse(store.ready)
        self.assertIsNone(self.successResultOf(store.probe()))
        self.assertIsNone(self.successResultOf(store.discard(written(b"x"))))
        self.assertEqual(self.events, [])

    def test_openCreatesPrivateFiles(self) -> None:
        """
        Whatever the umask, open() creates the database 0600 (and SQLite's
        -wal and -shm files with it) in directories 0700, and it works.
        """
        for mask in UMASKS:
            setUmask(self, mask)
            root = self.mktemp()
            path = os.path.join(root, "meta", DATABASE_NAME)
            store = self.openStore(path)
            self.assertEqual(oct(modeOf(path)), oct(0o600), f"umask {mask:#o}")
            self.successResultOf(store.createBucket(bucket("b")))
            modes = assertPrivateTree(self, root, f"umask {mask:#o}")
            self.assertIn(os.path.join("meta", DATABASE_NAME), modes)

    def test_existingFileKeepsData(self) -> None:
        """Opening an existing database neither recreates nor empties it."""
        store = self.openStore()
        self.successResultOf(store.createBucket(bucket("b")))
        self.successResultOf(store.close())
        again = self.openStore(store.path)
        self.assertEqual(self.successResultOf(again.listBuckets()), [bucket("b")])

    def test_schemaVersionMismatch(self) -> None:
        """A database of another schema version is refused at open, untouched."""
        path = self.newPath()
        os.makedirs(os.path.dirname(path))
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION + 1,))
        db.close()
        store = SQLiteMetadataStore(path, ImmediateRunner(), self.syncData, fsync=False)
        f = self.failureResultOf(store.open(), RuntimeError)
        self.assertIn("schema version %d" % (SCHEMA_VERSION + 1,), str(f.value))
        self.assertFalse(store.ready)

    def test_synchronousSetting(self) -> None:
        """
        Writer connections run in WAL mode with synchronous=FULL, or OFF
        without fsync; reader connections are query-only.
        """
        path = os.path.join(self.mktemp() + "-db")
        for fsync, expected in [(True, 2), (False, 0)]:
            db = connect(path, False, fsync)
            self.addCleanup(db.close)
            self.assertEqual(db.execute("PRAGMA synchronous").fetchone()[0], expected)
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        reader = connect(path, True, True)
        self.addCleanup(reader.close)
        self.assertEqual(reader.execute("PRAGMA query_only").fetchone()[0], 1)
        self.assertRaises(sqlite3.OperationalError, reader.execute, "CREATE TABLE t(x)")

    def test_survivesKill(self) -> None:
        """
        A process killed with SIGKILL right after a write's Deferred fired
        (nothing closed, SQLite's log not checkpointed) loses nothing.
        """
        path = os.path.abspath(self.newPath())
        script = textwrap.dedent("""
            import sys
            from fasterstore.metadata.sqlite import SQLiteMetadataStore
            from fasterstore.metadata.testing import bucket, record, written
            from fasterstore.threads import ImmediateRunner

            store = SQLiteMetadataStore(sys.argv[1], ImmediateRunner(), lambda: (lambda: None), fsync=True)
            out = []
            store.open().addBoth(out.append)
            store.createBucket(bucket("b")).addBoth(out.append)
            blob = written(b"survives")
            store.putObject(record("b", "k", blob), blob).addBoth(out.append)
            print("committed" if out[-1] == record("b", "k", blob) else repr(out), flush=True)
            sys.stdin.read()
        """)
        env = dict(os.environ, PYTHONPATH=ROOT)
        child = subprocess.Popen([sys.executable, "-c", script, path], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, env=env, cwd=ROOT)
        try:
            assert child.stdout is not None
            self.assertEqual(child.stdout.readline().strip(), b"committed")
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            for stream in (child.stdin, child.stdout):
                if stream is not None:
                    stream.close()
        self.assertEqual(child.returncode, -signal.SIGKILL)
        self.assertTrue(os.path.exists(path + "-wal"))
        store = self.openStore(path)
        blob = written(b"survives")
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), record("b", "k", blob))
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 8, 8, {}))


class GroupCommitTests(SQLiteCase):
    """Rounds: batching, durability order, metrics, visibility."""

    def test_batching(self) -> None:
        """
        Writes issued while a round runs share the next round: 50 puts take
        two rounds, each with one data sync before one transaction and one
        COMMIT; metrics count the rounds and the totals.
        """
        runner = ManualRunner()
        metrics = Metrics()
        store = self.openStore(runner=runner, metrics=metrics)
        self.done(store, store.createBucket(bucket("b")))
        self.events.clear()
        blobs = [written(b"%d" % i, 1, i * 10) for i in range(50)]
        ds = [store.putObject(record("b", "k%02d" % i, blob), blob) for i, blob in enumerate(blobs)]
        self.assertEqual(len(runner.jobs), 1)  # the first put's round
        self.assertEqual(self.events, ["prepare"])
        runner.runRound()
        first = self.successResultOf(ds[0])
        for d in ds[1:]:
            self.assertNoResult(d)
        self.assertEqual(len(runner.jobs), 1)  # everything else, in one round
        self.assertEqual(self.events, ["prepare", "data-fsync", "BEGIN IMMEDIATE", "COMMIT", "prepare"])
        runner.runRound()
        self.assertEqual([first.key] + [self.successResultOf(d).key for d in ds[1:]],
                         ["k%02d" % i for i in range(50)])
        self.assertEqual(self.events, ["prepare", "data-fsync", "BEGIN IMMEDIATE", "COMMIT"] * 2)
        self.assertEqual(runner.jobs, [])
        self.assertEqual(self.successResultOf(store.totals()).objects, 50)
        sample = metrics.registry.get_sample_value
        self.assertEqual(sample("fasterstore_group_commit_batch_count"), 3.0)  # bucket + 2 rounds
        self.assertEqual(sample("fasterstore_group_commit_batch_sum"), 51.0)
        self.assertEqual(sample("fasterstore_fsync_seconds_count"), 3.0)
        # Durations of rounds, not clock readings: three rounds of this test take well under a second.
        self.assertLess(sample("fasterstore_fsync_seconds_sum"), 1.0)
        self.assertEqual(sample("fasterstore_objects"), 50.0)
        self.assertEqual(sample("fasterstore_stored_bytes"), float(sum(b.size for b in blobs)))

    def test_durabilityOrder(self) -> None:
        """
        syncData is called on the reactor when the round starts; its
        blocking function runs in the runner before the transaction; the
        writes run on the reactor; the COMMIT runs in the runner again; the
        writer hears back only after the COMMIT.
        """
        runner = ManualRunner()
        store = self.openStore(runner=runner)
        self.events.clear()
        d = store.createBucket(bucket("b"))
        self.assertEqual(self.events, ["prepare"])
        self.assertNoResult(d)
        runner.runNext()
        # The writes ran here, between the runner's two steps: only the commit is left to it.
        self.assertEqual(self.events, ["prepare", "data-fsync", "BEGIN IMMEDIATE"])
        self.assertEqual(len(runner.jobs), 1)
        self.assertNoResult(d)
        self.assertIsNone(self.successResultOf(store.getBucket("b")))
        runner.runNext()
        self.assertEqual(self.events, ["prepare", "data-fsync", "BEGIN IMMEDIATE", "COMMIT"])
        self.successResultOf(d)
        self.assertEqual(self.successResultOf(store.getBucket("b")), bucket("b"))

    def test_readsSeeOnlyCommitted(self) -> None:
        """Until its round commits a write is invisible to every read and its Deferred has not fired."""
        runner = ManualRunner()
        store = self.openStore(runner=runner)
        self.done(store, store.createBucket(bucket("b")))
        blob = written(b"hello")
        d = store.putObject(record("b", "k", blob), blob)
        u = store.createUpload(uploadRecord("u1"))
        self.assertNoResult(d)
        self.assertIsNone(self.successResultOf(store.getObject("b", "k")))
        self.assertEqual(self.successResultOf(store.listObjects("b")).objects, [])
        self.assertIsNone(self.successResultOf(store.getBlob(blob.contentAddress)))
        self.assertEqual(self.successResultOf(store.listUploads("b")).uploads, [])
        self.assertEqual(self.successResultOf(store.staleUploads(1e12)), [])
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {}))
        runner.runAll()
        self.assertEqual(self.successResultOf(d).key, "k")
        self.successResultOf(u)
        self.assertIsNotNone(self.successResultOf(store.getObject("b", "k")))
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 5, 5, {}))

    def test_roundKeepsWhatItRead(self) -> None:
        """
        A round reads a bucket and a segment's removal once, and what its
        own writes change (a bucket created or deleted, a segment
        forgotten, a write rolled back) is what its later writes see.
        """
        runner = ManualRunner()
        store = self.openStore(runner=runner)
        store.probe()  # a round in flight: everything below shares the next one
        x, y, z = written(b"x", 9, 0), written(b"y", 9, 100), written(b"z", 3, 0)
        ds = [
            store.createBucket(bucket("c")),
            store.putObject(record("c", "x", x), x),
            store.deleteBucket("c", "alice"),  # not empty: rolled back
            store.putObject(record("c", "z", z), z),
            store.deleteObject("c", "x"),
            store.forgetSegment(9),
            store.putObject(record("c", "y", y), y),
            store.deleteObject("c", "z"),
            store.deleteBucket("c", "alice"),
            store.putObject(record("c", "z", z), z),
        ]
        runner.runRound()
        runner.runRound()
        self.assertEqual(runner.jobs, [])
        self.assertIsNone(self.successResultOf(ds[0]))
        self.assertEqual(self.successResultOf(ds[1]).key, "x")
        self.assertEqual(self.code(ds[2]), "BucketNotEmpty")
        self.assertEqual(self.successResultOf(ds[3]).key, "z")
        self.assertEqual(self.successResultOf(ds[4]).key, "x")  # type: ignore[union-attr]
        self.assertIsNone(self.successResultOf(ds[5]))
        self.assertEqual(self.code(ds[6]), "InternalError")  # segment 9 is gone
        self.assertEqual(self.successResultOf(ds[7]).key, "z")  # type: ignore[union-attr]
        self.assertIsNone(self.successResultOf(ds[8]))
        self.assertEqual(self.code(ds[9]), "NoSuchBucket")
        self.assertIsNone(self.successResultOf(store.getBucket("c")))
        self.assertEqual(self.successResultOf(store.totals()).objects, 0)

    def test_closeWaitsForRound(self) -> None:
        """close fires only after the running round and the writes queued behind it."""
        runner = ManualRunner()
        store = self.openStore(runner=runner)
        first = store.createBucket(bucket("a"))
        second = store.createBucket(bucket("b"))
        closed = store.close()
        self.assertNoResult(closed)
        self.assertFalse(store.ready)
        runner.runRound()
        self.successResultOf(first)
        self.assertNoResult(closed)
        runner.runRound()
        self.successResultOf(second)
        self.successResultOf(closed)
        again = self.openStore(store.path)
        self.assertEqual([b.name for b in self.successResultOf(again.listBuckets())], ["a", "b"])


class FailingRoundTests(SQLiteCase):
    """A round that cannot commit fails its writes, and only those; nothing needs a restart."""

    def test_diskFullAtCommit(self) -> None:
        """
        COMMIT failing with SQLITE_FULL fails every write of that round with
        InsufficientStorage and sets failing; reads still work; writes
        queued meanwhile commit in the next round, which clears failing;
        the failed writes are not there after a reopen.
        """
        runner = ManualRunner()
        store = self.openStore(runner=runner)
        self.done(store, store.createBucket(bucket("b")))
        store.probe()  # round 0, in flight
        a, b, c = written(b"a", 1, 0), written(b"b", 1, 1), written(b"c", 1, 2)
        putA = store.putObject(record("b", "a", a), a)
        putB = store.putObject(record("b", "b", b), b)
        self.faults["COMMIT"] = [None, diskFull()]  # round 0 commits; round 1 does not
        runner.runRound()
        self.assertIsNone(store.failing)
        putC = store.putObject(record("b", "c", c), c)
        runner.runRound()
        self.assertEqual(self.code(putA), "InsufficientStorage")
        self.assertEqual(self.code(putB), "InsufficientStorage")
        self.assertEqual(store.failing, "database or disk is full")
        self.assertNoResult(putC)
        self.assertIsNone(self.successResultOf(store.getObject("b", "a")))
        self.assertEqual(self.successResultOf(store.getBucket("b")), bucket("b"))
        runner.runRound()
        self.assertEqual(self.successResultOf(putC).key, "c")
        self.assertIsNone(store.failing)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        self.successResultOf(store.close())
        again = self.openStore(store.path)
        self.assertEqual([o.key for o in self.successResultOf(again.listObjects("b")).objects], ["c"])
        self.assertEqual(self.successResultOf(again.totals()).objects, 1)

    def test_realDiskFull(self) -> None:
        """
        A genuine SQLITE_FULL (the database may not grow) fails the round
        with InsufficientStorage; once there is room the next write succeeds.
        """
        store = self.openStore()
        self.successResultOf(store.createBucket(bucket("b")))
        writer = self.writers[-1]
        pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute("PRAGMA max_page_count = %d" % (pages,))
        big = attrs.evolve(obj("b", "big"), meta=(("pad", "x" * 100000),))
        blob = written(b"x")
        self.assertEqual(self.code(store.putObject(attrs.evolve(big, blob=blob.contentAddress), blob)),
                         "InsufficientStorage")
        self.assertEqual(store.failing, "database or disk is full")
        self.assertIsNone(self.successResultOf(store.getObject("b", "big")))
        self.flushLoggedErrors(sqlite3.OperationalError)
        writer.execute("PRAGMA max_page_count = 1073741823")
        self.successResultOf(store.putObject(attrs.evolve(big, blob=blob.contentAddress), blob))
        self.assertIsNone(store.failing)
        self.assertEqual(self.successResultOf(store.getObject("b", "big")).meta, big.meta)  # type: ignore[union-attr]

    def test_probeClearsFailing(self) -> None:
        """After a failed round, a probe that commits clears failing without any write."""
        store = self.openStore()
        self.faults["COMMIT"] = [diskFull()]
        self.assertEqual(self.code(store.createBucket(bucket("b"))), "InsufficientStorage")
        self.assertIsNotNone(store.failing)
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.assertIsNone(self.successResultOf(store.probe()))
        self.assertIsNone(store.failing)
        self.assertIsNone(self.successResultOf(store.getBucket("b")))

    def test_probeFailing(self) -> None:
        """A probe in a failing round fires with None (it never fails) and failing stays set."""
        store = self.openStore()
        self.faults["COMMIT"] = [diskFull()]
        self.assertIsNone(self.successResultOf(store.probe()))
        self.assertEqual(store.failing, "database or disk is full")
        self.flushLoggedErrors(sqlite3.OperationalError)

    def test_errorCodes(self) -> None:
        """
        A lock held too long is ServiceUnavailable (retry); any other
        database error is InternalError.
        """
        store = self.openStore()
        self.faults["COMMIT"] = [sqliteError("database is locked", sqlite3.SQLITE_BUSY, "SQLITE_BUSY")]
        self.assertEqual(self.code(store.createBucket(bucket("b"))), "ServiceUnavailable")
        self.faults["COMMIT"] = [sqliteError("disk I/O error", sqlite3.SQLITE_IOERR, "SQLITE_IOERR")]
        self.assertEqual(self.code(store.createBucket(bucket("b"))), "InternalError")
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.successResultOf(store.createBucket(bucket("b")))
        self.assertIsNone(store.failing)

    def test_brokenConnectionReplaced(self) -> None:
        """
        When even the recovery after a failed round fails, the writer
        connection is dropped and the next round opens a new one.
        """
        store = self.openStore()
        self.faults["COMMIT"] = [diskFull()]
        self.faults["BEGIN IMMEDIATE"] = [None, sqliteError("disk I/O error", sqlite3.SQLITE_IOERR, "SQLITE_IOERR")]
        self.assertEqual(self.code(store.createBucket(bucket("b"))), "InsufficientStorage")
        self.flushLoggedErrors(sqlite3.OperationalError)
        self.assertEqual(len(self.writers), 1)
        self.successResultOf(store.createBucket(bucket("b")))
        self.assertEqual(len(self.writers), 2)
        self.assertIsNone(store.failing)
        self.assertEqual(self.successResultOf(store.getBucket("b")), bucket("b"))

    def test_dataSyncFailure(self) -> None:
        """
        A data sync failing (ENOSPC: InsufficientStorage; EIO: InternalError)
        fails the round before anything is written; the next round is tried
        afresh and succeeds.
        """
        store = self.openStore()
        self.successResultOf(store.createBucket(bucket("b")))

        def raising(error: OSError) -> Callable[[], None]:
            def fail() -> None:
                raise error
            return fail

        original = store.syncData
        store.syncData = lambda: raising(OSError(errno.ENOSPC, "No space left on device"))
        blob = written(b"x")
        self.assertEqual(self.code(store.putObject(record("b", "k", blob), blob)), "InsufficientStorage")
        self.assertIsNotNone(store.failing)

        def brokenPrepare() -> Callable[[], None]:
            raise OSError(errno.EIO, "Input/output error")

        store.syncData = brokenPrepare
        self.assertEqual(self.code(store.putObject(record("b", "k", blob), blob)), "InternalError")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)
        self.assertIsNone(self.successResultOf(store.getObject("b", "k")))
        store.syncData = original
        self.successResultOf(store.putObject(record("b", "k", blob), blob))
        self.assertIsNone(store.failing)
        self.successResultOf(store.close())
        self.assertEqual(self.successResultOf(self.openStore(store.path).totals()), Totals(1, 1, 1, {}))


class SharedFileTests(SQLiteCase):
    """Several stores ("processes") on one database file."""

    def pair(self, runner: Any = None) -> Tuple[SQLiteMetadataStore, SQLiteMetadataStore]:
        path = self.newPath()
        return self.openStore(path, runner), self.openStore(path, runner and ManualRunner())

    def test_readAfterWrite(self) -> None:
        """A write committed through one store is visible at once to reads through another."""
        one, two = self.pair()
        self.successResultOf(one.createBucket(bucket("b")))
        self.assertEqual(self.successResultOf(two.getBucket("b")), bucket("b"))
        blob = written(b"shared")
        rec = self.successResultOf(two.putObject(record("b", "k", blob), blob))
        self.assertEqual(self.successResultOf(one.getObject("b", "k")), rec)
        self.assertEqual(self.successResultOf(one.listObjects("b")).objects, [ObjectSummary.of(rec)])
        self.assertEqual(self.successResultOf(one.getBlob(blob.contentAddress)).refs, 1)  # type: ignore[union-attr]
        self.successResultOf(one.createUpload(uploadRecord("u1")))
        self.assertEqual([u.uploadId for u in self.successResultOf(two.listUploads("b")).uploads], ["u1"])
        self.successResultOf(one.deleteObject("b", "k"))
        self.assertIsNone(self.successResultOf(two.getObject("b", "k")))
        self.assertEqual(self.successResultOf(two.totals()), self.successResultOf(one.totals()))
        self.assertEqual(self.successResultOf(two.totals()), Totals(0, 0, 0, {1: 6}))

    def test_validationAcrossStores(self) -> None:
        """Validation sees the other store's commits: names taken, buckets not empty, uploads gone."""
        one, two = self.pair()
        self.successResultOf(one.createBucket(bucket("b")))
        self.assertEqual(self.code(two.createBucket(bucket("b", "bob"))), "BucketAlreadyExists")
        blob = written(b"x")
        self.successResultOf(one.putObject(record("b", "k", blob), blob))
        self.assertEqual(self.code(two.deleteBucket("b", "alice")), "BucketNotEmpty")
        self.successResultOf(one.createUpload(uploadRecord("u1")))
        self.successResultOf(two.abortUpload("u1"))
        self.assertEqual(self.code(one.abortUpload("u1")), "NoSuchUpload")

    def test_versionsAcrossStores(self) -> None:
        """
        Versions written through two stores get distinct ids in the order
        they committed, and both stores list them alike.
        """
        one, two = self.pair()
        self.successResultOf(one.createBucket(bucket("b")))
        self.successResultOf(two.updateBucket("b", versioningSetter(ENABLED)))
        ids = []
        for store in (one, two, one, two):
            blob = written(b"v%d" % len(ids), 1, 100 * len(ids))
            ids.append(self.successResultOf(store.putObject(record("b", "k", blob), blob)).versionId)
        self.assertEqual(sorted(ids), ids)  # type: ignore[type-var]
        self.assertEqual(len(set(ids)), 4)
        listed = self.successResultOf(one.listVersions("b")).versions
        self.assertEqual([v.versionId for v in listed], ids[::-1])
        self.assertEqual([v.versionId for v in self.successResultOf(two.listVersions("b")).versions], ids[::-1])

    def test_conditionalRace(self) -> None:
        """
        Two stores' rounds, each with an If-None-Match: * put of one key,
        running at the same time in two threads: exactly one wins, the
        other is PreconditionFailed, and both stores read the winner.
        """
        for attempt in range(5):
            one, two = self.pair(ManualRunner())
            self.done(one, one.createBucket(bucket("b")))
            a, b = written(b"from one", 1, 0), written(b"from two", 2, 0)
            first = one.putObject(record("b", "k", a), a, ifNoneMatch)
            second = two.putObject(record("b", "k", b), b, ifNoneMatch)
            assert isinstance(one.runner, ManualRunner) and isinstance(two.runner, ManualRunner)
            stores = (one, two)
            runConcurrently(
                [one.runner.jobs.pop(0), two.runner.jobs.pop(0)],
                then=lambda i: stores[i].runner.runAll(),  # type: ignore[union-attr]
            )
            outcomes = []
            for d in (first, second):
                results: List[Any] = []
                d.addBoth(results.append)
                outcomes.append(results[0])
            failures = [o for o in outcomes if isinstance(o, Failure)]
            self.assertEqual(len(failures), 1, outcomes)
            self.assertEqual(failures[0].value.code, "PreconditionFailed")
            winner = [o for o in outcomes if not isinstance(o, Failure)][0]
            self.assertEqual(self.successResultOf(one.getObject("b", "k")), winner)
            self.assertEqual(self.successResultOf(two.getObject("b", "k")), winner)
            loser = b if winner.blob == a.contentAddress else a
            self.assertEqual(self.successResultOf(two.totals()).garbage, {loser.extents[0].segment: 8})


# -- listing ---------------------------------------------------------------------------


class ListingTests(SynchronousTestCase):
    """L{walk} and its helpers, over an in-memory key space."""

    def test_prefixSuccessor(self) -> None:
        """The successor of a prefix is past every string starting with it."""
        self.assertEqual(prefixSuccessor("a/"), "a0")
        self.assertEqual(prefixSuccessor("a\U0010ffff"), "b")
        self.assertIsNone(prefixSuccessor("\U0010ffff\U0010ffff"))
        self.assertIsNone(prefixSuccessor(""))

    def test_prefixSuccessorIsEncodable(self) -> None:
        """The successor never is a lone surrogate (which no key can hold, nor SQLite bind)."""
        successor = prefixSuccessor("a\ud7ff")
        assert successor is not None
        successor.encode("utf-8")
        self.assertGreater(successor, "a\ud7ff\U0010ffff")

    def test_commonPrefix(self) -> None:
        """A key's common prefix ends at the first delimiter after the prefix."""
        self.assertEqual(commonPrefix("a/b/c", "", "/"), "a/")
        self.assertEqual(commonPrefix("a/b/c", "a/", "/"), "a/b/")
        self.assertIsNone(commonPrefix("a/b", "a/b", "/"))
        self.assertEqual(commonPrefix("x--y--z", "", "--"), "x--")

    def test_bigCommonPrefixIsSkipped(self) -> None:
        """
        Rolling up a common prefix jumps past its keys with one new scan
        instead of reading them: listing 20,000 keys under one prefix costs
        a handful of bounded scans.
        """
        keys = sorted([f"big/{i:06d}" for i in range(20000)] + ["a", "zz"])
        scans: List[int] = []

        def fromKey(key: str, inclusive: bool, limit: int) -> List[Tuple[str, str]]:
            i = bisect.bisect_left(keys, key) if inclusive else bisect.bisect_right(keys, key)
            rows = [(k, k) for k in keys[i:i + limit]]
            scans.append(len(rows))
            return rows

        def afterRow(key: str, row: str, limit: int) -> List[Tuple[str, str]]:
            return fromKey(key, False, limit)

        page = walk(fromKey, afterRow, "", "/", "", 1000)
        self.assertEqual((page.entries, page.truncated), (["a", "big/", "zz"], False))
        self.assertLessEqual(len(scans), 3)
        del scans[:]
        page = walk(fromKey, afterRow, "big/", "", "big/009999", 3)
        self.assertEqual((page.entries, page.truncated), (["big/010000", "big/010001", "big/010002"], True))
        self.assertEqual(scans, [4])

    def test_pagesLongerThanOneScan(self) -> None:
        """A page longer than one scan continues with afterRow from the last row read."""
        keys = [f"k{i:05d}" for i in range(2500)]
        calls: List[str] = []

        def fromKey(key: str, inclusive: bool, limit: int) -> List[Tuple[str, str]]:
            calls.append("fromKey")
            i = bisect.bisect_left(keys, key) if inclusive else bisect.bisect_right(keys, key)
            return [(k, k) for k in keys[i:i + limit]]

        def afterRow(key: str, row: str, limit: int) -> List[Tuple[str, str]]:
            calls.append("afterRow")
            i = bisect.bisect_right(keys, key)
            return [(k, k) for k in keys[i:i + limit]]

        page = walk(fromKey, afterRow, "", "", "", 2400)
        self.assertEqual((len(page.entries), page.entries[-1], page.truncated), (2400, "k02399", True))
        self.assertEqual(calls, ["fromKey", "afterRow", "afterRow"])


# -- records ------------------------------------------------------------------------------


class RecordTests(SynchronousTestCase):
    """The records, and reading records written before newer fields existed."""

    def test_partRoundTrip(self) -> None:
        """A part record survives JSON."""
        p = partRecord(3, "x")
        self.assertEqual(PartRecord.fromJSON(json.loads(json.dumps(p.toJSON()))), p)

    def test_uploadRoundTrip(self) -> None:
        """An upload with parts survives JSON."""
        u = uploadRecord("u1").withPart(partRecord(2, "y")).withPart(partRecord(1, "x"))
        self.assertEqual(UploadRecord.fromJSON(json.loads(json.dumps(u.toJSON()))), u)

    def test_objectRoundTrip(self) -> None:
        """A multipart object with tags and checksum type survives JSON."""
        o = multipartObj("b", "k", [partRecord(1, "x"), partRecord(2, "y")])
        again = ObjectRecord.fromJSON(json.loads(json.dumps(o.toJSON())))
        self.assertEqual(again, o)
        self.assertIsInstance(again.parts[0], PartRecord)

    def test_oldObjectJSON(self) -> None:
        """An object record written before parts, tags and checksumType existed still loads."""
        old = {"bucket": "b", "key": "k", "size": 1, "etag": "e", "blob": "x", "modified": 1.0,
               "headers": [["Content-Type", "a/b"]], "meta": [], "checksums": [], "versionId": None}
        o = ObjectRecord.fromJSON(old)
        self.assertEqual((o.parts, o.tags, o.checksumType), ((), (), None))
        self.assertEqual(o.headers, (("Content-Type", "a/b"),))

    def test_oldBucketJSON(self) -> None:
        """A bucket record written before config existed still loads."""
        b = BucketRecord.fromJSON({"name": "b", "owner": "o", "region": "", "created": 1.0})
        self.assertEqual(b.config, ())
        self.assertEqual(BucketRecord.fromJSON(json.loads(json.dumps(b.toJSON()))), b)

    def test_config(self) -> None:
        """configValue reads what withConfig sets; None removes; names stay sorted."""
        b = bucket("b").withConfig("tagging", "<t/>").withConfig("cors", "<c/>")
        self.assertEqual(b.config, (("cors", "<c/>"), ("tagging", "<t/>")))
        self.assertEqual(b.configValue("cors"), "<c/>")
        self.assertIsNone(b.configValue("policy"))
        b = b.withConfig("cors", None).withConfig("tagging", "<t2/>")
        self.assertEqual(b.config, (("tagging", "<t2/>"),))
        self.assertEqual(BucketRecord.fromJSON(json.loads(json.dumps(b.toJSON()))), b)

    def test_blobAddresses(self) -> None:
        """A record references its blob if set, else each part's blob, duplicates included."""
        self.assertEqual(obj("b", "k", "x").blobAddresses(), ("x",))
        parts = [partRecord(1, "x"), partRecord(2, "y"), partRecord(3, "x")]
        self.assertEqual(multipartObj("b", "k", parts).blobAddresses(), ("x", "y", "x"))
        self.assertEqual(attrs.evolve(obj("b", "k"), blob="").blobAddresses(), ())

    def test_withPart(self) -> None:
        """Parts stay sorted by number, one per number, the last one winning."""
        u = uploadRecord("u").withPart(partRecord(3, "c")).withPart(partRecord(1, "a")).withPart(partRecord(3, "d"))
        self.assertEqual([(p.number, p.blob) for p in u.parts], [(1, "a"), (3, "d")])
        self.assertEqual(u.getPart(3), partRecord(3, "d"))
        self.assertIsNone(u.getPart(2))
