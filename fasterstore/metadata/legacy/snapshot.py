"""
Snapshots of the metadata format before the SQLite store, read once by
L{fasterstore.metadata.migration}.

C{<root>/meta/snapshot-%012d.json} holds the state after replaying every WAL
generation up to and including its number.  The file is newline-delimited
JSON, written and read as a stream so neither side builds one huge document::

    {"format": "fasterstore-metadata-snapshot", "version": 1, "generation": N}
    {"bucket": {...}} / {"object": {...}} / {"blob": {...}} / {"garbage": [...]}
    ...
    {"end": {"records": count, "crc32c": CRC-32C of every byte before this line}}

Tests: tests/unit/test_migration.py.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Iterator, List, Optional

import attrs
from awscrt.checksums import crc32c
from twisted.logger import Logger

from fasterstore.metadata.legacy.state import MetadataState
from fasterstore.metadata.legacy.wal import listWALs, readWAL, walPath

log = Logger()

FORMAT = "fasterstore-metadata-snapshot"
VERSION = 1

_SNAPSHOT_NAME = re.compile(r"^snapshot-(\d{12})\.json$")
_TEMP_SUFFIX = ".tmp"
_BUFFER = 1 << 20


class SnapshotError(Exception):
    """A snapshot or the WAL sequence after it cannot be trusted."""


def snapshotPath(directory: str, generation: int) -> str:
    """The path of the snapshot covering WAL generations up to C{generation}."""
    return os.path.join(directory, "snapshot-%012d.json" % (generation,))


def listSnapshots(directory: str) -> List[int]:
    """The generations of the complete snapshots in C{directory}, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = (_SNAPSHOT_NAME.match(name) for name in names)
    return sorted(int(m.group(1)) for m in found if m is not None)


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _line(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode("ascii") + b"\n"


def _records(path: str, expectGeneration: Optional[int]) -> Iterator[Dict[str, Any]]:
    """The state records of a snapshot file, checking header and trailer."""
    with open(path, "rb", buffering=_BUFFER) as f:
        checksum = 0
        count = 0
        first = True
        for raw in f:
            if not raw.endswith(b"\n"):
                raise SnapshotError(f"{path}: truncated line after {count} records")
            try:
                obj = json.loads(raw)
            except ValueError as e:
                raise SnapshotError(f"{path}: malformed line after {count} records") from e
            if first:
                first = False
                if obj.get("format") != FORMAT or obj.get("version") != VERSION:
                    raise SnapshotError(f"{path}: not a version {VERSION} snapshot")
                if expectGeneration is not None and obj.get("generation") != expectGeneration:
                    raise SnapshotError(f"{path}: header says generation {obj.get('generation')}")
                checksum = crc32c(raw, checksum)
                continue
            if "end" in obj:
                end = obj["end"]
                if end.get("records") != count or end.get("crc32c") != checksum:
                    raise SnapshotError(f"{path}: checksum or record count mismatch")
                if f.read(1):
                    raise SnapshotError(f"{path}: data after the end record")
                return
            checksum = crc32c(raw, checksum)
            count += 1
            yield obj
    raise SnapshotError(f"{path}: truncated (no end record)")


def readSnapshot(path: str, generation: Optional[int] = None) -> MetadataState:
    """
    Load a snapshot file.

    @raise SnapshotError: if it is truncated, corrupt or for another generation.
    """
    try:
        return MetadataState.fromRecords(_records(path, generation))
    except SnapshotError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotError(f"{path}: bad record: {e}") from e


@attrs.frozen
class LoadedState:
    """
    What startup recovered.

    @ivar state: the state after snapshot and replay.
    @ivar snapshotGeneration: the snapshot loaded (0 if none).
    @ivar walGeneration: the generation to append to next (the newest file
        replayed, or C{snapshotGeneration + 1} when there is none).
    @ivar sealedGenerations: replayed generations older than
        C{walGeneration}: not yet covered by a snapshot.
    """

    state: MetadataState
    snapshotGeneration: int
    walGeneration: int
    sealedGenerations: List[int]


def _walsAfter(directory: str, after: int, through: Optional[int] = None) -> List[int]:
    """WAL generations after C{after} (up to C{through}), checked for gaps."""
    generations = [g for g in listWALs(directory) if g > after and (through is None or g <= through)]
    expected = list(range(after + 1, after + 1 + len(generations)))
    if generations != expected:
        raise SnapshotError(
            f"{directory}: WAL generations after snapshot {after} are not contiguous: {generations}"
        )
    if through is not None and through > after and generations[-1:] != [through]:
        raise SnapshotError(f"{directory}: WAL generation {through} is missing")
    return generations


def loadState(directory: str) -> LoadedState:
    """
    The state an old data directory held: the newest snapshot, then every
    WAL generation after it in order.  Reads only: a torn tail is skipped
    with a warning naming the file, never cut.

    @raise SnapshotError: for a corrupt snapshot or a gap in the WAL sequence.
    @raise fasterstore.metadata.legacy.wal.WALCorruptError: for a corrupt WAL.
    """
    snapshots = listSnapshots(directory)
    if snapshots:
        base = snapshots[-1]
        state = readSnapshot(snapshotPath(directory, base), base)
    else:
        base = 0
        state = MetadataState()
    generations = _walsAfter(directory, base)
    for g in generations:
        for mutation in readWAL(walPath(directory, g), truncate=False):
            state.apply(mutation)
    current = generations[-1] if generations else base + 1
    return LoadedState(state, base, current, generations[:-1])
