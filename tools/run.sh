#!/usr/bin/env bash
# Sets everything up, builds hookd and hookctl (release preset; nothing else, so the first run
# takes a few minutes, not the whole test suite's build) and runs hookd on ./data at 127.0.0.1:8080.
# Extra arguments go to hookd, e.g.: bash tools/run.sh --listen 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target hookd hookctl
exec ./build/release/bin/hookd --data-dir ./data "$@"
