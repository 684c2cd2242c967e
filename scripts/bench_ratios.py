#!/usr/bin/env python3
"""Pairs canal and baseline results from the JSON output of
bench/canal_benchmark (baseline "raw") or bench/server_benchmark (baseline
"libuv") and prints canal/baseline ratios against the goals.

  bench_ratios.py RESULTS.json

Benchmarks are named "<Name>/canal/<arg>" and "<Name>/<baseline>/<arg>".
Throughput rows compare bytes_per_second (ByteThroughput) or
items_per_second; latency rows (RoundTrip, Call) compare the time per
iteration; for the server benchmarks, extra rows compare the latency
counters (p50_us, p99_us). Exits 1 if a goal is missed.
"""
import json
import sys

# name -> (metric, goal description, predicate on the ratio)
GOALS = {
    "ByteThroughput": ("bytes_per_second", ">= 0.90", lambda r: r >= 0.90),
    "MessageRate": ("items_per_second", ">= 0.80", lambda r: r >= 0.80),
    "RoundTrip": ("real_time", "<= 1.15", lambda r: r <= 1.15),
    "Call": ("items_per_second", "(no goal)", None),
    # bench/server_benchmark: canal::Server beside a libuv echo server.
    "ServerRoundTrip": ("items_per_second", ">= 1.00", lambda r: r >= 1.00),
    "ServerByteThroughput": ("bytes_per_second", ">= 1.00",
                             lambda r: r >= 1.00),
}

# name -> [(counter, goal description, predicate on the ratio)]: extra rows.
COUNTER_GOALS = {
    "ServerRoundTrip": [
        ("p50_us", "<= 1.10", lambda r: r <= 1.10),
        ("p99_us", "<= 1.10", lambda r: r <= 1.10),
    ],
}

# The sides canal is compared with, in the order their tables are printed.
BASELINES = ("raw", "libuv")


def human(metric, value):
    if metric == "bytes_per_second":
        return f"{value / 2**20:10.1f} MiB/s"
    if metric == "items_per_second":
        return f"{value:10.0f} /s   "
    if metric.endswith("_us"):
        return f"{value:10.2f} us    "
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

    def row(label, metric, c, r, goal, ok):
        nonlocal missed
        ratio = c / r if r else float("nan")
        verdict = ""
        if ok is not None:
            verdict = "ok" if ok(ratio) else "MISSED"
            missed += 0 if ok(ratio) else 1
        print(f"{label:<24} {human(metric, c):>16} "
              f"{human(metric, r):>16} {ratio:8.2f}x  {goal} {verdict}")

    first = True
    for base in BASELINES:
        pairs = [(key, canal) for key, canal in sorted(results.items())
                 if key[1] == "canal" and (key[0], base, key[2]) in results]
        if not pairs:
            continue
        if not first:
            print()
        first = False
        print(f"{'benchmark':<24} {'canal':>16} {base:>16} "
              f"{'canal/' + base:>9}  goal")
        for (name, _, arg), canal in pairs:
            other = results[(name, base, arg)]
            metric, goal, ok = GOALS.get(name, ("items_per_second", "", None))
            c = canal[metric]
            r = other[metric]
            if metric == "real_time":  # ns per iteration
                unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}
                c *= unit[canal.get("time_unit", "ns")]
                r *= unit[other.get("time_unit", "ns")]
            row(name + "/" + arg, metric, c, r, goal, ok)
            for counter, cgoal, cok in COUNTER_GOALS.get(name, []):
                if counter in canal and counter in other:
                    row(f"{name}/{arg} {counter[:-3]}", counter, canal[counter],
                        other[counter], cgoal, cok)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
