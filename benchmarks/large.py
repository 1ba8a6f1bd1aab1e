#!/usr/bin/env python3
"""
Large objects: single-stream PUT and GET of 256 MiB, time to first byte of
a 20 MiB GET, 1 GiB multipart uploads and the server's memory, measured
against FasterStore (``measure_s3``) or a static server such as nginx
(``measure_plain``), next to the box's own limits (``box_limits``).

Method
======

**The cheap client.**  A large-object benchmark measures whichever side is
slower, and a Python S3 client is easily the slower side: boto3 hashes and
signs the body, copies it through several buffers and, over plain HTTP,
checksums it again.  So every single-stream figure here comes from a client
that does (almost) no work per byte:

* the request is signed once, before the clock starts, as a presigned SigV4
  URL (botocore ``generate_presigned_url``; presigned PUTs are
  ``UNSIGNED-PAYLOAD``, so nothing hashes the body), and written to a raw
  socket as a hand-made HTTP/1.1 head;
* a PUT body goes from a file on disk (already in the page cache: it is
  written and fsynced before any measurement) to the socket with
  ``socket.sendfile``: the kernel copies page-cache pages into the socket,
  no byte enters Python;
* a GET body is read with ``recv_into`` a preallocated 1 MiB buffer and
  discarded: one kernel copy per byte and a Python call per ~64-1024 KiB.

Its cost is reported with every figure (``client_cpu_seconds``:
``getrusage(RUSAGE_SELF)``, so the 50 ms RSS sampler thread is in it too) next
to the server's (``server_cpu_seconds``: user+system ticks of the given pids
and their children from ``/proc/PID/stat``).  The client spends a small
fraction of the server's CPU on the same bytes; with ``main()``'s pinning
(server on CPU 0, client on CPU 1) the two do not even share a core, so the
client cannot be the bottleneck, and the JSON shows by how much.

**Checks.**  Every non-2xx answer raises ``BenchError`` (for FasterStore and
for the static server alike: the suite decides whether a peer's failure is
fatal).  A FasterStore PUT must answer 200 with an ETag equal to the MD5 of
the body (known in advance, so this check is free); a multipart part must
answer its part's MD5; a completed upload must have the expected size and
ETag ``<md5 of the part MD5s>-<parts>``.  A GET must answer 200 with the
expected Content-Length and exactly that many bytes; the bytes themselves
are MD5-verified in one extra, untimed GET before the timed ones (MD5 runs
at about the speed a server may serve, so hashing inside the timed runs
could make the client the bottleneck).  The static server's files are
verified the same way against an ``.md5`` file written beside them by
``prepare_static``.

**Unique bodies.**  FasterStore deduplicates whole blobs by their BLAKE3
hash, so sending the same bytes twice would measure a different path the
second time.  Every request body therefore ends in 4 KiB of fresh random
"salt" sent from memory after the ``sendfile`` of the file range; the MD5 of
the range is computed once while the file is generated and copied
(``hashlib`` ``copy()``) for each salt.  boto3's upload sends the file as it
is, which no other upload does.

**Time to first byte.**  One keep-alive connection, requests in sequence:
the clock starts when the request head has been written and stops when the
first body byte has been received (headers alone do not count).  The rest of
each body is read and discarded rather than the connection closed: closing
mid-body would measure the server's abort path, leave it writing into a dead
socket while the next sample starts, and add a connect to every sample.

**Memory.**  ``VmRSS`` of every given pid and of its children (``--workers
N`` has a parent and N workers) from ``/proc/PID/status``: before anything
(``idle_MB``), sampled every 50 ms by a background thread for the whole
measurement (``peak_MB``, with the kernel's ``VmHWM`` beside it: the peak
over the process's life), and 1 s after a single-stream PUT of 2 GiB
(512 MiB with ``quick``) at the end (``after_2GiB_MB``).

Units: ``MBps`` is 10^6 bytes per second (as ``dd`` prints); sizes in names
are binary (256 MiB = 268,435,456 bytes); memory ``*_MB`` is MiB (``VmRSS``
kB / 1024).

Run alone (starts FasterStore itself, prints JSON; wrap it in ``flock
/tmp/bench.lock`` on a shared box)::

    .venv/bin/python benchmarks/large.py --quick               # FasterStore, --workers 1, pinned
    .venv/bin/python benchmarks/large.py --quick --workers 2   # two workers, not pinned
    .venv/bin/python benchmarks/large.py --quick --nginx       # nginx (apt-get install nginx), same client

The suite imports it (``import large``) and calls ``box_limits``,
``prepare_static``, ``measure_s3`` and ``measure_plain``.
"""

from __future__ import annotations

import argparse
import bisect
import concurrent.futures
import functools
import hashlib
import json
import math
import os
import platform
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Optional, Sequence

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run as harness  # noqa: E402  (benchmarks/run.py: processes, clients, /proc CPU)
from run import BenchError  # noqa: E402

from fasterstore.durable import syncDirectory  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
MB = 1e6  # throughput unit: 10^6 bytes, as dd prints it

SALT = 4 * KiB  # fresh random tail of every cheap-client body: no two bodies alike
RECV_BUFFER = MiB  # the preallocated buffer GET bodies are read into
HEAD_LIMIT = 64 * KiB  # a response head larger than this is an error
SOCKET_TIMEOUT = 300.0  # seconds one socket operation may block
PART_SIZE = 16 * MiB
PART_CONCURRENCY = 4
SAMPLE_INTERVAL = 0.05  # the RSS sampler's period

ACCESS_KEY = "LARGEBENCHACCESS0001"
SECRET_KEY = "large-bench-secret-key-000000000000000000"
BUCKET = "large"

#: prepare_static's names, which are also measure_plain's result keys
STATIC_FILES = {"get_256MiB": ("large-256MiB.bin", 256 * MiB),
                "ttfb_20MiB": ("large-20MiB.bin", 20 * MiB)}


