#!/usr/bin/env bash
# Lints docs/openapi.yaml with Redocly CLI 2 (fetched from the npm registry into .cache/).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/redocly
if [[ ! -x .cache/redocly/node_modules/.bin/redocly ]]; then
  npm install --prefix .cache/redocly --no-audit --no-fund --silent @redocly/cli@2 >&2
fi
.cache/redocly/node_modules/.bin/redocly lint docs/openapi.yaml
