"""
Tests for L{fasterstore.services.uploads.UploadExpiryService}, driven by a
L{Clock} against a real metadata store (uploads created through the S3 resource).
"""

from __future__ import annotations

from typing import Any, Callable, List

from twisted.internet.defer import Deferred, fail

from fasterstore.errors import S3Error
from fasterstore.metadata.store import IMetadataStore
from fasterstore.services.uploads import UploadExpiryService
from tests.unit.test_multipart import MultipartTestCase


class FlakyEngine:
    """A metadata store whose C{abortUpload} fails as told, then delegates."""

    def __init__(self, engine: IMetadataStore, failFor: Callable[[str], Any]) -> None:
        self._engine = engine
        self._failFor = failFor
        self.calls: List[str] = []

    def abortUpload(self, uploadId: str) -> "Deferred[None]":
        self.calls.append(uploadId)
        error = self._failFor(uploadId)
        if error is not None:
            return fail(error)
        return self._engine.abortUpload(uploadId)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


class UploadExpiryTests(MultipartTestCase):
    """Uploads older than the TTL are aborted, on schedule."""

    def service(self, ttl: float = 100, interval: float = 10) -> UploadExpiryService:
        service = UploadExpiryService(self.server.metadata, self.server.clock, ttl=ttl, interval=interval)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    def test_expiresOldUploadsOnly(self) -> None:
        """At each interval, uploads initiated more than C{ttl} ago are aborted, and their parts released."""
        old = self.create("old")
        self.putPart(old, 1, b"stale bytes", key="old")
        address = self.server.now.getUpload(old).parts[0].blob  # type: ignore[union-attr]
        self.server.clock.advance(60)
        young = self.create("young")
        service = self.service()
        self.assertIsNotNone(self.server.now.getUpload(old))
        self.server.clock.advance(40)
        self.assertIsNotNone(self.server.now.getUpload(old), "exactly ttl old is not yet expired")
        self.server.clock.advance(10)
        self.assertIsNone(self.server.now.getUpload(old))
        self.assertIsNone(self.server.now.getBlob(address))
        self.assertIsNotNone(self.server.now.getUpload(young))
        self.assertError(self.request("GET", f"/bucket/old?uploadId={old}"), 404, "NoSuchUpload")
        self.server.clock.advance(60)
        self.assertIsNone(self.server.now.getUpload(young))
        self.assertEqual(service.expired, 2)

    def test_defaults(self) -> None:
        """Seven days of TTL, checked hourly."""
        service = UploadExpiryService(self.server.metadata, self.server.clock)
        self.assertEqual((service.ttl, service.step), (7 * 86400, 3600))
        self.assertRaises(ValueError, UploadExpiryService, self.server.metadata, self.server.clock, ttl=0)

    def test_racedUploadSkipped(self) -> None:
        """An upload completed or aborted meanwhile is skipped; the sweep goes on."""
        first, second = self.create("a"), self.create("b")
        self.server.clock.advance(1000)
        engine = FlakyEngine(self.server.metadata, lambda u: S3Error("NoSuchUpload") if u == first else None)
        service = UploadExpiryService(engine, self.server.clock, ttl=100)  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(service.sweep()), 1)
        self.assertEqual(sorted(engine.calls), sorted([first, second]))
        self.assertIsNone(self.server.now.getUpload(second))
        self.assertIsNotNone(self.server.now.getUpload(first))

    def test_failureKeepsServiceRunning(self) -> None:
        """An unexpected failure is logged and the next interval sweeps again."""
        uploadId = self.create()
        self.server.clock.advance(1000)
        failures = [RuntimeError("disk on fire")]
        engine = FlakyEngine(self.server.metadata, lambda u: failures.pop() if failures else None)
        service = UploadExpiryService(engine, self.server.clock, ttl=100, interval=10)  # type: ignore[arg-type]
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIsNotNone(self.server.now.getUpload(uploadId))
        self.server.clock.advance(10)
        self.assertIsNone(self.server.now.getUpload(uploadId))
