"""
The on-disk record: the unit of blob bytes in a segment file.

A record is::

    header | payload | block checksum table

The header is fixed-size (L{HEADER_SIZE} bytes, big-endian)::

    magic b"FSR1" | version u8 | kind u8 | flags u16 | payload length u32
    | block size u32 | crc32c of the preceding 16 header bytes u32

The table holds one big-endian crc32c (u32) per L{BLOCK_SIZE} block of the
payload, the last block possibly short.  Per-block checksums let a ranged read
verify only the blocks it touches; the header checksum makes a torn or
misplaced record detectable before its length is trusted.

Records carry no blob identity: which records make a blob is the metadata
engine's business (a list of L{Extent}s).
Tests: tests/unit/test_records.py.
"""

from __future__ import annotations

import struct
from typing import List, NamedTuple, Optional, Tuple, Union

import attrs
from awscrt.checksums import crc32c as _crc32c

Buffer = Union[bytes, bytearray, memoryview]

MAGIC = b"FSR1"
VERSION = 1
KIND_BLOB = 1
BLOCK_SIZE = 1 << 16
RECORD_PAYLOAD = 1 << 20  # largest payload of one record

_HEADER_BODY = struct.Struct(">4sBBHII")
_CRC = struct.Struct(">I")
HEADER_SIZE = _HEADER_BODY.size + _CRC.size  # 20
ENTRY_SIZE = _CRC.size  # one table entry


class CorruptRecord(Exception):
    """Bytes read from a segment are not the record they should be."""


def crc32c(data: Buffer) -> int:
    """CRC-32C of C{data} (hardware-accelerated by awscrt)."""
    return int(_crc32c(data))


class RecordHeader(NamedTuple):
    """
    A decoded, checksum-verified record header (a tuple: every read of a
    record builds one, and a frozen attrs class costs several times more).

    @ivar version: format version (L{VERSION}).
    @ivar kind: what the payload is (L{KIND_BLOB}).
    @ivar flags: reserved, 0.
    @ivar payloadLength: payload bytes following the header.
    @ivar blockSize: bytes covered by each table entry.
    """

    version: int
    kind: int
    flags: int
    payloadLength: int
    blockSize: int


