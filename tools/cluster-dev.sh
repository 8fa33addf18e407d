#!/usr/bin/env bash
# A throw-away hookd cluster on this machine (docs/cluster.md, "Behind a load balancer"):
#   tools/cluster-dev.sh start [--nodes N] [-- HOOKD-FLAGS...]
#       a private PostgreSQL (tools/pg-dev.sh), N hookd nodes (default 3) on it and haproxy in
#       front of them with deploy/cluster/haproxy.cfg, all on 127.0.0.1 and free ports; prints
#       {"dir":…,"haproxy":"http://127.0.0.1:PORT","stats":…,"adminToken":…,
#        "nodes":[{"url":…,"pid":…,"log":…},…],"postgres":{"dir":…,"port":…,"uri":…}}
#       once every node answers /readyz with 200 and haproxy has them all up. HOOKD-FLAGS go to
#       every node (e.g. --allow-private-targets); HOOKD_* variables are passed on as well.
#   tools/cluster-dev.sh stop DIR
#       stops haproxy and the nodes (SIGTERM, then SIGKILL after 30 s), stops PostgreSQL and
#       removes everything.
# HOOKD_BIN: the hookd binary (default: build/debug/bin/hookd of this tree), HAPROXY_BIN: haproxy
# (default: haproxy on PATH). For tests and experiments only: fsync is off in PostgreSQL.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hookd_bin=${HOOKD_BIN:-$root/build/debug/bin/hookd}
haproxy_bin=${HAPROXY_BIN:-haproxy}

die() {
  echo "cluster-dev: $*" >&2
  exit 1
}

