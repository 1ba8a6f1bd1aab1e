"""
The records the metadata engine keeps: buckets, objects and blobs.

Records are immutable; a mutation replaces a record.  Each has a
``toJSON``/``fromJSON`` pair, used by both the WAL and snapshots.
Tests: tests/unit/test_metadata_engine.py.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import attrs

from fasterstore.storage.blob import Extent

JSONDict = Dict[str, Any]


@attrs.frozen
class BucketRecord:
    """
    A bucket.

    @ivar name: the bucket name.
    @ivar owner: canonical id of the owning account.
    @ivar region: LocationConstraint given at creation (``""`` for us-east-1).
    @ivar created: creation time, seconds since the epoch.
    """

    name: str
    owner: str
    region: str
    created: float

    def toJSON(self) -> JSONDict:
        return attrs.asdict(self)

    @classmethod
    def fromJSON(cls, d: JSONDict) -> "BucketRecord":
        return cls(**d)


@attrs.frozen
class ObjectRecord:
    """
    The current version of one object.

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
    @ivar versionId: ``None`` until versioning exists ("null" on the wire).
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

    def toJSON(self) -> JSONDict:
        d = attrs.asdict(self)
        for name in ("headers", "meta", "checksums"):
            d[name] = [list(pair) for pair in d[name]]
        return d

    @classmethod
    def fromJSON(cls, d: JSONDict) -> "ObjectRecord":
        d = dict(d)
        for name in ("headers", "meta", "checksums"):
            d[name] = tuple(tuple(pair) for pair in d.get(name, ()))
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
