"""
FasterStore versions at scale: ListObjectsV2 and ListObjectVersions pages
of 1000 keys (server time, raw HTTP) and GET/HEAD, (a) on one key with
100,000 versions and (b) on a versioned bucket of 1,000,000 objects.

One temporary data directory on the real disk (``--tmp-dir``, default
``/var/tmp``), one server, fsync on:

1. **Populate** in this process, bypassing HTTP, with
   ``metadata_scale.Populator`` (one shared 4 KiB blob written through the
   real ``SegmentStore``; the store creates the buckets, owned by the
   benchmark key pair's canonical id, sets their versioning to
   ``Enabled`` through ``updateBucket`` and takes the first object through
   ``putObject``; every other row is inserted with SQL, encoded by the
   store's own ``objectRow(record)`` (``objects``: each key's latest
   version) and ``versionRow(record, seq, noncurrentSince)`` /
   ``_INSERT_VERSION`` (``versions``: older versions and delete markers);
   then the blob's ``refs`` (one per version), the ``objects`` /
   ``logical_bytes`` counters (the ``objects`` rows) and the ``seq``
   counter (the greatest version number given) are set to match and
   checked).  Version numbers are given in insertion order, as the store
   would have numbered the writes: a key's older versions have smaller
   ones, and each older version's ``noncurrent_since`` is the
   modification time of the version that replaced it.

   - bucket ``bench``: ``--objects`` keys ``obj/%08d`` (1,000,000),
     inserted in shuffled order; every ``--noncurrent-every``-th of them
     (4) also has one older version; and ``--deleted`` keys ``gone/%06d``
     (5,000) whose latest version is a delete marker over one older
     version (a page of those pays ``_isLatestMarker`` per marker).
   - bucket ``hot``: ``--neighbours`` one-version keys ``obj/%08d``
     (10,000) and, between ``obj/00005000`` and ``obj/00005001``, the key
     ``obj/00005000.hot`` with ``--versions`` versions (100,000): 1
     ``objects`` row and 99,999 ``versions`` rows.

2. **Server**: ``twistd -n --pidfile= fasterstore`` (``metadata_scale.spawn``)
   on a loopback port, its default workers; a warm-up of a few requests
   per page below.
3. **Pages**: each a presigned request over one keep-alive connection,
   3 warm-ups then ``--samples`` (30) timed send-to-last-byte (loopback:
   about the server's time); the server's own mean from the
   ``fasterstore_request_seconds`` histogram (``_sum``/``_count`` deltas,
   which with several workers is every worker's, as the scrape adds them);
   each response is checked (entry count, first key or version); and, for
   diagnosis, the metadata layer alone (``_listObjects`` /
   ``_listVersions`` on a read-only connection in this process, no HTTP,
   no XML).  Then every page of the hot key's versions in turn, following
   ``NextKeyMarker`` / ``NextVersionIdMarker``: page count and the slowest.
4. **GET/HEAD with wrk** (``run.py``'s ``presigned.lua`` and HEAD shim),
   c=``--concurrency`` (16), ``--duration`` s (5), ``--wrk-rounds`` (3)
   rounds, the variants alternating in order each round: HEAD and GET of
   the hot key's latest, of a one-version key in the same bucket, and GET
   and HEAD by ``versionId`` of the hot key's middle version (a
   ``versions`` row); each URL file is that one presigned URL.  Each
   response's ``x-amz-version-id`` and bytes are checked first, and each
   variant has a 1 s wrk warm-up that is not counted.  Server CPU per
   request is counted as ``run.py`` does.  Because a busy machine's noise
   falls unevenly on the variants, the metadata lookup behind each (the
   store's ``_readObject`` / ``_readVersion``) is also timed in-process.

Then a markdown table, each figure beside the issue's target.  The server
is stopped by PID in a ``finally``; the temporary directory is removed
unless ``--keep``.  The whole run is bounded by ``--time-limit``.

Usage::

    .venv/bin/python benchmarks/versions_scale.py                   # 1M objects, 100k versions
    .venv/bin/python benchmarks/versions_scale.py --objects 100000 --versions 20000 --duration 2

Needs ``wrk`` and a C compiler (for the HEAD shim), like ``run.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import metadata_scale as ms  # noqa: E402  (Populator, spawn, Client, server_mean, ...)
import run as driver  # noqa: E402  (processes, presigning, wrk)
from run import BenchError, Server  # noqa: E402

BIG = "bench"
HOT = "hot"
HOT_KEY = "obj/00005000.hot"
TARGET_MS = 15.0


def _now() -> float:
    return time.perf_counter()


# --------------------------------------------------------------------------
# 1. populate


class Numbering:
    """The store's ``seq``: every version gets the next number, as the writes would have."""

    def __init__(self, last: int) -> None:
        self.last = last

    def next(self) -> int:
        self.last += 1
        return self.last


