"""
The benchmark suite's report: ``results.json`` (from ``benchmarks/suite.py``)
to ``results.md`` (markdown tables of the figures, of the ratios
FasterStore/peer and of the issue's targets, measured against their
thresholds) and PNG plots (throughput by object size, latency percentiles by
concurrency, scaling by worker count).

Kept apart from the suite so a finished run can be rendered again, or a
table changed, without measuring anything::

    .venv/bin/python benchmarks/report.py benchmarks/results/suite-X/results.json [--out DIR]

The targets are computed here (:func:`compute_targets`), from the medians
the suite stored; the suite calls the same function and keeps the result in
``results.json`` under ``targets``.  Plots use matplotlib's Agg backend
(no display needed).  There is no test module: ``suite.py --quick`` renders
a report end to end.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable

COLUMNS = ("fs-w1", "fs-w2", "bare", "nginx", "moto", "s3rver")
LABELS = {
    "fs-w1": "FasterStore --workers 1",
    "fs-w2": "FasterStore --workers 2",
    "bare": "bare twisted.web floor",
    "nginx": "nginx",
    "moto": "moto",
    "s3rver": "s3rver",
}
SHORT = {"fs-w1": "FS w1", "fs-w2": "FS w2", "bare": "floor", "nginx": "nginx", "moto": "moto", "s3rver": "s3rver"}
COLORS = {"fs-w1": "#1f77b4", "fs-w2": "#d62728", "bare": "#7f7f7f", "nginx": "#2ca02c",
          "moto": "#ff7f0e", "s3rver": "#9467bd"}
PEER_COLUMNS = ("bare", "nginx", "moto", "s3rver")
SMALL = ("small-4k", "small-64k", "mixed")
OPS = ("PUT", "GET", "HEAD")
TARGET_C = 64
NOISY = 0.2  # other processes' cores above which a run is marked noisy


# --------------------------------------------------------------------------
# looking things up


def cells(results: dict[str, Any], scenario: str | None = None) -> list[dict[str, Any]]:
    return [c for c in results.get("cells", []) if scenario is None or c["scenario"] == scenario]


def find(results: dict[str, Any], scenario: str, operation: str, concurrency: int,
         keys: int | None = None) -> dict[str, Any] | None:
    for cell in cells(results, scenario):
        if (cell["operation"] == operation and cell["concurrency"] == concurrency
                and (keys is None or cell.get("keys") == keys)):
            return cell
    return None


def figure(cell: dict[str, Any] | None, column: str) -> dict[str, Any] | None:
    """A target's summary in a cell, if it has a median."""
    if not cell:
        return None
    s = cell.get("results", {}).get(column)
    return s if s and s.get("rps") else None


def ratio(cell: dict[str, Any] | None, a: str, b: str) -> float | None:
    x, y = figure(cell, a), figure(cell, b)
    if x and y:
        return float(x["rps"]) / float(y["rps"])
    return None


def present_columns(cell_list: Iterable[dict[str, Any]]) -> list[str]:
    seen = {col for c in cell_list for col in c.get("results", {})}
    return [c for c in COLUMNS if c in seen]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if isinstance(value, dict):
        for key in ("MBps", "mbps", "MB_s", "MBs", "value"):
            if key in value:
                return _number(value[key])
    return None


def find_number(d: Any, *needles: str) -> tuple[str, float] | None:
    """
    The first number in ``d`` (one level of nesting looked into) whose key
    contains one of ``needles``, case-insensitive, in needle order: tolerant
    of how ``large.box_limits`` names its figures.
    """
    if not isinstance(d, dict):
        return None
    for needle in needles:
        for key, value in d.items():
            if needle.lower() in str(key).lower():
                n = _number(value)
                if n is not None:
                    return str(key), n
                if isinstance(value, dict):
                    for sub, v in value.items():
                        n = _number(v)
                        if n is not None and ("mb" in str(sub).lower() or len(value) == 1):
                            return "%s.%s" % (key, sub), n
    return None