@dataclass(frozen=True)
class Sizes:
    """How much each scenario moves; ``quick`` shrinks the long ones."""

    single: int  # single-stream PUT/GET
    ttfb_object: int
    ttfb_samples: int
    multipart: int  # also the body file's size
    big_put_copies: int  # the RSS PUT sends the body file this many times
    repeats: int  # timed runs of each single-stream scenario

    @property
    def big_put(self) -> int:
        return self.multipart * self.big_put_copies


def sizes(quick: bool) -> Sizes:
    """The documented sizes, or the quick ones (same shapes, less data)."""
    if quick:
        return Sizes(single=256 * MiB, ttfb_object=20 * MiB, ttfb_samples=20,
                     multipart=256 * MiB, big_put_copies=2, repeats=2)
    return Sizes(single=256 * MiB, ttfb_object=20 * MiB, ttfb_samples=100,
                 multipart=GiB, big_put_copies=2, repeats=3)


# --------------------------------------------------------------------------
# the box's limits


def _dd_fdatasync(data_dir: Path, count_mib: int) -> dict[str, Any]:
    """
    ``dd ... conv=fdatasync`` of ``count_mib`` MiB into ``data_dir``: the
    filesystem's sequential durable-write rate, the ceiling of a durable PUT.
    """
    path = data_dir / ("large-dd-probe-%s" % (secrets.token_hex(4),))
    env = dict(os.environ, LC_ALL="C")  # a decimal point, not a comma
    try:
        out = subprocess.run(
            ["dd", "if=/dev/zero", "of=%s" % (path,), "bs=1M", "count=%d" % (count_mib,),
             "conv=fdatasync"],
            capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    finally:
        path.unlink(missing_ok=True)
    lines = [line for line in out.stderr.splitlines() if " copied, " in line]
    if out.returncode != 0 or not lines:
        raise BenchError("dd failed (status %d): %s" % (out.returncode, out.stderr.strip()))
    line = lines[-1]  # "268435456 bytes (268 MB, 256 MiB) copied, 0.401 s, 669 MB/s"
    nbytes = int(line.split()[0])
    seconds = float(line.split(" copied, ", 1)[1].split(" s", 1)[0])
    return {"MBps": nbytes / seconds / MB, "seconds": seconds, "bytes": nbytes, "dd": line}


def _hash_rate(new: Callable[[], Any], buffer: memoryview, rounds: int = 3) -> float:
    """MB/s of one hash over ``buffer`` in 1 MiB updates, best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        h = new()
        t0 = time.perf_counter()
        for start in range(0, len(buffer), MiB):
            h.update(buffer[start:start + MiB])
        h.digest()
        best = min(best, time.perf_counter() - t0)
    return len(buffer) / best / MB


def box_limits(data_dir: Path, quick: bool) -> dict[str, Any]:
    """
    What this box can do at best, to read the servers' figures against: the
    durable sequential write rate of ``data_dir``'s filesystem and one core's
    MD5 / SHA-256 / BLAKE3 rates (a server that hashes every byte with one of
    them cannot go faster than that on one core).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    dd = _dd_fdatasync(data_dir, 64 if quick else 256)
    buffer = memoryview(os.urandom(64 * MiB))
    limits: dict[str, Any] = {
        "dd_fdatasync_MBps": dd["MBps"],
        "dd": dd["dd"],
        "md5_MBps": _hash_rate(hashlib.md5, buffer),
        "sha256_MBps": _hash_rate(hashlib.sha256, buffer),
    }
    try:
        import blake3
    except ImportError as e:
        limits["blake3_MBps"] = None
        limits["blake3_error"] = repr(e)
    else:
        limits["blake3_MBps"] = _hash_rate(blake3.blake3, buffer)  # one thread, as a server would
    limits["hash_buffer"] = "64 MiB in 1 MiB updates, best of 3, on CPU(s) %s" % (
        sorted(os.sched_getaffinity(0)),)
    return limits


# --------------------------------------------------------------------------
# body files: random bytes on disk and the MD5 of what will be sent


class BodyFile:
    """
    A file of ``size`` random bytes (``os.urandom`` in 1 MiB chunks), written
    and fsynced before any measurement (its writeback must not compete with
    the server's), with the MD5 states the checks need, taken while writing:
    of every prefix in ``prefixes``, of each ``part_size`` part, and of each
    part but its last ``SALT`` bytes (a cheap-client part is that plus salt).
    """

    def __init__(self, path: Path, size: int, part_size: int, prefixes: Iterable[int]) -> None:
        if size % part_size:
            raise ValueError("size %d is not a multiple of the part size %d" % (size, part_size))
        self.path = path
        self.size = size
        self.part_size = part_size
        self.parts = size // part_size
        self.prefix_states: dict[int, Any] = {}
        self.part_md5: list[bytes] = []  # raw digests of the parts as they are in the file
        self.part_unsalted: list[Any] = []  # MD5 state of part[:-SALT]
        wanted = set(prefixes)
        marks = sorted(wanted | {k * part_size - SALT for k in range(1, self.parts + 1)}
                       | {k * part_size for k in range(1, self.parts + 1)})
        whole = hashlib.md5()
        part = hashlib.md5()
        pos = 0
        with open(path, "wb") as f:
            while pos < size:
                chunk = memoryview(os.urandom(min(MiB, size - pos)))
                f.write(chunk)
                start = 0
                while start < len(chunk):
                    i = bisect.bisect_right(marks, pos + start)
                    stop = min(marks[i] if i < len(marks) else size, pos + len(chunk)) - pos
                    whole.update(chunk[start:stop])
                    part.update(chunk[start:stop])
                    start = stop
                    at = pos + start
                    if at in wanted:
                        self.prefix_states[at] = whole.copy()
                    if at % part_size == part_size - SALT:
                        self.part_unsalted.append(part.copy())
                    if at % part_size == 0:
                        self.part_md5.append(part.digest())
                        part = hashlib.md5()
                pos += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        syncDirectory(str(path.parent))
        self.whole = whole
        missing = wanted - set(self.prefix_states)
        if missing or len(self.part_md5) != self.parts:
            raise AssertionError("body file bookkeeping is wrong: %r" % (missing,))

    def prefix_body(self, size: int) -> "Body":
        """``size`` bytes: the file's first ``size - SALT`` bytes and fresh salt."""
        salt = os.urandom(SALT)
        md5 = self.prefix_states[size - SALT].copy()
        md5.update(salt)
        return Body(((0, size - SALT),), salt, md5.hexdigest())

    def part_body(self, index: int) -> "Body":
        """Part ``index`` (from 0) of a cheap-client upload: the part's range, fresh salt."""
        salt = os.urandom(SALT)
        md5 = self.part_unsalted[index].copy()
        md5.update(salt)
        return Body(((index * self.part_size, self.part_size - SALT),), salt, md5.hexdigest())

    def repeated_body(self, copies: int) -> "Body":
        """
        The whole file ``copies`` times (less ``SALT`` bytes) and salt: a body
        larger than the file.  Hashes the file again (copies - 1 times), untimed.
        """
        md5 = self.whole.copy()
        with open(self.path, "rb") as f:
            for copy in range(1, copies):
                f.seek(0)
                left = self.size - (SALT if copy == copies - 1 else 0)
                while left:
                    data = f.read(min(MiB, left))
                    if not data:
                        raise BenchError("%s is shorter than it was" % (self.path,))
                    md5.update(data)
                    left -= len(data)
        salt = os.urandom(SALT)
        md5.update(salt)
        ranges = tuple((0, self.size) for _ in range(copies - 1)) + ((0, self.size - SALT),)
        return Body(ranges, salt, md5.hexdigest())

    def multipart_etag(self) -> str:
        """The ETag S3 gives the file uploaded as it is in ``part_size`` parts."""
        return "%s-%d" % (hashlib.md5(b"".join(self.part_md5)).hexdigest(), self.parts)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Body:
    """What one request sends: file ranges (offset, count), then ``salt`` from memory."""

    ranges: tuple[tuple[int, int], ...]
    salt: bytes
    md5: str

    @property
    def size(self) -> int:
        return sum(count for _, count in self.ranges) + len(self.salt)


# --------------------------------------------------------------------------
# the cheap client: a raw HTTP/1.1 connection


@dataclass
class Head:
    """A response's status line and headers, and body bytes that came with them."""

    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased
    rest: bytes

    def length(self) -> Optional[int]:
        value = self.headers.get("content-length")
        return int(value) if value is not None else None


def _target(url: str) -> tuple[str, str]:
    """(host[:port], path?query) of a URL, as the request line and Host want them."""
    parts = urllib.parse.urlsplit(url)
    return parts.netloc, parts.path + ("?" + parts.query if parts.query else "")


class Connection:
    """
    One HTTP/1.1 connection on a plain socket: request heads written by
    hand, bodies sent with ``socket.sendfile``, response bodies read with
    ``recv_into`` one preallocated buffer.  Nothing per byte in Python.
    """

    def __init__(self, netloc: str) -> None:
        host, _, port = netloc.rpartition(":")
        self.netloc = netloc
        self.sock = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buffer)
        self.reusable = True

    def close(self) -> None:
        self.sock.close()

    def send_head(self, method: str, target: str, length: Optional[int]) -> None:
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % (self.netloc,)]
        if length is not None:
            lines.append("Content-Length: %d" % (length,))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_body(self, body: Body, fileobj: BinaryIO) -> None:
        for offset, count in body.ranges:
            sent = self.sock.sendfile(fileobj, offset, count)
            if sent != count:
                raise BenchError("sendfile sent %d of %d bytes" % (sent, count))
        if body.salt:
            self.sock.sendall(body.salt)

    def read_head(self) -> Head:
        """Read up to the end of the response head (skipping 1xx answers)."""
        data = b""
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                head, data = data[:end], data[end + 4:]
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ", 2)
                if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                    raise BenchError("not an HTTP response: %r" % (lines[0][:200],))
                status = int(parts[1])
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if 100 <= status < 200:
                    continue  # 100 Continue: the real answer follows
                if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
                    self.reusable = False
                return Head(status, parts[2] if len(parts) > 2 else "", headers, data)
            if len(data) > HEAD_LIMIT:
                raise BenchError("response head over %d bytes" % (HEAD_LIMIT,))
            n = self.sock.recv_into(self.view)
            if n == 0:
                raise BenchError("connection closed before a response head (%d bytes)" % (len(data),))
            data += self.view[:n]

    def read_small_body(self, head: Head, limit: int = HEAD_LIMIT) -> bytes:
        """A short body (an error document, a PUT's answer), read whole."""
        if "chunked" in head.headers.get("transfer-encoding", "").lower():
            self.reusable = False
            return head.rest + self._read_until_close(limit)
        length = head.length()
        if length is None:
            self.reusable = False
            return head.rest + self._read_until_close(limit)
        data = head.rest
        while len(data) < length:
            n = self.sock.recv_into(self.view, min(len(self.view), length - len(data)))
            if n == 0:
                raise BenchError("connection closed %d bytes into a %d-byte body" % (len(data), length))
            data += self.view[:n]
            if len(data) > limit:
                raise BenchError("a %d-byte body where a short one was expected" % (length,))
        return data

    def _read_until_close(self, limit: int) -> bytes:
        data = b""
        self.sock.settimeout(2.0)
        try:
            while len(data) < limit:
                n = self.sock.recv_into(self.view)
                if n == 0:
                    break
                data += self.view[:n]
        except OSError:
            pass
        return data

    def discard_body(self, head: Head, md5: Any = None) -> int:
        """Read a Content-Length body into the buffer, discarding it (hashing it into ``md5``)."""
        length = head.length()
        if length is None:
            raise BenchError("a GET answer without Content-Length (headers %r)" % (head.headers,))
        got = len(head.rest)
        if md5 is not None:
            md5.update(head.rest)
        view, recv_into = self.view, self.sock.recv_into
        while got < length:
            n = recv_into(view, min(RECV_BUFFER, length - got))
            if n == 0:
                raise BenchError("connection closed %d bytes into a %d-byte body" % (got, length))
            if md5 is not None:
                md5.update(view[:n])
            got += n
        return got


