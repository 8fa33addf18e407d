#!/usr/bin/env bash
# What an event and its delivery cost hookd at a fixed, moderate rate, by thread. compare.sh's
# lower phase and profile.sh measure a delivery at the limit, where every group commit carries
# hundreds of changes and every thread finds more work when it wakes; below the limit the groups
# are small and a thread hands over to another for almost every event, so a delivery costs more
# (bench/README.md). This counts that cost, in figures that vary less from run to run than a
# latency does: CPU time, context switches and system calls per event, per thread.
#
#   bash bench/at_rate.sh [--bin-dir DIR] [--rate R] [--seconds S] [--projects P]
#
#   DIR   where hookd and hookd-load are (default build/release/bin, or $BENCH_BIN_DIR)
#   R     events per second, open loop (default 3000; 100..50000)
#   S     seconds of load (default 6; 4..60); the counting window is its middle, S - 2 seconds
#   P     projects, one webhook each at hookd-load's own receiver (default 8)
#
# hookd --threads 1 --allow-private-targets runs on core 0 with a fresh data dir (fsync on, as
# in production), hookd-load --scenario deliver on core 1 (64 connections, --rate R). Once
# hookd counts events (hookd_events_total on /metrics), and one second more, perf stat counts
# hookd's context switches and system calls by thread for S - 2 seconds, and /proc gives each
# thread's CPU time over the same window; both are divided by the events hookd took in that
# window (from /metrics again). hookd-load must report every delivery received and no error.
# At the end, from hookd's own histograms (the whole run): the share of first attempts, ingest
# commits and dispatch delays within 5 ms.
#
# Prints a table on stderr and a JSON summary on stdout. Needs perf (Debian's linux-perf)
# allowed to count another process's events (root, or /proc/sys/kernel/perf_event_paranoid at
# 1 or less) and tracefs for the syscalls tracepoints. Bounded: hookd's start 30 s, the run
# S + 60 s. Everything runs on 127.0.0.1.
set -euo pipefail
bench_name=at_rate.sh
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
bin_dir=${BENCH_BIN_DIR:-$here/../build/release/bin}
rate=3000
seconds=6
projects=8
while (($#)); do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --projects) projects=$2; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "at_rate.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ $rate =~ ^[0-9]+$ ]] || ((rate < 100 || rate > 50000)); then die "--rate must be 100..50000"; fi
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 4 || seconds > 60)); then die "--seconds must be 4..60"; fi
if ! [[ $projects =~ ^[0-9]+$ ]] || ((projects < 1 || projects > 100)); then die "--projects must be 1..100"; fi
bench_require perf jq curl taskset
for tool in hookd hookd-load; do
  [[ -x $bin_dir/$tool ]] || die "$bin_dir/$tool is missing: build it (cmake --preset release && cmake --build build/release)"
done
if [[ $(id -u) -ne 0 ]] && (($(cat /proc/sys/kernel/perf_event_paranoid) > 1)); then
  die "perf may not count another process's events here: run as root, or set /proc/sys/kernel/perf_event_paranoid to 1"
fi
bench_pick_cpus
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-at-rate-XXXXXX")
trap bench_cleanup EXIT
admin_token=$(random_hex 24)

port=$(quiet_port) || die "no free port below the ephemeral range"
hookd_start "$bin_dir/hookd" "$tmp/hookd.log" --data-dir "$tmp/data" --listen "127.0.0.1:$port" \
  --threads 1 --allow-private-targets
log "hookd at $hookd_url (pid $hookd_pid), $rate events/s for ${seconds}s over $projects webhooks"

events_total() {
  curl -sS --max-time 5 "$hookd_url/metrics" | awk '$1 == "hookd_events_total" {v = $2} END {print v}'
}

taskset -c "$client_cpu" "$bin_dir/hookd-load" --url "$hookd_url" \
  --admin-token "$admin_token" --scenario deliver --projects "$projects" --webhooks 1 \
  --connections 64 --rate "$rate" --duration "$seconds" --quiet >"$tmp/load.json" 2>"$tmp/load.err" &