def mbps(result: Any, key: str) -> float | None:
    if not isinstance(result, dict):
        return None
    return _number(result.get(key))


def rss_rows(result: Any, workers_only: bool = False) -> dict[str, dict[str, Any]]:
    """
    ``pid -> {role, idle_MB, peak_MB, after_2GiB_MB}`` from a ``large.py``
    result (its ``rss.per_pid``). ``workers_only``: the processes that
    serve, i.e. the children when there are any (``--workers 2``'s
    supervisor is not a worker), else the process itself.
    """
    rss = result.get("rss") if isinstance(result, dict) else None
    if not isinstance(rss, dict):
        return {}
    per_pid = rss.get("per_pid")
    if isinstance(per_pid, dict):
        rows = {str(pid): v for pid, v in per_pid.items() if isinstance(v, dict)}
    elif any(k in rss for k in ("idle_MB", "peak_MB")):
        rows = {"all": rss}
    else:
        rows = {str(pid): v for pid, v in rss.items() if isinstance(v, dict)}
    if workers_only:
        children = {pid: v for pid, v in rows.items() if v.get("role") == "child"}
        return children or rows
    return rows


# --------------------------------------------------------------------------
# targets


def _row(group: str, name: str, measured: float | None, threshold: float, higher: bool, unit: str,
         detail: str = "", missing: str = "not in this run") -> dict[str, Any]:
    if measured is None:
        return {"group": group, "target": name, "threshold": threshold, "measured": None, "met": None,
                "text": "–", "detail": missing}
    met = measured >= threshold if higher else measured <= threshold
    text = ("%.2f%s" % (measured, unit)) if unit == "x" else ("%.1f %s" % (measured, unit))
    return {"group": group, "target": name, "threshold": threshold, "measured": measured, "met": met,
            "text": text, "detail": detail}


