#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Counts test results from Meson's testlog.json files.

Each Meson test is a GoogleTest executable; this also adds up the test cases
GoogleTest reports inside them, so that the summary shows cases, skips and
failures, not only executables.

  summarize.py DIR            one line for a build dir
  summarize.py --total DIR..  the closing line 'N passed, N failed, N skipped'
"""
import json
import os
import re
import sys

PASSED = re.compile(r"^\[  PASSED  \] (\d+) tests?", re.M)
SKIPPED = re.compile(r"^\[  SKIPPED \] (\d+) tests?", re.M)
FAILED = re.compile(r"^\[  FAILED  \] (\d+) tests?", re.M)


def count(build_dir):
    passed = failed = skipped = 0
    path = os.path.join(build_dir, "meson-logs", "testlog.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            entry = json.loads(line)
            out = entry.get("stdout") or ""
            result = entry.get("result")
            p = sum(int(x) for x in PASSED.findall(out))
            s = sum(int(x) for x in SKIPPED.findall(out))
            fl = sum(int(x) for x in FAILED.findall(out))
            if p or s or fl:
                passed += p
                skipped += s
                failed += fl
                if result not in ("OK", "SKIP", "EXPECTEDFAIL") and fl == 0:
                    failed += 1  # crashed or timed out after some passes
            elif result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
    return passed, failed, skipped


def main(argv):
    if len(argv) >= 2 and argv[1] == "--total":
        total = [0, 0, 0]
        for d in argv[2:]:
            c = count(d)
            if c is None:
                total[1] += 1  # a leg that never produced results failed
                continue
            for i in range(3):
                total[i] += c[i]
        print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
        return 0
    c = count(argv[1])
    if c is None:
        print("no results")
    else:
        print(f"test cases: {c[0]} passed, {c[1]} failed, {c[2]} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
