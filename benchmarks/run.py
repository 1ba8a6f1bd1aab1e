"""
FasterStore benchmark driver: 4 KiB PUT, GET and HEAD through presigned
SigV4 URLs, measured with wrk against FasterStore, against a bare
twisted.web floor and against moto (the Python AWS mock, as its standalone
server) in the same run.

What it does, bounded and self-stopping:

1. prints machine information and probes the data directory's raw
   4 KiB write+fsync latency (the floor for a durable PUT at concurrency 1);
2. starts ``benchmarks/bare_server.py``, ``twistd -n --pidfile=
   fasterstore`` (fsync on unless ``--no-fsync``) with a temporary data
   directory and ``python -m moto.server`` (unless ``--no-moto``), each on a
   free loopback port in its own session, and polls
   ``/_fasterstore/health/ready`` and moto's ``/moto-api/config`` until they
   answer;
3. creates the bucket in FasterStore and in moto, pre-generates presigned
   URLs with botocore (PUT URLs for a pool of fresh keys, PUT/GET/HEAD URLs
   for a read set), seeds the read set in both and checks a sample reads
   back byte-identical. moto does not verify signatures (its auth is off
   unless ``INITIAL_NO_AUTH_ACTION_COUNT`` is set, which this driver clears)
   and treats a ``127.0.0.1:PORT`` Host as path-style, so it is sent the very
   URL files signed for FasterStore;
4. for each of PUT, GET, HEAD and each concurrency (1, 16, 64) runs
   ``wrk -t2 -cN -dD --latency`` with ``benchmarks/presigned.lua``: against
   FasterStore, then the floor, then moto, with the same request bytes (each
   PUT run of FasterStore and of moto starts on keys that server's earlier
   PUT runs did not touch). Any non-2xx response or socket error from
   FasterStore or the floor aborts the run; moto's problems (errors,
   timeouts, a crash) are recorded in its row and printed, not fatal;
5. prints a markdown table (ops/s, p50, p99, server CPU per op, and the
   FasterStore/floor and FasterStore/moto ratios) and the group-commit ratio
   PUT c=64 / PUT c=1;
6. stops every server by PID with SIGTERM (SIGKILL after a bound) in a
   ``finally`` and removes the temporary directory.

Usage::

    python benchmarks/run.py --duration 10      # the documented run
    python benchmarks/run.py --quick            # 2 s runs, a smoke test
    python benchmarks/run.py --no-fsync         # the unsafe mode
    python benchmarks/run.py --no-moto          # FasterStore and the floor only
    python benchmarks/run.py --bare-only --quick  # test the harness alone
    python benchmarks/run.py --no-moto --concurrency 64 --versioned-beside \
        --operations PUT,OVERWRITE,GET,HEAD --rounds 5   # versioned beside unversioned

``--versioned`` enables versioning on the bench bucket (FasterStore's and
moto's) before the load. ``--versioned-beside`` instead adds a second
FasterStore row: bucket ``benchv`` on the same server, versioning on,
seeded and loaded like ``bench``; the summary gives versioned/unversioned
ops/s and CPU per request, and how many objects and older versions each
bucket holds after the load. ``--rounds N`` measures FasterStore's rows N
times per operation and concurrency, alternating which runs first.
``OVERWRITE`` is a PUT through the read set's URLs: every PUT replaces an
object (on a versioned bucket, adds a version), and later GET/HEAD runs
read keys with that many versions.

Needs ``wrk`` (Debian package ``wrk``) and boto3 in the running interpreter,
and, unless ``--no-moto``, ``moto[server]`` (moto plus flask, flask-cors,
werkzeug): without it the driver stops at once and says so. The servers run
under the same interpreter. See ``benchmarks/README.md`` and
``docs/benchmarks.md``. There is no test module: ``--bare-only --quick`` is
the harness's own smoke test.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LUA = HERE / "presigned.lua"
BARE = HERE / "bare_server.py"

OBJECT_SIZE = 4096
BUCKET = "bench"
VERSIONED_BUCKET = "benchv"  # --versioned-beside: the second bucket, versioning on
# OVERWRITE: PUTs through the read set's URLs, so every PUT replaces an
# object (on a versioned bucket: adds a version to a key that has some)
OPERATIONS = ("PUT", "OVERWRITE", "GET", "HEAD")
STOP_TIMEOUT = 45.0  # FasterStore gives in-flight requests 30 s by default


class BenchError(Exception):
    """
    The benchmark cannot produce a valid result; the message says why.
    """


@dataclass
class Server:
    """
    A server process we started, its log file and its base URL.
    """

    name: str
    proc: "subprocess.Popen[bytes]"
    log_path: Path
    port: int = 0
    command: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return "http://127.0.0.1:%d" % (self.port,)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return "(no log: %s)" % (e,)
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Target:
    """
    One row of the table: a server and the URL files it is sent.

    ``key`` names its results in a table row (``fasterstore``,
    ``versioned``, ``bare``, ``moto``); ``pool`` is the PUT key pool's next
    start, shared by the targets that are sent the same PUT URLs; a
    non-``strict`` target's problems are recorded, not fatal (moto).
    """

    key: str
    server: Server
    files: dict[str, Path]
    pool: dict[str, Any]
    label: str
    strict: bool = True


# --------------------------------------------------------------------------
# machine information


def _run_text(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % (e,)
    return (out.stdout or out.stderr).strip()


def machine_info(data_parent: Path, wrk: str, moto: str | None = None,
                 commit: str | None = None) -> dict[str, Any]:
    """
    Collect what a reader needs to compare runs across machines; ``commit``,
    if given, is recorded instead of running ``git describe --dirty``
    (``benchmarks/suite.py`` reads it from ``.git`` without a git process,
    which could take the index lock while someone commits).
    """
    import twisted

    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    fs = _run_text(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "--target", str(data_parent)])
    if fs.startswith("unavailable") or not fs:
        fs = _run_text(["df", "-T", str(data_parent)]).splitlines()[-1]
    if commit is not None:
        git = commit
    else:
        git = _run_text(["git", "-C", str(REPO), "describe", "--always", "--dirty", "--tags"])
        if "fatal" in git or git.startswith("unavailable"):
            git = "no commit"
    mem_total = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_total = "%d MiB" % (int(line.split()[1]) // 1024,)
    except OSError:
        pass
    info = {
        "nproc": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": cpu_model,
        "memory": mem_total,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "twisted": twisted.__version__,
        "wrk": _run_text([wrk, "-v"]).splitlines()[0] if wrk else "missing",
        "data_dir_parent": str(data_parent),
        "data_dir_filesystem": fs,
        "git": git,
        "loadavg_at_start": " ".join("%.2f" % x for x in os.getloadavg()),
    }
    if moto is not None:
        info["moto"] = moto
    return info


def fsync_probe(directory: Path, count: int = 200, budget: float = 3.0) -> dict[str, float]:
    """
    Time ``count`` 4 KiB append + fsync cycles in ``directory`` (bounded by
    ``budget`` seconds): what one durable write costs on this disk.
    """
    path = directory / "fsync-probe"
    samples: list[float] = []
    data = os.urandom(OBJECT_SIZE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        deadline = time.monotonic() + budget
        for _ in range(count):
            t0 = time.perf_counter()
            os.write(fd, data)
            os.fsync(fd)
            samples.append(time.perf_counter() - t0)
            if time.monotonic() > deadline:
                break
    finally:
        os.close(fd)
        path.unlink()
    samples.sort()
    return {
        "samples": len(samples),
        "p50_ms": samples[len(samples) // 2] * 1e3,
        "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3,
        "mean_ms": statistics.fmean(samples) * 1e3,
    }


# --------------------------------------------------------------------------
# processes


def free_port() -> int:
    """
    A port that was free on 127.0.0.1 a moment ago.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(name: str, command: list[str], workdir: Path, port: int = 0,
           env: dict[str, str] | None = None) -> Server:
    """
    Start ``command`` in its own session in ``workdir``, output to
    ``workdir/NAME.log``: one of the servers this driver measures.
    """
    log_path = workdir / ("%s.log" % (name,))
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(workdir), env=env, start_new_session=True,
        )
    finally:
        log.close()
    return Server(name, proc, log_path, port=port, command=command)


