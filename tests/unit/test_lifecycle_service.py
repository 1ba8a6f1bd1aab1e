"""
Tests for L{fasterstore.services.lifecycle}: the service on a L{Clock},
against the real SQLite store behind the real resource (objects, versions,
configurations and uploads made over HTTP, signed by botocore), its cursor
file in the test's data directory.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, List, Optional, Tuple
from urllib.parse import quote

import attrs
import botocore.auth
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, ensureDeferred, fail

from fasterstore.metadata.records import GOVERNANCE, ObjectRecord, VersionSummary
from fasterstore.metadata.store import IMetadataStore
from fasterstore.services import lifecycle as service
from fasterstore.services.lifecycle import Changed, Cursor, LifecycleService, Locked, unchanged
from fasterstore.threads import ImmediateRunner
from fasterstore.s3.lifecycle import expiryTime
from tests.unit.test_lifecycle import DAY, document, md5, rule
from tests.unit.test_versioning_http import VersioningTestCase


class RacingStore:
    """A metadata store that runs C{before} just ahead of each C{deleteObject}, then delegates."""

    def __init__(self, store: IMetadataStore, before: Any) -> None:
        self._store = store
        self._before = before
        self.deletes: List[Tuple[str, Optional[str]]] = []

    def deleteObject(self, bucket: str, key: str, precondition: Any = None, versionId: Optional[str] = None,
                     modified: float = 0.0) -> "Deferred[Optional[ObjectRecord]]":
        self.deletes.append((key, versionId))
        self._before(key)
        return self._store.deleteObject(bucket, key, precondition, versionId, modified)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class LifecycleServiceTestCase(VersioningTestCase):
    """A bucket, helpers to configure it and to run the service."""

    def setUp(self) -> None:
        super().setUp()
        self.statePath = os.path.join(self.server.root.path, service.STATE_FILE)
        # Requests are signed at the server's time, however many days the test makes pass.
        clock = self.server.clock
        self.patch(botocore.auth, "get_current_datetime",
                   lambda: datetime.datetime.fromtimestamp(clock.seconds(), datetime.timezone.utc).replace(tzinfo=None))

    def configure(self, *rules: str, bucket: str = "bucket") -> None:
        body = document(*rules)
        status, _, answer = self.request("PUT", f"/{bucket}?lifecycle", body, headers=md5(body))
        self.assertEqual(status, 200, answer)

    def service(self, metadata: Any = None, **options: Any) -> LifecycleService:
        options.setdefault("saveEvery", 0.0)
        return LifecycleService(
            metadata if metadata is not None else self.server.metadata, self.server.clock, self.statePath,
            ImmediateRunner(), fsync=False, **options,
        )

    def runPass(self, lifecycle: LifecycleService) -> None:
        """Slices, back to back, until the pass ends."""
        for _ in range(10000):
            if self.successResultOf(ensureDeferred(lifecycle.runSlice())):
                return
        self.fail("the pass never ended")

    def days(self, n: float) -> None:
        self.server.clock.advance(n * DAY)

    def versions(self, bucket: str = "bucket") -> List[VersionSummary]:
        return self.server.now.listVersions(bucket).versions

    def keys(self, bucket: str = "bucket") -> List[str]:
        return [o.key for o in self.server.now.listObjects(bucket).objects]


class ExpirationTests(LifecycleServiceTestCase):
    """Expiration of current versions."""

    def test_unversionedDeleted(self) -> None:
        """On an unversioned bucket a due object is deleted for good; younger ones and other prefixes stay."""
        self.configure(rule("<Expiration><Days>2</Days></Expiration>", "<Filter><Prefix>tmp/</Prefix></Filter>"))
        self.put("tmp/old", b"old")
        self.put("keep/old", b"old")
        self.days(2.5)
        self.put("tmp/young", b"young")
        lifecycle = self.service()
        self.days(0.6)  # past the next midnight after tmp/old's two days, not tmp/young's
        self.runPass(lifecycle)
        self.assertEqual(self.keys(), ["keep/old", "tmp/young"])
        self.assertEqual([v.key for v in self.versions()], ["keep/old", "tmp/young"])
        self.assertEqual((lifecycle.progress.objectsExpired, lifecycle.progress.passes), (1, 1))
        self.days(3)
        self.runPass(lifecycle)
        self.assertEqual(self.keys(), ["keep/old"])

    def test_versionedMarker(self) -> None:
        """On a versioned bucket a due current version gets a delete marker, once; the version stays."""
        self.setVersioning("Enabled")
        self.configure(rule())
        versionId = self.put("k", b"data")
        lifecycle = self.service()
        self.days(3)
        self.runPass(lifecycle)
        self.assertEqual(self.keys(), [])
        listed = [(v.versionId == versionId, v.deleteMarker, v.isLatest) for v in self.versions()]
        self.assertEqual(listed, [(False, True, True), (True, False, False)])
        self.runPass(lifecycle)
        self.assertEqual(len(self.versions()), 2, "no second marker")
        self.assertEqual(lifecycle.progress.objectsExpired, 1)

    def test_tagFilter(self) -> None:
        """A tag rule reads each candidate's tags: only the tagged object expires."""
        self.configure(rule(filt="<Filter><Tag><Key>ttl</Key><Value>short</Value></Tag></Filter>"))
        self.request("PUT", "/bucket/tagged", b"x", headers={"x-amz-tagging": "ttl=short&other=1"})
        self.request("PUT", "/bucket/plain", b"x")
        self.request("PUT", "/bucket/wrong", b"x", headers={"x-amz-tagging": "ttl=long"})
        self.days(3)
        self.runPass(self.service())
        self.assertEqual(self.keys(), ["plain", "wrong"])

    def test_sizeAndDate(self) -> None:
        """A Date rule with a size filter: from that date, the large objects only."""
        self.configure(rule("<Expiration><Date>2100-01-01T00:00:00Z</Date></Expiration>",
                            "<Filter><ObjectSizeGreaterThan>3</ObjectSizeGreaterThan></Filter>"))
        self.put("big", b"12345")
        self.put("small", b"1")
        lifecycle = self.service()
        self.runPass(lifecycle)
        self.assertEqual(self.keys(), ["big", "small"])
        self.server.clock.advance(4102444800 - self.server.clock.seconds())
        self.runPass(lifecycle)
        self.assertEqual(self.keys(), ["small"])

    def test_disabledAndRulelessBuckets(self) -> None:
        """A disabled rule, a bucket without rules: nothing happens, and nothing is examined there."""
        self.createBucket("other")
        self.put("k", b"x", bucket="other")
        self.configure(rule(status="Disabled"))
        self.put("k", b"x")
        lifecycle = self.service()
        self.days(10)
        self.runPass(lifecycle)
        self.assertEqual((self.keys(), self.keys("other")), (["k"], ["k"]))
        self.assertEqual(lifecycle.progress.examined, 0)


