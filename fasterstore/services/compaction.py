"""
Compaction: giving back the space of deleted, replaced and abandoned bytes.

Segments are append-only, so a delete only makes bytes I{dead}.  What is
dead is not tracked per write; it is derived: a segment's live bytes are the
records some blob's extents name (L{IMetadataStore.segmentUsage}), and
everything else in its file is dead (deleted or replaced objects, refused
and cut-off uploads, records a crash left behind).  Nothing to keep in step,
nothing lost by a crash.

A I{pass} takes, one after another, the sealed segments whose dead
fraction is at least C{threshold}, each time the one that frees the most
space per byte copied as measured just then (a segment with no live bytes
left costs no copying and comes first; garbage that arrives during the pass
is taken by it).  A segment that still holds live bytes is taken once it
has been past the threshold for C{settle} seconds, so that a wave of
deletes sweeping through it is not chased.  For each:

  1. copies its live records, verified, to the active segment, a batch at a
     time, and commits each batch with L{IMetadataStore.relocate} (the group
     commit makes the copies durable before the metadata names them; a move
     whose record was deleted or replaced meanwhile simply does not take);
  2. one C{grace} after its last move, while the pass goes on with the next
     segment, removes the file once nothing pins it (reads in flight and
     uploads not yet committed pin their segments; a removal waiting for a
     read does not hold up the pass) and the store confirms, in the same
     transaction that forgets the segment, that no blob names it any more.

A pass ends when nothing is left worth compacting, or after
L{PASS_SECONDS}; under a heavy overwrite load the next starts at once.

Other processes on the data directory (workers) lock their active segments,
which a pass leaves alone; one of their uploads that had not committed when
its records were judged dead is refused at commit (the store remembers the
segments it removed), never committed pointing at a missing file.

Copying is paced to C{rate} bytes a second, so a pass never starves client
I/O, while the segment files hold at most L{PACED_UNTIL} times the live
bytes.  Past that, a write load has outrun the rate, and compaction does all
it can at once until the balance is back: it copies unpaced, takes
candidates without letting them C{settle}, and removes emptied segments
without the C{grace} (a read that looked a blob up just before its move
follows it to its new place).  Nothing is kept between passes but when each candidate was first
seen (for C{settle}, in memory): after a restart (even C{kill -9} in the
middle of one) the next pass sees what is still to do.  A pass runs at
start and every C{interval} seconds, sooner while the store is being
written (see L{CompactionService}); one process per data directory runs it.
While the hold file exists (C{DATA/compaction.hold}), nothing is moved or
removed, so that an online backup's copy of the segments has every byte its
earlier copy of the metadata names.
Tests: tests/unit/test_compaction.py.
"""

from __future__ import annotations

import os
from typing import Callable, Collection, Dict, List, Optional, Set, Tuple

import attrs
from prometheus_client import CollectorRegistry, Counter
from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from fasterstore.metadata.store import IMetadataStore
from fasterstore.metrics import gauge
from fasterstore.services.idle import IdleWaiters
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

#: A pass takes on no new segment after working this many seconds (a heavy
#: write load always has more): it ends, is counted and logged, and the next
#: one starts at once.
PASS_SECONDS = 60.0

#: Compaction keeps to its rate, C{settle} and C{grace} while the segment
#: files hold at most this many times the live bytes.  Past it, an
#: overwrite load is producing garbage faster than they let compaction give
#: it back (each second of waiting holds a second of the load's writes on
#: disk): a disk that fills hurts clients more than the I/O compaction
#: takes, so it stops waiting (see L{Compactor.pressed}).
PACED_UNTIL = 1.5