def _fail(what: str, head: Head, conn: Connection) -> BenchError:
    try:
        text = conn.read_small_body(head).decode("utf-8", "replace")
    except (OSError, BenchError) as e:
        text = "(body unreadable: %r)" % (e,)
    return BenchError("%s: HTTP %d %s %s" % (what, head.status, head.reason, " ".join(text.split())[:600]))


def put(conn: Connection, url: str, body: Body, fileobj: BinaryIO, ok: Sequence[int] = (200,),
        check_etag: bool = True) -> Head:
    """
    PUT ``body`` to ``url`` on ``conn``; the answer must have a status in
    ``ok`` and, if ``check_etag``, the body's MD5 as its ETag.
    """
    _, target = _target(url)
    conn.send_head("PUT", target, body.size)
    try:
        conn.send_body(body, fileobj)
    except OSError as e:  # the server answered (and closed) before taking it all
        try:
            head = conn.read_head()
        except (OSError, BenchError):
            raise BenchError("PUT %s: sending the body failed: %r" % (target.split("?")[0], e))
        raise _fail("PUT %s (body cut short: %r)" % (target.split("?")[0], e), head, conn)
    head = conn.read_head()
    if head.status not in ok:
        raise _fail("PUT %s" % (target.split("?")[0],), head, conn)
    conn.read_small_body(head)
    if check_etag:
        etag = head.headers.get("etag", "").strip('"')
        if etag != body.md5:
            raise BenchError("PUT %s: ETag %r, but the body's MD5 is %s"
                             % (target.split("?")[0], etag, body.md5))
    return head


