#!/usr/bin/env bash
# The layering the design fixes, checked: core/ is pure domain logic and includes neither
# Boost.Beast, Boost.Asio nor RocksDB (STYLE: a pure core, thin adapters). Prints every offending
# include and exits 1; exits 0 when there is none.
set -euo pipefail
cd "$(dirname "$0")/.."
if offending=$(grep -rnE '#[[:space:]]*include[[:space:]]*[<"](boost/(beast|asio)|rocksdb)' core); then
  echo "check-layers: core/ must not include Beast, Asio or RocksDB (move the code to http/ or storage/):" >&2
  printf '%s\n' "$offending" >&2
  exit 1
fi
echo "check-layers: core/ includes neither Beast, Asio nor RocksDB" >&2
