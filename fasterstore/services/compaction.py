"""
Compaction: giving back the space of deleted, replaced and abandoned bytes.

Segments are append-only, so a delete only makes bytes I{dead}.  What is
dead is not tracked per write; it is derived: a segment's live bytes are the
records some blob's extents name (L{IMetadataStore.segmentUsage}), and
everything else in its file is dead (deleted or replaced objects, refused
and cut-off uploads, records a crash left behind).  Nothing to keep in step,
nothing lost by a crash.

A I{pass} picks every sealed segment whose dead fraction is at least
C{threshold}, most dead bytes first, and for each:

  1. copies its live records, verified, to the active segment, a batch at a
     time, and commits each batch with L{IMetadataStore.relocate} (the group
     commit makes the copies durable before the metadata names them; a move
     whose record was deleted or replaced meanwhile simply does not take);
  2. removes the file once nothing pins it (reads in flight and uploads not
     yet committed pin their segments) and the store confirms, in the same
     transaction that forgets the segment, that no blob names it any more.

Other processes on the data directory (workers) lock their active segments,
which a pass leaves alone; one of their uploads that had not committed when
its records were judged dead is refused at commit (the store remembers the
segments it removed), never committed pointing at a missing file.

Copying is paced to C{rate} bytes a second, so a pass never starves client
I/O.  Nothing is kept between passes: after a restart (even C{kill -9} in
the middle of one) the next pass sees what is still to do.  A pass runs at
start and every C{interval} seconds; one process per data directory runs it.
While the hold file exists (C{DATA/compaction.hold}), nothing is moved or
removed, so that an online backup's copy of the segments has every byte its
earlier copy of the metadata names.
Tests: tests/unit/test_compaction.py.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import attrs
from prometheus_client import CollectorRegistry, Counter
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from fasterstore.metadata.store import IMetadataStore
from fasterstore.metrics import gauge
from fasterstore.storage.blob import Extent
from fasterstore.storage.segments import CorruptionError, SegmentStore

log = Logger()

#: Defaults: compact a sealed segment once a quarter of it is dead (disk use
#: then stays under 4/3 of the live bytes plus the active segment); copy at
#: most 64 MiB a second; look every minute.
DEFAULT_THRESHOLD = 0.25
DEFAULT_RATE = 64 << 20
DEFAULT_INTERVAL = 60.0

#: While this file exists in the data directory, compaction holds still.
HOLD_FILE = "compaction.hold"

#: Live records copied before their new places are committed.
BATCH_BYTES = 16 << 20

#: Records read from the store at a time.
EXTENTS_PAGE = 512


@attrs.define
class Progress:
    """
    What compaction has done since start, and what it sees now.

    @ivar segmentBytes: bytes in segment files at the last pass.
    @ivar liveBytes: of those, bytes of live records.
    @ivar compacting: the segment being compacted, if any.
    """

    passes: int = 0
    segmentsRemoved: int = 0
    bytesMoved: int = 0
    bytesReclaimed: int = 0
    segmentBytes: int = 0
    liveBytes: int = 0
    compacting: Optional[int] = None

    @property
    def deadBytes(self) -> int:
        return max(self.segmentBytes - self.liveBytes, 0)


class _Metrics:
    """Compaction's gauges and counters, in the server's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.segmentBytes = gauge("fasterstore_segment_bytes", "Bytes in segment files.", registry)
        self.liveBytes = gauge("fasterstore_live_bytes", "Bytes of live records in segment files.", registry)
        self.deadBytes = gauge(
            "fasterstore_garbage_bytes", "Bytes in segment files that no object needs (compaction reclaims them).",
            registry,
        )
        self.moved = Counter("fasterstore_compaction_moved_bytes", "Live bytes copied by compaction.", registry=registry)
        self.reclaimed = Counter(
            "fasterstore_compaction_reclaimed_bytes", "Bytes given back by removing compacted segments.",
            registry=registry,
        )
        self.removed = Counter("fasterstore_compaction_segments_removed", "Segments removed by compaction.", registry=registry)


