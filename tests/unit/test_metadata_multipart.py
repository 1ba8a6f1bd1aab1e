"""
Tests for multipart uploads, copies, object tags and bucket configuration in
L{fasterstore.metadata.records}, L{fasterstore.metadata.state} and
L{fasterstore.metadata.engine}.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.engine import MetadataEngine
from fasterstore.metadata.records import BucketRecord, ObjectRecord, PartRecord, UploadRecord
from fasterstore.metadata.state import MetadataState, UploadPage
from fasterstore.storage.blob import Extent, WrittenBlob
from tests.unit.test_metadata_engine import EngineTestCase, ManualRunner, ifNoneMatch, record, written
from tests.unit.test_metadata_state import (
    bucket,
    completeUpload,
    createBucket,
    createUpload,
    deleteObject,
    multipartObj,
    obj,
    partRecord,
    putObject,
    putPart,
    stateOf,
    uploadRecord,
)


# -- helpers ------------------------------------------------------------------


def part(number: int, blob: WrittenBlob) -> PartRecord:
    """The part record for a written blob."""
    return PartRecord(number=number, size=blob.size, etag=blob.digests["md5"].hex(),
                      blob=blob.contentAddress, modified=1700000003.0)


def manifest(numbers: Optional[Sequence[int]] = None) -> Any:
    """
    A C{build} for L{MetadataEngine.completeUpload}: the object made of the
    upload's parts with these numbers (all parts if C{None}), in order;
    C{InvalidPart} if that is none.
    """

    def build(upload: UploadRecord) -> ObjectRecord:
        chosen = [p for p in upload.parts if numbers is None or p.number in numbers]
        if not chosen:
            raise S3Error("InvalidPart")
        return multipartObj(upload.bucket, upload.key, chosen)

    return build


def copyAs(bucketName: str, key: str, **changes: Any) -> Any:
    """A C{build} for L{MetadataEngine.copyObject}: the source under a new name."""

    def build(source: ObjectRecord) -> ObjectRecord:
        return attrs.evolve(source, bucket=bucketName, key=key, **changes)

    return build


def code(d: "Deferred[Any]", test: SynchronousTestCase) -> str:
    """The S3 error code a Deferred failed with."""
    return str(test.failureResultOf(d, S3Error).value.code)


def referenceCounts(state: MetadataState) -> Dict[str, int]:
    """Blob references held by the objects and uploads of C{state}, counted the obvious way."""
    refs: Counter[str] = Counter()
    for keys in state.objects.values():
        for o in keys.values():
            refs.update(o.blobAddresses())
    for u in state.uploads.values():
        refs.update(p.blob for p in u.parts)
    return dict(refs)


# -- records -------------------------------------------------------------------


class RecordTests(SynchronousTestCase):
    """The new records and fields, and reading records written before them."""

    def test_partRoundTrip(self) -> None:
        """A part record survives JSON."""
        p = partRecord(3, "x")
        self.assertEqual(PartRecord.fromJSON(json.loads(json.dumps(p.toJSON()))), p)

    def test_uploadRoundTrip(self) -> None:
        """An upload with parts survives JSON."""
        u = uploadRecord("u1").withPart(partRecord(2, "y")).withPart(partRecord(1, "x"))
        self.assertEqual(UploadRecord.fromJSON(json.loads(json.dumps(u.toJSON()))), u)

    def test_objectRoundTrip(self) -> None:
        """A multipart object with tags and checksum type survives JSON."""
        o = multipartObj("b", "k", [partRecord(1, "x"), partRecord(2, "y")])
        again = ObjectRecord.fromJSON(json.loads(json.dumps(o.toJSON())))
        self.assertEqual(again, o)
        self.assertIsInstance(again.parts[0], PartRecord)

    def test_oldObjectJSON(self) -> None:
        """An object record written before parts, tags and checksumType existed still loads."""
        old = {"bucket": "b", "key": "k", "size": 1, "etag": "e", "blob": "x", "modified": 1.0,
               "headers": [["Content-Type", "a/b"]], "meta": [], "checksums": [], "versionId": None}
        o = ObjectRecord.fromJSON(old)
        self.assertEqual((o.parts, o.tags, o.checksumType), ((), (), None))
        self.assertEqual(o.headers, (("Content-Type", "a/b"),))

    def test_oldBucketJSON(self) -> None:
        """A bucket record written before config existed still loads."""
        b = BucketRecord.fromJSON({"name": "b", "owner": "o", "region": "", "created": 1.0})
        self.assertEqual(b.config, ())
        self.assertEqual(BucketRecord.fromJSON(json.loads(json.dumps(b.toJSON()))), b)

    def test_config(self) -> None:
        """configValue reads what withConfig sets; None removes; names stay sorted."""
        b = bucket("b").withConfig("tagging", "<t/>").withConfig("cors", "<c/>")
        self.assertEqual(b.config, (("cors", "<c/>"), ("tagging", "<t/>")))
        self.assertEqual(b.configValue("cors"), "<c/>")
        self.assertIsNone(b.configValue("policy"))
        b = b.withConfig("cors", None).withConfig("tagging", "<t2/>")
        self.assertEqual(b.config, (("tagging", "<t2/>"),))
        self.assertEqual(BucketRecord.fromJSON(json.loads(json.dumps(b.toJSON()))), b)

    def test_blobAddresses(self) -> None:
        """A record references its blob if set, else each part's blob, duplicates included."""
        self.assertEqual(obj("b", "k", "x").blobAddresses(), ("x",))
        parts = [partRecord(1, "x"), partRecord(2, "y"), partRecord(3, "x")]
        self.assertEqual(multipartObj("b", "k", parts).blobAddresses(), ("x", "y", "x"))
        self.assertEqual(attrs.evolve(obj("b", "k"), blob="").blobAddresses(), ())

    def test_withPart(self) -> None:
        """Parts stay sorted by number, one per number, the last one winning."""
        u = uploadRecord("u").withPart(partRecord(3, "c")).withPart(partRecord(1, "a")).withPart(partRecord(3, "d"))
        self.assertEqual([(p.number, p.blob) for p in u.parts], [(1, "a"), (3, "d")])
        self.assertEqual(u.getPart(3), partRecord(3, "d"))
        self.assertIsNone(u.getPart(2))


# -- state ---------------------------------------------------------------------


