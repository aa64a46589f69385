#!/usr/bin/env bash
# 2-rank preprocessing writes the same set of samples as 1 rank (same ids, same latents, same labels), the
# shards open in h5py, a rerun skips every complete shard, and a rerun with another --limit is refused. Usage: test_preprocess_ranks.sh STARFLOW
set -euo pipefail
starflow=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
args=(preprocess --dataset fashion-mnist --split test --limit 700 --shard-size 100)
OMP_NUM_THREADS=1 mpiexec -n 1 "$starflow" "${args[@]}" --out "$dir/one" > "$dir/one.log"
OMP_NUM_THREADS=1 mpiexec -n 2 "$starflow" "${args[@]}" --out "$dir/two" > "$dir/two.log"
grep -q "7 shards (7 written, 0 already complete), 700 samples written, 0 images skipped" "$dir/two.log"
# A rerun finishes only what is missing: here nothing.
rm "$dir/two/shard-00003.h5"
OMP_NUM_THREADS=1 mpiexec -n 2 "$starflow" "${args[@]}" --out "$dir/two" > "$dir/rerun.log"
grep -q "7 shards (1 written, 6 already complete)" "$dir/rerun.log" || { cat "$dir/rerun.log"; exit 1; }
# Another --limit into the same directory would make "complete" mean "stale": refused on every rank, naming
# the run manifest and the differing setting, and the shards already there are left as they were.
before=$(cksum "$dir"/two/*.h5)
if OMP_NUM_THREADS=1 mpiexec -n 2 "$starflow" preprocess --dataset fashion-mnist --split test --limit 600 \
     --shard-size 100 --out "$dir/two" > "$dir/other.log" 2>&1; then
  echo "a rerun with another --limit was not refused"; cat "$dir/other.log"; exit 1
fi
grep -q "two/shard.preprocess.json: the shards here come from another run (samples 700, this run 600)" \
  "$dir/other.log" || { cat "$dir/other.log"; exit 1; }
[ "$before" = "$(cksum "$dir"/two/*.h5)" ] || { echo "the refused run changed the shards"; exit 1; }
[ "$(grep -c "come from another run" "$dir/other.log")" = 1 ] || { echo "not reported exactly once"; cat "$dir/other.log"; exit 1; }
# An error every rank meets alike (a missing autoencoder) stops every rank, reported once.
if OMP_NUM_THREADS=1 mpiexec -n 2 "$starflow" preprocess --dataset fashion-mnist --autoencoder "$dir/missing.safetensors" \
     --out "$dir/three" > "$dir/missing.log" 2>&1; then
  echo "a missing autoencoder was not an error"; exit 1
fi
[ "$(grep -c "missing.safetensors: no such file or directory" "$dir/missing.log")" = 1 ] || { cat "$dir/missing.log"; exit 1; }
/usr/bin/python3 - "$dir/one" "$dir/two" <<'PY'
import glob, sys
import h5py, numpy as np
def load(d):
    ids, lat, lab = [], [], []
    for f in sorted(glob.glob(d + "/*.h5")):
        with h5py.File(f, "r") as h:
            assert h.attrs["format"] == "starflow-latent-shard", f
            ids.append(h["sample_ids"][:]); lat.append(h["latents"][:].astype(np.float32)); lab.append(h["labels"][:])
    ids, lat, lab = np.concatenate(ids), np.concatenate(lat), np.concatenate(lab)
    order = np.argsort(ids)
    return ids[order], lat[order], lab[order]
a, b = load(sys.argv[1]), load(sys.argv[2])
assert np.array_equal(a[0], np.arange(700)), "1 rank: ids are not exactly 0..699"
assert np.array_equal(a[0], b[0]), "the two runs hold different sample ids"
assert np.array_equal(a[2], b[2]), "labels differ"
assert np.array_equal(a[1], b[1]), "latents differ"
print("1 rank and 2 ranks wrote the same", len(a[0]), "samples")
PY
