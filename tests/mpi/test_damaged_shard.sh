#!/usr/bin/env bash
# A 2-rank training job on a damaged shard that crashes HDF5 1.10.8 inside H5Fopen's attribute reads (found by
# mutating a fuzz-corpus shard): each rank's last words name the file ("starflow: rank R: SIGSEGV inside HDF5 on
# PATH: ..."), so among thousands of shards the bad one is known at once. An HDF5 that rejects the file cleanly
# instead must still end the job with a line naming it.
# Usage: test_damaged_shard.sh STARFLOW SHARD
set -uo pipefail
starflow=$1
shard=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/log"; exit 1; }
mkdir "$dir/shards"
cp "$shard" "$dir/shards/shard-00000.h5"
cat > "$dir/train.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
blocks: 2
layers_per_block: [1, 1]
head_dim: 32
batch_size: 8
steps: 4
data: $dir/shards
output_dir: $dir/out
YAML
timeout 120 mpiexec -n 2 "$starflow" train "$dir/train.yaml" > "$dir/log" 2>&1
rc=$?
path="$dir/shards/shard-00000.h5"
[[ $rc != 0 ]] || fail "the job succeeded on a damaged shard"
if [[ $rc -gt 128 ]]; then  # killed by a signal: every rank that crashed said where
  crashed=$(grep -c "^starflow: rank [01]: SIG[A-Z]* inside HDF5 on $path: the file is probably damaged" "$dir/log")
  [[ $crashed -ge 1 ]] || fail "exit $rc without a line naming the shard"
  echo "ok   exit $rc; $crashed rank(s) named the shard"
else
  grep -q "$path" "$dir/log" || fail "exit $rc without naming the shard"
  echo "ok   exit $rc with an error naming the shard (this HDF5 does not crash on it)"
fi
