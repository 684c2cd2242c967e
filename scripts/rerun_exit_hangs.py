#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reruns, once, Wine tests that hung at process exit after passing.

Under Wine a test process very occasionally hangs in ExitProcess after
GoogleTest has printed "[  PASSED  ]" for every case (seen only while
wineserver was heavily loaded; see docs/semantics.md, "Wine"). Meson then
reports a TIMEOUT although every case passed. This script finds exactly
those results in BUILD_DIR/meson-logs/testlog.json, reruns those tests once,
merges the new results into testlog.json and exits 0 only if nothing else
failed and every rerun passed. Any other failure, or a hang before
"[  PASSED  ]", is never rerun.

  rerun_exit_hangs.py BUILD_DIR
"""
import json
import os
import subprocess
import sys


def load(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [json.loads(line) for line in f if line.strip()]


def short_name(entry):
    # "canal:conformance / conformance/peek" -> "conformance/peek"
    return entry["name"].split(" / ", 1)[-1]


def main(argv):
    build = argv[1]
    log = os.path.join(build, "meson-logs", "testlog.json")
    entries = load(log)
    bad = [e for e in entries if e.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL")]
    if not bad:
        return 0
    hung = [e for e in bad if e.get("result") == "TIMEOUT"
            and "[  PASSED  ]" in (e.get("stdout") or "")
            and "[  FAILED  ]" not in (e.get("stdout") or "")]
    if len(hung) != len(bad):
        return 1
    names = [short_name(e) for e in hung]
    print("test: rerunning once, hung at exit after every case passed: "
          + ", ".join(names))
    rc = subprocess.call(["meson", "test", "-C", build, "--print-errorlogs",
                          "--no-rebuild"] + names)
    rerun = {e["name"]: e for e in load(log)}
    merged = [rerun.get(e["name"], e) for e in entries]
    with open(log, "w", encoding="utf-8") as f:
        for e in merged:
            f.write(json.dumps(e) + "\n")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
