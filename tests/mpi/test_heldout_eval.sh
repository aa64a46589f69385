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
config() {  # config NAME [extra YAML lines, replacing the defaults' keys]
  local name=$1
  shift
  local base=('channel_size: 4' 'img_size: 8' 'channels: 64' 'head_dim: 32' 'blocks: 2' 'layers_per_block: [1, 1]'
              'txt_size: 1' 'txt_dim: 5' 'steps: 16' 'batch_size: 8' 'seed: 3' 'lr: 1e-3' 'warmup_steps: 2'
              'log_every: 1000' 'checkpoint_every: 4' 'keep_checkpoints: 10' "output_dir: $dir/$name")
  {
    for line in "${base[@]}"; do
      printf '%s\n' "$@" | grep -q "^${line%%:*}:" || printf '%s\n' "$line"
    done
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

# Shards: eval_fraction holds whole shards out of training (1 of 4 here), eval_data reads another directory;
# both evaluate the same held-out samples alike on 1 and 2 ranks.
"$starflow" preprocess --dataset fashion-mnist --limit 256 --shard-size 64 --out "$dir/shards" > /dev/null
"$starflow" preprocess --dataset fashion-mnist --split test --limit 64 --shard-size 64 --out "$dir/held" > /dev/null
shard_model=('txt_dim: 11' 'batch_size: 16' 'steps: 8' 'eval_every: 4' 'eval_batches: 2')
config frac1 "${shard_model[@]}" "data: $dir/shards" 'eval_fraction: 0.25'
config frac2 "${shard_model[@]}" "data: $dir/shards" 'eval_fraction: 0.25'
config held2 "${shard_model[@]}" "data: $dir/shards" "eval_data: $dir/held"
"$starflow" train "$dir/frac1.yaml" > "$dir/frac1.log" 2>&1 || { cat "$dir/frac1.log"; fail "eval_fraction, 1 rank"; }
mpiexec -n 2 "$starflow" train "$dir/frac2.yaml" > "$dir/frac2.log" 2>&1 || { cat "$dir/frac2.log"; fail "eval_fraction, 2 ranks"; }
mpiexec -n 2 "$starflow" train "$dir/held2.yaml" > "$dir/held2.log" 2>&1 || { cat "$dir/held2.log"; fail "eval_data, 2 ranks"; }
grep -q "^data: 192 samples in $dir/shards" "$dir/frac1.log" || { cat "$dir/frac1.log"; fail "the held-out shard was trained on"; }
grep -q "evaluating every 4 steps on 32 held-out samples of $dir/shards (held out: eval_fraction)" "$dir/frac1.log" ||
  { cat "$dir/frac1.log"; fail "no eval_fraction banner"; }
grep -q "evaluating every 4 steps on 32 held-out samples of $dir/held" "$dir/held2.log" || { cat "$dir/held2.log"; fail "no eval_data banner"; }
[[ $(evals frac1 | head -1) == "$(evals frac2 | head -1)" ]] || fail "eval_fraction: step 0 differs between 1 and 2 ranks"
[[ $(evals held2 | wc -l) == 3 ]] || fail "eval_data: expected evaluations at steps 0, 4, 8"
echo "shards: eval_fraction step 0 on 1 and 2 ranks: $(evals frac1 | head -1 | awk '{print $2}') bits/dim; eval_data: $(evals held2 | tail -1 | awk '{print $2}') at step 8"

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