load_pid=$!
bench_track "$load_pid"

bound=$((SECONDS + 30))
until [[ $(events_total) =~ ^[1-9] ]]; do
  kill -0 "$load_pid" 2>/dev/null || { cat "$tmp/load.err" >&2; die "hookd-load ended before any event"; }
  ((SECONDS < bound)) || die "no event within 30 s"
  sleep 0.1
done
sleep 1
window=$((seconds - 2))
kinds=(fdatasync futex epoll_wait timerfd_settime sendmsg recvmsg recvfrom sendto write)
events=$(printf 'syscalls:sys_enter_%s,' "${kinds[@]}")
# The events and the threads' CPU are read inside perf's own window (its command), so that all
# three figures cover the same seconds; perf counts hookd's threads only (-p).
export hookd_url hookd_pid tmp window
export -f events_total proc_thread_ticks
# shellcheck disable=SC2016  # expanded by the inner bash, from the exported variables
perf stat -e "cs,${events%,}" --per-thread -x, -p "$hookd_pid" -o "$tmp/stat.csv" -- bash -c '
  events_total >"$tmp/events.before"; proc_thread_ticks "$hookd_pid" >"$tmp/ticks.before"
  sleep "$window"
  proc_thread_ticks "$hookd_pid" >"$tmp/ticks.after"; events_total >"$tmp/events.after"' \
  2>"$tmp/perf.log" || { cat "$tmp/perf.log" >&2; die "perf stat failed (the syscalls tracepoints need tracefs)"; }
counted=$(($(cat "$tmp/events.after") - $(cat "$tmp/events.before")))
((counted > 0)) || die "hookd took no event in the counting window"

bound=$((SECONDS + seconds + 60))
while kill -0 "$load_pid" 2>/dev/null; do
  ((SECONDS < bound)) || die "hookd-load did not finish in time"
  sleep 0.2
done
wait "$load_pid" || { cat "$tmp/load.err" >&2; die "hookd-load failed"; }
jq -e '.deliver.missing == 0 and ([.errors[]] | add) == 0' "$tmp/load.json" >/dev/null ||
  die "hookd-load reports missing deliveries or errors: $(jq -c '{errors, missing: .deliver.missing}' "$tmp/load.json")"
# hookd's own view of the whole run (docs/operations.md, "Where a delivery's time goes"): set
# beside hookd-load's latencies, it says whether a tail is inside hookd or outside it.
scrape "$tmp/metrics"
within=$(jq -n --arg f "$(metric_share "$tmp/metrics" hookd_delivery_first_attempt_seconds 0.005)" \
  --arg c "$(metric_share "$tmp/metrics" hookd_ingest_commit_seconds 0.005)" \
  --arg d "$(metric_share "$tmp/metrics" hookd_delivery_dispatch_delay_seconds 0.005)" \
  '{first_attempt: ($f | fromjson), ingest_commit: ($c | fromjson), dispatch_delay: ($d | fromjson)}')
