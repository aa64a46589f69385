#!/usr/bin/env bash
# Stops the cluster tools/slurm-up.sh started in DIR: cancels its jobs, then stops slurmd, slurmctld and
# munged by the PIDs in DIR's PID files (never by process name: other clusters may run on this machine).
# A PID is signalled only if /proc/PID/comm is the expected daemon. Idempotent; DIR itself is kept.
# Usage: tools/slurm-down.sh DIR
set -uo pipefail
dir=${1:?usage: slurm-down.sh DIR}
[[ -d $dir ]] || exit 0
dir=$(cd "$dir" && pwd)

pid_of() {  # pid_of PIDFILE NAME: prints the PID in PIDFILE if that process is NAME
  local pid
  [[ -f $1 ]] || return 1
  pid=$(cat "$1")
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && echo "$pid"
}

# Cancel jobs first so that no job process outlives slurmd (proctrack/linuxproc tracks them there).
if [[ -n $(pid_of "$dir/run/slurmctld.pid" slurmctld) ]]; then
  jobs=$(SLURM_CONF=$dir/slurm.conf squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [[ -n ${jobs// /} ]]; then
    SLURM_CONF=$dir/slurm.conf scancel $jobs 2>/dev/null
    for _ in $(seq 1 50); do
      [[ -z $(SLURM_CONF=$dir/slurm.conf squeue -h -o %i 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
fi

# All three at once (nothing they do on the way down needs another); then wait, but not for ever.
stopped=()
for entry in run/slurmd.pid:slurmd run/slurmctld.pid:slurmctld munge/munged.pid:munged; do
  pidfile=$dir/${entry%%:*} name=${entry##*:}
  pid=$(pid_of "$pidfile" "$name") || pid=
  [[ -n $pid ]] && kill -TERM "$pid" && stopped+=("$name=$pid")
  rm -f "$pidfile"
done
for entry in "${stopped[@]}"; do
  name=${entry%%=*} pid=${entry##*=}
  for _ in $(seq 1 100); do [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || break; sleep 0.1; done
  if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
    echo "slurm-down: $name ($pid) ignored TERM for 10 s, sending KILL"
    kill -KILL "$pid"
  fi
done
echo "slurm-down: stopped ${stopped[*]:-nothing (no daemon was running from $dir)}"
