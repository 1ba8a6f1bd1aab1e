"""
Writing one blob (one upload, or one multipart part) as segment records.

The HTTP layer feeds body chunks to L{BlobWriter.write} as they arrive.  The
writer cuts them into 1 MiB records; each record is hashed (md5, blake3, and
any requested S3 checksums) and appended in one worker-thread job.  Only one
job per writer is in flight, because the hashes must see the bytes in order;
different uploads' jobs run in parallel.

Backpressure: when a record is being flushed and a full one is already
buffered, L{BlobWriter.write} returns a Deferred and the caller pauses its
transport until it fires.  An upload therefore holds at most about two
records (plus the chunk that overfilled the buffer) in memory.

Aborting, or a failed write, leaves records already appended in the segment
files.  No metadata ever references them, so they are garbage for segment
compaction to reclaim; nothing here deletes them.  Until the blob is
committed (or given up), its records look dead too: the writer pins their
segments against compaction until L{WrittenBlob.release} (or L{abort}).
Tests: tests/unit/test_blob_writer.py.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Deque, Iterable, List, Optional, Union

import attrs
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.python.failure import Failure

from fasterstore.checksums import Digests
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
    _parts: Deque[Buffer] = attrs.field(init=False, factory=deque)
    _buffered: int = attrs.field(init=False, default=0)
    _flushing: bool = attrs.field(init=False, default=False)
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
            while not self._flushing and not self._aborted and self._error is None:
                if self._buffered >= RECORD_PAYLOAD:
                    self._flush(self._cut(RECORD_PAYLOAD))
                elif self._finished is not None and self._buffered:
                    self._flush(self._cut(self._buffered))
                elif self._finished is not None:
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
        """Hash and append one record's worth of bytes."""
        self._flushing = True
        try:
            small = sum(len(part) for part in parts) <= INLINE_LIMIT
            runner = _INLINE if small else self.runner
            d = self.store.appendParts(parts, self._digests.update, runner=runner)
        except Exception:
            self._flushed(Failure())
            return
        d.addBoth(self._flushed)

    def _flushed(self, result: Union[Extent, Failure]) -> None:
        self._flushing = False
        if isinstance(result, Failure):
            if self._error is None:
                self._error = result
                self._parts.clear()
                self._buffered = 0
                self._release()
                self._complete(result)
                self._unpin()
            return
        if not self._aborted and result.segment not in self._pinned:
            self._pinned.append(result.segment)
            self._unpins.append(self.store.pin((result.segment,)))
        self._extents.append(result)
        self._size += result.length
        self._pump()

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
