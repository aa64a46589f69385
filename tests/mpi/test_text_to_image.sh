#!/usr/bin/env bash
# The text-to-image stack end to end on 2 MPI ranks, from checkpoints in the layouts a user downloads (written
# by write_t2i_checkpoints.py from the golden fixtures): an SD-VAE diffusers folder in float16 and a T5 folder
# sharded in bfloat16 + float32 with its index and spiece.model. Preprocess a captioned folder of non-square
# PNGs through both, check the shards with h5py, train a tiny text-conditioned model on them (with previews
# decoded through the SD-VAE), export its weights and sample a captioned grid. Usage: test_text_to_image.sh STARFLOW
set -euo pipefail
starflow=$1
here=$(cd "$(dirname "$0")" && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
python=/usr/bin/python3  # Debian's, with numpy and h5py
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# stage NAME LOG COMMAND...: runs the command with its output in LOG, prints the stage's time; on failure
# prints the log and exits 1.
stage() {
  local name=$1 log=$2
  shift 2
  local t0 status=0
  t0=$(date +%s.%N)
  "$@" > "$log" 2>&1 || status=$?
  if [[ $status != 0 ]]; then
    echo "FAILED: $name (exit $status); its log:"
    cat "$log"
    exit 1
  fi
  awk -v name="$name" -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%-28s %6.1f s\n", name, t1 - t0 }'
}
# require LOG PATTERN WHAT: the log holds the pattern, or the failure is explained and the log printed.
require() {
  grep -q -- "$2" "$1" || { echo "FAILED: $3 (no '$2' in the log); the log:"; cat "$1"; exit 1; }
}

stage "write checkpoints" "$dir/write.log" "$python" "$here/write_t2i_checkpoints.py" "$dir"

# a. Preprocess: 24 captioned images (20×24, center-cropped and resized to 16×16) through the F16 SD-VAE and the
# sharded T5 encoder, 10 samples a shard.
stage "preprocess (2 ranks)" "$dir/preprocess.log" \
  mpiexec -n 2 "$starflow" preprocess --dataset captions --images "$dir/images" --list "$dir/captions.tsv" \
  --autoencoder "$dir/vae" --text-encoder "$dir/t5" --text-length 16 --image-size 16 --shard-size 10 --out "$dir/shards"
require "$dir/preprocess.log" "3 shards (3 written, 0 already complete), 24 samples written, 0 images skipped" \
  "preprocess summary"

# b. The shards (data/FORMAT.md, version 2).
stage "check shards (h5py)" "$dir/shards.log" "$python" - "$dir/shards" <<'PY'
import glob, sys
import h5py, numpy as np
files = sorted(glob.glob(sys.argv[1] + "/*.h5"))
assert len(files) == 3, files
n = 0
for f in files:
    with h5py.File(f, "r") as h:
        a = dict(h.attrs)
        assert a["format"] == "starflow-latent-shard" and a["format_version"] == 2, (f, a)
        assert a["text_length"] == 16, (f, a)
        assert a["text_encoder"] == "t5", (f, a["text_encoder"])  # the T5 folder's name
        assert a["autoencoder"] == "vae" and a["num_classes"] == 0, (f, a)
        assert list(a["latent_shape"]) == [4, 4, 4], (f, a["latent_shape"])
        count = int(a["num_samples"])
        # 16×16 images through the tiny VAE (downsampling 4): 4×4×4 latents, with the posterior's log-variance.
        lat, logvar = h["latents"][:], h["latent_logvar"][:]
        assert lat.shape == (count, 4, 4, 4), (f, lat.shape)
        assert logvar.shape == lat.shape, (f, logvar.shape)
        assert np.all(np.isfinite(lat)) and np.all(np.isfinite(logvar)), f
        assert np.abs(lat).max() > 0, f
        # Unpadded text: each caption's valid T5 rows (at least one token and EOS, at most L = 16).
        t, lengths = h["text_tokens"][:], h["text_lengths"][:]
        assert lengths.shape == (count,), (f, lengths.shape)
        assert t.shape == (lengths.sum(), 64), (f, t.shape, lengths.sum())
        assert np.all((2 <= lengths) & (lengths <= 16)), (f, lengths)
        assert np.all(np.isfinite(t)) and np.all(np.abs(t).sum(axis=1) > 0), f
        # T5's empty caption is the EOS token alone: one row.
        assert h["null_text"].shape == (1, 64), (f, h["null_text"].shape)
        assert np.all(np.isfinite(h["null_text"][:])), f
        caps = [c.decode() if isinstance(c, bytes) else c for c in h["captions"][:]]
        assert len(caps) == count and all(caps), (f, caps)
        n += count
assert n == 24, n
print("shards ok:", n, "samples")
PY
cat "$dir/shards.log"

# c. Train a tiny text-conditioned model on the shards; the official keys vae/text name the local folders
# (used for the previews, decoded through the SD-VAE). head_dim: with a conditioning prefix head_dim/2 − 8 must
# be positive and even, so 32 (one head of width 32).
cat > "$dir/train.yaml" <<YAML
vae: $dir/vae
text: $dir/t5
data: $dir/shards
channel_size: 4
img_size: 4
patch_size: 1
channels: 32
blocks: 2
layers_per_block: [1, 1]
head_dim: 32
txt_size: 16
txt_dim: 64
batch_size: 8
steps: 6
lr: 1.0e-3
warmup_steps: 2
log_every: 2
sample_every: 3
preview_captions: [a red square, a blue circle]
output_dir: $dir/run
YAML
stage "train (2 ranks, 6 steps)" "$dir/train.log" mpiexec -n 2 "$starflow" train "$dir/train.yaml"
require "$dir/train.log" "done: step 6, 0 skipped step(s)" "training did not finish its 6 steps"
require "$dir/train.log" "conditioning text embeddings ('t5', 16×64" "training did not read the T5 shards"
if grep -q "training continues" "$dir/train.log"; then echo "FAILED: a preview failed; the log:"; cat "$dir/train.log"; exit 1; fi
"$python" - "$dir/run" <<'PY' || { echo "the training log:"; cat "$dir/train.log"; exit 1; }
import json, math, os, struct, sys
run = sys.argv[1]
rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
assert [r["step"] for r in rows] == list(range(1, 7)), [r["step"] for r in rows]
assert all(math.isfinite(r["loss"]) and not r["skipped"] for r in rows), rows
for step in (3, 6):
    path = os.path.join(run, "samples", "step_%08d.png" % step)
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    w, h = struct.unpack(">II", head[16:24])
    # 2 captions × 8 columns of 16×16 tiles (latents 4×4 through the VAE's ×4) with 2-pixel borders.
    assert (w, h) == (8 * 18 + 2, 2 * 18 + 2), (path, w, h)
print("training ok: loss %.4f -> %.4f, previews 146x38" % (rows[0]["loss"], rows[-1]["loss"]))
PY

# d. Export the final checkpoint's weights and sample a captioned grid through T5 and the SD-VAE.
stage "convert" "$dir/convert.log" \
  "$starflow" convert --from "$dir/run/checkpoints/ckpt_00000006.sfckpt" --to "$dir/weights.safetensors"
stage "sample (T5 + SD-VAE grid)" "$dir/sample.log" \
  "$starflow" sample --weights "$dir/weights.safetensors" --text-encoder "$dir/t5" --autoencoder "$dir/vae" \
  --caption "a red square" --caption "a blue circle" --grid "$dir/grid.png"
require "$dir/sample.log" "sampled 16 latents of shape \[4, 4, 4\]" "sample summary"
"$python" - "$dir/grid.png" <<'PY' || { echo "the sample log:"; cat "$dir/sample.log"; exit 1; }
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    (n,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR": ihdr = body
    elif kind == b"IDAT": idat += body
    pos += 12 + n
w, h, depth, colour = struct.unpack(">IIBB", ihdr[:10])
assert depth == 8 and colour == 2, (depth, colour)
# The tiles are 16×16 (the model's 4×4 latents through the VAE's ×4) with a 2-pixel border around and between:
# 16 samples in ⌈√16⌉ = 4 columns, 4 rows.
tile, border = 16, 2
assert (w - border) % (tile + border) == 0 and (h - border) % (tile + border) == 0, (w, h)
cols, rows = (w - border) // (tile + border), (h - border) // (tile + border)
assert (cols, rows) == (4, 4), (w, h)
# Unfilter the rows (libpng chooses filters per row), then look at the tiles: decoded pixels, not one colour.
raw, bpp, stride = zlib.decompress(idat), 3, 3 * w
prev, pixels = bytearray(stride), []
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        else: assert f == 0, f
    pixels.append(bytes(line))
    prev = line
tile_values = {pixels[y][3 * x + k] for y in range(border, border + tile) for x in range(border, border + tile) for k in range(3)}
assert len(tile_values) > 8, "the first tile is (nearly) one colour: %s" % sorted(tile_values)
print("grid ok: %dx%d, %d columns x %d rows of %dx%d tiles" % (w, h, cols, rows, tile, tile))
PY
echo "text-to-image ok"
