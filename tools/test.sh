#!/usr/bin/env bash
# Sets everything up, builds and runs every test with ctest. By default under AddressSanitizer and
# UBSan (preset asan, -O0): a use-after-free or a leak fails the run, not just a wrong answer. This is
# the run CI makes (.ci/run, with warnings as errors). `debug` builds and runs about a third faster
# without the sanitizers.
# Usage: bash tools/test.sh [preset]   (asan by default; debug, release, tsan also work)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-asan}
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
