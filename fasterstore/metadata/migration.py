"""
Upgrading a data directory written before the SQLite store.

Until the SQLite store, C{<data dir>/meta/} held JSON snapshots
(C{snapshot-N.json}) and a write-ahead log (C{wal-N.log}) that a start
replayed into memory.  The first start of this version finds them, replays
them once (read-only: nothing in them is cut or removed on the way) into a
new database built under a temporary name, renames it into place, and then
moves the old files to C{meta/pre-sqlite/}, where they stay until the
operator deletes them.  A crash at any point before the rename leaves the
old files in charge and the next start migrates again; after it, the
database is in charge and the old files are never read again.
Tests: tests/unit/test_migration.py.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Optional

import attrs
from twisted.logger import Logger

from fasterstore.durable import syncDirectory
from fasterstore.files import makePrivateDirectory
from fasterstore.metadata.legacy.snapshot import listSnapshots, loadState
from fasterstore.metadata.legacy.wal import listWALs
from fasterstore.metadata.sqlite import INSERT_OBJECT, countSegments, encodeExtents, encodeJSON, encodeUpload, objectRow

log = Logger()

#: Where the old files go once the database is in charge.
RETIRED = "pre-sqlite"


@attrs.define
class LegacyMigration:
    """
    Moves the metadata of an old C{meta/} directory into a new database: a
    L{fasterstore.metadata.sqlite.Migration}.

    @ivar directory: the old C{meta/} directory.
    @ivar fsync: whether to fsync the directory after retiring the files.
    """

    directory: str
    fsync: bool = True

    @classmethod
    def find(cls, directory: str, fsync: bool = True) -> Optional["LegacyMigration"]:
        """A migration if C{directory} holds old snapshots or WAL files."""
        if listSnapshots(directory) or listWALs(directory):
            return cls(directory, fsync)
        return None

    def fill(self, db: sqlite3.Connection) -> None:
        """Replay the old files and write what they hold into C{db} (one transaction)."""
        loaded = loadState(self.directory)
        state = loaded.state
        log.info(
            "Migrating metadata from {directory} (snapshot {snapshot}, WAL through {wal}): "
            "{buckets} buckets, {objects} objects, {uploads} uploads in progress",
            directory=self.directory, snapshot=loaded.snapshotGeneration, wal=loaded.walGeneration,
            buckets=len(state.buckets), objects=state.objectCount, uploads=len(state.uploads),
        )
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO buckets(name, record) VALUES (?, ?)",
                ((name, encodeJSON(record.toJSON())) for name, record in state.buckets.items()),
            )
            for keys in state.objects.values():
                db.executemany(INSERT_OBJECT, (objectRow(r) for r in keys.values()))
            db.executemany(
                "INSERT INTO blobs(address, size, extents, refs) VALUES (?, ?, ?, ?)",
                ((b.address, b.size, encodeExtents(b.extents), b.refs) for b in state.blobs.values()),
            )
            db.executemany(
                "INSERT OR REPLACE INTO blob_extents(segment, offset, length, address) VALUES (?, ?, ?, ?)",
                ((e.segment, e.offset, e.length, b.address) for b in state.blobs.values() for e in b.extents),
            )
            for upload in state.uploads.values():
                db.execute(
                    "INSERT INTO uploads(upload_id, bucket, key, initiated, record) VALUES (?, ?, ?, ?, ?)",
                    (upload.uploadId, upload.bucket, upload.key, upload.initiated, encodeUpload(upload)),
                )
                db.executemany(
                    "INSERT INTO parts(upload_id, number, record) VALUES (?, ?, ?)",
                    ((upload.uploadId, p.number, encodeJSON(p.toJSON())) for p in upload.parts),
                )
            db.executemany(
                "INSERT INTO garbage(segment, bytes) VALUES (?, ?)", sorted(state.garbage.items())
            )
            countSegments(db)
            live = sum(b.size for b in state.blobs.values())
            db.executemany(
                "UPDATE counters SET value = ? WHERE name = ?",
                [(state.objectCount, "objects"), (state.logicalBytes, "logical_bytes"), (live, "live_bytes")],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def retire(self) -> None:
        """Move the old files out of the way (the database is in charge now)."""
        target = os.path.join(self.directory, RETIRED)
        makePrivateDirectory(target)
        for name in sorted(os.listdir(self.directory)):
            if name.startswith(("snapshot-", "wal-")):
                os.replace(os.path.join(self.directory, name), os.path.join(target, name))
        if self.fsync:
            syncDirectory(target)
            syncDirectory(self.directory)
        log.info("Old metadata files kept in {target}; delete them once satisfied", target=target)
