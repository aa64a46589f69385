#!/usr/bin/env bash
# Faults injected for real into a 2-rank training job under mpiexec (STARFLOW_FAULT, parallel/watchdog.h), and
# the recovery: the job must end within the watchdog's limit plus a few seconds with a one-line diagnosis, and a
# rerun must resume from the last checkpoint to the uninterrupted run's weights, bit for bit.
#   hang        rank 1 SIGSTOPs itself in the forward pass of step 10: rank 0's watchdog names it and ends the job
#               (exit 75)
#   kill        rank 1 SIGKILLs itself entering the gradient all-reduce of step 10: mpiexec ends the job
#   slow-reader rank 1 sleeps 600 s in its data reader at step 10: its own watchdog names it (phase data)
#   error       rank 1 fails to read its data at step 10 (an exception, as from a corrupt shard): it names itself and
#               ends the job at once (exit 2), long before the watchdog's limit (120 s in this mode)
#   straggler   rank 1 sleeps 2 s in its data reader at step 10: reported as a straggler, the job goes on (with
#               log_every 1: reports come at most once per log_every steps, and a noisy step just before, under a
#               sanitizer build or a loaded host, must not hold back step 10's)
# Usage: test_fault.sh STARFLOW MODE
set -euo pipefail
starflow=$1
mode=$2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
limit=5    # watchdog_seconds
[[ $mode == error ]] && limit=120  # the job must end without the watchdog
grace=10   # the job must end within limit + grace seconds of the fault
"$starflow" preprocess --dataset fashion-mnist --limit 256 --shard-size 64 --out "$dir/shards" > "$dir/preprocess.log"
config() {  # config NAME [LOG_EVERY]
  cat > "$dir/$1.yaml" <<YAML
channel_size: 4
img_size: 8
channels: 64
blocks: 2
layers_per_block: [1, 1]
head_dim: 32
txt_size: 1
txt_dim: 11
batch_size: 16
steps: 24
warmup_steps: 2
checkpoint_every: 4
log_every: ${2:-4}
watchdog_seconds: $limit
data: $dir/shards
output_dir: $dir/$1
YAML
}
crc() { "$starflow" inspect "$dir/$1/checkpoints/ckpt_00000024.sfckpt" --tensors | awk '/crc32/ {print $1, $NF}'; }
train() {  # train NAME [FAULT]: runs the job, prints its time; the exit status is in $status
  local t0
  t0=$(date +%s.%N)
  status=0
  STARFLOW_FAULT=${2:-} mpiexec -x STARFLOW_FAULT -n 2 "$starflow" train "$dir/$1.yaml" >> "$dir/$1.log" 2>&1 || status=$?
  seconds=$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }')
  echo "train $1${2:+ with fault $2}: exit $status in $seconds s"
}
fail() { echo "FAIL: $*"; cat "$dir/faulted.log"; exit 1; }

config reference
train reference
[[ $status == 0 ]] || { cat "$dir/reference.log"; exit 1; }
crc reference > "$dir/reference.crc"

config faulted "$([[ $mode == straggler ]] && echo 1)"
case $mode in
  hang) fault=1:10:forward:stop ;;
  kill) fault=1:10:all-reduce:kill ;;
  slow-reader) fault=1:10:data:sleep:600 ;;
  straggler) fault=1:10:data:sleep:2 ;;
  error) fault=1:10:data:error ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
train faulted "$fault"
case $mode in
  hang)
    [[ $status == 75 ]] || fail "exit $status, expected 75 (the watchdog's)"
    grep -qE "^starflow watchdog: rank 0 on .* made no progress for [0-9]+ s \(limit $limit s\) at step 10 in phase all-reduce; aborting the job with exit status 75" \
      "$dir/faulted.log" || fail "no diagnosis from the waiting rank"
    grep -qE "^starflow watchdog: ranks that did not answer rank 0's roll call within 5 s \(stopped, dead, or hung outside MPI\): 1 \(.+\)$" \
      "$dir/faulted.log" || fail "the stopped rank was not named" ;;
  kill)
    [[ $status != 0 ]] || fail "the job did not fail"
    grep -qE "exited on signal 9|starflow watchdog: rank 0" "$dir/faulted.log" || fail "no diagnosis" ;;
  slow-reader)
    [[ $status == 75 ]] || fail "exit $status, expected 75"
    grep -qE "^starflow watchdog: rank 1 on .* at step 10 in phase data;" "$dir/faulted.log" ||
      fail "the sleeping reader's rank did not name itself"
    grep -q "^starflow watchdog: every rank answered rank 0's roll call" "$dir/faulted.log" || fail "no roll call" ;;
  error)
    [[ $status == 2 ]] || fail "exit $status, expected 2 (the failing rank's)"
    grep -qE "^starflow train: rank 1 of 2: injected fault: an I/O error on rank 1 at step 10 in phase data; ending the job" \
      "$dir/faulted.log" || fail "the failing rank did not name itself"
    ! grep -q "^starflow watchdog:" "$dir/faulted.log" || fail "the watchdog, not the failing rank, ended the job" ;;
  straggler)
    [[ $status == 0 ]] || fail "a straggler stopped the job"
    grep -qE "^starflow straggler: rank 1 on .* in step 10, [0-9.]+x the median" "$dir/faulted.log" ||
      fail "no straggler report" ;;
esac
if [[ $mode != straggler ]]; then
  max=$((limit + grace + 5))
  [[ $mode == error ]] && max=$((grace + 5))
  awk -v s="$seconds" -v max=$max 'BEGIN { exit !(s <= max) }' ||
    fail "the job took $seconds s to end (the fault came after ~1 s of training; limit $limit s + $grace s)"
  # The checkpoint of step 8 is written in the background while steps 9 and 10 run (checkpoint_async): a fault
  # that lands before that write finished leaves step 4's as the newest complete one, never a partial file.
  newest=$(cd "$dir/faulted/checkpoints" && ls ckpt_*.sfckpt 2> /dev/null | sort | tail -1)
  [[ $newest == ckpt_00000008.sfckpt || $newest == ckpt_00000004.sfckpt ]] ||
    fail "the newest complete checkpoint is '${newest:-none}', expected step 8 (or 4, the fault inside step 8's write)"
  echo "newest complete checkpoint after the fault: $newest"
  train faulted
  [[ $status == 0 ]] || fail "the rerun failed"
  grep -q "resumed from .*$newest at step $((10#${newest:5:8}))" "$dir/faulted.log" || fail "the rerun did not resume from $newest"
fi
crc faulted > "$dir/faulted.crc"
[[ -s $dir/reference.crc ]] && diff -q "$dir/reference.crc" "$dir/faulted.crc" > /dev/null ||
  fail "the final weights differ from the uninterrupted run's"
echo "fault $mode: ok ($(wc -l < "$dir/reference.crc") tensors bit-identical to the uninterrupted run)"
