#!/usr/bin/env bash
# Builds canal with -Dbuildtype=release in build/release and runs the
# benchmarks: the Google Benchmark suite (bench/, canal beside the raw
# primitive) with canal/raw ratios, the server benchmark (bench/, canal::Server
# beside a libuv echo server; built when libuv is found) with canal/libuv
# ratios, then `canal bench` in both modes.
#   scripts/bench.sh                 # default: 1 s minimum per benchmark
#   CANAL_BENCH_MIN_TIME=0.2 CANAL_BENCH_REPETITIONS=3 scripts/bench.sh
# With repetitions the ratios use the median of each benchmark.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh >/dev/null
DIR=build/release
OPTS=(-Dbuildtype=release -Dwerror=true -Dtests=disabled -Dexamples=disabled
      -Dtools=enabled -Dbenchmarks=enabled)
if [[ -f "$DIR/build.ninja" ]]; then
  meson setup --reconfigure "$DIR" "${OPTS[@]}" >/dev/null
else
  meson setup "$DIR" "${OPTS[@]}" >/dev/null
fi
ninja -C "$DIR" bench/canal_benchmark tools/canal/canal >/dev/null
have_server_bench=0
if ninja -C "$DIR" -t query bench/server_benchmark >/dev/null 2>&1; then
  ninja -C "$DIR" bench/server_benchmark >/dev/null
  have_server_bench=1
fi

export CANAL_RUNTIME_DIR="$(mktemp -d)"
chmod 700 "$CANAL_RUNTIME_DIR"
trap 'rm -rf "$CANAL_RUNTIME_DIR"' EXIT
out="$DIR/bench.json"
echo "== Google Benchmark: bench/canal_benchmark (release) =="
"$DIR/bench/canal_benchmark" --benchmark_min_time="${CANAL_BENCH_MIN_TIME:-1}" \
  --benchmark_format=json --benchmark_out="$out" --benchmark_out_format=json \
  --benchmark_enable_random_interleaving=true \
  --benchmark_repetitions="${CANAL_BENCH_REPETITIONS:-1}" >/dev/null
status=0
python3 scripts/bench_ratios.py "$out" || status=$?
if [[ $have_server_bench == 1 ]]; then
  out="$DIR/bench-server.json"
  echo
  echo "== Google Benchmark: bench/server_benchmark (release) =="
  "$DIR/bench/server_benchmark" \
    --benchmark_min_time="${CANAL_BENCH_MIN_TIME:-0.5}" \
    --benchmark_format=json --benchmark_out="$out" \
    --benchmark_out_format=json --benchmark_enable_random_interleaving=true \
    --benchmark_repetitions="${CANAL_BENCH_REPETITIONS:-1}" >/dev/null
  python3 scripts/bench_ratios.py "$out" || status=$?
else
  echo
  echo "(bench/server_benchmark not built: libuv not found)"
fi
echo
echo "== canal bench (the tool) =="
"$DIR/tools/canal/canal" bench --mode byte --size 65536 --duration 1s
"$DIR/tools/canal/canal" bench --mode message --size 4096 --duration 1s
exit $status
