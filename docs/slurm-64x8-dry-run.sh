#!/bin/bash
# STARFlow training job (512 data-parallel ranks: 64 node(s) × 8), rendered by
#   starflow submit train docs/slurm-64x8-train.yaml --nodes 64 --gpus-per-node 8 --cpus-per-task 12 --time 2-00:00:00 --partition gpu --account starflow --job-name starflow-imagenet256 --output /shared/starflow/runs/imagenet256/slurm --signal-seconds 600 --binary /shared/starflow/build/starflow
# from slurm/templates/train.sbatch. Preemption-safe: on the warning signal the ranks finish their step,
# write a checkpoint and requeue the job, which then resumes from that checkpoint.
#SBATCH --job-name=starflow-imagenet256
#SBATCH --nodes=64
#SBATCH --ntasks-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --gpus-per-node=8
#SBATCH --time=2-00:00:00
#SBATCH --partition=gpu
#SBATCH --account=starflow
#SBATCH --output=/shared/starflow/runs/imagenet256/slurm/%x-%j.out
# A requeued job appends to the same log instead of truncating the first run's.
#SBATCH --open-mode=append
# The warning goes to this batch shell only (B:), which forwards it to the one training step below, so
# the ranks get exactly one signal per warning however the job is laid out.
#SBATCH --signal=B:USR1@600
#SBATCH --requeue

set -uo pipefail

# Trap the warning before anything else: bash's default action for USR1 would end the job unsaved.
stop_requested=0
srun_pid=
forward_stop() {
  stop_requested=1
  echo "starflow job: USR1 (time limit or preemption ahead): the ranks checkpoint and requeue"
  [[ -n $srun_pid ]] && kill -USR1 "$srun_pid" 2>/dev/null
}
trap forward_stop USR1

# One OpenMP/OpenBLAS thread team per rank, sized to its CPUs. (No OMP_PROC_BIND: where the cluster does not
# bind tasks to cores, every rank would pin its threads to the same first cores.)
export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
# Add site NCCL settings here if needed (NCCL_SOCKET_IFNAME, NCCL_IB_HCA, ...).

echo "starflow job: $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NODELIST, $SLURM_NTASKS ranks, $(date -Is)"

# Preflight on every rank before the allocation's hours go to training: a GEMM against the node type's rate, the
# links, the checkpoint directory, each rank's first and last shard. A bad node ends the job here with one table
# naming it (exit 3); resubmit with --exclude=<the hosts it names>. Seconds per (re)start.
srun --mpi=pmix --kill-on-bad-exit=1 /shared/starflow/build/starflow preflight /shared/starflow/docs/slurm-64x8-train.yaml
status=$?
if [[ $status != 0 ]]; then
  echo "starflow job: preflight failed (status $status): not training; resubmit with --exclude=<the bad hosts above>"
  exit $status
fi

# srun forwards USR1 to every rank; they agree on the stop at the next step boundary.
# One rank per GPU: local rank i sees GPU i only.
srun --mpi=pmix --kill-on-bad-exit=1 --gpu-bind=map_gpu:0,1,2,3,4,5,6,7 \
  /shared/starflow/build/starflow train /shared/starflow/docs/slurm-64x8-train.yaml --preempt-requeue &
srun_pid=$!
[[ $stop_requested == 1 ]] && kill -USR1 "$srun_pid"   # a warning that came before srun started

# `wait` returns early whenever the trap runs; keep waiting until srun itself has ended.
while kill -0 "$srun_pid" 2>/dev/null; do wait "$srun_pid"; done
wait "$srun_pid"
status=$?
echo "starflow job: training step ended with status $status, $(date -Is)"
# 75: the hang watchdog ended the step (a rank stopped progressing: its line above names rank, host, step and
# phase). Requeue: the job resumes from the last checkpoint; add --exclude for a host that keeps hanging.
if [[ $status == 75 ]]; then
  echo "starflow job: the watchdog ended a hung step: requeueing from the last checkpoint"
  scontrol requeue "$SLURM_JOB_ID" && exit 0
fi
exit $status
