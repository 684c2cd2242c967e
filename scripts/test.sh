#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every canal test: the native suite (g++), the native suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer, and the Win32 backend
# cross-compiled with mingw-w64 and run under Wine. Installs what it needs
# first (scripts/setup.sh). Safe to run twice. Exits non-zero if any leg fails.
#
#   scripts/test.sh            # all legs
#   CANAL_LEGS="native" scripts/test.sh   # a subset: format native asan tsan wine consumer fuzz
#
# Disk: the legs' build trees together take several GiB, more than a fresh
# machine may have free. Once a leg is done its tree is removed (its test log
# stays, for the summary) when less than CANAL_MIN_FREE_MIB (10240) MiB is
# free; CANAL_KEEP_BUILDS=1 keeps every tree, CANAL_KEEP_BUILDS=0 removes each.
# The native test builds keep only line tables of debug information (-g1,
# compressed: -gz); the mingw build keeps none (-g0: its linker cannot
# compress, and even line tables were two thirds of each test program).
# Short of disk, a leg's object files also go once it is built.
#
# The consumer leg (native) builds the projects in tests/consumer/ against a
# fresh clone of this repository: canal as a Meson wrap (the README's
# snippet), installed canal through canal.pc and through its CMake package,
# and canal with Abseil from CMake's package and from its wrap
# (scripts/consumer_test.sh).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh || { echo "test: set-up failed"; exit 1; }

LEGS="${CANAL_LEGS:-format native asan tsan wine consumer fuzz}"
JOBS="${CANAL_JOBS:-$(nproc)}"
export WINEDEBUG="${WINEDEBUG:--all}"
# A Wine prefix of our own: its wineserver serves only this run, so Wine
# processes of other programs on the machine cannot slow or stall ours.
OWN_PREFIX="$ROOT/build/wineprefix"
export WINEPREFIX="${WINEPREFIX:-$OWN_PREFIX}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
# Zero ThreadSanitizer reports allowed; the only suppressions are inside
# Abseil (tests/sanitizers/tsan.supp says why).
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/sanitizers/tsan.supp}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# configure DIR ARGS...: set up a build dir once, reconfigure it afterwards.
configure() {
  local dir="$1"; shift
  if [[ -f "$dir/build.ninja" ]]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
}

free_mib() { df -Pm "$ROOT" | awk 'NR == 2 { print $4 }'; }

# Whether the disk rule above says to remove build trees.
short_of_disk() {
  case "${CANAL_KEEP_BUILDS:-auto}" in
    1) return 1 ;;
    0) return 0 ;;
    *) (( $(free_mib) < ${CANAL_MIN_FREE_MIB:-10240} )) ;;
  esac
}

# drop_objects DIR: once DIR is built, its object files are not needed to
# run the tests; removed when short of disk.
drop_objects() {
  short_of_disk || return 0
  find "$1" -type f \( -name '*.o' -o -name '*.obj' \) -delete
}

# tidy DIR KEEP...: removes DIR's contents but the entries named KEEP, if the
# disk rule above says so.
tidy() {
  local dir="$1"; shift
  short_of_disk || return 0
  [[ -d "$dir" ]] || return 0
  local keep=() name
  for name in "$@"; do keep+=(! -name "$name"); done
  find "$dir" -mindepth 1 -maxdepth 1 "${keep[@]}" -exec rm -rf {} +
  echo "test: removed what $dir built, to free disk ($(free_mib) MiB free now)"
}

declare -A RESULT
failed=0
run_leg() {
  local leg="$1" dir="$2"; shift 2
  echo
  echo "=== canal test leg: $leg ($(free_mib) MiB free) ==="
  local t0=$SECONDS
  if configure "$dir" "$@" && ninja -C "$dir" -j "$JOBS" &&
     drop_objects "$dir" &&
     { meson test -C "$dir" --print-errorlogs --no-rebuild \
         --num-processes "$JOBS" ||
       { [[ "$leg" == wine ]] && python3 scripts/rerun_exit_hangs.py "$dir"; }; }; then
    RESULT[$leg]="ok"
  else
    RESULT[$leg]="FAILED"
    failed=1
  fi
  RESULT[$leg]+=" ($((SECONDS - t0)) s) $(python3 scripts/summarize.py "$dir")"
  tidy "$dir" meson-logs
}

