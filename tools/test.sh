#!/usr/bin/env bash
# Sets everything up, builds (release preset) and runs every test with ctest.
# Usage: bash tools/test.sh [preset]   (release by default; asan, tsan, debug also work)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
bash tools/setup.sh
cmake --preset "$preset" ${HOOKD_CMAKE_ARGS:-}
cmake --build --preset "$preset"
ctest --preset "$preset" --parallel 2 --timeout 600
