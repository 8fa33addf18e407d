#!/usr/bin/env bash
# hookd against nginx and against itself, over loopback, in one bounded command.
#
#   bash bench/compare.sh [--only PHASES] [--quick] [--bin-dir DIR]
#
#   PHASES   comma-separated, default all: get,list,cpu,latency,post,fanout,lower,ingest,million,idle
#   --quick  shorter runs (3 s wrk runs, 4-5 s hookd-load runs, 100 000 webhooks): about 3 minutes
#   DIR      where hookd, hookd-load, idle_probe are (default build/release/bin, or $BENCH_BIN_DIR)
#   BENCH_SECONDS   seconds per wrk run (default 8, quick 3)
#   BENCH_WEBHOOKS  webhooks created by `million` (default 1000000, quick 100000)
#   BENCH_BUDGET    total time budget in seconds (default 2400, quick 900)
#   BENCH_SIGNING   how fanout's webhooks sign: v1 (HMAC-SHA256, default) or v1a (Ed25519)
#   BENCH_IDLE_CONNECTIONS  idle connections opened by `idle` (default 10000, quick 2000)
#
# Prints a JSON summary on stdout and progress lines and a table of the figures on stderr.
# Exit status: 0 when every selected phase ran (targets may be missed: see "targets"), 1 when a
# phase failed or the time budget stopped the run (the JSON is still printed), 2 bad usage.
#
# Every server (hookd --threads 1, nginx with one process) is pinned to core 0 with taskset and
# every load generator (wrk -t1, hookd-load --threads 1) to core 1.
#
#   get      GET one webhook by id: hookd vs nginx `return 200` of hookd's exact body (cmp-checked),
#            wrk -c64, runs alternate hookd, nginx (x3) after a warm-up of each; medians, ratio.
#   list     GET the list of a project's 20 webhooks, the same way.
#   cpu      CPU time per request in the get and list runs: utime+stime deltas of the server
#            process (/proc/PID/stat, all threads, CLK_TCK ticks) over the requests wrk completed,
#            summed over the three runs; hookd/nginx. (Selecting cpu runs get and list.)
#   latency  hookd-load get, open loop (--rate) at 50% of hookd's median GET rate: p50/p99/p99.9;
#            kept_up is false when fewer than 98% of the scheduled requests completed in time
#            (the latency is then a growing backlog's age, as when other work takes the core).
#   post     POST create with fsync at 1, 4, 16, 64, 256 connections (wrk + Lua, rotating over
#            512 projects, --max-webhooks-per-project 1000000): req/s and writes per fsync from
#            /metrics deltas; then 64 connections on a fresh hookd with fsync and on a fresh
#            one with --unsafe-no-fsync (both from an empty catalog): their ratio.
#   fanout   hookd (--allow-private-targets) delivering to hookd-load's deliver receiver,
#            10 webhooks per event: deliveries/s against hookd's GET rate (from get, or a
#            reference wrk run when get is not selected).
#   lower    the lower bound of a delivery: hookd (--allow-private-targets) delivering to
#            hookd-sink (every signature verified), 10 webhooks per event, events posted by wrk
#            -c16 for the load time, until the last delivery arrived: hookd's CPU per delivery
#            and deliveries/s; then the same requests (same body and headers, each webhook's
#            signed once beforehand with openssl) sent to the same hookd-sink by wrk -t1 -c32
#            pinned to hookd's core: its CPU per request (bash `time`). hookd/raw CPU ratio and
#            fan-out against hookd's GET rate (from get, or a reference wrk run). Both CPU
#            figures also come split into user space and the kernel's (system) time, hookd's
#            also by thread (us_per_delivery_by_thread: its threads' names, docs/operations.md).
#   ingest   ingest -> first delivery attempt: hookd-load deliver closed loop (1 webhook per
#            event, 64 connections) gives the max ingest rate; then, on a fresh hookd, open loop
#            at half that rate: delivery latency p50/p99 from the event's intended send time
#            (delivery_latency_us) and hookd's share of it (delivery_sent_to_received_us: from
#            the event's request written to the kernel's receive time of its delivery, the
#            target; send_late_us: how late hookd-load sent, which the first includes);
#            kept_up is false when the deliveries fell behind the events (a backlog's age again);
#            hookd_share_within_5ms: the share of hookd's own first attempts, ingest commits and
#            dispatch delays within 5 ms, from its /metrics histograms at the end of the run.
#   million  hookd --unsafe-no-fsync, fresh data dir: VmRSS before and after hookd-load creates
#            BENCH_WEBHOOKS webhooks over BENCH_WEBHOOKS/100 projects (limit 100 each); SIGTERM,
#            restart on the same data dir and port: exec until /readyz answers 200, the load
#            times hookd logs (catalog_loaded, deliveries_loaded), VmRSS after the restart.
#   idle     resident memory per idle keep-alive connection: idle_probe opens
#            BENCH_IDLE_CONNECTIONS connections one after another to hookd, one GET by id on
#            each (answered 200), leaves them idle for 1 s and reads the server's VmRSS; the same
#            against nginx serving the same body. (after - before) * 1024 / N bytes each, and
#            hookd/nginx. Every 100th connection then sends a second GET, which must be answered.
#            Then the same over TLS: hookd restarted on the same data with an https listener,
#            nginx with ssl, both on one self-signed P-256 certificate made for the run, and
#            idle_probe --tls against each.
#
# Bounded: each phase has its own bound (it is stopped and marked failed past it) and the whole
# run a total budget (the run stops with a message past it). Everything started is killed on exit
# and the temp dir removed. Needs: wrk, nginx, jq, curl, taskset, awk, sed, split,
# hookd-load for latency, fanout, ingest and million, and idle_probe (in DIR) for idle.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench_name=compare.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