# The consumer leg: each of its checks counts as one test.
run_consumer_leg() {
  echo
  echo "=== canal test leg: consumer ($(free_mib) MiB free) ==="
  local t0=$SECONDS
  if bash scripts/consumer_test.sh build/consumer; then
    RESULT[consumer]="ok"
  else
    RESULT[consumer]="FAILED"
    failed=1
  fi
  RESULT[consumer]+=" ($((SECONDS - t0)) s) $(python3 scripts/summarize.py build/consumer/results)"
  tidy build/consumer results
}

# The format leg: every C++ file as .clang-format says (Google style).
run_format_leg() {
  echo
  echo "=== canal test leg: format ==="
  local t0=$SECONDS
  if bash scripts/check_format.sh; then
    RESULT[format]="ok"
  else
    RESULT[format]="FAILED"
    failed=1
  fi
  RESULT[format]+=" ($((SECONDS - t0)) s)"
}

# The fuzz leg: scripts/fuzz.sh builds the libFuzzer targets with clang and
# runs each for CANAL_FUZZ_SECONDS (15 s); each target counts as one test.
run_fuzz_leg() {
  echo
  echo "=== canal test leg: fuzz ($(free_mib) MiB free) ==="
  local t0=$SECONDS
  if CANAL_JOBS="$JOBS" bash scripts/fuzz.sh; then
    RESULT[fuzz]="ok"
  else
    RESULT[fuzz]="FAILED"
    failed=1
  fi
  RESULT[fuzz]+=" ($((SECONDS - t0)) s) $(python3 scripts/summarize.py build/fuzz/results)"
}

# Line tables only (what a sanitizer's report and a backtrace use),
# compressed: a fraction of the room full debug information takes.
GZ=("-Dc_args=-g1 -gz" "-Dcpp_args=-g1 -gz" -Dc_link_args=-gz
    -Dcpp_link_args=-gz)
for leg in $LEGS; do
  case "$leg" in
    format) run_format_leg ;;
    consumer) run_consumer_leg ;;
    fuzz) run_fuzz_leg ;;
    native) run_leg native build/native -Dwerror=true "${GZ[@]}" ;;
    asan)   run_leg asan build/asan -Dwerror=true -Db_sanitize=address,undefined \
                    -Db_lundef=false -Dbuildtype=debug "${GZ[@]}" ;;
    tsan)   run_leg tsan build/tsan -Dwerror=true -Db_sanitize=thread \
                    -Db_lundef=false -Dbuildtype=debug -Dabsl_from_source=true \
                    -Dbenchmarks=disabled "${GZ[@]}" ;;
    wine)   [[ -d "$WINEPREFIX/drive_c" ]] || wineboot -i >/dev/null 2>&1 || true
            # Start wineserver and Wine's system processes here, with their
            # output on /dev/null: started by the first test instead, they
            # would inherit its stdout and stderr, and Meson would wait for
            # them to close (the test then looks hung at exit).
            wineserver -p </dev/null >/dev/null 2>&1 || true
            wine cmd /c exit </dev/null >/dev/null 2>&1 || true
            run_leg wine build/wine -Dwerror=true --cross-file cross/mingw-w64.ini \
                    -Dc_args=-g0 -Dcpp_args=-g0
            wineserver -k </dev/null >/dev/null 2>&1 || true
            # Only a prefix of our own goes; one the caller named stays.
            [[ "$WINEPREFIX" != "$OWN_PREFIX" ]] || tidy "$WINEPREFIX" ;;
    *) echo "test: unknown leg '$leg'"; exit 2 ;;
  esac
done

echo
echo "=== canal test summary ($(free_mib) MiB free) ==="
for leg in $LEGS; do echo "$leg: ${RESULT[$leg]}"; done
python3 scripts/summarize.py --total $(for leg in $LEGS; do
  case "$leg" in native) echo build/native;; asan) echo build/asan;; tsan) echo build/tsan;;
    wine) echo build/wine;;
    consumer) echo build/consumer/results;;
    fuzz) echo build/fuzz/results;; esac
done)
exit $failed
