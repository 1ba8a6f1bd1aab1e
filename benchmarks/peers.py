"""
The servers ``benchmarks/suite.py`` measures, started on free loopback ports
and stopped by PID: FasterStore with ``--workers N``, and its peers, the bare
twisted.web floor (``bare_server.py``), nginx (the C limit: static GET/HEAD,
WebDAV PUT), moto's server and s3rver (the Node S3 mock).

Why a module of its own: the suite starts a fresh set of servers for each
group of scenarios (small objects, listing, large objects), so a group's
leftovers (a million keys, gigabytes of uploads, a grown heap) never colour
the next group's figures.  Everything that is a process lives here; the
suite only drives load.

The pieces of ``benchmarks/run.py`` are reused, not copied: ``launch``,
``start_fasterstore``, ``start_bare``, ``start_moto``, ``wait_ready``,
``stop`` and the ``Server`` record.  What this adds:

- :class:`Target`: a started server with what the suite must know about it
  (its results column, the CPUs it is pinned to, whether its failures are
  fatal, the credentials its URLs must be signed with);
- :class:`Fleet`: the servers of one group; ``stop()`` (also on leaving a
  ``with`` block, i.e. in a ``finally``) stops every one by PID, SIGTERM then
  SIGKILL after a bound, the newest first;
- :func:`pin`: CPU affinity for every thread of a server and of its child
  processes (``taskset`` semantics, applied after start and again before
  every run, so threads and workers started late are caught too);
- nginx: a generated ``nginx.conf`` in the group's temporary directory
  (``daemon off``, pid file, error log and body temp files there,
  ``sendfile on``, ``access_log off``, ``client_max_body_size 0``, WebDAV
  ``dav_methods PUT`` with ``create_full_put_path``), one worker process;
- s3rver: installed with npm into a cache directory outside the repository
  (``~/.cache/fasterstore-bench/node``, or ``$FASTERSTORE_BENCH_CACHE/node``)
  and run with node: ``--address 127.0.0.1 --port P --directory D --silent
  --no-vhost-buckets``.  s3rver 3.x checks a SigV4 request's access key id
  (it must be ``S3RVER``) and expiry but does not compute the signature
  (its ``authentication.js``: "Signature version 4 calculation is
  unimplemented"); URLs for it are signed with ``S3RVER``/``S3RVER``.
  node runs with ``--openssl-legacy-provider``: s3rver encrypts a truncated
  listing's continuation token with DES, which OpenSSL 3 keeps there;
- :func:`install`: the suite's ``--install`` step (apt-get for nginx, wrk,
  gcc; npm for s3rver).

There is no test module: ``benchmarks/suite.py --quick`` is its smoke test.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run as harness  # noqa: E402  (benchmarks/run.py: processes, wait_ready, stop)
from run import BenchError, Server  # noqa: E402

CACHE = Path(os.environ.get("FASTERSTORE_BENCH_CACHE") or Path.home() / ".cache" / "fasterstore-bench")
NODE_DIR = CACHE / "node"
S3RVER_DIR = NODE_DIR / "node_modules" / "s3rver"
S3RVER_CREDENTIALS = ("S3RVER", "S3RVER")  # s3rver's hard-coded dummy account
S3RVER_SPEC = "s3rver@3"

#: every peer the suite knows, in the order of the report's columns
PEERS = ("bare", "nginx", "moto", "s3rver")

#: the file nginx serves for the readiness poll
NGINX_READY = ".ready"


@dataclass
class Target:
    """
    A server the suite measures.

    ``column`` names its results (``fs-w1``, ``fs-w2``, ``bare``,
    ``nginx``, ``moto``, ``s3rver``; one floor per body size shares
    ``bare``); ``server.name`` is unique within a fleet (CPU accounting is
    keyed by it). ``strict``: a non-2xx or socket error from it fails the
    suite (FasterStore, the floor, nginx); moto's and s3rver's are recorded.
    ``credentials``: the key pair its presigned URLs must be signed with, or
    None when it checks no signature (then it is sent URLs signed for
    FasterStore, as ``run.py`` sends moto).
    """

    column: str
    kind: str
    server: Server
    cpus: frozenset[int]
    strict: bool
    credentials: tuple[str, str] | None = None
    workers: int = 1
    root: Path | None = None
    data_dir: Path | None = None
    version: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def pids(self) -> list[int]:
        """The server's process and its direct children (workers, nginx's worker)."""
        return harness._with_workers(self.server.proc.pid)

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the children if any (a supervisor's workers), else the process."""
        pids = self.pids()
        return pids[1:] or pids[:1]


