#!/usr/bin/env bash
# Where hookd's CPU goes while it fans out at full speed, natively: compare.sh's `lower` phase
# (hookd --threads 1 on one core delivering 10 webhooks per event to hookd-sink) with
# `perf record -e cpu-clock` attached to hookd for a few seconds in the middle of the fan-out.
# Unlike cost.sh (callgrind: instructions, user space, one delivery at a time, on valgrind's
# emulated CPU, which lacks SHA-NI and other extensions hookd's libraries use when present), this
# samples the real run: the kernel's share, cache misses and the machine's own instructions
# included. hookd names its threads (docs/operations.md, "Threads"), so the split by thread is
# by what each thread does.
#
#   bash bench/profile.sh [--bin-dir DIR] [--seconds S] [--keep DIR] [--syscalls]
#
#   DIR   where hookd, hookd-sink and hookd-load are (default build/release/bin)
#   S     seconds sampled (default 5; 1..20), starting 2 s after the events begin
#   DIR   --keep: keep perf.data and the reports there
#   --syscalls  then, for 3 s more, count hookd's system calls by thread and kind (perf stat on
#         the syscalls:sys_enter_* tracepoints, which need tracefs), per delivery: per write
#         (sendmsg) of the dispatcher, which makes one per delivery
#
# Prints, on stderr: the lower phase's own line, then the samples' shares by thread, by thread
# and library (user space or the kernel), and the 25 hottest functions of the dispatcher and of
# the delivery log's writer; then by part, in µs per delivery (the run's CPU per delivery times
# the share): the kernel's side of each thread but RocksDB's, RocksDB (its own threads whole, and
# its functions on hookd's), OpenSSL, the C and C++ libraries and the allocator, and hookd's own
# code with Boost's; and what the design's parts (the kernel and RocksDB) leave of the targets'
# budgets (twice the raw client's CPU per request; twice a GET's, hookd's one core saturated by
# GETs at the reference rate, for fan-out at half that rate). On stdout a
# JSON summary (shares by thread, by library and by part, the budgets). Needs
# perf (Debian's linux-perf) allowed to sample another process: root, or
# /proc/sys/kernel/perf_event_paranoid at 1 or less. Bounded by compare.sh's own bounds.
set -euo pipefail
bench_name=profile.sh
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
bin_dir=${BENCH_BIN_DIR:-$here/../build/release/bin}
seconds=5
keep=
syscalls=false
while (($#)); do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --syscalls) syscalls=true; shift ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1 || seconds > 20)); then die "--seconds must be 1..20"; fi
bench_require perf jq awk
if [[ $(id -u) -ne 0 ]] && (($(cat /proc/sys/kernel/perf_event_paranoid) > 1)); then
  die "perf may not sample another process here: run as root, or set /proc/sys/kernel/perf_event_paranoid to 1"
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hookd-profile-XXXXXX")
trap 'kill "$compare_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
compare_pid=

bash "$here/compare.sh" --only lower --bin-dir "$bin_dir" >"$tmp/compare.json" 2>"$tmp/compare.log" &
compare_pid=$!
# The lower phase logs hookd's pid when it starts it, then the line below when the events begin.
bound=$((SECONDS + 120))
until grep -q 'lower: hookd, .* webhooks per event' "$tmp/compare.log" 2>/dev/null; do
  kill -0 "$compare_pid" 2>/dev/null || { cat "$tmp/compare.log" >&2; die "compare.sh ended before the fan-out began"; }
  ((SECONDS < bound)) || die "the fan-out did not begin within 120 s"
  sleep 0.1
done
pid=$(sed -n 's/.*lower: hookd lower at .* (pid \([0-9]*\)).*/\1/p' "$tmp/compare.log" | tail -1)
[[ -n $pid ]] || die "no hookd pid in compare.sh's log"
sleep 2
log "sampling hookd (pid $pid) for ${seconds} s"
perf record -q -e cpu-clock -F 1999 -p "$pid" -o "$tmp/perf.data" -- sleep "$seconds" 2>"$tmp/perf-record.log" ||
  { cat "$tmp/perf-record.log" >&2; die "perf record failed"; }
syscall_kinds=(sendmsg recvmsg recvfrom sendto epoll_wait epoll_ctl futex write fdatasync timerfd_settime)
if $syscalls; then
  log "counting hookd's system calls for 3 s"
  events=$(printf 'syscalls:sys_enter_%s,' "${syscall_kinds[@]}")
  perf stat -e "${events%,}" --per-thread -x, -p "$pid" -o "$tmp/syscalls.csv" -- sleep 3 2>"$tmp/perf-stat.log" ||
    { cat "$tmp/perf-stat.log" >&2; die "perf stat failed (the syscalls tracepoints need tracefs)"; }
fi
wait "$compare_pid" || { cat "$tmp/compare.log" >&2; die "compare.sh failed"; }
compare_pid=
grep 'lower: hookd [0-9]' "$tmp/compare.log" | sed 's/.*lower: lower: /profile.sh: lower: /' >&2

# perf report lines "  12.34%  name  [lib]" as "share<TAB>field<TAB>field".
report() {
  perf report -i "$tmp/perf.data" --no-children -g none --percent-limit 0.3 "$@" 2>/dev/null |
    awk '/^ *[0-9.]+%/ { share = $1; sub("%", "", share); $1 = ""; sub(/^ +/, ""); print share "\t" $0 }'
}
report --sort comm >"$tmp/threads.tsv"
report --sort comm,dso >"$tmp/libraries.tsv"
# Every sample's thread, library and function, into parts (see the header).
perf report -i "$tmp/perf.data" --no-children -g none --sort comm,dso,sym 2>/dev/null |
  awk '/^ *[0-9.]+%/ {
      share = $1; sub("%", "", share); comm = $2; dso = $3; sym = $0
      if (comm ~ /^rocksdb/ || sym ~ /rocksdb::|ROCKSDB_|XXH|crc32c/ || dso ~ /liblz4|libsnappy|libzstd/) part = "rocksdb"
      else if (dso ~ /kernel/) part = "kernel " comm
      else if (dso ~ /libcrypto|libssl/) part = "openssl"
      else if (dso ~ /libc\.so|libstdc\+\+|libjemalloc|libm\.so|vdso/) part = "libraries"
      else part = "hookd"
      sum[part] += share }
    END { for (p in sum) printf "%.2f\t%s\n", sum[p], p }' | sort -t$'\t' -k1,1nr >"$tmp/parts.tsv"
{
  echo "profile.sh: share of hookd's samples by thread"
  awk -F'\t' '{ printf "  %6.2f %%  %s\n", $1, $2 }' "$tmp/threads.tsv"
  echo "profile.sh: by thread and library ([kernel.kallsyms] is the kernel's side of its system calls)"
  awk -F'\t' '{ printf "  %6.2f %%  %s\n", $1, $2 }' "$tmp/libraries.tsv"
  for thread in dispatcher delivery-log; do
    echo "profile.sh: the 25 hottest functions of $thread (share of all of hookd's samples)"
    perf report -i "$tmp/perf.data" --no-children -g none --comm "$thread" --sort dso,sym 2>/dev/null |
      awk '/^ *[0-9.]+%/ && n++ < 25 { print substr($0, 1, 150) }'
  done
} >&2
# µs per delivery by part, and the targets' budgets against the design's parts.
jq -r --rawfile parts "$tmp/parts.tsv" '
  .lower as $l | ($l.hookd.cpu_us_per_delivery) as $cpu
  | ($parts | split("\n") | map(select(length > 0) | split("\t") | {share: (.[0] | tonumber), part: .[1]})) as $rows
  | ($rows | map(.share) | add) as $total
  | ($rows | map(select(.part | test("^kernel|^rocksdb$"))) | map(.share) | add) as $design
  | (2 * $l.raw.cpu_us_per_request) as $twice_raw
  | ($l.hookd.deliveries_per_s / $l.ratio_fanout_get) as $get_rps
  | (2 * 1000000 / $get_rps) as $half_get
  | "profile.sh: by part, µs per delivery (of \($cpu))",
    ($rows[] | "  \(.share / $total * $cpu * 10 | round / 10)\t\(.part)"),
    "  \($design / $total * $cpu * 10 | round / 10)\tthe kernel and RocksDB together",
    "profile.sh: budgets: 2x the raw client \($twice_raw * 10 | round / 10) µs, leaving \(($twice_raw - $design / $total * $cpu) * 10 | round / 10) for the rest; fan-out at 0.5x GET \($half_get * 10 | round / 10) µs (twice the CPU of one GET, at \($get_rps | round) req/s on one core), leaving \(($half_get - $design / $total * $cpu) * 10 | round / 10)"
' "$tmp/compare.json" >&2

# perf stat -x, lines "thread-TID,COUNT,,syscalls:sys_enter_KIND,...": per thread name and kind,
# per dispatcher sendmsg (one per delivery).
: >"$tmp/syscalls.tsv"
if $syscalls; then
  awk -F, '$4 ~ /^syscalls:sys_enter_/ && $2 ~ /^[0-9]+$/ {
      name = $1; sub(/-[0-9]+$/, "", name); sub(/^ +/, "", name); kind = $4; sub(/^syscalls:sys_enter_/, "", kind)
      n[name "\t" kind] += $2; if (name == "dispatcher" && kind == "sendmsg") d += $2 }
    END { if (d == 0) exit 1; for (k in n) if (n[k] / d >= 0.0005) printf "%s\t%.3f\n", k, n[k] / d }' \
    "$tmp/syscalls.csv" | sort >"$tmp/syscalls.tsv" || die "no dispatcher sendmsg counted: was hookd delivering?"
  {
    echo "profile.sh: system calls per delivery (per dispatcher sendmsg), by thread and kind"
    awk -F'\t' '{ printf "  %8.3f  %s %s\n", $3, $1, $2 }' "$tmp/syscalls.tsv"
  } >&2
