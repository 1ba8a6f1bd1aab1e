"""
The one-command benchmark suite (issue 10): every scenario against
FasterStore (``--workers 1`` and ``--workers 2``, fsync on) and its peers in
the same run, written to one directory as ``results.json``, ``results.md``
(figures, FasterStore/peer ratios, the issue's targets) and PNG plots.

Usage::

    .venv/bin/python benchmarks/suite.py --install     # once: nginx, wrk, gcc (apt-get), s3rver (npm)
    flock /tmp/bench.lock .venv/bin/python benchmarks/suite.py --out benchmarks/results/suite-$(date +%F)
    flock /tmp/bench.lock .venv/bin/python benchmarks/suite.py --quick --out /tmp/suite-quick
    .venv/bin/python benchmarks/suite.py --only small-4k,list --peers bare,moto --repeat 5
    .venv/bin/python benchmarks/report.py benchmarks/results/suite-X/results.json   # re-render

Scenarios (``--only``; a prefix such as ``small`` selects both sizes):

- ``small-4k``, ``small-64k``: PUT, GET and HEAD of 4 KiB / 64 KiB objects
  at each ``--concurrency`` (1, 16, 64) with wrk and presigned SigV4 URLs,
  through ``run.py``'s ``run_wrk`` and ``presigned.lua`` (the body size rides
  in its BODYMODE argument, ``unique:65536``). Every PUT creates a new key
  while the target's key pool lasts; GET and HEAD read a seeded read set.
- ``mixed``: 70% GET / 30% PUT of 16 KiB objects in one URL file (the same
  shuffled sequence of methods for every target), per concurrency.
- ``list``: ListObjectsV2 pages (``max-keys`` 1000, ``start-after`` a random
  key) on buckets of ``--list-keys`` objects (10,000 and 1,000,000; 2,000 and
  100,000 with ``--quick``, to stay short). FasterStore's buckets are written
  straight into its metadata store by ``metadata_scale.Populator`` (seconds
  for a million); the peers are filled through their S3 API, which takes
  minutes even for the smallest size, so they get the smallest size only.
- ``large``: the other helper's ``benchmarks/large.py`` (256 MiB PUT/GET,
  TTFB of 20 MiB, multipart, RSS, the box's disk and hash limits), called
  through its agreed interface; if it is missing or fails, those scenarios
  fail loudly (non-zero exit) unless ``--skip-large``.

Servers (``benchmarks/peers.py``): each group of scenarios (small objects and
mixed; listing; large objects) starts its own fresh set on free loopback
ports and stops it by PID in a ``finally``: FasterStore with ``--workers 1``
and ``--workers 2``, the bare twisted.web floor (one ``bare_server.py
--body-size N`` per size), nginx (static GET/HEAD, WebDAV PUT), moto's
server and s3rver. ``--peers`` and ``--workers`` choose among them.

Method:

- the machine must be quiet first: ``/proc/stat`` is polled until everything
  but this process uses less than 0.2 cores for 3 s (deadline
  ``--quiet-timeout``; a loud warning, kept in the report, if never);
- one-process servers (FasterStore ``--workers 1`` and every peer) are
  pinned to CPU 0 and wrk (``-t1``) to CPU 1; FasterStore ``--workers 2``
  gets both CPUs and wrk (``-t2``) shares them (the report says so). Pinning
  is re-applied to every thread of every server process before each run;
- every non-2xx response and socket error is counted (``presigned.lua``); a
  FasterStore, floor or nginx run with any is invalid and fails the suite
  (exit 1, ``BENCHMARK FAILED``) but the suite carries on so the rest is not
  lost; moto's and s3rver's problems are recorded and marked, not fatal;
- every measurement is repeated ``--repeat`` times (3), the targets of a
  cell interleaved and their order rotated each round; the report gives the
  median and the min–max spread, and each run's wrk CPU (``run.cpu_delta``),
  so a load generator that ran out of CPU shows (marked ``§``);
- after every run the suite waits (up to 3 minutes) until the group's
  servers are idle again: an overwhelmed peer keeps working off the requests
  wrk left queued (moto at c=64 for tens of seconds) and would otherwise
  take the next target's CPU;
- listing runs last at least 3 s (a page can take most of a second at
  c=64, so a 1 s ``--quick`` run could complete none);
- presigned URLs live an hour: a scenario's URL files are signed again when
  they are older than 50 minutes.

Needs what ``run.py`` needs (wrk, gcc, boto3, ``moto[server]``) plus nginx
with its WebDAV module, node with s3rver in ``~/.cache/fasterstore-bench/node``
(``--install`` sets both up) and matplotlib (``pip install -e '.[bench]'``).
A missing peer stops the suite at once (exit 2) naming the fix, or leave it
out with ``--peers``; nothing is skipped silently. Run one suite at a time on
a machine (``flock``). There is no test module: ``--quick`` is its smoke test.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import importlib.util
import json
import multiprocessing
import os
import random
import resource
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import peers  # noqa: E402  (benchmarks/peers.py: the servers)
import report  # noqa: E402  (benchmarks/report.py: markdown and plots)
import run as harness  # noqa: E402  (benchmarks/run.py: presigning, seeding, wrk, CPU accounting)
from peers import Fleet, Target  # noqa: E402
from run import BenchError  # noqa: E402

SCENARIOS = ("small-4k", "small-64k", "mixed", "list", "large")
SMALL_SIZES = {"small-4k": 4096, "small-64k": 65536}
MIXED_SIZE = 16384
MIXED_PUT_SHARE = 0.3
LIST_PAGE = 1000
BUCKET = harness.BUCKET  # "bench"
LARGE_BUCKET = "large"
URL_MAX_AGE = 50 * 60.0  # presigned URLs expire after an hour
QUIET_WINDOW = 3.0
SETTLE_CORES = 0.1  # the servers of a group count as idle below this
SETTLE_LIMIT = 180.0  # longest wait for them after a run
LIST_MIN_DURATION = 3  # a page can take most of a second under load: a 1 s run may complete none

_CLIENTS: dict[tuple[str, str, str], Any] = {}


def size_tag(size: int) -> str:
    """``4k``, ``64k``, ``16k``: key prefixes and labels."""
    return "%dk" % (size // 1024,) if size % 1024 == 0 else "%db" % (size,)


# --------------------------------------------------------------------------
# small helpers


def read_commit(repo: Path) -> str:
    """
    The checked-out commit, read from ``.git`` without running git (a
    ``git describe --dirty`` may take the index lock while someone commits).
    """
    git = repo / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: PATH"
            git = (repo / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head[:12] + " (detached; working tree state not checked)"
        ref = head.split(None, 1)[1]
        path = git / ref
        if path.exists():
            sha = path.read_text().strip()
        else:
            sha = next((line.split()[0] for line in (git / "packed-refs").read_text().splitlines()
                        if line.endswith(" " + ref)), "")
        if not sha:
            return "%s (no commit yet)" % (ref,)
        return "%s %s (working tree state not checked)" % (ref.rsplit("/", 1)[-1], sha[:12])
    except OSError as e:
        return "unknown (%s)" % (e,)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_quiet(threshold: float, timeout: float, window: float = QUIET_WINDOW) -> dict[str, Any]:
    """
    Poll ``/proc/stat`` until the machine minus this process uses fewer than
    ``threshold`` cores for ``window`` seconds; give up loudly at ``timeout``.
    """
    t_start = time.monotonic()
    prev_t, prev_busy, prev_own = t_start, harness._machine_busy_seconds(), _own_cpu_seconds()
    quiet_since: float | None = None
    seen: list[float] = []
    while True:
        time.sleep(0.5)
        now, busy, own = time.monotonic(), harness._machine_busy_seconds(), _own_cpu_seconds()
        cores = max(0.0, (busy - prev_busy) - (own - prev_own)) / max(1e-6, now - prev_t)
        seen.append(cores)
        if cores < threshold:
            quiet_since = prev_t if quiet_since is None else quiet_since
            if now - quiet_since >= window:
                return {"quiet": True, "waited_s": now - t_start, "threshold_cores": threshold,
                        "last_cores": cores}
        else:
            quiet_since = None
        if now - t_start > timeout:
            message = ("WARNING: THE MACHINE NEVER WENT QUIET: other processes used %.2f cores on average "
                       "(up to %.2f) over the last %.0f s, against a threshold of %.2f; the figures are "
                       "noisy" % (statistics.fmean(seen[-20:]), max(seen), timeout, threshold))
            print("\n" + "!" * 78 + "\n" + message + "\n" + "!" * 78 + "\n", file=sys.stderr, flush=True)
            return {"quiet": False, "waited_s": now - t_start, "threshold_cores": threshold,
                    "mean_cores": statistics.fmean(seen[-20:]), "max_cores": max(seen), "warning": message}
        prev_t, prev_busy, prev_own = now, busy, own


def _presign_part(endpoint: str, access_key: str, secret_key: str, method: str, keys: list[str],
                  bucket: str, path: str) -> list[str]:
    """One process's share of a URL file, through ``run.write_url_file``."""
    ident = (endpoint, access_key, secret_key)
    if ident not in _CLIENTS:
        _CLIENTS[ident] = harness.s3_client(endpoint, access_key, secret_key)
    return harness.write_url_file(Path(path), _CLIENTS[ident], method, keys, bucket)


