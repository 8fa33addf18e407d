#!/usr/bin/env bash
# hookd against nginx over loopback, same response bytes, then POST create throughput with fsync.
#
#   bash bench/http.sh [path/to/hookd]        (default: build/release/bin/hookd, or $HOOKD_BIN)
#   BENCH_SECONDS=8 (5..10) per wrk run, BENCH_PROJECTS=64 projects that the POSTs rotate over
#
# GET-by-id: hookd (--threads 1) and nginx (one process) both pinned to core 0, wrk to core 1
# (`wrk -t1 -c64`), both sent the same Authorization header; nginx returns the exact body hookd
# returned for the webhook (and an X-Request-Id header of the same length), so both answer the
# same body bytes. Runs alternate hookd, nginx, hookd, nginx ... (3 each) after a short warm-up
# of each; the medians and their ratio are reported.
#
# POST create: wrk with a Lua script that creates webhooks with unique names, rotating over
# BENCH_PROJECTS projects (each project stays far below any realistic list size), at 1, 16 and
# 64 connections, every write fsync'd. Writes per fsync come from /metrics deltas
# (hookd_catalog_commit_mutations_total / hookd_storage_fsyncs_total).
#
# Loopback only. Everything started here is killed on exit and the temp dir removed. Bounded:
# each wrk run is BENCH_SECONDS, the whole script stops itself after 280 s.
# Needs: wrk, nginx (nginx-light; tools/setup.sh installs both), curl, taskset, awk, sed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
hookd_bin=${1:-${HOOKD_BIN:-$root/build/release/bin/hookd}}
secs=${BENCH_SECONDS:-8}
warmup_secs=2
rounds=3
post_connections=(1 16 64)
project_count=${BENCH_PROJECTS:-64}
time_budget=280

die() {
  echo "http.sh: $*" >&2
  exit 1
}
log() { echo "http.sh: $*" >&2; }

[[ -x $hookd_bin ]] || die "no hookd at $hookd_bin (build it: cmake --preset release && cmake --build --preset release --target hookd)"
for tool in wrk nginx curl taskset awk sed; do
  command -v "$tool" >/dev/null || die "$tool is missing (bash tools/setup.sh installs wrk and nginx-light)"
done
((secs >= 5 && secs <= 10)) || die "BENCH_SECONDS must be 5..10, got $secs"
((project_count >= 1 && project_count <= 1000)) || die "BENCH_PROJECTS must be 1..1000"
server_cpu=0
client_cpu=1
if (($(nproc) < 2)); then
  log "only $(nproc) CPU: server and wrk share core 0, figures will be lower"
  client_cpu=0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-http-bench.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
started_at=$SECONDS
load_start=$(cut -d' ' -f1 /proc/loadavg)
hookd_version=$("$hookd_bin" --version 2>/dev/null | head -1)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  commit="$commit+uncommitted"
fi
check_budget() {
  ((SECONDS - started_at + secs + 5 < time_budget)) || die "time budget of ${time_budget}s would be exceeded; stopping"
}

# ------------------------------------------------------------------ hookd
admin_token="hkd_bench_admin_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
HOOKD_ADMIN_TOKEN=$admin_token taskset -c "$server_cpu" "$hookd_bin" \
  --data-dir "$tmp/data" --listen 127.0.0.1:0 --threads 1 \
  --max-webhooks-per-project 1000000 2>"$tmp/hookd.log" &
hookd_pid=$!
pids+=("$hookd_pid")
hookd_url=
for _ in $(seq 100); do
  hookd_url=$(sed -n 's/.*"event":"listening","address":"\(http:[^"]*\)".*/\1/p' "$tmp/hookd.log")
  [[ -n $hookd_url ]] && break
  kill -0 "$hookd_pid" 2>/dev/null || { cat "$tmp/hookd.log" >&2; die "hookd exited"; }
  sleep 0.1
done
[[ -n $hookd_url ]] || { cat "$tmp/hookd.log" >&2; die "hookd did not start listening within 10 s"; }
log "hookd at $hookd_url (pid $hookd_pid, core $server_cpu)"