class UploadStateTests(SynchronousTestCase):
    """The multipart mutations and their blob references."""

    def test_createAndParts(self) -> None:
        """Parts are kept by number; each takes a reference on its blob (dedup as put_object)."""
        state = stateOf([
            createBucket("b"), createUpload("u1"),
            putPart("u1", 2, "y", 5, [(1, 0, 5)]),
            putPart("u1", 1, "x", 10, [(1, 5, 10)]),
            putPart("u1", 3, "x", 10, [(2, 0, 10)]),  # same content as part 1
        ])
        u = state.getUpload("u1")
        assert u is not None
        self.assertEqual([p.number for p in u.parts], [1, 2, 3])
        self.assertEqual(state.blobs["x"].refs, 2)
        self.assertEqual(state.blobs["x"].extents, (Extent(1, 5, 10),))
        self.assertEqual(state.garbage, {2: 10})
        self.assertEqual((state.objectCount, state.logicalBytes), (0, 0))  # uploads are not objects

    def test_reuploadReleasesPrevious(self) -> None:
        """A re-uploaded part number releases the previous part's blob."""
        state = stateOf([
            createBucket("b"), createUpload("u1"),
            putPart("u1", 1, "x", 10, [(1, 0, 10)]),
            putPart("u1", 1, "y", 4, [(1, 10, 4)]),
        ])
        self.assertNotIn("x", state.blobs)
        self.assertEqual(state.garbage, {1: 10})
        self.assertEqual(state.getUpload("u1").parts, (partRecord(1, "y", 4),))  # type: ignore[union-attr]

    def test_reuploadSameContent(self) -> None:
        """Re-uploading identical content keeps the original bytes; the new copy is garbage."""
        state = stateOf([
            createBucket("b"), createUpload("u1"),
            putPart("u1", 1, "x", 10, [(1, 0, 10)]),
            putPart("u1", 1, "x", 10, [(2, 0, 10)]),
        ])
        self.assertEqual(state.blobs["x"].extents, (Extent(1, 0, 10),))
        self.assertEqual(state.blobs["x"].refs, 1)
        self.assertEqual(state.garbage, {2: 10})

    def test_complete(self) -> None:
        """
        Completing makes the object (one reference per part it uses), removes
        the upload, and the parts not used become garbage.
        """
        state = stateOf([
            createBucket("b"), createUpload("u1"),
            putPart("u1", 1, "x", 10, [(1, 0, 10)]),
            putPart("u1", 2, "y", 4, [(1, 10, 4)]),
            putPart("u1", 3, "z", 3, [(1, 14, 3)]),
            completeUpload("u1", "b", "k", [partRecord(1, "x", 10), partRecord(3, "z", 3)]),
        ])
        o = state.getObject("b", "k")
        assert o is not None
        self.assertEqual(o.blobAddresses(), ("x", "z"))
        self.assertIsNone(state.getUpload("u1"))
        self.assertEqual(state.uploadIndex, {})
        self.assertEqual({a: b.refs for a, b in state.blobs.items()}, {"x": 1, "z": 1})
        self.assertEqual(state.garbage, {1: 4})
        self.assertEqual((state.objectCount, state.logicalBytes), (1, 13))
        state.apply(deleteObject("b", "k"))
        self.assertEqual(state.blobs, {})
        self.assertEqual(state.garbage, {1: 17})

    def test_completeReplacesObject(self) -> None:
        """Completing over an existing object releases the replaced version."""
        state = stateOf([
            createBucket("b"), putObject("b", "k", "old", 7, [(3, 0, 7)]),
            createUpload("u1"), putPart("u1", 1, "x", 10, [(1, 0, 10)]),
            completeUpload("u1", "b", "k", [partRecord(1, "x", 10)]),
        ])
        self.assertEqual(state.garbage, {3: 7})
        self.assertEqual((state.objectCount, state.logicalBytes), (1, 10))

    def test_completeMissingBlob(self) -> None:
        """A complete naming a blob that does not exist (never logged) only aborts the upload."""
        state = stateOf([
            createBucket("b"), createUpload("u1"), putPart("u1", 1, "x", 10, [(1, 0, 10)]),
            completeUpload("u1", "b", "k", [partRecord(1, "nope", 10)]),
        ])
        self.assertIsNone(state.getObject("b", "k"))
        self.assertEqual((state.uploads, state.blobs, state.garbage), ({}, {}, {1: 10}))

    def test_abort(self) -> None:
        """Aborting releases every part; shared bytes stay alive."""
        state = stateOf([
            createBucket("b"), putObject("b", "k", "x", 10, [(1, 0, 10)]),
            createUpload("u1"),
            putPart("u1", 1, "x", 10, [(2, 0, 10)]),
            putPart("u1", 2, "y", 4, [(2, 10, 4)]),
            {"op": "abort_upload", "uploadId": "u1"},
            {"op": "abort_upload", "uploadId": "u1"},
        ])
        self.assertEqual({a: b.refs for a, b in state.blobs.items()}, {"x": 1})
        self.assertEqual(state.garbage, {2: 14})
        self.assertEqual((state.uploads, state.uploadIndex), ({}, {}))

    def test_totalOnMissing(self) -> None:
        """Parts of a missing upload are garbage; uploads need a bucket; complete/abort of nothing do nothing."""
        state = stateOf([
            putPart("nope", 1, "x", 10, [(1, 0, 10)]),
            createUpload("u1", "missing"),
            completeUpload("u9", "b", "k", []),
            {"op": "abort_upload", "uploadId": "u9"},
        ])
        self.assertEqual(state, MetadataState(garbage={1: 10}))

    def test_createDropsParts(self) -> None:
        """An upload starts empty even if its record carries parts; re-creating an id aborts it first."""
        u = uploadRecord("u1").withPart(partRecord(1, "x"))
        state = stateOf([createBucket("b"), {"op": "create_upload", "upload": u.toJSON()}])
        self.assertEqual(state.getUpload("u1").parts, ())  # type: ignore[union-attr]
        state.apply(putPart("u1", 1, "x", 10, [(1, 0, 10)]))
        state.apply(createUpload("u1", key="other"))
        self.assertEqual(state.getUpload("u1"), uploadRecord("u1", key="other"))
        self.assertEqual((state.blobs, state.garbage), ({}, {1: 10}))
        self.assertEqual(list(state.uploadIndex["b"].values()), ["u1"])

    def test_deleteBucketAbortsUploads(self) -> None:
        """Deleting a bucket aborts its uploads, not other buckets'."""
        state = stateOf([
            createBucket("b"), createBucket("c"),
            createUpload("u1"), putPart("u1", 1, "x", 10, [(1, 0, 10)]),
            createUpload("u2", "c"), putPart("u2", 1, "y", 4, [(1, 10, 4)]),
            {"op": "delete_bucket", "name": "b"},
        ])
        self.assertEqual(list(state.uploads), ["u2"])
        self.assertEqual(list(state.uploadIndex), ["c"])
        self.assertEqual(state.garbage, {1: 10})

    def test_copy(self) -> None:
        """A copy takes references on the source's blobs; either can go first."""
        state = stateOf([
            createBucket("b"), createUpload("u1"),
            putPart("u1", 1, "x", 10, [(1, 0, 10)]), putPart("u1", 2, "y", 4, [(1, 10, 4)]),
            completeUpload("u1", "b", "src", [partRecord(1, "x", 10), partRecord(2, "y", 4)]),
            {"op": "copy_object", "object": multipartObj("b", "dst", [partRecord(1, "x", 10),
                                                                       partRecord(2, "y", 4)]).toJSON()},
        ])
        self.assertEqual({a: b.refs for a, b in state.blobs.items()}, {"x": 2, "y": 2})
        state.apply(deleteObject("b", "src"))
        self.assertEqual({a: b.refs for a, b in state.blobs.items()}, {"x": 1, "y": 1})
        self.assertEqual(state.garbage, {})
        state.apply(deleteObject("b", "dst"))
        self.assertEqual((state.blobs, state.garbage), ({}, {1: 14}))

    def test_copyOntoItself(self) -> None:
        """A copy onto the same key replaces the record; references are unchanged."""
        state = stateOf([createBucket("b"), putObject("b", "k", "x", 10, [(1, 0, 10)])])
        replaced = attrs.evolve(obj("b", "k", "x", 10), meta=(("new", "1"),))
        state.apply({"op": "copy_object", "object": replaced.toJSON()})
        self.assertEqual(state.getObject("b", "k"), replaced)
        self.assertEqual((state.blobs["x"].refs, state.garbage), (1, {}))

    def test_copyTotal(self) -> None:
        """A copy naming a missing blob or into a missing bucket does nothing."""
        before = stateOf([createBucket("b"), putObject("b", "k", "x", 10, [(1, 0, 10)])])
        for o in [obj("b", "k2", "nope"), obj("zz", "k2", "x")]:
            state = stateOf([createBucket("b"), putObject("b", "k", "x", 10, [(1, 0, 10)]),
                             {"op": "copy_object", "object": o.toJSON()}])
            self.assertEqual(state, before)

    def test_putObjectWithParts(self) -> None:
        """A put_object of a record without a single blob (never logged) only adds garbage."""
        m = putObject("b", "k", "x", 10, [(1, 0, 10)])
        m["object"] = multipartObj("b", "k", [partRecord(1, "x")]).toJSON()
        state = stateOf([createBucket("b"), m])
        self.assertEqual((state.objectCount, state.blobs, state.garbage), (0, {}, {1: 10}))

    def test_tagsAndConfig(self) -> None:
        """set_object_tags replaces the tags of the current record; set_bucket_config sets and removes."""
        state = stateOf([
            createBucket("b"), putObject("b", "k"),
            {"op": "set_object_tags", "bucket": "b", "key": "k", "tags": [["a", "1"], ["b", "2"]]},
            {"op": "set_object_tags", "bucket": "b", "key": "missing", "tags": [["a", "1"]]},
            {"op": "set_object_tags", "bucket": "zz", "key": "k", "tags": []},
            {"op": "set_bucket_config", "bucket": "b", "name": "cors", "value": "<CORS/>"},
            {"op": "set_bucket_config", "bucket": "b", "name": "tagging", "value": "<T/>"},
            {"op": "set_bucket_config", "bucket": "b", "name": "tagging", "value": None},
            {"op": "set_bucket_config", "bucket": "zz", "name": "cors", "value": "x"},
        ])
        self.assertEqual(state.getObject("b", "k"), attrs.evolve(obj("b", "k"), tags=(("a", "1"), ("b", "2"))))
        self.assertIsNone(state.getObject("b", "missing"))
        self.assertEqual(state.getBucket("b").config, (("cors", "<CORS/>"),))  # type: ignore[union-attr]
        self.assertEqual(set(state.buckets), {"b"})

    def test_staleUploads(self) -> None:
        """staleUploads lists uploads initiated strictly before the time, oldest first."""
        state = stateOf([createBucket("b"), createUpload("u1", initiated=30), createUpload("u2", initiated=10),
                         createUpload("u3", initiated=20)])
        self.assertEqual([u.uploadId for u in state.staleUploads(30)], ["u2", "u3"])
        self.assertEqual(state.staleUploads(10), [])

    def test_snapshotRecords(self) -> None:
        """Uploads and bucket config go through the record stream."""
        state = stateOf([
            createBucket("b"), createUpload("u1"), putPart("u1", 1, "x", 10, [(1, 0, 10)]),
            {"op": "set_bucket_config", "bucket": "b", "name": "cors", "value": "<C/>"},
        ])
        records = json.loads(json.dumps(list(state.iterRecords())))
        self.assertEqual([sorted(r)[0] for r in records], ["bucket", "upload", "blob", "garbage"])
        self.assertEqual(MetadataState.fromRecords(records), state)
        self.assertRaises(ValueError, MetadataState.fromRecords, [{"upload": uploadRecord("u1", "zz").toJSON()}])


