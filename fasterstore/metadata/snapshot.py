"""
Metadata snapshots: checkpoints that bound WAL replay at startup.

C{<root>/meta/snapshot-%012d.json} holds the state after replaying every WAL
generation up to and including its number.  The file is newline-delimited
JSON, written and read as a stream so neither side builds one huge document::

    {"format": "fasterstore-metadata-snapshot", "version": 1, "generation": N}
    {"bucket": {...}} / {"object": {...}} / {"blob": {...}} / {"garbage": [...]}
    ...
    {"end": {"records": count, "crc32c": CRC-32C of every byte before this line}}

A snapshot is built I{by replay} (L{checkpoint}): previous snapshot plus the
sealed WAL files, through L{MetadataState.apply}, in the runner thread.  The
live state is never read from another thread and requests never wait.

Writes are atomic: temp file, fsync, rename, fsync the directory.  Only then
are older snapshots and the WAL generations covered removed.
Tests: tests/unit/test_snapshot.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any, Dict, Iterator, List, Optional

import attrs
from awscrt.checksums import crc32c
from twisted.logger import Logger

from fasterstore.metadata.state import MetadataState
from fasterstore.durable import syncDirectory
from fasterstore.files import makePrivateDirectory, openPrivateFile
from fasterstore.metadata.wal import listWALs, readWAL, walPath

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


def writeSnapshot(directory: str, generation: int, state: MetadataState, fsync: bool = True) -> str:
    """
    Atomically write C{state} as the snapshot for C{generation}.

    @return: the snapshot's path.
    """
    final = snapshotPath(directory, generation)
    temp = final + _TEMP_SUFFIX
    try:
        # A temp file left by a crash is replaced, not reused: whatever its
        # mode, the snapshot renamed into place is one this call created.
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        with os.fdopen(openPrivateFile(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb", buffering=_BUFFER) as f:
            checksum = 0
            count = 0

            def emit(obj: Any) -> None:
                nonlocal checksum
                data = _line(obj)
                checksum = crc32c(data, checksum)
                f.write(data)

            emit({"format": FORMAT, "version": VERSION, "generation": generation})
            for record in state.iterRecords():
                emit(record)
                count += 1
            f.write(_line({"end": {"records": count, "crc32c": checksum}}))
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(temp, final)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    if fsync:
        syncDirectory(directory)
    return final


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


def removeCovered(directory: str, generation: int, fsync: bool = True) -> None:
    """
    Remove what the snapshot for C{generation} makes useless: older
    snapshots, leftover temp files and WAL generations up to C{generation}.
    """
    removed = False
    for name in os.listdir(directory):
        m = _SNAPSHOT_NAME.match(name)
        if (m is not None and int(m.group(1)) < generation) or (
            name.startswith("snapshot-") and name.endswith(_TEMP_SUFFIX)
        ):
            os.unlink(os.path.join(directory, name))
            removed = True
    for g in listWALs(directory):
        if g <= generation:
            os.unlink(walPath(directory, g))
            removed = True
    if removed and fsync:
        syncDirectory(directory)


def loadState(directory: str, fsync: bool = True) -> LoadedState:
    """
    Recover the state at startup: the newest snapshot, then every WAL
    generation after it in order.  The newest WAL's torn tail, if any, is
    truncated; files a snapshot already covers are removed.

    @raise SnapshotError: for a corrupt snapshot or a gap in the WAL sequence.
    @raise fasterstore.metadata.wal.WALCorruptError: for a corrupt WAL.
    """
    if makePrivateDirectory(directory):
        if fsync:
            syncDirectory(os.path.dirname(os.path.abspath(directory)))
    snapshots = listSnapshots(directory)
    if snapshots:
        base = snapshots[-1]
        state = readSnapshot(snapshotPath(directory, base), base)
    else:
        base = 0
        state = MetadataState()
    removeCovered(directory, base, fsync)
    generations = _walsAfter(directory, base)
    for i, g in enumerate(generations):
        last = i == len(generations) - 1
        for mutation in readWAL(walPath(directory, g), truncate=last):
            state.apply(mutation)
    current = generations[-1] if generations else base + 1
    return LoadedState(state, base, current, generations[:-1])


def checkpoint(directory: str, through: int, fsync: bool = True) -> Optional[str]:
    """
    Write the snapshot covering WAL generations up to C{through} (all sealed),
    by loading the newest older snapshot and replaying the generations after
    it; then remove what it covers.  Blocking; touches no live state.

    @return: the snapshot's path, or C{None} if one already covers C{through}.
    """
    snapshots = listSnapshots(directory)
    if snapshots and snapshots[-1] >= through:
        return None
    if snapshots:
        base = snapshots[-1]
        state = readSnapshot(snapshotPath(directory, base), base)
    else:
        base = 0
        state = MetadataState()
    for g in _walsAfter(directory, base, through):
        for mutation in readWAL(walPath(directory, g), truncate=False):
            state.apply(mutation)
    path = writeSnapshot(directory, through, state, fsync)
    removeCovered(directory, through, fsync)
    log.info("Wrote metadata snapshot {path}", path=path)
    return path


def checkpointInChild(directory: str, through: int, fsync: bool = True) -> Optional[str]:
    """
    L{checkpoint} in a child Python process, waited for here.

    Replaying the WAL is pure-Python work: in a thread of the server it
    holds the GIL the reactor needs (measured: p99 PUT latency went from
    ~0.1 s to over 1 s at every snapshot).  A child process runs it on
    another core instead; the thread calling this only waits.

    @raise SnapshotError: if the child fails; its error output is included.
    """
    command = [sys.executable, "-m", "fasterstore.metadata.snapshot", directory, str(through)]
    if not fsync:
        command.append("--no-fsync")
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SnapshotError(f"checkpoint child exited with {result.returncode}: {result.stderr.strip()[-2000:]}")
    path = result.stdout.strip() or None
    if path is not None:
        log.info("Wrote metadata snapshot {path}", path=path)
    return path


def main(argv: List[str]) -> int:
    """C{python -m fasterstore.metadata.snapshot DIRECTORY THROUGH [--no-fsync]}."""
    fsync = "--no-fsync" not in argv
    directory, through = [a for a in argv if a != "--no-fsync"]
    path = checkpoint(directory, int(through), fsync)
    print(path or "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
