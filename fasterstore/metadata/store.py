"""
The metadata interface: the only metadata API the S3 layer and the services
use, whatever keeps the records (the embedded SQLite store today, a
PostgreSQL store when a deployment outgrows one node).

Every method returns a Deferred, because a network store needs that; a local
store may fire it at once.  The contract, which L{fasterstore.metadata.testing}
checks for every backend:

  - a write's Deferred fires only once the write is durable (it survives
    C{kill -9} and power loss); a write that failed left no trace;
  - a read issued after a write's Deferred fired sees it, from any process
    sharing the store (strict read-after-write and list-after-write);
  - validation (bucket exists, bucket empty, preconditions, the C{build}
    callbacks) runs against the store as the write will find it, inside the
    write's own transaction: of racing conditional writes exactly one wins,
    whichever process they came from.  Callbacks may run in another thread:
    they must be pure functions of their argument;
  - writes are group-committed: one durable commit serves every write queued
    meanwhile;
  - versions follow the bucket's versioning state as the write finds it
    (see L{IMetadataStore.putObject}): a key's versions are ordered as they
    committed, its latest is the last one written that was not removed, and
    L{getObject} and L{listObjects} show a key only while its latest version
    is an object, not a delete marker.

Methods that name a version take its id as S3 spells it (C{"null"} for the
null version, L{fasterstore.metadata.records.NULL_VERSION_ID}), and fail with
C{InvalidArgument} for an id the store could never have given.

Tests: tests/unit/test_metadata_store.py (the behaviour suite).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from fasterstore.metadata.records import (
    BlobRecord, BucketRecord, Copied, ObjectRecord, ObjectSummary, PartRecord, UploadRecord, VersionSummary,
)
from fasterstore.storage.blob import Extent, WrittenBlob

#: Called inside a write's transaction with the key's current version;
#: raises (e.g. C{S3Error("PreconditionFailed")}) to refuse the write.
ObjectPrecondition = Callable[[Optional[ObjectRecord]], None]


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

    objects: List[ObjectSummary]
    commonPrefixes: List[str]
    isTruncated: bool
    nextAfter: str


@attrs.frozen
class VersionPage:
    """
    One page of ListObjectVersions results.

    @ivar versions: the versions and delete markers returned, by key, then
        newest first.
    @ivar commonPrefixes: the rolled-up prefixes returned, in order.
    @ivar isTruncated: whether more entries follow this page.
    @ivar nextKeyMarker: the key of the last version, or the last common
        prefix, returned (C{""} if none): the next page's C{keyMarker}.
    @ivar nextVersionIdMarker: the wire id of the last version returned
        (C{"null"} for the null version), or C{""} if the page ended on a
        common prefix or is empty: the next page's C{versionIdMarker}.
    """

    versions: List[VersionSummary]
    commonPrefixes: List[str]
    isTruncated: bool
    nextKeyMarker: str
    nextVersionIdMarker: str


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


@attrs.frozen
class Totals:
    """
    What the store holds, for metrics and the admin API.

    @ivar objects: objects in every bucket (keys whose latest version is
        not a delete marker; older versions are not counted).
    @ivar logicalBytes: the sum of their sizes.
    @ivar liveBytes: payload bytes of every referenced blob, counted once.
    @ivar garbage: per segment, payload bytes the store saw become
        unreferenced (deleted, replaced, refused); no zero entries.  Bytes
        it never saw (a crash, an upload cut off) are not counted here: a
        segment's dead bytes are its size less its L{segmentUsage}.
    """

    objects: int
    logicalBytes: int
    liveBytes: int
    garbage: Dict[int, int]

    @property
    def garbageBytes(self) -> int:
        """Unreferenced payload bytes in every segment."""
        return sum(self.garbage.values())


class IMetadataStore(Interface):
    """Buckets, objects, multipart uploads and blob references."""

    ready = Attribute("Whether L{open} finished and reads and writes are served.")
    failing = Attribute(
        "Why the last commit failed (C{str}), until one succeeds; None while writes commit. "
        "Writes are still tried: this is for health reports, not a latch."
    )

    def open() -> "Deferred[None]":
        """Open (and, once, migrate) the store; reads and writes before it fires fail with C{ServiceUnavailable}."""

    def close() -> "Deferred[None]":
        """Stop accepting writes, let queued ones finish, release the store."""

    # -- reads -----------------------------------------------------------

    def getBucket(name: str) -> "Deferred[Optional[BucketRecord]]":
        """The bucket called C{name}, if it exists."""

    def listBuckets() -> "Deferred[List[BucketRecord]]":
        """Every bucket, by name."""

    def getObject(bucket: str, key: str) -> "Deferred[Optional[ObjectRecord]]":
        """The key's latest version, if it exists and is not a delete marker."""

    def getVersion(bucket: str, key: str, versionId: Optional[str] = None) -> "Deferred[Optional[ObjectRecord]]":
        """
        The version C{versionId} of a key (C{"null"}: its null version), or
        without one its latest version; a delete marker included.  C{None}
        if there is no such version (or bucket).
        """

    def listObjects(
        bucket: str, prefix: str = "", delimiter: str = "", after: str = "", maxKeys: int = 1000
    ) -> "Deferred[ListPage]":
        """
        One page of ListObjects(V2) results.

        The listing is the key-ordered sequence of I{entries}: each key
        starting with C{prefix} is an entry, except that a key with
        C{delimiter} somewhere after the prefix is rolled into the common
        prefix ending at that delimiter, which is one entry sitting at its
        own string position.  The page holds the first C{maxKeys} entries
        greater than C{after}.  C{maxKeys <= 0} gives an empty page that is
        not truncated, as S3 does.  Fails with C{NoSuchBucket}.
        """

    def listVersions(
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        keyMarker: str = "",
        versionIdMarker: str = "",
        maxKeys: int = 1000,
    ) -> "Deferred[VersionPage]":
        """
        One page of ListObjectVersions results: every version and delete
        marker, by key, newest first.

        Prefix and delimiter roll keys into common prefixes as in
        L{listObjects}.  The page holds the first C{maxKeys} entries after
        the markers: without C{keyMarker} from the start; with C{keyMarker}
        only, keys and common prefixes greater than it; with both, also the
        versions of key C{keyMarker} older than version C{versionIdMarker},
        whether or not that version still exists (a version removed between
        two pages makes the next one skip nothing); C{"null"} when the key
        has no null version skips the key's versions, as C{keyMarker} alone
        does.  Fails with C{NoSuchBucket}, or C{InvalidArgument} for a
        malformed C{versionIdMarker}.
        """

    def getBlob(address: str) -> "Deferred[Optional[BlobRecord]]":
        """Where the bytes with this content address are, if referenced."""

    def getUpload(uploadId: str) -> "Deferred[Optional[UploadRecord]]":
        """The multipart upload with this id, with its parts, if in progress."""

    def listUploads(
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        keyMarker: str = "",
        uploadIdMarker: str = "",
        maxUploads: int = 1000,
    ) -> "Deferred[UploadPage]":
        """
        One page of ListMultipartUploads results (uploads without parts).

        Uploads are ordered by key, then initiation time, then id.  Prefix
        and delimiter roll keys into common prefixes as in L{listObjects}.
        The page holds the first C{maxUploads} entries after the markers:
        without C{keyMarker} from the start; with C{keyMarker} only, keys
        and common prefixes greater than it; with both, also the uploads of
        key C{keyMarker} initiated after upload C{uploadIdMarker} (or, if
        that upload is unknown or has another key, those whose id is
        greater).  Fails with C{NoSuchBucket}.
        """

    def staleUploads(before: float, limit: int = 1000) -> "Deferred[List[UploadRecord]]":
        """Up to C{limit} uploads initiated before C{before}, oldest first."""

    def totals() -> "Deferred[Totals]":
        """What the store holds (see L{Totals})."""

    # -- writes ----------------------------------------------------------

    def createBucket(record: BucketRecord) -> "Deferred[None]":
        """
        Create a bucket.  Fails with C{BucketAlreadyOwnedByYou} or
        C{BucketAlreadyExists} if the name is taken.
        """

    def deleteBucket(name: str, owner: str) -> "Deferred[None]":
        """
        Delete an empty bucket (no object, no version, no delete marker) and
        abort its uploads.  Fails with C{NoSuchBucket}, C{AccessDenied}
        (another owner's bucket) or C{BucketNotEmpty}.
        """

    def updateBucket(name: str, change: Callable[[BucketRecord], BucketRecord]) -> "Deferred[BucketRecord]":
        """
        Replace a bucket's record with what C{change} makes of it as the
        write finds it (a sub-resource document set with
        L{BucketRecord.withConfig}, the versioning state); whatever
        C{change} raises refuses the write.  Fires with the new record.
        Fails with C{NoSuchBucket}, or C{ValueError} for a record with
        another name or owner.
        """

    def putObject(
        record: ObjectRecord, blob: WrittenBlob, precondition: Optional[ObjectPrecondition] = None
    ) -> "Deferred[ObjectRecord]":
        """
        Make C{record} (a single-blob record: C{record.blob} is C{blob}'s
        address) the key's latest version once C{blob}'s bytes and the
        record are durable; fires with C{record} as stored, its
        C{versionId} set by the store.

        What becomes of the version it replaces follows the bucket's
        versioning as the write finds it (the same for L{copyObject} and
        L{completeUpload}):

          - never enabled: the new version is the null version, and the
            previous one is gone (its bytes released);
          - L{ENABLED<fasterstore.metadata.records.ENABLED>}: the new
            version gets a new id, and every earlier version stays;
          - L{SUSPENDED<fasterstore.metadata.records.SUSPENDED>}: the new
            version is the null version, replacing the key's previous null
            version (an object or a delete marker, latest or not), and the
            other versions stay.

        C{precondition} sees the key's latest version if it is an object,
        C{None} otherwise.

        C{blob}'s extents always become the blob's bytes, even when the
        address is already stored: a client that re-uploads content whose
        stored copy rotted gets a fresh copy, and the older extents become
        garbage.  On any refusal (C{NoSuchBucket}, the precondition) the
        extents are garbage.
        """

    def deleteObject(
        bucket: str,
        key: str,
        precondition: Optional[ObjectPrecondition] = None,
        versionId: Optional[str] = None,
        modified: float = 0.0,
        keepLatest: bool = False,
    ) -> "Deferred[Optional[ObjectRecord]]":
        """
        Delete an object, or one version of it.

        Without C{versionId}, on a bucket that never had versioning: remove
        the key's version (C{precondition} sees it, or C{None}); fires with
        it, or C{None} if there was none (a success, as in S3).  On a
        versioned bucket: add a delete marker made at C{modified} as the
        key's latest version (an enabled bucket gives it a new id; a
        suspended one makes it the null version, replacing the previous
        null version); C{precondition} sees the latest version if it is an
        object; fires with the marker.

        With C{versionId}: remove that version for good (its bytes released
        when nothing else references them); if it was the latest, the next
        newest becomes the latest.  C{precondition} sees that version (a
        delete marker included); fires with it, or C{None} if there was no
        such version (a success, as in S3), or if C{keepLatest} and it is
        the key's latest version as the write finds it (lifecycle rules on
        noncurrent versions: a newer version removed meanwhile made it the
        latest again).

        Fails with C{NoSuchBucket}, C{InvalidArgument} for a malformed
        C{versionId}, or whatever C{precondition} raises.
        """

    def copyObject(
        sourceBucket: str,
        sourceKey: str,
        build: Callable[[ObjectRecord], ObjectRecord],
        precondition: Optional[ObjectPrecondition] = None,
        sourceVersionId: Optional[str] = None,
    ) -> "Deferred[Copied]":
        """
        Make a new version that shares the bytes of an existing object (the
        new record takes references on the source's blobs); fires with the
        source as the write found it (its version id is the copy's
        C{x-amz-copy-source-version-id}) and the new version as stored (see
        L{putObject}).

        C{build} gets the source (the latest version, or version
        C{sourceVersionId}) as the write finds it and returns the
        destination record, which must reference exactly the source's
        blobs; whatever it raises refuses the copy.  Fails with
        C{NoSuchBucket}, C{NoSuchKey} (no source: the latest version is a
        delete marker or there is none), C{NoSuchVersion} (no such source
        version), C{InvalidRequest} (the source version is a delete marker),
        C{InvalidArgument} (a malformed version id), or C{ValueError} for a
        record referencing other blobs.
        """

    def updateVersion(
        bucket: str, key: str, versionId: Optional[str], change: Callable[[ObjectRecord], ObjectRecord]
    ) -> "Deferred[ObjectRecord]":
        """
        Replace the object's latest version, or version C{versionId}, with
        what C{change} makes of it as the write finds it (its tags, its
        retention, its legal hold); whatever C{change} raises refuses the
        write.  Fires with the new record.  Fails with C{NoSuchBucket},
        C{NoSuchKey} (the latest version is a delete marker or there is
        none), C{NoSuchVersion}, C{MethodNotAllowed} (the version is a
        delete marker), C{InvalidArgument} (a malformed id), or
        C{ValueError} for a record that is not the same version (another
        key, id, size or bytes).
        """

    def createUpload(record: UploadRecord) -> "Deferred[UploadRecord]":
        """
        Start a multipart upload; fires with the record (without parts).
        Fails with C{NoSuchBucket}, or C{ValueError} if the id is in use.
        """

    def putPart(uploadId: str, part: PartRecord, blob: WrittenBlob) -> "Deferred[PartRecord]":
        """
        Add a part (replacing one with the same number, whose bytes are
        released); fires with C{part}.  Fails with C{NoSuchUpload}; on any
        refusal the extents are garbage.
        """

    def completeUpload(
        uploadId: str,
        build: Callable[[UploadRecord], ObjectRecord],
        precondition: Optional[ObjectPrecondition] = None,
    ) -> "Deferred[ObjectRecord]":
        """
        Complete an upload: the record C{build} makes from the upload (with
        its parts) becomes the key's latest version (see L{putObject}, whose
        record it fires with too), the upload goes away
        and parts the object does not use become garbage.  Fails with
        C{NoSuchUpload} (also when a racing completion or abort won), or
        C{ValueError} for a record naming another key or blobs that are not
        the upload's parts.
        """

    def abortUpload(uploadId: str) -> "Deferred[None]":
        """Abort an upload: its parts' bytes become garbage.  Fails with C{NoSuchUpload}."""

    def probe() -> "Deferred[None]":
        """Commit nothing durably: a success clears L{failing} (never fails)."""

    def discard(blob: WrittenBlob) -> "Deferred[None]":
        """Count the bytes of a failed or refused upload as garbage (never fails)."""

    # -- compaction ------------------------------------------------------

    def segmentUsage() -> "Deferred[Dict[int, int]]":
        """
        Live bytes per segment: the whole records (header, payload, checksum
        table) that some blob's extents name.  A segment with none may be
        absent or 0.  What a segment file holds beyond this is dead.
        """

    def segmentExtents(segment: int, after: int = -1, limit: int = 1000) -> "Deferred[List[Tuple[str, Extent]]]":
        """The live records of C{segment} past offset C{after}, by offset, each with its blob's address."""

    def relocate(moves: Sequence[Tuple[str, Extent, Extent]]) -> "Deferred[int]":
        """
        For each C{(address, old, new)}: if C{old} is still one of the
        blob's extents, C{new} (a copy of its record, already written)
        replaces it; otherwise C{new} is garbage.  Committed as one write.

        @return: how many moves took.
        """

    def forgetSegment(segment: int) -> "Deferred[None]":
        """
        Drop what the store counts for a segment whose file is gone or
        going, and refuse (C{InternalError}) any later write of bytes in it:
        an upload another process had not committed when compaction judged
        its records dead.  Fails with C{ValueError} while a blob still
        names it.
        """
