"""
The lifecycle service: carrying out every bucket's lifecycle rules
(L{fasterstore.s3.lifecycle}).

A I{pass} walks the buckets by name; in each bucket with rules, first its
versions (ListObjectVersions order: by key, newest first), then its
multipart uploads, and applies what the rules say:

  - a current version whose C{Expiration} (Days or Date) is due expires:
    a delete marker is added on a versioned bucket, the object is deleted
    on an unversioned one;
  - a latest delete marker that is its key's only version (an I{expired
    object delete marker}) is removed under C{ExpiredObjectDeleteMarker},
    or once it is as old as an C{Expiration} rule's Days (or past its Date);
  - a noncurrent version (delete markers included) C{NoncurrentDays} after
    it became noncurrent is removed, except the C{NewerNoncurrentVersions}
    newest noncurrent versions the pass keeps;
  - an upload C{DaysAfterInitiation} old is aborted.

Every removal is a conditional write checked inside the store's
transaction: the version must still be what was evaluated (same version,
ETag and modification time: a version rewritten meanwhile is not expired
by mistake), and a version under a legal hold or whose retain-until date
is still ahead (on this service's clock) is never removed.  A current
version under retention may still get a delete marker, as on AWS: the
marker removes nothing.

The walk is time-sliced so that it never stalls requests: a slice examines
at most C{sliceVersions} versions and uploads, and works at most
C{sliceSeconds} (checked between pages of L{PAGE}), then the service yields
to the reactor for C{pause} seconds.  The walk's cursor (bucket, phase, key
marker, version or upload marker) is written atomically (a temporary file
fsynced, renamed, the directory fsynced) to C{lifecycle.state} in the data
directory at most every C{saveEvery} seconds, at the end of a pass and at
stop, so that a restart resumes where the walk was (re-examining what came
after the last save is harmless: every action is idempotent).  A pass that
ends records when the next one starts, C{interval} seconds later, and
that survives a restart too.  One process per data directory runs it (in
C{--workers}, worker 0 only).

Counted in the server's registry: C{fasterstore_lifecycle_objects_expired},
C{..._versions_expired}, C{..._markers_removed}, C{..._uploads_aborted},
C{..._passes}, C{..._examined} and C{fasterstore_lifecycle_skipped} (by reason);
every pass ends with a log line saying what it did.
Tests: tests/unit/test_lifecycle_service.py.
"""

from __future__ import annotations

import bisect
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import attrs
from prometheus_client import CollectorRegistry, Counter
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fasterstore.durable import syncDirectory
from fasterstore.errors import S3Error
from fasterstore.files import openPrivateFile
from fasterstore.metadata.records import SUSPENDED, BucketRecord, ObjectRecord, VersionSummary
from fasterstore.metadata.store import IMetadataStore, ObjectPrecondition
from fasterstore.s3.objectlock import isLocked
from fasterstore.services.idle import IdleWaiters
from fasterstore.s3.lifecycle import (
    EXPIRE_CURRENT, EXPIRE_NONCURRENT, NEEDS_TAGS, REMOVE_MARKER, Decision, Rule, Version, abortDue, bucketRules,
    evaluate, scanPrefix,
)
from fasterstore.threads import BlockingRunner

log = Logger()

#: The state file in the data directory.
STATE_FILE = "lifecycle.state"

#: Defaults: a pass every hour (AWS runs its rules once a day; an hour
#: keeps a rule's effect near its due time); slices of at most 1,000
#: versions or 50 ms, with 100 ms for requests between them.
DEFAULT_INTERVAL = 3600.0
DEFAULT_SLICE_VERSIONS = 1000
DEFAULT_SLICE_SECONDS = 0.05
DEFAULT_PAUSE = 0.1
DEFAULT_SAVE_EVERY = 5.0

#: Versions or uploads read from the store at a time, and so the most
#: writes one commit round applies for the walk: the round applies them on
#: the reactor, and at 100 a round held requests up long enough to double
#: their p99 (benchmarks/lifecycle_load.py: 1.87x at 100, 1.25-1.51x at 25).
PAGE = 25