class NoncurrentTests(LifecycleServiceTestCase):
    """NoncurrentVersionExpiration and expired object delete markers."""

    def setUp(self) -> None:
        super().setUp()
        self.setVersioning("Enabled")

    def test_noncurrentDays(self) -> None:
        """A version goes NoncurrentDays (rounded to midnight) after it stopped being current."""
        self.configure(rule("<NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays></NoncurrentVersionExpiration>"))
        first = self.put("k", b"1")
        self.days(5)  # its own age does not count
        second = self.put("k", b"2")
        replaced = self.server.clock.seconds() - 1
        lifecycle = self.service()
        self.server.clock.advance(expiryTime(replaced, 2) - 1 - self.server.clock.seconds())
        self.runPass(lifecycle)
        self.assertEqual([v.versionId for v in self.versions()], [second, first])
        self.server.clock.advance(1)
        self.runPass(lifecycle)
        self.assertEqual([v.versionId for v in self.versions()], [second])
        self.assertEqual(lifecycle.progress.versionsExpired, 1)

    def test_newerNoncurrentVersionsKept(self) -> None:
        """With NewerNoncurrentVersions 2, the two newest noncurrent versions stay, however old."""
        self.configure(rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays>"
                            "<NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration>"))
        ids = [self.put("k", b"%d" % i) for i in range(5)]
        self.put("other", b"o")
        self.days(30)
        self.runPass(self.service(sliceVersions=3))  # the count carries across slices
        self.assertEqual([v.versionId for v in self.versions() if v.key == "k"], ids[::-1][:3])

    def test_expiredDeleteMarker(self) -> None:
        """A marker left alone once its versions expired is removed at the next pass; one with versions is not."""
        self.configure(rule("<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>"
                            "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration>"))
        self.put("k", b"1")
        self.delete("k")
        self.put("young", b"1")
        lifecycle = self.service()
        self.runPass(lifecycle)
        self.assertEqual(len(self.versions()), 3)
        self.days(3)
        self.delete("young")
        self.runPass(lifecycle)
        self.assertEqual([(v.key, v.deleteMarker) for v in self.versions()], [("k", True), ("young", True), ("young", False)])
        self.runPass(lifecycle)
        self.assertEqual([(v.key, v.deleteMarker) for v in self.versions()], [("young", True), ("young", False)])
        self.assertEqual((lifecycle.progress.versionsExpired, lifecycle.progress.markersRemoved), (1, 1))

    def test_markerByDays(self) -> None:
        """An Expiration Days rule also removes an expired object delete marker once it is that old."""
        self.configure(rule("<Expiration><Days>2</Days></Expiration>"))
        self.put("k", b"1")
        versionId = self.versions()[0].versionId
        self.delete("k")
        self.request("DELETE", f"/bucket/k?versionId={versionId}")
        lifecycle = self.service()
        self.days(1)
        self.runPass(lifecycle)
        self.assertEqual(len(self.versions()), 1)
        self.days(2)
        self.runPass(lifecycle)
        self.assertEqual(self.versions(), [])

    def test_nullVersions(self) -> None:
        """Suspended after versions: the null version is expired among the others, and the walk resumes past it."""
        self.configure(rule("<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration>"))
        old = self.put("k", b"0")
        self.setVersioning("Suspended")
        self.put("k", b"null")
        self.setVersioning("Enabled")
        newer = [self.put("k", b"%d" % i) for i in range(3)]
        self.days(5)
        self.runPass(self.service(sliceVersions=2))
        self.assertEqual([v.versionId for v in self.versions()], [newer[2]])
        self.assertNotIn(old, [v.versionId for v in self.versions()])


