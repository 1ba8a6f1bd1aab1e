"""
C{--workers N}: one node served by N processes.

Twisted's pattern: the parent opens the listening sockets (every
C{--listen} endpoint) and never accepts on them; it starts N workers, each a
C{twistd fasterstore} of its own with the same options, handing them the
sockets as inherited descriptors, which each adopts
(C{IReactorSocket.adoptStreamPort}); the kernel gives each new connection
to one of them.  The parent holds the data directory's lock for them all.

Every worker serves S3 on the one data directory: reads and writes go
through the SQLite store, so a GET or LIST on any worker sees what any other
acknowledged; each appends to an active segment of its own.  Background
services (compaction, upload expiry) run in worker 0 only.  Metrics are
recorded in a shared directory, so any worker's C{/_fasterstore/metrics}
shows the node's.

The parent restarts a worker that dies (logged, with a growing delay if it
keeps dying at start), forwards SIGHUP (credentials reload) to every worker
and, on SIGTERM, stops them all and waits for them to drain.  A worker dies
with the parent (C{PR_SET_PDEATHSIG}), so a C{kill -9} of the parent leaves
no worker behind.
Tests: tests/unit/test_workers.py, tests/integration/test_workers.py.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, gatherResults, maybeDeferred
from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from fasterstore.metrics import MULTIPROCESS_DIR

log = Logger()

#: Set in a worker's environment: C{INDEX:FD,FD,...}, the descriptors of
#: the listening sockets in C{--listen} order.
WORKER_ENVIRONMENT = "_FASTERSTORE_WORKER"

#: The first descriptor number the sockets get in a worker.
FIRST_FD = 3

#: Seconds before restarting a worker that died; doubled (up to the
#: maximum) while workers die within L{STABLE} seconds of starting.
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
STABLE = 10.0

_PR_SET_PDEATHSIG = 1

#: The timestamp twistd starts a log line with.
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* ")


def workerCount(configured: int) -> int:
    """C{--workers}: 0 is one per CPU."""
    return configured if configured > 0 else (os.cpu_count() or 1)


@attrs.frozen
class WorkerRole:
    """
    What the parent told a worker: its index, its sockets' descriptors,
    and the parent's pid.
    """

    index: int
    fds: Tuple[int, ...]
    parent: int = 0

    @classmethod
    def fromEnvironment(cls, environ: Optional[Dict[str, str]] = None) -> Optional["WorkerRole"]:
        value = (os.environ if environ is None else environ).get(WORKER_ENVIRONMENT)
        if not value:
            return None
        index, fds, parent = (value.split(":") + ["0"])[:3]
        return cls(int(index), tuple(int(fd) for fd in fds.split(",") if fd), int(parent or 0))

    def encode(self) -> str:
        return f"{self.index}:{','.join(map(str, self.fds))}:{self.parent}"


def dieWithParent(parent: int, getppid: Callable[[], int] = os.getppid, exit: Callable[[int], Any] = os._exit) -> None:
    """
    Ask Linux to SIGKILL this process when its parent dies (no orphans);
    if the parent is already gone (it died while this worker was starting,
    before the request could be made), exit now.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        log.warn("Cannot ask to die with the parent: an orphaned worker must be stopped by hand")
    if parent and getppid() != parent:
        log.warn("The parent (pid {parent}) is gone: this worker exits", parent=parent)
        exit(1)


class _Unused(Protocol):
    """The parent never accepts: its listening ports stop reading at once."""


