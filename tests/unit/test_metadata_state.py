"""
Tests for L{fasterstore.metadata.state}.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.errors import S3Error
from fasterstore.metadata.records import BlobRecord, BucketRecord, ObjectRecord, PartRecord, UploadRecord
from fasterstore.metadata.state import ListPage, MetadataState, Mutation, prefixSuccessor
from fasterstore.storage.blob import Extent


# -- helpers shared with the WAL, snapshot and engine tests ---------------


def bucket(name: str = "b", owner: str = "alice") -> BucketRecord:
    """A bucket record."""
    return BucketRecord(name=name, owner=owner, region="", created=1700000000.0)


def obj(bucket: str, key: str, blob: str = "aa", size: int = 10) -> ObjectRecord:
    """An object record pointing at blob C{blob}."""
    return ObjectRecord(
        bucket=bucket, key=key, size=size, etag="e" * 32, blob=blob, modified=1700000001.5,
        headers=(("Content-Type", "text/plain"),), meta=(("color", "blue"),),
    )


def createBucket(name: str = "b", owner: str = "alice") -> Mutation:
    """A create_bucket mutation."""
    return {"op": "create_bucket", "bucket": bucket(name, owner).toJSON()}


def putObject(
    bucketName: str, key: str, blob: str = "aa", size: int = 10,
    extents: Sequence[Tuple[int, int, int]] = ((1, 0, 10),),
) -> Mutation:
    """A put_object mutation."""
    return {
        "op": "put_object", "object": obj(bucketName, key, blob, size).toJSON(),
        "extents": [list(e) for e in extents], "size": size,
    }


def deleteObject(bucketName: str, key: str) -> Mutation:
    """A delete_object mutation."""
    return {"op": "delete_object", "bucket": bucketName, "key": key}


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


def createUpload(uploadId: str, bucket: str = "b", key: str = "k", initiated: float = 1700000002.0) -> Mutation:
    """A create_upload mutation."""
    return {"op": "create_upload", "upload": uploadRecord(uploadId, bucket, key, initiated).toJSON()}


def putPart(
    uploadId: str, number: int, blob: str = "aa", size: int = 10,
    extents: Sequence[Tuple[int, int, int]] = ((1, 0, 10),),
) -> Mutation:
    """A put_part mutation."""
    return {"op": "put_part", "uploadId": uploadId, "part": partRecord(number, blob, size).toJSON(),
            "extents": [list(e) for e in extents], "size": size}


def completeUpload(uploadId: str, bucket: str, key: str, parts: Sequence[PartRecord]) -> Mutation:
    """A complete_upload mutation."""
    return {"op": "complete_upload", "uploadId": uploadId, "object": multipartObj(bucket, key, parts).toJSON()}


def stateOf(mutations: Sequence[Mutation]) -> MetadataState:
    """The state after applying C{mutations} to an empty one."""
    state = MetadataState()
    for m in mutations:
        state.apply(m)
    return state


_names = st.sampled_from(["b1", "b2", "b3"])
_keys = st.text(alphabet="ab/", min_size=1, max_size=4)
_blobs = st.sampled_from(["x1", "x2", "x3", "x4"])
_uploadIds = st.sampled_from(["u1", "u2", "u3"])
_extents = st.lists(
    st.tuples(st.integers(1, 3), st.integers(0, 1000), st.integers(0, 50)).map(list), max_size=3
)


@st.composite
def mutations(draw: Any) -> Mutation:
    """Any mutation, valid for the current state or not (apply is total)."""
    kind = draw(st.sampled_from([
        "create", "delete_bucket", "put", "put", "put", "delete", "discard",
        "create_upload", "put_part", "put_part", "complete", "abort", "copy", "tags", "config",
    ]))
    if kind == "create_upload":
        return createUpload(draw(_uploadIds), draw(_names), draw(_keys), draw(st.integers(0, 3)))
    if kind == "put_part":
        m = putPart(draw(_uploadIds), draw(st.integers(1, 3)), draw(_blobs), draw(st.integers(0, 100)))
        m["extents"] = draw(_extents)
        return m
    if kind == "complete":
        blobs = draw(st.lists(_blobs, max_size=3))
        return completeUpload(draw(_uploadIds), draw(_names), draw(_keys),
                              [partRecord(i + 1, b) for i, b in enumerate(blobs)])
    if kind == "abort":
        return {"op": "abort_upload", "uploadId": draw(_uploadIds)}
    if kind == "copy":
        blobs = draw(st.lists(_blobs, min_size=1, max_size=3))
        record = (obj(draw(_names), draw(_keys), blobs[0]) if len(blobs) == 1
                  else multipartObj(draw(_names), draw(_keys), [partRecord(i + 1, b) for i, b in enumerate(blobs)]))
        return {"op": "copy_object", "object": record.toJSON()}
    if kind == "tags":
        return {"op": "set_object_tags", "bucket": draw(_names), "key": draw(_keys),
                "tags": draw(st.lists(st.tuples(st.sampled_from("xy"), st.sampled_from("12")).map(list), max_size=2))}
    if kind == "config":
        return {"op": "set_bucket_config", "bucket": draw(_names), "name": draw(st.sampled_from(["cors", "tagging"])),
                "value": draw(st.sampled_from([None, "<a/>", "<b/>"]))}
    if kind == "create":
        return createBucket(draw(_names), draw(st.sampled_from(["alice", "bob"])))
    if kind == "delete_bucket":
        return {"op": "delete_bucket", "name": draw(_names)}
    if kind == "put":
        m = putObject(draw(_names), draw(_keys), draw(_blobs), draw(st.integers(0, 100)))
        m["extents"] = draw(_extents)
        return m
    if kind == "delete":
        return deleteObject(draw(_names), draw(_keys))
    return {"op": "discard_extents", "extents": draw(_extents)}


mutationLists = st.lists(mutations(), max_size=40)


# -- tests ------------------------------------------------------------------


class BucketTests(SynchronousTestCase):
    """Creating, listing and deleting buckets."""

    def test_createAndList(self) -> None:
        """Buckets are listed sorted by name whatever the creation order."""
        state = stateOf([createBucket("zz"), createBucket("aa"), createBucket("mm")])
        self.assertEqual([b.name for b in state.listBuckets()], ["aa", "mm", "zz"])
        self.assertEqual(state.getBucket("aa"), bucket("aa"))
        self.assertIsNone(state.getBucket("nope"))
        self.assertTrue(state.bucketIsEmpty("aa"))

    def test_deleteBucket(self) -> None:
        """A deleted bucket is gone; deleting a missing bucket does nothing."""
        state = stateOf([createBucket("a"), {"op": "delete_bucket", "name": "a"},
                         {"op": "delete_bucket", "name": "missing"}])
        self.assertEqual(state, MetadataState())

    def test_recreateKeepsObjects(self) -> None:
        """create_bucket of an existing bucket replaces its record only (apply is total)."""
        state = stateOf([createBucket("a"), putObject("a", "k"), createBucket("a", "bob")])
        self.assertEqual(state.getBucket("a"), bucket("a", "bob"))
        self.assertIsNotNone(state.getObject("a", "k"))

    def test_deleteNonEmptyBucket(self) -> None:
        """
        A delete_bucket of a non-empty bucket (never logged by the engine)
        deletes its objects, releasing their blobs, so replay cannot fail.
        """
        state = stateOf([createBucket("a"), putObject("a", "k", "x", 10, [(1, 0, 10)]),
                         {"op": "delete_bucket", "name": "a"}])
        self.assertEqual((state.buckets, state.objects, state.blobs), ({}, {}, {}))
        self.assertEqual(state.garbage, {1: 10})
        self.assertEqual((state.objectCount, state.logicalBytes), (0, 0))

    def test_unknownOp(self) -> None:
        """An unknown op is a ValueError."""
        self.assertRaises(ValueError, MetadataState().apply, {"op": "frobnicate"})


class ObjectTests(SynchronousTestCase):
    """Putting, replacing and deleting objects; totals and refcounts."""

    def test_putAndGet(self) -> None:
        """A put object can be read back with its blob; totals count it."""
        state = stateOf([createBucket("a"), putObject("a", "k", "x", 10, [(1, 0, 4), (2, 0, 6)])])
        self.assertEqual(state.getObject("a", "k"), obj("a", "k", "x", 10))
        self.assertEqual(state.getBlob("x"), BlobRecord("x", 10, (Extent(1, 0, 4), Extent(2, 0, 6)), 1))
        self.assertEqual((state.objectCount, state.logicalBytes), (1, 10))
        self.assertFalse(state.bucketIsEmpty("a"))
        self.assertIsNone(state.getObject("a", "other"))
        self.assertIsNone(state.getObject("nobucket", "k"))

    def test_putIntoMissingBucket(self) -> None:
        """A put into a missing bucket only turns its extents into garbage."""
        state = stateOf([putObject("a", "k", "x", 10, [(3, 0, 10)])])
        self.assertEqual(state.blobs, {})
        self.assertEqual(state.garbage, {3: 10})

    def test_replace(self) -> None:
        """Replacing an object releases the old blob; totals follow the new size."""
        state = stateOf([
            createBucket("a"),
            putObject("a", "k", "x", 10, [(1, 0, 10)]),
            putObject("a", "k", "y", 3, [(1, 10, 3)]),
        ])
        self.assertEqual(state.getObject("a", "k"), obj("a", "k", "y", 3))
        self.assertIsNone(state.getBlob("x"))
        self.assertEqual(state.garbage, {1: 10})
        self.assertEqual((state.objectCount, state.logicalBytes), (1, 3))

    def test_replaceWithSameContent(self) -> None:
        """
        Re-putting identical content keeps the blob at one reference and the
        second copy's bytes are garbage.
        """
        state = stateOf([
            createBucket("a"),
            putObject("a", "k", "x", 10, [(1, 0, 10)]),
            putObject("a", "k", "x", 10, [(2, 0, 10)]),
        ])
        self.assertEqual(state.getBlob("x"), BlobRecord("x", 10, (Extent(1, 0, 10),), 1))
        self.assertEqual(state.garbage, {2: 10})

    def test_dedup(self) -> None:
        """
        Two objects with the same content share one blob: deleting one keeps
        it; deleting the other drops it and counts its bytes as garbage.
        """
        state = stateOf([
            createBucket("a"),
            putObject("a", "one", "x", 10, [(1, 0, 10)]),
            putObject("a", "two", "x", 10, [(1, 100, 10)]),
        ])
        self.assertEqual(state.getBlob("x"), BlobRecord("x", 10, (Extent(1, 0, 10),), 2))
        self.assertEqual(state.garbage, {1: 10})  # the duplicate copy
        state.apply(deleteObject("a", "one"))
        self.assertEqual(state.getBlob("x"), BlobRecord("x", 10, (Extent(1, 0, 10),), 1))
        self.assertEqual(state.garbage, {1: 10})
        state.apply(deleteObject("a", "two"))
        self.assertIsNone(state.getBlob("x"))
        self.assertEqual(state.garbage, {1: 20})
        self.assertEqual((state.objectCount, state.logicalBytes), (0, 0))

    def test_sharedExtentsNotGarbage(self) -> None:
        """A put that names the blob's own extents (a copy) adds no garbage."""
        state = stateOf([
            createBucket("a"),
            putObject("a", "one", "x", 10, [(1, 0, 10)]),
            putObject("a", "copy", "x", 10, [(1, 0, 10)]),
        ])
        self.assertEqual(state.garbage, {})
        self.assertEqual(state.getBlob("x").refs, 2)  # type: ignore[union-attr]

    def test_deleteMissing(self) -> None:
        """Deleting a missing key or from a missing bucket does nothing."""
        state = stateOf([createBucket("a"), deleteObject("a", "k"), deleteObject("zz", "k")])
        self.assertEqual(state, stateOf([createBucket("a")]))

    def test_discard(self) -> None:
        """discard_extents only adds garbage, per segment; empty extents are ignored."""
        state = stateOf([{"op": "discard_extents", "extents": [[1, 0, 5], [2, 0, 7], [1, 9, 1], [4, 0, 0]]}])
        self.assertEqual(state.garbage, {1: 6, 2: 7})


