#!/usr/bin/env bash
# Damaged and mismatched inputs at the command line. Resuming or sampling with another model's checkpoint or
# weights, a truncated checkpoint, a checksum mismatch in a tensor or in the header, a missing shard
# directory (on every rank, or on one rank only) and an empty one: each gives one line on stderr naming the
# file and the problem (and the ranks, when not all), a non-zero exit status, and leaves every file already
# written exactly as it was. Usage: test_checkpoint_errors.sh STARFLOW
set -euo pipefail
starflow=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# config NAME OUTPUT_DIR [extra YAML lines]: a tiny class-conditional model on synthetic latents.
config() {
  local name=$1 out=$2
  shift 2
  {
    printf 'channel_size: 4\nimg_size: 8\nhead_dim: 32\nblocks: 2\nlayers_per_block: [1, 1]\ntxt_size: 1\ntxt_dim: 5\n'
    printf 'steps: 6\nbatch_size: 8\nseed: 3\ncheckpoint_every: 2\nkeep_checkpoints: 5\nlog_every: 1000\n'
    printf 'output_dir: %s\n' "$out"
    for line in "$@"; do printf '%s\n' "$line"; done
    grep -q '^channels:' <(printf '%s\n' "$@") || printf 'channels: 64\n'
  } > "$dir/$name.yaml"
}
# flip FILE OFFSET: inverts one byte in place.
flip() {
  /usr/bin/python3 -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0xFF]))' "$1" "$2"
}
# Every file under a directory with its checksum: what "nothing written is lost" compares.
snapshot() { (cd "$1" && find . -type f | sort | xargs sha256sum); }

# expect_error WHAT 'SUBSTRING'... -- COMMAND...: the command fails with exactly one line on stderr that
# holds every substring.
expect_error() {
  local what=$1
  shift
  local wanted=()
  while [[ $1 != -- ]]; do wanted+=("$1"); shift; done
  shift
  local status=0
  "$@" > "$dir/stdout" 2> "$dir/stderr" || status=$?
  [[ $status != 0 ]] || fail "$what: exit status 0"
  local lines
  lines=$(wc -l < "$dir/stderr")
  [[ $lines == 1 ]] || { cat "$dir/stderr"; fail "$what: $lines lines on stderr, expected one"; }
  for w in "${wanted[@]}"; do
    grep -qF -- "$w" "$dir/stderr" || { cat "$dir/stderr"; fail "$what: the error does not say '$w'"; }
  done
  echo "ok  $what: $(cat "$dir/stderr")"
}

# A real run: checkpoints at steps 2, 4 and 6 (2 ranks).
config good "$dir/run"
mpiexec -n 2 "$starflow" train "$dir/good.yaml" > "$dir/train.log" 2>&1 || { cat "$dir/train.log"; fail "training"; }
ckpt=$dir/run/checkpoints/ckpt_00000006.sfckpt
[[ -f $ckpt && -f $dir/run/checkpoints/ckpt_00000004.sfckpt ]] || fail "the run left no checkpoints"
"$starflow" convert --from "$ckpt" --to "$dir/w.safetensors" > /dev/null
run_before=$(snapshot "$dir/run")

# 1. Resuming with another model's config (one process, and 2 ranks, which must fail alike and not hang).
config wider "$dir/run" 'channels: 96'
expect_error "resume, other config" "$ckpt" "the checkpoint is for another model config" \
  "channels 64 in the checkpoint, 96 in the config" -- "$starflow" train "$dir/wider.yaml"
status=0
timeout 120 mpiexec -n 2 "$starflow" train "$dir/wider.yaml" > /dev/null 2> "$dir/stderr2" || status=$?
[[ $status != 0 && $status != 124 ]] || fail "2 ranks, other config: exit status $status (124: hung)"
grep -qF "channels 64 in the checkpoint, 96 in the config" "$dir/stderr2" || { cat "$dir/stderr2"; fail "2 ranks: no error line"; }
[[ $(snapshot "$dir/run") == "$run_before" ]] || fail "resume with another config changed files of the run"

# 2. Sampling with weights whose tensors are another model's than their config says, and with a checkpoint.
/usr/bin/python3 - "$dir/w.safetensors" "$dir/other.safetensors" <<'PY'
import json, struct, sys
src, dst = sys.argv[1:]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
config = json.loads(header["__metadata__"]["config"])
config["channels"] = 96
header["__metadata__"]["config"] = json.dumps(config)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
echo "earlier samples" > "$dir/samples.safetensors"
expect_error "sample, other config" "$dir/other.safetensors" "expected [96" -- \
  "$starflow" sample --weights "$dir/other.safetensors" --class 1 --out "$dir/samples.safetensors"
expect_error "sample, a checkpoint" "$ckpt: a training checkpoint, not weights" "starflow convert" -- \
  "$starflow" sample --weights "$ckpt" --class 1 --out "$dir/samples.safetensors"
[[ $(cat "$dir/samples.safetensors") == "earlier samples" ]] || fail "a failed sample overwrote its output"

