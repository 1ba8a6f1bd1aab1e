"""
Tests for L{fasterstore.metadata.snapshot}.
"""

from __future__ import annotations

import json
import os
from typing import List, Sequence

from awscrt.checksums import crc32c
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.metadata import snapshot as snapshotModule
from fasterstore.metadata.snapshot import (
    SnapshotError,
    checkpoint,
    listSnapshots,
    loadState,
    readSnapshot,
    snapshotPath,
    writeSnapshot,
)
from fasterstore.metadata.records import ObjectRecord
from fasterstore.metadata.state import MetadataState, Mutation
from fasterstore.metadata.wal import WAL, WALCorruptError, listWALs, walPath
from tests.unit.test_files import UMASKS, assertPrivateTree, setUmask
from tests.unit.test_metadata_state import (
    completeUpload,
    createBucket,
    createUpload,
    deleteObject,
    partRecord,
    putObject,
    putPart,
    stateOf,
)

HISTORY: List[Mutation] = [
    createBucket("a"),
    putObject("a", "k1", "x", 10, [(1, 0, 10)]),
    putObject("a", "k2", "x", 10, [(1, 10, 10)]),
    createBucket("b", "bob"),
    putObject("b", "k3", "y", 5, [(2, 0, 5)]),
    deleteObject("a", "k1"),
    {"op": "discard_extents", "extents": [[3, 0, 8]]},
    putObject("a", "k1", "z", 7, [(3, 8, 7)]),
    createUpload("u1", "a", "mp"),
    putPart("u1", 1, "p1", 5, [(4, 0, 5)]),
    putPart("u1", 2, "z", 7, [(4, 5, 7)]),
    createUpload("u2", "b", "other"),
    putPart("u2", 1, "p2", 3, [(4, 12, 3)]),
    completeUpload("u1", "a", "mp", [partRecord(1, "p1", 5), partRecord(2, "z", 7)]),
    createUpload("u3", "a", "pending"),
    putPart("u3", 1, "x", 10, [(5, 0, 10)]),
    {"op": "copy_object", "object": ObjectRecord.fromJSON(dict(putObject("a", "k1", "z", 7)["object"], key="copy")).toJSON()},
    {"op": "set_object_tags", "bucket": "a", "key": "copy", "tags": [["t", "1"]]},
    {"op": "set_bucket_config", "bucket": "a", "name": "cors", "value": "<CORS/>"},
]


class SnapshotTestCase(SynchronousTestCase):
    """Helpers: a meta directory and ways to fill it."""

    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.makedirs(self.directory)

    def writeWAL(self, generation: int, *records: Sequence[Mutation]) -> None:
        w = WAL.open(self.directory, generation, fsync=False)
        for r in records:
            w.append(r)
        w.close()

    def names(self) -> List[str]:
        return sorted(os.listdir(self.directory))


