#!/usr/bin/env bash
# kill -9 of a 2-rank training run at random moments after its first checkpoint write began, KILLS times (it
# checkpoints every step, so most kills land in or near a checkpoint write): every checkpoint left under its
# final name loads and verifies (convert checks each tensor's CRC-32), each rerun resumes from the newest one, and the run finished after all the kills has the
# uninterrupted run's weights, bit for bit. MODE async (the default: snapshots written by a background thread
# while training goes on) or sync. Usage: test_kill_during_checkpoint.sh STARFLOW [KILLS] [MODE]
set -euo pipefail
starflow=$1
kills=${2:-20}
case ${3:-async} in async) async=true ;; sync) async=false ;; *) echo "MODE must be async or sync"; exit 2 ;; esac
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'pkill -9 -f "$dir/" 2>/dev/null || true; rm -rf "$dir"' EXIT
steps=1000
config() {  # config NAME
  cat > "$dir/$1.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
head_dim: 32
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 5
steps: $steps
batch_size: 8
seed: 3
output_dir: $dir/$1
checkpoint_every: 1
checkpoint_async: $async
keep_checkpoints: 2
log_every: 1000
YAML
}
final_crc() {
  "$starflow" inspect "$dir/$1/checkpoints/ckpt_$(printf %08d $steps).sfckpt" --tensors | awk '/crc32/ {print $1, $NF}'
}
t0=$SECONDS
config reference
mpiexec -n 2 "$starflow" train "$dir/reference.yaml" > "$dir/reference.log" 2>&1 || { cat "$dir/reference.log"; exit 1; }
final_crc reference > "$dir/reference.crc"
config killed
newest=none
for ((i = 1; i <= kills; i++)); do
  touch "$dir/launched"
  setsid mpiexec -n 2 "$starflow" train "$dir/killed.yaml" >> "$dir/killed.log" 2>&1 &
  pid=$!
  # Wait for this run's first checkpoint write to begin (start-up time varies with the machine's load), then
  # kill within the next 0.4 s: inside a write or between two.
  for ((w = 0; w < 300; w++)); do
    [[ -n $(find "$dir/killed" -name 'ckpt_*' -newer "$dir/launched" 2>/dev/null | head -1) ]] && break
    sleep 0.05
  done
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  kill -9 -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pkill -9 -f "$dir/killed.yaml" 2>/dev/null || true
  sleep 0.1
  for ckpt in "$dir"/killed/checkpoints/ckpt_*.sfckpt; do
    [[ -e $ckpt ]] || continue
    "$starflow" convert --from "$ckpt" --to "$dir/w.safetensors" > /dev/null ||
      { echo "kill $i: $ckpt does not load"; exit 1; }
    newest=$(basename "$ckpt")
  done
done
echo "$kills kills in $((SECONDS - t0)) s: every checkpoint under its final name loaded; the newest: $newest"
[[ $newest != none ]] || { echo "no checkpoint was ever completed"; exit 1; }
[[ $newest != "ckpt_$(printf %08d $steps).sfckpt" ]] || { echo "the run ended before the kills did: make steps larger"; exit 1; }
mpiexec -n 2 "$starflow" train "$dir/killed.yaml" >> "$dir/killed.log" 2>&1 || { tail -20 "$dir/killed.log"; exit 1; }
final_crc killed > "$dir/killed.crc"
[[ -s $dir/reference.crc ]] && cmp -s "$dir/reference.crc" "$dir/killed.crc" ||
  { echo "the run resumed across $kills kills differs from the uninterrupted run"; exit 1; }
echo "resumed to step $steps across $kills kills: $(wc -l < "$dir/reference.crc") tensors bit-identical to the uninterrupted run ($((SECONDS - t0)) s)"
