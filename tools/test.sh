#!/usr/bin/env bash
# Sets everything up, builds (debug preset: -O0, quickest to compile) and runs every test with ctest.
# Usage: bash tools/test.sh [preset]   (debug by default; release, asan, tsan also work)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-debug}
bash tools/setup.sh
# Tests on, even in a build directory tools/run.sh configured without them.
cmake --preset "$preset" -DHOOKD_BUILD_TESTS=ON ${HOOKD_CMAKE_ARGS:-}
cmake --build --preset "$preset"
# The Node receiver of tests/http/outbound/standardwebhooks_test.cpp (the npm standardwebhooks package,
# pinned by tests/node/package-lock.json).
npm ci --prefix tests/node --no-audit --no-fund --silent
# puppeteer-core for the portal's browser test (tests/portal/package-lock.json); it drives Debian's
# chromium and downloads no browser.
npm ci --prefix tests/portal --no-audit --no-fund --silent
# Under TSan, RocksDB's uninstrumented memtable needs the suppressions that tests/tsan.supp explains.
if [[ $preset == tsan ]]; then
  export TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp ${TSAN_OPTIONS:-}"
fi
ctest --preset "$preset" --parallel 2 --timeout 600
