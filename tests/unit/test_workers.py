"""
Tests for L{fasterstore.workers}: the parent's supervision, on a fake
process reactor (the real processes: tests/integration/test_workers.py).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

from twisted.internet.defer import succeed
from twisted.internet.error import ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from fasterstore.metrics import MULTIPROCESS_DIR
from fasterstore.workers import (
    MAX_RESTART_DELAY,
    RESTART_DELAY,
    STABLE,
    WORKER_ENVIRONMENT,
    WorkerPool,
    WorkerRole,
    workerCommand,
    workerCount,
)


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: List[str] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)


class ProcessReactor(MemoryReactorClock):
    """A memory reactor that records spawnProcess calls."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: List[Dict[str, Any]] = []
        self.stopped = False

    def spawnProcess(self, protocol: Any, executable: str, args: Sequence[str], env: Optional[Dict[str, str]] = None,
                     path: Any = None, uid: Any = None, gid: Any = None, usePTY: Any = False,
                     childFDs: Optional[Dict[int, Any]] = None) -> FakeProcess:
        process = FakeProcess(1000 + len(self.spawned))
        protocol.makeConnection(process)
        self.spawned.append({"protocol": protocol, "args": list(args), "env": env, "childFDs": childFDs,
                             "process": process})
        return process

    def stop(self) -> None:
        self.stopped = True


class WorkerPoolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = ProcessReactor()
        self.pool = WorkerPool(self.reactor, 2, ["python", "-c", "x", "fasterstore"], lambda: succeed([7, 8]),
                               shutdownTimeout=5, environ={"KEEP": "1"})
        self.pool.startService()
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        if self.pool.running:
            d = self.pool.stopService()
            for spawned in list(self.reactor.spawned):
                self.end(spawned, 0)
            self.successResultOf(d)

    def end(self, spawned: Dict[str, Any], status: Optional[int] = 1, signal: Optional[int] = None) -> None:
        protocol = spawned["protocol"]
        if protocol in [w for w in self.pool.workers.values()]:
            protocol.processEnded(Failure(ProcessTerminated(status, signal)))

    def test_spawnsEveryWorker(self) -> None:
        """N workers, each with its role, the sockets at fds 3 and up, the metrics directory and the rest of the environment."""
        self.assertEqual(len(self.reactor.spawned), 2)
        for index, spawned in enumerate(self.reactor.spawned):
            self.assertEqual(spawned["args"], ["python", "-c", "x", "fasterstore"])
            self.assertEqual(WorkerRole.fromEnvironment(spawned["env"]), WorkerRole(index, (3, 4), os.getpid()))
            self.assertEqual({k: v for k, v in spawned["childFDs"].items() if k > 2}, {3: 7, 4: 8})
            self.assertTrue(os.path.isdir(spawned["env"][MULTIPROCESS_DIR]))
            self.assertEqual(spawned["env"]["KEEP"], "1")

    def test_relay(self) -> None:
        """A worker's log lines come out in ours, marked, without their own timestamp; a partial line waits."""
        events: List[Dict[str, Any]] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        protocol = self.reactor.spawned[1]["protocol"]
        protocol.childDataReceived(1, b"2026-12-02T16:28:01+0000 [fasterstore#info] hello\npart")
        protocol.childDataReceived(1, b"ial\n")
        lines = [e["line"] for e in events if e.get("log_namespace") == "fasterstore.workers" and "line" in e]
        self.assertEqual(lines, ["[fasterstore#info] hello", "partial"])
        self.assertEqual({e["index"] for e in events if "line" in e}, {1})

    def test_restart(self) -> None:
        """A worker that dies is started again after a delay; one dying at once waits longer each time."""
        first = self.reactor.spawned[0]
        self.reactor.advance(STABLE + 1)
        self.end(first)
        self.reactor.advance(RESTART_DELAY - 0.01)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.reactor.advance(0.02)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.assertEqual(WorkerRole.fromEnvironment(self.reactor.spawned[2]["env"]).index, 0)  # type: ignore[union-attr]
        delays = []
        for _ in range(8):
            before = self.reactor.seconds()
            self.end(self.reactor.spawned[-1])
            count = len(self.reactor.spawned)
            while len(self.reactor.spawned) == count:
                self.reactor.advance(0.25)
            delays.append(self.reactor.seconds() - before)
        self.assertEqual(delays, sorted(delays))
        self.assertLessEqual(max(delays), MAX_RESTART_DELAY + 0.25)
        self.assertEqual(self.pool.restarts, 9)

    def test_hup(self) -> None:
        """signalAll reaches every live worker."""
        self.pool.signalAll("HUP")
        self.assertEqual([s["process"].signals for s in self.reactor.spawned], [["HUP"], ["HUP"]])

    def test_stop(self) -> None:
        """Stopping sends TERM, waits for every worker, restarts none, and kills the slow after the timeout."""
        d = self.pool.stopService()
        self.assertEqual([s["process"].signals for s in self.reactor.spawned], [["TERM"], ["TERM"]])
        self.end(self.reactor.spawned[0], 0)
        self.assertNoResult(d)
        self.reactor.advance(5 + 15)
        self.assertEqual(self.reactor.spawned[1]["process"].signals, ["TERM", "KILL"])
        self.end(self.reactor.spawned[1], None, 9)
        self.successResultOf(d)
        self.reactor.advance(100)
        self.assertEqual(len(self.reactor.spawned), 2)

    def test_listenFails(self) -> None:
        """If the sockets cannot be opened, nothing is spawned and the reactor stops."""
        from twisted.internet.defer import fail

        reactor = ProcessReactor()
        pool = WorkerPool(reactor, 2, ["x"], lambda: fail(OSError("address in use")), shutdownTimeout=1)
        pool.startService()
        self.assertEqual(reactor.spawned, [])
        self.assertTrue(reactor.stopped)
        self.flushLoggedErrors(OSError)