class AdoptedPorts(Service):
    """
    A worker's listeners: the inherited sockets adopted with the site (TLS
    wrapped where the endpoint is C{ssl:}).
    """

    def __init__(
        self, reactor: Any, descriptions: Sequence[str], fds: Sequence[int], factory: Any,
        ready: Callable[[], "Deferred[None]"],
    ) -> None:
        if len(descriptions) != len(fds):
            raise ValueError("one inherited socket per --listen endpoint")
        self._reactor = reactor
        self._pairs = list(zip(descriptions, fds))
        self._factory = factory
        self._ready = ready
        self._ports: List[IListeningPort] = []

    def startService(self) -> None:
        super().startService()
        self._ready().addCallback(lambda _: self._adopt())

    def _adopt(self) -> None:
        if not self.running:
            return
        for description, fd in self._pairs:
            factory: Any = self._factory
            endpoint = serverFromString(self._reactor, description)
            if isinstance(endpoint, SSL4ServerEndpoint):
                factory = TLSMemoryBIOFactory(endpoint._sslContextFactory, False, factory)
            probe = socket.socket(fileno=os.dup(fd))
            family = probe.family
            probe.close()
            self._ports.append(self._reactor.adoptStreamPort(fd, family, factory))
            os.close(fd)  # adopted: the port holds its own duplicate

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        ports, self._ports = self._ports, []
        return gatherResults([maybeDeferred(port.stopListening) for port in ports])


class _WorkerProtocol(ProcessProtocol):
    """One worker: its output relayed to the parent's log, its end reported."""

    def __init__(self, pool: "WorkerPool", index: int) -> None:
        self.pool = pool
        self.index = index
        self.ended: "Deferred[None]" = Deferred()
        self._buffers: Dict[int, bytes] = {1: b"", 2: b""}

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        buffered = self._buffers.get(childFD, b"") + data
        *lines, self._buffers[childFD] = buffered.split(b"\n")
        for line in lines:
            if line:
                self.pool.relay(self.index, line.decode("utf-8", "replace"))

    def processEnded(self, reason: Failure) -> None:
        for fd, rest in self._buffers.items():
            if rest:
                self.pool.relay(self.index, rest.decode("utf-8", "replace"))
        self.pool.ended(self, reason)
        self.ended.callback(None)


