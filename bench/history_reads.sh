#!/usr/bin/env bash
# GET-by-id latency with and without history pages being read at the same time, side by side.
#
#   bash bench/history_reads.sh [--deliveries N] [--rounds R] [--seconds S] [--rate GETS_PER_S]
#                               [--page-delay-ms D] [--bin-dir DIR]
#
#   N     finished deliveries to put in the history first (default 500000; hookd-load deliver,
#         10 webhooks per event, as fast as hookd takes them)
#   R     rounds (default 3); each round runs A then B:
#           A  hookd-load get, open loop at RATE (default 5000/s), 16 connections, S seconds
#           B  the same while wrk (4 connections) pages the project's delivery history, 100 a
#              page, each request at a random point of the history (`until` anywhere in it)
#   S     seconds per run (default 10)
#   D     each wrk connection waits D ms between pages (default 0: as many pages as hookd serves;
#         40 makes about 100 pages/s over the 4 connections)
#   DIR   where hookd and hookd-load are (default build/release/bin)
#
# hookd runs with --threads 1 on core 0: the catalog's GETs and the history reads share that one
# core's event loop, while the reads themselves wait on hookd's reader pool (docs/delivery.md,
# "Reads"). The load generators share core 1. Prints the runs' figures on stderr and a
# JSON summary on stdout: medians of p50/p99 of the GETs in A and in B, their ratios, and the
# history pages read per second in B.
# Needs: curl, jq, wrk, taskset. Bounded: every run has its duration; everything is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench_name=history_reads.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

deliveries=500000
rounds=3
seconds=10
rate=5000
page_delay=0
bin_dir=${BENCH_BIN_DIR:-$root/build/release/bin}
while (($#)); do
  case $1 in
    --deliveries) deliveries=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --page-delay-ms) page_delay=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "history_reads.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

bench_require curl jq wrk taskset
[[ -x $bin_dir/hookd && -x $bin_dir/hookd-load ]] ||
  die "no hookd or hookd-load in $bin_dir (cmake --preset release && cmake --build --preset release --target hookd hookd-load)"

tmp=$(mktemp -d)
trap bench_cleanup EXIT
bench_pick_cpus
admin_token=hkd_reads-$(random_hex 24)

hookd_start "$bin_dir/hookd" "$tmp/hookd.log" --listen 127.0.0.1:0 --data-dir "$tmp/data" \
  --threads 1 --allow-private-targets
log "hookd at $hookd_url (pid $hookd_pid); making $deliveries finished deliveries"

history_start=$(date -u +%s)
events=$((deliveries / 10))
taskset -c "$client_cpu" "$bin_dir/hookd-load" --url "$hookd_url" --admin-token "$admin_token" \
  --scenario deliver --webhooks 10 --connections 32 --requests "$events" --duration 600 \
  --drain 60 --keep --quiet --output "$tmp/made.json" 2>"$tmp/made.err" ||
  { cat "$tmp/made.err" >&2; die "hookd-load deliver failed"; }
history_end=$(($(date -u +%s) + 1))
token=$(jq -r .setup.token "$tmp/made.json")
org=$(jq -r .setup.organization "$tmp/made.json")
project=$(jq -r '.setup.project[0]' "$tmp/made.json")
scrape "$tmp/m.txt"
made=$(metric hookd_history_deliveries "$tmp/m.txt")
log "history: $made finished deliveries ($((history_end - history_start)) s)"

# wrk: each request a page of 100 ending at a random second of the history.
cat >"$tmp/pages.lua" <<EOF
local first, last = $history_start, $history_end
local base = "/api/v1/organizations/$org/projects/$project/deliveries?limit=100&until="
math.randomseed(7)
request = function()
  local t = math.random(first, last)
  return wrk.format("GET", base .. os.date("!%Y-%m-%dT%H:%M:%SZ", t))
end
if $page_delay > 0 then
  delay = function() return $page_delay end
end
EOF
# One page by hand first: it must answer 200 with 100 deliveries.
page=$(api GET "/api/v1/organizations/$org/projects/$project/deliveries?limit=100" "$token")
[[ $(jq '.data | length' <<<"$page") -gt 0 ]] || die "the history page is empty: $page"

get_run() { # OUT: hookd-load get, open loop
  taskset -c "$client_cpu" "$bin_dir/hookd-load" --url "$hookd_url" --token "$token" \
    --organization "$org" --project "$project" --scenario get --connections 16 \
    --rate "$rate" --duration "$seconds" --warmup 1 --quiet --output "$1" 2>>"$tmp/get.err" ||
    { cat "$tmp/get.err" >&2; die "hookd-load get failed"; }
}

a_p50=() a_p99=() b_p50=() b_p99=() pages=()
for round in $(seq "$rounds"); do
  get_run "$tmp/a.json"
  a_p50+=("$(jq ".latency_us.p50 / 1000" "$tmp/a.json")") a_p99+=("$(jq ".latency_us.p99 / 1000" "$tmp/a.json")")
  timeout $((seconds + 20)) taskset -c "$client_cpu" wrk -t1 -c4 -d"$((seconds + 2))s" \
    -H "Authorization: Bearer $token" -s "$tmp/pages.lua" "$hookd_url" >"$tmp/wrk.txt" 2>&1 &
  wrk_pid=$!
  bench_track "$wrk_pid"
  sleep 1
  get_run "$tmp/b.json"
  wait "$wrk_pid" || { cat "$tmp/wrk.txt" >&2; die "wrk failed"; }
  [[ $(non2xx "$tmp/wrk.txt") -eq 0 ]] || { cat "$tmp/wrk.txt" >&2; die "history pages failed"; }
  b_p50+=("$(jq ".latency_us.p50 / 1000" "$tmp/b.json")") b_p99+=("$(jq ".latency_us.p99 / 1000" "$tmp/b.json")")
  pages+=("$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.txt")")
  log "round $round: GET p50/p99 alone ${a_p50[-1]}/${a_p99[-1]} ms, with pages ${b_p50[-1]}/${b_p99[-1]} ms; ${pages[-1]} pages/s"
done

jq -n --arg date "$(date -u +%FT%TZ)" --arg commit "$(git_commit "$root")" --arg cpu "$(cpu_model)" \
  --argjson history "$made" --argjson rate "$rate" --argjson rounds "$rounds" \
  --argjson page_delay "$page_delay" \
  --argjson a50 "$(median "${a_p50[@]}")" --argjson a99 "$(median "${a_p99[@]}")" \
  --argjson b50 "$(median "${b_p50[@]}")" --argjson b99 "$(median "${b_p99[@]}")" \
  --argjson pps "$(median "${pages[@]}")" \
  '{date: $date, commit: $commit, cpu: $cpu, history_deliveries: $history, get_rate: $rate,
    rounds: $rounds, page_delay_ms: $page_delay, get_alone_ms: {p50: $a50, p99: $a99}, get_with_pages_ms: {p50: $b50, p99: $b99},
    p50_ratio: (if $a50 > 0 then $b50 / $a50 else null end),
    p99_ratio: (if $a99 > 0 then $b99 / $a99 else null end), pages_per_s: $pps}'