class HelpersTests(SynchronousTestCase):
    def test_role(self) -> None:
        """The role travels in one environment variable."""
        role = WorkerRole(3, (3, 4, 5), 4242)
        self.assertEqual(WorkerRole.fromEnvironment({WORKER_ENVIRONMENT: role.encode()}), role)
        self.assertIsNone(WorkerRole.fromEnvironment({}))

    def test_orphanExits(self) -> None:
        """A worker whose parent died while it was starting exits; one whose parent lives goes on."""
        from fasterstore.workers import dieWithParent

        exits: List[int] = []
        dieWithParent(4242, getppid=lambda: 4242, exit=exits.append)
        self.assertEqual(exits, [])
        dieWithParent(4242, getppid=lambda: 1, exit=exits.append)
        self.assertEqual(exits, [1])

    def test_count(self) -> None:
        """0 workers means one per CPU."""
        self.assertEqual(workerCount(3), 3)
        self.assertEqual(workerCount(0), os.cpu_count() or 1)

    def test_command(self) -> None:
        """Workers run twistd in the foreground, without a pid file, with the plugin's arguments."""
        command = workerCommand(["--listen", "tcp:1"])
        self.assertEqual(command[3:], ["-n", "--pidfile=", "fasterstore", "--listen", "tcp:1"])


class AdoptedPortsTests(SynchronousTestCase):
    def test_adoptsOnceReady(self) -> None:
        """A worker adopts its sockets (with their family) only once its store is open, and stops them on stop."""
        import socket

        from twisted.internet.defer import Deferred

        from fasterstore.workers import AdoptedPorts

        reactor = MemoryReactorClock()
        listener = socket.socket(socket.AF_INET6)
        self.addCleanup(listener.close)
        listener.bind(("::1", 0))
        listener.listen()
        ready: Deferred[None] = Deferred()
        service = AdoptedPorts(reactor, ["tcp6:0"], [os.dup(listener.fileno())], object(), lambda: ready)
        service.startService()
        self.assertEqual(reactor.adoptedPorts, [])
        ready.callback(None)
        self.assertEqual([(family, factory) for _, family, factory in reactor.adoptedPorts][0][0], socket.AF_INET6)
        service.stopService()
