#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: install dependencies, build, run ctest (on an AVX-512 host,
# the unit tests again on the AVX2 kernels); then the unit tests of a PORTABLE build; then every fuzz target
# for FUZZ_SECONDS (default 8) each.
# Usage: bash tools/test.sh   (BUILD_DIR=... to choose the build folder)
#        SANITIZE=1 bash tools/test.sh: instead, the suite built with AddressSanitizer + UndefinedBehaviorSanitizer
#        (CMake SANITIZE=ON, no CUDA, in $BUILD_DIR-asan; the benchmarks are left out). Not in CI: see FUZZING.md
#        for its time on the 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) == 0 ]]; then bash tools/install-deps.sh; else sudo bash tools/install-deps.sh; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
build=${BUILD_DIR:-build}
if [[ ${SANITIZE:-0} == 1 ]]; then
  cmake -S . -B "$build-asan" -DCMAKE_BUILD_TYPE=Release -DWITH_CUDA=OFF -DSANITIZE=ON
  cmake --build "$build-asan" -j2
  # Open MPI and OpenBLAS keep allocations until exit by design: leak reports would be theirs, not ours.
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd "$build-asan" && ctest --output-on-failure -j2 --timeout 1800 -E '^bench\.')
  exit 0
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j2
(cd "$build" && ctest --output-on-failure -j2 --timeout 600)
# On an AVX-512 host ctest ran the AVX-512 kernels and oneDNN's GEMM: the unit tests once more on the kernels
# and GEMM an AVX2 host runs.
if grep -qw avx512f /proc/cpuinfo; then
  STARFLOW_CPU_ISA=avx2 STARFLOW_GEMM=openblas "$build/starflow_tests" --gtest_brief=1
fi
# The unit tests again in a PORTABLE build (generic x86-64, no AVX2 kernels, no CUDA): its fallbacks must
# keep the same guarantees (golden parity, sampling's independence of batch size and thread count).
cmake -S . -B "$build-portable" -DCMAKE_BUILD_TYPE=Release -DPORTABLE=ON -DWITH_CUDA=OFF
cmake --build "$build-portable" -j2 --target starflow_tests
"$build-portable/starflow_tests" --gtest_brief=1
# Every libFuzzer target for a few seconds from its committed seeds (tools/fuzz.sh; FUZZING.md holds the long
# runs): a crash, a sanitizer report or a rejection that is not one line naming the file fails the suite.
# A clean build-fuzz takes about 6 minutes on 2 cores.
bash tools/fuzz.sh "${FUZZ_SECONDS:-8}"
