#!/usr/bin/env bash
# Soak: a steady stream of deliveries through a local keep-alive receiver with a short retention,
# hookd's resident memory and disk use sampled every 10 s. Both must level off once the retention
# window is full: memory follows the pending work, the disk the retained window.
#
#   bash bench/soak.sh [--deliveries N] [--rate EVENTS_PER_S] [--webhooks W] [--retention D]
#                      [--min-seconds S] [--bin-dir DIR] [--out DIR]
#
#   N        deliveries to reach at least (default 1000000)
#   RATE     events per second, open loop (default 500; each fans out to W webhooks)
#   W        webhooks per event (default 10), all at hookd-load's own receiver
#   D        hookd --retention (default 2m)
#   S        run at least this long (default 3 x the retention), so that the window fills
#   DIR      where hookd and hookd-load are (default build/release/bin; built when missing)
#   --out    where samples.tsv, soak.json and soak.png go (default bench/out/soak-<time>)
#
# Prints the samples as a table and a JSON summary (stdout). The summary's figures, from the
# first sample after the window is full ("warm") to the last:
#   rss_bytes_per_delivery   (RSS at the end - RSS when warm) / deliveries since then
#   disk_ratio_max_min       largest / smallest disk use over the warm samples
#   disk_bytes_per_delivery  disk use at the end / finished deliveries in history at the end
# Needs: curl, jq, awk, taskset; gnuplot for the plot (installed from Debian when missing).
# Bounded: hookd-load runs for the planned time; everything started is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bench_name=soak.sh
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

deliveries=1000000
rate=500
webhooks=10
retention=2m
min_seconds=
bin_dir=${BENCH_BIN_DIR:-$root/build/release/bin}
out=
while (($#)); do
  case $1 in
    --deliveries) deliveries=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --webhooks) webhooks=$2; shift 2 ;;
    --retention) retention=$2; shift 2 ;;
    --min-seconds) min_seconds=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

seconds_of() { # 2m -> 120, 90s -> 90, 1h -> 3600
  local v=$1
  case $v in
    *h) echo $((${v%h} * 3600)) ;;
    *m) echo $((${v%m} * 60)) ;;
    *s) echo "${v%s}" ;;
    *) echo "$v" ;;
  esac
}
retention_s=$(seconds_of "$retention")
[[ -n $min_seconds ]] || min_seconds=$((3 * retention_s))
planned=$(awk -v n="$deliveries" -v r="$rate" -v w="$webhooks" -v m="$min_seconds" \
  'BEGIN {s = n / (r * w); if (s < m) s = m; printf "%d\n", s + 1}')

bench_require curl jq awk taskset
if ! command -v gnuplot >/dev/null; then
  log "installing gnuplot-nox (Debian) for the plot"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends gnuplot-nox >/dev/null ||
    log "gnuplot-nox could not be installed: no plot, the table and JSON are still written"
fi
if [[ ! -x $bin_dir/hookd || ! -x $bin_dir/hookd-load ]]; then
  log "building hookd and hookd-load (release)"
  (cd "$root" && cmake --preset release >/dev/null && cmake --build --preset release --target hookd hookd-load >/dev/null)
fi

[[ -n $out ]] || out=$root/bench/out/soak-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
tmp=$(mktemp -d)
trap bench_cleanup EXIT
bench_pick_cpus
admin_token=hkd_soak-$(random_hex 24)

hookd_start "$bin_dir/hookd" "$tmp/hookd.log" --listen 127.0.0.1:0 --data-dir "$tmp/data" \
  --threads 1 --allow-private-targets --retention "$retention"
log "hookd at $hookd_url (pid $hookd_pid), --retention $retention; $rate events/s x $webhooks webhooks for ${planned}s"

taskset -c "$client_cpu" "$bin_dir/hookd-load" --url "$hookd_url" --admin-token "$admin_token" \
  --scenario deliver --webhooks "$webhooks" --rate "$rate" --connections 16 \
  --duration "$planned" --drain 30 --quiet --output "$tmp/load.json" 2>"$tmp/load.err" &
load_pid=$!
bench_track "$load_pid"

