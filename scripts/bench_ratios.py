#!/usr/bin/env python3
"""Pairs canal and raw results from bench/canal_benchmark's JSON output and
prints canal/raw ratios against the goals.

  bench_ratios.py RESULTS.json

Benchmarks are named "<Name>/canal/<arg>" and "<Name>/raw/<arg>". Throughput
rows compare bytes_per_second (ByteThroughput) or items_per_second; latency
rows (RoundTrip, Call) compare the time per iteration. Exits 1 if a goal is
missed.
"""
import json
import sys

# name -> (metric, goal description, predicate on the ratio)
GOALS = {
    "ByteThroughput": ("bytes_per_second", ">= 0.90", lambda r: r >= 0.90),
    "MessageRate": ("items_per_second", ">= 0.80", lambda r: r >= 0.80),
    "RoundTrip": ("real_time", "<= 1.15", lambda r: r <= 1.15),
    "Call": ("items_per_second", "(no goal)", None),
}


def human(metric, value):
    if metric == "bytes_per_second":
        return f"{value / 2**20:10.1f} MiB/s"
    if metric == "items_per_second":
        return f"{value:10.0f} /s   "
    return f"{value / 1000:10.2f} us    "


def main(argv):
    with open(argv[1], encoding="utf-8") as f:
        data = json.load(f)
    # With --benchmark_repetitions, use the median of the repetitions.
    medians = any(b.get("aggregate_name") == "median" for b in data["benchmarks"])
    results = {}
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            continue
        if medians and b.get("aggregate_name") != "median":
            continue
        if not medians and b.get("run_type", "iteration") != "iteration":
            continue
        parts = b.get("run_name", b["name"]).split("/")
        if len(parts) < 3:
            continue
        results[(parts[0], parts[1], parts[2])] = b
    missed = 0
    print(f"{'benchmark':<24} {'canal':>16} {'raw':>16} {'canal/raw':>9}  goal")
    for (name, side, arg), canal in sorted(results.items()):
        if side != "canal" or (name, "raw", arg) not in results:
            continue
        raw = results[(name, "raw", arg)]
        metric, goal, ok = GOALS.get(name, ("items_per_second", "", None))
        c = canal[metric]
        r = raw[metric]
        if metric == "real_time":  # ns per iteration
            unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
            c *= unit[canal.get("time_unit", "ns")]
            r *= unit[raw.get("time_unit", "ns")]
        ratio = c / r if r else float("nan")
        verdict = ""
        if ok is not None:
            verdict = "ok" if ok(ratio) else "MISSED"
            missed += 0 if ok(ratio) else 1
        print(f"{name + '/' + arg:<24} {human(metric, c):>16} "
              f"{human(metric, r):>16} {ratio:8.2f}x  {goal} {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
