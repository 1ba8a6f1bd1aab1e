"""
Assembling a FasterStore server: engines, the S3 resource, services.

L{FasterStore} is the public way to build one, for C{twistd fasterstore}
(via L{makeStoreService}) and for an existing Twisted application that wants
to mount the S3 resource in its own Site and add the service to its own
Application (see docs/embedding.md).
Tests: tests/unit/test_service.py, tests/unit/test_embedding.py.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type, Union

import attrs
from twisted.application import strports
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.logger import ILogObserver, Logger
from twisted.python.filepath import FilePath
from twisted.python.threadpool import ThreadPool
from twisted.web.http import combinedLogFormatter
from twisted.web.iweb import IAccessLogFormatter
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer, provider

from fasterstore.config import (
    DEFAULT_COMPACTION_INTERVAL,
    DEFAULT_COMPACTION_RATE,
    DEFAULT_COMPACTION_THRESHOLD,
    DEFAULT_LIFECYCLE_INTERVAL,
    DEFAULT_RESERVE,
    Settings,
)
from fasterstore.accounts import AccountStore, SignalReloadService
from fasterstore.credentials import CredentialsError, loadOrCreateCredentials, storedCredentials
from fasterstore.files import DataDirectoryLock, openPrivateFile, preparePrivateDirectory
from fasterstore.metadata.migration import LegacyMigration
from fasterstore.metadata.sqlite import DATABASE_NAME, SQLiteMetadataStore
from fasterstore.metrics import Metrics
from fasterstore.s3.context import S3Context
from fasterstore.http.redaction import redactURI
from fasterstore.http.channel import ChannelGuards, ConnectionLimits, GuardedChannel, GuardedSite
from fasterstore.http.lean import LeanChannel
from fasterstore.http.request import StreamingRequest
from fasterstore.s3.resource import S3Resource
from fasterstore.auth.identity import Credentials
from fasterstore.services.compaction import HOLD_FILE, CompactionService, Compactor
from fasterstore.services.lifecycle import STATE_FILE, LifecycleService
from fasterstore.services.uploads import UploadExpiryService
from fasterstore.storage.segments import SegmentStore
from fasterstore.storage.space import SpaceGuard
from fasterstore.threads import PoolRunner
from fasterstore.workers import AdoptedPorts, WorkerPool, WorkerRole, dieWithParent, listenAll, workerCommand, workerCount

log = Logger()

#: Idle seconds before an HTTP connection is dropped (a stalled upload
#: releases its writer instead of holding it forever).
IDLE_TIMEOUT = 120

#: The HTTP/1.1 channel of each C{--http-parser} value
#: (L{fasterstore.config.HTTP_PARSERS}): twisted.web's own parser, or
#: httptools (see L{fasterstore.http.lean}); both carry the same guards.
CHANNELS: Dict[str, Type[ChannelGuards]] = {"twisted": GuardedChannel, "httptools": LeanChannel}


@provider(ILogObserver)
def _discard(event: Any) -> None:
    """A log observer that drops everything."""


class StoreService(Service):
    """
    Starts the disk thread pool and loads the metadata; on stop, refuses new
    requests, lets in-flight ones finish (up to a bound), then flushes,
    closes the engines.
    """

    def __init__(self, store: "FasterStore") -> None:
        self.store = store
        self._openWaiters: "list[Deferred[None]]" = []

    def startService(self) -> None:
        super().startService()
        store = self.store
        store.pool.start()
        d = store.metadata.open()
        d.addCallbacks(self._opened, self._loadFailed)

    def whenOpen(self) -> "Deferred[None]":
        """Fires once the metadata store is open (a worker listens from then on)."""
        if self.store.metadata.ready:
            return succeed(None)
        d: "Deferred[None]" = Deferred()
        self._openWaiters.append(d)
        return d

    def _opened(self, _: None) -> None:
        waiters, self._openWaiters = self._openWaiters, []
        for d in waiters:
            d.callback(None)

    def _loadFailed(self, failure: Any) -> None:
        log.failure("could not load the metadata; stopping", failure)
        self.store.reactor.stop()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        store = self.store
        store.context.draining = True
        idle = store.resource.whenIdle()
        timer = store.reactor.callLater(store.shutdownTimeout, idle.cancel)
        try:
            await idle
        except Exception:
            log.warn("{n} requests still running after the shutdown timeout", n=store.resource.inFlight)
        if timer.active():
            timer.cancel()
        if store.compaction is not None:
            await store.compaction.whenIdle()  # it stops at the record it is copying
        if store.lifecycle is not None:
            await store.lifecycle.whenStopped()  # the page it is on, then its cursor saved
        try:
            await store.metadata.close()
        finally:
            try:
                await store.segments.close()
            finally:
                store.pool.stop()
                if store.lock is not None:
                    store.lock.release()


class _RedactedForLog:
    """
    A request as the access log sees it: its URI and C{Referer} without
    signatures or session tokens (see L{redactURI}); everything else as is.
    """

    def __init__(self, request: Any) -> None:
        self._request = request
        self.uri = redactURI(request.uri or b"")

    def getHeader(self, name: bytes) -> Optional[bytes]:
        value: Optional[bytes] = self._request.getHeader(name)
        if value is not None and name.lower() == b"referer":
            value = redactURI(value)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


@provider(IAccessLogFormatter)
def redactedLogFormatter(timestamp: str, request: Any) -> str:
    """The combined log format, with a presigned URL's signature redacted."""
    line: str = combinedLogFormatter(timestamp, _RedactedForLog(request))
    return line


