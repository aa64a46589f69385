#!/usr/bin/env bash
# The threads of our own under ThreadSanitizer: the background checkpoint writer (MPI-IO on its own
# communicator while training goes on), the prefetching shard reader, the hang watchdog's monitor, and the
# HDF5 lock between them, in real jobs: preprocessing on 2 ranks, training on 1 and 2 ranks from shards with
# asynchronous checkpoints, held-out evaluation, EMA and keep_best, a resume, and sampling. Any ThreadSanitizer
# report fails the run (tools/tsan.supp: Open MPI's internal lock order only). OpenMP runs one thread here:
# libgomp is not instrumented, so its barriers would read as races. Not in CI (a few minutes on 2 cores from a
# clean tree): FUZZING.md records the runs.
# Usage: bash tools/tsan.sh   (BUILD_DIR=... chooses the build folder; the build goes to $BUILD_DIR-tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}-tsan
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWITH_CUDA=OFF -DSANITIZE_THREAD=ON > /dev/null
cmake --build "$build" -j2 --target starflow
starflow=$PWD/$build/starflow
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
export TSAN_OPTIONS="halt_on_error=0 exitcode=66 suppressions=$PWD/tools/tsan.supp"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failed=0
run() {  # run NAME COMMAND...: the command's output in $dir/NAME.log; a TSan report or a failure is reported
  local name=$1 status=0
  shift
  "$@" > "$dir/$name.log" 2>&1 || status=$?
  local reports
  reports=$(grep -c "^WARNING: ThreadSanitizer" "$dir/$name.log" || true)
  echo "$name: exit $status, $reports ThreadSanitizer reports"
  if ((status != 0 || reports != 0)); then
    grep -A30 "^WARNING: ThreadSanitizer" "$dir/$name.log" | head -120 || tail -20 "$dir/$name.log"
    failed=1
  fi
}
config() {  # config NAME STEPS
  cat > "$dir/$1.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
head_dim: 32
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 11
steps: $2
batch_size: 16
seed: 3
lr: 1e-3
warmup_steps: 2
log_every: 1000
checkpoint_every: 2
keep_checkpoints: 3
checkpoint_async: true
eval_every: 4
eval_fraction: 0.1
eval_batches: 2
keep_best: true
ema: 0.99
data: $dir/shards
output_dir: $dir/$1
YAML
}
run preprocess mpiexec -x TSAN_OPTIONS -n 2 "$starflow" preprocess --dataset fashion-mnist --limit 512 --shard-size 64 --out "$dir/shards"
config one 12
run train_1_rank "$starflow" train "$dir/one.yaml"
config two 12
run train_2_ranks mpiexec -x TSAN_OPTIONS -n 2 "$starflow" train "$dir/two.yaml"
config two 20
run resume_2_ranks mpiexec -x TSAN_OPTIONS -n 2 "$starflow" train "$dir/two.yaml"
grep -q "^resumed from .* at step 12" "$dir/resume_2_ranks.log" || { echo "resume_2_ranks: did not resume"; failed=1; }
run convert "$starflow" convert --from "$(ls "$dir"/two/checkpoints/ckpt_*.sfckpt | sort | tail -1)" --to "$dir/w.safetensors"
run sample "$starflow" sample --weights "$dir/w.safetensors" --class 3 --out "$dir/s.safetensors"
((failed == 0)) && echo "ThreadSanitizer: no reports" || { echo "ThreadSanitizer: FAILED"; exit 1; }
