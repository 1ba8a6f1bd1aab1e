"""
The integration-test harness: the real ``twistd -n fasterstore`` process on a
free loopback port, and the small tools the integration tests share.

L{Server} starts the server in a subprocess (cwd = the repository root,
C{PYTHONPATH} including it), waits until ``/_fasterstore/health/ready``
answers 200 (polling with a deadline, never a fixed sleep), and stops it with
SIGTERM (L{Server.stop}) or SIGKILL (L{Server.kill}); L{Server.start} again
restarts it on the same data directory and port.  Its stdout and stderr go to
a log file next to the data directory; L{ServerTestCase} prints the tail of
every server a test used when that test fails or errors.

C{FASTERSTORE_TEST_WORKERS} and C{FASTERSTORE_TEST_HTTP_PARSER} run every
server with that C{--workers} or C{--http-parser}, so that the whole suite
can be run against each.

L{ServerTestCase.sharedServer} gives one server per test class (trial has no
C{setUpClass}, so a module-level registry keeps the current class's server and
stops it when the next class asks for its own, or at exit).

Also here: L{requireTool} (a missing client is a skip, or a failure under
C{CI=true}), an independent AWS SigV4 signer (L{SigV4}) for hand-built
requests, L{rawRequest} for raw HTTP, and S3 XML helpers.

This module is the fixture of every test module in tests/integration/.
"""

from __future__ import annotations

import atexit
import datetime
import errno
import hashlib
import hmac
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote, unquote

from twisted.trial.itrial import IReporter
from twisted.trial.unittest import FailTest, SkipTest, SynchronousTestCase
from zope.interface import implementer

#: The repository root: the server runs with this as cwd and on PYTHONPATH.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ACCESS_KEY = "FSTESTACCESSKEY00001"
SECRET_KEY = "fsTestSecretKey/0123456789+abcdefghijKLMN"
REGION = "us-east-1"

#: How long a server may take to become ready after start.
READY_TIMEOUT = float(os.environ.get("FASTERSTORE_TEST_READY_TIMEOUT", "60"))
WORKERS = os.environ.get("FASTERSTORE_TEST_WORKERS", "1")
#: C{FASTERSTORE_TEST_HTTP_PARSER=httptools} runs every server of the suite
#: with C{--http-parser httptools} (unset: the server's default).
HTTP_PARSER = os.environ.get("FASTERSTORE_TEST_HTTP_PARSER", "").strip()

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def inCI() -> bool:
    """True when running under CI, where a missing client tool is a failure."""
    return os.environ.get("CI", "").strip().lower() == "true"


def requireTool(name: str, nextToPython: bool = False) -> str:
    """
    Find a client tool, preferring the one installed next to
    C{sys.executable} when C{nextToPython} (the venv's C{aws}).

    @raise SkipTest: when it is missing, normally.
    @raise FailTest: when it is missing under C{CI=true}: a missing client
        is a failure, not a skip.
    """
    if nextToPython:
        candidate = os.path.join(os.path.dirname(sys.executable), name)
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    message = f"client tool {name!r} not found on PATH"
    if inCI():
        raise FailTest(message + " (CI=true: a missing client is a failure, not a skip)")
    raise SkipTest(message)


def writeTree(root: str, files: Mapping[str, bytes], mtime: float) -> None:
    """Write C{files} (relative path -> content) under C{root}, all with C{mtime}."""
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (mtime, mtime))


