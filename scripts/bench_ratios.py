#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Prints canal's ratios to its baselines from Google Benchmark JSON output
of bench/canal_benchmark (baselines "raw" and "libuv") and
bench/server_benchmark (baseline "libuv"), one table per placement, against
the goals.

  bench_ratios.py [--markdown] LABEL=RESULTS.json[,RESULTS.json...] ...

e.g. bench_ratios.py unpinned=a.json,b.json "taskset -c 0"=c.json,d.json

Benchmarks are named "<Name>/<side>/<arg>" (side: canal, raw or libuv).
Each ratio is canal's median over the repetitions divided by the
baseline's median (the plain value when a run has no repetitions).
Throughput rows compare bytes_per_second (ByteThroughput and
ServerByteThroughput) or items_per_second; latency rows compare the p50_us
and p99_us counters, or the time per iteration ("mean"). The "cv" column is
the largest coefficient of variation over the repetitions among the sides
of the row: where it is large, the medians, and so the ratio, are not to be
trusted. Exits 1 if a goal is missed.
"""
import json
import sys

# Goals: "at least" for rates, "at most" for latencies.
AT_LEAST, AT_MOST = ">=", "<="

# The rows of a table: (label, name, arg, metric, {baseline: goal}), where a
# goal is (AT_LEAST or AT_MOST, value), or None for a row without one.
CHANNEL_ROWS = [
    ("byte-mode throughput, 64 B writes", "ByteThroughput", "64",
     "bytes_per_second", {}),
    ("byte-mode throughput, 4 KiB writes", "ByteThroughput", "4096",
     "bytes_per_second", {"raw": (AT_LEAST, 0.95), "libuv": (AT_LEAST, 1.0)}),
    ("byte-mode throughput, 64 KiB writes", "ByteThroughput", "65536",
     "bytes_per_second", {"raw": (AT_LEAST, 0.95), "libuv": (AT_LEAST, 1.0)}),
    ("64 B messages, messages/s", "MessageRate", "64", "items_per_second",
     {"raw": (AT_LEAST, 0.95), "libuv": (AT_LEAST, 1.0)}),
    ("4 KiB messages, messages/s", "MessageRate", "4096", "items_per_second",
     {}),
    ("round trip 64 B, p50", "RoundTrip", "64", "p50_us",
     {"raw": (AT_MOST, 1.05), "libuv": (AT_MOST, 1.0)}),
    ("round trip 64 B, p99", "RoundTrip", "64", "p99_us", {}),
    ("round trip 64 B, mean", "RoundTrip", "64", "real_time", {}),
    ("Call (connect + transact + close), calls/s", "Call", "64",
     "items_per_second", {}),
]
SERVER_ROWS = [
    ("request/reply, 1 client, rate", "ServerRoundTrip", "1",
     "items_per_second", {"libuv": (AT_LEAST, 1.0)}),
    ("request/reply, 1 client, p50", "ServerRoundTrip", "1", "p50_us",
     {"libuv": (AT_MOST, 1.10)}),
    ("request/reply, 1 client, p99", "ServerRoundTrip", "1", "p99_us",
     {"libuv": (AT_MOST, 1.10)}),
    ("request/reply, 16 clients, rate", "ServerRoundTrip", "16",
     "items_per_second", {"libuv": (AT_LEAST, 1.0)}),
    ("request/reply, 16 clients, p50", "ServerRoundTrip", "16", "p50_us",
     {"libuv": (AT_MOST, 1.10)}),
    ("request/reply, 16 clients, p99", "ServerRoundTrip", "16", "p99_us",
     {"libuv": (AT_MOST, 1.10)}),
    ("request/reply, 256 clients, rate", "ServerRoundTrip", "256",
     "items_per_second", {"libuv": (AT_LEAST, 1.0)}),
    ("request/reply, 256 clients, p50", "ServerRoundTrip", "256", "p50_us",
     {"libuv": (AT_MOST, 1.10)}),
    ("request/reply, 256 clients, p99", "ServerRoundTrip", "256", "p99_us",
     {"libuv": (AT_MOST, 1.10)}),
    ("byte-mode echo, 1 client, 64 KiB writes", "ServerByteThroughput", "1",
     "bytes_per_second", {"libuv": (AT_LEAST, 1.0)}),
    ("byte-mode echo, 16 clients, 64 KiB writes", "ServerByteThroughput",
     "16", "bytes_per_second", {"libuv": (AT_LEAST, 1.0)}),
]
TABLES = [
    ("channels: canal vs a raw Unix socket and libuv (bench/canal_benchmark)",
     CHANNEL_ROWS, ("raw", "libuv")),
    ("canal::Server vs a libuv echo server (bench/server_benchmark)",
     SERVER_ROWS, ("libuv",)),
]
UNIT_NS = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}


def load(paths):
    """(name, side, arg) -> the median run (or the only run), and
    (name, side, arg) -> the coefficient-of-variation run, if any."""
    results = {}
    cvs = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        runs = data["benchmarks"]
        medians = any(b.get("aggregate_name") == "median" for b in runs)
        for b in runs:
            if b.get("error_occurred"):
                continue
            parts = b.get("run_name", b["name"]).split("/")
            if b.get("aggregate_name") == "cv" and len(parts) >= 3:
                cvs[(parts[0], parts[1], parts[2])] = b
            if medians and b.get("aggregate_name") != "median":
                continue
            if not medians and b.get("run_type", "iteration") != "iteration":
                continue
            if len(parts) >= 3:
                results[(parts[0], parts[1], parts[2])] = b
    return results, cvs


def value(run, metric):
    if metric == "real_time":
        return run["real_time"] * UNIT_NS[run.get("time_unit", "ns")]
    return run.get(metric)


def judge(ratio, goal):
    if goal is None or ratio is None:
        return ""
    op, bound = goal
    return "yes" if (ratio >= bound if op == AT_LEAST else ratio <= bound) \
        else "MISSED"


def spread(cvs, key, metric):
    """The coefficient of variation of `metric` over the repetitions."""
    run = cvs.get(key)
    if run is None:
        return None
    # Google Benchmark gives the CV of the time in the time fields and of
    # each counter in the counter's field.
    return run.get("real_time" if metric == "real_time" else metric)


def print_table(title, rows, baselines, results, cvs, markdown, tally):
    present = [r for r in rows
               if any((r[1], b, r[2]) in results for b in baselines)]
    if not present:
        return
    header = ["benchmark"]
    for b in baselines:
        header += [f"canal/{b}", "goal", "met?"]
    header.append("cv")
    lines = []
    for label, name, arg, metric, goals in present:
        canal = results.get((name, "canal", arg))
        cells = [label]
        worst = None
        for side in ("canal",) + tuple(baselines):
            cv = spread(cvs, (name, side, arg), metric)
            if cv is not None:
                worst = cv if worst is None else max(worst, cv)
        for b in baselines:
            other = results.get((name, b, arg))
            ratio = None
            if canal is not None and other is not None:
                c, o = value(canal, metric), value(other, metric)
                if c is not None and o:
                    ratio = c / o
            goal = goals.get(b)
            verdict = judge(ratio, goal)
            if verdict:
                tally[verdict] = tally.get(verdict, 0) + 1
            cells += ["n/a" if ratio is None else f"{ratio:.2f}x",
                      f"{goal[0]} {goal[1]:.2f}" if goal else "none",
                      verdict or "-"]
        cells.append("-" if worst is None else f"{100 * worst:.0f}%")
        lines.append(cells)
    if markdown:
        print(f"{title}\n")
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
        print()
        return
    widths = [max(len(str(row[i])) for row in [header] + lines)
              for i in range(len(header))]
    print(title)
    for row in [header] + lines:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    print()


def main(argv):
    markdown = False
    placements = []
    for arg in argv[1:]:
        if arg == "--markdown":
            markdown = True
        elif "=" in arg:
            label, files = arg.split("=", 1)
            placements.append((label, files.split(",")))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    if not placements:
        print(__doc__, file=sys.stderr)
        return 2
    missed = 0
    for label, files in placements:
        results, cvs = load(files)
        tally = {}
        print(("### " if markdown else "== ") + f"placement: {label}" +
              ("" if markdown else " ==") + "\n")
        for title, rows, baselines in TABLES:
            print_table(title, rows, baselines, results, cvs, markdown,
                        tally)
        met = tally.get("yes", 0)
        miss = tally.get("MISSED", 0)
        print(f"goals met: {met} of {met + miss} ({label})\n")
        missed += miss
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
