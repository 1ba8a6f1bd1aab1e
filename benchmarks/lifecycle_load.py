#!/usr/bin/env python3
"""
Lifecycle expiry under load: what a lifecycle pass that expires
``--objects`` (100,000) objects does to the latency of the requests it
runs beside.

1. **Populate** with ``metadata_scale.Populator`` (one shared 4 KiB blob,
   rows inserted with the store's own ``objectRow``): in bucket ``bench``,
   ``--objects`` keys ``exp/%08d`` and ``--keep`` (10,000) keys
   ``keep/%08d``, all written ten days ago.
2. **Start** ``twistd -n fasterstore`` (fsync on, the default workers) with
   ``--lifecycle-interval 1``: with no rules yet, a pass finds nothing.
3. **Baseline**: ``--rounds`` wrk runs of HEAD on presigned URLs of the
   ``keep/`` keys (c=``--concurrency``, ``--duration`` s each): ops/s, p50,
   p99.
4. **Expire**: ``PutBucketLifecycleConfiguration`` through boto3 (one rule,
   ``Expiration Days 1`` for prefix ``exp/``, so every ``exp/`` object is
   due), then the same wrk runs back to back while the next pass expires
   them, until ``fasterstore_lifecycle_objects_expired_total`` reaches
   ``--objects`` (or ``--time-limit``): each run's figures, and the
   seconds from the rule's PUT to the last expiry.
5. **Check**: no ``exp/`` key is left, every ``keep/`` key is; the
   figures of runs that overlapped the expiry against the baseline.

Target (issue 9): foreground p99 while the pass runs ≤ 2x the baseline p99.

Usage::

    .venv/bin/python benchmarks/lifecycle_load.py                # 100,000 objects
    .venv/bin/python benchmarks/lifecycle_load.py --objects 20000 --duration 3

Prints a markdown table; ``--json PATH`` writes the results.  Servers are
stopped by PID in a ``finally``; the temporary directory is removed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import metadata_scale as scale  # noqa: E402  (the populator and the server's start and stop)
import run as driver  # noqa: E402  (presigning, wrk, metrics)
from run import BenchError, Server  # noqa: E402

ACCESS, SECRET = "LIFECYCLEBENCH000001", "lifecycle-bench-secret-0000000000000000000"
DAY = 86400.0
RULE = {
    "Rules": [{"ID": "expire-exp", "Status": "Enabled", "Filter": {"Prefix": "exp/"}, "Expiration": {"Days": 1}}]
}
EXPIRED_METRIC = re.compile(r"^fasterstore_lifecycle_objects_expired_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


def populate(data_dir: Path, objects: int, keep: int) -> Dict[str, Any]:
    """The bucket and its rows: C{objects} under exp/, C{keep} under keep/, ten days old."""
    from fasterstore.credentials import ownerForAccessKey
    from fasterstore.metadata.sqlite import INSERT_OBJECT, objectRow

    pop = scale.Populator(data_dir)
    try:
        pop.bucket(driver.BUCKET, ownerForAccessKey(ACCESS))
        written = time.time() - 10 * DAY
        keys = ["exp/%08d" % i for i in range(objects)] + ["keep/%08d" % i for i in range(keep)]

        def record(key: str) -> Any:
            return pop.evolve(pop.template, key=key, modified=written)

        pop.put(record(keys[0]))
        pop.open_sql()
        pop.insert(INSERT_OBJECT, (objectRow(record(key)) for key in keys[1:]))
        result = pop.finish()
    finally:
        pop.close()
    result.pop("body")
    if result["objects_rows"] != objects + keep:
        raise BenchError("populated %d objects, not %d" % (result["objects_rows"], objects + keep))
    return result


def expired(port: int) -> float:
    """The server's count of current versions lifecycle expired (summed over workers)."""
    text = driver.fetch_metrics(port) or ""
    return sum(float(m.group(1)) for m in EXPIRED_METRIC.finditer(text))


def count(s3: Any, prefix: str) -> int:
    """Keys under C{prefix}, paging through ListObjectsV2."""
    total, token = 0, None
    while True:
        page = s3.list_objects_v2(Bucket=driver.BUCKET, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
        total += page["KeyCount"]
        if not page["IsTruncated"]:
            return total
        token = page["NextContinuationToken"]


def summary(runs: List[Dict[str, Any]]) -> Dict[str, float]:
    """Medians of the runs' figures (ops/s, p50 and p99 in ms) and the worst p99."""
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_us"] for r in runs) / 1e3,
        "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1e3,
        "worst_p99_ms": max(r["p99_us"] for r in runs) / 1e3,
        "runs": len(runs),
    }