def populate(data_dir: Path, owner: str, args: argparse.Namespace, rng: random.Random) -> Dict[str, Any]:
    """Both buckets (see the module docstring); returns the populate figures and what the pages expect."""
    from fasterstore.metadata.records import ENABLED, ObjectRecord, seqOf, versionIdOf
    from fasterstore.metadata.sqlite import _INSERT_VERSION, INSERT_OBJECT, objectRow, versionRow

    pop = ms.Populator(data_dir)
    evolve = pop.evolve
    created = pop.created

    def version(bucket: str, key: str, seq: int) -> Any:
        return evolve(pop.template, bucket=bucket, key=key, modified=created + seq, versionId=versionIdOf(seq))

    def marker(bucket: str, key: str, seq: int) -> Any:
        return evolve(ObjectRecord.marker(bucket, key, created + seq), versionId=versionIdOf(seq))

    every = args.noncurrent_every
    has_older = (lambda i: i % every == every - 1) if every else (lambda i: False)
    try:
        pop.bucket(BIG, owner, ENABLED)
        pop.bucket(HOT, owner, ENABLED)
        order = list(range(args.objects))
        rng.shuffle(order)
        first = next(i for i in order if not has_older(i))
        stored = pop.put(evolve(pop.template, key=ms.key_of(first), modified=created))
        seq = Numbering(seqOf(stored.versionId or "") or 0)
        if seq.last < 1:
            raise BenchError("the first putObject on a versioned bucket gave no version id: %r" % (stored,))
        pop.open_sql()
        hot_seqs: List[int] = []

        def rows() -> Iterator[Tuple[str, Tuple[Any, ...]]]:
            for i in order:
                if i == first:
                    continue
                key = ms.key_of(i)
                if has_older(i):
                    old, cur = seq.next(), seq.next()
                    yield _INSERT_VERSION, versionRow(version(BIG, key, old), old, created + cur)
                    yield INSERT_OBJECT, objectRow(version(BIG, key, cur))
                else:
                    yield INSERT_OBJECT, objectRow(version(BIG, key, seq.next()))
            for j in range(args.deleted):
                key = "gone/%06d" % (j,)
                old, gone = seq.next(), seq.next()
                yield _INSERT_VERSION, versionRow(version(BIG, key, old), old, created + gone)
                yield _INSERT_VERSION, versionRow(marker(BIG, key, gone), gone, 0.0)
            for j in range(args.neighbours):
                yield INSERT_OBJECT, objectRow(version(HOT, ms.key_of(j), seq.next()))
            hot_seqs.extend(seq.next() for _ in range(args.versions))
            for older, newer in zip(hot_seqs, hot_seqs[1:]):
                yield _INSERT_VERSION, versionRow(version(HOT, HOT_KEY, older), older, created + newer)
            yield INSERT_OBJECT, objectRow(version(HOT, HOT_KEY, hot_seqs[-1]))

        pop.insert_mixed(rows())
        result = pop.finish(seq=seq.last)
    finally:
        pop.close()
    result["hot_seqs"] = (hot_seqs[0], hot_seqs[-1])
    result["seq"] = seq.last
    return result


# --------------------------------------------------------------------------
# 3. pages


_ENTRY = re.compile(rb"<(Version|DeleteMarker)><Key>([^<]*)</Key><VersionId>([^<]*)</VersionId>")
_KEY = re.compile(rb"<Contents><Key>([^<]*)</Key>")


def _text(body: bytes, name: str) -> Optional[str]:
    m = re.search(rb"<%s>([^<]*)</%s>" % (name.encode(), name.encode()), body)
    return None if m is None else m.group(1).decode()


def _unquote(body: bytes, text: str) -> str:
    return urllib.parse.unquote(text) if b"<EncodingType>url</EncodingType>" in body else text


def parse_versions(body: bytes) -> Dict[str, Any]:
    """What a ListVersionsResult page holds: its entries (kind, key, id) and where the next page starts."""
    entries = [(kind.decode(), _unquote(body, key.decode()), vid.decode()) for kind, key, vid in _ENTRY.findall(body)]
    return {
        "entries": entries,
        "markers": sum(1 for e in entries if e[0] == "DeleteMarker"),
        "truncated": _text(body, "IsTruncated") == "true",
        "next_key": _unquote(body, _text(body, "NextKeyMarker") or ""),
        "next_version": _text(body, "NextVersionIdMarker") or "",
    }


def parse_objects(body: bytes) -> List[str]:
    return [_unquote(body, k.decode()) for k in _KEY.findall(body)]


