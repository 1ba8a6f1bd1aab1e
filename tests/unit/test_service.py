"""
Tests for L{fasterstore.service}: the background services
L{FasterStore.create} builds, and the test-only L{OffsetClock}.
"""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.auth.identity import Credentials
from fasterstore.config import Settings
from fasterstore.service import FasterStore, OffsetClock, _serviceClock
from fasterstore.services.lifecycle import STATE_FILE, LifecycleService
from fasterstore.services.uploads import UploadExpiryService

CREDENTIALS = Credentials("AKIDEXAMPLE", "secret", "owner-id", "owner")


class OffsetClockTests(SynchronousTestCase):
    """The clock an integration test moves by writing a file."""

    def setUp(self) -> None:
        self.reactor = Clock()
        self.reactor.advance(1000)
        self.path = os.path.abspath(self.mktemp())
        self.clock = OffsetClock(self.reactor, self.path)

    def write(self, text: str) -> None:
        temporary = self.path + ".tmp"
        with open(temporary, "w") as f:
            f.write(text)
        os.replace(temporary, self.path)

    def test_noFileNoOffset(self) -> None:
        """Without the file the clock is the reactor's."""
        self.assertEqual(self.clock.seconds(), 1000)

    def test_offsetFollowsFile(self) -> None:
        """The file's seconds are added, and read again when the file is replaced."""
        self.write("86400")
        self.assertEqual(self.clock.seconds(), 1000 + 86400)
        self.reactor.advance(5)
        self.assertEqual(self.clock.seconds(), 1005 + 86400)
        self.write("2.5\n")
        self.assertEqual(self.clock.seconds(), 1007.5)
        os.remove(self.path)
        self.assertEqual(self.clock.seconds(), 1005)

    def test_garbageIsZero(self) -> None:
        """An unreadable offset counts as none."""
        for text in ("", "soon", "\xff", "nan", "inf"):
            self.write(text)
            self.assertEqual(self.clock.seconds(), 1000, repr(text))

    def test_delaysAreTheReactors(self) -> None:
        """callLater waits real (reactor) seconds, whatever the offset."""
        self.write("1e6")
        fired = []
        call = self.clock.callLater(10, fired.append, "x")
        self.assertEqual(self.clock.getDelayedCalls(), [call])
        self.reactor.advance(9)
        self.assertEqual(fired, [])
        self.reactor.advance(1)
        self.assertEqual(fired, ["x"])

    def test_onlyWhenConfigured(self) -> None:
        """The server uses it only under --test-clock-offset-file."""
        self.assertIsNone(_serviceClock(self.reactor, Settings()))
        clock = _serviceClock(self.reactor, Settings(testClockOffsetFile=FilePath(self.path)))
        assert isinstance(clock, OffsetClock)
        self.assertEqual(clock.path, self.path)


class BackgroundServicesTests(SynchronousTestCase):
    """What L{FasterStore.create} runs in the background, and on which clock."""

    def create(self, **options: object) -> FasterStore:
        store = FasterStore.create(MemoryReactorClock(), FilePath(self.mktemp()), CREDENTIALS, fsync=False, **options)  # type: ignore[arg-type]
        self.addCleanup(store.segments.close)
        self.addCleanup(lambda: store.lock.release() if store.lock is not None else None)
        return store

    def test_lifecycleInTheTree(self) -> None:
        """The lifecycle service is in the service tree, its state in the data directory, its interval as given."""
        store = self.create(lifecycleInterval=42.0)
        assert store.lifecycle is not None
        self.assertIn(store.lifecycle, list(store.service))
        self.assertIsInstance(store.lifecycle, LifecycleService)
        self.assertEqual(store.lifecycle.interval, 42.0)
        self.assertEqual(os.path.basename(store.lifecycle.statePath), STATE_FILE)

    def test_notInOtherWorkers(self) -> None:
        """Without background work (workers other than 0) there is none."""
        store = self.create(background=False)
        self.assertIsNone(store.lifecycle)
        self.assertFalse([s for s in store.service if isinstance(s, (LifecycleService, UploadExpiryService))])

    def test_serviceClock(self) -> None:
        """The background services run on the clock given; requests keep the reactor's."""
        clock = Clock()
        store = self.create(serviceClock=clock)
        assert store.lifecycle is not None
        self.assertIs(store.lifecycle.clock, clock)
        [expiry] = [s for s in store.service if isinstance(s, UploadExpiryService)]
        self.assertIs(expiry.clock, clock)
        self.assertIsNot(store.context.clock, clock)