def start_bare(workdir: Path, access_log: bool, extra: list[str] | None = None,
               script: Path = BARE, name: str = "bare") -> Server:
    """
    Start the floor server (or another floor ``script`` that prints
    ``LISTENING <port>``, such as ``bare_httptools.py``) and read its port
    from its log; ``extra`` are more of its options (``benchmarks/suite.py``:
    ``--body-size N``).
    """
    command = [sys.executable, str(script), "--port", "0"]
    if access_log:
        command.append("--access-log")
    command.extend(extra or [])
    server = launch(name, command, workdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in server.log_path.read_text(errors="replace").splitlines():
            if line.startswith("LISTENING "):
                server.port = int(line.split()[1])
                return server
        if server.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise BenchError("%s did not start:\n%s" % (name, server.log_tail()))


def twistd_command() -> list[str]:
    """
    ``twistd`` from the running interpreter's environment.
    """
    script = Path(sys.executable).parent / "twistd"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "twisted"]


def start_fasterstore(workdir: Path, data_dir: Path, access_key: str, secret_key: str,
                      no_fsync: bool, extra: list[str]) -> Server:
    """
    Start ``twistd -n --pidfile= fasterstore`` on a free loopback port.
    """
    port = free_port()
    command = twistd_command() + [
        "-n", "--pidfile=", "fasterstore",
        "--listen", "tcp:%d:interface=127.0.0.1" % (port,),
        "--data-dir", str(data_dir),
        "--access-key", access_key,
        "--secret-key", secret_key,
    ]
    if no_fsync:
        command.append("--no-fsync")
    command.extend(extra)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return launch("fasterstore", command, workdir, port, env)


def wait_ready(server: Server, timeout: float, path: str = "/_fasterstore/health/ready",
               ok: tuple[int, ...] = (200,)) -> float:
    """
    Poll ``path`` (FasterStore's ``/_fasterstore/health/ready``) until it
    answers with a status in ``ok``; return seconds waited.
    """
    start = time.monotonic()
    last = "no answer"
    while time.monotonic() - start < timeout:
        if server.proc.poll() is not None:
            raise BenchError("%s exited with status %s before it was ready:\n%s"
                             % (server.name, server.proc.returncode, server.log_tail()))
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status in ok:
                return time.monotonic() - start
            last = "HTTP %d" % (resp.status,)
        except OSError as e:
            last = repr(e)
        time.sleep(0.1)
    raise BenchError("%s not ready after %.0f s (last: %s):\n%s"
                     % (server.name, timeout, last, server.log_tail()))


MOTO_CHECK = "import moto, moto.server; print(moto.__version__)"


def check_moto() -> str:
    """
    moto's version, if the running interpreter (the one the servers run
    under) can import moto with its server extra; BenchError saying how to
    get it, or to pass ``--no-moto``, if not.
    """
    try:
        out = subprocess.run([sys.executable, "-c", MOTO_CHECK], capture_output=True,
                             text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        why = repr(e)
    else:
        if out.returncode == 0:
            return out.stdout.strip() or "unknown version"
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else "exit status %d" % (out.returncode,)
    raise BenchError(
        "moto is a benchmark target but %s cannot import moto.server (%s).\n"
        "Install it into that interpreter: %s -m pip install 'moto[server]'\n"
        "(the server extra brings flask, flask-cors and werkzeug), "
        "or leave moto out with --no-moto." % (sys.executable, why, sys.executable))


def start_moto(workdir: Path) -> Server:
    """
    Start moto's standalone server (``python -m moto.server``) on a free
    loopback port, logging to ``workdir/moto.log``.
    """
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(port)]
    env = dict(os.environ)
    env["MOTO_PORT"] = str(port)
    # moto's request authentication stays off (its default): the URLs are
    # signed for FasterStore's port with FasterStore's keys.
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    return launch("moto", command, workdir, port, env)


def stop(server: Server) -> str:
    """
    SIGTERM by PID, wait, SIGKILL after ``STOP_TIMEOUT``; say what happened.
    """
    proc = server.proc
    if proc.poll() is not None:
        return "%s had already exited with status %s" % (server.name, proc.returncode)
    t0 = time.monotonic()
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return ("%s (pid %d) ignored SIGTERM for %.0f s and was SIGKILLed"
                % (server.name, proc.pid, STOP_TIMEOUT))
    code = proc.returncode
    how = "killed by its own SIGTERM (clean)" if code == -signal.SIGTERM else "exit status %s" % (code,)
    return ("%s (pid %d) stopped on SIGTERM in %.2f s, %s"
            % (server.name, proc.pid, time.monotonic() - t0, how))


# --------------------------------------------------------------------------
# S3 side: bucket, URLs, seeding


