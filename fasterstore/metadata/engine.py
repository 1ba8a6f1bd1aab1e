"""
The metadata engine: the only metadata API the HTTP layer uses.

Reads are synchronous and come from the in-memory L{MetadataState}, which
only ever holds durable mutations.  Writes are validated at once against the
state I{plus} the mutations still waiting to be durable (so two racing
conditional PUTs cannot both win), then queued for group commit:

  1. on the reactor, a round takes every queued mutation and calls
     C{syncData()} (the segment store's C{prepareSync});
  2. in the runner, as one job: the returned segment fsync, one WAL record
     for the whole batch, one fdatasync of the WAL;
  3. back on the reactor, each mutation is applied in order and its
     Deferred fires.

Writes arriving during a round wait for the next one, so one fsync serves
every writer that arrived meanwhile.  Segment data is always synced before
the WAL record that points at it: a logged object never outlives its bytes.

Multipart uploads, copies, tags and bucket configuration follow the same
rules: validated against the pending overlay (objects, buckets and uploads),
then committed in order.  Because the queue is applied in order, a write that
passed validation always finds at apply time the records and blobs it saw.

Snapshots rotate the WAL between rounds, then build the checkpoint by replay
in the runner (see L{fasterstore.metadata.snapshot}).
Tests: tests/unit/test_metadata_engine.py, tests/unit/test_metadata_multipart.py.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import attrs
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from fasterstore.errors import S3Error
from fasterstore.metadata.records import BlobRecord, BucketRecord, ObjectRecord, PartRecord, UploadRecord
from fasterstore.metadata.snapshot import LoadedState, checkpoint, loadState
from fasterstore.metadata.state import ListPage, MetadataState, Mutation, UploadPage, extentsToJSON
from fasterstore.metadata.wal import WAL, encodeMutation
from fasterstore.metrics import Metrics
from fasterstore.storage.blob import WrittenBlob
from fasterstore.threads import BlockingRunner

log = Logger()

SyncData = Callable[[], Callable[[], None]]
ObjectPrecondition = Callable[[Optional[ObjectRecord]], None]

_ABSENT = object()


@attrs.define(eq=False)
class _Pending:
    """A mutation waiting to be durable, and what to tell its writer."""

    encoded: bytes
    mutation: Mutation
    deferred: "Deferred[Any]"
    result: Any
    objectKey: Optional[Tuple[str, str]] = None
    bucketName: Optional[str] = None
    uploadIds: Tuple[str, ...] = ()
    uploadLatest: Optional[UploadRecord] = None


@attrs.define(eq=False)
class MetadataEngine:
    """
    Buckets, objects and blobs, made durable by a WAL and snapshots.

    @ivar root: the data directory; metadata lives in C{<root>/meta}.
    @ivar clock: the reactor's time (unused by the commit path itself, kept
        for services built on the engine).
    @ivar runner: where blocking disk work runs.
    @ivar syncData: the segment store's C{prepareSync}: called on the reactor
        when a round starts; its result is called in the runner before the
        WAL is written.
    @ivar metrics: where to report round latency, batch sizes and totals.
    @ivar fsync: if false, never fdatasync the WAL or snapshots (tests,
        benchmarks; C{syncData} is still honoured).
    @ivar checkpointer: builds a snapshot (blocking, run in the runner):
        in-process by default; servers pass L{checkpointInChild} so the
        replay never competes with the reactor for the GIL.
    """

    root: str
    clock: IReactorTime
    runner: BlockingRunner
    syncData: SyncData
    metrics: Optional[Metrics] = None
    fsync: bool = True
    checkpointer: Callable[[str, int, bool], Optional[str]] = checkpoint

    _state: MetadataState = attrs.field(init=False, factory=MetadataState)
    _wal: Optional[WAL] = attrs.field(init=False, default=None)
    _ready: bool = attrs.field(init=False, default=False)
    _loading: bool = attrs.field(init=False, default=False)
    _closing: bool = attrs.field(init=False, default=False)
    _closed: bool = attrs.field(init=False, default=False)
    _failure: Optional[Failure] = attrs.field(init=False, default=None)
    _closeWaiters: Optional[List["Deferred[None]"]] = attrs.field(init=False, default=None)

    # Group commit: at most one runner job (round or rotation) at a time.
    _queue: List[_Pending] = attrs.field(init=False, factory=list)
    _busy: bool = attrs.field(init=False, default=False)
    _rotationWaiters: List["Deferred[int]"] = attrs.field(init=False, factory=list)
    _idleWaiters: List["Deferred[None]"] = attrs.field(init=False, factory=list)

    # Mutations not yet durable: (count, latest value) per object and bucket.
    _pendingObjects: Dict[Tuple[str, str], List[Any]] = attrs.field(init=False, factory=dict)
    _pendingKeys: Dict[str, Set[str]] = attrs.field(init=False, factory=dict)
    _pendingBuckets: Dict[str, List[Any]] = attrs.field(init=False, factory=dict)
    _pendingUploads: Dict[str, List[Any]] = attrs.field(init=False, factory=dict)

    # Snapshots.
    _walBytes: int = attrs.field(init=False, default=0)
    _sealed: int = attrs.field(init=False, default=0)
    _checkpointed: int = attrs.field(init=False, default=0)
    _snapshotting: bool = attrs.field(init=False, default=False)
    _snapshotWaiters: List["Deferred[None]"] = attrs.field(init=False, factory=list)

    @property
    def metaDirectory(self) -> str:
        """Where the WAL and snapshots live."""
        return os.path.join(self.root, "meta")

    # -- lifecycle -------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether L{load} finished and the engine serves reads and writes."""
        return self._ready

    @property
    def needsSnapshot(self) -> bool:
        """Whether the log holds mutations no snapshot covers yet."""
        return self._walBytes > 0 or self._sealed > self._checkpointed

    def load(self) -> "Deferred[None]":
        """Recover the state (snapshot, then WAL replay) in the runner."""
        if self._ready or self._loading:
            return fail(RuntimeError("MetadataEngine.load called twice"))
        self._loading = True

        def recover() -> Tuple[LoadedState, WAL]:
            loaded = loadState(self.metaDirectory, self.fsync)
            return loaded, WAL.open(self.metaDirectory, loaded.walGeneration, self.fsync)

        def loaded(result: Tuple[LoadedState, WAL]) -> None:
            recovered, wal = result
            self._state = recovered.state
            self._wal = wal
            self._walBytes = wal.size
            self._checkpointed = recovered.snapshotGeneration
            self._sealed = max(recovered.snapshotGeneration, wal.generation - 1)
            self._ready = True
            self._loading = False
            self._reportTotals()
            log.info(
                "Metadata loaded: {buckets} buckets, {objects} objects (snapshot {snapshot}, WAL {wal})",
                buckets=len(self._state.buckets), objects=self._state.objectCount,
                snapshot=recovered.snapshotGeneration, wal=wal.generation,
            )

        def failed(f: Failure) -> Failure:
            self._loading = False
            return f

        return self.runner.run(recover).addCallbacks(loaded, failed)

    def close(self) -> "Deferred[None]":
        """
        Stop accepting writes, let queued ones finish, take a final snapshot
        and close the WAL (graceful stop).
        """
        if self._closed:
            return succeed(None)
        if self._closeWaiters is not None:
            d: Deferred[None] = Deferred()
            self._closeWaiters.append(d)
            return d
        self._closeWaiters = []

        def done(result: Any) -> Any:
            waiters, self._closeWaiters = self._closeWaiters or [], None
            for w in waiters:
                w.callback(None)
            return result

        return ensureDeferred(self._close()).addBoth(done)

    async def _close(self) -> None:
        self._closing = True
        await self._whenIdle()
        if self._snapshotting:
            await self._whenSnapshotDone()
        if self._ready and self._failure is None and self.needsSnapshot:
            try:
                await self._snapshot()
            except Exception:
                log.failure("Final metadata snapshot failed; the WAL will be replayed")
        if self._wal is not None:
            wal, self._wal = self._wal, None
            try:
                await self.runner.run(wal.close)
            except Exception:
                log.failure("Closing the metadata WAL failed")
        self._closed = True
        self._ready = False

    # -- reads -----------------------------------------------------------

    @property
    def state(self) -> MetadataState:
        """The durable state.  Read it on the reactor thread only; never change it."""
        return self._state

    def getBucket(self, name: str) -> Optional[BucketRecord]:
        """The bucket called C{name}, if it exists."""
        return self._state.getBucket(name)

    def listBuckets(self) -> List[BucketRecord]:
        """Every bucket, by name."""
        return self._state.listBuckets()

    def getObject(self, bucket: str, key: str) -> Optional[ObjectRecord]:
        """The current version of an object, if it exists."""
        return self._state.getObject(bucket, key)

    def listObjects(
        self, bucket: str, prefix: str = "", delimiter: str = "", after: str = "", maxKeys: int = 1000
    ) -> ListPage:
        """One listing page (see L{MetadataState.listObjects}); raises C{NoSuchBucket}."""
        return self._state.listObjects(bucket, prefix, delimiter, after, maxKeys)

    def getBlob(self, address: str) -> Optional[BlobRecord]:
        """Where the bytes with this content address are, if referenced."""
        return self._state.getBlob(address)

    def getUpload(self, uploadId: str) -> Optional[UploadRecord]:
        """The multipart upload with this id, if in progress (durable state)."""
        return self._state.getUpload(uploadId)

    def listUploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        keyMarker: str = "",
        uploadIdMarker: str = "",
        maxUploads: int = 1000,
    ) -> UploadPage:
        """One ListMultipartUploads page (see L{MetadataState.listUploads}); raises C{NoSuchBucket}."""
        return self._state.listUploads(bucket, prefix, delimiter, keyMarker, uploadIdMarker, maxUploads)

    def staleUploads(self, before: float) -> List[UploadRecord]:
        """Uploads initiated before C{before}, oldest first (for expiry)."""
        return self._state.staleUploads(before)

    # -- writes ----------------------------------------------------------

    def createBucket(self, record: BucketRecord) -> "Deferred[None]":
        """
        Create a bucket.  Fails with C{BucketAlreadyOwnedByYou} or
        C{BucketAlreadyExists} if the name is taken (pending creations count).
        """
        refusal = self._refusal()
        if refusal is not None:
            return fail(refusal)
        existing = self._effectiveBucket(record.name)
        if existing is not None:
            code = "BucketAlreadyOwnedByYou" if existing.owner == record.owner else "BucketAlreadyExists"
            return fail(S3Error(code, extra={"BucketName": record.name}))
        return self._enqueue(
            {"op": "create_bucket", "bucket": record.toJSON()}, None, bucketName=record.name, latest=record
        )

    def deleteBucket(self, name: str, owner: str) -> "Deferred[None]":
        """
        Delete an empty bucket.  Fails with C{NoSuchBucket}, C{AccessDenied}
        (another owner's bucket) or C{BucketNotEmpty}, pending puts included.
        """
        refusal = self._refusal()
        if refusal is not None:
            return fail(refusal)
        existing = self._effectiveBucket(name)
        if existing is None:
            return fail(S3Error("NoSuchBucket", extra={"BucketName": name}))
        if existing.owner != owner:
            return fail(S3Error("AccessDenied"))
        if self._effectiveObjectCount(name) > 0:
            return fail(S3Error("BucketNotEmpty", extra={"BucketName": name}))
        # The mutation aborts the bucket's uploads: they are gone from now on.
        uploads = set(self._state.uploadIndex.get(name, {}).values())
        uploads.update(
            uploadId for uploadId, (_, latest) in self._pendingUploads.items()
            if latest is not None and latest.bucket == name
        )
        return self._enqueue(
            {"op": "delete_bucket", "name": name}, None, bucketName=name, latest=None,
            uploadIds=tuple(sorted(uploads)), uploadLatest=None,
        )

    def setBucketConfig(self, bucket: str, name: str, value: Optional[str]) -> "Deferred[BucketRecord]":
        """
        Set the bucket sub-resource document C{name} (C{"tagging"},
        C{"cors"}, ...) to C{value}, or remove it if C{value} is C{None};
        fires with the new bucket record once durable.  Fails with
        C{NoSuchBucket}.
        """
        refusal = self._refusal()
        if refusal is not None:
            return fail(refusal)
        existing = self._effectiveBucket(bucket)
        if existing is None:
            return fail(S3Error("NoSuchBucket", extra={"BucketName": bucket}))
        updated = existing.withConfig(name, value)
        return self._enqueue(
            {"op": "set_bucket_config", "bucket": bucket, "name": name, "value": value},
            updated, bucketName=bucket, latest=updated,
        )

    def putObject(
        self,
        record: ObjectRecord,
        blob: WrittenBlob,
        precondition: Optional[ObjectPrecondition] = None,
    ) -> "Deferred[ObjectRecord]":
        """
        Make C{record} the object's current version once C{blob}'s bytes and
        the record are durable; fires with C{record}.

        @param record: the new version; C{record.blob} is the blob address.
        @param blob: the bytes as written.  Always pass the extents written
            for this request, even when the content already exists: they are
            counted as garbage then, never trusted to be shared.
        @param precondition: called at once with the latest version including
            writes not yet durable; raises (e.g. C{S3Error("PreconditionFailed")})
            to refuse.  On any refusal the blob's extents are discarded.
        """
        refusal = self._refusal()
        if refusal is not None:
            return fail(refusal)
        bucket, key = record.bucket, record.key
        if record.blobAddresses() != (record.blob,):
            self.discard(blob)
            return fail(ValueError("putObject takes a single-blob record (no parts)"))
        if self._effectiveBucket(bucket) is None:
            self.discard(blob)
            return fail(S3Error("NoSuchBucket", extra={"BucketName": bucket}))
        if precondition is not None:
            try:
                precondition(self._effectiveObject(bucket, key))
            except Exception:
                failure = Failure()
                self.discard(blob)
                return fail(failure)
        mutation = {
            "op": "put_object",
            "object": record.toJSON(),
            "extents": extentsToJSON(blob.extents),
            "size": blob.size,
        }
        d = self._enqueue(mutation, record, objectKey=(bucket, key), latest=record)
        return d

    def deleteObject(
        self, bucket: str, key: str, precondition: Optional[ObjectPrecondition] = None
    ) -> "Deferred[Optional[ObjectRecord]]":
        """
        Delete an object; fires with the version deleted, or C{None} if there
        was none (which is a success, as in S3).  Fails with C{NoSuchBucket},
        or whatever C{precondition} raises (see L{putObject}).
        """
        refusal = self._writeRefusal(bucket)
        if refusal is not None:
            return fail(refusal)
        current = self._effectiveObject(bucket, key)
        if precondition is not None:
            try:
                precondition(current)
            except Exception:
                return fail()
        if current is None and (bucket, key) not in self._pendingObjects:
            return succeed(None)
        # A pending write to the key must be durable before we answer, or the
        # caller could read the key back and still find it.
        return self._enqueue(
            {"op": "delete_object", "bucket": bucket, "key": key},
            current, objectKey=(bucket, key), latest=None,
        )

    def copyObject(
        self,
        sourceBucket: str,
        sourceKey: str,
        build: Callable[[ObjectRecord], ObjectRecord],
        precondition: Optional[ObjectPrecondition] = None,
    ) -> "Deferred[ObjectRecord]":
        """
        Make a new version that shares the bytes of an existing object (no
        byte is copied: the new record takes references on the source's
        blobs); fires with the new record once durable.

        @param build: called at once with the source as it will be (writes
            not yet durable included); returns the destination record, which
            must reference exactly the source's blobs (C{blob} / C{parts}).
            It may be the source's own key (a metadata replace).  Whatever
            it raises refuses the copy.
        @param precondition: as for L{putObject}, against the destination.
        @raise S3Error: (as a failure) C{NoSuchBucket} for a missing source
            or destination bucket, C{NoSuchKey} for a missing source
            (including one whose deletion is pending).
        @raise ValueError: (as a failure) if the record built references
            other blobs than the source's.
        """
        refusal = self._writeRefusal(sourceBucket)
        if refusal is not None:
            return fail(refusal)
        source = self._effectiveObject(sourceBucket, sourceKey)
        if source is None:
            return fail(S3Error("NoSuchKey", extra={"Key": sourceKey}))
        try:
            record = build(source)
            if sorted(record.blobAddresses()) != sorted(source.blobAddresses()):
                raise ValueError("a copy must reference exactly the source's blobs")
            if self._effectiveBucket(record.bucket) is None:
                raise S3Error("NoSuchBucket", extra={"BucketName": record.bucket})
            if precondition is not None:
                precondition(self._effectiveObject(record.bucket, record.key))
        except Exception:
            return fail()
        return self._enqueue(
            {"op": "copy_object", "object": record.toJSON()},
            record, objectKey=(record.bucket, record.key), latest=record,
        )

    def setObjectTags(
        self, bucket: str, key: str, tags: Tuple[Tuple[str, str], ...]
    ) -> "Deferred[ObjectRecord]":
        """
        Replace the tag set of an object's current version; fires with the
        updated record once durable.  Fails with C{NoSuchBucket} or
        C{NoSuchKey}.
        """
        refusal = self._writeRefusal(bucket)
        if refusal is not None:
            return fail(refusal)
        current = self._effectiveObject(bucket, key)
        if current is None:
            return fail(S3Error("NoSuchKey", extra={"Key": key}))
        tags = tuple((str(k), str(v)) for k, v in tags)
        updated = attrs.evolve(current, tags=tags)
        return self._enqueue(
            {"op": "set_object_tags", "bucket": bucket, "key": key, "tags": [list(t) for t in tags]},
            updated, objectKey=(bucket, key), latest=updated,
        )

    # -- multipart uploads -----------------------------------------------

    def createUpload(self, record: UploadRecord) -> "Deferred[UploadRecord]":
        """
        Start a multipart upload; fires with the record (without parts: an
        upload starts empty) once durable.  Fails with C{NoSuchBucket}, or
        C{ValueError} if the upload id is already in use.
        """
        refusal = self._writeRefusal(record.bucket)
        if refusal is not None:
            return fail(refusal)
        if self._effectiveUpload(record.uploadId) is not None or record.uploadId in self._pendingUploads:
            return fail(ValueError(f"upload id {record.uploadId!r} is already in use"))
        record = attrs.evolve(record, parts=())
        return self._enqueue(
            {"op": "create_upload", "upload": record.toJSON()},
            record, uploadIds=(record.uploadId,), uploadLatest=record,
        )

    def putPart(self, uploadId: str, part: PartRecord, blob: WrittenBlob) -> "Deferred[PartRecord]":
        """
        Add a part to an upload once C{blob}'s bytes and the record are
        durable (a part with the same number is replaced and its bytes
        released); fires with C{part}.

        @param part: the part; C{part.blob} is the blob address.
        @param blob: the bytes as written (see L{putObject}).
        @raise S3Error: (as a failure) C{NoSuchUpload} if the upload is
            unknown or its completion or abort is pending.  On any refusal
            the blob's extents are discarded.
        """
        refusal = self._refusal()
        if refusal is not None:
            return fail(refusal)
        upload = self._effectiveUpload(uploadId)
        if upload is None:
            self.discard(blob)
            return fail(_noSuchUpload(uploadId))
        mutation = {
            "op": "put_part",
            "uploadId": uploadId,
            "part": part.toJSON(),
            "extents": extentsToJSON(blob.extents),
            "size": blob.size,
        }
        return self._enqueue(mutation, part, uploadIds=(uploadId,), uploadLatest=upload.withPart(part))

    def completeUpload(
        self,
        uploadId: str,
        build: Callable[[UploadRecord], ObjectRecord],
        precondition: Optional[ObjectPrecondition] = None,
    ) -> "Deferred[ObjectRecord]":
        """
        Complete an upload: the object built from its manifest becomes the
        key's current version (no byte is rewritten), the upload goes away
        and the parts the object does not use become garbage.  Fires with
        the object record once durable.

        @param build: called at once with the upload as it will be (parts
            not yet durable included); returns the object record, whose
            C{parts} (or C{blob}) must name blobs of the upload's parts, for
            the upload's bucket and key; raises (e.g. C{S3Error("InvalidPart")})
            to refuse.
        @param precondition: as for L{putObject}, against the upload's key.
        @raise S3Error: (as a failure) C{NoSuchUpload} if the upload is
            unknown or another completion or an abort is pending: of racing
            completes and aborts the first enqueued wins.
        @raise ValueError: (as a failure) if the record built names another
            key or blobs that are not the upload's parts.
        """
        refusal = self._refusal()
        if refusal is not None:
            return fail(refusal)
        upload = self._effectiveUpload(uploadId)
        if upload is None:
            return fail(_noSuchUpload(uploadId))
        try:
            record = build(upload)
            if (record.bucket, record.key) != (upload.bucket, upload.key):
                raise ValueError("a completed upload's object must have the upload's bucket and key")
            partBlobs = {p.blob for p in upload.parts}
            if not set(record.blobAddresses()) <= partBlobs:
                raise ValueError("a completed upload's object may only reference its parts")
            if precondition is not None:
                precondition(self._effectiveObject(record.bucket, record.key))
        except Exception:
            return fail()
        return self._enqueue(
            {"op": "complete_upload", "uploadId": uploadId, "object": record.toJSON()},
            record, objectKey=(record.bucket, record.key), latest=record,
            uploadIds=(uploadId,), uploadLatest=None,
        )

    def abortUpload(self, uploadId: str) -> "Deferred[None]":
        """
        Abort an upload: its parts' bytes become garbage (unless shared).
        Fails with C{NoSuchUpload}, also when a completion or an abort of it
        is pending.
        """
        refusal = self._refusal()
        if refusal is not None:
            return fail(refusal)
        if self._effectiveUpload(uploadId) is None:
            return fail(_noSuchUpload(uploadId))
        return self._enqueue(
            {"op": "abort_upload", "uploadId": uploadId}, None, uploadIds=(uploadId,), uploadLatest=None
        )

    def discard(self, blob: WrittenBlob) -> "Deferred[None]":
        """Count the bytes of a failed or refused upload as garbage."""
        if not blob.extents or self._refusal() is not None:
            return succeed(None)
        d = self._enqueue({"op": "discard_extents", "extents": extentsToJSON(blob.extents)}, None)
        d.addErrback(lambda f: log.failure("Recording discarded extents failed", f))
        return d

    # -- snapshots -------------------------------------------------------

    def snapshot(self) -> "Deferred[None]":
        """
        Checkpoint: rotate the WAL between rounds, then write a snapshot
        covering every sealed generation, built by replay in the runner.
        If one is already running, wait for it instead.
        """
        if self._snapshotting:
            return self._whenSnapshotDone()
        if not self._ready:
            return fail(S3Error("ServiceUnavailable", "metadata is not loaded"))
        return self._snapshot()

    def _snapshot(self) -> "Deferred[None]":
        self._snapshotting = True

        async def run() -> None:
            if self._walBytes > 0:
                if self._failure is not None:
                    self._failure.raiseException()
                await self._rotate()
            through = self._sealed
            if through > self._checkpointed:
                await self.runner.run(self.checkpointer, self.metaDirectory, through, self.fsync)
                self._checkpointed = through

        def done(result: Any) -> Any:
            self._snapshotting = False
            waiters, self._snapshotWaiters = self._snapshotWaiters, []
            for w in waiters:
                w.callback(None)
            return result

        return ensureDeferred(run()).addBoth(done)

    def _whenSnapshotDone(self) -> "Deferred[None]":
        d: Deferred[None] = Deferred()
        self._snapshotWaiters.append(d)
        return d

    # -- the pending overlay ---------------------------------------------

    def _effectiveBucket(self, name: str) -> Optional[BucketRecord]:
        pending = self._pendingBuckets.get(name)
        if pending is not None:
            latest: Optional[BucketRecord] = pending[1]
            return latest
        return self._state.getBucket(name)

    def _effectiveObject(self, bucket: str, key: str) -> Optional[ObjectRecord]:
        pending = self._pendingObjects.get((bucket, key))
        if pending is not None:
            latest: Optional[ObjectRecord] = pending[1]
            return latest
        return self._state.getObject(bucket, key)

    def _effectiveUpload(self, uploadId: str) -> Optional[UploadRecord]:
        pending = self._pendingUploads.get(uploadId)
        upload: Optional[UploadRecord]
        if pending is not None:
            upload = pending[1]
        else:
            upload = self._state.getUpload(uploadId)
        if upload is None or self._effectiveBucket(upload.bucket) is None:
            return None
        return upload

    def _effectiveObjectCount(self, bucket: str) -> int:
        count = self._state.objectsIn(bucket)
        for key in self._pendingKeys.get(bucket, ()):
            present = self._pendingObjects[(bucket, key)][1] is not None
            durable = self._state.getObject(bucket, key) is not None
            count += present - durable
        return count

    def _hold(self, p: _Pending, latest: Any) -> None:
        if p.objectKey is not None:
            entry = self._pendingObjects.setdefault(p.objectKey, [0, None])
            entry[0] += 1
            entry[1] = latest
            self._pendingKeys.setdefault(p.objectKey[0], set()).add(p.objectKey[1])
        if p.bucketName is not None:
            entry = self._pendingBuckets.setdefault(p.bucketName, [0, None])
            entry[0] += 1
            entry[1] = latest
        for uploadId in p.uploadIds:
            entry = self._pendingUploads.setdefault(uploadId, [0, None])
            entry[0] += 1
            entry[1] = p.uploadLatest

    def _release(self, p: _Pending) -> None:
        if p.objectKey is not None:
            entry = self._pendingObjects[p.objectKey]
            entry[0] -= 1
            if entry[0] == 0:
                del self._pendingObjects[p.objectKey]
                bucket, key = p.objectKey
                keys = self._pendingKeys[bucket]
                keys.discard(key)
                if not keys:
                    del self._pendingKeys[bucket]
        if p.bucketName is not None:
            entry = self._pendingBuckets[p.bucketName]
            entry[0] -= 1
            if entry[0] == 0:
                del self._pendingBuckets[p.bucketName]
        for uploadId in p.uploadIds:
            entry = self._pendingUploads[uploadId]
            entry[0] -= 1
            if entry[0] == 0:
                del self._pendingUploads[uploadId]

    # -- group commit ----------------------------------------------------

    def _writeRefusal(self, bucket: str) -> Optional[BaseException]:
        """
        Why a write into C{bucket} cannot be queued: writes are refused, or
        the bucket does not exist (pending changes included).
        """
        refusal = self._refusal()
        if refusal is None and self._effectiveBucket(bucket) is None:
            refusal = S3Error("NoSuchBucket", extra={"BucketName": bucket})
        return refusal

    def _refusal(self) -> Optional[BaseException]:
        """Why writes are refused right now, if they are."""
        if self._failure is not None:
            return S3Error("InternalError", "The metadata log failed; writes are refused.")
        if not self._ready or self._closing:
            return S3Error("ServiceUnavailable", "Metadata is not accepting writes.")
        return None

    def _enqueue(
        self,
        mutation: Mutation,
        result: Any,
        objectKey: Optional[Tuple[str, str]] = None,
        bucketName: Optional[str] = None,
        latest: Any = _ABSENT,
        uploadIds: Tuple[str, ...] = (),
        uploadLatest: Optional[UploadRecord] = None,
    ) -> "Deferred[Any]":
        try:
            encoded = encodeMutation(mutation)
        except (TypeError, ValueError):
            return fail()
        p = _Pending(encoded, mutation, Deferred(), result, objectKey, bucketName, uploadIds, uploadLatest)
        self._hold(p, None if latest is _ABSENT else latest)
        self._queue.append(p)
        self._maybeStartRound()
        return p.deferred

    def _maybeStartRound(self) -> None:
        if self._busy:
            return
        if self._rotationWaiters:
            self._startRotation()
        elif self._queue:
            self._startRound()
        else:
            waiters, self._idleWaiters = self._idleWaiters, []
            for w in waiters:
                w.callback(None)

    def _whenIdle(self) -> "Deferred[None]":
        if not self._busy and not self._queue and not self._rotationWaiters:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idleWaiters.append(d)
        return d

    def _startRound(self) -> None:
        batch, self._queue = self._queue, []
        self._busy = True
        try:
            syncData = self.syncData()
        except Exception:
            self._roundFailed(Failure(), batch)
            return
        self.runner.run(self._commit, syncData, [p.encoded for p in batch]).addCallbacks(
            self._roundDone, self._roundFailed, callbackArgs=(batch,), errbackArgs=(batch,)
        )

    def _commit(self, syncData: Callable[[], None], encoded: Sequence[bytes]) -> Tuple[float, int]:
        """The blocking part of a round: data fsync, then WAL write and fdatasync."""
        assert self._wal is not None
        started = time.perf_counter()
        syncData()
        written = self._wal.appendEncoded(encoded)
        self._wal.sync()
        return time.perf_counter() - started, written

    def _roundDone(self, result: Tuple[float, int], batch: List[_Pending]) -> None:
        elapsed, written = result
        self._walBytes += written
        if self.metrics is not None:
            self.metrics.fsyncLatency.observe(elapsed)
            self.metrics.groupCommitBatch.observe(len(batch))
        outcomes: List[Optional[Failure]] = []
        for p in batch:
            try:
                self._state.apply(p.mutation)
            except Exception:
                f = Failure()
                log.failure("Applying a durable metadata mutation failed; refusing writes", f)
                self._failure = f
                outcomes.append(f)
            else:
                outcomes.append(None)
        for p in batch:
            self._release(p)
        self._reportTotals()
        self._busy = False
        for p, outcome in zip(batch, outcomes):
            if outcome is None:
                p.deferred.callback(p.result)
            else:
                p.deferred.errback(outcome)
        self._maybeStartRound()

    def _roundFailed(self, failure: Failure, batch: List[_Pending]) -> None:
        log.failure("Metadata commit round failed; refusing further writes", failure)
        self._failure = failure
        self._busy = False
        everything = batch + self._queue
        self._queue = []
        for p in everything:
            self._release(p)
        for p in everything:
            p.deferred.errback(failure)
        waiters, self._rotationWaiters = self._rotationWaiters, []
        for w in waiters:
            w.errback(failure)
        self._maybeStartRound()

    def _rotate(self) -> "Deferred[int]":
        """Seal the WAL generation between rounds; fires with its number."""
        d: Deferred[int] = Deferred()
        self._rotationWaiters.append(d)
        self._maybeStartRound()
        return d

    def _startRotation(self) -> None:
        waiters, self._rotationWaiters = self._rotationWaiters, []
        self._busy = True
        assert self._wal is not None

        def done(result: Any) -> None:
            if isinstance(result, Failure):
                # The WAL's file state is unknown now: stop writing.
                self._roundFailed(result, [])
                for w in waiters:
                    w.errback(result)
                return
            self._busy = False
            self._walBytes = 0
            self._sealed = result
            for w in waiters:
                w.callback(result)
            self._maybeStartRound()

        self.runner.run(self._wal.rotate).addBoth(done)

    def _reportTotals(self) -> None:
        if self.metrics is not None:
            self.metrics.objects.set(self._state.objectCount)
            self.metrics.storedBytes.set(self._state.logicalBytes)


def _noSuchUpload(uploadId: str) -> S3Error:
    return S3Error("NoSuchUpload", extra={"UploadId": uploadId})


class SnapshotService(TimerService):
    """
    Snapshots the metadata every C{interval} seconds when the WAL has grown,
    so startup replays at most one interval of log.
    """

    def __init__(self, engine: MetadataEngine, clock: IReactorTime, interval: float = 60.0) -> None:
        super().__init__(interval, self._tick)
        self.clock = clock
        self.engine = engine

    def _tick(self) -> "Optional[Deferred[None]]":
        if not self.engine.ready or not self.engine.needsSnapshot:
            return None
        # A failed snapshot is logged; the service keeps running.
        return self.engine.snapshot().addErrback(
            lambda f: log.failure("Periodic metadata snapshot failed", f)
        )