class SafetyTests(LifecycleServiceTestCase):
    """What the service never does."""

    def setUp(self) -> None:
        super().setUp()
        self.setVersioning("Enabled")

    def lock(self, key: str, versionId: Optional[str], **fields: Any) -> None:
        self.successResultOf(self.server.metadata.updateVersion(
            "bucket", key, versionId, lambda record: attrs.evolve(record, **fields)))

    def test_lockedNeverRemoved(self) -> None:
        """A version under retention (until its date) or a legal hold stays; the marker over it is still added."""
        self.configure(rule("<Expiration><Days>1</Days></Expiration>"
                            "<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration>"))
        retained = self.put("retained", b"r")
        held = self.put("held", b"h")
        self.put("free", b"f")
        until = self.server.clock.seconds() + 20 * DAY
        self.lock("retained", retained, lockMode=GOVERNANCE, lockUntil=until)
        self.lock("held", held, legalHold=True)
        lifecycle = self.service()
        self.days(3)
        self.runPass(lifecycle)  # markers on all three
        self.days(3)
        self.runPass(lifecycle)  # the free version goes; the locked ones stay
        remaining = {(v.key, v.versionId) for v in self.versions() if not v.deleteMarker}
        self.assertEqual(remaining, {("retained", retained), ("held", held)})
        self.assertEqual(lifecycle.progress.skippedLocked, 2)
        self.server.clock.advance(until - self.server.clock.seconds() + 1)
        self.runPass(lifecycle)
        self.assertEqual({v.key for v in self.versions() if not v.deleteMarker}, {"held"})

    def test_suspendedNullVersionLocked(self) -> None:
        """On a suspended bucket the marker would replace (remove) the null version: not while it is locked."""
        self.setVersioning("Suspended")
        self.configure(rule())
        self.put("k", b"x")
        self.lock("k", "null", legalHold=True)
        self.days(3)
        lifecycle = self.service()
        self.runPass(lifecycle)
        self.assertEqual((self.keys(), lifecycle.progress.skippedLocked), (["k"], 1))
        self.lock("k", "null", legalHold=False)
        self.runPass(lifecycle)
        self.assertEqual(self.keys(), [])
        self.assertEqual([(v.versionId, v.deleteMarker) for v in self.versions()], [(None, True)])

    def test_rewrittenMeanwhileKept(self) -> None:
        """A key written again between evaluation and the write is not expired: the new version stays current."""
        self.setVersioning("Suspended")
        self.configure(rule())
        self.put("k", b"old")
        self.days(3)

        def rewrite(key: str) -> None:
            self.assertEqual(self.request("PUT", f"/bucket/{quote(key)}", b"new")[0], 200)

        racing = RacingStore(self.server.metadata, rewrite)
        lifecycle = self.service(metadata=racing)
        self.runPass(lifecycle)
        self.assertEqual(racing.deletes, [("k", None)])
        status, _, body = self.request("GET", "/bucket/k")
        self.assertEqual((status, body), (200, b"new"))
        self.assertEqual((lifecycle.progress.objectsExpired, lifecycle.progress.skippedChanged), (0, 1))

    def test_precondition(self) -> None:
        """L{unchanged} refuses another version, another ETag or time, a vanished one, and a locked one it would remove."""
        record = ObjectRecord("b", "k", 1, "e", "blob", 10.0, versionId="v")
        summary = VersionSummary.of(record, True)
        unchanged(summary, True, 0.0)(record)
        for other in (None, attrs.evolve(record, etag="f"), attrs.evolve(record, modified=11.0),
                      attrs.evolve(record, versionId="w"), ObjectRecord.marker("b", "k", 10.0)):
            self.assertRaises(Changed, unchanged(summary, True, 0.0), other)
        locked = attrs.evolve(record, lockMode=GOVERNANCE, lockUntil=100.0)
        self.assertRaises(Locked, unchanged(summary, True, 99.0), locked)
        unchanged(summary, True, 100.0)(locked)
        unchanged(summary, False, 0.0)(locked)
        self.assertRaises(Locked, unchanged(summary, True, 1e12), attrs.evolve(record, legalHold=True))