class WriteReadTests(SnapshotTestCase):
    """Snapshot files."""

    def test_roundTrip(self) -> None:
        """A written snapshot reads back as an equal state."""
        state = stateOf(HISTORY)
        path = writeSnapshot(self.directory, 3, state)
        self.assertEqual(path, snapshotPath(self.directory, 3))
        self.assertEqual(readSnapshot(path, 3), state)
        self.assertEqual(self.names(), ["snapshot-000000000003.json"])

    def test_format(self) -> None:
        """The file is a header line, one line per record, and an end line."""
        writeSnapshot(self.directory, 3, stateOf(HISTORY[:2]))
        with open(snapshotPath(self.directory, 3)) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(lines[0], {"format": "fasterstore-metadata-snapshot", "version": 1, "generation": 3})
        self.assertEqual([sorted(line)[0] for line in lines[1:]], ["bucket", "object", "blob", "garbage", "end"])
        self.assertEqual(lines[-1]["end"]["records"], 4)

    def test_carriesUploadsAndConfig(self) -> None:
        """Uploads, multipart objects, tags and bucket config survive a snapshot."""
        state = stateOf(HISTORY)
        self.assertEqual(sorted(state.uploads), ["u2", "u3"])
        self.assertTrue(state.getObject("a", "mp").parts)  # type: ignore[union-attr]
        again = readSnapshot(writeSnapshot(self.directory, 1, state))
        self.assertEqual(again, state)
        self.assertEqual(again.getBucket("a").configValue("cors"), "<CORS/>")  # type: ignore[union-attr]
        self.assertEqual(again.getObject("a", "copy").tags, (("t", "1"),))  # type: ignore[union-attr]

    def test_oldFormat(self) -> None:
        """A snapshot written before uploads, parts, tags and bucket config existed still loads."""
        path = snapshotPath(self.directory, 1)
        lines = [
            {"format": "fasterstore-metadata-snapshot", "version": 1, "generation": 1},
            {"bucket": {"name": "a", "owner": "alice", "region": "", "created": 1.0}},
            {"object": {"bucket": "a", "key": "k", "size": 3, "etag": "e", "blob": "x", "modified": 2.0,
                        "headers": [["Content-Type", "text/plain"]], "meta": [], "checksums": [],
                        "versionId": None}},
            {"blob": {"address": "x", "size": 3, "extents": [[1, 0, 3]], "refs": 1}},
            {"garbage": [[2, 5]]},
        ]
        data = b""
        for line in lines:
            data += json.dumps(line, separators=(",", ":")).encode() + b"\n"
        data += json.dumps({"end": {"records": len(lines) - 1, "crc32c": crc32c(data)}}).encode() + b"\n"
        with open(path, "wb") as f:
            f.write(data)
        state = readSnapshot(path, 1)
        self.assertEqual((state.objectCount, state.logicalBytes, state.garbage), (1, 3, {2: 5}))
        self.assertEqual(state.getBlob("x").refs, 1)  # type: ignore[union-attr]
        self.assertEqual(state.getBucket("a").config, ())  # type: ignore[union-attr]
        self.assertEqual(state.getObject("a", "k").parts, ())  # type: ignore[union-attr]
        self.assertEqual(state.uploads, {})

    def test_truncated(self) -> None:
        """A snapshot missing its end line is rejected."""
        path = writeSnapshot(self.directory, 1, stateOf(HISTORY))
        with open(path, "rb") as f:
            data = f.read()
        for cut in [len(data) - 1, data.rindex(b"\n", 0, len(data) - 1) + 1, 10]:
            with open(path, "wb") as f:
                f.write(data[:cut])
            self.assertRaises(SnapshotError, readSnapshot, path)

    def test_corrupt(self) -> None:
        """A changed record fails the checksum."""
        path = writeSnapshot(self.directory, 1, stateOf(HISTORY))
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data.replace(b'"k2"', b'"k9"'))
        self.assertRaises(SnapshotError, readSnapshot, path)

    def test_wrongGeneration(self) -> None:
        """A snapshot whose header disagrees with its name is rejected."""
        path = writeSnapshot(self.directory, 1, MetadataState())
        os.rename(path, snapshotPath(self.directory, 2))
        self.assertRaises(SnapshotError, readSnapshot, snapshotPath(self.directory, 2), 2)

    def test_failedWriteLeavesNothing(self) -> None:
        """A write that fails removes its temp file and keeps the old snapshot."""
        writeSnapshot(self.directory, 1, MetadataState())

        class Boom(Exception):
            pass

        def boom(*a: object) -> None:
            raise Boom()

        self.patch(snapshotModule.os, "replace", boom)
        self.assertRaises(Boom, writeSnapshot, self.directory, 2, stateOf(HISTORY))
        self.assertEqual(self.names(), ["snapshot-000000000001.json"])

    def test_tempIgnored(self) -> None:
        """Temp files from an interrupted write are not snapshots."""
        open(os.path.join(self.directory, "snapshot-000000000009.json.tmp"), "wb").close()
        writeSnapshot(self.directory, 2, MetadataState())
        self.assertEqual(listSnapshots(self.directory), [2])


