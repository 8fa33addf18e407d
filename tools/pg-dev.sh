#!/usr/bin/env bash
# A private PostgreSQL for development (docs/cluster.md, "A PostgreSQL for development"):
#   tools/pg-dev.sh start [DIR]   initdb in DIR (default: a new temporary directory), start the
#                                 server on 127.0.0.1 and a free port, print
#                                 {"dir":..., "port":..., "uri":"postgresql://hookd@127.0.0.1:PORT/hookd"}
#   tools/pg-dev.sh stop DIR      stop the server and remove DIR
# Trust authentication for the role "hookd", fsync off: for tests and experiments only, never
# for data that matters. PostgreSQL refuses to run as root; as root the server runs as "nobody".
# HOOKD_PG_OPTIONS: more server settings for start, e.g.
# "-c shared_preload_libraries=pg_stat_statements" (bench/cluster.sh).
set -euo pipefail

bin=${HOOKD_PG_BIN:-}
if [[ -z $bin ]]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n | tail -n1 || true)
fi
if [[ -z $bin || ! -x $bin/initdb ]]; then
  echo "pg-dev: PostgreSQL server binaries not found (install postgresql: tools/setup.sh)" >&2
  exit 1
fi

as_user=()
if [[ $(id -u) -eq 0 ]]; then as_user=(runuser -u nobody --); fi

# A random port; one that is taken makes pg_ctl start fail, and start tries another.
free_port() { echo $((20000 + RANDOM % 40000)); }

pg_ctl() {  # DIR PORT ACTION ARGS...
  local dir=$1 port=$2 action=$3
  shift 3
  "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" \
    -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off ${HOOKD_PG_OPTIONS:-}" "$@" "$action"
}

case ${1:-} in
  start)
    dir=${2:-$(mktemp -d /tmp/hookd-pg-dev-XXXXXX)}
    mkdir -p "$dir"
    if ((${#as_user[@]})); then chown nobody:nogroup "$dir"; fi
    chmod 700 "$dir"
    if [[ ! -d $dir/data ]]; then
      "${as_user[@]}" "$bin/initdb" -D "$dir/data" -A trust -U hookd --no-sync -E UTF8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    started=
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      if pg_ctl "$dir" "$port" start -w -t 60 -l "$dir/log" >/dev/null 2>&1; then
        started=1
        break
      fi
    done
    if [[ -z $started ]]; then
      echo "pg-dev: the server did not start; its log:" >&2
      cat "$dir/log" >&2
      exit 1
    fi
    echo "$port" >"$dir/port"
    "${as_user[@]}" "$bin/psql" -h 127.0.0.1 -p "$port" -U hookd -d postgres -qAt \
      -c 'CREATE DATABASE hookd' >/dev/null
    printf '{"dir":"%s","port":%s,"uri":"postgresql://hookd@127.0.0.1:%s/hookd"}\n' \
      "$dir" "$port" "$port"
    ;;
  stop)
    dir=${2:?usage: tools/pg-dev.sh stop DIR}
    [[ -f $dir/port ]] || { echo "pg-dev: $dir holds no server started by pg-dev.sh" >&2; exit 1; }
    pg_ctl "$dir" "$(cat "$dir/port")" stop -m fast -w >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: tools/pg-dev.sh start [DIR] | stop DIR" >&2
    exit 2
    ;;
esac
