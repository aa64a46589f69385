#!/usr/bin/env bash
# Runs the fuzz targets (tests/fuzz/fuzz_<target>.cpp: libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer,
# built with clang-16 in build-fuzz/, configured and built here when needed) for SECONDS each, each from a scratch
# copy of its committed seeds (tests/fuzz/corpus/<target>/; the committed corpus only changes by hand) with its
# dictionary (tests/fuzz/<target>.dict). Prints per target the seconds it ran (fewer when it stopped on a crash),
# the executions, libFuzzer's final coverage (cov: edges, ft: features) and the crashes; exits 1 if any target crashed, leaked, hit a sanitizer report, a timeout
# (-timeout=10 s per input), the memory limit (2 GiB) or a bad rejection, printing the reproducer
# (build-fuzz/crashes/<target>-*; rerun it with build-fuzz/fuzz_<target> FILE). See FUZZING.md.
# Usage: tools/fuzz.sh SECONDS [TARGET ...]   default: every target but latent_shard_bytes (HDF5's own crashes)
#        FUZZ_JOBS=N tools/fuzz.sh ...        N targets at a time (default 1; each uses one core)
#        FUZZ_LOG_DIR=DIR tools/fuzz.sh ...   keeps libFuzzer's logs in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: tools/fuzz.sh SECONDS [TARGET ...]}
shift
build=build-fuzz
jobs=${FUZZ_JOBS:-1}
if ! command -v clang++-16 > /dev/null || [[ ! -d /usr/lib/llvm-16/lib/clang/16/lib/linux ]]; then
  if [[ $(id -u) == 0 ]]; then bash tools/install-deps.sh; else sudo bash tools/install-deps.sh; fi
fi
if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang-16 CXX=clang++-16 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWITH_CUDA=OFF -DSTARFLOW_FUZZ=ON > /dev/null
fi
t0=$SECONDS
cmake --build "$build" -j2 --target fuzz_all > "$build/fuzz-build.log" 2>&1 || { tail -30 "$build/fuzz-build.log"; exit 1; }
echo "fuzz targets built in $((SECONDS - t0)) s"

targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/fuzz_*.cpp; do
    t=$(basename "$f" .cpp)
    t=${t#fuzz_}
    [[ $t == latent_shard_bytes ]] || targets+=("$t")
  done
fi
mkdir -p "$build/crashes"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Leaks are checked after each input that allocated more than it freed (libFuzzer's -detect_leaks); Open MPI
# and HDF5 keep allocations by design (lsan.supp), and what they still hold at exit is not checked (their
# frames lack frame pointers, so suppressions cannot match them).
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0:leak_check_at_exit=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
asan_options=detect_leaks=1:abort_on_error=1
for symbolizer in /usr/lib/llvm-16/bin/llvm-symbolizer "$(command -v llvm-symbolizer || true)"; do
  if [[ -x $symbolizer ]]; then export ASAN_SYMBOLIZER_PATH=$symbolizer; break; fi
done

run_target() {  # target -> $work/<target>.log and .result
  local t=$1 corpus=$work/$1 log=$work/$1.log options=$asan_options
  mkdir -p "$corpus"
  cp -r tests/fuzz/corpus/"$t"/. "$corpus"/ 2> /dev/null || true
  local extra=()
  [[ -f tests/fuzz/$t.dict ]] && extra+=(-dict="tests/fuzz/$t.dict")
  # HDF5 1.10.8 copies overlapping ranges inside the library on some corrupted files (asan.supp).
  [[ $t == latent_shard_bytes ]] && options+=:suppressions=$PWD/tests/fuzz/asan.supp
  local status=0 start=$SECONDS
  { ASAN_OPTIONS=$options "$build/fuzz_$t" "$corpus" "${extra[@]}" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$build/crashes/$t-" -print_final_stats=1 > "$log" 2>&1; } 2> /dev/null ||
    status=$?
  local execs cov ft crashes
  execs=$(awk '/stat::number_of_executed_units/ {n = $2} END {print n}' "$log")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  crashes=$(grep -c 'Test unit written to' "$log" || true)
  if ((status != 0 && crashes == 0)); then crashes=1; fi
  printf '%-20s %8s %12s %8s %8s %8s\n' "$t" "$((SECONDS - start))" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes" > "$work/$t.result"
  return 0
}

running=0
for t in "${targets[@]}"; do
  [[ -x $build/fuzz_$t ]] || { echo "no fuzz target '$t' (tests/fuzz/fuzz_$t.cpp)"; exit 2; }
  if ((jobs > 1)); then
    if ((running >= jobs)); then wait -n; running=$((running - 1)); fi
    run_target "$t" &
    running=$((running + 1))
  else
    run_target "$t"
  fi
done
wait

printf '%-20s %8s %12s %8s %8s %8s\n' target seconds executions cov ft crashes
failed=0
for t in "${targets[@]}"; do
  cat "$work/$t.result"
  read -r _ _ _ _ _ crashes < "$work/$t.result"
  if ((crashes > 0)); then
    failed=1
    grep -E 'ERROR: |SUMMARY: |BAD REJECTION|BAD LOAD|runtime error:' "$work/$t.log" | head -6 | sed 's/^/    /'
    grep -oE 'Test unit written to .*' "$work/$t.log" | sed "s|Test unit written to |    reproducer: |; s|\$|  (rerun: $build/fuzz_$t FILE)|"
  fi
done
if [[ -n ${FUZZ_LOG_DIR:-} ]]; then mkdir -p "$FUZZ_LOG_DIR" && cp "$work"/*.log "$FUZZ_LOG_DIR"/; fi
exit $failed