class UploadTests(LifecycleServiceTestCase):
    """AbortIncompleteMultipartUpload."""

    def create(self, key: str) -> str:
        from xml.etree import ElementTree

        status, _, body = self.request("POST", f"/bucket/{key}?uploads")
        self.assertEqual(status, 200, body)
        uploadId = ElementTree.fromstring(body).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}UploadId")
        assert uploadId is not None
        return uploadId

    def test_staleUploadsAborted(self) -> None:
        """Uploads DaysAfterInitiation old under the rule's prefix are aborted; others stay."""
        self.configure(rule("<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
                            "</AbortIncompleteMultipartUpload>", "<Filter><Prefix>up/</Prefix></Filter>"))
        stale = [self.create(f"up/{i}") for i in range(3)]
        other = self.create("elsewhere")
        self.days(2.5)
        young = self.create("up/young")
        lifecycle = self.service(sliceVersions=2)
        self.runPass(lifecycle)
        for uploadId in stale:
            self.assertIsNone(self.server.now.getUpload(uploadId))
        self.assertIsNotNone(self.server.now.getUpload(other))
        self.assertIsNotNone(self.server.now.getUpload(young))
        self.assertEqual(lifecycle.progress.uploadsAborted, 3)

    def test_abortedMarkerKeepsKeysOtherUploads(self) -> None:
        """
        A page whose last upload is aborted resumes after the page's last
        upload still there: an unknown upload id marker would list only the
        key's uploads with greater ids, and a later upload with a smaller id
        would wait for the next pass.
        """
        self.configure(rule("<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>"
                            "</AbortIncompleteMultipartUpload>"))
        first = self.create("k")
        for _ in range(100):
            self.days(0.001)
            second = self.create("k")
            self.days(0.001)
            third = self.create("k")
            if third < second:
                break
            for uploadId in (second, third):
                status, _, body = self.request("DELETE", f"/bucket/k?uploadId={uploadId}")
                self.assertEqual(status, 204, body)
        else:
            self.fail("no upload id smaller than the one before it")
        self.days(2)
        lifecycle = self.service(sliceVersions=2)
        self.assertFalse(self.successResultOf(ensureDeferred(lifecycle.runSlice())))  # first and second aborted
        self.assertIsNotNone(self.server.now.getUpload(third))
        self.runPass(lifecycle)
        for uploadId in (first, second, third):
            self.assertIsNone(self.server.now.getUpload(uploadId))
        self.assertEqual(lifecycle.progress.uploadsAborted, 3)


