#!/usr/bin/env bash
# Cluster mode's cost (docs/cluster.md): what PostgreSQL storage costs a node against the
# embedded RocksDB, and what one, two and three nodes behind haproxy do with one database.
#
#   bash bench/cluster.sh [--bin-dir DIR] [--rounds N] [--seconds S] [--webhooks W] [--rate R]
#                         [--nodes "1 2 3"] [--only single|cluster]
#
#   DIR       where hookd and hookd-load are (default build/release/bin, else build/debug/bin,
#             or $BENCH_BIN_DIR)
#   N         rounds (default 3); every figure is the median over the rounds
#   S         measured seconds per load phase (default 10)
#   W         webhooks per event in the fan-out phases (default 10)
#   R         events/s of the open-loop latency phase (default 20)
#   nodes     the cluster sizes of part b (default "1 2 3")
#
# a. single: one node on RocksDB and one on PostgreSQL, alternated within each round (the order
#    flips every round), each fresh (a new data dir, a new database), with hookd-load closed loop
#    on 16 connections: GET a webhook (get), POST a webhook (create), POST an event to a project
#    without webhooks (ingest: events/s), and POST events each fanned out to W webhooks at
#    hookd-load's own receiver on 127.0.0.1 (deliver: events/s and deliveries/s, every delivery
#    counted and awaited). Beside each rate: the node's CPU-seconds per 1 000 operations, and
#    PostgreSQL's (its postmaster and every process it started) for the node on PostgreSQL.
# b. cluster: for each size, tools/cluster-dev.sh starts that many nodes on one private
#    PostgreSQL behind haproxy (with pg_stat_statements loaded); hookd-load through haproxy:
#      throughput  closed loop, 16 connections: events/s, deliveries/s (W per event); the SQL
#                  statements PostgreSQL ran per event (pg_stat_statements, reset before, every
#                  statement of every node summed after, claims and renewals included), and
#                  CPU-seconds per 1 000 events per node, and PostgreSQL's per 1 000 events;
#      latency     open loop at R events/s: ingest -> first attempt p50/p99, measured by hookd-load
#                  from each event's intended send time to each delivery's arrival (as hol.sh).
# Everything runs on 127.0.0.1; PostgreSQL runs with fsync off (tools/pg-dev.sh): the figures are
# CPU cost, not disk. Progress on stderr, a JSON summary on stdout. Exit 0 when every phase
# completed, 1 otherwise, 2 bad usage.
set -euo pipefail

bench_name=cluster.sh
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

bin_dir=${BENCH_BIN_DIR:-}
rounds=3
seconds=10
webhooks=10
rate=20
sizes="1 2 3"
only=""
while (($#)); do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --webhooks) webhooks=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --nodes) sizes=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h | --help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -z $only || $only == single || $only == cluster ]] || { echo "cluster.sh: --only single|cluster" >&2; exit 2; }
if [[ -z $bin_dir ]]; then
  bin_dir=$here/../build/release/bin
  [[ -x $bin_dir/hookd ]] || bin_dir=$here/../build/debug/bin
fi
bin_dir=$(cd "$bin_dir" && pwd)
for b in hookd hookd-load; do
  [[ -x $bin_dir/$b ]] || die "$bin_dir/$b is missing (build it first)"
done
bench_require jq curl taskset haproxy openssl
# shellcheck disable=SC2012  # version directories: plain names
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n | tail -n1 || true)
[[ -n $pg_bin && -x $pg_bin/psql ]] || die "the PostgreSQL server is missing (tools/setup.sh)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-cluster-bench-XXXXXX")
pg_dir=""
cluster_dir=""
cleanup_all() {
  # cluster_phase runs in a subshell ($(...)): it names its cluster in a file for this trap.
  if [[ -s $tmp/cluster.dir ]]; then cluster_dir=$(cat "$tmp/cluster.dir"); fi
  [[ -n $cluster_dir ]] && "$root/tools/cluster-dev.sh" stop "$cluster_dir" >/dev/null 2>&1
  [[ -n $pg_dir ]] && "$root/tools/pg-dev.sh" stop "$pg_dir" >/dev/null 2>&1
  bench_cleanup
}
trap cleanup_all EXIT
# The whole run is bounded: a hang fails it.
limit=$((rounds * (600 + seconds * 30)))
(
  trap 'kill $s 2>/dev/null; exit 0' TERM
  sleep "$limit" &
  s=$!
  wait $s
  echo "cluster.sh: no end after $limit s, stopping" >&2
  kill -TERM $$
) &
bench_track $!
trap 'exit 1' TERM INT
bench_pick_cpus
admin_token=$(random_hex 24)
export HOOKD_MASTER_KEY
HOOKD_MASTER_KEY=$(openssl rand -base64 32)
hz=$(getconf CLK_TCK)

