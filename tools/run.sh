#!/usr/bin/env bash
# Sets up what building hookd needs (tools/setup.sh build: no test, benchmark or fuzzing packages),
# builds hookd and hookctl (release preset, tests and benchmarks not configured; nothing else, so the
# first run takes a few minutes, not the whole suite's build) and runs hookd on ./data at
# 127.0.0.1:8080.
# Extra arguments go to hookd, e.g.: bash tools/run.sh --listen 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh build
cmake --preset release -DHOOKD_BUILD_TESTS=OFF -DHOOKD_BUILD_BENCH=OFF >/dev/null
cmake --build --preset release --target hookd hookctl
exec ./build/release/bin/hookd --data-dir ./data "$@"
