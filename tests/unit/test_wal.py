"""
Tests for L{fasterstore.metadata.wal}.
"""

from __future__ import annotations

import os
import struct
from typing import List

from awscrt.checksums import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.metadata import wal
from fasterstore.metadata.state import Mutation
from fasterstore.metadata.wal import (
    HEADER,
    WAL,
    WALCorruptError,
    encodeMutation,
    encodeRecord,
    listWALs,
    readWAL,
    walPath,
)
from tests.unit.test_files import UMASKS, assertPrivateTree, setUmask
from tests.unit.test_metadata_state import createBucket, deleteObject, putObject


def m(i: int) -> Mutation:
    """A distinct small mutation."""
    return deleteObject("b", f"key-{i}")


class WALTestCase(SynchronousTestCase):
    """Helpers: a fresh meta directory with a WAL in it."""

    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.makedirs(self.directory)

    def openWAL(self, generation: int = 1) -> WAL:
        w = WAL.open(self.directory, generation)
        self.addCleanup(w.close)
        return w

    def path(self, generation: int = 1) -> str:
        return walPath(self.directory, generation)

    def appendRaw(self, data: bytes, generation: int = 1) -> None:
        with open(self.path(generation), "ab") as f:
            f.write(data)


class AppendReadTests(WALTestCase):
    """What is appended is read back, in order."""

    def test_roundTrip(self) -> None:
        """Records of several mutations each read back as the flat mutation sequence."""
        w = self.openWAL()
        w.append([createBucket("b"), putObject("b", "k")])
        w.append([m(1)])
        w.sync()
        self.assertEqual(list(readWAL(self.path())), [createBucket("b"), putObject("b", "k"), m(1)])
        self.assertEqual(w.size, os.path.getsize(self.path()))

    def test_format(self) -> None:
        """A record is length, CRC-32C, then the compact JSON list, little-endian."""
        w = self.openWAL()
        w.append([{"op": "x", "k": "\u00e9"}])
        payload = b'[{"op":"x","k":"\\u00e9"}]'
        with open(self.path(), "rb") as f:
            self.assertEqual(f.read(), struct.pack("<II", len(payload), crc32c(payload)) + payload)

    def test_appendEncoded(self) -> None:
        """Pre-encoded mutations are framed as one record."""
        w = self.openWAL()
        n = w.appendEncoded([encodeMutation(m(1)), encodeMutation(m(2))])
        self.assertEqual(n, os.path.getsize(self.path()))
        self.assertEqual(list(readWAL(self.path())), [m(1), m(2)])

    def test_reopenAppends(self) -> None:
        """Opening an existing generation appends after its records."""
        w = self.openWAL()
        w.append([m(1)])
        w.close()
        w = self.openWAL()
        self.assertEqual(w.size, os.path.getsize(self.path()))
        w.append([m(2)])
        self.assertEqual(list(readWAL(self.path())), [m(1), m(2)])

    def test_unencodable(self) -> None:
        """A mutation that is not JSON-able fails at encoding, before any write."""
        self.assertRaises(ValueError, encodeMutation, {"op": "x", "v": float("nan")})
        self.assertRaises(TypeError, encodeMutation, {"op": "x", "v": object()})

    def test_loneSurrogate(self) -> None:
        """A key with a lone surrogate still encodes and reads back."""
        w = self.openWAL()
        w.append([deleteObject("b", "bad\udc80key")])
        self.assertEqual(list(readWAL(self.path())), [deleteObject("b", "bad\udc80key")])

    def test_sync(self) -> None:
        """sync fdatasyncs the file, unless fsync is off."""
        calls: List[int] = []
        self.patch(wal, "_fdatasync", calls.append)
        w = self.openWAL()
        w.sync()
        self.assertEqual(len(calls), 1)
        unsynced = WAL.open(self.directory, 2, fsync=False)
        self.addCleanup(unsynced.close)
        unsynced.sync()
        self.assertEqual(len(calls), 1)

    def test_shortWrites(self) -> None:
        """Partial os.write results are continued until the record is whole."""
        self.patch(wal, "_write", lambda fd, data: os.write(fd, bytes(data[:3])))
        w = self.openWAL()
        w.append([m(1), m(2)])
        self.assertEqual(list(readWAL(self.path())), [m(1), m(2)])


class RotateTests(WALTestCase):
    """Generations."""

    def test_rotate(self) -> None:
        """rotate seals the generation, returns it, and appends go to the next file."""
        w = self.openWAL(5)
        w.append([m(1)])
        self.assertEqual(w.rotate(), 5)
        self.assertEqual((w.generation, w.size), (6, 0))
        w.append([m(2)])
        self.assertEqual(listWALs(self.directory), [5, 6])
        self.assertEqual(list(readWAL(self.path(5))), [m(1)])
        self.assertEqual(list(readWAL(self.path(6))), [m(2)])

    def test_rotateRefusesExisting(self) -> None:
        """Rotation never appends to a generation that already exists."""
        self.appendRaw(encodeRecord([encodeMutation(m(9))]), 2)
        w = self.openWAL(1)
        self.assertRaises(FileExistsError, w.rotate)

    def test_listIgnoresOthers(self) -> None:
        """listWALs only lists well-named WAL files, sorted numerically."""
        for name in ["wal-000000000010.log", "wal-000000000002.log", "wal-2.log", "snapshot-000000000001.json", "x"]:
            open(os.path.join(self.directory, name), "wb").close()
        self.assertEqual(listWALs(self.directory), [2, 10])
        self.assertEqual(listWALs(os.path.join(self.directory, "missing")), [])


