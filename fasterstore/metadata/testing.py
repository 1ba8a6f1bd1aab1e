"""
The behaviour every L{IMetadataStore} backend must show, as one test suite.

L{MetadataStoreBehaviour} is a mixin for L{twisted.trial.unittest.SynchronousTestCase}
(as txaws's C{txaws.testing.s3_tests} is for S3 clients): a backend's tests
subclass both and say how to make a store::

    class SQLiteStoreTests(MetadataStoreBehaviour, SynchronousTestCase):
        def makeStore(self) -> IMetadataStore:
            ...  # an opened, empty store

        def reopen(self, store: IMetadataStore) -> IMetadataStore:
            ...  # close it and open the same storage again (optional)

A backend whose writes wait for work the test drives (a manual runner)
overrides L{MetadataStoreBehaviour.settle} to run it; every test calls it
before looking at a write's outcome, so the whole suite also runs with
writes batched into shared commit rounds.

The suite only uses the interface: reads, writes and L{Totals}.  Helpers to
build records and written blobs are here too, for backend-specific tests.
Tests: tests/unit/test_metadata_store.py.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Type, TypeVar

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest

from fasterstore.errors import S3Error
from fasterstore.metadata.records import (
    COMPLIANCE, ENABLED, NULL_VERSION_ID, SUSPENDED, BlobRecord, BucketRecord, ObjectRecord, ObjectSummary, PartRecord,
    UploadRecord, VersionSummary, versionIdOf,
)
from fasterstore.metadata.store import IMetadataStore, ListPage, Totals, UploadPage
from fasterstore.storage.blob import Extent, WrittenBlob
from fasterstore.storage.records import recordLength

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase

    _Base = SynchronousTestCase
else:
    _Base = object

T = TypeVar("T")

#: Hypothesis settings of the property tests: no deadline (CI timing), and the
#: same test may run for several backend classes in one process.
_PROPERTY = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)


# -- records and blobs ---------------------------------------------------------


def bucket(name: str = "b", owner: str = "alice") -> BucketRecord:
    """A bucket record."""
    return BucketRecord(name=name, owner=owner, region="", created=1700000000.0)


def configSetter(name: str, value: Optional[str]) -> Callable[[BucketRecord], BucketRecord]:
    """An L{IMetadataStore.updateBucket} change that sets (or removes) one sub-resource document."""
    return lambda record: record.withConfig(name, value)


def evolver(changes: Dict[str, Any]) -> Callable[[ObjectRecord], ObjectRecord]:
    """An L{IMetadataStore.updateVersion} change of any fields."""
    return lambda record: attrs.evolve(record, **changes)


def refuseWith(code: str) -> Callable[[Any], Any]:
    """A precondition or change that refuses with S3 error C{code}."""

    def refuse(_: Any) -> Any:
        raise S3Error(code)

    return refuse


def tagsSetter(tags: Tuple[Tuple[str, str], ...]) -> Callable[[ObjectRecord], ObjectRecord]:
    """An L{IMetadataStore.updateVersion} change that replaces the tag set."""
    return lambda record: attrs.evolve(record, tags=tags)


def versioningSetter(state: str) -> Callable[[BucketRecord], BucketRecord]:
    """An L{IMetadataStore.updateBucket} change that sets the versioning state."""
    return lambda record: attrs.evolve(record, versioning=state)


def obj(bucket: str, key: str, blob: str = "aa", size: int = 10) -> ObjectRecord:
    """An object record pointing at blob C{blob}."""
    return ObjectRecord(
        bucket=bucket, key=key, size=size, etag="e" * 32, blob=blob, modified=1700000001.5,
        headers=(("Content-Type", "text/plain"),), meta=(("color", "blue"),),
    )


def partRecord(number: int, blob: str = "aa", size: int = 10) -> PartRecord:
    """A part record pointing at blob C{blob}."""
    return PartRecord(number=number, size=size, etag="%032x" % number, blob=blob, modified=1700000003.0,
                      checksums=(("crc32", "AAAAAA=="),))


def uploadRecord(uploadId: str, bucket: str = "b", key: str = "k", initiated: float = 1700000002.0) -> UploadRecord:
    """An upload record, without parts."""
    return UploadRecord(uploadId=uploadId, bucket=bucket, key=key, owner="alice", initiated=initiated,
                        headers=(("Content-Type", "text/plain"),), meta=(("m", "v"),), tags=(("t", "1"),),
                        checksumAlgorithm="CRC32", checksumType="COMPOSITE")


def multipartObj(bucket: str, key: str, parts: Sequence[PartRecord]) -> ObjectRecord:
    """A multipart object record whose manifest is C{parts}."""
    return ObjectRecord(
        bucket=bucket, key=key, size=sum(p.size for p in parts), etag="m" * 32 + "-%d" % len(parts), blob="",
        modified=1700000004.0, parts=tuple(parts), tags=(("t", "1"),), checksumType="COMPOSITE",
    )


def written(content: bytes, segment: int = 1, offset: int = 0) -> WrittenBlob:
    """A blob as the segment store would report it, with one extent (none if empty)."""
    return WrittenBlob(
        size=len(content),
        extents=(Extent(segment, offset, len(content)),) if content else (),
        digests={"md5": hashlib.md5(content).digest(), "blake3": hashlib.sha256(content).digest()},
    )


def usageOf(blobs: Iterable[BlobRecord]) -> Dict[int, int]:
    """What L{IMetadataStore.segmentUsage} must say when these are the blobs: their whole records."""
    usage: Counter[int] = Counter()
    for b in blobs:
        for e in b.extents:
            usage[e.segment] += recordLength(e.length)
    return dict(usage)


def record(bucketName: str, key: str, blob: WrittenBlob) -> ObjectRecord:
    """An object record for a written blob."""
    return obj(bucketName, key, blob.contentAddress, blob.size)


def part(number: int, blob: WrittenBlob) -> PartRecord:
    """The part record for a written blob."""
    return PartRecord(number=number, size=blob.size, etag=blob.digests["md5"].hex(),
                      blob=blob.contentAddress, modified=1700000003.0)


def ifNoneMatch(current: Optional[ObjectRecord]) -> None:
    """The C{If-None-Match: *} precondition."""
    if current is not None:
        raise S3Error("PreconditionFailed")


def manifest(numbers: Optional[Sequence[int]] = None) -> Callable[[UploadRecord], ObjectRecord]:
    """
    A C{build} for L{IMetadataStore.completeUpload}: the object made of the
    upload's parts with these numbers (all parts if C{None}), in order;
    C{InvalidPart} if that is none.
    """

    def build(upload: UploadRecord) -> ObjectRecord:
        chosen = [p for p in upload.parts if numbers is None or p.number in numbers]
        if not chosen:
            raise S3Error("InvalidPart")
        return multipartObj(upload.bucket, upload.key, chosen)

    return build


def copyAs(bucketName: str, key: str, **changes: Any) -> Callable[[ObjectRecord], ObjectRecord]:
    """A C{build} for L{IMetadataStore.copyObject}: the source under a new name."""

    def build(source: ObjectRecord) -> ObjectRecord:
        return attrs.evolve(source, bucket=bucketName, key=key, **changes)

    return build


# -- listing models --------------------------------------------------------------

ListSummary = Tuple[List[str], List[str], bool, str]
UploadSummary = Tuple[List[str], List[str], bool, str, str]


def bruteList(keys: Sequence[str], prefix: str, delimiter: str, after: str, maxKeys: int) -> ListSummary:
    """The S3 listing semantics, computed the slow and obvious way."""
    entries = set()
    for k in keys:
        if not k.startswith(prefix):
            continue
        i = k.find(delimiter, len(prefix)) if delimiter else -1
        entries.add((k[: i + len(delimiter)], True) if i >= 0 else (k, False))
    ordered = sorted(e for e in entries if e[0] > after)
    if maxKeys <= 0:
        return [], [], False, ""
    page = ordered[:maxKeys]
    return (
        [k for k, isPrefix in page if not isPrefix],
        [k for k, isPrefix in page if isPrefix],
        len(ordered) > maxKeys,
        page[-1][0] if page else "",
    )


def summary(page: ListPage) -> ListSummary:
    """A page as comparable plain values."""
    return [o.key for o in page.objects], page.commonPrefixes, page.isTruncated, page.nextAfter


def bruteUploads(
    uploads: Sequence[Tuple[str, float, str]], prefix: str, delimiter: str, keyMarker: str,
    uploadIdMarker: str, maxUploads: int,
) -> UploadSummary:
    """ListMultipartUploads, computed the slow and obvious way from AWS's description."""
    known = {i: (k, t) for k, t, i in uploads}

    def afterMarker(key: str, initiated: float, uploadId: str) -> bool:
        if not keyMarker or key > keyMarker:
            return True
        if key < keyMarker or not uploadIdMarker:
            return False
        marker = known.get(uploadIdMarker)
        if marker is not None and marker[0] == keyMarker:
            return (initiated, uploadId) > (marker[1], uploadIdMarker)
        return uploadId > uploadIdMarker

    entries: Set[Tuple[Any, ...]] = set()
    for key, initiated, uploadId in uploads:
        if not key.startswith(prefix):
            continue
        i = key.find(delimiter, len(prefix)) if delimiter else -1
        if i >= 0:
            common = key[: i + len(delimiter)]
            if not keyMarker or common > keyMarker:
                entries.add((common,))
        elif afterMarker(key, initiated, uploadId):
            entries.add((key, initiated, uploadId))
    ordered = sorted(entries)
    if maxUploads <= 0:
        return [], [], False, "", ""
    page = ordered[:maxUploads]
    last = page[-1] if page else ("",)
    return (
        [e[2] for e in page if len(e) == 3],
        [e[0] for e in page if len(e) == 1],
        len(ordered) > maxUploads,
        last[0],
        last[2] if len(last) == 3 else "",
    )


def uploadSummary(page: UploadPage) -> UploadSummary:
    """A page as comparable plain values."""
    return ([u.uploadId for u in page.uploads], page.commonPrefixes, page.isTruncated,
            page.nextKeyMarker, page.nextUploadIdMarker)


_listKeys = st.lists(st.text(alphabet="ab/\U0010ffff", min_size=1, max_size=5), max_size=30, unique=True)
_listFragments = st.text(alphabet="ab/\U0010ffff", max_size=3)
_uploadKeys = st.text(alphabet="ab/", min_size=1, max_size=4)
_uploadSets = st.lists(
    st.tuples(_uploadKeys, st.integers(0, 3).map(float), st.text(alphabet="xyz", min_size=1, max_size=3)),
    max_size=25, unique_by=lambda u: u[2],
)
_uploadFragments = st.text(alphabet="ab/", max_size=3)


# -- everything a store holds, through its reads -------------------------------------


@attrs.frozen
class Contents:
    """
    Everything a store shows through its reads: equal contents mean no read
    can tell the stores apart.

    @ivar objects: by bucket, every object in key order.
    @ivar versions: by bucket, every version and delete marker in
        ListObjectVersions order (the objects among them).
    @ivar uploads: by bucket, every upload (with its parts) in listing order.
    @ivar blobs: every blob the versions and uploads reference.
    """

    buckets: List[BucketRecord]
    objects: Dict[str, List[ObjectRecord]]
    versions: Dict[str, List[ObjectRecord]]
    uploads: Dict[str, List[UploadRecord]]
    blobs: Dict[str, Optional[BlobRecord]]
    totals: Totals
    usage: Dict[int, int] = attrs.field(factory=dict)

    def references(self) -> Dict[str, int]:
        """Blob references held by the versions and uploads, counted the obvious way."""
        refs: Counter[str] = Counter()
        for versions in self.versions.values():
            for o in versions:
                refs.update(o.blobAddresses())
        for uploads in self.uploads.values():
            for u in uploads:
                refs.update(p.blob for p in u.parts)
        return dict(refs)


# -- the random model of writes ----------------------------------------------------

_CONTENTS = [b"", b"p", b"qq", b"rrr", b"ssss"]
_KEYS = ["k1", "k2", "a/k3"]
_BUCKETS = ["b1", "b1", "b1", "b2"]
# Uploads are named by how many creations back they were made (0 = the
# latest), so most operations hit an upload that exists or just ended.
_uploadRef = st.sampled_from([0, 0, 0, 1, 2])


def _put() -> Any:
    return st.tuples(st.just("put"), st.sampled_from(_BUCKETS), st.sampled_from(_KEYS), st.sampled_from(_CONTENTS))


def _create() -> Any:
    return st.tuples(st.just("createUpload"), st.sampled_from(_BUCKETS), st.sampled_from(_KEYS))


def _part() -> Any:
    return st.tuples(st.just("part"), _uploadRef, st.integers(1, 3), st.sampled_from(_CONTENTS))


def _complete() -> Any:
    return st.tuples(st.just("complete"), _uploadRef, st.sets(st.integers(1, 3), min_size=1), st.booleans())


def _deleteVersion() -> Any:
    # Which version: its place from the newest (0), or the null version; a
    # place past the oldest names no version (a success that does nothing).
    return st.tuples(st.just("deleteVersion"), st.sampled_from(_BUCKETS), st.sampled_from(_KEYS),
                     st.sampled_from([0, 0, 1, 2, 5, "null"]))


def _round() -> Any:
    return st.tuples(st.just("round"), st.integers(0, 9))


# Parts, completes and commit rounds are drawn more often than the rest (one_of
# merges identical alternatives, so each weight is a distinct strategy).
_modelOps = st.lists(st.one_of(
    _put(), _put(), _put(), _create(), _create(), _create(),
    _part(), _part(), _part(), _part(),
    _complete(), _complete(),
    st.tuples(st.just("abort"), _uploadRef),
    st.tuples(st.just("copy"), st.sampled_from(_BUCKETS), st.sampled_from(_KEYS), st.sampled_from(_BUCKETS),
              st.sampled_from(_KEYS)),
    st.tuples(st.just("delete"), st.sampled_from(_BUCKETS), st.sampled_from(_KEYS)),
    st.tuples(st.just("tags"), st.sampled_from(_BUCKETS), st.sampled_from(_KEYS)),
    st.tuples(st.just("config"), st.sampled_from(_BUCKETS)),
    st.tuples(st.just("createBucket"), st.sampled_from(["b1", "b2"])),
    st.tuples(st.just("deleteBucket"), st.sampled_from(["b1", "b2", "b2", "b2", "b2"])),
    st.tuples(st.just("discard"), st.sampled_from(_CONTENTS)),
    st.tuples(st.just("putIfNoneMatch"), st.sampled_from(_BUCKETS), st.sampled_from(_KEYS),
              st.sampled_from(_CONTENTS)),
    st.tuples(st.just("versioning"), st.sampled_from(_BUCKETS), st.sampled_from([ENABLED, ENABLED, SUSPENDED])),
    _deleteVersion(), _deleteVersion(),
    _round(), _round(), _round(),
), min_size=10, max_size=80)


def uploadIdFor(ref: int, uploadIds: Sequence[str]) -> str:
    """The id of the upload created C{ref} creations before the latest (C{"none"} if none was)."""
    return uploadIds[-1 - ref] if ref < len(uploadIds) else "none"


@attrs.frozen
class ModelVersion:
    """
    One version in the model: its contents (C{None} for a delete marker),
    whether it is the null version, and the model's number for it (the
    test maps it to the id the store gave).
    """

    contents: Optional[Tuple[bytes, ...]]
    null: bool
    number: int