@attrs.define(eq=False)
class Compactor:
    """
    Compaction passes over one segment store and its metadata (see the
    module docstring).  Use on the reactor thread.

    @ivar grace: seconds between a segment's last move and its removal, for
        requests that read its blob's extents just before the move and have
        not yet pinned the segment.
    @ivar holdPath: while this file exists nothing is moved or removed (an
        operator's online backup copies the metadata, then the segments).
    """

    metadata: IMetadataStore
    segments: SegmentStore
    clock: IReactorTime
    threshold: float = DEFAULT_THRESHOLD
    rate: int = DEFAULT_RATE
    grace: float = 1.0
    registry: Optional[CollectorRegistry] = None
    holdPath: Optional[str] = None
    progress: Progress = attrs.field(factory=Progress)
    stopping: bool = False

    _metrics: Optional[_Metrics] = attrs.field(init=False, default=None)
    _paceStart: float = attrs.field(init=False, default=0.0)
    _paced: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError("threshold must be between 0 and 1")
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.registry is not None:
            self._metrics = _Metrics(self.registry)

    async def run(self) -> int:
        """
        One pass: compact every segment past the threshold.  The records of
        all of them are moved first, then (after one C{grace}) the files
        are removed.

        @return: how many segments were removed.
        """
        candidates = await self.survey()
        if self.held():
            log.info("Compaction held by {path}", path=self.holdPath)
            candidates = []
        self._paceStart, self._paced = self.clock.seconds(), 0
        emptied: List[int] = []
        for segment in candidates:
            if self.stopping:
                break
            self.progress.compacting = segment
            try:
                if await self.empty(segment):
                    emptied.append(segment)
            finally:
                self.progress.compacting = None
        removed = 0
        if emptied and not self.stopping:
            await deferLater(self.clock, self.grace, lambda: None)
            sizes = await self.segments.segmentSizes()
            for segment in emptied:
                if self.stopping or self.held():
                    break
                if await self.remove(segment, sizes.get(segment, 0)):
                    removed += 1
        self.progress.passes += 1
        if removed:
            await self.survey()
        return removed

    async def report(self) -> Dict[str, object]:
        """The segment files measured now, and the progress so far (the admin API's)."""
        await self.survey()
        return usageSummary(self.progress)

    def held(self) -> bool:
        """Whether an operator holds compaction (see L{holdPath})."""
        return self.holdPath is not None and os.path.exists(self.holdPath)

    async def survey(self) -> List[int]:
        """
        Measure every segment; forget the ones whose file is gone; the
        sealed segments worth compacting, most dead bytes first.
        """
        sizes = await self.segments.segmentSizes()
        usage = await self.metadata.segmentUsage()
        for segment, live in usage.items():
            if segment not in sizes and not live:
                await self.metadata.forgetSegment(segment)
        total = sum(sizes.values())
        live = sum(usage.get(segment, 0) for segment in sizes)
        self._report(total, live)
        active = self.segments.activeSegment
        dead: List[Tuple[int, int]] = []
        for segment, size in sizes.items():
            if segment == active or self.segments.pinned(segment):
                continue
            waste = size - usage.get(segment, 0)
            if waste >= self.threshold * size:  # an empty file (a restart's) is all waste
                dead.append((waste, segment))
        # Another process's active segment (a worker's) is locked: not ours to judge.
        busy = await self.segments.busySegments(segment for _, segment in dead)
        return [segment for _, segment in sorted(dead, reverse=True) if segment not in busy]

    def _report(self, total: int, live: int) -> None:
        self.progress.segmentBytes, self.progress.liveBytes = total, live
        if self._metrics is not None:
            self._metrics.segmentBytes.set(total)
            self._metrics.liveBytes.set(live)
            self._metrics.deadBytes.set(max(total - live, 0))

    async def empty(self, segment: int) -> bool:
        """
        Move C{segment}'s live records out.

        @return: whether every one was moved.  A record that could not be
            read (corrupt) stays, left for repair, and is logged: the
            segment is kept.
        """
        after = -1
        moves: List[Tuple[str, Extent, Extent]] = []
        batched = 0
        unreadable = 0
        while not self.stopping:
            page = await self.metadata.segmentExtents(segment, after, EXTENTS_PAGE)
            if not page:
                break
            if self.held():
                break
            for address, old in page:
                after = old.offset
                try:
                    data = await self.segments.readRange((old,), 0, old.length)
                except CorruptionError:
                    unreadable += 1
                    continue
                new = await self.segments.append(data)
                moves.append((address, old, new))
                batched += old.length
                await self._pace(old.length)
                if batched >= BATCH_BYTES:
                    await self._commit(moves)
                    moves, batched = [], 0
                if self.stopping:
                    break
        if moves:
            await self._commit(moves)
        if self.stopping or unreadable or self.held():
            if unreadable:
                log.error(
                    "Compaction left segment {segment}: {n} records could not be read", segment=segment, n=unreadable
                )
            return False
        return True

    async def remove(self, segment: int, size: int) -> bool:
        """
        Remove an emptied segment once nothing pins it and the store agrees
        no blob names it; C{False} if one does again (an upload committed
        late: a later pass moves it).
        """
        try:
            await self.segments.removeSegment(segment, lambda: self.metadata.forgetSegment(segment))
        except ValueError:
            return False
        self.progress.segmentsRemoved += 1
        self.progress.bytesReclaimed += size
        if self._metrics is not None:
            self._metrics.removed.inc()
            self._metrics.reclaimed.inc(size)
        log.info("Compaction removed segment {segment} ({size} bytes)", segment=segment, size=size)
        return True

    async def _commit(self, moves: List[Tuple[str, Extent, Extent]]) -> None:
        taken = await self.metadata.relocate(moves)
        moved = sum(old.length for _, old, _ in moves)
        self.progress.bytesMoved += moved
        if self._metrics is not None:
            self._metrics.moved.inc(moved)
        if taken < len(moves):
            log.debug("{n} of {total} moves were stale", n=len(moves) - taken, total=len(moves))

    async def _pace(self, copied: int) -> None:
        """Sleep as long as copying is ahead of C{rate}."""
        self._paced += copied
        due = self._paceStart + self._paced / self.rate
        delay = due - self.clock.seconds()
        if delay > 0.001:
            await deferLater(self.clock, delay, lambda: None)