def compute_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """
    The issue's targets with the measured value and met / not met, stored
    in ``results["targets"]`` and returned.
    """
    rows: list[dict[str, Any]] = []
    group = "one worker, one CPU (c=%d)" % (TARGET_C,)
    for op, threshold in (("GET", 0.6), ("HEAD", 0.6), ("PUT", 0.4)):
        cell = find(results, "small-4k", op, TARGET_C)
        value = ratio(cell, "fs-w1", "bare")
        detail = ""
        if value is not None:
            fs, bare = figure(cell, "fs-w1"), figure(cell, "bare")
            assert fs and bare
            detail = "%.0f / %.0f ops/s%s" % (fs["rps"], bare["rps"],
                                              "" if fs["valid"] and bare["valid"] else " (some runs invalid †)")
        missing = "needs small-4k %s at c=%d with FasterStore --workers 1 and the floor" % (op, TARGET_C)
        rows.append(_row(group, "4 KiB %s ≥ %.1fx the bare floor" % (op, threshold), value, threshold, True,
                         "x", detail, missing))
        if op != "PUT":
            fs = figure(cell, "fs-w1")
            rows.append(_row(group, "4 KiB %s p99 ≤ 10 ms" % (op,),
                             fs["p99_us"] / 1e3 if fs and fs.get("p99_us") is not None else None, 10.0, False,
                             "ms", "", "needs small-4k %s at c=%d with FasterStore --workers 1" % (op, TARGET_C)))
    pairs = []
    for scenario in SMALL:
        for cell in cells(results, scenario):
            value = ratio(cell, "fs-w2", "moto")
            if value is not None:
                pairs.append(("%s %s c=%d" % (scenario, cell["operation"], cell["concurrency"]), value))
    if pairs:
        worst = min(pairs, key=lambda p: p[1])
        met = sum(1 for _, v in pairs if v >= 20)
        row = _row("--workers 2 (the whole box)", "every small-object scenario ≥ 20x moto", worst[1], 20.0,
                   True, "x", "lowest: %s; %d of %d cells at or above 20x (each in the ratio table)"
                   % (worst[0], met, len(pairs)))
        row["measured_text"] = "min %.1fx" % (worst[1],)
        rows.append(row)
    else:
        rows.append(_row("--workers 2 (the whole box)", "every small-object scenario ≥ 20x moto", None, 20.0,
                         True, "x", "", "needs small-object or mixed cells with FasterStore --workers 2 and moto"))

    large = results.get("large") or {}
    box = large.get("box_limits") if isinstance(large, dict) else None
    md5 = find_number(box, "md5")
    dd = find_number(box, "fdatasync", "dd")
    nginx_get = mbps(large.get("nginx"), "get_256MiB")
    for column in ("fs-w1", "fs-w2"):
        res = large.get(column)
        if res is None and not large:
            continue
        g = "large objects, %s" % (LABELS[column],)
        why = (res or {}).get("error") or (large.get("error") if isinstance(large, dict) else None) \
            or "not measured"
        get = mbps(res, "get_256MiB")
        put = mbps(res, "put_256MiB")
        rows.append(_row(g, "256 MiB GET ≥ 0.5x nginx's GET",
                         get / nginx_get if get and nginx_get else None, 0.5, True, "x",
                         "%.0f / %.0f MB/s" % (get, nginx_get) if get and nginx_get else "", why))
        limit = min(md5[1], dd[1]) if md5 and dd else None
        rows.append(_row(g, "256 MiB PUT ≥ 0.8x min(MD5, dd+fdatasync)",
                         put / limit if put and limit else None, 0.8, True, "x",
                         "%.0f MB/s / min(MD5 %.0f, dd %.0f) MB/s" % (put, md5[1], dd[1])
                         if put and md5 and dd else "",
                         why if res is None or res.get("error") else
                         "box limits missing (%s)" % ("no MD5 figure" if not md5 else "no dd figure")))
        ttfb = res.get("ttfb_20MiB") if isinstance(res, dict) else None
        p50 = _number((ttfb or {}).get("p50_ms")) if isinstance(ttfb, dict) else None
        rows.append(_row(g, "TTFB of a 20 MiB GET, p50 ≤ 5 ms", p50, 5.0, False, "ms",
                         "p90 %s, p99 %s ms, %s samples" % (_fmt((ttfb or {}).get("p90_ms"), "%.2f"),
                                                           _fmt((ttfb or {}).get("p99_ms"), "%.2f"),
                                                           (ttfb or {}).get("samples")) if p50 is not None else "",
                         why))
        cheap = mbps(res, "multipart_cheap")
        rows.append(_row(g, "multipart (cheap client) ≥ 0.8x single-stream PUT",
                         cheap / put if cheap and put else None, 0.8, True, "x",
                         "%.0f / %.0f MB/s" % (cheap, put) if cheap and put else "", why))
        rss = rss_rows(res, workers_only=True)
        idle = [_number(v.get("idle_MB")) for v in rss.values()]
        peak = [_number(v.get("peak_MB")) for v in rss.values()]
        idle_n = [v for v in idle if v is not None]
        peak_n = [v for v in peak if v is not None]
        rows.append(_row(g, "RSS per worker, idle ≤ 100 MB", max(idle_n) if idle_n else None, 100.0, False, "MB",
                         "largest of %d worker(s)" % (len(idle_n),) if idle_n else "", why))
        rows.append(_row(g, "RSS per worker, peak ≤ 250 MB", max(peak_n) if peak_n else None, 250.0, False, "MB",
                         "largest of %d worker(s)" % (len(peak_n),) if peak_n else "", why))
    results["targets"] = rows
    return rows


# --------------------------------------------------------------------------
# markdown


def _ops(x: float | None) -> str:
    if x is None:
        return "–"
    return "%.0f" % (x,) if x >= 100 else "%.1f" % (x,)


def _ms(us: float | None) -> str:
    if us is None:
        return "–"
    ms = us / 1e3
    return "%.2f" % (ms,) if ms < 10 else "%.1f" % (ms,)


def _x(v: float | None) -> str:
    if v is None:
        return ""
    return "%.2f" % (v,) if v < 10 else "%.1f" % (v,)