class Fleet:
    """
    The servers of one scenario group, stopped together by PID.

    A server is added the moment it is launched, before it is ready, so a
    start that fails half-way still gets stopped.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.targets: list[Target] = []
        self.stops: list[str] = []

    @property
    def servers(self) -> list[Server]:
        return [t.server for t in self.targets]

    def add(self, target: Target) -> Target:
        self.targets.append(target)
        return target

    def subdir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stop(self) -> list[str]:
        """Stop every server, newest first; one line per server saying how it went."""
        messages = []
        while self.targets:
            target = self.targets.pop()
            try:
                message = harness.stop(target.server)
            except Exception as e:  # keep stopping the others
                message = "stopping %s failed: %r" % (target.server.name, e)
            messages.append(message)
            print("  " + message, file=sys.stderr)
        self.stops.extend(messages)
        return messages

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --------------------------------------------------------------------------
# CPU placement


@dataclass(frozen=True)
class Layout:
    """
    Which CPUs the servers and wrk get: a one-process server on ``one``
    with wrk on ``wrk_one``; FasterStore ``--workers 2`` on ``two`` with wrk
    on ``wrk_two`` (on a 2-CPU box that is the same two CPUs: wrk shares).
    """

    one: frozenset[int]
    wrk_one: frozenset[int]
    two: frozenset[int]
    wrk_two: frozenset[int]
    note: str

    def wrk_for(self, target: Target) -> frozenset[int]:
        return self.wrk_one if target.cpus == self.one else self.wrk_two


def layout() -> Layout:
    """
    The CPU plan for this machine, from the CPUs this process may use.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        every = frozenset(cpus)
        return Layout(every, every, every, every,
                      "WARNING: only %d usable CPU: servers and wrk share it, no pinning is possible"
                      % (len(cpus),))
    one, wrk_one = frozenset(cpus[:1]), frozenset(cpus[1:2])
    two = frozenset(cpus[:2])
    wrk_two = frozenset(cpus[2:4]) or two
    shared = wrk_two == two
    return Layout(one, wrk_one, two, wrk_two,
                  "one-process servers (FasterStore --workers 1 and every peer) on CPU %s, wrk (-t1) on "
                  "CPU %s; FasterStore --workers 2 on CPUs %s with wrk (-t2) %s"
                  % (_cpus(one), _cpus(wrk_one), _cpus(two),
                     "sharing those CPUs (this box has no third: wrk's CPU is taken from the server's)"
                     if shared else "on CPUs %s" % (_cpus(wrk_two),)))


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def pin(target: Target) -> int:
    """
    Set the affinity of every thread of ``target``'s processes (and their
    children) to its CPUs; the number of threads pinned. Threads and
    children started later inherit it.
    """
    count = 0
    for pid in target.pids():
        try:
            tids = os.listdir("/proc/%d/task" % (pid,))
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), target.cpus)
                count += 1
            except OSError:  # the thread ended meanwhile
                pass
    return count


# --------------------------------------------------------------------------
# availability checks and --install


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def check_nginx() -> str:
    """
    nginx's version, if it is installed and built with the WebDAV module
    (``nginx -V`` lists ``--with-http_dav_module``); BenchError saying what
    to install otherwise.
    """
    binary = nginx_binary()
    if binary is None:
        raise BenchError("nginx is a peer but is not installed: run benchmarks/suite.py --install "
                         "(apt-get install nginx) or leave it out with --peers")
    out = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=30)
    text = out.stderr + out.stdout
    if "--with-http_dav_module" not in text:
        raise BenchError("%s has no WebDAV module (nginx -V lacks --with-http_dav_module), which its PUT "
                         "runs need: apt-get install nginx-full (or nginx-extras)" % (binary,))
    match = re.search(r"nginx version: (\S+)", text)
    return match.group(1) if match else "unknown version"


def node_binary() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


