"""
The embedded metadata store: one SQLite database in WAL mode,
C{<data dir>/meta/metadata.sqlite}, shared by every process serving the
data directory.

Writes are group-committed.  Each write is queued on the reactor as a small
function of a L{_Transaction}; a I{round} takes every queued write and:

  1. in the runner: calls the segment store's sync (data is durable before
     any record that points at it), takes the rounds lock and opens one
     C{BEGIN IMMEDIATE} transaction (SQLite's write lock, which serialises
     rounds of every process on the file);
  2. on the reactor: runs each write inside its own savepoint: a write that
     refuses (a precondition, a missing bucket) rolls back alone and its
     writer hears why, the others go on;
  3. in the runner: commits: with C{synchronous=FULL}, one fsync of
     SQLite's WAL for the whole batch.

Step 2 is Python and SQLite work on cached pages, so it runs where the
rest of the Python runs: a runner thread executing it would give up the GIL
at every statement and wait up to a switch interval (5 ms) to get it back
from the busy reactor, which made rounds four times longer than their CPU.

Writes arriving during a round wait for the next.  Validation happens in the
transaction against the committed state plus the batch's earlier writes, so
it holds across processes without any in-memory overlay.

Versions: the C{objects} table holds each key's latest version while it is
an object, so that reads and listings of the latest versions (every read of
a bucket that never had versioning) look nowhere else; the C{versions}
table holds the rest, older versions and delete markers, newest first
within a key.  Every write that makes a version numbers it from the
C{seq} counter (one number per write, kept in memory for the round and
written with its deltas), so a key's versions are ordered as they
committed; a version id is its number (L{versionIdOf}).

Reads run on the calling (reactor) thread on a read-only connection and fire
at once: SQLite's WAL mode never blocks a reader on a writer, and a read
started after a commit returned sees it, from any process.

A round that fails (disk full, EIO, a lock held too long) rolls back, fails
its writers, and leaves nothing behind: the next round starts afresh on a new
connection if needed.  Nothing needs a restart.
Tests: tests/unit/test_metadata_store.py.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import sqlite3
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Sequence, Tuple, TypeVar

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from fasterstore.errors import S3Error
from fasterstore.files import makePrivateDirectory, openPrivateFile
from fasterstore.metadata.listing import Rows, walk
from fasterstore.metadata.records import (
    ENABLED, NULL_VERSION_ID, BlobRecord, BucketRecord, Copied, ObjectRecord, ObjectSummary, PartRecord, UploadRecord,
    VersionSummary, seqOf, versionIdOf,
)
from fasterstore.metadata.store import IMetadataStore, ListPage, ObjectPrecondition, Totals, UploadPage, VersionPage
from fasterstore.metrics import Metrics
from fasterstore.storage.blob import Extent, WrittenBlob
from fasterstore.storage.records import BLOCK_SIZE, ENTRY_SIZE, HEADER_SIZE, recordLength
from fasterstore.threads import BlockingRunner

log = Logger()

T = TypeVar("T")

SyncData = Callable[[], Callable[[], None]]

#: The schema's version, in C{PRAGMA user_version}.
SCHEMA_VERSION = 4

DATABASE_NAME = "metadata.sqlite"

#: Next to the database: the file whose C{flock} orders commit rounds.
ROUNDS_LOCK_SUFFIX = ".rounds"

#: Every version of a key but the one C{objects} holds: older versions and
#: every delete marker.  C{objects} holds a key's latest version when it is
#: not a delete marker, so listings and reads of unversioned buckets never
#: look here.  Newest first within a key (C{seq DESC}), which is the order
#: ListObjectVersions wants, without a sort.
_VERSIONS_SCHEMA = """
CREATE TABLE versions(
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    null_version INTEGER NOT NULL,
    delete_marker INTEGER NOT NULL,
    noncurrent_since REAL NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified REAL NOT NULL,
    checksum_algorithms TEXT NOT NULL,
    checksum_type TEXT,
    record TEXT NOT NULL,
    PRIMARY KEY(bucket, key, seq DESC)
) WITHOUT ROWID;
CREATE INDEX versions_null ON versions(bucket, key) WHERE null_version = 1;
"""

_SCHEMA = """
CREATE TABLE buckets(
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE objects(
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    record TEXT NOT NULL,
    etag TEXT NOT NULL DEFAULT '',
    modified REAL NOT NULL DEFAULT 0,
    checksum_algorithms TEXT NOT NULL DEFAULT '',
    checksum_type TEXT,
    seq INTEGER NOT NULL DEFAULT 0,
    null_version INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY(bucket, key)
) WITHOUT ROWID;
CREATE TABLE blobs(
    address TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    extents TEXT NOT NULL,
    refs INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE blob_extents(
    segment INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY(segment, offset)
) WITHOUT ROWID;
CREATE TABLE uploads(
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    initiated REAL NOT NULL,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_key ON uploads(bucket, key, initiated, upload_id);
CREATE INDEX uploads_by_age ON uploads(initiated, upload_id);
CREATE TABLE parts(
    upload_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY(upload_id, number)
) WITHOUT ROWID;
CREATE TABLE garbage(
    segment INTEGER PRIMARY KEY,
    bytes INTEGER NOT NULL
);
CREATE TABLE segments(
    segment INTEGER PRIMARY KEY,
    live INTEGER NOT NULL
);
CREATE TABLE removed_segments(
    segment INTEGER PRIMARY KEY
);
CREATE TABLE counters(
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters(name, value) VALUES ('objects', 0), ('logical_bytes', 0), ('live_bytes', 0), ('fence', 0), ('seq', 0);
"""

#: A record's length on disk (L{fasterstore.storage.records.recordLength})
#: for payload length C{length}, in SQL.
_RECORD_LENGTH_SQL = f"({HEADER_SIZE} + length + {ENTRY_SIZE} * ((length + {BLOCK_SIZE - 1}) / {BLOCK_SIZE}))"

#: The live bytes of each segment, from the extents (after an upgrade or a migration).
_COUNT_SEGMENTS = f"""
DELETE FROM segments;
INSERT INTO segments(segment, live)
    SELECT segment, sum({_RECORD_LENGTH_SQL}) FROM blob_extents GROUP BY segment
"""

#: Schema 1 to 2: what a listing shows gets columns of its own, filled from
#: the records (which keep those fields until rewritten; the columns win);
#: the live bytes of each segment are counted, for compaction.
_UPGRADE_1_TO_2 = """
CREATE TABLE segments(segment INTEGER PRIMARY KEY, live INTEGER NOT NULL);
ALTER TABLE objects ADD COLUMN etag TEXT NOT NULL DEFAULT '';
ALTER TABLE objects ADD COLUMN modified REAL NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN checksum_algorithms TEXT NOT NULL DEFAULT '';
ALTER TABLE objects ADD COLUMN checksum_type TEXT;
UPDATE objects SET
    etag = json_extract(record, '$.etag'),
    modified = json_extract(record, '$.modified'),
    checksum_type = json_extract(record, '$.checksumType'),
    checksum_algorithms = coalesce(
        (SELECT group_concat(json_extract(value, '$[0]')) FROM json_each(record, '$.checksums')), '')
"""

#: Schema 2 to 3: compaction records the segments it removed, so that a
#: late commit naming one (an upload of another process) is refused.
_UPGRADE_2_TO_3 = """
CREATE TABLE removed_segments(segment INTEGER PRIMARY KEY)
"""

#: Schema 3 to 4: versions.  Every object there is is its key's null
#: version, older than anything written from now on (C{seq} 0).
_UPGRADE_3_TO_4 = f"""
ALTER TABLE objects ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN null_version INTEGER NOT NULL DEFAULT 1;
{_VERSIONS_SCHEMA};
INSERT INTO counters(name, value) VALUES ('seq', 0)
"""

#: The columns of an object row, in L{objectRow}'s order.
OBJECT_COLUMNS = "bucket, key, size, etag, modified, checksum_algorithms, checksum_type, record, seq, null_version"
INSERT_OBJECT = f"INSERT OR REPLACE INTO objects({OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

#: The columns of a versions row, in L{versionRow}'s order.
_VERSION_COLUMNS = OBJECT_COLUMNS + ", delete_marker, noncurrent_since"
_INSERT_VERSION = f"INSERT INTO versions({_VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

_INSERT_EXTENT = "INSERT INTO blob_extents(segment, offset, length, address) VALUES (?, ?, ?, ?)"

#: What reading one object selects, in L{decodeObject}'s order.
_OBJECT_READ = "size, etag, modified, checksum_type, record, seq, null_version"
_VERSION_READ = _OBJECT_READ + ", delete_marker"

#: Fields an object row holds as columns, not in its C{record} JSON.
_OBJECT_COLUMN_FIELDS = ("bucket", "key", "size", "etag", "modified", "checksumType", "versionId", "deleteMarker")

#: Compact JSON, as every record column holds it.
encodeJSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False).encode


def _compact(d: Dict[str, Any], drop: Iterable[str]) -> str:
    """A record's JSON without the fields its row's columns hold, nor empty defaults."""
    for name in drop:
        d.pop(name, None)
    return encodeJSON({k: v for k, v in d.items() if v is not None and v != []})


def objectRow(record: ObjectRecord, seq: int = 0) -> Tuple[Any, ...]:
    """
    An object record as the values of its row's L{OBJECT_COLUMNS}; C{seq}
    orders a null version among the key's versions (any other version's
    id is its C{seq}).
    """
    if record.versionId is not None:
        seq = _seqOf(record.versionId)
    return (
        record.bucket, record.key, record.size, record.etag, record.modified,
        ",".join(name for name, _ in record.checksums), record.checksumType,
        _compact(record.toJSON(), _OBJECT_COLUMN_FIELDS), seq, int(record.versionId is None),
    )


def versionRow(record: ObjectRecord, seq: int, noncurrentSince: float) -> Tuple[Any, ...]:
    """A version that is not in C{objects} as its row's L{_VERSION_COLUMNS}."""
    return objectRow(record, seq) + (int(record.deleteMarker), noncurrentSince)


def _seqOf(versionId: str) -> int:
    seq = seqOf(versionId)
    if seq is None:
        raise S3Error(
            "InvalidArgument", "Invalid version id specified",
            extra={"ArgumentName": "versionId", "ArgumentValue": versionId},
        )
    return seq


#: Rows whose C{record} text is at most this long are decoded once and
#: kept (the decoded records are frozen, a pure function of the row's
#: every column); longer ones (a multipart manifest) always anew, so the
#: caches below hold at most a few MB however large records get.
CACHED_TEXT = 2048


def decodeObject(
    bucket: str, key: str, size: int, etag: str, modified: float, checksumType: Optional[str], text: str,
    seq: int = 0, nullVersion: int = 1, deleteMarker: int = 0,
) -> ObjectRecord:
    """An object record from its row (the L{_OBJECT_READ} or L{_VERSION_READ} columns)."""
    if len(text) <= CACHED_TEXT:
        return _decodeObjectCached(bucket, key, size, etag, modified, checksumType, text, seq, nullVersion, deleteMarker)
    return _decodeObject(bucket, key, size, etag, modified, checksumType, text, seq, nullVersion, deleteMarker)


def _decodeObject(
    bucket: str, key: str, size: int, etag: str, modified: float, checksumType: Optional[str], text: str,
    seq: int, nullVersion: int, deleteMarker: int,
) -> ObjectRecord:
    d = json.loads(text)
    d.update(bucket=bucket, key=key, size=size, etag=etag, modified=modified, checksumType=checksumType,
             versionId=None if nullVersion else versionIdOf(seq), deleteMarker=bool(deleteMarker))
    return ObjectRecord.fromJSON(d)


#: A hot object's GET and HEAD decode its same row again and again.
_decodeObjectCached = functools.lru_cache(maxsize=1024, typed=True)(_decodeObject)


@attrs.frozen
class _Found:
    """
    A version as a write or a read finds it.

    @ivar seq: its place among the key's versions (the greatest is the latest).
    @ivar current: whether it is the C{objects} row (else a C{versions} row).
    """

    record: ObjectRecord
    seq: int
    current: bool


def _readCurrent(db: sqlite3.Connection, bucket: str, key: str, where: str = "", args: Tuple[Any, ...] = ()) -> Optional[_Found]:
    row = db.execute(
        f"SELECT {_OBJECT_READ} FROM objects WHERE bucket = ? AND key = ?{where}", (bucket, key) + args
    ).fetchone()
    return None if row is None else _Found(decodeObject(bucket, key, *row), row[5], True)


def _readOlder(db: sqlite3.Connection, bucket: str, key: str, where: str, args: Tuple[Any, ...] = ()) -> Optional[_Found]:
    row = db.execute(
        f"SELECT {_VERSION_READ} FROM versions WHERE bucket = ? AND key = ?{where}", (bucket, key) + args
    ).fetchone()
    return None if row is None else _Found(decodeObject(bucket, key, *row), row[5], False)


def _readObject(db: sqlite3.Connection, bucket: str, key: str) -> Optional[ObjectRecord]:
    found = _readCurrent(db, bucket, key)
    return None if found is None else found.record


def _readLatest(db: sqlite3.Connection, bucket: str, key: str) -> Optional[_Found]:
    """The key's latest version, a delete marker included."""
    return _readCurrent(db, bucket, key) or _readOlder(db, bucket, key, " ORDER BY seq DESC LIMIT 1")


def _readVersion(db: sqlite3.Connection, bucket: str, key: str, versionId: str) -> Optional[_Found]:
    """Version C{versionId} (as S3 spells it) of a key; C{InvalidArgument} for a malformed id."""
    if versionId == NULL_VERSION_ID:
        return _readCurrent(db, bucket, key, " AND null_version = 1") or _readOlder(
            db, bucket, key, " AND null_version = 1"
        )
    seq = _seqOf(versionId)
    return _readCurrent(db, bucket, key, " AND seq = ? AND null_version = 0", (seq,)) or _readOlder(
        db, bucket, key, " AND seq = ? AND null_version = 0", (seq,)
    )


def encodeExtents(extents: Iterable[Extent]) -> str:
    """Extents as a blob row's C{extents} column."""
    return encodeJSON([[e.segment, e.offset, e.length] for e in extents])


def _decodeExtents(text: str) -> Tuple[Extent, ...]:
    if len(text) <= CACHED_TEXT:
        return _decodeExtentsCached(text)
    return _decodeExtentsAnew(text)


def _decodeExtentsAnew(text: str) -> Tuple[Extent, ...]:
    return tuple(Extent(s, o, n) for s, o, n in json.loads(text))


_decodeExtentsCached = functools.lru_cache(maxsize=1024, typed=True)(_decodeExtentsAnew)


def connect(path: str, readOnly: bool, fsync: bool) -> sqlite3.Connection:
    """
    A connection to the store's database with the store's settings: WAL
    mode, C{synchronous=FULL} (or C{OFF} without fsync), a busy timeout for
    the write lock other processes hold, a small private page cache and
    memory-mapped reads (page cache of the kernel, not of the process).
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60.0)
    db.execute("PRAGMA busy_timeout = %d" % (5000 if readOnly else 60000,))
    if readOnly:
        db.execute("PRAGMA query_only = 1")
    else:
        db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = %s" % ("FULL" if fsync else "OFF",))
    db.execute("PRAGMA cache_size = -4096")
    db.execute("PRAGMA mmap_size = %d" % (1 << 30,))
    return db


def countSegments(db: sqlite3.Connection) -> None:
    """Recount every segment's live bytes from the extents (in the caller's transaction)."""
    _run(db, _COUNT_SEGMENTS)


def createSchema(db: sqlite3.Connection) -> None:
    """Create the tables in an empty database (one transaction)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            _run(db, _SCHEMA + _VERSIONS_SCHEMA)
            db.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION,))
        elif version in (1, 2, 3):
            if version == 1:
                _run(db, _UPGRADE_1_TO_2)
                _run(db, _COUNT_SEGMENTS)
            if version <= 2:
                _run(db, _UPGRADE_2_TO_3)
            _run(db, _UPGRADE_3_TO_4)
            db.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            raise RuntimeError(
                f"the metadata database has schema version {version}; this FasterStore reads version {SCHEMA_VERSION}"
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _run(db: sqlite3.Connection, script: str) -> None:
    """Execute C{script}'s statements inside the caller's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def storageError(error: BaseException) -> S3Error:
    """
    What a client hears when the store could not commit: C{507
    InsufficientStorage} for a full disk, C{503 ServiceUnavailable} for a
    lock held too long, C{500 InternalError} otherwise.
    """
    if isinstance(error, S3Error):
        return error
    full = (isinstance(error, OSError) and error.errno == errno.ENOSPC) or (
        isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )
    if full:
        return S3Error("InsufficientStorage")
    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
        return S3Error("ServiceUnavailable", "The metadata store is busy; retry.")
    return S3Error("InternalError", "The metadata store could not commit; retry.")


class Migration(Protocol):
    """Metadata to bring into a new database once (an older format)."""

    def fill(self, db: sqlite3.Connection) -> None:
        """Write everything into the new, empty database (blocking)."""

    def retire(self) -> None:
        """The database is in charge: put the old files away (blocking)."""


K = TypeVar("K")


def _merge(into: Dict[K, int], deltas: Dict[K, int]) -> None:
    for name, n in deltas.items():
        into[name] = into.get(name, 0) + n


@attrs.define(eq=False)
class _Transaction:
    """
    The operations writes are made of, on the round's connection.

    Counter and garbage changes are kept as deltas and written once per
    round; a write's deltas only join the round's when its savepoint is
    released.  Bucket records and which segments compaction removed are
    read once per round (most writes of a round name the same bucket and
    segment) and kept while the transaction lasts; a rollback forgets them.
    """

    db: sqlite3.Connection
    counters: Dict[str, int] = attrs.field(init=False, factory=dict)
    garbage: Dict[int, int] = attrs.field(init=False, factory=dict)
    live: Dict[int, int] = attrs.field(init=False, factory=dict)
    _counters: Dict[str, int] = attrs.field(init=False, factory=dict)
    _garbage: Dict[int, int] = attrs.field(init=False, factory=dict)
    _live: Dict[int, int] = attrs.field(init=False, factory=dict)
    _buckets: Dict[str, Optional[BucketRecord]] = attrs.field(init=False, factory=dict)
    _removed: Dict[int, bool] = attrs.field(init=False, factory=dict)
    # The last sequence number given out (read at the first write that
    # needs one); a write rolled back does not give its number back.
    _seq: Optional[int] = attrs.field(init=False, default=None)

    def begin(self) -> None:
        self.db.execute("SAVEPOINT write")
        self._counters, self._garbage, self._live = {}, {}, {}

    def release(self) -> None:
        self.db.execute("RELEASE write")
        _merge(self.counters, self._counters)
        _merge(self.garbage, self._garbage)
        _merge(self.live, self._live)

    def rollback(self) -> None:
        self.db.execute("ROLLBACK TO write")
        self.db.execute("RELEASE write")
        self._counters, self._garbage, self._live = {}, {}, {}
        self._buckets.clear()
        self._removed.clear()

    def flush(self) -> None:
        """Write the round's deltas (no statement for a kind that has none)."""
        for statement, deltas in (
            ("UPDATE counters SET value = value + ? WHERE name = ?",
             [(n, name) for name, n in self.counters.items() if n]),
            ("INSERT INTO garbage(segment, bytes) VALUES (?, ?) "
             "ON CONFLICT(segment) DO UPDATE SET bytes = bytes + excluded.bytes",
             [(segment, n) for segment, n in self.garbage.items() if n]),
            ("INSERT INTO segments(segment, live) VALUES (?, ?) "
             "ON CONFLICT(segment) DO UPDATE SET live = live + excluded.live",
             [(segment, n) for segment, n in self.live.items() if n]),
        ):
            if deltas:
                self.db.executemany(statement, deltas)
        if self._seq is not None:
            self.db.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (self._seq,))

    def nextSeq(self) -> int:
        """A new version's place among every version: greater than any given before."""
        if self._seq is None:
            self._seq = self.db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]
        assert self._seq is not None
        self._seq += 1
        return self._seq

    def count(self, name: str, n: int) -> None:
        self._counters[name] = self._counters.get(name, 0) + n

    # -- reads inside the transaction --------------------------------------

    def bucket(self, name: str) -> Optional[BucketRecord]:
        if name not in self._buckets:
            self._buckets[name] = _bucket(self.db, name)
        return self._buckets[name]

    def requireBucket(self, name: str) -> BucketRecord:
        bucket = self.bucket(name)
        if bucket is None:
            raise S3Error("NoSuchBucket", extra={"BucketName": name})
        return bucket

    def object(self, bucket: str, key: str) -> Optional[ObjectRecord]:
        return _readObject(self.db, bucket, key)

    def version(self, bucket: str, key: str, versionId: Optional[str]) -> Optional[_Found]:
        """Version C{versionId} (the latest without one, a delete marker included)."""
        if versionId is None:
            return _readLatest(self.db, bucket, key)
        return _readVersion(self.db, bucket, key, versionId)

    def upload(self, uploadId: str) -> Optional[UploadRecord]:
        return _readUpload(self.db, uploadId)

    # -- changes -------------------------------------------------------------

    def saveBucket(self, record: BucketRecord, new: bool = False) -> None:
        """Create (C{new}) or replace a bucket's record."""
        if new:
            self.db.execute("INSERT INTO buckets(name, record) VALUES (?, ?)", (record.name, encodeJSON(record.toJSON())))
        else:
            self.db.execute("UPDATE buckets SET record = ? WHERE name = ?", (encodeJSON(record.toJSON()), record.name))
        self._buckets[record.name] = record

    def removeBucket(self, name: str) -> None:
        self.db.execute("DELETE FROM buckets WHERE name = ?", (name,))
        self._buckets[name] = None

    def markRemoved(self, segment: int) -> None:
        """Remember that compaction removed C{segment}: a late commit naming it is refused."""
        self.db.execute("INSERT OR IGNORE INTO removed_segments(segment) VALUES (?)", (segment,))
        self._removed[segment] = True

    def addGarbage(self, extents: Iterable[Extent]) -> None:
        for e in extents:
            if e.length:
                self._garbage[e.segment] = self._garbage.get(e.segment, 0) + e.length

    def takeWritten(self, address: str, extents: Tuple[Extent, ...], size: int) -> None:
        """
        Take one reference on C{address} for bytes just written to
        C{extents}, which become the blob's bytes: a copy already stored is
        garbage from now on (it may be the rotten one a client is replacing).
        """
        self.refuseRemoved(extents)
        if self.db.execute(
            "INSERT INTO blobs(address, size, extents, refs) VALUES (?, ?, ?, 1) ON CONFLICT(address) DO NOTHING",
            (address, size, encodeExtents(extents)),
        ).rowcount:
            self.count("live_bytes", size)
        else:
            row = self.db.execute("SELECT extents FROM blobs WHERE address = ?", (address,)).fetchone()
            old = _decodeExtents(row[0])
            kept = set(extents)
            self.addGarbage(e for e in old if e not in kept)
            self._dropExtents(old)
            self.db.execute(
                "UPDATE blobs SET extents = ?, refs = refs + 1 WHERE address = ?", (encodeExtents(extents), address)
            )
        self._addExtents(address, extents)

    def refuseRemoved(self, extents: Iterable[Extent]) -> None:
        """
        Refuse bytes in a segment compaction removed: they were written by
        an upload that had not committed when compaction judged them dead.
        """
        for segment in {e.segment for e in extents}:
            removed = self._removed.get(segment)
            if removed is None:
                removed = self._removed[segment] = (
                    self.db.execute("SELECT 1 FROM removed_segments WHERE segment = ?", (segment,)).fetchone() is not None
                )
            if removed:
                raise S3Error("InternalError", "The upload's data was reclaimed before it committed; retry.")

    def _addExtents(self, address: str, extents: Iterable[Extent]) -> None:
        # Plain INSERT: a record already claimed by another blob (two
        # writers given one offset) refuses this write instead of aliasing.
        extents = tuple(extents)
        rows = [(e.segment, e.offset, e.length, address) for e in extents]
        if len(rows) == 1:
            self.db.execute(_INSERT_EXTENT, rows[0])
        else:
            self.db.executemany(_INSERT_EXTENT, rows)
        for e in extents:
            self._live[e.segment] = self._live.get(e.segment, 0) + recordLength(e.length)

    def _dropExtents(self, extents: Iterable[Extent]) -> None:
        extents = tuple(extents)
        self.db.executemany(
            "DELETE FROM blob_extents WHERE segment = ? AND offset = ?", [(e.segment, e.offset) for e in extents]
        )
        for e in extents:
            self._live[e.segment] = self._live.get(e.segment, 0) - recordLength(e.length)

    def relocate(self, address: str, old: Extent, new: Extent) -> bool:
        """Make C{new} the blob's copy of C{old}'s record, if C{old} still is one of its extents."""
        row = self.db.execute(
            "SELECT length, address FROM blob_extents WHERE segment = ? AND offset = ?", (old.segment, old.offset)
        ).fetchone()
        blob = self.db.execute("SELECT extents FROM blobs WHERE address = ?", (address,)).fetchone()
        if row != (old.length, address) or blob is None or new.length != old.length:
            self.addGarbage((new,))
            return False
        extents = tuple(new if e == old else e for e in _decodeExtents(blob[0]))
        self.db.execute("UPDATE blobs SET extents = ? WHERE address = ?", (encodeExtents(extents), address))
        self._dropExtents((old,))
        self.addGarbage((old,))
        self._addExtents(address, (new,))
        return True

    def acquire(self, addresses: Sequence[str]) -> None:
        """Take one reference per address on existing blobs; raises C{InternalError} for a missing one."""
        for address in addresses:
            updated = self.db.execute("UPDATE blobs SET refs = refs + 1 WHERE address = ?", (address,)).rowcount
            if updated != 1:
                log.error("a record references missing blob {address}", address=address)
                raise S3Error("InternalError")

    def releaseBlob(self, address: str) -> None:
        """Drop one reference; unreferenced bytes become garbage."""
        row = self.db.execute("SELECT size, extents, refs FROM blobs WHERE address = ?", (address,)).fetchone()
        if row is None:
            return
        size, text, refs = row
        if refs <= 1:
            extents = _decodeExtents(text)
            self.db.execute("DELETE FROM blobs WHERE address = ?", (address,))
            self._dropExtents(extents)
            self.addGarbage(extents)
            self.count("live_bytes", -size)
        else:
            self.db.execute("UPDATE blobs SET refs = refs - 1 WHERE address = ?", (address,))

    def install(self, record: ObjectRecord) -> ObjectRecord:
        """
        Make C{record} (whose references are taken) the key's latest
        version, with the id the bucket's versioning gives it; what becomes
        of the version it replaces follows that too (see
        L{IMetadataStore.putObject}).  Returns the record as stored.
        """
        bucket = self.requireBucket(record.bucket)
        seq = self.nextSeq()
        record = attrs.evolve(record, versionId=versionIdOf(seq) if bucket.versioning == ENABLED else None,
                              deleteMarker=False)
        self._supersede(bucket, record)
        self.db.execute(INSERT_OBJECT, objectRow(record, seq))
        self.count("objects", 1)
        self.count("logical_bytes", record.size)
        return record

    def addMarker(self, bucket: BucketRecord, key: str, modified: float) -> ObjectRecord:
        """Make a delete marker the key's latest version (a versioned bucket's DELETE)."""
        seq = self.nextSeq()
        marker = ObjectRecord.marker(bucket.name, key, modified)
        if bucket.versioning == ENABLED:
            marker = attrs.evolve(marker, versionId=versionIdOf(seq))
        self._supersede(bucket, marker)
        self.db.execute(_INSERT_VERSION, versionRow(marker, seq, 0.0))
        return marker

    def _supersede(self, bucket: BucketRecord, newer: ObjectRecord) -> None:
        """
        Make way for C{newer}, the key's next version: the one it replaces
        becomes an older version, or goes (on a bucket that never had
        versioning, and a null version replacing the null version).
        """
        current = _readCurrent(self.db, newer.bucket, newer.key)
        if current is not None:
            if bucket.versioning is None or (newer.versionId is None and current.record.versionId is None):
                self.removeCurrent(current.record, deleteRow=newer.deleteMarker)
            else:
                self.db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (newer.bucket, newer.key))
                self.count("objects", -1)
                self.count("logical_bytes", -current.record.size)
                self.db.execute(_INSERT_VERSION, versionRow(current.record, current.seq, newer.modified))
        elif bucket.versioning is not None:
            # The latest may be a delete marker: from now on it is not.
            self.db.execute(
                "UPDATE versions SET noncurrent_since = ? WHERE bucket = ? AND key = ? AND seq = "
                "(SELECT max(seq) FROM versions WHERE bucket = ? AND key = ?) AND noncurrent_since = 0",
                (newer.modified, newer.bucket, newer.key, newer.bucket, newer.key),
            )
        if bucket.versioning is not None and newer.versionId is None:
            older = _readOlder(self.db, newer.bucket, newer.key, " AND null_version = 1")
            if older is not None:
                self.removeOlder(older)

    def removeCurrent(self, record: ObjectRecord, deleteRow: bool = True) -> None:
        """Remove the key's C{objects} row for good (C{deleteRow} false: a new row is about to replace it)."""
        if deleteRow:
            self.db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (record.bucket, record.key))
        self.count("objects", -1)
        self.count("logical_bytes", -record.size)
        for address in record.blobAddresses():
            self.releaseBlob(address)

    def removeOlder(self, found: _Found) -> None:
        """Remove a C{versions} row for good."""
        record = found.record
        self.db.execute("DELETE FROM versions WHERE bucket = ? AND key = ? AND seq = ?", (record.bucket, record.key, found.seq))
        for address in record.blobAddresses():
            self.releaseBlob(address)

    def removeVersion(self, found: _Found) -> None:
        """
        Remove one version for good; if the key is left without an object
        as its latest version, the newest older one becomes it, unless that
        is a delete marker.
        """
        record = found.record
        if found.current:
            self.removeCurrent(record)
        else:
            self.removeOlder(found)
            if _readCurrent(self.db, record.bucket, record.key) is not None:
                return
        newest = _readOlder(self.db, record.bucket, record.key, " ORDER BY seq DESC LIMIT 1")
        if newest is not None and newest.record.deleteMarker:
            # A delete marker is the latest again: no longer noncurrent.
            self.db.execute(
                "UPDATE versions SET noncurrent_since = 0 WHERE bucket = ? AND key = ? AND seq = ?",
                (record.bucket, record.key, newest.seq),
            )
        elif newest is not None:
            self.db.execute(
                "DELETE FROM versions WHERE bucket = ? AND key = ? AND seq = ?", (record.bucket, record.key, newest.seq)
            )
            self.db.execute(INSERT_OBJECT, objectRow(newest.record, newest.seq))
            self.count("objects", 1)
            self.count("logical_bytes", newest.record.size)

    def replaceVersion(self, found: _Found, record: ObjectRecord) -> None:
        """Store C{record} in place of the version C{found} (its tags changed)."""
        if found.current:
            self.db.execute(INSERT_OBJECT, objectRow(record, found.seq))
        else:
            row = objectRow(record, found.seq)
            self.db.execute(
                "UPDATE versions SET record = ? WHERE bucket = ? AND key = ? AND seq = ?",
                (row[7], record.bucket, record.key, found.seq),
            )

    def removeUpload(self, upload: UploadRecord) -> None:
        """Forget an upload and release its parts."""
        self.db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload.uploadId,))
        self.db.execute("DELETE FROM parts WHERE upload_id = ?", (upload.uploadId,))
        for part in upload.parts:
            self.releaseBlob(part.blob)


