"""
Where one FasterStore worker spends a small request: the server pinned to
CPU 0, wrk on CPU 1 driving presigned URLs, the bare twisted.web floor
measured the same way right after, and optionally py-spy sampling the
worker during the FasterStore run.

    .venv/bin/python benchmarks/profile_server.py --operation GET --duration 10 [--py-spy OUT.txt] \
        [--http-parser twisted|httptools]

It prints, per target, ops/s, p50/p99 and the server's CPU per request,
and FasterStore/bare: the figure to watch while optimising the request
path (issue 10's target: GET and HEAD at 0.6x, PUT at 0.4x). py-spy's
``--gil`` samples (only the thread holding the GIL, idle time left out)
are folded into ``OUT.txt``; ``--top`` prints the functions with the most
samples, by own and by total time.
"""

from __future__ import annotations

import argparse
import collections
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as harness  # noqa: E402


def pinned(command: List[str], cpu: int) -> List[str]:
    """C{command} run on one CPU only."""
    return ["taskset", "-c", str(cpu)] + command


def pin(server: harness.Server, cpu: int) -> None:
    """Move a running server, every thread of it, onto one CPU."""
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(server.proc.pid)], check=True,
                   stdout=subprocess.DEVNULL)


def wrkOn(cpu: int, workdir: Path, wrk: str) -> str:
    """A wrk that runs on one CPU (run.py's run_wrk takes a binary, not a command)."""
    wrapper = workdir / ("wrk-cpu%d" % cpu)
    wrapper.write_text("#!/bin/sh\nexec taskset -c %d %s \"$@\"\n" % (cpu, wrk))
    wrapper.chmod(0o755)
    return str(wrapper)


def measure(wrk: str, server: harness.Server, urls: Path, operation: str, concurrency: int,
            duration: float, workdir: Path, preload: Optional[Path], label: str) -> Dict[str, Any]:
    """One wrk run on CPU 1, with the server's CPU per request."""
    before = harness.cpu_snapshot([server])
    t0 = time.monotonic()
    result = harness.run_wrk(
        wrk, server, urls, concurrency, 1, duration, 0, "unique",
        workdir, label, 10.0, preload,
    )
    after = harness.cpu_snapshot([server])
    cores = harness.cpu_delta(before, after, time.monotonic() - t0, server.name)
    result["server_us_per_op"] = cores["server_cpu_s"] * 1e6 / max(1, result["requests"])
    result["wrk_cores"] = cores["wrk_cores"]
    return result


def fold(path: Path, top: int) -> None:
    """Print the functions with the most py-spy samples, by own and by total time."""
    own: Dict[str, int] = collections.Counter()
    total: Dict[str, int] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    print("py-spy: %d samples holding the GIL" % (samples,))
    for title, counter in (("own", own), ("total", total)):
        print("-- by %s time" % (title,))
        for frame, n in sorted(counter.items(), key=lambda kv: -kv[1])[:top]:
            print("%5.1f%%  %s" % (100.0 * n / samples, frame))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operation", default="GET", choices=("PUT", "GET", "HEAD"))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--py-spy", default=None, metavar="OUT", help="fold py-spy --gil samples into OUT")
    parser.add_argument("--cprofile", default=None, metavar="OUT",
                        help="run the server under twistd --profiler=cprofile, stats written to OUT at its stop")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-bare", action="store_true", help="leave out the floor")
    parser.add_argument("--httptools-floor", action="store_true",
                        help="also measure bare_httptools.py, the floor on httptools instead of twisted.web")
    parser.add_argument("--server-arg", action="append", default=[])
    parser.add_argument("--http-parser", default=None, choices=("twisted", "httptools"),
                        help="the server's --http-parser (its default when not given)")
    args = parser.parse_args(argv)
    if args.http_parser is not None:
        args.server_arg += ["--http-parser", args.http_parser]
    workdir = Path(tempfile.mkdtemp(prefix="fsprofile-"))
    if args.cprofile:
        plain = harness.twistd_command()
        harness.twistd_command = lambda: plain + [  # type: ignore[assignment]
            "--profile", os.path.abspath(args.cprofile), "--profiler", "cprofile", "--savestats"]
    wrk = wrkOn(1, workdir, shutil.which("wrk") or "wrk")
    servers: List[harness.Server] = []
    try:
        access, secret = "AK" + secrets.token_hex(8), secrets.token_hex(20)
        data = workdir / "data"
        data.mkdir()
        fs = harness.start_fasterstore(workdir, data, access, secret, False,
                                       ["--workers", "1"] + args.server_arg)
        servers.append(fs)
        harness.wait_ready(fs, 60)
        pin(fs, 0)
        client = harness.s3_client(fs.base_url, access, secret)
        client.create_bucket(Bucket=harness.BUCKET)
        keys = ["r/%07d" % i for i in range(args.keys)]
        files: Dict[str, Path] = {}
        urls: Dict[str, List[str]] = {}
        for method, names in (("PUT", keys), ("GET", keys), ("HEAD", keys)):
            files[method] = workdir / ("%s.urls" % method)
            urls[method] = harness.write_url_file(files[method], client, method, names)
        harness.seed(fs.port, urls["PUT"], urls["GET"], urls["HEAD"], time.monotonic() + 120)
        if args.operation == "PUT":
            fresh = ["w/%07d" % i for i in range(200000)]
            harness.write_url_file(files["PUT"], client, "PUT", fresh)
        preload = harness.build_head_shim(workdir) if args.operation == "HEAD" else None
        spy: Optional["subprocess.Popen[bytes]"] = None
        if args.py_spy:
            pid = fs.proc.pid
            spy = subprocess.Popen(pinned([
                str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid),
                "-d", str(int(args.duration)), "-r", "200", "--gil", "-f", "raw", "-o", args.py_spy,
                "--nonblocking",
            ], 1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows: List[Tuple[str, Dict[str, Any]]] = []
        rows.append(("fasterstore", measure(wrk, fs, files[args.operation], args.operation, args.concurrency,
                                            args.duration, workdir, preload, "fasterstore")))
        if spy is not None:
            spy.wait(timeout=60)
        floors = ([] if args.no_bare else ["bare_server.py"]) + (["bare_httptools.py"] if args.httptools_floor else [])
        for script in floors:
            floor = harness.start_bare(workdir, False, script=HERE / script, name=Path(script).stem)
            servers.append(floor)
            pin(floor, 0)
            rows.append((floor.name, measure(wrk, floor, files[args.operation], args.operation, args.concurrency,
                                             args.duration, workdir, preload, floor.name)))
        for name, r in rows:
            print("%-14s %s c=%d: %7.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  server %4.0f us/op  wrk %.2f cores"
                  % (name, args.operation, args.concurrency, r["rps"], r["p50_us"] / 1e3, r["p99_us"] / 1e3,
                     r["server_us_per_op"], r["wrk_cores"]))
        for name, r in rows[1:]:
            print("FasterStore/%s: %.2f" % (name, rows[0][1]["rps"] / r["rps"]))
        if args.py_spy:
            fold(Path(args.py_spy), args.top)
        return 0
    finally:
        for server in reversed(servers):
            harness.stop(server)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
