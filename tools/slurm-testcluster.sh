#!/usr/bin/env bash
# A throw-away, single-node SLURM cluster (with accounting) for testing the
# workflow's SLURM profile on one machine: munge, MariaDB, slurmdbd, slurmctld and
# slurmd, all started directly (no systemd), all on 127.0.0.1, all files in one
# state folder. Run `tools/slurm-testcluster.sh --help` for the usage.
#
# Design notes
#   * Every daemon runs in the foreground (-D / -F), started with `setsid ... &`, so the
#     PID this script records is the daemon itself. A PID file holds "PID STARTTIME"
#     (STARTTIME = field 22 of /proc/PID/stat), so a PID reused by another process is
#     never mistaken for ours; `stop` signals only processes recorded like that.
#   * Daemons get SMOOTHBENCH_SLURM_DAEMON=<state folder> in their environment. Their
#     helpers (slurmstepd, slurmscriptd) inherit it, which is how `stop` finds the
#     helpers that our daemons started and nothing else.
#   * Nothing is written outside the state folder except: Debian packages (installed
#     when missing); only while apt runs and only if absent, /usr/sbin/policy-rc.d
#     (so that apt does not start the system's own munge/MariaDB services); and, if
#     absent, a symlink /etc/slurm/slurm.conf -> our slurm.conf, removed by stop (see
#     link_system_conf for why).
#   * Clients (sinfo, sbatch, sacct, snakemake's SLURM executor) find this cluster via
#     SLURM_CONF: eval "$(tools/slurm-testcluster.sh env)".
set -euo pipefail

STATE="${SMOOTHBENCH_SLURM_STATE:-/tmp/smoothbench-slurm}"
# Four consecutive TCP ports on 127.0.0.1: slurmctld, slurmd, slurmdbd, MariaDB.
# Not SLURM's defaults (6817-6819), so a real installation on the machine is not hit.
PORT_BASE="${SMOOTHBENCH_SLURM_PORT_BASE:-16817}"
KILL_WAIT="${SMOOTHBENCH_SLURM_KILLWAIT:-30}"   # slurm.conf KillWait (SLURM's default)
PROCTRACK="${SMOOTHBENCH_SLURM_PROCTRACK:-auto}"   # cgroup | linuxproc | pgid | auto
CLUSTER=smoothbench
NODE=localhost
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
# start order; `stop` goes the other way
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