#: Seconds before the walk goes on after a slice that failed (the store
#: failing, say), so that a lasting fault is not retried, and logged, ten
#: times a second.
FAILURE_DELAY = 10.0

#: The walk's phases within a bucket.
VERSIONS, UPLOADS, DONE = "versions", "uploads", "done"


class Changed(Exception):
    """The version is no longer what was evaluated: leave it."""


class Locked(Exception):
    """The version is under a legal hold or retention: never removed."""


@attrs.define
class Cursor:
    """
    Where the walk is: what L{STATE_FILE} holds.

    @ivar bucket: the bucket being walked (C{""}: before the first).
    @ivar phase: L{VERSIONS}, L{UPLOADS}, or L{DONE} with the bucket.
    @ivar keyMarker: the key of the last version or upload handled.
    @ivar marker: its version id (wire form) or upload id.
    @ivar kept: noncurrent versions of C{keyMarker}'s key this pass keeps so
        far (for C{NewerNoncurrentVersions}).
    @ivar passStarted: when the pass under way started; C{None} between passes.
    @ivar nextPass: between passes, when the next one starts.
    """

    bucket: str = ""
    phase: str = VERSIONS
    keyMarker: str = ""
    marker: str = ""
    kept: int = 0
    passStarted: Optional[float] = None
    nextPass: float = 0.0

    def toJSON(self) -> Dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def fromJSON(cls, d: Dict[str, Any]) -> "Cursor":
        cursor = cls(**d)
        if cursor.phase not in (VERSIONS, UPLOADS, DONE):
            raise ValueError(f"unknown phase {cursor.phase!r}")
        return cursor


@attrs.define
class Progress:
    """What the service has done since it started (and in the pass under way)."""

    passes: int = 0
    examined: int = 0
    objectsExpired: int = 0
    versionsExpired: int = 0
    markersRemoved: int = 0
    uploadsAborted: int = 0
    skippedLocked: int = 0
    skippedChanged: int = 0

    def minus(self, other: "Progress") -> "Progress":
        return Progress(*(a - b for a, b in zip(attrs.astuple(self), attrs.astuple(other))))