sample() { # t deliveries rss_bytes disk_bytes history_bytes history_deliveries pending
  local t=$1 m="$tmp/m.txt"
  scrape "$m"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" \
    "$(metric 'hookd_deliveries_total{outcome="succeeded"}' "$m")" \
    "$(($(proc_rss_kib "$hookd_pid") * 1024))" \
    "$(du -sb "$tmp/data/db" | cut -f1)" \
    "$(metric hookd_history_bytes "$m")" \
    "$(metric hookd_history_deliveries "$m")" \
    "$(metric hookd_delivery_jobs_pending "$m")"
}

printf 't_s\tdeliveries\trss_bytes\tdisk_bytes\thistory_bytes\thistory_deliveries\tpending\n' >"$out/samples.tsv"
start=$(date +%s)
while :; do
  now=$(($(date +%s) - start))
  sample "$now" >>"$out/samples.tsv"
  tail -n 1 "$out/samples.tsv" | awk -F'\t' '{printf "soak.sh: %5ss %9s delivered  RSS %6.1f MiB  disk %7.1f MiB  history %8s  pending %s\n", $1, $2, $3/1048576, $4/1048576, $6, $7}' >&2
  kill -0 "$load_pid" 2>/dev/null || break
  sleep 10
done
wait "$load_pid" || log "hookd-load exited with $?"
sample "$(($(date +%s) - start))" >>"$out/samples.tsv"

# The summary, from the first sample after the window filled.
warm_at=$((retention_s + 20))
summary=$(awk -F'\t' -v warm="$warm_at" -v ret="$retention" -v rate="$rate" -v w="$webhooks" '
  NR == 1 { next }
  { last_t = $1; last_d = $2; last_rss = $3; last_disk = $4; last_hist = $6 }
  $1 >= warm && !have { have = 1; warm_t = $1; warm_d = $2; warm_rss = $3 }
  $1 >= warm { if (!dmin || $4 < dmin) dmin = $4; if ($4 > dmax) dmax = $4; n++ }
  END {
    per = (last_d > warm_d) ? (last_rss - warm_rss) / (last_d - warm_d) : 0
    printf "{\"retention\":\"%s\",\"events_per_s\":%s,\"webhooks\":%s,\"seconds\":%d,", ret, rate, w, last_t
    printf "\"deliveries\":%d,\"warm_at_s\":%d,\"warm_samples\":%d,", last_d, warm_t, n
    printf "\"rss_warm_bytes\":%d,\"rss_end_bytes\":%d,\"rss_bytes_per_delivery\":%.1f,", warm_rss, last_rss, per
    printf "\"disk_min_bytes\":%d,\"disk_max_bytes\":%d,\"disk_ratio_max_min\":%.2f,", dmin, dmax, dmin ? dmax / dmin : 0
    printf "\"history_deliveries_end\":%d,\"disk_bytes_per_delivery\":%.0f}\n", last_hist, last_hist ? last_disk / last_hist : 0
  }' "$out/samples.tsv")
summary=$(jq --argjson load "$(cat "$tmp/load.json" 2>/dev/null || echo null)" \
  --arg commit "$(git_commit "$root")" --arg cpu "$(cpu_model)" --arg date "$(date -u +%FT%TZ)" \
  '. + {commit: $commit, cpu: $cpu, date: $date, load: ($load | if . then .deliver else null end)}' <<<"$summary")
printf '%s\n' "$summary" >"$out/soak.json"

column -t -s $'\t' "$out/samples.tsv" >&2 || cat "$out/samples.tsv" >&2
if command -v gnuplot >/dev/null; then
  gnuplot <<EOF
set terminal png size 1100,600 noenhanced
set output "$out/soak.png"
set title "hookd soak: RSS and disk over time (--retention $retention, $rate events/s x $webhooks webhooks)"
set xlabel "seconds"
set ylabel "MiB"
set y2label "deliveries (millions)"
set y2tics
set ytics nomirror
set key left top
set grid
set datafile separator "\t"
plot "$out/samples.tsv" using 1:(\$3/1048576) skip 1 with linespoints title "RSS (MiB)", \
     "$out/samples.tsv" using 1:(\$4/1048576) skip 1 with linespoints title "data dir db/ (MiB)", \
     "$out/samples.tsv" using 1:(\$2/1e6) skip 1 axes x1y2 with lines dashtype 2 title "deliveries (M, right)"
EOF
  log "plot: $out/soak.png"
fi
log "samples: $out/samples.tsv, summary: $out/soak.json"
printf '%s\n' "$summary"