# api METHOD PATH TOKEN [BODY] -> prints the body; fails unless the status is 2xx.
api() {
  local method=$1 path=$2 token=$3 body=${4:-} out status
  local args=(-sS --max-time 10 -X "$method" -H "Authorization: Bearer $token" -o "$tmp/api.out" -w '%{http_code}')
  [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  status=$(curl "${args[@]}" "$hookd_url$path") || die "$method $path: curl failed"
  out=$(cat "$tmp/api.out")
  [[ $status == 2?? ]] || die "$method $path: HTTP $status: $out"
  printf '%s' "$out"
}
json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

org=$(api POST /api/v1/organizations "$admin_token" '{"name":"Bench Org"}' | json_field _id)
[[ -n $org ]] || die "no organization id"
projects=()
for i in $(seq "$project_count"); do
  id=$(api POST "/api/v1/organizations/$org/projects" "$admin_token" \
    "{\"name\":\"Bench $i\",\"slug\":\"bench-$i\"}" | json_field _id)
  [[ -n $id ]] || die "no project id"
  projects+=("$id")
done
token=$(api POST /api/v1/tokens "$admin_token" \
  "{\"name\":\"bench\",\"organizations\":[\"$org\"],\"scopes\":[\"webhooks:read\",\"webhooks:write\"]}" |
  json_field token)
[[ -n $token ]] || die "no token"
hooks_path="/api/v1/organizations/$org/projects/${projects[0]}/settings/webhooks"
hook=$(api POST "$hooks_path" "$token" '{"name":"Invoice notifications","url":"https://hooks.example.com/services/T024BE7LD/B08F3QZ1X/incoming","headers":{"X-Tenant":"acme-production","X-Api-Version":"2024-06-01","Authorization":"Basic YmVuY2g6c2VjcmV0LXZhbHVlLWZvci1iZW5jaA=="},"events":["invoice.paid","invoice.payment_failed","customer.*"]}' |
  json_field _id)
[[ -n $hook ]] || die "no webhook id"
get_url="$hookd_url$hooks_path/$hook"
curl -sS --max-time 10 -H "Authorization: Bearer $token" -D "$tmp/hookd.head" -o "$tmp/body.json" "$get_url"
grep -q '^HTTP/1.1 200' "$tmp/hookd.head" || die "GET webhook did not answer 200"
body_bytes=$(wc -c <"$tmp/body.json")
log "webhook $hook, GET body $body_bytes bytes"

# ------------------------------------------------------------------ nginx
# The body inside an nginx single-quoted string: '\' and ''' are escaped with '\' (nginx would
# otherwise turn \n, \t, \r into control characters), and '$' would start a variable, so it
# becomes ${dollar}, a geo variable whose value is a literal '$'.
nginx_body=$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" -e 's/\$/${dollar}/g' "$tmp/body.json")
request_id_value=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')  # 32 hex digits, like hookd's
mkdir -p "$tmp/nginx"
start_nginx() {
  local port=$1
  cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  server_tokens off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  geo \$dollar { default "\$"; }
  server {
    listen 127.0.0.1:$port;
    location = /w {
      default_type application/json;
      add_header X-Request-Id $request_id_value;
      return 200 '$nginx_body';
    }
  }
}
EOF
  taskset -c "$server_cpu" nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" &
  nginx_pid=$!
}
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
nginx_pid=
nginx_url=
for attempt in $(seq 10); do
  port=$((20000 + (RANDOM % 40000)))
  port_in_use "$port" && continue
  start_nginx "$port"
  for _ in $(seq 50); do
    port_in_use "$port" && { nginx_url="http://127.0.0.1:$port/w"; break; }
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -n $nginx_url ]]; then
    pids+=("$nginx_pid")
    break
  fi
  kill -KILL "$nginx_pid" 2>/dev/null || true
  wait "$nginx_pid" 2>/dev/null || true
  log "nginx did not start on port $port (attempt $attempt): $(tail -1 "$tmp/nginx/error.log" 2>/dev/null)"
done
[[ -n $nginx_url ]] || die "nginx did not start"
curl -sS --max-time 10 -H "Authorization: Bearer $token" -D "$tmp/nginx.head" -o "$tmp/nginx.json" "$nginx_url"
cmp -s "$tmp/body.json" "$tmp/nginx.json" || die "nginx does not serve the same body bytes as hookd"
hookd_head_bytes=$(wc -c <"$tmp/hookd.head")
nginx_head_bytes=$(wc -c <"$tmp/nginx.head")
log "nginx at $nginx_url (pid $nginx_pid): same $body_bytes body bytes; headers $hookd_head_bytes (hookd) vs $nginx_head_bytes (nginx) bytes"

