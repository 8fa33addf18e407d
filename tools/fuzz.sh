#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang-16, ASan + UBSan, build/fuzz) and runs
# each for SECONDS (default 60) from its seed corpus in tests/fuzz/corpus/<target>/, with its
# dictionary. Prints one JSON line per target on stdout:
#   {"target":"request","seconds":60,"executions":123456,"exec_per_second":2057,"coverage":4321,
#    "features":9876,"corpus":345,"new_units":12,"peak_rss_mb":210,"crashes":0,"artifacts":[]}
# and exits 1 when any target crashed, leaked, timed out or ran out of memory; the input that did
# it is in build/fuzz/artifacts/<target>/ (replay: build/fuzz/bin/fuzz_<target> FILE).
# What a run finds is kept in build/fuzz/corpus/<target>/, which the next run starts from too;
# the seeds in the repository are never written to.
# Usage: bash tools/fuzz.sh [SECONDS] [TARGET...]   (all targets by default; docs/fuzzing.md)
# HOOKD_FUZZ_PRESET=fuzz-ci builds at -O0 instead (build/fuzz-ci): half the compile time, for
# short runs such as CI's, where the build is most of the cost.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
preset=${HOOKD_FUZZ_PRESET:-fuzz}

bash tools/setup.sh >&2
# Build output goes to stderr: stdout carries only the JSON lines.
cmake --preset "$preset" ${HOOKD_CMAKE_ARGS:-} >&2
cmake --build --preset "$preset" >&2

build=build/$preset
all_targets=()
for src in tests/fuzz/*_fuzz.cpp; do
  name=$(basename "$src" _fuzz.cpp)
  all_targets+=("$name")
done
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

dict_for() {
  case $1 in
    request | outbound_response | address_guard) echo tests/fuzz/http.dict ;;
    *) echo tests/fuzz/json.dict ;;
  esac
}

# Sanitizer reports abort (so that libFuzzer saves the input) and carry a stack trace.
# clang-16 from Debian comes without llvm-symbolizer; any version names a finding's frames.
if [[ -z ${ASAN_SYMBOLIZER_PATH:-} ]]; then
  for symbolizer in llvm-symbolizer-16 llvm-symbolizer llvm-symbolizer-14; do
    if command -v "$symbolizer" >/dev/null; then
      export ASAN_SYMBOLIZER_PATH=$(command -v "$symbolizer")
      break
    fi
  done
fi
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

failed=0
for t in "${targets[@]}"; do
  bin=$build/bin/fuzz_$t
  [[ -x $bin ]] || { echo "fuzz: no target $t ($bin)" >&2; exit 2; }
  work=$build/corpus/$t
  artifacts=$build/artifacts/$t
  log=$build/logs/$t.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  touch "$log.start"  # artifacts newer than this are this run's
  rc=0
  "$bin" "$work" "tests/fuzz/corpus/$t" -dict="$(dict_for "$t")" -max_total_time="$seconds" \
    -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    >"$log" 2>&1 || rc=$?

  # The last status line ("#N ... cov: C ft: F corp: U/...") and the final stats.
  status=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$status")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$status")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$status")
  stat() { sed -nE "s/^stat::$1: *([0-9]+).*/\1/p" "$log" | tail -n 1; }
  execs=$(stat number_of_executed_units)
  [[ -n $execs ]] || execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$status")
  per_second=$(stat average_exec_per_sec)
  new_units=$(stat new_units_added)
  rss=$(stat peak_rss_mb)
  found=()
  while IFS= read -r f; do found+=("\"$f\""); done < <(
    find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
      -o -name 'oom-*' \) -newer "$log.start" 2>/dev/null | sort || true)
  crashes=${#found[@]}
  if ((rc != 0 && crashes == 0)); then crashes=1; fi
  ((crashes == 0)) || failed=1
  list=$(IFS=,; echo "${found[*]:-}")
  printf '{"target":"%s","seconds":%s,"executions":%s,"exec_per_second":%s,"coverage":%s,' \
    "$t" "$seconds" "${execs:-0}" "${per_second:-0}" "${cov:-0}"
  printf '"features":%s,"corpus":%s,"new_units":%s,"peak_rss_mb":%s,"crashes":%s,"artifacts":[%s]}\n' \
    "${ft:-0}" "${corp:-0}" "${new_units:-0}" "${rss:-0}" "$crashes" "$list"
  if ((rc != 0)); then
    echo "fuzz: $t failed (exit $rc); its log: $log" >&2
    grep -E 'ERROR|SUMMARY|_fuzz: |runtime error' "$log" | head -n 5 >&2 || true
  fi
done
exit "$failed"
