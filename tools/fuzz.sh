#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz/fuzz_*.cpp: libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer,
# built with clang-16 in build-fuzz) for SECONDS each, from a scratch copy of its committed seed corpus
# (tests/fuzz/corpus/<target>). Prints per target the executions, coverage and features; exits 1 on the first
# crash, leak, sanitizer report or multi-line rejection, naming the reproducer (kept in build-fuzz/crashes/).
# Usage: tools/fuzz.sh SECONDS [TARGET ...]        (FUZZ_JOBS: parallel targets, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: tools/fuzz.sh SECONDS [TARGET ...]}
shift
build=build-fuzz
if ! command -v clang++-16 > /dev/null || [[ ! -d /usr/lib/llvm-16/lib/clang/16/lib/linux ]]; then
  if [[ $(id -u) == 0 ]]; then bash tools/install-deps.sh --fuzz; else sudo bash tools/install-deps.sh --fuzz; fi
fi
if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang-16 CXX=clang++-16 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DWITH_CUDA=OFF -DSTARFLOW_FUZZ=ON > /dev/null
fi
t0=$SECONDS
cmake --build "$build" -j2 --target fuzz_all > "$build/fuzz-build.log" 2>&1 || { tail -30 "$build/fuzz-build.log"; exit 1; }
echo "fuzz targets built in $((SECONDS - t0)) s"
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp | sed 's/^fuzz_//')"); done
fi
mkdir -p "$build/crashes"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Open MPI and HDF5 keep allocations until exit by design (lsan.supp), and HDF5 has its own corrupted-file
# bugs (asan.supp); every other leak and error is reported.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:suppressions=$PWD/tests/fuzz/asan.supp LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0
printf '%-20s %8s %12s %8s %8s  %s\n' target seconds executions cov ft result
status=0
for t in "${targets[@]}"; do
  corpus=$work/$t
  mkdir -p "$corpus"
  cp -r tests/fuzz/corpus/"$t"/. "$corpus"/ 2>/dev/null || true
  dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")
  log=$work/$t.log
  result=ok
  extra=(-rss_limit_mb=2048)
  # HDF5 trusts sizes in a corrupted file's metadata and asks malloc for gigabytes before any check of ours
  # can run: the shard fuzzer lets such an allocation fail (HDF5 then reports an error) instead of calling it
  # out-of-memory.
  [[ $t == latent_shard ]] && extra=(-rss_limit_mb=0 -malloc_limit_mb=0)
  ASAN_OPTIONS=$ASAN_OPTIONS$([[ $t == latent_shard ]] && echo :allocator_may_return_null=1) \
  "$build/fuzz_$t" "$corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=10 "${extra[@]}" \
    -artifact_prefix="$build/crashes/$t-" -print_final_stats=1 > "$log" 2>&1 || result=FAILED
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  printf '%-20s %8s %12s %8s %8s  %s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
  if [[ $result != ok ]]; then
    grep -E "ERROR|SUMMARY|rejection is not one line|Test unit written" "$log" | head -8
    status=1
  fi
done
exit $status