#: Seconds the service waits after the first pass that removed nothing
#: following one that removed segments, and between its looks at the
#: active segment while idle (see L{CompactionService}).
IDLE_DELAY = 1.0


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
    @ivar settle: seconds a segment that still holds live bytes must have
        been past the threshold before a pass copies them out, so that a
        wave of deletes or overwrites sweeping through it (a prefix deleted,
        objects written together replaced together) has passed and the
        copy is small, instead of copying records about to die.  A segment
        with no live bytes left is taken at once.
    @ivar pending: removals of emptied segments waiting for reads in flight
        to unpin them, by segment; they outlive the pass that started them.
    """

    metadata: IMetadataStore
    segments: SegmentStore
    clock: IReactorTime
    threshold: float = DEFAULT_THRESHOLD
    rate: int = DEFAULT_RATE
    grace: float = 1.0
    settle: float = 1.0
    registry: Optional[CollectorRegistry] = None
    holdPath: Optional[str] = None
    progress: Progress = attrs.field(factory=Progress)
    stopping: bool = False
    pending: Dict[int, "Deferred[bool]"] = attrs.field(factory=dict)

    _metrics: Optional[_Metrics] = attrs.field(init=False, default=None)
    _paceStart: float = attrs.field(init=False, default=0.0)
    _paced: int = attrs.field(init=False, default=0)
    # When each current candidate was first seen past the threshold.
    _since: Dict[int, float] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError("threshold must be between 0 and 1")
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.settle < 0:
            raise ValueError("settle must not be negative")
        if self.registry is not None:
            self._metrics = _Metrics(self.registry)

    async def run(self) -> int:
        """
        One pass: compact, best first, every segment past the threshold.

        The segments are measured again after each one is emptied, and the
        next is the one that frees the most space per byte copied now (one
        with no live bytes left costs no copying and comes first), so that
        garbage arriving during the pass is taken as it arrives; one with
        live bytes waits until it has been a candidate for C{settle}
        seconds (the pass waits too if nothing else is ready).  Each
        emptied segment is removed one C{grace} after its last move, while
        the pass goes on with the next.  A pass ends when nothing is worth
        compacting, or once it has worked for L{PASS_SECONDS}.

        @return: how many segments were removed.
        """
        started = self.clock.seconds()
        movedBefore = self.progress.bytesMoved
        self._paceStart, self._paced = started, 0
        candidates, sizes, usage = await self._survey()
        surveyed = len(candidates), self.progress.segmentBytes, self.progress.liveBytes
        tried: Set[int] = set()
        removals: List["Deferred[bool]"] = []
        removed = 0
        try:
            while candidates and not self.stopping:
                if self.held():
                    log.info("Compaction held by {path}", path=self.holdPath)
                    break
                now = self.clock.seconds()
                ripe = [c for c in candidates
                        if not usage.get(c) or self.pressed or now - self._since.get(c, now) >= self.settle]
                if not ripe:
                    # Past the threshold only just: let what is dying there die first.
                    ripens = min(self._since.get(c, now) for c in candidates) + self.settle
                    await deferLater(self.clock, ripens - now, lambda: None)
                    self._paceStart, self._paced = self.clock.seconds(), 0  # no burst for the time waited
                    candidates, sizes, usage = await self._survey(exclude=tried)
                    continue
                segment = ripe[0]
                tried.add(segment)
                self.progress.compacting = segment
                try:
                    emptied = await self.empty(segment)
                finally:
                    self.progress.compacting = None
                if emptied and not self.stopping:
                    removals.append(ensureDeferred(self._removeLater(segment, sizes.get(segment, 0))))
                if self.stopping or self.clock.seconds() - started >= PASS_SECONDS:
                    break
                candidates, sizes, usage = await self._survey(exclude=tried)
        finally:
            # A pass that fails still sees its removals through (they never fail).
            for removal in removals:
                removed += await removal
        self.progress.passes += 1
        if removed:
            await self.survey()
        if tried:
            log.info(
                "Compaction pass: {candidates} candidates of {total} bytes ({live} live) at its start; "
                "emptied {tried} segments, moved {moved} bytes, removed {removed} in {seconds:.1f} s",
                candidates=surveyed[0], total=surveyed[1], live=surveyed[2], tried=len(tried),
                moved=self.progress.bytesMoved - movedBefore, removed=removed,
                seconds=self.clock.seconds() - started,
            )
        return removed

    async def _removeLater(self, segment: int, size: int) -> bool:
        """
        Remove an emptied segment one C{grace} from now (at once if
        L{pressed}; see L{remove}), unless stopping or held by then.

        @return: whether it was removed.  If a read in flight pins it then,
            C{False} at once: the removal waits for the read in the
            background (L{pending}) rather than hold up the pass, and is
            counted when done.
        """
        await deferLater(self.clock, 0 if self.pressed else self.grace, lambda: None)
        if self.stopping or self.held():
            return False
        if not self.segments.pinned(segment):
            return await self._remove(segment, size)
        removal = ensureDeferred(self._remove(segment, size))
        self.pending[segment] = removal

        def done(removed: bool) -> bool:
            del self.pending[segment]
            return removed

        removal.addCallback(done)
        return False

    async def _remove(self, segment: int, size: int) -> bool:
        """L{remove}, a failure logged."""
        try:
            return await self.remove(segment, size)
        except Exception:
            if self.stopping:
                log.info("Compaction left segment {segment} at shutdown", segment=segment)
            else:
                log.failure("Compaction could not remove segment {segment}", segment=segment)
            return False

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
        sealed segments worth compacting, best first (see L{_survey}).
        """
        return (await self._survey())[0]

    async def _survey(self, exclude: Collection[int] = ()) -> Tuple[List[int], Dict[int, int], Dict[int, int]]:
        """
        L{survey}, leaving out C{exclude}; notes when each candidate was
        first seen (for L{settle}).

        @return: the candidates, those that free the most space per byte
            copied first (the fewest live bytes for their size; of equals,
            the most dead bytes); the size of every segment file; the live
            bytes of every segment.
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
        ranked: List[Tuple[float, int, int]] = []
        for segment, size in sizes.items():
            if segment == active or segment in exclude or segment in self.pending:
                continue
            if self.segments.pinned(segment):
                continue
            used = usage.get(segment, 0)
            waste = size - used
            if waste >= self.threshold * size:  # an empty file (a restart's) is all waste
                ranked.append((used / size if size else 0.0, -waste, segment))
        # Another process's active segment (a worker's) is locked: not ours to judge.
        busy = await self.segments.busySegments(segment for _, _, segment in ranked)
        candidates = [segment for _, _, segment in sorted(ranked) if segment not in busy]
        now = self.clock.seconds()
        self._since = {segment: self._since.get(segment, now) for segment in candidates}
        return candidates, sizes, usage

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
        late: a later pass moves it), or if compaction is held by then (a
        later pass removes it).
        """

        def confirm() -> "Deferred[None]":
            if self.held():
                return fail(ValueError("compaction is held"))
            return self.metadata.forgetSegment(segment)

        try:
            await self.segments.removeSegment(segment, confirm)
        except ValueError:
            return False
        self.progress.segmentsRemoved += 1
        self.progress.bytesReclaimed += size
        if self._metrics is not None:
            self._metrics.removed.inc()
            self._metrics.reclaimed.inc(size)
        log.debug("Compaction removed segment {segment} ({size} bytes)", segment=segment, size=size)
        return True

    async def _commit(self, moves: List[Tuple[str, Extent, Extent]]) -> None:
        taken = await self.metadata.relocate(moves)
        moved = sum(old.length for _, old, _ in moves)
        self.progress.bytesMoved += moved
        if self._metrics is not None:
            self._metrics.moved.inc(moved)
        if taken < len(moves):
            log.debug("{n} of {total} moves were stale", n=len(moves) - taken, total=len(moves))

    @property
    def pressed(self) -> bool:
        """
        Whether the segment files, as last measured, hold more than
        L{PACED_UNTIL} times the live bytes: then nothing waits.
        """
        return self.progress.segmentBytes > PACED_UNTIL * self.progress.liveBytes

    async def _pace(self, copied: int) -> None:
        """Sleep as long as copying is ahead of C{rate}, unless L{pressed}."""
        if self.pressed:
            self._paceStart, self._paced = self.clock.seconds(), 0  # no burst once back under
            return
        self._paced += copied
        due = self._paceStart + self._paced / self.rate
        delay = due - self.clock.seconds()
        if delay > 0.001:
            await deferLater(self.clock, delay, lambda: None)