def marks(s: dict[str, Any]) -> str:
    out = ""
    if not s.get("valid", True):
        out += " †"
    if s.get("wrk_bound"):
        out += " §"
    if (s.get("foreign_cores") or 0) > NOISY:
        out += " ‡"
    return out


def cell_text(cell: dict[str, Any], column: str) -> str:
    s = cell.get("results", {}).get(column)
    if not s:
        return ""
    if not s.get("rps"):
        return "no valid run †"
    text = "**%s**" % (_ops(s["rps"]),)
    if s.get("n_valid", 0) > 1:
        text += " [%s–%s]" % (_ops(s["rps_min"]), _ops(s["rps_max"]))
    text += "<br>%s / %s ms" % (_ms(s.get("p50_us")), _ms(s.get("p99_us")))
    return text + marks(s)


def _table(head: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"] + [
        "| " + " | ".join(r) + " |" for r in rows]


def figures_table(cell_list: list[dict[str, Any]], first: str = "operation") -> list[str]:
    columns = present_columns(cell_list)
    head = [first, "c"] + [LABELS[c] for c in columns]
    rows = []
    for cell in cell_list:
        name = cell["operation"] if first == "operation" else "{:,}".format(cell.get("keys") or 0)
        rows.append([name, str(cell["concurrency"])] + [cell_text(cell, c) for c in columns])
    return _table(head, ["---", "---:"] + ["---:"] * len(columns), rows)


def ratio_table(cell_list: list[dict[str, Any]], label: Any) -> list[str]:
    pairs = [(a, b) for a in ("fs-w1", "fs-w2") for b in PEER_COLUMNS]
    used = [(a, b) for a, b in pairs if any(ratio(c, a, b) is not None for c in cell_list)]
    scale = any(ratio(c, "fs-w2", "fs-w1") is not None for c in cell_list)
    head = ["scenario", "c"] + ["%s / %s" % (SHORT[a], SHORT[b]) for a, b in used] + (["w2 / w1"] if scale else [])
    rows = []
    for cell in cell_list:
        row = [label(cell), str(cell["concurrency"])]
        for a, b in used:
            v = ratio(cell, a, b)
            text = _x(v)
            if v is not None and b == "moto" and a == "fs-w2" and cell["scenario"] in SMALL:
                text = ("**%s**" % (text,)) if v >= 20 else text + " ✗"
            row.append(text)
        if scale:
            row.append(_x(ratio(cell, "fs-w2", "fs-w1")))
        rows.append(row)
    return _table(head, ["---", "---:"] + ["---:"] * (len(used) + (1 if scale else 0)), rows)


def cpu_table(cell_list: list[dict[str, Any]], label: Any) -> list[str]:
    columns = present_columns(cell_list)
    head = ["scenario", "c"] + [SHORT[c] for c in columns] + ["busiest other processes, cores"]
    rows = []
    for cell in cell_list:
        row = [label(cell), str(cell["concurrency"])]
        foreign = 0.0
        for c in columns:
            s = cell.get("results", {}).get(c)
            if not s:
                row.append("")
                continue
            foreign = max(foreign, s.get("foreign_cores") or 0.0)
            us = s.get("cpu_us_per_op")
            row.append("%s µs · %s / %s" % ("%.0f" % us if us else "–",
                                             "%.2f" % s["server_cores"] if s.get("server_cores") is not None
                                             else "–", "%.2f" % (s.get("wrk_cores") or 0.0)))
        row.append("%.2f" % (foreign,))
        rows.append(row)
    return _table(head, ["---", "---:"] + ["---:"] * (len(columns) + 1), rows)


def _label(cell: dict[str, Any]) -> str:
    if cell["scenario"] == "list":
        return "list %s keys" % ("{:,}".format(cell.get("keys") or 0),)
    if cell["scenario"] == "mixed":
        return "mixed 16 KiB"
    return "%s %s" % (cell["scenario"].replace("small-", "").upper().replace("K", " KiB"), cell["operation"])