# -- listing uploads --------------------------------------------------------------


def bruteUploads(
    uploads: Sequence[Tuple[str, float, str]], prefix: str, delimiter: str, keyMarker: str,
    uploadIdMarker: str, maxUploads: int,
) -> Tuple[List[str], List[str], bool, str, str]:
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


def uploadSummary(page: UploadPage) -> Tuple[List[str], List[str], bool, str, str]:
    """A page as comparable plain values."""
    return ([u.uploadId for u in page.uploads], page.commonPrefixes, page.isTruncated,
            page.nextKeyMarker, page.nextUploadIdMarker)


def stateWithUploads(uploads: Sequence[Tuple[str, float, str]]) -> MetadataState:
    """A state with bucket C{b} holding these C{(key, initiated, uploadId)} uploads."""
    return stateOf([createBucket("b")] + [createUpload(i, "b", k, t) for k, t, i in uploads])


_uploadKeys = st.text(alphabet="ab/", min_size=1, max_size=4)
_uploadSets = st.lists(
    st.tuples(_uploadKeys, st.integers(0, 3).map(float), st.text(alphabet="xyz", min_size=1, max_size=3)),
    max_size=25, unique_by=lambda u: u[2],
)
_fragments = st.text(alphabet="ab/", max_size=3)


class ListUploadsTests(SynchronousTestCase):
    """listUploads against AWS's documented behaviour and a brute-force model."""

    uploads = [("a", 2.0, "u2"), ("a", 1.0, "u9"), ("a/1", 1.0, "u3"), ("a/2", 1.0, "u4"), ("b", 5.0, "u5"),
               ("c", 1.0, "u6")]

    def page(self, **kw: Any) -> Tuple[List[str], List[str], bool, str, str]:
        return uploadSummary(stateWithUploads(self.uploads).listUploads("b", **kw))

    def test_order(self) -> None:
        """Uploads come by key, then initiation time."""
        self.assertEqual(self.page(), (["u9", "u2", "u3", "u4", "u5", "u6"], [], False, "c", "u6"))

    def test_delimiter(self) -> None:
        """Keys roll up into common prefixes, each one entry."""
        self.assertEqual(self.page(delimiter="/", maxUploads=3), (["u9", "u2"], ["a/"], True, "a/", ""))
        self.assertEqual(self.page(delimiter="/", keyMarker="a/"), (["u5", "u6"], [], False, "c", "u6"))

    def test_keyMarker(self) -> None:
        """keyMarker alone: keys after it."""
        self.assertEqual(self.page(keyMarker="a/1"), (["u4", "u5", "u6"], [], False, "c", "u6"))

    def test_uploadIdMarker(self) -> None:
        """Both markers: the marker key's later uploads, then later keys."""
        self.assertEqual(self.page(keyMarker="a", uploadIdMarker="u9", maxUploads=2),
                         (["u2", "u3"], [], True, "a/1", "u3"))

    def test_unknownUploadIdMarker(self) -> None:
        """
        An upload id marker that is unknown (completed since) or of another
        key selects the marker key's uploads with greater ids, as AWS
        documents.
        """
        self.assertEqual(self.page(keyMarker="a", uploadIdMarker="u8"), (["u9", "u3", "u4", "u5", "u6"], [], False,
                                                                         "c", "u6"))
        self.assertEqual(self.page(keyMarker="a", uploadIdMarker="u5", maxUploads=1), (["u9"], [], True, "a", "u9"))
        self.assertEqual(self.page(keyMarker="a", uploadIdMarker="u1")[0], ["u9", "u2", "u3", "u4", "u5", "u6"])
        self.assertEqual(self.page(keyMarker="a", uploadIdMarker="u9")[0], ["u2", "u3", "u4", "u5", "u6"])
        self.assertEqual(self.page(keyMarker="a", uploadIdMarker="u2")[0], ["u3", "u4", "u5", "u6"])

    def test_uploadIdMarkerWithoutKeyMarker(self) -> None:
        """Without keyMarker the upload id marker is ignored."""
        self.assertEqual(self.page(uploadIdMarker="u9")[0], ["u9", "u2", "u3", "u4", "u5", "u6"])

    def test_emptyAndMissing(self) -> None:
        """No uploads: an empty page; maxUploads 0: empty, not truncated; missing bucket: NoSuchBucket."""
        self.assertEqual(uploadSummary(stateOf([createBucket("b")]).listUploads("b")), ([], [], False, "", ""))
        self.assertEqual(self.page(maxUploads=0), ([], [], False, "", ""))
        e = self.assertRaises(S3Error, MetadataState().listUploads, "nope")
        self.assertEqual(e.code, "NoSuchBucket")

    @given(_uploadSets, _fragments, st.sampled_from(["", "/", "b"]), st.integers(-1, 6), st.data())
    @settings(max_examples=800, deadline=None)
    def test_model(self, uploads: List[Tuple[str, float, str]], prefix: str, delimiter: str,
                   maxUploads: int, data: Any) -> None:
        """Any page equals the brute-force model's, markers drawn from the uploads or not."""
        keys = sorted({k for k, _, _ in uploads})
        ids = sorted(i for _, _, i in uploads)
        keyMarker = data.draw(st.one_of(_fragments, st.sampled_from(keys)) if keys else _fragments)
        uploadIdMarker = data.draw(st.one_of(st.just(""), st.text(alphabet="xyz", min_size=1, max_size=3),
                                             *([st.sampled_from(ids)] if ids else [])))
        state = stateWithUploads(uploads)
        self.assertEqual(
            uploadSummary(state.listUploads("b", prefix, delimiter, keyMarker, uploadIdMarker, maxUploads)),
            bruteUploads(uploads, prefix, delimiter, keyMarker, uploadIdMarker, maxUploads),
        )

    @given(_uploadSets, _fragments, st.sampled_from(["", "/", "b"]), st.integers(1, 4))
    @settings(max_examples=300, deadline=None)
    def test_pagination(self, uploads: List[Tuple[str, float, str]], prefix: str, delimiter: str,
                        maxUploads: int) -> None:
        """Following the next markers visits every entry exactly once, in order."""
        state = stateWithUploads(uploads)
        everything = bruteUploads(uploads, prefix, delimiter, "", "", 10**6)
        ids: List[str] = []
        prefixes: List[str] = []
        markers: Optional[Tuple[str, str]] = ("", "")
        for _ in range(len(uploads) + 2):
            if markers is None:
                break
            page = state.listUploads("b", prefix, delimiter, markers[0], markers[1], maxUploads)
            ids += [u.uploadId for u in page.uploads]
            prefixes += page.commonPrefixes
            markers = (page.nextKeyMarker, page.nextUploadIdMarker) if page.isTruncated else None
        self.assertIsNone(markers, "pagination does not terminate")
        self.assertEqual((ids, prefixes), everything[:2])