class Page:
    """One list request to time: its presigned URL, what checks the answer, and the in-process equivalent."""

    def __init__(self, name: str, operation: str, url: str, check: Callable[[bytes], int],
                 in_process: Callable[[Any], int]) -> None:
        self.name = name
        self.operation = operation
        self.url = url
        self.check = check
        self.in_process = in_process


def presign_versions(s3: Any, bucket: str, key_marker: str = "", version_id_marker: str = "",
                     prefix: str = "", max_keys: int = 1000) -> str:
    params: Dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys}
    if key_marker:
        params["KeyMarker"] = key_marker
    if version_id_marker:
        params["VersionIdMarker"] = version_id_marker
    if prefix:
        params["Prefix"] = prefix
    return str(s3.generate_presigned_url("list_object_versions", Params=params, ExpiresIn=3600, HttpMethod="GET"))


def presign_objects(s3: Any, bucket: str, start_after: str, max_keys: int = 1000) -> str:
    return str(s3.generate_presigned_url(
        "list_objects_v2", Params={"Bucket": bucket, "StartAfter": start_after, "MaxKeys": max_keys},
        ExpiresIn=3600, HttpMethod="GET"))


def versions_check(name: str, expect: int, first: Tuple[str, Optional[str]], markers: Optional[int] = None
                   ) -> Callable[[bytes], int]:
    """A page of ``expect`` entries whose first is ``first`` (key, version id; ``None``: any id)."""
    def check(body: bytes) -> int:
        page = parse_versions(body)
        entries = page["entries"]
        if len(entries) != expect or (entries and entries[0][1:] != (first[0], first[1] or entries[0][2])):
            raise BenchError("%s: %d entries (expected %d), first %r (expected %r): %r"
                             % (name, len(entries), expect, entries[0][1:] if entries else None, first, body[:400]))
        if markers is not None and page["markers"] != markers:
            raise BenchError("%s: %d delete markers (expected %d)" % (name, page["markers"], markers))
        return len(entries)
    return check


def objects_check(name: str, expect: int, first: str, contains: Optional[str] = None) -> Callable[[bytes], int]:
    def check(body: bytes) -> int:
        keys = parse_objects(body)
        if len(keys) != expect or (keys and keys[0] != first) or (contains and contains not in keys):
            raise BenchError("%s: %d keys (expected %d), first %r (expected %r)%s: %r"
                             % (name, len(keys), expect, keys[0] if keys else None, first,
                                ", %s missing" % (contains,) if contains else "", body[:400]))
        return len(keys)
    return check


def one_request(port: int, url: str) -> bytes:
    """One presigned GET's body (it must answer 200)."""
    c = ms.Client(port)
    try:
        status, data, _ = c.send("GET", url)
    finally:
        c.close()
    if status != 200:
        raise BenchError("GET %s: HTTP %d %r" % (url.split("?")[0], status, data[:300]))
    return data