class CompactionService(Service):
    """
    Runs a L{Compactor} pass at start, then again at once after a pass that
    removed segments (a heavy overwrite load keeps it busy), while the
    metadata store is ready; a failed pass is logged and the next one tries
    again.  Stopping lets the record being copied finish.

    After a pass that removed nothing the next one comes C{interval}
    seconds later, or sooner:

      - L{IDLE_DELAY} seconds later if the pass before removed segments,
        then twice as long each time, up to C{interval} (garbage still
        arriving is taken soon after it does);
      - at the first look (every L{IDLE_DELAY} seconds, no I/O) that finds
        this process has sealed a segment since: the store is being
        written, and what is written may replace what is stored.  A store
        that sits idle is looked at every C{interval}; a heavy write load
        that starts on one is met within seconds, not an C{interval}.
    """

    def __init__(self, compactor: Compactor, interval: float = DEFAULT_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.compactor = compactor
        self.interval = interval
        self._call: Optional[IDelayedCall] = None
        self._running: Optional["Deferred[None]"] = None
        self._idle = IdleWaiters()
        # How long the next idle wait lasts; when it ends; the active
        # segment when the last pass ended.
        self._backoff = interval
        self._wakeAt = 0.0
        self._sealed = -1

    def startService(self) -> None:
        super().startService()
        self.compactor.stopping = False
        self._schedule(0)

    def _schedule(self, delay: float, f: Optional[Callable[[], None]] = None) -> None:
        self._call = self.compactor.clock.callLater(delay, f or self._tick)

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
            self._idle.fire()
            if not self.running:
                return
            self._sealed = self.compactor.segments.activeSegment
            if removed and removed[0]:
                # A pass that gave space back may not have caught up with a
                # heavy write load: the next one starts at once.
                self._backoff = min(IDLE_DELAY, self.interval)
                self._schedule(0)
            else:
                self._wakeAt = self.compactor.clock.seconds() + self._backoff
                self._backoff = min(self._backoff * 2, self.interval)
                self._wait()

        self._running.addCallback(done)

    def _wait(self) -> None:
        """Idle: start a pass if its time has come or this process sealed a segment, else look again later."""
        self._call = None
        if not self.running:
            return
        left = self._wakeAt - self.compactor.clock.seconds()
        if left <= 0 or self.compactor.segments.activeSegment != self._sealed:
            self._tick()
        else:
            self._schedule(min(left, IDLE_DELAY), self._wait)

    def _failed(self, failure: Failure) -> None:
        if self.compactor.stopping:
            log.info("Compaction pass ended by shutdown: {error}", error=failure.getErrorMessage())
        else:
            log.failure("Compaction pass failed; the next one tries again", failure)

    def whenIdle(self) -> "Deferred[None]":
        """Fires when no pass is running."""
        return self._idle.wait(self._running is not None)

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
