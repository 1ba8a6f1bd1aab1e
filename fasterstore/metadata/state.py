"""
The metadata engine's in-memory state, and the one function that changes it.

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

Tests: tests/unit/test_metadata_state.py, tests/unit/test_metadata_multipart.py.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import attrs
from sortedcontainers import SortedDict

from fasterstore.errors import S3Error
from fasterstore.metadata.records import BlobRecord, BucketRecord, ObjectRecord, PartRecord, UploadRecord
from fasterstore.storage.blob import Extent

Mutation = Dict[str, Any]

_MAX_CHAR = "\U0010ffff"

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


def commonPrefix(key: str, prefix: str, delimiter: str) -> Optional[str]:
    """
    The CommonPrefixes entry C{key} rolls up into: C{key} up to and
    including the first C{delimiter} after C{prefix}; None if it has none.
    """
    i = key.find(delimiter, len(prefix))
    return key[: i + len(delimiter)] if i >= 0 else None


def prefixSuccessor(prefix: str) -> Optional[str]:
    """
    The smallest string greater than every string starting with C{prefix},
    or C{None} if there is none: lets a listing jump past a whole common
    prefix with one bisection instead of walking the keys under it.
    """
    stripped = prefix.rstrip(_MAX_CHAR)
    if not stripped:
        return None
    return stripped[:-1] + chr(ord(stripped[-1]) + 1)


@attrs.frozen
class ListPage:
    """
    One page of a bucket listing.

    @ivar objects: the objects returned, in key order.
    @ivar commonPrefixes: the rolled-up prefixes returned, in order.
    @ivar isTruncated: whether more entries follow this page.
    @ivar nextAfter: the last key or common prefix returned (C{""} if none):
        pass it as C{after} to get the next page (NextMarker /
        NextContinuationToken).
    """

    objects: List[ObjectRecord]
    commonPrefixes: List[str]
    isTruncated: bool
    nextAfter: str


@attrs.frozen
class UploadPage:
    """
    One page of ListMultipartUploads results.

    @ivar uploads: the uploads returned, by key, then initiation time.
    @ivar commonPrefixes: the rolled-up prefixes returned, in order.
    @ivar isTruncated: whether more entries follow this page.
    @ivar nextKeyMarker: the key of the last upload, or the last common
        prefix, returned (C{""} if none): the next page's C{keyMarker}.
    @ivar nextUploadIdMarker: the id of the last upload returned, or C{""}
        if the page ended on a common prefix or is empty: the next page's
        C{uploadIdMarker}.
    """

    uploads: List[UploadRecord]
    commonPrefixes: List[str]
    isTruncated: bool
    nextKeyMarker: str
    nextUploadIdMarker: str


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

    # -- reads -----------------------------------------------------------

    def getBucket(self, name: str) -> Optional[BucketRecord]:
        """The bucket called C{name}, if it exists."""
        return self.buckets.get(name)

    def listBuckets(self) -> List[BucketRecord]:
        """Every bucket, sorted by name (as ListBuckets returns them)."""
        return [self.buckets[name] for name in sorted(self.buckets)]

    def getObject(self, bucket: str, key: str) -> Optional[ObjectRecord]:
        """The current version of an object, if it exists."""
        keys = self.objects.get(bucket)
        if keys is None:
            return None
        return keys.get(key)

    def getBlob(self, address: str) -> Optional[BlobRecord]:
        """The blob with this content address, if any object references it."""
        return self.blobs.get(address)

    def bucketIsEmpty(self, name: str) -> bool:
        """Whether a bucket holds no objects (a missing bucket is empty)."""
        return not self.objects.get(name)

    def objectsIn(self, bucket: str) -> int:
        """How many objects a bucket holds."""
        return len(self.objects.get(bucket, ()))

    def listObjects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        maxKeys: int = 1000,
    ) -> ListPage:
        """
        One page of ListObjects(V2) results.

        The listing is the key-ordered sequence of I{entries}: each key
        starting with C{prefix} is an entry, except that a key with
        C{delimiter} somewhere after the prefix is rolled into the common
        prefix ending at that delimiter, which is one entry sitting at its own
        string position.  The page holds the first C{maxKeys} entries greater
        than C{after}.  Because a common prefix is only returned when greater
        than C{after}, passing C{nextAfter} back never repeats a prefix and
        skips the keys under it.  C{maxKeys <= 0} gives an empty page that is
        not truncated, as S3 does.

        Cost is O(log n) per entry returned: the walk starts at
        C{max(after, prefix)} and jumps over each common prefix by bisection.

        @raise S3Error: C{NoSuchBucket}.
        """
        keys = self.objects.get(bucket)
        if keys is None:
            raise S3Error("NoSuchBucket", extra={"BucketName": bucket})
        objects: List[ObjectRecord] = []
        prefixes: List[str] = []
        if maxKeys <= 0:
            return ListPage(objects, prefixes, False, "")
        last = ""
        count = 0
        truncated = False
        for entry in _entries(keys, prefix, delimiter, after):
            if count == maxKeys:
                truncated = True
                break
            count += 1
            if isinstance(entry, str):
                prefixes.append(entry)
                last = entry
            else:
                objects.append(entry)
                last = entry.key
        return ListPage(objects, prefixes, truncated, last)

    def getUpload(self, uploadId: str) -> Optional[UploadRecord]:
        """The multipart upload with this id, if in progress."""
        return self.uploads.get(uploadId)

    def staleUploads(self, before: float) -> List[UploadRecord]:
        """Uploads initiated before C{before}, oldest first."""
        stale = [u for u in self.uploads.values() if u.initiated < before]
        stale.sort(key=lambda u: (u.initiated, u.uploadId))
        return stale

    def listUploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        keyMarker: str = "",
        uploadIdMarker: str = "",
        maxUploads: int = 1000,
    ) -> UploadPage:
        """
        One page of ListMultipartUploads results.

        Uploads are ordered by key, then initiation time (then id).  Prefix
        and delimiter roll keys into common prefixes exactly as in
        L{listObjects}; each common prefix and each upload is one entry.
        The page holds the first C{maxUploads} entries after the marker:

          - no C{keyMarker}: from the start (C{uploadIdMarker} is ignored);
          - C{keyMarker} only: keys greater than C{keyMarker}, and common
            prefixes greater than it;
          - both: also the uploads of key C{keyMarker} that come after the
            upload C{uploadIdMarker} (initiated later); if that upload is
            unknown (completed or aborted since) or has another key, those
            whose id is greater than C{uploadIdMarker}, as AWS documents.

        C{maxUploads <= 0} gives an empty page that is not truncated.

        @raise S3Error: C{NoSuchBucket}.
        """
        if bucket not in self.buckets:
            raise S3Error("NoSuchBucket", extra={"BucketName": bucket})
        uploads: List[UploadRecord] = []
        prefixes: List[str] = []
        if maxUploads <= 0:
            return UploadPage(uploads, prefixes, False, "", "")
        index = self.uploadIndex.get(bucket)
        if index is None:
            return UploadPage(uploads, prefixes, False, "", "")
        lastKey = lastId = ""
        count = 0
        truncated = False
        for entry in _uploadEntries(index, self.uploads, prefix, delimiter, keyMarker, uploadIdMarker):
            if count == maxUploads:
                truncated = True
                break
            count += 1
            if isinstance(entry, str):
                prefixes.append(entry)
                lastKey, lastId = entry, ""
            else:
                uploads.append(entry)
                lastKey, lastId = entry.key, entry.uploadId
        return UploadPage(uploads, prefixes, truncated, lastKey, lastId)

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


def _entries(
    keys: "SortedDict[str, ObjectRecord]", prefix: str, delimiter: str, after: str
) -> Iterator[Union[str, ObjectRecord]]:
    """Listing entries greater than C{after}, in order (see C{listObjects})."""
    start = max(after, prefix)
    # ``after`` itself is excluded; ``prefix`` (when greater) may be a key.
    inclusive = start != after
    while True:
        jumped = False
        for key in keys.irange(minimum=start, inclusive=(inclusive, True)):
            if not key.startswith(prefix):
                return
            if delimiter:
                common = commonPrefix(key, prefix, delimiter)
                if common is not None:
                    if common > after:
                        yield common
                    following = prefixSuccessor(common)
                    if following is None:
                        return
                    start, inclusive, jumped = following, True, True
                    break
            yield keys[key]
        if not jumped:
            return


def _uploadEntries(
    index: "SortedDict[UploadIndexKey, str]",
    uploads: Dict[str, UploadRecord],
    prefix: str,
    delimiter: str,
    keyMarker: str,
    uploadIdMarker: str,
) -> Iterator[Union[str, UploadRecord]]:
    """Upload listing entries after the markers, in order (see C{listUploads})."""
    # Position the walk; ``sameKeyAfter`` filters the marker key's uploads
    # when the marker upload is unknown.
    sameKeyAfter: Optional[str] = None
    start: Tuple[Any, ...]
    if not keyMarker or keyMarker < prefix:
        start, inclusive = (prefix,), True
    elif not uploadIdMarker:
        # Every key greater than keyMarker: (keyMarker, ...) tuples sort
        # before (keyMarker + "\0",).
        start, inclusive = (keyMarker + "\0",), True
    else:
        marker = uploads.get(uploadIdMarker)
        if marker is not None and marker.key == keyMarker:
            start, inclusive = (marker.key, marker.initiated, marker.uploadId), False
        else:
            start, inclusive = (keyMarker,), True
            sameKeyAfter = uploadIdMarker
    while True:
        jumped = False
        for position in index.irange(minimum=start, inclusive=(inclusive, True)):
            key = position[0]
            if not key.startswith(prefix):
                return
            if delimiter:
                common = commonPrefix(key, prefix, delimiter)
                if common is not None:
                    if common > keyMarker:
                        yield common
                    following = prefixSuccessor(common)
                    if following is None:
                        return
                    start, inclusive, jumped = (following,), True, True
                    break
            if sameKeyAfter is not None and key == keyMarker and position[2] <= sameKeyAfter:
                continue
            yield uploads[index[position]]
        if not jumped:
            return
