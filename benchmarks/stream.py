"""
Back-to-back single-stream 256 MiB PUTs or GETs against one FasterStore,
for A/B runs of the large-object path: throughput, the worker's CPU per
object (user and system, from /proc), and for PUTs the time from the last
byte sent to the answer (the final flush, fsync and commit).

    .venv/bin/python benchmarks/stream.py --operation PUT [--seconds 5] [--server-arg=--workers --server-arg=1]

PUT bodies go out with large.py's cheap client (``sendfile``); GETs are
read by curl into /dev/null.  Nothing is pinned: the server may use both
CPUs.  Interleave the variants being compared; single runs move by 20% on
this VM.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import large  # noqa: E402
import run  # noqa: E402

SIZE = 256 << 20


def workerCPU(pids: list[str]) -> tuple[float, float]:
    """User and system seconds of these processes."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for pid in pids:
        fields = Path("/proc/%s/stat" % pid).read_text().rsplit(")", 1)[1].split()
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operation", choices=("PUT", "GET"), default="PUT")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--server-arg", action="append", default=[], help="passed to twistd fasterstore")
    args = parser.parse_args()
    parent = Path(tempfile.mkdtemp(prefix="fasterstore-stream-"))
    body = parent / "body"
    with open(body, "wb") as f:
        for _ in range(SIZE >> 20):
            f.write(os.urandom(1 << 20))
    md5 = hashlib.md5(body.read_bytes()).hexdigest()
    (parent / "work").mkdir()
    (parent / "data").mkdir()
    server = run.start_fasterstore(parent / "work", parent / "data", "AKIDBENCH", "S" * 40, False, args.server_arg)
    try:
        run.wait_ready(server, 30)
        client = run.s3_client("http://127.0.0.1:%d" % server.port, "AKIDBENCH", "S" * 40)
        client.create_bucket(Bucket="bench")
        urls = [client.generate_presigned_url("put_object", Params={"Bucket": "bench", "Key": "k%d" % i}, ExpiresIn=3600)
                for i in range(8)]
        getURL = client.generate_presigned_url("get_object", Params={"Bucket": "bench", "Key": "k0"}, ExpiresIn=3600)
        netloc = urls[0].split("/")[2]

        def put(url: str) -> tuple[float, float]:
            conn = large.Connection(netloc)
            try:
                with open(body, "rb") as f:
                    _, target = large._target(url)
                    started = time.perf_counter()
                    conn.send_head("PUT", target, SIZE)
                    conn.send_body(large.Body(((0, SIZE),), b"", md5), f)
                    sent = time.perf_counter()
                    head = conn.read_head()
                    if head.status != 200 or head.headers.get("etag", "").strip('"') != md5:
                        raise SystemExit("PUT answered %d, ETag %r" % (head.status, head.headers.get("etag")))
                    return sent - started, time.perf_counter() - sent
            finally:
                conn.close()

        put(urls[0])  # the object GETs read, and a warm-up
        pids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
        pids.append(str(server.proc.pid))
        user0, system0 = workerCPU(pids)
        started = time.time()
        count = 0
        while time.time() - started < args.seconds:
            if args.operation == "PUT":
                sending, tail = put(urls[1 + count % 7])
                print("sent in %.3f s, answered %.3f s later" % (sending, tail))
            else:
                subprocess.run(["curl", "-sf", "-o", "/dev/null", getURL], check=True)
            count += 1
        elapsed = time.time() - started
        user1, system1 = workerCPU(pids)
        print("server CPU %.2f s per 256 MiB, of which system %.2f"
              % ((user1 - user0 + system1 - system0) / count, (system1 - system0) / count))
        print("%s %d x 256 MiB in %.2f s: %.0f MB/s" % (args.operation, count, elapsed, count * SIZE / 1e6 / elapsed))
    finally:
        print(run.stop(server))
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
