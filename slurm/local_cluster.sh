#!/usr/bin/env bash
# local_cluster.sh - throw-away Slurm cluster on ONE machine, as root, without systemd:
# munged + slurmctld + N slurmd ("virtual nodes" node1..nodeN, one port each),
# optionally slurmdbd + a private MariaDB so that `sacct` works (submitit polls sacct).
#
#   local_cluster.sh up       install (if needed), configure, start, wait until all nodes are idle
#   local_cluster.sh down     cancel jobs, stop every daemon this script started, by PID
#   local_cluster.sh status
#
# Several clusters can run side by side (two test runs, a test run and yours): each one named by
# SLURM_LOCAL_NAME has its own config ($DIR/etc/slurm.conf: point the Slurm commands at it with
# SLURM_CONF, which `up` prints), state directory, ports and cluster name, and `down` stops only its own
# daemons. Without a name it is the machine's default cluster (/etc/slurm/slurm.conf, which the Slurm
# commands read without SLURM_CONF). What they share is counted in a registry (/run/local-slurm): munged
# and the node names in /etc/hosts go when the last cluster goes down.
#
# Env knobs:
#   SLURM_LOCAL_NAME=         a private cluster's name (lowercase letters and digits, e.g. test12345)
#   SLURM_LOCAL_NODES=2       number of virtual nodes; 1 => one node named after `hostname -s`
#   SLURM_LOCAL_CPUS=$(nproc) CPUs advertised per virtual node (oversubscribing the host is fine)
#   SLURM_LOCAL_DIR=/tmp/local-slurm   state, spool, logs, pid files (named: /tmp/local-slurm-NAME)
#   SLURM_LOCAL_ACCOUNTING=0  1 => also slurmdbd + MariaDB (sacct, real job states in submitit);
#                             the default cluster only (one MariaDB socket and slurmdbd port per machine)
#   SLURM_LOCAL_GPUS=0        N => advertise N fake GPUs per node, so --gres=gpu:N /
#                             --gpus-per-node=N jobs get scheduled (fake /dev/null-like device files;
#                             Slurm sets CUDA_VISIBLE_DEVICES, but there is no GPU behind it)
#   SLURM_LOCAL_PARTITION=debug  name of the (default) partition, e.g. the one slurm/train.sh asks for
#   SLURM_LOCAL_FEATURES=     node features, e.g. "volta32gb" so that --constraint=volta32gb is accepted
set -euo pipefail

NODES=${SLURM_LOCAL_NODES:-2}
CPUS=${SLURM_LOCAL_CPUS:-$(nproc)}
NAME=${SLURM_LOCAL_NAME:-}
ACCT=${SLURM_LOCAL_ACCOUNTING:-0}
GPUS=${SLURM_LOCAL_GPUS:-0}
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
FEATURES=${SLURM_LOCAL_FEATURES:-}
if [ -n "$NAME" ]; then
  if ! [[ "$NAME" =~ ^[a-z][a-z0-9]{0,29}$ ]] || [ "$NAME" = localci ]; then
    echo "local_cluster.sh: SLURM_LOCAL_NAME=$NAME: expected lowercase letters and digits (not localci)" >&2; exit 2
  fi
  if [ "$ACCT" = 1 ]; then
    echo "local_cluster.sh: SLURM_LOCAL_ACCOUNTING=1 is for the default cluster only (no SLURM_LOCAL_NAME)" >&2
    exit 2
  fi
  DIR=${SLURM_LOCAL_DIR:-/tmp/local-slurm-$NAME}
  CONF=$DIR/etc/slurm.conf
  CLUSTER=$NAME
else
  DIR=${SLURM_LOCAL_DIR:-/tmp/local-slurm}
  CONF=/etc/slurm/slurm.conf
  CLUSTER=localci
fi
export SLURM_CONF=$CONF             # this script's own sinfo / scontrol / squeue talk to this cluster only
DBD_CONF=/etc/slurm/slurmdbd.conf
HOST=$(hostname -s)
MANIFEST_NAME=started.pids          # "<name> <pidfile>" for each daemon this script started
REGISTRY=${SLURM_LOCAL_REGISTRY:-/run/local-slurm}   # slot-<n>: the DIR of a cluster using slot n; lock
SLOTS=5                             # slot 0: the default cluster; 1..4: named ones

log() { echo "[local_cluster $(date +%T)] $*" >&2; }

node_names() { if [ "$NODES" -eq 1 ]; then echo "$HOST"; else seq -f 'node%g' 1 "$NODES"; fi; }