def _presign_lists(endpoint: str, access_key: str, secret_key: str, bucket: str,
                   start_afters: list[str]) -> list[str]:
    """Presigned ListObjectsV2 pages (``max-keys`` 1000) starting after each key."""
    client = harness.s3_client(endpoint, access_key, secret_key)
    return [str(client.generate_presigned_url(
        "list_objects_v2", Params={"Bucket": bucket, "StartAfter": key, "MaxKeys": LIST_PAGE},
        ExpiresIn=3600, HttpMethod="GET")) for key in start_afters]


@dataclass
class Pool:
    """
    Where a target's next PUT run starts in its URL file, so each run writes
    keys no earlier run of that target touched (until ``size`` is used up).
    """

    size: int
    start: int = 0
    wrapped: bool = False

    def advance(self, result: dict[str, Any], concurrency: int) -> None:
        # as run.py: requests still in flight, timed out or reset were sent too
        self.start += (result.get("requests") or 0) + 2 * concurrency + 2 + sum(
            (result.get("socket_errors") or {}).values())
        if self.start >= self.size:
            self.wrapped = True


@dataclass
class Entry:
    """One target's part of a cell: what wrk sends it and how."""

    target: Target
    url_file: Path
    pool: Pool | None
    body_mode: str
    timeout: float
    preload: Path | None = None


# --------------------------------------------------------------------------
# the suite


