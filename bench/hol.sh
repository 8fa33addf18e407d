#!/usr/bin/env bash
# Head-of-line isolation: how much webhooks whose receiver never answers delay everybody else's
# deliveries, measured as ingest -> first attempt of the healthy deliveries, with and without the
# bad webhooks, side by side in one run.
#
#   bash bench/hol.sh [--bin-dir DIR] [--runs N] [--seconds S] [--rate EVENTS_PER_S]
#                     [--per-webhook N] [--timeout DURATION]
#
#   DIR        where hookd, hookd-load and hookd-sink are (default build/release/bin, else
#              build/debug/bin, or $BENCH_BIN_DIR)
#   N runs     fresh hookd per run (default 3); the figures are the medians over the runs
#   S          measured seconds per phase (default 10)
#   rate       events per second (default 4); each goes to the 100 healthy webhooks
#   per-webhook  hookd's --max-inflight-per-webhook (default 8: ten stalled webhooks at the cap
#              would hold 80 slots, more than the organization's share of 64, so without flow
#              control they would starve the healthy ones)
#   timeout    hookd's --delivery-timeout (default 1s)
#
# Each run starts hookd (--allow-private-targets, --delivery-timeout, --retry-schedule 1s x 20)
# and hookd-sink as a receiver that never answers in time (it would answer after 60 s), and runs
# two phases of hookd-load deliver, open loop at the rate, against two projects of one
# organization:
#   clean  100 healthy webhooks (hookd-load's own receiver);
#   hol    100 healthy webhooks and 10 more at the never-answering receiver, subscribed to every
#          event, so every event also makes 10 deliveries that time out (and are retried).
# The latency is hookd-load's: from each event's intended send time to the first arrival of each
# of its healthy deliveries. Prints a JSON summary on stdout and a table on stderr. Exit status 0
# when every run completed, 1 otherwise, 2 bad usage.
set -euo pipefail

bench_name=hol.sh
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

bin_dir=${BENCH_BIN_DIR:-}
runs=3
seconds=10
rate=4
per_webhook=8
timeout=1s
while (($#)); do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --per-webhook) per_webhook=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    -h | --help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "hol.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z $bin_dir ]]; then
  bin_dir=$here/../build/release/bin
  [[ -x $bin_dir/hookd ]] || bin_dir=$here/../build/debug/bin
fi
for b in hookd hookd-load hookd-sink; do
  [[ -x $bin_dir/$b ]] || die "$bin_dir/$b is missing (build it first)"
done
bench_require jq curl taskset

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-hol-XXXXXX")
trap bench_cleanup EXIT
bench_pick_cpus
admin_token=$(random_hex 24)

# phase NAME ORG PROJECT TOKEN -> hookd-load's summary in $tmp/load-NAME.json
phase() {
  local name=$1 org=$2 project=$3 token=$4 drain=10
  timeout --kill-after=10 $((seconds + drain + 60)) taskset -c "$client_cpu" \
    "$bin_dir/hookd-load" --url "$hookd_url" --scenario deliver --token "$token" \
    --organization "$org" --project "$project" --webhooks 100 --connections 16 \
    --rate "$rate" --warmup 1 --duration "$seconds" --drain "$drain" --quiet \
    --output "$tmp/load-$name.json" 2>"$tmp/load-$name.err" ||
    die "hookd-load $name failed: $(tail -3 "$tmp/load-$name.err")"
}

results=()
for run in $(seq "$runs"); do
  data=$tmp/data-$run
  mkdir -p "$data"
  chmod 700 "$data"
  hookd_start "$bin_dir/hookd" "$tmp/hookd-$run.log" --data-dir "$data" --listen 127.0.0.1:0 \
    --allow-private-targets --delivery-timeout "$timeout" \
    --retry-schedule "$(printf '1s,%.0s' $(seq 20) | sed 's/,$//')" \
    --max-inflight-per-webhook "$per_webhook" --max-webhooks-per-project 200
  # hookd-sink answering /hang after 60 s: a receiver that never answers in time.
  [[ -n ${sink_url:-} ]] || sink_start "$bin_dir/hookd-sink" "$tmp" 0 --script /hang=200,delay=60000
  org=$(provision_org "hol-$run")
  clean=$(provision_project "$org" clean "clean-$run")
  hol=$(provision_project "$org" hol "hol-$run")
  token=$(provision_token "$org" webhooks:read webhooks:write events:write)
  for i in $(seq 10); do
    api POST "/api/v1/organizations/$org/projects/$hol/settings/webhooks" "$admin_token" \
      "{\"name\":\"stalled $i\",\"url\":\"$sink_url/hang?w=$i\",\"events\":[\"*\"]}" >/dev/null
  done
  log "run $run/$runs: clean (100 webhooks), ${seconds}s at $rate events/s"
  phase clean "$org" "$clean" "$token"
  log "run $run/$runs: hol (100 webhooks + 10 that never answer), ${seconds}s at $rate events/s"
  phase hol "$org" "$hol" "$token"
  # The stalled webhooks' attempts that ended without a response (timeouts), as a check that
  # the bad receivers were really in play.
  scrape "$tmp/metrics-$run.txt"
  stalled=$(metric 'hookd_delivery_attempts_total{class="error"}' "$tmp/metrics-$run.txt")
  results+=("$(jq -c -n --slurpfile c "$tmp/load-clean.json" --slurpfile h "$tmp/load-hol.json" \
    --argjson stalled "${stalled:-0}" \
    '{stalled_timeouts: $stalled, clean: {p50_ms: ($c[0].deliver.latency_us.p50 / 1000), p99_ms: ($c[0].deliver.latency_us.p99 / 1000),
              deliveries: $c[0].deliver.deliveries, missing: $c[0].deliver.missing},
      hol: {p50_ms: ($h[0].deliver.latency_us.p50 / 1000), p99_ms: ($h[0].deliver.latency_us.p99 / 1000),
            deliveries: $h[0].deliver.deliveries, missing: $h[0].deliver.missing}}
     | . + {p99_ratio: (if .clean.p99_ms > 0 then (.hol.p99_ms / .clean.p99_ms * 100 | round / 100) else null end)}')")
  log "run $run: ${results[-1]}"
  stop_pid "$hookd_pid" 20
done

printf '%s\n' "${results[@]}" | jq -s \
  --arg rate "$rate" --arg seconds "$seconds" --arg per_webhook "$per_webhook" --arg timeout "$timeout" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  {rate_events_per_s: ($rate | tonumber), seconds: ($seconds | tonumber),
   max_inflight_per_webhook: ($per_webhook | tonumber), delivery_timeout: $timeout,
   runs: .,
   median: {clean_p50_ms: (map(.clean.p50_ms) | median), clean_p99_ms: (map(.clean.p99_ms) | median),
            hol_p50_ms: (map(.hol.p50_ms) | median), hol_p99_ms: (map(.hol.p99_ms) | median),
            p99_ratio: (map(.p99_ratio) | median)}}' | tee "$tmp/summary.json"
jq -r '.median | "\nhol.sh medians: clean p50 \(.clean_p50_ms) ms p99 \(.clean_p99_ms) ms | with 10 stalled webhooks p50 \(.hol_p50_ms) ms p99 \(.hol_p99_ms) ms | p99 ratio \(.p99_ratio)"' \
  "$tmp/summary.json" >&2