wait_for() {  # wait_for <tenths-of-seconds> <command...>
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

install_pkgs() {
  local want="slurmctld slurmd slurm-client munge"
  [ "$ACCT" = 1 ] && want="$want slurmdbd mariadb-server"
  local missing=""
  for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  log "apt-get install$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No systemd here: the postinst scripts are not allowed to start the services (policy-rc.d), fine.
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $missing >/dev/null
}

started() { echo "$1 $2" >> "$DIR/$MANIFEST_NAME"; }

locked() {  # locked <command...>: run it holding the registry's lock (one cluster's bring-up or take-down at a time)
  install -d -m 0755 "$REGISTRY"
  ( flock -w 600 9 || { log "no lock on $REGISTRY/lock after 600 s"; exit 1; }; "$@" ) 9> "$REGISTRY/lock"
}

slot_owner_alive() {  # slot_owner_alive <slot file>: its cluster's slurmctld runs, or its bring-up is recent
  local dir pidf
  dir=$(cat "$1" 2>/dev/null) || return 1
  pidf=$dir/slurmctld.pid
  if [ -f "$pidf" ]; then alive "$(cat "$pidf")"; return; fi
  [ -n "$(find "$1" -mmin -10 2>/dev/null)" ]  # claimed, slurmctld not started yet: a bring-up under way
}

port_free() { ! (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

claim_slot() {  # (under the lock) slot 0 for the default cluster, the first free of 1.. for a named one -> $SLOT
  local s first=1 last=$((SLOTS - 1)) f p
  [ -z "$NAME" ] && first=0 last=0
  for s in $(seq "$first" "$last"); do
    f=$REGISTRY/slot-$s
    if [ -f "$f" ] && [ "$(cat "$f")" != "$DIR" ] && slot_owner_alive "$f"; then continue; fi
    for p in $(slot_ports "$s"); do port_free "$p" || { log "slot $s: port $p in use"; continue 2; }; done
    echo "$DIR" > "$f"; SLOT=$s; return 0
  done
  log "no free cluster slot in $REGISTRY (${first}..${last}): $(cat "$REGISTRY"/slot-* 2>/dev/null | tr '\n' ' ')"
  return 1
}

slot_ports() {  # the TCP ports of slot $1: slurmctld, then one per node (the default's are Slurm's defaults)
  if [ "$1" -eq 0 ]; then echo 6817; seq 17001 $((17000 + NODES)); [ "$NODES" -eq 1 ] && echo 6818; return 0; fi
  echo $((17000 + 100 * $1 + 99)); seq $((17001 + 100 * $1)) $((17000 + 100 * $1 + NODES))
}

release_slot() {  # (under the lock) drop our slot; the last cluster to go also stops munged and drops the hosts
  local f
  for f in "$REGISTRY"/slot-*; do [ -f "$f" ] && [ "$(cat "$f")" = "$DIR" ] && rm -f "$f"; done
  for f in "$REGISTRY"/slot-*; do
    [ -f "$f" ] || continue
    if slot_owner_alive "$f"; then log "$(cat "$f") still runs: munged and /etc/hosts stay"; return 0; fi
    rm -f "$f"  # a cluster that died without `down`
  done
  [ -f "$REGISTRY/munged" ] && stop_pid munged "$(cat "$REGISTRY/munged")" && rm -f "$REGISTRY/munged"
  # drop the virtual node names again (rewrite in place: /etc/hosts may be a bind mount)
  if grep -q '# local_cluster.sh$' /etc/hosts; then
    grep -v '# local_cluster.sh$' /etc/hosts > "$REGISTRY/hosts.tmp" || true
    cat "$REGISTRY/hosts.tmp" > /etc/hosts; rm -f "$REGISTRY/hosts.tmp"
  fi
}

start_munge() {  # (under the lock) one munged for all the clusters: recorded in the registry, not in our manifest
  local pidf=/run/munge/munged.pid
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running (pid $(cat "$pidf")), reusing it"; return 0
  fi
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key   # postinst normally made it
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
  # daemonizes, writes $pidf; fd 9 (the registry's lock, held by `locked`) closed: munged closes only 0-2, and an
  # inherited lock would stay held as long as munged runs (every later `locked` call would wait for it)
  runuser -u munge -- /usr/sbin/munged 9>&-
  echo "$pidf" > "$REGISTRY/munged"
  wait_for 50 sh -c 'munge -n | unmunge'
}

write_conf() {
  local mem_mib per_node_mem topo
  mem_mib=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
  per_node_mem=$(( mem_mib * 8 / 10 / NODES ))
  topo="CPUs=${CPUS} Boards=1 SocketsPerBoard=1 CoresPerSocket=${CPUS} ThreadsPerCore=1 RealMemory=${per_node_mem}"
  # The state dir is wiped on every `up`, so job ids would restart at 1 and collide with
  # leftovers keyed by job id (submitit's folder/%j/..._result.pkl is then returned as the
  # "result" of the new job!). Start each bring-up at a clock-derived id instead:
  # a new block of 20,000 ids every 10 s, cycle of ~8.3 hours, below MaxJobId (67,043,328). Within a block each
  # slot starts 4,000 ids apart: jobs derive MASTER_PORT from the id modulo 20,000 (slurm/train.sh,
  # runtime/distributed.py), so the jobs of two clusters side by side never pick the same port.
  local first_id=$(( ($(date +%s) / 10 % 3000) * 20000 + SLOT * 4000 + 1000 ))
  local ports
  ports=($(slot_ports "$SLOT"))
  mkdir -p "$(dirname "$CONF")"
  {
    cat <<EOF
# generated by local_cluster.sh: single-machine test cluster (slot ${SLOT} of ${REGISTRY})
ClusterName=${CLUSTER}
FirstJobId=${first_id}
SlurmctldHost=${HOST}(127.0.0.1)
SlurmctldPort=${ports[0]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again only after cred_expire seconds (default 120)
AuthInfo=cred_expire=5
MpiDefault=none
# no cgroups: track processes through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# default 60 s / 30 s: a requeued or held-back job would wait that long
SchedulerParameters=sched_interval=2,bf_interval=1
ReturnToService=2
# allow advertising more CPUs/memory than the host has (SLURM_LOCAL_CPUS > nproc)
SlurmdParameters=config_overrides
KillWait=5
MinJobAge=600
JobRequeue=1
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool/%n
SlurmctldPidFile=${DIR}/slurmctld.pid
SlurmdPidFile=${DIR}/slurmd-%n.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
EOF
    if [ "$ACCT" = 1 ]; then
      echo "AccountingStorageType=accounting_storage/slurmdbd"
      echo "AccountingStorageHost=127.0.0.1"
    else
      echo "AccountingStorageType=accounting_storage/none"
    fi
    if [ "$GPUS" -gt 0 ]; then
      echo "GresTypes=gpu"
      topo="$topo Gres=gpu:${GPUS}"
    fi
    [ -n "$FEATURES" ] && topo="$topo Features=${FEATURES}"
    if [ "$NODES" -eq 1 ]; then
      echo "NodeName=${HOST} NodeAddr=127.0.0.1 Port=${ports[-1]} ${topo} State=UNKNOWN"
    else
      # several slurmd on one host: same NodeHostname, one port each (slurmd -N <name>)
      echo "NodeName=node[1-${NODES}] NodeHostname=${HOST} NodeAddr=127.0.0.1 Port=[${ports[1]}-${ports[-1]}] ${topo} State=UNKNOWN"
    fi
    echo "PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } > "$CONF"
  if [ "$GPUS" -gt 0 ]; then
    # count-only "Name=gpu Count=N" is reported as 0 by slurmd here; fake device files work:
    # character devices 1,3 (same as /dev/null), one per GPU, shared by all virtual nodes
    mkdir -p "$DIR/fakegpu"
    for i in $(seq 0 $((GPUS - 1))); do
      [ -c "$DIR/fakegpu/nvidia$i" ] || mknod -m 666 "$DIR/fakegpu/nvidia$i" c 1 3
    done
    echo "Name=gpu File=$DIR/fakegpu/nvidia[0-$((GPUS - 1))]" > "$(dirname "$CONF")/gres.conf"
  else
    rm -f "$(dirname "$CONF")/gres.conf"     # read from beside slurm.conf
  fi
  # node names must resolve: jobs use MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -1)
  local missing=""
  for n in $(node_names); do getent hosts "$n" >/dev/null || missing="$missing $n"; done
  if [ -n "$missing" ]; then
    echo "127.0.0.1${missing}  # local_cluster.sh" >> /etc/hosts
    log "added to /etc/hosts:${missing}"
  fi
}

start_accounting() {
  local my="$DIR/mysql"
  install -d -o mysql -g mysql "$my" /run/mysqld
  if [ ! -d "$my/data/mysql" ]; then                # 3-6 s, so keep it between runs
    mariadb-install-db --user=mysql --datadir="$my/data" --skip-test-db \
      --auth-root-authentication-method=socket > "$DIR/log/mariadb-install.log" 2>&1
  fi
  # no TCP at all: slurmdbd reaches it on the default socket as OS root (unix_socket auth)
  setsid mariadbd --user=mysql --datadir="$my/data" --socket=/run/mysqld/mysqld.sock \
    --pid-file="$my/mariadbd.pid" --log-error="$my/mariadb.log" --skip-networking \
    --innodb-buffer-pool-size=64M < /dev/null > /dev/null 2>&1 &
  wait_for 300 mariadb -e 'select 1' || { log "mariadb did not come up"; tail -n 20 "$my/mariadb.log" >&2; return 1; }
  started mariadbd "$my/mariadbd.pid"
  # fresh accounting every time: job ids restart at 1 with a fresh slurmctld state, and
  # old sacct records with the same ids would mislead submitit
  mariadb -e 'DROP DATABASE IF EXISTS slurm_acct_db'
  cat > "$DBD_CONF" <<EOF
AuthType=auth/munge
DbdHost=${HOST}
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=${DIR}/slurmdbd.pid
LogFile=${DIR}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DBD_CONF"
  slurmdbd                                         # daemonizes
  started slurmdbd "$DIR/slurmdbd.pid"
  wait_for 300 sacctmgr -n list cluster || { log "slurmdbd does not answer"; tail -n 20 "$DIR/log/slurmdbd.log" >&2; return 1; }
}

wait_idle() {  # up to 120 s: slurmd registers slowly on a loaded 2-core machine
  local want=$1 got=0 deadline=$((SECONDS + 120))
  while [ "$SECONDS" -lt "$deadline" ]; do
    got=$(sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | wc -l || true)
    [ "$got" -ge "$want" ] && return 0
    sleep 0.2
  done
  log "only $got/$want nodes idle after 120 s"; sinfo -N -l >&2 || true
  tail -n 20 "$DIR"/log/*.log >&2 || true
  return 1
}

up() {
  local t0=$SECONDS
  locked install_pkgs                              # two bring-ups at once: one apt-get at a time
  if [ -f "$CONF" ] && scontrol ping 2>/dev/null | grep -q 'is UP'; then
    log "the slurmctld of $CONF already answers; run '$0 down' first"; return 1
  fi
  rm -rf "$DIR/state" "$DIR/spool" "$DIR/$MANIFEST_NAME"
  mkdir -p "$DIR"/{state,log,spool}
  for n in $(node_names); do mkdir -p "$DIR/spool/$n"; done
  locked prepare
  SLOT=$(sed -n 's/^# generated by local_cluster.sh: .*(slot \([0-9]*\) of .*/\1/p' "$CONF")
  [ "$ACCT" = 1 ] && start_accounting
  slurmctld -i -f "$CONF"                          # daemonizes, writes SlurmctldPidFile
  started slurmctld "$DIR/slurmctld.pid"
  for n in $(node_names); do
    if [ "$NODES" -eq 1 ]; then slurmd -f "$CONF"; else slurmd -f "$CONF" -N "$n"; fi    # daemonizes
    started slurmd "$DIR/slurmd-$n.pid"
  done
  wait_idle "$NODES"
  log "cluster $CLUSTER up in $((SECONDS - t0)) s (slot $SLOT): $(sinfo -h -o '%D nodes %T %N' | tr '\n' ' ')"
  [ -n "$NAME" ] && log "its commands: export SLURM_CONF=$CONF"
  return 0
}

prepare() {  # (under the lock) a slot, munged, the config and the node names
  claim_slot
  start_munge
  write_conf
}

alive() {  # a zombie counts as gone (PID 1 may reap orphans late)
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop_pid() {  # stop_pid <name> <pidfile>: SIGTERM, wait up to 10 s, then SIGKILL
  local name=$1 f=$2 p
  [ -f "$f" ] || { log "$name: no pid file $f"; return 0; }
  p=$(cat "$f")
  if alive "$p"; then
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
    if alive "$p"; then log "$name ($p) still alive after 10 s, SIGKILL"; kill -KILL "$p" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

run_dir_from_conf() {  # the dir the running cluster was started with, whatever the env says now
  if [ -f "$CONF" ] && grep -q '^SlurmctldPidFile=' "$CONF"; then
    DIR=$(dirname "$(sed -n 's/^SlurmctldPidFile=//p' "$CONF")")
  fi
}

down() {
  run_dir_from_conf
  # slurmstepd and job processes outlive slurmd: cancel jobs and let them drain first
  local jobs
  if jobs=$(squeue -h -o %i 2>/dev/null) && [ -n "$jobs" ]; then
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 300); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  if [ -f "$DIR/$MANIFEST_NAME" ]; then
    # stop in reverse start order: slurmd..., slurmctld, slurmdbd, mariadbd (munged: the registry's, below)
    tac "$DIR/$MANIFEST_NAME" | while read -r name pidf; do stop_pid "$name" "$pidf"; done
    rm -f "$DIR/$MANIFEST_NAME"
  else
    log "nothing recorded in $DIR/$MANIFEST_NAME"
  fi
  locked release_slot
  log "stopped $CLUSTER"
}

status() {
  run_dir_from_conf
  if [ -f "$DIR/$MANIFEST_NAME" ]; then
    while read -r name pidf; do
      p=$(cat "$pidf" 2>/dev/null || echo '?')
      echo "$name pid=$p $(alive "$p" && echo alive || echo dead)"
    done < "$DIR/$MANIFEST_NAME"
  fi
  local f
  for f in "$REGISTRY"/slot-*; do [ -f "$f" ] && echo "${f##*/}: $(cat "$f")"; done
  sinfo -N 2>/dev/null || true
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
