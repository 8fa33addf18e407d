#!/usr/bin/env bash
# Restart time of two hookd builds side by side on the same data: one data dir is filled once
# (hookd-load creates N webhooks through hookd A, --unsafe-no-fsync), then hookd A and hookd B
# are started on it in turn, ROUNDS times each (A, B, A, B, ...), pinned to one core like
# compare.sh's million phase: exec -> /readyz 200, the catalog_loaded line's ms, and the
# process's CPU time (utime + stime) when ready. Medians at the end, JSON on stdout.
#
#   bash bench/restart.sh --a DIR_A --b DIR_B [--webhooks N] [--rounds R] [--data DIR]
#
#   DIR_A, DIR_B  directories holding a hookd (DIR_A also hookd-load, for the fill)
#   N             webhooks to create (default 1000000), over N / 100 projects
#   R             restarts of each build (default 5)
#   DIR           the data dir to restart on, kept afterwards: filled first when it does not
#                 exist (default: a temporary one, filled and removed)
#
# Each build's first start on the data is a warm-up and is reported apart (for a build that
# checks the master key by its check record, that is the start that writes it on data from an
# earlier build: docs/operations.md).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench_name=restart.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

usage() { sed -n '8,14p' "$0" | sed 's/^# \{0,1\}//'; }
dir_a='' dir_b='' webhooks=1000000 rounds=5 data=''
while (($#)); do
  case $1 in
    --a) dir_a=$2; shift 2 ;;
    --b) dir_b=$2; shift 2 ;;
    --webhooks) webhooks=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "restart.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ -x $dir_a/hookd && -x $dir_b/hookd ]] || { usage >&2; die "--a and --b must each hold a hookd"; }
((rounds >= 1 && rounds <= 50)) || die "--rounds must be 1..50"
bench_require jq curl taskset awk
bench_pick_cpus

tmp=$(mktemp -d /tmp/hookd-restart.XXXXXX)
trap bench_cleanup EXIT
admin_token=${HOOKD_ADMIN_TOKEN:-hkd_$(random_hex 32)}

[[ -n $data ]] || data=$tmp/data
if [[ ! -e $data ]]; then
  [[ -x $dir_a/hookd-load ]] || die "no hookd-load in $dir_a for the fill"
  hookd_start "$dir_a/hookd" "$tmp/fill.log" --data-dir "$data" --listen 127.0.0.1:0 --threads 1 \
    --unsafe-no-fsync
  log "filling: $webhooks webhooks through $dir_a/hookd"
  taskset -c "$client_cpu" "$dir_a/hookd-load" --url "$hookd_url" --output "$tmp/fill.json" \
    --scenario create --admin-token "$admin_token" --projects $(((webhooks + 99) / 100)) \
    --webhooks 0 --requests "$webhooks" --duration 1200 --connections 64 --keep 2>"$tmp/fill.err"
  log "filled: $(jq '.status["201"] // 0' "$tmp/fill.json") created at $(jq .rps "$tmp/fill.json") req/s"
  stop_pid "$hookd_pid" 60
fi

# start_once BIN: one start on $data; prints "ready_ms catalog_ms cpu_ms webhooks".
start_once() {
  local bin=$1 log_file=$tmp/start.log port t0 t1 cpu ticks url
  port=$(quiet_port) || die "no free port below the ephemeral range for hookd"
  url=http://127.0.0.1:$port
  t0=$(date +%s%N)
  HOOKD_ADMIN_TOKEN=$admin_token HOOKD_SHUTDOWN_DELAY=0s taskset -c "$server_cpu" "$bin" \
    --data-dir "$data" --listen "127.0.0.1:$port" --threads 1 --unsafe-no-fsync 2>"$log_file" &
  local pid=$!
  bench_track "$pid"
  until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url/readyz" || true) == 200 ]]; do
    kill -0 "$pid" 2>/dev/null || { cat "$log_file" >&2; die "$bin exited"; }
    (($(date +%s%N) - t0 < 300000000000)) || die "$bin not ready within 300 s"
    sleep 0.005
  done
  t1=$(date +%s%N)
  ticks=$(proc_cpu_ticks "$pid")
  cpu=$((ticks * 1000 / $(getconf CLK_TCK)))
  stop_pid "$pid" 60
  echo "$(((t1 - t0) / 1000000)) $(grep -F '"event":"catalog_loaded"' "$log_file" | jq -r .ms) $cpu \
$(grep -F '"event":"catalog_loaded"' "$log_file" | jq -r .webhooks)"
}

declare -A ready=() catalog=() cpu=()
for build in a b; do
  bin_var=dir_$build
  read -r r c u n < <(start_once "${!bin_var}/hookd")
  log "warm-up $build: ready $r ms, catalog $c ms, CPU $u ms, $n webhooks"
  echo "{\"warmup\":\"$build\",\"ready_ms\":$r,\"catalog_ms\":$c,\"cpu_ms\":$u,\"webhooks\":$n}" >>"$tmp/runs.jsonl"
done
for i in $(seq "$rounds"); do
  for build in a b; do
    bin_var=dir_$build
    read -r r c u n < <(start_once "${!bin_var}/hookd")
    log "round $i $build: ready $r ms, catalog $c ms, CPU $u ms, $n webhooks"
    ready[$build]+=" $r" catalog[$build]+=" $c" cpu[$build]+=" $u"
    echo "{\"round\":$i,\"build\":\"$build\",\"ready_ms\":$r,\"catalog_ms\":$c,\"cpu_ms\":$u,\"webhooks\":$n}" >>"$tmp/runs.jsonl"
  done
done
# shellcheck disable=SC2086  # the lists are space-separated numbers
for build in a b; do
  log "median $build: ready $(median ${ready[$build]}) ms, catalog $(median ${catalog[$build]}) ms, CPU $(median ${cpu[$build]}) ms"
done
# shellcheck disable=SC2086
jq -s --arg a "$dir_a" --arg b "$dir_b" \
  --argjson ma "{\"ready_ms\":$(median ${ready[a]}),\"catalog_ms\":$(median ${catalog[a]}),\"cpu_ms\":$(median ${cpu[a]})}" \
  --argjson mb "{\"ready_ms\":$(median ${ready[b]}),\"catalog_ms\":$(median ${catalog[b]}),\"cpu_ms\":$(median ${cpu[b]})}" \
  '{a: $a, b: $b, median_a: $ma, median_b: $mb, runs: .}' "$tmp/runs.jsonl"