def _readUpload(db: sqlite3.Connection, uploadId: str) -> Optional[UploadRecord]:
    row = db.execute("SELECT record FROM uploads WHERE upload_id = ?", (uploadId,)).fetchone()
    if row is None:
        return None
    parts = tuple(
        PartRecord.fromJSON(json.loads(text))
        for (text,) in db.execute("SELECT record FROM parts WHERE upload_id = ? ORDER BY number", (uploadId,))
    )
    return attrs.evolve(UploadRecord.fromJSON(json.loads(row[0])), parts=parts)


def encodeUpload(upload: UploadRecord) -> str:
    """An upload as its row's C{record} column (its parts have rows of their own)."""
    return _compact(upload.toJSON(), ("parts",))


Apply = Callable[[_Transaction], Any]


@attrs.define(eq=False)
class _Write:
    """
    A queued write: what it does, what to do if it refuses, who waits, and
    the newly written blob it commits, if any.
    """

    apply: Apply
    deferred: "Deferred[Any]"
    refused: Optional[Callable[[_Transaction], None]] = None
    blob: Optional[WrittenBlob] = None


@attrs.define
class _Outcome:
    """What one write of a round came to, carried back to the reactor."""

    result: Any = None
    failure: Optional[Failure] = None


@implementer(IMetadataStore)
@attrs.define(eq=False)
class SQLiteMetadataStore:
    """
    The metadata of record in one SQLite database (see the module docstring).

    @ivar path: the database file.
    @ivar runner: where blocking work (rounds, opening) runs.
    @ivar syncData: the segment store's C{prepareSync}: called on the reactor
        when a round starts; its result is called in the runner before the
        transaction commits.
    @ivar metrics: where to report rounds and totals.
    @ivar fsync: if false, commits are not fsynced (tests, benchmarks).
    @ivar connector: opens connections (L{connect}); tests inject faults here.
    @ivar migrate: what to bring in when the database does not exist yet
        (see L{fasterstore.metadata.migration}); C{None} for nothing.
    @ivar lost: the segment store's C{lost}: whether a blob's extents may
        have been dropped by a failed data sync (such a write is refused).
    """

    path: str
    runner: BlockingRunner
    syncData: SyncData
    metrics: Optional[Metrics] = None
    fsync: bool = True
    connector: Callable[[str, bool, bool], sqlite3.Connection] = connect
    migrate: Optional["Migration"] = None
    lost: Callable[[Iterable[Extent]], bool] = lambda extents: False

    _reader: Optional[sqlite3.Connection] = attrs.field(init=False, default=None)
    _writer: Optional[sqlite3.Connection] = attrs.field(init=False, default=None)
    _opening: bool = attrs.field(init=False, default=False)
    _closing: bool = attrs.field(init=False, default=False)
    _queue: List[_Write] = attrs.field(init=False, factory=list)
    _busy: bool = attrs.field(init=False, default=False)
    _idleWaiters: List["Deferred[None]"] = attrs.field(init=False, factory=list)
    _failing: Optional[str] = attrs.field(init=False, default=None)
    _roundsLock: Optional[int] = attrs.field(init=False, default=None)

    # -- lifecycle -------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether the store is open and not closing."""
        return self._reader is not None and not self._closing

    @property
    def failing(self) -> Optional[str]:
        """Why the last round failed, until one succeeds (for readiness)."""
        return self._failing

    def open(self) -> "Deferred[None]":
        """Create or open the database (and migrate, once) in the runner."""
        if self._reader is not None or self._opening:
            return fail(RuntimeError("SQLiteMetadataStore.open called twice"))
        self._opening = True

        def opened(connections: Tuple[sqlite3.Connection, sqlite3.Connection]) -> None:
            self._opening = False
            self._writer, self._reader = connections
            self._reportTotals()

        def failed(f: Failure) -> Failure:
            self._opening = False
            return f

        return self.runner.run(self._open).addCallbacks(opened, failed)

    def _open(self) -> Tuple[sqlite3.Connection, sqlite3.Connection]:
        makePrivateDirectory(os.path.dirname(self.path))
        fresh = not os.path.exists(self.path)
        if fresh and self.migrate is not None:
            # Built under a temporary name, renamed when complete: a crash
            # during a migration leaves the old metadata in charge.
            temporary = self.path + ".migrating"
            for suffix in ("", "-wal", "-shm", "-journal"):
                _removeIfExists(temporary + suffix)
            _createPrivately(temporary)
            db = self.connector(temporary, False, self.fsync)
            try:
                createSchema(db)
                self.migrate.fill(db)
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("PRAGMA journal_mode = DELETE")
            finally:
                db.close()
            if self.fsync:
                _fsyncPath(temporary)
            os.rename(temporary, self.path)
            if self.fsync:
                _fsyncPath(os.path.dirname(self.path))
        if self.migrate is not None:
            self.migrate.retire()
        _createPrivately(self.path)
        if self._roundsLock is None:
            self._roundsLock = openPrivateFile(self.path + ROUNDS_LOCK_SUFFIX, os.O_RDWR | os.O_CREAT)
        writer = self.connector(self.path, False, self.fsync)
        try:
            createSchema(writer)
            reader = self.connector(self.path, True, self.fsync)
        except BaseException:
            writer.close()
            raise
        return writer, reader

    def close(self) -> "Deferred[None]":
        """Refuse new writes, let queued ones finish, close the connections."""
        self._closing = True

        def closeAll(_: None) -> None:
            for name in ("_reader", "_writer"):
                db = getattr(self, name)
                setattr(self, name, None)
                if db is not None:
                    db.close()
            if self._roundsLock is not None:
                os.close(self._roundsLock)
                self._roundsLock = None

        return self._whenIdle().addCallback(closeAll)

    # -- reads -----------------------------------------------------------

    def _read(self, f: Callable[[sqlite3.Connection], T]) -> "Deferred[T]":
        db = self._reader
        if db is None:
            return fail(S3Error("ServiceUnavailable", "The metadata store is not open."))
        try:
            return succeed(f(db))
        except sqlite3.Error as e:
            log.failure("metadata read failed")
            return fail(storageError(e))
        except BaseException:
            return fail()

    def getBucket(self, name: str) -> "Deferred[Optional[BucketRecord]]":
        return self._read(lambda db: _bucket(db, name))

    def listBuckets(self) -> "Deferred[List[BucketRecord]]":
        return self._read(
            lambda db: [BucketRecord.fromJSON(json.loads(t)) for (t,) in db.execute("SELECT record FROM buckets ORDER BY name")]
        )

    def getObject(self, bucket: str, key: str) -> "Deferred[Optional[ObjectRecord]]":
        return self._read(lambda db: _readObject(db, bucket, key))

    def getVersion(self, bucket: str, key: str, versionId: Optional[str] = None) -> "Deferred[Optional[ObjectRecord]]":
        def get(db: sqlite3.Connection) -> Optional[ObjectRecord]:
            found = _readLatest(db, bucket, key) if versionId is None else _readVersion(db, bucket, key, versionId)
            return None if found is None else found.record

        return self._read(get)

    def listVersions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        keyMarker: str = "",
        versionIdMarker: str = "",
        maxKeys: int = 1000,
    ) -> "Deferred[VersionPage]":
        return self._read(lambda db: _listVersions(db, bucket, prefix, delimiter, keyMarker, versionIdMarker, maxKeys))

    def listObjects(
        self, bucket: str, prefix: str = "", delimiter: str = "", after: str = "", maxKeys: int = 1000
    ) -> "Deferred[ListPage]":
        return self._read(lambda db: _listObjects(db, bucket, prefix, delimiter, after, maxKeys))

    def getBlob(self, address: str) -> "Deferred[Optional[BlobRecord]]":
        def get(db: sqlite3.Connection) -> Optional[BlobRecord]:
            row = db.execute("SELECT size, extents, refs FROM blobs WHERE address = ?", (address,)).fetchone()
            return None if row is None else BlobRecord(address, row[0], _decodeExtents(row[1]), row[2])

        return self._read(get)

    def getUpload(self, uploadId: str) -> "Deferred[Optional[UploadRecord]]":
        return self._read(lambda db: _readUpload(db, uploadId))

    def listUploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        keyMarker: str = "",
        uploadIdMarker: str = "",
        maxUploads: int = 1000,
    ) -> "Deferred[UploadPage]":
        return self._read(lambda db: _listUploads(db, bucket, prefix, delimiter, keyMarker, uploadIdMarker, maxUploads))

    def staleUploads(self, before: float, limit: int = 1000) -> "Deferred[List[UploadRecord]]":
        def stale(db: sqlite3.Connection) -> List[UploadRecord]:
            rows = db.execute(
                "SELECT record FROM uploads WHERE initiated < ? ORDER BY initiated, upload_id LIMIT ?", (before, limit)
            )
            return [UploadRecord.fromJSON(json.loads(t)) for (t,) in rows]

        return self._read(stale)

    def totals(self) -> "Deferred[Totals]":
        return self._read(_totals)

    # -- writes ----------------------------------------------------------

    def createBucket(self, record: BucketRecord) -> "Deferred[None]":
        def apply(tx: _Transaction) -> None:
            existing = tx.bucket(record.name)
            if existing is not None:
                code = "BucketAlreadyOwnedByYou" if existing.owner == record.owner else "BucketAlreadyExists"
                raise S3Error(code, extra={"BucketName": record.name})
            tx.saveBucket(record, new=True)

        return self._enqueue(apply)

    def deleteBucket(self, name: str, owner: str) -> "Deferred[None]":
        def apply(tx: _Transaction) -> None:
            existing = tx.requireBucket(name)
            if existing.owner != owner:
                raise S3Error("AccessDenied")
            for table in ("objects", "versions"):
                if tx.db.execute(f"SELECT 1 FROM {table} WHERE bucket = ? LIMIT 1", (name,)).fetchone() is not None:
                    raise S3Error("BucketNotEmpty", extra={"BucketName": name})
            for (uploadId,) in tx.db.execute("SELECT upload_id FROM uploads WHERE bucket = ?", (name,)).fetchall():
                upload = tx.upload(uploadId)
                if upload is not None:
                    tx.removeUpload(upload)
            tx.removeBucket(name)

        return self._enqueue(apply)

    def updateBucket(self, name: str, change: Callable[[BucketRecord], BucketRecord]) -> "Deferred[BucketRecord]":
        def apply(tx: _Transaction) -> BucketRecord:
            existing = tx.requireBucket(name)
            updated = change(existing)
            if (updated.name, updated.owner) != (existing.name, existing.owner):
                raise ValueError("a bucket's name and owner cannot change")
            tx.saveBucket(updated)
            return updated

        return self._enqueue(apply)

    def putObject(
        self, record: ObjectRecord, blob: WrittenBlob, precondition: Optional[ObjectPrecondition] = None
    ) -> "Deferred[ObjectRecord]":
        if record.blobAddresses() != (record.blob,):
            self.discard(blob)
            return fail(ValueError("putObject takes a single-blob record (no parts)"))
        extents = tuple(blob.extents)

        def apply(tx: _Transaction) -> ObjectRecord:
            tx.requireBucket(record.bucket)
            if precondition is not None:
                precondition(tx.object(record.bucket, record.key))
            tx.takeWritten(record.blob, extents, blob.size)
            return tx.install(record)

        return self._enqueue(apply, refused=lambda tx: tx.addGarbage(extents), blob=blob)

    def deleteObject(
        self,
        bucket: str,
        key: str,
        precondition: Optional[ObjectPrecondition] = None,
        versionId: Optional[str] = None,
        modified: float = 0.0,
        keepLatest: bool = False,
    ) -> "Deferred[Optional[ObjectRecord]]":
        def apply(tx: _Transaction) -> Optional[ObjectRecord]:
            state = tx.requireBucket(bucket)
            if versionId is not None:
                found = tx.version(bucket, key, versionId)
                if precondition is not None:
                    precondition(None if found is None else found.record)
                if found is None:
                    return None
                if keepLatest:
                    latest = tx.version(bucket, key, None)
                    if latest is not None and latest.seq == found.seq:
                        return None
                tx.removeVersion(found)
                return found.record
            current = tx.object(bucket, key)
            if precondition is not None:
                precondition(current)
            if state.versioning is not None:
                return tx.addMarker(state, key, modified)
            if current is not None:
                tx.removeCurrent(current)
            return current

        return self._enqueue(apply)

    def copyObject(
        self,
        sourceBucket: str,
        sourceKey: str,
        build: Callable[[ObjectRecord], ObjectRecord],
        precondition: Optional[ObjectPrecondition] = None,
        sourceVersionId: Optional[str] = None,
    ) -> "Deferred[Copied]":
        def apply(tx: _Transaction) -> Copied:
            tx.requireBucket(sourceBucket)
            if sourceVersionId is None:
                source = tx.object(sourceBucket, sourceKey)
                if source is None:
                    raise S3Error("NoSuchKey", extra={"Key": sourceKey})
            else:
                found = tx.version(sourceBucket, sourceKey, sourceVersionId)
                if found is None:
                    raise S3Error("NoSuchVersion", extra={"Key": sourceKey, "VersionId": sourceVersionId})
                source = found.record
                if source.deleteMarker:
                    raise S3Error(
                        "InvalidRequest",
                        "The source of a copy request may not specifically refer to a delete marker by version id.",
                    )
            record = build(source)
            if sorted(record.blobAddresses()) != sorted(source.blobAddresses()):
                raise ValueError("a copy must reference exactly the source's blobs")
            tx.requireBucket(record.bucket)
            if precondition is not None:
                precondition(tx.object(record.bucket, record.key))
            tx.acquire(record.blobAddresses())
            return Copied(source, tx.install(record))

        return self._enqueue(apply)

    def updateVersion(
        self, bucket: str, key: str, versionId: Optional[str], change: Callable[[ObjectRecord], ObjectRecord]
    ) -> "Deferred[ObjectRecord]":
        def apply(tx: _Transaction) -> ObjectRecord:
            tx.requireBucket(bucket)
            if versionId is None:
                found = _readCurrent(tx.db, bucket, key)
                if found is None:
                    raise S3Error("NoSuchKey", extra={"Key": key})
            else:
                found = tx.version(bucket, key, versionId)
                if found is None:
                    raise S3Error("NoSuchVersion", extra={"Key": key, "VersionId": versionId})
                if found.record.deleteMarker:
                    raise S3Error("MethodNotAllowed")
            updated = change(found.record)
            if _identity(updated) != _identity(found.record):
                raise ValueError("an update must keep the version's key, id and bytes")
            tx.replaceVersion(found, updated)
            return updated

        return self._enqueue(apply)

    def createUpload(self, record: UploadRecord) -> "Deferred[UploadRecord]":
        record = attrs.evolve(record, parts=())

        def apply(tx: _Transaction) -> UploadRecord:
            tx.requireBucket(record.bucket)
            if tx.db.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (record.uploadId,)).fetchone():
                raise ValueError(f"upload id {record.uploadId!r} is already in use")
            tx.db.execute(
                "INSERT INTO uploads(upload_id, bucket, key, initiated, record) VALUES (?, ?, ?, ?, ?)",
                (record.uploadId, record.bucket, record.key, record.initiated, encodeUpload(record)),
            )
            return record

        return self._enqueue(apply)

    def putPart(self, uploadId: str, part: PartRecord, blob: WrittenBlob) -> "Deferred[PartRecord]":
        extents = tuple(blob.extents)

        def apply(tx: _Transaction) -> PartRecord:
            if tx.db.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (uploadId,)).fetchone() is None:
                raise _noSuchUpload(uploadId)
            # The new reference first, so that a part re-sent with the same
            # content never drops its blob to zero references.
            tx.takeWritten(part.blob, extents, blob.size)
            previous = tx.db.execute(
                "SELECT record FROM parts WHERE upload_id = ? AND number = ?", (uploadId, part.number)
            ).fetchone()
            tx.db.execute(
                "INSERT OR REPLACE INTO parts(upload_id, number, record) VALUES (?, ?, ?)",
                (uploadId, part.number, encodeJSON(part.toJSON())),
            )
            if previous is not None:
                tx.releaseBlob(PartRecord.fromJSON(json.loads(previous[0])).blob)
            return part

        return self._enqueue(apply, refused=lambda tx: tx.addGarbage(extents), blob=blob)

    def completeUpload(
        self,
        uploadId: str,
        build: Callable[[UploadRecord], ObjectRecord],
        precondition: Optional[ObjectPrecondition] = None,
    ) -> "Deferred[ObjectRecord]":
        def apply(tx: _Transaction) -> ObjectRecord:
            upload = tx.upload(uploadId)
            if upload is None:
                raise _noSuchUpload(uploadId)
            record = build(upload)
            if (record.bucket, record.key) != (upload.bucket, upload.key):
                raise ValueError("a completed upload's object must have the upload's bucket and key")
            if not set(record.blobAddresses()) <= {p.blob for p in upload.parts}:
                raise ValueError("a completed upload's object may only reference its parts")
            tx.requireBucket(record.bucket)
            if precondition is not None:
                precondition(tx.object(record.bucket, record.key))
            # The object's references first: parts it uses never drop to zero.
            tx.acquire(record.blobAddresses())
            stored = tx.install(record)
            tx.removeUpload(upload)
            return stored

        return self._enqueue(apply)

    def abortUpload(self, uploadId: str) -> "Deferred[None]":
        def apply(tx: _Transaction) -> None:
            upload = tx.upload(uploadId)
            if upload is None:
                raise _noSuchUpload(uploadId)
            tx.removeUpload(upload)

        return self._enqueue(apply)

    def discard(self, blob: WrittenBlob) -> "Deferred[None]":
        extents = tuple(blob.extents)
        if not extents or not self.ready:
            blob.release()
            return succeed(None)
        d = self._enqueue(lambda tx: tx.addGarbage(extents), blob=blob)
        d.addErrback(lambda f: log.failure("Recording discarded extents failed", f))
        return d

    def probe(self) -> "Deferred[None]":
        if not self.ready:
            return succeed(None)
        d = self._enqueue(lambda tx: tx.count("fence", 1))
        d.addErrback(lambda f: None)
        return d

    # -- compaction ------------------------------------------------------

    def segmentUsage(self) -> "Deferred[Dict[int, int]]":
        return self._read(lambda db: dict(db.execute("SELECT segment, live FROM segments").fetchall()))

    def segmentExtents(self, segment: int, after: int = -1, limit: int = 1000) -> "Deferred[List[Tuple[str, Extent]]]":
        def extents(db: sqlite3.Connection) -> List[Tuple[str, Extent]]:
            rows = db.execute(
                "SELECT offset, length, address FROM blob_extents WHERE segment = ? AND offset > ? "
                "ORDER BY offset LIMIT ?",
                (segment, after, limit),
            )
            return [(address, Extent(segment, offset, length)) for offset, length, address in rows]

        return self._read(extents)

    def relocate(self, moves: Sequence[Tuple[str, Extent, Extent]]) -> "Deferred[int]":
        moves = tuple(moves)

        def apply(tx: _Transaction) -> int:
            return sum(tx.relocate(address, old, new) for address, old, new in moves)

        return self._enqueue(apply)

    def forgetSegment(self, segment: int) -> "Deferred[None]":
        def apply(tx: _Transaction) -> None:
            if tx.db.execute("SELECT 1 FROM blob_extents WHERE segment = ? LIMIT 1", (segment,)).fetchone():
                raise ValueError(f"segment {segment} still holds live records")
            tx.db.execute("DELETE FROM segments WHERE segment = ?", (segment,))
            tx.db.execute("DELETE FROM garbage WHERE segment = ?", (segment,))
            tx.markRemoved(segment)

        return self._enqueue(apply)

    # -- group commit ----------------------------------------------------

    def _enqueue(
        self, apply: Apply, refused: Optional[Callable[[_Transaction], None]] = None, blob: Optional[WrittenBlob] = None
    ) -> "Deferred[Any]":
        if self._reader is None or self._closing:
            if blob is not None:
                blob.release()
            return fail(S3Error("ServiceUnavailable", "Metadata is not accepting writes."))
        write = _Write(apply, Deferred(), refused, blob)
        self._queue.append(write)
        self._maybeStartRound()
        return write.deferred

    def _maybeStartRound(self) -> None:
        if self._busy:
            return
        if self._queue:
            self._startRound()
        else:
            waiters, self._idleWaiters = self._idleWaiters, []
            for w in waiters:
                w.callback(None)

    def _whenIdle(self) -> "Deferred[None]":
        if not self._busy and not self._queue:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idleWaiters.append(d)
        return d

    def _startRound(self) -> None:
        queued, self._queue = self._queue, []
        batch: List[_Write] = []
        for write in queued:
            if write.blob is not None and self.lost(write.blob.extents):
                # Its bytes were covered by a data sync that failed: the
                # kernel may have dropped them, so it must not commit.
                write.blob.release()
                write.deferred.errback(Failure(S3Error("InternalError", "The object's data could not be made durable; retry.")))
            else:
                batch.append(write)
        if not batch:
            self._maybeStartRound()
            return
        self._busy = True
        try:
            syncData = self.syncData()
        except Exception:
            self._roundFailed(Failure(), batch)
            return
        ensureDeferred(self._round(syncData, batch))

    async def _round(self, syncData: Callable[[], None], batch: List[_Write]) -> None:
        """
        One round in three steps.  Only what blocks runs in the runner
        (data sync, the rounds lock, C{BEGIN IMMEDIATE}; then C{COMMIT} and
        its fsync); the writes themselves, which are Python and SQLite
        work on pages in memory, run here on the calling thread, so that
        the runner's thread never needs the GIL back for each of the
        dozens of statements a round executes.
        """
        started = time.perf_counter()
        try:
            db = await self.runner.run(self._begin, syncData)
            try:
                outcomes = self._transact(db, batch)
            except BaseException:
                failure = Failure()
                await self.runner.run(self._abandon, db)
                failure.raiseException()
            await self.runner.run(self._end, db)
        except BaseException:
            self._roundFailed(Failure(), batch)
        else:
            self._roundDone(time.perf_counter() - started, outcomes, batch)

    def _connection(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = self.connector(self.path, False, self.fsync)
        return self._writer

    def _begin(self, syncData: Callable[[], None]) -> sqlite3.Connection:
        """
        A round's first blocking step: make the batch's data durable, then
        take the rounds lock and open the transaction.
        """
        syncData()
        self._lockRounds()
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._unlockRounds()
            raise
        return db

    def _end(self, db: sqlite3.Connection) -> None:
        """A round's last blocking step: commit (the WAL's fsync), let the next round in."""
        try:
            db.execute("COMMIT")
        except BaseException:
            self._abandon(db)
            raise
        self._unlockRounds()

    def _lockRounds(self) -> None:
        """
        Take the rounds lock of the database (an C{flock}): processes on one
        file take turns without SQLite's busy handler, which sleeps in steps
        of up to 100 ms and let one worker's writes wait a second behind
        another's.
        """
        if self._roundsLock is not None:
            fcntl.flock(self._roundsLock, fcntl.LOCK_EX)

    def _unlockRounds(self) -> None:
        if self._roundsLock is not None:
            fcntl.flock(self._roundsLock, fcntl.LOCK_UN)

    def _transact(self, db: sqlite3.Connection, batch: Sequence[_Write]) -> List[_Outcome]:
        """Apply each write of the round in its own savepoint, then the round's deltas."""
        tx = _Transaction(db)
        outcomes: List[_Outcome] = []
        for write in batch:
            tx.begin()
            try:
                result = write.apply(tx)
            except sqlite3.IntegrityError as e:
                # An invariant would break (a record claimed twice): this
                # write alone is refused, and its extents are not garbage
                # (they may hold another blob's bytes).
                tx.rollback()
                log.error("metadata write refused, it would break an invariant: {error}", error=str(e))
                outcomes.append(_Outcome(failure=Failure(S3Error("InternalError"))))
            except sqlite3.Error:
                raise
            except BaseException:
                failure = Failure()
                tx.rollback()
                if write.refused is not None:
                    tx.begin()
                    write.refused(tx)
                    tx.release()
                outcomes.append(_Outcome(failure=failure))
            else:
                tx.release()
                outcomes.append(_Outcome(result=result))
        tx.flush()
        return outcomes

    def _abandon(self, db: sqlite3.Connection) -> None:
        """
        After a failed round: roll back, then commit a I{fence} so that
        frames a failed commit may have left in SQLite's log are overwritten
        and cannot come back after a crash (a write answered 500 stays
        undone).  Any doubt about the connection: drop it.  Either way the
        rounds lock is let go.
        """
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE counters SET value = value + 1 WHERE name = 'fence'")
            db.execute("COMMIT")
        except BaseException:
            log.failure("metadata fence after a failed round failed; reconnecting")
            self._writer = None
            try:
                db.close()
            except BaseException:
                pass
        finally:
            self._unlockRounds()

    def _roundDone(self, elapsed: float, outcomes: List[_Outcome], batch: List[_Write]) -> None:
        self._busy = False
        self._failing = None
        if self.metrics is not None:
            self.metrics.fsyncLatency.observe(elapsed)
            self.metrics.groupCommitBatch.observe(len(batch))
        self._reportTotals()
        for write, outcome in zip(batch, outcomes):
            if write.blob is not None:
                write.blob.release()
            if outcome.failure is None:
                write.deferred.callback(outcome.result)
            else:
                write.deferred.errback(outcome.failure)
        self._maybeStartRound()

    def _roundFailed(self, failure: Failure, batch: List[_Write]) -> None:
        log.failure("metadata commit round failed; its writes are refused", failure)
        self._busy = False
        reason = failure.value
        assert reason is not None
        self._failing = str(reason) or type(reason).__name__
        error = storageError(reason)
        for write in batch:
            if write.blob is not None:
                write.blob.release()
            write.deferred.errback(Failure(error))
        self._maybeStartRound()

    def _reportTotals(self) -> None:
        if self.metrics is None or self._reader is None:
            return
        try:
            # The two gauges' counters only: the garbage table (a row per
            # segment) is not read after every round.
            counters = dict(
                self._reader.execute("SELECT name, value FROM counters WHERE name IN ('objects', 'logical_bytes')")
            )
        except sqlite3.Error:
            return
        self.metrics.objects.set(counters.get("objects", 0))
        self.metrics.storedBytes.set(counters.get("logical_bytes", 0))


def _identity(record: ObjectRecord) -> Tuple[Any, ...]:
    """What an L{SQLiteMetadataStore.updateVersion} may not change."""
    return (record.bucket, record.key, record.versionId, record.deleteMarker, record.size, record.etag,
            record.blobAddresses(), record.modified)


def _noSuchUpload(uploadId: str) -> S3Error:
    return S3Error("NoSuchUpload", extra={"UploadId": uploadId})


def _bucket(db: sqlite3.Connection, name: str) -> Optional[BucketRecord]:
    row = db.execute("SELECT record FROM buckets WHERE name = ?", (name,)).fetchone()
    return None if row is None else decodeBucket(row[0])


def _decodeBucket(text: str) -> BucketRecord:
    return BucketRecord.fromJSON(json.loads(text))


#: Every request to a bucket reads its row; a bucket's record (policy,
#: lifecycle, CORS) can be tens of KB, hence few entries.
decodeBucket = functools.lru_cache(maxsize=64)(_decodeBucket)


def _totals(db: sqlite3.Connection) -> Totals:
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    garbage = {segment: n for segment, n in db.execute("SELECT segment, bytes FROM garbage") if n}
    return Totals(counters.get("objects", 0), counters.get("logical_bytes", 0), counters.get("live_bytes", 0), garbage)


#: A listing's columns: what L{ObjectSummary} needs, so that a page never
#: decodes whole records (a multipart manifest, headers, metadata).
_SUMMARY_COLUMNS = "key, size, etag, modified, checksum_algorithms, checksum_type"


def _summary(row: Tuple[Any, ...]) -> ObjectSummary:
    key, size, etag, modified, algorithms, checksumType = row
    return ObjectSummary(key, size, etag, modified, tuple(algorithms.split(",")) if algorithms else (), checksumType)


def _listObjects(
    db: sqlite3.Connection, bucket: str, prefix: str, delimiter: str, after: str, maxKeys: int
) -> ListPage:
    if _bucket(db, bucket) is None:
        raise S3Error("NoSuchBucket", extra={"BucketName": bucket})

    def fromKey(key: str, inclusive: bool, limit: int) -> Rows[Tuple[Any, ...]]:
        op = ">=" if inclusive else ">"
        rows = db.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM objects WHERE bucket = ? AND key {op} ? ORDER BY key LIMIT ?",
            (bucket, key, limit),
        ).fetchall()
        return [(row[0], row) for row in rows]

    page = walk(fromKey, lambda key, row, limit: fromKey(key, False, limit), prefix, delimiter, after, maxKeys)
    objects: List[ObjectSummary] = []
    prefixes: List[str] = []
    last = ""
    for entry in page.entries:
        if isinstance(entry, str):
            prefixes.append(entry)
            last = entry
        else:
            objects.append(_summary(entry))
            last = entry[0]
    return ListPage(objects, prefixes, page.truncated, last)