usage() {
    cat <<EOF
Usage: $(basename "$0") COMMAND [OPTIONS]

A single-node SLURM 22.05 test cluster (munge + MariaDB + slurmdbd + slurmctld +
slurmd) on 127.0.0.1, for trying the SLURM profile on one machine. Needs root.

Commands:
  start [--gpus N]  install missing Debian packages (${PACKAGES[*]}),
                    write the configs and start the daemons; prints each step's time.
                    --gpus N declares N fake GPUs (Gres=gpu:N; character devices with
                    /dev/null's numbers), so that 'sbatch --gpus=1' jobs schedule.
                    A second start starts only what is not running (e.g. after a
                    failed start); changing --gpus needs a stop first.
  stop              cancel this cluster's jobs, then stop exactly the processes that
                    start started (recorded PIDs). Removes no files but the
                    /etc/slurm/slurm.conf link that start made (if it did).
  status            which daemons run, plus sinfo/squeue when slurmctld is up
                    (exit status 0 when at least one of them runs)
  env               print the shell line that points SLURM clients here:
                        eval "\$($(basename "$0") env)"
  -h, --help        this text

Partitions: 'cpu' (default) and 'gpu', both the one node 'localhost' with the
machine's real CPUs and memory (slurmd -C). Accounting via slurmdbd, so sacct works.

Environment:
  SMOOTHBENCH_SLURM_STATE      state folder (configs, logs, database, PIDs) [$STATE]
  SMOOTHBENCH_SLURM_PORT_BASE  first of 4 loopback ports (ctld, slurmd, dbd, MariaDB)
                               [$PORT_BASE]
  SMOOTHBENCH_SLURM_KILLWAIT   slurm.conf KillWait: seconds between SIGTERM and
                               SIGKILL when a job is cancelled [$KILL_WAIT]
  SMOOTHBENCH_SLURM_PROCTRACK  cgroup, linuxproc, pgid or auto (cgroup when cgroup v1
                               freezer groups can be made, else linuxproc) [$PROCTRACK]
                               (proctrack/cgroup leaves its empty groups slurm_localhost
                               under /sys/fs/cgroup/*; stop does not remove them)
EOF
}

# ------------------------------------------------------------------ small helpers

log() { printf '%s\n' "$*" >&2; }
die() { log "slurm-testcluster: error: $*"; exit 1; }

now() { date +%s.%N; }
# seconds between two `now` stamps, one decimal
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# timed NAME CMD...: run CMD, then print how long it took
timed() {
    local name=$1 t0 t1
    shift
    t0=$(now)
    "$@"
    t1=$(now)
    printf '  %-28s %6s s\n' "$name" "$(elapsed "$t0" "$t1")" >&2
}

# wait_for SECONDS DAEMON CMD...: poll CMD every 0.2 s until it succeeds; fail at
# once if our process DAEMON has exited meanwhile (its log says why)
wait_for() {
    local timeout=$1 daemon=$2 deadline
    shift 2
    deadline=$(($(date +%s) + timeout))
    until "$@" >/dev/null 2>&1; do
        if ! our_pid "$daemon" >/dev/null; then
            log "$daemon exited; see $STATE/log/$daemon.out and $STATE/log/$daemon.log"
            return 1
        fi
        if (($(date +%s) >= deadline)); then
            log "timed out after ${timeout}s waiting for $daemon: $* (logs: $STATE/log/)"
            return 1
        fi
        sleep 0.2
    done
}

# "STARTTIME STATE" of a process: its start time (clock ticks since boot, field 22 of
# /proc/PID/stat) and state letter (field 3; Z = exited, not yet reaped). The command
# name (field 2) may contain spaces, so fields are counted after its last ')'.
proc_start_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    local -a fields
    read -ra fields <<<"${stat##*) }"
    echo "${fields[19]} ${fields[0]}"
}

proc_start() {
    local start_state
    start_state=$(proc_start_state "$1") || return 1
    echo "${start_state% *}"
}

pidfile() { echo "$STATE/pids/$1"; }

# PID of daemon NAME if it is running and is the very process we started; else fail
our_pid() {
    local file pid start
    file=$(pidfile "$1")
    [[ -r $file ]] || return 1
    read -r pid start <"$file" || return 1
    [[ -n $pid && -n $start ]] || return 1
    # same start time (not a reused PID) and not a zombie (exited already)
    [[ $(proc_start_state "$pid") == "$start "[!Z] ]] || return 1
    echo "$pid"
}

# launch NAME CMD...: start CMD in the background as daemon NAME, record its PID.
# setsid detaches it from our terminal (no SIGINT/SIGHUP from it). As this shell's
# background jobs are not process-group leaders, setsid does not fork: $! is the
# daemon itself.
launch() {
    local name=$1 pid start
    shift
    SMOOTHBENCH_SLURM_DAEMON="$STATE" SLURM_CONF="$STATE/etc/slurm.conf" \
        setsid "$@" </dev/null >>"$STATE/log/$name.out" 2>&1 &
    pid=$!
    start=$(proc_start "$pid") || die "$name exited at once; see $STATE/log/$name.out"
    echo "$pid $start" >"$(pidfile "$name")"
}

# ------------------------------------------------------------------ packages

packages_missing() {
    local p missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    echo "${missing[*]}"
}

install_packages() {
    local missing guard=""
    missing=$(packages_missing)
    if [[ -z $missing ]]; then
        log "  packages already installed"
        return
    fi
    log "  installing: $missing"
    # Without systemd, package scripts start services through invoke-rc.d; a
    # policy-rc.d that exits 101 forbids that (we start our own daemons). Only
    # created when there is none, and removed again.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$guard"
        chmod 755 "$guard"
    fi
    # shellcheck disable=SC2086  # $missing is a list of package names
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            $missing >"$STATE/log/apt.out" 2>&1; }; then
        [[ -n $guard ]] && rm -f "$guard"
        die "apt-get failed; see $STATE/log/apt.out"
    fi
    [[ -n $guard ]] && rm -f "$guard"
    return 0
}

# ------------------------------------------------------------------ configuration

# proctrack/cgroup (what real clusters use) when this machine lets us make cgroup v1
# freezer groups; else proctrack/linuxproc. They differ in what a cancelled job's
# processes receive: see tools/slurm-notes.md.
choose_proctrack() {
    local probe=/sys/fs/cgroup/freezer/smoothbench-probe.$$
    if [[ $PROCTRACK != auto ]]; then
        echo "$PROCTRACK"
    elif mkdir "$probe" 2>/dev/null && rmdir "$probe"; then
        echo cgroup
    else
        echo linuxproc
    fi
}

# The node line: what slurmd detects on this machine (CPUs, sockets, cores, threads,
# memory), renamed to our node and bound to 127.0.0.1.
node_hardware() {
    local line
    line=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
    [[ $line == NodeName=* ]] || die "unexpected 'slurmd -C' output: $line"
    echo "${line#NodeName=* }"
}

# write_if_changed FILE: stdin -> FILE, only when the content differs
write_if_changed() {
    local file=$1 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$file"
    fi
}

write_configs() {
    local gpus=$1 hw gres_line="" ctld_port=$PORT_BASE slurmd_port=$((PORT_BASE + 1))
    local dbd_port=$((PORT_BASE + 2)) db_port=$((PORT_BASE + 3)) major minor i def_mem proctrack
    hw=$(node_hardware)
    proctrack=$(choose_proctrack)
    def_mem=$(($(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw") / $(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")))
    mkdir -p "$STATE"/{etc,log,pids,munge,mysql,slurmctld,slurmd,dev}
    chmod 700 "$STATE/munge"

    # munge key, made once
    if [[ ! -s $STATE/munge/munge.key ]]; then
        dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 400 "$STATE/munge/munge.key"
    # database password of the 'slurm' MariaDB user, made once
    if [[ ! -s $STATE/etc/db.password ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/etc/db.password")
    fi

    # fake GPUs: character devices with /dev/null's major:minor (slurmd only checks
    # that File= is a character device; nothing ever opens them)
    if ((gpus > 0)); then
        major=$((16#$(stat -c %t /dev/null)))
        minor=$((16#$(stat -c %T /dev/null)))
        for ((i = 0; i < gpus; i++)); do
            [[ -c $STATE/dev/gpu$i ]] || mknod "$STATE/dev/gpu$i" c "$major" "$minor"
        done
        gres_line=" Gres=gpu:$gpus"
        echo "NodeName=$NODE Name=gpu File=$STATE/dev/gpu[0-$((gpus - 1))]" |
            write_if_changed "$STATE/etc/gres.conf"
    else
        echo "# no GPUs (start --gpus N declares N fake ones)" |
            write_if_changed "$STATE/etc/gres.conf"
    fi

    # proctrack/cgroup needs cgroup.conf (cgroup v1 here: its freezer finds every
    # process of a job, also those whose parent died)
    write_if_changed "$STATE/etc/cgroup.conf" <<EOF
# Written by tools/slurm-testcluster.sh (read only with proctrack/cgroup)
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF

    write_if_changed "$STATE/etc/slurm.conf" <<EOF
# Written by tools/slurm-testcluster.sh: a one-node test cluster. Do not edit; rerun
# 'start' (after 'stop') with other options instead.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/log/slurmctld.pid
SlurmdPidFile=$STATE/log/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# how a job's processes are found (to signal/kill them): see SMOOTHBENCH_SLURM_PROCTRACK
ProctrackType=proctrack/$proctrack
TaskPlugin=task/none
# default memory of a job that asks for none: its CPUs' share of the node
DefMemPerCPU=$def_mem
MpiDefault=none
ReturnToService=2
KillWait=$KILL_WAIT
# scheduling: cores and memory are consumable, GPUs via GRES (--gpus needs cons_tres)
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# accounting through slurmdbd, so that sacct answers
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
# with auth/munge this is the munge socket used towards slurmdbd (AuthInfo is not)
AccountingStoragePass=$STATE/munge/munge.socket
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
NodeName=$NODE NodeAddr=127.0.0.1 $hw$gres_line State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF

    (umask 077 && write_if_changed "$STATE/etc/slurmdbd.conf") <<EOF
# Written by tools/slurm-testcluster.sh
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
DebugLevel=info
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/log/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$(cat "$STATE/etc/db.password")
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$STATE/etc/slurmdbd.conf"   # slurmdbd refuses a readable one
    echo "$gpus" >"$STATE/etc/gpus"
}

# ------------------------------------------------------------------ the daemons

munge_ok() { munge -n -S "$STATE/munge/munge.socket" | unmunge -S "$STATE/munge/munge.socket"; }

start_munged() {
    # --force: the state folder may sit below a world-writable /tmp
    launch munged munged --foreground --force \
        --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
        --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed" \
        --log-file="$STATE/log/munged.log"
    wait_for 20 munged munge_ok
}

mysql_client() { mariadb --no-defaults --socket="$STATE/mysql/mysqld.sock" -u root "$@"; }

start_mariadbd() {
    local data=$STATE/mysql/data
    # a data folder without our marker is a half-made one (failed start): make anew
    if [[ ! -f $STATE/mysql/initialised ]]; then
        rm -rf "$data"
        mariadb-install-db --no-defaults --datadir="$data" --user=root \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$STATE/log/mariadb-install-db.out" 2>&1 ||
            die "mariadb-install-db failed; see $STATE/log/mariadb-install-db.out"
    fi
    # --no-defaults: ignore /etc/mysql; loopback only; InnoDB settings as the SLURM
    # accounting docs recommend
    launch mariadbd mariadbd --no-defaults --user=root --datadir="$data" \
        --socket="$STATE/mysql/mysqld.sock" --pid-file="$STATE/mysql/mysqld.pid" \
        --bind-address=127.0.0.1 --port=$((PORT_BASE + 3)) --skip-name-resolve \
        --log-error="$STATE/log/mariadbd.log" --innodb-buffer-pool-size=128M \
        --innodb-lock-wait-timeout=900 --skip-log-bin
    wait_for 60 mariadbd mysql_client -e 'SELECT 1'
    if [[ ! -f $STATE/mysql/initialised ]]; then
        mysql_client -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1'
                           IDENTIFIED BY '$(cat "$STATE/etc/db.password")';
                         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        touch "$STATE/mysql/initialised"
    fi
}

start_slurmdbd() {
    launch slurmdbd slurmdbd -D
    wait_for 60 slurmdbd sacctmgr -n list cluster
    # register the cluster once (slurmctld reports to it from then on)
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
}

start_slurmctld() {
    launch slurmctld slurmctld -D
    wait_for 60 slurmctld scontrol ping
    wait_for 30 slurmctld sinfo -h
}

node_ready() {
    local state
    state=$(sinfo -h -n "$NODE" -o %T | head -n 1)
    [[ $state == idle* || $state == mixed* || $state == allocated* ]]
}

start_slurmd() {
    launch slurmd slurmd -D -N "$NODE"
    # a node left DOWN/DRAINED by an earlier run (e.g. killed slurmd) is resumed
    sleep 1
    if sinfo -h -n "$NODE" -o %T | grep -qE 'down|drain'; then
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    fi
    wait_for 60 slurmd node_ready
}

# ------------------------------------------------------------------ /etc/slurm/slurm.conf

# Clients find our cluster through SLURM_CONF, but the SLURM executor's job step
# (snakemake-executor-plugin-slurm-jobstep 0.6) removes SLURM_CONF before its inner
# `srun`, which then only looks at the compiled-in /etc/slurm/slurm.conf. So start
# links that path to our slurm.conf when it is free, and stop removes the link again
# (only if it is still the one start made).
SYSTEM_CONF=/etc/slurm/slurm.conf

link_system_conf() {
    local ours=$STATE/etc/slurm.conf
    if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$ours" ]]; then
        return 0
    fi
    if [[ -L $SYSTEM_CONF ]]; then
        # a link this script made for a cluster that is gone (its state folder deleted, or
        # its daemons killed with the session that started them): stale, replace it
        local target old
        target=$(readlink "$SYSTEM_CONF")
        old=${target%/etc/slurm.conf}
        if [[ ! -e $target ]] || { [[ -f $old/etc/linked ]] && ! pgrep -f -- "$old/" >/dev/null; }; then
            log "  replacing the stale link $SYSTEM_CONF -> $target"
            rm -f "$SYSTEM_CONF"
        fi
    fi
    if [[ -e $SYSTEM_CONF || -L $SYSTEM_CONF ]]; then
        log "  WARNING: $SYSTEM_CONF exists and is not ours: left alone. Plain sbatch"
        log "  works with SLURM_CONF, but Snakemake's SLURM executor jobs will not."
        return 0
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -s "$ours" "$SYSTEM_CONF"
    echo "$SYSTEM_CONF" >"$STATE/etc/linked"
}

unlink_system_conf() {
    [[ -f $STATE/etc/linked ]] || return 0
    if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$STATE/etc/slurm.conf" ]]; then
        rm -f "$SYSTEM_CONF"
    fi
    rm -f "$STATE/etc/linked"
}

# ------------------------------------------------------------------ commands

export_env() { export SLURM_CONF="$STATE/etc/slurm.conf"; }

start_failed_hint() {
    local rc=$?
    ((rc == 0)) || log "start failed (exit $rc): fix the cause, then run start again (it skips what runs) or stop"
}

# checksum of the written configuration (to notice a change under running daemons)
config_digest() { { cat "$STATE"/etc/*.conf 2>/dev/null || true; } | md5sum; }

cmd_start() {
    local gpus=0 d running=() t0 before
    while (($#)); do
        case $1 in
            --gpus) gpus=${2:?--gpus needs a number}; shift 2 ;;
            --gpus=*) gpus=${1#--gpus=}; shift ;;
            -h | --help) usage; return ;;
            *) die "start: unknown option $1" ;;
        esac
    done
    [[ $gpus =~ ^[0-9]+$ ]] || die "--gpus wants a number, got '$gpus'"
    ((EUID == 0)) || die "start needs root (daemons run as root; apt-get)"
    t0=$(now)
    mkdir -p "$STATE/log" "$STATE/pids"
    export_env
    # on any failure below (set -e), say how to go on
    trap start_failed_hint EXIT
    log "slurm-testcluster: state folder $STATE"

    for d in "${DAEMONS[@]}"; do
        if our_pid "$d" >/dev/null; then running+=("$d"); fi
    done
    if ((${#running[@]})) && [[ -f $STATE/etc/gpus && $(cat "$STATE/etc/gpus") != "$gpus" ]]; then
        die "running (${running[*]}) with --gpus $(cat "$STATE/etc/gpus"); stop first to change it"
    fi

    timed "packages" install_packages
    before=$(config_digest)
    timed "configs" write_configs "$gpus"
    if ((${#running[@]})) && [[ $(config_digest) != "$before" ]]; then
        die "the configuration changed while ${running[*]} run(s): stop, then start"
    fi
    timed "link $SYSTEM_CONF" link_system_conf
    for d in "${DAEMONS[@]}"; do
        if our_pid "$d" >/dev/null; then
            log "  $d already running (pid $(our_pid "$d"))"
        else
            timed "$d" "start_$d"
        fi
    done
    printf '  %-28s %6s s\n' "start, total" "$(elapsed "$t0" "$(now)")" >&2
    log "ready: eval \"\$($0 env)\"; sinfo"
    sinfo
}

# stop_daemon NAME: SIGTERM our process, SIGKILL after 30 s; no-op when not running
stop_daemon() {
    local name=$1 pid i
    if ! pid=$(our_pid "$name"); then
        rm -f "$(pidfile "$name")"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        our_pid "$name" >/dev/null || break
        sleep 0.2
    done
    if our_pid "$name" >/dev/null; then
        log "  $name (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$(pidfile "$name")"
}

# PIDs of helper processes our daemons started (slurmstepd, slurmscriptd), found by
# the marker variable that only our daemons were given
our_helpers() {
    local env_file pid
    for env_file in /proc/[0-9]*/environ; do
        pid=${env_file#/proc/}
        pid=${pid%/environ}
        [[ $pid == "$$" ]] && continue
        # (processes may vanish or be unreadable meanwhile: ignore those)
        if { tr '\0' '\n' <"$env_file"; } 2>/dev/null | grep -qxF "SMOOTHBENCH_SLURM_DAEMON=$STATE"; then
            echo "$pid"
        fi
    done
}

cancel_jobs() {
    local jobs i
    our_pid slurmctld >/dev/null || return 0
    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
    [[ -n ${jobs// /} ]] || return 0
    log "  cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    # wait for them to leave the node (KillWait, then SIGKILL)
    for ((i = 0; i < (KILL_WAIT + 20) * 5; i++)); do
        [[ -z $(squeue -h -o %A 2>/dev/null) ]] && return 0
        sleep 0.2
    done
    log "  jobs still listed after $((KILL_WAIT + 20)) s: $(squeue -h -o '%A %T' | tr '\n' ' ')"
}

cmd_stop() {
    local t0 i d leftovers
    t0=$(now)
    [[ -d $STATE ]] || { log "nothing to stop: no $STATE"; return 0; }
    export_env
    timed "cancel jobs" cancel_jobs
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        d=${DAEMONS[i]}
        if our_pid "$d" >/dev/null; then
            timed "stop $d" stop_daemon "$d"
        else
            rm -f "$(pidfile "$d")"
        fi
    done
    unlink_system_conf
    # helpers our daemons forked (e.g. a slurmstepd whose job would not die)
    leftovers=$(our_helpers | tr '\n' ' ')
    if [[ -n ${leftovers// /} ]]; then
        log "  stopping leftover helpers of our daemons: $leftovers"
        # shellcheck disable=SC2086
        kill -TERM $leftovers 2>/dev/null || true
        sleep 2
        leftovers=$(our_helpers | tr '\n' ' ')
        # shellcheck disable=SC2086
        [[ -n ${leftovers// /} ]] && kill -KILL $leftovers 2>/dev/null || true
    fi
    printf '  %-28s %6s s\n' "stop, total" "$(elapsed "$t0" "$(now)")" >&2
}

cmd_status() {
    local d pid any=1
    export_env
    log "state folder: $STATE"
    for d in "${DAEMONS[@]}"; do
        if pid=$(our_pid "$d"); then
            printf '  %-10s running (pid %s)\n' "$d" "$pid"
            any=0
        else
            printf '  %-10s not running\n' "$d"
        fi
    done
    if our_pid slurmctld >/dev/null; then
        sinfo
        squeue
    fi
    return $any
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
        start) cmd_start "$@" ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) echo "export SLURM_CONF=$STATE/etc/slurm.conf" ;;
        -h | --help | help) usage ;;
        "") usage >&2; exit 2 ;;
        *) log "unknown command: $cmd"; usage >&2; exit 2 ;;
    esac
}

main "$@"