# -- engine --------------------------------------------------------------------


class UploadEngineTests(EngineTestCase):
    """createUpload, putPart, completeUpload and abortUpload."""

    def started(self, runner: Any = None, uploadId: str = "u1", key: str = "k") -> MetadataEngine:
        e = self.withBucket(runner)
        d = e.createUpload(uploadRecord(uploadId, "b", key))
        if runner is not None:
            runner.runAll()
        self.assertEqual(self.successResultOf(d), uploadRecord(uploadId, "b", key))
        return e

    def test_lifecycle(self) -> None:
        """Create, upload parts, complete: the object is the manifest; everything survives restart."""
        e = self.started()
        self.assertEqual(e.getUpload("u1"), uploadRecord("u1"))
        a, b = written(b"part-one", 1, 0), written(b"part-two", 1, 100)
        self.assertEqual(self.successResultOf(e.putPart("u1", part(2, b), b)), part(2, b))
        self.successResultOf(e.putPart("u1", part(1, a), a))
        self.assertEqual(e.getUpload("u1").parts, (part(1, a), part(2, b)))  # type: ignore[union-attr]
        self.assertEqual([u.uploadId for u in e.listUploads("b").uploads], ["u1"])
        self.assertEqual(self.loadedState(), e.state)  # uploads survive a crash
        o = self.successResultOf(e.completeUpload("u1", manifest()))
        self.assertEqual(e.getObject("b", "k"), o)
        self.assertEqual(o.blobAddresses(), (a.contentAddress, b.contentAddress))
        self.assertIsNone(e.getUpload("u1"))
        self.assertEqual(e.state.garbage, {})
        self.assertEqual(self.loadedState(), e.state)

    def test_createErrors(self) -> None:
        """A missing bucket is NoSuchBucket; a pending duplicate id is refused; parts are dropped."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        self.assertEqual(code(e.createUpload(uploadRecord("u1", "zz")), self), "NoSuchBucket")
        first = e.createUpload(uploadRecord("u1").withPart(partRecord(1)))
        self.failureResultOf(e.createUpload(uploadRecord("u1")), ValueError)
        runner.runAll()
        self.assertEqual(self.successResultOf(first).parts, ())

    def test_pendingUploadTakesParts(self) -> None:
        """An upload whose creation is not durable yet already takes parts and completes."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        created = e.createUpload(uploadRecord("u1"))
        a = written(b"a")
        put = e.putPart("u1", part(1, a), a)
        done = e.completeUpload("u1", manifest())
        runner.runAll()
        self.successResultOf(created)
        self.successResultOf(put)
        self.assertEqual(self.successResultOf(done).blobAddresses(), (a.contentAddress,))

    def test_completeSeesPendingParts(self) -> None:
        """build is given the upload with the parts not yet durable, re-uploads replaced."""
        runner = ManualRunner()
        e = self.started(runner)
        a, b, c = written(b"a", 1, 0), written(b"b", 1, 10), written(b"c", 1, 20)
        e.putPart("u1", part(1, a), a)
        e.putPart("u1", part(2, b), b)
        e.putPart("u1", part(1, c), c)
        seen: List[UploadRecord] = []

        def build(upload: UploadRecord) -> ObjectRecord:
            seen.append(upload)
            return manifest()(upload)

        done = e.completeUpload("u1", build)
        self.assertEqual(seen[0].parts, (part(1, c), part(2, b)))
        runner.runAll()
        self.assertEqual(self.successResultOf(done).blobAddresses(), (c.contentAddress, b.contentAddress))
        self.assertEqual(e.state.garbage, {1: 1})  # part 1's first upload

    def test_buildRefuses(self) -> None:
        """Whatever build raises refuses the complete; the upload stays."""
        e = self.started()
        self.assertEqual(code(e.completeUpload("u1", manifest()), self), "InvalidPart")
        self.assertIsNotNone(e.getUpload("u1"))

    def test_buildMustUseParts(self) -> None:
        """An object naming blobs that are not the upload's parts, or another key, is a ValueError."""
        e = self.started()
        a = written(b"a")
        self.successResultOf(e.putPart("u1", part(1, a), a))
        other = written(b"other", 2)
        self.successResultOf(e.putObject(record("b", "x", other), other))
        self.failureResultOf(e.completeUpload("u1", lambda u: multipartObj("b", "k", [part(1, other)])),
                             ValueError)
        self.failureResultOf(e.completeUpload("u1", lambda u: multipartObj("b", "other", u.parts)), ValueError)
        self.assertIsNotNone(e.getUpload("u1"))

    def test_completePrecondition(self) -> None:
        """The precondition sees the target key including pending writes (If-None-Match: *)."""
        runner = ManualRunner()
        e = self.started(runner)
        a, x = written(b"a", 1, 0), written(b"x", 2, 0)
        e.putPart("u1", part(1, a), a)
        put = e.putObject(record("b", "k", x), x)
        self.assertEqual(code(e.completeUpload("u1", manifest(), ifNoneMatch), self), "PreconditionFailed")
        runner.runAll()
        self.successResultOf(put)
        self.assertIsNotNone(e.getUpload("u1"))  # a refused complete keeps the upload

    def test_completeVsAbort(self) -> None:
        """A complete racing an abort: the first enqueued wins, the other is NoSuchUpload."""
        for completeFirst in [True, False]:
            self.root = self.mktemp()
            runner = ManualRunner()
            e = self.started(runner)
            a = written(b"aaa", 1, 0)
            self.successResultOf(self.ran(runner, e.putPart("u1", part(1, a), a)))
            if completeFirst:
                done = e.completeUpload("u1", manifest())
                self.assertEqual(code(e.abortUpload("u1"), self), "NoSuchUpload")
            else:
                aborted = e.abortUpload("u1")
                self.assertEqual(code(e.completeUpload("u1", manifest()), self), "NoSuchUpload")
            runner.runAll()
            if completeFirst:
                self.assertEqual(e.getObject("b", "k"), self.successResultOf(done))
                self.assertEqual(e.state.garbage, {})
            else:
                self.assertIsNone(self.successResultOf(aborted))
                self.assertIsNone(e.getObject("b", "k"))
                self.assertEqual((e.state.blobs, e.state.garbage), ({}, {1: 3}))
            self.assertIsNone(e.getUpload("u1"))
            self.assertEqual(self.loadedState(), e.state)

    def ran(self, runner: ManualRunner, d: "Deferred[Any]") -> "Deferred[Any]":
        runner.runAll()
        return d

    def test_completeVsComplete(self) -> None:
        """Of two racing completes the first wins and the second is NoSuchUpload."""
        runner = ManualRunner()
        e = self.started(runner)
        a, b = written(b"a", 1, 0), written(b"b", 1, 10)
        e.putPart("u1", part(1, a), a)
        e.putPart("u1", part(2, b), b)
        first = e.completeUpload("u1", manifest([1]))
        self.assertEqual(code(e.completeUpload("u1", manifest([1, 2])), self), "NoSuchUpload")
        runner.runAll()
        self.assertEqual(self.successResultOf(first).blobAddresses(), (a.contentAddress,))
        self.assertEqual(e.state.garbage, {1: 1})  # part 2, unused

    def test_putPartAfterAbort(self) -> None:
        """A part for an aborted upload (pending or durable) is NoSuchUpload and its bytes garbage."""
        runner = ManualRunner()
        e = self.started(runner)
        aborted = e.abortUpload("u1")
        a = written(b"late", 5, 0)
        self.assertEqual(code(e.putPart("u1", part(1, a), a), self), "NoSuchUpload")
        runner.runAll()
        self.successResultOf(aborted)
        self.assertEqual(e.state.garbage, {5: 4})
        b = written(b"later", 6, 0)
        self.assertEqual(code(e.putPart("u1", part(1, b), b), self), "NoSuchUpload")
        runner.runAll()
        self.assertEqual(e.state.garbage, {5: 4, 6: 5})
        self.assertEqual(code(e.abortUpload("u1"), self), "NoSuchUpload")

    def test_putPartDuringComplete(self) -> None:
        """A part arriving while a complete is pending is NoSuchUpload and its bytes garbage."""
        runner = ManualRunner()
        e = self.started(runner)
        a, b = written(b"a", 1, 0), written(b"b", 2, 0)
        e.putPart("u1", part(1, a), a)
        done = e.completeUpload("u1", manifest())
        self.assertEqual(code(e.putPart("u1", part(2, b), b), self), "NoSuchUpload")
        runner.runAll()
        self.successResultOf(done)
        self.assertEqual(e.state.garbage, {2: 1})

    def test_unknownUpload(self) -> None:
        """Every upload operation on an unknown id is NoSuchUpload with the id."""
        e = self.withBucket()
        a = written(b"a", 3)
        f = self.failureResultOf(e.putPart("zz", part(1, a), a), S3Error)
        self.assertEqual((f.value.code, f.value.status, f.value.extra), ("NoSuchUpload", 404, {"UploadId": "zz"}))
        self.assertEqual(code(e.completeUpload("zz", manifest()), self), "NoSuchUpload")
        self.assertEqual(code(e.abortUpload("zz"), self), "NoSuchUpload")
        self.assertEqual(e.state.garbage, {3: 1})

    def test_deleteBucketAbortsUploads(self) -> None:
        """
        deleteBucket ignores uploads (not BucketNotEmpty) and aborts them,
        including ones whose creation is pending; parts sent after it are
        refused, even if the bucket is re-created meanwhile.
        """
        runner = ManualRunner()
        e = self.started(runner)
        a = written(b"a", 1, 0)
        e.putPart("u1", part(1, a), a)
        e.createUpload(uploadRecord("u2"))
        gone = e.deleteBucket("b", "alice")
        recreated = e.createBucket(bucket("b"))
        late = written(b"late", 2, 0)
        self.assertEqual(code(e.putPart("u1", part(2, late), late), self), "NoSuchUpload")
        self.assertEqual(code(e.putPart("u2", part(1, late), late), self), "NoSuchUpload")
        self.assertEqual(code(e.completeUpload("u1", manifest()), self), "NoSuchUpload")
        runner.runAll()
        self.successResultOf(gone)
        self.successResultOf(recreated)
        self.assertEqual((e.state.uploads, e.state.blobs), ({}, {}))
        self.assertEqual(e.state.garbage, {1: 1, 2: 8})
        self.assertEqual(self.loadedState(), e.state)

    def test_staleAndList(self) -> None:
        """staleUploads and listUploads read the durable state."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        e.createUpload(uploadRecord("u1", initiated=10))
        self.assertEqual((e.staleUploads(100), e.listUploads("b").uploads), ([], []))
        runner.runAll()
        self.assertEqual([u.uploadId for u in e.staleUploads(100)], ["u1"])
        self.assertEqual(e.staleUploads(10), [])
        self.assertEqual(self.assertRaises(S3Error, e.listUploads, "zz").code, "NoSuchBucket")

    def test_snapshotCarriesUploads(self) -> None:
        """A snapshot keeps uploads, their parts and bucket config; restart loads them."""
        e = self.started()
        a = written(b"a")
        self.successResultOf(e.putPart("u1", part(1, a), a))
        self.successResultOf(e.setBucketConfig("b", "cors", "<CORS/>"))
        self.successResultOf(e.snapshot())
        loaded = self.loadedState()
        self.assertEqual(loaded, e.state)
        self.assertEqual(loaded.getUpload("u1").parts, (part(1, a),))  # type: ignore[union-attr]
        self.assertEqual(loaded.getBucket("b").configValue("cors"), "<CORS/>")  # type: ignore[union-attr]


class CopyTagConfigEngineTests(EngineTestCase):
    """copyObject, setObjectTags and setBucketConfig."""

    def test_copyShares(self) -> None:
        """A copy shares the bytes: deleting the source keeps them alive."""
        e = self.withBucket()
        a = written(b"content", 1, 0)
        src = self.successResultOf(e.putObject(record("b", "src", a), a))
        dst = self.successResultOf(e.copyObject("b", "src", copyAs("b", "dst")))
        self.assertEqual(e.getObject("b", "dst"), dst)
        self.assertEqual(dst.blob, src.blob)
        self.assertEqual(e.getBlob(a.contentAddress).refs, 2)  # type: ignore[union-attr]
        self.successResultOf(e.deleteObject("b", "src"))
        self.assertEqual(e.getBlob(a.contentAddress).refs, 1)  # type: ignore[union-attr]
        self.assertEqual(e.state.garbage, {})
        self.successResultOf(e.deleteObject("b", "dst"))
        self.assertEqual(e.state.garbage, {1: 7})
        self.assertEqual(self.loadedState(), e.state)

    def test_copyMultipart(self) -> None:
        """A multipart object copies as its manifest."""
        e = self.withBucket()
        self.successResultOf(e.createUpload(uploadRecord("u1", key="src")))
        a, b = written(b"a", 1, 0), written(b"b", 1, 10)
        self.successResultOf(e.putPart("u1", part(1, a), a))
        self.successResultOf(e.putPart("u1", part(2, b), b))
        self.successResultOf(e.completeUpload("u1", manifest()))
        self.successResultOf(e.createBucket(bucket("c")))
        dst = self.successResultOf(e.copyObject("b", "src", copyAs("c", "dst")))
        self.assertEqual(dst.blobAddresses(), (a.contentAddress, b.contentAddress))
        self.assertEqual(referenceCounts(e.state), {a.contentAddress: 2, b.contentAddress: 2})

    def test_copyOntoItself(self) -> None:
        """Copying onto the same key replaces the metadata; references are unchanged."""
        e = self.withBucket()
        a = written(b"x", 1, 0)
        self.successResultOf(e.putObject(record("b", "k", a), a))
        new = self.successResultOf(e.copyObject("b", "k", copyAs("b", "k", meta=(("new", "yes"),))))
        self.assertEqual(e.getObject("b", "k"), new)
        self.assertEqual(e.getBlob(a.contentAddress).refs, 1)  # type: ignore[union-attr]
        self.assertEqual(e.state.garbage, {})

    def test_copyErrors(self) -> None:
        """Missing source: NoSuchKey (or NoSuchBucket); other blobs: ValueError; precondition on the destination."""
        e = self.withBucket()
        a = written(b"x", 1, 0)
        self.successResultOf(e.putObject(record("b", "k", a), a))
        f = self.failureResultOf(e.copyObject("b", "nope", copyAs("b", "d")), S3Error)
        self.assertEqual((f.value.code, f.value.extra), ("NoSuchKey", {"Key": "nope"}))
        self.assertEqual(code(e.copyObject("zz", "k", copyAs("b", "d")), self), "NoSuchBucket")
        self.assertEqual(code(e.copyObject("b", "k", copyAs("zz", "d")), self), "NoSuchBucket")
        self.failureResultOf(e.copyObject("b", "k", copyAs("b", "d", blob="other")), ValueError)
        self.assertEqual(code(e.copyObject("b", "k", copyAs("b", "k"), ifNoneMatch), self), "PreconditionFailed")
        self.successResultOf(e.copyObject("b", "k", copyAs("b", "d"), ifNoneMatch))
        self.assertEqual(code(e.copyObject("b", "k", copyAs("b", "d"), ifNoneMatch), self), "PreconditionFailed")

    def test_deleteThenCopy(self) -> None:
        """A copy enqueued after a pending delete of its source is NoSuchKey."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        a = written(b"x", 1, 0)
        put = e.putObject(record("b", "k", a), a)
        runner.runAll()
        self.successResultOf(put)
        deleted = e.deleteObject("b", "k")
        self.assertEqual(code(e.copyObject("b", "k", copyAs("b", "d")), self), "NoSuchKey")
        runner.runAll()
        self.successResultOf(deleted)
        self.assertEqual((e.state.blobs, e.state.garbage), ({}, {1: 1}))

    def test_copyThenDelete(self) -> None:
        """A delete enqueued after a copy of its source leaves the copy's bytes alive."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        a = written(b"x", 1, 0)
        put = e.putObject(record("b", "k", a), a)
        copied = e.copyObject("b", "k", copyAs("b", "d"))  # the source is still pending
        deleted = e.deleteObject("b", "k")
        runner.runAll()
        self.successResultOf(put)
        self.assertEqual(self.successResultOf(copied).key, "d")
        self.successResultOf(deleted)
        self.assertIsNone(e.getObject("b", "k"))
        self.assertEqual(e.getBlob(a.contentAddress), e.state.blobs[a.contentAddress])
        self.assertEqual(e.state.blobs[a.contentAddress].refs, 1)
        self.assertEqual(e.state.garbage, {})
        self.assertEqual(self.loadedState(), e.state)

    def test_tags(self) -> None:
        """setObjectTags replaces the tags, sees pending writes, and fails on a missing object."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        a = written(b"x", 1, 0)
        put = e.putObject(record("b", "k", a), a)
        tagged = e.setObjectTags("b", "k", (("a", "1"),))
        self.assertEqual(code(e.setObjectTags("b", "missing", ()), self), "NoSuchKey")
        self.assertEqual(code(e.setObjectTags("zz", "k", ()), self), "NoSuchBucket")
        runner.runAll()
        self.successResultOf(put)
        self.assertEqual(self.successResultOf(tagged), attrs.evolve(record("b", "k", a), tags=(("a", "1"),)))
        self.assertEqual(e.getObject("b", "k").tags, (("a", "1"),))  # type: ignore[union-attr]
        d = e.deleteObject("b", "k")
        self.assertEqual(code(e.setObjectTags("b", "k", ()), self), "NoSuchKey")
        runner.runAll()
        self.successResultOf(d)

    def test_bucketConfig(self) -> None:
        """setBucketConfig sets and removes documents, seeing pending changes; NoSuchBucket otherwise."""
        runner = ManualRunner()
        e = self.withBucket(runner)
        first = e.setBucketConfig("b", "cors", "<C/>")
        second = e.setBucketConfig("b", "tagging", "<T/>")
        self.assertEqual(code(e.setBucketConfig("zz", "cors", "x"), self), "NoSuchBucket")
        runner.runAll()
        self.assertEqual(self.successResultOf(first).config, (("cors", "<C/>"),))
        self.assertEqual(self.successResultOf(second).config, (("cors", "<C/>"), ("tagging", "<T/>")))
        removed = e.setBucketConfig("b", "cors", None)
        runner.runAll()
        self.assertEqual(self.successResultOf(removed).config, (("tagging", "<T/>"),))
        self.assertEqual(e.getBucket("b").configValue("tagging"), "<T/>")  # type: ignore[union-attr]
        self.assertEqual(self.loadedState(), e.state)

    def test_putObjectWithParts(self) -> None:
        """putObject refuses a multipart record and discards the bytes."""
        e = self.withBucket()
        a = written(b"abc", 4)
        self.failureResultOf(e.putObject(multipartObj("b", "k", [part(1, a)]), a), ValueError)
        self.assertEqual(e.state.garbage, {4: 3})