psql_at() { "$pg_bin/psql" "$1" -qAt -v ON_ERROR_STOP=1 -c "$2"; }
cpu_ticks_of() {  # PID... -> their CPU ticks summed
  local p sum=0
  for p in "$@"; do sum=$((sum + $(proc_cpu_ticks "$p"))); done
  echo "$sum"
}
# The database's CPU: PostgreSQL's postmaster and every process it started (backends, WAL writer,
# ...). db_cpu_snapshot DIR NAME records each one's ticks in the associative array NAME;
# db_cpu_since DIR NAME prints the ticks spent since (a process started since counts whole).
db_pids() {
  local master p
  master=$(head -n1 "$1/data/postmaster.pid")
  echo "$master"
  for p in /proc/[0-9]*; do
    [[ $(awk '{ print $4 }' "$p/stat" 2>/dev/null) == "$master" ]] && echo "${p#/proc/}"
  done
  return 0
}
db_cpu_snapshot() {
  # shellcheck disable=SC2034  # a nameref: the caller's array
  local -n snap=$2
  local p
  snap=()
  # shellcheck disable=SC2034,SC2004  # an associative array's key is the pid's text
  for p in $(db_pids "$1"); do snap[$p]=$(proc_cpu_ticks "$p" 2>/dev/null || echo 0); done
}
db_cpu_since() {
  local -n base=$2
  local p now sum=0
  for p in $(db_pids "$1"); do
    now=$(proc_cpu_ticks "$p" 2>/dev/null) || continue
    sum=$((sum + now - ${base[$p]:-0}))
  done
  echo "$sum"
}
# shellcheck disable=SC2034  # filled and read through namerefs
declare -A db_before=()
per_1000_or_null() { if [[ $1 == null ]]; then echo null; else per_1000 "$1" "$2"; fi; }

# CPU-seconds per 1 000 operations: TICKS OPERATIONS [NODES]
per_1000() { awk -v t="$1" -v n="$2" -v k="${3:-1}" -v hz="$hz" 'BEGIN { if (n == 0) print "null"; else printf "%.3f\n", t / hz / n * 1000 / k }'; }

# load OUT URL SCENARIO [hookd-load args...]: hookd-load pinned to the client core, summary in OUT,
# with "${credentials[@]}" (an admin token to provision with, or a token, organization and project).
load() {
  local out=$1 url=$2 scenario=$3
  shift 3
  timeout --kill-after=10 $((seconds + 120)) taskset -c "$client_cpu" \
    "$bin_dir/hookd-load" --url "$url" --scenario "$scenario" "${credentials[@]}" \
    --connections 16 --duration "$seconds" --warmup 1 --quiet --output "$out" "$@" \
    2>"$out.err" || die "hookd-load $scenario failed: $(tail -3 "$out.err")"
  local errors
  errors=$(jq '.errors | .connect + .timeout + .io + .signature' "$out")
  ((errors == 0)) || die "hookd-load $scenario: $errors errors: $(jq -c .errors "$out")"
}