usage() { sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'; }
all_phases=(get list cpu latency post fanout lower ingest million idle)
only=$(join "${all_phases[@]}")
quick=0
bin_dir=${BENCH_BIN_DIR:-$root/build/release/bin}
while (($#)); do
  case $1 in
    --only) (($# >= 2)) || { usage >&2; exit 2; }; only=$2; shift 2 ;;
    --only=*) only=${1#--only=}; shift ;;
    --quick) quick=1; shift ;;
    --bin-dir) (($# >= 2)) || { usage >&2; exit 2; }; bin_dir=$2; shift 2 ;;
    --bin-dir=*) bin_dir=${1#--bin-dir=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
declare -A selected=()
IFS=, read -ra wanted <<<"$only"
for p in "${wanted[@]}"; do
  [[ " ${all_phases[*]} " == *" $p "* ]] || { echo "compare.sh: unknown phase '$p' (phases: $(join "${all_phases[@]}"))" >&2; exit 2; }
  selected[$p]=1
done
((${#selected[@]})) || { echo "compare.sh: --only needs at least one phase" >&2; exit 2; }
if [[ -n ${selected[cpu]:-} ]]; then selected[get]=1; selected[list]=1; fi
is_selected() { [[ -n ${selected[$1]:-} ]]; }

if ((quick)); then
  secs=${BENCH_SECONDS:-3} warmup=1 load_secs=4 latency_secs=5 drain=10
  webhook_count=${BENCH_WEBHOOKS:-100000} budget=${BENCH_BUDGET:-900}
  idle_connections=${BENCH_IDLE_CONNECTIONS:-2000}
else
  secs=${BENCH_SECONDS:-8} warmup=2 load_secs=10 latency_secs=20 drain=10
  webhook_count=${BENCH_WEBHOOKS:-1000000} budget=${BENCH_BUDGET:-2400}
  idle_connections=${BENCH_IDLE_CONNECTIONS:-10000}
fi
rounds=3
post_connections=(1 4 16 64 256)
# Creates rotate over this many projects so that a project holds a few hundred webhooks at the
# end, as under hookd's default limit of 100, rather than thousands: a create copies its
# project's webhook list, and with 64 projects that copy grew to dominate the later runs.
post_projects=512
fanout_webhooks=10
fanout_signing=${BENCH_SIGNING:-v1}
[[ $fanout_signing == v1 || $fanout_signing == v1a ]] || { echo "compare.sh: BENCH_SIGNING must be v1 or v1a" >&2; exit 2; }
ingest_projects=8
# hookd loads its whole catalog before /readyz answers 200: allow 60 s plus 1 s per 5000 webhooks.
restart_bound=$((60 + webhook_count / 5000))
((secs >= 1 && secs <= 30)) || die "BENCH_SECONDS must be 1..30, got $secs"
((webhook_count >= 100 && webhook_count <= 10000000)) || die "BENCH_WEBHOOKS must be 100..10000000"
((budget >= 60)) || die "BENCH_BUDGET must be at least 60"
((idle_connections >= 100 && idle_connections <= 50000)) || die "BENCH_IDLE_CONNECTIONS must be 100..50000"

hookd_bin=$bin_dir/hookd
load_bin=$bin_dir/hookd-load
[[ -x $hookd_bin ]] || die "no hookd at $hookd_bin (cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DHOOKD_BUILD_TESTS=OFF && ninja -C build/release hookd hookd-load)"
needs_load=()
for p in latency fanout ingest million; do is_selected "$p" && needs_load+=("$p"); done
if ((${#needs_load[@]})) && [[ ! -x $load_bin ]]; then
  die "no hookd-load at $load_bin, needed by $(join "${needs_load[@]}") (build it, or --only get,list,cpu,post)"
fi
probe_bin=$bin_dir/idle_probe
sink_bin=$bin_dir/hookd-sink
if is_selected lower; then
  [[ -x $sink_bin ]] || die "no hookd-sink at $sink_bin, needed by lower (ninja -C build/release hookd-sink)"
  bench_require openssl base64 od
fi
if is_selected idle; then
  [[ -x $probe_bin ]] || die "no idle_probe at $probe_bin, needed by idle (ninja -C build/release idle_probe)"
  bench_require openssl
  (($(ulimit -n) >= idle_connections + 256)) || ulimit -n $((idle_connections + 256)) 2>/dev/null ||
    die "idle needs $((idle_connections + 256)) file descriptors per process (ulimit -n is $(ulimit -n))"
fi
bench_require wrk nginx jq curl taskset awk sed split getconf
bench_pick_cpus
clk_tck=$(getconf CLK_TCK)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-compare.XXXXXX")
t_start=$SECONDS
total_deadline=$((t_start + budget))
phase_deadline=$total_deadline
phase=main
results=$tmp/results.json
echo '{}' >"$results"

# Progress and errors carry the elapsed time and the phase. An error is also kept in
# $tmp/last-error, so that the main loop can report why a phase stopped.
log() { printf '%s [%4ds] %s: %s\n' "$bench_name" $((SECONDS - t_start)) "$phase" "$*" >&2; }
die() {
  log "$*"
  [[ -n ${tmp:-} && -d $tmp ]] && printf '%s' "$*" >"$tmp/last-error"
  exit 1
}
# Every process started is also listed in $tmp/pids; on exit the main shell kills those still
# alive whose command line names this run's temp dir (so a reused pid is never touched).
bench_track() {
  pids+=("$1")
  echo "$1" >>"$tmp/pids"
}
untrack() {
  local kept=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
  pids=("${kept[@]}")
}
phase_pid=
main_cleanup() {
  local pid
  if [[ -n $phase_pid ]] && kill -0 "$phase_pid" 2>/dev/null; then
    kill -TERM "$phase_pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$phase_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if [[ -f $tmp/pids ]]; then
    while read -r pid; do
      if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$tmp"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$tmp/pids"
  fi
  bench_cleanup
}
trap main_cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# step_fits SECONDS: the next step may take that long; stop the phase (or the run) if it would
# end past the phase's bound (or the total budget).
step_fits() {
  local need=$1
  ((SECONDS + need <= total_deadline)) ||
    die "total time budget of ${budget}s would be exceeded by the next step (up to ${need}s); stopping the run"
  ((SECONDS + need <= phase_deadline)) ||
    die "the phase's bound would be exceeded by the next step (up to ${need}s); stopping this phase"
}

# res_set JQ_PATH JSON: results.json gets JSON at that path.
res_set() {
  jq --argjson v "$2" "$1 = \$v" "$results" >"$results.new" || die "res_set $1: bad JSON: $2"
  mv "$results.new" "$results"
}
res_get() { jq -r "$1 | select(. != null)" "$results"; }
jarr() { printf '[%s]' "$(join "$@")"; }
sum() { printf '%s\n' "$@" | awk '{s += $1} END {printf "%d", s}'; }
metric_delta() { # metric_delta NAME BEFORE AFTER [PRINTF_FORMAT]
  local a b
  a=$(metric "$1" "$3")
  b=$(metric "$1" "$2")
  [[ -n $a && -n $b ]] || die "/metrics has no $1"
  awk -v a="$a" -v b="$b" -v f="${4:-%d}" 'BEGIN {printf f, a - b}'
}

# fresh_hookd NAME [hookd options]: a hookd on a new data dir, --threads 1, core 0.
fresh_hookd() {
  local name=$1
  shift
  mkdir -p "$tmp/$name"
  hookd_start "$hookd_bin" "$tmp/$name/hookd.log" --data-dir "$tmp/$name/data" \
    --listen 127.0.0.1:0 --threads 1 "$@"
  log "hookd $name at $hookd_url (pid $hookd_pid) $*"
}
stop_hookd() {
  stop_pid "$hookd_pid" 30
  untrack "$hookd_pid"
}

# run_load NAME BOUND [hookd-load options]: hookd-load against $hookd_url on the client core,
# killed past BOUND seconds; its summary is left in $tmp/load-NAME.json. Its progress lines go
# to $tmp/load-NAME.err, the latest one is shown every 5 s.
run_load() {
  local name=$1 bound=$2
  shift 2
  step_fits "$bound"
  local out=$tmp/load-$name.json err=$tmp/load-$name.err pid shown=$SECONDS line rc=0
  timeout --kill-after=10 "$bound" taskset -c "$client_cpu" "$load_bin" --url "$hookd_url" \
    --output "$out" "$@" 2>"$err" &
  pid=$!
  bench_track "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
    if ((SECONDS - shown >= 5)); then
      shown=$SECONDS
      line=$(grep '^{"t"' "$err" | tail -1 || true)
      [[ -n $line ]] && log "hookd-load $name: $line"
    fi
  done
  wait "$pid" || rc=$?
  untrack "$pid"
  if ((rc != 0)) || ! jq -e . "$out" >/dev/null 2>&1; then
    grep -v '^{"t"' "$err" | tail -5 >&2 || true
    ((rc == 124)) && die "hookd-load $name was stopped at its bound of ${bound}s"
    die "hookd-load $name failed (exit $rc)"
  fi
}
load_errors() { jq '[.errors[]] | add // 0' "$tmp/load-$1.json"; }

# ================================================================== phases
# ------------------------------------------------------------------ get, list, cpu, latency
read_setup() {
  fresh_hookd read
  read_pid=$hookd_pid
  org=$(provision_org "Compare read")
  project=$(provision_project "$org" "Compare read" compare-read)
  token=$(provision_token "$org" webhooks:read webhooks:write)
  hooks_path="/api/v1/organizations/$org/projects/$project/settings/webhooks"
  local i id first=
  for i in $(seq 20); do
    id=$(api POST "$hooks_path" "$token" "$(bench_webhook_body "Invoice notifications $i" "incoming-$i")" | json_field _id)
    [[ -n $id ]] || die "no webhook id"
    [[ -n $first ]] || first=$id
  done
  get_url="$hookd_url$hooks_path/$first"
  list_url="$hookd_url$hooks_path"
}

phase_read() {
  step_fits 60
  read_setup
  local u
  for u in get list; do
    local url=$get_url
    [[ $u == list ]] && url=$list_url
    curl -sS --max-time 10 -H "Authorization: Bearer $token" -D "$tmp/$u.head" -o "$tmp/$u.json" "$url"
    grep -q '^HTTP/1.1 200' "$tmp/$u.head" || die "GET $url did not answer 200"
  done
  (($(jq length "$tmp/list.json") == 20)) || die "the list does not hold 20 webhooks"
  nginx_start "$tmp/nginx" /w "$tmp/get.json" /l "$tmp/list.json"
  for u in get list; do
    local loc=/w
    [[ $u == list ]] && loc=/l
    curl -sS --max-time 10 -H "Authorization: Bearer $token" -D "$tmp/$u.nginx.head" -o "$tmp/$u.nginx.json" "$nginx_base$loc"
    cmp -s "$tmp/$u.json" "$tmp/$u.nginx.json" || die "nginx does not serve the same $u body bytes as hookd"
  done
  log "nginx at $nginx_base (pid $nginx_pid): bodies get $(wc -c <"$tmp/get.json") B, list $(wc -c <"$tmp/list.json") B, the same bytes as hookd's"
  res_set .setup "$(jq -n --arg wrk "-t1 -c64 -d${secs}s on core $client_cpu" --arg servers "core $server_cpu" \
    --argjson get_body "$(wc -c <"$tmp/get.json")" --argjson list_body "$(wc -c <"$tmp/list.json")" \
    --argjson hh "$(wc -c <"$tmp/get.head")" --argjson nh "$(wc -c <"$tmp/get.nginx.head")" \
    '{wrk: $wrk, servers: $servers, hookd_threads: 1, nginx: "one process (master_process off)",
      body_bytes: {get: $get_body, list: $list_body}, response_head_bytes: {hookd: $hh, nginx: $nh}}')"

  is_selected get && ab_compare get "$get_url" "$nginx_base/w"
  is_selected list && ab_compare list "$list_url" "$nginx_base/l"
  stop_pid "$nginx_pid" 10
  untrack "$nginx_pid"
  is_selected latency && latency_run
  return 0
}

# ab_compare KIND HOOKD_URL NGINX_URL: warm-up of each, then hookd, nginx alternately x3;
# req/s, and CPU time per request from the server's /proc/PID/stat.
ab_compare() {
  local kind=$1 hurl=$2 nurl=$3 r side url pid rps t0 t1 out
  local h_rps=() n_rps=() h_req=() n_req=() h_ticks=() n_ticks=()
  step_fits $((2 * warmup + 50))
  log "$kind: warm-up ${warmup}s each"
  run_wrk "$tmp/warm.txt" "$hurl" 64 "$warmup" >/dev/null
  run_wrk "$tmp/warm.txt" "$nurl" 64 "$warmup" >/dev/null
  for r in $(seq "$rounds"); do
    for side in hookd nginx; do
      url=$hurl pid=$read_pid
      [[ $side == nginx ]] && url=$nurl pid=$nginx_pid
      out=$tmp/$kind-$side-$r.txt
      step_fits $((secs + 25))
      t0=$(proc_cpu_ticks "$pid")
      rps=$(run_wrk "$out" "$url" 64 "$secs")
      t1=$(proc_cpu_ticks "$pid")
      (($(non2xx "$out") == 0)) || die "$side answered non-2xx to $kind"
      if [[ $side == hookd ]]; then
        h_rps+=("$rps") h_req+=("$(wrk_requests "$out")") h_ticks+=($((t1 - t0)))
      else
        n_rps+=("$rps") n_req+=("$(wrk_requests "$out")") n_ticks+=($((t1 - t0)))
      fi
      log "$kind round $r: $side $rps req/s, $((t1 - t0)) CPU ticks"
    done
  done
  local hm nm
  hm=$(median "${h_rps[@]}")
  nm=$(median "${n_rps[@]}")
  # CPU µs per request over the three runs together (a tick is 1/CLK_TCK s: too coarse per run)
  local h_us n_us
  h_us=$(awk -v t="$(sum "${h_ticks[@]}")" -v n="$(sum "${h_req[@]}")" -v k="$clk_tck" 'BEGIN {printf "%.2f", t * 1e6 / k / n}')
  n_us=$(awk -v t="$(sum "${n_ticks[@]}")" -v n="$(sum "${n_req[@]}")" -v k="$clk_tck" 'BEGIN {printf "%.2f", t * 1e6 / k / n}')
  res_set ".$kind" "$(jq -n --argjson hr "$(jarr "${h_rps[@]}")" --argjson nr "$(jarr "${n_rps[@]}")" \
    --argjson hm "$hm" --argjson nm "$nm" --argjson ratio "$(ratio "$hm" "$nm")" \
    --argjson hq "$(jarr "${h_req[@]}")" --argjson nq "$(jarr "${n_req[@]}")" \
    --argjson ht "$(jarr "${h_ticks[@]}")" --argjson nt "$(jarr "${n_ticks[@]}")" \
    --argjson hu "$h_us" --argjson nu "$n_us" --argjson cr "$(ratio "$h_us" "$n_us")" \
    --arg hl "$(awk '/^    Latency/ {print $2; exit}' "$tmp/$kind-hookd-2.txt")" \
    --arg nl "$(awk '/^    Latency/ {print $2; exit}' "$tmp/$kind-nginx-2.txt")" \
    '{hookd_rps: $hr, nginx_rps: $nr, hookd_median: $hm, nginx_median: $nm, ratio_hookd_nginx: $ratio,
      latency_avg_round2: {hookd: $hl, nginx: $nl},
      cpu: {hookd_requests: $hq, nginx_requests: $nq, hookd_ticks: $ht, nginx_ticks: $nt,
            hookd_us_per_request: $hu, nginx_us_per_request: $nu, ratio_hookd_nginx: $cr}}')"
  log "$kind medians: hookd $hm, nginx $nm req/s, ratio $(ratio "$hm" "$nm"); CPU per request hookd $h_us µs, nginx $n_us µs"
}

latency_run() {
  local get_rps source=get.hookd_median
  get_rps=$(res_get .get.hookd_median)
  if [[ -z $get_rps ]]; then
    source="reference wrk run (-c64, ${secs}s)"
    step_fits $((secs + 25))
    get_rps=$(run_wrk "$tmp/latency-ref.txt" "$get_url" 64 "$secs")
  fi
  local rate
  rate=$(awk -v r="$get_rps" 'BEGIN {printf "%d", r / 2}')
  log "latency: hookd-load get at $rate req/s (half of $get_rps), ${latency_secs}s"
  run_load latency $((latency_secs + 60)) --scenario get --token "$token" --organization "$org" \
    --project "$project" --rate "$rate" --connections 32 --warmup 2 --duration "$latency_secs"
  res_set .latency "$(jq --argjson ref "$get_rps" --arg src "$source" --argjson rate "$rate" \
    '{get_rps_reference: $ref, reference_source: $src, rate: $rate, connections: .connections,
      achieved_rps: .rps, requests: .requests, errors: .errors, latency_us: .latency_us,
      kept_up: (.rps >= 0.98 * $rate)}' "$tmp/load-latency.json")"
  log "latency: p50 $(res_get .latency.latency_us.p50) µs, p99 $(res_get .latency.latency_us.p99) µs, p99.9 $(res_get .latency.latency_us.p999) µs, errors $(load_errors latency); achieved $(res_get .latency.achieved_rps) req/s (kept up: $(res_get .latency.kept_up))"
}

# ------------------------------------------------------------------ post
# post_setup NAME [hookd options]: hookd, $post_projects projects, a token, and per connection count a Lua
# script creating webhooks with unique names, rotating over the projects.
post_setup() {
  local name=$1 i c
  shift
  fresh_hookd "$name" --max-webhooks-per-project 1000000 "$@"
  org=$(provision_org "Compare $name")
  local paths=""
  for i in $(seq "$post_projects"); do
    paths+="\"/api/v1/organizations/$org/projects/$(provision_project "$org" "Post $i" "post-$i")/settings/webhooks\","
  done
  token=$(provision_token "$org" webhooks:read webhooks:write)
  for c in "${post_connections[@]}"; do
    write_post_lua "$tmp/$name/post-$c.lua" "$paths" "$name c$c"
  done
}
# post_run NAME CONNECTIONS -> prints a JSON object
post_run() {
  local name=$1 c=$2 out=$tmp/$1/post-$2.txt rps
  step_fits $((secs + 25))
  scrape "$tmp/$name/m-before-$c.txt"
  rps=$(run_wrk "$out" "$hookd_url/" "$c" "$secs" -s "$tmp/$name/post-$c.lua")
  sleep 0.5 # creates still in flight when wrk stopped finish and count in the metrics
  scrape "$tmp/$name/m-after-$c.txt"
  local writes fsyncs
  writes=$(metric_delta hookd_catalog_commit_mutations_total "$tmp/$name/m-before-$c.txt" "$tmp/$name/m-after-$c.txt")
  fsyncs=$(metric_delta hookd_storage_fsyncs_total "$tmp/$name/m-before-$c.txt" "$tmp/$name/m-after-$c.txt")
  local per
  per=$(awk -v m="$writes" -v f="$fsyncs" 'BEGIN {if (f) printf "%.2f", m / f; else print "null"}')
  log "POST $name c=$c: $rps req/s, $writes writes in $fsyncs fsyncs ($per per fsync), non-2xx $(non2xx "$out")"
  printf '{"connections":%d,"requests_per_s":%s,"writes":%d,"fsyncs":%d,"writes_per_fsync":%s,"non_2xx":%d}' \
    "$c" "$rps" "$writes" "$fsyncs" "$per" "$(non2xx "$out")"
}
phase_post() {
  step_fits 90
  post_setup post-fsync
  local runs=() c
  for c in "${post_connections[@]}"; do runs+=("$(post_run post-fsync "$c")"); done
  stop_hookd
  # The ratio: 64 connections on two fresh hookds, with and without fsync, so that both start
  # from the same empty catalog (the series above grows its catalog run by run, and a hookd
  # without fsync would grow it faster).
  local fsync64 nofsync
  step_fits 90
  post_setup post-pair-fsync
  fsync64=$(post_run post-pair-fsync 64)
  stop_hookd
  step_fits 90
  post_setup post-pair-nofsync --unsafe-no-fsync
  nofsync=$(post_run post-pair-nofsync 64)
  stop_hookd
  res_set .post "$(jq -n --argjson runs "$(jarr "${runs[@]}")" --argjson f "$fsync64" --argjson nf "$nofsync" \
    '{projects: '"$post_projects"', fsync: $runs, fsync_64_fresh: $f, no_fsync_64: $nf,
      ratio_fsync_nofsync_64: ($f.requests_per_s / $nf.requests_per_s | . * 1000 | round / 1000)}')"
  log "POST at 64 on fresh hookds: fsync/no-fsync $(res_get .post.ratio_fsync_nofsync_64)"
}

# ------------------------------------------------------------------ fanout
phase_fanout() {
  step_fits 60
  fresh_hookd fanout --allow-private-targets
  local get_rps source=get.hookd_median
  get_rps=$(res_get .get.hookd_median)
  if [[ -z $get_rps ]]; then
    # hookd's GET rate as reference, on this hookd: one webhook, one wrk run.
    source="reference wrk run on the fanout hookd (-c64, ${secs}s)"
    org=$(provision_org "Compare fanout reference")
    project=$(provision_project "$org" "Reference" reference)
    token=$(provision_token "$org" webhooks:read webhooks:write)
    local path="/api/v1/organizations/$org/projects/$project/settings/webhooks" id
    id=$(api POST "$path" "$token" "$(bench_webhook_body "Invoice notifications" incoming)" | json_field _id)
    step_fits $((secs + 25))
    get_rps=$(run_wrk "$tmp/fanout-ref.txt" "$hookd_url$path/$id" 64 "$secs")
    log "fanout: reference GET $get_rps req/s"
  fi
  scrape "$tmp/fanout/m-before.txt"
  log "fanout: hookd-load deliver, $fanout_webhooks $fanout_signing webhooks per event, 16 connections, ${load_secs}s"
  local ticks0 wall0
  ticks0=$(proc_cpu_ticks "$hookd_pid")
  wall0=$(date +%s%N)
  run_load fanout $((load_secs + drain + 90)) --scenario deliver --admin-token "$admin_token" \
    --projects 1 --webhooks "$fanout_webhooks" --signing "$fanout_signing" --connections 16 \
    --duration "$load_secs" --drain "$drain"
  # hookd's share of a core over the run (load, drain and the wait for it), and how many
  # delivery log changes each of its commits (one fsync each) carried.
  local util ticks
  ticks=$(($(proc_cpu_ticks "$hookd_pid") - ticks0))
  util=$(awk -v t="$ticks" -v k="$clk_tck" \
    -v ns="$(($(date +%s%N) - wall0))" 'BEGIN {printf "%.2f", t / k / (ns / 1e9)}')
  scrape "$tmp/fanout/m-after.txt"
  local succeeded retries groups fsyncs
  succeeded=$(metric_delta 'hookd_deliveries_total{outcome="succeeded"}' "$tmp/fanout/m-before.txt" "$tmp/fanout/m-after.txt")
  retries=$(metric_delta hookd_delivery_retries_total "$tmp/fanout/m-before.txt" "$tmp/fanout/m-after.txt")
  groups=$(metric_delta hookd_delivery_commit_groups_total "$tmp/fanout/m-before.txt" "$tmp/fanout/m-after.txt")
  fsyncs=$(metric_delta hookd_storage_fsyncs_total "$tmp/fanout/m-before.txt" "$tmp/fanout/m-after.txt")
  local attempt_ms
  attempt_ms=$(awk -v s="$(metric_delta hookd_delivery_attempt_duration_seconds_sum "$tmp/fanout/m-before.txt" "$tmp/fanout/m-after.txt" %.6f)" \
    -v n="$(metric_delta hookd_delivery_attempt_duration_seconds_count "$tmp/fanout/m-before.txt" "$tmp/fanout/m-after.txt")" \
    'BEGIN {if (n) printf "%.2f", s * 1000 / n; else print "null"}')
  stop_hookd
  res_set .fanout "$(jq --argjson ref "$get_rps" --arg src "$source" --argjson ok "$succeeded" --argjson retries "$retries" \
    --argjson groups "$groups" --argjson fsyncs "$fsyncs" --argjson util "$util" --argjson attempt_ms "$attempt_ms" \
    --argjson ticks "$ticks" --argjson clk "$clk_tck" \
    '{webhooks_per_event: .deliver.webhooks_per_project, connections: .connections, events_per_s: .rps, events: .deliver.events,
      deliveries: .deliver.deliveries, deliveries_per_s: .deliver.deliveries_per_s, missing: .deliver.missing,
      errors: .errors, delivery_latency_us: .deliver.latency_us,
      hookd_metrics: {deliveries_succeeded: $ok, retries: $retries, delivery_commit_groups: $groups, fsyncs: $fsyncs,
                      attempt_mean_ms: $attempt_ms},
      hookd_cpu_cores_used: $util,
      hookd_cpu_us_per_delivery: (if .deliver.deliveries > 0 then ($ticks / $clk * 1e6 / .deliver.deliveries | . * 10 | round / 10) else null end),
      get_rps_reference: $ref, reference_source: $src,
      ratio_deliveries_get: (.deliver.deliveries_per_s / $ref * 1000 | round / 1000)}' "$tmp/load-fanout.json")"
  log "fanout: $(res_get .fanout.deliveries_per_s) deliveries/s ($(res_get .fanout.events_per_s) events/s), $(res_get .fanout.ratio_deliveries_get) of GET $get_rps req/s, $(res_get .fanout.hookd_cpu_us_per_delivery) µs hookd CPU per delivery, missing $(res_get .fanout.missing)"
}

# ------------------------------------------------------------------ lower
# The lower bound of a delivery (issue #15): hookd fanning out to hookd-sink, then the same
# requests, signed once beforehand, sent by wrk to the same hookd-sink from the core hookd ran on.
lower_webhooks=10
# lower_sign SECRET ID UNIX_SECONDS BODY: the v1 signature (base64 HMAC-SHA256 of id.ts.body
# keyed with the secret's base64 part), as hookd signs and the sink checks it.
lower_sign() {
  local key
  key=$(printf '%s' "${1#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  printf '%s.%s.%s' "$2" "$3" "$4" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64 -w0
}
phase_lower() {
  step_fits 60
  mkdir -p "$tmp/lower"
  # The sink's port before the webhooks that name it; the sink starts after them, with their
  # secrets (a port from a first start on port 0 was in the ephemeral range, where an outgoing
  # connection could take it before the second start: that start failed once in 14 runs).
  local port
  port=$(quiet_port) || die "lower: no free port below the ephemeral range for hookd-sink"

  fresh_hookd lower --allow-private-targets
  local org project token path j id secrets=() sink_args=()
  org=$(provision_org "Compare lower bound")
  project=$(provision_project "$org" "Lower" lower)
  token=$(provision_token "$org" webhooks:read webhooks:write events:write)
  path="/api/v1/organizations/$org/projects/$project"
  for ((j = 0; j < lower_webhooks; j++)); do
    id=$(api POST "$path/settings/webhooks" "$token" \
      "{\"name\":\"lower $j\",\"url\":\"http://127.0.0.1:$port/d/$j\",\"events\":[\"invoice.paid\"]}")
    secrets+=("$(printf '%s' "$id" | json_field secret)")
    [[ -n ${secrets[j]} ]] || die "no secret for webhook $j"
    sink_args+=(--secret "${secrets[j]}")
  done
  sink_start "$sink_bin" "$tmp/lower" "$port" "${sink_args[@]}"

  # hookd's GET rate on this hookd as the reference, unless get ran.
  local get_rps source=get.hookd_median
  get_rps=$(res_get .get.hookd_median)
  if [[ -z $get_rps ]]; then
    source="reference wrk run on the lower hookd (-c64, ${secs}s)"
    id=$(api POST "$path/settings/webhooks" "$token" "$(bench_webhook_body "Reference" reference)" | json_field _id)
    step_fits $((secs + 25))
    get_rps=$(run_wrk "$tmp/lower/ref.txt" "$hookd_url$path/settings/webhooks/$id" 64 "$secs")
    log "lower: reference GET $get_rps req/s"
  fi

  # The event: ~500 bytes of invoice JSON, like cost.sh's.
  local data='{"invoice":{"id":"in_1PQ8x2LkdIwHu7ixYq3Jk9Zp","customer":"cus_Q4mZr8LwP2sTn6","amount_due":12900,"amount_paid":12900,"currency":"eur","status":"paid","lines":[{"description":"Pro plan (monthly)","amount":9900,"quantity":1},{"description":"Extra seats","amount":3000,"quantity":3}],"period_start":"2026-11-01T00:00:00Z","period_end":"2026-12-01T00:00:00Z","metadata":{"order":"A-20431","region":"eu-west"}}}'
  printf '%s\n' 'wrk.method = "POST"' 'wrk.headers["Content-Type"] = "application/json"' \
    "wrk.body = [==[{\"type\":\"invoice.paid\",\"data\":$data}]==]" >"$tmp/lower/events.lua"
  log "lower: hookd, $lower_webhooks webhooks per event at hookd-sink, events by wrk -c16 for ${load_secs}s, until every delivery arrived"
  local r0 ticks0 t0 events expected got ticks t1 bound user0 sys0 user1 sys1
  r0=$(sink_stat received)
  read -r user0 sys0 <<<"$(proc_cpu_split "$hookd_pid")"
  proc_thread_ticks "$hookd_pid" >"$tmp/lower/threads0.txt"
  ticks0=$((user0 + sys0))
  t0=$(date +%s%N)
  step_fits $((load_secs + 20 + drain * 3))
  run_wrk "$tmp/lower/events.txt" "$hookd_url$path/events" 16 "$load_secs" -s "$tmp/lower/events.lua" >/dev/null
  (($(non2xx "$tmp/lower/events.txt") == 0)) || die "lower: hookd refused events"
  events=$(wrk_requests "$tmp/lower/events.txt")
  expected=$((events * lower_webhooks))
  bound=$((SECONDS + drain * 3))
  while :; do
    got=$(($(sink_stat received) - r0))
    ((got >= expected)) && break
    ((SECONDS < bound)) || die "lower: $got of $expected deliveries arrived within $((drain * 3)) s of the last event"
    sleep 0.05
  done
  t1=$(date +%s%N)
  read -r user1 sys1 <<<"$(proc_cpu_split "$hookd_pid")"
  proc_thread_ticks "$hookd_pid" >"$tmp/lower/threads1.txt"
  ticks=$((user1 + sys1 - ticks0))
  # Each thread's share, per delivery: less noisy than the whole when one thread's work changes.
  local by_thread
  by_thread=$(awk -v clk="$clk_tck" -v n="$expected" 'NR == FNR {a[$1] = $2; next}
      {printf "%s\t%.1f\n", $1, ($2 - a[$1]) / clk * 1e6 / n}' \
    "$tmp/lower/threads0.txt" "$tmp/lower/threads1.txt" |
    jq -Rn '[inputs | split("\t") | {(.[0]): (.[1] | tonumber)}] | add // {}')
  (($(sink_stat failedVerification) == 0)) || die "lower: hookd-sink refused hookd's signatures"
  stop_hookd

  # The raw client: each webhook's request signed once, sent over and over.
  local ts body sig lua=$tmp/lower/raw.lua
  ts=$(date +%s)
  body="{\"type\":\"invoice.paid\",\"timestamp\":\"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\",\"data\":$data}"
  {
    echo 'local reqs = {}'
    for ((j = 0; j < lower_webhooks; j++)); do
      id="msg_lower$(random_hex 8)"
      sig=$(lower_sign "${secrets[j]}" "$id" "$ts" "$body")
      echo "reqs[#reqs + 1] = wrk.format(\"POST\", \"/d/$j\", {"
      echo "  [\"content-type\"] = \"application/json\", [\"user-agent\"] = \"hookd/lower-bound\","
      echo "  [\"webhook-id\"] = \"$id\", [\"webhook-timestamp\"] = \"$ts\", [\"webhook-signature\"] = \"v1,$sig\","
      echo "  [\"traceparent\"] = \"00-$(random_hex 16)-$(random_hex 8)-01\" }, [==[$body]==])"
    done
    echo 'local n = 0'
    echo 'request = function() n = n + 1; return reqs[(n % #reqs) + 1] end'
  } >"$lua"
  log "lower: wrk -c32 sending the same requests, signed beforehand, to hookd-sink for ${load_secs}s from hookd's core"
  r0=$(sink_stat received)
  step_fits $((load_secs + 20))
  local cpu raw_rps raw_requests
  cpu=$({
    TIMEFORMAT='%U %S'
    time timeout $((load_secs + 20)) taskset -c "$server_cpu" \
      wrk -t1 -c32 -d"${load_secs}s" -s "$lua" "$sink_url" >"$tmp/lower/raw.txt" 2>&1
  } 2>&1) || {
    cat "$tmp/lower/raw.txt" >&2
    die "lower: wrk failed"
  }
  (($(non2xx "$tmp/lower/raw.txt") == 0)) || die "lower: hookd-sink refused the raw client's requests"
  (($(sink_stat failedVerification) == 0)) || die "lower: hookd-sink refused the raw client's signatures"
  raw_rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/lower/raw.txt")
  raw_requests=$(wrk_requests "$tmp/lower/raw.txt")
  got=$(($(sink_stat received) - r0))
  ((got >= raw_requests)) || die "lower: the sink counted $got of wrk's $raw_requests requests"
  stop_pid "$sink_pid" 10
  untrack "$sink_pid"

  res_set .lower "$(jq -n --argjson events "$events" --argjson deliveries "$expected" \
    --argjson ns "$((t1 - t0))" --argjson ticks "$ticks" --argjson clk "$clk_tck" \
    --argjson raw_requests "$raw_requests" --argjson raw_rps "$raw_rps" --arg cpu "$cpu" \
    --argjson ref "$get_rps" --arg src "$source" --argjson per "$lower_webhooks" \
    --argjson user_ticks "$((user1 - user0))" --argjson sys_ticks "$((sys1 - sys0))" \
    --argjson load "$(load_1m)" --argjson by_thread "$by_thread" \
    '($cpu | split(" ") | map(tonumber)) as $raw_parts | ($raw_parts | add) as $raw_cpu
     | {webhooks_per_event: $per, load_average_1m: $load,
        hookd: {events: $events, deliveries: $deliveries, seconds: ($ns / 1e9 | . * 100 | round / 100),
                deliveries_per_s: ($deliveries / ($ns / 1e9) | round),
                cpu_us_per_delivery: ($ticks / $clk * 1e6 / $deliveries | . * 10 | round / 10),
                user_us_per_delivery: ($user_ticks / $clk * 1e6 / $deliveries | . * 10 | round / 10),
                system_us_per_delivery: ($sys_ticks / $clk * 1e6 / $deliveries | . * 10 | round / 10),
                us_per_delivery_by_thread: $by_thread},
        raw: {client: "wrk -t1 -c32", requests: $raw_requests, requests_per_s: $raw_rps,
              cpu_s: $raw_cpu, cpu_us_per_request: ($raw_cpu * 1e6 / $raw_requests | . * 10 | round / 10),
              user_us_per_request: ($raw_parts[0] * 1e6 / $raw_requests | . * 10 | round / 10),
              system_us_per_request: ($raw_parts[1] * 1e6 / $raw_requests | . * 10 | round / 10)},
        get_rps_reference: $ref, reference_source: $src}
     | .ratio_cpu_hookd_raw = (.hookd.cpu_us_per_delivery / .raw.cpu_us_per_request | . * 100 | round / 100)
     | .ratio_fanout_get = (.hookd.deliveries_per_s / $ref | . * 1000 | round / 1000)
     | .ratio_fanout_raw = (.hookd.deliveries_per_s / .raw.requests_per_s | . * 1000 | round / 1000)')"
  log "lower: hookd $(res_get .lower.hookd.deliveries_per_s) deliveries/s at $(res_get .lower.hookd.cpu_us_per_delivery) µs CPU each ($(res_get .lower.hookd.user_us_per_delivery) user, $(res_get .lower.hookd.system_us_per_delivery) system); raw client $(res_get .lower.raw.requests_per_s) req/s at $(res_get .lower.raw.cpu_us_per_request) µs each ($(res_get .lower.raw.user_us_per_request) user, $(res_get .lower.raw.system_us_per_request) system): $(res_get .lower.ratio_cpu_hookd_raw)x the CPU; fan-out $(res_get .lower.ratio_fanout_get) of GET"
}

# ------------------------------------------------------------------ ingest
phase_ingest() {
  step_fits 60
  fresh_hookd ingest-closed --allow-private-targets
  log "ingest: closed loop, 1 webhook per event in each of $ingest_projects projects, 64 connections, ${load_secs}s"
  run_load ingest-closed $((load_secs + drain + 90)) --scenario deliver --admin-token "$admin_token" \
    --projects "$ingest_projects" --webhooks 1 --connections 64 --duration "$load_secs" --drain "$drain"
  stop_hookd
  local max rate
  max=$(jq .rps "$tmp/load-ingest-closed.json")
  rate=$(awk -v r="$max" 'BEGIN {printf "%d", r / 2}')
  ((rate >= 1)) || die "closed-loop ingest rate $max is too low"
  log "ingest: max $max events/s; open loop at $rate events/s on a fresh hookd"
  step_fits 60
  fresh_hookd ingest-open --allow-private-targets
  run_load ingest-open $((load_secs + drain + 90)) --scenario deliver --admin-token "$admin_token" \
    --projects "$ingest_projects" --webhooks 1 --connections 64 --rate "$rate" --warmup 1 \
    --duration "$load_secs" --drain "$drain"
  # hookd's own view of the same run (docs/operations.md, "Where a delivery's time goes"): the
  # share of first attempts, ingest commits and dispatch delays within 5 ms, warm-up included.
  # Set beside hookd-load's figures, it says whether a tail is inside hookd or outside it.
  local metrics=$tmp/ingest-open.metrics within
  scrape "$metrics"
  within=$(jq -n --arg f "$(metric_share "$metrics" hookd_delivery_first_attempt_seconds 0.005)" \
    --arg c "$(metric_share "$metrics" hookd_ingest_commit_seconds 0.005)" \
    --arg d "$(metric_share "$metrics" hookd_delivery_dispatch_delay_seconds 0.005)" \
    '{first_attempt: ($f | fromjson), ingest_commit: ($c | fromjson), dispatch_delay: ($d | fromjson)}')
  stop_hookd
  # When the deliveries cannot keep up with the rate, the latency is the age of a growing
  # backlog (it grows with the run's length), not the path's own latency: kept_up says which.
  res_set .ingest "$(jq -n --slurpfile c "$tmp/load-ingest-closed.json" --slurpfile o "$tmp/load-ingest-open.json" \
    --argjson projects "$ingest_projects" --argjson within "$within" \
    '{webhooks: $projects, webhooks_per_event: 1, hookd_share_within_5ms: $within,
      closed: {connections: $c[0].connections, events_per_s: $c[0].rps, ingest_latency_us: $c[0].latency_us,
               deliveries_per_s: $c[0].deliver.deliveries_per_s, missing: $c[0].deliver.missing,
               delivery_latency_us: $c[0].deliver.latency_us, errors: $c[0].errors},
      open: {rate: $o[0].rate, achieved_events_per_s: $o[0].rps, ingest_latency_us: $o[0].latency_us,
             delivery_latency_us: $o[0].deliver.latency_us,
             delivery_sent_to_received_us: $o[0].deliver.sent_to_received_us,
             send_late_us: $o[0].deliver.send_late_us, deliveries: $o[0].deliver.deliveries,
             deliveries_per_s: $o[0].deliver.deliveries_per_s, missing: $o[0].deliver.missing,
             drain_waited_s: $o[0].deliver.drain_waited_s, errors: $o[0].errors,
             kept_up: ($o[0].deliver.missing == 0 and $o[0].deliver.deliveries_per_s >= 0.9 * $o[0].rate)}}')"
  log "ingest: at $rate events/s, ingest -> first attempt p50 $(res_get .ingest.open.delivery_latency_us.p50) µs, p99 $(res_get .ingest.open.delivery_latency_us.p99) µs (ingest p99 $(res_get .ingest.open.ingest_latency_us.p99) µs); deliveries kept up: $(res_get .ingest.open.kept_up); hookd's own histograms within 5 ms: first attempt $(res_get .ingest.hookd_share_within_5ms.first_attempt), ingest commit $(res_get .ingest.hookd_share_within_5ms.ingest_commit), dispatch delay $(res_get .ingest.hookd_share_within_5ms.dispatch_delay)"
}

# ------------------------------------------------------------------ million
readyz_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1/readyz" || true; }
log_field() { grep -F "\"event\":\"$2\"" "$1" | tail -1 | jq -r ".$3 // empty" 2>/dev/null || true; }
phase_million() {
  step_fits 60
  local projects=$(((webhook_count + 99) / 100))
  fresh_hookd million --unsafe-no-fsync
  local url=$hookd_url port=${hookd_url##*:}
  sleep 1
  local rss_empty
  rss_empty=$(proc_rss_kib "$hookd_pid")
  log "million: hookd RSS $rss_empty KiB empty; creating $webhook_count webhooks over $projects projects"
  # The bound leaves time for the stop and the restart; the creates may use what the phase has left.
  local bound=$((phase_deadline - SECONDS - 90 - restart_bound))
  ((bound > 60)) || die "not enough time left in the phase for the creates"
  run_load million "$bound" --scenario create --admin-token "$admin_token" --projects "$projects" \
    --webhooks 0 --requests "$webhook_count" --duration $((bound - 30)) --connections 64 --keep
  local created rss_full
  sleep 1
  rss_full=$(proc_rss_kib "$hookd_pid")
  created=$(jq '.status["201"] // 0' "$tmp/load-million.json")
  scrape "$tmp/million/metrics.txt"
  local in_catalog
  in_catalog=$(metric 'hookd_catalog_objects{kind="webhooks"}' "$tmp/million/metrics.txt")
  log "million: $created created ($in_catalog in the catalog) at $(jq .rps "$tmp/load-million.json") req/s; RSS $rss_full KiB"
  ((created > 0)) || die "no webhook was created"

  step_fits $((70 + restart_bound))
  local t0 t1 stop_ms
  t0=$(date +%s%N)
  stop_pid "$hookd_pid" 60
  untrack "$hookd_pid"
  t1=$(date +%s%N)
  stop_ms=$(((t1 - t0) / 1000000))
  grep -qF '"event":"stopped"' "$tmp/million/hookd.log" || log "million: hookd did not log a clean stop"
  mv "$tmp/million/hookd.log" "$tmp/million/hookd-1.log"
  t0=$(date +%s%N)
  HOOKD_ADMIN_TOKEN=$admin_token taskset -c "$server_cpu" "$hookd_bin" --data-dir "$tmp/million/data" \
    --listen "127.0.0.1:$port" --threads 1 --unsafe-no-fsync 2>"$tmp/million/hookd.log" &
  hookd_pid=$!
  bench_track "$hookd_pid"
  local ready=
  while ((($(date +%s%N) - t0) / 1000000000 < restart_bound)); do
    if [[ $(readyz_status "$url") == 200 ]]; then
      ready=1
      break
    fi
    kill -0 "$hookd_pid" 2>/dev/null || { cat "$tmp/million/hookd.log" >&2; die "hookd exited on restart"; }
    sleep 0.01
  done
  t1=$(date +%s%N)
  [[ -n $ready ]] || die "hookd was not ready within ${restart_bound}s of its restart"
  local restart_ms=$(((t1 - t0) / 1000000)) rss_restart
  rss_restart=$(proc_rss_kib "$hookd_pid")
  sleep 1
  local rss_restart_1s
  rss_restart_1s=$(proc_rss_kib "$hookd_pid")
  local catalog_ms deliveries_ms loaded
  catalog_ms=$(log_field "$tmp/million/hookd.log" catalog_loaded ms)
  deliveries_ms=$(log_field "$tmp/million/hookd.log" deliveries_loaded ms)
  loaded=$(log_field "$tmp/million/hookd.log" catalog_loaded webhooks)
  stop_hookd
  res_set .million "$(jq -n --argjson n "$webhook_count" --argjson created "$created" --argjson projects "$projects" \
    --argjson cat "${in_catalog:-null}" --argjson rps "$(jq .rps "$tmp/load-million.json")" \
    --argjson e "$rss_empty" --argjson f "$rss_full" --argjson r "$rss_restart" --argjson r1 "$rss_restart_1s" \
    --argjson stop "$stop_ms" --argjson restart "$restart_ms" \
    --argjson cms "${catalog_ms:-null}" --argjson dms "${deliveries_ms:-null}" --argjson loaded "${loaded:-null}" \
    '{webhooks_requested: $n, created: $created, in_catalog: $cat, projects: $projects, create_rps: $rps,
      rss_kib: {empty: $e, after_creates: $f, after_restart: $r, after_restart_1s: $r1},
      bytes_per_webhook: (($f - $e) * 1024 / $created | round),
      bytes_per_webhook_after_restart: (($r1 - $e) * 1024 / $created | round),
      stop_ms: $stop, restart_ms: $restart,
      startup_log: {catalog_loaded_ms: $cms, deliveries_loaded_ms: $dms, webhooks_loaded: $loaded}}')"
  log "million: $(res_get .million.bytes_per_webhook) B per webhook ($(res_get .million.bytes_per_webhook_after_restart) after restart); stop $stop_ms ms, restart to ready $restart_ms ms (catalog load $catalog_ms ms)"
}

# ------------------------------------------------------------------ idle
# idle_measure NAME PORT PATH PID [idle_probe options]: idle_probe against one server; its JSON
# in $tmp/idle-NAME.json.
idle_measure() {
  local name=$1 port=$2 path=$3 pid=$4
  shift 4
  step_fits 120
  timeout --kill-after=10 120 taskset -c "$client_cpu" "$probe_bin" --port "$port" --path "$path" \
    --pid "$pid" --connections "$idle_connections" --header "Authorization: Bearer $token" "$@" \
    >"$tmp/idle-$name.json" 2>"$tmp/idle-$name.err" || {
    local rc=$?
    cat "$tmp/idle-$name.err" >&2
    die "idle_probe against $name failed (exit $rc)"
  }
  log "idle: $name $(cat "$tmp/idle-$name.json")"
}
phase_idle() {
  step_fits 90
  # Idle for up to 10 min, on both servers: opening 10 000 TLS connections can take longer than
  # the default 75 s idle timeout on a slow build or a busy machine.
  fresh_hookd idle --max-connections $((idle_connections + 64)) --idle-timeout 600s
  org=$(provision_org "Compare idle")
  project=$(provision_project "$org" "Compare idle" compare-idle)
  token=$(provision_token "$org" webhooks:read webhooks:write)
  local path="/api/v1/organizations/$org/projects/$project/settings/webhooks" id
  id=$(api POST "$path" "$token" "$(bench_webhook_body "Invoice notifications" incoming)" | json_field _id)
  [[ -n $id ]] || die "no webhook id"
  path+="/$id"
  curl -sS --max-time 10 -H "Authorization: Bearer $token" -o "$tmp/idle-get.json" "$hookd_url$path" ||
    die "GET $path failed"
  # nginx closes idle keep-alive connections once fewer than 1/16 of worker_connections are free.
  nginx_worker_connections=$((2 * idle_connections + 64)) nginx_start "$tmp/nginx-idle" /w "$tmp/idle-get.json"
  idle_measure hookd "${hookd_url##*:}" "$path" "$hookd_pid"
  idle_measure nginx "${nginx_base##*:}" /w "$nginx_pid"
  stop_pid "$nginx_pid" 10
  untrack "$nginx_pid"
  stop_hookd
  res_set .idle "$(idle_figures hookd nginx)"
  log "idle: $(res_get .idle.hookd_bytes_per_connection) B per idle connection for hookd, $(res_get .idle.nginx_bytes_per_connection) B for nginx: $(res_get .idle.ratio_hookd_nginx)x"

  # The same over TLS: hookd on the same data (the webhook and token are there) with an https
  # listener, nginx with ssl, one certificate.
  local pki=$tmp/idle-tls
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -keyout "$pki/key.pem" -out "$pki/cert.pem" 2>"$pki/openssl.err" ||
    { cat "$pki/openssl.err" >&2; die "openssl could not make the idle TLS certificate"; }
  hookd_start "$hookd_bin" "$tmp/idle/hookd-tls.log" --data-dir "$tmp/idle/data" \
    --listen 127.0.0.1:0 --threads 1 --max-connections $((idle_connections + 64)) --idle-timeout 600s \
    --tls-cert "$pki/cert.pem" --tls-key "$pki/key.pem"
  [[ $hookd_url == https://* ]] || die "hookd with --tls-cert listens on $hookd_url, not https"
  log "hookd idle-tls at $hookd_url (pid $hookd_pid)"
  nginx_tls_cert=$pki/cert.pem nginx_tls_key=$pki/key.pem \
    nginx_worker_connections=$((2 * idle_connections + 64)) nginx_start "$tmp/nginx-idle-tls" /w "$tmp/idle-get.json"
  idle_measure hookd-tls "${hookd_url##*:}" "$path" "$hookd_pid" --tls
  idle_measure nginx-tls "${nginx_base##*:}" /w "$nginx_pid" --tls
  stop_pid "$nginx_pid" 10
  untrack "$nginx_pid"
  stop_hookd
  res_set .idle.tls "$(idle_figures hookd-tls nginx-tls)"
  log "idle TLS: $(res_get .idle.tls.hookd_bytes_per_connection) B per idle connection for hookd, $(res_get .idle.tls.nginx_bytes_per_connection) B for nginx: $(res_get .idle.tls.ratio_hookd_nginx)x"
}
# idle_figures HOOKD NGINX: the JSON of two idle_measure runs side by side, with their ratio.
idle_figures() {
  jq -n --slurpfile h "$tmp/idle-$1.json" --slurpfile n "$tmp/idle-$2.json" \
    '{connections: $h[0].connections, hookd: $h[0], nginx: $n[0],
      hookd_bytes_per_connection: $h[0].bytes_per_connection,
      nginx_bytes_per_connection: $n[0].bytes_per_connection,
      ratio_hookd_nginx: (if $n[0].bytes_per_connection > 0
        then ($h[0].bytes_per_connection / $n[0].bytes_per_connection * 100 | round / 100) else null end)}'
}

# ================================================================== main
admin_token="hkd_bench_admin_$(random_hex 16)"
load_start=$(load_1m)
date_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
hookd_version=$("$hookd_bin" --version 2>/dev/null | head -1)
commit=$(git_commit "$root")
log "phases $(join "${wanted[@]}")$( ((quick)) && echo ' (quick)'); budget ${budget}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# A group's bound in seconds (the phases in one group share a hookd and its data).
group_bound() {
  case $1 in
    read) echo $((90 + 2 * (2 * warmup + 2 * rounds * (secs + 3)) + latency_secs + secs + 90)) ;;
    post) echo $((210 + 8 * (secs + 5))) ;;
    fanout) echo $((120 + secs + load_secs + drain + 90)) ;;
    lower) echo $((180 + secs + 2 * load_secs + 3 * drain)) ;;
    ingest) echo $((120 + 2 * (load_secs + drain + 90))) ;;
    million) echo $((180 + webhook_count / 1000 + restart_bound)) ;;
    idle) echo 720 ;;
  esac
}
group_phases() {
  case $1 in
    read) echo get list cpu latency ;;
    *) echo "$1" ;;
  esac
}
# run_group GROUP, in a subshell: the phase stops what it started when it ends, fails or is
# stopped (the main shell removes the temp dir at the very end).
run_group() {
  pids=()
  trap bench_stop_all EXIT
  trap 'exit 143' TERM INT
  "phase_$1"
}
failed=0
stopped=
for group in read post fanout lower ingest million idle; do
  run_it=
  for p in $(group_phases "$group"); do is_selected "$p" && run_it=1; done
  [[ -n $run_it ]] || continue
  if [[ -n $stopped ]]; then
    res_set ".phases.$group" "$(jq -n --arg s "not run: $stopped" '{status: $s}')"
    continue
  fi
  bound=$(group_bound "$group")
  phase_deadline=$((SECONDS + bound))
  ((phase_deadline <= total_deadline)) || phase_deadline=$total_deadline
  phase=$group
  rm -f "$tmp/last-error"
  group_started=$SECONDS
  group_load=$(load_1m)
  log "start (bound ${bound}s, load average $group_load)"
  run_group "$group" &
  phase_pid=$!
  killed=
  while kill -0 "$phase_pid" 2>/dev/null; do
    if ((SECONDS > phase_deadline + 45)); then
      killed=1
      log "past its bound by 45 s: stopping it"
      kill -TERM "$phase_pid" 2>/dev/null || true
      for _ in $(seq 300); do kill -0 "$phase_pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$phase_pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  rc=0
  wait "$phase_pid" || rc=$?
  phase_pid=
  status=ok
  if ((rc != 0)); then
    failed=1
    status="failed: $(cat "$tmp/last-error" 2>/dev/null || echo "exit $rc")"
    [[ -n $killed ]] && status="failed: stopped past its bound of ${bound}s"
    [[ $status == *"total time budget"* ]] && stopped="the total time budget of ${budget}s was reached"
  fi
  res_set ".phases.$group" "$(jq -n --arg s "$status" --argjson secs $((SECONDS - group_started)) \
    --argjson bound "$bound" --argjson load "$group_load" '{status: $s, seconds: $secs, bound: $bound, load_1m_start: $load}')"
  log "done in $((SECONDS - group_started))s: $status"
  phase=main
  if ((SECONDS >= total_deadline)) && [[ -z $stopped ]]; then stopped="the total time budget of ${budget}s was reached"; fi