class Suite:
    """
    One run of the suite: the options, the CPU layout, the results being
    gathered and the failures that will make the exit status non-zero.
    """

    def __init__(self, args: argparse.Namespace, workdir: Path, results: dict[str, Any]) -> None:
        self.args = args
        self.workdir = workdir
        self.results = results
        self.layout = peers.layout()
        self.access_key = "BENCH" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.failures: list[str] = results.setdefault("failures", [])
        self.notes: list[str] = results.setdefault("notes", [])
        self.head_shim: Path | None = None
        self.logdir = workdir / "wrk-logs"
        self.logdir.mkdir()
        self.all_cpus = frozenset(os.sched_getaffinity(0))
        self.procs = max(1, len(self.all_cpus))
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.moto_version = ""
        self.versions: dict[str, str] = {}

    # -- bookkeeping ---------------------------------------------------------

    def fail(self, message: str) -> None:
        """A strict target's run was invalid, or a scenario could not run: loud, recorded, not the end."""
        self.failures.append(message)
        print("\nFAILURE: %s\n" % (message,), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def record_target(self, target: Target) -> None:
        entry = self.results.setdefault("targets_seen", {}).setdefault(target.column, {})
        entry.update({"kind": target.kind, "version": target.version, "cpus": sorted(target.cpus),
                      "strict": target.strict, "workers": target.workers})
        entry.setdefault("instances", []).append(
            {"server": target.server.name, "pid": target.server.proc.pid, **target.info})

    # -- presigning ----------------------------------------------------------

    def presign(self, path: Path, signer: Target, method: str, keys: list[str], bucket: str = BUCKET) -> list[str]:
        """
        Write a ``METHOD URL`` file for ``keys`` signed for ``signer``, split
        over one process per CPU (botocore takes about 0.4 ms a URL here).
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        assert signer.credentials is not None
        access_key, secret_key = signer.credentials
        if len(keys) < 1000 or self.procs < 2:
            return _presign_part(signer.base_url, access_key, secret_key, method, keys, bucket, str(path))
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.procs, mp_context=multiprocessing.get_context("fork"))
        chunk = -(-len(keys) // self.procs)
        parts = [keys[i:i + chunk] for i in range(0, len(keys), chunk)]
        futures = [self._pool.submit(_presign_part, signer.base_url, access_key, secret_key, method, part,
                                     bucket, "%s.part%d" % (path, n)) for n, part in enumerate(parts)]
        urls = [url for f in futures for url in f.result()]
        with open(path, "wb") as out:
            for n in range(len(parts)):
                part = Path("%s.part%d" % (path, n))
                out.write(part.read_bytes())
                part.unlink()
        return urls

    # -- one measurement -----------------------------------------------------

    def one_run(self, entry: Entry, meta: dict[str, Any], rep: int, servers: list[harness.Server]) -> dict[str, Any]:
        """
        One wrk run against one target, pinned, with its CPU accounting;
        an invalid run of a strict target is recorded as a failure.
        """
        target, args = entry.target, self.args
        wrk_cpus = self.layout.wrk_for(target)
        os.sched_setaffinity(0, wrk_cpus)  # wrk inherits it
        peers.pin(target)
        threads = len(wrk_cpus)
        c = meta["concurrency"]
        label = "%s-%s-c%d-%s-r%d" % (meta["scenario"], meta["operation"], c, target.column, rep + 1)
        start = entry.pool.start if entry.pool else 0
        before = harness.cpu_snapshot(servers)
        t0 = time.monotonic()
        if target.server.proc.poll() is not None:
            result = harness.failed_run(["%s is not running (exit status %s; log: %s)"
                                         % (target.server.name, target.server.proc.returncode,
                                            target.server.log_path)])
        else:
            result = harness.run_wrk(args.wrk, target.server, entry.url_file, c, threads,
                                     meta.get("duration", args.duration), start, entry.body_mode,
                                     self.logdir, label, timeout=entry.timeout, preload=entry.preload,
                                     strict=False)
        cpu: dict[str, Any] = harness.cpu_delta(before, harness.cpu_snapshot(servers),
                                                time.monotonic() - t0, target.server.name)
        cpu["server_cpu_us_per_op"] = (cpu["server_cpu_s"] * 1e6 / result["requests"]
                                       if result.get("requests") else None)
        result["cpu"] = cpu
        result["rep"] = rep + 1
        result["start"] = start
        result["wrk_cpus"] = sorted(wrk_cpus)
        result["server_cpus"] = sorted(target.cpus)
        result.setdefault("valid", not result.get("problems"))
        result.setdefault("problems", [])
        if entry.pool is not None:
            entry.pool.advance(result, c)
        problems = result["problems"]
        print("  %-40s %8s ops/s  p50 %7s  p99 %7s ms  cores: server %.2f wrk %.2f other %.2f  %s us/op%s"
              % (label, harness._ops(result.get("rps")), harness._ms(result.get("p50_us")),
                 harness._ms(result.get("p99_us")), cpu["server_cores"], cpu["wrk_cores"],
                 cpu["foreign_cores"], harness._cpu_us(result),
                 ("  PROBLEMS: " + "; ".join(problems)) if problems else ""), flush=True)
        if problems and target.strict:
            self.fail("%s is INVALID: %s (log: %s)" % (label, "; ".join(problems),
                                                     self.logdir / ("wrk-%s.log" % (label,))))
        result["settle_s"] = self.settle(servers)
        if result["settle_s"] is None:
            self.note("the servers were still busy %.0f s after %s (a server working off the requests "
                      "wrk left queued): the next run started anyway and its figures may be low"
                      % (SETTLE_LIMIT, label))
        elif result["settle_s"] > 2:
            print("    (servers busy for %.1f s after the run: %s worked off what wrk left queued)"
                  % (result["settle_s"], target.column), flush=True)
        return result

    def settle(self, servers: list[harness.Server]) -> float | None:
        """
        Wait until the group's servers together use under SETTLE_CORES: a
        slow peer keeps serving the requests wrk left queued (moto at c=64 for
        tens of seconds) and would take the next target's CPU. Seconds
        waited, None after SETTLE_LIMIT.
        """
        t0 = time.monotonic()
        step = 0.25
        prev = sum(harness._process_seconds(s.proc.pid) for s in servers if s.proc.poll() is None)
        while True:
            time.sleep(step)
            cur = sum(harness._process_seconds(s.proc.pid) for s in servers if s.proc.poll() is None)
            if max(0.0, cur - prev) / step < SETTLE_CORES:
                return time.monotonic() - t0
            if time.monotonic() - t0 > SETTLE_LIMIT:
                return None
            prev = cur

    def run_cell(self, meta: dict[str, Any], entries: list[Entry], servers: list[harness.Server]) -> dict[str, Any]:
        """
        Every target of a cell, ``--repeat`` rounds, interleaved (the order
        rotates each round); the cell with each target's summary.
        """
        runs: dict[str, list[dict[str, Any]]] = {e.target.column: [] for e in entries}
        for rep in range(self.args.repeat):
            k = rep % len(entries)
            for entry in entries[k:] + entries[:k]:
                runs[entry.target.column].append(self.one_run(entry, meta, rep, servers))
        cell = dict(meta, results={})
        for entry in entries:
            cell["results"][entry.target.column] = summarise(
                runs[entry.target.column], entry.target, self.layout, meta.get("size"))
            if entry.pool is not None:
                cell["results"][entry.target.column]["pool"] = {
                    "keys": entry.pool.size, "next_start": entry.pool.start, "wrapped": entry.pool.wrapped}
        self.results.setdefault("cells", []).append(cell)
        parts = []
        for column, s in cell["results"].items():
            mark = "" if s["valid"] else "†"
            parts.append("%s %s%s" % (column, harness._ops(s.get("rps")), mark))
        print("= %s %s c=%d: %s" % (meta["scenario"], meta["operation"], meta["concurrency"],
                                    ", ".join(parts)), flush=True)
        self.save()
        return cell

    def save(self) -> None:
        """Write results.json as it stands (a crash keeps what was measured)."""
        out = Path(self.args.out) / "results.json"
        out.write_text(json.dumps(self.results, indent=1, default=str))

    # -- starting a group's servers ------------------------------------------

    def start_fs(self, fleet: Fleet, data_dirs: dict[int, Path] | None = None) -> list[Target]:
        targets = []
        for workers in self.args.worker_list:
            cpus = self.layout.one if workers == 1 else self.layout.two
            target = peers.start_fasterstore(
                fleet, workers, cpus, self.access_key, self.secret_key,
                data_dir=(data_dirs or {}).get(workers), extra=self.args.server_arg,
                timeout=self.args.start_timeout)
            print("%s ready after %.2f s (pid %d, CPUs %s): %s" % (
                target.column, target.info["ready_seconds"], target.server.proc.pid,
                ",".join(map(str, sorted(cpus))), " ".join(target.server.command)), flush=True)
            self.record_target(target)
            targets.append(target)
        return targets

    def start_peers(self, fleet: Fleet, wanted: list[str], bare_sizes: list[int] | None = None) -> dict[str, Any]:
        """The selected peers for a group; ``bare`` maps a body size to its floor."""
        out: dict[str, Any] = {}
        one = self.layout.one
        if "bare" in wanted:
            out["bare"] = {}
            for size in bare_sizes or []:
                out["bare"][size] = peers.start_bare(fleet, size, one)
                self.record_target(out["bare"][size])
        if "nginx" in wanted:
            out["nginx"] = peers.start_nginx(fleet, one, self.versions["nginx"])
            self.record_target(out["nginx"])
        if "moto" in wanted:
            try:
                out["moto"] = peers.start_moto(fleet, one, self.moto_version, self.args.moto_start_timeout)
                self.record_target(out["moto"])
            except BenchError as e:  # a peer: recorded, not fatal
                self.note("moto did not start, its cells are empty: %s" % (e,))
        if "s3rver" in wanted:
            try:
                out["s3rver"] = peers.start_s3rver(fleet, one, self.versions["s3rver"])
                self.record_target(out["s3rver"])
            except BenchError as e:
                self.note("s3rver did not start, its cells are empty: %s" % (e,))
        for name in ("nginx", "moto", "s3rver"):
            if name in out:
                print("%s ready (pid %d, CPUs %s): %s" % (name, out[name].server.proc.pid,
                                                         ",".join(map(str, sorted(one))),
                                                         " ".join(out[name].server.command)), flush=True)
        return out

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
        print("Note: " + message, flush=True)

    def create_bucket(self, target: Target, bucket: str) -> None:
        """A bucket through boto3, signed with what the target wants (moto: any key)."""
        access_key, secret_key = target.credentials or (self.access_key, self.secret_key)
        client = harness.s3_client(target.base_url, access_key, secret_key)
        client.create_bucket(Bucket=bucket)

    def seed_peer(self, target: Target, urls: tuple[list[str], list[str], list[str]], size: int) -> bool:
        """
        Seed a read set through presigned URLs (``run.seed``: distinct random
        bodies, a sample read back); for a peer a failure drops it from the
        scenario with a note, for FasterStore it raises.
        """
        put, get, head = urls
        try:
            seeded = harness.seed(target.server.port, put, get, head, deadline=time.monotonic() + 900,
                                  size=size)
        except BenchError as e:
            if target.strict:
                raise BenchError("seeding %s: %s\n%s" % (target.column, e, target.server.log_tail(20)))
            self.note("%s could not be seeded with %d-byte objects, left out of that scenario: %s"
                      % (target.column, size, e))
            return False
        print("  seeded %s: %d objects of %d bytes in %.1f s (%.0f PUT/s), sample read back identical"
              % (target.column, seeded["objects"], size, seeded["seconds"], seeded["ops_per_s"]), flush=True)
        self.results.setdefault("seeds", []).append(dict(seeded, target=target.column, size=size))
        return True

    # -- group 1: small objects and mixed ------------------------------------

    def objects_group(self, scenarios: list[str]) -> None:
        """Small-object and mixed scenarios on one set of servers."""
        args = self.args
        sizes = [SMALL_SIZES[s] for s in scenarios if s in SMALL_SIZES]
        if "mixed" in scenarios:
            sizes.append(MIXED_SIZE)
        print("\n## Small objects and mixed: %s\n" % (", ".join(scenarios),), flush=True)
        with Fleet(self.workdir / "objects") as fleet:
            fs = self.start_fs(fleet)
            others = self.start_peers(fleet, args.peer_list, sizes)
            s3_targets = fs + [others[n] for n in ("moto", "s3rver") if n in others]
            for target in s3_targets:
                self.create_bucket(target, BUCKET)
            for scenario in scenarios:
                try:
                    if scenario == "mixed":
                        self.mixed_scenario(fleet, fs, others)
                    else:
                        self.small_scenario(fleet, scenario, fs, others)
                except BenchError as e:
                    self.fail("scenario %s: %s" % (scenario, e))
            self.fleet_checks(fleet)

    def signers(self, fs: list[Target], others: dict[str, Any]) -> list[Target]:
        """The targets that need URLs signed for themselves: FasterStore's and s3rver."""
        return fs + ([others["s3rver"]] if "s3rver" in others else [])

    def signer_of(self, target: Target, fs: list[Target]) -> Target:
        """Whose URLs a target is sent: its own, or (no signature checked) the first FasterStore's."""
        return target if target.credentials is not None else fs[0]

    def entries_for(self, fs: list[Target], others: dict[str, Any], size: int | None,
                    files: dict[str, Path], pools: dict[str, Pool] | None, body_mode: str, timeout: float,
                    preload: Path | None, include: list[str] | None = None) -> list[Entry]:
        """A cell's targets in report order, each with its URL file (by signer column) and pool."""
        targets: list[Target] = list(fs)
        if "bare" in others and size in others["bare"]:
            targets.append(others["bare"][size])
        for name in ("nginx", "moto", "s3rver"):
            if name in others:
                targets.append(others[name])
        if include is not None:
            targets = [t for t in targets if t.column in include]
        return [Entry(t, files[self.signer_of(t, fs).column], pools[t.column] if pools else None,
                      body_mode, timeout, preload) for t in targets]

    def small_scenario(self, fleet: Fleet, scenario: str, fs: list[Target], others: dict[str, Any]) -> None:
        """PUT, GET and HEAD of one size at each concurrency."""
        args = self.args
        size = SMALL_SIZES[scenario]
        tag = size_tag(size)
        print("\n### %s: %d-byte objects, read set %d, PUT pool %d keys per target\n"
              % (scenario, size, args.read_keys, args.write_keys), flush=True)
        read_keys = ["r%s/%07d" % (tag, i) for i in range(args.read_keys)]
        write_keys = ["w%s/%07d" % (tag, i) for i in range(args.write_keys)]
        signers = self.signers(fs, others)
        files: dict[str, dict[str, Path]] = {}
        seeds: dict[str, tuple[list[str], list[str], list[str]]] = {}

        def sign() -> float:
            t0 = time.monotonic()
            for signer in signers:
                d = self.workdir / "urls" / signer.column
                files[signer.column] = {op: d / ("%s-%s.txt" % (op.lower(), tag)) for op in ("PUT", "GET", "HEAD")}
                self.presign(files[signer.column]["PUT"], signer, "PUT", write_keys)
                seed_put = self.presign(d / ("seed-%s.txt" % (tag,)), signer, "PUT", read_keys)
                get = self.presign(files[signer.column]["GET"], signer, "GET", read_keys)
                head = self.presign(files[signer.column]["HEAD"], signer, "HEAD", read_keys)
                seeds[signer.column] = (seed_put, get, head)
            print("  presigned %d URLs for %s in %.1f s" % (
                len(signers) * (len(write_keys) + 3 * len(read_keys)),
                ", ".join(s.column for s in signers), time.monotonic() - t0), flush=True)
            return time.monotonic()

        signed_at = sign()
        dropped = self.seed_all(fs, others, seeds, read_keys, size)
        pools = {t.column: Pool(len(write_keys)) for t in fleet.targets}
        for op in ("PUT", "GET", "HEAD"):
            for c in args.concurrency_list:
                if time.monotonic() - signed_at > URL_MAX_AGE:
                    signed_at = sign()
                entries = self.entries_for(
                    fs, others, size, {k: v[op] for k, v in files.items()}, pools if op == "PUT" else None,
                    "unique:%d" % (size,) if size != 4096 else "unique",
                    30.0 if op == "PUT" else self.read_timeout(),
                    self.head_shim if op == "HEAD" else None)
                entries = [e for e in entries if e.target.column not in dropped]
                meta = {"scenario": scenario, "operation": op, "size": size, "concurrency": c}
                self.run_cell(meta, entries, fleet.servers)
        self.pool_notes(scenario, pools)

    def read_timeout(self) -> float:
        # run.py's rule: a GET/HEAD slower than this is a failure
        return max(1.0, min(5.0, self.args.duration / 2))

    def seed_all(self, fs: list[Target], others: dict[str, Any],
                 seeds: dict[str, tuple[list[str], list[str], list[str]]], read_keys: list[str],
                 size: int) -> set[str]:
        """
        Seed the read set everywhere: FasterStore and s3rver through their
        own URLs, moto through FasterStore's (it checks no signature), nginx
        as files in its document root; the floor needs none. Returns the
        peers that could not be seeded.
        """
        dropped: set[str] = set()
        for target in fs + [others[n] for n in ("moto", "s3rver") if n in others]:
            if not self.seed_peer(target, seeds[self.signer_of(target, fs).column], size):
                dropped.add(target.column)
        if "nginx" in others:
            t0 = time.monotonic()
            root = others["nginx"].root
            assert root is not None
            for key in read_keys:
                path = root / BUCKET / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(os.urandom(size))
            print("  wrote %d static %d-byte files for nginx in %.1f s"
                  % (len(read_keys), size, time.monotonic() - t0), flush=True)
        return dropped

    def pool_notes(self, scenario: str, pools: dict[str, Pool]) -> None:
        for column, pool in pools.items():
            if pool.wrapped and column != "bare":  # the floor stores nothing: nothing to overwrite
                self.note("%s: %s used up its PUT key pool (%d keys): its later PUTs overwrote existing "
                          "keys; raise --write-keys" % (scenario, column, pool.size))

    def mixed_scenario(self, fleet: Fleet, fs: list[Target], others: dict[str, Any]) -> None:
        """70% GET / 30% PUT of 16 KiB objects, the same sequence of methods for every target."""
        args = self.args
        size, tag = MIXED_SIZE, size_tag(MIXED_SIZE)
        read_keys = ["r%s/%07d" % (tag, i) for i in range(args.read_keys)]
        put_keys = ["m%s/%07d" % (tag, i) for i in range(args.write_keys)]
        rng = random.Random(20261203)
        pattern: list[tuple[str, int]] = []
        next_put = 0
        while next_put < len(put_keys):
            if rng.random() < MIXED_PUT_SHARE:
                pattern.append(("PUT", next_put))
                next_put += 1
            else:
                pattern.append(("GET", rng.randrange(len(read_keys))))
        print("\n### mixed: %d-byte objects, %.0f%% GET / %.0f%% PUT, %d lines (%d PUT keys) per target\n"
              % (size, 100 * (1 - MIXED_PUT_SHARE), 100 * MIXED_PUT_SHARE, len(pattern), len(put_keys)),
              flush=True)
        signers = self.signers(fs, others)
        files: dict[str, Path] = {}
        seeds: dict[str, tuple[list[str], list[str], list[str]]] = {}

        def sign() -> float:
            t0 = time.monotonic()
            for signer in signers:
                d = self.workdir / "urls" / signer.column
                seed_put = self.presign(d / ("seed-%s.txt" % (tag,)), signer, "PUT", read_keys)
                get = self.presign(d / ("get-%s.txt" % (tag,)), signer, "GET", read_keys)
                head = self.presign(d / ("head-%s.txt" % (tag,)), signer, "HEAD", read_keys)
                put = self.presign(d / ("put-%s.txt" % (tag,)), signer, "PUT", put_keys)
                seeds[signer.column] = (seed_put, get, head)
                files[signer.column] = d / ("mixed-%s.txt" % (tag,))
                with open(files[signer.column], "w") as f:
                    for method, i in pattern:
                        f.write("%s %s\n" % (method, put[i] if method == "PUT" else get[i]))
            print("  presigned and wrote the mixed URL files for %s in %.1f s"
                  % (", ".join(s.column for s in signers), time.monotonic() - t0), flush=True)
            return time.monotonic()

        signed_at = sign()
        dropped = self.seed_all(fs, others, seeds, read_keys, size)
        pools = {t.column: Pool(len(pattern)) for t in fleet.targets}
        for c in args.concurrency_list:
            if time.monotonic() - signed_at > URL_MAX_AGE:
                signed_at = sign()
            entries = [e for e in self.entries_for(fs, others, size, files, pools, "unique:%d" % (size,), 30.0, None)
                       if e.target.column not in dropped]
            meta = {"scenario": "mixed", "operation": "MIXED", "size": size, "concurrency": c,
                    "put_share": MIXED_PUT_SHARE}
            self.run_cell(meta, entries, fleet.servers)
        self.pool_notes("mixed", pools)

    def fleet_checks(self, fleet: Fleet) -> None:
        """After a group: a strict server that died is a failure; its log tail is printed."""
        for target in fleet.targets:
            code = target.server.proc.poll()
            if code is not None:
                message = "%s (pid %d) exited during the run with status %s" % (
                    target.server.name, target.server.proc.pid, code)
                if target.strict:
                    self.fail(message + ":\n" + target.server.log_tail(20))
                else:
                    self.note(message)

    # -- group 2: listing ----------------------------------------------------

    def populate_lists(self, data_dir: Path, sizes: list[int]) -> dict[str, Any]:
        """
        Buckets ``list<N>`` of N objects each, written straight into the
        metadata store by ``metadata_scale.Populator`` (every object shares
        one 4 KiB blob; keys ``obj/%08d`` inserted in shuffled order).
        """
        import metadata_scale as ms
        from fasterstore.credentials import ownerForAccessKey
        from fasterstore.metadata.sqlite import INSERT_OBJECT, objectRow

        rng = random.Random(10)
        pop = ms.Populator(data_dir)
        try:
            owner = ownerForAccessKey(self.access_key)
            for n in sizes:
                pop.bucket("list%d" % (n,), owner)
            first = sizes[0]
            created = pop.created

            def record(bucket: str, i: int) -> Any:
                return pop.evolve(pop.template, bucket=bucket, key=ms.key_of(i),
                                  modified=created + rng.random() * 399 * 86400)

            # the first object through the store's own write path
            pop.put(record("list%d" % (first,), 0))
            pop.open_sql()

            def rows() -> Any:
                for n in sizes:
                    order = list(range(1 if n == first else 0, n))
                    rng.shuffle(order)
                    for i in order:
                        yield INSERT_OBJECT, objectRow(record("list%d" % (n,), i))

            pop.insert_mixed(rows())
            result = pop.finish()
        finally:
            pop.close()
        result.pop("body", None)
        if result["objects_rows"] != sum(sizes):
            raise BenchError("populated %d objects, not %d" % (result["objects_rows"], sum(sizes)))
        return result

    def fill_peer(self, target: Target, bucket: str, n: int) -> bool:
        """``n`` empty objects ``obj/%08d`` through boto3 (8 threads): a peer's listing bucket."""
        import metadata_scale as ms

        access_key, secret_key = target.credentials or (self.access_key, self.secret_key)
        t0 = time.monotonic()
        try:
            client = harness.s3_client(target.base_url, access_key, secret_key)
            client.create_bucket(Bucket=bucket)

            def put(i: int) -> None:
                client.put_object(Bucket=bucket, Key=ms.key_of(i), Body=b"")

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(put, range(n)))
        except Exception as e:  # a peer: recorded, not fatal
            self.note("%s: filling bucket %s with %d objects failed, its listing cells are empty: %r"
                      % (target.column, bucket, n, e))
            return False
        seconds = time.monotonic() - t0
        print("  filled %s bucket %s with %d empty objects in %.1f s (%.0f PUT/s)"
              % (target.column, bucket, n, seconds, n / seconds), flush=True)
        self.results.setdefault("list_setup", {}).setdefault("peers", []).append(
            {"target": target.column, "bucket": bucket, "objects": n, "seconds": seconds})
        return True

    def check_page(self, target: Target, url: str) -> None:
        """One page by hand: HTTP 200 with 1000 keys, else the target is not measured on it."""
        conn = http.client.HTTPConnection("127.0.0.1", target.server.port, timeout=120)
        try:
            conn.request("GET", harness._path_query(url))
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        keys = body.count(b"<Key>")
        if resp.status != 200 or keys != LIST_PAGE:
            raise BenchError("%s: a ListObjectsV2 page answered HTTP %d with %d keys (wanted 200, %d): %r"
                             % (target.column, resp.status, keys, LIST_PAGE, body[:300]))

    def list_group(self) -> None:
        """ListObjectsV2 pages on FasterStore (every size) and the peers (the smallest size)."""
        import metadata_scale as ms

        args = self.args
        sizes = args.list_key_list
        print("\n## Listing: ListObjectsV2, max-keys %d, buckets of %s objects\n"
              % (LIST_PAGE, ", ".join("{:,}".format(n) for n in sizes)), flush=True)
        if args.quick and sizes != [10000, 1000000]:
            self.note("--quick: listing measured on buckets of %s objects instead of 10,000 and 1,000,000, "
                      "to stay short" % (" and ".join("{:,}".format(n) for n in sizes),))
        with Fleet(self.workdir / "list") as fleet:
            data_dirs: dict[int, Path] = {}
            if args.worker_list:
                base = fleet.subdir("fs-data")
                t0 = time.monotonic()
                populated = self.populate_lists(base, sizes)
                print("  populated %s objects into FasterStore's metadata store in %.1f s"
                      % ("{:,}".format(sum(sizes)), time.monotonic() - t0), flush=True)
                self.results.setdefault("list_setup", {})["fasterstore"] = populated
                for i, workers in enumerate(args.worker_list):
                    if i == 0:
                        data_dirs[workers] = base
                    else:
                        data_dirs[workers] = fleet.workdir / ("fs-data-w%d" % (workers,))
                        shutil.copytree(base, data_dirs[workers])
            fs = self.start_fs(fleet, data_dirs)
            others = self.start_peers(fleet, [p for p in args.peer_list if p in ("moto", "s3rver")])
            peer_n = sizes[0]
            listed = {name: t for name, t in others.items() if self.fill_peer(t, "list%d" % (peer_n,), peer_n)}
            if len(sizes) > 1 and listed:
                self.note("listing: moto and s3rver are measured on the %s-object bucket only: filling them "
                          "through their S3 API runs at a few hundred PUT/s, so the larger bucket is "
                          "FasterStore's alone (empty cells)" % ("{:,}".format(peer_n),))
            rng = random.Random(1000)
            for n in sizes:
                bucket = "list%d" % (n,)
                targets = list(fs) + (list(listed.values()) if n == peer_n else [])
                signers = [t for t in targets if t.credentials is not None]
                starts = [ms.key_of(rng.randrange(0, max(1, n - LIST_PAGE))) for _ in range(args.list_pages)]
                files: dict[str, Path] = {}
                urls: dict[str, list[str]] = {}
                for signer in signers:
                    assert signer.credentials is not None
                    access_key, secret_key = signer.credentials
                    urls[signer.column] = _presign_lists(signer.base_url, access_key, secret_key, bucket, starts)
                    files[signer.column] = self.workdir / "urls" / signer.column / ("list-%d.txt" % (n,))
                    files[signer.column].parent.mkdir(parents=True, exist_ok=True)
                    files[signer.column].write_text("".join("GET %s\n" % (u,) for u in urls[signer.column]))
                entries = []
                for target in targets:
                    signer = self.signer_of(target, fs)
                    try:
                        self.check_page(target, urls[signer.column][0])
                    except (BenchError, OSError) as e:
                        if target.strict:
                            raise
                        self.note(str(e))
                        continue
                    entries.append(Entry(target, files[signer.column], None, "unique", 10.0))
                for c in args.concurrency_list:
                    meta = {"scenario": "list", "operation": "LIST", "size": None, "keys": n,
                            "concurrency": c, "duration": max(args.duration, LIST_MIN_DURATION)}
                    self.run_cell(meta, entries, fleet.servers)
            self.fleet_checks(fleet)

    # -- group 3: large objects ----------------------------------------------

    def large_group(self, large: Any) -> None:
        """
        ``large.py``'s measurements against FasterStore, nginx, moto and
        s3rver on fresh servers, and the box's limits, in ``results["large"]``.
        """
        args = self.args
        out: dict[str, Any] = self.results.setdefault("large", {})
        print("\n## Large objects (benchmarks/large.py)\n", flush=True)
        with Fleet(self.workdir / "large") as fleet:
            os.sched_setaffinity(0, self.all_cpus)
            try:
                out["box_limits"] = large.box_limits(fleet.subdir("box"), args.quick)
                print("  box limits: %s" % (json.dumps(out["box_limits"], default=str),), flush=True)
            except Exception as e:
                out["box_limits"] = {"error": repr(e), "traceback": traceback.format_exc()}
                self.fail("large.box_limits failed: %r" % (e,))
            self.save()
            fs = self.start_fs(fleet)
            others = self.start_peers(fleet, [p for p in args.peer_list if p != "bare"])
            targets = fs + [others[n] for n in ("nginx", "moto", "s3rver") if n in others]
            for target in targets:
                os.sched_setaffinity(0, self.layout.wrk_for(target))
                peers.pin(target)
                workdir = fleet.subdir("large-" + target.column)
                t0 = time.monotonic()
                try:
                    # the server's own pid: large.py finds its children (workers, nginx's worker)
                    pids = [target.server.proc.pid]
                    if target.kind == "nginx":
                        assert target.root is not None
                        static = large.prepare_static(target.root)  # name -> path under the root
                        (target.root / "upload").mkdir(exist_ok=True)
                        result = large.measure_plain(target.base_url, "/upload/", static, pids, workdir,
                                                     args.quick)
                        result = dict(result, static=static)
                    else:
                        self.create_bucket(target, LARGE_BUCKET)
                        access_key, secret_key = target.credentials or (self.access_key, self.secret_key)
                        result = large.measure_s3(target.base_url, access_key, secret_key, LARGE_BUCKET,
                                                  pids, workdir, args.quick)
                        result = dict(result)
                except Exception as e:
                    result = {"error": repr(e), "traceback": traceback.format_exc()}
                    if target.strict:
                        self.fail("large objects against %s failed: %r" % (target.column, e))
                    else:
                        self.note("large objects against %s failed (a peer: recorded): %r" % (target.column, e))
                result["seconds"] = time.monotonic() - t0
                result["server_cpus"] = sorted(target.cpus)
                result["client_cpus"] = sorted(self.layout.wrk_for(target))
                out[target.column] = result
                print("  %s: %s" % (target.column, json.dumps(
                    {k: v for k, v in result.items() if k != "traceback"}, default=str)[:600]), flush=True)
                self.save()
            self.fleet_checks(fleet)
        os.sched_setaffinity(0, self.all_cpus)


