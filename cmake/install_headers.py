#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Installs Abseil's headers beside canal's (a Meson install script).

When canal builds Abseil from its wrap, the installed canal headers include
Abseil's, so they are installed too: every .h and .inc file under SOURCE,
with its relative path, into DEST (relative to the install prefix; DESTDIR
is honoured through MESON_INSTALL_DESTDIR_PREFIX).

  install_headers.py SOURCE DEST
"""
import os
import shutil
import sys


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: install_headers.py SOURCE DEST")
    source, dest = argv[1], argv[2]
    prefix = os.environ.get("MESON_INSTALL_DESTDIR_PREFIX", "")
    if not prefix:
        sys.exit("install_headers.py: run me from 'meson install'")
    dest = os.path.join(prefix, dest)
    count = 0
    for root, _dirs, names in os.walk(source):
        for name in names:
            if not name.endswith((".h", ".inc")):
                continue
            rel = os.path.relpath(os.path.join(root, name), source)
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.join(root, name), target)
            count += 1
    if not os.environ.get("MESON_INSTALL_QUIET"):
        print(f"Installing {count} Abseil headers to {dest}")


if __name__ == "__main__":
    main(sys.argv)
