#!/usr/bin/env bash
# The cost of one delivery in instructions, end to end, under callgrind: hookd delivering to a
# local hookd-sink, one event (one delivery) at a time. Instruction counts do not depend on how
# busy the machine is, so two builds compare on a shared machine where timings would not.
#
#   bash bench/cost.sh [--bin-dir DIR] [--deliveries N] [--keep DIR]
#
#   DIR   where hookd and hookd-sink are (default build/release/bin, or $BENCH_BIN_DIR)
#   N     deliveries measured (default 300), after 20 unmeasured ones (connections, caches)
#   DIR   --keep: copy the callgrind files and the annotations there (for callgrind_annotate or
#         kcachegrind)
#
# hookd runs under valgrind --tool=callgrind --separate-threads=yes with instrumentation off
# while it starts and is provisioned (an organization, a project, one v1 webhook whose URL is
# the sink, subscribed to invoice.paid), and on (callgrind_control -i on) while one curl sends N
# events of ~500 bytes over one keep-alive connection, each after the previous one's 202. Once
# the sink has received all N deliveries (and verified every signature with the webhook's
# secret) and 2 s more have passed for the last attempt's record, instrumentation goes off and
# hookd stops; callgrind writes one file per thread. Everything runs on 127.0.0.1.
#
# The table (stderr; JSON on stdout) splits instructions per delivery by thread and, on the
# dispatcher's thread, by what the instructions were spent in (inclusive costs of the functions
# named in `rows` below). The kernel's side of the system calls is not counted (callgrind sees
# user space only). Bounded: hookd's start 120 s, the events 600 s. Needs: valgrind, curl, jq.
set -euo pipefail

bench_name=cost.sh
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

