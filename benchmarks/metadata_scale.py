"""
FasterStore metadata at scale: what N objects in ONE bucket cost the server,
against a small baseline measured with exactly the same procedure.

For each size (the baseline, default 10,000 objects, then ``--objects``,
default 1,000,000), on a fresh temporary data directory on the real disk
(``--tmp-dir``, default ``/var/tmp``):

1. **Populate** in this process, bypassing HTTP: a 4 KiB blob is written
   once through the real ``SegmentStore``; ``SQLiteMetadataStore`` (with
   ``ImmediateRunner``, no fsync) creates the bucket, owned by the canonical
   id the server derives from the benchmark's key pair
   (``fasterstore.credentials.ownerForAccessKey``), and takes the first
   object through ``putObject``; the other N-1 rows are inserted with SQL in
   large transactions, each record encoded by the store's own
   ``objectRow``, then the blob's ``refs`` and the ``objects`` /
   ``logical_bytes`` counters are raised to match (``live_bytes`` stays
   4096).  Keys are ``obj/%08d`` inserted in shuffled order (so B-tree
   pages are filled as by real, unordered uploads); each record has an
   ETag, a ``Content-Type`` header, a CRC32 checksum (what boto3 sends by
   default) and its own modification time.  **Every object shares that one
   blob**: GET returns real, verified bytes, but the data path is one hot
   4 KiB record, so this measures metadata, not data.  The database is
   checkpointed and ``sync``ed before the server starts.
2. **Ready time**: ``twistd -n --pidfile= fasterstore`` (from the running
   interpreter's venv) on a loopback port; time from spawn to
   ``/_fasterstore/health/ready`` answering 200, polled every 10 ms under a
   deadline: (a) first start, (b) after a graceful stop (SIGTERM, waited
   for), (c) after SIGKILL, with a few hundred durable PUTs committed just
   before the kill so SQLite has a WAL to recover.  The database's pages
   are in the kernel page cache (just written or read): these are warm
   starts.
3. **Memory**: after a warm-up (2,000 HEADs of random keys, 20 list pages,
   a few byte-checked GETs) the server's ``RssAnon`` (anonymous memory
   only: SQLite's mmap'd pages and the page cache are not in it), and its
   growth per object ``(RssAnon_N - RssAnon_base) / (N - base)``.
4. **ListObjectsV2**: a 1000-key page from the middle of the bucket
   (``start-after`` the middle key), presigned, over one keep-alive
   connection: 3 warm-ups, then 30 samples of send-to-last-byte time
   (loopback, so about the server's time); the server's own mean from the
   ``fasterstore_request_seconds`` histogram (``_sum``/``_count`` deltas;
   it starts when the resource renders, i.e. after the request head was
   parsed and its signature checked at header time, and ends when the
   response is handed to the transport);
   and, for diagnosis, the metadata layer alone (``_listObjects`` on a
   read-only connection in this process, no HTTP, no XML).
5. **HEAD and 4 KiB GET**: wrk with presigned URLs of random keys
   (``benchmarks/presigned.lua`` and ``run.py``'s HEAD shim), c=16,
   ``--duration`` seconds each, ``--wrk-rounds`` rounds (default 3): ops/s,
   p50, p99 (medians over the rounds) and the server's mean.  Both sizes'
   servers stay up through this step and the rounds alternate between them
   (base, N / N, base / base, N), because a small shared VM's CPU speed
   drifts by tens of per cent from one minute to the next (a "CPU speed
   index", a fixed pure-Python loop timed before each round, shows it).
   For diagnosis, the only N-dependent step of both, the store's point
   lookup (SQL + ``_readObject``), is also timed in-process.

Steps 1-4 run for each size in turn, then 5 for both, then the restarts of
step 2 (b, c) for each size.

Then a markdown table, N beside the baseline, with the issue's targets.
Every server is stopped by PID in a ``finally``; temporary directories are
removed unless ``--keep``.  The whole run is bounded by ``--time-limit``.

Usage::

    .venv/bin/python benchmarks/metadata_scale.py                 # 10k vs 1M
    .venv/bin/python benchmarks/metadata_scale.py --objects 100000 --duration 5

Needs ``wrk`` and a C compiler (for the HEAD shim), like ``run.py``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import run as driver  # noqa: E402  (benchmarks/run.py: processes, presigning, wrk)
from run import BenchError, Server  # noqa: E402

BUCKET = driver.BUCKET  # "bench": run.presign signs for it
OBJECT_SIZE = 4096
READY_POLL = 0.01
READY_TIMEOUT = 120.0
KILL_PUTS = 300

TARGETS = {
    "rss_growth_b_per_object": 300.0,
    "ready_s": 3.0,
    "list_server_ms": 15.0,
}


# --------------------------------------------------------------------------
# helpers


def _now() -> float:
    return time.perf_counter()


def _sync(d: Any) -> Any:
    """The result of a Deferred that must already have fired (ImmediateRunner)."""
    from twisted.python.failure import Failure

    out: List[Any] = []
    d.addBoth(out.append)
    if not out:
        raise BenchError("a Deferred did not fire synchronously")
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def _path_query(url: str) -> str:
    return driver._path_query(url)


def proc_status(pid: int) -> Dict[str, int]:
    """Memory fields of /proc/PID/status, in bytes."""
    fields: Dict[str, int] = {}
    for line in Path("/proc/%d/status" % (pid,)).read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmData"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def percentile(samples: List[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100.0 * len(ordered)) - 1))]


def op_sums(text: Optional[str], operation: str) -> Tuple[float, float]:
    """(sum, count) of fasterstore_request_seconds for one operation."""
    total = count = 0.0
    label = 'operation="%s"' % (operation,)
    for line in (text or "").splitlines():
        if label not in line:
            continue
        if line.startswith("fasterstore_request_seconds_sum{"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("fasterstore_request_seconds_count{"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


def server_mean(before: Optional[str], after: Optional[str], operation: str) -> Optional[float]:
    """Mean server-side seconds per request of ``operation`` between two scrapes."""
    s0, c0 = op_sums(before, operation)
    s1, c1 = op_sums(after, operation)
    return (s1 - s0) / (c1 - c0) if c1 > c0 else None


def key_of(i: int) -> str:
    return "obj/%08d" % (i,)


# --------------------------------------------------------------------------
# 1. populate


class Populator:
    """
    The pieces of a populated store (see the module docstring, step 1),
    for this script and ``versions_scale.py``: one 4 KiB blob written
    through the real ``SegmentStore``, the store opened with
    ``ImmediateRunner`` (no fsync) to create buckets and take the first
    object through ``putObject``, then rows inserted with SQL in large
    transactions (:meth:`insert`), the counters and the blob's ``refs``
    raised to match the rows (:meth:`finish`), checked, checkpointed and
    ``sync``ed.
    """

    def __init__(self, data_dir: Path) -> None:
        import attrs
        from twisted.python.filepath import FilePath

        from fasterstore.metadata.records import ObjectRecord
        from fasterstore.metadata.sqlite import DATABASE_NAME, SQLiteMetadataStore
        from fasterstore.storage.segments import SegmentStore
        from fasterstore.threads import ImmediateRunner

        self.t0 = _now()
        runner = ImmediateRunner()
        segments = SegmentStore(FilePath(str(data_dir)), runner, fsync=False)
        self.body = os.urandom(OBJECT_SIZE)
        writer = segments.openWriter(("crc32",))
        if writer.write(self.body) is not None:
            raise BenchError("the blob writer asked to wait for a 4 KiB write")
        self.blob = blob = _sync(writer.finish())
        _sync(segments.close())
        self.path = data_dir / "meta" / DATABASE_NAME
        self.store = SQLiteMetadataStore(str(self.path), runner=runner, syncData=lambda: (lambda: None), fsync=False)
        _sync(self.store.open())
        self.created = time.time() - 400 * 86400
        self.template = ObjectRecord(
            bucket=BUCKET, key="", size=blob.size, etag=blob.digests["md5"].hex(), blob=blob.contentAddress,
            modified=0.0, headers=(("Content-Type", "application/octet-stream"),),
            checksums=(("crc32", base64.b64encode(blob.digests["crc32"]).decode()),),
        )
        self.evolve = attrs.evolve
        self.db: Any = None
        self.t_store = self.t_insert = 0.0

    def bucket(self, name: str, owner: str, versioning: Optional[str] = None) -> None:
        """Create a bucket through the store (and set its versioning state)."""
        from fasterstore.metadata.records import BucketRecord

        _sync(self.store.createBucket(BucketRecord(name, owner, "us-east-1", self.created)))
        if versioning is not None:
            _sync(self.store.updateBucket(name, lambda b: self.evolve(b, versioning=versioning)))

    def put(self, record: Any) -> Any:
        """The store's own write path for one object (bucket check, blob row, extents, counters, seq)."""
        return _sync(self.store.putObject(record, self.blob))

    def open_sql(self) -> None:
        """Close the store; connect with its settings (and a 1 GiB cache, for the bulk load only)."""
        from fasterstore.metadata.sqlite import connect

        _sync(self.store.close())
        self.t_store = _now()
        self.db = connect(str(self.path), False, False)
        self.db.execute("PRAGMA cache_size = -1048576")

    def insert(self, sql: str, rows: Iterable[Tuple[Any, ...]], chunk: int = 100_000) -> int:
        """``executemany(sql)`` over ``rows``, ``chunk`` rows per transaction; the number inserted."""
        total = 0
        batch: List[Tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= chunk:
                total += self._commit(sql, batch)
                batch = []
        if batch:
            total += self._commit(sql, batch)
        return total

    def insert_mixed(self, rows: Iterable[Tuple[str, Tuple[Any, ...]]], chunk: int = 100_000) -> int:
        """Like :meth:`insert` for ``(sql, row)`` pairs: each chunk's rows grouped by statement, one transaction."""
        total = 0
        batch: Dict[str, List[Tuple[Any, ...]]] = {}
        pending = 0
        for sql, row in rows:
            batch.setdefault(sql, []).append(row)
            pending += 1
            if pending >= chunk:
                total += self._commit_all(batch)
                batch, pending = {}, 0
        if pending:
            total += self._commit_all(batch)
        return total

    def _commit(self, sql: str, batch: List[Tuple[Any, ...]]) -> int:
        return self._commit_all({sql: batch})

    def _commit_all(self, batch: Dict[str, List[Tuple[Any, ...]]]) -> int:
        self.db.execute("BEGIN IMMEDIATE")
        for sql, rows in batch.items():
            self.db.executemany(sql, rows)
        self.db.execute("COMMIT")
        return sum(len(rows) for rows in batch.values())

    def finish(self, seq: Optional[int] = None) -> Dict[str, Any]:
        """
        Raise the blob's ``refs`` to one per version row (objects and
        versions, delete markers excepted), ``objects`` and
        ``logical_bytes`` to the ``objects`` rows (``live_bytes`` stays one
        blob), the ``seq`` counter to ``seq`` if given; check they agree;
        checkpoint, close, ``sync``.
        """
        db, blob = self.db, self.blob
        objects = db.execute("SELECT count(*) FROM objects").fetchone()[0]
        versions = db.execute("SELECT count(*) FROM versions WHERE delete_marker = 0").fetchone()[0]
        counters = dict(db.execute("SELECT name, value FROM counters"))
        refs = db.execute("SELECT refs FROM blobs WHERE address = ?", (blob.contentAddress,)).fetchone()[0]
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE blobs SET refs = ? WHERE address = ?", (objects + versions, blob.contentAddress))
        db.execute("UPDATE counters SET value = ? WHERE name = 'objects'", (objects,))
        db.execute("UPDATE counters SET value = ? WHERE name = 'logical_bytes'", (objects * blob.size,))
        if seq is not None:
            db.execute("UPDATE counters SET value = ? WHERE name = 'seq'", (seq,))
        db.execute("COMMIT")
        self.t_insert = _now()
        counters = dict(db.execute("SELECT name, value FROM counters"))
        refs = db.execute("SELECT refs FROM blobs WHERE address = ?", (blob.contentAddress,)).fetchone()[0]
        top = max(db.execute("SELECT coalesce(max(seq), 0) FROM objects").fetchone()[0],
                  db.execute("SELECT coalesce(max(seq), 0) FROM versions").fetchone()[0])
        if not (objects == counters["objects"] and refs == objects + versions
                and counters["logical_bytes"] == objects * blob.size and counters["live_bytes"] == blob.size
                and counters["seq"] >= top):
            raise BenchError("populated store is inconsistent: %d objects rows, %d version rows, counters %r, "
                             "refs %d, greatest seq %d" % (objects, versions, counters, refs, top))
        record_bytes = db.execute(
            "SELECT avg(length(record) + length(key) + length(etag) + length(checksum_algorithms)) FROM objects"
        ).fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        self.db = None
        t_ck = _now()
        os.sync()
        t_end = _now()
        from fasterstore.metadata.sqlite import DATABASE_NAME

        db_bytes = sum(p.stat().st_size for p in self.path.parent.iterdir() if p.name.startswith(DATABASE_NAME))
        return {
            "body": self.body,
            "seconds": t_end - self.t0,
            "store_seconds": self.t_store - self.t0,
            "insert_seconds": self.t_insert - self.t_store,
            "checkpoint_seconds": t_ck - self.t_insert,
            "sync_seconds": t_end - t_ck,
            "db_bytes": db_bytes,
            "avg_row_text_bytes": record_bytes,
            "objects_rows": objects,
            "versions_rows": versions,
        }

    def close(self) -> None:
        """After a failure: close whatever is open."""
        if self.db is not None:
            self.db.close()
            self.db = None


def populate(data_dir: Path, n: int, owner: str, rng: random.Random) -> Dict[str, Any]:
    """Write the blob and N object records (see the module docstring)."""
    from fasterstore.metadata.sqlite import INSERT_OBJECT, objectRow

    pop = Populator(data_dir)
    try:
        pop.bucket(BUCKET, owner)
        created = pop.created
        order = list(range(n))
        rng.shuffle(order)

        def record(i: int) -> Any:
            return pop.evolve(pop.template, key=key_of(i), modified=created + rng.random() * 399 * 86400)

        # The first object through the store's own write path (bucket check,
        # blob row, blob_extents row, counters).
        pop.put(record(order[0]))
        pop.open_sql()
        pop.insert(INSERT_OBJECT, (objectRow(record(i)) for i in order[1:]))
        result = pop.finish()
    finally:
        pop.close()
    if result["objects_rows"] != n:
        raise BenchError("populated %d objects, not %d" % (result["objects_rows"], n))
    result["sample_record"] = objectRow(record(0))[-3]
    return result


# --------------------------------------------------------------------------
# 2. the server


def spawn(run_dir: Path, data_dir: Path, port: int, access_key: str, secret_key: str,
          no_fsync: bool, extra: Iterable[str] = ()) -> Server:
    command = driver.twistd_command() + [
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
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (venv_bin, env.get("PATH")) if p)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    log_path = run_dir / "fasterstore.log"
    log = open(log_path, "ab")
    try:
        log.write(b"\n===== spawn %s\n" % (" ".join(command).encode(),))
        log.flush()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(run_dir), env=env, start_new_session=True)
    finally:
        log.close()
    return Server("fasterstore", proc, log_path, port=port, command=command)


