"""
What every S3 operation works with: the engines, the clock, the settings.
Tests: tests/unit/test_resource.py.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Dict, Optional, Sequence

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fasterstore.errors import StorageWriteError
from fasterstore.metadata.store import IMetadataStore
from fasterstore.metrics import Metrics
from fasterstore.auth.identity import Credentials
from fasterstore.storage.segments import SegmentStore
from fasterstore.storage.space import SpaceGuard

log = Logger()

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
    @ivar space: refuses data writes the drive has no room for (beyond its
        reserve); None: no checks (tests, embedding code that builds its
        own context).
    @ivar storageReport: measures the segment files and compaction's
        progress, for the admin API (JSON-ready); None: not reported.
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
    space: Optional[SpaceGuard] = None
    storageReport: Optional[Callable[[], Awaitable[Dict[str, object]]]] = None

    def checkSpace(self, length: int) -> None:
        """
        Admit a data write of C{length} bytes (0 when not declared), before
        any of it is read.  Only uploads of object data are checked: deletes
        and other metadata writes live on the reserve.

        @raise S3Error: C{InsufficientStorage} (507).
        """
        if self.space is not None:
            self.space.check(length)

    def writeFailed(self, error: StorageWriteError) -> None:
        """
        Object data could not be written: count it; log it unless the disk
        was full (the space guard, which asks the drive at every upload,
        refuses the next one before its body, and readiness says why).
        """
        self.metrics.writeErrors.labels(error.reason).inc()
        if not error.diskFull:
            log.error("Writing object data failed: {error!r}", error=error.error)
