#!/usr/bin/env bash
# Installs everything canal's build, demo and tests need on Debian bookworm, and
# fetches Abseil's Debian source tarball for the mingw-w64 cross build.
# Safe to run twice: every step checks whether it is already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi

NATIVE_PKGS=(meson ninja-build pkg-config g++ cmake libabsl-dev libgtest-dev libgmock-dev
             libbenchmark-dev libuv1-dev clang libclang-rt-14-dev python3 dpkg-dev
             libcli11-dev        # the canal tool: command line (header-only)
             nlohmann-json3-dev  # the canal tool: JSON output (header-only)
             nodejs              # tests/tools: Node.js net as a peer
             socat)              # tests/tools: socat as a peer
CROSS_PKGS=(mingw-w64 wine64 wine)

want=()
for p in "${NATIVE_PKGS[@]}" "${CROSS_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
done

# Debian's source index is needed for `apt-get source abseil`. Enable it from the
# sources already configured, so no host name is written anywhere.
SRC_LIST=/etc/apt/sources.list.d/canal-deb-src.sources
need_update=0
if [[ ! -f "$SRC_LIST" && -f /etc/apt/sources.list.d/debian.sources ]]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
    $SUDO tee "$SRC_LIST" >/dev/null
  need_update=1
fi

if (( ${#want[@]} )) || (( need_update )); then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || echo "setup: apt-get update reported errors; continuing"
fi
if (( ${#want[@]} )); then
  echo "setup: installing ${want[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi

# Abseil source for the cross build (git-ignored; never committed).
PKGDIR="$ROOT/subprojects/packagefiles"
TARBALL="abseil_20220623.1.orig.tar.gz"
if [[ ! -f "$PKGDIR/$TARBALL" ]]; then
  mkdir -p "$PKGDIR"
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get source --download-only abseil=20220623.1-1* >/dev/null 2>&1 ||
               apt-get source --download-only abseil >/dev/null)
  cp "$tmp/$TARBALL" "$PKGDIR/$TARBALL"
  rm -rf "$tmp"
fi

echo "setup: done"
