#!/usr/bin/env bash
# Starts a one-machine SLURM cluster (munged, slurmctld, slurmd) for tests. Its config, munge key, state,
# logs and PID files all live under DIR, so it touches nothing in /etc or /run and leaves no trace once DIR
# is removed. Idempotent and fast (~1 s): daemons already running from DIR are kept.
#
# Usage: tools/slurm-up.sh DIR        then: export SLURM_CONF=DIR/slurm.conf   (stop: tools/slurm-down.sh DIR)
# Env:   SLURM_UP_PORT   slurmctld port (default 6817; slurmd uses the next one)
#        SLURM_UP_PARTITION  the partition's name (default debug)
# Needs root (slurmd runs jobs as their users) and Debian's slurm-wlm + munge (tools/install-deps.sh).
# Exits 1 with the reason on stderr when the cluster does not come up.
set -euo pipefail
dir=${1:?usage: slurm-up.sh DIR}
port=${SLURM_UP_PORT:-6817}
partition=${SLURM_UP_PARTITION:-debug}
node=localhost   # SlurmctldHost/NodeName=localhost work whatever `hostname` says

[[ $(id -u) == 0 ]] || { echo "slurm-up: needs root (slurmd must start jobs as their users)" >&2; exit 1; }
for bin in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd; do
  [[ -x $bin ]] || { echo "slurm-up: $bin missing; run tools/install-deps.sh" >&2; exit 1; }
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# munged runs as user munge and must reach its files through every parent directory.
chmod 0755 "$dir"
runuser -u munge -- test -x "$dir" ||
  { echo "slurm-up: user munge cannot enter $dir (a parent directory is not world-executable)" >&2; exit 1; }
install -d -o munge -g munge -m 0755 "$dir/munge"   # clients need x to reach the socket
mkdir -p "$dir/state/ctld" "$dir/state/slurmd" "$dir/log" "$dir/run"
conf=$dir/slurm.conf

# PID files outlive their daemons (and PIDs get reused): trust a PID only if /proc says it is that daemon.
alive() { [[ -f $1 ]] && [[ $(cat "/proc/$(cat "$1")/comm" 2>/dev/null) == "$2" ]]; }

# A private munge key and socket: clients find the socket through AuthInfo in slurm.conf.
if [[ ! -f $dir/munge/munge.key ]]; then
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$dir/munge/munge.key"
  chmod 0400 "$dir/munge/munge.key"
fi
if ! alive "$dir/munge/munged.pid" munged; then
  runuser -u munge -- /usr/sbin/munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
fi

if ! alive "$dir/run/slurmctld.pid" slurmctld; then
  # The node exactly as slurmd sees it: a RealMemory above the real one would make the node INVAL.
  hardware=$(/usr/sbin/slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')
  cat > "$conf" <<CONF
# Written by tools/slurm-up.sh: a one-machine test cluster living in $dir.
ClusterName=starflowtest
SlurmctldHost=$node
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5
StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/slurmd
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
SchedulerParameters=sched_interval=1
NodeName=$node $hardware State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
  SLURM_CONF=$conf /usr/sbin/slurmctld -f "$conf"   # daemonises
fi
alive "$dir/run/slurmd.pid" slurmd || SLURM_CONF=$conf /usr/sbin/slurmd -f "$conf" -N "$node"

export SLURM_CONF=$conf
for _ in $(seq 1 100); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
  if [[ $state == idle* || $state == mixed* || $state == allocated* ]]; then
    echo "slurm-up: node $node $state, partition $partition, SLURM_CONF=$conf"
    exit 0
  fi
  sleep 0.2
done
echo "slurm-up: the node did not come up (state '${state:-none}'); see $dir/log/*.log" >&2
exit 1