def _fmt(v: Any, pattern: str = "%.0f") -> str:
    n = _number(v)
    return pattern % (n,) if n is not None else "–"


def large_section(results: dict[str, Any]) -> list[str]:
    large = results.get("large")
    if not large:
        return []
    out = ["## Large objects (benchmarks/large.py)", ""]
    if large.get("error"):
        out += ["**FAILED**: %s" % (large["error"],), ""]
    box = large.get("box_limits")
    if isinstance(box, dict):
        out += ["Box limits (`large.box_limits`): " + ", ".join(
            "%s %s" % (k, "%.0f" % (v,) if isinstance(v, float) else json.dumps(v, default=str))
            for k, v in box.items() if k != "traceback"), ""]
    columns = [c for c in COLUMNS if c in large]
    if columns:
        head = ["target", "PUT 256 MiB MB/s", "GET 256 MiB MB/s", "TTFB 20 MiB p50 / p90 / p99 ms",
                "multipart boto3 MB/s", "multipart cheap MB/s", "RSS per worker idle / peak / after 2 GiB MB",
                "server CPUs / client CPUs"]
        rows = []
        for c in columns:
            res = large[c]
            if res.get("error"):
                rows.append([LABELS[c], "FAILED: %s" % (res["error"][:200],)] + [""] * (len(head) - 2))
                continue
            ttfb = res.get("ttfb_20MiB") or {}
            rss = rss_rows(res)
            rss_text = "<br>".join("%s%s: %s / %s / %s" % (
                pid, " (%s)" % (v["role"],) if v.get("role") else "", _fmt(v.get("idle_MB")),
                _fmt(v.get("peak_MB")), _fmt(v.get("after_2GiB_MB"))) for pid, v in rss.items())
            rows.append([LABELS[c], _fmt(mbps(res, "put_256MiB")), _fmt(mbps(res, "get_256MiB")),
                         "%s / %s / %s" % (_fmt(ttfb.get("p50_ms"), "%.2f"), _fmt(ttfb.get("p90_ms"), "%.2f"),
                                           _fmt(ttfb.get("p99_ms"), "%.2f")),
                         _fmt(mbps(res, "multipart_boto3")), _fmt(mbps(res, "multipart_cheap")),
                         rss_text or "–",
                         "%s / %s" % (",".join(map(str, res.get("server_cpus", []))),
                                      ",".join(map(str, res.get("client_cpus", []))))])
        out += _table(head, ["---"] + ["---:"] * (len(head) - 1), rows) + [""]
    return out


