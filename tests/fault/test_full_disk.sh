#!/usr/bin/env bash
# A checkpoint directory on a full file system (a tmpfs with room for 1.5 checkpoints of the tiny model):
# the write that does not fit fails the job with one line naming the file and the reason, the previous
# checkpoint stays intact (it loads and verifies) and training resumes from it once there is room. Needs root
# to mount the tmpfs; skips (77) where mounting is not allowed. Both ways of writing: synchronous, and
# asynchronous (the background write fails; the job stops at the next step boundary on every rank).
# Usage: test_full_disk.sh STARFLOW
set -euo pipefail
starflow=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
mkdir -p "$dir/small"
cleanup() { umount "$dir/small" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
config() {  # config FILE CHECKPOINT_DIR [ASYNC]
  cat > "$1" <<YAML
channel_size: 4
img_size: 8
channels: 64
head_dim: 32
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 5
steps: 12
batch_size: 8
seed: 3
output_dir: $dir/out
checkpoint_dir: $2
checkpoint_every: 1
checkpoint_async: ${3:-false}
keep_checkpoints: 2
log_every: 1000
YAML
}
# The size of one checkpoint, from a run on the ordinary disk.
config "$dir/probe.yaml" "$dir/probe"
"$starflow" train "$dir/probe.yaml" --steps 1 > /dev/null
bytes=$(stat -c %s "$dir/probe/ckpt_00000001.sfckpt")
size_kb=$((bytes * 3 / 2 / 1024))
mount -t tmpfs -o size=${size_kb}k tmpfs "$dir/small" 2>/dev/null || { echo "SKIP: cannot mount a tmpfs here"; exit 77; }
for async in false true; do
  rm -rf "${dir:?}"/small/* "$dir/out"
  config "$dir/full.yaml" "$dir/small" $async
  status=0
  mpiexec -n 2 "$starflow" train "$dir/full.yaml" > "$dir/out.log" 2> "$dir/err.log" || status=$?
  echo "checkpoint_async $async: checkpoint of $bytes bytes, file system of ${size_kb} KiB: training exit $status"
  [[ $status != 0 ]] || { echo "FAIL: training did not fail on a full disk"; exit 1; }
  grep -q "the file system is full or failing" "$dir/err.log" || { echo "FAIL: the reason was not given"; cat "$dir/err.log"; exit 1; }
  grep "starflow train:" "$dir/err.log" | head -1
  [[ $(grep -c "starflow train:" "$dir/err.log") == 1 ]] || { echo "FAIL: not one line"; cat "$dir/err.log"; exit 1; }
  grep -qE "^starflow train: (checkpoint write failed \(the previous checkpoints are intact\): )?rank 0: $dir/small/ckpt_00000002.sfckpt.tmp: wrote" "$dir/err.log" ||
    { echo "FAIL: the file was not named in one line"; cat "$dir/err.log"; exit 1; }
  [[ ! -e $dir/small/ckpt_00000002.sfckpt.tmp && ! -e $dir/small/ckpt_00000002.sfckpt ]] ||
    { echo "FAIL: the failed write left a file behind"; ls -la "$dir/small"; exit 1; }
  newest=$(ls "$dir/small"/ckpt_*.sfckpt | sort | tail -1)
  "$starflow" convert --from "$newest" --to "$dir/w.safetensors" > /dev/null || { echo "FAIL: $newest does not load"; exit 1; }
  echo "the previous checkpoint $(basename "$newest") loads and verifies"
done
# With room again (the checkpoint moved to a roomy disk), the run resumes from it and finishes.
mkdir -p "$dir/room"
config "$dir/room.yaml" "$dir/room"
cp "$newest" "$dir/room/"
"$starflow" train "$dir/room.yaml" > "$dir/resume.log" 2>&1 || { cat "$dir/resume.log"; exit 1; }
grep -q "resumed from .*$(basename "$newest")" "$dir/resume.log" || { echo "FAIL: did not resume"; cat "$dir/resume.log"; exit 1; }
echo "full disk: ok"