def summarise(runs: list[dict[str, Any]], target: Target, layout: peers.Layout, size: int | None) -> dict[str, Any]:
    """
    A target's figures in a cell: medians over the valid runs, the min–max
    spread of ops/s, the busiest wrk and other-process CPU, and what was
    wrong with any invalid run.
    """
    valid = [r for r in runs if r.get("valid") and r.get("rps")]

    def med(key: str) -> float | None:
        values = [r[key] for r in valid if r.get(key) is not None]
        return statistics.median(values) if values else None

    def cpu(key: str) -> list[float]:
        return [r["cpu"][key] for r in runs if r.get("cpu") and r["cpu"].get(key) is not None]

    rps = [r["rps"] for r in valid]
    cpu_us = [r["cpu"]["server_cpu_us_per_op"] for r in valid if r["cpu"].get("server_cpu_us_per_op")]
    wrk_cpus = runs[0].get("wrk_cpus", []) if runs else []
    wrk_cores = max(cpu("wrk_cores"), default=0.0)
    shared = bool(set(wrk_cpus) & set(target.cpus))
    out: dict[str, Any] = {
        "runs": runs,
        "n": len(runs),
        "n_valid": len(valid),
        "valid": bool(runs) and len(valid) == len(runs),
        "problems": sorted({p for r in runs for p in r.get("problems", [])}),
        "rps": statistics.median(rps) if rps else None,
        "rps_min": min(rps) if rps else None,
        "rps_max": max(rps) if rps else None,
        "p50_us": med("p50_us"),
        "p90_us": med("p90_us"),
        "p99_us": med("p99_us"),
        "max_us": max((r["max_us"] for r in valid if r.get("max_us") is not None), default=None),
        "cpu_us_per_op": statistics.median(cpu_us) if cpu_us else None,
        "server_cores": statistics.median(cpu("server_cores")) if cpu("server_cores") else None,
        "wrk_cores": wrk_cores,
        "foreign_cores": max(cpu("foreign_cores"), default=0.0),
        "wrk_cpus": wrk_cpus,
        "server_cpus": sorted(target.cpus),
        "wrk_shares_server_cpus": shared,
        # wrk alone on its CPU(s) and (nearly) using all of them: the client may be the limit
        "wrk_bound": (not shared) and bool(wrk_cpus) and wrk_cores >= 0.85 * len(wrk_cpus),
        "strict": target.strict,
    }
    if size and out["rps"]:
        out["mbps"] = out["rps"] * size / 1e6
    return out


