"""
Tests for L{fasterstore.metadata.migration}: a data directory written by
FasterStore at 8958578 (snapshot + WAL, made by
tests/fixtures/make_legacy_datadir.py) opens on the SQLite store with
everything it held.
"""

from __future__ import annotations

import hashlib
import os
import tarfile

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.metadata.migration import RETIRED, LegacyMigration
from fasterstore.metadata.sqlite import DATABASE_NAME, SQLiteMetadataStore
from fasterstore.storage.segments import SegmentStore
from fasterstore.threads import ImmediateRunner

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


class LegacyMigrationTests(SynchronousTestCase):
    """The fixture, migrated."""

    def setUp(self) -> None:
        root = self.mktemp()
        os.makedirs(root)
        with tarfile.open(os.path.join(FIXTURES, "legacy-8958578.tar.gz")) as tar:
            tar.extractall(root)
        self.data = os.path.join(root, "data")
        self.meta = os.path.join(self.data, "meta")
        with open(os.path.join(FIXTURES, "legacy-8958578.upload")) as f:
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
