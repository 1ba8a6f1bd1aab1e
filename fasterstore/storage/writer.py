"""
Writing one blob (one upload, or one multipart part) as segment records.

The HTTP layer feeds body chunks to L{BlobWriter.write} as they arrive.  The
writer cuts them into 1 MiB records.  Each record goes down two lanes of
worker-thread jobs: one hashes it with md5 (the ETag: the slowest hash, at
about 750 MB/s a core), the other hashes it with blake3 and any requested
S3 checksums and appends it to a segment.  The hashes must see the bytes in
order, so each lane runs one job at a time, in record order; but the lanes
run beside each other, and up to L{RECORDS_IN_FLIGHT} records may be in
them, so one upload keeps two threads busy.  A small blob (one record of
at most L{INLINE_LIMIT}) takes one job on the calling thread instead.

Backpressure: when L{RECORDS_IN_FLIGHT} records are in the lanes and a full
one is already buffered, L{BlobWriter.write} returns a Deferred and the
caller pauses its transport until it fires.  An upload therefore holds at
most about three records (plus the chunk that overfilled the buffer) in
memory.

Aborting, or a failed write, leaves records already appended in the segment
files.  No metadata ever references them, so they are garbage for segment
compaction to reclaim; nothing here deletes them.  Until the blob is
committed (or given up), its records look dead too: the writer pins their
segments against compaction until L{WrittenBlob.release} (or L{abort}).
Tests: tests/unit/test_blob_writer.py.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Deque, Iterable, List, Optional, Sequence, Union

import attrs
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.python.failure import Failure

from fasterstore.checksums import Digests
from fasterstore.storage import dropbehind
from fasterstore.storage.blob import Extent, WrittenBlob
from fasterstore.storage.records import RECORD_PAYLOAD
from fasterstore.storage.segments import SegmentStore
from fasterstore.threads import BlockingRunner, ImmediateRunner

#: Records at most this big (a blob's tail, or a whole small object) are
#: hashed and written on the calling thread.  A thread-pool hop costs far
#: more than hashing 64 KiB and copying it into the page cache (profiled:
#: the hop and its GIL handoff were most of a 4 KiB PUT's CPU); full 1 MiB
#: records, and every fsync, still run in the pool.
INLINE_LIMIT = 64 * 1024
_INLINE = ImmediateRunner()

#: Records of one blob being hashed or written at once.  Two lets the md5
#: lane work on one record while the other lane writes the next.
RECORDS_IN_FLIGHT = 2


@attrs.define(eq=False)
class _Record:
    """A record in the lanes: its bytes, and how many lanes still have it."""

    parts: List["Buffer"]
    lanes: int

Buffer = Union[bytes, bytearray, memoryview]


@attrs.define(eq=False)
class BlobWriter:
    """
    Streams one blob into a L{SegmentStore}.  Use on the reactor thread.

    @ivar store: where the records go.
    @ivar runner: where this writer's flush jobs (hashing, checksumming,
        writing) run; usually C{store.runner}.
    @ivar algorithms: S3 checksums to compute besides md5 and blake3.
    """

    store: SegmentStore
    runner: BlockingRunner
    algorithms: Iterable[str] = ()

    _digests: Digests = attrs.field(init=False)
    _hashMD5: Callable[[Buffer], object] = attrs.field(init=False)
    _hashOthers: Callable[[Buffer], object] = attrs.field(init=False)
    _parts: Deque[Buffer] = attrs.field(init=False, factory=deque)
    _buffered: int = attrs.field(init=False, default=0)
    _flushing: bool = attrs.field(init=False, default=False)  # a write lane job is running
    _inFlight: int = attrs.field(init=False, default=0)  # records not through both lanes
    _md5Queue: Deque[_Record] = attrs.field(init=False, factory=deque)  # its head is running
    _behind: Deque[Extent] = attrs.field(init=False, factory=deque)  # written back, to drop later
    _pumping: bool = attrs.field(init=False, default=False)
    _extents: List[Extent] = attrs.field(init=False, factory=list)
    _size: int = attrs.field(init=False, default=0)
    _waiters: List["Deferred[None]"] = attrs.field(init=False, factory=list)
    _finished: Optional["Deferred[WrittenBlob]"] = attrs.field(init=False, default=None)
    _error: Optional[Failure] = attrs.field(init=False, default=None)
    _aborted: bool = attrs.field(init=False, default=False)
    _done: bool = attrs.field(init=False, default=False)
    _pinned: List[int] = attrs.field(init=False, factory=list)
    _unpins: List[Callable[[], None]] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self.algorithms = tuple(self.algorithms)
        self._digests = Digests(self.algorithms)
        self._hashMD5, self._hashOthers = self._digests.split("md5")

    def write(self, data: Buffer) -> "Optional[Deferred[None]]":
        """
        Accept the next bytes of the blob.  C{data} must not be mutated later.

        @return: L{None} to go on, or a Deferred that fires (with L{None},
            never an error) when the caller may write again.  After a write
            error or L{abort} the bytes are dropped; L{finish} reports the
            error.
        @raise RuntimeError: after L{finish}.
        """
        if self._finished is not None or self._done:
            raise RuntimeError("write() after finish()")
        if self._aborted or self._error is not None:
            return None
        if len(data):
            self._parts.append(data)
            self._buffered += len(data)
            self._pump()
        if self._buffered >= RECORD_PAYLOAD and self._error is None and not self._aborted:
            waiter: "Deferred[None]" = Deferred()
            self._waiters.append(waiter)
            return waiter
        return None

    def finish(self) -> "Deferred[WrittenBlob]":
        """
        Flush the tail and describe the blob.

        @return: fires with the L{WrittenBlob} once every record is written
            (not yet synced: see L{SegmentStore.prepareSync}), or fails with
            the write error, or with L{CancelledError} if L{abort}ed.
        """
        if self._finished is not None or self._done:
            raise RuntimeError("finish() called twice")
        if self._aborted:
            return fail(CancelledError("blob writer aborted"))
        if self._error is not None:
            self._done = True
            return fail(self._error)
        self._finished = Deferred()
        d = self._finished
        self._pump()
        return d

    def abort(self) -> None:
        """
        Stop: drop buffered bytes; a pending L{finish} fails with
        L{CancelledError}.  Records already appended become garbage.
        """
        if self._aborted or self._done:
            return
        self._aborted = True
        self._parts.clear()
        self._buffered = 0
        self._release()
        self._complete(Failure(CancelledError("blob writer aborted")))
        self._unpin()

    def _pump(self) -> None:
        """
        Start the next flush if one is due.  A loop, not recursion: with a
        synchronous runner each flush completes inside the previous one.
        """
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self._aborted and self._error is None:
                due = self._buffered >= RECORD_PAYLOAD or (self._finished is not None and self._buffered > 0)
                if due and not self._flushing and self._inFlight < RECORDS_IN_FLIGHT:
                    self._flush(self._cut(min(self._buffered, RECORD_PAYLOAD)))
                elif self._finished is not None and not self._buffered and not self._inFlight:
                    self._complete(
                        WrittenBlob(self._size, tuple(self._extents), self._digests.result(), self._unpin)
                    )
                    return
                else:
                    return
        finally:
            self._pumping = False

    def _cut(self, length: int) -> List[Buffer]:
        """Take the first C{length} buffered bytes, without copying them."""
        taken: List[Buffer] = []
        need = length
        while need:
            part = self._parts[0]
            if len(part) <= need:
                taken.append(self._parts.popleft())
                need -= len(part)
            else:
                view = memoryview(part)
                taken.append(view[:need])
                self._parts[0] = view[need:]
                need = 0
        self._buffered -= length
        if self._buffered < RECORD_PAYLOAD:
            self._release()
        return taken

    def _flush(self, parts: List[Buffer]) -> None:
        """Send one record's worth of bytes down the lanes."""
        self._flushing = True
        self._inFlight += 1
        small = sum(len(part) for part in parts) <= INLINE_LIMIT
        runner = _INLINE if small else self.runner
        hash: Callable[[Buffer], object]
        if small and not self._md5Queue:
            # One job on this thread does it all: no lane is worth a handoff.
            record, hash = _Record(parts, 1), self._digests.update
        else:
            record, hash = _Record(parts, 2), self._hashOthers
            self._md5Queue.append(record)
            if len(self._md5Queue) == 1:
                self._nextMD5()
        drop = [self._behind.popleft()] if len(self._behind) >= dropbehind.WINDOW else []
        try:
            d = self.store.appendParts(parts, hash, runner=runner, dropBehind=drop)
        except Exception:
            self._flushed(Failure(), record)
            return
        d.addBoth(self._flushed, record)

    def _nextMD5(self) -> None:
        """
        Start the md5 lane's next job, on every record its queue holds: each
        job costs a round trip through the reactor, which the lane spends idle.
        """
        records = list(self._md5Queue)
        parts = [part for record in records for part in record.parts]
        small = sum(len(part) for part in parts) <= INLINE_LIMIT
        d = (_INLINE if small else self.runner).run(_hashParts, self._hashMD5, parts)
        d.addBoth(self._hashed, records)

    def _hashed(self, result: Optional[Failure], records: List[_Record]) -> None:
        for _ in records:
            self._md5Queue.popleft()
        if isinstance(result, Failure):
            self._failed(result)
            return
        if self._md5Queue and not (self._aborted or self._error is not None):
            self._nextMD5()
        for record in records:
            self._laneDone(record)

    def _flushed(self, result: Union[Extent, Failure], record: _Record) -> None:
        self._flushing = False
        if isinstance(result, Failure):
            self._failed(result)
            return
        if self._aborted or self._error is not None:
            return  # garbage now: nothing will commit it
        if result.segment not in self._pinned:
            self._pinned.append(result.segment)
            self._unpins.append(self.store.pin((result.segment,)))
        self._extents.append(result)
        self._size += result.length
        if self.store.dropsBehind(result.length):
            self._behind.append(result)
        self._laneDone(record)

    def _laneDone(self, record: _Record) -> None:
        record.lanes -= 1
        if record.lanes == 0:
            self._inFlight -= 1
        self._pump()

    def _failed(self, failure: Failure) -> None:
        """A lane failed: the blob is lost; what is in the other lane is garbage."""
        if self._error is None and not self._aborted:
            self._error = failure
            self._parts.clear()
            self._buffered = 0
            self._release()
            self._complete(failure)
            self._unpin()

    def _unpin(self) -> None:
        """The records are committed or given up: compaction may judge them."""
        unpins, self._unpins = self._unpins, []
        for unpin in unpins:
            unpin()

    def _release(self) -> None:
        """Let paused callers write again."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _complete(self, result: Union[WrittenBlob, Failure]) -> None:
        """Fire L{finish}'s Deferred, if it was asked for, exactly once."""
        if self._finished is None:
            return
        d, self._finished = self._finished, None
        self._done = True
        d.callback(result) if isinstance(result, WrittenBlob) else d.errback(result)


def _hashParts(update: Callable[[Buffer], object], parts: Sequence[Buffer]) -> None:
    """The md5 lane's job: hash a record's parts, in order, without joining them."""
    for part in parts:
        update(part)