class SerialisationTests(SynchronousTestCase):
    """toJSON / fromJSON and the record stream."""

    def test_roundTrip(self) -> None:
        """A state survives toJSON, a trip through JSON text, and fromJSON."""
        state = stateOf([
            createBucket("a"), createBucket("b"),
            putObject("a", "k1", "x", 10, [(1, 0, 10)]),
            putObject("b", "k2", "x", 10, [(1, 10, 10)]),
            putObject("b", "k3", "y", 4, [(2, 0, 4)]),
            {"op": "discard_extents", "extents": [[7, 0, 3]]},
        ])
        again = MetadataState.fromJSON(json.loads(json.dumps(state.toJSON())))
        self.assertEqual(again, state)
        self.assertEqual(again.objectCount, 3)
        self.assertEqual(again.logicalBytes, 24)

    def test_unknownBucket(self) -> None:
        """Objects in a bucket the records do not define are rejected."""
        self.assertRaises(ValueError, MetadataState.fromRecords, [{"object": obj("a", "k").toJSON()}])

    @given(mutationLists)
    @settings(max_examples=200, deadline=None)
    def test_roundTripAny(self, ms: List[Mutation]) -> None:
        """Any state built by apply survives the record stream."""
        state = stateOf(ms)
        self.assertEqual(MetadataState.fromRecords(json.loads(json.dumps(list(state.iterRecords())))), state)

    @given(mutationLists)
    @settings(max_examples=200, deadline=None)
    def test_deterministic(self, ms: List[Mutation]) -> None:
        """Applying JSON-decoded copies of the mutations (replay) gives the same state."""
        self.assertEqual(stateOf(json.loads(json.dumps(ms))), stateOf(ms))

    @given(mutationLists)
    @settings(max_examples=200, deadline=None)
    def test_totals(self, ms: List[Mutation]) -> None:
        """
        Totals and refcounts always match the objects and uploads present;
        the upload index matches the uploads.
        """
        state = stateOf(ms)
        objects = [o for keys in state.objects.values() for o in keys.values()]
        self.assertEqual(state.objectCount, len(objects))
        self.assertEqual(state.logicalBytes, sum(o.size for o in objects))
        refs: dict[str, int] = {}
        for o in objects:
            for address in o.blobAddresses():
                refs[address] = refs.get(address, 0) + 1
        for u in state.uploads.values():
            for p in u.parts:
                refs[p.blob] = refs.get(p.blob, 0) + 1
        self.assertEqual({a: b.refs for a, b in state.blobs.items()}, refs)
        self.assertEqual(set(state.buckets), set(state.objects))
        indexed = {i: (b, k) for b, index in state.uploadIndex.items() for k, i in index.items()}
        self.assertEqual(indexed, {i: (u.bucket, (u.key, u.initiated, i)) for i, u in state.uploads.items()})
        self.assertTrue(all(state.uploadIndex.values()))
        self.assertLessEqual(set(state.uploadIndex), set(state.buckets))


