"""
Tests for L{fasterstore.storage.reader}: streaming ranges to a consumer.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, cast

from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, Logger
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from fasterstore.storage import segments
from fasterstore.storage.blob import WrittenBlob
from fasterstore.storage.reader import PIECE_SIZE, WRITE_SIZE, RangeProducer
from fasterstore.storage.records import BLOCK_SIZE, HEADER_SIZE
from fasterstore.storage.segments import CorruptionError, SegmentStore
from fasterstore.threads import ImmediateRunner
from tests.unit.test_segments import ManualRunner, flipByte, payloadOf

MiB = 1 << 20
IGNORE = cast(ILogObserver, lambda event: None)


class FakeConsumer(StringTransport):
    """
    A consumer that records each write and can push back: it pauses its
    producer once C{pauseAfter} bytes are buffered, as a full TCP send
    buffer would.
    """

    def __init__(self, pauseAfter: Optional[int] = None) -> None:
        super().__init__()
        self.pauseAfter = pauseAfter
        self.writes: List[int] = []
        self.registrations: List[bool] = []
        self.unregistrations = 0

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        super().registerProducer(producer, streaming)
        self.registrations.append(streaming)

    def unregisterProducer(self) -> None:
        super().unregisterProducer()
        self.unregistrations += 1

    def write(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        super().write(data)
        self.writes.append(len(data))
        if self.pauseAfter is not None and len(self.value()) >= self.pauseAfter:
            self.registered.pauseProducing()

    @property
    def registered(self) -> Any:
        """The registered producer; there must be one."""
        assert self.producer is not None
        return self.producer

    def drain(self, pauseAfter: Optional[int]) -> None:
        """Pretend the client read everything; resume the producer."""
        self.pauseAfter = None if pauseAfter is None else len(self.value()) + pauseAfter
        self.registered.resumeProducing()


class ReaderTestCase(SynchronousTestCase):
    """A store holding one multi-record blob."""

    def setUp(self) -> None:
        # The producer's logic under a controlled runner: every read in the pool.
        self.patch(segments, "_RWF_NOWAIT", None)
        self.runner: Any = ImmediateRunner()
        self.makeStore()

    def makeStore(self, runner: Any = None) -> None:
        if runner is not None:
            self.runner = runner
        self.store = SegmentStore(FilePath(self.mktemp()), self.runner)
        self.addCleanup(self.store.close)
        self.data = payloadOf(2 * MiB + 300_000, 5)
        writer = self.store.openWriter()
        writer.write(self.data)
        d = writer.finish()
        if isinstance(self.runner, ManualRunner):
            self.runner.runAll()
        self.blob: WrittenBlob = self.successResultOf(d)

    def producer(self, consumer: FakeConsumer, begin: int = 0, end: Optional[int] = None,
                 **kwargs: Any) -> RangeProducer:
        end = self.blob.size if end is None else end
        return RangeProducer(self.store, self.blob.extents, begin, end, consumer, **kwargs)


class StreamTests(ReaderTestCase):
    """Whole and ranged streams."""

    def test_interface(self) -> None:
        """RangeProducer provides IPushProducer."""
        verifyObject(IPushProducer, self.producer(FakeConsumer()))

    def test_whole(self) -> None:
        """
        The whole blob arrives, in writes of at most 64 KiB, from a streaming
        producer that unregisters at the end.
        """
        consumer = FakeConsumer()
        self.assertIsNone(self.successResultOf(self.producer(consumer).start()))
        self.assertEqual(consumer.value(), self.data)
        self.assertEqual(max(consumer.writes), WRITE_SIZE)
        self.assertEqual(consumer.registrations, [True])
        self.assertEqual(consumer.unregistrations, 1)
        self.assertIsNone(consumer.producer)

    def test_ranges(self) -> None:
        """Ranges inside and across records arrive exactly."""
        ranges = [(0, 1), (MiB - 5, MiB + 5), (100, 2 * MiB + 1), (2 * MiB, 2 * MiB + 300_000)]
        for begin, end in ranges:
            consumer = FakeConsumer()
            self.successResultOf(self.producer(consumer, begin, end).start())
            self.assertEqual(consumer.value(), self.data[begin:end])
            self.assertEqual(consumer.unregistrations, 1)

    def test_emptyRange(self) -> None:
        """An empty range writes nothing and completes."""
        consumer = FakeConsumer()
        self.successResultOf(self.producer(consumer, 7, 7).start())
        self.assertEqual(consumer.value(), b"")
        self.assertEqual(consumer.unregistrations, 1)

    def test_badRange(self) -> None:
        """A range outside the blob is refused up front."""
        self.assertRaises(ValueError, self.producer, FakeConsumer(), 0, self.blob.size + 1)
        self.assertRaises(ValueError, self.producer, FakeConsumer(), 5, 4)

    def test_pieceSize(self) -> None:
        """Reads are of at most pieceSize bytes."""
        sizes: List[int] = []
        real = SegmentStore.readRange

        def readRange(store: SegmentStore, extents: Any, start: int, end: int) -> Any:
            sizes.append(end - start)
            return real(store, extents, start, end)

        self.patch(SegmentStore, "readRange", readRange)
        consumer = FakeConsumer()
        self.successResultOf(self.producer(consumer).start())
        self.assertEqual(max(sizes), PIECE_SIZE)
        self.assertEqual(sum(sizes), self.blob.size)

    def test_startTwice(self) -> None:
        """start() twice is a programming error."""
        producer = self.producer(FakeConsumer())
        producer.start()
        self.assertRaises(RuntimeError, producer.start)


class BackpressureTests(ReaderTestCase):
    """Pause, resume, stop."""

    def setUp(self) -> None:
        super().setUp()
        self.makeStore(ManualRunner())

    def test_readAhead(self) -> None:
        """While one piece is written, the next is read; never more."""
        consumer = FakeConsumer(pauseAfter=1)
        d = self.producer(consumer).start()
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.runOne()
        # First piece arrived: one slice written (then paused), next piece reading.
        self.assertEqual(consumer.writes, [WRITE_SIZE])
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.runOne()
        self.assertEqual(self.runner.jobs, [], "no reads while paused")
        consumer.drain(pauseAfter=None)
        self.assertEqual(len(consumer.value()), 2 * PIECE_SIZE)
        self.runner.runAll()
        self.assertEqual(consumer.value(), self.data)
        self.successResultOf(d)

    def test_pauseResume(self) -> None:
        """A paused producer writes and reads nothing until resumed."""
        consumer = FakeConsumer(pauseAfter=100_000)
        d = self.producer(consumer).start()
        self.runner.runAll()
        self.assertEqual(len(consumer.value()), 2 * WRITE_SIZE)
        for _ in range(3):
            self.runner.runAll()
            self.assertEqual(len(consumer.value()), 2 * WRITE_SIZE)
        while not d.called:
            consumer.drain(pauseAfter=300_000)
            self.runner.runAll()
        self.successResultOf(d)
        self.assertEqual(consumer.value(), self.data)
        self.assertEqual(consumer.unregistrations, 1)

    def test_stop(self) -> None:
        """
        stopProducing (client gone) fires the Deferred without error, stops
        writing, drops a read in flight, and does not unregister.
        """
        consumer = FakeConsumer(pauseAfter=1)
        producer = self.producer(consumer)
        d = producer.start()
        self.runner.runOne()
        consumer.registered.stopProducing()
        self.assertIsNone(self.successResultOf(d))
        written = len(consumer.value())
        self.runner.runAll()
        producer.resumeProducing()
        self.assertEqual(len(consumer.value()), written)
        self.assertEqual(consumer.unregistrations, 0)

    def test_stopDuringWrite(self) -> None:
        """A consumer calling stopProducing from write() ends the stream."""
        consumer = FakeConsumer()
        producer = self.producer(consumer)
        realWrite = consumer.write

        def write(data: bytes) -> None:
            realWrite(data)
            producer.stopProducing()

        consumer.write = write  # type: ignore[method-assign]
        d = producer.start()
        self.runner.runAll()
        self.successResultOf(d)
        self.assertEqual(consumer.writes, [WRITE_SIZE])

    def test_failureAfterStop(self) -> None:
        """A read failing after the client left is not an unhandled error."""
        consumer = FakeConsumer()
        d = self.producer(consumer).start()
        consumer.registered.stopProducing()
        flipByte(self.store.segmentPath(1), HEADER_SIZE + 5)
        self.patch(segments, "log", Logger(observer=IGNORE))
        self.runner.runAll()
        self.successResultOf(d)


class CorruptionTests(ReaderTestCase):
    """A corrupt byte is never sent; the stream fails instead."""

    def setUp(self) -> None:
        super().setUp()
        self.patch(segments, "log", Logger(observer=IGNORE))
        second = self.blob.extents[1]
        self.assertEqual(second.segment, 1)
        # Corrupt block 2 of the second record: blob bytes [MiB + 2 blocks, MiB + 3 blocks).
        flipByte(self.store.segmentPath(1), second.offset + HEADER_SIZE + 2 * BLOCK_SIZE + 3)
        self.bad = MiB + 2 * BLOCK_SIZE

    def test_whole(self) -> None:
        """
        Streaming the whole blob fails with CorruptionError, after only good
        bytes, and unregisters.
        """
        consumer = FakeConsumer()
        failure = self.failureResultOf(self.producer(consumer).start(), CorruptionError)
        self.assertEqual(failure.value.offset, self.blob.extents[1].offset)
        sent = consumer.value()
        self.assertLessEqual(len(sent), self.bad)
        self.assertEqual(sent, self.data[: len(sent)])
        self.assertEqual(consumer.unregistrations, 1)

    def test_ranged(self) -> None:
        """A range touching the bad block fails; one avoiding it streams."""
        consumer = FakeConsumer()
        d = self.producer(consumer, self.bad + 10, self.bad + 20).start()
        self.failureResultOf(d, CorruptionError)
        self.assertEqual(consumer.value(), b"")
        consumer = FakeConsumer()
        self.successResultOf(self.producer(consumer, 0, self.bad).start())
        self.assertEqual(consumer.value(), self.data[: self.bad])

    def test_prefetchCatchesIt(self) -> None:
        """
        prefetch() reports corruption in the first piece before anything is
        registered or written, so the client can get a clean 500.
        """
        consumer = FakeConsumer()
        producer = self.producer(consumer, self.bad - 1, self.bad + 1)
        self.failureResultOf(producer.prefetch(), CorruptionError)
        self.assertEqual(consumer.registrations, [])
        self.failureResultOf(producer.start(), CorruptionError)
        self.assertEqual(consumer.registrations, [])
        self.assertEqual(consumer.value(), b"")


class PrefetchTests(ReaderTestCase):
    """Reading the first piece before the response headers."""

    def test_prefetchThenStart(self) -> None:
        """The prefetched piece is written first and not read twice."""
        self.makeStore(ManualRunner())
        consumer = FakeConsumer()
        producer = self.producer(consumer, 10, 10 + PIECE_SIZE + 5)
        prefetched = producer.prefetch()
        self.assertNoResult(prefetched)
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.runOne()
        self.successResultOf(prefetched)
        self.assertEqual(consumer.registrations, [])
        self.assertEqual(consumer.value(), b"")
        d = producer.start()
        self.assertEqual(len(consumer.value()), PIECE_SIZE)
        self.runner.runAll()
        self.successResultOf(d)
        self.assertEqual(consumer.value(), self.data[10 : 10 + PIECE_SIZE + 5])

    def test_startWhilePrefetching(self) -> None:
        """start() during the prefetch waits for it."""
        self.makeStore(ManualRunner())
        consumer = FakeConsumer()
        producer = self.producer(consumer)
        prefetched = producer.prefetch()
        d = producer.start()
        self.assertEqual(consumer.value(), b"")
        self.runner.runAll()
        self.successResultOf(prefetched)
        self.successResultOf(d)
        self.assertEqual(consumer.value(), self.data)

    def test_smallRangeOneWrite(self) -> None:
        """
        A range no longer than one write, whole in memory after prefetch,
        goes out in one write with no producer registered: there is nothing
        to pace.
        """
        consumer = FakeConsumer()
        producer = self.producer(consumer, 5, 5 + 1000)
        self.successResultOf(producer.prefetch())
        self.successResultOf(producer.start())
        self.assertEqual(consumer.writes, [1000])
        self.assertEqual(consumer.value(), self.data[5:1005])
        self.assertEqual((consumer.registrations, consumer.unregistrations), ([], 0))

    def test_prefetchEmpty(self) -> None:
        """Prefetching an empty range succeeds at once."""
        consumer = FakeConsumer()
        producer = self.producer(consumer, 3, 3)
        self.successResultOf(producer.prefetch())
        self.successResultOf(producer.start())
        self.assertEqual(consumer.unregistrations, 1)

    def test_prefetchOnce(self) -> None:
        """prefetch() after start(), or twice, is a programming error."""
        producer = self.producer(FakeConsumer())
        producer.prefetch()
        self.assertRaises(RuntimeError, producer.prefetch)
        other = self.producer(FakeConsumer())
        other.start()
        self.assertRaises(RuntimeError, other.prefetch)


class IdentityTests(ReaderTestCase):
    """Whole reads check each blob's content address, not only block checksums."""

    def test_rightIdentityStreams(self) -> None:
        """The right address: the whole blob arrives as usual."""
        consumer = FakeConsumer()
        identities = ((self.blob.contentAddress, self.blob.size),)
        self.successResultOf(self.producer(consumer, identities=identities).start())
        self.assertEqual(consumer.value(), self.data)

    def test_wrongIdentityNeverCompletes(self) -> None:
        """
        Bytes whose checksums pass but whose address is another's fail the
        read before the last piece goes out: never a complete wrong body.
        """
        consumer = FakeConsumer()
        identities = (("0" * 64, self.blob.size),)
        failure = self.failureResultOf(self.producer(consumer, identities=identities).start(), CorruptionError)
        self.assertIn("are not blob", failure.value.reason)
        self.assertLess(len(consumer.value()), self.blob.size)
        self.assertEqual(consumer.value(), self.data[: len(consumer.value())])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_smallObjectRefusedAtPrefetch(self) -> None:
        """A one-piece object with the wrong identity fails at prefetch: a clean error, nothing sent."""
        writer = self.store.openWriter()
        writer.write(b"small")
        small = self.successResultOf(writer.finish())
        consumer = FakeConsumer()
        producer = RangeProducer(self.store, small.extents, 0, 5, consumer, identities=(("f" * 64, 5),))
        self.failureResultOf(producer.prefetch(), CorruptionError)
        self.assertEqual(consumer.value(), b"")

    def test_eachPartChecked(self) -> None:
        """Several blobs end to end (a multipart object): each is checked on its own."""
        writer = self.store.openWriter()
        writer.write(b"second part")
        second = self.successResultOf(writer.finish())
        extents = self.blob.extents + second.extents
        size = self.blob.size + second.size
        good = ((self.blob.contentAddress, self.blob.size), (second.contentAddress, second.size))
        consumer = FakeConsumer()
        self.successResultOf(RangeProducer(self.store, extents, 0, size, consumer, identities=good).start())
        self.assertEqual(consumer.value(), self.data + b"second part")
        bad = (good[0], ("0" * 64, second.size))
        consumer = FakeConsumer()
        self.failureResultOf(RangeProducer(self.store, extents, 0, size, consumer, identities=bad).start(), CorruptionError)

    def test_rangedReadsSkipIdentity(self) -> None:
        """A range cannot be hashed whole: it is served on its block checksums."""
        consumer = FakeConsumer()
        self.successResultOf(self.producer(consumer, 10, 20, identities=(("0" * 64, self.blob.size),)).start())
        self.assertEqual(consumer.value(), self.data[10:20])


