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
unreferenced garbage for compaction to reclaim.
Tests: tests/unit/test_segments.py.
"""

from __future__ import annotations

import bisect
import errno
import os
import re
import threading
from typing import (
    TYPE_CHECKING,
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
) -> None:
    """Worker-thread half of an append: assemble, checksum, write."""
    if len(parts) == 1 and type(parts[0]) is bytes:
        payload = parts[0]
    else:
        payload = b"".join(parts)
    if beforeWrite is not None:
        beforeWrite(payload)
    header, table = encodeRecord(payload)
    _pwriteAll(fd, (header, payload, table), offset)


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


@attrs.define(eq=False)
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
    """

    root: "FilePath[str]" = attrs.field(converter=_toFilePath)
    runner: BlockingRunner
    targetSize: int = DEFAULT_TARGET_SIZE
    metrics: Optional[Metrics] = None
    fsync: bool = True

    directory: "FilePath[str]" = attrs.field(init=False)
    _active: int = attrs.field(init=False, default=FIRST_SEGMENT)
    _end: int = attrs.field(init=False, default=0)
    _fds: Dict[int, int] = attrs.field(init=False, factory=dict)
    _openLock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _dirty: Set[int] = attrs.field(init=False, factory=set)
    _dirtyDirectories: Set[str] = attrs.field(init=False, factory=set)
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
        if numbers:
            self._active = max(numbers)
            fd = os.open(self.segmentPath(self._active).path, os.O_RDWR | os.O_CLOEXEC)
            self._fds[self._active] = fd
            self._end = os.fstat(fd).st_size
        else:
            self._create(FIRST_SEGMENT)

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

    def appendParts(
        self,
        parts: Sequence[Buffer],
        beforeWrite: Optional[Callable[[bytes], object]] = None,
        runner: Optional[BlockingRunner] = None,
    ) -> "Deferred[Extent]":
        """
        Write one record whose payload is the concatenation of C{parts}.

        The concatenation, C{beforeWrite(payload)} (the blob writer hashes
        there) and the checksumming all run in the worker thread, so the
        reactor thread only reserves space.

        @param runner: run the job there instead of in C{self.runner}.

        @raise ValueError: if the payload is empty or over L{RECORD_PAYLOAD}.
        @raise StoreClosed: after L{close}.
        """
        self._checkOpen()
        length = sum(len(part) for part in parts)
        if not 0 < length <= RECORD_PAYLOAD:
            raise ValueError(f"record payload of {length} bytes")
        size = recordLength(length)
        if self._end > 0 and self._end + size > self.targetSize:
            try:
                self._create(self._active + 1)
            except OSError:
                return fail()
        segment, offset = self._active, self._end
        self._end += size
        d = self._track(
            (runner or self.runner).run(
                _writeRecord, self._fds[segment], offset, parts, beforeWrite
            )
        )

        def written(_: None) -> Extent:
            self._dirty.add(segment)
            return Extent(segment, offset, length)

        return d.addCallback(written)

    def _create(self, segment: int) -> None:
        """Start a new, empty active segment."""
        fd = openPrivateFile(self.segmentPath(segment).path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        with self._openLock:
            self._fds[segment] = fd
        self._active = segment
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
        point retrying.  Run it before L{close}.
        """
        segments, self._dirty = self._dirty, set()
        directories, self._dirtyDirectories = self._dirtyDirectories, set()
        if not self.fsync or (not segments and not directories):
            return _noSync
        fds = [self._fds[segment] for segment in sorted(segments)]

        def sync() -> None:
            for fd in fds:
                _fdatasync(fd)
            for path in sorted(directories, key=len, reverse=True):
                syncDirectory(path)

        return sync

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
            (logged and counted) rather than return a wrong byte.
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
        d = self._track(self.runner.run(self._read, pieces))
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
                raise CorruptionError(
                    extent.segment, extent.offset, "segment file missing"
                ) from None
        return b"".join(out)

    def _readRecord(self, extent: Extent, start: int, end: int, nowait: bool = False) -> Buffer:
        """Read and verify payload bytes C{[start, end)} of one record."""
        fd = self._fdFor(extent.segment)
        plan = planRead(extent.length, start, end)
        spans: List[Tuple[int, memoryview]] = []
        for offset, length in plan.spans():
            data = _preadCached(fd, length, extent.offset + offset) if nowait else os.pread(fd, length, extent.offset + offset)
            if len(data) != length:
                raise CorruptRecord(f"short read: {len(data)} of {length} bytes at +{offset}")
            spans.append((offset, memoryview(data)))

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

    def _fdFor(self, segment: int) -> int:
        """The open descriptor of a segment, opening an old one on first use."""
        fd = self._fds.get(segment)
        if fd is not None:
            return fd
        with self._openLock:
            fd = self._fds.get(segment)
            if fd is None:
                if self._closed:
                    raise StoreClosed()
                fd = os.open(self.segmentPath(segment).path, os.O_RDONLY | os.O_CLOEXEC)
                self._fds[segment] = fd
            return fd

    def reportCorruption(self, failure: Failure) -> Failure:
        """Log and count a corrupt read (on the reactor thread)."""
        error = failure.value
        if isinstance(error, CorruptionError):
            log.error(
                "Corrupt read in segment {segment}, record at {offset}: {reason}",
                segment=error.segment,
                offset=error.offset,
                reason=error.reason,
            )
            if self.metrics is not None:
                self.metrics.corruption.inc()
        return failure

    # Lifetime

    def close(self) -> "Deferred[None]":
        """
        Refuse new work, wait for writes and reads in flight, close the files.

        Does not sync: run the last L{prepareSync} function first.
        """
        self._closing = True
        if self._closed or self._inflight == 0:
            self._closeFiles()
            return succeed(None)
        d: "Deferred[None]" = Deferred()
        self._drained.append(d)
        return d

    def _closeFiles(self) -> None:
        with self._openLock:
            self._closed = True
            fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

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