class WorkerPool(Service):
    """
    The parent of C{--workers N}: opens the sockets, runs and supervises the
    workers (see the module docstring).

    @ivar command: the worker's command line, without the role (it goes in
        the environment).
    @ivar listen: a function that opens every C{--listen} endpoint and
        returns the listening sockets' descriptors, in order.
    """

    def __init__(
        self,
        reactor: Any,
        count: int,
        command: Sequence[str],
        listen: Callable[[], "Deferred[List[int]]"],
        shutdownTimeout: float,
        environ: Optional[Dict[str, str]] = None,
    ) -> None:
        if count < 1:
            raise ValueError("a pool needs at least one worker")
        self.reactor = reactor
        self.count = count
        self.command = list(command)
        self.listen = listen
        self.shutdownTimeout = shutdownTimeout
        self.environ = dict(os.environ if environ is None else environ)
        self.workers: Dict[int, _WorkerProtocol] = {}
        self.transports: Dict[int, Any] = {}
        self.pids: Dict[int, int] = {}
        self.started: Dict[int, float] = {}
        self.delays: Dict[int, float] = {}
        self.restarts = 0
        self._fds: List[int] = []
        self._metricsDirectory: Optional[str] = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self._metricsDirectory = tempfile.mkdtemp(prefix="fasterstore-metrics-")
        d = self.listen()

        def listening(fds: List[int]) -> None:
            self._fds = fds
            for index in range(self.count):
                self.spawn(index)
            log.info("Serving with {n} worker processes", n=self.count)

        def failed(failure: Failure) -> None:
            log.failure("Could not open the listening sockets; stopping", failure)
            self.reactor.stop()

        d.addCallbacks(listening, failed)

    def spawn(self, index: int) -> None:
        """Start worker C{index}."""
        if self._stopping or not self.running:
            return
        role = WorkerRole(index, tuple(FIRST_FD + i for i in range(len(self._fds))), os.getpid())
        env = dict(self.environ)
        env[WORKER_ENVIRONMENT] = role.encode()
        assert self._metricsDirectory is not None
        env[MULTIPROCESS_DIR] = self._metricsDirectory
        childFDs: Dict[int, Any] = {0: "w", 1: "r", 2: "r"}
        for target, fd in zip(role.fds, self._fds):
            childFDs[target] = fd
        protocol = _WorkerProtocol(self, index)
        self.workers[index] = protocol
        self.started[index] = self.reactor.seconds()
        self.transports[index] = self.reactor.spawnProcess(
            protocol, self.command[0], self.command, env=env, childFDs=childFDs
        )
        self.pids[index] = self.transports[index].pid
        log.info("Started worker {index} (pid {pid})", index=index, pid=self.pids[index])

    def relay(self, index: int, line: str) -> None:
        """A line a worker wrote (its log): into ours, marked, without its own timestamp."""
        log.info("[worker {index}] {line}", index=index, line=_TIMESTAMP.sub("", line, count=1))

    def ended(self, protocol: _WorkerProtocol, reason: Failure) -> None:
        """A worker exited: restart it, unless we are stopping."""
        index = protocol.index
        if self.workers.get(index) is not protocol:
            return
        self.transports.pop(index, None)
        del self.workers[index]
        pid = self.pids.pop(index, None)
        if self._metricsDirectory is not None and pid is not None:
            _markDead(pid, self._metricsDirectory)
        if self._stopping or not self.running:
            return
        lived = self.reactor.seconds() - self.started.get(index, 0.0)
        delay = RESTART_DELAY if lived >= STABLE else min(self.delays.get(index, RESTART_DELAY / 2) * 2, MAX_RESTART_DELAY)
        self.delays[index] = delay
        self.restarts += 1
        log.error(
            "Worker {index} (pid {pid}) exited after {lived:.1f} s: {reason}; restarting it in {delay} s",
            index=index, pid=pid, lived=lived, reason=reason.getErrorMessage(), delay=delay,
        )
        self.reactor.callLater(delay, self.spawn, index)

    def signalAll(self, name: str) -> None:
        """Send every worker a signal (C{"HUP"}: reload the credentials)."""
        for transport in list(self.transports.values()):
            try:
                transport.signalProcess(name)
            except Exception:  # already gone: its end is on the way
                pass

    def stopService(self) -> "Deferred[Any]":
        super().stopService()
        self._stopping = True
        waiting = [protocol.ended for protocol in self.workers.values()]
        self.signalAll("TERM")
        killer = self.reactor.callLater(self.shutdownTimeout + 15, self.signalAll, "KILL")
        d = DeferredList(waiting)

        def done(_: Any) -> None:
            if killer.active():
                killer.cancel()
            for fd in self._fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds = []
            if self._metricsDirectory is not None:
                shutil.rmtree(self._metricsDirectory, ignore_errors=True)
                self._metricsDirectory = None

        return d.addCallback(done)


def _markDead(pid: int, directory: str) -> None:
    """Drop a dead worker's live gauges from the node's metrics."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)
    except Exception:
        log.failure("Could not drop the metrics of worker pid {pid}", pid=pid)


def listenAll(reactor: Any, descriptions: Sequence[str]) -> "Deferred[List[int]]":
    """
    Open every endpoint, stop accepting on it, and return duplicates of the
    listening sockets' descriptors (for the workers to inherit).
    """
    factory = Factory.forProtocol(_Unused)
    factory.noisy = False  # it never starts a protocol: no "Starting factory" lines

    async def openAll() -> List[int]:
        fds = []
        for description in descriptions:
            port = await serverFromString(reactor, description).listen(factory)
            fds.append(os.dup(port.fileno()))
            port.stopReading()
        return fds

    return Deferred.fromCoroutine(openAll())


def workerCommand(pluginArguments: Sequence[str]) -> List[str]:
    """A worker's command line: this interpreter, twistd in the foreground, the same plugin options."""
    return [sys.executable, "-c", _TWISTD, "-n", "--pidfile=", "fasterstore", *pluginArguments]


#: twistd's own entry point, what the C{twistd} script runs.
_TWISTD = "from twisted.scripts.twistd import run; run()"
