"""
The write-ahead log of the metadata format before the SQLite store, read
once by L{fasterstore.metadata.migration}.

Files are C{<root>/meta/wal-%012d.log}, numbered by I{generation}; a snapshot
numbered N covers every generation up to N (see L{fasterstore.metadata.legacy.snapshot}).

Each file is a sequence of records::

    uint32 little-endian  payload length (> 0)
    uint32 little-endian  CRC-32C of the payload
    payload               compact JSON (UTF-8, ASCII-escaped) of a list of mutations

The engine writes B{one record per group-commit round}, so a round is atomic
on disk: after a crash either all of its mutations replay or none do (none
of them was acknowledged before the record was synced).

Only the end of the newest file can be torn by a crash, because a round
starts only after the previous one was fsynced.  L{readWAL} therefore drops a
bad tail (truncating the file so later appends are clean) but treats a bad
record followed by a good one as corruption.

Tests: tests/unit/test_migration.py.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import struct
from typing import Iterator, List, Optional

from awscrt.checksums import crc32c
from twisted.logger import Logger

from fasterstore.metadata.legacy.state import Mutation

log = Logger()

HEADER = struct.Struct("<II")
#: Larger lengths are garbage, not records.
MAX_RECORD = 1 << 30

_WAL_NAME = re.compile(r"^wal-(\d{12})\.log$")


class WALCorruptError(Exception):
    """A log holds a bad record followed by good ones: not a torn write."""


def walPath(directory: str, generation: int) -> str:
    """The path of one WAL generation inside the C{meta} directory."""
    return os.path.join(directory, "wal-%012d.log" % (generation,))


def listWALs(directory: str) -> List[int]:
    """The WAL generations present in C{directory}, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = (_WAL_NAME.match(name) for name in names)
    return sorted(int(m.group(1)) for m in found if m is not None)


def _decodePayload(payload: bytes) -> Optional[List[Mutation]]:
    """The mutations in a payload whose CRC matched, or C{None} if malformed."""
    try:
        mutations = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(mutations, list):
        return None
    for m in mutations:
        if not isinstance(m, dict) or not isinstance(m.get("op"), str):
            return None
    return mutations


def _recordAt(data: "mmap.mmap | bytes", offset: int) -> Optional[List[Mutation]]:
    """The mutations of a well-formed record at C{offset}, else C{None}."""
    end = len(data)
    if offset + HEADER.size > end:
        return None
    length, checksum = HEADER.unpack_from(data, offset)
    start = offset + HEADER.size
    if length == 0 or length > MAX_RECORD or start + length > end:
        return None
    payload = data[start : start + length]
    if crc32c(payload) != checksum:
        return None
    return _decodePayload(payload)


def _goodRecordAfter(path: str, offset: int) -> Optional[int]:
    """The offset of the first well-formed record after C{offset}, if any."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size - offset <= HEADER.size:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for candidate in range(offset + 1, size - HEADER.size):
                if _recordAt(data, candidate) is not None:
                    return candidate
    return None


def readWAL(path: str, truncate: bool = True) -> Iterator[Mutation]:
    """
    The mutations logged in one WAL file, in order.

    A bad record (short header or payload, CRC mismatch, malformed JSON) with
    nothing good after it is a torn tail: reading stops there and, if
    C{truncate}, the file is cut at that offset and fsynced, so that appends
    continue after the last good record.  Pass C{truncate=False} for sealed
    files read by the snapshot builder.

    Exhaust the iterator: the truncation happens when the tail is reached.

    @raise WALCorruptError: if a good record follows a bad one.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset < size:
            header = f.read(HEADER.size)
            mutations: Optional[List[Mutation]] = None
            if len(header) == HEADER.size:
                length, checksum = HEADER.unpack(header)
                if 0 < length <= MAX_RECORD and offset + HEADER.size + length <= size:
                    payload = f.read(length)
                    if len(payload) == length and crc32c(payload) == checksum:
                        mutations = _decodePayload(payload)
            if mutations is None:
                break
            yield from mutations
            offset += HEADER.size + len(payload)
    if offset >= size:
        return
    good = _goodRecordAfter(path, offset)
    if good is not None:
        raise WALCorruptError(
            f"{path}: bad record at offset {offset} followed by a good one at {good}"
        )
    if truncate:
        log.warn(
            "Dropping {n} bytes of torn tail from {path} at offset {offset}",
            n=size - offset, path=path, offset=offset,
        )
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
    else:
        log.warn(
            "Ignoring {n} bytes of torn tail in sealed {path} at offset {offset}",
            n=size - offset, path=path, offset=offset,
        )
