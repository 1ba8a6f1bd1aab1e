"""
Streaming a byte range of a blob to an HTTP response, with backpressure.

L{RangeProducer} is a push producer: it reads the blob in pieces of up to
256 KiB through L{SegmentStore.readRange} (in the worker threads, verified
against the block checksums), keeps at most one piece being written and one
read ahead, and writes to its consumer in slices of at most 64 KiB.  While
the consumer has it paused it issues no reads, so a slow client costs at
most two pieces of memory.

How the HTTP layer uses it::

    producer = RangeProducer(store, extents, first, last + 1, request)
    d = producer.prefetch()          # optional: first piece before headers
    # on failure: send a clean 500; on success: set headers, then
    d = producer.start()
    # on success: request.finish() (unless the client went away);
    # on failure (CorruptionError): abort the connection, never finish()
    # cleanly, or the client would take a truncated body as complete.

A whole-object read also verifies each blob's identity: given the blobs'
content addresses (C{identities}), it hashes what it reads with BLAKE3 and
checks each blob's digest before that blob's last piece is written, so a
record whose block checksums pass but which holds other bytes (a misplaced
write) is never served as a complete response.  A ranged read verifies the
block checksums only; that no two blobs claim one record is the metadata
store's invariant.

Tests: tests/unit/test_reader.py.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import attrs
from blake3 import blake3
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from fasterstore.storage.blob import Extent
from fasterstore.storage.segments import CorruptionError, ExtentMap, SegmentMissing, SegmentStore

#: Bytes per read.  Each read is a pool handoff and a wait for it, with
#: one read ahead: a 256 MiB GET served 365-389 MB/s with 256 KiB pieces,
#: 403-688 MB/s with 1 MiB (docs/benchmarks.md, "Large objects").  A
#: response holds at most two pieces.
PIECE_SIZE = 1024 * 1024

#: Bytes per write to the consumer, so that its buffer and backpressure
#: see the body in steps.
WRITE_SIZE = 64 * 1024

#: Times one response looks its blobs up again after finding a segment gone.
MAX_RELOCATIONS = 3


def _toExtentMap(extents: Union[ExtentMap, Sequence[Extent]]) -> ExtentMap:
    return ExtentMap.of(extents)


@implementer(IPushProducer)
# Converters run at construction only: a hook on every attribute write
# costs the read path more than the rest of the producer.
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class RangeProducer:
    """
    Writes bytes C{[begin, end)} of a blob to C{consumer}.

    @ivar store: where the blob's records are.
    @ivar extents: the blob's records, in order.
    @ivar begin: first byte to send.
    @ivar end: one past the last byte to send.
    @ivar consumer: usually a twisted.web C{Request}.
    @ivar pieceSize: bytes per read.
    @ivar writeSize: most bytes per C{consumer.write}.
    @ivar identities: C{(BLAKE3 hex, size)} of each blob the extents hold,
        in order; checked when the read covers all of them.
    @ivar relocated: looks the same blobs' extents up again, for a read
        that finds a segment gone (compaction, in another process, moved
        the records after the lookup): the content is the same, so the
        read goes on from where it was.  None: such a read fails.
    """

    store: SegmentStore
    extents: ExtentMap = attrs.field(converter=_toExtentMap)
    begin: int
    end: int
    consumer: IConsumer
    pieceSize: int = PIECE_SIZE
    writeSize: int = WRITE_SIZE
    identities: Sequence[Tuple[str, int]] = ()
    relocated: Optional[Callable[[], "Deferred[Sequence[Extent]]"]] = None

    _verify: int = attrs.field(init=False, default=-1)  # blob being hashed, -1 for none
    _hasher: Any = attrs.field(init=False, default=None)
    _left: int = attrs.field(init=False, default=0)
    _blobStart: int = attrs.field(init=False, default=0)
    _position: int = attrs.field(init=False)
    _current: memoryview = attrs.field(init=False, default=memoryview(b""))
    _next: Optional[bytes] = attrs.field(init=False, default=None)
    _reading: bool = attrs.field(init=False, default=False)
    _paused: bool = attrs.field(init=False, default=False)
    _stopped: bool = attrs.field(init=False, default=False)
    _started: bool = attrs.field(init=False, default=False)
    _registered: bool = attrs.field(init=False, default=False)
    _finished: bool = attrs.field(init=False, default=False)
    _pumping: bool = attrs.field(init=False, default=False)
    _error: Optional[Failure] = attrs.field(init=False, default=None)
    _done: Optional["Deferred[None]"] = attrs.field(init=False, default=None)
    _prefetched: Optional["Deferred[None]"] = attrs.field(init=False, default=None)
    _prefetchCalled: bool = attrs.field(init=False, default=False)
    _unpin: Callable[[], None] = attrs.field(init=False)
    _relocations: int = attrs.field(init=False, default=0)
    _pieceStart: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.begin <= self.end <= self.extents.size:
            raise ValueError(f"range [{self.begin}, {self.end}) of a {self.extents.size}-byte blob")
        if self.pieceSize <= 0 or self.writeSize <= 0:
            raise ValueError("pieceSize and writeSize must be positive")
        # Compaction may move the blob's records meanwhile: the segments
        # these extents name stay until the response is over.
        self._unpin = self.store.pin({e.segment for e in self.extents.extents})
        self._position = self.begin
        whole = self.begin == 0 and self.end == self.extents.size
        if whole and self.identities and sum(n for _, n in self.identities) == self.end:
            self._verify = 0
            self._nextBlob()

    def _nextBlob(self) -> None:
        """Start hashing the next blob (skipping empty ones: no bytes, nothing misplaced)."""
        while self._verify < len(self.identities):
            if self.identities[self._verify][1]:
                self._hasher, self._left = blake3(), self.identities[self._verify][1]
                return
            self._verify += 1
        self._verify = -1

    def _mismatch(self) -> CorruptionError:
        extent, _, _ = self.extents.locate(self._blobStart, self._blobStart + 1)[0]
        address, _ = self.identities[self._verify]
        return CorruptionError(extent.segment, extent.offset, f"bytes read are not blob {address}")

    def _checkIdentity(self, data: bytes) -> None:
        """Hash a piece; raise L{CorruptionError} at the end of a blob that is not what it should be."""
        view = memoryview(data)
        while self._verify >= 0 and view:
            take = view[: self._left]
            self._hasher.update(take)
            self._left -= len(take)
            view = view[len(take) :]
            if self._left == 0:
                if self._hasher.hexdigest() != self.identities[self._verify][0]:
                    raise self._mismatch()
                self._blobStart += self.identities[self._verify][1]
                self._verify += 1
                self._nextBlob()

    def prefetch(self) -> "Deferred[None]":
        """
        Read the first piece now, before L{start}: lets the HTTP layer find a
        corrupt (small) object while it can still answer with a clean error.

        @return: fires when the piece is in memory; fails with the read error
            (L{CorruptionError}...), after which L{start} fails too.
        """
        if self._started or self._prefetchCalled:
            raise RuntimeError("prefetch() must come first, and once")
        self._prefetchCalled = True
        self._prefetched = Deferred()
        d = self._prefetched
        if self._position < self.end:
            self._read()
        else:
            self._prefetchDone(None)
        return d

    @property
    def stopped(self) -> bool:
        """The consumer stopped us: the client went away mid-body."""
        return self._stopped

    def start(self) -> "Deferred[None]":
        """
        Register with the consumer and stream the range.

        @return: fires with L{None} when every byte was written or the
            consumer stopped us (client gone), after unregistering; fails
            with the read error (bytes written before it were good).
        """
        if self._started:
            raise RuntimeError("start() called twice")
        self._started = True
        if self._error is not None:
            return fail(self._error)
        self._done = Deferred()
        d = self._done
        pending = self._next
        if pending is not None and self._position == self.end and len(pending) <= self.writeSize:
            # A small range, read whole by prefetch: one write, and no
            # producer to register (and unregister) for it.
            self._next = None
            self.consumer.write(pending)
            self._finish(None)
            return d
        self._registered = True
        self.consumer.registerProducer(self, True)
        self._pump()
        return d

    # IPushProducer

    def pauseProducing(self) -> None:
        """The consumer's buffer is full: stop writing, and stop reading."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The consumer drained: go on."""
        self._paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The consumer went away: stop; not an error."""
        if self._stopped or self._finished:
            return
        self._stopped = True
        self._current = memoryview(b"")
        self._next = None
        self._finish(None)

    # Internals

    def _pump(self) -> None:
        """
        Write what can be written and keep one read ahead.  A loop, not
        recursion: with a synchronous runner a read completes at once.
        """
        if self._pumping or not self._started:
            return
        self._pumping = True
        try:
            while not self._stopped and not self._finished and not self._paused:
                if self._next is None and not self._reading and self._position < self.end:
                    self._read()
                    continue
                if self._current:
                    chunk = self._current[: self.writeSize]
                    self._current = self._current[len(chunk) :]
                    self.consumer.write(chunk.tobytes())
                elif self._next is not None:
                    self._current, self._next = memoryview(self._next), None
                elif self._reading:
                    return
                else:
                    self._finish(None)
        finally:
            self._pumping = False

    def _read(self) -> None:
        """Start reading the next piece."""
        start = self._position
        stop = min(start + self.pieceSize, self.end)
        self._position = stop
        self._pieceStart = start
        self._reading = True
        try:
            d = self.store.readRange(self.extents, start, stop)
        except Exception:
            d = fail()
        d.addCallbacks(self._readDone, self._readFailed)

    def _readDone(self, data: bytes) -> None:
        self._reading = False
        if self._stopped or self._finished:
            return
        if self._verify >= 0:
            try:
                self._checkIdentity(data)
            except CorruptionError:
                self._readFailed(self.store.reportCorruption(Failure()))
                return
        self._next = data
        self._prefetchDone(None)
        self._pump()

    def _readFailed(self, failure: Failure) -> None:
        if (failure.check(SegmentMissing) and self.relocated is not None
                and self._relocations < MAX_RELOCATIONS and not (self._stopped or self._finished)):
            self._relocations += 1
            self.relocated().addCallbacks(self._moved, lambda _: self._readFailed(failure))
            return
        self._reading = False
        if self._stopped or self._finished:
            return  # the client left; the store already logged any corruption
        self._error = failure
        self._prefetchDone(failure)
        if self._started:
            self._finish(failure)
        else:
            self._unpin()  # start() can only fail now

    def _moved(self, extents: Sequence[Extent]) -> None:
        """The blobs' records, where they are now: read the piece again from there."""
        if self._stopped or self._finished:
            self._reading = False
            return
        layout = ExtentMap.of(extents)
        if layout.size != self.extents.size:
            self._readFailed(Failure(CorruptionError(-1, -1, "the blob changed size when looked up again")))
            return
        unpin = self._unpin
        self._unpin = self.store.pin({e.segment for e in layout.extents})
        unpin()
        self.extents = layout
        self._position = self._pieceStart
        self._read()

    def _prefetchDone(self, result: Optional[Failure]) -> None:
        d, self._prefetched = self._prefetched, None
        if d is None:
            return
        if result is None:
            d.callback(None)
        else:
            d.errback(result)

    def _finish(self, result: Optional[Failure]) -> None:
        """Unregister (unless the consumer stopped us) and report, once."""
        if self._finished:
            return
        self._finished = True
        self._unpin()
        self._current = memoryview(b"")
        self._next = None
        if self._registered and not self._stopped:
            # After stopProducing the consumer may be gone (a Request whose
            # connection was lost has no channel to unregister from).
            self.consumer.unregisterProducer()
        d, self._done = self._done, None
        if d is not None:
            if result is None:
                d.callback(None)
            else:
                d.errback(result)

