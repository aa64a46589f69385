#!/usr/bin/env bash
# Training with the official model's optional switches on (issue 21): SwiGLU, QK-norm, RMSNorm pre-norms,
# post-norms, grouped-query attention with an attention width other than the block's, no biases, hf-style RoPE
# and a wider top block, on synthetic class-conditional latents. On 1 and 2 data-parallel ranks the held-out
# bits/dim falls; a run resumed from the step-10 checkpoint ends with the uninterrupted run's weights, bit for bit;
# the checkpoint converts to official-name weights (the config's switches in their `config`) that sample with
# guidance, sequentially and with Jacobi decoding. The learnable self-denoiser trains with its own AdamW (its
# loss falls), resumes bit for bit and denoises samples. Usage: test_train_switches.sh STARFLOW
set -euo pipefail
starflow=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
config() {  # config NAME STEPS
  cat > "$dir/$1.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
head_dim: 32
blocks: 2
layers_per_block: [1, 2]
top_block_channels: 96
num_heads: 4
num_kv_heads: 2
use_swiglu: true
use_qk_norm: true
use_post_norm: true
norm_type: rms_norm
use_bias: false
hf_style_rope: true
txt_size: 1
txt_dim: 5
steps: $2
batch_size: 8
seed: 3
lr: 1e-3
warmup_steps: 2
log_every: 1000
checkpoint_every: 10
eval_every: 10
eval_batches: 2
output_dir: $dir/$1
YAML
}
evals() { grep -o '"eval_bits_per_dim":[0-9.e+-]*' "$dir/$1/metrics.jsonl" | cut -d: -f2; }
crc() { "$starflow" inspect "$dir/$1/checkpoints/ckpt_00000020.sfckpt" --tensors | awk '/crc32/ {print $1, $NF}'; }

config one 20
config two 20
config resumed 20
"$starflow" train "$dir/one.yaml" > "$dir/one.log" 2>&1 || { cat "$dir/one.log"; fail "training with the switches"; }
mpiexec -n 2 "$starflow" train "$dir/two.yaml" > "$dir/two.log" 2>&1 || { cat "$dir/two.log"; fail "2-rank training"; }
# The uninterrupted run's step-10 checkpoint, resumed in a fresh output directory.
mkdir -p "$dir/resumed/checkpoints"
cp "$dir/one/checkpoints/ckpt_00000010.sfckpt" "$dir/resumed/checkpoints/"
"$starflow" train "$dir/resumed.yaml" > "$dir/resumed.log" 2>&1 || { cat "$dir/resumed.log"; fail "resumed training"; }
grep -q 'resumed from .*ckpt_00000010.sfckpt' "$dir/resumed.log" || { cat "$dir/resumed.log"; fail "did not resume"; }
for run in one two; do
  read -r first _ last < <(evals $run | tr '\n' ' '; echo)
  echo "$run: held-out bits/dim $first at step 0, $last at step 20"
  awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < a - 0.05)}' || fail "$run: the held-out bits/dim did not fall"
done
cmp -s <(crc one) <(crc resumed) || fail "the resumed run's weights differ from the uninterrupted run's"
echo "resumed at step 10: $(crc one | wc -l) tensors bit-identical to the uninterrupted run at step 20"

"$starflow" convert --from "$dir/one/checkpoints/ckpt_00000020.sfckpt" --to "$dir/w.safetensors" > /dev/null
for key in use_swiglu use_qk_norm use_post_norm hf_style_rope num_kv_heads top_block_channels; do
  "$starflow" inspect "$dir/one/checkpoints/ckpt_00000020.sfckpt" | grep -q "\"$key\"" || fail "the checkpoint's config lacks $key"
done
"$starflow" sample --weights "$dir/w.safetensors" --class 1 --cfg 2 --batch 2 --out "$dir/seq.safetensors" > /dev/null ||
  fail "sequential sampling"
"$starflow" sample --weights "$dir/w.safetensors" --class 1 --cfg 2 --batch 2 --jacobi --out "$dir/jac.safetensors" > /dev/null ||
  fail "Jacobi sampling"
"$starflow" sample --weights "$dir/w.safetensors" --class 1 --cfg 2 --batch 2 --attn-temp 0.8 --out "$dir/temp.safetensors" \
  > /dev/null || fail "sampling with an attention temperature"
