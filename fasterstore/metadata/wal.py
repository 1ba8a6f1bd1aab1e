"""
The metadata write-ahead log.

Files are C{<root>/meta/wal-%012d.log}, numbered by I{generation}; a snapshot
numbered N covers every generation up to N (see L{fasterstore.metadata.snapshot}).

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

All methods block: call them from the runner thread.
Tests: tests/unit/test_wal.py.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import struct
from typing import Iterator, List, Optional, Sequence

import attrs
from awscrt.checksums import crc32c
from twisted.logger import Logger

from fasterstore.durable import syncDirectory
from fasterstore.files import openPrivateFile
from fasterstore.metadata.state import Mutation

log = Logger()

HEADER = struct.Struct("<II")
#: Larger lengths are garbage, not records.
MAX_RECORD = 1 << 30

_WAL_NAME = re.compile(r"^wal-(\d{12})\.log$")

# Indirections so tests can observe (and fail) the system calls.
_write = os.write
_fdatasync = getattr(os, "fdatasync", os.fsync)


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


def encodeMutation(mutation: Mutation) -> bytes:
    """
    One mutation as compact JSON.  ASCII-escaped so that no string (not even a
    lone surrogate from a badly encoded key) can fail to encode later.

    @raise ValueError: or C{TypeError} if the mutation is not JSON-able.
    """
    return json.dumps(mutation, separators=(",", ":"), allow_nan=False).encode("ascii")


def encodeRecord(encodedMutations: Sequence[bytes]) -> bytes:
    """Frame already-encoded mutations as one WAL record."""
    payload = b"[" + b",".join(encodedMutations) + b"]"
    return HEADER.pack(len(payload), crc32c(payload)) + payload


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


@attrs.define(eq=False)
class WAL:
    """
    The open, newest WAL generation, appended to by the engine's rounds.

    @ivar directory: the C{meta} directory.
    @ivar generation: the generation being appended to.
    @ivar fsync: if false, L{sync} does nothing (tests, benchmarks).
    @ivar size: bytes in the current generation's file.
    """

    directory: str
    generation: int
    fsync: bool = True
    size: int = 0
    _fd: int = -1

    @classmethod
    def open(cls, directory: str, generation: int, fsync: bool = True) -> "WAL":
        """
        Open a generation for appending, creating it if needed.  Replay an
        existing file with L{readWAL} first, so any torn tail is gone.
        """
        wal = cls(directory, generation, fsync)
        wal._openFile(create=False)
        return wal

    def _openFile(self, create: bool) -> None:
        path = walPath(self.directory, self.generation)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        existed = os.path.exists(path)
        if create:
            flags |= os.O_EXCL
        self._fd = openPrivateFile(path, flags)
        self.size = os.fstat(self._fd).st_size
        if not existed and self.fsync:
            syncDirectory(self.directory)

    def appendEncoded(self, encodedMutations: Sequence[bytes]) -> int:
        """
        Write mutations already encoded with L{encodeMutation} as one record
        (not yet durable: call L{sync}).  Returns the bytes written.
        """
        record = encodeRecord(encodedMutations)
        view = memoryview(record)
        while view:
            written = _write(self._fd, view)
            view = view[written:]
        self.size += len(record)
        return len(record)

    def append(self, mutations: Sequence[Mutation]) -> int:
        """Write mutations as one record (see L{appendEncoded})."""
        return self.appendEncoded([encodeMutation(m) for m in mutations])

    def sync(self) -> None:
        """Make everything appended so far durable (fdatasync)."""
        if self.fsync:
            _fdatasync(self._fd)

    def rotate(self) -> int:
        """
        Seal the current generation and start the next one; the new file's
        directory entry is fsynced before this returns.

        @return: the sealed generation.
        """
        self.sync()
        os.close(self._fd)
        self._fd = -1
        sealed = self.generation
        self.generation = sealed + 1
        self._openFile(create=True)
        return sealed

    def close(self) -> None:
        """Sync and close the file."""
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1
