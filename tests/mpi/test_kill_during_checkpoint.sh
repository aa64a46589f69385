#!/usr/bin/env bash
# kill -9 of a 2-rank training run at random moments (it checkpoints every step, so most kills land in or
# near a checkpoint write) never leaves a checkpoint under its final name that does not load. Usage: test_kill_during_checkpoint.sh STARFLOW [KILLS]
set -euo pipefail
starflow=$1
kills=${2:-20}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/tiny.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
head_dim: 32
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 5
steps: 100000
batch_size: 8
seed: 3
output_dir: $dir/out
checkpoint_every: 1
keep_checkpoints: 2
log_every: 1000
YAML
for ((i = 0; i < kills; i++)); do
  setsid mpiexec -n 2 "$starflow" train "$dir/tiny.yaml" > /dev/null 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
  kill -9 -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pkill -9 -f "$dir/tiny.yaml" 2>/dev/null || true
  sleep 0.1
  for ckpt in "$dir"/out/checkpoints/ckpt_*.sfckpt; do
    [[ -e $ckpt ]] || continue
    # convert reads every weight tensor and checks its CRC-32.
    "$starflow" convert --from "$ckpt" --to "$dir/w.safetensors" > /dev/null || { echo "kill $i: $ckpt does not load"; exit 1; }
  done
done
n=$(ls "$dir"/out/checkpoints/ckpt_*.sfckpt 2>/dev/null | wc -l)
[[ $n -ge 1 ]] || { echo "no checkpoint was ever completed"; exit 1; }
echo "$kills kills: every checkpoint under its final name loads ($n kept)"