class _Site(GuardedSite):
    """
    A L{GuardedSite} whose access log is off unless asked for, and never
    shows a signature.
    """

    def __init__(
        self,
        resource: Resource,
        logPath: Optional[str],
        timeout: float,
        *,
        limits: Optional[ConnectionLimits] = None,
        reactor: Any = None,
        httpParser: str = "twisted",
    ) -> None:
        self._accessLog = logPath is not None
        super().__init__(
            resource,
            logPath=None if logPath in (None, "-") else logPath,
            timeout=timeout,
            logFormatter=redactedLogFormatter,
            reactor=reactor,
            limits=limits,
            protocol=CHANNELS[httpParser],
        )

    def log(self, request: Any) -> None:
        if self._accessLog:
            super().log(request)

    def _openLogFile(self, path: Union[str, bytes]) -> Any:
        """The access log names buckets and keys: created 0600, like every file we write."""
        return os.fdopen(openPrivateFile(os.fsdecode(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", 1, newline="\n")


@attrs.define
class FasterStore:
    """
    One FasterStore server's parts.

    @ivar resource: the S3 API as a twisted.web resource; mount it at a
        Site's root or anywhere below it.
    @ivar service: a MultiService running the engines and periodic work (and
        the listeners, when built by L{makeStoreService}); add it to your
        Application.
    @ivar requestFactory: give it to your Site so uploads stream instead of
        being buffered by twisted.web (see L{site}).
    @ivar limits: what one client connection may cost, for L{site}.
    @ivar httpParser: the HTTP/1.1 parser of L{site}'s channels, a key of
        L{CHANNELS}.
    @ivar lock: the data directory's lock, held until the service stops.
    """

    reactor: Any
    pool: ThreadPool
    segments: SegmentStore
    metadata: SQLiteMetadataStore
    context: S3Context
    resource: S3Resource
    service: MultiService
    shutdownTimeout: float
    requestFactory: Callable[..., StreamingRequest] = StreamingRequest
    limits: ConnectionLimits = attrs.field(factory=ConnectionLimits)
    httpParser: str = "twisted"
    lock: Optional[DataDirectoryLock] = None
    compaction: Optional[CompactionService] = None
    storeService: Optional[StoreService] = None
    lifecycle: Optional[LifecycleService] = None

    @classmethod
    def create(
        cls,
        reactor: Any,
        dataDir: FilePath[str],
        credentials: Optional[Credentials],
        *,
        region: str = "us-east-1",
        domains: tuple[str, ...] = (),
        fsync: bool = True,
        segmentSize: int = 256 * 1024 * 1024,
        snapshotInterval: float = 60.0,
        shutdownTimeout: float = 30.0,
        maxObjectSize: int = 5 * 1024**3,
        threads: int = 8,
        drive: Optional[FilePath[str]] = None,
        multipartTTL: float = 7 * 86400.0,
        lookup: Optional[Callable[[str], Optional[Credentials]]] = None,
        limits: Optional[ConnectionLimits] = None,
        reserve: int = DEFAULT_RESERVE,
        compactionThreshold: float = DEFAULT_COMPACTION_THRESHOLD,
        compactionRate: int = DEFAULT_COMPACTION_RATE,
        compactionInterval: float = DEFAULT_COMPACTION_INTERVAL,
        lockDirectory: bool = True,
        background: bool = True,
        lifecycleInterval: float = DEFAULT_LIFECYCLE_INTERVAL,
        serviceClock: Optional[IReactorTime] = None,
        httpParser: str = "twisted",
    ) -> "FasterStore":
        """
        Build a server on a data directory (metadata) and a drive (object
        data; the data directory itself by default): creates them and opens
        the active segment; the metadata store opens (and, the first time
        on a data directory of an older FasterStore, migrates it) when
        C{service} starts.  C{snapshotInterval} is ignored (the store takes
        no snapshots); it stays for callers that pass it.

        Authentication uses C{lookup} (access key -> credentials, e.g.
        L{fasterstore.accounts.AccountStore.lookup}) when given, otherwise
        the single pair C{credentials}; one of them is required.

        C{limits} bounds what each client connection of L{site} may cost
        (the L{ConnectionLimits} defaults when None).  C{httpParser} picks
        the HTTP/1.1 parser of L{site}'s connections: C{"twisted"}
        (twisted.web's L{HTTPChannel}) or C{"httptools"} (the leaner
        L{fasterstore.http.lean.LeanChannel}); the guards are the same.

        C{reserve}: free bytes of the drive object data may not use; an
        upload that would leave less is refused with 507 before its body is
        read, so that metadata commits, deletes and compaction keep working.

        Compaction (see L{fasterstore.services.compaction}) rewrites sealed
        segments at least C{compactionThreshold} dead, copying at most
        C{compactionRate} bytes a second (0: no compaction), a pass every
        C{compactionInterval} seconds.

        One server per data directory: C{lockDirectory} takes its lock
        (only a worker of L{fasterstore.workers}, whose parent holds it,
        passes False); C{background} runs compaction, upload expiry and
        the lifecycle rules (once per node: in worker 0 only).

        The lifecycle service (L{fasterstore.services.lifecycle}) applies
        every bucket's lifecycle rules, a pass every C{lifecycleInterval}
        seconds.  C{serviceClock} is the clock of the lifecycle and upload
        expiry services (the reactor by default; tests give an
        L{OffsetClock}); requests always use the reactor's, which is what
        signatures are checked against.
        """
        if httpParser not in CHANNELS:
            raise ValueError(f"httpParser must be one of {', '.join(sorted(CHANNELS))}, not {httpParser!r}")
        if lookup is None:
            if credentials is None:
                raise ValueError("FasterStore.create needs credentials or a lookup")
            single = credentials

            def lookup(accessKey: str) -> Optional[Credentials]:
                return single if accessKey == single.accessKey else None
        # A worker's parent has checked (and warned about) the directories.
        checks = log if lockDirectory else Logger(observer=_discard)
        preparePrivateDirectory(checks, dataDir.path)
        drive = drive if drive is not None else dataDir
        if drive != dataDir:
            preparePrivateDirectory(checks, drive.path)
        lock = DataDirectoryLock.acquire(dataDir.path) if lockDirectory else None
        metrics = Metrics()
        pool = ThreadPool(minthreads=1, maxthreads=threads, name="fasterstore-disk")
        runner = PoolRunner(reactor, pool)
        try:
            segments = SegmentStore(drive, runner, targetSize=segmentSize, metrics=metrics, fsync=fsync)
            space = SpaceGuard(segments.directory.path, reactor, reserve)
        except BaseException:
            if lock is not None:
                lock.release()  # a failed start must not keep the directory locked
            raise
        metaDirectory = os.path.join(dataDir.path, "meta")
        metadata = SQLiteMetadataStore(
            os.path.join(metaDirectory, DATABASE_NAME), runner=runner, syncData=segments.prepareSync,
            metrics=metrics, fsync=fsync, migrate=LegacyMigration.find(metaDirectory, fsync), lost=segments.lost,
        )
        context = S3Context(
            metadata=metadata,
            segments=segments,
            clock=reactor,
            lookup=lookup,
            metrics=metrics,
            region=region,
            domains=domains,
            maxObjectSize=maxObjectSize,
            space=space,
        )
        resource = S3Resource(context)
        service = MultiService()
        store = cls(
            reactor, pool, segments, metadata, context, resource, service, shutdownTimeout,
            limits=limits if limits is not None else ConnectionLimits(), httpParser=httpParser, lock=lock,
        )
        store.storeService = StoreService(store)
        store.storeService.setServiceParent(service)
        if background:
            clock = serviceClock if serviceClock is not None else reactor
            UploadExpiryService(metadata, clock, ttl=multipartTTL).setServiceParent(service)
            store.lifecycle = LifecycleService(
                metadata, clock, os.path.join(dataDir.path, STATE_FILE), runner, interval=lifecycleInterval,
                registry=metrics.registry, fsync=fsync,
            )
            store.lifecycle.setServiceParent(service)
        # Built even when it never runs (rate 0): it measures for the admin API.
        compactor = Compactor(
            metadata, segments, reactor, threshold=compactionThreshold, rate=max(compactionRate, 1),
            registry=metrics.registry, holdPath=os.path.join(dataDir.path, HOLD_FILE),
        )
        context.storageReport = compactor.report
        if compactionRate > 0 and background:
            store.compaction = CompactionService(compactor, interval=compactionInterval)
            store.compaction.setServiceParent(service)
        return store

    def site(self, root: Optional[Resource] = None, accessLog: Optional[str] = None) -> Site:
        """
        A Site serving C{root} (default: the S3 resource) with streaming
        uploads, under this store's C{limits} (a head deadline, a minimum
        upload rate, a bound on connections; see L{fasterstore.http.channel}),
        its timers on this store's reactor, its connections parsed by
        C{httpParser}.  C{accessLog}: a file for the combined access
        log (signatures redacted), C{"-"} for the twisted log, None (the
        default) for no access log.
        """
        site = _Site(
            root if root is not None else self.resource,
            logPath=accessLog,
            timeout=IDLE_TIMEOUT,
            limits=self.limits,
            reactor=self.reactor,
            httpParser=self.httpParser,
        )
        site.requestFactory = self.requestFactory  # type: ignore[assignment]
        return site


def makeStoreService(settings: Settings, pluginArguments: Sequence[str] = ()) -> IService:
    """
    The whole server for C{twistd fasterstore}: engines plus listeners; or,
    with C{--workers} above 1, the parent of the workers (see
    L{fasterstore.workers}), which run this again as workers.

    @param pluginArguments: the plugin's command line, for the workers'.
    """
    from twisted.internet import reactor

    role = WorkerRole.fromEnvironment()
    count = workerCount(settings.workers)
    if role is None and count > 1:
        return _makeSupervisor(reactor, settings, count, pluginArguments)
    if role is not None:
        dieWithParent(role.parent)
    accounts = _loadAccounts(settings)
    store = FasterStore.create(
        reactor,
        settings.dataDir,
        None,
        lookup=accounts.lookup,
        region=settings.region,
        domains=settings.domains,
        fsync=settings.fsync,
        segmentSize=settings.segmentSize,
        snapshotInterval=settings.snapshotInterval,
        shutdownTimeout=settings.shutdownTimeout,
        maxObjectSize=settings.maxObjectSize,
        threads=settings.threads,
        drive=settings.drives[0],
        multipartTTL=settings.multipartTTL,
        reserve=settings.reserve,
        compactionThreshold=settings.compactionThreshold,
        compactionRate=settings.compactionRate,
        compactionInterval=settings.compactionInterval,
        lifecycleInterval=settings.lifecycleInterval,
        serviceClock=_serviceClock(reactor, settings),
        limits=ConnectionLimits(
            headerTimeout=settings.headerTimeout,
            minUploadRate=settings.minUploadRate,
            uploadRateWindow=settings.uploadRateWindow,
            maxConnections=settings.maxConnections,
        ),
        lockDirectory=role is None,
        background=role is None or role.index == 0,
        httpParser=settings.httpParser,
    )
    # Always: a SIGHUP (systemctl reload) must never kill the server, even
    # when there is no credentials file to reload.
    SignalReloadService(IReactorFromThreads(reactor), accounts.reload, log=log).setServiceParent(store.service)
    site = store.site(accessLog=settings.accessLog)
    if role is not None:
        # A worker takes connections once it can serve them: the parent's
        # other workers are answering meanwhile.
        assert store.storeService is not None
        AdoptedPorts(reactor, settings.listen, role.fds, site, store.storeService.whenOpen).setServiceParent(store.service)
        return store.service
    for description in settings.listen:
        strports.service(description, site, reactor=reactor).setServiceParent(store.service)
    return store.service


@implementer(IReactorTime)
class OffsetClock:
    """
    For tests only (C{--test-clock-offset-file}): the reactor's time plus
    the number of seconds a file holds, so that an integration test can make
    days pass for the background services.  The file is read again whenever
    it changes (write it atomically: a new file renamed over it); a missing,
    empty or unreadable one counts as 0.  Delays are the reactor's own: only
    what "now" is moves.
    """

    def __init__(self, reactor: IReactorTime, path: str) -> None:
        self._reactor = reactor
        self.path = path
        self._seen: Optional[Tuple[int, int, int]] = None
        self._offset = 0.0

    def offset(self) -> float:
        """The seconds the file holds now."""
        try:
            info = os.stat(self.path)
        except OSError:
            self._seen, self._offset = None, 0.0
            return 0.0
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen != self._seen:
            self._seen = seen
            try:
                with open(self.path, "rb") as f:
                    offset = float(f.read().decode("ascii").strip() or 0)
                self._offset = offset if math.isfinite(offset) else 0.0
            except (OSError, ValueError, UnicodeDecodeError):
                self._offset = 0.0
            log.info("Test clock offset now {offset} s (from {path})", offset=self._offset, path=self.path)
        return self._offset

    def seconds(self) -> float:
        return self._reactor.seconds() + self.offset()

    def callLater(self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object) -> IDelayedCall:
        return self._reactor.callLater(delay, callable, *args, **kwargs)

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        return self._reactor.getDelayedCalls()


def _serviceClock(reactor: Any, settings: Settings) -> Optional[IReactorTime]:
    """The background services' clock: the reactor's, or under C{--test-clock-offset-file} an L{OffsetClock}."""
    if settings.testClockOffsetFile is None:
        return None
    log.warn(
        "--test-clock-offset-file is set: lifecycle rules and upload expiry run on a clock moved by {path}. "
        "This option is for tests only.",
        path=settings.testClockOffsetFile.path,
    )
    return OffsetClock(reactor, settings.testClockOffsetFile.path)


class _LockService(Service):
    """Holds the data directory's lock for a pool of workers; releases it last."""

    def __init__(self, lock: DataDirectoryLock) -> None:
        self.lock = lock

    def stopService(self) -> None:
        super().stopService()
        self.lock.release()


def _makeSupervisor(reactor: Any, settings: Settings, count: int, pluginArguments: Sequence[str]) -> IService:
    """The parent of C{count} workers: the lock, the sockets, the supervision."""
    preparePrivateDirectory(log, settings.dataDir.path)
    for drive in settings.drives:
        if drive != settings.dataDir:
            preparePrivateDirectory(log, drive.path)
    lock = DataDirectoryLock.acquire(settings.dataDir.path)
    try:
        _loadAccounts(settings)  # a first start generates (and shows) the key pair once, here
    except BaseException:
        lock.release()
        raise
    root = MultiService()
    _LockService(lock).setServiceParent(root)  # added first: stopped last
    pool = WorkerPool(
        reactor, count, workerCommand(pluginArguments), lambda: listenAll(reactor, settings.listen),
        settings.shutdownTimeout,
    )
    pool.setServiceParent(root)
    SignalReloadService(IReactorFromThreads(reactor), lambda: pool.signalAll("HUP"), log=log).setServiceParent(root)
    return root


def _loadAccounts(settings: Settings) -> AccountStore:
    """
    The accounts C{twistd fasterstore} serves: the C{--credentials} file plus
    the explicit pair as account C{default}; or, without a file, the single
    explicit, stored or generated pair, as before accounts existed.
    """
    if settings.credentialsFile is None:
        only = loadOrCreateCredentials(settings.dataDir, settings.accessKey, settings.secretKey, log)
        return AccountStore.fromFile(None, only, log)
    single: Optional[Credentials] = None
    if settings.accessKey is not None and settings.secretKey is not None:
        single = loadOrCreateCredentials(settings.dataDir, settings.accessKey, settings.secretKey, log)
    else:
        _mentionStoredPair(settings.dataDir)
    accounts = AccountStore.fromFile(settings.credentialsFile, single, log)
    log.info(
        "Accounts from {path} (SIGHUP reloads it):\n{accounts}",
        path=settings.credentialsFile.path,
        accounts=accounts.describe(),
    )
    return accounts


def _mentionStoredPair(dataDir: FilePath[str]) -> None:
    """
    With a credentials file and no explicit pair, a generated pair in the
    data directory no longer signs in; say whose buckets it owned.
    """
    try:
        stored = storedCredentials(dataDir)
    except CredentialsError as e:
        log.warn("{error}", error=str(e))
        return
    if stored is not None:
        log.warn(
            "The key pair stored in the data directory ({accessKey}) is not used with --credentials; "
            "buckets it created belong to id {owner}: give an account id = \"{owner}\" to keep them",
            accessKey=stored.accessKey,
            owner=stored.owner,
        )