class PinTests(ReaderTestCase):
    """A response keeps its blob's segments from compaction's removal until it is over."""

    def setUp(self) -> None:
        super().setUp()
        self.blob.release()  # the writer's pins: the blob is "committed"
        self.assertFalse(self.store.pinned(1))

    def test_pinnedUntilDone(self) -> None:
        """Pinned from creation to the last byte."""
        consumer = FakeConsumer(pauseAfter=1)
        producer = self.producer(consumer)
        self.assertTrue(self.store.pinned(1))
        d = producer.start()
        self.assertTrue(self.store.pinned(1))
        while not d.called:
            producer.resumeProducing()
        self.assertFalse(self.store.pinned(1))

    def test_releasedWhenStopped(self) -> None:
        """A client that goes away mid-body releases the pin."""
        producer = self.producer(FakeConsumer(pauseAfter=1))
        producer.start()
        producer.stopProducing()
        self.assertFalse(self.store.pinned(1))

    def test_releasedWhenPrefetchFails(self) -> None:
        """A prefetch that fails (the response will be an error) releases the pin."""
        flipByte(self.store.segmentPath(1), self.blob.extents[0].offset + HEADER_SIZE + 10)
        producer = self.producer(FakeConsumer())
        self.failureResultOf(producer.prefetch(), CorruptionError)
        self.assertFalse(self.store.pinned(1))
        self.flushLoggedErrors(CorruptionError)


