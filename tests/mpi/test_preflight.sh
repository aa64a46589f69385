#!/usr/bin/env bash
# starflow preflight on 2 and 4 ranks: a sound job prints one row per rank and "preflight: OK" (exit 0); a node
# slower than the expected GEMM rate, an unwritable checkpoint directory and a damaged shard each make every
# rank's verdict say so and exit 3 naming the host. Usage: test_preflight.sh STARFLOW
set -euo pipefail
starflow=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
host=$(hostname)
"$starflow" preprocess --dataset fashion-mnist --limit 256 --shard-size 64 --out "$dir/shards" > "$dir/preprocess.log"
config() {  # config FILE OUTPUT_DIR
  cat > "$1" <<YAML
channel_size: 4
img_size: 8
channels: 64
blocks: 2
layers_per_block: [1, 1]
head_dim: 32
txt_size: 1
txt_dim: 11
batch_size: 16
steps: 2
data: $dir/shards
output_dir: $2
preflight_slow: 0.2
YAML
}
config "$dir/ok.yaml" "$dir/run"
# preflight RANKS CONFIG EXPECTED_EXIT [options]: runs it, prints its time, checks the exit status.
preflight() {
  local ranks=$1 cfg=$2 want=$3 status=0 t0
  shift 3
  t0=$(date +%s.%N)
  mpiexec -n "$ranks" "$starflow" preflight "$cfg" --io-mb 8 --allreduce-mb 8 --gemm 256 "$@" > "$dir/out" 2>&1 ||
    status=$?
  awk -v t0="$t0" -v t1="$(date +%s.%N)" -v n="$ranks" 'BEGIN { printf "preflight on %d ranks: %.1f s\n", n, t1 - t0 }'
  [[ $status == "$want" ]] || { echo "FAIL: exit $status, expected $want"; cat "$dir/out"; exit 1; }
}
# Sound: every rank OK. This machine is shared and oversubscribed at 4 ranks, so the config says "slow" is 0.2 of
# the median here (preflight_slow).
for ranks in 2 4; do
  preflight "$ranks" "$dir/ok.yaml" 0
  [[ $(grep -cE "^[0-9]+ +$host .* OK +OK$" "$dir/out") == "$ranks" ]] || { echo "FAIL: not $ranks OK rows"; cat "$dir/out"; exit 1; }
  grep -q "^preflight: OK$" "$dir/out" || { echo "FAIL: no verdict"; cat "$dir/out"; exit 1; }
  grep -q "ring all-reduce bus bandwidth .* over $ranks ranks" "$dir/out" || { cat "$dir/out"; exit 1; }
done
cat "$dir/out"
# A node type that should reach 1,000,000 GFLOP/s: every rank is slow, the host is named for --exclude.
preflight 2 "$dir/ok.yaml" 3 --expect-gflops 1e6
grep -q "slow: GEMM at 0% of 1000000.0" "$dir/out" || { echo "FAIL: no slow GEMM verdict"; cat "$dir/out"; exit 1; }
grep -q "^preflight: bad hosts: $host (resubmit with sbatch --exclude=$host)$" "$dir/out" || { cat "$dir/out"; exit 1; }
# A checkpoint file system expected to write 1 TB/s per rank: judged only when given.
preflight 2 "$dir/ok.yaml" 3 --expect-write-mbs 1e6
grep -q "slow: checkpoint write at 0% of 1000000.0" "$dir/out" || { echo "FAIL: no slow write verdict"; cat "$dir/out"; exit 1; }
# A checkpoint directory that cannot be created (its parent is a file).
touch "$dir/file"
config "$dir/nodir.yaml" "$dir/file/run"
preflight 2 "$dir/nodir.yaml" 3
[[ $(grep -c "failed: .*$dir/file/run" "$dir/out") == 2 ]] || { echo "FAIL: the directory was not named"; cat "$dir/out"; exit 1; }
# A shard damaged after preprocessing (on a node's mount, say): the ranks fail, naming the file.
printf 'not an HDF5 file' > "$dir/shards/shard-00001.h5"
preflight 2 "$dir/ok.yaml" 3
grep -q "failed: shards: .*shard-00001.h5" "$dir/out" || { echo "FAIL: no shard failure"; cat "$dir/out"; exit 1; }
echo "preflight ok"
