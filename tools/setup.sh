#!/usr/bin/env bash
# Installs hookd's dependencies from Debian 12's packages. Idempotent: packages already present are
# left alone, and apt-get runs only when something is missing.
# Usage: bash tools/setup.sh [build|all]
#   build  what building hookd and hookctl needs (tools/run.sh, tools/package.sh), jemalloc among it
#   all    (default) also the tests, benchmarks and CI: GoogleTest, Google Benchmark, Node for the
#          independent signature checks, wrk and nginx for the benchmarks, systemd for
#          systemd-analyze (checks the units), dpkg-dev and file for cpack's Debian package, lld (the
#          test executables link three times faster than with the default linker), clang
#          and libFuzzer for the fuzz targets, the PostgreSQL server the cluster tests start privately
#          (tests/support/pg_cluster.hpp), haproxy for the cluster behind a load balancer
#          (tests/cluster/haproxy_test.sh, tools/cluster-dev.sh), Chromium for the portal's
#          browser test (tests/portal), and perf for bench/profile.sh.
set -euo pipefail

profile=${1:-all}
packages=(
  cmake ninja-build g++ pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  librocksdb-dev libpq-dev libssl-dev libsystemd-dev libtomlplusplus-dev libjemalloc-dev
  ca-certificates
)
case $profile in
build) ;;
all) packages+=(
  libgtest-dev libgmock-dev libbenchmark-dev
  nodejs npm wrk nginx-light curl jq openssl postgresql haproxy
  systemd dpkg-dev file lld linux-perf
  clang-16 libfuzzer-16-dev libclang-rt-16-dev
  chromium
) ;;
*)
  echo "setup: unknown profile '$profile' (build or all)" >&2
  exit 2
  ;;
esac

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
  # The tests start their own PostgreSQL servers and remove them after; a freshly installed
  # postgresql package would otherwise create (and, where it can, start) a default cluster
  # on port 5432 that nothing uses. A drop-in of postgresql-common's own configuration, read only
  # when a cluster is created by a package install, stops that; existing clusters are untouched.
  if [[ " ${missing[*]} " == *" postgresql "* && ! -d /var/lib/postgresql ]]; then
    "${sudo_cmd[@]}" mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" |
      "${sudo_cmd[@]}" tee /etc/postgresql-common/createcluster.d/hookd-no-main-cluster.conf >/dev/null
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present" >&2
fi