def server_over(before: Optional[str], after: Optional[str], operation: str) -> Dict[str, int]:
    """
    How many ``operation`` requests between two scrapes took the server
    more than 10 ms and more than 25 ms (the histogram's buckets around
    the 15 ms target), all workers added.
    """
    def counts(text: Optional[str]) -> Dict[str, float]:
        out: Dict[str, float] = {}
        label = 'operation="%s"' % (operation,)
        for line in (text or "").splitlines():
            if label not in line:
                continue
            if line.startswith("fasterstore_request_seconds_count{"):
                out["count"] = out.get("count", 0.0) + float(line.rsplit(" ", 1)[1])
            elif line.startswith("fasterstore_request_seconds_bucket{"):
                le = re.search(r'le="([^"]+)"', line)
                if le and le.group(1) in ("0.01", "0.025"):
                    out[le.group(1)] = out.get(le.group(1), 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    b, a = counts(before), counts(after)
    total = a.get("count", 0.0) - b.get("count", 0.0)
    return {"requests": int(total),
            "over_10ms": int(total - (a.get("0.01", 0.0) - b.get("0.01", 0.0))),
            "over_25ms": int(total - (a.get("0.025", 0.0) - b.get("0.025", 0.0)))}


def time_page(port: int, page: Page, samples: int, db: Any) -> Dict[str, Any]:
    """Warm-ups, then ``samples`` timed requests on one connection; the server's mean; the metadata layer alone."""
    c = ms.Client(port)
    try:
        for _ in range(3):
            status, data, _ = c.send("GET", page.url)
            if status != 200:
                raise BenchError("%s: HTTP %d %r" % (page.name, status, data[:300]))
            entries = page.check(data)
        before = driver.fetch_metrics(port)
        times = []
        for _ in range(samples):
            t0 = _now()
            status, data, _ = c.send("GET", page.url)
            times.append(_now() - t0)
            if status != 200:
                raise BenchError("%s: HTTP %d %r" % (page.name, status, data[:300]))
        after = driver.fetch_metrics(port)
        page.check(data)
    finally:
        c.close()
    meta = []
    for i in range(samples + 3):
        t0 = _now()
        n = page.in_process(db)
        if i >= 3:
            meta.append(_now() - t0)
    if n != entries:
        raise BenchError("%s: the metadata layer gave %d entries, HTTP %d" % (page.name, n, entries))
    return {
        "entries": entries,
        "bytes": len(data),
        "client_median_s": statistics.median(times),
        "client_p95_s": ms.percentile(times, 95),
        "server_mean_s": ms.server_mean(before, after, page.operation),
        "server_over": server_over(before, after, page.operation),
        "metadata_median_s": statistics.median(meta),
    }


def walk_hot_key(port: int, s3: Any, versions: int) -> Dict[str, Any]:
    """Every page of the hot key's versions (prefix = the key), following the next markers."""
    c = ms.Client(port)
    times: List[float] = []
    seen = 0
    key_marker = version_marker = ""
    before = driver.fetch_metrics(port)
    try:
        while True:
            url = presign_versions(s3, HOT, key_marker, version_marker, prefix=HOT_KEY)
            t0 = _now()
            status, data, _ = c.send("GET", url)
            times.append(_now() - t0)
            if status != 200:
                raise BenchError("hot key walk: HTTP %d %r" % (status, data[:300]))
            page = parse_versions(data)
            seen += len(page["entries"])
            if not page["truncated"]:
                break
            key_marker, version_marker = page["next_key"], page["next_version"]
            if len(times) > versions // 1000 + 10:
                raise BenchError("hot key walk: more pages than versions")
    finally:
        c.close()
    after = driver.fetch_metrics(port)
    if seen != versions:
        raise BenchError("hot key walk saw %d versions, not %d" % (seen, versions))
    return {"pages": len(times), "versions": seen, "client_median_s": statistics.median(times),
            "client_p95_s": ms.percentile(times, 95), "client_max_s": max(times),
            "client_over_15ms": sum(1 for t in times if t > TARGET_MS / 1e3),
            "server_mean_s": ms.server_mean(before, after, "ListObjectVersions"),
            "server_over": server_over(before, after, "ListObjectVersions")}


def lookups(db: Any, reads: Dict[str, Tuple[str, Optional[str]]], count: int = 20000) -> Dict[str, float]:
    """
    Microseconds per metadata lookup of each read, in this process on a
    read-only connection with the store's settings (the store's own
    ``_readObject`` for the latest, ``_readVersion`` by id), with no HTTP
    and none of the machine's noise between variants: each is timed in
    turn, ``count`` times, twice, and the faster of the two kept.
    """
    from fasterstore.metadata.sqlite import _readObject, _readVersion

    out: Dict[str, float] = {}
    for name, (key, vid) in reads.items():
        def one() -> Any:
            return _readObject(db, HOT, key) if vid is None else _readVersion(db, HOT, key, vid)
        if one() is None:
            raise BenchError("in-process lookup %s found nothing" % (name,))
        best = float("inf")
        for _ in range(2):
            t0 = _now()
            for _ in range(count):
                one()
            best = min(best, (_now() - t0) / count)
        out[name] = best * 1e6
    return out


def query_plans(db: Any) -> Dict[str, List[str]]:
    """How SQLite runs ListObjectVersions' two range reads (objects, versions) for a marker inside a key."""
    out = {}
    for table in ("objects", "versions"):
        out[table] = [r[-1] for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT key, seq FROM %s WHERE bucket = ? AND key = ? AND seq < ? "
            "ORDER BY key, seq DESC LIMIT ?" % (table,), (HOT, HOT_KEY, 5, 1001))]
    return out


# --------------------------------------------------------------------------
# 4. GET / HEAD


def check_reads(port: int, s3: Any, body: bytes, reads: Dict[str, Tuple[str, str, Optional[str], str]]) -> None:
    """Each variant's one request: status, bytes and x-amz-version-id."""
    c = ms.Client(port)
    try:
        for name, (method, key, vid, expect) in reads.items():
            status, data, resp = c.send(method, driver.presign(s3, method, key, HOT, vid))
            got = resp.getheader("x-amz-version-id")
            if status != 200 or got != expect or (method == "GET" and data != body):
                raise BenchError("%s: HTTP %d, x-amz-version-id %r (expected %r), %d bytes%s"
                                 % (name, status, got, expect, len(data),
                                    "" if method == "HEAD" or data == body else " DIFFERENT"))
    finally:
        c.close()


