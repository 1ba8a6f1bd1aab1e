"""
PUTs one at a time: 4 KiB bodies over one keep-alive connection to one
FasterStore worker, the worker's CPU per PUT (user and system, from
/proc), and beside it the same disk work done raw (a 4 KiB ``pwrite`` and
``fdatasync``, then one SQLite WAL transaction with ``synchronous=FULL``).
With ``--strace`` the worker's system calls are counted (``strace -c -f``,
which slows it: its timings are not the figures).

    .venv/bin/python benchmarks/put_c1.py [--count 600] [--strace OUT]
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402
from stream import workerCPU  # noqa: E402

BODY = 4096


def raw(directory: Path, count: int) -> None:
    """The disk work of a PUT, without the server."""
    fd = os.open(directory / "raw.seg", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    db = sqlite3.connect(directory / "raw.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)")
    body = os.urandom(BODY)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for i in range(count):
        os.pwrite(fd, body, i * BODY)
        os.fdatasync(fd)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (str(i), "x" * 300))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.close(fd)
    db.close()
    print("raw loop: %.2f ms each, user %.0f us, system %.0f us" % (
        elapsed / count * 1e3, (after.ru_utime - before.ru_utime) / count * 1e6,
        (after.ru_stime - before.ru_stime) / count * 1e6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--strace", default=None, help="count the worker's system calls into this file")
    args = parser.parse_args()
    parent = Path(tempfile.mkdtemp(prefix="fasterstore-put-c1-"))
    (parent / "work").mkdir()
    (parent / "data").mkdir()
    server = run.start_fasterstore(parent / "work", parent / "data", "AKIDBENCH", "S" * 40, False, ["--workers", "1"])
    tracer = None
    try:
        run.wait_ready(server, 30)
        client = run.s3_client("http://127.0.0.1:%d" % server.port, "AKIDBENCH", "S" * 40)
        client.create_bucket(Bucket="bench")
        urls = [client.generate_presigned_url("put_object", Params={"Bucket": "bench", "Key": "k%d" % i}, ExpiresIn=3600)
                for i in range(args.count + 20)]
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        body = os.urandom(BODY)

        def put(url: str) -> None:
            parts = urllib.parse.urlsplit(url)
            conn.request("PUT", parts.path + "?" + parts.query, body=body)
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit("PUT answered %d" % (answer.status,))

        for url in urls[:20]:
            put(url)  # warm-up
        pids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
        pids = pids or [str(server.proc.pid)]
        if args.strace:
            tracer = subprocess.Popen(["strace", "-c", "-f", "-o", args.strace, "-p", pids[0]])
            time.sleep(1)
        user0, system0 = workerCPU(pids)
        started = time.perf_counter()
        for url in urls[20:]:
            put(url)
        elapsed = time.perf_counter() - started
        user1, system1 = workerCPU(pids)
        print("PUT c=1: %.2f ms each, worker user %.0f us, system %.0f us per PUT" % (
            elapsed / args.count * 1e3, (user1 - user0) / args.count * 1e6, (system1 - system0) / args.count * 1e6))
    finally:
        if tracer is not None:
            tracer.terminate()
            tracer.wait()
        print(run.stop(server))
    raw(parent, 300)
    shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