def markdown(results: dict[str, Any], plots: list[Path]) -> str:
    """The whole ``results.md``."""
    args = results.get("args", {})
    machine = results.get("machine", {})
    out = ["# FasterStore benchmark suite, %s" % (results.get("started", "?"),), ""]
    status = results.get("status")
    if results.get("failures"):
        out += ["**BENCHMARK FAILED** (exit status %s):" % (status,), ""]
        out += ["- " + f.splitlines()[0] for f in results["failures"]] + [""]
    out += [
        "- command: `%s`" % (" ".join(str(a) for a in results.get("command", [])),),
        "- mode: %s; %s s per wrk run (listing: at least 3 s), %s round(s) per measurement (median, [min–max] of ops/s), "
        "concurrency %s; scenarios: %s" % (
            "quick (smoke run: small key sets, figures not for publication)" if args.get("quick") else "full",
            _fmt(args.get("duration"), "%g"), args.get("repeat"),
            ", ".join(str(c) for c in args.get("concurrency_list", [])), ", ".join(results.get("scenarios", []))),
        "- machine: %s, %s CPUs usable, %s, kernel %s, Python %s, Twisted %s, %s; commit %s" % (
            machine.get("cpu_model"), machine.get("usable_cpus"), machine.get("memory"), machine.get("kernel"),
            machine.get("python"), machine.get("twisted"), machine.get("wrk"), machine.get("git")),
        "- data dirs on: %s (raw 4 KiB write+fsync p50 %s ms, p99 %s ms)" % (
            machine.get("data_dir_filesystem"), _fmt((results.get("fsync_probe") or {}).get("p50_ms"), "%.2f"),
            _fmt((results.get("fsync_probe") or {}).get("p99_ms"), "%.2f")),
        "- CPU placement: %s" % ((results.get("layout") or {}).get("note", "?"),),
    ]
    quiet = results.get("quiet") or {}
    if quiet:
        out.append("- quiet machine before starting: %s" % (
            "yes (after %.1f s)" % (quiet.get("waited_s", 0),) if quiet.get("quiet")
            else "**NO**: " + quiet.get("warning", "")))
    versions = results.get("peer_versions") or {}
    seen = results.get("targets_seen") or {}
    peer_bits = []
    for c in COLUMNS:
        if c in seen:
            peer_bits.append("%s (%s)" % (LABELS[c], seen[c].get("version") or versions.get(c, "")))
    if peer_bits:
        out.append("- targets: " + "; ".join(peer_bits))
    out += [
        "- FasterStore runs with fsync on (the default). nginx's PUT is WebDAV (temp file, rename, no fsync); "
        "moto checks no signature (it gets the URLs signed for FasterStore); s3rver checks the access key id "
        "and expiry of SigV4 but computes no signature; the floor checks nothing and touches no disk.",
        "- Cells: **median ops/s** [min–max over the rounds], then p50 / p99 latency (wrk's histogram, medians "
        "over the rounds). † a run had non-2xx responses, socket errors or no result (FasterStore, floor, "
        "nginx: a failure; moto, s3rver: recorded); § wrk used ≥ 85%% of its own CPU(s), the client may be the "
        "limit; ‡ everything but the measured server and wrk used more than %.1f cores during a run (that "
        "includes kernel threads such as the journal's, and the other servers' background work, e.g. "
        "FasterStore settling writes after a PUT run)." % (NOISY,),
        "",
    ]

    targets = results.get("targets") or compute_targets(results)
    out += ["## Targets", ""]
    rows = []
    for t in targets:
        met = {True: "met", False: "**NOT met**", None: "not measured"}[t["met"]]
        rows.append([t["group"], t["target"], t.get("measured_text") or t["text"], met, t.get("detail", "")])
    out += _table(["group", "target", "measured", "", "detail"], ["---", "---", "---:", "---", "---"], rows) + [""]

    small = [c for s in SMALL for c in cells(results, s)]
    for scenario, title in (("small-4k", "4 KiB objects"), ("small-64k", "64 KiB objects"),
                            ("mixed", "Mixed: 70% GET / 30% PUT, 16 KiB objects")):
        cl = cells(results, scenario)
        if cl:
            out += ["## %s: ops/s" % (title,), ""] + figures_table(cl) + [""]
    lists = cells(results, "list")
    if lists:
        out += ["## ListObjectsV2 (max-keys 1000): pages/s", ""] + figures_table(lists, first="keys") + [""]
    every = small + lists
    if every:
        out += ["## Ratios: FasterStore / peer (ops/s medians)", "",
                "At or above 20x moto with --workers 2 in bold, below it marked ✗ (the target covers the "
                "small-object and mixed cells).", ""]
        out += ratio_table(every, _label) + [""]
        out += ["## CPU: server µs per request · server cores / wrk cores (medians; wrk: the busiest run)", ""]
        out += cpu_table(every, _label) + [""]
    out += large_section(results)
    notes = results.get("notes") or []
    if notes:
        out += ["## Notes", ""] + ["- " + n for n in notes] + [""]
    problems = []
    for cell in every:
        for column, s in cell.get("results", {}).items():
            if s.get("problems"):
                problems.append("- %s c=%d, %s: %s" % (_label(cell), cell["concurrency"], LABELS[column],
                                                       "; ".join(s["problems"])))
    if problems:
        out += ["## Runs with problems (†)", ""] + problems + [""]
    if plots:
        out += ["## Plots", ""] + ["![%s](%s)" % (p.stem.replace("_", " "), p.name) for p in plots] + [""]
    return "\n".join(out)