class LoadTests(SnapshotTestCase):
    """Startup recovery: newest snapshot plus the WAL after it."""

    def test_empty(self) -> None:
        """An empty (even missing) directory loads an empty state, WAL generation 1."""
        loaded = loadState(os.path.join(self.directory, "meta"))
        self.assertEqual(loaded.state, MetadataState())
        self.assertEqual((loaded.snapshotGeneration, loaded.walGeneration, loaded.sealedGenerations), (0, 1, []))

    def test_walOnly(self) -> None:
        """Without a snapshot every WAL generation is replayed in order."""
        self.writeWAL(1, HISTORY[:3])
        self.writeWAL(2, HISTORY[3:5], HISTORY[5:])
        loaded = loadState(self.directory)
        self.assertEqual(loaded.state, stateOf(HISTORY))
        self.assertEqual((loaded.walGeneration, loaded.sealedGenerations), (2, [1]))

    def test_snapshotAndWAL(self) -> None:
        """The newest snapshot is loaded and only later generations replayed."""
        writeSnapshot(self.directory, 1, stateOf(HISTORY[:2]))
        writeSnapshot(self.directory, 2, stateOf(HISTORY[:4]))
        self.writeWAL(3, HISTORY[4:])
        loaded = loadState(self.directory)
        self.assertEqual(loaded.state, stateOf(HISTORY))
        self.assertEqual((loaded.snapshotGeneration, loaded.walGeneration), (2, 3))

    def test_cleansCovered(self) -> None:
        """Loading removes older snapshots, temp files and covered WAL files."""
        self.writeWAL(1, [createBucket("stale")])
        writeSnapshot(self.directory, 1, stateOf(HISTORY[:1]))
        writeSnapshot(self.directory, 2, stateOf(HISTORY[:2]))
        open(snapshotPath(self.directory, 3) + ".tmp", "wb").close()
        loaded = loadState(self.directory)
        self.assertEqual(loaded.state, stateOf(HISTORY[:2]))
        self.assertEqual(loaded.walGeneration, 3)
        self.assertEqual(self.names(), ["snapshot-000000000002.json"])

    def test_tornTailTruncated(self) -> None:
        """The newest generation's torn tail is truncated."""
        self.writeWAL(1, HISTORY)
        size = os.path.getsize(walPath(self.directory, 1))
        with open(walPath(self.directory, 1), "ab") as f:
            f.write(b"\x10\x00\x00\x00torn")
        self.assertEqual(loadState(self.directory).state, stateOf(HISTORY))
        self.assertEqual(os.path.getsize(walPath(self.directory, 1)), size)

    def test_gap(self) -> None:
        """A missing WAL generation is an error, not silent data loss."""
        self.writeWAL(1, HISTORY[:1])
        self.writeWAL(3, HISTORY[1:])
        self.assertRaises(SnapshotError, loadState, self.directory)

    def test_sealedCorruption(self) -> None:
        """Corruption in a sealed generation stops recovery."""
        self.writeWAL(1, HISTORY[:1], HISTORY[1:2])
        self.writeWAL(2, HISTORY[2:])
        with open(walPath(self.directory, 1), "r+b") as f:
            f.seek(2)
            f.write(b"\xff")
        self.assertRaises(WALCorruptError, loadState, self.directory)


class CheckpointTests(SnapshotTestCase):
    """Building a snapshot by replay."""

    def test_fromScratch(self) -> None:
        """The first checkpoint replays every sealed generation."""
        self.writeWAL(1, HISTORY[:3])
        self.writeWAL(2, HISTORY[3:])
        self.writeWAL(3, [deleteObject("a", "k2")])  # current: not covered
        path = checkpoint(self.directory, 2)
        self.assertEqual(path, snapshotPath(self.directory, 2))
        self.assertEqual(readSnapshot(snapshotPath(self.directory, 2)), stateOf(HISTORY))
        self.assertEqual(listWALs(self.directory), [3])
        self.assertEqual(loadState(self.directory).state, stateOf(HISTORY + [deleteObject("a", "k2")]))

    def test_incremental(self) -> None:
        """A checkpoint starts from the previous snapshot and removes it after."""
        writeSnapshot(self.directory, 4, stateOf(HISTORY[:4]))
        self.writeWAL(5, HISTORY[4:6])
        self.writeWAL(6, HISTORY[6:])
        checkpoint(self.directory, 6)
        self.assertEqual(self.names(), ["snapshot-000000000006.json"])
        self.assertEqual(readSnapshot(snapshotPath(self.directory, 6)), stateOf(HISTORY))

    def test_alreadyCovered(self) -> None:
        """Nothing is written when a snapshot already covers the generation."""
        writeSnapshot(self.directory, 4, stateOf(HISTORY))
        self.assertIsNone(checkpoint(self.directory, 3))
        self.assertIsNone(checkpoint(self.directory, 4))

    def test_missingGeneration(self) -> None:
        """A checkpoint refuses to skip a WAL generation it should cover."""
        self.writeWAL(1, HISTORY)
        self.assertRaises(SnapshotError, checkpoint, self.directory, 2)
        self.assertEqual(listSnapshots(self.directory), [])

    def test_sealedTornTail(self) -> None:
        """A sealed file's torn tail is ignored, not truncated, by the builder."""
        self.writeWAL(1, HISTORY)
        with open(walPath(self.directory, 1), "ab") as f:
            f.write(b"\x00\x00")
        checkpoint(self.directory, 1)
        self.assertEqual(readSnapshot(snapshotPath(self.directory, 1)), stateOf(HISTORY))


