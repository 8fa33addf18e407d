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
bench_name=http.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
hookd_bin=${1:-${HOOKD_BIN:-$root/build/release/bin/hookd}}
secs=${BENCH_SECONDS:-8}
warmup_secs=2
rounds=3
post_connections=(1 16 64)
project_count=${BENCH_PROJECTS:-64}
time_budget=280

[[ -x $hookd_bin ]] || die "no hookd at $hookd_bin (build it: cmake --preset release && cmake --build --preset release --target hookd)"
bench_require wrk nginx curl taskset awk sed split
((secs >= 5 && secs <= 10)) || die "BENCH_SECONDS must be 5..10, got $secs"
((project_count >= 1 && project_count <= 1000)) || die "BENCH_PROJECTS must be 1..1000"
bench_pick_cpus

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-http-bench.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
started_at=$SECONDS
load_start=$(load_1m)
hookd_version=$("$hookd_bin" --version 2>/dev/null | head -1)
commit=$(git_commit "$root")
check_budget() {
  ((SECONDS - started_at + secs + 5 < time_budget)) || die "time budget of ${time_budget}s would be exceeded; stopping"
}

# ------------------------------------------------------------------ hookd
admin_token="hkd_bench_admin_$(random_hex 16)"
hookd_start "$hookd_bin" "$tmp/hookd.log" --data-dir "$tmp/data" --listen 127.0.0.1:0 --threads 1 \
  --max-webhooks-per-project 1000000
log "hookd at $hookd_url (pid $hookd_pid, core $server_cpu)"

org=$(provision_org "Bench Org")
projects=()
for i in $(seq "$project_count"); do
  projects+=("$(provision_project "$org" "Bench $i" "bench-$i")")
done
token=$(provision_token "$org" webhooks:read webhooks:write)
hooks_path="/api/v1/organizations/$org/projects/${projects[0]}/settings/webhooks"
hook=$(api POST "$hooks_path" "$token" "$(bench_webhook_body "Invoice notifications" incoming)" | json_field _id)
[[ -n $hook ]] || die "no webhook id"
get_url="$hookd_url$hooks_path/$hook"
curl -sS --max-time 10 -H "Authorization: Bearer $token" -D "$tmp/hookd.head" -o "$tmp/body.json" "$get_url"
grep -q '^HTTP/1.1 200' "$tmp/hookd.head" || die "GET webhook did not answer 200"
body_bytes=$(wc -c <"$tmp/body.json")
log "webhook $hook, GET body $body_bytes bytes"

# ------------------------------------------------------------------ nginx
nginx_start "$tmp/nginx" /w "$tmp/body.json"
nginx_url="$nginx_base/w"
curl -sS --max-time 10 -H "Authorization: Bearer $token" -D "$tmp/nginx.head" -o "$tmp/nginx.json" "$nginx_url"
cmp -s "$tmp/body.json" "$tmp/nginx.json" || die "nginx does not serve the same body bytes as hookd"
hookd_head_bytes=$(wc -c <"$tmp/hookd.head")
nginx_head_bytes=$(wc -c <"$tmp/nginx.head")
log "nginx at $nginx_url (pid $nginx_pid): same $body_bytes body bytes; headers $hookd_head_bytes (hookd) vs $nginx_head_bytes (nginx) bytes"

# ------------------------------------------------------------------ wrk
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
ratio=$(ratio "$hookd_median" "$nginx_median")
hookd_latency=$(awk '/^    Latency/ {print $2; exit}' "$tmp/get-hookd-2.txt")
nginx_latency=$(awk '/^    Latency/ {print $2; exit}' "$tmp/get-nginx-2.txt")
log "GET medians: hookd $hookd_median, nginx $nginx_median req/s, ratio $ratio"

# ------------------------------------------------------------------ POST create with fsync
lua_projects=$(printf '"/api/v1/organizations/'"$org"'/projects/%s/settings/webhooks",' "${projects[@]}")
post_json=()
for c in "${post_connections[@]}"; do
  check_budget
  write_post_lua "$tmp/post-$c.lua" "$lua_projects" "bench c$c"
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

cat <<EOF
{"machine":{"nproc":$(nproc),"cpu":"$(cpu_model)","kernel":"$(uname -r)","load_1m_start":$load_start,"load_1m_end":$(load_1m),"date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"},
 "hookd":{"version":"$hookd_version","commit":"$commit"},
 "setup":{"wrk":"-t1 -c64 -d${secs}s on core $client_cpu","servers":"core $server_cpu","hookd_threads":1,"body_bytes":$body_bytes,"response_head_bytes":{"hookd":$hookd_head_bytes,"nginx":$nginx_head_bytes}},
 "get_by_id":{"hookd_rps":[$(join "${hookd_get[@]}")],"nginx_rps":[$(join "${nginx_get[@]}")],"hookd_median":$hookd_median,"nginx_median":$nginx_median,"ratio_hookd_nginx":$ratio,"latency_avg_round2":{"hookd":"$hookd_latency","nginx":"$nginx_latency"}},
 "post_create_fsync":[$(join "${post_json[@]}")]}
EOF