# -- the model ------------------------------------------------------------------

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


def _round() -> Any:
    return st.tuples(st.just("round"), st.integers(0, 9))


# Parts, completes and commit rounds are drawn more often than the rest (one_of
# merges identical alternatives, so each weight is a distinct strategy).
_modelOps = st.lists(st.one_of(
    _put(), _put(), _create(), _create(), _create(),
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
    _round(), _round(), _round(),
    st.tuples(st.just("snapshot")),
), min_size=10, max_size=80)


def uploadIdFor(ref: int, uploadIds: Sequence[str]) -> str:
    """The id of the upload created C{ref} creations before the latest (C{"none"} if none was)."""
    return uploadIds[-1 - ref] if ref < len(uploadIds) else "none"


@attrs.define
class Model:
    """
    What the engine must end up with, computed as if every write were
    durable the moment it is made: the pending overlay must make the engine
    decide exactly as this sequential model does.
    """

    buckets: Set[str] = attrs.field(factory=lambda: {"b1"})
    objects: Dict[Tuple[str, str], Tuple[bytes, ...]] = attrs.field(factory=dict)
    uploads: Dict[str, Tuple[str, str, Dict[int, bytes]]] = attrs.field(factory=dict)

    def step(self, op: Tuple[Any, ...], uploadIds: List[str]) -> str:
        """Apply C{op}; the outcome the engine must report (C{"ok"} or an error code)."""
        kind = op[0]
        if kind == "put":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            self.objects[(op[1], op[2])] = (op[3],)
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
                if op[3] and (upload[0], upload[1]) in self.objects:
                    return "PreconditionFailed"
                self.objects[(upload[0], upload[1])] = chosen
                del self.uploads[uploadId]
        elif kind == "copy":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            source = self.objects.get((op[1], op[2]))
            if source is None:
                return "NoSuchKey"
            if op[3] not in self.buckets:
                return "NoSuchBucket"
            self.objects[(op[3], op[4])] = source
        elif kind == "delete":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            self.objects.pop((op[1], op[2]), None)
        elif kind == "tags":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            if (op[1], op[2]) not in self.objects:
                return "NoSuchKey"
        elif kind == "config":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
        elif kind == "createBucket":
            if op[1] in self.buckets:
                return "BucketAlreadyOwnedByYou"
            self.buckets.add(op[1])
        elif kind == "deleteBucket":
            if op[1] not in self.buckets:
                return "NoSuchBucket"
            if any(b == op[1] for b, _ in self.objects):
                return "BucketNotEmpty"
            self.buckets.discard(op[1])
            for uploadId, upload in list(self.uploads.items()):
                if upload[0] == op[1]:
                    del self.uploads[uploadId]
        return "ok"


