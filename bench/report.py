#!/usr/bin/env python3
# bench/report.py — turns the per-run results of a benchmark script into a Markdown table:
# median req/s over runs, payload MiB/s, p99 latency, errors, and the ratio to a baseline server.
"""Usage: report.py RESULTS.tsv [--baseline SERVER] [--target TEST SERVER RATIO]...

RESULTS.tsv has one line per wrk run, tab-separated:
    test server run size_bytes requests duration_us errors p50_us p99_us [cpu_us_per_req|-]
(test e.g. "GET 4 KiB", server e.g. "nginx"). Rows keep the order in which tests and servers
first appear. A --target line says whether SERVER reached RATIO x the baseline on TEST.
The CPU column (the servers' user+system time per request) does not depend on how busy the
rest of the machine is, unlike req/s."""
import argparse
import statistics
import sys


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            f = line.rstrip("\n").split("\t")
            test, server, run, size, reqs, dur, errs, p50, p99 = f[:9]
            cpu = f[9] if len(f) > 9 and f[9] != "-" else None
            rows.append({"test": test, "server": server, "run": int(run), "size": int(size),
                         "rps": int(reqs) / (int(dur) / 1e6), "errors": int(errs),
                         "p50": int(p50) / 1000.0, "p99": int(p99) / 1000.0,
                         "cpu": float(cpu) if cpu else None})
    return rows


def summarize(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["test"], r["server"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        rps = [r["rps"] for r in rs]
        out[key] = {"runs": len(rs), "rps": statistics.median(rps), "min": min(rps),
                    "max": max(rps), "mibs": statistics.median(rps) * rs[0]["size"] / 2**20,
                    "p99": statistics.median(r["p99"] for r in rs),
                    "errors": sum(r["errors"] for r in rs),
                    "cpu": statistics.median(r["cpu"] for r in rs)
                    if all(r["cpu"] is not None for r in rs) else None}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--baseline", default="nginx")
    ap.add_argument("--target", nargs=3, action="append", default=[],
                    metavar=("TEST", "SERVER", "RATIO"))
    a = ap.parse_args()
    rows = load(a.results)
    if not rows:
        print("report: no results in %s" % a.results, file=sys.stderr)
        return 1
    summary = summarize(rows)
    tests, servers = [], []
    for r in rows:
        if r["test"] not in tests:
            tests.append(r["test"])
        if r["server"] not in servers:
            servers.append(r["server"])
    print("| test | server | runs | req/s (median) | req/s (min-max) | MiB/s | p99 ms | errors "
          "| vs %s | server CPU µs/req |" % a.baseline)
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in tests:
        base = summary.get((t, a.baseline))
        for s in servers:
            v = summary.get((t, s))
            if v is None:
                continue
            ratio = "%.2f" % (v["rps"] / base["rps"]) if base and s != a.baseline else "-"
            cpu = "%.1f" % v["cpu"] if v["cpu"] is not None else "-"
            print("| %s | %s | %d | %.0f | %.0f-%.0f | %.1f | %.2f | %d | %s | %s |"
                  % (t, s, v["runs"], v["rps"], v["min"], v["max"], v["mibs"], v["p99"],
                     v["errors"], ratio, cpu))
    rc = 0
    for test, server, ratio in a.target:
        v, base = summary.get((test, server)), summary.get((test, a.baseline))
        if v is None or base is None:
            print("\ntarget %s: %s >= %s x %s: no figures" % (test, server, ratio, a.baseline))
            rc = 1
            continue
        got = v["rps"] / base["rps"]
        verdict = "met" if got >= float(ratio) else "NOT met"
        print("\ntarget %s: %s >= %s x %s: %.3f, %s" % (test, server, ratio, a.baseline, got,
                                                       verdict))
    if any(v["errors"] for v in summary.values()):
        print("\nwarning: some runs had errors (status >= 400, socket errors or timeouts)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