def check_s3rver() -> str:
    """
    s3rver's version (and node's), if the package is installed in the cache
    directory; BenchError saying how to get it otherwise.
    """
    node = node_binary()
    if node is None:
        raise BenchError("s3rver is a peer but node is not installed: run benchmarks/suite.py --install "
                         "(apt-get install nodejs npm) or leave it out with --peers")
    package = S3RVER_DIR / "package.json"
    if not package.exists():
        raise BenchError("s3rver is a peer but is not installed in %s: run benchmarks/suite.py --install "
                         "(npm install %s there) or leave it out with --peers" % (NODE_DIR, S3RVER_SPEC))
    version = json.loads(package.read_text()).get("version", "unknown")
    node_version = harness._run_text([node, "--version"])
    return "s3rver %s on node %s" % (version, node_version)


def _step(argv: list[str], cwd: Path | None = None) -> None:
    print("+ " + " ".join(argv), flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    code = subprocess.call(argv, cwd=str(cwd) if cwd else None, env=env, stdin=subprocess.DEVNULL)
    if code != 0:
        raise BenchError("%s exited with status %d" % (" ".join(argv), code))


def install(peers: list[str]) -> None:
    """
    The suite's ``--install`` step: Debian packages (wrk, gcc for the HEAD
    shim, nginx with the WebDAV module, node and npm) with apt-get, then
    ``npm install s3rver`` into the cache directory. Needs root for apt-get.
    """
    wanted = []
    if not shutil.which("wrk"):
        wanted.append("wrk")
    if not (shutil.which("cc") or shutil.which("gcc")):
        wanted.append("gcc")
    if "nginx" in peers and nginx_binary() is None:
        wanted.append("nginx")
    if "s3rver" in peers:
        if node_binary() is None:
            wanted.append("nodejs")
        if not shutil.which("npm"):
            wanted.append("npm")
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
    if wanted:
        _step(apt + ["update"])
        _step(apt + ["install", "-y", "--no-install-recommends"] + wanted)
    if "nginx" in peers:
        try:
            check_nginx()
        except BenchError as e:
            if nginx_binary() is None:
                raise
            print("nginx: %s; installing nginx-full" % (e,), flush=True)
            _step(apt + ["install", "-y", "nginx-full"])
            check_nginx()
    if "s3rver" in peers and not (S3RVER_DIR / "package.json").exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        if not (NODE_DIR / "package.json").exists():
            (NODE_DIR / "package.json").write_text(json.dumps(
                {"name": "fasterstore-bench-peers", "private": True, "description":
                 "s3rver for benchmarks/suite.py, outside the repository"}, indent=2) + "\n")
        _step(["npm", "install", "--no-audit", "--no-fund", S3RVER_SPEC], cwd=NODE_DIR)
    for name, check in (("nginx", check_nginx), ("s3rver", check_s3rver)):
        if name in peers:
            print("%s: %s" % (name, check()), flush=True)


# --------------------------------------------------------------------------
# starting


def _ready(target: Target, timeout: float, path: str, ok: tuple[int, ...]) -> float:
    waited = harness.wait_ready(target.server, timeout, path=path, ok=ok)
    pin(target)
    return waited


def start_fasterstore(fleet: Fleet, workers: int, cpus: frozenset[int], access_key: str, secret_key: str,
                      data_dir: Path | None = None, extra: list[str] | None = None,
                      timeout: float = 120.0) -> Target:
    """
    ``twistd -n fasterstore --workers N`` (fsync on, the default) through
    ``run.start_fasterstore``, its log and (unless given) its data directory
    in a directory of its own; waits until ready and every worker is up.
    """
    column = "fs-w%d" % (workers,)
    directory = fleet.subdir(column)
    data_dir = data_dir or directory / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = harness.start_fasterstore(directory, data_dir, access_key, secret_key, False,
                                       ["--workers", str(workers)] + list(extra or []))
    server.name = column
    target = fleet.add(Target(column, "fasterstore", server, cpus, True, (access_key, secret_key),
                              workers=workers, data_dir=data_dir, version="checkout"))
    waited = harness.wait_ready(server, timeout)
    deadline = time.monotonic() + 30
    while workers > 1 and len(target.pids()) < workers + 1:
        if time.monotonic() > deadline or server.proc.poll() is not None:
            raise BenchError("%s: %d of %d workers running after %.0f s:\n%s"
                             % (column, len(target.pids()) - 1, workers, waited + 30, server.log_tail()))
        time.sleep(0.1)
    pin(target)
    target.info = {"command": server.command, "ready_seconds": waited}
    return target


def start_bare(fleet: Fleet, size: int, cpus: frozenset[int]) -> Target:
    """The floor (``bare_server.py --body-size SIZE``) in a directory of its own."""
    server = harness.start_bare(fleet.subdir("bare-%d" % (size,)), False, ["--body-size", str(size)])
    server.name = "bare-%d" % (size,)
    target = fleet.add(Target("bare", "bare", server, cpus, True, None, version="twisted.web floor"))
    pin(target)
    target.info = {"command": server.command, "body_size": size}
    return target


def start_moto(fleet: Fleet, cpus: frozenset[int], version: str, timeout: float = 60.0) -> Target:
    """moto's standalone server through ``run.start_moto``; it checks no signature."""
    server = harness.start_moto(fleet.subdir("moto"))
    target = fleet.add(Target("moto", "moto", server, cpus, False, None, version="moto " + version))
    # any 2xx (moto answers this GET with 201)
    waited = _ready(target, timeout, "/moto-api/config", tuple(range(200, 300)))
    target.info = {"command": server.command, "ready_seconds": waited, "verifies_signatures": False}
    return target


NGINX_CONF = """\
# Generated by benchmarks/peers.py: nginx as the C limit for benchmarks/suite.py.
# One worker; static GET/HEAD of pre-created files, WebDAV PUT into the same tree.
{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    # wrk keeps its connections open: nginx's default closes one every 1000 requests
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_max_body_size 0;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy_temp;
    fastcgi_temp_path {tmp}/fastcgi_temp;
    uwsgi_temp_path {tmp}/uwsgi_temp;
    scgi_temp_path {tmp}/scgi_temp;
    default_type application/octet-stream;

    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"""


def nginx_conf(tmp: Path, root: Path, port: int) -> str:
    """
    The generated configuration. As root the master would start its worker
    as ``nobody``, who cannot write into the temporary tree, so the worker
    runs as the current user.
    """
    user = ""
    if os.geteuid() == 0:
        user = "user %s;\n" % (pwd.getpwuid(os.geteuid()).pw_name,)
    return NGINX_CONF.format(user=user, tmp=tmp, root=root, port=port)


def start_nginx(fleet: Fleet, cpus: frozenset[int], version: str, timeout: float = 30.0) -> Target:
    """
    nginx with a generated config in its own temporary directory; its
    document root is ``target.root`` (the suite writes the static files
    there; PUTs land there too).
    """
    binary = nginx_binary()
    if binary is None:
        raise BenchError("nginx is not installed (benchmarks/suite.py --install)")
    tmp = fleet.subdir("nginx")
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    (root / NGINX_READY).write_text("ready\n")
    port = harness.free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(tmp, root, port))
    command = [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]
    server = harness.launch("nginx", command, tmp, port)
    target = fleet.add(Target("nginx", "nginx", server, cpus, True, None, root=root, version=version))
    waited = _ready(target, timeout, "/" + NGINX_READY, (200,))
    target.info = {"command": command, "config": str(conf), "ready_seconds": waited,
                   "notes": "static GET/HEAD with sendfile; PUT is WebDAV (body to a temp file, then "
                            "renamed; no fsync)"}
    return target


