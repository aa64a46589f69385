#!/usr/bin/env bash
# Export → import, against the project's PyTorch statement of the model (tools/torch_reference):
#  1. a checkpoint of a short 2-rank training run, exported by `starflow convert` (raw and --ema), holds the
#     checkpoint's tensors bit for bit;
#  2. torch imports the export bit for bit, and its float64 results on one input (forward z, every block's
#     outputs and logdets, the losses, sequential and guided reverse) equal what `starflow check-golden`
#     computes from the same weights within the float32 tolerances of the golden fixtures;
#  3. the comparison can fail: the same results against slightly changed weights are refused.
# Skips (77) when /usr/bin/python3 has no torch. Usage: test_export_torch.sh STARFLOW
set -euo pipefail
starflow=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
reference=$repo/tools/torch_reference   # a folder: python3 runs its __main__.py
/usr/bin/python3 -c "import torch, numpy" 2>/dev/null || { echo "SKIP: /usr/bin/python3 has no torch (python3-torch)"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$dir/tiny.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
head_dim: 32
blocks: 3
layers_per_block: [1, 1, 2]
txt_size: 1
txt_dim: 5
lr: 0.003
warmup_steps: 5
steps: 30
batch_size: 8
ema: 0.9
seed: 11
output_dir: $dir/out
log_every: 1000
YAML
mpiexec -n 2 "$starflow" train "$dir/tiny.yaml" > "$dir/train.log" 2>&1 || { cat "$dir/train.log"; fail "training"; }
ckpt=$dir/out/checkpoints/ckpt_00000030.sfckpt
[[ -f $ckpt ]] || fail "no checkpoint at step 30"
"$starflow" convert --from "$ckpt" --to "$dir/w.safetensors" > /dev/null
"$starflow" convert --from "$ckpt" --to "$dir/ema.safetensors" --ema > /dev/null

# The checkpoint's tensors (read with the format of jobs/CHECKPOINT_FORMAT.md) against the exports, and the
# input file of the comparison.
/usr/bin/python3 - "$ckpt" "$dir" "$reference" <<'PY'
import json, struct, sys
import numpy as np
ckpt, d, reference = sys.argv[1:]
sys.path.insert(0, reference)
import safetensors_io as st
raw = open(ckpt, "rb").read()
assert raw[-32:-24] == b"SFCKTRL1", "no checkpoint trailer"
offset, length = struct.unpack("<QQ", raw[-24:-8])
header = json.loads(raw[offset:offset + length])
stored = {t["name"]: np.frombuffer(raw[t["offset"]:t["offset"] + t["bytes"]], dtype="<u4") for t in header["tensors"]}
from golden import is_official_buffer
for prefix, export in (("model.", "w.safetensors"), ("ema.", "ema.safetensors")):
    tensors, meta = st.read_safetensors(f"{d}/{export}")
    names = sorted(n[len(prefix):] for n in stored if n.startswith(prefix))
    # The export is the complete official state_dict: the parameters plus the deprecated buffers.
    assert "var" in tensors and "blocks.0.attn_mask" in tensors, f"{export}: no official buffers"
    tensors = {n: v for n, v in tensors.items() if not is_official_buffer(n)}
    assert sorted(tensors) == names, f"{export}: tensor names differ from the checkpoint's {prefix}*"
    for n in names:
        assert np.array_equal(tensors[n].astype("<f4").view("<u4").ravel(), stored[prefix + n]), f"{export}: {n} differs"
    assert meta["step"] == "30", meta
    print(f"{export}: {len(names)} tensors bit-identical to the checkpoint's {prefix}*")
# The EMA export is its own weights, not a copy of the raw ones.
assert any(not np.array_equal(stored["model." + n[4:]], stored[n]) for n in stored if n.startswith("ema."))
rng = np.random.default_rng(5)
B, E = 6, 5
y = np.zeros((B, 1, E), np.float32)
for b, label in enumerate([0, 1, 2, 3, 1, 4]):   # 4 = the null class
    y[b, 0, label] = 1
y_null = np.zeros_like(y)
y_null[:, 0, E - 1] = 1
st.write_safetensors(f"{d}/input.safetensors",
                     {"x": rng.standard_normal((B, 4, 8, 8)).astype(np.float32), "y": y,
                      "noise": rng.standard_normal((B, 4, 8, 8)).astype(np.float32), "y_null": y_null},
                     {"guidance": "2.0", "latent_norm_regularization": "0.0001"})
PY

/usr/bin/python3 "$reference" --forward "$dir/w.safetensors" --input "$dir/input.safetensors" --out "$dir/torch.safetensors"
# torch's import is exact too: its state_dict (written back as param.*) is the exported file, bit for bit.
/usr/bin/python3 - "$dir" "$reference" <<'PY'
import sys
import numpy as np
d, reference = sys.argv[1:]
sys.path.insert(0, reference)
import safetensors_io as st
w, _ = st.read_safetensors(f"{d}/w.safetensors")
t, _ = st.read_safetensors(f"{d}/torch.safetensors")
params = {k[6:]: v for k, v in t.items() if k.startswith("param.")}
from golden import is_official_buffer
w = {n: v for n, v in w.items() if not is_official_buffer(n)}  # buffers the torch statement does not create
assert sorted(params) == sorted(w), "torch's state_dict names differ from the export's"
for n in w:
    assert np.array_equal(params[n].view("<u4"), w[n].view("<u4")), f"torch import changed {n}"
print(f"torch import: {len(w)} tensors bit-identical to the export")
PY

"$starflow" check-golden "$dir/torch.safetensors" | tee "$dir/check.log" || fail "starflow and torch_reference disagree"
for group in forward.z forward.outputs forward.logdet loss.nll loss.total reverse.x reverse_cfg.x; do
  grep -qE "^  $group +[0-9]+ .* ok " "$dir/check.log" || fail "group $group was not compared"
done

# The same torch results against weights changed by 1% in one tensor must be refused.
/usr/bin/python3 - "$dir" "$reference" <<'PY'
import json, struct, sys
d, reference = sys.argv[1:]
sys.path.insert(0, reference)
import safetensors_io as st
t, meta = st.read_safetensors(f"{d}/torch.safetensors")
t = {k: v.copy() for k, v in t.items()}
t["param.blocks.2.proj_in.weight"] *= 1.01
st.write_safetensors(f"{d}/changed.safetensors", t, meta)
PY
set +e
"$starflow" check-golden "$dir/changed.safetensors" > "$dir/changed.log"
status=$?
set -e
[[ $status == 1 ]] || { cat "$dir/changed.log"; fail "changed weights were not refused (exit $status)"; }
echo "export -> torch import -> same outputs: ok"
