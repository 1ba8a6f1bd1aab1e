"""
Expiry of abandoned multipart uploads.

An upload that is neither completed nor aborted holds its parts' bytes
forever.  L{UploadExpiryService} aborts, every C{interval} seconds, the
uploads initiated more than C{ttl} seconds ago (seven days by default, the
figure AWS lifecycle rules commonly use); an abort makes their parts' space
reclaimable exactly as an AbortMultipartUpload would.
Tests: tests/unit/test_upload_expiry.py.
"""

from __future__ import annotations

from typing import Optional

from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from fasterstore.errors import S3Error
from fasterstore.metadata.store import IMetadataStore

log = Logger()

#: Default age after which an incomplete upload is aborted: seven days.
DEFAULT_TTL = 7 * 86400.0

#: Default time between two sweeps: one hour.
DEFAULT_INTERVAL = 3600.0

#: Uploads read from the store at a time by a sweep.
SWEEP_PAGE = 1000


class UploadExpiryService(TimerService):
    """
    Aborts multipart uploads initiated longer than C{ttl} seconds ago,
    checking every C{interval} seconds (and once at start).

    @ivar metadata: the metadata store holding the uploads.
    @ivar ttl: how old, in seconds, an upload may get.
    @ivar expired: how many uploads this service has aborted (for tests and
        logs).
    """

    def __init__(
        self,
        metadata: IMetadataStore,
        clock: IReactorTime,
        ttl: float = DEFAULT_TTL,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if ttl <= 0 or interval <= 0:
            raise ValueError("ttl and interval must be positive")
        super().__init__(interval, self._tick)
        self.clock = clock
        self._now = clock
        self.metadata = metadata
        self.ttl = ttl
        self.expired = 0

    def _tick(self) -> "Optional[Deferred[int]]":
        if not self.metadata.ready:
            return None
        # A failed sweep is logged; the service keeps running.
        d = ensureDeferred(self.sweep())
        d.addErrback(lambda f: log.failure("Expiring multipart uploads failed", f))
        return d

    async def sweep(self) -> int:
        """
        Abort every upload older than the TTL now.

        @return: how many were aborted.  An upload completed or aborted
            meanwhile (C{NoSuchUpload}) is skipped; any other failure is
            logged and the sweep goes on with the next.
        """
        before = self._now.seconds() - self.ttl
        aborted = 0
        while True:
            # A page at a time, so a backlog never sits in memory at once;
            # a page where nothing could be aborted ends the sweep.
            page = await self.metadata.staleUploads(before, limit=SWEEP_PAGE)
            progress = 0
            for upload in page:
                try:
                    await self.metadata.abortUpload(upload.uploadId)
                except S3Error as e:
                    if e.code != "NoSuchUpload":
                        log.failure("Expiring upload {uploadId} failed", uploadId=upload.uploadId)
                    continue
                except Exception:
                    log.failure("Expiring upload {uploadId} failed", uploadId=upload.uploadId)
                    continue
                progress += 1
                log.info(
                    "Expired multipart upload {uploadId} of {bucket}/{key}, initiated {initiated}",
                    uploadId=upload.uploadId, bucket=upload.bucket, key=upload.key, initiated=upload.initiated,
                )
            aborted += progress
            if len(page) < SWEEP_PAGE or progress == 0:
                break
        self.expired += aborted
        return aborted