def start_s3rver(fleet: Fleet, cpus: frozenset[int], version: str, timeout: float = 60.0,
                 silent: bool = True) -> Target:
    """
    s3rver from the cache directory with node, path-style only, its data
    in the fleet's temporary directory (``silent=False``: its request log
    and errors in ``s3rver.log``, for diagnosis).
    """
    node = node_binary()
    if node is None:
        raise BenchError("node is not installed (benchmarks/suite.py --install)")
    tmp = fleet.subdir("s3rver")
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    port = harness.free_port()
    # s3rver 3.x encrypts a truncated listing's continuation token with DES, which OpenSSL 3
    # (node >= 17) only has in its legacy provider: without it every such page is a 500
    command = [node, "--openssl-legacy-provider", str(S3RVER_DIR / "bin" / "s3rver.js"),
               "--address", "127.0.0.1", "--port", str(port),
               "--directory", str(data), "--no-vhost-buckets"] + (["--silent"] if silent else [])
    server = harness.launch("s3rver", command, tmp, port)
    target = fleet.add(Target("s3rver", "s3rver", server, cpus, False, S3RVER_CREDENTIALS,
                              data_dir=data, version=version))
    # ListBuckets without credentials: s3rver answers 200
    waited = _ready(target, timeout, "/", tuple(range(200, 500)))
    target.info = {"command": command, "ready_seconds": waited,
                   "verifies_signatures": "access key id and expiry only (SigV4 signature not computed)"}
    return target