def get(conn: Connection, url: str, size: int, md5: Any = None,
        etag: Optional[str] = None) -> Head:
    """GET ``url``: status 200, Content-Length and received bytes equal to ``size``."""
    _, target = _target(url)
    conn.send_head("GET", target, None)
    head = conn.read_head()
    if head.status != 200:
        raise _fail("GET %s" % (target.split("?")[0],), head, conn)
    if head.length() != size:
        raise BenchError("GET %s: Content-Length %s, expected %d"
                         % (target.split("?")[0], head.length(), size))
    if etag is not None and head.headers.get("etag", "").strip('"') != etag:
        raise BenchError("GET %s: ETag %r, expected %s"
                         % (target.split("?")[0], head.headers.get("etag"), etag))
    got = conn.discard_body(head, md5)
    if got != size:
        raise BenchError("GET %s: %d bytes, expected %d" % (target.split("?")[0], got, size))
    return head


# --------------------------------------------------------------------------
# CPU and memory of the server's processes


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` from ``/proc/PID/task/*/children`` (a full /proc scan without it)."""
    found: list[int] = []
    try:
        tasks = os.listdir("/proc/%d/task" % (pid,))
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path("/proc/%d/task/%s/children" % (pid, tid)).read_text()
        except FileNotFoundError:
            return [p for p in harness._with_workers(pid) if p != pid]
        except OSError:
            continue
        found.extend(int(p) for p in text.split())
    return found


def process_tree(pids: Iterable[int]) -> list[int]:
    """The given pids and all their descendants (the workers of ``--workers N``), each once."""
    seen: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(_children(pid))
    return seen


def server_cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of the pids and their descendants, now."""
    total = 0.0
    for pid in process_tree(pids):
        fields = harness._stat_fields(pid)
        if fields:
            total += (int(fields[11]) + int(fields[12])) / harness.CLK_TCK
    return total


def client_cpu_seconds() -> float:
    """User + system CPU seconds of this process, every thread (the sampler too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kib(pid: int, field: str) -> Optional[int]:
    try:
        text = Path("/proc/%d/status" % (pid,)).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


class RssSampler(threading.Thread):
    """
    Samples ``VmRSS`` of the server's processes every 50 ms in the
    background: a peak between two reads of a foreground loop would be
    missed, and the kernel's ``VmHWM`` is a peak over the process's whole
    life, not over this measurement.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.roots = list(pids)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.tree = process_tree(self.roots)
        self.peak_kib: dict[int, int] = {}
        self.peak_total_kib = 0
        self.samples = 0

    def current(self) -> dict[int, Optional[int]]:
        """VmRSS (KiB) of every process of the tree, now."""
        return {pid: _status_kib(pid, "VmRSS") for pid in self.tree}

    def sample(self) -> dict[int, Optional[int]]:
        with self.lock:
            if self.samples % 20 == 0:  # a restarted worker joins within a second
                self.tree = process_tree(self.roots)
            now = self.current()
            for pid, kib in now.items():
                if kib is not None:
                    self.peak_kib[pid] = max(self.peak_kib.get(pid, 0), kib)
            self.peak_total_kib = max(self.peak_total_kib, sum(k for k in now.values() if k))
            self.samples += 1
            return now

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_INTERVAL):
            self.sample()

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(5)

    def report(self, idle: dict[int, Optional[int]],
               after: Optional[dict[int, Optional[int]]]) -> dict[str, Any]:
        """Per pid (as a string key) and summed: idle, peak, VmHWM and, if given, after the big PUT."""
        def mib(kib: Optional[int]) -> Optional[float]:
            return round(kib / 1024, 1) if kib is not None else None

        per_pid: dict[str, Any] = {}
        for pid in process_tree(self.roots) + [p for p in self.peak_kib if p not in self.tree]:
            if str(pid) in per_pid:
                continue
            row: dict[str, Any] = {
                "role": "given" if pid in self.roots else "child",
                "idle_MB": mib(idle.get(pid)),
                "peak_MB": mib(self.peak_kib.get(pid)),
                "VmHWM_MB": mib(_status_kib(pid, "VmHWM")),
            }
            if after is not None:
                row["after_2GiB_MB"] = mib(after.get(pid))
            per_pid[str(pid)] = row
        out: dict[str, Any] = {
            "per_pid": per_pid,
            "idle_MB": mib(sum(k for k in idle.values() if k)),
            "peak_MB": mib(self.peak_total_kib),  # the largest sampled sum over the tree
            "samples": self.samples,
        }
        if after is not None:
            out["after_2GiB_MB"] = mib(sum(k for k in after.values() if k))
        return out


# --------------------------------------------------------------------------
# timing


def timed(work: Callable[[], Any], nbytes: int, pids: Sequence[int]) -> dict[str, Any]:
    """Run ``work`` once; its throughput, wall time and both sides' CPU seconds."""
    c0, s0 = client_cpu_seconds(), server_cpu_seconds(pids)
    t0 = time.perf_counter()
    work()
    seconds = time.perf_counter() - t0
    return {
        "MBps": nbytes / seconds / MB,
        "seconds": seconds,
        "client_cpu_seconds": client_cpu_seconds() - c0,
        "server_cpu_seconds": server_cpu_seconds(pids) - s0,
    }


def summary(repeats: list[dict[str, Any]], nbytes: int, **extra: Any) -> dict[str, Any]:
    """The repeat of median throughput (the upper one for an even count), with all repeats."""
    middle = statistics.median_high([r["MBps"] for r in repeats])
    chosen = next(r for r in repeats if r["MBps"] == middle)
    out = dict(chosen)
    out["bytes"] = nbytes
    out["repeats"] = repeats
    out.update(extra)
    return out


def percentiles(samples: list[float]) -> dict[str, Any]:
    """Nearest-rank p50 / p90 / p99 of samples in seconds, as milliseconds."""
    ordered = sorted(samples)

    def rank(p: float) -> float:  # the smallest sample with at least p of them at or below it
        return ordered[max(0, math.ceil(p * len(ordered) - 1e-9) - 1)] * 1e3

    return {
        "p50_ms": rank(0.50), "p90_ms": rank(0.90), "p99_ms": rank(0.99),
        "min_ms": ordered[0] * 1e3, "max_ms": ordered[-1] * 1e3,
        "mean_ms": statistics.fmean(ordered) * 1e3, "samples": len(ordered),
    }


# --------------------------------------------------------------------------
# scenarios, on either server


def _put_once(url: str, body: Body, path: Path, ok: Sequence[int], check_etag: bool) -> None:
    netloc, _ = _target(url)
    conn = Connection(netloc)
    try:
        with open(path, "rb") as f:
            put(conn, url, body, f, ok=ok, check_etag=check_etag)
    finally:
        conn.close()


def put_repeats(urls: list[str], bodies: list[Body], path: Path, pids: Sequence[int],
                ok: Sequence[int], check_etag: bool) -> dict[str, Any]:
    """One single-stream PUT per URL, each on a fresh connection, each timed."""
    repeats = [timed(functools.partial(_put_once, u, b, path, ok, check_etag), b.size, pids)
               for u, b in zip(urls, bodies)]
    return summary(repeats, bodies[0].size,
                   verified=("status in %s and ETag == MD5 of the body, every repeat" % (list(ok),)
                             if check_etag else "status in %s, every repeat" % (list(ok),)))


def _get_once(url: str, size: int, md5: Any = None, etag: Optional[str] = None) -> None:
    netloc, _ = _target(url)
    conn = Connection(netloc)
    try:
        get(conn, url, size, md5=md5, etag=etag)
    finally:
        conn.close()


def get_repeats(url: str, size: int, expected_md5: Optional[str], pids: Sequence[int],
                repeats: int, etag: Optional[str]) -> dict[str, Any]:
    """
    One untimed GET hashed with MD5 (the bytes are right), then ``repeats``
    timed GETs that check status, length (and ETag header) and discard.
    """
    md5 = hashlib.md5()
    verify = timed(lambda: _get_once(url, size, md5=md5), size, pids)
    got = md5.hexdigest()
    if expected_md5 is not None and got != expected_md5:
        raise BenchError("GET %s: MD5 of the bytes received is %s, expected %s"
                         % (url.split("?")[0], got, expected_md5))
    runs = [timed(lambda: _get_once(url, size, etag=etag), size, pids) for _ in range(repeats)]
    return summary(runs, size,
                   verified=("MD5 of the body checked in one untimed GET (MBps %.0f with hashing); "
                             "timed GETs check status 200, Content-Length%s and the byte count"
                             % (verify["MBps"], " and ETag" if etag else "")
                             if expected_md5 else
                             "MD5 not known: status, Content-Length and byte count only"),
                   verify_run=verify, md5=got)


def ttfb(url: str, size: int, samples: int) -> dict[str, Any]:
    """
    Time from the request written to the first body byte received, on one
    keep-alive connection; each body is read to its end (see the docstring).
    """
    netloc, target = _target(url)
    conn = Connection(netloc)
    times: list[float] = []
    reconnects = 0
    try:
        for _ in range(samples):
            if not conn.reusable:
                conn.close()
                conn = Connection(netloc)
                reconnects += 1
            conn.send_head("GET", target, None)
            t0 = time.perf_counter()
            head = conn.read_head()
            if not head.rest and head.status == 200:
                n = conn.sock.recv_into(conn.view, RECV_BUFFER)  # the first body byte(s)
                t1 = time.perf_counter()
                if n == 0:
                    raise BenchError("GET %s: closed before the body" % (target.split("?")[0],))
                head.rest = bytes(conn.view[:n])
            else:
                t1 = time.perf_counter()
            if head.status != 200:
                raise _fail("GET %s" % (target.split("?")[0],), head, conn)
            if head.length() != size:
                raise BenchError("GET %s: Content-Length %s, expected %d"
                                 % (target.split("?")[0], head.length(), size))
            if conn.discard_body(head) != size:
                raise BenchError("GET %s: short body" % (target.split("?")[0],))
            times.append(t1 - t0)
    finally:
        conn.close()
    out = percentiles(times)
    out["bytes"] = size
    out["reconnects"] = reconnects
    out["method"] = ("one keep-alive connection, sequential; request written -> first body byte; "
                     "rest of each body read and discarded")
    return out


# --------------------------------------------------------------------------
# multipart uploads


def multipart_boto3(client: Any, bucket: str, key: str, body: BodyFile,
                    pids: Sequence[int]) -> dict[str, Any]:
    """
    boto3's ``upload_file`` of the body file in 16 MiB parts, 4 in flight:
    what an ordinary S3 client gets, client CPU included.
    """
    import boto3
    import botocore
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                            max_concurrency=PART_CONCURRENCY, use_threads=True,
                            preferred_transfer_client="classic")
    seen: dict[str, Any] = {}

    def note_headers(request: Any, **_: Any) -> None:  # how boto3 sends the body
        if not seen:
            value = request.headers.get("x-amz-content-sha256")
            seen["x-amz-content-sha256"] = (value.decode("latin-1") if isinstance(value, bytes)
                                            else value)
            seen["checksum_headers"] = sorted(
                h for h in request.headers.keys() if h.lower().startswith("x-amz-checksum")
                or h.lower() in ("content-encoding", "x-amz-trailer", "content-md5"))

    client.meta.events.register("before-send.s3.UploadPart", note_headers)
    try:
        result = timed(lambda: client.upload_file(str(body.path), bucket, key, Config=config),
                       body.size, pids)
    finally:
        client.meta.events.unregister("before-send.s3.UploadPart", note_headers)
    _check_object(client, bucket, key, body.size, body.multipart_etag())
    result.update({
        "bytes": body.size, "parts": body.parts, "part_size": PART_SIZE,
        "concurrency": PART_CONCURRENCY,
        "boto3": "%s (botocore %s), classic transfer manager" % (boto3.__version__, botocore.__version__),
        "upload_part_headers": seen,
        "verified": "HeadObject: size and ETag %s" % (body.multipart_etag(),),
    })
    return result


def _check_object(client: Any, bucket: str, key: str, size: int, etag: str) -> None:
    head = client.head_object(Bucket=bucket, Key=key)
    got = head["ETag"].strip('"')
    if head["ContentLength"] != size or got != etag:
        raise BenchError("%s/%s: size %d ETag %s, expected size %d ETag %s"
                         % (bucket, key, head["ContentLength"], got, size, etag))


def multipart_cheap(client: Any, bucket: str, key: str, body: BodyFile,
                    pids: Sequence[int]) -> dict[str, Any]:
    """
    The same upload with the cheap client: Create/Complete through boto3,
    each UploadPart a presigned URL sent with ``sendfile`` of the part's
    range (and salt) by 4 threads, each on its own keep-alive connection.
    Presigning is inside the clock: it is part of this client's cost.
    """
    local = threading.local()
    connections: list[Connection] = []
    files: list[BinaryIO] = []
    guard = threading.Lock()
    bodies = [body.part_body(k) for k in range(body.parts)]
    etags: list[str] = [""] * body.parts
    state: dict[str, Any] = {}

    def send_part(index: int, url: str) -> None:
        conn = getattr(local, "conn", None)
        if conn is None or not conn.reusable:
            if conn is not None:
                conn.close()
            conn = local.conn = Connection(_target(url)[0])
            local.file = open(body.path, "rb")
            with guard:
                connections.append(conn)
                files.append(local.file)
        head = put(conn, url, bodies[index], local.file)
        etags[index] = head.headers["etag"]

    def upload() -> None:
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        state["upload_id"] = upload_id
        urls = [client.generate_presigned_url(
            "upload_part", Params={"Bucket": bucket, "Key": key, "UploadId": upload_id,
                                   "PartNumber": k + 1},
            ExpiresIn=3600, HttpMethod="PUT") for k in range(body.parts)]
        with concurrent.futures.ThreadPoolExecutor(PART_CONCURRENCY) as pool:
            for future in [pool.submit(send_part, k, url) for k, url in enumerate(urls)]:
                future.result()
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"ETag": etags[k], "PartNumber": k + 1}
                                       for k in range(body.parts)]})
        state["completed"] = True

    try:
        result = timed(upload, body.size, pids)
    except BaseException:
        if state.get("upload_id") and not state.get("completed"):
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=state["upload_id"])
            except Exception:
                pass
        raise
    finally:
        for conn in connections:
            conn.close()
        for f in files:
            f.close()
    expected = "%s-%d" % (hashlib.md5(b"".join(bytes.fromhex(b.md5) for b in bodies)).hexdigest(),
                          body.parts)
    _check_object(client, bucket, key, body.size, expected)
    result.update({
        "bytes": body.size, "parts": body.parts, "part_size": PART_SIZE,
        "concurrency": PART_CONCURRENCY, "connections": len(connections),
        "verified": "every part's ETag == its MD5; HeadObject: size and ETag %s" % (expected,),
    })
    return result


# --------------------------------------------------------------------------
# the agreed interface


def measure_s3(endpoint: str, access_key: str, secret_key: str, bucket: str, pids: list[int],
               workdir: Path, quick: bool) -> dict[str, Any]:
    """
    Every large-object scenario against an S3 server (FasterStore) whose
    bucket exists; ``pids`` are its processes (children are found).  Raises
    ``BenchError`` on any non-2xx, wrong ETag or wrong byte count.
    """
    sz = sizes(quick)
    client = harness.s3_client(endpoint, access_key, secret_key)
    prefix = "large/%s/" % (secrets.token_hex(4),)
    sampler = RssSampler(pids)
    idle = sampler.sample()
    sampler.start()
    body: Optional[BodyFile] = None
    out: dict[str, Any] = {"endpoint": endpoint, "bucket": bucket, "key_prefix": prefix,
                           "quick": quick, "pids": list(pids)}
    try:
        t0 = time.monotonic()
        body = BodyFile(workdir / ("large-body-%s.bin" % (secrets.token_hex(4),)), sz.multipart,
                        PART_SIZE, {sz.single - SALT, sz.ttfb_object - SALT})
        out["body_file_seconds"] = time.monotonic() - t0
        path = body.path

        def presign(method: str, key: str) -> str:
            return harness.presign(client, method, key, bucket)

        # single stream PUT, then GET of what the first PUT stored
        keys = [prefix + "put-256MiB-r%d" % (i,) for i in range(sz.repeats)]
        bodies = [body.prefix_body(sz.single) for _ in keys]
        out["put_256MiB"] = put_repeats([presign("PUT", k) for k in keys], bodies, path, pids,
                                        ok=(200,), check_etag=True)
        out["get_256MiB"] = get_repeats(presign("GET", keys[0]), sz.single, bodies[0].md5, pids,
                                        sz.repeats, etag=bodies[0].md5)

        # time to first byte of a 20 MiB object
        small_key = prefix + "ttfb-20MiB"
        small = body.prefix_body(sz.ttfb_object)
        _put_once(presign("PUT", small_key), small, path, (200,), True)
        _get_once(presign("GET", small_key), sz.ttfb_object, md5=hashlib.md5())
        out["ttfb_20MiB"] = ttfb(presign("GET", small_key), sz.ttfb_object, sz.ttfb_samples)

        # multipart, boto3 then the cheap client (different bytes: no dedup)
        out["multipart_boto3"] = multipart_boto3(client, bucket, prefix + "multipart-boto3", body, pids)
        out["multipart_cheap"] = multipart_cheap(client, bucket, prefix + "multipart-cheap", body, pids)

        # memory after a big single-stream PUT
        big = body.repeated_body(sz.big_put_copies)
        big_url = presign("PUT", prefix + "put-big")
        big_put = timed(lambda: _put_once(big_url, big, path, (200,), True), big.size, pids)
        big_put.update({"bytes": big.size, "verified": "status 200 and ETag == MD5 of the body"})
        time.sleep(1.0)
        after = sampler.sample()
        sampler.stop()
        out["rss"] = sampler.report(idle, after)
        out["rss"]["big_put"] = big_put
        out["rss"]["big_put_MiB"] = big.size // MiB
        out["cheap_client"] = _client_note(out)
    finally:
        sampler.stop()
        if body is not None:
            body.remove()
    return out


def _client_note(out: dict[str, Any]) -> str:
    """One line saying how much CPU the cheap client used next to the server."""
    parts = []
    for name in ("put_256MiB", "get_256MiB", "multipart_cheap"):
        r = out.get(name)
        if r and r.get("server_cpu_seconds"):
            parts.append("%s %.2f s client / %.2f s server" % (
                name, r["client_cpu_seconds"], r["server_cpu_seconds"]))
    return "cheap client CPU against the server's: " + "; ".join(parts)


def prepare_static(directory: Path) -> dict[str, str]:
    """
    The files a static server serves for ``measure_plain``: 256 MiB and
    20 MiB of random bytes, each with ``NAME.md5`` beside it (how
    ``measure_plain`` verifies what it gets).  Returns measure_plain's
    result name -> path relative to ``directory``:
    ``{"get_256MiB": "large-256MiB.bin", "ttfb_20MiB": "large-20MiB.bin"}``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for name, (filename, size) in STATIC_FILES.items():
        path = directory / filename
        md5 = hashlib.md5()
        with open(path, "wb") as f:
            for start in range(0, size, MiB):
                chunk = os.urandom(min(MiB, size - start))
                md5.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        (directory / (filename + ".md5")).write_text(md5.hexdigest() + "\n")
        names[name] = filename
    syncDirectory(str(directory))
    return names


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def _fetch_text(url: str) -> Optional[str]:
    """A small GET's body, or None if not 200."""
    netloc, target = _target(url)
    conn = Connection(netloc)
    try:
        conn.send_head("GET", target, None)
        head = conn.read_head()
        data = conn.read_small_body(head)
        return data.decode("utf-8", "replace") if head.status == 200 else None
    finally:
        conn.close()


def _content_length(url: str) -> int:
    """The Content-Length a HEAD of ``url`` announces: the size a GET must deliver."""
    netloc, target = _target(url)
    conn = Connection(netloc)
    try:
        conn.send_head("HEAD", target, None)
        head = conn.read_head()
        if head.status != 200 or head.length() is None:
            raise BenchError("HEAD %s: HTTP %d, Content-Length %s"
                             % (target, head.status, head.length()))
        return int(head.length() or 0)
    finally:
        conn.close()


def measure_plain(base_url: str, put_path_prefix: str, get_paths: dict[str, str], pids: list[int],
                  workdir: Path, quick: bool) -> dict[str, Any]:
    """
    The same single-stream scenarios against a static server (nginx), with
    the same cheap client: GET of ``get_paths["get_256MiB"]``, TTFB of
    ``get_paths["ttfb_20MiB"]`` (``get_paths`` is ``prepare_static``'s
    answer, paths relative to the server's root, or with a leading ``/``),
    and WebDAV PUTs of 256 MiB to ``base_url + put_path_prefix + NAME``
    (201 or 204 expected; the file is then read back once, MD5-checked, if
    it can be).  Raises ``BenchError`` on any non-2xx.
    """
    sz = sizes(quick)
    sampler = RssSampler(pids)
    idle = sampler.sample()
    sampler.start()
    body: Optional[BodyFile] = None
    token = secrets.token_hex(4)
    out: dict[str, Any] = {"base_url": base_url, "quick": quick, "pids": list(pids)}
    try:
        body = BodyFile(workdir / ("large-body-%s.bin" % (token,)), sz.single, sz.single,
                        {sz.single - SALT})
        urls = [_join(base_url, put_path_prefix + "large-put-%s-r%d.bin" % (token, i))
                for i in range(sz.repeats)]
        bodies = [body.prefix_body(sz.single) for _ in urls]
        out["put_256MiB"] = put_repeats(urls, bodies, body.path, pids, ok=(200, 201, 204),
                                        check_etag=False)
        stored = hashlib.md5()
        try:
            _get_once(urls[0], sz.single, md5=stored)
        except BenchError as e:
            out["put_256MiB"]["read_back"] = "not checked: %s" % (e,)
        else:
            if stored.hexdigest() != bodies[0].md5:
                raise BenchError("PUT %s stored bytes with MD5 %s, sent %s"
                                 % (urls[0], stored.hexdigest(), bodies[0].md5))
            out["put_256MiB"]["read_back"] = "GET back: MD5 identical"

        big_url = _join(base_url, get_paths["get_256MiB"])
        expected = _fetch_text(big_url + ".md5")
        out["get_256MiB"] = get_repeats(big_url, _content_length(big_url),
                                        expected.strip() if expected else None, pids, sz.repeats,
                                        etag=None)
        small_url = _join(base_url, get_paths["ttfb_20MiB"])
        out["ttfb_20MiB"] = ttfb(small_url, _content_length(small_url), sz.ttfb_samples)
        out["rss"] = sampler.report(idle, None)
        client = [out[n] for n in ("put_256MiB", "get_256MiB")]
        out["cheap_client"] = "cheap client CPU against the server's: " + "; ".join(
            "%.2f s client / %.2f s server" % (r["client_cpu_seconds"], r["server_cpu_seconds"])
            for r in client)
    finally:
        sampler.stop()
        if body is not None:
            body.remove()
    return out


# --------------------------------------------------------------------------
# running it alone


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        dav_methods PUT;
        create_full_put_path on;
        client_max_body_size 0;
    }}
}}
"""


def _spawn_pinned(pin: bool, start: Callable[[], harness.Server]) -> harness.Server:
    """
    Start a server on CPU 0 (as ``taskset -c 0`` would: it inherits this
    thread's affinity, set for the fork and then moved to CPU 1, the client's).
    """
    if not pin:
        return start()
    os.sched_setaffinity(0, {0})
    try:
        return start()
    finally:
        os.sched_setaffinity(0, {1})


def _cpus_allowed(pid: int) -> str:
    try:
        for line in Path("/proc/%d/status" % (pid,)).read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": sys.version.split()[0], "loadavg_at_start": os.getloadavg()}


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="less data, fewer samples")
    parser.add_argument("--workers", type=int, default=1,
                        help="FasterStore --workers (1: server pinned to CPU 0, client to CPU 1)")
    parser.add_argument("--nginx", action="store_true",
                        help="measure a self-started nginx (measure_plain) instead of FasterStore")
    parser.add_argument("--json", help="also write the JSON here")
    parser.add_argument("--tmp-dir", default=None,
                        help="parent of the work and data directories (default: the system temp dir)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    pin = args.workers == 1 and {0, 1} <= set(os.sched_getaffinity(0))
    workdir = Path(tempfile.mkdtemp(prefix="large-bench-", dir=args.tmp_dir))
    report: dict[str, Any] = {"machine": _machine(), "quick": args.quick}
    server: Optional[harness.Server] = None
    status = 1
    try:
        if pin:
            os.sched_setaffinity(0, {1})  # the client's CPU; the server gets CPU 0
        report["box_limits"] = box_limits(workdir, args.quick)
        if args.nginx:
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            if not os.path.exists(nginx):
                raise BenchError("nginx not found: apt-get install nginx")
            root = workdir / "root"
            (root / "dav").mkdir(parents=True)
            names = prepare_static(root)
            port = harness.free_port()
            conf = workdir / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=workdir, port=port, root=root))
            server = _spawn_pinned(pin, lambda: harness.launch(
                "nginx", [nginx, "-p", str(workdir), "-e", str(workdir / "error.log"),
                          "-c", str(conf)], workdir, port))
            harness.wait_ready(server, 30, path="/", ok=(200, 403, 404))
            report["server"] = {"command": server.command, "pid": server.proc.pid,
                                "cpus": _cpus_allowed(server.proc.pid)}
            report["nginx"] = measure_plain(server.base_url, "/dav/", names, [server.proc.pid],
                                            workdir, args.quick)
        else:
            data_dir = workdir / "data"
            data_dir.mkdir()
            server = _spawn_pinned(pin, lambda: harness.start_fasterstore(
                workdir, data_dir, ACCESS_KEY, SECRET_KEY, False, ["--workers", str(args.workers)]))
            harness.wait_ready(server, 120)
            harness.s3_client(server.base_url, ACCESS_KEY, SECRET_KEY).create_bucket(Bucket=BUCKET)
            report["server"] = {"command": server.command, "pid": server.proc.pid,
                                "cpus": _cpus_allowed(server.proc.pid),
                                "processes": process_tree([server.proc.pid])}
            report["fasterstore"] = measure_s3(server.base_url, ACCESS_KEY, SECRET_KEY, BUCKET,
                                               [server.proc.pid], workdir, args.quick)
        report["client_cpus"] = sorted(os.sched_getaffinity(0))
        status = 0
    except BenchError as e:
        print("BENCHMARK FAILED: %s" % (e,), file=sys.stderr)
        report["error"] = str(e)
    except Exception as e:
        import traceback

        traceback.print_exc()
        report["error"] = repr(e)
    finally:
        if server is not None:
            report["stop"] = harness.stop(server)
            if status != 0:
                print("%s log tail:\n%s" % (server.name, server.log_tail(20)), file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