#: A ListObjectVersions row: the L{_VERSION_SUMMARY} columns, then whether
#: it is the C{objects} row.
_VersionRow = Tuple[Any, ...]

_VERSION_SUMMARY = (
    "key, seq, null_version, {marker}, size, etag, modified, checksum_algorithms, checksum_type, {since}"
)


def _listVersions(
    db: sqlite3.Connection,
    bucket: str,
    prefix: str,
    delimiter: str,
    keyMarker: str,
    versionIdMarker: str,
    maxKeys: int,
) -> VersionPage:
    """
    ListObjectVersions over both tables: each range read takes the same
    range of C{objects} and of C{versions} (both in key order, newest first
    within a key) and merges them; a key's C{objects} row is always its
    newest.
    """
    if _bucket(db, bucket) is None:
        raise S3Error("NoSuchBucket", extra={"BucketName": bucket})
    current = f"SELECT {_VERSION_SUMMARY.format(marker='0', since='0.0')}, 1 FROM objects WHERE bucket = ? AND "
    older = (f"SELECT {_VERSION_SUMMARY.format(marker='delete_marker', since='noncurrent_since')}, 0 "
             "FROM versions WHERE bucket = ? AND ")

    def merged(where: str, args: Tuple[Any, ...], limit: int) -> Rows[_VersionRow]:
        tail = " ORDER BY key, seq DESC LIMIT ?"
        rows = db.execute(current + where + tail, (bucket,) + args + (limit,)).fetchall()
        rows += db.execute(older + where + tail, (bucket,) + args + (limit,)).fetchall()
        rows.sort(key=lambda row: (row[0], -row[1]))
        return [(row[0], row) for row in rows[:limit]]

    def fromKey(key: str, inclusive: bool, limit: int) -> Rows[_VersionRow]:
        return merged("key >= ?" if inclusive else "key > ?", (key,), limit)

    def belowSeq(key: str, seq: int, limit: int) -> Rows[_VersionRow]:
        rows = merged("key = ? AND seq < ?", (key, seq), limit)
        if len(rows) < limit:
            rows = list(rows) + list(fromKey(key, False, limit - len(rows)))
        return rows

    first: Optional[Callable[[int], Rows[_VersionRow]]] = None
    if versionIdMarker and keyMarker and keyMarker >= prefix:
        if versionIdMarker == NULL_VERSION_ID:
            found = _readVersion(db, bucket, keyMarker, NULL_VERSION_ID)
            markerSeq = None if found is None else found.seq
        else:
            markerSeq = _seqOf(versionIdMarker)
        if markerSeq is not None:
            seq = markerSeq

            def first(limit: int) -> Rows[_VersionRow]:
                return belowSeq(keyMarker, seq, limit)
    elif versionIdMarker and versionIdMarker != NULL_VERSION_ID:
        _seqOf(versionIdMarker)

    page = walk(fromKey, lambda key, row, limit: belowSeq(key, row[1], limit), prefix, delimiter, keyMarker, maxKeys,
                first=first)
    versions: List[VersionSummary] = []
    prefixes: List[str] = []
    lastKey = lastId = ""
    previous: Optional[str] = None
    for entry in page.entries:
        if isinstance(entry, str):
            prefixes.append(entry)
            lastKey, lastId = entry, ""
            continue
        key, seq, nullVersion, marker, size, etag, modified, algorithms, checksumType, since, isCurrent = entry
        versionId = None if nullVersion else versionIdOf(seq)
        # A key's first row in the walk is its newest, so its latest version,
        # unless the walk started inside the key (after a version marker,
        # which may have been removed since: ask).
        if isCurrent:
            latest = True
        elif not marker or key == previous:
            latest = False
        elif first is not None and key == keyMarker:
            latest = _isLatestMarker(db, bucket, key, seq)
        else:
            latest = True
        previous = key
        summary = VersionSummary(
            key, versionId, latest, bool(marker), size, etag, modified,
            tuple(algorithms.split(",")) if algorithms else (), checksumType, since,
        )
        versions.append(summary)
        lastKey, lastId = key, summary.wireVersionId
    return VersionPage(versions, prefixes, page.truncated, lastKey, lastId)


