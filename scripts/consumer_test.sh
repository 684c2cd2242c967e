#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds and runs the consumer projects in tests/consumer/ against a fresh
# clone of this repository (its committed HEAD, so uncommitted changes are
# not in it):
#  1. wrap:      canal as a Meson subproject, through a subprojects/canal.wrap
#                that is the README's snippet with its `url` pointed at the
#                clone (file://);
#  2. pkgconfig: canal built alone, installed into a prefix, and found
#                through canal.pc;
#  3. cmake:     the same install, found by find_package(canal CONFIG) and
#                linked as canal::canal;
#  4. absl-cmake: canal built with pkg-config unable to find Abseil, so that
#                it takes CMake's absl package (the demo links and runs);
#  5. absl-wrap: canal built with Abseil from its wrap, installed into a
#                second prefix, and the pkg-config and CMake consumers built
#                against that prefix alone.
# Each check is one line in build/consumer/results/meson-logs/testlog.json
# (Meson's format) for scripts/summarize.py.
#   scripts/consumer_test.sh [BUILD_DIR]   (default build/consumer)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
B="$(realpath -m "${1:-build/consumer}")"
JOBS="${CANAL_JOBS:-$(nproc)}"
say() { echo "consumer: $*"; }

# Everything is rebuilt from scratch: the clone, prefixes and build dirs.
rm -rf "$B"
mkdir -p "$B/results/meson-logs"
RESULTS="$B/results/meson-logs/testlog.json"
: > "$RESULTS"
failed=0
# check NAME COMMAND...: runs one check, logs it, records its result.
check() {
  local name="$1"; shift
  local t0=$SECONDS log="$B/$name.log" result=OK
  say "$name: $*"
  # A subshell outside any condition, so that set -e stops it at the first
  # failing command.
  set +e
  (set -e; "$@") >"$log" 2>&1
  local rc=$?
  set -e
  if (( rc != 0 )); then
    result=FAIL
    failed=1
    say "$name FAILED; its log ($log):"
    tail -n 60 "$log"
  else
    say "$name ok ($((SECONDS - t0)) s)"
  fi
  printf '{"name": "consumer/%s", "result": "%s", "duration": %d, "stdout": ""}\n' \
    "$name" "$result" "$((SECONDS - t0))" >> "$RESULTS"
}

# The clone. Its default branch is also called main, the revision the
# README's wrap names (in a clone of canal's own repository it already is).
CLONE="$B/canal"
git clone --quiet --no-local "$ROOT" "$CLONE"
git -C "$CLONE" checkout --quiet -B main
# Offline, Abseil's source comes from Debian's tarball (scripts/setup.sh);
# it is git-ignored, so the clone gets a copy.
ABSL_TARBALL=subprojects/packagefiles/abseil_20220623.1.orig.tar.gz
if [[ -f "$ABSL_TARBALL" ]]; then
  mkdir -p "$CLONE/subprojects/packagefiles"
  cp "$ABSL_TARBALL" "$CLONE/subprojects/packagefiles/"
fi
say "cloned $(git -C "$CLONE" log -1 --format='%h %s') into $CLONE"

# A consumer project: tests/consumer/KIND plus consumer_main.cc.
project_copy() {  # project_copy KIND DEST
  cp -r "tests/consumer/$1" "$2"
  cp tests/consumer/consumer_main.cc "$2/"
}

# --- 1. The README's wrap snippet --------------------------------------------
wrap_consumer() {
  local src="$B/src/wrap"
  mkdir -p "$B/src"
  project_copy wrap "$src"
  mkdir -p "$src/subprojects"
  # The ```ini block that follows "# subprojects/canal.wrap" in README.md,
  # with only its url line changed.
  python3 - "$ROOT/README.md" "file://$CLONE" > "$src/subprojects/canal.wrap" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"```ini\n# subprojects/canal\.wrap\n(.*?)```", text, re.S)
if not m:
    sys.exit("README.md has no ```ini block starting with # subprojects/canal.wrap")
snippet, n = re.subn(r"(?m)^url = .*$", "url = " + sys.argv[2], m.group(1))
if n != 1:
    sys.exit("the README's wrap snippet has no single url line")
sys.stdout.write(snippet)
EOF
  cat "$src/subprojects/canal.wrap"
  meson setup "$B/wrap" "$src"
  ninja -C "$B/wrap" -j "$JOBS"
  # As a subproject canal builds only its library: no tests, tools or demo.
  meson introspect --targets "$B/wrap" | python3 -c '
import json, sys
names = sorted({t["name"] for t in json.load(sys.stdin)})
extra = [n for n in names if n not in ("consumer", "canal")]
print("targets:", " ".join(names))
sys.exit("canal as a subproject built more than its library: %s" % extra if extra else 0)'
  meson test -C "$B/wrap" --print-errorlogs
}

