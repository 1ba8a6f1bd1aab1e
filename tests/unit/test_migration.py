"""
Tests for L{fasterstore.metadata.migration} and the SQLite schema's
upgrades: data directories written by older FasterStores (made by
tests/fixtures/make_legacy_datadir.py: at 8958578, snapshot + WAL; at
700d7ad, the SQLite store's first schema; at acef5a3, the schema before
versions) open with everything they held.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tarfile
from typing import TYPE_CHECKING

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.metadata.migration import RETIRED, LegacyMigration
from fasterstore.metadata.records import ENABLED, NULL_VERSION_ID, ObjectSummary
from fasterstore.metadata.testing import record, usageOf, versioningSetter, written
from fasterstore.metadata.sqlite import DATABASE_NAME, SCHEMA_VERSION, SQLiteMetadataStore
from fasterstore.storage.segments import SegmentStore
from fasterstore.threads import ImmediateRunner

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class FixtureTestsMixin(_Base):
    """A fixture's data directory, opened: everything the script wrote is there."""

    fixture: str

    def setUp(self) -> None:
        root = self.mktemp()
        os.makedirs(root)
        with tarfile.open(os.path.join(FIXTURES, self.fixture + ".tar.gz")) as tar:
            tar.extractall(root)
        self.data = os.path.join(root, "data")
        self.meta = os.path.join(self.data, "meta")
        with open(os.path.join(FIXTURES, self.fixture + ".upload")) as f:
            self.pendingUpload = f.read().strip()

    def store(self) -> SQLiteMetadataStore:
        store = SQLiteMetadataStore(
            os.path.join(self.meta, DATABASE_NAME), ImmediateRunner(), lambda: (lambda: None),
            fsync=False, migrate=LegacyMigration.find(self.meta, fsync=False),
        )
        self.successResultOf(store.open())
        self.addCleanup(store.close)
        return store

    def read(self, store: SQLiteMetadataStore, bucket: str, key: str) -> bytes:
        record = self.successResultOf(store.getObject(bucket, key))
        assert record is not None, key
        segments = SegmentStore(FilePath(self.data), ImmediateRunner())
        self.addCleanup(segments.close)
        extents = []
        for address in record.blobAddresses():
            blob = self.successResultOf(store.getBlob(address))
            assert blob is not None
            extents.extend(blob.extents)
        return self.successResultOf(segments.readRange(extents, 0, record.size))

    def test_everythingThere(self) -> None:
        """Buckets, objects (snapshot and WAL tail), tags, copies, uploads in progress."""
        store = self.store()
        self.assertEqual([b.name for b in self.successResultOf(store.listBuckets())], ["alpha", "beta"])
        alpha = self.successResultOf(store.getBucket("alpha"))
        assert alpha is not None
        self.assertIsNotNone(alpha.configValue("tagging"))
        keys = [o.key for o in self.successResultOf(store.listObjects("alpha")).objects]
        self.assertEqual(keys, sorted([
            "copy-of-a", "docs/a.txt", "docs/sub/b.txt", "overwritten", "photos/2024/x.jpg",
            "same-1", "same-2", "space and %.txt", "ünïcode/ключ.txt",
        ]))
        self.assertEqual(self.read(store, "alpha", "overwritten"), b"second")
        self.assertEqual(self.read(store, "alpha", "ünïcode/ключ.txt"), "content of ünïcode/ключ.txt".encode())
        self.assertEqual(self.read(store, "alpha", "copy-of-a"), b"content of docs/a.txt")
        a = self.successResultOf(store.getObject("alpha", "docs/a.txt"))
        assert a is not None
        self.assertEqual(a.tags, (("k", "v"),))
        self.assertEqual(dict(a.meta), {"origin": "legacy"})
        big = self.read(store, "beta", "big")
        self.assertEqual(hashlib.sha256(big).hexdigest(),
                         hashlib.sha256(b"A" * (5 << 20) + b"B" * (5 << 20) + b"C" * 1024).hexdigest())
        upload = self.successResultOf(store.getUpload(self.pendingUpload))
        assert upload is not None
        self.assertEqual([(p.number, p.size) for p in upload.parts], [(1, 5 << 20), (2, 10)])
        totals = self.successResultOf(store.totals())
        self.assertEqual(totals.objects, 10)
        self.assertGreater(totals.garbageBytes, 0)  # "first", "gone", the deduplicated copy

    def test_listingsShowTheRecords(self) -> None:
        """Every listed object is what a GET of its record shows."""
        store = self.store()
        for bucket in ("alpha", "beta"):
            for summary in self.successResultOf(store.listObjects(bucket)).objects:
                record = self.successResultOf(store.getObject(bucket, summary.key))
                assert record is not None
                self.assertEqual(ObjectSummary.of(record), summary)


