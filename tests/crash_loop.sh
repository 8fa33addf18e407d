#!/usr/bin/env bash
# The crash loop at length: tests/http/programs/crash_loop_test.cpp (writers create and delete
# webhooks over keep-alive connections while hookd is SIGKILLed at random points) with KILLS
# kills instead of the ctest run's 20. Prints the test's figures (kills, operations acknowledged,
# operations cut off by a kill, violations) and exits non-zero on any violation.
# Usage: bash tests/crash_loop.sh [KILLS] [preset]   (200 and debug by default)
# HOOKD_CRASH_SEED=N replays the random choices of an earlier run (each run prints its seed).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-200}
preset=${2:-debug}
cmake --preset "$preset" ${HOOKD_CMAKE_ARGS:-} >/dev/null
cmake --build --preset "$preset" --target hookd http_crash_loop_test
HOOKD_CRASH_KILLS=$kills "build/$preset/bin/http_crash_loop_test" \
  --gtest_filter='CrashLoop.*' --gtest_color=no | grep -E '^crash loop:|FAILED|PASSED|Failure|seed'
