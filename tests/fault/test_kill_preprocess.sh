#!/usr/bin/env bash
# Preprocessing on 2 ranks killed with SIGKILL at a random moment of its run and rerun, KILLS times (each time
# into a fresh directory, so every kill interrupts real work: start-up, encoding or a shard write): the finished
# shards hold every sample exactly once, bit for bit what an uninterrupted run wrote, the run manifest states
# the run, and no partial shard of a killed writer is left behind. Usage: test_kill_preprocess.sh STARFLOW [KILLS]
set -euo pipefail
shopt -s nullglob
starflow=$1
kills=${2:-20}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'pkill -9 -f "$dir/" 2>/dev/null || true; rm -rf "$dir"' EXIT
samples=2000
args=(preprocess --dataset fashion-mnist --limit $samples --shard-size 100)
t0=$(date +%s.%N)
mpiexec -n 2 "$starflow" "${args[@]}" --out "$dir/reference" > "$dir/reference.log" 2>&1 || { cat "$dir/reference.log"; exit 1; }
run_seconds=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f", t1 - t0 }')
echo "uninterrupted run: $run_seconds s"
interrupted=0 shards_done=0
for ((i = 1; i <= kills; i++)); do
  out=$dir/run$i
  setsid mpiexec -n 2 "$starflow" "${args[@]}" --out "$out" > "$dir/killed.log" 2>&1 &
  pid=$!
  sleep "$(awk -v t="$run_seconds" -v r=$RANDOM 'BEGIN { printf "%.2f", 0.1 + r / 32767 * t }')"
  kill -9 -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pkill -9 -f "$out" 2>/dev/null || true
  if grep -q "samples written" "$dir/killed.log"; then
    # The run ended before its kill: the machine is faster now than during the timed run (its load changed):
    # aim the next kills earlier.
    run_seconds=$(awk -v t="$run_seconds" 'BEGIN { printf "%.2f", t * 0.7 }')
  else
    interrupted=$((interrupted + 1))
  fi
  done_now=("$out"/*.h5)
  shards_done=$((shards_done + ${#done_now[@]}))
  mpiexec -n 2 "$starflow" "${args[@]}" --out "$out" > "$dir/rerun.log" 2>&1 || { cat "$dir/rerun.log"; exit 1; }
  /usr/bin/python3 - "$dir/reference" "$out" $samples <<'PY' || { echo "after kill $i"; exit 1; }
import glob, json, sys
import h5py, numpy as np
ref_dir, out_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(d):
    ids, lat = [], {}
    for f in sorted(glob.glob(d + "/*.h5")):
        with h5py.File(f, "r") as h:
            s = h["sample_ids"][:]
            ids.extend(s.tolist())
            for k, row in zip(s, h["latents"][:]):
                lat[int(k)] = row
    return ids, lat
ids, lat = load(out_dir)
assert sorted(ids) == list(range(n)), f"{len(ids)} samples, {len(set(ids))} distinct, expected 0..{n - 1} once each"
_, ref = load(ref_dir)
assert all(np.array_equal(lat[k], ref[k]) for k in range(n)), "latents differ from the uninterrupted run's"
m = json.load(open(out_dir + "/shard.preprocess.json"))
assert m["samples"] == n and m["shards"] == n // 100 and m["shard_size"] == 100, m
PY
  leftovers=("$out"/*.tmp.*)
  [[ ${#leftovers[@]} == 0 ]] || { echo "FAIL after kill $i: the rerun left ${leftovers[*]}"; exit 1; }
  rm -rf "$out"
done
echo "$kills kills, $interrupted of them before the run finished, $shards_done shards complete when killed: after each rerun every sample exactly once, bit-identical to the uninterrupted run, the manifest true"
[[ $interrupted -ge $((kills / 2)) ]] || { echo "FAIL: too few kills interrupted a run"; exit 1; }
