"""
Append-only segment files: where blob bytes live.

A L{SegmentStore} owns ``<root>/segments/%08d.seg``.  Records (see
L{fasterstore.storage.records}) are appended to one active segment; when it
would grow past C{targetSize} a new one is started.  Older segments are only
read (and, later, compacted).

Concurrency without a write lock: the record's place is reserved on the
reactor thread (C{end += recordLength}), then the bytes are written with one
C{os.pwritev} in the L{BlockingRunner}.  Reservations are disjoint, so
concurrent appends never interleave and never wait for each other.

Durability is not decided here: an append only writes.  The metadata engine's
group commit calls L{SegmentStore.prepareSync} and runs the function it gets
in a worker thread, before it makes the records reachable.

Crash recovery needs no scan: at startup new records go after the current
end of the highest-numbered segment.  Whatever a crash left past the last
committed record (torn records, records of uploads that never committed) is
unreferenced garbage for compaction to reclaim.  The directory entry of that
highest segment may never have been fsynced before the crash, so the first
sync after opening fsyncs the segments directory again.

Descriptors: a large store has far more segments than a process may hold
open files, so at most C{maxOpenFiles} stay open, least recently used closed
first.  Every use in a worker thread (a record read, a write, a sync) holds a
reference, and a descriptor is closed only when none is left: a thread never
uses a closed descriptor number, which the kernel may already have reused for
another file.

A failed sync (EIO) may have lost the records it covered for good (the kernel
drops the dirty pages, and a later fsync succeeds without them): the store
remembers them (L{SegmentStore.lost}) and starts a new active segment.

Removal, for compaction: L{SegmentStore.removeSegment} waits for pins and
reads in flight before it unlinks a sealed segment's file.
Tests: tests/unit/test_segments.py.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import os
import re
import threading
from collections import OrderedDict
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
)

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from fasterstore.durable import syncDirectory
from fasterstore.files import makePrivateDirectory, openPrivateFile
from fasterstore.metrics import Metrics
from fasterstore.storage import dropbehind
from fasterstore.storage.blob import Extent
from fasterstore.storage.records import (
    HEADER_SIZE,
    RECORD_PAYLOAD,
    CorruptRecord,
    checkBlocks,
    decodeHeader,
    encodeRecord,
    planRead,
    recordLength,
)
from fasterstore.threads import BlockingRunner

if TYPE_CHECKING:
    from fasterstore.storage.writer import BlobWriter

Buffer = Union[bytes, bytearray, memoryview]
T = TypeVar("T")

DEFAULT_TARGET_SIZE = 256 << 20
FIRST_SEGMENT = 1
_SEGMENT_NAME = re.compile(r"^(\d{8})\.seg$")
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
DEFAULT_MAX_OPEN_FILES = 128
#: The end recorded for a sealed segment whose sync failed: all of it.
_WHOLE_SEGMENT = 1 << 63
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)

log = Logger()


class CorruptionError(Exception):
    """
    Bytes read from a segment failed verification; none of them were returned.

    @ivar segment: the segment number.
    @ivar offset: offset of the record header in the segment.
    @ivar reason: what was wrong.
    """

    def __init__(self, segment: int, offset: int, reason: str) -> None:
        self.segment = segment
        self.offset = offset
        self.reason = reason
        super().__init__(f"segment {segment:08d}, record at offset {offset}: {reason}")


class SegmentMissing(CorruptionError):
    """
    The segment file is gone: compaction (maybe another worker's) moved its
    records and removed it after the reader looked the blob up.  The blob's
    current extents, looked up again, read fine.
    """


class StoreClosed(Exception):
    """The L{SegmentStore} was closed (or is closing)."""


@attrs.frozen
class ExtentMap:
    """
    A blob's extents with their cumulative offsets, to find the extents of a
    byte range by bisection instead of a walk (a 5 GiB blob has 5120).

    @ivar extents: the records, in blob order.
    @ivar starts: blob offset of each extent's first byte.
    @ivar size: the blob size.
    """

    extents: Tuple[Extent, ...]
    starts: Tuple[int, ...]
    size: int

    @classmethod
    def of(cls, extents: Union["ExtentMap", Iterable[Extent]]) -> "ExtentMap":
        """Build the map, or return C{extents} if it already is one."""
        if isinstance(extents, ExtentMap):
            return extents
        extents = tuple(extents)
        starts: List[int] = []
        position = 0
        for extent in extents:
            starts.append(position)
            position += extent.length
        return cls(extents, tuple(starts), position)

    def locate(self, start: int, end: int) -> List[Tuple[Extent, int, int]]:
        """
        The extents covering blob bytes C{[start, end)}, each with the
        C{[start, end)} to take from its payload.
        """
        pieces: List[Tuple[Extent, int, int]] = []
        i = max(bisect.bisect_right(self.starts, start) - 1, 0)
        while i < len(self.extents) and self.starts[i] < end:
            extent, base = self.extents[i], self.starts[i]
            localStart = max(start - base, 0)
            localEnd = min(end - base, extent.length)
            if localStart < localEnd:
                pieces.append((extent, localStart, localEnd))
            i += 1
        return pieces


def _pwriteAll(fd: int, buffers: Sequence[Buffer], offset: int) -> None:
    """C{os.pwritev} all of C{buffers} at C{offset}, resuming short writes."""
    views = [memoryview(b) for b in buffers if len(b)]
    while views:
        written = os.pwritev(fd, views, offset)
        if written <= 0:
            raise OSError(errno.EIO, "pwritev wrote nothing")
        offset += written
        while written:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0


def _writeRecord(
    fd: int,
    offset: int,
    parts: Sequence[Buffer],
    beforeWrite: Optional[Callable[[bytes], object]],
    writeback: bool = False,
    drops: Sequence[dropbehind.Range] = (),
) -> None:
    """
    Worker-thread half of an append: assemble, checksum, write; with
    C{writeback}, start the record's writeback, then drop the earlier
    C{drops} from the page cache (L{fasterstore.storage.dropbehind}).
    """
    if len(parts) == 1 and type(parts[0]) is bytes:
        payload = parts[0]
    else:
        payload = b"".join(parts)
    if beforeWrite is not None:
        beforeWrite(payload)
    header, table = encodeRecord(payload)
    _pwriteAll(fd, (header, payload, table), offset)
    if writeback:
        dropbehind.startWriteback(fd, offset, len(header) + len(payload) + len(table))
        dropbehind.drop(drops)


#: Reads of at most this many bytes try the page cache on the calling thread.
INLINE_READ = 64 * 1024
_RWF_NOWAIT: Optional[int] = getattr(os, "RWF_NOWAIT", None)


class _NotCached(Exception):
    """The bytes are not all in the page cache: read them in the pool."""


def _preadCached(fd: int, length: int, offset: int) -> bytes:
    """C{pread} that never waits for the disk (Linux C{RWF_NOWAIT})."""
    assert _RWF_NOWAIT is not None
    buffer = bytearray(length)
    try:
        read = os.preadv(fd, [buffer], offset, _RWF_NOWAIT)
    except BlockingIOError:
        raise _NotCached() from None
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
            raise _NotCached() from None
        raise
    if read != length:
        raise _NotCached()  # partly cached, or short: the pool read decides
    return bytes(buffer)


def _noSync() -> None:
    """The sync of a store that does not fsync."""


def _toFilePath(root: Union[str, "FilePath[str]"]) -> "FilePath[str]":
    return root if isinstance(root, FilePath) else FilePath(root)


def _passThrough(f: Callable[[], object]) -> Callable[[T], T]:
    """A callback that calls C{f} and passes the result on."""

    def callback(result: T) -> T:
        f()
        return result

    return callback


def _atLeastTwo(instance: object, attribute: "attrs.Attribute[int]", value: int) -> None:
    """The active segment's descriptor plus one to read older segments with."""
    if value < 2:
        raise ValueError(f"maxOpenFiles must be at least 2, not {value!r}")


@attrs.define(eq=False)
class _Descriptor:
    """
    One open segment file, and how many jobs are using it right now.

    @ivar fd: the descriptor.
    @ivar users: record reads, writes and syncs holding it (each taken and
        released under the store's C{_openLock}).
    @ivar cached: still in the store's cache; once evicted (or its segment
        removed, or the store closed) the last user's release closes it.
    @ivar closed: C{os.close} was called.
    """

    fd: int
    users: int = 0
    cached: bool = True
    closed: bool = False

    def close(self) -> None:
        """Close it, once (an error closing a file we no longer need is moot)."""
        if not self.closed:
            self.closed = True
            try:
                os.close(self.fd)
            except OSError:
                pass


@attrs.define(eq=False)
class _Removal:
    """
    A L{SegmentStore.removeSegment} waiting for pins and reads to end.

    @ivar waiters: the Deferreds of every call that asked for it.
    @ivar started: the unlink job was handed to the runner; pins taken
        now no longer delay it.
    """

    waiters: List["Deferred[None]"] = attrs.Factory(list)
    started: bool = False
    confirm: Optional[Callable[[], "Deferred[Any]"]] = None


# Converters and validators run at construction only (see RangeProducer).
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class SegmentStore:
    """
    Append-only segment files under C{<root>/segments/}.

    All methods are called on the reactor thread; blocking work goes to
    C{runner}.  Opening the store does a little blocking I/O (mkdir, open,
    fstat), as does rotation (creating the next file, once per C{targetSize}).

    @ivar root: the data directory.
    @ivar runner: where writes, reads and syncs run.
    @ivar targetSize: a segment is full when the next record would take it
        past this many bytes (a single record larger than it still gets a
        segment of its own).
    @ivar metrics: counts corrupt reads, if given.
    @ivar fsync: when C{False}, L{prepareSync} returns a function that does
        nothing: a non-durable mode for benchmarks and tests.
    @ivar maxOpenFiles: how many segment descriptors stay open (at least 2:
        the active segment's, never closed, and one to read with).  Jobs
        using evicted descriptors may briefly take it past this.
    """

    root: "FilePath[str]" = attrs.field(converter=_toFilePath)
    runner: BlockingRunner
    targetSize: int = DEFAULT_TARGET_SIZE
    metrics: Optional[Metrics] = None
    fsync: bool = True
    maxOpenFiles: int = attrs.field(
        default=DEFAULT_MAX_OPEN_FILES, kw_only=True, validator=_atLeastTwo
    )

    directory: "FilePath[str]" = attrs.field(init=False)
    _active: int = attrs.field(init=False, default=FIRST_SEGMENT)
    _end: int = attrs.field(init=False, default=0)
    # Guarded by _openLock (worker threads open, evict and close): the
    # descriptor cache in least-recently-used order, the segments whose
    # removal is unlinking them now, and what failed syncs lost.
    _openLock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _fds: "OrderedDict[int, _Descriptor]" = attrs.field(init=False, factory=OrderedDict)
    _gone: Set[int] = attrs.field(init=False, factory=set)
    _lost: Dict[int, int] = attrs.field(init=False, factory=dict)
    _mustRotate: bool = attrs.field(init=False, default=False)
    # Reactor thread only.  _dirty holds one reference to each descriptor
    # written since the last prepareSync, so it stays open for the sync.
    _dirty: Dict[int, _Descriptor] = attrs.field(init=False, factory=dict)
    _dirtyDirectories: Set[str] = attrs.field(init=False, factory=set)
    _holds: Dict[int, int] = attrs.field(init=False, factory=dict)
    _removing: Dict[int, _Removal] = attrs.field(init=False, factory=dict)
    _inflight: int = attrs.field(init=False, default=0)
    _closing: bool = attrs.field(init=False, default=False)
    _closed: bool = attrs.field(init=False, default=False)
    _drained: List["Deferred[None]"] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        if self.targetSize <= 0:
            raise ValueError("targetSize must be positive")
        self.directory = self.root.child("segments")
        if makePrivateDirectory(self.directory.path):
            self._dirtyDirectories.add(self.root.path)
        numbers = [
            int(m.group(1))
            for m in map(_SEGMENT_NAME.match, os.listdir(self.directory.path))
            if m is not None
        ]
        # A new segment of our own, always: the newest one may be another
        # process's active segment, or end in a record a crash tore.  (A
        # crash may also have come before its directory entry was fsynced:
        # the new file's makes the directory dirty either way.)
        self._create(max(numbers) + 1 if numbers else FIRST_SEGMENT)

    @property
    def activeSegment(self) -> int:
        """The number of the segment new records go to."""
        return self._active

    def segmentPath(self, segment: int) -> "FilePath[str]":
        """The file of segment number C{segment}."""
        return self.directory.child("%08d.seg" % (segment,))

    def openWriter(self, algorithms: Iterable[str] = ()) -> "BlobWriter":
        """A writer for one new blob, computing md5, blake3 and C{algorithms}."""
        from fasterstore.storage.writer import BlobWriter

        return BlobWriter(self, self.runner, algorithms)

    # Writing

    def append(self, payload: bytes) -> "Deferred[Extent]":
        """
        Write one record holding C{payload} (1 byte to 1 MiB).

        @return: fires with the record's L{Extent} once written (not synced).
        """
        return self.appendParts([payload])

    def dropsBehind(self, length: int) -> bool:
        """
        Whether a record with this payload length starts its writeback once
        written and may later be dropped from the page cache (see
        L{fasterstore.storage.dropbehind}): large records, on a store that
        fsyncs (without fsync nothing needs to reach the disk soon).
        """
        return self.fsync and length >= dropbehind.DROP_MIN and dropbehind.syncFileRange is not None

    def appendParts(
        self,
        parts: Sequence[Buffer],
        beforeWrite: Optional[Callable[[bytes], object]] = None,
        runner: Optional[BlockingRunner] = None,
        dropBehind: Sequence[Extent] = (),
    ) -> "Deferred[Extent]":
        """
        Write one record whose payload is the concatenation of C{parts}.

        The concatenation, C{beforeWrite(payload)} (the blob writer hashes
        there) and the checksumming all run in the worker thread, so the
        reactor thread only reserves space.

        @param runner: run the job there instead of in C{self.runner}.
        @param dropBehind: earlier records (of the same upload, not yet
            synced) to wait for and drop from the page cache once this one
            is written, if L{dropsBehind} this one.

        @raise ValueError: if the payload is empty or over L{RECORD_PAYLOAD}.
        @raise StoreClosed: after L{close}.
        """
        self._checkOpen()
        length = sum(len(part) for part in parts)
        if not 0 < length <= RECORD_PAYLOAD:
            raise ValueError(f"record payload of {length} bytes")
        size = recordLength(length)
        with self._openLock:
            mustRotate = self._mustRotate
        if mustRotate or (self._end > 0 and self._end + size > self.targetSize):
            try:
                self._create(self._active + 1)
            except OSError:
                return fail()
        segment, offset = self._active, self._end
        self._end += size
        with self._openLock:
            descriptor = self._fds[segment]  # the active one: never evicted
            descriptor.users += 1
        # Until the caller holds the extent (and pins it for its upload), a
        # record in flight looks dead to compaction: keep its segment.
        unpin = self.pin((segment,))
        writeback = self.dropsBehind(length)
        drops: List[Tuple[_Descriptor, int, int]] = []
        if writeback:
            with self._openLock:
                for extent in dropBehind:
                    held = self._fds.get(extent.segment)
                    if held is not None and not held.closed:
                        held.users += 1
                        drops.append((held, extent.offset, recordLength(extent.length)))

        def written(result: Union[None, Failure]) -> Union[Extent, Failure]:
            unpin()
            for held, _, _ in drops:
                self._release(held)
            if isinstance(result, Failure):
                self._release(descriptor)
                return result
            if self.fsync and segment not in self._dirty:
                self._dirty[segment] = descriptor  # this reference, kept for the sync
            else:
                self._release(descriptor)
            return Extent(segment, offset, length)

        d = (runner or self.runner).run(
            _writeRecord, descriptor.fd, offset, parts, beforeWrite, writeback, [(h.fd, o, n) for h, o, n in drops]
        )
        return self._track(d.addBoth(written))

    def _create(self, segment: int) -> None:
        """
        Start a new, empty active segment: C{segment}, or the next number
        no other process has taken.  The file is flock()ed shared while it
        is active, which tells compaction in any process to leave it alone.
        """
        while True:
            path = self.segmentPath(segment).path
            try:
                with self._openLock:
                    fd = self._opening(lambda: openPrivateFile(path, os.O_RDWR | os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                segment += 1
                continue
            break
        fcntl.flock(fd, fcntl.LOCK_SH)
        with self._openLock:
            previous = self._fds.get(self._active) if self._active != segment else None
            self._fds[segment] = _Descriptor(fd)
            self._active = segment
            self._mustRotate = False
            self._evict(self.maxOpenFiles)
        if previous is not None and not previous.closed:
            fcntl.flock(previous.fd, fcntl.LOCK_UN)  # sealed: compaction may judge it now
        self._end = 0
        self._dirtyDirectories.add(self.directory.path)

    def prepareSync(self) -> Callable[[], None]:
        """
        Take the set of segments written since the last call.

        Call on the reactor thread; run the returned function in a worker
        thread.  When it returns, every record whose append had fired before
        this call is durable, and so are new segment files' directory entries.

        If the function raises (EIO), the writes it covered must be treated
        as lost: the kernel may have dropped the dirty pages, so there is no
        point retrying.  The store remembers them (see L{lost}) and the next
        append starts a new segment.  Run it before L{close}.
        """
        held, self._dirty = self._dirty, {}
        directories, self._dirtyDirectories = self._dirtyDirectories, set()
        if not self.fsync or (not held and not directories):
            for descriptor in held.values():
                self._release(descriptor)
            return _noSync
        # Appends in flight now are below _end too: their pages may be
        # dropped with the others, so a failure counts them as lost as well.
        covered = {
            segment: self._end if segment == self._active else _WHOLE_SEGMENT
            for segment in held
        }
        descriptors = [held[segment] for segment in sorted(held)]

        def sync() -> None:
            try:
                for descriptor in descriptors:
                    _fdatasync(descriptor.fd)
                for path in sorted(directories, key=len, reverse=True):
                    syncDirectory(path)
            except Exception:
                self._syncFailed(covered)
                raise
            finally:
                for descriptor in descriptors:
                    self._release(descriptor)

        return sync

    def _syncFailed(self, covered: Dict[int, int]) -> None:
        """Remember what a failed sync may have lost (in its worker thread)."""
        with self._openLock:
            for segment, end in covered.items():
                self._lost[segment] = max(end, self._lost.get(segment, 0))
            self._mustRotate = True

    def lost(self, extents: Iterable[Extent]) -> bool:
        """
        Whether any of C{extents} was covered by a failed sync: its bytes
        may be gone from the disk even if they still read back from memory.
        """
        with self._openLock:
            if not self._lost:
                return False
            return any(extent.offset < self._lost.get(extent.segment, 0) for extent in extents)

    # Reading

    def readRange(
        self, extents: Union[ExtentMap, Sequence[Extent]], start: int, end: int
    ) -> "Deferred[bytes]":
        """
        Read bytes C{[start, end)} of the blob made of C{extents}.

        Only the blocks covering the range are read, each verified against
        its checksum, as is each record header.  Pass an L{ExtentMap} when
        reading one large blob piece by piece.

        @return: fires with the bytes, or fails with L{CorruptionError}
            (logged and counted) rather than return a wrong byte, or with
            the C{OSError} of a segment that could not be opened (EMFILE).
        @raise ValueError: if the range is not within the blob.
        @raise StoreClosed: after L{close}.
        """
        self._checkOpen()
        layout = ExtentMap.of(extents)
        if not 0 <= start <= end <= layout.size:
            raise ValueError(f"range [{start}, {end}) of a {layout.size}-byte blob")
        if start == end:
            return succeed(b"")
        pieces = layout.locate(start, end)
        if _RWF_NOWAIT is not None and end - start <= INLINE_READ and all(e.segment in self._fds for e, _, _ in pieces):
            # Cached bytes are read on the calling thread: cheaper than a
            # pool handoff.  RWF_NOWAIT never waits for the disk; bytes not
            # in the page cache go to the pool as usual.
            try:
                return succeed(self._read(pieces, nowait=True))
            except _NotCached:
                pass
            except CorruptionError:
                return fail().addErrback(self.reportCorruption)
            except OSError:
                return fail()
        # The read pins its segments: a removal waits for it.
        unpin = self.pin(e.segment for e, _, _ in pieces)

        d = self.runner.run(self._read, pieces)
        d.addBoth(_passThrough(unpin))
        self._track(d)
        d.addErrback(self.reportCorruption)
        return d

    def _read(self, pieces: List[Tuple[Extent, int, int]], nowait: bool = False) -> bytes:
        """
        Read and verify the pieces: in the pool, or with C{nowait} on the
        calling thread from the page cache only (L{_NotCached} otherwise).
        """
        out: List[Buffer] = []
        for extent, start, end in pieces:
            try:
                out.append(self._readRecord(extent, start, end, nowait))
            except CorruptRecord as e:
                raise CorruptionError(extent.segment, extent.offset, str(e)) from None
            except FileNotFoundError:
                raise SegmentMissing(extent.segment, extent.offset, "segment file missing") from None
        return b"".join(out)

    def _readRecord(self, extent: Extent, start: int, end: int, nowait: bool = False) -> Buffer:
        """Read and verify payload bytes C{[start, end)} of one record."""
        plan = planRead(extent.length, start, end)
        spans: List[Tuple[int, memoryview]] = []
        # With nowait, never open a file on the calling thread.
        descriptor = self._acquire(extent.segment, openFile=not nowait)
        try:
            fd = descriptor.fd
            for offset, length in plan.spans():
                data = _preadCached(fd, length, extent.offset + offset) if nowait else os.pread(fd, length, extent.offset + offset)
                if len(data) != length:
                    raise CorruptRecord(f"short read: {len(data)} of {length} bytes at +{offset}")
                spans.append((offset, memoryview(data)))
        finally:
            self._release(descriptor)

        def region(offset: int, length: int) -> memoryview:
            for spanOffset, view in spans:
                if spanOffset <= offset and offset + length <= spanOffset + len(view):
                    return view[offset - spanOffset : offset - spanOffset + length]
            raise AssertionError("region outside the planned reads")

        header = decodeHeader(region(0, HEADER_SIZE))
        if header.payloadLength != extent.length:
            raise CorruptRecord(
                f"record holds {header.payloadLength} bytes, extent says {extent.length}"
            )
        blocks = region(plan.blocksOffset, plan.blocksLength)
        bad = checkBlocks(blocks, region(plan.tableEntriesOffset, plan.tableEntriesLength))
        if bad is not None:
            raise CorruptRecord(f"block {plan.firstBlock + bad} checksum mismatch")
        return blocks[plan.skip : plan.skip + plan.length]

    # Descriptors (any thread)

    def _acquire(self, segment: int, openFile: bool = True) -> _Descriptor:
        """
        Take a reference to a segment's descriptor, opening it on first use
        (closing the least recently used idle ones past C{maxOpenFiles});
        give it back with L{_release}.

        @raise _NotCached: if it is not open and C{openFile} is false.
        @raise OSError: if it cannot be opened (EMFILE fails this read
            only: the next one tries again).
        """
        with self._openLock:
            if self._closed:
                raise StoreClosed()
            descriptor = self._fds.get(segment)
            if descriptor is not None:
                self._fds.move_to_end(segment)
            else:
                if not openFile:
                    raise _NotCached()
                path = self.segmentPath(segment).path
                if segment in self._gone:
                    raise FileNotFoundError(errno.ENOENT, "segment removed", path)
                self._evict(self.maxOpenFiles - 1)
                descriptor = _Descriptor(
                    self._opening(lambda: os.open(path, os.O_RDONLY | os.O_CLOEXEC))
                )
                self._fds[segment] = descriptor
            descriptor.users += 1
            return descriptor

    def _release(self, descriptor: _Descriptor) -> None:
        """Give back a reference; the last one closes an evicted descriptor."""
        with self._openLock:
            self._releaseLocked(descriptor)

    def _releaseLocked(self, descriptor: _Descriptor) -> None:
        descriptor.users -= 1
        if descriptor.users == 0 and not descriptor.cached:
            descriptor.close()

    def _opening(self, open_: Callable[[], int]) -> int:
        """
        C{open_()}; out of descriptors, close every idle cached one and try
        once more.  Call with C{_openLock} held.
        """
        try:
            return open_()
        except OSError as e:
            if e.errno not in _OUT_OF_DESCRIPTORS or not self._evict(0):
                raise
        return open_()

    def _evict(self, keep: int) -> int:
        """
        Close idle descriptors, least recently used first, until at most
        C{keep} are cached; the active segment's stays.  Call with
        C{_openLock} held.

        @return: how many were closed.
        """
        closed = 0
        excess = len(self._fds) - keep
        if excess <= 0:
            return 0
        for segment, descriptor in list(self._fds.items()):
            if closed == excess:
                break
            if descriptor.users or segment == self._active:
                continue
            del self._fds[segment]
            descriptor.cached = False
            descriptor.close()
            closed += 1
        return closed

    def reportCorruption(self, failure: Failure) -> Failure:
        """Log and count a corrupt read (on the reactor thread)."""
        error = failure.value
        if isinstance(error, SegmentMissing):
            # Not a bad byte: a reader that looks again finds the new place.
            log.warn("Read of segment {segment}, which is gone (compacted)", segment=error.segment)
        elif isinstance(error, CorruptionError):
            log.error(
                "Corrupt read in segment {segment}, record at {offset}: {reason}",
                segment=error.segment,
                offset=error.offset,
                reason=error.reason,
            )
            if self.metrics is not None:
                self.metrics.corruption.inc()
        return failure

    # Compaction support

    def pin(self, segments: Iterable[int]) -> Callable[[], None]:
        """
        Keep C{segments} from being removed until the returned function is
        called (calling it again does nothing).  A pin taken once a removal
        has started unlinking does not stop it.
        """
        pinned = sorted(set(segments))
        for segment in pinned:
            self._holds[segment] = self._holds.get(segment, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            for segment in pinned:
                left = self._holds[segment] - 1
                if left:
                    self._holds[segment] = left
                    continue
                del self._holds[segment]
                removal = self._removing.get(segment)
                if removal is not None and not removal.started:
                    self._startRemoval(segment, removal)

        return release

    def pinned(self, segment: int) -> bool:
        """Whether something (a read, an append, an uncommitted upload) pins C{segment}."""
        return bool(self._holds.get(segment))

    def removeSegment(
        self, segment: int, confirm: Optional[Callable[[], "Deferred[Any]"]] = None
    ) -> "Deferred[None]":
        """
        Delete a sealed segment's file, once it is neither pinned nor being
        read: reads in flight finish correctly, later ones fail with
        L{CorruptionError} (segment file missing).  With C{fsync}, the
        directory is fsynced so the removal is durable.

        @param confirm: called once nothing pins the segment any more, just
            before the unlink: if its Deferred fails, the file stays and the
            removal fails with that (the metadata store says a blob names
            the segment again).
        @return: fires when the file is gone (a file already missing is
            fine); fails with C{ValueError} for the active segment, with
            L{StoreClosed} after L{close}.
        """
        if self._closing:
            return fail(StoreClosed())
        if segment == self._active:
            # Another process's active segment is locked: compaction's
            # busySegments leaves it alone.
            return fail(ValueError(f"segment {segment:08d} is the active one"))
        d: "Deferred[None]" = Deferred()
        removal = self._removing.get(segment)
        if removal is not None:
            removal.waiters.append(d)
            return d
        removal = self._removing[segment] = _Removal([d], confirm=confirm)
        if not self._holds.get(segment):
            self._startRemoval(segment, removal)
        return d

    def _startRemoval(self, segment: int, removal: _Removal) -> None:
        """Unlink a segment no longer pinned, in the runner."""
        removal.started = True

        def finished(result: Union[None, Failure]) -> None:
            del self._removing[segment]
            for waiter in removal.waiters:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(None)

        if removal.confirm is None:
            self._track(self.runner.run(self._unlink, segment).addBoth(finished))
            return
        confirmed = removal.confirm()
        confirmed.addCallback(lambda _: self.runner.run(self._unlink, segment))
        self._track(confirmed.addBoth(finished))

    def _unlink(self, segment: int) -> None:
        """Worker-thread half of a removal."""
        with self._openLock:
            self._gone.add(segment)  # no reopening it from here on
            descriptor = self._fds.pop(segment, None)
            if descriptor is not None:
                descriptor.cached = False
                if descriptor.users == 0:
                    descriptor.close()
        try:
            os.unlink(self.segmentPath(segment).path)
        except FileNotFoundError:
            pass
        finally:
            with self._openLock:
                self._gone.discard(segment)  # opening it fails by itself now
        if self.fsync:
            syncDirectory(self.directory.path)

    def busySegments(self, segments: Iterable[int]) -> "Deferred[Set[int]]":
        """
        Of C{segments}, those some process holds a lock on (its active
        segment), from the runner: compaction leaves them alone.
        """
        if self._closing:
            return fail(StoreClosed())
        return self._track(self.runner.run(self._busy, tuple(segments)))

    def _busy(self, segments: Sequence[int]) -> Set[int]:
        busy: Set[int] = set()
        for segment in segments:
            try:
                fd = os.open(self.segmentPath(segment).path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy.add(segment)
            finally:
                os.close(fd)  # closing releases a lock it took
        return busy

    def segmentSizes(self) -> "Deferred[Dict[int, int]]":
        """
        The size in bytes of every segment file (one that vanishes while
        this runs is left out), from the runner.

        @return: fails with L{StoreClosed} after L{close}.
        """
        if self._closing:
            return fail(StoreClosed())
        return self._track(self.runner.run(self._sizes))

    def _sizes(self) -> Dict[int, int]:
        sizes: Dict[int, int] = {}
        for name in os.listdir(self.directory.path):
            match = _SEGMENT_NAME.match(name)
            if match is None:
                continue
            try:
                sizes[int(match.group(1))] = os.stat(self.directory.child(name).path).st_size
            except FileNotFoundError:
                continue
        return sizes

    # Lifetime

    def close(self) -> "Deferred[None]":
        """
        Refuse new work, wait for writes, reads and unlinks in flight, close
        the files.  Removals still waiting for pins fail with L{StoreClosed}.

        Does not sync: run the last L{prepareSync} function first (one taken
        but not yet run keeps its descriptors until it has run).
        """
        self._closing = True
        waiting = [(s, r) for s, r in self._removing.items() if not r.started]
        for segment, removal in waiting:
            del self._removing[segment]
            for waiter in removal.waiters:
                waiter.errback(StoreClosed())
        if self._closed or self._inflight == 0:
            self._closeFiles()
            return succeed(None)
        d: "Deferred[None]" = Deferred()
        self._drained.append(d)
        return d

    def _closeFiles(self) -> None:
        with self._openLock:
            self._closed = True
            descriptors = list(self._fds.values())
            self._fds.clear()
            held = list(self._dirty.values())
            self._dirty = {}
            for descriptor in descriptors:
                descriptor.cached = False
            for descriptor in held:
                self._releaseLocked(descriptor)
            for descriptor in descriptors:
                if descriptor.users == 0:
                    descriptor.close()

    def _checkOpen(self) -> None:
        if self._closing:
            raise StoreClosed()

    def _track(self, d: "Deferred[T]") -> "Deferred[T]":
        """Count C{d} as in flight until it fires, for L{close}."""
        self._inflight += 1

        def done(result: T) -> T:
            self._inflight -= 1
            if self._closing and self._inflight == 0 and not self._closed:
                self._closeFiles()
                drained, self._drained = self._drained, []
                for waiter in drained:
                    waiter.callback(None)
            return result

        return d.addBoth(done)