@attrs.define
class Model:
    """
    What a store must end up with, computed as if every write committed
    alone, in the order it was made: batching writes into shared rounds
    must decide exactly as this sequential model does.  It is the rules
    of S3 versioning written the obvious way: a list of versions per key,
    oldest first.
    """

    buckets: Set[str] = attrs.field(factory=lambda: {"b1"})
    versioning: Dict[str, str] = attrs.field(factory=dict)
    versions: Dict[Tuple[str, str], List[ModelVersion]] = attrs.field(factory=dict)
    uploads: Dict[str, Tuple[str, str, Dict[int, bytes]]] = attrs.field(factory=dict)
    written: int = 0

    @property
    def objects(self) -> Dict[Tuple[str, str], Tuple[bytes, ...]]:
        """Every key whose latest version is an object, with its contents."""
        return {k: v[-1].contents for k, v in self.versions.items() if v and v[-1].contents is not None}

    def latest(self, bucket: str, key: str) -> Optional[Tuple[bytes, ...]]:
        """The key's latest version's contents, unless it is a delete marker."""
        return self.objects.get((bucket, key))

    def target(self, op: Tuple[Any, ...]) -> Optional[ModelVersion]:
        """The version a C{deleteVersion} names, if there is one."""
        found = self.versions.get((op[1], op[2]), [])
        if op[3] == "null":
            return next((v for v in found if v.null), None)
        return found[-1 - op[3]] if op[3] < len(found) else None

    def _add(self, bucket: str, key: str, contents: Optional[Tuple[bytes, ...]]) -> None:
        """A new latest version (an object or, with C{None}, a delete marker)."""
        state = self.versioning.get(bucket)
        found = self.versions.setdefault((bucket, key), [])
        null = state != ENABLED
        if null:
            found[:] = [v for v in found if not v.null]
        self.written += 1
        found.append(ModelVersion(contents, null, self.written))

    def step(self, op: Tuple[Any, ...], uploadIds: List[str]) -> str:
        """Apply C{op}; the outcome the store must report (C{"ok"} or an error code)."""
        kind = op[0]
        if kind in ("put", "putIfNoneMatch"):
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            if kind == "putIfNoneMatch" and self.latest(op[1], op[2]) is not None:
                return "PreconditionFailed"
            self._add(op[1], op[2], (op[3],))
        elif kind == "createUpload":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            self.uploads[uploadIds[-1]] = (op[1], op[2], {})
        elif kind in ("part", "complete", "abort"):
            uploadId = uploadIdFor(op[1], uploadIds)
            upload = self.uploads.get(uploadId)
            if upload is None:
                return "NoSuchUpload"
            if kind == "part":
                upload[2][op[2]] = op[3]
            elif kind == "abort":
                del self.uploads[uploadId]
            else:
                chosen = tuple(upload[2][n] for n in sorted(upload[2]) if n in op[2])
                if not chosen:
                    return "InvalidPart"
                if op[3] and self.latest(upload[0], upload[1]) is not None:
                    return "PreconditionFailed"
                self._add(upload[0], upload[1], chosen)
                del self.uploads[uploadId]
        elif kind == "copy":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            source = self.latest(op[1], op[2])
            if source is None:
                return "NoSuchKey"
            if op[3] not in self.buckets:
                return "NoSuchBucket"
            self._add(op[3], op[4], source)
        elif kind == "delete":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            if op[1] in self.versioning:
                self._add(op[1], op[2], None)
            else:
                self.versions.pop((op[1], op[2]), None)
        elif kind == "deleteVersion":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            named = self.target(op)
            if named is not None:
                self.versions[(op[1], op[2])].remove(named)
        elif kind == "tags":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            if self.latest(op[1], op[2]) is None:
                return "NoSuchKey"
        elif kind in ("config", "versioning"):
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            if kind == "versioning":
                self.versioning[op[1]] = op[2]
        elif kind == "createBucket":
            if op[1] in self.buckets:
                return "BucketAlreadyOwnedByYou"
            self.buckets.add(op[1])
        elif kind == "deleteBucket":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            if any(b == op[1] and v for (b, _), v in self.versions.items()):
                return "BucketNotEmpty"
            self.buckets.discard(op[1])
            self.versioning.pop(op[1], None)
            for uploadId, upload in list(self.uploads.items()):
                if upload[0] == op[1]:
                    del self.uploads[uploadId]
        return "ok"


def outcomeOf(d: "Deferred[Any]") -> Any:
    """What a fired Deferred came to: C{"ok"}, an S3 error code, or the L{Failure}; C{None} if unfired."""
    results: List[Any] = []
    d.addBoth(results.append)
    if not results:
        return None
    outcome = results[0]
    if isinstance(outcome, Failure):
        return outcome.value.code if isinstance(outcome.value, S3Error) else outcome
    return "ok"


# -- the suite ---------------------------------------------------------------------


