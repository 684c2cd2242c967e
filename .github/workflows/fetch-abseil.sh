#!/usr/bin/env bash
# CI helper for the Windows jobs: meson.build builds Abseil as a CMake
# subproject on Windows from subprojects/packagefiles/ (on Debian,
# scripts/setup.sh puts Debian's source tarball there). On hosted runners we
# fetch the upstream release archive of the same version instead and point
# subprojects/abseil-cpp.wrap at it (directory name and checksum).
set -euo pipefail
version="${ABSL_VERSION:-20220623.1}"
mkdir -p subprojects/packagefiles
file="subprojects/packagefiles/abseil-cpp-${version}.tar.gz"
curl -fsSL -o "$file" \
  "https://github.com/abseil/abseil-cpp/archive/refs/tags/${version}.tar.gz"
hash="$(sha256sum "$file" | cut -d' ' -f1)"
cat > subprojects/abseil-cpp.wrap <<WRAP
[wrap-file]
directory = abseil-cpp-${version}
source_filename = abseil-cpp-${version}.tar.gz
source_hash = ${hash}
WRAP
echo "abseil ${version}: ${hash}"
