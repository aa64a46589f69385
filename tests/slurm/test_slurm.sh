#!/usr/bin/env bash
# `starflow submit` against a real one-machine SLURM cluster (tools/slurm-up.sh, stopped by PID on exit):
#   1. bad input (unknown partition, a config that fails validation, a layout the config or the cluster
#      cannot take) is reported in one line and nothing is queued;
#   2. a 2-rank training job completes and writes its checkpoint;
#   3. the same job sent the warning signal (repeatedly) mid-run checkpoints, requeues itself, resumes, and ends
#      with weights, EMA and optimiser state bit-identical to the uninterrupted run.
# Exit 77 (ctest: skipped) when the cluster cannot start here (not root, SLURM not installed, ...).
# Usage: test_slurm.sh STARFLOW_BINARY
set -uo pipefail
starflow=$(realpath "$1")
repo=$(cd "$(dirname "$0")/../.." && pwd)
t0=$SECONDS
note() { echo "[$((SECONDS - t0)) s] $*"; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok   $*"; }

work=$(mktemp -d /tmp/starflow-slurm-test.XXXXXX)
chmod 0755 "$work"   # munged runs as user munge and must reach the cluster directory inside
cd "$work"           # jobs start in the submitting directory: keep anything relative in here
cluster=$work/cluster
finish() {
  bash "$repo/tools/slurm-down.sh" "$cluster"
  if ((failures)); then echo "kept $work for inspection"; else rm -rf "$work"; fi
}
trap finish EXIT

# Two free ports for slurmctld/slurmd, so that another cluster on this machine is no obstacle.
port=6817
while (: > /dev/tcp/127.0.0.1/$port) 2>/dev/null || (: > /dev/tcp/127.0.0.1/$((port + 1))) 2>/dev/null; do
  port=$((port + 2))
done
if ! SLURM_UP_PORT=$port bash "$repo/tools/slurm-up.sh" "$cluster"; then
  echo "SKIP: the SLURM cluster did not start on this machine"
  tail -n 5 "$cluster"/log/*.log "$cluster"/munge/*.log 2>/dev/null
  exit 77
fi
export SLURM_CONF=$cluster/slurm.conf
note "cluster up on port $port"

# job_state ID: JobState of a job; wait_for_job ID: waits (at most 120 s) for a final state and prints it.
job_state() { scontrol show job "$1" -o 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2; }
wait_for_job() {
  local state
  for _ in $(seq 1 600); do
    state=$(job_state "$1")
    case $state in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
      echo "$state"; return ;;
    esac
    sleep 0.2
  done
  echo "STILL-$state"
}

# A tiny class-conditional model: ~40 ms a step on 2 ranks, 80 steps.
write_config() {  # write_config FILE OUTPUT_DIR
  cat > "$1" <<YAML
channel_size: 4
img_size: 8
channels: 64
head_dim: 32
blocks: 2
layers_per_block: [1, 2]
txt_size: 1
txt_dim: 5
noise_std: 0.1
lr: 0.002
warmup_steps: 4
steps: 80
batch_size: 8
drop_label: 0.2
grad_clip: 1.0
ema: 0.9
seed: 7
log_every: 20
checkpoint_every: 25
keep_checkpoints: 2
output_dir: $2
# The test cluster is one shared 2-core machine running both ranks and the daemons: the preflight in the job
# script judges slowness loosely here (a real cluster keeps the default 0.7).
preflight_slow: 0.2
YAML
}
submit() { "$starflow" submit train "$@" --ntasks-per-node 2 --time 10 --signal-seconds 60 --output "$work/logs"; }

# ---- 1. bad input: one line each, nothing queued --------------------------------------------------------
write_config "$work/good.yaml" "$work/never"
sed 's/^lr: .*/lr: -1/' "$work/good.yaml" > "$work/bad-lr.yaml"
expect_refusal() {  # expect_refusal WHAT TEXT ARGS...: submit must fail with one stderr line containing TEXT
  local what=$1 text=$2 out err status
  shift 2
  out=$("$starflow" submit train "$@" 2> "$work/err"); status=$?
  err=$(cat "$work/err")
  if [[ $status != 2 || -n $out || $(wc -l < "$work/err") != 1 || $err != *"$text"* || $err != *"nothing submitted" ]]; then
    fail "$what: status $status, stdout '$out', stderr '$err'"
  else
    pass "$what: $err"
  fi
}
expect_refusal "unknown partition" "unknown partition 'nosuch' (this cluster has: debug)" \
  "$work/good.yaml" --ntasks-per-node 2 --partition nosuch --output "$work/logs"
expect_refusal "invalid config" "bad-lr.yaml: key 'lr': must be > 0" "$work/bad-lr.yaml" --ntasks-per-node 2
expect_refusal "batch not divisible by the ranks" "key 'batch_size': 8 is not divisible by the 3 data-parallel ranks" \
  "$work/good.yaml" --ntasks-per-node 3
expect_refusal "no nodes" "--nodes must be >= 1, got 0" "$work/good.yaml" --nodes 0
# Without EnforcePartLimits sbatch would queue these for ever (this node has all its CPUs, no GPU).
expect_refusal "more nodes than the partition has" "partition 'debug' cannot run this job: it needs 4 node(s)" \
  "$work/good.yaml" --nodes 4 --ntasks-per-node 2 --output "$work/logs"
expect_refusal "GPUs the partition lacks" "and 2 GPUs each, the partition has 0" \
  "$work/good.yaml" --ntasks-per-node 2 --gpus-per-node 2 --output "$work/logs"
printf '#!/bin/bash\n#SBATCH --no-such-option\n' > "$work/broken.sbatch"
expect_refusal "sbatch's own refusal" "sbatch failed (status 255): sbatch: unrecognized option '--no-such-option'" \
  "$work/good.yaml" --ntasks-per-node 2 --template "$work/broken.sbatch" --output "$work/logs"
expect_refusal "missing config" "no such file" "$work/missing.yaml"
queued=$(scontrol show jobs -o 2>&1)
[[ $queued == "No jobs in the system" ]] && pass "nothing was queued" || fail "jobs appeared: $queued"
note "bad input checked"

# ---- 2. an uninterrupted 2-rank training job --------------------------------------------------------------
write_config "$work/straight.yaml" "$work/straight"
straight=$(submit "$work/straight.yaml") || fail "submit of the straight run"
note "submitted straight run as job $straight"
state=$(wait_for_job "$straight")
log=$work/logs/starflow-train-$straight.out
if [[ $state == COMPLETED ]] && grep -q "^done: step 80" "$log" && [[ -f $work/straight/checkpoints/ckpt_00000080.sfckpt ]]; then
  pass "2-rank job $straight COMPLETED and wrote ckpt_00000080.sfckpt ($(grep -c . "$work/straight/metrics.jsonl") steps logged)"
else
  fail "straight run: state $state"; cat "$log"
fi
grep -q "^training .* on TP 1 × DP 2 (2 ranks) × 1 thread(s)" "$log" && pass "TP 1 × DP 2 ranks, 1 thread each" || fail "layout: $(grep ^training "$log")"
note "straight run done"

# ---- 3. the same job, preempted mid-run ---------------------------------------------------------------------
write_config "$work/preempted.yaml" "$work/preempted"
preempted=$(submit "$work/preempted.yaml") || fail "submit of the preempted run"
note "submitted preempted run as job $preempted"
for _ in $(seq 1 1200); do  # until step 10 is logged (at most 60 s)
  [[ -f $work/preempted/metrics.jsonl && $(grep -c . "$work/preempted/metrics.jsonl") -ge 10 ]] && break
  sleep 0.05
done
# What SLURM does at --signal=B:USR1@S: signal the batch shell. Then keep signalling until the ranks
# report the stop, so that more warnings land during the last step and the checkpoint write: they must
# change nothing.
log=$work/logs/starflow-train-$preempted.out
at_step=$(grep -c . "$work/preempted/metrics.jsonl")
signals=0
for _ in $(seq 1 500); do
  scancel --signal=USR1 --batch "$preempted" 2>/dev/null && signals=$((signals + 1))
  grep -q "^stopped by SIGUSR1" "$log" && break
  sleep 0.01
done
note "sent USR1 $signals times from step $at_step until the ranks stopped"
state=$(wait_for_job "$preempted")
restarts=$(scontrol show job "$preempted" -o | grep -oE 'Restarts=[0-9]+' | cut -d= -f2)
stopped=$(grep -oE '^stopped by SIGUSR1 \([0-9]+ received\) at step [0-9]+ of 80' "$log")
resumed=$(grep -oE '^resumed from .*ckpt_[0-9]+\.sfckpt at step [0-9]+' "$log")
if [[ $state == COMPLETED && $restarts == 1 && -n $stopped && -n $resumed && ${stopped##* step } == "${resumed##* step } of 80" ]] \
   && grep -q "^requeued SLURM job $preempted" "$log" && grep -q "^done: step 80" "$log"; then
  pass "job $preempted: $stopped; requeued; $resumed (restarts $restarts); COMPLETED"
else
  fail "preempted run: state $state, restarts '$restarts', stopped '$stopped', resumed '$resumed'"; cat "$log"
fi
# Every step logged once: the stop fell on a step boundary and the resume repeated nothing.
steps=$(grep -oE '"step":[0-9]+' "$work/preempted/metrics.jsonl" | cut -d: -f2 | tr '\n' ' ')
[[ $steps == "$(seq -s ' ' 1 80) " ]] && pass "metrics: steps 1..80 once each" || fail "metrics steps: $steps"
note "preempted run done"

# ---- bit-identical to the uninterrupted run --------------------------------------------------------------------
# convert records the checkpoint's path in the safetensors metadata, so both are exported from one path.
compare=$work/compare
mkdir -p "$compare"
for run in straight preempted; do
  cp "$work/$run/checkpoints/ckpt_00000080.sfckpt" "$compare/ckpt_00000080.sfckpt"
  "$starflow" convert --from "$compare/ckpt_00000080.sfckpt" --to "$compare/$run.safetensors" > /dev/null &&
  "$starflow" convert --from "$compare/ckpt_00000080.sfckpt" --to "$compare/$run-ema.safetensors" --ema > /dev/null ||
    fail "convert of the $run run"
  # Every tensor of the checkpoint (weights, EMA, both Adam moments) by name and CRC-32.
  "$starflow" inspect "$work/$run/checkpoints/ckpt_00000080.sfckpt" --tensors | awk '/crc32/ {print $1, $NF}' > "$compare/$run.crc"
done
cmp "$compare/straight.safetensors" "$compare/preempted.safetensors" && pass "final weights bit-identical" || fail "weights differ"
cmp "$compare/straight-ema.safetensors" "$compare/preempted-ema.safetensors" && pass "final EMA weights bit-identical" || fail "EMA differs"
if [[ -s $compare/straight.crc ]] && diff -q "$compare/straight.crc" "$compare/preempted.crc" > /dev/null; then
  pass "all $(wc -l < "$compare/straight.crc") checkpoint tensors (model, ema, adam_m, adam_v) have equal CRC-32s"
else
  fail "checkpoint tensors differ"; diff "$compare/straight.crc" "$compare/preempted.crc" | head
fi
note "compared"

echo "$failures failure(s) in $((SECONDS - t0)) s (before stopping the cluster)"
((failures == 0))
