"""
Tests for L{fasterstore.storage.records}: the segment record codec.
"""

from __future__ import annotations

import struct
from typing import Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.checksums import newHasher
from fasterstore.storage.records import (
    BLOCK_SIZE,
    ENTRY_SIZE,
    HEADER_SIZE,
    RECORD_PAYLOAD,
    CorruptRecord,
    RecordHeader,
    blockChecksums,
    blockCount,
    checkBlocks,
    decodeHeader,
    encodeHeader,
    encodeRecord,
    planRead,
    recordLength,
)

# Payload lengths around block boundaries, where off-by-ones live.
lengths = st.one_of(
    st.integers(1, 3 * BLOCK_SIZE + 10),
    st.sampled_from(
        [1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, RECORD_PAYLOAD - 1, RECORD_PAYLOAD]
    ),
)


def payloadOf(length: int, seed: int = 0) -> bytes:
    """Cheap deterministic non-repeating-ish bytes."""
    unit = bytes((i * 131 + seed) & 0xFF for i in range(251))
    return (unit * (length // 251 + 1))[:length]


@st.composite
def rangesIn(draw: st.DrawFn) -> Tuple[int, int, int]:
    """A payload length and a non-empty range inside it."""
    length = draw(lengths)
    start = draw(st.integers(0, length - 1))
    end = draw(st.integers(start + 1, length))
    return length, start, end


class LayoutTests(SynchronousTestCase):
    """Sizes and offsets of the format."""

    def test_headerSize(self) -> None:
        """The header is 20 bytes and starts with the magic."""
        header = encodeHeader(10)
        self.assertEqual(HEADER_SIZE, 20)
        self.assertEqual(len(header), 20)
        self.assertEqual(header[:4], b"FSR1")

    def test_headerFields(self) -> None:
        """The header fields sit where the format says, big-endian, crc32c last."""
        header = encodeHeader(70000)
        self.assertEqual(
            struct.unpack(">4sBBHII", header[:16]), (b"FSR1", 1, 1, 0, 70000, 65536)
        )
        crc = newHasher("crc32c")
        crc.update(header[:16])
        self.assertEqual(header[16:], crc.digest())

    def test_recordLength(self) -> None:
        """Header + payload + one 4-byte entry per (possibly short) block."""
        self.assertEqual(recordLength(0), 20)
        self.assertEqual(recordLength(1), 20 + 1 + 4)
        self.assertEqual(recordLength(BLOCK_SIZE), 20 + BLOCK_SIZE + 4)
        self.assertEqual(recordLength(BLOCK_SIZE + 1), 20 + BLOCK_SIZE + 1 + 8)
        self.assertEqual(recordLength(RECORD_PAYLOAD), 20 + RECORD_PAYLOAD + 16 * 4)

    def test_tooLarge(self) -> None:
        """A payload over RECORD_PAYLOAD cannot be encoded."""
        self.assertRaises(ValueError, encodeHeader, RECORD_PAYLOAD + 1)

    def test_tableIsPerBlockCRC32C(self) -> None:
        """Each table entry is the big-endian crc32c of its block."""
        payload = payloadOf(BLOCK_SIZE + 5)
        table = blockChecksums(payload)
        self.assertEqual(len(table), 8)
        for i, block in enumerate([payload[:BLOCK_SIZE], payload[BLOCK_SIZE:]]):
            crc = newHasher("crc32c")
            crc.update(block)
            self.assertEqual(table[i * 4 : i * 4 + 4], crc.digest())


class CodecPropertyTests(SynchronousTestCase):
    """Round trips and corruption detection, for any payload."""

    @settings(max_examples=60, deadline=None)
    @given(lengths, st.integers(0, 255))
    def test_roundTrip(self, length: int, seed: int) -> None:
        """An encoded record decodes to its header, and its blocks verify."""
        payload = payloadOf(length, seed)
        header, table = encodeRecord(payload)
        record = header + payload + table
        self.assertEqual(len(record), recordLength(length))
        self.assertEqual(decodeHeader(record), RecordHeader(1, 1, 0, length, BLOCK_SIZE))
        self.assertEqual(len(table), blockCount(length) * ENTRY_SIZE)
        self.assertIsNone(checkBlocks(payload, table))

    @given(lengths, st.integers(0, HEADER_SIZE - 1), st.integers(1, 255))
    def test_headerCorruption(self, length: int, index: int, xor: int) -> None:
        """Any changed header byte is detected."""
        header = bytearray(encodeHeader(length))
        header[index] ^= xor
        self.assertRaises(CorruptRecord, decodeHeader, bytes(header))

    def test_shortHeader(self) -> None:
        """A truncated header (a torn write, a read past EOF) is corrupt."""
        self.assertRaises(CorruptRecord, decodeHeader, encodeHeader(5)[:-1])
        self.assertRaises(CorruptRecord, decodeHeader, b"")

    def test_zeroes(self) -> None:
        """A hole of zeroes (preallocated or never written) is not a record."""
        self.assertRaises(CorruptRecord, decodeHeader, bytes(HEADER_SIZE))

    @settings(max_examples=60, deadline=None)
    @given(lengths, st.data())
    def test_payloadCorruption(self, length: int, data: st.DataObject) -> None:
        """A changed payload byte fails exactly the block holding it."""
        payload = bytearray(payloadOf(length))
        table = blockChecksums(payload)
        index = data.draw(st.integers(0, length - 1))
        payload[index] ^= data.draw(st.integers(1, 255))
        self.assertEqual(checkBlocks(payload, table), index // BLOCK_SIZE)

    def test_tableLengthMismatch(self) -> None:
        """Blocks and a table of the wrong size never verify."""
        payload = payloadOf(100)
        self.assertEqual(checkBlocks(payload, blockChecksums(payload) + b"\0\0\0\0"), 0)


class PlanReadTests(SynchronousTestCase):
    """Reading a byte range of a record's payload."""

    def test_wholeRecordIsOneRead(self) -> None:
        """Reading the whole payload is a single read of the whole record."""
        plan = planRead(RECORD_PAYLOAD, 0, RECORD_PAYLOAD)
        self.assertEqual(plan.spans(), [(0, recordLength(RECORD_PAYLOAD))])

    def test_middleBlock(self) -> None:
        """A range inside one middle block reads the header, that block and its entry."""
        plan = planRead(RECORD_PAYLOAD, 3 * BLOCK_SIZE + 10, 3 * BLOCK_SIZE + 20)
        self.assertEqual(
            plan.spans(),
            [
                (0, HEADER_SIZE),
                (HEADER_SIZE + 3 * BLOCK_SIZE, BLOCK_SIZE),
                (HEADER_SIZE + RECORD_PAYLOAD + 3 * ENTRY_SIZE, ENTRY_SIZE),
            ],
        )
        self.assertEqual((plan.skip, plan.length), (10, 10))

    def test_badRange(self) -> None:
        """Empty, reversed or out-of-bounds ranges are refused."""
        self.assertRaises(ValueError, planRead, 10, 5, 5)
        self.assertRaises(ValueError, planRead, 10, 6, 5)
        self.assertRaises(ValueError, planRead, 10, 0, 11)
        self.assertRaises(ValueError, planRead, 10, -1, 5)

    @settings(max_examples=150, deadline=None)
    @given(rangesIn())
    def test_planReadsTheRange(self, r: Tuple[int, int, int]) -> None:
        """
        Executing a plan against an encoded record yields a valid header,
        verifying blocks, the requested bytes, and no more than one block's
        worth of extra payload on each side.
        """
        length, start, end = r
        payload = payloadOf(length, 7)
        header, table = encodeRecord(payload)
        record = header + payload + table
        plan = planRead(length, start, end)
        fetched = bytearray(len(record))
        for offset, size in plan.spans():
            self.assertLessEqual(offset + size, len(record))
            fetched[offset : offset + size] = record[offset : offset + size]
        self.assertEqual(decodeHeader(fetched).payloadLength, length)
        blocks = fetched[plan.blocksOffset : plan.blocksOffset + plan.blocksLength]
        entries = fetched[
            plan.tableEntriesOffset : plan.tableEntriesOffset + plan.tableEntriesLength
        ]
        self.assertIsNone(checkBlocks(blocks, entries))
        self.assertEqual(bytes(blocks[plan.skip : plan.skip + plan.length]), payload[start:end])
        self.assertLess(plan.skip, BLOCK_SIZE)
        self.assertLess(plan.blocksLength - plan.skip - plan.length, BLOCK_SIZE)
