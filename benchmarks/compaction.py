#!/usr/bin/env python3
"""
Space given back: disk use against live data, measured on a real server.

Two phases, each on a fresh ``twistd -n fasterstore`` (fsync on, a small
``--segment-size`` so that a GiB spans many segments, a short
``--compaction-interval``):

1. **delete**: PUT ``--objects`` objects of ``--object-size`` random bytes
   (1 GiB by default), DELETE 90% of them (all but every tenth), then sample
   disk use every 2 s until it is at most 1.3x the live bytes and no longer
   falling (or ``--settle`` seconds pass).
2. **overwrite**: PUT a key set of ``--keys`` keys once, then overwrite keys
   of it at random, from ``--writers`` threads, for ``--overwrite-seconds``
   (10 minutes by default); disk use is sampled every 5 s, and its median,
   90th percentile and maximum reported.

*Disk use* is the bytes allocated to the data directory's files (segments
and the metadata database, ``st_blocks``); *live* is the sum of the sizes of
the objects that exist.  Every reading also records the metadata
database's size, which must not grow without bound either.  Objects read
back at the end of each phase are checked byte for byte.

Usage::

    .venv/bin/python benchmarks/compaction.py                       # the documented run
    .venv/bin/python benchmarks/compaction.py --objects 256 --overwrite-seconds 60   # quicker

Prints a markdown table; ``--json PATH`` writes the samples too;
``--log-dir DIR`` keeps each phase's server log (compaction logs a line per
pass); ``--skip-delete`` runs the overwrite phase alone, for quick
iterations.  Servers are stopped by PID in a ``finally``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import run as driver  # noqa: E402  (benchmarks/run.py: processes, clients)
from run import BenchError  # noqa: E402

BUCKET = "compaction"
ACCESS, SECRET = "COMPACTIONBENCH00001", "compaction-bench-secret-00000000000000000"


def allocated(path: Path) -> Tuple[int, int]:
    """(bytes allocated to every file under C{path}, of which the metadata database's)."""
    total = meta = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            total += st.st_blocks * 512
            if name.startswith("metadata.sqlite"):
                meta += st.st_blocks * 512
    return total, meta


def start(work: Path, data: Path, segment_size: str, interval: float) -> driver.Server:
    server = driver.start_fasterstore(
        work, data, ACCESS, SECRET, False,
        ["--segment-size", segment_size, "--compaction-interval", str(interval)],
    )
    driver.wait_ready(server, 60)
    return server


def client(server: driver.Server) -> Any:
    return driver.s3_client("http://127.0.0.1:%d" % (server.port,), ACCESS, SECRET)


def body(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def sample(data: Path, live: int, t0: float) -> Dict[str, Any]:
    disk, meta = allocated(data)
    return {"t": round(time.monotonic() - t0, 1), "disk": disk, "meta": meta, "live": live,
            "ratio": round(disk / live, 3) if live else None}


def delete_phase(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    data = work / "delete"
    server = start(work, data, args.segment_size, args.interval)
    try:
        s3 = client(server)
        s3.create_bucket(Bucket=BUCKET)
        rng = random.Random(1)
        digests: Dict[str, str] = {}
        for i in range(args.objects):
            content = body(rng, args.object_size)
            key = "o/%06d" % (i,)
            s3.put_object(Bucket=BUCKET, Key=key, Body=content)
            digests[key] = hashlib.sha256(content).hexdigest()
        written = allocated(data)[0]
        kept = sorted(digests)[::10]
        for key in sorted(digests):
            if key not in kept:
                s3.delete_object(Bucket=BUCKET, Key=key)
        live = len(kept) * args.object_size
        t0 = time.monotonic()
        samples = [sample(data, live, t0)]
        reached = None  # seconds until disk / live was first at most 1.3
        while time.monotonic() - t0 < args.settle:
            time.sleep(2)
            samples.append(sample(data, live, t0))
            if reached is None and samples[-1]["ratio"] <= 1.3:
                reached = samples[-1]["t"]
            # Settled: at most 1.3 and no longer falling (compaction removes segment by segment).
            if reached is not None and samples[-2]["ratio"] - samples[-1]["ratio"] < 0.01:
                break
        for key in kept:
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            if hashlib.sha256(got).hexdigest() != digests[key]:
                raise BenchError("object %s changed after compaction" % (key,))
        return {"written_disk": written, "live": live, "samples": samples, "seconds_to_target": reached,
                "final_ratio": samples[-1]["ratio"], "seconds_to_final": samples[-1]["t"]}
    finally:
        print(driver.stop(server))
        keep_log(args, server, "delete")


def keep_log(args: argparse.Namespace, server: driver.Server, phase: str) -> None:
    """Copy the server's log to C{--log-dir}, if given (the work directory is removed)."""
    if args.log_dir and server.log_path.exists():
        os.makedirs(args.log_dir, exist_ok=True)
        shutil.copy(server.log_path, os.path.join(args.log_dir, "%s.log" % (phase,)))


def percentile(values: List[float], fraction: float) -> float:
    """The C{fraction} quantile of C{values} (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def overwrite_phase(args: argparse.Namespace, work: Path) -> Dict[str, Any]:
    data = work / "overwrite"
    server = start(work, data, args.segment_size, args.interval)
    try:
        s3 = client(server)
        s3.create_bucket(Bucket=BUCKET)
        keys = ["k/%04d" % (i,) for i in range(args.keys)]
        current: Dict[str, str] = {}
        lock = threading.Lock()
        rng = random.Random(2)
        for key in keys:
            content = body(rng, args.object_size)
            s3.put_object(Bucket=BUCKET, Key=key, Body=content)
            current[key] = hashlib.sha256(content).hexdigest()
        live = len(keys) * args.object_size
        stop_at = time.monotonic() + args.overwrite_seconds
        puts = [0]
        errors: List[BaseException] = []

        def writer(seed: int) -> None:
            mine = client(server)
            r = random.Random(seed)
            # Each writer owns a share of the keys, so "current" is what the server holds.
            share = keys[seed::args.writers]
            try:
                while time.monotonic() < stop_at:
                    key = r.choice(share)
                    content = r.randbytes(args.object_size)
                    mine.put_object(Bucket=BUCKET, Key=key, Body=content)
                    with lock:
                        current[key] = hashlib.sha256(content).hexdigest()
                        puts[0] += 1
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(args.writers)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        samples = []
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            samples.append(sample(data, live, t0))
            samples[-1]["puts"] = puts[0]
        for t in threads:
            t.join()
        if errors:
            raise BenchError("overwrite writer failed: %r" % (errors[0],))
        for key in keys:
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            if hashlib.sha256(got).hexdigest() != current[key]:
                raise BenchError("object %s is not its last write" % (key,))
        ratios = [s["ratio"] for s in samples]
        metas = [s["meta"] for s in samples]
        return {"live": live, "puts": puts[0], "written_bytes": puts[0] * args.object_size, "samples": samples,
                "max_ratio": max(ratios), "final_ratio": ratios[-1],
                "median_ratio": percentile(ratios, 0.5), "p90_ratio": percentile(ratios, 0.9),
                "meta_first": metas[0], "meta_max": max(metas), "meta_last": metas[-1]}
    finally:
        print(driver.stop(server))
        keep_log(args, server, "overwrite")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--objects", type=int, default=1024)
    parser.add_argument("--object-size", type=int, default=1 << 20)
    parser.add_argument("--keys", type=int, default=128)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--overwrite-seconds", type=float, default=600.0)
    parser.add_argument("--settle", type=float, default=300.0)
    parser.add_argument("--segment-size", default="32MiB")
    parser.add_argument("--interval", type=float, default=5.0, help="--compaction-interval of the server")
    parser.add_argument("--tmp-dir", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--log-dir", default=None, help="keep each phase's server log here")
    parser.add_argument("--skip-delete", action="store_true", help="run the overwrite phase only (while iterating)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fasterstore-compaction-", dir=args.tmp_dir))
    try:
        deleted = None if args.skip_delete else delete_phase(args, work)
        if deleted is not None:
            print("delete: wrote %d MiB (%d MiB on disk), kept %d MiB; disk/live at most 1.3 after %s s, "
                  "settled at %.2f after %.0f s"
                  % (args.objects * args.object_size >> 20, deleted["written_disk"] >> 20, deleted["live"] >> 20,
                     deleted["seconds_to_target"], deleted["final_ratio"], deleted["seconds_to_final"]))
        overwritten = overwrite_phase(args, work)
        print("overwrite: %d PUTs (%d MiB, %.0f MiB/s) over %d MiB live in %.0f s; disk/live median %.2f, "
              "p90 %.2f, max %.2f, last %.2f; metadata %d KiB first, %d KiB max, %d KiB last"
              % (overwritten["puts"], overwritten["written_bytes"] >> 20,
                 overwritten["written_bytes"] / args.overwrite_seconds / (1 << 20), overwritten["live"] >> 20,
                 args.overwrite_seconds, overwritten["median_ratio"], overwritten["p90_ratio"],
                 overwritten["max_ratio"], overwritten["final_ratio"],
                 overwritten["meta_first"] >> 10, overwritten["meta_max"] >> 10, overwritten["meta_last"] >> 10))
        print()
        print("| scenario | target | measured | verdict |")
        print("|---|---|---|---|")
        if deleted is not None:
            print("| 1 GiB written, 90%% deleted: disk / live | ≤ 1.3 | %.2f (settled after %.0f s) | %s |"
                  % (deleted["final_ratio"], deleted["seconds_to_final"],
                     "met" if deleted["final_ratio"] <= 1.3 else "MISSED"))
        print("| overwrite load: max disk / live | ≤ 2.0 | %.2f (median %.2f, p90 %.2f) | %s |"
              % (overwritten["max_ratio"], overwritten["median_ratio"], overwritten["p90_ratio"],
                 "met" if overwritten["max_ratio"] <= 2.0 else "MISSED"))
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "delete": deleted, "overwrite": overwritten},
                                                  indent=1))
        return 0
    except BenchError as e:
        print("BENCHMARK FAILED: %s" % (e,))
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