# RocksDB's jobs under the idle policy and the guard's raises (docs/operations.md, "RocksDB's
# background work"); --storage-background (HOOKD_STORAGE_BACKGROUND) chooses the policy.
background=$(jq -n --arg i "$(metric hookd_storage_background_idle_jobs_total "$tmp/metrics")" \
  --arg w "$(metric 'hookd_storage_background_raised_total{reason="waited"}' "$tmp/metrics")" \
  --arg f "$(metric 'hookd_storage_background_raised_total{reason="filling"}' "$tmp/metrics")" \
  --arg s "$(metric 'hookd_storage_background_raised_total{reason="stalled"}' "$tmp/metrics")" \
  '{idle_jobs: ($i | tonumber? // null), raised_waited: ($w | tonumber? // null),
    raised_filling: ($f | tonumber? // null), raised_stalled: ($s | tonumber? // null)}')

# Per thread name: "NAME cs|KIND COUNT" from perf, "NAME cpu TICKS" from /proc.
awk -F, '$2 ~ /^[0-9]+$/ {
    name = $1; sub(/-[0-9]+$/, "", name); sub(/^ +/, "", name); kind = $4
    sub(/^syscalls:sys_enter_/, "", kind); n[name " " kind] += $2 }
  END { for (k in n) print k, n[k] }' "$tmp/stat.csv" >"$tmp/counts"
awk 'NR == FNR {b[$1] = $2; next} {print $1, "cpu_ticks", $2 - b[$1]}' \
  "$tmp/ticks.before" "$tmp/ticks.after" >>"$tmp/counts"
# Per event: "NAME<TAB>KIND<TAB>VALUE", CPU in µs.
awk -v n="$counted" -v hz="$(getconf CLK_TCK)" '
  { if ($2 == "cpu_ticks") v = $3 * 1e6 / hz / n; else v = $3 / n
    printf "%s\t%s\t%.4f\n", $1, $2, v }' "$tmp/counts" >"$tmp/per_event.tsv"

{
  echo "at_rate.sh: $counted events in ${window}s counted ($rate/s offered), per event, by thread"
  printf '  %-16s %9s %9s %s\n' thread "cpu µs" switches "system calls"
  awk -F'\t' '
    { t[$1] = 1; if ($2 == "cpu_ticks") cpu[$1] = $3; else if ($2 == "cs") cs[$1] = $3
      else if ($3 > 0) sc[$1] = sc[$1] sprintf(" %s %.2f", $2, $3) }
    END { for (k in t) if (cpu[k] > 0 || cs[k] > 0) printf "  %-16s %9.1f %9.2f%s\n", k, cpu[k], cs[k], sc[k] }' \
    "$tmp/per_event.tsv" | sort -k2 -g -r
  jq -r '"  hookd-load: \(.deliver.deliveries) deliveries, first attempt p50 \(.deliver.latency_us.p50) µs, p99 \(.deliver.latency_us.p99) µs (hookd'"'"'s share, sent -> received: p50 \(.deliver.sent_to_received_us.p50) µs, p99 \(.deliver.sent_to_received_us.p99) µs); ingest p99 \(.latency_us.p99) µs"' "$tmp/load.json"
  jq -r '"  hookd, within 5 ms: first attempts \(.first_attempt), ingest commits \(.ingest_commit), dispatch delays \(.dispatch_delay)"' <<<"$within"
  jq -r '"  RocksDB jobs begun idle \(.idle_jobs), raised: waited \(.raised_waited), filling \(.raised_filling), stalled \(.raised_stalled)"' <<<"$background"
} >&2

jq -n --rawfile rows "$tmp/per_event.tsv" --slurpfile load "$tmp/load.json" \
  --argjson rate "$rate" --argjson window "$window" --argjson events "$counted" --argjson within "$within" \
  --argjson background "$background" --arg commit "$(git_commit "$here/..")" --arg load_average "$(load_1m)" '
  {rate: $rate, seconds_counted: $window, events_counted: $events, commit: $commit,
   load_average_1m: ($load_average | tonumber),
   per_event_by_thread: ($rows | split("\n") | map(select(length > 0) | split("\t"))
     | reduce .[] as $r ({}; .[$r[0]] += {(if $r[1] == "cpu_ticks" then "cpu_us"
         elif $r[1] == "cs" then "context_switches" else $r[1] end): ($r[2] | tonumber)})),
   hookd_share_within_5ms: $within, rocksdb_background: $background,
   load: {deliveries: $load[0].deliver.deliveries, missing: $load[0].deliver.missing,
          first_attempt_us: $load[0].deliver.latency_us,
          first_attempt_sent_to_received_us: $load[0].deliver.sent_to_received_us,
          ingest_us: $load[0].latency_us}}'
