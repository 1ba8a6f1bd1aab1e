"""
The metadata format before the SQLite store (FasterStore up to the issue 8
work): the in-memory state a snapshot plus WAL replay rebuilt, kept only so
that L{fasterstore.metadata.migration} can read an old data directory once.

Every change is a I{mutation}: a plain JSON-able dict with an C{"op"} key.
L{MetadataState.apply} is the only code path that applies one, whether the
engine is committing live, replaying the write-ahead log at startup, or
building a snapshot by replay, so all three always agree.

C{apply} is I{total}: every mutation has a defined effect on every state (see
its docstring), so one unexpected record can never make a log unreplayable.
Validation (bucket exists, bucket empty, preconditions) is the engine's job,
done before a mutation is logged.

Mutations::

    {"op": "create_bucket", "bucket": BucketRecord.toJSON()}
    {"op": "delete_bucket", "name": str}
    {"op": "put_object", "object": ObjectRecord.toJSON(),
     "extents": [[segment, offset, length], ...], "size": int}
    {"op": "delete_object", "bucket": str, "key": str}
    {"op": "discard_extents", "extents": [[segment, offset, length], ...]}
    {"op": "create_upload", "upload": UploadRecord.toJSON()}
    {"op": "put_part", "uploadId": str, "part": PartRecord.toJSON(),
     "extents": [[segment, offset, length], ...], "size": int}
    {"op": "complete_upload", "uploadId": str, "object": ObjectRecord.toJSON()}
    {"op": "abort_upload", "uploadId": str}
    {"op": "copy_object", "object": ObjectRecord.toJSON()}
    {"op": "set_object_tags", "bucket": str, "key": str, "tags": [[k, v], ...]}
    {"op": "set_bucket_config", "bucket": str, "name": str, "value": str or null}

Blob references: an object record holds one reference per address of
L{ObjectRecord.blobAddresses}, an upload one per part.  Bytes stay alive
exactly as long as some reference does; then their extents become garbage.

Tests: tests/unit/test_migration.py (through the migration that reads it).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import attrs
from sortedcontainers import SortedDict

from fasterstore.metadata.records import BlobRecord, BucketRecord, ObjectRecord, PartRecord, UploadRecord
from fasterstore.storage.blob import Extent

Mutation = Dict[str, Any]

# Snapshots serialise millions of object records: read the fields directly
# instead of going through attrs.asdict (tuples encode as JSON arrays and
# ObjectRecord.fromJSON accepts them back).
_OBJECT_FIELDS = tuple(f.name for f in attrs.fields(ObjectRecord))


def _objectJSON(record: ObjectRecord) -> Dict[str, Any]:
    d = {name: getattr(record, name) for name in _OBJECT_FIELDS}
    if record.parts:
        d["parts"] = [p.toJSON() for p in record.parts]
    return d


UploadIndexKey = Tuple[str, float, str]


def extentsToJSON(extents: Iterable[Extent]) -> List[List[int]]:
    """Extents as the C{[segment, offset, length]} triples mutations carry."""
    return [[e.segment, e.offset, e.length] for e in extents]


def _extents(triples: Iterable[Sequence[int]]) -> Tuple[Extent, ...]:
    return tuple(Extent(int(s), int(o), int(n)) for s, o, n in triples)


@attrs.define(eq=True)
class MetadataState:
    """
    Buckets, objects and blobs, with garbage accounting.

    @ivar buckets: bucket records by name.
    @ivar objects: per bucket, object records by key in key order.
    @ivar blobs: blob records by content address.
    @ivar garbage: per segment number, payload bytes no longer referenced
        (what compaction can reclaim).  Never holds zero entries.
    @ivar objectCount: number of objects in all buckets.
    @ivar logicalBytes: sum of the sizes of all objects.
    @ivar uploads: multipart uploads in progress by upload id.
    @ivar uploadIndex: per bucket with uploads in progress (no empty
        entries), their ids keyed by C{(key, initiated, uploadId)}.
    """

    buckets: Dict[str, BucketRecord] = attrs.field(factory=dict)
    objects: Dict[str, "SortedDict[str, ObjectRecord]"] = attrs.field(factory=dict)
    uploads: Dict[str, UploadRecord] = attrs.field(factory=dict)
    uploadIndex: Dict[str, "SortedDict[UploadIndexKey, str]"] = attrs.field(factory=dict)
    blobs: Dict[str, BlobRecord] = attrs.field(factory=dict)
    garbage: Dict[int, int] = attrs.field(factory=dict)
    objectCount: int = 0
    logicalBytes: int = 0

    # -- mutations -------------------------------------------------------

    def apply(self, mutation: Mutation) -> None:
        """
        Apply one mutation.  Deterministic and total:

          - C{create_bucket} of an existing bucket replaces its record and
            keeps its objects;
          - C{delete_bucket} of a missing bucket does nothing; of a non-empty
            one deletes its objects first (the engine never logs that, but a
            log holding it stays replayable);
          - C{put_object} into a missing bucket only counts its extents as
            garbage;
          - C{delete_object} of a missing key does nothing;
          - C{delete_bucket} aborts the bucket's uploads;
          - C{create_upload} into a missing bucket does nothing; its record's
            parts are ignored (an upload starts empty); of an existing id
            aborts the old upload first;
          - C{put_part} to a missing upload only counts its extents as
            garbage;
          - C{complete_upload} of a missing upload does nothing; if the
            object's bucket is missing, or it names a blob that does not
            exist, the upload is aborted and no object is made;
          - C{abort_upload} of a missing upload does nothing;
          - C{copy_object} into a missing bucket, or naming a blob that does
            not exist, does nothing;
          - C{set_object_tags} of a missing object and C{set_bucket_config}
            of a missing bucket do nothing.

        @raise ValueError: for an unknown C{op}.
        """
        op = mutation["op"]
        if op == "put_object":
            self._putObject(
                ObjectRecord.fromJSON(mutation["object"]),
                _extents(mutation["extents"]),
                int(mutation["size"]),
            )
        elif op == "delete_object":
            self._deleteObject(mutation["bucket"], mutation["key"])
        elif op == "discard_extents":
            self._addGarbage(_extents(mutation["extents"]))
        elif op == "create_bucket":
            record = BucketRecord.fromJSON(mutation["bucket"])
            self.buckets[record.name] = record
            self.objects.setdefault(record.name, SortedDict())
        elif op == "delete_bucket":
            self._deleteBucket(mutation["name"])
        elif op == "create_upload":
            self._createUpload(UploadRecord.fromJSON(mutation["upload"]))
        elif op == "put_part":
            self._putPart(
                mutation["uploadId"],
                PartRecord.fromJSON(mutation["part"]),
                _extents(mutation["extents"]),
                int(mutation["size"]),
            )
        elif op == "complete_upload":
            self._completeUpload(mutation["uploadId"], ObjectRecord.fromJSON(mutation["object"]))
        elif op == "abort_upload":
            self._abortUpload(mutation["uploadId"])
        elif op == "copy_object":
            self._copyObject(ObjectRecord.fromJSON(mutation["object"]))
        elif op == "set_object_tags":
            self._setObjectTags(
                mutation["bucket"], mutation["key"], tuple((str(k), str(v)) for k, v in mutation["tags"])
            )
        elif op == "set_bucket_config":
            self._setBucketConfig(mutation["bucket"], mutation["name"], mutation["value"])
        else:
            raise ValueError(f"unknown metadata mutation {op!r}")

    def _addGarbage(self, extents: Iterable[Extent]) -> None:
        for e in extents:
            if e.length:
                self.garbage[e.segment] = self.garbage.get(e.segment, 0) + e.length

    def _takeWritten(self, address: str, extents: Tuple[Extent, ...], size: int) -> None:
        """
        Take one reference on C{address} for bytes just written to
        C{extents}: they become the blob, or garbage if it already exists.
        """
        blob = self.blobs.get(address)
        if blob is None:
            self.blobs[address] = BlobRecord(address, size, extents, 1)
        else:
            # Deduplicated: the bytes just written are a second copy.
            known = set(blob.extents)
            self._addGarbage(e for e in extents if e not in known)
            self.blobs[address] = attrs.evolve(blob, refs=blob.refs + 1)

    def _canReference(self, record: ObjectRecord) -> bool:
        """Whether every blob C{record} references exists."""
        return all(a in self.blobs for a in record.blobAddresses())

    def _acquire(self, record: ObjectRecord) -> None:
        """Take the references of C{record} on existing blobs (see L{_canReference})."""
        for address in record.blobAddresses():
            blob = self.blobs[address]
            self.blobs[address] = attrs.evolve(blob, refs=blob.refs + 1)

    def _releaseObject(self, record: ObjectRecord) -> None:
        """Drop the references of C{record}."""
        for address in record.blobAddresses():
            self._release(address)

    def _install(self, keys: "SortedDict[str, ObjectRecord]", record: ObjectRecord) -> None:
        """
        Make C{record} (whose references are already taken) the current
        version, releasing the version it replaces.
        """
        old = keys.get(record.key)
        keys[record.key] = record
        if old is None:
            self.objectCount += 1
            self.logicalBytes += record.size
        else:
            self.logicalBytes += record.size - old.size
            self._releaseObject(old)

    def _putObject(self, record: ObjectRecord, extents: Tuple[Extent, ...], size: int) -> None:
        keys = self.objects.get(record.bucket)
        if keys is None or record.blobAddresses() != (record.blob,):
            # No bucket, or not a single-blob record: never logged by the engine.
            self._addGarbage(extents)
            return
        self._takeWritten(record.blob, extents, size)
        self._install(keys, record)

    def _copyObject(self, record: ObjectRecord) -> None:
        keys = self.objects.get(record.bucket)
        if keys is None or not self._canReference(record):
            return
        self._acquire(record)
        self._install(keys, record)

    def _setObjectTags(self, bucket: str, key: str, tags: Tuple[Tuple[str, str], ...]) -> None:
        keys = self.objects.get(bucket)
        if keys is None:
            return
        current = keys.get(key)
        if current is not None:
            keys[key] = attrs.evolve(current, tags=tags)

    def _setBucketConfig(self, bucket: str, name: str, value: Optional[str]) -> None:
        record = self.buckets.get(bucket)
        if record is not None:
            self.buckets[bucket] = record.withConfig(name, value)

    # -- multipart uploads -------------------------------------------------

    def _createUpload(self, upload: UploadRecord) -> None:
        if upload.bucket not in self.buckets:
            return
        self._abortUpload(upload.uploadId)
        upload = attrs.evolve(upload, parts=())
        self.uploads[upload.uploadId] = upload
        index = self.uploadIndex.setdefault(upload.bucket, SortedDict())
        index[(upload.key, upload.initiated, upload.uploadId)] = upload.uploadId

    def _putPart(self, uploadId: str, part: PartRecord, extents: Tuple[Extent, ...], size: int) -> None:
        upload = self.uploads.get(uploadId)
        if upload is None:
            self._addGarbage(extents)
            return
        # Take the new reference before releasing the old one, so a part
        # re-uploaded with the same content keeps its original bytes.
        self._takeWritten(part.blob, extents, size)
        previous = upload.getPart(part.number)
        self.uploads[uploadId] = upload.withPart(part)
        if previous is not None:
            self._release(previous.blob)

    def _removeUpload(self, uploadId: str) -> Optional[UploadRecord]:
        """Forget an upload without touching its references."""
        upload = self.uploads.pop(uploadId, None)
        if upload is None:
            return None
        index = self.uploadIndex[upload.bucket]
        del index[(upload.key, upload.initiated, upload.uploadId)]
        if not index:
            del self.uploadIndex[upload.bucket]
        return upload

    def _abortUpload(self, uploadId: str) -> None:
        upload = self._removeUpload(uploadId)
        if upload is not None:
            for part in upload.parts:
                self._release(part.blob)

    def _completeUpload(self, uploadId: str, record: ObjectRecord) -> None:
        if uploadId not in self.uploads:
            return
        keys = self.objects.get(record.bucket)
        if keys is not None and self._canReference(record):
            # The object's references first: parts it uses never drop to zero.
            self._acquire(record)
            self._install(keys, record)
        self._abortUpload(uploadId)

    def _release(self, address: str) -> None:
        """Drop one reference to a blob; unreferenced bytes become garbage."""
        blob = self.blobs.get(address)
        if blob is None:
            return
        if blob.refs <= 1:
            del self.blobs[address]
            self._addGarbage(blob.extents)
        else:
            self.blobs[address] = attrs.evolve(blob, refs=blob.refs - 1)

    def _deleteObject(self, bucket: str, key: str) -> None:
        keys = self.objects.get(bucket)
        if keys is None:
            return
        old = keys.pop(key, None)
        if old is None:
            return
        self.objectCount -= 1
        self.logicalBytes -= old.size
        self._releaseObject(old)

    def _deleteBucket(self, name: str) -> None:
        index = self.uploadIndex.get(name)
        if index is not None:
            for uploadId in list(index.values()):
                self._abortUpload(uploadId)
        keys = self.objects.get(name)
        if keys is not None:
            for key in list(keys):
                self._deleteObject(name, key)
            del self.objects[name]
        self.buckets.pop(name, None)

    # -- serialisation ---------------------------------------------------

    def iterRecords(self) -> Iterator[Dict[str, Any]]:
        """
        The state as a stream of small records for C{json.dumps} (sequences
        may be tuples), for snapshots that never build one huge document: C{{"bucket": ...}}, C{{"object": ...}},
        C{{"upload": ...}}, C{{"blob": ...}} and one C{{"garbage": [[segment, bytes], ...]}}.
        """
        for name in sorted(self.buckets):
            yield {"bucket": self.buckets[name].toJSON()}
            for record in self.objects.get(name, {}).values():
                yield {"object": _objectJSON(record)}
            for uploadId in self.uploadIndex.get(name, {}).values():
                yield {"upload": self.uploads[uploadId].toJSON()}
        for blob in self.blobs.values():
            yield {"blob": blob.toJSON()}
        yield {"garbage": [[segment, n] for segment, n in sorted(self.garbage.items())]}

    @classmethod
    def fromRecords(cls, records: Iterable[Dict[str, Any]]) -> "MetadataState":
        """Rebuild a state from L{iterRecords} output; totals are recomputed."""
        state = cls()
        pending: Dict[str, List[Tuple[str, ObjectRecord]]] = {}
        uploads: List[UploadRecord] = []
        for item in records:
            if "object" in item:
                record = ObjectRecord.fromJSON(item["object"])
                pending.setdefault(record.bucket, []).append((record.key, record))
                state.objectCount += 1
                state.logicalBytes += record.size
            elif "blob" in item:
                blob = BlobRecord.fromJSON(item["blob"])
                state.blobs[blob.address] = blob
            elif "upload" in item:
                uploads.append(UploadRecord.fromJSON(item["upload"]))
            elif "bucket" in item:
                bucket = BucketRecord.fromJSON(item["bucket"])
                state.buckets[bucket.name] = bucket
            elif "garbage" in item:
                for segment, n in item["garbage"]:
                    if n:
                        state.garbage[int(segment)] = int(n)
            else:
                raise ValueError(f"unknown snapshot record {sorted(item)!r}")
        for name in state.buckets:
            state.objects[name] = SortedDict(pending.pop(name, ()))
        if pending:
            raise ValueError(f"objects in unknown buckets: {sorted(pending)!r}")
        for upload in uploads:
            if upload.bucket not in state.buckets:
                raise ValueError(f"upload {upload.uploadId!r} in unknown bucket {upload.bucket!r}")
            state.uploads[upload.uploadId] = upload
            index = state.uploadIndex.setdefault(upload.bucket, SortedDict())
            index[(upload.key, upload.initiated, upload.uploadId)] = upload.uploadId
        return state

    def toJSON(self) -> Dict[str, Any]:
        """The whole state as one JSON-able dict (see L{iterRecords})."""
        return {"records": list(self.iterRecords())}

    @classmethod
    def fromJSON(cls, d: Dict[str, Any]) -> "MetadataState":
        """Inverse of L{toJSON}."""
        return cls.fromRecords(d["records"])