# --------------------------------------------------------------------------
# plots


def _size_label(size: float) -> str:
    if size >= 1 << 20:
        return "%g MiB" % (size / (1 << 20),)
    return "%g KiB" % (size / 1024,)


def plot_throughput(results: dict[str, Any], path: Path) -> bool:
    """MB/s of PUT and GET by object size, each target one line; small sizes at the highest concurrency."""
    import matplotlib.pyplot as plt

    small = [c for c in cells(results) if c["scenario"] in ("small-4k", "small-64k")]
    large = results.get("large") or {}
    if not small and not any(isinstance(v, dict) and (v.get("put_256MiB") or v.get("get_256MiB"))
                             for v in large.values()):
        return False
    cmax = max((c["concurrency"] for c in small), default=TARGET_C)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, op in zip(axes, ("PUT", "GET")):
        for column in COLUMNS:
            xs, ys = [], []
            for cell in sorted((c for c in small if c["operation"] == op and c["concurrency"] == cmax),
                               key=lambda c: c["size"]):
                s = figure(cell, column)
                if s:
                    xs.append(cell["size"])
                    ys.append(s["rps"] * cell["size"] / 1e6)
            v = mbps(large.get(column), "%s_256MiB" % (op.lower(),))
            if v:
                xs.append(256 << 20)
                ys.append(v)
            if xs:
                ax.plot(xs, ys, marker="o", label=LABELS[column], color=COLORS[column])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ticks = sorted({c["size"] for c in small} | ({256 << 20} if large else set()))
        if ticks:
            ax.set_xticks(ticks)
            ax.set_xticklabels([_size_label(t) for t in ticks])
        ax.set_title("%s throughput by object size" % (op,))
        ax.set_xlabel("object size (small: wrk c=%d, median; 256 MiB: large.py, one stream)" % (cmax,))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("MB/s (log)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_latency(results: dict[str, Any], path: Path) -> bool:
    """p50 (solid) and p99 (dashed) by concurrency, one panel per size and operation."""
    import matplotlib.pyplot as plt

    panels = [(s, op) for s in ("small-4k", "small-64k") for op in OPS if any(
        c["operation"] == op for c in cells(results, s))]
    panels += [("mixed", "MIXED")] if cells(results, "mixed") else []
    panels += [("list", "LIST")] if cells(results, "list") else []
    if not panels:
        return False
    ncols = 3
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 4.2 * nrows), squeeze=False)
    for ax, (scenario, op) in zip(axes.flat, panels):
        cl = [c for c in cells(results, scenario) if c["operation"] == op]
        if scenario == "list":
            smallest = min(c.get("keys") or 0 for c in cl)
            cl = [c for c in cl if c.get("keys") == smallest]
        cl.sort(key=lambda c: c["concurrency"])
        for column in present_columns(cl):
            found = [(c["concurrency"], figure(c, column)) for c in cl]
            pts = [(x, s) for x, s in found if s and s.get("p50_us") and s.get("p99_us")]
            if not pts:
                continue
            xs = [x for x, _ in pts]
            ax.plot(xs, [s["p50_us"] / 1e3 for _, s in pts], marker="o", color=COLORS[column],
                    label=LABELS[column] + " p50")
            ax.plot(xs, [s["p99_us"] / 1e3 for _, s in pts], marker="x", linestyle="--", color=COLORS[column],
                    label=LABELS[column] + " p99")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        xs_all = sorted({c["concurrency"] for c in cl})
        if xs_all:
            ax.set_xticks(xs_all)
            ax.set_xticklabels([str(x) for x in xs_all])
        if scenario == "list":
            title = "ListObjectsV2, %s keys" % ("{:,}".format(cl[0].get("keys") or 0) if cl else "?",)
        elif scenario == "mixed":
            title = "mixed 70% GET / 30% PUT, 16 KiB"
        else:
            title = "%s %s" % (_size_label(cl[0]["size"]) if cl and cl[0].get("size") else "", op)
        ax.set_title(title)
        ax.set_xlabel("concurrency (wrk connections)")
        ax.set_ylabel("latency, ms (log)")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8)
    fig.suptitle("Latency percentiles by concurrency (solid p50, dashed p99; medians over rounds)")
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(labels) > 6), 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_scaling(results: dict[str, Any], path: Path) -> bool:
    """FasterStore ops/s with 1 and 2 workers per scenario, and the ratio at every concurrency."""
    import matplotlib.pyplot as plt

    cl = [c for c in cells(results) if figure(c, "fs-w1") and figure(c, "fs-w2")]
    if not cl:
        return False
    cmax = max(c["concurrency"] for c in cl)
    top = [c for c in cl if c["concurrency"] == cmax]
    concurrencies = sorted({c["concurrency"] for c in cl})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 5.5))
    labels = [_label(c) for c in top]
    xs = list(range(len(top)))
    w = 0.38
    v1 = [figure(c, "fs-w1")["rps"] for c in top]  # type: ignore[index]
    v2 = [figure(c, "fs-w2")["rps"] for c in top]  # type: ignore[index]
    a1.bar([x - w / 2 for x in xs], v1, w, label=LABELS["fs-w1"], color=COLORS["fs-w1"])
    a1.bar([x + w / 2 for x in xs], v2, w, label=LABELS["fs-w2"], color=COLORS["fs-w2"])
    for x, a, b in zip(xs, v1, v2):
        a1.annotate("%.2fx" % (b / a,), (x, max(a, b)), ha="center", va="bottom", fontsize=8)
    a1.set_yscale("log")
    a1.set_xticks(xs)
    a1.set_xticklabels(labels, rotation=30, ha="right")
    a1.set_ylabel("ops/s (log; median)")
    a1.set_title("FasterStore by worker count, c=%d" % (cmax,))
    a1.legend(fontsize=8)
    a1.grid(True, axis="y", which="both", alpha=0.3)
    names = []
    for c in cl:
        if _label(c) not in names:
            names.append(_label(c))
    width = 0.8 / max(1, len(concurrencies))
    for i, conc in enumerate(concurrencies):
        ys = []
        for name in names:
            match = [c for c in cl if _label(c) == name and c["concurrency"] == conc]
            ys.append(ratio(match[0], "fs-w2", "fs-w1") if match else 0.0)
        a2.bar([j - 0.4 + width * (i + 0.5) for j in range(len(names))], ys, width, label="c=%d" % (conc,))
    a2.axhline(1.0, color="black", linewidth=0.8)
    a2.axhline(2.0, color="gray", linewidth=0.8, linestyle=":")
    a2.set_xticks(list(range(len(names))))
    a2.set_xticklabels(names, rotation=30, ha="right")
    a2.set_ylabel("ops/s with 2 workers / with 1")
    a2.set_title("Scaling from 1 to 2 workers (2 CPUs; wrk shares them at 2 workers)")
    a2.legend(fontsize=8)
    a2.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Every plot there is data for, as PNG files in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    for name, fn in (("throughput_by_size.png", plot_throughput), ("latency_by_concurrency.png", plot_latency),
                     ("scaling_by_workers.png", plot_scaling)):
        path = out_dir / name
        if fn(results, path):
            written.append(path)
    return written


def write_report(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """``results.md`` and the plots into ``out_dir``; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    compute_targets(results)
    written = plots(results, out_dir)
    md = out_dir / "results.md"
    md.write_text(markdown(results, written) + "\n")
    return [md] + written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render a benchmark suite's results.json as results.md and PNGs.")
    parser.add_argument("results", help="results.json written by benchmarks/suite.py")
    parser.add_argument("--out", default=None, help="output directory (default: beside results.json)")
    args = parser.parse_args(argv)
    path = Path(args.results)
    results = json.loads(path.read_text())
    written = write_report(results, Path(args.out) if args.out else path.parent)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