def measure(args: argparse.Namespace, work: Path, servers: List[Server]) -> Dict[str, Any]:
    data_dir = work / "data"
    data_dir.mkdir(mode=0o700)
    print("populating %d + %d objects ..." % (args.objects, args.keep), flush=True)
    result: Dict[str, Any] = {"args": vars(args), "populate": populate(data_dir, args.objects, args.keep)}
    port = driver.free_port()
    extra = ["--lifecycle-interval", "1"]

    def spawner() -> Server:
        return scale.spawn(work, data_dir, port, ACCESS, SECRET, args.no_fsync, extra)

    server, ready = scale.start_and_time(spawner, servers)
    result["ready_s"] = ready
    s3 = driver.s3_client(server.base_url, ACCESS, SECRET)
    shim = driver.build_head_shim(work)
    urls = work / "head.txt"
    driver.write_url_file(urls, s3, "HEAD", ["keep/%08d" % i for i in range(args.keep)])

    def wrk(label: str, start: int) -> Dict[str, Any]:
        r = driver.run_wrk(args.wrk, server, urls, args.concurrency, args.threads, args.duration, start,
                           "unique", work, label, timeout=5.0, preload=shim)
        print("%s: %.0f ops/s, p50 %.2f ms, p99 %.2f ms (%d requests)"
              % (label, r["rps"], r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["requests"]), flush=True)
        return r

    baseline = [wrk("baseline-%d" % i, i * 997) for i in range(args.rounds)]
    if expired(port) != 0:
        raise BenchError("objects expired before any rule was put")
    s3.put_bucket_lifecycle_configuration(Bucket=driver.BUCKET, LifecycleConfiguration=RULE)
    put_at = time.perf_counter()
    during: List[Dict[str, Any]] = []
    done_at: Optional[float] = None
    while done_at is None:
        if time.perf_counter() - put_at > args.time_limit:
            raise BenchError("%d of %d objects expired after %.0f s" % (expired(port), args.objects, args.time_limit))
        during.append(wrk("during-%d" % len(during), len(during) * 991))
        if expired(port) >= args.objects:
            done_at = time.perf_counter()
    # The last run may have ended well after the pass did: it still overlapped it.
    result["expiry_s_upper_bound"] = done_at - put_at
    left, kept = count(s3, "exp/"), count(s3, "keep/")
    if (left, kept) != (0, args.keep):
        raise BenchError("after the pass: %d exp/ keys left (want 0), %d keep/ keys (want %d)" % (left, kept, args.keep))
    result["baseline"], result["during"] = summary(baseline), summary(during)
    result["baseline_runs"], result["during_runs"] = baseline, during
    result["p99_ratio"] = result["during"]["p99_ms"] / result["baseline"]["p99_ms"]
    result["worst_p99_ratio"] = result["during"]["worst_p99_ms"] / result["baseline"]["worst_p99_ms"]
    return result


def table(result: Dict[str, Any]) -> str:
    b, d = result["baseline"], result["during"]
    lines = [
        "| HEAD c=%d, 4 KiB objects | baseline | while expiring %d objects |" % (result["args"]["concurrency"],
                                                                          result["args"]["objects"]),
        "|---|---:|---:|",
        "| wrk runs of %g s | %d | %d |" % (result["args"]["duration"], b["runs"], d["runs"]),
        "| ops/s (median) | %.0f | %.0f |" % (b["rps"], d["rps"]),
        "| p50 ms (median) | %.2f | %.2f |" % (b["p50_ms"], d["p50_ms"]),
        "| p99 ms (median) | %.2f | %.2f |" % (b["p99_ms"], d["p99_ms"]),
        "| p99 ms (worst run) | %.2f | %.2f |" % (b["worst_p99_ms"], d["worst_p99_ms"]),
        "",
        "p99 during / baseline: %.2fx (median), %.2fx (worst runs); target ≤ 2x: %s. "
        "Every object expired within %.1f s of the rule's PUT (an upper bound: checked between wrk runs)."
        % (result["p99_ratio"], result["worst_p99_ratio"], "met" if result["worst_p99_ratio"] <= 2 else "MISSED",
           result["expiry_s_upper_bound"]),
    ]
    return "\n".join(lines)


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objects", type=int, default=100_000, help="objects the rule expires (100,000)")
    p.add_argument("--keep", type=int, default=10_000, help="objects the foreground reads (10,000)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (5)")
    p.add_argument("--rounds", type=int, default=3, help="baseline wrk runs (3)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-fsync", action="store_true")
    p.add_argument("--time-limit", type=float, default=600.0, help="give up on the expiry after this long (600 s)")
    p.add_argument("--tmp-dir", default="/var/tmp")
    p.add_argument("--json", default=None)
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fs-lifecycle-", dir=args.tmp_dir))
    servers: List[Server] = []
    try:
        result = measure(args, work, servers)
    except BenchError as e:
        print("benchmark failed: %s" % (e,), file=sys.stderr)
        return 1
    finally:
        for server in servers:
            print(driver.stop(server), flush=True)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