class TornTailTests(WALTestCase):
    """Replay after a crash: a torn tail is dropped and truncated."""

    def setUp(self) -> None:
        super().setUp()
        w = WAL.open(self.directory, 1)
        w.append([m(1)])
        w.append([m(2), m(3)])
        w.close()
        self.goodSize = os.path.getsize(self.path())

    def assertTruncated(self) -> None:
        self.assertEqual(list(readWAL(self.path())), [m(1), m(2), m(3)])
        self.assertEqual(os.path.getsize(self.path()), self.goodSize)
        w = self.openWAL()
        w.append([m(4)])
        self.assertEqual(list(readWAL(self.path())), [m(1), m(2), m(3), m(4)])

    def test_shortHeader(self) -> None:
        """Fewer than 8 trailing bytes are a torn header."""
        self.appendRaw(b"\x05\x00\x00")
        self.assertTruncated()

    def test_shortPayload(self) -> None:
        """A record whose payload was cut short is dropped."""
        self.appendRaw(encodeRecord([encodeMutation(m(9))])[:-4])
        self.assertTruncated()

    def test_crcMismatch(self) -> None:
        """A whole record with a wrong CRC at the end is dropped."""
        record = bytearray(encodeRecord([encodeMutation(m(9))]))
        record[-2] ^= 0xFF
        self.appendRaw(bytes(record))
        self.assertTruncated()

    def test_badJSON(self) -> None:
        """A record with a valid CRC but a payload that is not a mutation list is dropped."""
        for payload in [b"{not json", b'{"op":"x"}', b"[1]"]:
            with open(self.path(), "r+b") as f:
                f.truncate(self.goodSize)
            self.appendRaw(HEADER.pack(len(payload), crc32c(payload)) + payload)
            self.assertTruncated()

    def test_zeros(self) -> None:
        """A zero-filled tail (metadata persisted before data) is dropped."""
        self.appendRaw(b"\x00" * 4096)
        self.assertTruncated()

    def test_hugeLength(self) -> None:
        """A length beyond the end of the file is a torn record."""
        self.appendRaw(struct.pack("<II", 0xFFFFFFF0, 0) + b"abc")
        self.assertTruncated()

    def test_sealedNotTruncated(self) -> None:
        """With truncate=False a torn tail is skipped but left in place."""
        self.appendRaw(b"garbage")
        self.assertEqual(list(readWAL(self.path(), truncate=False)), [m(1), m(2), m(3)])
        self.assertEqual(os.path.getsize(self.path()), self.goodSize + 7)

    def test_goodAfterBad(self) -> None:
        """
        A bad record followed by a good one is corruption, not a torn write:
        replay raises, and the file is left alone.
        """
        self.appendRaw(b"\x01\x02\x03\x04junk" + encodeRecord([encodeMutation(m(9))]))
        size = os.path.getsize(self.path())
        for truncate in [True, False]:
            e = self.assertRaises(WALCorruptError, list, readWAL(self.path(), truncate=truncate))
            self.assertIn("offset %d" % (self.goodSize,), str(e))
        self.assertEqual(os.path.getsize(self.path()), size)

    def test_flippedBitMidFile(self) -> None:
        """A bit flip inside an early record is detected as corruption."""
        with open(self.path(), "r+b") as f:
            f.seek(HEADER.size + 3)
            byte = f.read(1)
            f.seek(HEADER.size + 3)
            f.write(bytes([byte[0] ^ 1]))
        self.assertRaises(WALCorruptError, list, readWAL(self.path()))

    @given(st.binary(max_size=64))
    @settings(max_examples=100, deadline=None)
    def test_anyTail(self, tail: bytes) -> None:
        """Any short garbage tail that is not itself a record is dropped."""
        with open(self.path(), "r+b") as f:
            f.truncate(self.goodSize)
        self.appendRaw(tail)
        self.assertEqual(list(readWAL(self.path())), [m(1), m(2), m(3)])
        self.assertEqual(os.path.getsize(self.path()), self.goodSize)


class PermissionTests(WALTestCase):
    """WAL files hold customer metadata: private whatever the umask."""

    def test_privateWhateverTheUmask(self) -> None:
        """Under umask 022, 0 and 277, the file L{WAL.open} creates and the ones L{WAL.rotate} starts are 0600."""
        for mask in UMASKS:
            setUmask(self, mask)
            directory = self.mktemp()
            os.makedirs(directory)
            os.chmod(directory, 0o700)
            w = WAL.open(directory, 1, fsync=False)
            self.addCleanup(w.close)
            w.append([m(1)])
            w.rotate()
            w.append([m(2)])
            w.rotate()
            self.assertEqual(listWALs(directory), [1, 2, 3])
            assertPrivateTree(self, directory, f"umask {mask:#o}")

    def test_existingFileKept(self) -> None:
        """Reopening an existing generation appends to it and leaves its mode alone."""
        self.appendRaw(encodeRecord([encodeMutation(m(1))]))
        os.chmod(self.path(), 0o640)
        w = self.openWAL()
        w.append([m(2)])
        self.assertEqual(list(readWAL(self.path())), [m(1), m(2)])
        self.assertEqual(os.stat(self.path()).st_mode & 0o777, 0o640)
