#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds canal with -Dbuildtype=release in build/release and runs both
# Google Benchmark suites (bench/: canal beside a raw Unix socket and libuv,
# canal::Server beside a libuv echo server), each with its defaults, twice in
# this one invocation: unpinned, then with every process on one core
# (`taskset -c 0`). Each benchmark runs CANAL_BENCH_REPETITIONS times (9,
# the least allowed), repetitions randomly interleaved with the other
# benchmarks'. Prints canal's median ratios (canal/raw, canal/libuv) per
# benchmark and placement against the goals (scripts/bench_ratios.py); the
# JSON results stay in build/release/bench-*.json.
#   scripts/bench.sh                  # about 5 minutes on 2 cores
#   CANAL_BENCH_REPETITIONS=15 CANAL_BENCH_MIN_TIME=0.5 scripts/bench.sh
#   CANAL_BENCH_MARKDOWN=1 scripts/bench.sh   # tables in Markdown
# Exits 1 if a goal is missed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

reps="${CANAL_BENCH_REPETITIONS:-9}"
if ! [[ $reps =~ ^[0-9]+$ ]] || (( reps < 9 )); then
  echo "bench.sh: CANAL_BENCH_REPETITIONS must be at least 9 (got $reps):" \
       "fewer give medians too noisy to compare" >&2
  exit 2
fi
# Seconds per repetition: 0.3 unless raised; at least 0.2.
min_time_channel="${CANAL_BENCH_MIN_TIME:-0.3}"
min_time_server="${CANAL_BENCH_MIN_TIME:-0.3}"
if ! python3 -c "import sys; sys.exit(float(sys.argv[1]) < 0.2)" \
    "$min_time_channel"; then
  echo "bench.sh: CANAL_BENCH_MIN_TIME must be at least 0.2" >&2
  exit 2
fi
if ! command -v taskset >/dev/null; then
  echo "bench.sh: taskset (util-linux) is needed for the one-core run" >&2
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
if ! ninja -C "$DIR" -t query bench/canal_benchmark >/dev/null 2>&1; then
  echo "bench.sh: bench/ was not configured (it needs libbenchmark and" \
       "libuv; see scripts/setup.sh)" >&2
  exit 2
fi
ninja -C "$DIR" -j2 bench/canal_benchmark bench/server_benchmark >/dev/null

export CANAL_RUNTIME_DIR="$(mktemp -d)"
chmod 700 "$CANAL_RUNTIME_DIR"
trap 'rm -rf "$CANAL_RUNTIME_DIR"' EXIT

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null |
  sed 's/.*: //')), $(uname -sr), $(. /etc/os-release 2>/dev/null &&
  echo "$PRETTY_NAME"), $(c++ --version | head -1)"
echo "method: canal's defaults vs each baseline's, client and peer in two" \
     "processes (server suite: one), $reps interleaved repetitions of" \
     "${min_time_channel}s/${min_time_server}s, medians"
echo

run() {  # run SUITE MIN_TIME OUT [PREFIX...]
  local suite=$1 min_time=$2 out=$3
  shift 3
  # The console output (absolute times) and the context line on stderr go
  # to a log, shown only if the suite fails; the JSON has everything.
  if ! "$@" "$DIR/bench/$suite" --benchmark_min_time="$min_time" \
      --benchmark_repetitions="$reps" \
      --benchmark_enable_random_interleaving=true \
      --benchmark_report_aggregates_only=true \
      --benchmark_out="$out" --benchmark_out_format=json \
      >"${out%.json}.log" 2>&1; then
    cat "${out%.json}.log" >&2
    echo "bench.sh: $suite failed" >&2
    exit 1
  fi
  if grep -q "ERROR OCCURRED" "${out%.json}.log"; then
    grep "ERROR OCCURRED" "${out%.json}.log" >&2
  fi
}

start=$SECONDS
placements=()
for placement in unpinned pinned; do
  prefix=()
  label=unpinned
  if [[ $placement == pinned ]]; then
    prefix=(taskset -c 0)
    label="taskset -c 0"
  fi
  echo "running ($label)..."
  run canal_benchmark "$min_time_channel" "$DIR/bench-channel-$placement.json" \
    "${prefix[@]}"
  run server_benchmark "$min_time_server" "$DIR/bench-server-$placement.json" \
    "${prefix[@]}"
  files="$DIR/bench-channel-$placement.json,$DIR/bench-server-$placement.json"
  placements+=("$label=$files")
done
echo "ran in $((SECONDS - start)) s"
echo

markdown=()
[[ -n ${CANAL_BENCH_MARKDOWN:-} ]] && markdown=(--markdown)
python3 scripts/bench_ratios.py "${markdown[@]}" "${placements[@]}"
