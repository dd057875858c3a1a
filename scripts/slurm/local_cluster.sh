#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests marked `slurm` (make test-slurm).
#
#   scripts/slurm/local_cluster.sh start    # install if missing, start, wait until the node is idle
#   scripts/slurm/local_cluster.sh status   # exit 0 when all three daemons run and sinfo answers
#   scripts/slurm/local_cluster.sh stop     # cancel its jobs, stop exactly the daemons it started
#   scripts/slurm/local_cluster.sh env      # the line to eval: export SLURM_CONF=...
#
# munged, slurmctld and slurmd run as root on localhost with their config, key, state, logs and
# pid files in one state dir (VAEGAN_SLURM_STATE, default /tmp/vaegan-slurm); nothing under
# /etc is touched, so clients need SLURM_CONF=$STATE/slurm.conf (what `env` prints). One node
# with this machine's CPUs, no cgroups (proctrack/linuxproc, task/none), requeue allowed.
# The daemons inherit the caller's niceness, and the jobs inherit slurmd's: `nice -n 19 ... start`
# runs the whole cluster on spare CPU. KillWait (SIGTERM to SIGKILL) is 300 s, not the usual 30:
# a pre-empted run finishes its step and checkpoints in that time, which at nice 19 on busy
# cores took minutes. Needs root (slurmd starts jobs as their users).
set -euo pipefail

STATE=${VAEGAN_SLURM_STATE:-/tmp/vaegan-slurm}
MARKER="$STATE/.vaegan-local-cluster"   # only a dir with this file is ever wiped
CONF="$STATE/slurm.conf"
MUNGE_SOCKET="$STATE/munge/munge.socket.2"
PACKAGES=(slurmctld slurmd slurm-client munge)
DAEMONS=(munged slurmctld slurmd)     # started in this order, stopped in reverse
START_TIMEOUT_S=${VAEGAN_SLURM_START_TIMEOUT_S:-90}
NODE=$(hostname -s)

die() { echo "local_cluster.sh: $*" >&2; exit 1; }
note() { echo "local_cluster.sh: $*"; }

pid_file() { echo "$STATE/run/$1.pid"; }

# The pid of daemon $1 if its pid file names a live process of that name (a reused pid is not it).
daemon_pid() {
    local file pid
    file=$(pid_file "$1")
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$1" ]] || return 1
    echo "$pid"
}

export SLURM_CONF="$CONF"

node_idle() {
    [[ $(timeout 10 sinfo -h -n "$NODE" -o %t 2>/dev/null) == idle* ]]
}

install_packages() {
    local missing=()
    for cmd in munged slurmctld slurmd sinfo sbatch srun scontrol squeue scancel; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    ((EUID == 0)) && command -v apt-get >/dev/null \
        || die "cannot start: ${missing[*]} missing and no root apt-get to install ${PACKAGES[*]}"
    note "installing ${PACKAGES[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' scripts would start system-wide munged/slurmd (daemons this script did not
    # start and would not stop): policy-rc.d forbids service starts during the install.
    local policy=/usr/sbin/policy-rc.d log="${TMPDIR:-/tmp}/vaegan-slurm-apt.log" ok=1
    local own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"; } \
        >"$log" 2>&1 || ok=0
    ((own_policy)) && rm -f "$policy"
    ((ok)) || die "cannot start: apt-get install ${PACKAGES[*]} failed ($log)"
}

write_state() {
    if [[ -e $STATE && ! -e $MARKER ]] && [[ -n $(ls -A "$STATE") ]]; then
        die "cannot start: $STATE exists and is not a local cluster's state dir"
    fi
    rm -rf "$STATE"  # a fresh cluster: no jobs of an earlier one come back
    mkdir -p "$STATE"/{munge,run,log,ctld,spool}
    chmod 700 "$STATE" "$STATE/munge"
    touch "$MARKER"
    head -c 1024 /dev/urandom >"$STATE/munge/munge.key"
    chmod 400 "$STATE/munge/munge.key"
    local mem_mb
    mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10))
    cat >"$CONF" <<EOF
# written by scripts/slurm/local_cluster.sh: one node, localhost, for tests
ClusterName=vaegan-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${VAEGAN_SLURMCTLD_PORT:-6817}
SlurmdPort=${VAEGAN_SLURMD_PORT:-6818}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
KillWait=300
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_daemons() {
    munged --force --socket="$MUNGE_SOCKET" --key-file="$STATE/munge/munge.key" \
        --pid-file="$(pid_file munged)" --log-file="$STATE/log/munged.log" \
        --seed-file="$STATE/munge/munged.seed" \
        || die "cannot start: munged failed ($STATE/log/munged.log)"
    slurmctld -f "$CONF" || die "cannot start: slurmctld failed ($STATE/log/slurmctld.log)"
    slurmd -f "$CONF" || die "cannot start: slurmd failed ($STATE/log/slurmd.log)"
}

cmd_start() {
    if cmd_status >/dev/null 2>&1; then
        note "already running ($STATE)"
        return 0
    fi
    ((EUID == 0)) || die "cannot start: must run as root (slurmd starts jobs as their users)"
    install_packages
    cmd_stop >/dev/null  # a half-started cluster: stop what is left, then start clean
    write_state
    start_daemons
    local waited=0
    until node_idle; do
        if ((waited >= START_TIMEOUT_S)); then
            cmd_stop >/dev/null
            die "cannot start: node $NODE not idle after ${START_TIMEOUT_S} s (logs in $STATE/log)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    note "up in ${waited} s: node $NODE idle; clients need: export SLURM_CONF=$CONF"
}

cmd_status() {
    local down=()
    for daemon in "${DAEMONS[@]}"; do
        daemon_pid "$daemon" >/dev/null || down+=("$daemon")
    done
    if ((${#down[@]})); then
        echo "stopped (${down[*]} not running; state dir $STATE)"
        return 1
    fi
    timeout 10 sinfo -h -o "%P %t %D %c" >/dev/null 2>&1 || { echo "daemons up, sinfo fails"; return 1; }
    echo "running: $(timeout 10 sinfo -h -n "$NODE" -o 'node %n %t, %c CPUs'); SLURM_CONF=$CONF"
}

# Wait until no process of pid $1 is left (up to $2 s); 0 when it is gone.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ -d /proc/$1 ]] || return 0
        sleep 0.1
    done
    return 1
}

cmd_stop() {
    # Jobs first: slurmstepd and the job's processes outlive slurmd otherwise.
    if daemon_pid slurmctld >/dev/null; then
        local jobs i
        jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 60; i++)); do
                [[ -z $(timeout 10 squeue -h -o %i 2>/dev/null || true) ]] && break
                sleep 1
            done
        fi
    fi
    local stopped=()
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        local daemon=${DAEMONS[i]} pid
        pid=$(daemon_pid "$daemon") || continue
        kill -TERM "$pid"
        wait_gone "$pid" 20 || { kill -KILL "$pid"; wait_gone "$pid" 5 || true; }
        rm -f "$(pid_file "$daemon")"
        stopped+=("$daemon")
    done
    if ((${#stopped[@]})); then
        note "stopped ${stopped[*]} (state and logs kept in $STATE)"
    else
        note "not running (state dir $STATE)"
    fi
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) die "usage: $0 start|stop|status|env" ;;
esac
