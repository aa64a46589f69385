#!/usr/bin/env bash
# A 2-rank training job whose loss diverges (lr 1e8) stops after max_bad_steps non-finite steps in a row: both
# ranks decide it from the same all-reduced figures, so the job ends cleanly (exit 2, no MPI_Abort) with the
# error printed once, and the checkpoints written before it are complete.
# Usage: test_nonfinite_abort.sh STARFLOW
set -uo pipefail
starflow=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/log"; exit 1; }
cat > "$dir/diverge.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
blocks: 2
layers_per_block: [1, 1]
head_dim: 32
txt_size: 1
txt_dim: 11
batch_size: 16
steps: 40
warmup_steps: 1
checkpoint_every: 1
log_every: 1
lr: 1e8
grad_clip: 0
max_bad_steps: 3
data: synthetic
output_dir: $dir/out
YAML
mpiexec -n 2 "$starflow" train "$dir/diverge.yaml" > "$dir/log" 2>&1
rc=$?
[[ $rc == 2 ]] || fail "exit $rc, expected 2"
[[ $(grep -c "^starflow train: training aborted: 3 non-finite steps in a row (the last checkpoint is intact)$" "$dir/log") == 1 ]] ||
  fail "expected the error once"
! grep -q "MPI_ABORT" "$dir/log" || fail "the job was aborted instead of ending together"
ls "$dir/out/checkpoints"/ckpt_*.sfckpt > /dev/null 2>&1 || fail "no checkpoint before the divergence"
for f in "$dir/out/checkpoints"/ckpt_*.sfckpt; do
  "$starflow" inspect "$f" > /dev/null 2>&1 || fail "$(basename "$f") does not verify"
done
! ls "$dir/out/checkpoints" | grep -qv '^ckpt_[0-9]*\.sfckpt$' || fail "partial files: $(ls "$dir/out/checkpoints")"
echo PASS