done
[[ -n $stopped ]] && log "STOPPED: $stopped"

# ------------------------------------------------------------------ targets and summary
# target NAME JQ_VALUE OP LIMIT: appends {name, value, target, pass} when the value was measured.
targets=()
target() {
  local name=$1 value op=$3 limit=$4 pass
  value=$(res_get "$2")
  [[ -n $value && $value != null ]] || return 0
  pass=$(awk -v v="$value" -v l="$limit" -v op="$op" 'BEGIN {print ((op == ">=") ? (v >= l) : (v <= l)) ? "true" : "false"}')
  targets+=("$(jq -n --arg n "$name" --argjson v "$value" --arg t "$op $limit" --argjson p "$pass" \
    '{name: $n, value: $v, target: $t, pass: $p}')")
}
target get_ratio_hookd_nginx .get.ratio_hookd_nginx ">=" 0.85
if is_selected cpu; then
  target get_cpu_per_request_ratio_hookd_nginx .get.cpu.ratio_hookd_nginx "<=" 1.3
  target list_cpu_per_request_ratio_hookd_nginx .list.cpu.ratio_hookd_nginx "<=" 1.3
fi
target post_writes_per_fsync_at_64 '.post.fsync[]? | select(.connections == 64) | .writes_per_fsync' ">=" 32
target post_ratio_fsync_nofsync_at_64 .post.ratio_fsync_nofsync_64 ">=" 0.5
target fanout_ratio_deliveries_get .fanout.ratio_deliveries_get ">=" 0.5
target lower_ratio_cpu_hookd_raw .lower.ratio_cpu_hookd_raw "<=" 2
target lower_ratio_fanout_get .lower.ratio_fanout_get ">=" 0.5
target ingest_first_attempt_p99_us .ingest.open.delivery_sent_to_received_us.p99 "<=" 5000
target latency_get_p99_us .latency.latency_us.p99 "<=" 1000
target latency_get_p999_us .latency.latency_us.p999 "<=" 5000
target million_bytes_per_webhook .million.bytes_per_webhook "<=" 1024
target million_restart_ms .million.restart_ms "<=" 3000
target idle_bytes_ratio_hookd_nginx .idle.ratio_hookd_nginx "<=" 2
target idle_tls_bytes_ratio_hookd_nginx .idle.tls.ratio_hookd_nginx "<=" 2

