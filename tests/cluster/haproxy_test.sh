#!/usr/bin/env bash
# Three hookd nodes on one private PostgreSQL behind haproxy with deploy/cluster/haproxy.cfg
# (tools/cluster-dev.sh), everything on 127.0.0.1 (docs/cluster.md, "Behind a load balancer"):
#   1. through haproxy: an organization, a project and a webhook to a local receiver
#      (hookd-sink); 300 events ingested, spread over the three nodes; every delivery arrives
#      exactly once (counted by webhook-id).
#   2. one node stopped with SIGTERM while a client keeps sending GETs and ingests with an
#      Idempotency-Key through haproxy: no request fails (haproxy took the node out during its
#      --shutdown-delay), and the other nodes deliver every event, the ones the stopped node
#      held included.
#   3. built with sanitizers: no sanitizer report in any node's log.
# Usage: tests/cluster/haproxy_test.sh [BIN_DIR]  (default: build/debug/bin; HOOKD_BIN_DIR too).
# Needs haproxy, the PostgreSQL server, curl and jq (tools/setup.sh). Exit 0: passed, 1: failed,
# 77: skipped (a tool is missing).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin_dir=${1:-${HOOKD_BIN_DIR:-$root/build/debug/bin}}
bin_dir=$(cd "$bin_dir" && pwd)
events=300

for tool in haproxy curl jq openssl; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (tools/setup.sh)"; exit 77; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
  { echo "SKIP: the PostgreSQL server is not installed (tools/setup.sh)"; exit 77; }

work=$(mktemp -d /tmp/hookd-haproxy-test-XXXXXX)
cluster_dir=""
sink_pid=""
client_pid=""
cleanup() {
  [[ -n $client_pid ]] && kill "$client_pid" 2>/dev/null
  [[ -n $sink_pid ]] && kill "$sink_pid" 2>/dev/null
  [[ -n $cluster_dir ]] && "$root/tools/cluster-dev.sh" stop "$cluster_dir"
  rm -rf "$work"
}
# The whole test is bounded: a hang fails it.
(
  trap 'kill $s 2>/dev/null; exit 0' TERM
  sleep 300 &
  s=$!
  wait $s
  echo "FAIL: the test took more than 300 s" >&2
  kill -TERM $$
) &
watchdog=$!
trap 'kill $watchdog 2>/dev/null; cleanup' EXIT
trap 'exit 1' TERM INT

# A process that ended is a zombie until its parent reaps it, which may be never here.
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{ print $3 }' "/proc/$1/stat") != Z ]]; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The receiver: one JSON line per delivery, with its webhook-id.
"$bin_dir/hookd-sink" --listen 127.0.0.1:0 >"$work/sink.log" 2>&1 &
sink_pid=$!
for _ in $(seq 100); do
  sink=$(jq -rR 'fromjson? | select(.event == "listening") | .address' "$work/sink.log" | head -n1)
  [[ -n $sink ]] && break
  sleep 0.1
done
[[ -n $sink ]] || fail "hookd-sink did not start"

cluster=$(HOOKD_BIN=$bin_dir/hookd HOOKD_ACCESS_LOG=true \
  "$root/tools/cluster-dev.sh" start --nodes 3 -- --allow-private-targets)
cluster_dir=$(jq -r .dir <<<"$cluster")
lb=$(jq -r .haproxy <<<"$cluster")
stats=$(jq -r .stats <<<"$cluster")
token=$(jq -r .adminToken <<<"$cluster")
echo "cluster: $cluster"

api() {  # METHOD PATH [BODY]: the body of a 2xx answer through haproxy, or fail
  local answer code
  answer=$(curl -sS --max-time 10 -X "$1" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' ${3:+-d "$3"} -w '\n%{http_code}' "$lb$2")
  code=${answer##*$'\n'}
  [[ $code == 2?? ]] || fail "$1 $2 answered $code: ${answer%$'\n'*}"
  echo "${answer%$'\n'*}"
}

# The deliveries the receiver got: "total distinct".
received() {
  jq -rR 'fromjson? | select(.webhookId != null) | .webhookId' "$work/sink.log" |
    awk '{ n++; seen[$0]++ } END { printf "%d %d\n", n, length(seen) }'
}

wait_received() {  # COUNT: until the receiver has COUNT distinct deliveries (at most 90 s)
  local total distinct
  for _ in $(seq 900); do
    read -r total distinct < <(received)
    ((distinct >= $1)) && return 0
    sleep 0.1
  done
  fail "the receiver got $distinct distinct deliveries ($total in all) of $1"
}

# ---- 1. spread and exactly once
org=$(api POST /api/v1/organizations '{"name":"Acme"}' | jq -r ._id)
project=$(api POST "/api/v1/organizations/$org/projects" '{"name":"Shop","slug":"shop"}' | jq -r ._id)
base=/api/v1/organizations/$org/projects/$project
webhook=$(api POST "$base/settings/webhooks" \
  "{\"name\":\"orders\",\"url\":\"$sink/orders\",\"events\":[\"order.created\"]}" | jq -r ._id)
# Every node serves the webhook before the events go (the catalog feed's bound is milliseconds).
for url in $(jq -r '.nodes[].url' <<<"$cluster"); do
  for _ in $(seq 50); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
      "$url$base/settings/webhooks/$webhook") == 200 ]] && break
    sleep 0.1
  done
done

# 300 ingests on one keep-alive connection per curl (haproxy balances each request).
t0=$(date +%s.%N)
for ((batch = 0; batch < events / 30; batch++)); do
  args=()
  for ((i = 0; i < 30; i++)); do
    n=$((batch * 30 + i))
    ((i == 0)) || args+=(--next)
    args+=(-s -o /dev/null -w '%{http_code}\n' --max-time 10 -X POST
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json'
      -d "{\"type\":\"order.created\",\"data\":{\"n\":$n}}" "$lb$base/events")
  done
  curl "${args[@]}" >>"$work/ingest.codes"