class _Metrics:
    """The lifecycle counters, in the server's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, documentation: str) -> Counter:
            return Counter(f"fasterstore_lifecycle_{name}", documentation, registry=registry)

        self.objectsExpired = counter("objects_expired", "Current versions expired by lifecycle rules (deleted, or a delete marker added).")
        self.versionsExpired = counter("versions_expired", "Noncurrent versions removed by lifecycle rules.")
        self.markersRemoved = counter("markers_removed", "Expired object delete markers removed by lifecycle rules.")
        self.uploadsAborted = counter("uploads_aborted", "Incomplete multipart uploads aborted by lifecycle rules.")
        self.passes = counter("passes", "Lifecycle passes completed over every bucket.")
        self.examined = counter("examined", "Versions and uploads examined by lifecycle passes.")
        self.skipped = Counter(
            "fasterstore_lifecycle_skipped", "Due versions left alone: locked, or changed since they were evaluated.",
            ["reason"], registry=registry,
        )


def unchanged(expected: VersionSummary, removing: bool, now: float) -> ObjectPrecondition:
    """
    The precondition of a lifecycle write: the version the store finds is
    the one evaluated (same id, ETag, time, kind) and, if the write removes
    it (C{removing}), not locked at C{now}.  Pure, as the store requires.
    """

    def check(current: Optional[ObjectRecord]) -> None:
        if (
            current is None
            or current.versionId != expected.versionId
            or current.etag != expected.etag
            or current.modified != expected.modified
            or current.deleteMarker != expected.deleteMarker
        ):
            raise Changed()
        if removing and isLocked(current, now):
            raise Locked()

    return check


class LifecycleService(Service):
    """
    Runs lifecycle passes (see the module docstring) while the metadata
    store is ready; a slice that fails is logged and the walk goes on at
    the next one.  Stopping lets the slice under way finish its page, then
    saves the cursor.

    @ivar progress: totals since start (for tests and the log).
    """

    def __init__(
        self,
        metadata: IMetadataStore,
        clock: IReactorTime,
        statePath: str,
        runner: BlockingRunner,
        *,
        interval: float = DEFAULT_INTERVAL,
        sliceVersions: int = DEFAULT_SLICE_VERSIONS,
        sliceSeconds: float = DEFAULT_SLICE_SECONDS,
        pause: float = DEFAULT_PAUSE,
        saveEvery: float = DEFAULT_SAVE_EVERY,
        registry: Optional[CollectorRegistry] = None,
        fsync: bool = True,
    ) -> None:
        if interval <= 0 or sliceSeconds <= 0 or pause < 0 or saveEvery < 0:
            raise ValueError("interval and sliceSeconds must be positive, pause and saveEvery not negative")
        if sliceVersions < 2:
            raise ValueError("sliceVersions must be at least 2")
        self.metadata = metadata
        self.clock = clock
        self.statePath = statePath
        self.runner = runner
        self.interval = interval
        self.sliceVersions = sliceVersions
        self.sliceSeconds = sliceSeconds
        self.pause = pause
        self.saveEvery = saveEvery
        self.fsync = fsync
        self.cursor = Cursor()
        self.progress = Progress()
        self.stopping = False
        self._metrics = _Metrics(registry) if registry is not None else None
        self._call: Optional[IDelayedCall] = None
        self._running: Optional["Deferred[None]"] = None
        self._idle = IdleWaiters()
        self._lastSave = 0.0
        # None: not stopping; False: stopping; True: stopped, cursor saved.
        self._stopped: Optional[bool] = None
        self._stopWaiters: List["Deferred[None]"] = []
        self._passBefore = Progress()
        self._buckets = 0
        self._failedSlice = False

    # -- scheduling ------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.stopping = False
        self._stopped = None
        self._running = ensureDeferred(self._start())
        self._running.addErrback(lambda f: log.failure("Lifecycle could not start; it tries again", f))
        self._running.addBoth(self._sliceDone)

    async def _start(self) -> None:
        self.cursor = await self.runner.run(self._load)
        self._lastSave = self.clock.seconds()

    def _schedule(self, delay: float) -> None:
        if self.running and not self.stopping:
            self._call = self.clock.callLater(max(delay, 0.0), self._tick)

    def _nextDelay(self) -> float:
        """
        When the walk goes on: after a pause mid-pass (L{FAILURE_DELAY} after
        a slice that failed); between passes, when the next is due (at most
        C{interval} from now).
        """
        if self._failedSlice:
            self._failedSlice = False
            return max(self.pause, FAILURE_DELAY)
        if self.cursor.passStarted is not None:
            return self.pause
        return min(max(self.cursor.nextPass - self.clock.seconds(), 0.0), self.interval)

    def _tick(self) -> None:
        self._call = None
        if not self.running or self.stopping:
            return
        if not self.metadata.ready:
            self._schedule(1.0)
            return
        if self.cursor.passStarted is None and self.clock.seconds() < self.cursor.nextPass:
            self._schedule(self._nextDelay())  # the clock moved back, or a wait cut short
            return
        self._running = ensureDeferred(self.runSlice()).addCallback(lambda _: None)
        self._running.addErrback(self._failed)
        self._running.addBoth(self._sliceDone)

    def _sliceDone(self, _: object) -> None:
        self._running = None
        self._idle.fire()
        self._schedule(self._nextDelay())

    def _failed(self, failure: Failure) -> None:
        self._failedSlice = True
        if self.stopping:
            log.info("Lifecycle slice ended by shutdown: {error}", error=failure.getErrorMessage())
        else:
            log.failure("Lifecycle slice failed; the walk goes on at the next one", failure)

    def whenIdle(self) -> "Deferred[None]":
        """Fires when no slice is running."""
        return self._idle.wait(self._running is not None)

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        self.stopping = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

        self._stopped = False

        async def stop() -> None:
            await self.whenIdle()
            try:
                await self._save()
            except Exception:
                log.failure("Lifecycle could not save its cursor at shutdown")
            self._stopped = True
            waiters, self._stopWaiters = self._stopWaiters, []
            for waiter in waiters:
                waiter.callback(None)

        return ensureDeferred(stop())

    def whenStopped(self) -> "Deferred[None]":
        """
        Fires once a stop has saved the cursor (or, if not stopping, when no
        slice runs): the store may close after it.
        """
        if self._stopped is None:
            return self.whenIdle()
        if self._stopped:
            return succeed(None)
        d: "Deferred[None]" = Deferred()
        self._stopWaiters.append(d)
        return d

    # -- the cursor file -------------------------------------------------

    def _load(self) -> Cursor:
        """The saved cursor; a fresh one (a pass from the start) if there is none or it is unreadable."""
        try:
            with open(self.statePath, "rb") as f:
                return Cursor.fromJSON(json.loads(f.read()))
        except FileNotFoundError:
            return Cursor()
        except (OSError, ValueError, TypeError) as e:
            log.warn("Lifecycle state {path} unreadable ({error}); starting a pass from the first bucket",
                     path=self.statePath, error=str(e))
            return Cursor()

    async def _save(self) -> None:
        content = json.dumps(self.cursor.toJSON()).encode("utf-8")
        await self.runner.run(self._write, content)
        self._lastSave = self.clock.seconds()

    def _write(self, content: bytes) -> None:
        """Replace the state file atomically and durably."""
        temporary = self.statePath + ".tmp"
        fd = openPrivateFile(temporary, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, content)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.statePath)
        if self.fsync:
            syncDirectory(os.path.dirname(os.path.abspath(self.statePath)))

    # -- the walk --------------------------------------------------------

    async def runSlice(self) -> bool:
        """
        One slice of the walk: at most C{sliceVersions} versions and uploads
        examined (the first page always), at most C{sliceSeconds} of work.

        @return: whether it ended the pass.
        """
        now = started = self.clock.seconds()
        if self.cursor.passStarted is None:
            self.cursor = Cursor(passStarted=now)
            self._passBefore = attrs.evolve(self.progress)
            self._buckets = 0
        examined = steps = 0
        finished = False
        buckets = await self.metadata.listBuckets()
        while not self.stopping:
            budget = self.sliceVersions - examined
            if budget < 2 or steps >= self.sliceVersions:
                break
            if steps and self.clock.seconds() - started >= self.sliceSeconds:
                break
            steps += 1
            bucket = self._currentBucket(buckets)
            if bucket is None:
                finished = True
                break
            rules = tuple(rule for rule in bucketRules(bucket) if rule.enabled)
            try:
                if self.cursor.phase == VERSIONS:
                    examined += await self._versions(bucket, rules, min(budget, PAGE), now)
                else:
                    examined += await self._uploads(bucket, rules, min(budget, PAGE), now)
            except S3Error as e:
                if e.code != "NoSuchBucket":
                    raise
                self._advance(DONE)  # deleted meanwhile
        self.progress.examined += examined
        if self._metrics is not None:
            self._metrics.examined.inc(examined)
        if finished:
            await self._finishPass()
        elif self.clock.seconds() - self._lastSave >= self.saveEvery or self.stopping:
            await self._save()
        return finished

    def _advance(self, phase: str) -> None:
        self.cursor = attrs.evolve(self.cursor, phase=phase, keyMarker="", marker="", kept=0)

    def _currentBucket(self, buckets: List[BucketRecord]) -> Optional[BucketRecord]:
        """
        The bucket the cursor is in, or the next one of C{buckets} (by name:
        the cursor moves to it); C{None}: the pass is over.
        """
        i = bisect.bisect_left([bucket.name for bucket in buckets], self.cursor.bucket)
        if i < len(buckets) and buckets[i].name == self.cursor.bucket and self.cursor.phase == DONE:
            i += 1
        if i >= len(buckets):
            return None
        bucket = buckets[i]
        if bucket.name != self.cursor.bucket:
            self.cursor = attrs.evolve(self.cursor, bucket=bucket.name, phase=VERSIONS, keyMarker="", marker="", kept=0)
            self._buckets += 1
        return bucket

    async def _versions(self, bucket: BucketRecord, rules: Tuple[Rule, ...], n: int, now: float) -> int:
        """
        One page of the bucket's versions (at most C{n}, C{n} >= 2) evaluated
        and acted on.  One more is read ahead: it tells whether a latest
        delete marker is its key's only version, and keeps the cursor off a
        null version that has older ones (the store resumes after a removed
        null version at the next key).

        @return: how many were examined.
        """
        acting = tuple(rule for rule in rules if rule.actsOnVersions)
        if not acting:
            self._advance(UPLOADS)
            return 0
        cursor = self.cursor
        page = await self.metadata.listVersions(
            bucket.name, prefix=scanPrefix(acting), keyMarker=cursor.keyMarker, versionIdMarker=cursor.marker,
            maxKeys=n + 1,
        )
        entries = page.versions
        last = len(entries) > n
        batch = entries[:n]
        if last and len(batch) > 1 and batch[-1].versionId is None and entries[n].key == batch[-1].key:
            batch = batch[:-1]
        writes: List[Tuple[str, "Deferred[Any]"]] = []
        versioned, suspended = bucket.versioning is not None, bucket.versioning == SUSPENDED
        for i, v in enumerate(batch):
            following = entries[i + 1] if i + 1 < len(entries) else None
            if v.key != self.cursor.keyMarker:
                self.cursor.kept = 0
            facts = Version(
                v.key, v.size, v.modified, v.isLatest, v.deleteMarker, v.noncurrentSince, self.cursor.kept,
                v.isLatest and v.deleteMarker and (following is None or following.key != v.key),
            )
            decision = evaluate(acting, facts, now, None)
            if decision is NEEDS_TAGS:
                record = await self.metadata.getVersion(bucket.name, v.key, v.wireVersionId)
                decision = evaluate(acting, facts, now, record.tags) if record is not None else None
            if isinstance(decision, Decision):
                writes.append((decision.action, self._act(bucket.name, v, decision, versioned, suspended, now)))
            elif not v.isLatest:
                self.cursor.kept += 1
            self.cursor.keyMarker, self.cursor.marker = v.key, v.wireVersionId
        await self._settle(writes)
        if not last:
            self._advance(UPLOADS)
        return len(batch)

    def _act(
        self, bucket: str, v: VersionSummary, decision: Decision, versioned: bool, suspended: bool, now: float
    ) -> "Deferred[Any]":
        """Start the write a decision calls for (conditional: see L{unchanged})."""
        if decision.action == EXPIRE_CURRENT:
            # Without a version id: a delete marker on a versioned bucket, a
            # delete otherwise; a suspended bucket's marker replaces (removes)
            # the null version.
            removing = not versioned or (suspended and v.versionId is None)
            return self.metadata.deleteObject(bucket, v.key, unchanged(v, removing, now), modified=now)
        # A noncurrent version may have become the latest since it was
        # listed (the newer ones removed meanwhile): then it stays.
        return self.metadata.deleteObject(
            bucket, v.key, unchanged(v, True, now), versionId=v.wireVersionId, keepLatest=decision.action == EXPIRE_NONCURRENT
        )

    async def _uploads(self, bucket: BucketRecord, rules: Tuple[Rule, ...], n: int, now: float) -> int:
        """One page of the bucket's multipart uploads evaluated and the due ones aborted; how many examined."""
        aborting = tuple(rule for rule in rules if rule.abortDays is not None)
        if not aborting:
            self._advance(DONE)
            return 0
        page = await self.metadata.listUploads(
            bucket.name, prefix=scanPrefix(aborting), keyMarker=self.cursor.keyMarker,
            uploadIdMarker=self.cursor.marker, maxUploads=n,
        )
        writes: List[Tuple[str, "Deferred[Any]"]] = []
        abortedIds: List[str] = []
        for upload in page.uploads:
            if abortDue(aborting, upload.key, upload.initiated, now) is not None:
                writes.append(("abort", self.metadata.abortUpload(upload.uploadId)))
                abortedIds.append(upload.uploadId)
        results = await self._settle(writes)
        gone = {uploadId for uploadId, (ok, result) in zip(abortedIds, results) if ok or _gone(result)}
        # The marker must be an upload that still exists: an unknown upload
        # id marker lists only that key's uploads with greater ids, and
        # would leave the key's others to the next pass.  If the page's
        # uploads are all gone, the old marker lists what followed them.
        for upload in reversed(page.uploads):
            if upload.uploadId not in gone:
                self.cursor.keyMarker, self.cursor.marker = upload.key, upload.uploadId
                break
        if not page.isTruncated:
            self._advance(DONE)
        return len(page.uploads)

    async def _settle(self, writes: List[Tuple[str, "Deferred[Any]"]]) -> List[Tuple[bool, Any]]:
        """Wait for a page's writes (issued together: they share group commits), count them, and return their results."""
        if not writes:
            return []
        results: List[Tuple[bool, Any]] = await DeferredList([d for _, d in writes], consumeErrors=True)
        for (action, _), (ok, result) in zip(writes, results):
            if ok and action == EXPIRE_NONCURRENT and result is None:
                self._skip("changed")  # it had become the latest version: kept
            elif ok:
                self._count(action)
            elif result.check(Locked):
                self._skip("locked")
            elif result.check(Changed):
                self._skip("changed")
            elif _gone(result):
                self._skip("changed")
            else:
                log.failure("A lifecycle action failed; the next pass tries again", result)
        return results

    def _count(self, action: str) -> None:
        field, metric = {
            EXPIRE_CURRENT: ("objectsExpired", "objectsExpired"),
            EXPIRE_NONCURRENT: ("versionsExpired", "versionsExpired"),
            REMOVE_MARKER: ("markersRemoved", "markersRemoved"),
            "abort": ("uploadsAborted", "uploadsAborted"),
        }[action]
        setattr(self.progress, field, getattr(self.progress, field) + 1)
        if self._metrics is not None:
            getattr(self._metrics, metric).inc()

    def _skip(self, reason: str) -> None:
        if reason == "locked":
            self.progress.skippedLocked += 1
        else:
            self.progress.skippedChanged += 1
        if self._metrics is not None:
            self._metrics.skipped.labels(reason).inc()

    async def _finishPass(self) -> None:
        now = self.clock.seconds()
        started = self.cursor.passStarted if self.cursor.passStarted is not None else now
        self.progress.passes += 1
        if self._metrics is not None:
            self._metrics.passes.inc()
        done = self.progress.minus(self._passBefore)
        log.info(
            "Lifecycle pass over {buckets} buckets in {seconds:.1f} s: examined {examined}; expired {objects} objects "
            "and {versions} noncurrent versions, removed {markers} delete markers, aborted {uploads} uploads; "
            "left {locked} locked versions",
            buckets=self._buckets, seconds=now - started, examined=done.examined, objects=done.objectsExpired,
            versions=done.versionsExpired, markers=done.markersRemoved, uploads=done.uploadsAborted,
            locked=done.skippedLocked,
        )
        self.cursor = Cursor(nextPass=now + self.interval)
        await self._save()


def _gone(failure: Failure) -> bool:
    """Whether a write failed because someone else removed its target first."""
    error = failure.value
    return isinstance(error, S3Error) and error.code in ("NoSuchUpload", "NoSuchBucket")
