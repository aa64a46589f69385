#!/usr/bin/env bash
# Commands that run as one process refuse to run as several MPI ranks (each would do the same work and
# write the same files), with one line from rank 0; `sample` does so without --tp. Outside mpirun they run.
# Usage: test_launch_checks.sh STARFLOW
set -uo pipefail
starflow=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mpiexec -n 2 "$starflow" inspect "$dir/none.sfckpt" > "$dir/out" 2>&1
rc=$?
[[ $rc -ne 0 ]] || fail "inspect under 2 ranks succeeded"
[[ $(grep -c "starflow inspect: launched as 2 ranks" "$dir/out") -eq 1 ]] || { cat "$dir/out"; fail "inspect: expected one launch line"; }
grep -q "none.sfckpt" "$dir/out" && { cat "$dir/out"; fail "inspect ran anyway"; }

mpiexec -n 2 "$starflow" sample --weights "$dir/none.safetensors" --out "$dir/s.safetensors" > "$dir/out" 2>&1
rc=$?
[[ $rc -ne 0 ]] || fail "sample under 2 ranks without --tp succeeded"
[[ $(grep -c "starflow sample: launched as 2 ranks without --tp" "$dir/out") -eq 1 ]] || { cat "$dir/out"; fail "sample: expected one launch line"; }

# One process: the command runs (and reports its own error about the missing file).
"$starflow" inspect "$dir/none.sfckpt" > "$dir/out" 2>&1
[[ $? -ne 0 ]] && grep -q "none.sfckpt" "$dir/out" && ! grep -q "launched as" "$dir/out" || { cat "$dir/out"; fail "inspect outside mpirun"; }
# One rank under mpirun is one process too.
mpiexec -n 1 "$starflow" inspect "$dir/none.sfckpt" > "$dir/out" 2>&1
grep -q "none.sfckpt" "$dir/out" && ! grep -q "launched as" "$dir/out" || { cat "$dir/out"; fail "inspect under 1 rank"; }
echo PASS
