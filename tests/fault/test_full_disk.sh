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
cleanup() { umount "$dir/small" "$dir/small_shards" 2>/dev/null || true; rm -rf "$dir"; }
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

# Latent shards on a full file system (a tmpfs with room for 2.5 shards): the shard that does not fit fails the
# run with one line naming it and the reason, no temporary file is left behind, the complete shards stay, and
# with room again a rerun keeps them and writes the rest. (HDF5 1.10 crashed at exit after such a failure.)
"$starflow" preprocess --dataset fashion-mnist --limit 64 --shard-size 64 --out "$dir/probe_shards" > /dev/null
shard_bytes=$(stat -c %s "$dir/probe_shards/shard-00000.h5")
mkdir -p "$dir/small_shards"
mount -t tmpfs -o size=$((shard_bytes * 5 / 2 / 1024))k tmpfs "$dir/small_shards"
shards=$dir/small_shards/out
status=0
"$starflow" preprocess --dataset fashion-mnist --limit 320 --shard-size 64 --out "$shards" > "$dir/pre.log" 2> "$dir/pre.err" || status=$?
echo "preprocess: shards of ~$shard_bytes bytes, file system of $((shard_bytes * 5 / 2 / 1024)) KiB: exit $status"
grep "starflow preprocess:" "$dir/pre.err" | head -1
[[ $status == 2 ]] || { echo "FAIL: exit $status, expected 2"; cat "$dir/pre.err"; exit 1; }
[[ $(wc -l < "$dir/pre.err") == 1 ]] &&
  grep -qE "^starflow preprocess: $shards/shard-0000[0-9]\.h5: .*No space left on device$" "$dir/pre.err" ||
  { echo "FAIL: not one line naming the shard and the reason"; cat "$dir/pre.err"; exit 1; }
! ls "$shards" | grep -q '\.tmp\.' || { echo "FAIL: a temporary was left behind"; ls -la "$shards"; exit 1; }
complete=$(ls "$shards" | grep -c '^shard-[0-9]*\.h5$' || true)
((complete >= 1)) || { echo "FAIL: no complete shard before the full one"; ls -la "$shards"; exit 1; }
mount -o remount,size=4m "$dir/small_shards"
"$starflow" preprocess --dataset fashion-mnist --limit 320 --shard-size 64 --out "$shards" > "$dir/pre.log" 2>&1 ||
  { echo "FAIL: the rerun with room failed"; cat "$dir/pre.log"; exit 1; }
grep -q "^preprocess: 5 shards ($((5 - complete)) written, $complete already complete)" "$dir/pre.log" ||
  { echo "FAIL: the rerun did not keep the $complete complete shards"; cat "$dir/pre.log"; exit 1; }
echo "preprocess on a full disk: $complete complete shards kept, the rest written with room"
echo "full disk: ok"