class CheckpointInChildTests(SynchronousTestCase):
    """L{snapshot.checkpointInChild} builds the same snapshot in a child process."""

    def test_sameAsInProcess(self) -> None:
        """The child's snapshot loads to the same state as an in-process one."""
        from fasterstore.metadata import snapshot
        from fasterstore.metadata.wal import WAL

        states = []
        for build in (snapshot.checkpoint, snapshot.checkpointInChild):
            root = self.mktemp()
            os.makedirs(root)
            wal = WAL.open(root, 1, fsync=False)
            wal.append([
                {"op": "create_bucket", "bucket": {"name": "b", "owner": "o", "region": "", "created": 1.0}},
            ])
            wal.rotate()
            wal.close()
            path = build(root, 1, False)
            self.assertEqual(path, snapshot.snapshotPath(root, 1))
            states.append(snapshot.readSnapshot(path, 1).toJSON())
        self.assertEqual(states[0], states[1])
        self.assertIn("b", json.dumps(states[1]))

    def test_childFailureIsAnError(self) -> None:
        """A failing child raises SnapshotError carrying its error output."""
        from fasterstore.metadata import snapshot

        e = self.assertRaises(snapshot.SnapshotError, snapshot.checkpointInChild, self.mktemp(), 1, False)
        self.assertIn("exited with", str(e))


class PermissionTests(SynchronousTestCase):
    """Snapshots hold customer metadata: private whatever the umask, in this process or the child."""

    def test_privateWhateverTheUmask(self) -> None:
        """
        Under umask 022, 0 and 277, L{loadState} creates a missing meta
        directory 0700, and L{writeSnapshot}, L{checkpoint} and
        L{snapshotModule.checkpointInChild} (whose child inherits the
        umask) write 0600 snapshots.
        """
        for mask in UMASKS:
            setUmask(self, mask)
            directory = os.path.join(self.mktemp(), "meta")
            loaded = loadState(directory, fsync=False)
            self.assertEqual(loaded.walGeneration, 1)
            writeSnapshot(directory, 1, stateOf(HISTORY[:2]), fsync=False)
            for generation, build in ((2, checkpoint), (3, snapshotModule.checkpointInChild)):
                w = WAL.open(directory, generation, fsync=False)
                w.append(HISTORY[generation : generation + 1])
                w.close()
                self.assertEqual(build(directory, generation, False), snapshotPath(directory, generation))
                self.assertEqual(listSnapshots(directory), [generation])
                assertPrivateTree(self, os.path.dirname(directory), f"umask {mask:#o}, {build.__name__}")

    def test_staleTempReplaced(self) -> None:
        """A world-readable temp file left by a crash does not become the snapshot: a fresh 0600 one does."""
        setUmask(self, 0o022)
        directory = self.mktemp()
        os.makedirs(directory)
        os.chmod(directory, 0o700)
        temp = snapshotPath(directory, 1) + ".tmp"
        with open(temp, "wb") as f:
            f.write(b"leftover from a crash " * 100)
        os.chmod(temp, 0o644)
        path = writeSnapshot(directory, 1, stateOf(HISTORY), fsync=False)
        self.assertEqual(readSnapshot(path, 1), stateOf(HISTORY))
        assertPrivateTree(self, directory)