jq --argjson nproc "$(nproc)" --arg cpu "$(cpu_model)" --arg kernel "$(uname -r)" \
  --argjson l0 "$load_start" --argjson l1 "$(load_1m)" --arg d0 "$date_start" \
  --arg d1 "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg version "$hookd_version" --arg commit "$commit" \
  --argjson quick "$quick" --argjson secs "$secs" --argjson webhooks "$webhook_count" \
  --argjson budget "$budget" --arg phases "$(join "${wanted[@]}")" --argjson elapsed $((SECONDS - t_start)) \
  --argjson targets "$(jarr "${targets[@]}")" --arg stopped "$stopped" \
  '{machine: {nproc: $nproc, cpu: $cpu, kernel: $kernel, load_1m_start: $l0, load_1m_end: $l1},
    date: {start: $d0, end: $d1}, elapsed_s: $elapsed,
    hookd: {version: $version, commit: $commit},
    run: {phases: $phases, quick: ($quick == 1), wrk_seconds: $secs, rounds: 3, webhooks: $webhooks,
          budget_s: $budget, stopped: (if $stopped == "" then null else $stopped end)}}
   + . + {targets: $targets}' "$results" >"$tmp/summary.json"

# The readable table, on stderr.
{
  echo
  echo "hookd vs nginx and itself ($hookd_version, $commit), load average $load_start -> $(load_1m), $((SECONDS - t_start)) s"
  jq -r '
    def n: if . == null then "-" else tostring end;
    def row($a; $b; $c; $d): [$a, $b, $c, $d] | map(n) | @tsv;
    row("figure"; "hookd"; "nginx / other"; "ratio"),
    (if .get then row("GET by id, req/s (median)"; .get.hookd_median; .get.nginx_median; .get.ratio_hookd_nginx) else empty end),
    (if .list then row("list of 20, req/s (median)"; .list.hookd_median; .list.nginx_median; .list.ratio_hookd_nginx) else empty end),
    (if .get then row("GET CPU us/request"; .get.cpu.hookd_us_per_request; .get.cpu.nginx_us_per_request; .get.cpu.ratio_hookd_nginx) else empty end),
    (if .list then row("list CPU us/request"; .list.cpu.hookd_us_per_request; .list.cpu.nginx_us_per_request; .list.cpu.ratio_hookd_nginx) else empty end),
    (if .latency then row("GET open loop at \(.latency.rate)/s (kept up: \(.latency.kept_up)): p50/p99/p99.9 us"; "\(.latency.latency_us.p50)/\(.latency.latency_us.p99)/\(.latency.latency_us.p999)"; null; null) else empty end),
    (if .post then (.post.fsync[] | row("POST fsync c=\(.connections): req/s, writes/fsync"; .requests_per_s; .writes_per_fsync; null)),
       row("POST c=64 fsync vs --unsafe-no-fsync (fresh hookds), req/s"; .post.fsync_64_fresh.requests_per_s; .post.no_fsync_64.requests_per_s; .post.ratio_fsync_nofsync_64) else empty end),
    (if .fanout then row("fan-out deliveries/s vs GET req/s"; .fanout.deliveries_per_s; .fanout.get_rps_reference; .fanout.ratio_deliveries_get),
       row("fan-out hookd CPU us/delivery, cores used"; .fanout.hookd_cpu_us_per_delivery; .fanout.hookd_cpu_cores_used; null) else empty end),
    (if .lower then row("lower bound: hookd deliveries/s vs raw client req/s (wrk, same sink)"; .lower.hookd.deliveries_per_s; .lower.raw.requests_per_s; .lower.ratio_fanout_raw),
       row("lower bound: CPU us per delivery, hookd vs raw client"; .lower.hookd.cpu_us_per_delivery; .lower.raw.cpu_us_per_request; .lower.ratio_cpu_hookd_raw),
       row("lower bound: hookd deliveries/s vs GET req/s"; .lower.hookd.deliveries_per_s; .lower.get_rps_reference; .lower.ratio_fanout_get) else empty end),
    (if .ingest then row("ingest max events/s (closed), open-loop rate"; .ingest.closed.events_per_s; .ingest.open.rate; null),
       row("ingest -> first attempt p50/p99 us (kept up: \(.ingest.open.kept_up))"; "\(.ingest.open.delivery_latency_us.p50)/\(.ingest.open.delivery_latency_us.p99)"; null; null),
       row("  of it hookd, sent -> received p50/p99 us, sent late p99"; "\(.ingest.open.delivery_sent_to_received_us.p50)/\(.ingest.open.delivery_sent_to_received_us.p99)"; .ingest.open.send_late_us.p99; null) else empty end),
    (if .million then row("\(.million.created) webhooks: bytes/webhook, after restart"; .million.bytes_per_webhook; .million.bytes_per_webhook_after_restart; null),
       row("restart to ready ms, catalog load ms"; .million.restart_ms; .million.startup_log.catalog_loaded_ms; null) else empty end),
    (if .idle then row("\(.idle.connections) idle keep-alive connections: RSS bytes each"; .idle.hookd_bytes_per_connection; .idle.nginx_bytes_per_connection; .idle.ratio_hookd_nginx) else empty end),
    (if .idle.tls then row("\(.idle.tls.connections) idle TLS keep-alive connections: RSS bytes each"; .idle.tls.hookd_bytes_per_connection; .idle.tls.nginx_bytes_per_connection; .idle.tls.ratio_hookd_nginx) else empty end),
    "",
    row("target"; "value"; "target"; "pass"),
    (.targets[] | row(.name; .value; .target; (if .pass then "pass" else "MISS" end))),
    (.phases | to_entries[] | select(.value.status != "ok") | row("phase \(.key)"; .value.status; null; null))
  ' "$tmp/summary.json" | column -t -s $'\t'
} >&2
cat "$tmp/summary.json"
[[ -z $stopped ]] && ((failed == 0))
