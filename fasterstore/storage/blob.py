"""
Where a blob's bytes live, and what was learned while writing them.

These types are the contract between the segment engine (which writes and
reads bytes) and the metadata engine (which records where they are).
Tests: tests/unit/test_segments.py.
"""

from __future__ import annotations

from typing import Callable, Mapping, Tuple

import attrs


@attrs.frozen
class Extent:
    """
    One record in a segment file holding a contiguous run of a blob's bytes.

    @ivar segment: the segment number (file ``segments/%08d.seg``).
    @ivar offset: byte offset of the record header inside the segment.
    @ivar length: number of payload (blob) bytes in the record.
    """

    segment: int
    offset: int
    length: int


@attrs.frozen
class WrittenBlob:
    """
    A blob whose records are written (not yet fsynced) to segment files.

    @ivar size: total payload bytes.
    @ivar extents: the records, in blob order.
    @ivar digests: raw digest bytes by algorithm name: always ``md5`` and
        ``blake3``; ``sha256``, ``sha1``, ``crc32``, ``crc32c`` and
        ``crc64nvme`` when the writer was asked for them.
    @ivar release: call once the metadata store has committed or refused
        the blob: until then its records look dead to compaction, so the
        writer keeps their segments pinned (see L{SegmentStore.pin}).
    """

    size: int
    extents: Tuple[Extent, ...]
    digests: Mapping[str, bytes]
    release: Callable[[], None] = attrs.field(default=lambda: None, eq=False, repr=False)

    @property
    def contentAddress(self) -> str:
        """The blob's BLAKE3 hash in hex: its identity for deduplication."""
        return self.digests["blake3"].hex()
