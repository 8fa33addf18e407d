#!/usr/bin/env bash
# Builds hookd's Debian package: a release build of the two packaged programs (hookd, hookctl;
# no tests, no benchmarks) in build/package, then `cpack -G DEB` there. Prints the .deb's path.
# Install it with `apt install ./build/package/hookd_<version>_<arch>.deb` (which pulls in the
# libraries named in its Depends) or `dpkg -i` where they are present. docs/operations.md,
# "The Debian package", says what it holds.
# Usage: bash tools/package.sh   (HOOKD_CMAKE_ARGS adds cmake options, e.g. -DHOOKD_WERROR=ON)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
# CMAKE_SKIP_INSTALL_ALL_DEPENDENCY: cpack installs what is built instead of building `all` first
# (which would add hookd-sink and hookd-load).
cmake --preset release -B build/package -DHOOKD_BUILD_TESTS=OFF -DHOOKD_BUILD_BENCH=OFF \
  -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON ${HOOKD_CMAKE_ARGS:-} >/dev/null
cmake --build build/package --target hookd hookctl
(cd build/package && cpack -G DEB >/dev/null)
ls build/package/hookd_*.deb
