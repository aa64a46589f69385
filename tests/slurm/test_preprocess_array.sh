#!/usr/bin/env bash
# Preprocessing as a SLURM job array on a real one-machine cluster: a 3-task array (`starflow submit
# preprocess --array 0-2`) with one task cancelled, then the whole array submitted again, ends with every
# shard written once: the same samples as a one-process run, none missing, none twice, no partial file.
#
# `starflow preprocess CONFIG --shard-index I --shard-count N` writes complete shards as *.h5 (temporary
# names never end in .h5) and skips shards already complete; tests/slurm/preprocess-array.yaml is a small
# preprocess config whose output directory is written as @OUTPUT_DIR@ (substituted here), and whose shards
# hold per-sample ids in the dataset named below. Skips (77) only when the cluster cannot start here.
# Usage: test_preprocess_array.sh STARFLOW_BINARY
set -uo pipefail
starflow=$(realpath "$1")
repo=$(cd "$(dirname "$0")/../.." && pwd)
config_template=$repo/tests/slurm/preprocess-array.yaml
ids_dataset=${STARFLOW_SHARD_IDS_DATASET:-sample_ids}

[[ -f $config_template ]] || { echo "FAIL: $config_template is missing"; exit 1; }

t0=$SECONDS
note() { echo "[$((SECONDS - t0)) s] $*"; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok   $*"; }
work=$(mktemp -d /tmp/starflow-slurm-array.XXXXXX)
chmod 0755 "$work"
cd "$work"
cluster=$work/cluster
finish() {
  bash "$repo/tools/slurm-down.sh" "$cluster"
  if ((failures)); then echo "kept $work for inspection"; else rm -rf "$work"; fi
}
trap finish EXIT
port=6817
while (: > /dev/tcp/127.0.0.1/$port) 2>/dev/null || (: > /dev/tcp/127.0.0.1/$((port + 1))) 2>/dev/null; do
  port=$((port + 2))
done
if ! SLURM_UP_PORT=$port bash "$repo/tools/slurm-up.sh" "$cluster"; then
  echo "SKIP: the SLURM cluster did not start on this machine"
  exit 77
fi
export SLURM_CONF=$cluster/slurm.conf
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

sed "s#@OUTPUT_DIR@#$work/array#g" "$config_template" > "$work/array.yaml"
sed "s#@OUTPUT_DIR@#$work/reference#g" "$config_template" > "$work/reference.yaml"

# The states of all tasks of array job $1, one "index state" per line; returns once none is pending/running.
array_states() { squeue -h -r -j "$1" -o '%K %T' 2>/dev/null; }
wait_for_array() {
  for _ in $(seq 1 900); do
    [[ -z $(array_states "$1") ]] && return 0
    sleep 0.2
  done
  return 1
}
task_state() { scontrol show job "${1}_$2" -o 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2; }

# ---- reference: one process, all shards ----------------------------------------------------------------------
mpirun -np 1 "$starflow" preprocess "$work/reference.yaml" > "$work/reference.log" 2>&1 || fail "reference run"
note "reference written"

# ---- the array, with task 1 cancelled --------------------------------------------------------------------------
submit() { "$starflow" submit preprocess "$work/array.yaml" --array 0-2 --ntasks-per-node 1 --output "$work/logs"; }
first=$(submit) || fail "submit"
for _ in $(seq 1 300); do  # cancel task 1 as soon as it exists (running or still pending)
  [[ -n $(task_state "$first" 1) ]] && break
  sleep 0.1
done
scancel "${first}_1"
wait_for_array "$first" || fail "array $first did not end"
states="$(task_state "$first" 0) $(task_state "$first" 1) $(task_state "$first" 2)"
# A task cancelled while still pending leaves no record for scontrol, so its state reads empty.
[[ $states == "COMPLETED CANCELLED COMPLETED" || $states == "COMPLETED  COMPLETED" ]] && pass "first array: tasks $states" ||
  fail "first array: $states"
# What is visible are complete shards only: every *.h5 opens.
for f in "$work"/array/*.h5; do h5ls "$f" > /dev/null 2>&1 || fail "$f is visible but does not open"; done
note "first array done"

# ---- the whole array again: only the missing shards are written -------------------------------------------------
second=$(submit) || fail "resubmit"
wait_for_array "$second" || fail "array $second did not end"
states="$(task_state "$second" 0) $(task_state "$second" 1) $(task_state "$second" 2)"
[[ $states == "COMPLETED COMPLETED COMPLETED" ]] && pass "second array: tasks $states" || fail "second array: $states"
note "second array done"

# ---- the same samples as the reference, each once ----------------------------------------------------------------
/usr/bin/python3 - "$work/reference" "$work/array" "$ids_dataset" <<'PY' && pass "same samples as one process, none missing or twice" || fail "sample sets differ"
import collections, glob, sys
import h5py
def ids(folder, name):
    found = collections.Counter()
    for path in sorted(glob.glob(folder + "/*.h5")):
        with h5py.File(path, "r") as f:
            found.update(x.decode() if isinstance(x, bytes) else str(x) for x in f[name][()])
    return found
reference, array = ids(sys.argv[1], sys.argv[3]), ids(sys.argv[2], sys.argv[3])
twice = [k for k, n in array.items() if n > 1]
print(f"reference {sum(reference.values())} samples, array {sum(array.values())}, duplicates {len(twice)}")
sys.exit(0 if reference and set(reference) == set(array) and not twice else 1)
PY
echo "$failures failure(s) in $((SECONDS - t0)) s"
((failures == 0))
