#!/usr/bin/env bash
# Builds and runs the two consumer projects in tests/consumer/ (native):
#  - pkgconfig: canal is built with every extra off, installed into a
#    temporary prefix, and found through PKG_CONFIG_PATH and canal.pc;
#  - wrap: canal is a Meson subproject through subprojects/canal.wrap.
# Each consumer's `meson test` leaves a testlog.json in
# build/consumer/{pkgconfig,wrap} for scripts/summarize.py.
#   scripts/consumer_test.sh [BUILD_DIR]   (default build/consumer)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
B="$(realpath -m "${1:-build/consumer}")"
JOBS="${CANAL_JOBS:-$(nproc)}"
mkdir -p "$B"
say() { echo "consumer: $*"; }
# Build dirs are kept between runs (incremental); the prefix, the copied
# sources and old test logs are not.
rm -rf "$B/prefix" "$B/src" "$B"/{pkgconfig,wrap}/meson-logs/testlog.json
setup() {  # setup BUILD_DIR SOURCE_DIR ARGS...
  local dir="$1"; shift
  if [[ -f "$dir/build.ninja" ]]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
}

# 1. Build canal alone and install it into a temporary prefix.
PREFIX="$B/prefix"
setup "$B/canal" "$ROOT" --prefix="$PREFIX" --libdir=lib \
  -Dtests=disabled -Dtools=disabled -Dbenchmarks=disabled -Ddemo=disabled \
  -Dwerror=true
ninja -C "$B/canal" -j "$JOBS" >/dev/null
meson install -C "$B/canal" --quiet >/dev/null
for f in include/canal/canal.h include/canal/channel.h lib/libcanal.a \
         lib/pkgconfig/canal.pc; do
  [[ -e "$PREFIX/$f" ]] || { say "not installed: $f"; exit 1; }
done
grep -q '^Requires:.*absl_status' "$PREFIX/lib/pkgconfig/canal.pc" ||
  { say "canal.pc does not require Abseil"; cat "$PREFIX/lib/pkgconfig/canal.pc"; exit 1; }
if compgen -G "$B/canal/tests/*" >/dev/null || [[ -e "$B/canal/tools/canal/canal" ]]; then
  say "-Dtests/-Dtools=disabled still built tests or tools"; exit 1
fi
say "installed headers, libcanal and canal.pc into $PREFIX"

# 2. The pkg-config consumer.
mkdir -p "$B/src"
cp -r tests/consumer/pkgconfig "$B/src/pkgconfig"
cp tests/consumer/consumer_main.cc "$B/src/pkgconfig/"
PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
  setup "$B/pkgconfig" "$B/src/pkgconfig"
ninja -C "$B/pkgconfig" -j "$JOBS" >/dev/null
meson test -C "$B/pkgconfig" --print-errorlogs

# 3. The wrap consumer: subprojects/canal is a link to this checkout.
cp -r tests/consumer/wrap "$B/src/wrap"
cp tests/consumer/consumer_main.cc "$B/src/wrap/"
ln -s "$ROOT" "$B/src/wrap/subprojects/canal"
setup "$B/wrap" "$B/src/wrap"
ninja -C "$B/wrap" -j "$JOBS" >/dev/null
# As a subproject canal builds only its library: no tests, tools or demo.
if meson introspect --targets "$B/wrap" | python3 -c '
import json, sys
names = [t["name"] for t in json.load(sys.stdin)]
extra = [n for n in names if n not in ("consumer", "canal")]
sys.exit(1 if extra else 0)'; then
  say "canal as a subproject builds only its library"
else
  say "canal as a subproject built more than its library"; exit 1
fi
meson test -C "$B/wrap" --print-errorlogs
