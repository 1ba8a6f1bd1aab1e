"""
What every S3 operation works with: the engines, the clock, the settings.
Tests: tests/unit/test_resource.py.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import attrs
from twisted.internet.interfaces import IReactorTime

from fasterstore.metadata.store import IMetadataStore
from fasterstore.metrics import Metrics
from fasterstore.auth.identity import Credentials
from fasterstore.storage.segments import SegmentStore

#: AWS's limit for a single PUT.
MAX_OBJECT_SIZE = 5 * 1024**3
#: AWS's minimum size of every part of a multipart upload but the last.
MIN_PART_SIZE = 5 * 1024**2


@attrs.define
class S3Context:
    """
    The server-side state an S3 request is served from.

    @ivar metadata: buckets, objects and uploads (every read and write
        returns a Deferred).

    @ivar lookup: finds the credentials of an access key.
    @ivar region: the region this server answers for.
    @ivar domains: base domains for virtual-hosted-style addressing.
    @ivar minPartSize: smallest part but the last (tests lower it).
    @ivar draining: set during shutdown; new requests are refused.
    """

    metadata: IMetadataStore
    segments: SegmentStore
    clock: IReactorTime
    lookup: Callable[[str], Optional[Credentials]]
    metrics: Metrics
    region: str = "us-east-1"
    domains: Sequence[str] = ()
    maxObjectSize: int = MAX_OBJECT_SIZE
    minPartSize: int = MIN_PART_SIZE
    draining: bool = False