def s3_client(endpoint: str, access_key: str, secret_key: str):  # type: ignore[no-untyped-def]
    """
    A boto3 client for path-style SigV4 against ``endpoint``.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 1}),
    )


def presign(client, method: str, key: str, bucket: str = BUCKET,  # type: ignore[no-untyped-def]
            version_id: str | None = None) -> str:
    """
    One presigned SigV4 URL for ``method`` on ``bucket/key`` (``BUCKET`` by
    default), of version ``version_id`` if given (GET and HEAD).
    """
    op = {"PUT": "put_object", "GET": "get_object", "HEAD": "head_object"}[method]
    params = {"Bucket": bucket, "Key": key}
    if version_id is not None:
        params["VersionId"] = version_id
    return str(client.generate_presigned_url(op, Params=params, ExpiresIn=3600, HttpMethod=method))


def write_url_file(path: Path, client, method: str, keys: list[str],  # type: ignore[no-untyped-def]
                   bucket: str = BUCKET) -> list[str]:
    """
    Write ``METHOD URL`` lines, one per key of ``bucket``; return the URLs.
    """
    urls = [presign(client, method, key, bucket) for key in keys]
    with open(path, "w") as f:
        for url in urls:
            f.write("%s %s\n" % (method, url))
    return urls


def _path_query(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def seed(port: int, put_urls: list[str], get_urls: list[str], head_urls: list[str],
         deadline: float, workers: int = 16, size: int = OBJECT_SIZE) -> dict[str, Any]:
    """
    PUT a distinct random body of ``size`` bytes (4 KiB) through every
    presigned PUT URL, then check a sample reads back byte-identical through
    the GET and HEAD URLs.
    """
    bodies = [os.urandom(size) for _ in put_urls]

    def put_slice(indexes: range) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for i in indexes:
                if time.monotonic() > deadline:
                    raise BenchError("seeding the read set ran past its deadline")
                conn.request("PUT", _path_query(put_urls[i]), body=bodies[i],
                             headers={"Content-Type": "application/octet-stream"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise BenchError("seed PUT %s: HTTP %d %r"
                                     % (put_urls[i].split("?")[0], resp.status, body[:500]))
        finally:
            conn.close()
        return len(indexes)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(put_slice, range(w, len(put_urls), workers)) for w in range(workers)]
        written = sum(f.result() for f in futures)
    elapsed = time.monotonic() - t0

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        step = max(1, len(get_urls) // 25)
        for i in range(0, len(get_urls), step):
            conn.request("GET", _path_query(get_urls[i]))
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or body != bodies[i]:
                raise BenchError("seed check GET %s: HTTP %d, %d bytes, %s"
                                 % (get_urls[i].split("?")[0], resp.status, len(body),
                                    "identical" if body == bodies[i] else "DIFFERENT bytes"))
            conn.request("HEAD", _path_query(head_urls[i]))
            resp = conn.getresponse()
            resp.read()
            length = resp.getheader("Content-Length")
            if resp.status != 200 or length != str(size):
                raise BenchError("seed check HEAD %s: HTTP %d, Content-Length %s"
                                 % (head_urls[i].split("?")[0], resp.status, length))
    finally:
        conn.close()
    return {"objects": written, "seconds": elapsed, "ops_per_s": written / elapsed if elapsed else 0.0}


def fetch_metrics(port: int) -> str | None:
    """
    The prometheus text of ``/_fasterstore/metrics``, or None.
    """
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/_fasterstore/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        conn.close()
    except OSError:
        return None
    return text if resp.status == 200 else None


# --------------------------------------------------------------------------
# CPU accounting: who used the CPUs during a run


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_seconds() -> float:
    """
    CPU seconds spent not idle, all CPUs, since boot (``/proc/stat``).
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK  # guest time is already in user


def _stat_fields(pid: int) -> list[str]:
    try:
        stat = Path("/proc/%d/stat" % (pid,)).read_text()
    except OSError:
        return []
    return stat.rsplit(")", 1)[1].split()


def _with_workers(pid: int) -> list[int]:
    """
    C{pid} and its live children: the workers of ``--workers N`` do the
    serving, so their CPU is the server's.
    """
    pids = [pid]
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields and int(fields[1]) == pid:
                pids.append(int(name))
    return pids


def _process_seconds(pid: int) -> float:
    """
    User + system CPU seconds of one process (and its workers), all threads.
    """
    total = 0.0
    for one in _with_workers(pid):
        fields = _stat_fields(one)
        if fields:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def _process_system_seconds(pid: int) -> float:
    """
    System (kernel) CPU seconds of one process (and its workers), all threads.
    """
    total = 0.0
    for one in _with_workers(pid):
        fields = _stat_fields(one)
        if fields:
            total += int(fields[12]) / CLK_TCK
    return total


def _children_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_snapshot(servers: list[Server]) -> dict[str, float]:
    """
    Machine, per-server and reaped-children (wrk) CPU seconds, now.
    """
    snap = {"machine": _machine_busy_seconds(), "wrk": _children_seconds()}
    for server in servers:
        snap[server.name] = _process_seconds(server.proc.pid)
        snap[server.name + ":sys"] = _process_system_seconds(server.proc.pid)
    return snap


def cpu_delta(before: dict[str, float], after: dict[str, float], seconds: float,
              target: str) -> dict[str, float]:
    """
    Cores used during a run: by the target server, by wrk, and by everything
    else on the machine (other servers included; "foreign" is what neither
    the target nor wrk used, so noise from other processes shows there).
    """
    used = {k: max(0.0, after[k] - before[k]) for k in before}
    target_s = used.get(target, 0.0)
    others = used["machine"] - target_s - used["wrk"]
    return {
        "server_cores": target_s / seconds,
        "wrk_cores": used["wrk"] / seconds,
        "foreign_cores": max(0.0, others) / seconds,
        "server_cpu_s": target_s,
        "server_system_share": used.get(target + ":sys", 0.0) / target_s if target_s else 0.0,
    }


# --------------------------------------------------------------------------
# HEAD through Debian's wrk
#
# wrk 4.x (Debian's 4.1.0 and upstream's last release alike) gives its HTTP
# parser no on_headers_complete callback, so after a response to HEAD that
# carries ``Content-Length: 4096`` -- as RFC 9110 says it should, and as
# FasterStore, the floor and moto send -- it waits for 4096 body bytes that never
# come, and a HEAD run completes no request at all. For HEAD runs only, wrk
# runs with this tiny LD_PRELOAD library: when a read() returns the start of
# an HTTP response, the digits of its Content-Length value are overwritten
# with zeros in wrk's buffer, so the parser ends the response at the blank
# line. The servers' bytes, the timing and the status code are untouched.

HEAD_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static ssize_t (*real_read)(int, void *, size_t);

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static void zero_content_length(char *buf, size_t n) {
    static const char name[] = "\r\ncontent-length:";
    const size_t m = sizeof(name) - 1;
    size_t i, j, k;
    if (n < 8 || memcmp(buf, "HTTP/1.", 7) != 0) return;
    for (i = 0; i + m <= n; i++) {
        if (buf[i] == '\r' && i + 3 < n && buf[i + 1] == '\n'
            && buf[i + 2] == '\r' && buf[i + 3] == '\n') return;
        for (j = 0; j < m && lower((unsigned char) buf[i + j]) == name[j]; j++) {}
        if (j == m) {
            for (k = i + m; k < n && (buf[k] == ' ' || buf[k] == '\t'); k++) {}
            for (; k < n && buf[k] >= '0' && buf[k] <= '9'; k++) buf[k] = '0';
            return;
        }
    }
}