class ModelTests(EngineTestCase):
    """Random interleavings of every write against the sequential model and the refcount invariants."""

    def check(self, e: MetadataEngine, writtenBytes: int, extentsOf: Dict[str, Set[Extent]]) -> None:
        """
        Bytes stay alive exactly as long as something references them, and
        garbage is exactly what was written minus what is alive.
        """
        state = e.state
        self.assertEqual({a: b.refs for a, b in state.blobs.items()}, referenceCounts(state))
        live = 0
        for address, blob in state.blobs.items():
            self.assertLessEqual(set(blob.extents), extentsOf[address])
            live += sum(x.length for x in blob.extents)
        self.assertEqual(sum(state.garbage.values()), writtenBytes - live)

    @given(_modelOps)
    @settings(max_examples=300, deadline=None)
    def test_model(self, ops: List[Tuple[Any, ...]]) -> None:
        """
        Random sequences of puts, uploads, parts (re-uploads included),
        completes, aborts, copies, deletes, tags, bucket changes, group-commit
        boundaries and snapshots: every outcome is the model's, the final
        objects and uploads are the model's, refcounts and garbage are exact
        after every round, and recovery from disk gives the same state.
        """
        self.root = self.mktemp()
        runner = ManualRunner()
        e = self.withBucket(runner)
        created = e.createBucket(bucket("b1"))
        runner.runAll()
        self.successResultOf(created)
        model = Model()
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
                runner.runAll()
                self.check(e, writtenBytes, extentsOf)
                continue
            if kind == "snapshot":
                d = e.snapshot()
                outcomes.append((op, "ok", d))
                continue
            if kind == "createUpload":
                uploadIds.append("u%d" % len(uploadIds))
            expected = model.step(op, uploadIds)
            if kind == "put":
                blob = write(op[3])
                d = e.putObject(record(op[1], op[2], blob), blob)
            elif kind == "createUpload":
                d = e.createUpload(uploadRecord(uploadIds[-1], op[1], op[2]))
            elif kind in ("part", "complete", "abort"):
                uploadId = uploadIdFor(op[1], uploadIds)
                if kind == "part":
                    blob = write(op[3])
                    d = e.putPart(uploadId, part(op[2], blob), blob)
                elif kind == "complete":
                    d = e.completeUpload(uploadId, manifest(sorted(op[2])), ifNoneMatch if op[3] else None)
                else:
                    d = e.abortUpload(uploadId)
            elif kind == "copy":
                d = e.copyObject(op[1], op[2], copyAs(op[3], op[4]))
            elif kind == "delete":
                d = e.deleteObject(op[1], op[2])
            elif kind == "tags":
                d = e.setObjectTags(op[1], op[2], (("n", str(len(outcomes))),))
            elif kind == "config":
                d = e.setBucketConfig(op[1], "tagging", str(len(outcomes)))
            elif kind == "createBucket":
                d = e.createBucket(bucket(op[1]))
            else:
                d = e.deleteBucket(op[1], "alice")
            outcomes.append((op, expected, d))
        runner.runAll()
        for op, expected, d in outcomes:
            results: List[Any] = []
            d.addBoth(results.append)
            self.assertEqual(len(results), 1, op)
            outcome = results[0]
            if isinstance(outcome, Failure):
                actual = outcome.value.code if isinstance(outcome.value, S3Error) else outcome
            else:
                actual = "ok"
            self.assertEqual(actual, expected, op)
        self.check(e, writtenBytes, extentsOf)

        address = {c: written(c).contentAddress for c in _CONTENTS}
        actualObjects = {(b, k): o.blobAddresses() for b, keys in e.state.objects.items() for k, o in keys.items()}
        self.assertEqual(actualObjects, {k: tuple(address[c] for c in v) for k, v in model.objects.items()})
        actualUploads = {i: (u.bucket, u.key, {p.number: p.blob for p in u.parts}) for i, u in e.state.uploads.items()}
        self.assertEqual(actualUploads, {i: (b, k, {n: address[c] for n, c in ps.items()})
                                         for i, (b, k, ps) in model.uploads.items()})
        self.assertEqual(set(e.state.buckets), model.buckets | {"b"})
        self.assertEqual(self.loadedState(), e.state)
        self.successResultOf(self.engine().snapshot())
        self.assertEqual(self.loadedState(), e.state)