done
accepted=$(grep -c '^202$' "$work/ingest.codes" || true)
((accepted == events)) || fail "$accepted of $events ingests answered 202: $(sort "$work/ingest.codes" | uniq -c | tr '\n' ' ')"

# Each node's access log: how many of the ingests it answered.
per_node=()
for log in $(jq -r '.nodes[].log' <<<"$cluster"); do
  per_node+=("$(jq -R 'fromjson? | select(.event == "access" and .method == "POST" and .status == 202
    and (.path | endswith("/events")))' -c "$log" | wc -l)")
done
echo "ingests per node: ${per_node[*]}"
for count in "${per_node[@]}"; do
  ((count >= events / 6)) || fail "haproxy did not spread the ingests over the nodes: ${per_node[*]}"
done

wait_received "$events"
t1=$(date +%s.%N)
sleep 1  # a duplicate would arrive now
read -r total distinct < <(received)
echo "phase 1: $events events, $total deliveries received, $distinct distinct, $(seconds "$t0" "$t1") s"
((total == events && distinct == events)) || fail "expected each of $events deliveries once, got $total ($distinct distinct)"

# ---- 2. a node stopped under traffic
# The client: batches of a GET and a keyed ingest, on keep-alive connections, until told to stop.
client() {
  local n=0 args i
  while [[ ! -f $work/client.stop ]]; do
    args=()
    for ((i = 0; i < 10; i++)); do
      n=$((n + 1))
      ((i == 0)) || args+=(--next)
      args+=(-s -o /dev/null -w 'GET %{http_code}\n' --max-time 10
        -H "Authorization: Bearer $token" "$lb$base/settings/webhooks/$webhook"
        --next -s -o /dev/null -w 'POST %{http_code}\n' --max-time 10 -X POST
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json'
        -H "Idempotency-Key: stop-$n" -d "{\"type\":\"order.created\",\"data\":{\"k\":$n}}"
        "$lb$base/events")
    done
    curl "${args[@]}" >>"$work/client.codes" || true
  done
}
client &
client_pid=$!
sleep 2
victim=$(jq -r '.nodes[1].pid' <<<"$cluster")
stopped_at=$(date +%s.%N)
kill -TERM "$victim"
# haproxy must take the node out on its /readyz 503s, within the node's --shutdown-delay (5 s),
# while it still serves: not later, on refused connections.
down_at=""
for _ in $(seq 100); do
  if curl -s "${stats};csv" | awk -F, '$1 == "hookd" && $2 == "n2" && $18 ~ /^DOWN/ { f = 1 } END { exit !f }'; then
    down_at=$(date +%s.%N)
    break
  fi
  sleep 0.1
done
[[ -n $down_at ]] || fail "haproxy did not mark node 2 down within 10 s of its SIGTERM"
for _ in $(seq 300); do
  alive "$victim" || break
  sleep 0.1
done
alive "$victim" && fail "node 2 did not exit within 30 s of SIGTERM"
gone_at=$(date +%s.%N)
sleep 2
touch "$work/client.stop"
wait "$client_pid" || true
client_pid=""

gets=$(grep -c '^GET ' "$work/client.codes" || true)
posts=$(grep -c '^POST ' "$work/client.codes" || true)
failed=$(grep -v -c -e '^GET 200$' -e '^POST 202$' "$work/client.codes" || true)
csv=$(curl -s "${stats};csv")
col() { awk -F, -v name="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name || $i == "# " name) c = i; next }
  $1 == "hookd" && $2 == "BACKEND" { print $c }' <<<"$csv"; }
down_line=$(grep -m1 'hookd/n2 is DOWN' "$cluster_dir/haproxy.log" || true)
echo "phase 2: node 2 marked down $(seconds "$stopped_at" "$down_at") s and exited $(seconds "$stopped_at" "$gone_at") s after SIGTERM;" \
  "client: $gets GETs, $posts keyed ingests, $failed failed;" \
  "haproxy: retries $(col wretr), redispatches $(col wredis), 5xx $(col hrsp_5xx)"
echo "haproxy: $down_line"
((failed == 0)) || fail "requests failed while node 2 stopped: $(grep -v -e '^GET 200$' -e '^POST 202$' "$work/client.codes" | sort | uniq -c | tr '\n' ' ')"
[[ $down_line == *"code: 503"* ]] || fail "haproxy did not take node 2 out on its /readyz 503: $down_line"
awk -v a="$stopped_at" -v b="$down_at" 'BEGIN { exit !(b - a < 5) }' ||
  fail "haproxy marked node 2 down after its 5 s shutdown delay"

# Every keyed ingest made one event (a replay answers the first one): the remaining nodes deliver
# all of them, the ones node 2 held when it stopped included.
wait_received $((events + posts))
sleep 1
read -r total distinct < <(received)
echo "phase 2: $((events + posts)) events in all, $total deliveries received, $distinct distinct ($((total - distinct)) duplicate)"
((distinct == events + posts)) || fail "expected $((events + posts)) distinct deliveries, got $distinct"
# In a sanitizer build (the ASan suite), a report in any node's log fails the test: the nodes
# still running, and node 2's, which exited (its leak check ran at exit).
for log in $(jq -r '.nodes[].log' <<<"$cluster"); do
  if grep -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    grep -m5 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" >&2
    fail "a sanitizer report in $(basename "$log")"
  fi
done
echo "PASS"