# --------------------------------------------------------------------------
# main


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="FasterStore versions: list pages and GET/HEAD at scale.")
    p.add_argument("--objects", type=int, default=1_000_000, help="objects in bucket bench (1,000,000)")
    p.add_argument("--noncurrent-every", type=int, default=4,
                   help="every Nth object of bench also has one older version (4; 0: none)")
    p.add_argument("--deleted", type=int, default=5000,
                   help="keys gone/... in bench whose latest version is a delete marker (5000)")
    p.add_argument("--versions", type=int, default=100_000, help="versions of the hot key (100,000)")
    p.add_argument("--neighbours", type=int, default=10_000, help="one-version keys around it in bucket hot (10,000)")
    p.add_argument("--samples", type=int, default=30, help="timed requests per page (30)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (5)")
    p.add_argument("--concurrency", type=int, default=16, help="wrk connections (16)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    p.add_argument("--wrk-rounds", type=int, default=3, help="rounds of the GET/HEAD variants (3)")
    p.add_argument("--no-fsync", action="store_true", help="run the server with --no-fsync (default: fsync on)")
    p.add_argument("--server-arg", action="append", default=[], help="extra argument for the plugin (repeatable)")
    p.add_argument("--tmp-dir", default="/var/tmp", help="parent of the temporary directory (/var/tmp)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")
    p.add_argument("--time-limit", type=float, default=900.0, help="abort after this many seconds (900)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    args = p.parse_args(argv)
    if args.objects < 4000:
        p.error("--objects must be at least 4000")
    if args.versions < 3000:
        p.error("--versions must be at least 3000")
    if not 5002 <= args.neighbours <= 99_999_999:
        p.error("--neighbours must be at least 5002 (the hot key sits after obj/00005000)")
    if args.deleted and args.deleted < 1000:
        p.error("--deleted must be 0 or at least 1000 (a page of them)")
    return args


def ms_text(s: Optional[float]) -> str:
    return "n/a" if s is None else "%.2f" % (s * 1e3,)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, driver._raise_on_sigterm)
    if not shutil.which(args.wrk):
        print("wrk not found", file=sys.stderr)
        return 2
    started = time.monotonic()
    deadline = started + args.time_limit

    def check_time(what: str) -> None:
        if time.monotonic() > deadline:
            raise BenchError("time limit (--time-limit %.0f s) reached before %s" % (args.time_limit, what))

    top = Path(tempfile.mkdtemp(prefix="fasterstore-versions-", dir=args.tmp_dir))
    servers: List[Server] = []
    results: Dict[str, Any] = {"args": vars(args)}
    rng = random.Random(args.seed)

    def body() -> int:
        import sqlite3

        from fasterstore.credentials import ownerForAccessKey
        from fasterstore.metadata.records import versionIdOf
        from fasterstore.metadata.sqlite import DATABASE_NAME, _listObjects, _listVersions, connect

        info = driver.machine_info(top, args.wrk)
        print("## Machine\n")
        for k in ("cpu_model", "usable_cpus", "memory", "kernel", "python", "twisted", "wrk",
                  "data_dir_filesystem", "git", "loadavg_at_start"):
            print("- %s: %s" % (k, info[k]))
        print("- sqlite: %s" % (sqlite3.sqlite_version,))
        print("- server: %s, fsync %s %s" % (" ".join(driver.twistd_command()), "OFF" if args.no_fsync else "ON",
                                             " ".join(args.server_arg)))
        results["machine"] = info
        shim = driver.build_head_shim(top)
        data_dir = top / "data"
        data_dir.mkdir(mode=0o700)
        access_key = "BENCH" + secrets.token_hex(8).upper()
        secret_key = secrets.token_urlsafe(30)

        print("\n## Populate\n", flush=True)
        pop = populate(data_dir, ownerForAccessKey(access_key), args, rng)
        body = pop.pop("body")
        results["populate"] = pop
        first_hot, last_hot = pop["hot_seqs"]
        print("populated in %.1f s (bulk insert %.1f s, checkpoint %.1f s, sync %.1f s): %d objects rows, "
              "%d versions rows (delete markers not counted: %d), seq %d; database %.1f MiB"
              % (pop["seconds"], pop["insert_seconds"], pop["checkpoint_seconds"], pop["sync_seconds"],
                 pop["objects_rows"], pop["versions_rows"], args.deleted, pop["seq"], pop["db_bytes"] / 2**20),
              flush=True)
        check_time("starting the server")

        port = driver.free_port()
        s3 = driver.s3_client("http://127.0.0.1:%d" % (port,), access_key, secret_key)

        def spawner() -> Server:
            return ms.spawn(top, data_dir, port, access_key, secret_key, args.no_fsync, args.server_arg)

        server, ready = ms.start_and_time(spawner, servers)
        results["ready_s"] = ready
        print("server ready in %.2f s (pid %d)" % (ready, server.proc.pid), flush=True)

        db = connect(str(data_dir / "meta" / DATABASE_NAME), True, False)
        try:
            n = args.objects
            middle = ms.key_of(n // 2)
            mid_hot = (first_hot + last_hot) // 2
            # An object of bench with an older version, near the middle: its
            # current version as the version-id marker (the page goes on
            # with its older version, then the next keys).
            every = args.noncurrent_every
            pages: List[Page] = [
                Page("bench: ListObjectsV2, 1000 keys after %s" % (middle,), "ListObjectsV2",
                     presign_objects(s3, BIG, middle),
                     objects_check("bench list", 1000, ms.key_of(n // 2 + 1)),
                     lambda d: len(_listObjects(d, BIG, "", "", middle, 1000).objects)),
            ]
            first_after = ms.key_of(n // 2 + 1)
            first_vid = parse_versions(one_request(port, presign_versions(s3, BIG, middle, max_keys=1)))
            pages.append(Page(
                "bench: ListObjectVersions, 1000 versions, key-marker %s" % (middle,), "ListObjectVersions",
                presign_versions(s3, BIG, middle),
                versions_check("bench versions", 1000, (first_after, first_vid["entries"][0][2])),
                lambda d: len(_listVersions(d, BIG, "", "", middle, "", 1000).versions)))
            if every:
                k = (n // 2) - ((n // 2) % every) + every - 1  # a key with an older version
                kk = ms.key_of(k)
                found = parse_versions(one_request(port, presign_versions(s3, BIG, ms.key_of(k - 1),
                                                                          max_keys=2)))["entries"]
                if len(found) != 2 or found[0][1] != kk or found[1][1] != kk:
                    raise BenchError("bench %s should have two versions: %r" % (kk, found))
                pages.append(Page(
                    "bench: ListObjectVersions, 1000 versions, key-marker %s + version-id-marker (its latest)" % (kk,),
                    "ListObjectVersions", presign_versions(s3, BIG, kk, found[0][2]),
                    versions_check("bench versions by id", 1000, (kk, found[1][2])),
                    lambda d: len(_listVersions(d, BIG, "", "", kk, found[0][2], 1000).versions)))
            if args.deleted:
                pages.append(Page(
                    "bench: ListObjectVersions, 1000 entries from gone/ (500 delete markers)", "ListObjectVersions",
                    presign_versions(s3, BIG, "gone/"),
                    versions_check("gone versions", 1000, ("gone/000000", None), markers=500),
                    lambda d: len(_listVersions(d, BIG, "", "", "gone/", "", 1000).versions)))
            pages += [
                Page("hot: ListObjectVersions, 1000 versions of %s from its middle (version-id-marker)" % (HOT_KEY,),
                     "ListObjectVersions", presign_versions(s3, HOT, HOT_KEY, versionIdOf(mid_hot)),
                     versions_check("hot middle", 1000, (HOT_KEY, versionIdOf(mid_hot - 1))),
                     lambda d: len(_listVersions(d, HOT, "", "", HOT_KEY, versionIdOf(mid_hot), 1000).versions)),
                Page("hot: ListObjectVersions, prefix %s, first page (latest + 999 older)" % (HOT_KEY,),
                     "ListObjectVersions", presign_versions(s3, HOT, prefix=HOT_KEY),
                     versions_check("hot first", 1000, (HOT_KEY, versionIdOf(last_hot))),
                     lambda d: len(_listVersions(d, HOT, HOT_KEY, "", "", "", 1000).versions)),
                Page("hot: ListObjectVersions, key-marker obj/00004990 (10 keys, then %s)" % (HOT_KEY,),
                     "ListObjectVersions", presign_versions(s3, HOT, ms.key_of(4990)),
                     versions_check("hot across", 1000, (ms.key_of(4991), None)),
                     lambda d: len(_listVersions(d, HOT, "", "", ms.key_of(4990), "", 1000).versions)),
                Page("hot: ListObjectsV2, 1000 keys after obj/00004500 (across %s)" % (HOT_KEY,), "ListObjectsV2",
                     presign_objects(s3, HOT, ms.key_of(4500)),
                     objects_check("hot list", 1000, ms.key_of(4501), contains=HOT_KEY),
                     lambda d: len(_listObjects(d, HOT, "", "", ms.key_of(4500), 1000).objects)),
            ]
            print("\n## List pages (%d timed requests each, one keep-alive connection)\n" % (args.samples,),
                  flush=True)
            page_results = []
            for page in pages:
                check_time(page.name)
                r = time_page(port, page, args.samples, db)
                r["name"] = page.name
                page_results.append(r)
                print("%s: %d entries, %d B; client median %.2f ms, p95 %.2f ms; server mean %s ms "
                      "(%d of %d over 10 ms, %d over 25 ms); metadata layer alone %.2f ms"
                      % (page.name, r["entries"], r["bytes"], r["client_median_s"] * 1e3, r["client_p95_s"] * 1e3,
                         ms_text(r["server_mean_s"]), r["server_over"]["over_10ms"], r["server_over"]["requests"],
                         r["server_over"]["over_25ms"], r["metadata_median_s"] * 1e3), flush=True)
            results["pages"] = page_results
            walk = walk_hot_key(port, s3, args.versions)
            results["walk"] = walk
            print("every page of %s's %d versions: %d pages, client median %.2f ms, p95 %.2f ms, slowest %.2f ms "
                  "(%d over 15 ms); server mean %s ms (%d over 10 ms, %d over 25 ms)"
                  % (HOT_KEY, walk["versions"], walk["pages"], walk["client_median_s"] * 1e3,
                     walk["client_p95_s"] * 1e3, walk["client_max_s"] * 1e3, walk["client_over_15ms"],
                     ms_text(walk["server_mean_s"]), walk["server_over"]["over_10ms"],
                     walk["server_over"]["over_25ms"]), flush=True)
            results["plans"] = query_plans(db)
            print("query plans (key = ? AND seq < ?): %s" % (json.dumps(results["plans"]),))
        finally:
            db.close()

        # GET / HEAD
        one = ms.key_of(1234)
        one_vid = parse_versions(one_request(port, presign_versions(s3, HOT, ms.key_of(1233),
                                                                    max_keys=1)))["entries"][0][2]
        reads = {
            "HEAD hot latest": ("HEAD", HOT_KEY, None, versionIdOf(last_hot)),
            "HEAD one-version key": ("HEAD", one, None, one_vid),
            "HEAD hot by versionId (middle)": ("HEAD", HOT_KEY, versionIdOf(mid_hot), versionIdOf(mid_hot)),
            "GET hot latest": ("GET", HOT_KEY, None, versionIdOf(last_hot)),
            "GET one-version key": ("GET", one, None, one_vid),
            "GET hot by versionId (middle)": ("GET", HOT_KEY, versionIdOf(mid_hot), versionIdOf(mid_hot)),
        }
        check_reads(port, s3, body, reads)
        db = connect(str(data_dir / "meta" / DATABASE_NAME), True, False)
        try:
            results["lookups_us"] = lookup_us = lookups(db, {
                "hot latest": (HOT_KEY, None), "one-version key": (one, None),
                "hot by versionId (middle)": (HOT_KEY, versionIdOf(mid_hot))})
        finally:
            db.close()
        print("metadata lookups in-process: %s" % (
            ", ".join("%s %.1f us" % (k, v) for k, v in lookup_us.items()),), flush=True)
        files = {}
        for i, (name, (method, key, vid, _)) in enumerate(reads.items()):
            files[name] = top / ("read-%d.txt" % (i,))
            files[name].write_text("%s %s\n" % (method, driver.presign(s3, method, key, HOT, vid)))
        print("\n## GET / HEAD with wrk, c=%d, %g s, %d rounds (variants alternate in order)\n"
              % (args.concurrency, args.duration, args.wrk_rounds), flush=True)
        runs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in reads}
        names = list(reads)
        for name in names:  # warm-up, not counted: a first run on a fresh server is slower
            driver.run_wrk(args.wrk, server, files[name], args.concurrency, args.threads, 1, 0, "unique", top,
                           "warm-up-%s" % (name.replace(" ", "_"),), timeout=5.0,
                           preload=shim if reads[name][0] == "HEAD" else None)
        for rnd in range(args.wrk_rounds):
            check_time("wrk round %d" % (rnd + 1,))
            index = ms.cpu_index()
            for name in (names if rnd % 2 == 0 else names[::-1]):
                method = reads[name][0]
                before = driver.fetch_metrics(port)
                cpu_before = driver.cpu_snapshot([server])
                t_run = time.monotonic()
                r = driver.run_wrk(args.wrk, server, files[name], args.concurrency, args.threads, args.duration,
                                   0, "unique", top, "%s-r%d" % (name.replace(" ", "_"), rnd),
                                   timeout=5.0, preload=shim if method == "HEAD" else None)
                cpu = driver.cpu_delta(cpu_before, driver.cpu_snapshot([server]), time.monotonic() - t_run,
                                       server.name)
                r["server_mean_s"] = ms.server_mean(before, driver.fetch_metrics(port),
                                                    "HeadObject" if method == "HEAD" else "GetObject")
                r["cpu_index"] = index
                r["cpu_us_per_op"] = cpu["server_cpu_s"] * 1e6 / r["requests"]
                r["other_cores"] = cpu["foreign_cores"]
                runs[name].append(r)
                print("%-32s round %d: %6.0f ops/s, p50 %.2f ms, p99 %.2f ms, server mean %s ms, server CPU %.0f us/op; "
                      "cores: server %.2f, other %.2f (CPU index %.1f)"
                      % (name, rnd + 1, r["rps"], r["p50_us"] / 1e3, r["p99_us"] / 1e3,
                         ms_text(r["server_mean_s"]), r["cpu_us_per_op"], cpu["server_cores"],
                         cpu["foreign_cores"], index), flush=True)
        reads_summary = {}
        for name, rs in runs.items():
            reads_summary[name] = {
                "rps": statistics.median(r["rps"] for r in rs),
                "rps_each": [r["rps"] for r in rs],
                "p50_us": statistics.median(r["p50_us"] for r in rs),
                "p99_us": statistics.median(r["p99_us"] for r in rs),
                "server_mean_s": statistics.median(r["server_mean_s"] or 0.0 for r in rs),
                "cpu_us_per_op": statistics.median(r["cpu_us_per_op"] for r in rs),
                "other_cores_max": max(r["other_cores"] for r in rs),
            }
        results["reads"] = reads_summary

        # report
        misses = []
        lines = ["| figure | measured | target |", "|---|---:|---|"]
        for r in page_results:
            sm = r["server_mean_s"]
            ok = sm is not None and sm * 1e3 <= TARGET_MS
            if not ok:
                misses.append(r["name"])
            lines.append("| %s: server mean (client median) ms; requests over 10 / 25 ms server time | "
                         "%s (%.2f); %d / %d of %d | %s ≤ 15 ms |"
                         % (r["name"], ms_text(sm), r["client_median_s"] * 1e3, r["server_over"]["over_10ms"],
                            r["server_over"]["over_25ms"], r["server_over"]["requests"], "✅" if ok else "❌"))
        ok = walk["server_mean_s"] is not None and walk["server_mean_s"] * 1e3 <= TARGET_MS
        if not ok:
            misses.append("hot key walk")
        lines.append("| every page of %s (%d pages): server mean ms, over 10 / 25 ms; client median / p95 / slowest "
                     "ms | %s, %d / %d; %.2f / %.2f / %.2f | %s ≤ 15 ms |"
                     % (HOT_KEY, walk["pages"], ms_text(walk["server_mean_s"]), walk["server_over"]["over_10ms"],
                        walk["server_over"]["over_25ms"], walk["client_median_s"] * 1e3,
                        walk["client_p95_s"] * 1e3, walk["client_max_s"] * 1e3, "✅" if ok else "❌"))
        for method in ("HEAD", "GET"):
            base = reads_summary["%s one-version key" % (method,)]
            for variant in ("hot latest", "hot by versionId (middle)", "one-version key"):
                r = reads_summary["%s %s" % (method, variant)]
                ratio = cpu_ratio = ""
                if variant != "one-version key":
                    ratio = " (%.2fx the one-version key's)" % (r["rps"] / base["rps"],)
                    cpu_ratio = " (%.2fx)" % (r["cpu_us_per_op"] / base["cpu_us_per_op"],)
                lines.append("| %s %s, c=%d, medians of %d rounds: ops/s; p99 ms; server CPU µs/op | %.0f%s; %.2f; "
                             "%.0f%s | |" % (method, variant, args.concurrency, args.wrk_rounds, r["rps"], ratio,
                                             r["p99_us"] / 1e3, r["cpu_us_per_op"], cpu_ratio))
        lines.append("| metadata lookup in-process (µs): hot latest / one-version key / hot by versionId | "
                     "%.1f / %.1f / %.1f | |" % (lookup_us["hot latest"], lookup_us["one-version key"],
                                                  lookup_us["hot by versionId (middle)"]))
        lines.append("| other processes during the wrk runs, most cores | %.2f | |"
                     % (max(r["other_cores_max"] for r in reads_summary.values()),))
        print("\n## Results: bench %d objects (every %s with an older version, %d deleted), hot key %d versions, "
              "fsync %s\n" % (args.objects, args.noncurrent_every or "none", args.deleted, args.versions,
                              "OFF" if args.no_fsync else "ON"))
        print("\n".join(lines))
        print()
        print("Missed targets: %s" % ("; ".join(misses),) if misses else "All list targets met.")
        results["misses"] = misses
        return 0

    return ms.run_and_clean_up(body, servers, results, args, top, started)


if __name__ == "__main__":
    sys.exit(main())