# ------------------------------------------------------------------ a. one node, both stores
single_phase() {  # ROUND STORE -> one JSON object
  local round=$1 store=$2
  local data=$tmp/data-$round-$store args=() before after out result="{}" db n_ops
  mkdir -p "$data"
  chmod 700 "$data"
  args=(--data-dir "$data" --listen 127.0.0.1:0 --allow-private-targets
    --max-webhooks-per-project 1000000 --retry-schedule 1s)
  # PostgreSQL runs with fsync off (tools/pg-dev.sh): RocksDB without its fsync too, so that both
  # sides measure CPU, not this machine's disk.
  if [[ $store == rocksdb ]]; then args+=(--unsafe-no-fsync); fi
  if [[ $store == postgresql ]]; then
    local db=hookd_r${round}
    psql_at "$pg_uri_base/postgres" "CREATE DATABASE $db" >/dev/null
    args+=(--storage "$pg_uri_base/$db")
  fi
  hookd_start "$bin_dir/hookd" "$tmp/hookd-$round-$store.log" "${args[@]}"
  for _ in $(seq 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$hookd_url/readyz") == 200 ]] && break
    sleep 0.1
  done
  local scenario extra
  for scenario in get create ingest deliver; do
    case $scenario in
      get) extra=(--webhooks 20) ;;
      create) extra=(--webhooks 0) ;;
      ingest) extra=(--webhooks 0) ;;
      deliver) extra=(--webhooks "$webhooks" --drain 60) ;;
    esac
    out=$tmp/single-$round-$store-$scenario.json
    before=$(proc_cpu_ticks "$hookd_pid")
    [[ $store == postgresql ]] && db_cpu_snapshot "$pg_dir" db_before
    load "$out" "$hookd_url" "$scenario" "${extra[@]}"
    after=$(proc_cpu_ticks "$hookd_pid")
    db=null
    if [[ $store == postgresql ]]; then db=$(db_cpu_since "$pg_dir" db_before); fi
    if [[ $scenario == deliver ]]; then
      n_ops=$(jq .deliver.events "$out")
      result=$(jq -c --slurpfile s "$out" --argjson cpu "$(per_1000 $((after - before)) "$n_ops")" \
        --argjson db "$(per_1000_or_null "$db" "$n_ops")" \
        '. + {deliver: {events_per_s: $s[0].rps, deliveries_per_s: $s[0].deliver.deliveries_per_s,
                        missing: $s[0].deliver.missing, cpu_s_per_1000_events: $cpu, db_cpu_s_per_1000_events: $db}}' <<<"$result")
    else
      n_ops=$(jq .requests "$out")
      result=$(jq -c --slurpfile s "$out" --arg k "$scenario" --argjson cpu "$(per_1000 $((after - before)) "$n_ops")" \
        --argjson db "$(per_1000_or_null "$db" "$n_ops")" \
        '. + {($k): {rps: $s[0].rps, non2xx: ([$s[0].status | to_entries[] | select(.key | startswith("2") | not) | .value] | add // 0),
                     cpu_s_per_1000: $cpu, db_cpu_s_per_1000: $db}}' <<<"$result")
    fi
    log "round $round, $store, $scenario: $(jq -c ".$scenario" <<<"$result")"
  done
  stop_pid "$hookd_pid" 20
  rm -rf "$data"
  echo "$result"
}