fi

jq -n --rawfile threads "$tmp/threads.tsv" --rawfile libraries "$tmp/libraries.tsv" \
  --rawfile syscalls "$tmp/syscalls.tsv" --rawfile parts "$tmp/parts.tsv" \
  --slurpfile lower "$tmp/compare.json" --argjson seconds "$seconds" '
  def rows: split("\n") | map(select(length > 0) | split("\t") | {share: (.[0] | tonumber), what: .[1]});
  {seconds_sampled: $seconds, lower: ($lower[0].lower // null),
   threads: ($threads | rows), threads_and_libraries: ($libraries | rows),
   parts: ($parts | rows | map({part: .what, share}) as $p | ($p | map(.share) | add) as $t
     | $p | map(. + {us_per_delivery: (if $lower[0].lower then (.share / $t * $lower[0].lower.hookd.cpu_us_per_delivery * 100 | round / 100) else null end)})),
   syscalls_per_delivery: ($syscalls | split("\n") | map(select(length > 0) | split("\t")
     | {thread: .[0], call: .[1], per_delivery: (.[2] | tonumber)}))}'
if [[ -n $keep ]]; then
  mkdir -p "$keep"
  cp "$tmp/perf.data" "$tmp/threads.tsv" "$tmp/libraries.tsv" "$tmp/parts.tsv" "$tmp/syscalls.tsv" "$tmp/compare.log" "$keep/"
  log "kept in $keep (perf report -i $keep/perf.data --sort comm,dso,sym)"
fi