def blockCount(payloadLength: int, blockSize: int = BLOCK_SIZE) -> int:
    """Number of blocks, hence table entries, for a payload of this length."""
    return -(-payloadLength // blockSize)


def recordLength(payloadLength: int) -> int:
    """Bytes a record with this payload length occupies in a segment."""
    return HEADER_SIZE + payloadLength + ENTRY_SIZE * blockCount(payloadLength)


def tableOffset(payloadLength: int) -> int:
    """Offset of the checksum table from the start of the record."""
    return HEADER_SIZE + payloadLength


def encodeHeader(payloadLength: int) -> bytes:
    """The header for a blob record of C{payloadLength} bytes."""
    if not 0 <= payloadLength <= RECORD_PAYLOAD:
        raise ValueError(f"record payload of {payloadLength} bytes")
    body = _HEADER_BODY.pack(MAGIC, VERSION, KIND_BLOB, 0, payloadLength, BLOCK_SIZE)
    return body + _CRC.pack(crc32c(body))


def blockChecksums(payload: Buffer) -> bytes:
    """The checksum table for C{payload}: a big-endian crc32c per block."""
    view = memoryview(payload)
    return b"".join(
        _CRC.pack(crc32c(view[i : i + BLOCK_SIZE])) for i in range(0, len(view), BLOCK_SIZE)
    )


def encodeRecord(payload: Buffer) -> Tuple[bytes, bytes]:
    """
    Encode a blob record without copying its payload.

    @return: C{(header, table)}; the record is C{header + payload + table},
        to be written with one C{os.pwritev}.
    """
    return encodeHeader(len(payload)), blockChecksums(payload)


def decodeHeader(data: Buffer) -> RecordHeader:
    """
    Decode and verify a record header.

    @param data: at least L{HEADER_SIZE} bytes; only the first are used.
    @raise CorruptRecord: if the bytes are short, the checksum or magic is
        wrong, or a field has a value this version does not write.
    """
    if len(data) < HEADER_SIZE:
        raise CorruptRecord(f"short header ({len(data)} bytes)")
    view = memoryview(data)[:HEADER_SIZE]
    body = view[: _HEADER_BODY.size]
    (stored,) = _CRC.unpack(view[_HEADER_BODY.size :])
    if crc32c(body) != stored:
        raise CorruptRecord("header checksum mismatch")
    magic, version, kind, flags, length, blockSize = _HEADER_BODY.unpack(body)
    if magic != MAGIC:
        raise CorruptRecord(f"bad magic {magic!r}")
    if version != VERSION:
        raise CorruptRecord(f"unknown record version {version}")
    if kind != KIND_BLOB:
        raise CorruptRecord(f"unknown record kind {kind}")
    if flags != 0:
        raise CorruptRecord(f"unknown record flags {flags:#x}")
    if length > RECORD_PAYLOAD:
        raise CorruptRecord(f"payload length {length} over the limit")
    if blockSize != BLOCK_SIZE:
        raise CorruptRecord(f"unsupported block size {blockSize}")
    return RecordHeader(version, kind, flags, length, blockSize)


def checkBlocks(blocks: Buffer, table: Buffer, blockSize: int = BLOCK_SIZE) -> Optional[int]:
    """
    Verify consecutive blocks against their consecutive table entries.

    @param blocks: whole blocks (the last one may be the record's short one).
    @param table: their entries, L{ENTRY_SIZE} bytes each.
    @return: the index (within C{blocks}) of the first bad block, or L{None}.
    """
    view = memoryview(blocks)
    entries = memoryview(table)
    count = blockCount(len(view), blockSize)
    if len(entries) != count * ENTRY_SIZE:
        return 0
    for i in range(count):
        (expected,) = _CRC.unpack(entries[i * ENTRY_SIZE : (i + 1) * ENTRY_SIZE])
        if crc32c(view[i * blockSize : (i + 1) * blockSize]) != expected:
            return i
    return None


@attrs.frozen
class ReadPlan:
    """
    What to read from one record to get payload bytes C{[start, end)}.

    All offsets are relative to the start of the record.

    @ivar firstBlock: first block covering the range.
    @ivar blocksOffset: where that block starts.
    @ivar blocksLength: bytes of whole blocks covering the range.
    @ivar tableEntriesOffset: where the first block's table entry is.
    @ivar tableEntriesLength: bytes of their table entries.
    @ivar skip: range start relative to C{blocksOffset}.
    @ivar length: C{end - start}.
    """

    firstBlock: int
    blocksOffset: int
    blocksLength: int
    tableEntriesOffset: int
    tableEntriesLength: int
    skip: int
    length: int

    def spans(self) -> List[Tuple[int, int]]:
        """
        The C{(offset, length)} reads to issue: the header, the blocks and
        the table entries, with adjacent spans merged (a whole-record read
        is one read).
        """
        spans: List[Tuple[int, int]] = []
        for offset, length in (
            (0, HEADER_SIZE),
            (self.blocksOffset, self.blocksLength),
            (self.tableEntriesOffset, self.tableEntriesLength),
        ):
            if spans and spans[-1][0] + spans[-1][1] == offset:
                spans[-1] = (spans[-1][0], spans[-1][1] + length)
            else:
                spans.append((offset, length))
        return spans


def planRead(payloadLength: int, start: int, end: int) -> ReadPlan:
    """
    Plan the reads that fetch and verify payload bytes C{[start, end)}.

    @raise ValueError: unless C{0 <= start < end <= payloadLength}.
    """
    if not 0 <= start < end <= payloadLength:
        raise ValueError(f"range [{start}, {end}) of a {payloadLength}-byte payload")
    first = start // BLOCK_SIZE
    last = blockCount(end)  # exclusive
    blocksStart = first * BLOCK_SIZE
    blocksEnd = min(last * BLOCK_SIZE, payloadLength)
    return ReadPlan(
        firstBlock=first,
        blocksOffset=HEADER_SIZE + blocksStart,
        blocksLength=blocksEnd - blocksStart,
        tableEntriesOffset=tableOffset(payloadLength) + first * ENTRY_SIZE,
        tableEntriesLength=(last - first) * ENTRY_SIZE,
        skip=start - blocksStart,
        length=end - start,
    )
