#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds canal's libFuzzer targets (fuzz/) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in build/fuzz, and runs each for a bounded time
# from its committed seed corpus (fuzz/corpus/<target>/). Fails on any crash,
# sanitizer report, leak or timeout (-timeout=10 s per input); the input that
# did it is printed in hex and kept in build/fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh                         # every target, 15 s each (about 75 s)
#   CANAL_FUZZ_SECONDS=300 scripts/fuzz.sh fuzz_framing
#
# Results are also written as Meson-style build/fuzz/results/meson-logs/
# testlog.json (one entry per target), which scripts/summarize.py counts.
# New inputs found during a run go to build/fuzz/work/<target>/, never into
# the committed corpus.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECS="${CANAL_FUZZ_SECONDS:-15}"
BUILD="${CANAL_FUZZ_BUILD:-build/fuzz}"
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(fuzz_framing fuzz_meta fuzz_names fuzz_hostile_peer fuzz_shm_ring)

rm -rf "$BUILD/results"  # no stale results if the build fails
CXX_FUZZ="${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14)}"
if [[ -z "$CXX_FUZZ" ]]; then
  echo "fuzz: clang++ not found"; exit 1
fi
opts=(-Dfuzzing=enabled -Dtests=disabled -Dtools=disabled -Dbenchmarks=disabled
      -Dexamples=disabled -Db_sanitize=address,undefined -Db_lundef=false
      -Dbuildtype=debugoptimized -Dcpp_args=-fsanitize=fuzzer-no-link)
if [[ -f "$BUILD/build.ninja" ]]; then
  meson setup --reconfigure "$BUILD" "${opts[@]}" >/dev/null || exit 1
else
  CXX="$CXX_FUZZ" meson setup "$BUILD" "${opts[@]}" || exit 1
fi
ninja -C "$BUILD" -j "${CANAL_JOBS:-$(nproc)}" "${TARGETS[@]/#/fuzz/}" || {
  echo "fuzz: build failed"; exit 1; }

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
results="$BUILD/results/meson-logs"
mkdir -p "$results"
: > "$results/testlog.json"
passed=0 failed=0
for t in "${TARGETS[@]}"; do
  work="$BUILD/work/$t" art="$BUILD/artifacts/$t/"
  rm -rf "$art"; mkdir -p "$work" "$art"
  echo "=== fuzz: $t (${SECS} s) ==="
  t0=$SECONDS
  log="$BUILD/$t.log"
  # Each target makes its private runtime dir below this; removed after.
  tmp="$(mktemp -d /tmp/canal-fuzz.XXXXXX)"
  TMPDIR="$tmp" "$BUILD/fuzz/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="$art" \
      "$work" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  rm -rf "$tmp"
  tail -n 12 "$log" | grep -E '^(#|stat::|Done|INFO: -max_total)' | tail -n 4
  if [[ $rc -eq 0 ]]; then
    result=OK; passed=$((passed + 1))
    echo "fuzz: $t ok ($((SECONDS - t0)) s)"
  else
    result=FAIL; failed=$((failed + 1))
    echo "fuzz: $t FAILED (exit $rc, $((SECONDS - t0)) s); log: $log"
    grep -E 'ERROR|canal fuzz failure|SUMMARY' "$log" | head -n 5
    for f in "$art"*; do
      [[ -f "$f" ]] || continue
      echo "fuzz: $t input $f (hex):"
      od -An -tx1 -v "$f" | tr -d ' \n' | fold -w 128; echo
    done
  fi
  printf '{"name": "fuzz/%s", "result": "%s", "duration": %d, "stdout": ""}\n' \
    "$t" "$result" "$((SECONDS - t0))" >> "$results/testlog.json"
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