class RelocationTests(ReaderTestCase):
    """
    A response of one worker whose segment another worker's compaction
    removed: it looks the blob up again and goes on, with the same bytes.
    """

    def test_readGoesOn(self) -> None:
        from twisted.internet.defer import succeed

        self.blob.release()
        # Compaction elsewhere: the same content, rewritten to a newer segment.
        self.patch(self.store, "targetSize", 1)
        writer = self.store.openWriter()
        writer.write(self.data)
        moved = self.successResultOf(writer.finish())
        moved.release()
        self.assertNotIn(1, {e.segment for e in moved.extents})
        # This worker's store, with no descriptor of segment 1 open yet.
        reader = SegmentStore(self.store.root, ImmediateRunner())
        self.addCleanup(reader.close)
        lookups: List[int] = []

        def relocated() -> Any:
            lookups.append(1)
            return succeed(moved.extents)

        consumer = FakeConsumer(pauseAfter=1)
        producer = RangeProducer(reader, self.blob.extents, 0, self.blob.size, consumer,
                                 identities=((self.blob.contentAddress, self.blob.size),), relocated=relocated)
        d = producer.start()
        self.assertTrue(consumer.value())
        # Segment 1 goes, and this process's descriptor of it with it.
        os.unlink(self.store.segmentPath(1).path)
        reader._fds.pop(1).close()
        while not d.called:
            producer.resumeProducing()
        self.successResultOf(d)
        self.assertEqual(consumer.value(), self.data)
        self.assertEqual(lookups, [1])
        self.flushLoggedErrors()

    def test_withoutRelocationItFails(self) -> None:
        """A read that cannot look again fails, as before."""
        self.blob.release()
        reader = SegmentStore(self.store.root, ImmediateRunner())
        self.addCleanup(reader.close)
        os.unlink(self.store.segmentPath(1).path)
        producer = RangeProducer(reader, self.blob.extents, 0, self.blob.size, FakeConsumer())
        self.failureResultOf(producer.prefetch(), segments.SegmentMissing)
