"""
The records the metadata engine keeps: buckets, objects, multipart uploads
and blobs.

Records are immutable; a mutation replaces a record.  Each has a
``toJSON``/``fromJSON`` pair, the form a store keeps them in; fields added
later have defaults, so ``fromJSON`` reads records written before they existed.
Tests: tests/unit/test_metadata_store.py, tests/unit/test_multipart_model.py.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, NamedTuple, Optional, Sequence, Tuple

import attrs

from fasterstore.storage.blob import Extent

JSONDict = Dict[str, Any]
Pairs = Tuple[Tuple[str, str], ...]

#: A bucket's versioning states (L{BucketRecord.versioning}).
ENABLED = "Enabled"
SUSPENDED = "Suspended"

#: Object Lock retention modes (L{ObjectRecord.lockMode}).
GOVERNANCE = "GOVERNANCE"
COMPLIANCE = "COMPLIANCE"

#: How the null version's id is spelled on the wire (L{ObjectRecord.versionId} C{None}).
NULL_VERSION_ID = "null"

#: Version ids are the store's commit sequence number in this many
#: lower-case hex digits (L{versionIdOf}): unique in the store, and ordered
#: as the writes committed, so the latest version of a key is the one with
#: the greatest id.  (Formatted in C: a ListObjectVersions page makes a
#: thousand of them.)
_VERSION_DIGITS = 16
_VERSION_ALPHABET = "0123456789abcdef"


def versionIdOf(seq: int) -> str:
    """The version id of the write the store numbered C{seq}."""
    if not 0 <= seq < 1 << 64:
        raise ValueError("sequence number out of range")
    return "%016x" % seq


def seqOf(versionId: str) -> Optional[int]:
    """The sequence number a version id names; C{None} if it is not one L{versionIdOf} makes."""
    if len(versionId) != _VERSION_DIGITS or versionId.strip(_VERSION_ALPHABET):
        return None
    return int(versionId, 16)


def _pairs(items: Iterable[Sequence[str]]) -> Pairs:
    """JSON arrays of pairs back to a tuple of tuples."""
    return tuple((str(a), str(b)) for a, b in items)


def _pairsJSON(pairs: Pairs) -> Any:
    return [list(pair) for pair in pairs]


@attrs.frozen
class BucketRecord:
    """
    A bucket.

    @ivar name: the bucket name.
    @ivar owner: canonical id of the owning account.
    @ivar region: LocationConstraint given at creation (``""`` for us-east-1).
    @ivar created: creation time, seconds since the epoch.
    @ivar config: bucket sub-resource documents (C{"tagging"}, C{"cors"},
        ...) by name, sorted by name: opaque text owned by the HTTP layer.
    @ivar versioning: C{None} while versioning was never turned on, then
        L{ENABLED} or L{SUSPENDED} (a bucket never goes back to C{None}).
        The store reads it inside each write's transaction: it decides
        whether a write keeps the version it replaces.
    @ivar objectLock: whether Object Lock is enabled (it never is turned
        off; versioning stays L{ENABLED}).  The default retention, if any,
        is the C{"object-lock"} sub-resource document.
    """

    name: str
    owner: str
    region: str
    created: float
    config: Pairs = ()
    versioning: Optional[str] = None
    objectLock: bool = False

    def configValue(self, name: str) -> Optional[str]:
        """The sub-resource document called C{name}, if set."""
        for n, value in self.config:
            if n == name:
                return value
        return None

    def withConfig(self, name: str, value: Optional[str]) -> "BucketRecord":
        """This record with C{name} set to C{value} (C{None} removes it)."""
        config = [(n, v) for n, v in self.config if n != name]
        if value is not None:
            config.append((name, value))
        return attrs.evolve(self, config=tuple(sorted(config)))

    def toJSON(self) -> JSONDict:
        d: JSONDict = {
            "name": self.name, "owner": self.owner, "region": self.region,
            "created": self.created, "config": _pairsJSON(self.config),
        }
        if self.versioning is not None:
            d["versioning"] = self.versioning
        if self.objectLock:
            d["objectLock"] = True
        return d

    @classmethod
    def fromJSON(cls, d: JSONDict) -> "BucketRecord":
        d = dict(d)
        d["config"] = _pairs(d.get("config", ()))
        return cls(**d)


@attrs.frozen
class PartRecord:
    """
    One part of a multipart upload, or of a multipart object's manifest.

    @ivar number: the part number, 1 to 10,000.
    @ivar size: the part's length in bytes.
    @ivar etag: hex MD5 of the part, unquoted.
    @ivar blob: content address (BLAKE3 hex) of the part's bytes.
    @ivar modified: when the part was uploaded, seconds since the epoch.
    @ivar checksums: S3 checksums of this part in base64 by algorithm name.
    """

    number: int
    size: int
    etag: str
    blob: str
    modified: float
    checksums: Pairs = ()

    def toJSON(self) -> JSONDict:
        return {
            "number": self.number, "size": self.size, "etag": self.etag, "blob": self.blob,
            "modified": self.modified, "checksums": _pairsJSON(self.checksums),
        }

    @classmethod
    def fromJSON(cls, d: JSONDict) -> "PartRecord":
        d = dict(d)
        d["checksums"] = _pairs(d.get("checksums", ()))
        return cls(**d)


def _parts(items: Iterable[JSONDict]) -> Tuple[PartRecord, ...]:
    return tuple(PartRecord.fromJSON(p) for p in items)


@attrs.frozen
class ObjectRecord:
    """
    One version of an object (the current one, unless the bucket keeps
    versions), or a delete marker.

    @ivar bucket: bucket name.
    @ivar key: object key (unicode, as decoded from the request URI).
    @ivar size: content length in bytes.
    @ivar etag: the ETag without quotes (hex MD5 for a single PUT).
    @ivar blob: content address (BLAKE3 hex) of the bytes.
    @ivar modified: last-modified time, seconds since the epoch.
    @ivar headers: stored system headers (Content-Type, Content-Encoding,
        Content-Disposition, Content-Language, Cache-Control, Expires) by
        their canonical HTTP name.
    @ivar meta: user metadata, names lower-cased without ``x-amz-meta-``.
    @ivar checksums: S3 checksums in base64 by algorithm name (``crc32``,
        ``crc32c``, ``crc64nvme``, ``sha1``, ``sha256``).
    @ivar uploadId: the multipart upload that completed this version, so
        that a retried CompleteMultipartUpload gets the same answer.
    @ivar versionId: the version's id, which the store assigns when the
        version is written on a bucket with versioning enabled; C{None} for
        the null version (L{NULL_VERSION_ID} on the wire), the only one an
        unversioned bucket has.
    @ivar parts: for a multipart object, its manifest in order; then C{blob}
        is C{""} and the bytes are the parts' blobs concatenated.
    @ivar tags: the object's tag set, in order.
    @ivar checksumType: C{"FULL_OBJECT"} or C{"COMPOSITE"}; C{None} means
        C{"FULL_OBJECT"}.
    @ivar deleteMarker: whether this version is a delete marker (no bytes,
        no blob: C{size} 0, C{etag} and C{blob} empty).
    @ivar lockMode: the version's Object Lock retention mode (L{GOVERNANCE}
        or L{COMPLIANCE}) until C{lockUntil}, or C{None}.
    @ivar lockUntil: the retain-until date, seconds since the epoch.
    @ivar legalHold: whether a legal hold is on the version; C{None} if
        one was never set (GetObjectLegalHold then has nothing to show).
    """

    bucket: str
    key: str
    size: int
    etag: str
    blob: str
    modified: float
    headers: Tuple[Tuple[str, str], ...] = ()
    meta: Tuple[Tuple[str, str], ...] = ()
    checksums: Tuple[Tuple[str, str], ...] = ()
    versionId: Optional[str] = None
    parts: Tuple[PartRecord, ...] = ()
    uploadId: Optional[str] = None
    tags: Pairs = ()
    checksumType: Optional[str] = None
    deleteMarker: bool = False
    lockMode: Optional[str] = None
    lockUntil: Optional[float] = None
    legalHold: Optional[bool] = None

    @property
    def wireVersionId(self) -> str:
        """The version id as S3 spells it (L{NULL_VERSION_ID} for the null version)."""
        return NULL_VERSION_ID if self.versionId is None else self.versionId

    @classmethod
    def marker(cls, bucket: str, key: str, modified: float) -> "ObjectRecord":
        """A delete marker (the store gives it its version id)."""
        return cls(bucket, key, 0, "", "", modified, deleteMarker=True)

    def blobAddresses(self) -> Tuple[str, ...]:
        """
        The blobs this record holds a reference on, one per occurrence:
        C{blob} if it is set, else each part's blob in order.  Every
        refcounting path uses this, so they always agree.
        """
        if self.blob:
            return (self.blob,)
        return tuple(p.blob for p in self.parts)

    def toJSON(self) -> JSONDict:
        return {
            "bucket": self.bucket, "key": self.key, "size": self.size, "etag": self.etag,
            "blob": self.blob, "modified": self.modified,
            "headers": _pairsJSON(self.headers), "meta": _pairsJSON(self.meta),
            "checksums": _pairsJSON(self.checksums), "versionId": self.versionId,
            "parts": [p.toJSON() for p in self.parts], "tags": _pairsJSON(self.tags),
            "checksumType": self.checksumType, "uploadId": self.uploadId,
            "deleteMarker": self.deleteMarker or None, "lockMode": self.lockMode, "lockUntil": self.lockUntil,
            "legalHold": self.legalHold,
        }

    @classmethod
    def fromJSON(cls, d: JSONDict) -> "ObjectRecord":
        d = dict(d)
        for name in ("headers", "meta", "checksums", "tags"):
            d[name] = _pairs(d.get(name, ()))
        d["parts"] = _parts(d.get("parts", ()))
        d["deleteMarker"] = bool(d.get("deleteMarker"))
        return cls(**d)


class ObjectSummary(NamedTuple):
    """
    What a listing shows of an object: a store can read it without
    decoding the whole record (a multipart manifest, headers, metadata).
    A named tuple: a listing builds a thousand of them per page.

    @ivar checksumAlgorithms: the names of the object's S3 checksums.
    """

    key: str
    size: int
    etag: str
    modified: float
    checksumAlgorithms: Tuple[str, ...] = ()
    checksumType: Optional[str] = None

    @classmethod
    def of(cls, record: ObjectRecord) -> "ObjectSummary":
        return cls(
            record.key, record.size, record.etag, record.modified,
            tuple(name for name, _ in record.checksums), record.checksumType,
        )


class Copied(NamedTuple):
    """A copy as its write made it: the source version it found, and the new version."""

    source: ObjectRecord
    record: ObjectRecord


class VersionSummary(NamedTuple):
    """
    What ListObjectVersions shows of one version or delete marker.

    @ivar versionId: C{None} for the null version.
    @ivar isLatest: whether it is the key's latest version (a delete
        marker can be).
    @ivar noncurrentSince: when a newer version first replaced it (for
        lifecycle rules on noncurrent versions); 0 for the latest.
    """

    key: str
    versionId: Optional[str]
    isLatest: bool
    deleteMarker: bool
    size: int
    etag: str
    modified: float
    checksumAlgorithms: Tuple[str, ...] = ()
    checksumType: Optional[str] = None
    noncurrentSince: float = 0.0

    @property
    def wireVersionId(self) -> str:
        """The version id as S3 spells it (L{NULL_VERSION_ID} for the null version)."""
        return NULL_VERSION_ID if self.versionId is None else self.versionId

    @classmethod
    def of(cls, record: ObjectRecord, isLatest: bool, noncurrentSince: float = 0.0) -> "VersionSummary":
        return cls(
            record.key, record.versionId, isLatest, record.deleteMarker, record.size, record.etag,
            record.modified, tuple(name for name, _ in record.checksums), record.checksumType, noncurrentSince,
        )


@attrs.frozen
class UploadRecord:
    """
    A multipart upload in progress.

    @ivar uploadId: the upload's id.
    @ivar bucket: bucket name.
    @ivar key: the key the object will have.
    @ivar owner: canonical id of the initiator.
    @ivar initiated: creation time, seconds since the epoch.
    @ivar headers: system headers for the object (as L{ObjectRecord.headers}).
    @ivar meta: user metadata for the object (as L{ObjectRecord.meta}).
    @ivar tags: tags for the object.
    @ivar checksumAlgorithm: the checksum algorithm named at creation.
    @ivar checksumType: C{"FULL_OBJECT"} or C{"COMPOSITE"}, if named.
    @ivar parts: the parts uploaded so far, by number, one per number (a
        re-uploaded number keeps the last); the upload holds one blob
        reference per part.
    @ivar lockMode: the Object Lock retention mode asked for at creation
        (as L{ObjectRecord.lockMode}), given to the object on completion.
    @ivar lockUntil: its retain-until date, seconds since the epoch.
    @ivar legalHold: the legal hold the object gets on completion (C{None}: none named).
    """

    uploadId: str
    bucket: str
    key: str
    owner: str
    initiated: float
    headers: Pairs = ()
    meta: Pairs = ()
    tags: Pairs = ()
    checksumAlgorithm: Optional[str] = None
    checksumType: Optional[str] = None
    parts: Tuple[PartRecord, ...] = ()
    lockMode: Optional[str] = None
    lockUntil: Optional[float] = None
    legalHold: Optional[bool] = None

    def getPart(self, number: int) -> Optional[PartRecord]:
        """The part with this number, if uploaded."""
        for p in self.parts:
            if p.number == number:
                return p
        return None

    def withPart(self, part: PartRecord) -> "UploadRecord":
        """This upload with C{part} added, replacing any part with its number."""
        parts = [p for p in self.parts if p.number != part.number]
        parts.append(part)
        parts.sort(key=lambda p: p.number)
        return attrs.evolve(self, parts=tuple(parts))

    def toJSON(self) -> JSONDict:
        return {
            "uploadId": self.uploadId, "bucket": self.bucket, "key": self.key, "owner": self.owner,
            "initiated": self.initiated, "headers": _pairsJSON(self.headers),
            "meta": _pairsJSON(self.meta), "tags": _pairsJSON(self.tags),
            "checksumAlgorithm": self.checksumAlgorithm, "checksumType": self.checksumType,
            "parts": [p.toJSON() for p in self.parts],
            "lockMode": self.lockMode, "lockUntil": self.lockUntil, "legalHold": self.legalHold,
        }

    @classmethod
    def fromJSON(cls, d: JSONDict) -> "UploadRecord":
        d = dict(d)
        for name in ("headers", "meta", "tags"):
            d[name] = _pairs(d.get(name, ()))
        d["parts"] = _parts(d.get("parts", ()))
        return cls(**d)


@attrs.frozen
class BlobRecord:
    """
    Content-addressed bytes shared by every object with identical content.

    @ivar address: BLAKE3 hex of the content.
    @ivar size: content length.
    @ivar extents: where the bytes are, in order.
    @ivar refs: how many object records point at this blob.
    """

    address: str
    size: int
    extents: Tuple[Extent, ...]
    refs: int

    def toJSON(self) -> JSONDict:
        return {
            "address": self.address,
            "size": self.size,
            "extents": [[e.segment, e.offset, e.length] for e in self.extents],
            "refs": self.refs,
        }

    @classmethod
    def fromJSON(cls, d: JSONDict) -> "BlobRecord":
        return cls(
            address=d["address"],
            size=d["size"],
            extents=tuple(Extent(*e) for e in d["extents"]),
            refs=d["refs"],
        )