# ------------------------------------------------------------------ wrk
# run_wrk OUT URL CONNECTIONS SECONDS [wrk args...] -> Requests/sec; fails on socket errors
run_wrk() {
  local out=$1 url=$2 conns=$3 duration=$4
  shift 4
  timeout $((duration + 20)) taskset -c "$client_cpu" \
    wrk -t1 -c"$conns" -d"${duration}s" -H "Authorization: Bearer $token" "$@" "$url" >"$out" 2>&1 ||
    { cat "$out" >&2; die "wrk failed"; }
  local rps
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  [[ -n $rps ]] || { cat "$out" >&2; die "wrk printed no Requests/sec"; }
  printf '%s' "$rps"
}
non2xx() { awk '/Non-2xx or 3xx responses:/ {n=$5} END {print n+0}' "$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'; }

log "warm-up: ${warmup_secs}s each"
run_wrk "$tmp/warm.txt" "$get_url" 64 "$warmup_secs" >/dev/null
run_wrk "$tmp/warm.txt" "$nginx_url" 64 "$warmup_secs" >/dev/null

hookd_get=()
nginx_get=()
for r in $(seq "$rounds"); do
  check_budget
  rps=$(run_wrk "$tmp/get-hookd-$r.txt" "$get_url" 64 "$secs")
  (($(non2xx "$tmp/get-hookd-$r.txt") == 0)) || die "hookd answered non-2xx to GET"
  hookd_get+=("$rps")
  log "round $r: hookd GET $rps req/s"
  check_budget
  rps=$(run_wrk "$tmp/get-nginx-$r.txt" "$nginx_url" 64 "$secs")
  (($(non2xx "$tmp/get-nginx-$r.txt") == 0)) || die "nginx answered non-2xx"
  nginx_get+=("$rps")
  log "round $r: nginx GET $rps req/s"
done
hookd_median=$(median "${hookd_get[@]}")
nginx_median=$(median "${nginx_get[@]}")
ratio=$(awk -v a="$hookd_median" -v b="$nginx_median" 'BEGIN {printf "%.3f", a / b}')
hookd_latency=$(awk '/^    Latency/ {print $2; exit}' "$tmp/get-hookd-2.txt")
nginx_latency=$(awk '/^    Latency/ {print $2; exit}' "$tmp/get-nginx-2.txt")
log "GET medians: hookd $hookd_median, nginx $nginx_median req/s, ratio $ratio"

# ------------------------------------------------------------------ POST create with fsync
metric() { awk -v m="$1" '$1 == m {print $2}' "$2"; }
scrape() { curl -sS --max-time 10 -o "$1" "$hookd_url/metrics" || die "GET /metrics failed"; }
lua_projects=$(printf '"/api/v1/organizations/'"$org"'/projects/%s/settings/webhooks",' "${projects[@]}")
post_json=()
for c in "${post_connections[@]}"; do
  check_budget
  cat >"$tmp/post-$c.lua" <<EOF
-- One create per request, a unique name each, rotating over the projects.
local paths = { ${lua_projects%,} }
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = string.format('{"name":"bench c$c #%d","url":"https://hooks.example.com/services/in/%d","headers":{"X-Tenant":"acme-production"},"events":["invoice.paid","customer.*"]}', n, n)
  return wrk.format(nil, paths[(n % #paths) + 1], nil, body)
end
EOF
  scrape "$tmp/metrics-before-$c.txt"
  rps=$(run_wrk "$tmp/post-$c.txt" "$hookd_url/" "$c" "$secs" -s "$tmp/post-$c.lua")
  sleep 0.5  # creates still in flight when wrk stopped finish and count in the metrics
  scrape "$tmp/metrics-after-$c.txt"
  deltas=()
  for m in hookd_catalog_commit_mutations_total hookd_storage_fsyncs_total \
    hookd_storage_write_batches_total hookd_catalog_commit_groups_total; do
    after=$(metric "$m" "$tmp/metrics-after-$c.txt")
    before=$(metric "$m" "$tmp/metrics-before-$c.txt")
    [[ -n $after && -n $before ]] || die "/metrics has no $m"
    deltas+=($((after - before)))
  done
  mutations=${deltas[0]} fsyncs=${deltas[1]} batches=${deltas[2]} groups=${deltas[3]}
  errors=$(non2xx "$tmp/post-$c.txt")
  per_fsync=$(awk -v m="$mutations" -v f="$fsyncs" 'BEGIN {printf "%.2f", f ? m / f : 0}')
  log "POST c=$c: $rps req/s, $mutations writes in $fsyncs fsyncs ($per_fsync per fsync), non-2xx $errors"
  post_json+=("{\"connections\":$c,\"requests_per_s\":$rps,\"writes\":$mutations,\"fsyncs\":$fsyncs,\"batches\":$batches,\"commit_groups\":$groups,\"writes_per_fsync\":$per_fsync,\"non_2xx\":$errors}")
done

join() {
  local IFS=,
  echo "$*"
}
cat <<EOF
{"machine":{"nproc":$(nproc),"cpu":"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)","kernel":"$(uname -r)","load_1m_start":$load_start,"load_1m_end":$(cut -d' ' -f1 /proc/loadavg),"date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"},
 "hookd":{"version":"$hookd_version","commit":"$commit"},
 "setup":{"wrk":"-t1 -c64 -d${secs}s on core $client_cpu","servers":"core $server_cpu","hookd_threads":1,"body_bytes":$body_bytes,"response_head_bytes":{"hookd":$hookd_head_bytes,"nginx":$nginx_head_bytes}},
 "get_by_id":{"hookd_rps":[$(join "${hookd_get[@]}")],"nginx_rps":[$(join "${nginx_get[@]}")],"hookd_median":$hookd_median,"nginx_median":$nginx_median,"ratio_hookd_nginx":$ratio,"latency_avg_round2":{"hookd":"$hookd_latency","nginx":"$nginx_latency"}},
 "post_create_fsync":[$(join "${post_json[@]}")]}
EOF
