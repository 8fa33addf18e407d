#!/usr/bin/env bash
# Installs hookd's build and test dependencies from Debian 12's packages (systemd for
# systemd-analyze, which checks the units; dpkg-dev and file for cpack's Debian package; chromium for
# the portal's browser test, tests/portal). Idempotent:
# packages already present are left alone, and apt-get runs only when something is missing.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  librocksdb-dev libssl-dev libsystemd-dev libtomlplusplus-dev ca-certificates
  libgtest-dev libgmock-dev libbenchmark-dev
  nodejs npm wrk nginx-light curl jq openssl
  systemd dpkg-dev file
  clang-16 libfuzzer-16-dev libclang-rt-16-dev
  chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nodejs from another source may already provide npm; accept any working npm.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]}"

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present" >&2
fi