ssize_t read(int fd, void *buf, size_t count) {
    ssize_t n;
    if (real_read == NULL) real_read = (ssize_t (*)(int, void *, size_t)) dlsym(RTLD_NEXT, "read");
    n = real_read(fd, buf, count);
    if (n > 0) zero_content_length((char *) buf, (size_t) n);
    return n;
}
"""


def build_head_shim(workdir: Path) -> Path:
    """
    Compile the HEAD shim for wrk into ``workdir``; needs a C compiler.
    """
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        raise BenchError("HEAD runs need a C compiler (Debian: gcc) to build the wrk HEAD "
                         "shim; install it or leave HEAD out with --operations PUT,GET")
    source = workdir / "wrk_head_shim.c"
    library = workdir / "wrk_head_shim.so"
    source.write_text(HEAD_SHIM_C)
    out = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise BenchError("building the wrk HEAD shim failed:\n" + out.stderr)
    return library


# --------------------------------------------------------------------------
# wrk


def failed_run(problems: list[str], command: list[str] | None = None,
               threads: int = 0) -> dict[str, Any]:
    """
    The result of a non-strict run that produced no wrk figures at all.
    """
    return {
        "requests": 0, "rps": None, "p50_us": None, "p90_us": None, "p99_us": None,
        "max_us": None, "mean_us": None, "non2xx": 0, "socket_errors": {},
        "status_errors": 0, "samples": [], "threads": threads, "command": command or [],
        "valid": False, "problems": problems,
    }


def run_wrk(wrk: str, target: Server, url_file: Path, concurrency: int, threads: int,
            duration: float, start: int, body_mode: str, workdir: Path, label: str,
            timeout: float, preload: Path | None = None, strict: bool = True) -> dict[str, Any]:
    """
    One wrk run; return its parsed ``FSBENCH_RESULT`` or raise BenchError.

    ``timeout`` is wrk's per-request timeout (a request slower than that
    counts as an error); ``preload`` is the HEAD shim for HEAD runs.

    With ``strict`` false (the moto peer) nothing raises: the result gets
    ``valid`` and ``problems`` (a list of strings, empty for a clean run),
    and a run that produced no figures comes back from ``failed_run``.
    """
    threads = max(1, min(threads, concurrency))
    command = [
        wrk, "-t%d" % threads, "-c%d" % concurrency, "-d%gs" % duration,
        # wrk reads whole seconds only ("2.5s" is a usage error).
        "--latency", "--timeout", "%ds" % max(1, math.ceil(timeout)), "-s", str(LUA), target.base_url,
        "--", str(url_file), str(threads), str(start), body_mode,
    ]
    env = dict(os.environ)
    if preload is not None:
        env["LD_PRELOAD"] = str(preload)
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 90, env=env)
    except subprocess.TimeoutExpired:
        if not strict:
            return failed_run(["wrk did not finish within %.0f s" % (duration + 90,)],
                              command, threads)
        raise BenchError("%s: wrk did not finish within %.0f s" % (label, duration + 90))
    (workdir / ("wrk-%s.log" % label)).write_text(
        " ".join(command) + "\n" + out.stdout + "\n--- stderr ---\n" + out.stderr)
    result = None
    for line in out.stdout.splitlines():
        if line.startswith("FSBENCH_RESULT "):
            result = json.loads(line[len("FSBENCH_RESULT "):])
    if out.returncode != 0 or result is None:
        if not strict:
            tail = [line for line in out.stderr.splitlines() if line.strip()][-3:]
            return failed_run(["wrk exited %d without a result: %s"
                               % (out.returncode, " / ".join(tail) or "(no stderr)")],
                              command, threads)
        raise BenchError("%s: wrk exited %d without a result:\n%s\n%s"
                         % (label, out.returncode, out.stdout[-3000:], out.stderr[-3000:]))
    problems = []
    if result["non2xx"]:
        problems.append("%d non-2xx responses" % (result["non2xx"],))
    if result["status_errors"] and not result["non2xx"]:
        problems.append("%d HTTP status errors" % (result["status_errors"],))
    sock = {k: v for k, v in result["socket_errors"].items() if v}
    if sock:
        problems.append("socket errors %s" % (sock,))
    if result["requests"] <= 0:
        problems.append("no completed requests")
    if not strict:
        result["valid"] = not problems
        result["problems"] = problems
    elif problems:
        raise BenchError("%s is INVALID: %s\nfirst errors:\n  %s\nwrk stderr:\n%s\n%s log tail:\n%s"
                         % (label, "; ".join(problems), "\n  ".join(result["samples"]) or "(none)",
                            out.stderr[-2000:], target.name, target.log_tail(30)))
    result["threads"] = threads
    result["command"] = command
    return result


# --------------------------------------------------------------------------
# report


def _ms(us: float | None) -> str:
    return "–" if us is None else "%.2f" % (us / 1000.0,)


def _ops(rps: float | None) -> str:
    return "–" if rps is None else "%.0f" % (rps,)


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if a and b and a.get("rps") and b.get("rps"):
        return "%.2f" % (a["rps"] / b["rps"],)
    return "–"


def _cpu_us(result: dict[str, Any] | None) -> str:
    if not result or not result.get("cpu") or result["cpu"].get("server_cpu_us_per_op") is None:
        return "–"
    return "%.0f" % (result["cpu"]["server_cpu_us_per_op"],)


def table(rows: list[dict[str, Any]], with_moto: bool = False, with_versioned: bool = False) -> str:
    """
    The markdown results table; the moto columns only ``with_moto`` (without
    them it is the table of the two-target driver, column for column), the
    versioned bucket's only ``with_versioned``. A moto run that had problems
    is marked ``†`` (see ``moto_problem_lines``). With ``--rounds``, one line
    per round (``#2``...); the floor and moto are in the first only.
    """
    head = "| operation | concurrency | FasterStore ops/s | p50 ms | p99 ms "
    align = "|---|---:|---:|---:|---:|"
    if with_versioned:
        head += "| versioned ops/s | p50 ms | p99 ms | versioned/unversioned "
        align += "---:|---:|---:|---:|"
    head += "| bare ops/s | p50 ms | p99 ms | FasterStore/bare "
    align += "---:|---:|---:|---:|"
    if with_moto:
        head += "| moto ops/s | p50 ms | p99 ms | FasterStore/moto "
        align += "---:|---:|---:|---:|"
    head += "| FasterStore CPU µs/op "
    align += "---:|"
    if with_versioned:
        head += "| versioned CPU µs/op "
        align += "---:|"
    head += "| bare CPU µs/op "
    align += "---:|"
    if with_moto:
        head += "| moto CPU µs/op "
        align += "---:|"
    head += "| other processes, cores |"
    align += "---:|"
    out = [head, align]

    for row in rows:
        fs, bare, moto = row.get("fasterstore"), row.get("bare"), row.get("moto")
        ver = row.get("versioned")
        foreign = [r["cpu"]["foreign_cores"] for r in (fs, ver, bare, moto) if r and r.get("cpu")]
        op = row["operation"]
        if row.get("round", 1) > 1:
            op += " #%d" % (row["round"],)
        cells = [op, "%d" % (row["concurrency"],),
                 _ops(fs and fs["rps"]), _ms(fs and fs["p50_us"]), _ms(fs and fs["p99_us"])]
        if with_versioned:
            cells += [_ops(ver and ver["rps"]), _ms(ver and ver["p50_us"]), _ms(ver and ver["p99_us"]),
                      _ratio(ver, fs)]
        cells += [_ops(bare and bare["rps"]), _ms(bare and bare["p50_us"]), _ms(bare and bare["p99_us"]),
                  _ratio(fs, bare)]
        if with_moto:
            mark = " †" if moto and moto.get("problems") else ""
            cells += [_ops(moto and moto["rps"]) + mark, _ms(moto and moto["p50_us"]),
                      _ms(moto and moto["p99_us"]), _ratio(fs, moto)]
        cells.append(_cpu_us(fs))
        if with_versioned:
            cells.append(_cpu_us(ver))
        cells.append(_cpu_us(bare))
        if with_moto:
            cells.append(_cpu_us(moto))
        cells.append("%.2f" % (max(foreign),) if foreign else "–")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def versions_summary(rows: list[dict[str, Any]]) -> list[str]:
    """
    Per operation and concurrency, the versioned bucket's ops/s over the
    unversioned one's: each round's ratio and their median, against the
    issue's target (within 15%), as markdown table lines.
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("fasterstore") and row.get("versioned"):
            groups.setdefault((row["operation"], row["concurrency"]), []).append(row)
    if not groups:
        return []
    out = ["| operation | concurrency | unversioned ops/s, each round | versioned ops/s, each round "
           "| versioned/unversioned, each round | median | p99 ms unversioned / versioned (medians) "
           "| server CPU µs/op unversioned / versioned (medians) | CPU ratio | within 15% (median ops/s ratio) |",
           "|---|---:|---|---|---|---:|---|---|---:|---|"]
    for (op, c), rs in groups.items():
        u = [r["fasterstore"]["rps"] for r in rs]
        v = [r["versioned"]["rps"] for r in rs]
        ratios = [b / a for a, b in zip(u, v) if a]
        med = statistics.median(ratios) if ratios else float("nan")
        p99u = statistics.median(r["fasterstore"]["p99_us"] for r in rs) / 1e3
        p99v = statistics.median(r["versioned"]["p99_us"] for r in rs) / 1e3
        cpu = [(r["fasterstore"]["cpu"]["server_cpu_us_per_op"], r["versioned"]["cpu"]["server_cpu_us_per_op"])
               for r in rs]
        cpu_u = statistics.median(a for a, _ in cpu if a)
        cpu_v = statistics.median(b for _, b in cpu if b)
        out.append("| %s | %d | %s | %s | %s | %.2f | %.2f / %.2f | %.0f / %.0f | %.2f | %s |" % (
            op, c, ", ".join("%.0f" % x for x in u), ", ".join("%.0f" % x for x in v),
            ", ".join("%.2f" % x for x in ratios), med, p99u, p99v, cpu_u, cpu_v, cpu_v / cpu_u,
            "yes" if med >= 0.85 else "NO"))
    return out


def version_counts(data_dir: Path, buckets: list[str]) -> dict[str, dict[str, int]]:
    """
    What the metadata database holds per bucket: ``objects`` rows (each
    key's latest version), ``versions`` rows (older versions and delete
    markers), and the most versions one key has; read-only, beside the
    running server (SQLite's WAL lets a reader in).
    """
    import sqlite3

    path = data_dir / "meta" / "metadata.sqlite"
    out: dict[str, dict[str, int]] = {}
    db = sqlite3.connect("file:%s?mode=ro" % (path,), uri=True, timeout=30)
    try:
        for bucket in buckets:
            objects = db.execute("SELECT count(*) FROM objects WHERE bucket = ?", (bucket,)).fetchone()[0]
            older, markers = db.execute(
                "SELECT count(*), coalesce(sum(delete_marker), 0) FROM versions WHERE bucket = ?",
                (bucket,)).fetchone()
            most = db.execute(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM versions "
                "WHERE bucket = ? GROUP BY key)", (bucket,)).fetchone()[0]
            out[bucket] = {"objects": objects, "older_versions": older, "delete_markers": markers,
                           "most_older_versions_of_one_key": most}
    finally:
        db.close()
    return out


def moto_problem_lines(rows: list[dict[str, Any]]) -> list[str]:
    """
    One line per moto run that had problems, for under the table.
    """
    return ["† moto %s c=%d: %s" % (row["operation"], row["concurrency"],
                                    "; ".join(row["moto"]["problems"]))
            for row in rows if row.get("moto") and row["moto"].get("problems")]


def group_commit_line(rows: list[dict[str, Any]], concurrencies: list[int]) -> str | None:
    """
    PUT at the highest concurrency over PUT at the lowest, for FasterStore.
    """
    lo, hi = min(concurrencies), max(concurrencies)
    if lo == hi:
        return None
    put = {r["concurrency"]: r for r in rows if r["operation"] == "PUT"}
    if lo not in put or hi not in put or not put[lo].get("fasterstore"):
        return None
    a, b = put[lo]["fasterstore"]["rps"], put[hi]["fasterstore"]["rps"]
    return ("Group commit: FasterStore PUT c=%d %.0f ops/s vs c=%d %.0f ops/s = %.1fx"
            % (hi, b, lo, a, b / a if a else float("nan")))


def metrics_sums(text: str | None) -> dict[str, tuple[float, float]]:
    """
    ``name -> (sum, count)`` for every fsync / group-commit summary or
    histogram in a prometheus text (labels ignored: added together).
    """
    sums: dict[str, list[float]] = {}
    for line in (text or "").splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        low = name.lower()
        if not ("fsync" in low or "batch" in low or "group" in low):
            continue
        for suffix, index in (("_sum", 0), ("_count", 1)):
            if name.endswith(suffix):
                try:
                    sums.setdefault(name[: -len(suffix)], [0.0, 0.0])[index] += float(value)
                except ValueError:
                    pass
    return {k: (v[0], v[1]) for k, v in sums.items()}


def metrics_delta_text(before: dict[str, tuple[float, float]],
                       after: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    """
    Per metric: how many observations a run added and their mean.
    """
    out = {}
    for name, (total, count) in after.items():
        t0, c0 = before.get(name, (0.0, 0.0))
        n = count - c0
        if n > 0:
            out[name] = {"count": n, "mean": (total - t0) / n}
    return out


def metrics_summary(text: str) -> list[str]:
    """
    The metric lines about fsync and group commit, without histogram buckets.
    """
    keep = []
    for line in text.splitlines():
        if line.startswith("#") or "_bucket" in line or "_created" in line:
            continue
        low = line.lower()
        if "fsync" in low or "group" in low or "batch" in low:
            keep.append(line)
    return keep


# --------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="4 KiB PUT/GET/HEAD through presigned SigV4 URLs with wrk: "
                    "FasterStore beside a bare twisted.web floor and moto.")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (10)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 s runs and smaller key sets")
    parser.add_argument("--no-fsync", action="store_true",
                        help="run FasterStore with --no-fsync (unsafe mode)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma list (1,16,64)")
    parser.add_argument("--operations", default="PUT,GET,HEAD", help="comma list (PUT,GET,HEAD)")
    parser.add_argument("--threads", type=int, default=2,
                        help="wrk -t, capped at the concurrency (2)")
    parser.add_argument("--write-keys", type=int, default=None,
                        help="fresh keys presigned for PUT runs (60000; 10000 with --quick); "
                             "when used up, PUTs wrap round and overwrite")
    parser.add_argument("--read-keys", type=int, default=None,
                        help="objects seeded for GET/HEAD (2000; 500 with --quick)")
    parser.add_argument("--fixed-body", action="store_true",
                        help="send the same 4 KiB on every PUT (lets content dedup skip "
                             "writes); default: each PUT body is distinct")
    parser.add_argument("--bare-only", action="store_true",
                        help="leave FasterStore out: measure the floor (and moto unless "
                             "--no-moto); tests this harness without FasterStore")
    parser.add_argument("--no-moto", action="store_true",
                        help="leave moto out (by default it is measured too and must be "
                             "importable: pip install 'moto[server]')")
    parser.add_argument("--moto-start-timeout", type=float, default=60.0,
                        help="seconds to wait for moto's server to answer (60)")
    parser.add_argument("--bare-access-log", action="store_true",
                        help="let the floor log every request like a default Site")
    parser.add_argument("--tmp-dir", default=None,
                        help="parent of the temporary data dir (default: the system temp dir); "
                             "its filesystem is what fsync is measured on")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--start-timeout", type=float, default=60.0,
                        help="seconds to wait for /_fasterstore/health/ready (60)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for the fasterstore plugin (repeatable)")
    parser.add_argument("--versioned", action="store_true",
                        help="enable versioning on the bench bucket (FasterStore's and moto's) "
                             "before the load (boto3 put_bucket_versioning)")
    parser.add_argument("--versioned-beside", action="store_true",
                        help="measure a second FasterStore row in the same run: bucket %s on the "
                             "same server, versioning enabled, seeded and loaded like the bench "
                             "bucket, each run right after (or before) the unversioned one"
                             % (VERSIONED_BUCKET,))
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure FasterStore's rows this many times per operation and "
                             "concurrency, alternating which of the two runs first; the floor "
                             "and moto in the first round only (1)")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="wrk binary")
    args = parser.parse_args(argv)
    if args.versioned and args.versioned_beside:
        parser.error("--versioned and --versioned-beside: choose one (beside compares the "
                     "unversioned bench bucket with a versioned one)")
    if (args.versioned or args.versioned_beside) and args.bare_only:
        parser.error("--versioned and --versioned-beside need FasterStore (not --bare-only)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.quick:
        if args.duration == 10.0:
            args.duration = 2.0
        args.write_keys = args.write_keys or 10000
        args.read_keys = args.read_keys or 500
    args.write_keys = args.write_keys or 60000
    args.read_keys = args.read_keys or 2000
    args.concurrency_list = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.operation_list = [o.strip().upper() for o in args.operations.split(",") if o.strip()]
    for op in args.operation_list:
        if op not in OPERATIONS:
            parser.error("unknown operation %r" % (op,))
    if not args.concurrency_list or min(args.concurrency_list) < 1:
        parser.error("concurrency must be positive integers")
    return args


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    if not shutil.which(args.wrk):
        print("wrk not found: install the Debian package 'wrk'", file=sys.stderr)
        return 2
    moto_version = None
    if not args.no_moto:
        try:
            moto_version = check_moto()
        except BenchError as e:
            print("BENCHMARK FAILED: %s" % (e,), file=sys.stderr)
            return 2

    workdir = Path(tempfile.mkdtemp(prefix="fasterstore-bench-", dir=args.tmp_dir))
    data_dir = workdir / "data"
    data_dir.mkdir()
    servers: list[Server] = []
    report: dict[str, Any] = {"rows": [], "notes": []}
    t_begin = time.monotonic()
    status = 1
    try:
        info = machine_info(workdir, args.wrk, moto_version)
        probe = fsync_probe(workdir)
        report["machine"] = info
        report["fsync_probe"] = probe
        print("## Machine")
        print()
        for k, v in info.items():
            print("- %s: %s" % (k, v))
        print("- raw 4 KiB write+fsync on the data dir: p50 %.2f ms, p99 %.2f ms (%d samples)"
              % (probe["p50_ms"], probe["p99_ms"], probe["samples"]))
        print("- wrk and the servers share these %s CPUs" % (info["usable_cpus"],))
        print()
        sys.stdout.flush()

        access_key = "BENCH" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)

        bare = start_bare(workdir, args.bare_access_log)
        servers.append(bare)
        fs: Server | None = None
        moto: Server | None = None
        if not args.bare_only:
            fs = start_fasterstore(workdir, data_dir, access_key, secret_key,
                                   args.no_fsync, args.server_arg)
            servers.append(fs)
        if moto_version is not None:
            moto = start_moto(workdir)
            servers.append(moto)
        if fs:
            waited = wait_ready(fs, args.start_timeout)
            print("FasterStore ready after %.2f s: %s" % (waited, " ".join(fs.command)))
        if moto:
            # any 2xx (moto answers this GET with 201)
            waited = wait_ready(moto, args.moto_start_timeout, path="/moto-api/config",
                                ok=tuple(range(200, 300)))
            print("moto %s ready after %.2f s: %s" % (moto_version, waited, " ".join(moto.command)))
            report["moto"] = {"version": moto_version, "command": moto.command,
                              "ready_seconds": waited, "verifies_signatures": False}
        signing_port = fs.port if fs else bare.port
        endpoint = "http://127.0.0.1:%d" % (signing_port,)
        client = s3_client(endpoint, access_key, secret_key)
        if fs:
            client.create_bucket(Bucket=BUCKET)
            if args.versioned:
                client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
            if args.versioned_beside:
                client.create_bucket(Bucket=VERSIONED_BUCKET)
                client.put_bucket_versioning(Bucket=VERSIONED_BUCKET,
                                             VersioningConfiguration={"Status": "Enabled"})
            for name in [BUCKET] + ([VERSIONED_BUCKET] if args.versioned_beside else []):
                state = client.get_bucket_versioning(Bucket=name).get("Status", "never enabled")
                print("FasterStore bucket %s: versioning %s" % (name, state))
        if moto:
            # the only requests moto gets that are signed for its own endpoint;
            # they also load moto's S3 backend before anything is timed
            moto_client = s3_client(moto.base_url, access_key, secret_key)
            moto_client.create_bucket(Bucket=BUCKET)
            if args.versioned:
                moto_client.put_bucket_versioning(Bucket=BUCKET,
                                                  VersioningConfiguration={"Status": "Enabled"})

        t0 = time.monotonic()
        write_keys = ["w/%07d" % i for i in range(args.write_keys)]
        read_keys = ["r/%07d" % i for i in range(args.read_keys)]

        def url_files(bucket: str, suffix: str) -> tuple[dict[str, Path], list[str], list[str], list[str]]:
            files = {
                "PUT": workdir / ("put-urls%s.txt" % suffix),
                "GET": workdir / ("get-urls%s.txt" % suffix),
                "HEAD": workdir / ("head-urls%s.txt" % suffix),
                # OVERWRITE: PUTs through the read set's URLs, each replacing an object
                "OVERWRITE": workdir / ("seed-put-urls%s.txt" % suffix),
            }
            write_url_file(files["PUT"], client, "PUT", write_keys, bucket)
            seed_put = write_url_file(files["OVERWRITE"], client, "PUT", read_keys, bucket)
            get_urls = write_url_file(files["GET"], client, "GET", read_keys, bucket)
            head_urls = write_url_file(files["HEAD"], client, "HEAD", read_keys, bucket)
            return files, seed_put, get_urls, head_urls

        files, seed_put, get_urls, head_urls = url_files(BUCKET, "")
        presigned = len(write_keys) + 3 * len(read_keys)
        vfiles: dict[str, Path] = {}
        if fs and args.versioned_beside:
            vfiles, vseed_put, vget_urls, vhead_urls = url_files(VERSIONED_BUCKET, "-versioned")
            presigned *= 2
        print("presigned %d URLs in %.1f s" % (presigned, time.monotonic() - t0))
        if fs:
            seeded = seed(fs.port, seed_put, get_urls, head_urls, deadline=time.monotonic() + 300)
            report["seed"] = seeded
            print("seeded %d objects with 16 Python clients in %.1f s (%.0f PUT/s); sample read back identical"
                  % (seeded["objects"], seeded["seconds"], seeded["ops_per_s"]))
            if vfiles:
                seeded = seed(fs.port, vseed_put, vget_urls, vhead_urls, deadline=time.monotonic() + 300)
                report["seed_versioned"] = seeded
                print("seeded the same %d keys in versioned bucket %s in %.1f s (%.0f PUT/s); sample read "
                      "back identical" % (seeded["objects"], VERSIONED_BUCKET, seeded["seconds"],
                                          seeded["ops_per_s"]))
        if moto:
            # moto checks no signature and takes a 127.0.0.1:PORT Host as
            # path-style, so the URLs signed for FasterStore serve it as they are
            try:
                seeded = seed(moto.port, seed_put, get_urls, head_urls,
                              deadline=time.monotonic() + 300)
            except BenchError as e:
                raise BenchError("moto: %s\nmoto log tail:\n%s" % (e, moto.log_tail(20)))
            report["moto"]["seed"] = seeded
            print("seeded moto with the same %d keys (fresh random bodies) in %.1f s (%.0f PUT/s); sample read back identical"
                  % (seeded["objects"], seeded["seconds"], seeded["ops_per_s"]))
        print()
        sys.stdout.flush()

        body_mode = "fixed" if args.fixed_body else "unique"
        head_shim = build_head_shim(workdir) if "HEAD" in args.operation_list else None
        # A GET/HEAD of 4 KiB slower than this is a failure, and a timeout
        # shorter than the run is what makes wrk report a stuck connection.
        read_timeout = max(0.5, min(5.0, args.duration / 2))
        put_timeout = 30.0
        # What each row measures. FasterStore's and the floor's PUT runs share
        # one start (the floor gets the same request bytes); the versioned
        # bucket and moto keep their own (different URLs, different counts).
        pools: dict[str, dict[str, Any]] = {"fs": {"start": 0, "wrapped": False},
                                            "versioned": {"start": 0, "wrapped": False},
                                            "moto": {"start": 0, "wrapped": False}}
        targets: list[Target] = []
        if fs:
            targets.append(Target("fasterstore", fs, files, pools["fs"], "fasterstore"))
            if vfiles:
                targets.append(Target("versioned", fs, vfiles, pools["versioned"], "fasterstore-versioned"))
        targets.append(Target("bare", bare, files, pools["fs"], "bare"))
        if moto:
            targets.append(Target("moto", moto, files, pools["moto"], "moto", strict=False))
        busiest_foreign = 0.0
        for op in args.operation_list:
            method = "PUT" if op == "OVERWRITE" else op
            for c in args.concurrency_list:
                for rnd in range(args.rounds):
                    row: dict[str, Any] = {"operation": op, "concurrency": c, "round": rnd + 1}
                    ours = [t for t in targets if t.server is fs]
                    if rnd % 2:
                        ours.reverse()  # alternate which FasterStore row runs first
                    # the floor and moto: in the first round only
                    todo = ours + ([t for t in targets if t.server is not fs] if rnd == 0 else [])
                    for target in todo:
                        label = "%s-%s-c%d" % (target.label, op, c)
                        if args.rounds > 1:
                            label += "-r%d" % (rnd + 1,)
                        start = target.pool["start"] if op == "PUT" else 0
                        metrics_before = (metrics_sums(fetch_metrics(fs.port))
                                          if fs and target.server is fs else {})
                        cpu_before = cpu_snapshot(servers)
                        t_run = time.monotonic()
                        if not target.strict and target.server.proc.poll() is not None:
                            # a weak peer does not stop the benchmark: say so in its row
                            result = failed_run(["%s is not running (exit status %s; log: %s)"
                                                 % (target.server.name, target.server.proc.returncode,
                                                    target.server.log_path)])
                        else:
                            result = run_wrk(args.wrk, target.server, target.files[op], c, args.threads,
                                             args.duration, start, body_mode, workdir, label,
                                             timeout=put_timeout if method == "PUT" else read_timeout,
                                             preload=head_shim if op == "HEAD" else None,
                                             strict=target.strict)
                        cpu: dict[str, Any] = cpu_delta(cpu_before, cpu_snapshot(servers),
                                                        time.monotonic() - t_run, target.server.name)
                        cpu["server_cpu_us_per_op"] = (
                            cpu["server_cpu_s"] * 1e6 / result["requests"]
                            if result["requests"] else None)
                        result["cpu"] = cpu
                        busiest_foreign = max(busiest_foreign, cpu["foreign_cores"])
                        extra = ""
                        if metrics_before:
                            assert fs is not None
                            result["metrics"] = metrics_delta_text(
                                metrics_before, metrics_sums(fetch_metrics(fs.port)))
                            for name, m in sorted(result["metrics"].items()):
                                short = name.replace("fasterstore_", "")
                                mean = ("%.2f ms" % (m["mean"] * 1e3) if name.endswith("seconds")
                                        else "%.1f" % (m["mean"],))
                                extra += "\n    %s: %d observations, mean %s" % (short, m["count"], mean)
                        if result.get("problems"):
                            extra += "\n    PROBLEMS (recorded, not fatal for moto): %s" % (
                                "; ".join(result["problems"]),)
                            for sample in result["samples"][:3]:
                                extra += "\n      " + " ".join(sample.split())[:200]
                        row[target.key] = result
                        print("%-24s %8s ops/s  p50 %7s ms  p99 %7s ms  (%d requests)  "
                              "cores: server %.2f wrk %.2f other %.2f; server CPU %s us/op (%.0f%% kernel)"
                              % (label, _ops(result["rps"]), _ms(result["p50_us"]),
                                 _ms(result["p99_us"]), result["requests"],
                                 cpu["server_cores"], cpu["wrk_cores"], cpu["foreign_cores"],
                                 _cpu_us(result), 100 * cpu["server_system_share"])
                              + extra)
                        sys.stdout.flush()
                        if op == "PUT" and target.key != "bare":
                            # the next PUT run of this pool starts on keys this one did not
                            # touch; timed-out and reset requests (moto) were sent too
                            target.pool["start"] += (result["requests"] + 2 * c + 2
                                                     + sum(result["socket_errors"].values()))
                            if target.pool["start"] >= args.write_keys:
                                target.pool["wrapped"] = True
                        time.sleep(0.5)
                    report["rows"].append(row)

        report["busiest_foreign_cores"] = busiest_foreign
        if busiest_foreign > 0.2:
            report["notes"].append(
                "WARNING: other processes used up to %.2f cores during a run: the machine "
                "was not quiet, numbers are noisy" % (busiest_foreign,))
        if pools["fs"]["wrapped"]:
            report["notes"].append(
                "the PUT key pool (%d keys) was used up: later PUTs overwrote existing keys; "
                "raise --write-keys" % (args.write_keys,))
        if pools["versioned"]["wrapped"]:
            report["notes"].append(
                "the versioned bucket's PUT key pool (%d keys) was used up: later PUTs added "
                "versions to existing keys; raise --write-keys" % (args.write_keys,))
        if pools["moto"]["wrapped"]:
            report["notes"].append(
                "moto used up the PUT key pool (%d keys): its later PUTs overwrote existing "
                "keys; raise --write-keys" % (args.write_keys,))
        moto_problems = moto_problem_lines(report["rows"])
        if moto_problems:
            report["notes"].append(
                "%d moto run(s) had problems (marked †): their figures are not a clean "
                "measurement of moto; FasterStore's and the floor's runs were all valid"
                % (len(moto_problems),))
        if fs and (args.versioned or vfiles):
            buckets = [BUCKET] + ([VERSIONED_BUCKET] if vfiles else [])
            report["version_counts"] = version_counts(data_dir, buckets)
        if fs:
            metrics = fetch_metrics(fs.port)
            if metrics is None:
                report["notes"].append("/_fasterstore/metrics did not answer 200")
            else:
                (workdir / "metrics.txt").write_text(metrics)
                report["metrics_fsync_group_commit"] = metrics_summary(metrics)

        mode = "fsync OFF (--no-fsync, unsafe)" if args.no_fsync else "fsync ON (default)"
        print()
        versioning = ""
        if args.versioned:
            versioning = ", bucket %s versioned" % (BUCKET,)
        elif vfiles:
            versioning = ", bucket %s unversioned beside %s versioned (same server)" % (
                BUCKET, VERSIONED_BUCKET)
        print("## Results: 4 KiB objects, %s, wrk -t%d (capped at c) -d%gs, %s PUT bodies%s%s"
              % (mode, args.threads, args.duration, body_mode, versioning,
                 ", %d rounds" % (args.rounds,) if args.rounds > 1 else ""))
        print()
        print(table(report["rows"], with_moto=moto is not None, with_versioned=bool(vfiles)))
        print()
        summary = versions_summary(report["rows"])
        if summary:
            print("Versioned bucket against unversioned, same server, same run:")
            print()
            for line in summary:
                print(line)
            print()
        for bucket, counts in sorted(report.get("version_counts", {}).items()):
            print("bucket %s after the load: %d objects (latest versions), %d older versions, "
                  "%d delete markers; at most %d older versions on one key"
                  % (bucket, counts["objects"], counts["older_versions"], counts["delete_markers"],
                     counts["most_older_versions_of_one_key"]))
        if report.get("version_counts"):
            print()
        for line in moto_problem_lines(report["rows"]):
            print(line)
        if moto:
            print("moto: %s via python -m moto.server (werkzeug's threaded server, which "
                  "closes the connection after every response); signatures not verified"
                  % (moto_version,))
            print()
        gc = group_commit_line(report["rows"], args.concurrency_list)
        if gc:
            print(gc)
            report["group_commit"] = gc
        for note in report["notes"]:
            print("Note:", note)
        if report.get("metrics_fsync_group_commit"):
            print()
            print("FasterStore fsync / group-commit metrics after the run:")
            for line in report["metrics_fsync_group_commit"]:
                print("    " + line)
        status = 0
    except BenchError as e:
        print("\nBENCHMARK FAILED: %s" % (e,), file=sys.stderr)
        report["error"] = str(e)
        status = 1
    except Exception as e:  # boto3 errors, OSError...: still a loud failure
        import traceback

        traceback.print_exc()
        print("\nBENCHMARK FAILED: %r" % (e,), file=sys.stderr)
        for server in servers:
            if server.proc.poll() is not None:
                print("%s exited with status %s; log tail:\n%s"
                      % (server.name, server.proc.returncode, server.log_tail()), file=sys.stderr)
        report["error"] = repr(e)
        status = 1
    except KeyboardInterrupt as e:
        print("\ninterrupted (%s)" % (e or "SIGINT",), file=sys.stderr)
        status = 130
    finally:
        for server in reversed(servers):
            try:
                message = stop(server)
            except Exception as e:  # keep stopping the others
                message = "stopping %s failed: %r" % (server.name, e)
            print(message, file=sys.stderr)
            report.setdefault("stops", []).append(message)
            # twistd re-raises the signal it stopped on, so -SIGTERM is a clean stop
            if (status == 0 and server.name == "fasterstore"
                    and server.proc.returncode not in (0, None, -signal.SIGTERM)):
                print("fasterstore log tail:\n" + server.log_tail(20), file=sys.stderr)
        if args.json:
            report["args"] = {k: v for k, v in vars(args).items()}
            report["status"] = status
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        if args.keep:
            print("kept %s" % (workdir,), file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        print("total %.0f s" % (time.monotonic() - t_begin,), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