class CompactionService(Service):
    """
    Runs a L{Compactor} pass at start, then again at once after a pass that
    removed segments (a heavy overwrite load keeps it busy) and C{interval}
    seconds after one that found nothing, while the metadata store is
    ready; a failed pass is logged and the next one tries again.  Stopping
    lets the record being copied finish.
    """

    def __init__(self, compactor: Compactor, interval: float = DEFAULT_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.compactor = compactor
        self.interval = interval
        self._call: Optional[IDelayedCall] = None
        self._running: Optional["Deferred[None]"] = None
        self._idle: List["Deferred[None]"] = []

    def startService(self) -> None:
        super().startService()
        self.compactor.stopping = False
        self._schedule(0)

    def _schedule(self, delay: float) -> None:
        self._call = self.compactor.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._call = None
        if not self.running:
            return
        if not self.compactor.metadata.ready:
            self._schedule(1.0)
            return
        d = ensureDeferred(self.compactor.run())
        removed: List[int] = []
        d.addCallback(removed.append)
        d.addErrback(self._failed)
        self._running = d.addCallback(lambda _: None)

        def done(_: None) -> None:
            self._running = None
            idle, self._idle = self._idle, []
            for waiter in idle:
                waiter.callback(None)
            if self.running:
                # A pass that gave space back may not have caught up with a
                # heavy write load: the next one starts at once.
                self._schedule(0 if removed and removed[0] else self.interval)

        self._running.addCallback(done)

    def _failed(self, failure: Failure) -> None:
        if self.compactor.stopping:
            log.info("Compaction pass ended by shutdown: {error}", error=failure.getErrorMessage())
        else:
            log.failure("Compaction pass failed; the next one tries again", failure)

    def whenIdle(self) -> "Deferred[None]":
        """Fires when no pass is running."""
        if self._running is None:
            return succeed(None)
        d: "Deferred[None]" = Deferred()
        self._idle.append(d)
        return d

    def runNow(self) -> None:
        """Start a pass now, unless one is running (the admin API and tests ask for it)."""
        if self._running is None and self.running:
            if self._call is not None and self._call.active():
                self._call.cancel()
            self._tick()

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        self.compactor.stopping = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        return self.whenIdle()


def usageSummary(progress: Progress) -> Dict[str, object]:
    """Compaction's progress as JSON for the admin API."""
    return {
        "segmentBytes": progress.segmentBytes,
        "liveBytes": progress.liveBytes,
        "garbageBytes": progress.deadBytes,
        "compaction": {
            "passes": progress.passes,
            "segmentsRemoved": progress.segmentsRemoved,
            "bytesMoved": progress.bytesMoved,
            "bytesReclaimed": progress.bytesReclaimed,
            "compacting": progress.compacting,
        },
    }
