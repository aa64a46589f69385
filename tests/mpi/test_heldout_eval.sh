#!/usr/bin/env bash
# Held-out evaluation during training and asynchronous checkpoints, on a tiny class-conditional model over
# synthetic latents:
#  - eval_every: a baseline at step 0 and one every 4 steps, in metrics.jsonl and on the progress line; the
#    held-out bits/dim falls on 1 and on 2 data-parallel ranks; with the same weights (step 0) the figure is
#    identical, digit for digit, on 1 and 2 ranks (later the runs' weights differ: the training noise is keyed
#    by the data-parallel rank);
#  - keep_best: <checkpoints>/best holds one checkpoint, of the step with the lowest held-out bits/dim, whose
#    header carries that figure; with EMA the EMA weights are evaluated and the log says so;
#  - checkpoint_async: the background-written checkpoints hold the same tensors (CRC-32s) as synchronous ones.
# Usage: test_heldout_eval.sh STARFLOW
set -euo pipefail
starflow=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
config() {  # config NAME [extra YAML lines]
  local name=$1
  shift
  {
    printf 'channel_size: 4\nimg_size: 8\nchannels: 64\nhead_dim: 32\nblocks: 2\nlayers_per_block: [1, 1]\n'
    printf 'txt_size: 1\ntxt_dim: 5\nsteps: 16\nbatch_size: 8\nseed: 3\nlr: 1e-3\nwarmup_steps: 2\nlog_every: 1000\n'
    printf 'checkpoint_every: 4\nkeep_checkpoints: 10\noutput_dir: %s\n' "$dir/$name"
    for line in "$@"; do printf '%s\n' "$line"; done
  } > "$dir/$name.yaml"
}
evals() { grep eval_bits_per_dim "$dir/$1/metrics.jsonl" | python3 -c '
import json, sys
for line in sys.stdin:
    j = json.loads(line); print(j["step"], repr(j["eval_bits_per_dim"]), j["eval_weights"], j["eval_best"])'; }

config one 'eval_every: 4' 'eval_batches: 2' 'keep_best: true'
config two 'eval_every: 4' 'eval_batches: 2' 'keep_best: true'
"$starflow" train "$dir/one.yaml" > "$dir/one.log" 2>&1 || { cat "$dir/one.log"; fail "1-rank training"; }
mpiexec -n 2 "$starflow" train "$dir/two.yaml" > "$dir/two.log" 2>&1 || { cat "$dir/two.log"; fail "2-rank training"; }
grep -q 'evaluating every 4 steps on 16 held-out synthetic samples' "$dir/one.log" || { cat "$dir/one.log"; fail "no eval banner"; }
grep -q '^eval   step      0  held-out .* bits/dim (model weights, 16 samples)' "$dir/one.log" ||
  { cat "$dir/one.log"; fail "no eval line"; }
evals one > "$dir/one.evals"
evals two > "$dir/two.evals"
echo "held-out bits/dim (step, 1 rank, 2 ranks):"
paste "$dir/one.evals" "$dir/two.evals" | awk '{print "  " $1, $2, $6}'
[[ $(wc -l < "$dir/one.evals") == 5 ]] || fail "expected evaluations at steps 0, 4, 8, 12, 16"
[[ $(head -1 "$dir/one.evals") == "$(head -1 "$dir/two.evals")" ]] || fail "step 0 differs between 1 and 2 ranks"
for run in one two; do
  awk 'NR == 1 {first = $2} {last = $2} END {exit !(last < first - 0.05)}' "$dir/$run.evals" ||
    fail "$run: the held-out bits/dim did not fall"
done

# keep_best: the one checkpoint in best/ is the step with the lowest figure.
best_step=$(sort -k2 -g "$dir/one.evals" | head -1 | awk '{print $1}')
best_bits=$(sort -k2 -g "$dir/one.evals" | head -1 | awk '{print $2}')
files=("$dir"/one/checkpoints/best/ckpt_*.sfckpt)
[[ ${#files[@]} == 1 ]] || fail "best/ holds ${#files[@]} checkpoints"
[[ $(basename "${files[0]}") == "ckpt_$(printf %08d "$best_step").sfckpt" ]] ||
  fail "best/ holds $(basename "${files[0]}"), the best was step $best_step"
"$starflow" inspect "${files[0]}" | grep -q "best_eval_bits_per_dim.*${best_bits:0:8}" ||
  { "$starflow" inspect "${files[0]}"; fail "the best checkpoint does not carry its figure $best_bits"; }
echo "best: step $best_step ($best_bits bits/dim) in $(basename "${files[0]}")"
# Resumed with a learning rate that wrecks the weights: the later, worse evaluation does not replace the best
# (the best figure is restored from the checkpoint, not forgotten).
sed -e 's/^steps: 16/steps: 20/' -e 's/^lr: 1e-3/lr: 3/' "$dir/one.yaml" > "$dir/wreck.yaml"
"$starflow" train "$dir/wreck.yaml" > "$dir/wreck.log" 2>&1 || { cat "$dir/wreck.log"; fail "resumed training"; }
evals one | tail -1 > "$dir/wreck.evals"
read -r wreck_step wreck_bits _ wreck_best < "$dir/wreck.evals"
[[ $wreck_step == 20 && $wreck_best == False ]] && awk -v a="$wreck_bits" -v b="$best_bits" 'BEGIN {exit !(a > b)}' ||
  fail "step 20 ($wreck_bits bits/dim, best: $wreck_best) after the wrecking steps"
[[ $(ls "$dir"/one/checkpoints/best/) == "ckpt_$(printf %08d "$best_step").sfckpt" ]] ||
  fail "best/ changed to $(ls "$dir"/one/checkpoints/best/) after a worse evaluation"
echo "resumed, wrecked to $wreck_bits bits/dim at step 20: best/ still holds step $best_step"

# EMA: the EMA weights are evaluated, and the log says so.
config ema 'eval_every: 8' 'eval_batches: 1' 'ema: 0.9' 'steps: 8'
"$starflow" train "$dir/ema.yaml" > "$dir/ema.log" 2>&1 || { cat "$dir/ema.log"; fail "EMA training"; }
grep -q '(ema weights, 8 samples)' "$dir/ema.log" || { cat "$dir/ema.log"; fail "EMA evaluation not said"; }

# Asynchronous and synchronous checkpoints hold the same tensors.
config sync 'checkpoint_async: false'
config async 'checkpoint_async: true'
for m in sync async; do
  mpiexec -n 2 "$starflow" train "$dir/$m.yaml" > "$dir/$m.log" 2>&1 || { cat "$dir/$m.log"; fail "$m training"; }
done
for step in 4 8 12 16; do
  name=ckpt_$(printf %08d $step).sfckpt
  cmp -s <("$starflow" inspect "$dir/sync/checkpoints/$name" --tensors | awk '/crc32/ {print $1, $NF}') \
         <("$starflow" inspect "$dir/async/checkpoints/$name" --tensors | awk '/crc32/ {print $1, $NF}') ||
    fail "$name: the asynchronous checkpoint's tensors differ from the synchronous one's"
done
echo "asynchronous checkpoints at steps 4, 8, 12, 16 hold the synchronous ones' tensors"
echo "held-out evaluation: ok"