# --- 2 and 3. Installed canal: canal.pc and the CMake package ---------------
install_canal() {  # install_canal BUILD PREFIX MESON_ARGS...
  local build="$1" prefix="$2"; shift 2
  meson setup "$build" "$CLONE" --prefix="$prefix" --libdir=lib \
    -Dtests=disabled -Dtools=disabled -Dbenchmarks=disabled \
    -Dexamples=disabled -Dwerror=true "$@"
  ninja -C "$build" -j "$JOBS"
  meson install -C "$build"
  local f
  for f in include/canal/canal.h include/canal/version.h lib/libcanal.a \
           lib/pkgconfig/canal.pc lib/cmake/canal/canalConfig.cmake \
           lib/cmake/canal/canalConfigVersion.cmake; do
    [[ -e "$prefix/$f" ]] || { echo "not installed: $f"; return 1; }
  done
  if compgen -G "$build/tests/*" >/dev/null || [[ -e "$build/tools/canal/canal" ]]; then
    echo "-Dtests/-Dtools=disabled still built tests or tools"; return 1
  fi
  cat "$prefix/lib/pkgconfig/canal.pc"
}

system_install() {
  install_canal "$B/build-system" "$B/prefix-system"
  grep -q '^Requires:.*absl_status' "$B/prefix-system/lib/pkgconfig/canal.pc" ||
    { echo "canal.pc does not require Abseil"; return 1; }
}

pkgconfig_consumer() {  # pkgconfig_consumer PREFIX NAME [PKG_CONFIG_LIBDIR]
  local prefix="$1" name="$2" src="$B/src/pkgconfig-$2"
  project_copy pkgconfig "$src"
  if [[ -n "${3:-}" ]]; then
    # Only this prefix's .pc files: nothing can come from the system.
    PKG_CONFIG_LIBDIR="$prefix/lib/pkgconfig" meson setup "$B/$name" "$src"
  else
    PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
      meson setup "$B/$name" "$src"
  fi
  ninja -C "$B/$name" -j "$JOBS"
  meson test -C "$B/$name" --print-errorlogs
}

cmake_consumer() {  # cmake_consumer PREFIX NAME
  local prefix="$1" name="$2" src="$B/src/cmake-$2"
  project_copy cmake "$src"
  cmake -S "$src" -B "$B/$name" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror"
  cmake --build "$B/$name" -j "$JOBS"
  (cd "$B/$name" && ctest --output-on-failure)
}

# --- 4. Abseil from CMake's absl package --------------------------------------
absl_cmake() {
  local nopc="$B/no-pkg-config"
  mkdir -p "$nopc"
  # pkg-config finds nothing here, so meson.build falls back to CMake.
  PKG_CONFIG_LIBDIR="$nopc" meson setup "$B/build-absl-cmake" "$CLONE" \
    -Dtests=disabled -Dtools=disabled -Dbenchmarks=disabled \
    -Dexamples=enabled -Dwerror=true
  grep -q "Message: Abseil from cmake" "$B/build-absl-cmake/meson-logs/meson-log.txt" ||
    { echo "Abseil did not come from CMake's absl package"; return 1; }
  ninja -C "$B/build-absl-cmake" -j "$JOBS" examples/canal_demo
  "$B/build-absl-cmake/examples/canal_demo"
}

# --- 5. Abseil from the wrap, installed beside canal ---------------------------
wrap_install() {
  install_canal "$B/build-absl-wrap" "$B/prefix-absl-wrap" -Dabsl_from_source=true
  grep -q "Message: Abseil from abseil-cpp" "$B/build-absl-wrap/meson-logs/meson-log.txt" ||
    { echo "Abseil did not come from the wrap"; return 1; }
  local pc="$B/prefix-absl-wrap/lib/pkgconfig/canal.pc"
  grep -q '^Libs.*-lcanal_absl' "$pc" ||
    { echo "canal.pc does not name libcanal_absl"; return 1; }
  if grep -q '^Requires' "$pc"; then echo "canal.pc requires packages"; return 1; fi
  for f in lib/libcanal_absl.a include/absl/status/statusor.h include/absl/base/config.h; do
    [[ -e "$B/prefix-absl-wrap/$f" ]] || { echo "not installed: $f"; return 1; }
  done
}

check wrap wrap_consumer
check install system_install
check pkgconfig pkgconfig_consumer "$B/prefix-system" pkgconfig
check cmake cmake_consumer "$B/prefix-system" cmake
check absl-cmake absl_cmake
check absl-wrap-install wrap_install
check absl-wrap-pkgconfig pkgconfig_consumer "$B/prefix-absl-wrap" pkgconfig-absl-wrap only
check absl-wrap-cmake cmake_consumer "$B/prefix-absl-wrap" cmake-absl-wrap
exit $failed