class MetadataStoreBehaviour(_Base):
    """
    The contract of L{IMetadataStore}, for any backend (see the module
    docstring).  Mix into a L{SynchronousTestCase} and define L{makeStore}.
    """

    # -- what a backend provides ------------------------------------------------

    def makeStore(self) -> IMetadataStore:
        """A new, opened, empty store (closed at cleanup)."""
        raise NotImplementedError(f"{type(self).__name__} must define makeStore")

    def reopen(self, store: IMetadataStore) -> IMetadataStore:
        """
        Close C{store} and open the same storage again, as a restart would:
        the durability tests compare what both show.  Optional: without it
        those tests are skipped.
        """
        raise NotImplementedError

    def settle(self) -> None:
        """
        Let every write issued so far finish (for a backend whose rounds the
        test drives); nothing by default.
        """

    # -- helpers ------------------------------------------------------------------

    def result(self, d: "Deferred[T]") -> T:
        """What C{d} succeeds with once queued writes finished."""
        self.settle()
        return self.successResultOf(d)

    def failure(self, d: "Deferred[Any]", *types: Type[BaseException]) -> Failure:
        """What C{d} fails with once queued writes finished."""
        self.settle()
        return self.failureResultOf(d, *types)

    def error(self, d: "Deferred[Any]") -> S3Error:
        """The S3 error C{d} fails with once queued writes finished."""
        value = self.failure(d, S3Error).value
        assert isinstance(value, S3Error)
        return value

    def code(self, d: "Deferred[Any]") -> str:
        """The S3 error code C{d} fails with once queued writes finished."""
        return self.error(d).code

    def withBucket(self, name: str = "b", owner: str = "alice") -> IMetadataStore:
        """A new store holding one empty bucket."""
        store = self.makeStore()
        self.result(store.createBucket(bucket(name, owner)))
        return store

    def freshOffset(self) -> int:
        """
        An offset no other blob of this test was written at: a record of a
        segment holds the bytes of one blob only.
        """
        self._offsets: int = getattr(self, "_offsets", 1 << 30) + 1000
        return self._offsets

    def put(self, store: IMetadataStore, key: str, content: bytes, segment: int = 1, offset: Optional[int] = None,
            bucketName: str = "b") -> Tuple[ObjectRecord, WrittenBlob]:
        """Put C{content} at C{key} (written at a fresh offset by default); the record and the blob."""
        blob = written(content, segment, self.freshOffset() if offset is None else offset)
        return self.result(store.putObject(record(bucketName, key, blob), blob)), blob

    def started(self, uploadId: str = "u1", key: str = "k") -> IMetadataStore:
        """A new store with bucket C{b} and upload C{uploadId} of C{key}."""
        store = self.withBucket()
        self.assertEqual(self.result(store.createUpload(uploadRecord(uploadId, "b", key))),
                         uploadRecord(uploadId, "b", key))
        return store

    def garbage(self, store: IMetadataStore) -> Dict[int, int]:
        """Unreferenced bytes per segment."""
        self.settle()
        return self.successResultOf(store.totals()).garbage

    def blob(self, store: IMetadataStore, address: str) -> Optional[BlobRecord]:
        """The blob record of C{address}."""
        self.settle()
        return self.successResultOf(store.getBlob(address))

    def refs(self, store: IMetadataStore, address: str) -> int:
        """References on C{address} (0 if not stored)."""
        found = self.blob(store, address)
        return 0 if found is None else found.refs

    def listing(self, store: IMetadataStore, bucketName: str = "b", **kw: Any) -> ListSummary:
        """One listObjects page as plain values."""
        self.settle()
        return summary(self.successResultOf(store.listObjects(bucketName, **kw)))

    def contents(self, store: IMetadataStore) -> Contents:
        """Everything C{store} shows, paging through every listing."""
        self.settle()
        buckets = self.successResultOf(store.listBuckets())
        objects: Dict[str, List[ObjectRecord]] = {}
        versions: Dict[str, List[ObjectRecord]] = {}
        uploads: Dict[str, List[UploadRecord]] = {}
        for b in buckets:
            found: List[ObjectRecord] = []
            after = ""
            while True:
                page = self.successResultOf(store.listObjects(b.name, after=after, maxKeys=7))
                for summary in page.objects:
                    record = self.successResultOf(store.getObject(b.name, summary.key))
                    assert record is not None, summary
                    self.assertEqual(ObjectSummary.of(record), summary)
                    found.append(record)
                if not page.isTruncated:
                    break
                after = page.nextAfter
            objects[b.name] = found
            versions[b.name] = self.allVersions(store, b.name)
            listed: List[UploadRecord] = []
            keyMarker = uploadIdMarker = ""
            while True:
                upage = self.successResultOf(
                    store.listUploads(b.name, keyMarker=keyMarker, uploadIdMarker=uploadIdMarker, maxUploads=7)
                )
                for u in upage.uploads:
                    full = self.successResultOf(store.getUpload(u.uploadId))
                    assert full is not None, u
                    self.assertEqual(attrs.evolve(full, parts=()), u)
                    listed.append(full)
                if not upage.isTruncated:
                    break
                keyMarker, uploadIdMarker = upage.nextKeyMarker, upage.nextUploadIdMarker
            uploads[b.name] = listed
        usage = {s: n for s, n in self.successResultOf(store.segmentUsage()).items() if n}
        partial = Contents(buckets, objects, versions, uploads, {}, self.successResultOf(store.totals()), usage)
        blobs = {a: self.successResultOf(store.getBlob(a)) for a in sorted(partial.references())}
        return attrs.evolve(partial, blobs=blobs)

    def allVersions(self, store: IMetadataStore, bucketName: str, maxKeys: int = 5) -> List[ObjectRecord]:
        """
        Every version of a bucket, paging through ListObjectVersions; each
        read back by its id agrees with its summary, and a key's latest
        version is what getObject shows (or a delete marker, when it shows
        nothing).
        """
        self.settle()
        found: List[ObjectRecord] = []
        latest: Dict[str, List[bool]] = {}
        keyMarker = versionIdMarker = ""
        while True:
            page = self.successResultOf(store.listVersions(
                bucketName, keyMarker=keyMarker, versionIdMarker=versionIdMarker, maxKeys=maxKeys))
            for v in page.versions:
                got = self.successResultOf(store.getVersion(bucketName, v.key, v.wireVersionId))
                assert got is not None, v
                self.assertEqual(VersionSummary.of(got, v.isLatest, v.noncurrentSince), v)
                if v.isLatest:
                    self.assertEqual(v.noncurrentSince, 0.0, v)
                if v.isLatest:
                    self.assertEqual(self.successResultOf(store.getVersion(bucketName, v.key)), got)
                    current = self.successResultOf(store.getObject(bucketName, v.key))
                    self.assertEqual(current, None if got.deleteMarker else got)
                found.append(got)
                latest.setdefault(v.key, []).append(v.isLatest)
            if not page.isTruncated:
                break
            keyMarker, versionIdMarker = page.nextKeyMarker, page.nextVersionIdMarker
        for key, flags in latest.items():
            self.assertEqual(flags, [True] + [False] * (len(flags) - 1), key)  # the newest, and only it
        return found

    def tryReopen(self, store: IMetadataStore) -> Optional[IMetadataStore]:
        """L{reopen}, or C{None} if the backend cannot."""
        self.settle()
        try:
            return self.reopen(store)
        except NotImplementedError:
            return None

    def needReopen(self, store: IMetadataStore) -> IMetadataStore:
        """L{reopen}, or skip the test if the backend cannot."""
        again = self.tryReopen(store)
        if again is None:
            raise SkipTest(f"{type(self).__name__} does not define reopen")
        return again

    def durable(self, store: IMetadataStore) -> IMetadataStore:
        """
        Reopen C{store} and check every read shows what it showed before;
        the reopened store (C{store} itself if the backend cannot reopen).
        """
        before = self.contents(store)
        again = self.tryReopen(store)
        if again is None:
            return store
        self.assertEqual(self.contents(again), before)
        return again

    def checkReferences(self, store: IMetadataStore, writtenBytes: int,
                        extentsOf: Dict[str, Set[Extent]]) -> Contents:
        """
        Bytes stay alive exactly as long as something references them; a
        blob's extents are some written for its content; totals count the
        objects, their sizes and the live blobs; garbage is exactly what was
        written minus what is alive.
        """
        c = self.contents(store)
        refs = c.references()
        live = liveSize = 0
        for address in extentsOf:
            found = self.successResultOf(store.getBlob(address))
            if refs.get(address, 0):
                assert found is not None, address
                self.assertEqual(found.refs, refs[address], address)
                self.assertLessEqual(set(found.extents), extentsOf[address])
                live += sum(x.length for x in found.extents)
                liveSize += found.size
            else:
                self.assertIsNone(found, address)
        objects = [o for inBucket in c.objects.values() for o in inBucket]
        self.assertEqual((c.totals.objects, c.totals.logicalBytes, c.totals.liveBytes),
                         (len(objects), sum(o.size for o in objects), liveSize))
        self.assertEqual(c.totals.garbageBytes, writtenBytes - live)
        self.assertNotIn(0, c.totals.garbage.values())
        self.assertEqual(c.usage, usageOf(b for b in c.blobs.values() if b is not None))
        return c

    # -- lifecycle ----------------------------------------------------------------

    def test_empty(self) -> None:
        """A new store is ready and holds nothing; its totals are zero; nothing is failing."""
        store = self.makeStore()
        self.assertTrue(store.ready)
        self.assertIsNone(store.failing)
        self.assertEqual(self.successResultOf(store.listBuckets()), [])
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {}))
        self.assertIsNone(self.successResultOf(store.getBucket("b")))
        self.assertIsNone(self.successResultOf(store.getObject("b", "k")))
        self.assertIsNone(self.successResultOf(store.getBlob("aa")))
        self.assertIsNone(self.successResultOf(store.getUpload("u1")))
        self.assertEqual(self.successResultOf(store.staleUploads(1e12)), [])

    def test_probe(self) -> None:
        """probe succeeds, changes nothing readable and leaves failing clear."""
        store = self.withBucket()
        before = self.contents(store)
        self.assertIsNone(self.result(store.probe()))
        self.assertIsNone(store.failing)
        self.assertEqual(self.contents(store), before)

    def test_writesRefusedAfterClose(self) -> None:
        """After close every write fails with ServiceUnavailable and the store is not ready."""
        store = self.withBucket()
        self.result(store.close())
        self.assertFalse(store.ready)
        blob = written(b"x")
        writes: List["Deferred[Any]"] = [
            store.createBucket(bucket("c")),
            store.putObject(record("b", "k", blob), blob),
            store.deleteObject("b", "k"),
            store.updateBucket("b", configSetter("cors", "<C/>")),
            store.createUpload(uploadRecord("u1")),
            store.deleteBucket("b", "alice"),
        ]
        for d in writes:
            self.assertEqual(self.code(d), "ServiceUnavailable")

    def test_closeFinishesQueuedWrites(self) -> None:
        """
        close lets writes already queued finish (and fires after them);
        writes issued after close are refused; the finished ones are durable.
        """
        store = self.withBucket()
        blob = written(b"x")
        put = store.putObject(record("b", "k", blob), blob)
        closed = store.close()
        self.assertEqual(self.code(store.createBucket(bucket("c"))), "ServiceUnavailable")
        self.assertEqual(self.result(put).key, "k")
        self.assertIsNone(self.result(closed))
        again = self.tryReopen(store)
        if again is not None:
            self.assertEqual(self.successResultOf(again.getObject("b", "k")), record("b", "k", blob))
            self.assertIsNone(self.successResultOf(again.getBucket("c")))

    def test_closeTwice(self) -> None:
        """A second close while the first runs fires after it; a close after that is a no-op."""
        store = self.withBucket()
        first, second = store.close(), store.close()
        self.assertIsNone(self.result(first))
        self.assertIsNone(self.result(second))
        self.assertIsNone(self.result(store.close()))
        self.assertFalse(store.ready)

    # -- buckets --------------------------------------------------------------------

    def test_createAndList(self) -> None:
        """Created buckets are visible at once, listed by name whatever the creation order."""
        store = self.makeStore()
        for name in ["zz", "aa", "mm"]:
            self.assertIsNone(self.result(store.createBucket(bucket(name))))
        self.assertEqual([b.name for b in self.successResultOf(store.listBuckets())], ["aa", "mm", "zz"])
        self.assertEqual(self.successResultOf(store.getBucket("aa")), bucket("aa"))
        self.assertIsNone(self.successResultOf(store.getBucket("nope")))
        self.assertEqual(self.successResultOf(store.listObjects("aa")), ListPage([], [], False, ""))

    def test_createConflicts(self) -> None:
        """The same owner gets BucketAlreadyOwnedByYou, anyone else BucketAlreadyExists; the record stays."""
        store = self.withBucket()
        f = self.error(store.createBucket(bucket("b")))
        self.assertEqual((f.code, f.extra), ("BucketAlreadyOwnedByYou", {"BucketName": "b"}))
        self.assertEqual(self.code(store.createBucket(bucket("b", "bob"))), "BucketAlreadyExists")
        self.assertEqual(self.successResultOf(store.getBucket("b")), bucket("b"))

    def test_createRace(self) -> None:
        """Of two creations of one name issued together the first wins, the other is BucketAlreadyExists."""
        store = self.makeStore()
        store.probe()  # a round in flight: both creations share the next one
        first = store.createBucket(bucket("b"))
        second = store.createBucket(bucket("b", "bob"))
        self.assertIsNone(self.result(first))
        self.assertEqual(self.code(second), "BucketAlreadyExists")
        self.assertEqual(self.successResultOf(store.getBucket("b")), bucket("b"))

    def test_delete(self) -> None:
        """An empty bucket can be deleted by its owner; then it is gone and can be created again."""
        store = self.withBucket()
        self.assertIsNone(self.result(store.deleteBucket("b", "alice")))
        self.assertIsNone(self.successResultOf(store.getBucket("b")))
        self.assertEqual(self.successResultOf(store.listBuckets()), [])
        self.assertEqual(self.code(store.deleteBucket("b", "alice")), "NoSuchBucket")
        self.result(store.createBucket(bucket("b", "bob")))
        self.assertEqual(self.successResultOf(store.getBucket("b")), bucket("b", "bob"))

    def test_deleteErrors(self) -> None:
        """Missing bucket: NoSuchBucket; someone else's: AccessDenied; with an object: BucketNotEmpty."""
        store = self.withBucket()
        self.assertEqual(self.code(store.deleteBucket("zz", "alice")), "NoSuchBucket")
        self.assertEqual(self.code(store.deleteBucket("b", "bob")), "AccessDenied")
        self.put(store, "k", b"x")
        f = self.error(store.deleteBucket("b", "alice"))
        self.assertEqual((f.code, f.extra), ("BucketNotEmpty", {"BucketName": "b"}))
        self.assertIsNotNone(self.successResultOf(store.getObject("b", "k")))

    def test_deleteAfterQueuedPut(self) -> None:
        """A bucket deletion issued after a put into it sees the put: BucketNotEmpty."""
        store = self.withBucket()
        blob = written(b"x")
        store.probe()
        put = store.putObject(record("b", "k", blob), blob)
        gone = store.deleteBucket("b", "alice")
        self.result(put)
        self.assertEqual(self.code(gone), "BucketNotEmpty")

    def test_deleteAfterQueuedDeletes(self) -> None:
        """A bucket deletion issued after deletes of every object in it succeeds."""
        store = self.withBucket()
        self.put(store, "k", b"x")
        store.probe()
        deleted = store.deleteObject("b", "k")
        gone = store.deleteBucket("b", "alice")
        self.assertEqual(self.result(deleted).key, "k")  # type: ignore[union-attr]
        self.assertIsNone(self.result(gone))
        self.assertEqual(self.successResultOf(store.listBuckets()), [])
        self.assertEqual(self.successResultOf(store.totals()).objects, 0)

    def test_putAfterQueuedBucketDelete(self) -> None:
        """A put issued after its bucket's deletion is NoSuchBucket and its bytes are garbage."""
        store = self.withBucket()
        store.probe()
        gone = store.deleteBucket("b", "alice")
        blob = written(b"xyz", 4)
        put = store.putObject(record("b", "k", blob), blob)
        self.assertIsNone(self.result(gone))
        self.assertEqual(self.code(put), "NoSuchBucket")
        self.assertEqual(self.garbage(store), {4: 3})

    def test_bucketConfig(self) -> None:
        """
        updateBucket sets and removes documents, each write seeing the
        ones before; it fires with the new record; NoSuchBucket otherwise.
        """
        store = self.withBucket()
        store.probe()
        first = store.updateBucket("b", configSetter("cors", "<C/>"))
        second = store.updateBucket("b", configSetter("tagging", "<T/>"))
        missing = store.updateBucket("zz", configSetter("cors", "x"))
        self.assertEqual(self.result(first).config, (("cors", "<C/>"),))
        self.assertEqual(self.result(second).config, (("cors", "<C/>"), ("tagging", "<T/>")))
        self.assertEqual(self.code(missing), "NoSuchBucket")
        removed = self.result(store.updateBucket("b", configSetter("cors", None)))
        self.assertEqual(removed, bucket("b").withConfig("tagging", "<T/>"))
        self.assertEqual(self.successResultOf(store.getBucket("b")), removed)
        self.assertEqual(self.successResultOf(store.listBuckets()), [removed])
        store = self.durable(store)
        self.assertEqual(self.successResultOf(store.getBucket("b")).configValue("tagging"),  # type: ignore[union-attr]
                         "<T/>")

    # -- objects --------------------------------------------------------------------

    def test_putAndGet(self) -> None:
        """A put object, its blob and its listing are visible once it fires; totals count it."""
        store = self.withBucket()
        blob = written(b"hello", 3, 100)
        rec = record("b", "k", blob)
        self.assertEqual(self.result(store.putObject(rec, blob)), rec)
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), rec)
        self.assertEqual(self.successResultOf(store.getBlob(blob.contentAddress)),
                         BlobRecord(blob.contentAddress, 5, blob.extents, 1))
        self.assertEqual(self.listing(store), (["k"], [], False, "k"))
        self.assertEqual(self.successResultOf(store.listObjects("b")).objects, [ObjectSummary.of(rec)])
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 5, 5, {}))
        self.assertIsNone(self.successResultOf(store.getObject("b", "other")))
        self.assertIsNone(self.successResultOf(store.getObject("nobucket", "k")))

    def test_recordsKeepEveryField(self) -> None:
        """Every field of an object record comes back as it was put."""
        store = self.withBucket()
        blob = written(b"fields")
        rec = attrs.evolve(
            record("b", "k/\u00e9\U0001f600", blob),
            headers=(("Cache-Control", "no"), ("Content-Type", "a/b")), meta=(("a", ""), ("b", "2")),
            checksums=(("crc32", "AAAAAA=="),), tags=(("t", "v"),), checksumType="FULL_OBJECT",
        )
        self.result(store.putObject(rec, blob))
        self.assertEqual(self.successResultOf(store.getObject("b", rec.key)), rec)
        self.assertEqual(self.successResultOf(store.listObjects("b")).objects, [ObjectSummary.of(rec)])

    def test_putNoSuchBucket(self) -> None:
        """A put into a missing bucket is NoSuchBucket and its bytes are garbage; so are deletes and lists."""
        store = self.makeStore()
        blob = written(b"hello", 7)
        f = self.error(store.putObject(record("zz", "k", blob), blob))
        self.assertEqual((f.code, f.extra), ("NoSuchBucket", {"BucketName": "zz"}))
        self.assertEqual(self.garbage(store), {7: 5})
        self.assertIsNone(self.successResultOf(store.getBlob(blob.contentAddress)))
        self.assertEqual(self.code(store.deleteObject("zz", "k")), "NoSuchBucket")
        self.assertEqual(self.code(store.listObjects("zz")), "NoSuchBucket")

    def test_replace(self) -> None:
        """Replacing an object releases the old blob (its bytes are garbage); totals follow the new size."""
        store = self.withBucket()
        _, x = self.put(store, "k", b"0123456789", 1, 0)
        rec, _ = self.put(store, "k", b"abc", 1, 10)
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), rec)
        self.assertIsNone(self.successResultOf(store.getBlob(x.contentAddress)))
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 3, 3, {1: 10}))

    def test_replaceWithSameContent(self) -> None:
        """
        Re-putting identical content keeps the blob at one reference, and the
        NEW copy becomes the blob's bytes (a re-upload repairs a rotten copy):
        the old copy is garbage.
        """
        store = self.withBucket()
        self.put(store, "k", b"0123456789", 1, 0)
        _, second = self.put(store, "k", b"0123456789", 2, 0)
        self.assertEqual(self.blob(store, second.contentAddress),
                         BlobRecord(second.contentAddress, 10, (Extent(2, 0, 10),), 1))
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 10, 10, {1: 10}))

    def test_dedup(self) -> None:
        """
        Two objects with the same content share one blob, whose bytes are the
        latest copy written (the older copy is garbage); deleting one keeps
        the blob, deleting the other drops it and its bytes become garbage.
        """
        store = self.withBucket()
        _, one = self.put(store, "one", b"same", 1, 0)
        _, two = self.put(store, "two", b"same", 1, 50)
        address = one.contentAddress
        self.assertEqual(self.blob(store, address), BlobRecord(address, 4, two.extents, 2))
        self.assertEqual(self.successResultOf(store.totals()), Totals(2, 8, 4, {1: 4}))
        self.result(store.deleteObject("b", "one"))
        self.assertEqual(self.blob(store, address), BlobRecord(address, 4, two.extents, 1))
        self.assertEqual(self.garbage(store), {1: 4})
        self.result(store.deleteObject("b", "two"))
        self.assertIsNone(self.blob(store, address))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {1: 8}))
        self.durable(store)

    def test_sameExtentsNotGarbage(self) -> None:
        """A put that names the blob's own extents (the same stored copy) adds no garbage."""
        store = self.withBucket()
        self.put(store, "one", b"0123456789", 1, 0)
        _, blob = self.put(store, "copy", b"0123456789", 1, 0)
        self.assertEqual(self.garbage(store), {})
        self.assertEqual(self.blob(store, blob.contentAddress),
                         BlobRecord(blob.contentAddress, 10, blob.extents, 2))

    def test_emptyObject(self) -> None:
        """An empty object (no extents) is stored and counted; deleting it adds no garbage."""
        store = self.withBucket()
        rec, blob = self.put(store, "empty", b"")
        self.assertEqual(self.successResultOf(store.getObject("b", "empty")), rec)
        self.assertEqual(self.blob(store, blob.contentAddress), BlobRecord(blob.contentAddress, 0, (), 1))
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 0, 0, {}))
        self.result(store.deleteObject("b", "empty"))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {}))

    def test_putObjectWithParts(self) -> None:
        """putObject refuses a multipart record with ValueError and its bytes are garbage."""
        store = self.withBucket()
        a = written(b"abc", 4)
        self.failure(store.putObject(multipartObj("b", "k", [part(1, a)]), a), ValueError)
        self.assertEqual(self.garbage(store), {4: 3})
        self.assertIsNone(self.successResultOf(store.getObject("b", "k")))

    def test_deleteObject(self) -> None:
        """Deleting fires with the version deleted; the key, its blob and its listing are gone."""
        store = self.withBucket()
        rec, blob = self.put(store, "k", b"x", 2, 0)
        self.assertEqual(self.result(store.deleteObject("b", "k")), rec)
        self.assertIsNone(self.successResultOf(store.getObject("b", "k")))
        self.assertIsNone(self.successResultOf(store.getBlob(blob.contentAddress)))
        self.assertEqual(self.listing(store), ([], [], False, ""))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {2: 1}))

    def test_deleteMissing(self) -> None:
        """Deleting a missing key succeeds with None and changes nothing."""
        store = self.withBucket()
        before = self.contents(store)
        self.assertIsNone(self.result(store.deleteObject("b", "nope")))
        self.assertEqual(self.contents(store), before)

    def test_deleteRace(self) -> None:
        """Of two deletes of one key issued together the first gets the version, the second None."""
        store = self.withBucket()
        self.put(store, "k", b"x")
        store.probe()
        first = store.deleteObject("b", "k")
        second = store.deleteObject("b", "k")
        self.assertEqual(self.result(first).key, "k")  # type: ignore[union-attr]
        self.assertIsNone(self.result(second))

    def test_deletePrecondition(self) -> None:
        """A delete precondition is given the current version and can refuse; the object stays."""
        store = self.withBucket()
        rec, _ = self.put(store, "k", b"x")
        seen: List[Optional[ObjectRecord]] = []

        def refuse(current: Optional[ObjectRecord]) -> None:
            seen.append(current)
            raise S3Error("PreconditionFailed")

        self.assertEqual(self.code(store.deleteObject("b", "k", refuse)), "PreconditionFailed")
        self.assertEqual(seen, [rec])
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), rec)
        self.assertEqual(self.code(store.deleteObject("b", "nope", refuse)), "PreconditionFailed")
        self.assertEqual(seen, [rec, None])

    def test_discard(self) -> None:
        """discard counts a failed upload's bytes as garbage, per segment; nothing for no bytes; durable."""
        store = self.makeStore()
        self.assertIsNone(self.result(store.discard(written(b"abc", 4))))
        self.assertIsNone(self.result(store.discard(written(b"de", 4, 10))))
        self.assertIsNone(self.result(store.discard(written(b"f", 5))))
        self.assertIsNone(self.result(store.discard(written(b""))))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {4: 5, 5: 1}))
        self.durable(store)

    # -- preconditions ----------------------------------------------------------------

    def test_ifNoneMatchRace(self) -> None:
        """
        Of two C{If-None-Match: *} puts of one key issued together exactly
        the first wins; the loser is PreconditionFailed and its bytes garbage.
        """
        store = self.withBucket()
        a, b = written(b"first", 1, 0), written(b"second", 2, 0)
        store.probe()
        first = store.putObject(record("b", "k", a), a, ifNoneMatch)
        second = store.putObject(record("b", "k", b), b, ifNoneMatch)
        self.assertEqual(self.result(first).blob, a.contentAddress)
        self.assertEqual(self.code(second), "PreconditionFailed")
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), record("b", "k", a))
        self.assertEqual(self.garbage(store), {2: 6})
        self.assertIsNone(self.blob(store, b.contentAddress))

    def test_preconditionSeesEarlierWrites(self) -> None:
        """A precondition is given the key as the writes issued before it leave it."""
        store = self.withBucket()
        a = written(b"first")
        rec = record("b", "k", a)
        seen: List[Optional[ObjectRecord]] = []
        store.probe()
        ds: List["Deferred[Any]"] = [
            store.putObject(rec, a),
            store.putObject(rec, a, seen.append),
            store.deleteObject("b", "k"),
            store.putObject(rec, a, seen.append),
        ]
        for d in ds:
            self.result(d)
        self.assertEqual(seen, [rec, None])
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), rec)

    def test_anyExceptionRefuses(self) -> None:
        """Any exception from a precondition refuses the write with it and the bytes are garbage."""
        store = self.withBucket()
        a = written(b"abc", 9)

        def broken(current: Optional[ObjectRecord]) -> None:
            raise ZeroDivisionError()

        self.failure(store.putObject(record("b", "k", a), a, broken), ZeroDivisionError)
        self.assertEqual(self.garbage(store), {9: 3})
        self.assertIsNone(self.successResultOf(store.getObject("b", "k")))

    def test_refusalLeavesOthers(self) -> None:
        """A refused write undoes only itself: the writes around it succeed."""
        store = self.withBucket()
        a, b, c = written(b"a", 1, 0), written(b"b", 1, 1), written(b"c", 1, 2)
        store.probe()
        ok1 = store.putObject(record("b", "one", a), a)
        refused = store.putObject(record("b", "one", b), b, ifNoneMatch)
        ok2 = store.putObject(record("b", "two", c), c)
        self.result(ok1)
        self.assertEqual(self.code(refused), "PreconditionFailed")
        self.result(ok2)
        self.assertEqual(self.listing(store)[0], ["one", "two"])
        self.assertEqual(self.successResultOf(store.totals()), Totals(2, 2, 2, {1: 1}))

    # -- copies and tags --------------------------------------------------------------

    def test_copyShares(self) -> None:
        """A copy shares the bytes: deleting the source keeps them alive; deleting both frees them."""
        store = self.withBucket()
        src, a = self.put(store, "src", b"content", 1, 0)
        source, dst = self.result(store.copyObject("b", "src", copyAs("b", "dst")))
        self.assertEqual(source, src)
        self.assertEqual(dst, attrs.evolve(src, key="dst"))
        self.assertEqual(self.successResultOf(store.getObject("b", "dst")), dst)
        self.assertEqual(self.refs(store, a.contentAddress), 2)
        self.assertEqual(self.successResultOf(store.totals()), Totals(2, 14, 7, {}))
        self.result(store.deleteObject("b", "src"))
        self.assertEqual(self.refs(store, a.contentAddress), 1)
        self.assertEqual(self.garbage(store), {})
        self.result(store.deleteObject("b", "dst"))
        self.assertEqual(self.garbage(store), {1: 7})
        self.durable(store)

    def test_copyMultipart(self) -> None:
        """A multipart object copies as its manifest, to another bucket, referencing every part."""
        store = self.withBucket()
        self.result(store.createUpload(uploadRecord("u1", key="src")))
        a, b = written(b"a", 1, 0), written(b"b", 1, 10)
        self.result(store.putPart("u1", part(1, a), a))
        self.result(store.putPart("u1", part(2, b), b))
        self.result(store.completeUpload("u1", manifest()))
        self.result(store.createBucket(bucket("c")))
        dst = self.result(store.copyObject("b", "src", copyAs("c", "dst"))).record
        self.assertEqual(dst.blobAddresses(), (a.contentAddress, b.contentAddress))
        self.assertEqual(self.successResultOf(store.getObject("c", "dst")), dst)
        self.assertEqual((self.refs(store, a.contentAddress), self.refs(store, b.contentAddress)), (2, 2))
        self.assertEqual(self.contents(store).references(), {a.contentAddress: 2, b.contentAddress: 2})

    def test_copyOntoItself(self) -> None:
        """Copying onto the same key replaces the metadata; references and garbage are unchanged."""
        store = self.withBucket()
        _, a = self.put(store, "k", b"x", 1, 0)
        new = self.result(store.copyObject("b", "k", copyAs("b", "k", meta=(("new", "yes"),)))).record
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), new)
        self.assertEqual(new.meta, (("new", "yes"),))
        self.assertEqual(self.refs(store, a.contentAddress), 1)
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 1, 1, {}))

    def test_copyErrors(self) -> None:
        """
        Missing source: NoSuchKey (or NoSuchBucket); missing destination
        bucket: NoSuchBucket; a record referencing other blobs: ValueError;
        the precondition is about the destination; build's errors refuse.
        """
        store = self.withBucket()
        self.put(store, "k", b"x", 1, 0)
        before = self.contents(store)
        f = self.error(store.copyObject("b", "nope", copyAs("b", "d")))
        self.assertEqual((f.code, f.extra), ("NoSuchKey", {"Key": "nope"}))
        self.assertEqual(self.code(store.copyObject("zz", "k", copyAs("b", "d"))), "NoSuchBucket")
        self.assertEqual(self.code(store.copyObject("b", "k", copyAs("zz", "d"))), "NoSuchBucket")
        self.failure(store.copyObject("b", "k", copyAs("b", "d", blob="other")), ValueError)

        def refuse(source: ObjectRecord) -> ObjectRecord:
            raise S3Error("InvalidRequest")

        self.assertEqual(self.code(store.copyObject("b", "k", refuse)), "InvalidRequest")
        self.assertEqual(self.code(store.copyObject("b", "k", copyAs("b", "k"), ifNoneMatch)), "PreconditionFailed")
        self.assertEqual(self.contents(store), before)
        self.result(store.copyObject("b", "k", copyAs("b", "d"), ifNoneMatch))
        self.assertEqual(self.code(store.copyObject("b", "k", copyAs("b", "d"), ifNoneMatch)), "PreconditionFailed")

    def test_copyBuildSeesCurrentSource(self) -> None:
        """build is given the source as the writes issued before the copy leave it."""
        store = self.withBucket()
        self.put(store, "k", b"old")
        new = written(b"new", 2)
        seen: List[ObjectRecord] = []

        def build(source: ObjectRecord) -> ObjectRecord:
            seen.append(source)
            return attrs.evolve(source, key="d")

        store.probe()
        put = store.putObject(record("b", "k", new), new)
        copied = store.copyObject("b", "k", build)
        self.result(put)
        self.assertEqual(self.result(copied).record.blob, new.contentAddress)
        self.assertEqual(seen, [record("b", "k", new)])

    def test_deleteThenCopy(self) -> None:
        """A copy issued after a delete of its source is NoSuchKey; the bytes are garbage."""
        store = self.withBucket()
        self.put(store, "k", b"x", 1, 0)
        store.probe()
        deleted = store.deleteObject("b", "k")
        copied = store.copyObject("b", "k", copyAs("b", "d"))
        self.result(deleted)
        self.assertEqual(self.code(copied), "NoSuchKey")
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {1: 1}))

    def test_copyThenDelete(self) -> None:
        """A delete issued after a copy of its source leaves the copy's bytes alive."""
        store = self.withBucket()
        a = written(b"x", 1, 0)
        store.probe()
        put = store.putObject(record("b", "k", a), a)
        copied = store.copyObject("b", "k", copyAs("b", "d"))
        deleted = store.deleteObject("b", "k")
        self.result(put)
        self.assertEqual(self.result(copied).record.key, "d")
        self.result(deleted)
        self.assertIsNone(self.successResultOf(store.getObject("b", "k")))
        self.assertEqual(self.blob(store, a.contentAddress), BlobRecord(a.contentAddress, 1, a.extents, 1))
        self.assertEqual(self.garbage(store), {})
        self.durable(store)

    def test_tags(self) -> None:
        """
        updateVersion replaces the tags of the version the writes before it
        leave, fires with the updated record; NoSuchKey / NoSuchBucket otherwise.
        """
        store = self.withBucket()
        a = written(b"x", 1, 0)
        store.probe()
        put = store.putObject(record("b", "k", a), a)
        tagged = store.updateVersion("b", "k", None, tagsSetter((("a", "1"), ("b", "2"))))
        self.result(put)
        expected = attrs.evolve(record("b", "k", a), tags=(("a", "1"), ("b", "2")))
        self.assertEqual(self.result(tagged), expected)
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), expected)
        f = self.error(store.updateVersion("b", "missing", None, tagsSetter(())))
        self.assertEqual((f.code, f.extra), ("NoSuchKey", {"Key": "missing"}))
        self.assertEqual(self.code(store.updateVersion("zz", "k", None, tagsSetter(()))), "NoSuchBucket")
        self.assertEqual(self.result(store.updateVersion("b", "k", None, tagsSetter(()))).tags, ())
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 1, 1, {}))
        store.probe()
        deleted = store.deleteObject("b", "k")
        late = store.updateVersion("b", "k", None, tagsSetter(()))
        self.result(deleted)
        self.assertEqual(self.code(late), "NoSuchKey")

    # -- versions ----------------------------------------------------------------------

    def versioned(self, state: str = ENABLED) -> IMetadataStore:
        """A store with bucket C{b} whose versioning is C{state}."""
        store = self.withBucket()
        self.assertEqual(self.result(store.updateBucket("b", versioningSetter(state))).versioning, state)
        return store

    def versionsOf(self, store: IMetadataStore, key: str = "k", bucketName: str = "b") -> List[ObjectRecord]:
        """Every version of C{key}, newest first (through the paged listing)."""
        return [v for v in self.allVersions(store, bucketName) if v.key == key]

    def test_unversionedHasOnlyTheNullVersion(self) -> None:
        """A bucket that never had versioning keeps one version per key, the null one; a delete leaves nothing."""
        store = self.withBucket()
        self.put(store, "k", b"one")
        second, _ = self.put(store, "k", b"two")
        self.assertIsNone(second.versionId)
        self.assertEqual(self.versionsOf(store), [second])
        self.assertEqual(self.successResultOf(store.getVersion("b", "k", NULL_VERSION_ID)), second)
        self.assertIsNone(self.result(store.deleteObject("b", "k", modified=5.0)).versionId)  # type: ignore[union-attr]
        self.assertEqual(self.versionsOf(store), [])
        self.assertIsNone(self.successResultOf(store.getVersion("b", "k")))

    def test_enabledKeepsEveryVersion(self) -> None:
        """
        Each write gets a new id, greater than the one before; every version
        stays, readable by id; the latest is what getObject shows; the
        bytes of each stay referenced.
        """
        store = self.versioned()
        made = [self.put(store, "k", content)[0] for content in (b"one", b"two", b"three")]
        ids = [m.versionId for m in made]
        self.assertNotIn(None, ids)
        self.assertEqual(ids, sorted(ids, key=str))
        self.assertEqual(len(set(ids)), 3)
        self.assertEqual(self.versionsOf(store), made[::-1])
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), made[-1])
        for m in made:
            self.assertEqual(self.successResultOf(store.getVersion("b", "k", m.wireVersionId)), m)
            self.assertEqual(self.refs(store, m.blob), 1)
        page = self.successResultOf(store.listVersions("b"))
        self.assertEqual([v.isLatest for v in page.versions], [True, False, False])
        self.assertEqual(self.listing(store), (["k"], [], False, "k"))
        self.assertEqual(self.successResultOf(store.totals()).objects, 1)

    def test_nullVersionFromBeforeVersioning(self) -> None:
        """An object written before versioning was enabled stays as the null version, older than what follows."""
        store = self.withBucket()
        old, _ = self.put(store, "k", b"old")
        self.result(store.updateBucket("b", versioningSetter(ENABLED)))
        new, _ = self.put(store, "k", b"new")
        self.assertEqual([v.wireVersionId for v in self.versionsOf(store)], [new.wireVersionId, NULL_VERSION_ID])
        self.assertEqual(self.successResultOf(store.getVersion("b", "k", NULL_VERSION_ID)), old)

    def test_deleteAddsAMarker(self) -> None:
        """
        A DELETE on a versioned bucket adds a delete marker as the latest
        version: the key is gone from getObject and listings, its versions
        stay; removing the marker by id brings the object back.
        """
        store = self.versioned()
        made, _ = self.put(store, "k", b"data")
        marker = self.result(store.deleteObject("b", "k", modified=1700000100.0))
        assert marker is not None
        self.assertTrue(marker.deleteMarker)
        self.assertEqual((marker.size, marker.modified, marker.blobAddresses()), (0, 1700000100.0, ()))
        self.assertIsNotNone(marker.versionId)
        self.assertIsNone(self.successResultOf(store.getObject("b", "k")))
        self.assertEqual(self.successResultOf(store.getVersion("b", "k")), marker)
        self.assertEqual(self.listing(store), ([], [], False, ""))
        self.assertEqual(self.versionsOf(store), [marker, made])
        self.assertEqual([v.isLatest for v in self.successResultOf(store.listVersions("b")).versions], [True, False])
        self.assertEqual(self.successResultOf(store.totals()).objects, 0)
        self.assertEqual(self.refs(store, made.blob), 1)
        # A second DELETE adds another marker.
        again = self.result(store.deleteObject("b", "k", modified=1700000200.0))
        assert again is not None
        self.assertEqual(self.versionsOf(store), [again, marker, made])
        self.assertEqual(self.result(store.deleteObject("b", "k", versionId=again.wireVersionId)), again)
        self.assertEqual(self.result(store.deleteObject("b", "k", versionId=marker.wireVersionId)), marker)
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), made)
        self.assertEqual(self.listing(store), (["k"], [], False, "k"))
        self.assertEqual(self.successResultOf(store.totals()).objects, 1)

    def test_deleteVersion(self) -> None:
        """
        Removing the latest version by id makes the next newest the latest;
        removing an older one leaves the latest; bytes go with the last
        version that references them; an unknown id is a success that
        does nothing.
        """
        store = self.versioned()
        one, _ = self.put(store, "k", b"one")
        two, _ = self.put(store, "k", b"two")
        three, _ = self.put(store, "k", b"three")
        self.assertEqual(self.result(store.deleteObject("b", "k", versionId=three.wireVersionId)), three)
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), two)
        self.assertEqual(self.refs(store, three.blob), 0)
        self.assertEqual(self.result(store.deleteObject("b", "k", versionId=one.wireVersionId)), one)
        self.assertEqual(self.versionsOf(store), [two])
        self.assertIsNone(self.result(store.deleteObject("b", "k", versionId=one.wireVersionId)))
        self.assertIsNone(self.result(store.deleteObject("b", "k", versionId=NULL_VERSION_ID)))
        self.assertEqual(self.result(store.deleteObject("b", "k", versionId=two.wireVersionId)), two)
        self.assertEqual(self.versionsOf(store), [])
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, self.garbage(store)))

    def test_sharedBytesLiveWhileAVersionDoes(self) -> None:
        """Versions with the same content share one blob; it is released with the last of them."""
        store = self.versioned()
        first, _ = self.put(store, "k", b"same")
        second, _ = self.put(store, "k", b"same")
        self.assertEqual(self.refs(store, first.blob), 2)
        self.result(store.deleteObject("b", "k", versionId=second.wireVersionId))
        self.assertEqual(self.refs(store, first.blob), 1)
        self.result(store.deleteObject("b", "k"))  # a marker: the bytes stay
        self.assertEqual(self.refs(store, first.blob), 1)
        self.result(store.deleteObject("b", "k", versionId=first.wireVersionId))
        self.assertEqual(self.refs(store, first.blob), 0)

    def test_suspendedWritesTheNullVersion(self) -> None:
        """
        A suspended bucket writes the null version, replacing the previous
        null version wherever it is among the versions, and keeps the rest;
        its DELETE adds a null delete marker, which replaces it too.
        """
        store = self.withBucket()
        null, _ = self.put(store, "k", b"null")
        self.result(store.updateBucket("b", versioningSetter(ENABLED)))
        kept, _ = self.put(store, "k", b"kept")
        self.result(store.updateBucket("b", versioningSetter(SUSPENDED)))
        replacing, _ = self.put(store, "k", b"replacing")
        self.assertIsNone(replacing.versionId)
        self.assertEqual(self.versionsOf(store), [replacing, kept])
        self.assertEqual(self.refs(store, null.blob), 0)
        again, _ = self.put(store, "k", b"again")
        self.assertEqual(self.versionsOf(store), [again, kept])
        marker = self.result(store.deleteObject("b", "k", modified=7.0))
        assert marker is not None
        self.assertEqual((marker.versionId, marker.deleteMarker), (None, True))
        self.assertEqual(self.versionsOf(store), [marker, kept])
        self.assertEqual(self.refs(store, again.blob), 0)
        final, _ = self.put(store, "k", b"final")
        self.assertEqual(self.versionsOf(store), [final, kept])
        self.result(store.updateBucket("b", versioningSetter(ENABLED)))
        newest, _ = self.put(store, "k", b"newest")
        self.assertEqual(self.versionsOf(store), [newest, final, kept])

    def test_malformedVersionIds(self) -> None:
        """An id the store could not have made is InvalidArgument wherever a version is named."""
        store = self.versioned()
        self.put(store, "k", b"data")
        for bad in ("", "v1", "NULL", "x" * 200):
            self.assertEqual(self.error(store.getVersion("b", "k", bad)).code, "InvalidArgument", bad)
            self.assertEqual(self.code(store.deleteObject("b", "k", versionId=bad)), "InvalidArgument")
            self.assertEqual(self.code(store.updateVersion("b", "k", bad, tagsSetter(()))), "InvalidArgument")
            if bad:  # an empty marker is no marker
                self.assertEqual(self.code(store.listVersions("b", keyMarker="k", versionIdMarker=bad)),
                                 "InvalidArgument")
        self.assertEqual(len(self.versionsOf(store)), 1)

    def test_versionedBucketNotEmpty(self) -> None:
        """A bucket whose only versions are old ones or delete markers is not empty."""
        store = self.versioned()
        made, _ = self.put(store, "k", b"data")
        self.result(store.deleteObject("b", "k"))
        self.assertEqual(self.code(store.deleteBucket("b", "alice")), "BucketNotEmpty")
        self.result(store.deleteObject("b", "k", versionId=made.wireVersionId))
        self.assertEqual(self.code(store.deleteBucket("b", "alice")), "BucketNotEmpty")  # the marker
        [marker] = self.versionsOf(store)
        self.result(store.deleteObject("b", "k", versionId=marker.wireVersionId))
        self.result(store.deleteBucket("b", "alice"))

    def test_copyAndTagAVersion(self) -> None:
        """
        A copy may take an older version as its source, and tags may be
        set on one; a delete marker can be neither; unknown ids are
        NoSuchVersion.
        """
        store = self.versioned()
        old, _ = self.put(store, "k", b"old")
        new, _ = self.put(store, "k", b"new")
        source, copied = self.result(store.copyObject("b", "k", copyAs("b", "copy"), sourceVersionId=old.wireVersionId))
        self.assertEqual(source, old)
        self.assertEqual(copied.blob, old.blob)
        self.assertNotEqual(copied.versionId, old.versionId)
        tagged = self.result(store.updateVersion("b", "k", old.wireVersionId, tagsSetter((("t", "1"),))))
        self.assertEqual(self.successResultOf(store.getVersion("b", "k", old.wireVersionId)), tagged)
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), new)
        marker = self.result(store.deleteObject("b", "k"))
        assert marker is not None
        self.assertEqual(self.code(store.copyObject("b", "k", copyAs("b", "c2"))), "NoSuchKey")
        self.assertEqual(self.code(store.copyObject("b", "k", copyAs("b", "c2"), sourceVersionId=marker.wireVersionId)),
                         "InvalidRequest")
        self.assertEqual(self.code(store.updateVersion("b", "k", None, tagsSetter(()))), "NoSuchKey")
        self.assertEqual(self.code(store.updateVersion("b", "k", marker.wireVersionId, tagsSetter(()))), "MethodNotAllowed")
        gone = versionIdOf(1 << 50)
        self.assertEqual(self.code(store.copyObject("b", "k", copyAs("b", "c2"), sourceVersionId=gone)), "NoSuchVersion")
        self.assertEqual(self.code(store.updateVersion("b", "k", gone, tagsSetter(()))), "NoSuchVersion")

    def test_noncurrentSince(self) -> None:
        """
        A version is noncurrent since the time of the write that first
        replaced it (an object or a delete marker), whatever is removed
        later; the latest version is not noncurrent.
        """
        store = self.versioned()
        blob = written(b"one", 1, self.freshOffset())
        one = self.result(store.putObject(attrs.evolve(record("b", "k", blob), modified=100.0), blob))
        marker = self.result(store.deleteObject("b", "k", modified=200.0))
        blob = written(b"three", 1, self.freshOffset())
        three = self.result(store.putObject(attrs.evolve(record("b", "k", blob), modified=300.0), blob))
        assert marker is not None
        since = {v.versionId: v.noncurrentSince for v in self.successResultOf(store.listVersions("b")).versions}
        self.assertEqual(since, {three.versionId: 0.0, marker.versionId: 300.0, one.versionId: 200.0})
        self.result(store.deleteObject("b", "k", versionId=marker.wireVersionId))
        since = {v.versionId: v.noncurrentSince for v in self.successResultOf(store.listVersions("b")).versions}
        self.assertEqual(since, {three.versionId: 0.0, one.versionId: 200.0})
        # A marker made latest again (the version above it removed) is not noncurrent.
        again = self.result(store.deleteObject("b", "k", modified=400.0))
        assert again is not None
        blob = written(b"five", 1, self.freshOffset())
        five = self.result(store.putObject(attrs.evolve(record("b", "k", blob), modified=500.0), blob))
        self.result(store.deleteObject("b", "k", versionId=five.wireVersionId))
        since = {v.versionId: v.noncurrentSince for v in self.successResultOf(store.listVersions("b")).versions}
        self.assertEqual(since[again.versionId], 0.0)

    def test_lockFieldsKept(self) -> None:
        """
        A version's retention and legal hold are kept as written, changed
        only through updateVersion, whose change sees the version as the
        write finds it; a change that would make it another version is
        refused and changes nothing.
        """
        store = self.versioned()
        blob = written(b"locked", 1, self.freshOffset())
        locked = attrs.evolve(record("b", "k", blob), lockMode=COMPLIANCE, lockUntil=1900000000.0)
        stored = self.result(store.putObject(locked, blob))
        self.assertEqual((stored.lockMode, stored.lockUntil, stored.legalHold), (COMPLIANCE, 1900000000.0, None))
        held = self.result(store.updateVersion("b", "k", stored.wireVersionId,
                                               lambda r: attrs.evolve(r, legalHold=True)))
        self.assertTrue(held.legalHold)
        others: List[Dict[str, Any]] = [
            {"size": 1}, {"key": "other"}, {"versionId": None}, {"blob": "ff" * 32}, {"deleteMarker": True}]
        for other in others:
            f = self.failure(store.updateVersion("b", "k", None, evolver(other)), ValueError)
            self.assertIn("keep", str(f.value))
        self.assertEqual(self.code(store.updateVersion("b", "k", None, refuseWith("AccessDenied"))), "AccessDenied")
        store = self.durable(store)
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), held)

    def test_keepLatest(self) -> None:
        """
        A delete by id with keepLatest leaves the version if it is the
        key's latest as the write finds it (fires with None), and removes
        it otherwise.
        """
        store = self.versioned()
        old, _ = self.put(store, "k", b"old")
        new, _ = self.put(store, "k", b"new")
        first = store.deleteObject("b", "k", versionId=new.wireVersionId)
        kept = store.deleteObject("b", "k", versionId=old.wireVersionId, keepLatest=True)  # latest by then
        self.assertEqual(self.result(first), new)
        self.assertIsNone(self.result(kept))
        self.assertEqual(self.versionsOf(store), [old])
        newer, _ = self.put(store, "k", b"newer")
        self.assertEqual(self.result(store.deleteObject("b", "k", versionId=old.wireVersionId, keepLatest=True)), old)
        self.assertEqual(self.versionsOf(store), [newer])

    def test_deleteVersionPrecondition(self) -> None:
        """A delete by id shows its precondition the version it would remove (a marker too); a refusal keeps it."""
        store = self.versioned()
        made, _ = self.put(store, "k", b"data")
        seen: List[Optional[ObjectRecord]] = []

        def refuse(version: Optional[ObjectRecord]) -> None:
            seen.append(version)
            raise S3Error("AccessDenied")

        self.assertEqual(self.code(store.deleteObject("b", "k", refuse, versionId=made.wireVersionId)), "AccessDenied")
        self.assertEqual(seen, [made])
        self.assertEqual(self.versionsOf(store), [made])

    def test_listVersionsMarkers(self) -> None:
        """
        key-marker alone skips every version of that key; with a version
        marker the page resumes after that version, even one since removed.
        """
        store = self.versioned()
        a = [self.put(store, "a", b"a%d" % i)[0] for i in range(3)]
        b, _ = self.put(store, "b", b"b")

        def page(**kw: Any) -> List[Tuple[str, str]]:
            found = self.successResultOf(store.listVersions("b", **kw)).versions
            return [(v.key, v.wireVersionId) for v in found]

        ids = [v.wireVersionId for v in a]
        self.assertEqual(page(keyMarker="a"), [("b", b.wireVersionId)])
        self.assertEqual(page(keyMarker="a", versionIdMarker=ids[2]), [("a", ids[1]), ("a", ids[0]), ("b", b.wireVersionId)])
        self.assertEqual(page(keyMarker="a", versionIdMarker=ids[1], maxKeys=1), [("a", ids[0])])
        self.result(store.deleteObject("b", "a", versionId=ids[1]))
        self.assertEqual(page(keyMarker="a", versionIdMarker=ids[1]), [("a", ids[0]), ("b", b.wireVersionId)])
        self.assertEqual(page(keyMarker="a", versionIdMarker=NULL_VERSION_ID), [("b", b.wireVersionId)])
        truncated = self.successResultOf(store.listVersions("b", maxKeys=2))
        self.assertEqual((truncated.isTruncated, truncated.nextKeyMarker, truncated.nextVersionIdMarker),
                         (True, "a", ids[0]))

    def test_latestAcrossPages(self) -> None:
        """
        Only a key's newest version is latest, on whatever page it falls:
        two delete markers over an object, listed one entry a page, show
        the newer marker alone as latest, also once it is removed between
        pages.
        """
        store = self.versioned()
        self.put(store, "k", b"data")
        self.result(store.deleteObject("b", "k"))
        newest = self.result(store.deleteObject("b", "k"))
        assert newest is not None
        self.assertEqual(len(self.allVersions(store, "b", maxKeys=1)), 3)  # it checks the flags
        first = self.successResultOf(store.listVersions("b", maxKeys=1))
        self.assertEqual([v.isLatest for v in first.versions], [True])
        self.result(store.deleteObject("b", "k", versionId=newest.wireVersionId))
        rest = self.successResultOf(store.listVersions("b", keyMarker=first.nextKeyMarker,
                                                       versionIdMarker=first.nextVersionIdMarker))
        self.assertEqual([(v.deleteMarker, v.isLatest) for v in rest.versions], [(True, True), (False, False)])

    def test_listVersionsDelimiter(self) -> None:
        """Versions roll into common prefixes like keys; a page ending on one names it as the key marker."""
        store = self.versioned()
        for key in ("d/1", "d/1", "d/2", "e", "f/1"):
            self.put(store, key, key.encode())
        self.result(store.deleteObject("b", "e"))
        page = self.successResultOf(store.listVersions("b", delimiter="/"))
        self.assertEqual(page.commonPrefixes, ["d/", "f/"])
        self.assertEqual([(v.key, v.deleteMarker, v.isLatest) for v in page.versions], [("e", True, True), ("e", False, False)])
        first = self.successResultOf(store.listVersions("b", delimiter="/", maxKeys=1))
        self.assertEqual((first.commonPrefixes, first.isTruncated, first.nextKeyMarker, first.nextVersionIdMarker),
                         (["d/"], True, "d/", ""))
        rest = self.successResultOf(store.listVersions("b", delimiter="/", keyMarker="d/"))
        self.assertEqual((len(rest.versions), rest.commonPrefixes), (2, ["f/"]))
        inside = self.successResultOf(store.listVersions("b", prefix="d/"))
        self.assertEqual([v.key for v in inside.versions], ["d/1", "d/1", "d/2"])
        self.assertEqual(self.code(store.listVersions("nope")), "NoSuchBucket")

    def test_versionsSurviveReopen(self) -> None:
        """Versions, markers, null versions and the bucket's state come back after a reopen, ids unchanged."""
        store = self.withBucket()
        self.put(store, "k", b"null")
        self.result(store.updateBucket("b", versioningSetter(ENABLED)))
        self.put(store, "k", b"v")
        self.result(store.deleteObject("b", "k"))
        self.put(store, "other", b"o")
        before = self.versionsOf(store)
        store = self.durable(store)
        self.assertEqual(self.versionsOf(store), before)
        self.assertEqual(self.successResultOf(store.getBucket("b")).versioning, ENABLED)  # type: ignore[union-attr]
        later, _ = self.put(store, "k", b"later")
        self.assertGreater(str(later.versionId), str(before[0].versionId))

    # -- listing objects ----------------------------------------------------------------

    listKeys = ["a", "a/1", "a/2", "a/b/1", "b", "b/1", "c/x/y", "d"]

    def withKeys(self, keys: Sequence[str], store: Optional[IMetadataStore] = None,
                 bucketName: str = "b") -> IMetadataStore:
        """A store whose bucket C{bucketName} holds C{keys} (all issued before one settle)."""
        if store is None:
            store = self.makeStore()
        self.result(store.createBucket(bucket(bucketName)))
        ds = []
        for k in keys:
            blob = written(k.encode("utf-8"), 1, self.freshOffset())
            ds.append(store.putObject(record(bucketName, k, blob), blob))
        for d in ds:
            self.result(d)
        return store

    def page(self, **kw: Any) -> ListSummary:
        return self.listing(self.withKeys(self.listKeys), **kw)

    def test_listAll(self) -> None:
        """Without prefix or delimiter, every key in order."""
        self.assertEqual(self.page(), (self.listKeys, [], False, "d"))

    def test_listDelimiter(self) -> None:
        """Keys with the delimiter roll up into common prefixes in key order."""
        self.assertEqual(self.page(delimiter="/"), (["a", "b", "d"], ["a/", "b/", "c/"], False, "d"))

    def test_listPrefixAndDelimiter(self) -> None:
        """The delimiter is looked for after the prefix."""
        self.assertEqual(self.page(prefix="a/", delimiter="/"), (["a/1", "a/2"], ["a/b/"], False, "a/b/"))

    def test_listTruncated(self) -> None:
        """A common prefix counts once toward maxKeys; nextAfter is the last entry."""
        self.assertEqual(self.page(delimiter="/", maxKeys=2), (["a"], ["a/"], True, "a/"))
        self.assertEqual(self.page(maxKeys=3), (["a", "a/1", "a/2"], [], True, "a/2"))

    def test_listAfterCommonPrefix(self) -> None:
        """Continuing after a common prefix skips every key under it."""
        self.assertEqual(self.page(delimiter="/", after="a/", maxKeys=2), (["b"], ["b/"], True, "b/"))

    def test_listAfterInsideCommonPrefix(self) -> None:
        """A start-after inside a common prefix does not repeat that prefix."""
        self.assertEqual(self.page(delimiter="/", after="a/1"), (["b", "d"], ["b/", "c/"], False, "d"))

    def test_listAfter(self) -> None:
        """after is exclusive, need not be a key, and may be past every key."""
        self.assertEqual(self.page(after="a/2"), (["a/b/1", "b", "b/1", "c/x/y", "d"], [], False, "d"))
        self.assertEqual(self.page(after="a/3")[0], ["a/b/1", "b", "b/1", "c/x/y", "d"])
        self.assertEqual(self.page(after="zzz"), ([], [], False, ""))

    def test_listMaxKeysZero(self) -> None:
        """maxKeys=0 (or less) gives an empty page that is not truncated, as S3 does."""
        self.assertEqual(self.page(maxKeys=0), ([], [], False, ""))
        self.assertEqual(self.page(maxKeys=-1), ([], [], False, ""))

    def test_listExactFit(self) -> None:
        """A page that ends exactly on the last entry is not truncated."""
        self.assertEqual(self.page(maxKeys=len(self.listKeys)), (self.listKeys, [], False, "d"))

    def test_listPrefixIsAKey(self) -> None:
        """A key equal to the prefix is listed; keys merely sharing characters are not."""
        self.assertEqual(self.page(prefix="a"), (["a", "a/1", "a/2", "a/b/1"], [], False, "a/b/1"))
        self.assertEqual(self.page(prefix="c/x/y/"), ([], [], False, ""))

    def test_listMultiCharacterDelimiter(self) -> None:
        """Delimiters may be longer than one character."""
        store = self.withKeys(["x--y", "x--z", "x-y"])
        self.assertEqual(self.listing(store, delimiter="--"), (["x-y"], ["x--"], False, "x-y"))

    def test_listNoSuchBucket(self) -> None:
        """Listing a missing bucket is NoSuchBucket, with the bucket name."""
        store = self.makeStore()
        f = self.error(store.listObjects("nope"))
        self.assertEqual((f.code, f.extra), ("NoSuchBucket", {"BucketName": "nope"}))

    def test_listOtherBuckets(self) -> None:
        """A listing holds only its bucket's keys, even where another bucket's sort around them."""
        store = self.withKeys(["k1", "k3"], bucketName="b")
        self.withKeys(["k0", "k2", "k4"], store, bucketName="a")
        self.withKeys(["k5"], store, bucketName="c")
        self.assertEqual(self.listing(store, "b"), (["k1", "k3"], [], False, "k3"))
        self.assertEqual(self.listing(store, "a", after="k1", maxKeys=1), (["k2"], [], True, "k2"))

    def test_listUnicodeOrder(self) -> None:
        """
        Keys are ordered by code point (as UTF-8 bytes compare), not by
        UTF-16 units: U+FFFF sorts before U+10000; a delimiter or prefix
        may be any character.
        """
        keys = ["z", "\u00e9", "\u00ff", "\uffff", "\U00010000", "\U0010ffff", "a", "\u00e9/x", "\U00010000/y"]
        store = self.withKeys(keys)
        ordered = ["a", "z", "\u00e9", "\u00e9/x", "\u00ff", "\uffff", "\U00010000", "\U00010000/y", "\U0010ffff"]
        self.assertEqual(sorted(keys), ordered)
        self.assertEqual(self.listing(store)[0], ordered)
        self.assertEqual(self.listing(store, delimiter="/"),
                         (["a", "z", "\u00e9", "\u00ff", "\uffff", "\U00010000", "\U0010ffff"],
                          ["\u00e9/", "\U00010000/"], False, "\U0010ffff"))
        self.assertEqual(self.listing(store, after="\uffff", maxKeys=2),
                         (["\U00010000", "\U00010000/y"], [], True, "\U00010000/y"))
        self.assertEqual(self.listing(store, prefix="\U00010000")[0], ["\U00010000", "\U00010000/y"])
        # A key may be its own common prefix; U+10FFFF has no successor to skip to.
        self.assertEqual(self.listing(store, delimiter="\uffff")[1], ["\uffff"])
        self.assertEqual(self.listing(store, delimiter="\U0010ffff"),
                         (ordered[:-1], ["\U0010ffff"], False, "\U0010ffff"))

    def test_listDelimiterBeforeSurrogates(self) -> None:
        """
        Skipping past a common prefix works whatever its last character,
        including U+D7FF (the next code point, U+D800, is a surrogate that
        cannot be encoded) and U+10FFFF (which has no next code point).
        """
        keys = ["a\ud7ffx", "a\ud7ffy", "b", "\ue000", "c\U0010ffffz", "c\U0010ffff\U0010ffff"]
        store = self.withKeys(keys)
        self.assertEqual(self.listing(store, delimiter="\ud7ff"),
                         (["b", "c\U0010ffffz", "c\U0010ffff\U0010ffff", "\ue000"], ["a\ud7ff"], False, "\ue000"))
        self.assertEqual(self.listing(store, delimiter="\U0010ffff"),
                         (["a\ud7ffx", "a\ud7ffy", "b", "\ue000"], ["c\U0010ffff"], False, "\ue000"))

    def test_listBigCommonPrefix(self) -> None:
        """
        Thousands of keys under one common prefix roll into a single entry,
        and a page inside them starts right after C{after}.
        """
        keys = [f"big/{i:05d}" for i in range(3000)] + ["a", "zz"]
        store = self.withKeys(keys)
        self.assertEqual(self.listing(store, delimiter="/"), (["a", "zz"], ["big/"], False, "zz"))
        self.assertEqual(self.listing(store, delimiter="/", maxKeys=2), (["a"], ["big/"], True, "big/"))
        self.assertEqual(self.listing(store, prefix="big/", after="big/01499", maxKeys=3),
                         (["big/01500", "big/01501", "big/01502"], [], True, "big/01502"))
        page = self.successResultOf(store.listObjects("b", prefix="big/"))
        self.assertEqual((len(page.objects), page.isTruncated, page.nextAfter), (1000, True, "big/00999"))

    def test_listAfterWrite(self) -> None:
        """A listing issued after a write's Deferred fired shows it (puts, replacements and deletes)."""
        store = self.withKeys(["a", "b"])
        self.put(store, "c", b"c")
        self.assertEqual(self.listing(store)[0], ["a", "b", "c"])
        self.result(store.deleteObject("b", "a"))
        self.assertEqual(self.listing(store)[0], ["b", "c"])
        rec, _ = self.put(store, "b", b"replaced")
        self.assertEqual(self.successResultOf(store.listObjects("b", maxKeys=1)).objects, [ObjectSummary.of(rec)])

    def sharedListingStore(self) -> Tuple[IMetadataStore, str]:
        """One store for every example of a property test, and a fresh bucket name."""
        store: Optional[IMetadataStore] = getattr(self, "_listingStore", None)
        if store is None:
            store = self.makeStore()
            self._listingStore = store
            self._listingBuckets = 0
        self._listingBuckets += 1
        return store, "b%d" % self._listingBuckets

    @given(_listKeys, _listFragments, st.sampled_from(["", "/", "b", "a/", "\U0010ffff"]), _listFragments,
           st.integers(-1, 6))
    @settings(_PROPERTY, max_examples=300)
    def test_listModel(self, keys: List[str], prefix: str, delimiter: str, after: str, maxKeys: int) -> None:
        """Any page equals the brute-force model's."""
        store, name = self.sharedListingStore()
        self.withKeys(keys, store, name)
        self.assertEqual(self.listing(store, name, prefix=prefix, delimiter=delimiter, after=after, maxKeys=maxKeys),
                         bruteList(keys, prefix, delimiter, after, maxKeys))

    @given(_listKeys, _listFragments, st.sampled_from(["", "/", "b"]), st.integers(1, 4))
    @settings(_PROPERTY, max_examples=150)
    def test_listPagination(self, keys: List[str], prefix: str, delimiter: str, maxKeys: int) -> None:
        """Following nextAfter visits every entry exactly once, in order."""
        store, name = self.sharedListingStore()
        self.withKeys(keys, store, name)
        everything = bruteList(keys, prefix, delimiter, "", 10**6)
        objects: List[str] = []
        prefixes: List[str] = []
        after: Optional[str] = ""
        for _ in range(len(keys) + 2):
            if after is None:
                break
            page = self.successResultOf(store.listObjects(name, prefix, delimiter, after, maxKeys))
            objects += [o.key for o in page.objects]
            prefixes += page.commonPrefixes
            after = page.nextAfter if page.isTruncated else None
        self.assertIsNone(after, "pagination does not terminate")
        self.assertEqual((objects, prefixes), (everything[0], everything[1]))

    @given(st.lists(st.tuples(st.text(alphabet="ab/", min_size=1, max_size=3), st.sampled_from([False, False, True])),
                    max_size=20),
           _uploadFragments, st.sampled_from(["", "/", "b"]), st.integers(1, 4))
    @settings(_PROPERTY, max_examples=100)
    def test_listVersionsPagination(self, writes: List[Tuple[str, bool]], prefix: str, delimiter: str,
                                    maxKeys: int) -> None:
        """
        Following the key and version-id markers visits every version and
        delete marker exactly once: by key, newest first, each rolled-up
        prefix once, as the brute-force listing of the keys has them.
        """
        store, name = self.sharedListingStore()
        self.result(store.createBucket(bucket(name)))
        self.result(store.updateBucket(name, versioningSetter(ENABLED)))
        made: Dict[str, List[str]] = {}
        for key, delete in writes:
            if delete:
                stored = self.result(store.deleteObject(name, key))
                assert stored is not None
            else:
                stored = self.put(store, key, key.encode(), bucketName=name)[0]
            made.setdefault(key, []).insert(0, stored.wireVersionId)
        keys, everyPrefix, _, _ = bruteList(sorted(made), prefix, delimiter, "", 10**6)
        versions: List[Tuple[str, str]] = []
        prefixes: List[str] = []
        keyMarker = versionIdMarker = ""
        for _ in range(len(writes) + 2):
            page = self.successResultOf(store.listVersions(name, prefix, delimiter, keyMarker, versionIdMarker, maxKeys))
            versions += [(v.key, v.wireVersionId) for v in page.versions]
            prefixes += page.commonPrefixes
            if not page.isTruncated:
                break
            keyMarker, versionIdMarker = page.nextKeyMarker, page.nextVersionIdMarker
        else:
            self.fail("pagination does not terminate")
        self.assertEqual(versions, [(k, v) for k in keys for v in made[k]])
        self.assertEqual(prefixes, everyPrefix)

    # -- listing uploads ------------------------------------------------------------------

    someUploads = [("a", 2.0, "u2"), ("a", 1.0, "u9"), ("a/1", 1.0, "u3"), ("a/2", 1.0, "u4"), ("b", 5.0, "u5"),
                   ("c", 1.0, "u6")]

    def withUploads(self, uploads: Sequence[Tuple[str, float, str]], store: Optional[IMetadataStore] = None,
                    bucketName: str = "b") -> IMetadataStore:
        """A store whose bucket C{bucketName} holds these C{(key, initiated, uploadId)} uploads."""
        if store is None:
            store = self.makeStore()
        self.result(store.createBucket(bucket(bucketName)))
        ds = [store.createUpload(uploadRecord(i, bucketName, k, t)) for k, t, i in uploads]
        for d in ds:
            self.result(d)
        return store

    def uploadPage(self, store: Optional[IMetadataStore] = None, bucketName: str = "b", **kw: Any) -> UploadSummary:
        if store is None:
            store = self.withUploads(self.someUploads)
        self.settle()
        return uploadSummary(self.successResultOf(store.listUploads(bucketName, **kw)))

    def test_uploadsOrder(self) -> None:
        """Uploads come by key, then initiation time; listed records carry no parts."""
        self.assertEqual(self.uploadPage(), (["u9", "u2", "u3", "u4", "u5", "u6"], [], False, "c", "u6"))
        store = self.withUploads([("k", 1.0, "u1")])
        a = written(b"a")
        self.result(store.putPart("u1", part(1, a), a))
        self.assertEqual(self.successResultOf(store.listUploads("b")).uploads, [uploadRecord("u1", initiated=1.0)])

    def test_uploadsDelimiter(self) -> None:
        """Keys roll up into common prefixes, each one entry."""
        self.assertEqual(self.uploadPage(delimiter="/", maxUploads=3), (["u9", "u2"], ["a/"], True, "a/", ""))
        self.assertEqual(self.uploadPage(delimiter="/", keyMarker="a/"), (["u5", "u6"], [], False, "c", "u6"))
        self.assertEqual(self.uploadPage(prefix="a/", delimiter="/"), (["u3", "u4"], [], False, "a/2", "u4"))

    def test_uploadsKeyMarker(self) -> None:
        """keyMarker alone: keys after it."""
        self.assertEqual(self.uploadPage(keyMarker="a/1"), (["u4", "u5", "u6"], [], False, "c", "u6"))

    def test_uploadsIdMarker(self) -> None:
        """Both markers: the marker key's later uploads, then later keys."""
        self.assertEqual(self.uploadPage(keyMarker="a", uploadIdMarker="u9", maxUploads=2),
                         (["u2", "u3"], [], True, "a/1", "u3"))

    def test_uploadsUnknownIdMarker(self) -> None:
        """
        An upload id marker that is unknown (completed since) or of another
        key selects the marker key's uploads with greater ids, as AWS
        documents.
        """
        self.assertEqual(self.uploadPage(keyMarker="a", uploadIdMarker="u8"),
                         (["u9", "u3", "u4", "u5", "u6"], [], False, "c", "u6"))
        self.assertEqual(self.uploadPage(keyMarker="a", uploadIdMarker="u5", maxUploads=1),
                         (["u9"], [], True, "a", "u9"))
        self.assertEqual(self.uploadPage(keyMarker="a", uploadIdMarker="u1")[0], ["u9", "u2", "u3", "u4", "u5", "u6"])
        self.assertEqual(self.uploadPage(keyMarker="a", uploadIdMarker="u9")[0], ["u2", "u3", "u4", "u5", "u6"])
        self.assertEqual(self.uploadPage(keyMarker="a", uploadIdMarker="u2")[0], ["u3", "u4", "u5", "u6"])

    def test_uploadsIdMarkerOfAnotherBucket(self) -> None:
        """An upload id marker naming an upload of the same key in another bucket counts as unknown."""
        store = self.withUploads([("k", 1.0, "u1"), ("k", 2.0, "u3")])
        self.withUploads([("k", 5.0, "u2")], store, "c")
        self.assertEqual(self.uploadPage(store, keyMarker="k", uploadIdMarker="u2")[0], ["u3"])

    def test_uploadsIdMarkerWithoutKeyMarker(self) -> None:
        """Without keyMarker the upload id marker is ignored."""
        self.assertEqual(self.uploadPage(uploadIdMarker="u9")[0], ["u9", "u2", "u3", "u4", "u5", "u6"])

    def test_uploadsEmptyAndMissing(self) -> None:
        """No uploads: an empty page; maxUploads 0: empty, not truncated; missing bucket: NoSuchBucket."""
        self.assertEqual(self.uploadPage(self.withBucket()), ([], [], False, "", ""))
        self.assertEqual(self.uploadPage(maxUploads=0), ([], [], False, "", ""))
        f = self.error(self.makeStore().listUploads("nope"))
        self.assertEqual((f.code, f.extra), ("NoSuchBucket", {"BucketName": "nope"}))

    @given(_uploadSets, _uploadFragments, st.sampled_from(["", "/", "b"]), st.integers(-1, 6), st.data())
    @settings(_PROPERTY, max_examples=400)
    def test_uploadsModel(self, uploads: List[Tuple[str, float, str]], prefix: str, delimiter: str,
                          maxUploads: int, data: Any) -> None:
        """Any page equals the brute-force model's, markers drawn from the uploads or not."""
        keys = sorted({k for k, _, _ in uploads})
        ids = sorted(i for _, _, i in uploads)
        keyMarker = data.draw(st.one_of(_uploadFragments, st.sampled_from(keys)) if keys else _uploadFragments)
        uploadIdMarker = data.draw(st.one_of(st.just(""), st.text(alphabet="xyz", min_size=1, max_size=3),
                                             *([st.sampled_from(ids)] if ids else [])))
        store, name = self.sharedListingStore()
        # Upload ids are global: prefixed by the bucket, unique across the shared store (same order).
        renamed = [(k, t, name + "-" + i) for k, t, i in uploads]
        self.withUploads(renamed, store, name)
        marker = name + "-" + uploadIdMarker if uploadIdMarker else ""
        self.assertEqual(
            self.uploadPage(store, name, prefix=prefix, delimiter=delimiter, keyMarker=keyMarker,
                            uploadIdMarker=marker, maxUploads=maxUploads),
            bruteUploads(renamed, prefix, delimiter, keyMarker, marker, maxUploads),
        )

    @given(_uploadSets, _uploadFragments, st.sampled_from(["", "/", "b"]), st.integers(1, 4))
    @settings(_PROPERTY, max_examples=150)
    def test_uploadsPagination(self, uploads: List[Tuple[str, float, str]], prefix: str, delimiter: str,
                               maxUploads: int) -> None:
        """Following the next markers visits every entry exactly once, in order."""
        store, name = self.sharedListingStore()
        renamed = [(k, t, name + "-" + i) for k, t, i in uploads]
        self.withUploads(renamed, store, name)
        everything = bruteUploads(renamed, prefix, delimiter, "", "", 10**6)
        ids: List[str] = []
        prefixes: List[str] = []
        markers: Optional[Tuple[str, str]] = ("", "")
        for _ in range(len(uploads) + 2):
            if markers is None:
                break
            page = self.successResultOf(store.listUploads(name, prefix, delimiter, markers[0], markers[1], maxUploads))
            ids += [u.uploadId for u in page.uploads]
            prefixes += page.commonPrefixes
            markers = (page.nextKeyMarker, page.nextUploadIdMarker) if page.isTruncated else None
        self.assertIsNone(markers, "pagination does not terminate")
        self.assertEqual((ids, prefixes), (everything[0], everything[1]))

    # -- multipart uploads -----------------------------------------------------------------

    def test_uploadLifecycle(self) -> None:
        """
        Create, upload parts (in any order), complete: the object is the
        manifest, the upload is gone, nothing is garbage; all durable.
        """
        store = self.started()
        self.assertEqual(self.successResultOf(store.getUpload("u1")), uploadRecord("u1"))
        a, b = written(b"part-one", 1, 0), written(b"part-two", 1, 100)
        self.assertEqual(self.result(store.putPart("u1", part(2, b), b)), part(2, b))
        self.assertEqual(self.result(store.putPart("u1", part(1, a), a)), part(1, a))
        self.assertEqual(self.successResultOf(store.getUpload("u1")),
                         attrs.evolve(uploadRecord("u1"), parts=(part(1, a), part(2, b))))
        self.assertEqual([u.uploadId for u in self.successResultOf(store.listUploads("b")).uploads], ["u1"])
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 16, {}))  # uploads are not objects
        store = self.durable(store)
        o = self.result(store.completeUpload("u1", manifest()))
        self.assertEqual(o, multipartObj("b", "k", [part(1, a), part(2, b)]))
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), o)
        self.assertIsNone(self.successResultOf(store.getUpload("u1")))
        self.assertEqual(self.successResultOf(store.listUploads("b")).uploads, [])
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 16, 16, {}))
        self.assertEqual((self.refs(store, a.contentAddress), self.refs(store, b.contentAddress)), (1, 1))
        self.durable(store)

    def test_createUploadErrors(self) -> None:
        """
        A missing bucket is NoSuchBucket; an id in use (even by an upload
        issued just before) is a ValueError; parts in the record are dropped.
        """
        store = self.withBucket()
        self.assertEqual(self.code(store.createUpload(uploadRecord("u1", "zz"))), "NoSuchBucket")
        store.probe()
        first = store.createUpload(uploadRecord("u1").withPart(partRecord(1)))
        second = store.createUpload(uploadRecord("u1", key="other"))
        self.assertEqual(self.result(first), uploadRecord("u1"))
        self.failure(second, ValueError)
        self.assertEqual(self.successResultOf(store.getUpload("u1")), uploadRecord("u1"))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {}))

    def test_partsByNumber(self) -> None:
        """
        Parts are kept by number; each holds a reference on its blob, parts
        with identical content sharing one (the latest copy's bytes).
        """
        store = self.started()
        y, x, x2 = written(b"yyyyy", 1, 0), written(b"0123456789", 1, 5), written(b"0123456789", 2, 0)
        self.result(store.putPart("u1", part(2, y), y))
        self.result(store.putPart("u1", part(1, x), x))
        self.result(store.putPart("u1", part(3, x2), x2))
        upload = self.successResultOf(store.getUpload("u1"))
        assert upload is not None
        self.assertEqual([p.number for p in upload.parts], [1, 2, 3])
        self.assertEqual(self.blob(store, x.contentAddress), BlobRecord(x.contentAddress, 10, x2.extents, 2))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 15, {1: 10}))

    def test_replacePart(self) -> None:
        """A re-uploaded part number replaces the part and releases the previous part's blob."""
        store = self.started()
        x, y = written(b"0123456789", 1, 0), written(b"abcd", 1, 10)
        self.result(store.putPart("u1", part(1, x), x))
        self.result(store.putPart("u1", part(1, y), y))
        self.assertIsNone(self.blob(store, x.contentAddress))
        self.assertEqual(self.successResultOf(store.getUpload("u1")).parts, (part(1, y),))  # type: ignore[union-attr]
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 4, {1: 10}))

    def test_replacePartSameContent(self) -> None:
        """
        Re-uploading a part with identical content keeps one reference and the
        new copy's bytes (the old copy is garbage): the blob never drops to
        zero references on the way.
        """
        store = self.started()
        x, x2 = written(b"0123456789", 1, 0), written(b"0123456789", 2, 0)
        self.result(store.putPart("u1", part(1, x), x))
        self.result(store.putPart("u1", part(1, x2), x2))
        self.assertEqual(self.blob(store, x.contentAddress), BlobRecord(x.contentAddress, 10, x2.extents, 1))
        self.assertEqual(self.garbage(store), {1: 10})

    def test_completeReleasesUnusedParts(self) -> None:
        """
        Completing with some parts: the object holds one reference per part
        it uses; the unused parts become garbage; deleting the object frees the rest.
        """
        store = self.started()
        x, y, z = written(b"0123456789", 1, 0), written(b"abcd", 1, 10), written(b"xyz", 1, 14)
        for number, blob in [(1, x), (2, y), (3, z)]:
            self.result(store.putPart("u1", part(number, blob), blob))
        o = self.result(store.completeUpload("u1", manifest([1, 3])))
        self.assertEqual(o.blobAddresses(), (x.contentAddress, z.contentAddress))
        self.assertIsNone(self.successResultOf(store.getUpload("u1")))
        self.assertEqual(self.contents(store).references(), {x.contentAddress: 1, z.contentAddress: 1})
        self.assertIsNone(self.blob(store, y.contentAddress))
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 13, 13, {1: 4}))
        self.result(store.deleteObject("b", "k"))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {1: 17}))

    def test_completeWithRepeatedContent(self) -> None:
        """Two parts with the same content: the object holds two references on the one blob."""
        store = self.started()
        a, a2 = written(b"same", 1, 0), written(b"same", 1, 4)
        self.result(store.putPart("u1", part(1, a), a))
        self.result(store.putPart("u1", part(2, a2), a2))
        o = self.result(store.completeUpload("u1", manifest()))
        self.assertEqual(o.blobAddresses(), (a.contentAddress, a.contentAddress))
        self.assertEqual(self.refs(store, a.contentAddress), 2)
        self.result(store.deleteObject("b", "k"))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {1: 8}))

    def test_completeReplacesObject(self) -> None:
        """Completing over an existing object releases the replaced version."""
        store = self.started()
        self.put(store, "k", b"old-old", 3, 0)
        x = written(b"0123456789", 1, 0)
        self.result(store.putPart("u1", part(1, x), x))
        self.result(store.completeUpload("u1", manifest()))
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 10, 10, {3: 7}))

    def test_abort(self) -> None:
        """Aborting releases every part (shared bytes stay alive); a second abort is NoSuchUpload."""
        store = self.started()
        self.put(store, "k", b"0123456789", 1, 0)
        x, y = written(b"0123456789", 2, 0), written(b"abcd", 2, 10)
        self.result(store.putPart("u1", part(1, x), x))
        self.result(store.putPart("u1", part(2, y), y))
        self.assertIsNone(self.result(store.abortUpload("u1")))
        self.assertEqual(self.code(store.abortUpload("u1")), "NoSuchUpload")
        self.assertIsNone(self.successResultOf(store.getUpload("u1")))
        self.assertEqual(self.contents(store).references(), {x.contentAddress: 1})
        # The object's blob now has the part's copy (2, 0, 10) as bytes: the first copy is garbage.
        self.assertEqual(self.successResultOf(store.totals()), Totals(1, 10, 10, {1: 10, 2: 4}))

    def test_queuedUploadTakesParts(self) -> None:
        """Parts and a completion issued right after the upload's creation see it."""
        store = self.withBucket()
        a = written(b"a")
        store.probe()
        created = store.createUpload(uploadRecord("u1"))
        put = store.putPart("u1", part(1, a), a)
        done = store.completeUpload("u1", manifest())
        self.result(created)
        self.result(put)
        self.assertEqual(self.result(done).blobAddresses(), (a.contentAddress,))

    def test_completeSeesEarlierParts(self) -> None:
        """build is given the upload with every part issued before, re-uploads replaced."""
        store = self.started()
        a, b, c = written(b"a", 1, 0), written(b"b", 1, 10), written(b"c", 1, 20)
        seen: List[UploadRecord] = []

        def build(upload: UploadRecord) -> ObjectRecord:
            seen.append(upload)
            return manifest()(upload)

        store.probe()
        parts = [store.putPart("u1", part(1, a), a), store.putPart("u1", part(2, b), b),
                 store.putPart("u1", part(1, c), c)]
        done = store.completeUpload("u1", build)
        for d in parts:
            self.result(d)
        self.assertEqual(self.result(done).blobAddresses(), (c.contentAddress, b.contentAddress))
        self.assertEqual([u.parts for u in seen], [(part(1, c), part(2, b))])
        self.assertEqual(self.garbage(store), {1: 1})  # part 1's first upload

    def test_buildRefuses(self) -> None:
        """Whatever build raises refuses the completion; the upload and its parts stay."""
        store = self.started()
        self.assertEqual(self.code(store.completeUpload("u1", manifest())), "InvalidPart")
        a = written(b"a")
        self.result(store.putPart("u1", part(1, a), a))

        def broken(upload: UploadRecord) -> ObjectRecord:
            raise ZeroDivisionError()

        self.failure(store.completeUpload("u1", broken), ZeroDivisionError)
        self.assertEqual(self.successResultOf(store.getUpload("u1")).parts, (part(1, a),))  # type: ignore[union-attr]
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 1, {}))

    def test_buildMustUseParts(self) -> None:
        """An object naming blobs that are not the upload's parts, or another key, is a ValueError."""
        store = self.started()
        a = written(b"a")
        self.result(store.putPart("u1", part(1, a), a))
        _, other = self.put(store, "x", b"other", 2)
        self.failure(store.completeUpload("u1", lambda u: multipartObj("b", "k", [part(1, other)])), ValueError)
        self.failure(store.completeUpload("u1", lambda u: multipartObj("b", "other", u.parts)), ValueError)
        self.assertIsNotNone(self.successResultOf(store.getUpload("u1")))
        self.assertEqual(self.refs(store, other.contentAddress), 1)

    def test_completePrecondition(self) -> None:
        """The precondition sees the target key as earlier writes leave it; a refusal keeps the upload."""
        store = self.started()
        a, x = written(b"a", 1, 0), written(b"x", 2, 0)
        self.result(store.putPart("u1", part(1, a), a))
        store.probe()
        put = store.putObject(record("b", "k", x), x)
        done = store.completeUpload("u1", manifest(), ifNoneMatch)
        self.result(put)
        self.assertEqual(self.code(done), "PreconditionFailed")
        self.assertEqual(self.successResultOf(store.getUpload("u1")).parts, (part(1, a),))  # type: ignore[union-attr]
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), record("b", "k", x))

    def test_completeVsAbort(self) -> None:
        """A completion and an abort issued together: the first wins, the other is NoSuchUpload."""
        for completeFirst in [True, False]:
            store = self.started()
            a = written(b"aaa", 1, 0)
            self.result(store.putPart("u1", part(1, a), a))
            store.probe()
            if completeFirst:
                done = store.completeUpload("u1", manifest())
                aborted = store.abortUpload("u1")
                self.assertEqual(self.code(aborted), "NoSuchUpload")
                self.assertEqual(self.successResultOf(store.getObject("b", "k")), self.result(done))
                self.assertEqual(self.successResultOf(store.totals()), Totals(1, 3, 3, {}))
            else:
                aborted = store.abortUpload("u1")
                done = store.completeUpload("u1", manifest())
                self.assertEqual(self.code(done), "NoSuchUpload")
                self.assertIsNone(self.result(aborted))
                self.assertIsNone(self.successResultOf(store.getObject("b", "k")))
                self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {1: 3}))
            self.assertIsNone(self.successResultOf(store.getUpload("u1")))
            self.durable(store)

    def test_completeVsComplete(self) -> None:
        """Of two completions issued together the first wins and the second is NoSuchUpload."""
        store = self.started()
        a, b = written(b"a", 1, 0), written(b"b", 1, 10)
        self.result(store.putPart("u1", part(1, a), a))
        self.result(store.putPart("u1", part(2, b), b))
        store.probe()
        first = store.completeUpload("u1", manifest([1]))
        second = store.completeUpload("u1", manifest([1, 2]))
        self.assertEqual(self.result(first).blobAddresses(), (a.contentAddress,))
        self.assertEqual(self.code(second), "NoSuchUpload")
        self.assertEqual(self.garbage(store), {1: 1})  # part 2, unused

    def test_putPartAfterAbort(self) -> None:
        """A part for an upload aborted just before, or long before, is NoSuchUpload and its bytes garbage."""
        store = self.started()
        store.probe()
        aborted = store.abortUpload("u1")
        a = written(b"late", 5, 0)
        late = store.putPart("u1", part(1, a), a)
        self.result(aborted)
        self.assertEqual(self.code(late), "NoSuchUpload")
        self.assertEqual(self.garbage(store), {5: 4})
        b = written(b"later", 6, 0)
        self.assertEqual(self.code(store.putPart("u1", part(1, b), b)), "NoSuchUpload")
        self.assertEqual(self.garbage(store), {5: 4, 6: 5})
        self.assertEqual(self.code(store.abortUpload("u1")), "NoSuchUpload")

    def test_putPartAfterComplete(self) -> None:
        """A part issued after the upload's completion is NoSuchUpload and its bytes garbage."""
        store = self.started()
        a, b = written(b"a", 1, 0), written(b"b", 2, 0)
        self.result(store.putPart("u1", part(1, a), a))
        store.probe()
        done = store.completeUpload("u1", manifest())
        late = store.putPart("u1", part(2, b), b)
        self.result(done)
        self.assertEqual(self.code(late), "NoSuchUpload")
        self.assertEqual(self.garbage(store), {2: 1})

    def test_unknownUpload(self) -> None:
        """Every upload operation on an unknown id is NoSuchUpload with the id; a part's bytes are garbage."""
        store = self.withBucket()
        a = written(b"a", 3)
        f = self.error(store.putPart("zz", part(1, a), a))
        self.assertEqual((f.code, f.status, f.extra), ("NoSuchUpload", 404, {"UploadId": "zz"}))
        f = self.error(store.completeUpload("zz", manifest()))
        self.assertEqual((f.code, f.extra), ("NoSuchUpload", {"UploadId": "zz"}))
        f = self.error(store.abortUpload("zz"))
        self.assertEqual((f.code, f.extra), ("NoSuchUpload", {"UploadId": "zz"}))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 0, {3: 1}))

    def test_deleteBucketAbortsUploads(self) -> None:
        """
        deleteBucket ignores uploads (no BucketNotEmpty) and aborts them,
        including one created just before, not other buckets'; parts and
        completions issued after it are refused, even if the bucket is
        re-created meanwhile.
        """
        store = self.started()
        self.result(store.createBucket(bucket("c")))
        self.result(store.createUpload(uploadRecord("u3", "c")))
        a, c = written(b"a", 1, 0), written(b"cc", 3, 0)
        self.result(store.putPart("u1", part(1, a), a))
        self.result(store.putPart("u3", part(1, c), c))
        store.probe()
        created = store.createUpload(uploadRecord("u2"))
        gone = store.deleteBucket("b", "alice")
        recreated = store.createBucket(bucket("b"))
        late = written(b"late", 2, 0)
        refused: List["Deferred[Any]"] = [store.putPart("u1", part(2, late), late), store.putPart("u2", part(1, late), late),
                   store.completeUpload("u1", manifest())]
        self.result(created)
        self.assertIsNone(self.result(gone))
        self.assertIsNone(self.result(recreated))
        for d in refused:
            self.assertEqual(self.code(d), "NoSuchUpload")
        self.assertEqual(self.uploadPage(store), ([], [], False, "", ""))
        self.assertEqual(self.uploadPage(store, "c")[0], ["u3"])
        self.assertIsNone(self.successResultOf(store.getUpload("u2")))
        self.assertEqual(self.successResultOf(store.totals()), Totals(0, 0, 2, {1: 1, 2: 8}))
        self.durable(store)

    def test_staleUploads(self) -> None:
        """staleUploads lists up to C{limit} uploads initiated strictly before the time, oldest first."""
        store = self.withUploads([("k", 30.0, "u1"), ("k", 10.0, "u2"), ("j", 20.0, "u3"), ("k", 20.0, "u0")])
        self.withUploads([("k", 5.0, "u4")], store, "c")
        stale = self.successResultOf(store.staleUploads(30))
        self.assertEqual([u.uploadId for u in stale], ["u4", "u2", "u0", "u3"])
        self.assertEqual(stale[0], uploadRecord("u4", "c", initiated=5.0))
        self.assertEqual([u.uploadId for u in self.successResultOf(store.staleUploads(30, limit=2))], ["u4", "u2"])
        self.assertEqual(self.successResultOf(store.staleUploads(5)), [])
        self.result(store.abortUpload("u2"))
        self.assertEqual([u.uploadId for u in self.successResultOf(store.staleUploads(100))], ["u4", "u0", "u3", "u1"])

    def test_uploadsSurviveReopen(self) -> None:
        """Uploads, their parts and bucket config are durable; completing after a reopen works."""
        store = self.started()
        a = written(b"a")
        self.result(store.putPart("u1", part(1, a), a))
        self.result(store.updateBucket("b", configSetter("cors", "<CORS/>")))
        store = self.needReopen(store)
        self.assertEqual(self.successResultOf(store.getUpload("u1")),
                         attrs.evolve(uploadRecord("u1"), parts=(part(1, a),)))
        self.assertEqual(self.successResultOf(store.getBucket("b")).configValue("cors"),  # type: ignore[union-attr]
                         "<CORS/>")
        self.assertEqual(self.result(store.completeUpload("u1", manifest())).blobAddresses(), (a.contentAddress,))

    def test_blobsReleased(self) -> None:
        """
        Every blob handed to a write is released exactly once, when the
        write committed or was refused (compaction waits for it).
        """
        store = self.started()
        released: List[str] = []

        def tracked(content: bytes, offset: int) -> WrittenBlob:
            blob = written(content, 1, offset)
            return attrs.evolve(blob, release=lambda: released.append(content.decode()))

        ok = tracked(b"ok", 0)
        self.result(store.putObject(record("b", "ok", ok), ok))
        refused = tracked(b"refused", 10)
        self.assertEqual(self.code(store.putObject(record("nobucket", "k", refused), refused)), "NoSuchBucket")
        multi = tracked(b"multi", 20)
        self.failure(store.putObject(attrs.evolve(record("b", "m", multi), blob="", parts=(part(1, multi),)), multi),
                     ValueError)
        p = tracked(b"part", 30)
        self.result(store.putPart("u1", part(1, p), p))
        late = tracked(b"late", 40)
        self.assertEqual(self.code(store.putPart("nope", part(1, late), late)), "NoSuchUpload")
        d = tracked(b"discarded", 50)
        self.result(store.discard(d))
        self.assertEqual(sorted(released), ["discarded", "late", "multi", "ok", "part", "refused"])

    # -- compaction ----------------------------------------------------------------------

    def usage(self, store: IMetadataStore) -> Dict[int, int]:
        """Live bytes per segment, without zeros."""
        self.settle()
        return {s: n for s, n in self.successResultOf(store.segmentUsage()).items() if n}

    def test_segmentUsage(self) -> None:
        """A segment's live bytes are its referenced records, whole; they go when the blob goes."""
        store = self.withBucket()
        self.assertEqual(self.usage(store), {})
        self.put(store, "a", b"aaa", 1, 0)
        self.put(store, "b", b"bb", 2, 0)
        self.put(store, "c", b"bb", 3, 0)  # the same content: its newest copy is the blob's
        self.assertEqual(self.usage(store), {1: recordLength(3), 3: recordLength(2)})
        self.result(store.deleteObject("b", "a"))
        self.assertEqual(self.usage(store), {3: recordLength(2)})
        self.durable(store)

    def test_segmentExtents(self) -> None:
        """A segment's live records by offset, with their blobs; paged by offset."""
        store = self.withBucket()
        _, x = self.put(store, "x", b"x", 4, 200)
        _, y = self.put(store, "y", b"yy", 4, 100)
        self.put(store, "z", b"zzz", 5, 0)
        both = [(y.contentAddress, y.extents[0]), (x.contentAddress, x.extents[0])]
        self.assertEqual(self.successResultOf(store.segmentExtents(4)), both)
        self.assertEqual(self.successResultOf(store.segmentExtents(4, limit=1)), both[:1])
        self.assertEqual(self.successResultOf(store.segmentExtents(4, after=100)), both[1:])
        self.assertEqual(self.successResultOf(store.segmentExtents(6)), [])

    def test_relocate(self) -> None:
        """A moved record is the blob's from then on, durably; the old copy is garbage."""
        store = self.withBucket()
        rec, blob = self.put(store, "k", b"hello", 1, 0)
        new = Extent(9, 50, 5)
        self.assertEqual(self.result(store.relocate([(blob.contentAddress, blob.extents[0], new)])), 1)
        found = self.blob(store, blob.contentAddress)
        assert found is not None
        self.assertEqual(found.extents, (new,))
        self.assertEqual(self.usage(store), {9: recordLength(5)})
        self.assertEqual(self.successResultOf(store.segmentExtents(1)), [])
        self.assertEqual(self.garbage(store), {1: 5})
        store = self.durable(store)
        self.assertEqual(self.successResultOf(store.getObject("b", "k")), rec)

    def test_relocateOneOfMany(self) -> None:
        """Only the moved extent of a many-record blob changes; the order of the blob's bytes stays."""
        store = self.withBucket()
        content = b"abcdef"
        blob = WrittenBlob(6, (Extent(1, 0, 2), Extent(1, 100, 2), Extent(2, 0, 2)),
                           {"md5": hashlib.md5(content).digest(), "blake3": hashlib.sha256(content).digest()})
        self.result(store.putObject(record("b", "k", blob), blob))
        moved = Extent(7, 0, 2)
        self.assertEqual(self.result(store.relocate([(blob.contentAddress, Extent(1, 100, 2), moved)])), 1)
        found = self.blob(store, blob.contentAddress)
        assert found is not None
        self.assertEqual(found.extents, (Extent(1, 0, 2), moved, Extent(2, 0, 2)))
        self.assertEqual(self.usage(store), {1: recordLength(2), 2: recordLength(2), 7: recordLength(2)})

    def test_relocateStale(self) -> None:
        """
        A move whose record is no longer the blob's (deleted, replaced by a
        re-upload, already moved, or a wrong address or length) takes
        nothing, and its copy is garbage.
        """
        store = self.withBucket()
        _, gone = self.put(store, "gone", b"gone", 1, 0)
        self.result(store.deleteObject("b", "gone"))
        _, first = self.put(store, "k", b"same", 1, 100)
        _, again = self.put(store, "k2", b"same", 2, 0)
        _, other = self.put(store, "o", b"other", 1, 200)
        before = self.garbage(store)
        moves = [
            (gone.contentAddress, gone.extents[0], Extent(8, 0, 4)),
            (first.contentAddress, first.extents[0], Extent(8, 100, 4)),
            (again.contentAddress, other.extents[0], Extent(8, 200, 5)),
            (other.contentAddress, Extent(1, 200, 4), Extent(8, 300, 4)),
        ]
        self.assertEqual(self.result(store.relocate(moves)), 0)
        self.assertEqual(self.garbage(store), {**before, 8: 4 + 4 + 5 + 4})
        self.assertNotIn(8, self.usage(store))

    def test_relocatePart(self) -> None:
        """A part's record can move while its upload is in progress; the completed object reads the new place."""
        store = self.started()
        p = written(b"part", 2, 0)
        self.result(store.putPart("u1", part(1, p), p))
        self.assertEqual(self.result(store.relocate([(p.contentAddress, p.extents[0], Extent(3, 0, 4))])), 1)
        found = self.blob(store, p.contentAddress)
        assert found is not None
        self.assertEqual(found.extents, (Extent(3, 0, 4),))
        self.assertEqual(self.usage(store), {3: recordLength(4)})

    def test_forgetSegment(self) -> None:
        """A segment with live records cannot be forgotten; an emptied one can, garbage and all."""
        store = self.withBucket()
        _, blob = self.put(store, "k", b"kk", 1, 0)
        self.put(store, "old", b"old", 1, 10)
        self.result(store.deleteObject("b", "old"))
        self.failure(store.forgetSegment(1), ValueError)
        self.result(store.relocate([(blob.contentAddress, blob.extents[0], Extent(2, 0, 2))]))
        self.assertIn(1, self.garbage(store))
        self.result(store.forgetSegment(1))
        self.assertNotIn(1, self.garbage(store))
        self.assertNotIn(1, self.successResultOf(store.segmentUsage()))
        self.result(store.forgetSegment(99))  # nothing known: nothing to do
        late = written(b"late", 1, 500)
        self.assertEqual(self.code(store.putObject(record("b", "late", late), late)), "InternalError")
        self.result(store.createUpload(uploadRecord("u3", "b", "k")))
        self.assertEqual(self.code(store.putPart("u3", part(1, late), late)), "InternalError")
        self.durable(store)

    # -- durability ----------------------------------------------------------------------

    def populate(self, store: IMetadataStore) -> None:
        """Buckets, objects with replacements, deduplication and deletes, uploads, config, garbage."""
        self.result(store.createBucket(bucket("b")))
        self.result(store.createBucket(bucket("c", "bob")))
        for i in range(10):
            blob = written(b"%d" % (i % 3), 1, i * 10)
            self.result(store.putObject(record("b" if i % 2 else "c", "k%d" % (i % 4), blob), blob))
        self.result(store.deleteObject("b", "k1"))
        self.result(store.discard(written(b"lost", 5)))
        self.result(store.updateVersion("c", "k0", None, tagsSetter((("t", "1"),))))
        self.result(store.updateBucket("c", configSetter("cors", "<C/>")))
        self.result(store.createUpload(uploadRecord("u1", "c", "up")))
        p = written(b"part", 2, 0)
        self.result(store.putPart("u1", part(1, p), p))

    def test_reopen(self) -> None:
        """Every read after a reopen shows what it showed before, and writes go on."""
        store = self.makeStore()
        self.populate(store)
        before = self.contents(store)
        self.assertEqual(sum(len(v) for v in before.objects.values()), 3)
        store = self.needReopen(store)
        self.assertEqual(self.contents(store), before)
        self.put(store, "after", b"after")
        again = self.needReopen(store)
        self.assertIsNotNone(self.successResultOf(again.getObject("b", "after")))
        self.assertEqual(self.successResultOf(again.totals()).objects, 4)

    def wireId(self, version: ModelVersion, made: Dict[int, List[ObjectRecord]]) -> str:
        """The id the store gave a model version: the one its write fired with."""
        if version.null:
            return NULL_VERSION_ID
        [stored] = made[version.number]
        return stored.wireVersionId

    @given(_modelOps)
    @settings(_PROPERTY, max_examples=150)
    def test_model(self, ops: List[Tuple[Any, ...]]) -> None:
        """
        Random sequences of puts (conditional or not), uploads, parts
        (re-uploads included), completions, aborts, copies, deletes (of a
        key or of one version), tags, versioning turned on and suspended,
        bucket changes, discards and commit-round boundaries: every outcome
        is the sequential model's, the final objects, versions (with the
        ids their writes fired with) and uploads are the model's,
        refcounts, totals and garbage are exact after every round, and a
        reopen shows the same contents.
        """
        store = self.withBucket()
        try:
            self.runModel(store, ops)
        finally:
            self.settle()
            store.close()

    def runModel(self, store: IMetadataStore, ops: List[Tuple[Any, ...]]) -> None:
        self.result(store.createBucket(bucket("b1")))
        model = Model()
        made: Dict[int, List[ObjectRecord]] = {}  # what the write that made each model version fired with

        def keeper(box: List[ObjectRecord]) -> Callable[[Any], Any]:
            def keep(stored: Any) -> Any:
                box.append(stored)
                return stored

            return keep

        uploadIds: List[str] = []
        outcomes: List[Tuple[Tuple[Any, ...], str, "Deferred[Any]"]] = []
        writtenBytes = 0
        extentsOf: Dict[str, Set[Extent]] = {}
        offset = 0

        def write(content: bytes) -> WrittenBlob:
            nonlocal offset, writtenBytes
            offset += 10
            blob = written(content, 1 + offset % 3, offset)
            writtenBytes += blob.size
            extentsOf.setdefault(blob.contentAddress, set()).update(blob.extents)
            return blob

        for op in ops:
            kind = op[0]
            d: Deferred[Any]
            if kind == "round":
                self.settle()
                self.checkReferences(store, writtenBytes, extentsOf)
                continue
            if kind == "discard":
                offset += 10
                blob = written(op[1], 4, offset)
                writtenBytes += blob.size
                outcomes.append((op, "ok", store.discard(blob)))
                continue
            if kind == "createUpload":
                uploadIds.append("u%d" % len(uploadIds))
            target = model.target(op) if kind == "deleteVersion" else None
            if target is not None and not target.null:
                self.settle()  # its id is what its write fired with
            before = model.written
            expected = model.step(op, uploadIds)
            if kind in ("put", "putIfNoneMatch"):
                blob = write(op[3])
                d = store.putObject(record(op[1], op[2], blob), blob, ifNoneMatch if kind == "putIfNoneMatch" else None)
            elif kind == "createUpload":
                d = store.createUpload(uploadRecord(uploadIds[-1], op[1], op[2]))
            elif kind in ("part", "complete", "abort"):
                uploadId = uploadIdFor(op[1], uploadIds)
                if kind == "part":
                    blob = write(op[3])
                    d = store.putPart(uploadId, part(op[2], blob), blob)
                elif kind == "complete":
                    d = store.completeUpload(uploadId, manifest(sorted(op[2])), ifNoneMatch if op[3] else None)
                else:
                    d = store.abortUpload(uploadId)
            elif kind == "copy":
                d = store.copyObject(op[1], op[2], copyAs(op[3], op[4])).addCallback(lambda copied: copied.record)
            elif kind == "delete":
                d = store.deleteObject(op[1], op[2], modified=1700000009.0)
            elif kind == "deleteVersion":
                if target is None:
                    versionId = NULL_VERSION_ID if op[3] == "null" else versionIdOf(1 << 60)
                else:
                    versionId = self.wireId(target, made)
                d = store.deleteObject(op[1], op[2], versionId=versionId)
            elif kind == "versioning":
                d = store.updateBucket(op[1], versioningSetter(op[2]))
            elif kind == "tags":
                d = store.updateVersion(op[1], op[2], None, tagsSetter((("n", str(len(outcomes))),)))
            elif kind == "config":
                d = store.updateBucket(op[1], configSetter("tagging", str(len(outcomes))))
            elif kind == "createBucket":
                d = store.createBucket(bucket(op[1]))
            else:
                d = store.deleteBucket(op[1], "alice")
            if model.written != before:
                box: List[ObjectRecord] = []
                made[model.written] = box
                d.addCallback(keeper(box))
            outcomes.append((op, expected, d))
        self.settle()
        for op, expected, d in outcomes:
            self.assertEqual(outcomeOf(d), expected, op)
        c = self.checkReferences(store, writtenBytes, extentsOf)

        address = {content: written(content).contentAddress for content in _CONTENTS}
        actualObjects = {(b, o.key): o.blobAddresses() for b, objects in c.objects.items() for o in objects}
        self.assertEqual(actualObjects, {k: tuple(address[x] for x in v) for k, v in model.objects.items()})
        actualVersions: Dict[Tuple[str, str], List[Tuple[Optional[Tuple[str, ...]], str]]] = {}
        for b, versions in c.versions.items():
            for v in versions:
                actualVersions.setdefault((b, v.key), []).append(
                    (None if v.deleteMarker else v.blobAddresses(), v.wireVersionId))
        self.assertEqual(actualVersions, {
            k: [(None if v.contents is None else tuple(address[x] for x in v.contents), self.wireId(v, made))
                for v in reversed(found)]
            for k, found in model.versions.items() if found
        })
        actualUploads = {u.uploadId: (u.bucket, u.key, {p.number: p.blob for p in u.parts})
                         for uploads in c.uploads.values() for u in uploads}
        self.assertEqual(actualUploads, {i: (b, k, {n: address[x] for n, x in ps.items()})
                                         for i, (b, k, ps) in model.uploads.items()})
        self.assertEqual({b.name for b in c.buckets}, model.buckets | {"b"})
        again = self.durable(store)
        if again is not store:
            self.settle()
            again.close()