def waitFor(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll C{check} until it is true, or fail naming C{what} (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise FailTest(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def freePort() -> int:
    """A loopback TCP port that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFailed(Exception):
    """The server process did not start, become ready or stop as it should."""


def _twistdCommand() -> List[str]:
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.access(twistd, os.X_OK):
        return [twistd]
    return [sys.executable, "-m", "twisted"]


def makeSelfSignedCert(directory: str, hostnames: Sequence[str] = ("localhost",)) -> Tuple[str, str]:
    """
    Write a self-signed certificate for 127.0.0.1 and C{hostnames}.

    @return: (private key path, certificate path), PEM.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fasterstore-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans: List[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    keyPath = os.path.join(directory, "key.pem")
    certPath = os.path.join(directory, "cert.pem")
    with open(keyPath, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    with open(certPath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return keyPath, certPath


class Server:
    """
    One real FasterStore server process, restartable on the same data
    directory and port.

    @ivar base: the temp directory holding C{data/} and C{server.log}.
    @ivar dataDir: the data directory passed as C{--data-dir}.
    @ivar port: the loopback port it listens on.
    @ivar tls: when true, it listens with an C{ssl:} endpoint (self-signed).
    @cvar readyPath: the path polled for readiness.
    """

    readyPath = "/_fasterstore/health/ready"

    def __init__(
        self,
        base: str,
        *,
        region: str = REGION,
        domain: Optional[str] = None,
        tls: bool = False,
        extraArgs: Sequence[str] = (),
        accessKey: str = ACCESS_KEY,
        secretKey: str = SECRET_KEY,
    ) -> None:
        self.base = os.path.abspath(base)
        os.makedirs(self.base, exist_ok=True)
        self.dataDir = os.path.join(self.base, "data")
        self.logPath = os.path.join(self.base, "server.log")
        self.region = region
        self.domain = domain
        self.tls = tls
        self.extraArgs = list(extraArgs)
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self.starts = 0
        self.lastStartOffset = 0
        self.certPaths: Optional[Tuple[str, str]] = None
        if tls:
            hostnames = ["localhost"] + ([domain, "*." + domain] if domain else [])
            self.certPaths = makeSelfSignedCert(self.base, hostnames)

    # -- addresses ---------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        """The C{Host} header value for path-style requests."""
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """The endpoint URL for clients, e.g. C{http://127.0.0.1:PORT}."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "server not started"
        return self.process.pid

    # -- lifecycle ---------------------------------------------------------

    def _listenArgument(self) -> str:
        if self.tls:
            assert self.certPaths is not None
            keyPath, certPath = self.certPaths
            return f"ssl:{self.port}:interface=127.0.0.1:privateKey={keyPath}:certKey={certPath}"
        return f"tcp:{self.port}:interface=127.0.0.1"

    def command(self) -> List[str]:
        """The command line that runs the server."""
        command = _twistdCommand() + [
            "-n",
            "--pidfile=",
            "fasterstore",
            "--listen",
            self._listenArgument(),
            "--data-dir",
            self.dataDir,
            "--access-key",
            self.accessKey,
            "--secret-key",
            self.secretKey,
            "--region",
            self.region,
        ]
        if self.domain:
            command += ["--domain", self.domain]
        if "--workers" not in self.extraArgs:
            # One process, so that what a test reads of the server's pid
            # (memory, descriptors, limits) is the server's; the workers
            # of the default (one per CPU) have tests of their own
            # (test_workers.py).  FASTERSTORE_TEST_WORKERS=N runs the whole
            # suite on N workers instead (tests that read the server's pid
            # then read the supervisor's).
            command += ["--workers", WORKERS]
        if HTTP_PARSER and "--http-parser" not in self.extraArgs:
            command += ["--http-parser", HTTP_PARSER]
        return command + self.extraArgs

    def _environment(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTERSTORE_")}
        existing = env.get("PYTHONPATH")
        env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + existing if existing else "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = READY_TIMEOUT) -> "Server":
        """
        Start the server (again, on the same data dir and port after the
        first time) and wait until it is ready.

        @raise ServerFailed: with the log tail, if it exits or is not ready
            before the deadline.
        """
        if self.running():
            raise ServerFailed("server already running")
        attempts = 3 if self.port is None else 1
        for attempt in range(attempts):
            if self.starts == 0:
                self.port = freePort()
            self.starts += 1
            with open(self.logPath, "ab") as log:
                self.lastStartOffset = log.tell()
                log.write(
                    f"=== harness: start #{self.starts} at {time.strftime('%H:%M:%S')}: "
                    f"{' '.join(self.command())}\n".encode()
                )
                log.flush()
                self.process = subprocess.Popen(
                    self.command(),
                    cwd=REPO_ROOT,
                    env=self._environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                self.waitReady(timeout)
                return self
            except ServerFailed:
                portTaken = "Address already in use" in self.logSinceStart()
                if self.running():
                    self.kill()
                if portTaken and attempt + 1 < attempts:
                    self.starts = 0
                    continue
                raise
        raise AssertionError("unreachable")

    def waitReady(self, timeout: float = READY_TIMEOUT) -> float:
        """
        Poll C{GET /_fasterstore/health/ready} until it answers 200.

        @return: seconds it took.
        @raise ServerFailed: on exit or deadline.
        """
        started = time.monotonic()
        deadline = started + timeout
        lastProblem = "no answer yet"
        while True:
            if not self.running():
                raise ServerFailed(
                    f"server exited with {self.process.returncode if self.process else None} "
                    f"before becoming ready\n{self.tail()}"
                )
            try:
                response = rawRequest(self, "GET", self.readyPath, sign=False, timeout=2)
                if response.status == 200:
                    return time.monotonic() - started
                lastProblem = f"status {response.status}"
            except (OSError, http.client.HTTPException) as e:
                lastProblem = repr(e)
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"server not ready after {timeout}s (last: {lastProblem})\n{self.tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 60) -> int:
        """
        SIGTERM, then wait for exit.

        @return: the exit status.
        @raise ServerFailed: if it does not exit in time (it is then killed).
        """
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise ServerFailed(f"server did not exit within {timeout}s of SIGTERM\n{self.tail()}")
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, then reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    # -- observation -------------------------------------------------------

    def tail(self, lines: int = 60) -> str:
        """The last lines of the server log, framed for test output."""
        try:
            with open(self.logPath, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(no server log: {e})"
        body = "\n".join(text.splitlines()[-lines:])
        return f"----- tail of {self.logPath} -----\n{body}\n----- end of server log -----"

    def logSinceStart(self) -> str:
        """The log written since the latest start."""
        try:
            with open(self.logPath, "rb") as f:
                f.seek(self.lastStartOffset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def procStatus(self) -> Dict[str, int]:
        """Memory fields of C{/proc/PID/status}, in bytes."""
        result: Dict[str, int] = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB":
                    result[name] = int(parts[0]) * 1024
        return result

    def rss(self) -> int:
        """Resident set size now, bytes."""
        return self.procStatus()["VmRSS"]

    # -- clients -----------------------------------------------------------

    def client(self, **configOptions: object):
        """A boto3 S3 client for this server (installed version's defaults)."""
        import boto3
        from botocore.config import Config

        options: Dict[str, object] = {
            "retries": {"max_attempts": 1, "mode": "standard"},
            "connect_timeout": 5,
            "read_timeout": 60,
        }
        endpoint = configOptions.pop("endpoint_url", self.endpoint)
        options.update(configOptions)
        session = boto3.session.Session(
            aws_access_key_id=self.accessKey,
            aws_secret_access_key=self.secretKey,
            region_name=self.region,
        )
        return session.client(
            "s3",
            endpoint_url=endpoint,
            config=Config(**options),
            verify=False if self.tls else None,
        )

    def signer(self) -> "SigV4":
        """A SigV4 signer with this server's credentials and region."""
        return SigV4(self.accessKey, self.secretKey, self.region)


# -- shared servers ------------------------------------------------------------

_shared: Dict[str, object] = {"key": None, "server": None}


def _stopShared() -> None:
    server = _shared.get("server")
    _shared["server"] = None
    _shared["key"] = None
    if isinstance(server, Server):
        try:
            server.stop(timeout=30)
        except ServerFailed:
            pass


atexit.register(_stopShared)


def sharedServer(key: str, **options: object) -> Server:
    """
    The server shared by the tests of one class: started on first use,
    stopped when another class asks for its own (trial runs a class's tests
    together) or at exit.
    """
    current = _shared.get("server")
    if _shared.get("key") != key or not isinstance(current, Server):
        _stopShared()
        base = tempfile.mkdtemp(prefix="server-", dir=os.path.abspath("."))
        server = Server(base, **options)  # type: ignore[arg-type]
        _shared["key"] = key
        _shared["server"] = server
        server.start()
        return server
    if not current.running():
        # The previous test killed it; that test has been failed already.
        current.start()
    return current


@implementer(IReporter)
class _TailOnFailure:
    """A reporter proxy that prints the servers' log tails on failure/error."""

    def __init__(self, result: object, test: "ServerTestCase") -> None:
        self._result = result
        self._test = test

    def __getattr__(self, name: str) -> object:
        return getattr(self._result, name)

    def _printTails(self) -> None:
        for server in self._test._usedServers:
            print(f"\n[{self._test.id()}] server log:\n{server.tail()}", flush=True)

    def addFailure(self, test: object, failure: object) -> None:
        self._printTails()
        self._result.addFailure(test, failure)  # type: ignore[attr-defined]

    def addError(self, test: object, error: object) -> None:
        self._printTails()
        self._result.addError(test, error)  # type: ignore[attr-defined]


class ServerTestCase(SynchronousTestCase):
    """
    Base for integration tests: tracks the servers a test uses and prints
    their log tails when it fails.

    @cvar serverOptions: keyword arguments for the shared L{Server}.
    """

    serverOptions: Mapping[str, object] = {}

    def run(self, result):  # type: ignore[override]
        self._usedServers: List[Server] = []
        adapted = IReporter(result, None)
        if adapted is None:
            return super().run(result)
        return super().run(_TailOnFailure(adapted, self))

    def sharedServer(self) -> Server:
        """This class's shared server; a test that kills it fails."""
        cls = type(self)
        server = sharedServer(f"{cls.__module__}.{cls.__qualname__}", **dict(self.serverOptions))
        self._use(server)

        def checkAlive() -> None:
            if not server.running():
                raise FailTest(f"the shared server died during this test\n{server.tail()}")

        self.addCleanup(checkAlive)
        return server

    def privateServer(self, **options: object) -> Server:
        """A server of this test's own, in C{self.mktemp()}; stopped at cleanup."""
        server = Server(self.mktemp(), **options)  # type: ignore[arg-type]
        self._use(server)
        self.addCleanup(server.kill)
        server.start()
        return server

    def _use(self, server: Server) -> None:
        if not hasattr(self, "_usedServers"):
            self._usedServers = []
        if server not in self._usedServers:
            self._usedServers.append(server)

    def bucketName(self, stem: str = "b") -> str:
        """A fresh valid bucket name."""
        return f"{stem}-{uuid.uuid4().hex[:20]}"

    def assertS3Error(self, response: "Response", status: int, codes: Union[str, Iterable[str]]) -> ET.Element:
        """
        Assert a raw response is an S3 <Error> with this status and one of
        these codes; return the parsed document.
        """
        if isinstance(codes, str):
            codes = [codes]
        codes = list(codes)
        self.assertEqual(
            response.status,
            status,
            f"expected {status} {codes}, got {response.status}: {response.body[:500]!r}",
        )
        try:
            root = ET.fromstring(response.body)
        except ET.ParseError as e:
            raise FailTest(f"error body is not XML ({e}): {response.body[:500]!r}")
        self.assertEqual(localName(root.tag), "Error", response.body[:500])
        self.assertIn(root.findtext("Code"), codes, response.body[:500])
        return root


# -- XML ----------------------------------------------------------------------


def localName(tag: str) -> str:
    """C{{ns}Name} -> C{Name}."""
    return tag.rsplit("}", 1)[-1]


def findAll(element: ET.Element, name: str) -> List[ET.Element]:
    """Children named C{name}, with or without the S3 namespace."""
    return [child for child in element if localName(child.tag) == name]


def childText(element: ET.Element, name: str) -> Optional[str]:
    """Text of the first child named C{name} (any namespace), or None."""
    for child in element:
        if localName(child.tag) == name:
            return child.text or ""
    return None


def errorCode(body: bytes) -> Optional[str]:
    """The <Code> of an S3 error document, or None."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    return root.findtext("Code")


# -- SigV4 ---------------------------------------------------------------------


def uriEncode(value: str, encodeSlash: bool = True) -> str:
    """AWS URI-encoding: everything but A-Za-z0-9-_.~ (and '/' if kept)."""
    return quote(value, safe="" if encodeSlash else "/")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def amzDate(now: Optional[datetime.datetime] = None) -> str:
    """The X-Amz-Date form of C{now} (default: the current UTC time)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


class SigV4:
    """
    An AWS Signature Version 4 signer for S3, written from the AWS
    documentation independently of the server and of botocore.
    """

    def __init__(self, accessKey: str, secretKey: str, region: str, service: str = "s3") -> None:
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.service = service

    def signingKey(self, date: str) -> bytes:
        """The derived key for C{date} (YYYYMMDD)."""
        key = _hmac(("AWS4" + self.secretKey).encode(), date)
        key = _hmac(key, self.region)
        key = _hmac(key, self.service)
        return _hmac(key, "aws4_request")

    def scope(self, date: str) -> str:
        return f"{date}/{self.region}/{self.service}/aws4_request"

    @staticmethod
    def canonicalQuery(query: Sequence[Tuple[str, str]]) -> str:
        pairs = sorted((uriEncode(k), uriEncode(v)) for k, v in query)
        return "&".join(f"{k}={v}" for k, v in pairs)

    def canonicalRequest(
        self,
        method: str,
        canonicalPath: str,
        query: Sequence[Tuple[str, str]],
        headers: Mapping[str, str],
        signedHeaders: Sequence[str],
        payloadHash: str,
    ) -> str:
        lowered = {k.lower(): " ".join(str(v).strip().split()) for k, v in headers.items()}
        canonicalHeaders = "".join(f"{name}:{lowered[name]}\n" for name in signedHeaders)
        return "\n".join(
            [
                method,
                canonicalPath,
                self.canonicalQuery(query),
                canonicalHeaders,
                ";".join(signedHeaders),
                payloadHash,
            ]
        )

    def stringToSign(self, timestamp: str, canonicalRequest: str) -> str:
        return "\n".join(
            [
                "AWS4-HMAC-SHA256",
                timestamp,
                self.scope(timestamp[:8]),
                hashlib.sha256(canonicalRequest.encode("utf-8")).hexdigest(),
            ]
        )

    def signHeaders(
        self,
        method: str,
        canonicalPath: str,
        query: Sequence[Tuple[str, str]],
        headers: Dict[str, str],
        payloadHash: str = "UNSIGNED-PAYLOAD",
        now: Optional[datetime.datetime] = None,
    ) -> str:
        """
        Add C{x-amz-date}, C{x-amz-content-sha256} and C{Authorization} to
        C{headers} (which must hold C{host}); every header present except
        content-length/transfer-encoding/expect/user-agent is signed.

        @return: the signature (the seed, for streaming payloads).
        """
        timestamp = amzDate(now)
        headers["x-amz-date"] = timestamp
        headers["x-amz-content-sha256"] = payloadHash
        skip = {"content-length", "transfer-encoding", "expect", "user-agent", "authorization"}
        signed = sorted(k.lower() for k in headers if k.lower() not in skip)
        canonical = self.canonicalRequest(method, canonicalPath, query, headers, signed, payloadHash)
        signature = hmac.new(
            self.signingKey(timestamp[:8]),
            self.stringToSign(timestamp, canonical).encode(),
            hashlib.sha256,
        ).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.accessKey}/{self.scope(timestamp[:8])}, "
            f"SignedHeaders={';'.join(signed)}, Signature={signature}"
        )
        return signature

    def presign(
        self,
        method: str,
        host: str,
        canonicalPath: str,
        expires: int = 3600,
        query: Sequence[Tuple[str, str]] = (),
        now: Optional[datetime.datetime] = None,
    ) -> List[Tuple[str, str]]:
        """
        Query-string (presigned) authentication for a request signing only
        C{host}.

        @return: the full query, signature last.
        """
        timestamp = amzDate(now)
        full = list(query) + [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", f"{self.accessKey}/{self.scope(timestamp[:8])}"),
            ("X-Amz-Date", timestamp),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        canonical = self.canonicalRequest(
            method, canonicalPath, full, {"host": host}, ["host"], "UNSIGNED-PAYLOAD"
        )
        signature = hmac.new(
            self.signingKey(timestamp[:8]),
            self.stringToSign(timestamp, canonical).encode(),
            hashlib.sha256,
        ).hexdigest()
        return full + [("X-Amz-Signature", signature)]

    # -- streaming payloads (aws-chunked) ----------------------------------

    def chunkSignature(self, timestamp: str, previous: str, data: bytes) -> str:
        """The signature of one aws-chunked chunk."""
        toSign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                timestamp,
                self.scope(timestamp[:8]),
                previous,
                EMPTY_SHA256,
                hashlib.sha256(data).hexdigest(),
            ]
        )
        return hmac.new(self.signingKey(timestamp[:8]), toSign.encode(), hashlib.sha256).hexdigest()

    def trailerSignature(self, timestamp: str, previous: str, trailer: bytes) -> str:
        """The signature of the trailing headers (C{name:value\\n} lines)."""
        toSign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                timestamp,
                self.scope(timestamp[:8]),
                previous,
                hashlib.sha256(trailer).hexdigest(),
            ]
        )
        return hmac.new(self.signingKey(timestamp[:8]), toSign.encode(), hashlib.sha256).hexdigest()

    def signedChunkedBody(
        self,
        timestamp: str,
        seed: str,
        data: bytes,
        chunkSize: int = 64 * 1024,
        trailer: Optional[Tuple[str, str]] = None,
        corruptChunk: Optional[int] = None,
    ) -> bytes:
        """
        The STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) body for C{data}.

        @param trailer: (header name, value) to send as a signed trailer.
        @param corruptChunk: index of a chunk whose signature is made wrong.
        """
        out = []
        previous = seed
        chunks = [data[i : i + chunkSize] for i in range(0, len(data), chunkSize)] + [b""]
        for index, chunk in enumerate(chunks):
            signature = self.chunkSignature(timestamp, previous, chunk)
            previous = signature
            if index == corruptChunk:
                signature = ("0" if signature[0] != "0" else "1") + signature[1:]
            out.append(f"{len(chunk):x};chunk-signature={signature}\r\n".encode())
            if chunk:
                out.append(chunk + b"\r\n")
        if trailer is None:
            out.append(b"\r\n")
        else:
            line = f"{trailer[0]}:{trailer[1]}".encode()
            trailerSignature = self.trailerSignature(timestamp, previous, line + b"\n")
            out.append(line + b"\r\n")
            out.append(f"x-amz-trailer-signature:{trailerSignature}\r\n\r\n".encode())
        return b"".join(out)


def unsignedChunkedBody(data: bytes, chunkSize: int = 64 * 1024, trailer: Optional[Tuple[str, str]] = None) -> bytes:
    """The STREAMING-UNSIGNED-PAYLOAD-TRAILER body for C{data}."""
    out = []
    for i in range(0, len(data), chunkSize):
        chunk = data[i : i + chunkSize]
        out.append(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    out.append(b"0\r\n")
    if trailer is not None:
        out.append(f"{trailer[0]}:{trailer[1]}\r\n".encode())
    out.append(b"\r\n")
    return b"".join(out)


# -- raw HTTP -----------------------------------------------------------------


class Response:
    """A raw HTTP response: status, lower-cased headers, body."""

    def __init__(self, status: int, reason: str, headers: List[Tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headerList = headers
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers!r} {self.body[:300]!r}>"


def connection(server: Server, timeout: float = 30) -> http.client.HTTPConnection:
    """A new http.client connection to the server."""
    if server.tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection("127.0.0.1", server.port, timeout=timeout, context=context)
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)


def splitTarget(target: str) -> Tuple[str, List[Tuple[str, str]]]:
    """C{/path?a=b&c} -> (raw path, decoded query pairs)."""
    path, _, rawQuery = target.partition("?")
    query: List[Tuple[str, str]] = []
    if rawQuery:
        for part in rawQuery.split("&"):
            k, _, v = part.partition("=")
            query.append((unquote(k), unquote(v)))
    return path, query


def canonicalPath(rawPath: str) -> str:
    """The SigV4 canonical URI of a raw S3 path: decode, then AWS-encode."""
    return uriEncode(unquote(rawPath), encodeSlash=False)


def rawRequest(
    server: Server,
    method: str,
    target: str,
    headers: Optional[Mapping[str, str]] = None,
    body: Union[bytes, Iterable[bytes], None] = None,
    *,
    sign: bool = True,
    payloadHash: Optional[str] = None,
    host: Optional[str] = None,
    signPath: Optional[str] = None,
    timeout: float = 30,
    signer: Optional[SigV4] = None,
    now: Optional[datetime.datetime] = None,
) -> Response:
    """
    Send one request with http.client on a fresh connection and read the
    whole response.

    @param target: raw path and query as sent on the request line.
    @param sign: add SigV4 header auth (payload hash: C{payloadHash}, else
        the SHA-256 of a bytes body, else UNSIGNED-PAYLOAD).
    @param signPath: the canonical URI to sign, if not derived from target.
    """
    allHeaders: Dict[str, str] = {"host": host or server.host}
    for k, v in (headers or {}).items():
        allHeaders[k.lower()] = v
    if isinstance(body, (bytes, bytearray)) and "content-length" not in allHeaders and "transfer-encoding" not in allHeaders:
        allHeaders["content-length"] = str(len(body))
    if sign:
        path, query = splitTarget(target)
        if payloadHash is None:
            payloadHash = hashlib.sha256(body).hexdigest() if isinstance(body, (bytes, bytearray)) else (
                "UNSIGNED-PAYLOAD" if body is not None else EMPTY_SHA256
            )
        (signer or server.signer()).signHeaders(
            method, signPath if signPath is not None else canonicalPath(path), query, allHeaders, payloadHash, now=now
        )
    conn = connection(server, timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in allHeaders.items():
            conn.putheader(k, v)
        if body is None or isinstance(body, (bytes, bytearray)):
            conn.endheaders(body if body else None)
        else:
            conn.endheaders()
            for piece in body:
                conn.send(piece)
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, response.reason, response.getheaders(), data)
    finally:
        conn.close()


def s3Path(bucket: str, key: Optional[str] = None) -> str:
    """The path-style raw path of a bucket or key, AWS-encoded."""
    if key is None:
        return "/" + bucket
    return "/" + bucket + "/" + uriEncode(key, encodeSlash=False)


_counter = itertools.count()


def uniqueBody(size: int, label: str = "") -> bytes:
    """C{size} bytes that start with a unique label, then random bytes."""
    head = f"{label}#{next(_counter)}#{uuid.uuid4().hex}|".encode()
    if size <= len(head):
        return os.urandom(size)
    return head + os.urandom(size - len(head))


def isConnectionError(exc: BaseException) -> bool:
    """True for errors that mean 'the connection died', not 'the server said no'."""
    if isinstance(exc, (ConnectionError, http.client.HTTPException, socket.timeout)):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED):
        return True
    return False


# -- checksums (computed independently of the server) ------------------------


def checksumOf(algorithm: str, data: bytes) -> str:
    """The base64 S3 x-amz-checksum-<algorithm> value of C{data}."""
    import base64
    import zlib

    from awscrt import checksums

    algorithm = algorithm.lower()
    if algorithm == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "crc32c":
        raw = checksums.crc32c(data).to_bytes(4, "big")
    elif algorithm == "crc64nvme":
        raw = checksums.crc64nvme(data).to_bytes(8, "big")
    elif algorithm == "sha1":
        raw = hashlib.sha1(data).digest()
    elif algorithm == "sha256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


def md5b64(data: bytes) -> str:
    """The Content-MD5 header value of C{data}."""
    import base64

    return base64.b64encode(hashlib.md5(data).digest()).decode()


def quotedMD5(data: bytes) -> str:
    """The single-PUT ETag of C{data}."""
    return '"' + hashlib.md5(data).hexdigest() + '"'


class AwsCliMixin:
    """
    Runs the aws cli (C{aws}, the venv's) against C{self.server}, with a
    config and credentials of its own in a temporary home, path-style
    addressing, and no retries (a failure shows at once).  Call
    L{setUpAwsCli} in C{setUp}, once C{self.server} is set.
    """

    server: Server

    def setUpAwsCli(self, region: Optional[str] = None) -> None:
        case = self
        assert isinstance(case, SynchronousTestCase)
        self.aws = requireTool("aws", nextToPython=True)
        self.home = os.path.abspath(case.mktemp())
        os.makedirs(self.home)
        config = os.path.join(self.home, "config")
        credentials = os.path.join(self.home, "credentials")
        with open(config, "w") as f:
            f.write(f"[default]\nregion = {region or self.server.region}\noutput = json\n"
                    "s3 =\n    addressing_style = path\n")
        with open(credentials, "w") as f:
            f.write(
                f"[default]\naws_access_key_id = {self.server.accessKey}\n"
                f"aws_secret_access_key = {self.server.secretKey}\n"
            )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHONPATH", "PYTHONHOME"))}
        self.env.update({
            "AWS_CONFIG_FILE": config, "AWS_SHARED_CREDENTIALS_FILE": credentials,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "1",
            "HOME": self.home,
        })

    def run_aws(self, *args: str, check: bool = True, endpoint: bool = True) -> subprocess.CompletedProcess:
        """Run C{aws ARGS} (against the server unless not C{endpoint}); a failure fails the test if C{check}."""
        command = [self.aws] + (["--endpoint-url", self.server.endpoint] if endpoint else []) + list(args)
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise FailTest(f"{' '.join(args)} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def json(self, *args: str) -> Dict:
        """What C{aws ARGS} printed, parsed ({} for nothing)."""
        out = self.run_aws(*args).stdout
        return json.loads(out) if out.strip() else {}

    def file(self, name: str, data: bytes) -> str:
        """A file of the cli's home holding C{data}, for arguments such as C{--body}."""
        path = os.path.join(self.home, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def read(self, path: str) -> bytes:
        """What a file holds (one the cli wrote)."""
        with open(path, "rb") as f:
            return f.read()

    def assertFails(self, *args: str, expect: str) -> subprocess.CompletedProcess:
        """C{aws ARGS} fails, saying C{expect}."""
        result = self.run_aws(*args, check=False)
        if result.returncode == 0:
            raise FailTest(f"{args} succeeded: {result.stdout}")
        if expect not in result.stderr:
            raise FailTest(f"{expect!r} not in {result.stderr!r}")
        return result
