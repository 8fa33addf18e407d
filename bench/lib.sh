# shellcheck shell=bash
# shellcheck disable=SC2154  # bench_name, admin_token, tmp, ... are set by the caller (see below)
# Shell functions shared by the bench scripts (sourced, not run).
#
# The caller sets, before using them:
#   bench_name   prefix of progress and error lines ("http.sh")
#   tmp          its temp dir (bench_cleanup removes it)
#   server_cpu, client_cpu   cores for the servers and for the load generator (bench_pick_cpus)
# and calls `trap bench_cleanup EXIT`. Everything started through bench_track is killed by it.
#
# hookd_start sets hookd_pid and hookd_url; api and scrape talk to "$hookd_url". sink_start sets
# sink_pid and sink_url; sink_stat reads "$sink_url/__stats".
# run_wrk sends "Authorization: Bearer $token".

pids=()

log() { echo "$bench_name: $*" >&2; }
die() {
  echo "$bench_name: $*" >&2
  exit 1
}

bench_require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool is missing (bash tools/setup.sh installs wrk, nginx-light and jq)"
  done
}

# Servers on core 0, the load generator on core 1 (both on core 0 on a single-CPU machine).
bench_pick_cpus() {
  server_cpu=0
  client_cpu=1
  if (($(nproc) < 2)); then
    log "only $(nproc) CPU: server and load generator share core 0, figures will be lower"
    client_cpu=0
  fi
}

bench_track() { pids+=("$1"); }

