#!/usr/bin/env bash
# Builds canal natively and runs the demo: a byte-mode and a message-mode
# listener serving several clients. Installs what it needs first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
if [[ -f build/native/build.ninja ]]; then
  meson setup --reconfigure build/native -Dwerror=true >/dev/null
else
  meson setup build/native -Dwerror=true >/dev/null
fi
ninja -C build/native examples/canal_demo >/dev/null
exec build/native/examples/canal_demo