single_results=()
if [[ $only != cluster ]]; then
  credentials=(--admin-token "$admin_token")
  pg_json=$("$root/tools/pg-dev.sh" start)
  pg_dir=$(jq -r .dir <<<"$pg_json")
  pg_uri_base=$(jq -r .uri <<<"$pg_json")
  pg_uri_base=${pg_uri_base%/*}
  for round in $(seq "$rounds"); do
    order=(rocksdb postgresql)
    ((round % 2 == 0)) && order=(postgresql rocksdb)
    r_rocksdb="" r_postgresql=""
    for store in "${order[@]}"; do
      log "round $round/$rounds: one node on $store"
      r=$(single_phase "$round" "$store")
      if [[ $store == rocksdb ]]; then r_rocksdb=$r; else r_postgresql=$r; fi
    done
    single_results+=("$(jq -cn --argjson a "$r_rocksdb" --argjson b "$r_postgresql" '{rocksdb: $a, postgresql: $b}')")
  done
  "$root/tools/pg-dev.sh" stop "$pg_dir" >/dev/null 2>&1 || true
  pg_dir=""
fi

# ------------------------------------------------------------------ b. 1, 2, 3 nodes behind haproxy
cluster_phase() {  # ROUND NODES -> one JSON object
  local round=$1 n=$2 json lb uri pids out before after statements events
  json=$(HOOKD_BIN=$bin_dir/hookd HOOKD_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements" \
    HOOKD_SHUTDOWN_DELAY=0s HOOKD_MAX_WEBHOOKS_PER_PROJECT=1000 \
    "$root/tools/cluster-dev.sh" start --nodes "$n" -- --allow-private-targets --retry-schedule 1s)
  cluster_dir=$(jq -r .dir <<<"$json")
  echo "$cluster_dir" >"$tmp/cluster.dir"
  lb=$(jq -r .haproxy <<<"$json")
  uri=$(jq -r .postgres.uri <<<"$json")
  mapfile -t pids < <(jq -r '.nodes[].pid' <<<"$json")
  # Provisioned on node 1, then used through haproxy once every node serves the project: a
  # node learns another's writes within milliseconds, not before the next request (docs/cluster.md).
  local node_urls org project token url saved_admin=$admin_token
  mapfile -t node_urls < <(jq -r '.nodes[].url' <<<"$json")
  admin_token=$(jq -r .adminToken <<<"$json")
  hookd_url=${node_urls[0]}
  org=$(provision_org "bench-$round-$n")
  project=$(provision_project "$org" shop "shop-$round-$n")
  token=$(provision_token "$org" webhooks:read webhooks:write events:write)
  for url in "${node_urls[@]}"; do
    for _ in $(seq 100); do
      [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
        "$url/api/v1/organizations/$org/projects/$project/settings/webhooks") == 200 ]] && break
      sleep 0.05
    done
  done
  admin_token=$saved_admin
  credentials=(--token "$token" --organization "$org" --project "$project")
  psql_at "$uri" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null

  # Throughput and SQL per event, closed loop.
  out=$tmp/cluster-$round-$n-throughput.json
  psql_at "$uri" "SELECT pg_stat_statements_reset()" >/dev/null
  local pgdir db
  pgdir=$(jq -r .postgres.dir <<<"$json")
  db_cpu_snapshot "$pgdir" db_before
  before=$(cpu_ticks_of "${pids[@]}")
  # At its end hookd-load deletes the webhooks it made (the latency phase makes its own); the
  # events stay, counted below.
  load "$out" "$lb" deliver --webhooks "$webhooks" --drain 60
  after=$(cpu_ticks_of "${pids[@]}")
  db=$(db_cpu_since "$pgdir" db_before)
  # Every statement of the nodes' connections in the hookd database, but this script's own.
  statements=$(psql_at "$uri" "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s
    JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()
    AND s.query NOT ILIKE '%pg_stat_statements%'")
  psql_at "$uri" "SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 90) FROM pg_stat_statements s
    JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()
    ORDER BY calls DESC LIMIT 12" >"$tmp/statements-$round-$n.txt"
  events=$(jq .deliver.events "$out")
  # The same, per kind of statement (claims, renewals, ingests, records, ...): calls, rows and
  # server execution time, each per event accepted (divided below).
  local per_kind
  per_kind=$(psql_at "$uri" "SELECT coalesce(json_agg(k ORDER BY k.calls DESC), '[]') FROM (
    SELECT CASE WHEN query LIKE '%AS t(i int,%' THEN 'ingest'
      WHEN query LIKE '%AS t(delivery_id text, number int%' THEN 'record'
      WHEN query LIKE '%claimable AS%' OR query LIKE 'WITH due AS%' THEN 'claim'
      WHEN query LIKE 'UPDATE deliveries SET lease_until%' THEN 'renew deliveries'
      WHEN query LIKE '%renewed AS%' THEN 'renew webhooks'
      WHEN query LIKE '%SET owner = NULL%' THEN 'release webhooks'
      WHEN query LIKE 'UPDATE deliveries SET lease_owner = NULL%' THEN 'release deliveries'
      ELSE left(regexp_replace(query, '\s+', ' ', 'g'), 60) END AS kind,
      sum(calls) AS calls, sum(rows) AS rows, round(sum(total_exec_time)::numeric, 1) AS exec_ms,
      sum(shared_blks_hit + shared_blks_read) AS blocks
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    WHERE d.datname = current_database() AND s.query NOT ILIKE '%pg_stat_statements%'
    GROUP BY 1) k")
  # hookd-load counts the measured window's events, pg_stat_statements everything since the
  # reset (the warm-up's events too): divide by the events the database holds.
  local accepted
  accepted=$(psql_at "$uri" "SELECT count(*) FROM events")

  # Latency, open loop at a rate every size sustains.
  local lat=$tmp/cluster-$round-$n-latency.json
  load "$lat" "$lb" deliver --webhooks "$webhooks" --rate "$rate" --drain 30

  local result
  result=$(jq -cn --slurpfile t "$out" --slurpfile l "$lat" --argjson statements "$statements" \
    --argjson kinds "$per_kind" \
    --argjson accepted "$accepted" --argjson events "$events" \
    --argjson cpu "$(per_1000 $((after - before)) "$events" "$n")" \
    --argjson db "$(per_1000 "$db" "$events")" \
    '{events_per_s: $t[0].rps, deliveries_per_s: $t[0].deliver.deliveries_per_s,
      missing: ($t[0].deliver.missing + $l[0].deliver.missing),
      sql_statements: $statements, events_accepted: $accepted,
      sql_per_event: (if $accepted > 0 then ($statements / $accepted * 100 | round / 100) else null end),
      per_event_by_statement: (if $accepted > 0 then [$kinds[] | {kind, calls: (.calls / $accepted * 1000 | round / 1000),
        rows: (.rows / $accepted * 100 | round / 100), exec_ms: (.exec_ms / $accepted * 1000 | round / 1000),
        blocks: (.blocks / $accepted * 10 | round / 10)}] else null end),
      cpu_s_per_1000_events_per_node: $cpu, db_cpu_s_per_1000_events: $db,
      first_attempt_p50_ms: ($l[0].deliver.latency_us.p50 / 1000),
      first_attempt_p99_ms: ($l[0].deliver.latency_us.p99 / 1000)}')
  "$root/tools/cluster-dev.sh" stop "$cluster_dir" >/dev/null 2>&1 || true
  cluster_dir=""
  : >"$tmp/cluster.dir"
  echo "$result"
}

cluster_results=()
if [[ $only != single ]]; then
  for round in $(seq "$rounds"); do
    row="{}"
    read -ra order <<<"$sizes"
    ((round % 2 == 0)) && mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
    for n in "${order[@]}"; do
      log "round $round/$rounds: $n node(s) behind haproxy"
      r=$(cluster_phase "$round" "$n")
      log "round $round, $n node(s): $r"
      row=$(jq -c --arg n "$n" --argjson r "$r" '. + {($n): $r}' <<<"$row")
    done
    cluster_results+=("$row")
  done
fi

jq -n --argjson single "$(printf '%s\n' "${single_results[@]}" | jq -cs .)" \
  --argjson cluster "$(printf '%s\n' "${cluster_results[@]}" | jq -cs .)" \
  --arg cpu "$(cpu_model)" --arg cores "$(nproc)" --arg load "$(load_1m)" \
  --arg commit "$(git_commit "$root")" --arg seconds "$seconds" --arg webhooks "$webhooks" \
  --arg rate "$rate" '
  def median: map(select(. != null)) | sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def med(rows; f): [rows[] | f] | median;
  {machine: {cpu: $cpu, cores: ($cores | tonumber), load_1m_at_end: ($load | tonumber), commit: $commit},
   seconds: ($seconds | tonumber), webhooks_per_event: ($webhooks | tonumber),
   latency_rate_events_per_s: ($rate | tonumber),
   single: (if ($single | length) == 0 then null else
     {median: ([ "rocksdb", "postgresql" ] | map({key: ., value: (. as $s |
        {get_rps: med($single; .[$s].get.rps), get_cpu_s_per_1000: med($single; .[$s].get.cpu_s_per_1000),
         create_rps: med($single; .[$s].create.rps), create_cpu_s_per_1000: med($single; .[$s].create.cpu_s_per_1000),
         ingest_events_per_s: med($single; .[$s].ingest.rps), ingest_cpu_s_per_1000: med($single; .[$s].ingest.cpu_s_per_1000),
         fanout_events_per_s: med($single; .[$s].deliver.events_per_s),
         fanout_deliveries_per_s: med($single; .[$s].deliver.deliveries_per_s),
         fanout_cpu_s_per_1000_events: med($single; .[$s].deliver.cpu_s_per_1000_events),
         db_cpu_s_per_1000: {get: med($single; .[$s].get.db_cpu_s_per_1000), create: med($single; .[$s].create.db_cpu_s_per_1000),
           ingest: med($single; .[$s].ingest.db_cpu_s_per_1000), fanout_events: med($single; .[$s].deliver.db_cpu_s_per_1000_events)}})}) | from_entries),
      rounds: $single} end),
   cluster: (if ($cluster | length) == 0 then null else
     {median: ($cluster[0] | keys | map({key: ., value: (. as $n |
        {events_per_s: med($cluster; .[$n].events_per_s), deliveries_per_s: med($cluster; .[$n].deliveries_per_s),
         first_attempt_p50_ms: med($cluster; .[$n].first_attempt_p50_ms),
         first_attempt_p99_ms: med($cluster; .[$n].first_attempt_p99_ms),
         sql_per_event: med($cluster; .[$n].sql_per_event),
         cpu_s_per_1000_events_per_node: med($cluster; .[$n].cpu_s_per_1000_events_per_node),
         db_cpu_s_per_1000_events: med($cluster; .[$n].db_cpu_s_per_1000_events),
         missing: ([$cluster[] | .[$n].missing] | add)})}) | from_entries),
      rounds: $cluster} end)}' | tee "$tmp/summary.json"
missing=$(jq '[(.single.rounds // [])[] | .[] | .deliver.missing] + [(.cluster.rounds // [])[] | .[] | .missing] | add // 0' "$tmp/summary.json")
((missing == 0)) || die "$missing deliveries never arrived"
log "done; statements by count, last cluster phase:"
cat "$tmp"/statements-*.txt 2>/dev/null | tail -n 12 >&2 || true