# stop_pid PID [SECONDS]: SIGTERM, wait up to SECONDS (default 10), then SIGKILL; forgets PID.
stop_pid() {
  local pid=$1 limit=${2:-10} kept=() p
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((limit * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  pids=("${kept[@]}")
}

# bench_stop_all: stops every tracked process. bench_cleanup: that, and removes $tmp.
bench_stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
bench_cleanup() {
  bench_stop_all
  if [[ -n ${tmp:-} ]]; then rm -rf "$tmp"; fi
}

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# wait_listening FILE PID [SECONDS] -> the address of the first `"event":"listening"` line in
# FILE (hookd's log or hookd-sink's output: http://... or https://...), waiting up to SECONDS
# (default 30) while PID runs. Fails, showing FILE, when PID exits or the time runs out.
wait_listening() {
  local file=$1 pid=$2 limit=${3:-30} address
  for _ in $(seq $((limit * 10))); do
    address=$(sed -n 's/.*"event":"listening","address":"\(https\{0,1\}:[^"]*\)".*/\1/p' "$file" | head -1)
    if [[ -n $address ]]; then
      printf '%s' "$address"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || {
      cat "$file" >&2
      die "$file: the process exited before listening"
    }
    sleep 0.1
  done
  cat "$file" >&2
  die "$file: no listening line within ${limit}s"
}

# hookd_start BIN LOG [hookd options...]: starts hookd pinned to server_cpu with HOOKD_ADMIN_TOKEN
# set to $admin_token (options include --data-dir and --listen), waits for its "listening" line,
# and sets hookd_pid and hookd_url. A benchmark's stop needs no load-balancer delay.
hookd_start() {
  local bin=$1 logfile=$2
  shift 2
  : >"$logfile" # exists before the background job opens it: wait_listening reads it at once
  HOOKD_ADMIN_TOKEN=$admin_token HOOKD_SHUTDOWN_DELAY=0s taskset -c "$server_cpu" "$bin" "$@" 2>"$logfile" &
  hookd_pid=$!
  bench_track "$hookd_pid"
  hookd_url=$(wait_listening "$logfile" "$hookd_pid" 30) || exit 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# quiet_port -> a random port below the ephemeral range that nothing listens on. Within that
# range a port no one listens on may still be the local end of an outgoing connection (curl's,
# hookd's), and a server started on it a moment later could not bind it: so for nginx, and for
# hookd-sink, whose URL the webhooks must name before it starts (it needs their secrets).
quiet_port() {
  local low port
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  ((low > 12000)) || low=32768
  for _ in $(seq 20); do
    port=$((10000 + (RANDOM % (low - 10000))))
    port_in_use "$port" || {
      echo "$port"
      return 0
    }
  done
  return 1
}
# sink_start BIN DIR PORT [hookd-sink options...]: hookd-sink on 127.0.0.1:PORT (0: any port)
# pinned to client_cpu, --quiet, its output in DIR/sink.out and DIR/sink.err; waits for its
# "listening" line and sets sink_pid and sink_url (tracked: bench_cleanup stops it).
sink_start() {
  local bin=$1 dir=$2 port=$3
  shift 3
  : >"$dir/sink.out" # exists before the background job opens it: wait_listening reads it at once
  taskset -c "$client_cpu" "$bin" --listen "127.0.0.1:$port" --quiet "$@" \
    >"$dir/sink.out" 2>"$dir/sink.err" &
  sink_pid=$!
  bench_track "$sink_pid"
  sink_url=$(wait_listening "$dir/sink.out" "$sink_pid" 10) || {
    cat "$dir/sink.err" >&2
    exit 1
  }
}
# sink_stat FIELD -> that field of the running sink's /__stats (received, failedVerification, ...)
sink_stat() { curl -sS --max-time 10 "$sink_url/__stats" | jq ".$1"; }

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

# provision_org NAME -> organization id (admin token)
provision_org() {
  local id
  id=$(api POST /api/v1/organizations "$admin_token" "{\"name\":\"$1\"}" | json_field _id)
  [[ -n $id ]] || die "no organization id"
  printf '%s' "$id"
}
# provision_project ORG NAME SLUG -> project id
provision_project() {
  local id
  id=$(api POST "/api/v1/organizations/$1/projects" "$admin_token" \
    "{\"name\":\"$2\",\"slug\":\"$3\"}" | json_field _id)
  [[ -n $id ]] || die "no project id"
  printf '%s' "$id"
}
# provision_token ORG SCOPE... -> a token for that organization with those scopes
provision_token() {
  local org=$1 scopes t
  shift
  scopes=$(printf '"%s",' "$@")
  t=$(api POST /api/v1/tokens "$admin_token" \
    "{\"name\":\"bench\",\"organizations\":[\"$org\"],\"scopes\":[${scopes%,}]}" | json_field token)
  [[ -n $t ]] || die "no token"
  printf '%s' "$t"
}
# The webhook body of every GET/list comparison: realistic url, custom headers and events.
bench_webhook_body() {
  printf '{"name":"%s","url":"https://hooks.example.com/services/T024BE7LD/B08F3QZ1X/%s","headers":{"X-Tenant":"acme-production","X-Api-Version":"2024-06-01","Authorization":"Basic YmVuY2g6c2VjcmV0LXZhbHVlLWZvci1iZW5jaA=="},"events":["invoice.paid","invoice.payment_failed","customer.*"]}' "$1" "$2"
}

# ------------------------------------------------------------------ nginx
# nginx_start DIR LOCATION BODYFILE [LOCATION BODYFILE ...]: one nginx process (master_process
# off) pinned to server_cpu on a free 127.0.0.1 port, answering `location = LOCATION` with
# `return 200` and the exact bytes of BODYFILE, plus an X-Request-Id of 32 hex digits like hookd's.
# Sets nginx_pid and nginx_base (http://127.0.0.1:PORT). nginx_worker_connections (default 4096)
# bounds its connections. With nginx_tls_cert and nginx_tls_key set (PEM files), it listens with
# ssl on that certificate instead, and nginx_base is https://127.0.0.1:PORT.
#
# nginx refuses a configuration token longer than 4 KiB, so a body is cut into chunks of at most
# 1800 bytes, each the value of a geo variable ($b_<location>_<n>, a plain string: no variables
# inside it); `return` concatenates them. In a quoted token '\' and ''' are escaped with '\'
# (nginx would otherwise turn \n, \t, \r into control characters).
nginx_start() {
  local dir=$1 geo="" locations="" i=0 port attempt chunk n vars
  shift
  mkdir -p "$dir"
  local request_id_value
  request_id_value=$(random_hex 16)
  while (($# >= 2)); do
    local location=$1 bodyfile=$2
    shift 2
    i=$((i + 1))
    rm -f "$dir/chunk-$i-"*
    split -b 1800 -d -a 4 "$bodyfile" "$dir/chunk-$i-"
    n=0
    vars=""
    for chunk in "$dir/chunk-$i-"*; do
      n=$((n + 1))
      geo+="  geo \$b_${i}_$n { default '$(sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g" "$chunk")'; }"$'\n'
      vars+="\$b_${i}_$n"
    done
    locations+="    location = $location {
      default_type application/json;
      add_header X-Request-Id $request_id_value;
      return 200 '$vars';
    }
"
  done
  local listen_options="" tls_lines="" scheme=http
  if [[ -n ${nginx_tls_cert:-} ]]; then
    listen_options=" ssl"
    # TLS 1.3 as hookd offers it (nginx 1.22 leaves it out by default).
    tls_lines="    ssl_certificate $nginx_tls_cert;
    ssl_certificate_key $nginx_tls_key;
    ssl_protocols TLSv1.2 TLSv1.3;
"
    scheme=https
  fi
  nginx_pid=
  nginx_base=
  for attempt in $(seq 10); do
    port=$(quiet_port) || die "no free port below the ephemeral range for nginx"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections ${nginx_worker_connections:-4096}; }
http {
  access_log off;
  server_tokens off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 600s; # idle connections outlive a slow run of idle_probe (compare.sh idle)
$geo
  server {
    listen 127.0.0.1:$port$listen_options;
$tls_lines$locations  }
}
EOF
    taskset -c "$server_cpu" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" 2>>"$dir/stderr.log" &
    nginx_pid=$!
    for _ in $(seq 50); do
      port_in_use "$port" && {
        nginx_base="$scheme://127.0.0.1:$port"
        break
      }
      kill -0 "$nginx_pid" 2>/dev/null || break
      sleep 0.1
    done
    if [[ -n $nginx_base ]]; then
      bench_track "$nginx_pid"
      return 0
    fi
    kill -KILL "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    log "nginx did not start on port $port (attempt $attempt): $(tail -1 "$dir/error.log" 2>/dev/null)"
  done
  die "nginx did not start"
}

# ------------------------------------------------------------------ wrk and figures
# run_wrk OUT URL CONNECTIONS SECONDS [wrk args...] -> Requests/sec; fails on socket errors
run_wrk() {
  local out=$1 url=$2 conns=$3 duration=$4
  shift 4
  timeout $((duration + 20)) taskset -c "$client_cpu" \
    wrk -t1 -c"$conns" -d"${duration}s" -H "Authorization: Bearer $token" "$@" "$url" >"$out" 2>&1 ||
    {
      cat "$out" >&2
      die "wrk failed"
    }
  local rps
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  [[ -n $rps ]] || {
    cat "$out" >&2
    die "wrk printed no Requests/sec"
  }
  printf '%s' "$rps"
}
non2xx() { awk '/Non-2xx or 3xx responses:/ {n=$5} END {print n+0}' "$1"; }
wrk_requests() { awk '/ requests in / {print $1; exit}' "$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "null"; else printf "%.3f\n", a / b}'; }
join() {
  local IFS=,
  echo "$*"
}

# write_post_lua FILE PATHS NAME: a wrk script that POSTs one webhook per request, named
# "NAME #n" (unique), rotating over PATHS (Lua string literals, comma-separated, e.g.
# "/api/v1/.../webhooks","/api/v1/.../webhooks").
write_post_lua() {
  local file=$1 paths=$2 name=$3
  cat >"$file" <<EOF
-- One create per request, a unique name each, rotating over the projects.
local paths = { ${paths%,} }
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = string.format('{"name":"$name #%d","url":"https://hooks.example.com/services/in/%d","headers":{"X-Tenant":"acme-production"},"events":["invoice.paid","customer.*"]}', n, n)
  return wrk.format(nil, paths[(n % #paths) + 1], nil, body)
end
EOF
}

# /metrics of the current hookd
metric() { awk -v m="$1" '$1 == m {print $2}' "$2"; }
# metric_share FILE NAME LE: the share of histogram NAME's observations at or below LE in a
# /metrics text (its le="LE" bucket over its _count); null when it has none.
metric_share() {
  local bucket count
  bucket=$(metric "$2_bucket{le=\"$3\"}" "$1")
  count=$(metric "$2_count" "$1")
  awk -v b="$bucket" -v c="$count" 'BEGIN { if (c > 0) printf "%.4f", b / c; else print "null" }'
}
scrape() { curl -sS --max-time 10 -o "$1" "$hookd_url/metrics" || die "GET /metrics failed"; }

# CPU time (user + system, all threads) of a process in clock ticks, and its resident memory.
# Fails, as proc_cpu_split does, when the process is gone (bench/cluster.sh skips it then).
proc_cpu_ticks() {
  local split
  split=$(proc_cpu_split "$1") || return 1
  echo $((${split% *} + ${split#* }))
}
# proc_cpu_split PID: "USER SYSTEM", the same time with user space and the kernel's apart.
proc_cpu_split() {
  # The fields after the command name (which is in parentheses and may hold spaces):
  # state is field 3 of /proc/PID/stat, utime 14 and stime 15.
  local stat rest
  stat=$(cat "/proc/$1/stat") || die "no /proc/$1/stat"
  rest=${stat##*) }
  awk '{print $12, $13}' <<<"$rest"
}
# proc_thread_ticks PID: "NAME TICKS" per thread name (hookd names its threads: docs/operations.md,
# "Threads"), user and system time of PID's threads of that name together. A thread that ended
# before the call is not counted.
proc_thread_ticks() {
  local f stat name
  for f in /proc/"$1"/task/*/stat; do
    stat=$(cat "$f" 2>/dev/null) || continue
    name=${stat#*(}
    name=${name%)*}
    awk -v n="${name// /_}" '{print n, $12 + $13}' <<<"${stat##*) }"
  done | awk '{t[$1] += $2} END {for (n in t) print n, t[n]}' | sort
}
proc_rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# The machine, for the JSON summaries.
cpu_model() { sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1; }
load_1m() { cut -d' ' -f1 /proc/loadavg; }
git_commit() {
  local root=$1 commit
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ $commit != unknown && -n $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit+uncommitted"
  fi
  printf '%s' "$commit"
}
