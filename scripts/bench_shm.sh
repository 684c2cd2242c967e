#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds canal with -Dbuildtype=release in build/release and runs
# bench/shm_benchmark once: canal's shared-memory transport ("shm") beside
# its pipe transport ("pipe"), a raw Unix socket pair with its defaults
# ("raw") and a reference shared-memory ring without canal code ("ring",
# bench/raw/ref_ring.h), each connection's two ends in two processes. One
# invocation runs every case of every side CANAL_BENCH_REPETITIONS times (9,
# the least allowed), in a new random order each repetition, and prints the
# medians as ratios to raw against the goals for shm:
#   (a) 64 B writes one way, message mode and byte mode, writes/s  >= 3x raw
#   (b) 64 B round trip, both processes on one core, p50            <= 0.6x
#   (c) 64 B round trip, unpinned, p50                              <= 0.25x
#   (d) 64 KiB byte-mode writes one way, bytes/s                    >= 1.3x
# and the CPU time per round trip (both processes) with the default 50 us
# spin against spin 0. Linux only.
#   scripts/bench_shm.sh                 # about 2 minutes
#   CANAL_BENCH_REPETITIONS=15 CANAL_BENCH_MIN_TIME=0.5 scripts/bench_shm.sh
# Exits 1 if a goal is missed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "$(uname -s)" != Linux ]]; then
  echo "bench_shm.sh: Linux only (memfd, futex, sched_setaffinity)" >&2
  exit 2
fi
reps="${CANAL_BENCH_REPETITIONS:-9}"
if ! [[ $reps =~ ^[0-9]+$ ]] || (( reps < 9 )); then
  echo "bench_shm.sh: CANAL_BENCH_REPETITIONS must be at least 9 (got $reps):" \
       "fewer give medians too noisy to compare" >&2
  exit 2
fi
# Seconds per case, side and repetition: 0.3 unless raised; at least 0.2.
min_time="${CANAL_BENCH_MIN_TIME:-0.3}"
if ! python3 -c "import sys; sys.exit(float(sys.argv[1]) < 0.2)" \
    "$min_time"; then
  echo "bench_shm.sh: CANAL_BENCH_MIN_TIME must be at least 0.2" >&2
  exit 2
fi

bash scripts/setup.sh >/dev/null
DIR=build/release
OPTS=(-Dbuildtype=release -Dwerror=true -Dtests=disabled -Dexamples=disabled
      -Dtools=enabled -Dbenchmarks=enabled)
if [[ -f "$DIR/build.ninja" ]]; then
  meson setup --reconfigure "$DIR" "${OPTS[@]}" >/dev/null
else
  meson setup "$DIR" "${OPTS[@]}" >/dev/null
fi
if ! ninja -C "$DIR" -t query bench/shm_benchmark >/dev/null 2>&1; then
  echo "bench_shm.sh: bench/ was not configured (it needs libbenchmark;" \
       "see scripts/setup.sh)" >&2
  exit 2
fi
ninja -C "$DIR" -j2 bench/shm_benchmark >/dev/null

export CANAL_RUNTIME_DIR="$(mktemp -d)"
chmod 700 "$CANAL_RUNTIME_DIR"
trap 'rm -rf "$CANAL_RUNTIME_DIR"' EXIT

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null |
  sed 's/.*: //')), $(uname -sr), $(. /etc/os-release 2>/dev/null &&
  echo "$PRETTY_NAME"), $(c++ --version | head -1)"
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" \
     "(a shared machine: other work competes for the cores)"
echo
"$DIR/bench/shm_benchmark" --repetitions "$reps" --min_time "$min_time"