# --------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Every benchmark scenario against FasterStore (--workers 1 and 2) and its peers "
                    "(bare twisted.web floor, nginx, moto, s3rver) in one run: results.json, results.md, plots.")
    parser.add_argument("--out", default=None,
                        help="output directory (default benchmarks/results/suite-YYYYmmdd-HHMMSS)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 s per wrk run, 1 round, c=1,64, small key sets and listing "
                             "buckets, large.py's quick mode (a few minutes)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run (5; --quick 1)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds per measurement (3; --quick 1)")
    parser.add_argument("--concurrency", default=None, help="comma list (1,16,64; --quick 1,64)")
    parser.add_argument("--only", default=None,
                        help="comma list of scenarios (%s; a prefix like 'small' selects several)"
                             % (", ".join(SCENARIOS),))
    parser.add_argument("--peers", default=",".join(peers.PEERS),
                        help="comma list of peers to measure beside FasterStore (%s), or 'none'"
                             % (",".join(peers.PEERS),))
    parser.add_argument("--workers", default="1,2", help="FasterStore --workers values to measure (1,2)")
    parser.add_argument("--skip-large", action="store_true",
                        help="leave out the large-object scenarios (benchmarks/large.py)")
    parser.add_argument("--install", action="store_true",
                        help="first install what the peers need: apt-get nginx (with WebDAV), wrk, gcc, "
                             "node/npm; npm install s3rver into %s" % (peers.NODE_DIR,))
    parser.add_argument("--install-only", action="store_true", help="--install, then exit")
    parser.add_argument("--read-keys", type=int, default=None,
                        help="objects seeded per size for GET/HEAD/mixed (2000; --quick 200)")
    parser.add_argument("--write-keys", type=int, default=None,
                        help="fresh keys per PUT pool and target (40000; --quick 3000); when used "
                             "up, PUTs overwrite and the report says so")
    parser.add_argument("--list-keys", default=None,
                        help="listing bucket sizes (10000,1000000; --quick 2000,100000); the peers get "
                             "the first only")
    parser.add_argument("--list-pages", type=int, default=200, help="distinct pages per listing URL file (200)")
    parser.add_argument("--tmp-dir", default="/var/tmp" if os.path.isdir("/var/tmp") else None,
                        help="parent of the temporary directory (data dirs; its filesystem is what "
                             "fsync is measured on) (/var/tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    parser.add_argument("--quiet-timeout", type=float, default=None,
                        help="seconds to wait for a quiet machine before starting (120; --quick 30)")
    parser.add_argument("--quiet-threshold", type=float, default=0.2,
                        help="cores other processes may use for the machine to count as quiet (0.2)")
    parser.add_argument("--start-timeout", type=float, default=120.0,
                        help="seconds to wait for a FasterStore server to be ready (120)")
    parser.add_argument("--moto-start-timeout", type=float, default=60.0, help="seconds to wait for moto (60)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for the fasterstore plugin (repeatable)")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="wrk binary")
    args = parser.parse_args(argv)
    q = args.quick
    args.duration = args.duration if args.duration is not None else (1.0 if q else 5.0)
    args.repeat = args.repeat if args.repeat is not None else (1 if q else 3)
    args.concurrency_list = [int(c) for c in (args.concurrency or ("1,64" if q else "1,16,64")).split(",") if c.strip()]
    args.read_keys = args.read_keys or (200 if q else 2000)
    args.write_keys = args.write_keys or (3000 if q else 40000)
    args.list_key_list = sorted(int(n) for n in (args.list_keys or ("2000,100000" if q else "10000,1000000")).split(",")
                                if n.strip())
    args.quiet_timeout = args.quiet_timeout if args.quiet_timeout is not None else (30.0 if q else 120.0)
    if args.duration < 1 or args.duration != int(args.duration):
        parser.error("--duration must be a whole number of seconds, at least 1 (wrk's -d)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.concurrency_list or min(args.concurrency_list) < 1:
        parser.error("--concurrency must be positive integers")
    if any(n < LIST_PAGE + 1 for n in args.list_key_list):
        parser.error("--list-keys must each be above %d (a page is %d keys)" % (LIST_PAGE, LIST_PAGE))
    args.peer_list = [] if args.peers.strip().lower() in ("", "none") else [
        p.strip() for p in args.peers.split(",") if p.strip()]
    for p in args.peer_list:
        if p not in peers.PEERS:
            parser.error("unknown peer %r (choose from %s)" % (p, ", ".join(peers.PEERS)))
    args.worker_list = [int(w) for w in args.workers.split(",") if w.strip()]
    if not args.worker_list or any(w not in (1, 2) for w in args.worker_list):
        parser.error("--workers takes 1, 2 or 1,2")
    if args.only:
        chosen: list[str] = []
        for token in (t.strip() for t in args.only.split(",") if t.strip()):
            matches = [s for s in SCENARIOS if s == token or s.startswith(token)]
            if not matches:
                parser.error("unknown scenario %r (choose from %s)" % (token, ", ".join(SCENARIOS)))
            chosen.extend(m for m in matches if m not in chosen)
        args.scenario_list = [s for s in SCENARIOS if s in chosen]
    else:
        args.scenario_list = list(SCENARIOS)
    if args.skip_large and "large" in args.scenario_list:
        args.scenario_list.remove("large")
    if args.out is None:
        args.out = str(HERE / "results" / time.strftime("suite-%Y%m%d-%H%M%S"))
    return args


def preflight(args: argparse.Namespace) -> dict[str, str]:
    """
    Everything the chosen scenarios and peers need, checked before anything
    starts: a missing piece stops the suite at once, naming the fix.
    """
    versions: dict[str, str] = {}
    if not shutil.which(args.wrk):
        raise BenchError("wrk not found: apt-get install wrk (or benchmarks/suite.py --install)")
    if not (shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")):
        raise BenchError("HEAD runs need a C compiler for run.py's wrk shim: apt-get install gcc")
    if importlib.util.find_spec("matplotlib") is None:
        raise BenchError("the plots need matplotlib in %s: %s -m pip install -e '.[bench]' (or pip install "
                         "matplotlib)" % (sys.executable, sys.executable))
    if "nginx" in args.peer_list:
        versions["nginx"] = peers.check_nginx()
    if "s3rver" in args.peer_list:
        versions["s3rver"] = peers.check_s3rver()
    if "moto" in args.peer_list:
        versions["moto"] = harness.check_moto()
    return versions


def import_large() -> tuple[Any, str | None]:
    """``benchmarks/large.py`` with the agreed functions, or the reason it is unusable."""
    try:
        import large
    except Exception as e:
        return None, "benchmarks/large.py could not be imported: %r" % (e,)
    missing = [name for name in ("box_limits", "measure_s3", "measure_plain", "prepare_static")
               if not callable(getattr(large, name, None))]
    if missing:
        return None, "benchmarks/large.py lacks %s (the agreed interface)" % (", ".join(missing),)
    return large, None


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    if args.install or args.install_only:
        try:
            peers.install(args.peer_list)
        except BenchError as e:
            print("INSTALL FAILED: %s" % (e,), file=sys.stderr)
            return 2
        if args.install_only:
            return 0
    try:
        versions = preflight(args)
    except BenchError as e:
        print("BENCHMARK FAILED before starting: %s" % (e,), file=sys.stderr)
        return 2
    large, large_error = (None, None)
    if "large" in args.scenario_list:
        large, large_error = import_large()
        if large_error:
            print("\n" + "!" * 78 + "\nLARGE-OBJECT SCENARIOS WILL FAIL: %s.\nThe other scenarios run; the "
                  "exit status will be 1. Pass --skip-large to leave them out.\n" % (large_error,) + "!" * 78
                  + "\n", file=sys.stderr, flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="fasterstore-suite-", dir=args.tmp_dir))
    results: dict[str, Any] = {
        "suite": "benchmarks/suite.py", "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": [sys.executable] + sys.argv, "args": {k: v for k, v in vars(args).items()},
        "scenarios": args.scenario_list, "failures": [], "notes": [], "cells": [],
    }
    suite = Suite(args, workdir, results)
    suite.versions = versions
    suite.moto_version = versions.get("moto", "")
    t_begin = time.monotonic()
    status = 1
    try:
        results["layout"] = {"note": suite.layout.note, "one": sorted(suite.layout.one),
                             "wrk_one": sorted(suite.layout.wrk_one), "two": sorted(suite.layout.two),
                             "wrk_two": sorted(suite.layout.wrk_two)}
        results["peer_versions"] = versions
        print("## FasterStore benchmark suite: %s (%s)\n" % (", ".join(args.scenario_list),
                                                            "quick" if args.quick else "full"))
        print("CPU layout: " + suite.layout.note)
        print("waiting for a quiet machine (< %.2f cores for %.0f s, at most %.0f s)..."
              % (args.quiet_threshold, QUIET_WINDOW, args.quiet_timeout), flush=True)
        results["quiet"] = wait_quiet(args.quiet_threshold, args.quiet_timeout)
        if not results["quiet"]["quiet"]:
            suite.note(results["quiet"]["warning"])
        else:
            print("quiet after %.1f s" % (results["quiet"]["waited_s"],))
        results["machine"] = harness.machine_info(workdir, args.wrk, suite.moto_version or None,
                                                  commit=read_commit(REPO))
        results["fsync_probe"] = harness.fsync_probe(workdir)
        for k, v in results["machine"].items():
            print("- %s: %s" % (k, v))
        print("- raw 4 KiB write+fsync on the data dir: p50 %.2f ms, p99 %.2f ms"
              % (results["fsync_probe"]["p50_ms"], results["fsync_probe"]["p99_ms"]), flush=True)
        if any(s in args.scenario_list for s in SMALL_SIZES):
            suite.head_shim = harness.build_head_shim(workdir)
        suite.save()

        groups: list[tuple[str, Callable[[], None]]] = []
        small = [s for s in args.scenario_list if s in SMALL_SIZES or s == "mixed"]
        if small:
            groups.append(("small objects", lambda: suite.objects_group(small)))
        if "list" in args.scenario_list:
            groups.append(("listing", suite.list_group))
        if "large" in args.scenario_list:
            if large_error:
                suite.fail("large-object scenarios: " + large_error + " (pass --skip-large to leave them out)")
                results["large"] = {"error": large_error}
            else:
                groups.append(("large objects", lambda: suite.large_group(large)))
        for name, group in groups:
            t_group = time.monotonic()
            try:
                group()
            except (BenchError, OSError) as e:
                suite.fail("%s: %s" % (name, e))
            except Exception as e:  # boto3 errors and the like: loud, and the next group still runs
                traceback.print_exc()
                suite.fail("%s: %r" % (name, e))
            results.setdefault("group_seconds", {})[name] = time.monotonic() - t_group
            print("(%s: %.0f s)" % (name, time.monotonic() - t_group), flush=True)
            suite.save()
        status = 1 if suite.failures else 0
    except KeyboardInterrupt as e:
        print("\ninterrupted (%s)" % (e or "SIGINT",), file=sys.stderr)
        suite.fail("interrupted")
        status = 130
    except Exception as e:
        traceback.print_exc()
        suite.fail("%r" % (e,))
        status = 1
    finally:
        suite.close()
        results["status"] = status
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        results["seconds"] = time.monotonic() - t_begin
        os.sched_setaffinity(0, suite.all_cpus)
        try:
            report.compute_targets(results)
            suite.save()
            written = report.write_report(results, out)
            print("\nwrote %s" % (", ".join(str(p) for p in [out / "results.json"] + written),))
        except Exception as e:
            traceback.print_exc()
            print("writing the report failed: %r (results.json is complete)" % (e,), file=sys.stderr)
            suite.save()
            status = status or 1
        if args.keep:
            print("kept %s" % (workdir,), file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if results["failures"]:
            print("\nBENCHMARK FAILED (%d failure(s)):" % (len(results["failures"]),), file=sys.stderr)
            for line in results["failures"]:
                print("  - " + line.splitlines()[0], file=sys.stderr)
        print("total %.0f s" % (time.monotonic() - t_begin,), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
