#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs everything canal's tests need on Debian bookworm (scripts/test.sh
# calls this): the native toolchain and libraries, clang for the fuzz leg,
# clang-format for the format check,
# CMake for the consumer leg, mingw-w64 and Wine for the Windows leg, and
# Abseil's Debian source tarball for the builds that compile Abseil.
# scripts/demo.sh needs much less and installs it itself.
# Safe to run twice: every step checks whether it is already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
say() { echo "setup: $*"; }

NATIVE_PKGS=(meson ninja-build pkg-config g++ cmake git python3 dpkg-dev
             libabsl-dev libgtest-dev libbenchmark-dev libuv1-dev
             libcli11-dev        # the canal tool: command line (header-only)
             nlohmann-json3-dev  # the canal tool: JSON output (header-only)
             nodejs              # tests/tools: Node.js net as a peer
             socat               # tests/tools: socat as a peer
             clang libclang-rt-14-dev
             clang-format)       # the format leg
CROSS_PKGS=(mingw-w64 wine64 wine)

want=()
for p in "${NATIVE_PKGS[@]}" "${CROSS_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
done

# Debian's source index is needed for `apt-get source abseil`. Enable it from the
# sources already configured, so no host name is written anywhere.
PKGDIR="$ROOT/subprojects/packagefiles"
TARBALL="abseil_20220623.1.orig.tar.gz"
SRC_LIST=/etc/apt/sources.list.d/canal-deb-src.sources
need_update=0
if [[ ! -f "$PKGDIR/$TARBALL" && ! -f "$SRC_LIST" && -f /etc/apt/sources.list.d/debian.sources ]]; then
  say "enabling Debian's source index (deb-src) for Abseil's source package"
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
    $SUDO tee "$SRC_LIST" >/dev/null
  need_update=1
fi

export DEBIAN_FRONTEND=noninteractive
if (( ${#want[@]} )) || (( need_update )); then
  say "apt-get update"
  $SUDO apt-get update -qq || say "apt-get update reported errors; continuing"
fi
if (( ${#want[@]} )); then
  say "installing ${want[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${want[@]}"
else
  say "packages: all installed already"
fi

# Abseil's source, for the builds that compile it (Wine, ThreadSanitizer,
# the consumer leg's wrap check): Debian's tarball of the release that
# libabsl-dev packages, 20220623.1. It is not the upstream release archive
# byte for byte (Debian repacks it), so it cannot go into
# subprojects/packagecache/ for abseil-cpp.wrap; it goes into
# subprojects/packagefiles/ for abseil-cpp-debian.wrap (git-ignored; never
# committed), which meson.build then uses.
SHA256=abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe
if [[ ! -f "$PKGDIR/$TARBALL" ]]; then
  say "downloading Abseil's Debian source tarball ($TARBALL)"
  mkdir -p "$PKGDIR"
  tmp="$(mktemp -d)"
  (cd "$tmp" && { apt-get source --download-only abseil=20220623.1-1* >/dev/null 2>&1 ||
                  apt-get source --download-only abseil >/dev/null; })
  if [[ "$(sha256sum "$tmp/$TARBALL" | cut -d' ' -f1)" != "$SHA256" ]]; then
    say "$TARBALL does not have the checksum subprojects/abseil-cpp-debian.wrap expects"
    rm -rf "$tmp"
    exit 1
  fi
  cp "$tmp/$TARBALL" "$PKGDIR/$TARBALL"
  rm -rf "$tmp"
else
  say "Abseil's source tarball: there already"
fi

say "done"
