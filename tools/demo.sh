#!/usr/bin/env bash
# The demo on a fresh Debian 12 machine: install dependencies, build, run `starflow demo` (Fashion-MNIST:
# preprocess and train on 2 MPI ranks, sample a guided 10×10 grid, evaluate). Extra arguments go to the demo
# (--dataset emoji: the text-conditional one on the captioned emoji set).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) == 0 ]]; then bash tools/install-deps.sh; else sudo bash tools/install-deps.sh; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$build" -j2
"$build/starflow" demo "$@"