# -- listing -----------------------------------------------------------------


def bruteList(
    keys: Sequence[str], prefix: str, delimiter: str, after: str, maxKeys: int
) -> Tuple[List[str], List[str], bool, str]:
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


def summary(page: ListPage) -> Tuple[List[str], List[str], bool, str]:
    """A page as comparable plain values."""
    return [o.key for o in page.objects], page.commonPrefixes, page.isTruncated, page.nextAfter


def stateWithKeys(keys: Sequence[str]) -> MetadataState:
    """A state with bucket C{b} holding C{keys}."""
    return stateOf([createBucket("b")] + [putObject("b", k, "x" + k) for k in keys])


_listKeys = st.lists(st.text(alphabet="ab/\U0010ffff", min_size=1, max_size=5), max_size=30, unique=True)
_fragments = st.text(alphabet="ab/\U0010ffff", max_size=3)


class ListObjectsTests(SynchronousTestCase):
    """listObjects against S3's documented behaviour and a brute-force model."""

    keys = ["a", "a/1", "a/2", "a/b/1", "b", "b/1", "c/x/y", "d"]

    def page(self, **kw: Any) -> Tuple[List[str], List[str], bool, str]:
        return summary(stateWithKeys(self.keys).listObjects("b", **kw))

    def test_all(self) -> None:
        """Without prefix or delimiter, every key in order."""
        self.assertEqual(self.page(), (self.keys, [], False, "d"))

    def test_delimiter(self) -> None:
        """Keys with the delimiter roll up into common prefixes in key order."""
        self.assertEqual(self.page(delimiter="/"), (["a", "b", "d"], ["a/", "b/", "c/"], False, "d"))

    def test_prefixAndDelimiter(self) -> None:
        """The delimiter is looked for after the prefix."""
        self.assertEqual(self.page(prefix="a/", delimiter="/"), (["a/1", "a/2"], ["a/b/"], False, "a/b/"))

    def test_truncated(self) -> None:
        """A common prefix counts once toward maxKeys; nextAfter is the last entry."""
        self.assertEqual(self.page(delimiter="/", maxKeys=2), (["a"], ["a/"], True, "a/"))

    def test_afterCommonPrefix(self) -> None:
        """Continuing after a common prefix skips every key under it."""
        self.assertEqual(self.page(delimiter="/", after="a/", maxKeys=2), (["b"], ["b/"], True, "b/"))

    def test_afterInsideCommonPrefix(self) -> None:
        """A start-after inside a common prefix does not repeat that prefix."""
        self.assertEqual(self.page(delimiter="/", after="a/1"), (["b", "d"], ["b/", "c/"], False, "d"))

    def test_maxKeysZero(self) -> None:
        """maxKeys=0 gives an empty page that is not truncated, as S3 does."""
        self.assertEqual(self.page(maxKeys=0), ([], [], False, ""))

    def test_exactFit(self) -> None:
        """A page that ends exactly on the last entry is not truncated."""
        self.assertEqual(self.page(maxKeys=len(self.keys)), (self.keys, [], False, "d"))

    def test_prefixIsAKey(self) -> None:
        """A key equal to the prefix is listed."""
        self.assertEqual(self.page(prefix="a"), (["a", "a/1", "a/2", "a/b/1"], [], False, "a/b/1"))

    def test_multiCharacterDelimiter(self) -> None:
        """Delimiters may be longer than one character."""
        state = stateWithKeys(["x--y", "x--z", "x-y"])
        self.assertEqual(summary(state.listObjects("b", delimiter="--")), (["x-y"], ["x--"], False, "x-y"))

    def test_noSuchBucket(self) -> None:
        """Listing a missing bucket is NoSuchBucket."""
        e = self.assertRaises(S3Error, MetadataState().listObjects, "nope")
        self.assertEqual(e.code, "NoSuchBucket")

    def test_prefixSuccessor(self) -> None:
        """The successor of a prefix is past every string starting with it."""
        self.assertEqual(prefixSuccessor("a/"), "a0")
        self.assertEqual(prefixSuccessor("a\U0010ffff"), "b")
        self.assertIsNone(prefixSuccessor("\U0010ffff\U0010ffff"))

    def test_bigCommonPrefixIsSkipped(self) -> None:
        """
        Rolling up a common prefix jumps past its keys by bisection instead
        of walking them: listing with 20,000 keys under one prefix touches
        only a handful of keys.
        """
        keys = [f"big/{i:06d}" for i in range(20000)] + ["a", "zz"]
        state = stateWithKeys(keys)
        index = state.objects["b"]
        seen = []
        original = index.irange

        def counting(*a: Any, **kw: Any) -> Iterator[str]:
            for k in original(*a, **kw):
                seen.append(k)
                yield k

        index.irange = counting
        page = state.listObjects("b", delimiter="/")
        self.assertEqual(summary(page), (["a", "zz"], ["big/"], False, "zz"))
        self.assertLess(len(seen), 10)
        del seen[:]
        page = state.listObjects("b", prefix="big/", after="big/009999", maxKeys=3)
        self.assertEqual([o.key for o in page.objects], ["big/010000", "big/010001", "big/010002"])
        self.assertLess(len(seen), 10)

    @given(_listKeys, _fragments, st.sampled_from(["", "/", "b", "a/", "\U0010ffff"]), _fragments,
           st.integers(-1, 6))
    @settings(max_examples=500, deadline=None)
    def test_model(self, keys: List[str], prefix: str, delimiter: str, after: str, maxKeys: int) -> None:
        """Any page equals the brute-force model's."""
        state = stateWithKeys(keys)
        self.assertEqual(
            summary(state.listObjects("b", prefix, delimiter, after, maxKeys)),
            bruteList(keys, prefix, delimiter, after, maxKeys),
        )

    @given(_listKeys, _fragments, st.sampled_from(["", "/", "b"]), st.integers(1, 4))
    @settings(max_examples=300, deadline=None)
    def test_pagination(self, keys: List[str], prefix: str, delimiter: str, maxKeys: int) -> None:
        """Following nextAfter visits every entry exactly once, in order."""
        state = stateWithKeys(keys)
        everything = bruteList(keys, prefix, delimiter, "", 10**6)
        objects: List[str] = []
        prefixes: List[str] = []
        after: Optional[str] = ""
        for _ in range(len(keys) + 2):
            if after is None:
                break
            page = state.listObjects("b", prefix, delimiter, after, maxKeys)
            objects += [o.key for o in page.objects]
            prefixes += page.commonPrefixes
            after = page.nextAfter if page.isTruncated else None
        self.assertIsNone(after, "pagination does not terminate")
        self.assertEqual((objects, prefixes), everything[:2])