def _isLatestMarker(db: sqlite3.Connection, bucket: str, key: str, seq: int) -> bool:
    """Whether the delete marker C{seq} is its key's latest version."""
    if db.execute("SELECT 1 FROM objects WHERE bucket = ? AND key = ?", (bucket, key)).fetchone() is not None:
        return False
    newest = db.execute(
        "SELECT seq FROM versions WHERE bucket = ? AND key = ? ORDER BY seq DESC LIMIT 1", (bucket, key)
    ).fetchone()
    return newest is not None and newest[0] == seq


def _listUploads(
    db: sqlite3.Connection,
    bucket: str,
    prefix: str,
    delimiter: str,
    keyMarker: str,
    uploadIdMarker: str,
    maxUploads: int,
) -> UploadPage:
    if _bucket(db, bucket) is None:
        raise S3Error("NoSuchBucket", extra={"BucketName": bucket})
    columns = "SELECT key, initiated, upload_id, record FROM uploads WHERE bucket = ? AND "
    order = " ORDER BY key, initiated, upload_id LIMIT ?"

    def rows(where: str, args: Tuple[Any, ...]) -> Rows[UploadRecord]:
        found = db.execute(columns + where + order, (bucket,) + args).fetchall()
        return [(key, UploadRecord.fromJSON(json.loads(text))) for key, _, _, text in found]

    def fromKey(key: str, inclusive: bool, limit: int) -> Rows[UploadRecord]:
        return rows("key >= ?" if inclusive else "key > ?", (key, limit))

    def afterRow(key: str, upload: UploadRecord, limit: int) -> Rows[UploadRecord]:
        return rows("(key, initiated, upload_id) > (?, ?, ?)", (key, upload.initiated, upload.uploadId, limit))

    def afterMarker(limit: int) -> Rows[UploadRecord]:
        return afterRow(keyMarker, markerRecord, limit)

    def fromMarkerKey(limit: int) -> Rows[UploadRecord]:
        return fromKey(keyMarker, True, limit)

    def notAfterMarker(key: str, upload: UploadRecord) -> bool:
        return key == keyMarker and upload.uploadId <= uploadIdMarker

    first: Optional[Callable[[int], Rows[UploadRecord]]] = None
    skip: Optional[Callable[[str, UploadRecord], bool]] = None
    if keyMarker and keyMarker >= prefix and uploadIdMarker:
        marker = db.execute(
            "SELECT key, initiated FROM uploads WHERE upload_id = ? AND bucket = ?", (uploadIdMarker, bucket)
        ).fetchone()
        if marker is not None and marker[0] == keyMarker:
            markerRecord = UploadRecord(uploadIdMarker, bucket, keyMarker, "", marker[1])
            first = afterMarker
        else:
            # Unknown marker upload: that key's uploads with greater ids.
            first, skip = fromMarkerKey, notAfterMarker

    page = walk(fromKey, afterRow, prefix, delimiter, keyMarker, maxUploads, first=first, skip=skip)
    uploads: List[UploadRecord] = []
    prefixes: List[str] = []
    lastKey = lastId = ""
    for entry in page.entries:
        if isinstance(entry, str):
            prefixes.append(entry)
            lastKey, lastId = entry, ""
        else:
            uploads.append(entry)
            lastKey, lastId = entry.key, entry.uploadId
    return UploadPage(uploads, prefixes, page.truncated, lastKey, lastId)


def _removeIfExists(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsyncPath(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _createPrivately(path: str) -> None:
    """Create the database file 0600 before SQLite does (with the umask's mode)."""
    if not os.path.exists(path):
        os.close(openPrivateFile(path, os.O_WRONLY | os.O_CREAT))
