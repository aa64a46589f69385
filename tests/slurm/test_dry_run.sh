#!/usr/bin/env bash
# The checked-in 64-node × 8-GPU example (docs/slurm-64x8-dry-run.sh) is exactly what `starflow submit
# --dry-run` renders today, and it has the essentials: 512 ranks, one GPU per rank, the warning signal to
# the batch shell, requeue, srun --mpi=pmix. Needs no cluster.
# Usage: test_dry_run.sh STARFLOW_BINARY      (regenerate the doc: REGENERATE=1 test_dry_run.sh STARFLOW_BINARY)
set -euo pipefail
starflow=$(realpath "$1")
repo=$(cd "$(dirname "$0")/../.." && pwd)
doc=$repo/docs/slurm-64x8-dry-run.sh
cd "$repo"

# Paths in the doc read as if the project lived in /shared/starflow on the cluster.
rendered=$("$starflow" submit train docs/slurm-64x8-train.yaml --nodes 64 --gpus-per-node 8 --cpus-per-task 12 \
  --time 2-00:00:00 --partition gpu --account starflow --job-name starflow-imagenet256 \
  --output /shared/starflow/runs/imagenet256/slurm --signal-seconds 600 \
  --binary /shared/starflow/build/starflow --dry-run | sed "s#$repo#/shared/starflow#g")
if [[ ${REGENERATE:-0} == 1 ]]; then printf '%s\n' "$rendered" > "$doc"; echo "wrote $doc"; fi

fail=0
if ! diff -u "$doc" <(printf '%s\n' "$rendered"); then
  echo "FAIL: $doc differs from what starflow submit renders now (REGENERATE=1 $0 $1 rewrites it)"; fail=1
fi
expect() {  # expect PATTERN WHAT: an extended regex that must match a line of the doc
  if grep -Eq -- "$1" "$doc"; then echo "ok   $2"; else echo "FAIL $2: no line matches /$1/"; fail=1; fi
}
expect '^#SBATCH --nodes=64$' "64 nodes"
expect '^#SBATCH --ntasks-per-node=8$' "8 ranks per node"
expect '^# STARFlow training job \(512 data-parallel ranks' "512 ranks in all"
expect '^#SBATCH --gpus-per-node=8$' "8 GPUs per node"
expect 'srun --mpi=pmix .*--gpu-bind=map_gpu:0,1,2,3,4,5,6,7' "srun --mpi=pmix, rank i bound to GPU i"
expect '^#SBATCH --signal=B:USR1@600$' "USR1 to the batch shell 600 s before the limit"
expect '^trap forward_stop USR1$' "the batch shell traps USR1"
expect 'kill -USR1 "\$srun_pid"' "and forwards it to srun"
expect '^#SBATCH --requeue$' "requeueable"
expect '^#SBATCH --open-mode=append$' "logs appended across requeues"
expect '^#SBATCH --output=/shared/starflow/runs/imagenet256/slurm/%x-%j.out$' "one log per job id"
expect '/shared/starflow/build/starflow train /shared/starflow/docs/slurm-64x8-train.yaml --preempt-requeue' \
  "the binary, the config, --preempt-requeue"
expect '^srun --mpi=pmix --kill-on-bad-exit=1 /shared/starflow/build/starflow preflight /shared/starflow/docs/slurm-64x8-train.yaml$' \
  "the preflight on every rank before training"
expect '^if \[\[ \$status == 75 \]\]; then$' "a watchdog exit (75) requeues the job"
expect '^export OMP_NUM_THREADS=\$SLURM_CPUS_PER_TASK$' "threads from --cpus-per-task"
bash -n "$doc" && echo "ok   bash -n accepts it" || { echo "FAIL: bash -n"; fail=1; }
exit $fail
