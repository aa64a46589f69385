#!/usr/bin/env bash
# A tiny `starflow demo --dataset emoji` (256 images, 6 steps on 2 ranks): the guided grid has one row per
# caption, the previews and the summary are written and say what happened (a caption without a known word is
# reported as the null caption), and `starflow sample --caption` on the demo's weights works through the same
# word-vector encoder, different captions giving different samples. Skips (77) when the emoji set cannot be
# fetched (tools/fetch-emoji.sh needs its npm cache or the registry). Usage: test_demo_emoji.sh STARFLOW
set -euo pipefail
starflow=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${STARFLOW_DATA_DIR:-$HOME/.cache/starflow}/npm
ae=$repo/data/pretrained/ae_emoji_32.safetensors
[[ -f $ae ]] || { echo "SKIP: no bundled emoji autoencoder"; exit 77; }
if [[ ! -f $cache/captions.tsv ]]; then
  timeout 300 bash "$repo/tools/fetch-emoji.sh" > /dev/null 2>&1 || { echo "SKIP: the emoji set cannot be fetched (tools/fetch-emoji.sh)"; exit 77; }
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$starflow" demo --dataset emoji --steps 6 --limit 256 --caption "red heart" --caption "cat" \
  --caption "кошка собака" --out "$dir/demo" > "$dir/demo.log" 2>&1 || { cat "$dir/demo.log"; fail "the demo failed"; }
grep -qF "caption 'кошка собака': no word the vectors know" "$dir/demo.log" || { cat "$dir/demo.log"; fail "no warning for the unknown caption"; }

"$starflow" sample --weights "$dir/demo/weights.safetensors" --caption "red heart" --caption "cat" --cfg 3 --batch 4 \
  --seed 1 --autoencoder "$ae" --grid "$dir/sample.png" --grid-columns 2 --out "$dir/mixed.safetensors" > /dev/null
"$starflow" sample --weights "$dir/demo/weights.safetensors" --caption "red heart" --cfg 3 --batch 4 --seed 1 \
  --out "$dir/hearts.safetensors" > /dev/null

/usr/bin/python3 - "$dir" <<'PY'
import json, math, struct, sys
import numpy as np
d = sys.argv[1]

def png_size(path):
    raw = open(path, "rb").read(32)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", path
    w, h = struct.unpack(">II", raw[16:24])
    return w, h, raw[25]            # colour type 2 = RGB

def tile_grid(rows, cols):           # 32-px tiles, 2-px borders (data/io/png_io.h)
    return cols * 32 + (cols + 1) * 2, rows * 32 + (rows + 1) * 2, 2

s = json.load(open(f"{d}/demo/summary.json", encoding="utf-8"))
assert [r["caption"] for r in s["rows"]] == ["red heart", "cat", "кошка собака"], s["rows"]
assert [r["known_words"] for r in s["rows"]] == [2, 1, 0], s["rows"]
assert s["images"] == 256 and s["train_steps"] == 6 and s["ranks"] == 2, s
assert 0 <= s["caption_agreement"] <= 1 and abs(s["caption_agreement_chance"] - 1 / 3) < 1e-9, s
assert s["non_finite_pixels"] == 0 and math.isfinite(s["final_train_bits_per_dim"]), s
assert png_size(f"{d}/demo/samples.png") == tile_grid(3, 8), png_size(f"{d}/demo/samples.png")
for step in (3, 6):                  # sample_every = steps / 2
    p = f"{d}/demo/train/samples/step_{step:08d}.png"
    assert png_size(p) == tile_grid(3, 8), (p, png_size(p))
assert png_size(f"{d}/demo/train/loss.png")[0] > 0
assert png_size(f"{d}/sample.png") == tile_grid(2, 2), png_size(f"{d}/sample.png")

def samples(name):
    raw = open(f"{d}/{name}", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    e = h["samples"]
    a, b = e["data_offsets"]
    return np.frombuffer(raw[8 + n + a:8 + n + b], "<f4").reshape(e["shape"]), h["__metadata__"]

mixed, meta = samples("mixed.safetensors")
hearts, _ = samples("hearts.safetensors")
assert meta["captions"] == "red heart\ncat", meta
assert mixed.shape == (4, 4, 8, 8) and np.isfinite(mixed).all()
# Same seed: the "red heart" samples (0 and 2) agree, the "cat" ones (1 and 3) do not.
assert np.array_equal(mixed[0], hearts[0]) and np.array_equal(mixed[2], hearts[2])
assert not np.array_equal(mixed[1], hearts[1]) and not np.array_equal(mixed[3], hearts[3])
print("emoji demo ok:", {k: s[k] for k in ("images", "train_steps", "caption_agreement", "final_train_bits_per_dim")})
PY