class SchedulingTests(LifecycleServiceTestCase):
    """Slices, the budget, the clock, the cursor file, restarts, metrics."""

    def fill(self, n: int) -> None:
        self.configure(rule())
        for i in range(n):
            self.request("PUT", f"/bucket/k{i:03d}", b"x")
        self.days(3)

    def test_budgetThenClock(self) -> None:
        """A slice examines at most sliceVersions; the next waits for the clock to advance by the pause."""
        self.fill(10)
        lifecycle = self.service(sliceVersions=4, pause=0.5)
        lifecycle.startService()
        self.addCleanup(lifecycle.stopService)
        self.server.clock.advance(0)
        self.assertEqual(lifecycle.progress.examined, 4)
        self.assertEqual(len(self.keys()), 6)
        self.server.clock.advance(0.49)
        self.assertEqual(lifecycle.progress.examined, 4)
        self.server.clock.advance(0.01)
        self.assertEqual(lifecycle.progress.examined, 8)
        self.server.clock.advance(0.5)
        self.assertEqual((lifecycle.progress.examined, lifecycle.progress.passes, self.keys()), (10, 1, []))

    def test_timeBudget(self) -> None:
        """A slice stops after sliceSeconds of work even with budget left (the store's clock is read between pages)."""

        clock = self.server.clock

        class SlowStore(RacingStore):
            """Each page of versions "takes" 30 ms of the clock."""

            def listVersions(self, *args: Any, **kwargs: Any) -> Any:
                clock.advance(0.03)
                return self._store.listVersions(*args, **kwargs)

        self.fill(6)
        lifecycle = self.service(metadata=SlowStore(self.server.metadata, lambda key: None), sliceVersions=1000,
                                 sliceSeconds=0.05)
        self.patch(service, "PAGE", 2)
        self.assertFalse(self.successResultOf(ensureDeferred(lifecycle.runSlice())))
        self.assertEqual(lifecycle.progress.examined, 4, "two pages of two, then 60 ms > 50 ms")

    def test_intervalBetweenPasses(self) -> None:
        """After a pass the next starts C{interval} later, not before."""
        self.fill(1)
        lifecycle = self.service(interval=100.0)
        lifecycle.startService()
        self.addCleanup(lifecycle.stopService)
        self.server.clock.advance(0)
        self.assertEqual(lifecycle.progress.passes, 1)
        self.request("PUT", "/bucket/later", b"x")
        self.days(3)  # the clock jumps: the wait already scheduled is what counts
        self.assertEqual(lifecycle.progress.passes, 2)
        self.assertEqual(self.keys(), [])

    def test_resumesAfterRestart(self) -> None:
        """A new service on the same data directory goes on from the saved cursor, examining nothing twice."""
        self.fill(10)
        first = self.service(sliceVersions=4)
        first.startService()
        self.server.clock.advance(0)
        self.assertEqual(first.progress.examined, 4)
        self.successResultOf(first.stopService())
        saved = json.loads(open(self.statePath).read())
        self.assertEqual((saved["bucket"], saved["keyMarker"], saved["phase"]), ("bucket", "k003", "versions"))
        self.assertIsNotNone(saved["passStarted"])
        second = self.service(sliceVersions=4)
        second.startService()
        self.addCleanup(second.stopService)
        for _ in range(10):
            self.server.clock.advance(service.DEFAULT_PAUSE)
        self.assertEqual((second.progress.examined, second.progress.passes), (6, 1))
        self.assertEqual(self.keys(), [])

    def test_nextPassSurvivesRestart(self) -> None:
        """Between passes the saved state says when the next pass is due; a restart waits for it."""
        self.fill(1)
        first = self.service(interval=1000.0)
        first.startService()
        self.server.clock.advance(0)
        self.successResultOf(first.stopService())
        self.assertEqual(json.loads(open(self.statePath).read())["passStarted"], None)
        self.server.clock.advance(400)
        second = self.service(interval=1000.0)
        second.startService()
        self.addCleanup(second.stopService)
        self.server.clock.advance(599)
        self.assertEqual(second.progress.passes, 0)
        self.server.clock.advance(1)
        self.assertEqual(second.progress.passes, 1)

    def test_unreadableState(self) -> None:
        """A damaged state file starts a fresh pass (logged), never stops the service."""
        self.fill(2)
        with open(self.statePath, "w") as f:
            f.write("{not json")
        lifecycle = self.service()
        lifecycle.startService()
        self.addCleanup(lifecycle.stopService)
        self.server.clock.advance(0)
        self.assertEqual(lifecycle.progress.passes, 1)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_stateFileAtomicAndPrivate(self) -> None:
        """The state is written through a temporary file renamed into place, mode 0600."""
        self.fill(1)
        lifecycle = self.service()
        self.runPass(lifecycle)
        self.assertFalse(os.path.exists(self.statePath + ".tmp"))
        self.assertEqual(os.stat(self.statePath).st_mode & 0o777, 0o600)
        self.assertEqual(Cursor.fromJSON(json.loads(open(self.statePath).read())).passStarted, None)

    def test_waitsForStore(self) -> None:
        """Nothing runs while the metadata store is not ready."""
        self.fill(1)

        class Closed(RacingStore):
            ready = False

        lifecycle = self.service(metadata=Closed(self.server.metadata, lambda key: None))
        lifecycle.startService()
        self.addCleanup(lifecycle.stopService)
        self.server.clock.advance(0)
        self.server.clock.advance(5)
        self.assertEqual(lifecycle.progress.passes, 0)

    def test_metrics(self) -> None:
        """The counters are in the registry given."""
        self.fill(2)
        registry = CollectorRegistry()
        self.runPass(self.service(registry=registry))
        value = registry.get_sample_value
        self.assertEqual(value("fasterstore_lifecycle_objects_expired_total"), 2.0)
        self.assertEqual(value("fasterstore_lifecycle_passes_total"), 1.0)
        self.assertEqual(value("fasterstore_lifecycle_examined_total"), 2.0)
        self.assertEqual(value("fasterstore_lifecycle_versions_expired_total"), 0.0)
        self.assertEqual(value("fasterstore_lifecycle_markers_removed_total"), 0.0)
        self.assertEqual(value("fasterstore_lifecycle_uploads_aborted_total"), 0.0)

    def test_deletedBucketSkipped(self) -> None:
        """A bucket deleted in the middle of its walk is left, and the pass goes on with the next."""
        self.fill(4)
        self.createBucket("zzz")
        self.configure(rule(), bucket="zzz")
        self.request("PUT", "/zzz/k", b"x")
        self.days(3)
        lifecycle = self.service(sliceVersions=2)
        self.assertFalse(self.successResultOf(ensureDeferred(lifecycle.runSlice())))
        for i in range(4):
            self.request("DELETE", f"/bucket/k{i:03d}")
        self.assertEqual(self.request("DELETE", "/bucket")[0], 204)
        self.runPass(lifecycle)
        self.assertEqual(self.keys("zzz"), [])

    def test_failedSliceRetriedLater(self) -> None:
        """A slice that fails is logged, and the walk goes on FAILURE_DELAY later, not at once."""
        self.fill(2)
        failures = [RuntimeError("disk on fire")]

        class Flaky(RacingStore):
            def listVersions(self, *args: Any, **kwargs: Any) -> Any:
                if failures:
                    raise failures.pop()
                return self._store.listVersions(*args, **kwargs)

        lifecycle = self.service(metadata=Flaky(self.server.metadata, lambda key: None))
        lifecycle.startService()
        self.addCleanup(lifecycle.stopService)
        self.server.clock.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.server.clock.advance(service.FAILURE_DELAY - 0.01)
        self.assertEqual(lifecycle.progress.passes, 0)
        self.server.clock.advance(0.01)
        self.assertEqual((lifecycle.progress.passes, self.keys()), (1, []))

    def test_failedActionLogged(self) -> None:
        """A write that fails for another reason is logged; the pass goes on with the rest."""
        self.fill(3)

        class Failing(RacingStore):
            def deleteObject(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
                if key == "k001":
                    return fail(RuntimeError("EIO"))
                return self._store.deleteObject(bucket, key, *args, **kwargs)

        lifecycle = self.service(metadata=Failing(self.server.metadata, lambda key: None))
        self.runPass(lifecycle)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.keys(), ["k001"])

    def test_badOptions(self) -> None:
        """Nonsense settings are refused at construction."""
        for options in ({"interval": 0}, {"sliceVersions": 1}, {"sliceSeconds": 0}, {"pause": -1}):
            self.assertRaises(ValueError, self.service, **options)