# A port nothing listens on (bind races are caught by the retries of the callers).
free_port() {
  local port
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Ends the process PID if it is still the one started from BINARY (a pid may be reused).
end_process() {  # PID BINARY
  local pid=$1 name
  name=$(basename "$2")
  [[ -r /proc/$pid/cmdline ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 300); do
    # Ended: gone, or a zombie nobody reaps (its parent, a subshell of start, is gone).
    [[ -r /proc/$pid/stat && $(awk '{ print $3 }' "/proc/$pid/stat") != Z ]] || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_cluster() {  # DIR
  local dir=$1 f
  [[ -f $dir/cluster-dev ]] || die "$dir holds no cluster started by cluster-dev.sh"
  if [[ -f $dir/haproxy.pid ]]; then end_process "$(cat "$dir/haproxy.pid")" "$haproxy_bin"; fi
  for f in "$dir"/node*.pid; do
    [[ -f $f ]] || continue
    end_process "$(cat "$f")" hookd &
  done
  wait
  if [[ -f $dir/postgres.dir ]]; then "$root/tools/pg-dev.sh" stop "$(cat "$dir/postgres.dir")" || true; fi
  rm -rf "$dir"
}

# Waits for a node's `listening` log line and prints its address.
wait_listening() {  # LOG PID
  local log=$1 pid=$2 address
  for _ in $(seq 600); do
    address=$(jq -rR 'fromjson? | select(.event == "listening") | .address' "$log" 2>/dev/null | head -n1)
    if [[ -n $address ]]; then
      echo "$address"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "cluster-dev: a node did not start; its log ($log):" >&2
  tail -n 20 "$log" >&2
  return 1
}

wait_ready() {  # URL
  for _ in $(seq 600); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$1/readyz") == 200 ]] && return 0
    sleep 0.1
  done
  echo "cluster-dev: $1/readyz did not answer 200" >&2
  return 1
}

start_node() {  # DIR I URL-FILE FLAGS...
  local dir=$1 i=$2 out=$3 pid address
  shift 3
  setsid "$hookd_bin" --listen 127.0.0.1:0 --data-dir "$dir/node$i" "$@" \
    </dev/null >"$dir/node$i.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/node$i.pid"
  address=$(wait_listening "$dir/node$i.log" "$pid") || return 1
  wait_ready "$address" || return 1
  echo "$address" >"$out"
}

# deploy/cluster/haproxy.cfg from `defaults` on, with this machine's addresses, after a global
# section of our own (no chroot, user or syslog: logs on stdout, into haproxy.log).
write_haproxy_cfg() {  # DIR PORT STATS-PORT
  local dir=$1 port=$2 stats=$3 i servers=""
  for ((i = 1; i <= nodes; i++)); do
    servers+="    server n$i ${addresses[i - 1]#http://}"$'\n'
  done
  {
    printf 'global\n    log stdout format raw local0\n    pidfile %s/haproxy.pid\n\n' "$dir"
    awk -v bind="    bind 127.0.0.1:$port" -v servers="$servers" '
      /^defaults/ { on = 1 }
      !on { next }
      /^[[:space:]]*bind / { print bind; next }
      /^[[:space:]]*server / { if (!done) printf "%s", servers; done = 1; next }
      { print }
    ' "$root/deploy/cluster/haproxy.cfg"
    printf '\nlisten stats\n    bind 127.0.0.1:%s\n    stats enable\n    stats uri /\n' "$stats"
  } >"$dir/haproxy.cfg"
}

# Waits until haproxy's checks have every node up (the stats page's CSV, status UP).
wait_all_up() {  # STATS-URL
  local up
  for _ in $(seq 300); do
    up=$(curl -s "$1;csv" | awk -F, '$1 == "hookd" && $2 ~ /^n[0-9]+$/ && $18 == "UP"' | wc -l)
    ((up == nodes)) && return 0
    sleep 0.1
  done
  echo "cluster-dev: haproxy did not see every node up" >&2
  return 1
}

start_cluster() {
  nodes=3
  local flags=()
  while (($#)); do
    case $1 in
      --nodes)
        nodes=${2:?--nodes needs a number}
        shift 2
        ;;
      --)
        shift
        flags=("$@")
        break
        ;;
      *)
        echo "cluster-dev: unknown option $1" >&2
        exit 2
        ;;
    esac
  done
  [[ $nodes =~ ^[1-9][0-9]*$ ]] || die "--nodes takes a positive number"
  [[ -x $hookd_bin ]] || die "no hookd at $hookd_bin (set HOOKD_BIN)"
  command -v "$haproxy_bin" >/dev/null || die "no haproxy (install it: tools/setup.sh)"

  local dir pg uri admin key i port stats
  dir=$(mktemp -d /tmp/hookd-cluster-dev-XXXXXX)
  touch "$dir/cluster-dev"
  # shellcheck disable=SC2064  # the trap removes this start's dir, known now
  trap "stop_cluster '$dir'" EXIT

  pg=$("$root/tools/pg-dev.sh" start)
  echo "$pg" >"$dir/postgres.json"
  jq -r .dir <<<"$pg" >"$dir/postgres.dir"
  uri=$(jq -r .uri <<<"$pg")
  key=$(openssl rand -base64 32)
  admin=hkd_admin_$(openssl rand -hex 24)
  export HOOKD_STORAGE=$uri HOOKD_MASTER_KEY=$key HOOKD_ADMIN_TOKEN=$admin
  printf 'HOOKD_STORAGE=%s\nHOOKD_MASTER_KEY=%s\nHOOKD_ADMIN_TOKEN=%s\n' "$uri" "$key" "$admin" >"$dir/env"
  chmod 600 "$dir/env"

  # The first node alone (it applies the migrations and creates the admin token), then the rest
  # together.
  addresses=()
  start_node "$dir" 1 "$dir/node1.url" "${flags[@]}"
  for ((i = 2; i <= nodes; i++)); do
    start_node "$dir" "$i" "$dir/node$i.url" "${flags[@]}" &
  done
  wait_nodes=0
  for ((i = 2; i <= nodes; i++)); do wait -n || wait_nodes=1; done
  ((wait_nodes == 0)) || die "a node did not start"
  for ((i = 1; i <= nodes; i++)); do addresses+=("$(cat "$dir/node$i.url")"); done

  local started=""
  for _ in 1 2 3 4 5; do
    port=$(free_port) || die "no free port"
    stats=$(free_port) || die "no free port"
    [[ $port != "$stats" ]] || continue
    write_haproxy_cfg "$dir" "$port" "$stats"
    setsid "$haproxy_bin" -db -f "$dir/haproxy.cfg" </dev/null >"$dir/haproxy.log" 2>&1 &
    echo $! >"$dir/haproxy.pid"
    sleep 0.3
    if kill -0 "$(cat "$dir/haproxy.pid")" 2>/dev/null &&
      curl -s -o /dev/null "http://127.0.0.1:$stats/"; then
      started=1
      break
    fi
  done
  [[ -n $started ]] || {
    cat "$dir/haproxy.log" >&2
    die "haproxy did not start"
  }
  wait_all_up "http://127.0.0.1:$stats/"
  trap - EXIT

  local list="[]"
  for ((i = 1; i <= nodes; i++)); do
    list=$(jq -c --arg url "${addresses[i - 1]}" --argjson pid "$(cat "$dir/node$i.pid")" \
      --arg log "$dir/node$i.log" '. + [{url: $url, pid: $pid, log: $log}]' <<<"$list")
  done
  jq -cn --arg dir "$dir" --arg haproxy "http://127.0.0.1:$port" \
    --arg stats "http://127.0.0.1:$stats/" --arg admin "$admin" --argjson nodes "$list" \
    --argjson postgres "$pg" \
    '{dir: $dir, haproxy: $haproxy, stats: $stats, adminToken: $admin, nodes: $nodes,
      postgres: $postgres}' | tee "$dir/cluster.json"
}

case ${1:-} in
  start)
    shift
    start_cluster "$@"
    ;;
  stop)
    stop_cluster "${2:?usage: tools/cluster-dev.sh stop DIR}"
    ;;
  *)
    echo "usage: tools/cluster-dev.sh start [--nodes N] [-- HOOKD-FLAGS...] | stop DIR" >&2
    exit 2
    ;;
esac