python3 - "$dir/seq.safetensors" "$dir/temp.safetensors" <<'PY' || fail "--attn-temp 0.8 did not change the samples"
import sys, json, struct
def tensor(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        return f.read()
sys.exit(0 if tensor(sys.argv[1]) != tensor(sys.argv[2]) else 1)
PY
err=$("$starflow" sample --weights "$dir/w.safetensors" --class 1 --batch 2 --jacobi --attn-temp 0.8 --out "$dir/x.safetensors" 2>&1 >/dev/null) &&
  fail "Jacobi with an attention temperature was accepted"
[[ $(wc -l <<< "$err") == 1 && $err == *"--attn-temp applies to sequential decoding only"* ]] || fail "unclear refusal: $err"
echo "converted and sampled (sequential and Jacobi, guidance 2; attention temperature 0.8 sequential only)"
# The learnable self-denoiser (conditional), with its own AdamW: with the flow nearly frozen (lr 1e-7, so that
# its target, the flow's input gradient, holds still) its loss falls over 30 steps on 1 rank, DP 2 and TP 2
# (replicated over the TP group beside the split deep block); the run
# resumes bit for bit, and `sample --denoise` applies it.
denoiser() {  # denoiser NAME STEPS
  cat > "$dir/$1.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
head_dim: 32
blocks: 2
layers_per_block: [1, 1]
txt_size: 1
txt_dim: 5
learnable_self_denoiser: true
conditional_denoiser: true
denoiser_lr: 3e-3
steps: $2
batch_size: 8
seed: 3
lr: 1e-7
min_lr: 1e-8
warmup_steps: 2
log_every: 1000
checkpoint_every: 10
output_dir: $dir/$1
YAML
}
den_losses() { grep -o '"denoiser_loss":[0-9.e+-]*' "$dir/$1/metrics.jsonl" | cut -d: -f2; }
denoiser den1 30
denoiser den2 30
denoiser den_tp2 30
echo "tp: 2" >> "$dir/den_tp2.yaml"
denoiser den_resumed 30
"$starflow" train "$dir/den1.yaml" > "$dir/den1.log" 2>&1 || { cat "$dir/den1.log"; fail "training the denoiser"; }
mpiexec -n 2 "$starflow" train "$dir/den2.yaml" > "$dir/den2.log" 2>&1 || { cat "$dir/den2.log"; fail "2-rank denoiser"; }
mpiexec -n 2 "$starflow" train "$dir/den_tp2.yaml" > "$dir/den_tp2.log" 2>&1 || { cat "$dir/den_tp2.log"; fail "denoiser at TP 2"; }
for run in den1 den2 den_tp2; do
  first=$(den_losses $run | head -5 | awk '{s += $1} END {print s / NR}')
  last=$(den_losses $run | tail -5 | awk '{s += $1} END {print s / NR}')
  echo "$run: denoiser loss $first over steps 1-5, $last over steps 26-30"
  awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.3 * a)}' || fail "$run: the denoiser's loss did not fall"
done
mkdir -p "$dir/den_resumed/checkpoints"
cp "$dir/den1/checkpoints/ckpt_00000010.sfckpt" "$dir/den_resumed/checkpoints/"
"$starflow" train "$dir/den_resumed.yaml" > "$dir/den_resumed.log" 2>&1 || { cat "$dir/den_resumed.log"; fail "resuming the denoiser"; }
den_crc() { "$starflow" inspect "$dir/$1/checkpoints/ckpt_00000030.sfckpt" --tensors | awk '/crc32/ {print $1, $NF}'; }
cmp -s <(den_crc den1) <(den_crc den_resumed) || fail "the resumed denoiser run differs from the uninterrupted one"
[[ $(den_crc den1 | grep -c 'learnable_self_denoiser') -gt 0 ]] || fail "the checkpoint holds no denoiser tensors"
"$starflow" convert --from "$dir/den1/checkpoints/ckpt_00000030.sfckpt" --to "$dir/den.safetensors" > /dev/null
"$starflow" sample --weights "$dir/den.safetensors" --class 1 --batch 2 --denoise --out "$dir/den_sample.safetensors" > /dev/null ||
  fail "sampling with the learned denoising step"
echo "the denoiser resumed bit for bit at step 30 and denoised samples"
echo "training with the switches: ok"
