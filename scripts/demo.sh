#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds and runs the canal demo (examples/demo.cc: two processes talking
# over a canal pipe) and builds the `canal` tool, on Debian bookworm.
# Installs only what that needs: a compiler, Meson, Ninja, pkg-config,
# Abseil, and the header-only CLI11 and nlohmann-json the tool uses. The
# tests need more; scripts/test.sh installs the rest.
# Safe to run again: it only does what is not done yet.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD=build/demo
JOBS="${CANAL_JOBS:-$(nproc)}"
say() { echo "demo: $*"; }
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi

PKGS=(g++ meson ninja-build pkg-config libabsl-dev libcli11-dev nlohmann-json3-dev)
want=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
done
if (( ${#want[@]} )); then
  say "installing ${want[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${want[@]}"
else
  say "packages: ${PKGS[*]} (all installed already)"
fi

# Only the library, the demo and the tool: no tests, no benchmarks.
opts=(-Dtests=disabled -Dbenchmarks=disabled -Dexamples=enabled -Dtools=enabled)
if [[ -f "$BUILD/build.ninja" ]]; then
  say "reconfiguring $BUILD"
  meson setup --reconfigure "$BUILD" "${opts[@]}" >"$BUILD/setup.log" 2>&1 ||
    { cat "$BUILD/setup.log"; exit 1; }
else
  say "configuring $BUILD"
  mkdir -p build
  meson setup "$BUILD" "${opts[@]}" >build/demo-setup.log 2>&1 ||
    { cat build/demo-setup.log; exit 1; }
  mv build/demo-setup.log "$BUILD/setup.log"
fi

say "building the library, the demo and the canal tool (ninja -j $JOBS)"
ninja -C "$BUILD" -j "$JOBS" examples/canal_demo tools/canal/canal \
  >"$BUILD/build.log" 2>&1 || { cat "$BUILD/build.log"; say "build failed"; exit 1; }

say "running $BUILD/examples/canal_demo"
echo
"$BUILD/examples/canal_demo"
echo
say "the canal tool is $ROOT/$BUILD/tools/canal/canal (try: $BUILD/tools/canal/canal --help)"