def start_and_time(spawner: Callable[[], Server], servers: List[Server]) -> Tuple[Server, float]:
    """Spawn, then poll the readiness endpoint; seconds from spawn to 200."""
    t0 = _now()
    server = spawner()
    servers.append(server)
    deadline = t0 + READY_TIMEOUT
    last = "no answer"
    while _now() < deadline:
        if server.proc.poll() is not None:
            raise BenchError("server exited with status %s before it was ready:\n%s"
                             % (server.proc.returncode, server.log_tail()))
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/_fasterstore/health/ready")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                return server, _now() - t0
            last = "HTTP %d" % (resp.status,)
        except OSError as e:
            last = repr(e)
        time.sleep(READY_POLL)
    raise BenchError("server not ready after %.0f s (last: %s):\n%s" % (READY_TIMEOUT, last, server.log_tail()))


def stop_graceful(server: Server) -> float:
    t0 = _now()
    os.kill(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(driver.STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError("server ignored SIGTERM for %.0f s" % (driver.STOP_TIMEOUT,))
    if server.proc.returncode not in (0, -signal.SIGTERM):
        raise BenchError("server exited %s on SIGTERM:\n%s" % (server.proc.returncode, server.log_tail()))
    return _now() - t0


def kill9(server: Server) -> None:
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(30)


# --------------------------------------------------------------------------
# HTTP work


class Client:
    """One keep-alive connection sending presigned requests."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, method: str, url: str, body: Optional[bytes] = None) -> Tuple[int, bytes, http.client.HTTPResponse]:
        for attempt in (0, 1):
            try:
                self.conn.request(method, _path_query(url), body=body)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data, resp
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def presign_list(client: Any, start_after: str, max_keys: int = 1000) -> str:
    return str(client.generate_presigned_url(
        "list_objects_v2", Params={"Bucket": BUCKET, "StartAfter": start_after, "MaxKeys": max_keys},
        ExpiresIn=3600, HttpMethod="GET"))


def check_list(status: int, body: bytes, first: str, expect: int) -> None:
    if status != 200:
        raise BenchError("ListObjectsV2: HTTP %d %r" % (status, body[:300]))
    keys = body.count(b"<Key>")
    if keys != expect or (b"<Key>%s</Key>" % first.replace("/", "%2F").encode() not in body
                          and b"<Key>%s</Key>" % first.encode() not in body):
        raise BenchError("ListObjectsV2 page: %d keys (expected %d starting at %s): %r"
                         % (keys, expect, first, body[:400]))


def warm_up(port: int, s3: Any, n: int, body: bytes, rng: random.Random) -> Dict[str, Any]:
    c = Client(port)
    try:
        heads = [driver.presign(s3, "HEAD", key_of(rng.randrange(n))) for _ in range(2000)]
        lists = [presign_list(s3, key_of(rng.randrange(n))) for _ in range(20)]
        gets = [driver.presign(s3, "GET", key_of(rng.randrange(n))) for _ in range(10)]
        t0 = _now()
        for url in heads:
            status, _, resp = c.send("HEAD", url)
            if status != 200 or resp.getheader("Content-Length") != str(OBJECT_SIZE):
                raise BenchError("warm-up HEAD %s: HTTP %d" % (url.split("?")[0], status))
        for url in lists:
            status, data, _ = c.send("GET", url)
            if status != 200 or b"<Key>" not in data:
                raise BenchError("warm-up list: HTTP %d %r" % (status, data[:300]))
        for url in gets:
            status, data, _ = c.send("GET", url)
            if status != 200 or data != body:
                raise BenchError("warm-up GET %s: HTTP %d, %d bytes, %s" % (
                    url.split("?")[0], status, len(data), "identical" if data == body else "DIFFERENT"))
        return {"seconds": _now() - t0}
    finally:
        c.close()


def list_bench(port: int, s3: Any, n: int, data_dir: Path) -> Dict[str, Any]:
    from fasterstore.metadata.sqlite import _SUMMARY_COLUMNS, DATABASE_NAME, _listObjects, connect

    middle = key_of(n // 2)
    expect = min(1000, n - n // 2 - 1)
    url = presign_list(s3, middle)
    c = Client(port)
    try:
        for _ in range(3):
            status, data, _ = c.send("GET", url)
            check_list(status, data, key_of(n // 2 + 1), expect)
        before = driver.fetch_metrics(port)
        samples = []
        for _ in range(30):
            t0 = _now()
            status, data, _ = c.send("GET", url)
            samples.append(_now() - t0)
            check_list(status, data, key_of(n // 2 + 1), expect)
        after = driver.fetch_metrics(port)
    finally:
        c.close()
    # The metadata layer alone: the store's own list function on a
    # read-only connection with the store's settings (no HTTP, no XML).
    db = connect(str(data_dir / "meta" / DATABASE_NAME), True, False)
    try:
        meta = []
        for i in range(33):
            t0 = _now()
            page = _listObjects(db, BUCKET, "", "", middle, 1000)
            if i >= 3:
                meta.append(_now() - t0)
        if len(page.objects) != expect:
            raise BenchError("in-process listObjects returned %d objects" % (len(page.objects),))
        # The same page's SQL alone (what _listObjects asks SQLite for).
        sql = []
        for i in range(33):
            t0 = _now()
            rows = db.execute(f"SELECT {_SUMMARY_COLUMNS} FROM objects WHERE bucket = ? AND key > ? ORDER BY key LIMIT ?",
                              (BUCKET, middle, 1001)).fetchall()
            if i >= 3:
                sql.append(_now() - t0)
        plan = [r[-1] for r in db.execute(
            f"EXPLAIN QUERY PLAN SELECT {_SUMMARY_COLUMNS} FROM objects WHERE bucket = ? AND key > ? ORDER BY key LIMIT ?",
            (BUCKET, middle, 1000))]
    finally:
        db.close()
    return {
        "bytes": len(data),
        "client_median_s": statistics.median(samples),
        "client_p95_s": percentile(samples, 95),
        "server_mean_s": server_mean(before, after, "ListObjectsV2"),
        "metadata_median_s": statistics.median(meta),
        "sql_1000_rows_median_s": statistics.median(sql),
        "query_plan": plan,
        "rows": len(rows),
    }


def cpu_index(seconds: float = 0.5) -> float:
    """Millions of iterations per second of a fixed pure-Python loop (machine noise shows here)."""
    t0 = _now()
    loops = 0
    x = 0
    while _now() - t0 < seconds:
        for i in range(10000):
            x += i & 7
        loops += 10000
    return loops / (_now() - t0) / 1e6


def lookup_bench(data_dir: Path, n: int, rng: random.Random, count: int = 20000) -> Dict[str, Any]:
    """
    The only N-dependent step of HEAD/GET, alone: the store's point lookup
    (getObject's SQL and decoding, _readObject) on a read-only connection with the
    store's settings, for random keys.
    """
    from fasterstore.metadata.sqlite import DATABASE_NAME, _readObject, connect

    db = connect(str(data_dir / "meta" / DATABASE_NAME), True, False)
    try:
        keys = [key_of(rng.randrange(n)) for _ in range(count)]
        for key in keys[:2000]:
            _readObject(db, BUCKET, key)
        t0 = _now()
        for key in keys:
            _readObject(db, BUCKET, key)
        elapsed = _now() - t0
    finally:
        db.close()
    return {"us_per_lookup": elapsed / count * 1e6}


def kill_puts(port: int, s3: Any, count: int) -> None:
    """Durable PUTs of fresh keys just before a SIGKILL (so the WAL has frames)."""
    urls = [driver.presign(s3, "PUT", "put/%06d" % (i,)) for i in range(count)]
    c = Client(port)
    try:
        for i, url in enumerate(urls):
            status, data, _ = c.send("PUT", url, body=os.urandom(OBJECT_SIZE))
            if status != 200:
                raise BenchError("PUT before kill: HTTP %d %r" % (status, data[:300]))
    finally:
        c.close()


def check_after_kill(port: int, s3: Any, n: int, body: bytes, count: int) -> None:
    c = Client(port)
    try:
        status, data, _ = c.send("GET", driver.presign(s3, "GET", key_of(n - 1)))
        if status != 200 or data != body:
            raise BenchError("GET after SIGKILL restart: HTTP %d" % (status,))
        status, _, _ = c.send("HEAD", driver.presign(s3, "HEAD", "put/%06d" % (count - 1,)))
        if status != 200:
            raise BenchError("the last acknowledged PUT before SIGKILL is missing after restart (HTTP %d)" % (status,))
    finally:
        c.close()


# --------------------------------------------------------------------------
# one size


class SizeRun:
    """
    One size: its data directory, key pair, server and results.  The wrk
    rounds of all sizes are interleaved (see L{main}), so that the slow and
    fast spells of a shared machine fall on every size alike.
    """

    def __init__(self, n: int, args: argparse.Namespace, top: Path, shim: Path, servers: List[Server],
                 deadline: float) -> None:
        import secrets

        self.n = n
        self.args = args
        self.shim = shim
        self.servers = servers
        self.deadline = deadline
        self.rng = random.Random(args.seed + n)
        self.run_dir = top / ("n%d" % (n,))
        self.data_dir = self.run_dir / "data"
        self.access_key = "BENCH" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.result: Dict[str, Any] = {"objects": n}
        self.server: Optional[Server] = None
        self.rounds: Dict[str, List[Dict[str, Any]]] = {"HEAD": [], "GET": []}

    def check_time(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise BenchError("time limit (--time-limit %.0f s) reached before %s" % (self.args.time_limit, what))

    def say(self, text: str) -> None:
        print("[N=%d] %s" % (self.n, text), flush=True)

    def spawner(self) -> Server:
        return spawn(self.run_dir, self.data_dir, self.port, self.access_key, self.secret_key, self.args.no_fsync)

    def start(self) -> float:
        self.server, ready = start_and_time(self.spawner, self.servers)
        return ready

    def stop(self) -> float:
        assert self.server is not None
        took = stop_graceful(self.server)
        self.servers.remove(self.server)
        self.server = None
        return took

    def prepare(self) -> None:
        """Populate, first start, warm-up, memory, listing, point lookups."""
        from fasterstore.credentials import ownerForAccessKey

        n, result = self.n, self.result
        self.run_dir.mkdir()
        self.data_dir.mkdir(mode=0o700)
        print("\n## %d objects (data dir %s)" % (n, self.data_dir), flush=True)
        pop = populate(self.data_dir, n, ownerForAccessKey(self.access_key), self.rng)
        self.body = pop.pop("body")
        result["populate"] = pop
        self.say("populated in %.1f s (store path %.2f s, bulk insert %.1f s, checkpoint %.1f s, sync %.1f s); "
                 "database %.1f MiB = %.0f B/object; avg key+record text %.0f B"
                 % (pop["seconds"], pop["store_seconds"], pop["insert_seconds"], pop["checkpoint_seconds"],
                    pop["sync_seconds"], pop["db_bytes"] / 2**20, pop["db_bytes"] / n, pop["avg_row_text_bytes"]))
        self.say("sample record: %s" % (pop["sample_record"],))
        self.check_time("starting the server")

        self.port = driver.free_port()
        self.s3 = driver.s3_client("http://127.0.0.1:%d" % (self.port,), self.access_key, self.secret_key)
        ready = self.start()
        assert self.server is not None
        result["ready_first_s"] = ready
        result["rss_at_ready"] = proc_status(self.server.proc.pid)
        self.say("(a) first start: ready in %.3f s; RssAnon %.1f MiB" % (ready, result["rss_at_ready"]["RssAnon"] / 2**20))

        result["warm_up"] = warm_up(self.port, self.s3, n, self.body, self.rng)
        result["rss_after_warmup"] = mem = proc_status(self.server.proc.pid)
        self.say("warm-up (2000 HEAD, 20 list pages, 10 checked GETs) in %.1f s; RssAnon %.2f MiB, "
                 "RssFile %.1f MiB, VmRSS %.1f MiB" % (result["warm_up"]["seconds"], mem["RssAnon"] / 2**20,
                                                       mem["RssFile"] / 2**20, mem["VmRSS"] / 2**20))

        lst = list_bench(self.port, self.s3, n, self.data_dir)
        result["list"] = lst
        self.say("ListObjectsV2 1000 keys after %s (%d B XML): client median %.2f ms, p95 %.2f ms; server mean %s; "
                 "metadata layer alone median %.2f ms; its SQL (1000 rows) median %.2f ms; plan %s"
                 % (key_of(n // 2), lst["bytes"], lst["client_median_s"] * 1e3, lst["client_p95_s"] * 1e3,
                    "%.2f ms" % (lst["server_mean_s"] * 1e3,) if lst["server_mean_s"] is not None else "n/a",
                    lst["metadata_median_s"] * 1e3, lst["sql_1000_rows_median_s"] * 1e3, lst["query_plan"]))
        result["lookup"] = lookup_bench(self.data_dir, n, self.rng)
        self.say("point lookup (getObject SQL + decode) in-process: %.1f us" % (result["lookup"]["us_per_lookup"],))

        url_keys = [key_of(self.rng.randrange(n)) for _ in range(self.args.url_keys)]
        self.files = {"HEAD": self.run_dir / "head-urls.txt", "GET": self.run_dir / "get-urls.txt"}
        driver.write_url_file(self.files["HEAD"], self.s3, "HEAD", url_keys)
        driver.write_url_file(self.files["GET"], self.s3, "GET", url_keys)

    def wrk_round(self, rnd: int) -> None:
        """One HEAD and one GET wrk run."""
        assert self.server is not None
        self.check_time("wrk round %d" % (rnd + 1,))
        index = cpu_index()
        for op in ("HEAD", "GET"):
            before = driver.fetch_metrics(self.port)
            r = driver.run_wrk(self.args.wrk, self.server, self.files[op], self.args.concurrency, self.args.threads,
                               self.args.duration, rnd * 997, "unique", self.run_dir,
                               "%s-n%d-r%d" % (op, self.n, rnd), timeout=5.0,
                               preload=self.shim if op == "HEAD" else None)
            r["server_mean_s"] = server_mean(before, driver.fetch_metrics(self.port),
                                             "HeadObject" if op == "HEAD" else "GetObject")
            r["cpu_index"] = index
            self.rounds[op].append(r)
            self.say("%-4s c=%d round %d: %.0f ops/s, p50 %.2f ms, p99 %.2f ms, server mean %s (%d requests; "
                     "CPU index %.1f)" % (op, self.args.concurrency, rnd + 1, r["rps"], r["p50_us"] / 1e3,
                                          r["p99_us"] / 1e3,
                                          "%.3f ms" % (r["server_mean_s"] * 1e3,) if r["server_mean_s"] else "n/a",
                                          r["requests"], index))

    def finish(self) -> Dict[str, Any]:
        """Memory after load, the SIGTERM and SIGKILL restarts, stop, clean up."""
        assert self.server is not None
        result = self.result
        for op, rs in self.rounds.items():
            result[op] = {
                "rounds": len(rs),
                "rps": statistics.median(r["rps"] for r in rs),
                "rps_min": min(r["rps"] for r in rs),
                "rps_max": max(r["rps"] for r in rs),
                "p50_us": statistics.median(r["p50_us"] for r in rs),
                "p99_us": statistics.median(r["p99_us"] for r in rs),
                "server_mean_s": statistics.median(r["server_mean_s"] or 0.0 for r in rs),
                "each": [{k: r[k] for k in ("rps", "p50_us", "p99_us", "server_mean_s", "cpu_index")} for r in rs],
            }
        result["cpu_index"] = statistics.median(r["cpu_index"] for r in self.rounds["HEAD"])
        result["rss_after_load"] = proc_status(self.server.proc.pid)
        self.say("after wrk: RssAnon %.2f MiB, VmHWM %.1f MiB"
                 % (result["rss_after_load"]["RssAnon"] / 2**20, result["rss_after_load"]["VmHWM"] / 2**20))
        self.check_time("the restarts")

        result["stop_s"] = self.stop()
        result["ready_after_term_s"] = ready = self.start()
        self.say("(b) SIGTERM stop took %.2f s; restart ready in %.3f s" % (result["stop_s"], ready))

        kill_puts(self.port, self.s3, KILL_PUTS)
        wal = self.data_dir / "meta" / "metadata.sqlite-wal"
        assert self.server is not None
        kill9(self.server)
        self.servers.remove(self.server)
        self.server = None
        result["wal_bytes_at_kill"] = wal.stat().st_size if wal.exists() else 0
        result["ready_after_kill_s"] = ready = self.start()
        check_after_kill(self.port, self.s3, self.n, self.body, KILL_PUTS)
        self.say("(c) SIGKILL after %d durable PUTs (WAL %.1f MiB left): restart ready in %.3f s; data checked"
                 % (KILL_PUTS, result["wal_bytes_at_kill"] / 2**20, ready))
        self.stop()
        if not self.args.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return result



# --------------------------------------------------------------------------
# report


def table(base: Optional[Dict[str, Any]], big: Dict[str, Any]) -> Tuple[str, List[str]]:
    misses: List[str] = []
    nb = base["objects"] if base else None
    n = big["objects"]
    growth = None
    if base:
        growth = (big["rss_after_warmup"]["RssAnon"] - base["rss_after_warmup"]["RssAnon"]) / (n - nb)
        growth_load = (big["rss_after_load"]["RssAnon"] - base["rss_after_load"]["RssAnon"]) / (n - nb)

    def ms(s: Optional[float]) -> str:
        return "n/a" if s is None else "%.2f" % (s * 1e3,)

    rows: List[Tuple[str, str, str, str]] = []

    def row(name: str, f: Callable[[Dict[str, Any]], str], target: str = "") -> None:
        rows.append((name, f(base) if base else "–", f(big), target))

    def verdict(ok: bool, text: str) -> str:
        if not ok:
            misses.append(text)
        return ("✅ " if ok else "❌ ") + text

    row("populate (s)", lambda r: "%.1f" % r["populate"]["seconds"])
    row("  of which bulk SQL insert (s)", lambda r: "%.1f" % r["populate"]["insert_seconds"])
    row("database size (MiB)", lambda r: "%.1f" % (r["populate"]["db_bytes"] / 2**20))
    row("database bytes / object", lambda r: "%.0f" % (r["populate"]["db_bytes"] / r["objects"]))
    for label, k in (("ready, first start (s)", "ready_first_s"),
                     ("ready after SIGTERM stop (s)", "ready_after_term_s"),
                     ("ready after SIGKILL (s)", "ready_after_kill_s")):
        t = ""
        if k != "ready_first_s":
            ok = big[k] <= TARGETS["ready_s"] and (not base or big[k] <= base[k] * 1.5 + 0.2)
            t = verdict(ok, "%s ≤ 3 s, not growing with N" % (label.split(" (")[0],))
        row(label, lambda r, k=k: "%.3f" % r[k], t)
    row("WAL left by SIGKILL (MiB)", lambda r: "%.1f" % (r["wal_bytes_at_kill"] / 2**20))
    row("RssAnon at ready (MiB)", lambda r: "%.2f" % (r["rss_at_ready"]["RssAnon"] / 2**20))
    row("RssAnon after warm-up (MiB)", lambda r: "%.2f" % (r["rss_after_warmup"]["RssAnon"] / 2**20))
    row("RssAnon after wrk (MiB)", lambda r: "%.2f" % (r["rss_after_load"]["RssAnon"] / 2**20))
    row("RssFile after warm-up (MiB; mmap + binaries)", lambda r: "%.1f" % (r["rss_after_warmup"]["RssFile"] / 2**20))
    if growth is not None:
        rows.append(("RssAnon growth per object (B), after warm-up", "", "%.1f" % growth,
                     verdict(growth <= TARGETS["rss_growth_b_per_object"], "≤ 300 B/object")))
        rows.append(("RssAnon growth per object (B), after wrk", "", "%.1f" % growth_load, ""))
    row("List 1000 from middle: client median (ms)", lambda r: ms(r["list"]["client_median_s"]))
    row("List 1000 from middle: client p95 (ms)", lambda r: ms(r["list"]["client_p95_s"]))
    sm = big["list"]["server_mean_s"]
    row("List 1000 from middle: server mean (ms)", lambda r: ms(r["list"]["server_mean_s"]),
        verdict(sm is not None and sm <= TARGETS["list_server_ms"] / 1e3, "≤ 15 ms server time"))
    row("  metadata layer alone, median (ms)", lambda r: ms(r["list"]["metadata_median_s"]))
    row("  its SQL, 1000 rows, median (ms)", lambda r: ms(r["list"]["sql_1000_rows_median_s"]))
    for op in ("HEAD", "GET"):
        t_ops = t_p99 = ""
        if base:
            # "No worse": within 10% on throughput, 25% (or 0.5 ms) on p99.
            ok_ops = big[op]["rps"] >= 0.9 * base[op]["rps"]
            ok_p99 = big[op]["p99_us"] <= max(1.25 * base[op]["p99_us"], base[op]["p99_us"] + 500)
            t_ops = verdict(ok_ops, "%s ops/s no worse than at %d (≥ 90%%)" % (op, nb))
            t_p99 = verdict(ok_p99, "%s p99 no worse than at %d (≤ 125%% or +0.5 ms)" % (op, nb))
        row("%s c=16 ops/s, median of rounds" % op, lambda r, op=op: "%.0f" % r[op]["rps"], t_ops)
        row("%s c=16 ops/s, min–max of rounds" % op,
            lambda r, op=op: "%.0f–%.0f" % (r[op]["rps_min"], r[op]["rps_max"]))
        row("%s c=16 p50 (ms), median" % op, lambda r, op=op: "%.2f" % (r[op]["p50_us"] / 1e3))
        row("%s c=16 p99 (ms), median" % op, lambda r, op=op: "%.2f" % (r[op]["p99_us"] / 1e3), t_p99)
        row("%s server mean (ms)" % op, lambda r, op=op: ms(r[op]["server_mean_s"]))
    row("point lookup in-process (µs)", lambda r: "%.1f" % r["lookup"]["us_per_lookup"])
    row("CPU speed index before wrk (machine noise)", lambda r: "%.1f" % r["cpu_index"])
    out = ["| figure | %s | %s | target |" % (("N = %d" % nb) if base else "baseline", "N = %d" % n),
           "|---|---:|---:|---|"]
    out += ["| %s | %s | %s | %s |" % r for r in rows]
    return "\n".join(out), misses


# --------------------------------------------------------------------------
# main


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="FasterStore metadata at N objects in one bucket vs a baseline.")
    p.add_argument("--objects", type=int, default=1_000_000, help="N (1,000,000)")
    p.add_argument("--baseline", type=int, default=10_000, help="baseline size, same procedure (10,000; 0: none)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (10)")
    p.add_argument("--concurrency", type=int, default=16, help="wrk connections (16)")
    p.add_argument("--wrk-rounds", type=int, default=3,
                   help="HEAD,GET wrk rounds per size; the table shows medians (3)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    p.add_argument("--url-keys", type=int, default=20000, help="random keys presigned for each wrk run (20000)")
    p.add_argument("--no-fsync", action="store_true", help="run the server with --no-fsync (default: fsync on)")
    p.add_argument("--tmp-dir", default="/var/tmp", help="parent of the temporary directories (/var/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")
    p.add_argument("--time-limit", type=float, default=1200.0, help="abort after this many seconds (1200)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    args = p.parse_args(argv)
    if args.objects < 2000:
        p.error("--objects must be at least 2000")
    if args.baseline and not 2000 <= args.baseline < args.objects:
        p.error("--baseline must be 0 or between 2000 and --objects")
    return args



def run_and_clean_up(body: Callable[[], int], servers: List[Server], results: Dict[str, Any],
                     args: argparse.Namespace, top: Path, started: float) -> int:
    """
    Run a benchmark's C{body} (which fills C{results} and returns the exit
    status); report a failure as one; then, whatever happened, stop every
    server by PID, write C{--json}, and remove C{top} unless C{--keep}.
    """
    status = 1
    try:
        status = body()
    except BenchError as e:
        print("\nBENCHMARK FAILED: %s" % (e,), file=sys.stderr)
        results["error"] = str(e)
    except KeyboardInterrupt as e:
        print("\ninterrupted (%s)" % (e or "SIGINT",), file=sys.stderr)
        status = 130
    except Exception as e:
        import traceback

        traceback.print_exc()
        print("\nBENCHMARK FAILED: %r" % (e,), file=sys.stderr)
        for server in servers:
            print("server log tail:\n" + server.log_tail(), file=sys.stderr)
        results["error"] = repr(e)
    finally:
        for server in reversed(servers):
            try:
                print(driver.stop(server), file=sys.stderr)
            except Exception as e:
                print("stopping pid %d failed: %r" % (server.proc.pid, e), file=sys.stderr)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        if args.keep:
            print("kept %s" % (top,), file=sys.stderr)
        else:
            shutil.rmtree(top, ignore_errors=True)
        print("total %.0f s" % (time.monotonic() - started,), file=sys.stderr)
    return status


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, driver._raise_on_sigterm)
    if not shutil.which(args.wrk):
        print("wrk not found", file=sys.stderr)
        return 2
    started = time.monotonic()
    deadline = started + args.time_limit
    top = Path(tempfile.mkdtemp(prefix="fasterstore-metascale-", dir=args.tmp_dir))
    servers: List[Server] = []
    results: Dict[str, Any] = {}

    def body() -> int:
        info = driver.machine_info(top, args.wrk)
        print("## Machine\n")
        for k in ("cpu_model", "usable_cpus", "memory", "kernel", "python", "twisted", "wrk",
                  "data_dir_filesystem", "loadavg_at_start"):
            print("- %s: %s" % (k, info[k]))
        import sqlite3

        print("- sqlite: %s" % (sqlite3.sqlite_version,))
        print("- server: %s, fsync %s" % (" ".join(driver.twistd_command()), "OFF" if args.no_fsync else "ON"))
        shim = driver.build_head_shim(top)
        sizes = ([args.baseline] if args.baseline else []) + [args.objects]
        runs = [SizeRun(n, args, top, shim, servers, deadline) for n in sizes]
        for r in runs:
            r.prepare()
        print("\n## HEAD / GET with wrk, rounds interleaved across sizes\n", flush=True)
        for rnd in range(args.wrk_rounds):
            for r in (runs if rnd % 2 == 0 else runs[::-1]):
                r.wrk_round(rnd)
        print("\n## Restarts\n", flush=True)
        for r in runs:
            r.finish()
        base = runs[0].result if args.baseline else None
        big = runs[-1].result
        results["baseline"] = base
        results["n"] = big
        text, misses = table(base, big)
        print("\n## Results: %d objects in one bucket%s, wrk -c%d -t%d -d%gs x %d rounds, fsync %s\n"
              % (args.objects, " vs %d" % args.baseline if base else "", args.concurrency, args.threads,
                 args.duration, args.wrk_rounds, "OFF" if args.no_fsync else "ON"))
        print(text)
        print()
        if misses:
            print("Missed targets:")
            for m in misses:
                print("- " + m)
        else:
            print("All targets met.")
        results["misses"] = misses
        return 0

    return run_and_clean_up(body, servers, results, args, top, started)


if __name__ == "__main__":
    sys.exit(main())