bin_dir=${BENCH_BIN_DIR:-$here/../build/release/bin}
deliveries=300
warmup=20
keep=
while (($#)); do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --deliveries) deliveries=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cost.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ $deliveries =~ ^[0-9]+$ ]] || ((deliveries < 10 || deliveries > 100000)); then die "--deliveries must be 10..100000"; fi
for b in hookd hookd-sink; do
  [[ -x $bin_dir/$b ]] || die "$bin_dir/$b is missing (ninja -C build/release $b)"
done
bench_require valgrind callgrind_control callgrind_annotate curl jq awk taskset

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-cost-XXXXXX")
trap bench_cleanup EXIT
bench_pick_cpus
admin_token=$(random_hex 24)

# wait_received N SECONDS: until the sink has received N deliveries.
wait_received() {
  local n=$1 bound=$2 got t0=$SECONDS
  while :; do
    got=$(sink_stat received)
    ((got >= n)) && return 0
    ((SECONDS - t0 < bound)) || die "the sink received $got of $n deliveries within ${bound}s"
    sleep 0.5
  done
}

# ------------------------------------------------------------------ run
# The sink's port before the webhook that names it; the sink starts once its secret is known
# (lib.sh's quiet_port says why not a first start on port 0).
sink_port=$(quiet_port) || die "no free port below the ephemeral range for hookd-sink"
sink_url=http://127.0.0.1:$sink_port

valgrind_args=(--tool=callgrind --separate-threads=yes --instr-atstart=no
  "--callgrind-out-file=$tmp/callgrind.out.%p")
log "hookd under callgrind (instrumentation off while it starts)"
hookd_start_bound=120
: >"$tmp/hookd.log"
HOOKD_ADMIN_TOKEN=$admin_token HOOKD_SHUTDOWN_DELAY=0s taskset -c "$server_cpu" \
  valgrind "${valgrind_args[@]}" "$bin_dir/hookd" --data-dir "$tmp/data" --listen 127.0.0.1:0 \
  --threads 1 --allow-private-targets 2>"$tmp/hookd.log" &
hookd_pid=$!
bench_track "$hookd_pid"
hookd_url=$(wait_listening "$tmp/hookd.log" "$hookd_pid" "$hookd_start_bound") || exit 1

org=$(provision_org "Cost")
project=$(provision_project "$org" "Cost" cost)
token=$(provision_token "$org" webhooks:read webhooks:write events:write)
hook=$(api POST "/api/v1/organizations/$org/projects/$project/settings/webhooks" "$token" \
  "{\"name\":\"Cost\",\"url\":\"$sink_url/cost\",\"events\":[\"invoice.paid\"]}")
secret=$(jq -r .secret <<<"$hook")
[[ $secret == whsec_* ]] || die "the webhook has no whsec_ secret: $hook"
# The sink on that port, verifying the webhook's signatures.
sink_start "$bin_dir/hookd-sink" "$tmp" "$sink_port" --secret "$secret"

# ~500 bytes of event, the size delivery_bench signs.
event='{"type":"invoice.paid","data":{"id":"in_1PJx4kLkdIwHu7ixYbq2Q9Zt","object":"invoice","customer":"cus_Q3nE8Zk1aBcDeF","currency":"eur","amount_due":4200,"amount_paid":4200,"status":"paid","hosted_invoice_url":"https://invoice.example.com/i/acct_1Nv0FGQ9RKHgCVdK/test_YWNjdF8x","lines":[{"id":"il_1PJx4kLkdIwHu7ix0","description":"Pro plan (monthly), per seat","amount":1400,"quantity":3,"period_end":1720592000}],"memo":"Thank you for your business. Thank you for your business."}}'
printf '%s' "$event" >"$tmp/event.json"
# send_events N: N events, one after another over one connection (curl reuses it).
send_events() {
  local n=$1 i
  {
    echo "silent"
    echo "show-error"
    echo "fail"
    echo "header = \"Authorization: Bearer $token\""
    echo "header = \"Content-Type: application/json\""
    echo "data = \"@$tmp/event.json\"" # every URL POSTs it (several would be joined with &)
    for i in $(seq "$n"); do
      echo "url = \"$hookd_url/api/v1/organizations/$org/projects/$project/events\""
      echo "output = /dev/null"
    done
  } >"$tmp/curl.conf"
  timeout 600 curl -K "$tmp/curl.conf" || die "sending events failed"
}

log "$warmup unmeasured deliveries"
send_events "$warmup"
wait_received "$warmup" 120
sleep 2
callgrind_control -i on "$hookd_pid" >/dev/null || die "callgrind_control -i on failed"
log "$deliveries measured deliveries"
t0=$SECONDS
send_events "$deliveries"
wait_received $((warmup + deliveries)) 600
sleep 2
callgrind_control -i off "$hookd_pid" >/dev/null || die "callgrind_control -i off failed"
measured_s=$((SECONDS - t0))
stats=$(curl -sS --max-time 10 "$sink_url/__stats")
[[ $(jq .verified <<<"$stats") == $((warmup + deliveries)) ]] || die "not every signature verified: $stats"
stop_pid "$hookd_pid" 120
stop_pid "$sink_pid" 10

# ------------------------------------------------------------------ analysis
# One file per thread: callgrind.out.PID-NN. Each thread's total, and the inclusive cost of
# every function, from callgrind_annotate.
shopt -s nullglob
files=("$tmp"/callgrind.out.*-*)
((${#files[@]})) || die "callgrind wrote no per-thread files"
for f in "${files[@]}"; do
  callgrind_annotate --inclusive=yes --threshold=100 --context=0 "$f" 2>/dev/null |
    awk '/^ *[0-9,]+ \(/ {c=$1; gsub(",", "", c); $1=""; $2=""; sub(/^  /, ""); print c "\t" $0}' \
      >"${f}.incl"
done
# thread_total FILE: the thread's instructions (PROGRAM TOTALS; 0 for a thread that ran nothing).
thread_total() { awk -F'\t' '$2 ~ /PROGRAM TOTALS/ {t = $1} END {printf "%d", t}' "$1.incl"; }
# incl FILE PREFIX...: for each prefix, the inclusive cost of the function whose name starts with
# it (callgrind_annotate lists a function once per source file its code came from, inlined parts
# included: the largest of those is the function's own inclusive cost); summed over the prefixes,
# which must name functions that do not call one another.
incl() {
  local f=$1
  shift
  awk -F'\t' -v pats="$(printf '%s\n' "$@")" '
    BEGIN {n = split(pats, p, "\n")}
    $2 !~ /PROGRAM TOTALS/ {
      name = $2; sub(/^[^:]*:/, "", name)
      for (i = 1; i <= n; i++) if (p[i] != "" && index(name, p[i]) == 1 && $1 > m[i]) m[i] = $1
    }
    END {for (i = 1; i <= n; i++) s += m[i]; printf "%d", s}' "$f.incl"
}
# The thread whose functions include PREFIX (the first, by file order).
thread_with() {
  local f
  for f in "${files[@]}"; do
    if awk -F'\t' -v p="$1" '{name = $2; sub(/^[^:]*:/, "", name)} index(name, p) == 1 {found = 1; exit} END {exit !found}' "$f.incl"; then
      echo "$f"
      return 0
    fi
  done
  return 1
}
# The thread one of whose functions matches the awk regular expression RE (the first, by file order).
thread_matching() {
  local f
  for f in "${files[@]}"; do
    if awk -F'\t' -v re="$1" '{name = $2; sub(/^[^:]*:/, "", name)} name ~ re {found = 1; exit} END {exit !found}' "$f.incl"; then
      echo "$f"
      return 0
    fi
  done
  return 1
}
dispatcher=$(thread_with 'hookd::http::(anonymous namespace)::attempt_job(') || die "no dispatcher thread in the profile"
server=$(thread_with 'hookd::http::server::impl::serve_one(') || die "no server thread in the profile"
# The writer's loop (basic_commit_writer<Batch>::run since the writer became a template).
writer=$(thread_matching '^hookd::(basic_)?commit_writer(<[^>]*>)?::run[(]') || die "no writer thread in the profile"

per() { awk -v a="$1" -v n="$deliveries" 'BEGIN {printf "%d", a / n}'; }
total_all=0
for f in "${files[@]}"; do total_all=$((total_all + $(thread_total "$f"))); done
d_total=$(thread_total "$dispatcher")
s_total=$(thread_total "$server")
w_total=$(thread_total "$writer")
others=$((total_all - d_total - s_total - w_total))

# The writer thread's share of the delivery: the attempt's records (record_attempt_op::plan) and,
# of the RocksDB writes, one commit's worth (each delivery here costs two commits, one alone: the
# event's ingest, then the attempt's record).
w_attempt_plan=$(incl "$writer" 'hookd::(anonymous namespace)::record_attempt_op::plan(')
w_ingest_plan=$(incl "$writer" 'hookd::(anonymous namespace)::ingest_op::plan(')
w_commits=$((w_total - w_attempt_plan - w_ingest_plan))
w_attempt=$((w_attempt_plan + w_commits / 2))
delivery_total=$((d_total + w_attempt))

# The dispatcher's thread by what it did. Every row is an inclusive cost of functions that do not
# call one another; "the rest" is the thread's total less the rows.
declare -a row_names row_values
row() { # row NAME PREFIX...
  local name=$1
  shift
  row_names+=("$name")
  row_values+=("$(incl "$dispatcher" "$@")")
}
# Since the signer per webhook (bench/README.md), for_webhook runs inside signer_for, and only when
# a webhook's version or its set of keys changes.
if (($(incl "$dispatcher" 'hookd::http::dispatcher::impl::signer_for(') > 0)); then
  row "signing (signer from the webhook, HMAC-SHA256, base64)" \
    'hookd::http::dispatcher::impl::signer_for(' 'hookd::webhook_signer::sign'
else
  row "signing (signer from the webhook, HMAC-SHA256, base64)" \
    'hookd::webhook_signer::for_webhook(' 'hookd::webhook_signer::sign'
fi
# Builds before the per-webhook request template (bench/README.md) had build_request, which
# signed, and add_trace_context; since, the dispatcher prepares a webhook's fixed part once
# (template_for) and the client writes the wire text in send (in "the rest").
row "request body and headers (delivery_body, build_request)" \
  'hookd::delivery_body' 'hookd::http::build_request(' 'hookd::http::dispatcher::impl::template_for('
if (($(incl "$dispatcher" 'hookd::http::add_trace_context(') > 0)); then
  row "trace context (a child traceparent per attempt)" 'hookd::http::add_trace_context('
else
  row "trace context (a child traceparent per attempt)" 'hookd::child_traceparent'
fi
row "lookups (pending delivery, webhook)" \
  'hookd::delivery_log::find_pending(' 'hookd::catalog::find_webhook('
row "scheduler (take_due, sent, next_due, decide)" \
  'hookd::scheduler::take_due(' 'hookd::scheduler::sent(' 'hookd::scheduler::next_due(' \
  'hookd::delivery_log::decide('
row "metrics and endpoint health" \
  'hookd::http::delivery_metrics::record_attempt(' 'hookd::endpoint_health::attempted(' \
  'hookd::response_excerpt'
row "attempt record (handing it to the writer)" 'hookd::delivery_log::record_attempt('
row "socket I/O: Asio's reactor and the system call wrappers (user space)" \
  'boost::asio::detail::epoll_reactor::run(' 'boost::asio::detail::epoll_reactor::start_op(' \
  'boost::asio::detail::epoll_reactor::schedule_timer<' 'boost::asio::detail::epoll_reactor::cancel_timer<' \
  'sendmsg ' 'recvmsg ' 'send ' 'recv '
row "response parse (Beast's parser)" 'boost::beast::http::basic_parser<false>::put('

# signing is inside build_request where there is one: take it out of the request row.
if (($(incl "$dispatcher" 'hookd::http::build_request(') > 0)); then
  row_values[1]=$((row_values[1] - $(incl "$dispatcher" 'hookd::webhook_signer::sign')))
fi
# Spread over the rows and threads, not a row of its own: the id hash of every unordered map.
id_hash=0
for f in "${files[@]}"; do id_hash=$((id_hash + $(incl "$f" 'hookd::object_id_hash::operator()('))); done
listed=0
for v in "${row_values[@]}"; do listed=$((listed + v)); done
rest=$((d_total - listed))

{
  pct() { awk -v a="$1" -v b="$delivery_total" 'BEGIN {printf "%.1f %%", 100 * a / b}'; }
  line() { printf '%-66s %12s %7s\n' "$1" "$(per "$2")" "$3"; }
  printf '\n%-66s %12s %7s\n' "per delivery ($deliveries, one at a time)" "instructions" "share"
  line "the delivery: dispatcher thread + its attempt record" "$delivery_total" "100 %"
  for i in "${!row_names[@]}"; do line "  ${row_names[$i]}" "${row_values[$i]}" "$(pct "${row_values[$i]}")"; done
  line "  the rest of the dispatcher thread (coroutines, client, timers)" "$rest" "$(pct "$rest")"
  line "  writer: the attempt's records (encode, plan)" "$w_attempt_plan" "$(pct "$w_attempt_plan")"
  line "  writer: half of the RocksDB commits (WAL, memtable)" "$((w_commits / 2))" "$(pct "$((w_commits / 2))")"
  line "not the delivery: the event's ingest" "$((s_total + w_ingest_plan + w_commits / 2))" ""
  line "  server thread (POST /events: HTTP, JSON, the handler)" "$s_total" ""
  line "  writer: the event and delivery records (encode, plan)" "$w_ingest_plan" ""
  line "  writer: the other half of the RocksDB commits" "$((w_commits / 2))" ""
  line "other threads (RocksDB background, sweeper)" "$others" ""
  line "all threads" "$total_all" ""
  line "  of which object_id_hash (every thread, inside the rows above)" "$id_hash" ""
} >&2

rows_json=$(for i in "${!row_names[@]}"; do
  jq -n --arg n "${row_names[$i]}" --argjson v "$(per "${row_values[$i]}")" '{name: $n, instructions: $v}'
done | jq -s .)
if [[ -n $keep ]]; then
  mkdir -p "$keep"
  cp "$tmp"/callgrind.out.* "$keep"/
  log "callgrind files in $keep"
fi
jq -n --argjson n "$deliveries" --argjson all "$(per "$total_all")" --argjson d "$(per "$d_total")" \
  --argjson delivery "$(per "$delivery_total")" --argjson wa "$(per "$w_attempt")" \
  --argjson w "$(per "$w_total")" --argjson s "$(per "$s_total")" --argjson o "$(per "$others")" \
  --argjson idh "$(per "$id_hash")" \
  --argjson rows "$rows_json" --argjson rest "$(per "$rest")" --argjson secs "$measured_s" \
  --arg commit "$(git_commit "$here/..")" --arg version "$("$bin_dir/hookd" --version | head -1)" \
  '{hookd: {version: $version, commit: $commit}, deliveries: $n, measured_seconds_under_callgrind: $secs,
    instructions_per_delivery: {delivery: $delivery, dispatcher_thread: $d, writer_attempt_record: $wa,
    all_threads: $all, dispatcher_rows: ($rows + [{name: "the rest", instructions: $rest}]),
    writer_thread: $w, server_thread: $s, other_threads: $o, object_id_hash_all_threads: $idh}}'