# 3. A truncated newest checkpoint: resume, inspect and convert refuse it by name; the previous output stays.
cp -a "$dir/run" "$dir/truncated"
config truncated "$dir/truncated"
truncate -s -1000 "$dir/truncated/checkpoints/ckpt_00000006.sfckpt"
truncated_before=$(snapshot "$dir/truncated")
expect_error "resume, truncated" "truncated/checkpoints/ckpt_00000006.sfckpt" "truncated" -- \
  "$starflow" train "$dir/truncated.yaml"
[[ $(snapshot "$dir/truncated") == "$truncated_before" ]] || fail "resume from a truncated checkpoint changed files"
expect_error "inspect, truncated" "ckpt_00000006.sfckpt: not a complete starflow checkpoint" -- \
  "$starflow" inspect "$dir/truncated/checkpoints/ckpt_00000006.sfckpt"
cp "$dir/w.safetensors" "$dir/export.safetensors"
expect_error "convert, truncated" "ckpt_00000006.sfckpt" "truncated" -- \
  "$starflow" convert --from "$dir/truncated/checkpoints/ckpt_00000006.sfckpt" --to "$dir/export.safetensors"
cmp -s "$dir/w.safetensors" "$dir/export.safetensors" || fail "a failed convert changed its earlier output"

# 4. A flipped byte in a tensor: the checksum names the tensor; in the header: the header checksum.
cp -a "$dir/run" "$dir/corrupt"
config corrupt "$dir/corrupt"
# The middle of the first model tensor of more than 1 KB, from the checkpoint's own index.
tensor_byte=$(/usr/bin/python3 - "$ckpt" <<'PY'
import json, struct, sys
d = open(sys.argv[1], "rb").read()
offset, length = struct.unpack("<QQ", d[-24:-8])
t = next(t for t in json.loads(d[offset:offset + length])["tensors"] if t["name"].startswith("model.") and t["bytes"] > 1024)
print(t["offset"] + t["bytes"] // 2)
PY
)
flip "$dir/corrupt/checkpoints/ckpt_00000006.sfckpt" "$tensor_byte"
corrupt_before=$(snapshot "$dir/corrupt")
expect_error "resume, tensor checksum" "corrupt/checkpoints/ckpt_00000006.sfckpt: tensor 'model." "checksum mismatch" -- \
  "$starflow" train "$dir/corrupt.yaml"
expect_error "convert, tensor checksum" "ckpt_00000006.sfckpt: tensor 'model." "checksum mismatch" -- \
  "$starflow" convert --from "$dir/corrupt/checkpoints/ckpt_00000006.sfckpt" --to "$dir/export.safetensors"
[[ $(snapshot "$dir/corrupt") == "$corrupt_before" ]] || fail "a corrupt checkpoint's run changed files"
cmp -s "$dir/w.safetensors" "$dir/export.safetensors" || fail "a failed convert changed its earlier output"
header_byte=$(/usr/bin/python3 -c "import struct,sys; d=open(sys.argv[1],'rb').read(); print(struct.unpack('<Q', d[-24:-16])[0] + 20)" "$ckpt")
cp "$ckpt" "$dir/header.sfckpt"
flip "$dir/header.sfckpt" "$header_byte"
expect_error "inspect, header checksum" "header.sfckpt: checkpoint header checksum mismatch" -- "$starflow" inspect "$dir/header.sfckpt"

# 5. A missing shard directory and an empty one, given to a run that already has checkpoints and metrics.
config missing "$dir/run" "data: $dir/no-such-shards"
expect_error "missing shard directory" "$dir/no-such-shards" -- "$starflow" train "$dir/missing.yaml"
# ... and on 2 ranks, where every rank fails alike: still one line (rank 0 prints each distinct error once;
# -q keeps mpiexec's own notice about the exit status off stderr).
expect_error "missing shard directory, 2 ranks" "$dir/no-such-shards" -- \
  timeout 120 mpiexec -q -n 2 "$starflow" train "$dir/missing.yaml"
# A failure on some ranks only (as a node without the mount): rank 1's config names missing shards, rank 0's
# synthetic data (an MPMD launch). One line naming the rank, every rank stops, no output directory appears.
config one_ok "$dir/run-mixed"
config one_missing "$dir/run-mixed" "data: $dir/no-such-shards"
expect_error "missing shards on rank 1 only" "rank 1: $dir/no-such-shards" -- \
  timeout 120 mpiexec -q -n 1 "$starflow" train "$dir/one_ok.yaml" : -n 1 "$starflow" train "$dir/one_missing.yaml"
[[ ! -e $dir/run-mixed ]] || fail "a run whose rank 1 had no data created its output directory"
mkdir "$dir/empty-shards"
config empty "$dir/run" "data: $dir/empty-shards"
expect_error "empty shard directory" "$dir/empty-shards: no shards (*.h5) found" -- "$starflow" train "$dir/empty.yaml"
[[ $(snapshot "$dir/run") == "$run_before" ]] || fail "a run without shards changed files of the earlier run"
echo "every damaged or mismatched input: one line, non-zero exit, nothing lost"