class LegacyMigrationTests(FixtureTestsMixin, SynchronousTestCase):
    """The snapshot + WAL format of 8958578, migrated."""

    fixture = "legacy-8958578"

    def test_databasePrivate(self) -> None:
        """The database the migration builds is the owner's alone, like every file we write."""
        self.store()
        self.assertEqual(os.stat(os.path.join(self.meta, DATABASE_NAME)).st_mode & 0o777, 0o600)

    def test_oldFilesRetired(self) -> None:
        """After the migration the old files are kept aside, and a second open does not migrate again."""
        self.store()
        self.assertEqual(sorted(os.listdir(os.path.join(self.meta, RETIRED))),
                         ["snapshot-000000000001.json", "wal-000000000002.log"])
        self.assertIsNone(LegacyMigration.find(self.meta))

    def test_crashBeforeRenameMigratesAgain(self) -> None:
        """A half-built database (a crash during the migration) is thrown away and rebuilt."""
        with open(os.path.join(self.meta, DATABASE_NAME + ".migrating"), "wb") as f:
            f.write(b"half a database")
        store = self.store()
        self.assertEqual(self.successResultOf(store.totals()).objects, 10)


class SchemaOneTests(FixtureTestsMixin, SynchronousTestCase):
    """The SQLite store's first schema (700d7ad), upgraded in place."""

    fixture = "sqlite-v1-700d7ad"

    def test_upgraded(self) -> None:
        """The schema version moves to the current one; nothing is migrated or retired."""
        self.store()
        db = sqlite3.connect(os.path.join(self.meta, DATABASE_NAME))
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION)
        self.assertFalse(os.path.exists(os.path.join(self.meta, RETIRED)))

    def test_segmentsCounted(self) -> None:
        """The upgrade counts each segment's live records, as the store would have."""
        store = self.store()
        blobs = []
        for bucket in ("alpha", "beta"):
            for summary in self.successResultOf(store.listObjects(bucket)).objects:
                record = self.successResultOf(store.getObject(bucket, summary.key))
                assert record is not None
                blobs += [self.successResultOf(store.getBlob(a)) for a in record.blobAddresses()]
        upload = self.successResultOf(store.getUpload(self.pendingUpload))
        assert upload is not None
        blobs += [self.successResultOf(store.getBlob(p.blob)) for p in upload.parts]
        unique = {b.address: b for b in blobs if b is not None}
        self.assertEqual(self.successResultOf(store.segmentUsage()), usageOf(unique.values()))

    def test_checksumsListed(self) -> None:
        """Checksums stored before the upgrade are listed (boto3 sent CRC32s)."""
        store = self.store()
        page = self.successResultOf(store.listObjects("alpha"))
        self.assertIn("crc32", page.objects[0].checksumAlgorithms)


class SchemaThreeTests(FixtureTestsMixin, SynchronousTestCase):
    """The schema before versions (3, written at acef5a3 and left by kill -9), upgraded in place."""

    fixture = "sqlite-v3-acef5a3"

    def test_upgraded(self) -> None:
        """The schema version moves to the current one; the versions table exists, empty."""
        self.store()
        db = sqlite3.connect(os.path.join(self.meta, DATABASE_NAME))
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION)
        self.assertEqual(db.execute("SELECT count(*) FROM versions").fetchone()[0], 0)

    def test_everyObjectIsItsNullVersion(self) -> None:
        """
        Every object is listed as its key's only version, the null one,
        latest; once versioning is enabled, a new write keeps it as an
        older version, still readable by the id "null".
        """
        store = self.store()
        page = self.successResultOf(store.listVersions("alpha"))
        self.assertEqual(len(page.versions), 9)
        self.assertEqual({(v.versionId, v.isLatest, v.deleteMarker) for v in page.versions}, {(None, True, False)})
        self.successResultOf(store.updateBucket("alpha", versioningSetter(ENABLED)))
        blob = written(b"newer", 999, 0)
        newer = self.successResultOf(store.putObject(record("alpha", "overwritten", blob), blob))
        self.assertIsNotNone(newer.versionId)
        versions = [v for v in self.successResultOf(store.listVersions("alpha")).versions if v.key == "overwritten"]
        self.assertEqual([v.versionId for v in versions], [newer.versionId, None])
        old = self.successResultOf(store.getVersion("alpha", "overwritten", NULL_VERSION_ID))
        assert old is not None
        self.assertEqual(old.size, len(b"second"))
