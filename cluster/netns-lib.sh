# Functions of cluster/netns.sh (sourced after common.sh): namespaces, bridge, cgroups, hosts.
# shellcheck shell=bash
BR="${P}br0"
HOST_IP="$SUBNET.1"
CAP="${NETNS_CPU_CAP:-0.5}"
WORKER_CPUS="${NETNS_WORKER_CPUS:-4}"
CG_NAME="$P-netns"
# The head's Ray: no CPUs (the pipeline goes to the worker hosts), its dashboard on the bridge
# (this machine reads Ray's state API there, with the token), every Serve proxy on its own
# host's addresses (loopback and its one bridge address).
export RAY_NUM_CPUS=0 DASHBOARD_HOST="$HEAD_IP" HTTP_HOST=0.0.0.0
# The harness's own JWT key (made by `up`, root only), so that tokens minted for the single-box
# stack are worthless here and the other way round.
[[ -r "$RUN/jwt.env" ]] && JWT_SECRET="$(cat "$RUN/jwt.env")" && export JWT_SECRET

# The code the hosts run: a copy taken by `up`, so that edits to the checkout while the harness
# runs never reach an actor that restarts (a replica would unpickle the old app with new code).
CODE="$RUN/code"
netns_snapshot() {
  local items=(alembic.ini migrations) d
  for d in "$ROOT"/*/; do
    d="$(basename "$d")"
    [[ -f "$ROOT/$d/__init__.py" ]] && items+=("$d")
  done
  rm -rf "$CODE" && mkdir -p "$CODE"
  tar -C "$ROOT" --exclude=__pycache__ --exclude=bench/results -cf - "${items[@]}" | tar -C "$CODE" -xf -
}
code_dir() { if [[ -d "$CODE" ]]; then echo "$CODE"; else echo "$ROOT"; fi; }
# the snapshot first on every host's import path (the venv's editable install points at $ROOT)
export PYTHONPATH="$CODE"

netns_env_lines() {
  local k
  for k in NODE_ADDRESS DATABASE_URL REDIS_URL KAFKA_BOOTSTRAP RAY_ADDRESS HTTP_PORT DASHBOARD_PORT \
    KAFKA_SECURITY_PROTOCOL KAFKA_SASL_MECHANISM KAFKA_USERNAME KAFKA_SSL_CAFILE STACK_TLS \
    METRICS_EXPORT_PORT RAY_CLIENT_SERVER_PORT; do
    printf '%s=%s\n' "$k" "${!k:-}"
  done
  printf 'GATEWAY_URL=http://%s:%s\nDASHBOARD_URL=http://%s:%s\n' \
    "$HEAD_IP" "$HTTP_PORT" "$HEAD_IP" "$DASHBOARD_PORT"
  printf 'CGROUP_KIND=%s\nCGROUP_CPU_DIR=%s\nCGROUP_ACCT_DIR=%s\nRUN_DIR=%s\nCREDENTIALS_FILE=%s\n' \
    "$(cg_kind)" "$(dirname "$(cg_cpu_dir x)")" "$(dirname "$(cg_acct_dir x)")" "$RUN" "$CREDENTIALS_FILE"
}

netns_require() {
  [[ $EUID -eq 0 ]] || die "cluster/netns.sh needs root (network namespaces, bridge, cgroups)"
  command -v ip >/dev/null || die "cluster/netns.sh needs the 'ip' command (apt-get install iproute2)"
  [[ "$FIREWALL" == 0 ]] || command -v nft >/dev/null \
    || die "cluster/netns.sh needs the 'nft' command for its hosts' firewalls (apt-get install nftables; NETNS_FIREWALL=0: none)"
  [[ "$SUBNET" =~ ^(10\.[0-9]+\.[0-9]+|192\.168\.[0-9]+|172\.(1[6-9]|2[0-9]|3[01])\.[0-9]+)$ ]] \
    || die "NETNS_SUBNET=$SUBNET is not the first three octets of a private range"
  owner_file_ok
}

# --- one harness of a prefix per machine ---------------------------------------------------
# The names (namespaces, bridge, cgroups, subnet) are the machine's: a second checkout's harness
# (a fresh clone's `make test`) waits for the first to finish instead of tearing it down.
OWNER="/tmp/$P-netns.owner"
# owner_file_ok -> $OWNER is absent or a plain file of this user's; anything else stops the
# script. /tmp is everyone's: a file or symlink another user put there would name a RUN_DIR that
# `up` then takes down as a dead harness's (netns_take_over removes its data).
owner_file_ok() {
  [[ -e "$OWNER" || -L "$OWNER" ]] || return 0
  if ! { [[ -f "$OWNER" ]] && ours "$OWNER"; }; then
    die "$OWNER is a symlink, not a file, or another user's (uid $(stat -c %u "$OWNER" 2>/dev/null))," \
      "not this machine's harness claim: remove it and run again"
  fi
}
owner_of() { owner_file_ok; cat "$OWNER" 2>/dev/null || true; }
# stale: the claim is older than 2 minutes and nothing of it runs any more: none of its recorded
# pids lives and no process is left in any namespace of the prefix (a harness whose session was
# killed leaves its namespaces, empty, and this file behind).
owner_stale() {
  local run="$1"
  [[ -n "$(find "$OWNER" -mmin -2 2>/dev/null)" ]] && return 1
  ! run_alive "$run" && netns_idle
}
# run_alive RUN -> 0 when a pid the harness of RUN recorded (its head's services and Ray, its
# workers' Ray) is still that process
run_alive() {
  local run="$1" f
  for f in "$run"/pids/*.pid "$run"/w[1-9]/pids/*.pid; do
    # each record as that harness's own scripts read it (pid_alive with its RUN_DIR)
    [[ -s "$f" ]] && (RUN="${f%/pids/*}" && pid_alive "$(basename "$f" .pid)") && return 0
  done
  return 1
}
# netns_idle -> 0 when no process runs in any namespace of the prefix
netns_idle() {
  local h
  for h in $(hosts_up); do
    [[ -z "$(ip netns pids "$(ns_of "$h")" 2>/dev/null)" ]] || return 1
  done
  return 0
}
# netns_take_over RUN -> remove what a dead harness left (its empty namespaces, links, bridge,
# cgroups, data); the logs stay in its RUN_DIR
netns_take_over() {
  log "the harness of $1 is gone (nothing of it runs): removing what it left"
  (RUN="$1" netns_teardown) || true
  rm -f "$OWNER"
}
netns_claim() {
  local start=$SECONDS wait_s="${NETNS_WAIT_S:-600}" owner last=-30
  while ! (set -C && echo "$RUN" >"$OWNER") 2>/dev/null; do
    owner_file_ok # (made by someone else since netns_require looked)
    owner="$(owner_of)"
    [[ "$owner" == "$RUN" ]] && return 0
    if owner_stale "$owner"; then netns_take_over "$owner"; continue; fi
    (( SECONDS - start < wait_s )) \
      || die "the harness of $owner holds $OWNER after ${wait_s}s (NETNS_WAIT_S); not starting"
    (( SECONDS - last >= 30 )) && last=$SECONDS && log "waiting for the harness of $owner to end"
    sleep 5
  done
}
# mine -> 0 when this RUN_DIR's harness owns the names (or nobody does and none exist)
mine() {
  local owner
  owner_file_ok
  owner="$(owner_of)"
  [[ "$owner" == "$RUN" ]] || { [[ -z "$owner" ]] && ! ns_exists "$(ns_of head)"; }
}
require_mine() { mine || die "the harness on this machine is $(owner_of) 's, not this checkout's"; }

ns_of() { if [[ "$1" == head ]]; then echo "$P-head"; else echo "$P-$1"; fi; }
ip_of() { if [[ "$1" == head ]]; then echo "$HEAD_IP"; else echo "$SUBNET.$((10 + ${1#w}))"; fi; }
ns_exists() { [[ -e "/run/netns/$1" ]]; }
hosts_up() { ip netns list | awk '{print $1}' | sed -n "s/^$P-//p"; }

# --- cgroups: v1 cpu (+cpuacct) when mounted, else v2 cpu.max --------------------------------
cg_kind() {
  if [[ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then echo v1
  elif [[ "$(stat -fc %T /sys/fs/cgroup)" == cgroup2fs ]] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then echo v2
  else echo none; fi
}
# the host's cgroup directories: the cpu controller's (quota, throttling), then the one that
# accounts its CPU time (the same directory when cpu and cpuacct share a hierarchy)
cg_cpu_dir() {
  case "$(cg_kind)" in
    v1) echo "/sys/fs/cgroup/cpu/$CG_NAME/$1" ;;
    v2) echo "/sys/fs/cgroup/$CG_NAME/$1" ;;
  esac
}
cg_acct_dir() {
  if [[ "$(cg_kind)" == v1 && ! -f /sys/fs/cgroup/cpu/cpuacct.usage && -d /sys/fs/cgroup/cpuacct ]]
  then echo "/sys/fs/cgroup/cpuacct/$CG_NAME/$1"
  else cg_cpu_dir "$1"; fi
}
cg_dirs() { cg_cpu_dir "$1"; [[ "$(cg_acct_dir "$1")" == "$(cg_cpu_dir "$1")" ]] || cg_acct_dir "$1"; }
# cg_make HOST CORES -> the host's cgroups, with a quota of CORES (0: none, accounting only)
cg_make() {
  local host="$1" cores="$2" kind d quota
  kind="$(cg_kind)"
  [[ "$kind" != none ]] || die "no cgroup cpu controller (neither v1 cpu nor v2 cpu.max)"
  quota="$(awk -v c="$cores" 'BEGIN { printf "%d", c * 100000 }')"
  if [[ "$kind" == v2 ]]; then
    if ! grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control; then
      echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
      : >"$RUN/cgroup-root-cpu" # this harness enabled it: its teardown disables it again
    fi
    mkdir -p "/sys/fs/cgroup/$CG_NAME"
    grep -qw cpu "/sys/fs/cgroup/$CG_NAME/cgroup.subtree_control" \
      || echo +cpu >"/sys/fs/cgroup/$CG_NAME/cgroup.subtree_control"
  fi
  for d in $(cg_dirs "$host"); do mkdir -p "$d"; done
  d="$(cg_cpu_dir "$host")"
  if [[ "$kind" == v1 ]]; then
    echo 100000 >"$d/cpu.cfs_period_us"
    if (( quota > 0 )); then echo "$quota" >"$d/cpu.cfs_quota_us"; else echo -1 >"$d/cpu.cfs_quota_us"; fi
  elif (( quota > 0 )); then echo "$quota 100000" >"$d/cpu.max"
  else echo "max 100000" >"$d/cpu.max"; fi
  echo "$cores" >"$RUN/cap-$host"
}
# cg_root_restore -> the root cgroup's cpu controller disabled again when this harness enabled
# it (cg_make left $RUN/cgroup-root-cpu), once the harness's own cgroups are gone; a refusal
# (another cgroup below the root enabled it meanwhile) is logged, never fatal
cg_root_restore() {
  local mark="$RUN/cgroup-root-cpu" ctl=/sys/fs/cgroup/cgroup.subtree_control
  [[ -e "$mark" ]] || return 0
  if [[ -d "/sys/fs/cgroup/$CG_NAME" ]]; then
    log "root cgroup: cpu controller left enabled while /sys/fs/cgroup/$CG_NAME stays"
    return 0
  fi
  if printf '%s\n' -cpu 2>/dev/null >"$ctl"; then
    log "root cgroup: cpu controller disabled again (this harness had enabled it)"
  else
    log "root cgroup: cpu controller left enabled (another cgroup uses it now)"
  fi
  rm -f "$mark"
}
# netns_teardown -> netns_down (netns-head.sh), then the root cgroup as the harness found it;
# netns_down's status
netns_teardown() {
  local rc=0
  netns_down || rc=$?
  cg_root_restore || true
  return "$rc"
}
cg_pids() { local d; for d in $(cg_dirs "$1"); do cat "$d/cgroup.procs" 2>/dev/null || true; done | sort -un; }
# cg_remove HOST -> the host's cgroup directories removed; 1 (each tried, rmdir's error shown)
# when one stays: a process still in it
cg_remove() {
  local host="$1" d rc=0
  for d in $(cg_dirs "$host"); do
    [[ ! -d "$d" ]] || rmdir "$d" || rc=1
  done
  return "$rc"
}
# cg_usage HOST -> "cpu_seconds throttled_seconds periods_throttled"
cg_usage() {
  local d acct used thr n
  d="$(cg_cpu_dir "$1")"
  [[ -d "$d" ]] || { echo "0 0 0"; return; }
  if [[ "$(cg_kind)" == v1 ]]; then
    acct="$(cg_acct_dir "$1")"
    used="$(cat "$acct/cpuacct.usage")"
    thr="$(awk '$1 == "throttled_time" {print $2}' "$d/cpu.stat")"
    n="$(awk '$1 == "nr_throttled" {print $2}' "$d/cpu.stat")"
    awk -v u="$used" -v t="$thr" -v n="$n" 'BEGIN { printf "%.3f %.3f %d\n", u / 1e9, t / 1e9, n }'
  else
    awk '$1 == "usage_usec" {u=$2} $1 == "throttled_usec" {t=$2} $1 == "nr_throttled" {n=$2}
      END { printf "%.3f %.3f %d\n", u / 1e6, t / 1e6, n }' "$d/cpu.stat"
  fi
}
netns_cpu() {
  local h
  for h in $(hosts_up); do printf '%s %s %s\n' "$h" "$(cg_usage "$h")" "$(cat "$RUN/cap-$h" 2>/dev/null || echo 0)"; done
}

# netns_exec HOST CMD... -> CMD on HOST: the process joins the host's cgroups first, then its
# namespace (`ip netns exec` remounts /sys, which hides the cgroup tree), then execs CMD.
netns_exec() {
  local host="$1" d; shift
  for d in $(cg_dirs "$host"); do echo "$BASHPID" >"$d/cgroup.procs"; done
  cd "$(code_dir)"
  exec ip netns exec "$(ns_of "$host")" "$@"
}
# on HOST ENV... CMD... -> runs CMD there (as netns_exec) and waits for it
on() { (netns_exec "$@"); }
in_head() { (cd "$(code_dir)" && ip netns exec "$(ns_of head)" "$@"); }

# --- network ------------------------------------------------------------------------------
# subnet_routed SUBNET -> 0 when SUBNET.0/24 overlaps a route of `ip -4 route` (its output on
# stdin): a destination inside the /24, or one that holds it (10.0.0.0/8); the default route
# does not count
subnet_routed() {
  awk -v net="$1.0" '
    function num(a,   o) { split(a, o, "."); return ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4] }
    BEGIN { mine = num(net) }
    {
      d = $1
      if (d ~ /^(unicast|unreachable|blackhole|prohibit|throw|local|broadcast|multicast|anycast|nat)$/) d = $2
      if (d !~ /^[0-9]+(\.[0-9]+)*(\/[0-9]+)?$/) next # default, or not a destination
      len = 32
      if (split(d, part, "/") == 2) len = part[2] + 0
      if (len == 0) next # 0.0.0.0/0: the default route written out
      short = len < 24 ? len : 24
      size = 2 ^ (32 - short)
      if (int(num(part[1]) / size) == int(mine / size)) { found = 1; exit }
    }
    END { exit !found }'
}
net_bridge() {
  local routes
  [[ "$(ip -4 -o addr show)" != *" inet $SUBNET."* ]] \
    || die "$SUBNET.0/24 is already in use on this machine (set NETNS_SUBNET)"
  routes="$(ip -4 route)" || die "could not read this machine's routes (ip -4 route)"
  ! subnet_routed "$SUBNET" <<<"$routes" \
    || die "$SUBNET.0/24 overlaps a route of this machine (ip -4 route; set NETNS_SUBNET)"
  ip link add "$BR" type bridge
  ip addr add "$HOST_IP/24" dev "$BR"
  ip link set "$BR" up
}
# net_host HOST -> its namespace, a veth from the bridge, its address, loopback up
net_host() {
  local host="$1" ns link
  ns="$(ns_of "$host")"; link="$P-$host"
  ip link del "$link" 2>/dev/null || true # left by a namespace whose deletion is still under way
  ip netns add "$ns"
  ip link add "$link" type veth peer name eth0 netns "$ns"
  ip link set "$link" master "$BR" up
  ip -n "$ns" addr add "$(ip_of "$host")/24" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  net_firewall "$host"
}
# net_firewall HOST -> the rule set an operator loads on each machine (cluster/firewall.sh),
# with this bridge's subnet as the members and no other port open: every host's inbound traffic
# is dropped but for the stack's ports, so the tests show the pinned ports are all a cluster
# needs (NETNS_FIREWALL=0: none)
net_firewall() {
  [[ "$FIREWALL" != 0 ]] || return 0
  OPEN_PORTS="" "$ROOT/cluster/firewall.sh" "$SUBNET.0/24" | ip netns exec "$(ns_of "$1")" nft -f - \
    || die "$1: its firewall (cluster/firewall.sh) did not load"
}

# --- Ray -----------------------------------------------------------------------------------
# netns_worker I -> worker host wI: namespace, cgroup with the CPU cap, then `make join` there
# (cluster/join.sh, with a RUN_DIR of its own and the head's credentials)
netns_worker() {
  local i="$1" host="w$1" try
  [[ "$i" =~ ^[1-9]$ ]] || die "worker index must be 1..9"
  ns_exists "$(ns_of "$host")" || net_host "$host"
  cg_make "$host" "$CAP"
  mkdir -p "$RUN/$host"
  log "$host: joins from $(ip_of "$host") (cap $CAP cores, $WORKER_CPUS logical CPUs)"
  for try in 1 2; do # a join can time out on a box busy with other work: once more
    # (the URLs derived again there, as on a machine of its own: with its own copy of the CA)
    on "$host" env -u DATABASE_URL -u MIGRATION_DATABASE_URL -u REDIS_URL -u KAFKA_SSL_CAFILE \
      RUN_DIR="$RUN/$host" CREDENTIALS_FILE="$CREDENTIALS_FILE" \
      NODE_ADDRESS="$(ip_of "$host")" WORKER_NUM_CPUS="$WORKER_CPUS" \
      "$ROOT/cluster/join.sh" "$HEAD_IP" >>"$RUN/logs/$host-join.log" 2>&1 && return 0
    log "$host: join failed (try $try; $RUN/$host/logs/ray-worker.out)"
    kill_rest "$host"
    rm -f "$RUN/$host/pids/ray-worker.pid"
  done
  die "$host could not join; see $RUN/logs/$host-join.log"
}
# Ray's state API on the head's dashboard, with the cluster's token (given to curl on stdin:
# a command line is readable by every local user)
ray_state() {
  printf 'Authorization: Bearer %s\n' "${RAY_AUTH_TOKEN:-}" |
    curl -fsS -H @- "http://$HEAD_IP:$DASHBOARD_PORT/api/v0/$1?limit=1000"
}
alive_nodes() {
  ray_state nodes | "$PY" -c '
import json, sys
rows = json.load(sys.stdin)["data"]["result"]["result"]
print(sum(1 for r in rows if r["state"] == "ALIVE"))'
}
# netns_wait_nodes -> until every worker namespace with a running ray has joined (plus the head)
netns_wait_nodes() {
  local want=1 h start=$SECONDS
  for h in $(hosts_up); do
    [[ "$h" != head && -n "$(cg_pids "$h")" ]] && want=$((want + 1))
  done
  until [[ "$(alive_nodes 2>/dev/null)" -ge "$want" ]]; do
    (( SECONDS - start < 120 )) || die "fewer than $want Ray nodes alive after 120s (logs: $RUN/logs/)"
    sleep 1
  done
}

netns_deploy() {
  log "deploy from the head (INVENTORY_SHARDS=${INVENTORY_SHARDS:-1}, PAYMENT_SHARDS=${PAYMENT_SHARDS:-1})"
  in_head "$PY" -m cluster.netns_deploy "$@" >>"$RUN/logs/deploy.log" 2>&1 \
    || { tail -20 "$RUN/logs/deploy.log" >&2; die "deploy failed; see $RUN/logs/deploy.log"; }
  wait_for "gateway /ready on $HEAD_IP:$HTTP_PORT" 180 \
    bash -c "curl -fsS http://$HEAD_IP:$HTTP_PORT/ready | grep -q '\"status\":\"up\"'"
}

netns_kill() {
  local host="w$1" how="$2" pids p
  pids="$(cg_pids "$host")"
  [[ -n "$pids" ]] || die "$host runs nothing"
  if [[ "$how" == raylet ]]; then
    for p in $pids; do [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == raylet ]] && break; p=; done
    [[ -n "$p" ]] || die "no raylet on $host"
    kill -KILL "$p"
    log "$host: raylet (pid $p) SIGKILLed"
  elif [[ "$how" == host ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    log "$host: every process ($(wc -w <<<"$pids")) SIGKILLed"
  else
    die "kill: raylet or host, not '$how'"
  fi
}

# kill_rest HOST -> SIGKILL whatever still runs in the host's cgroups or namespace
kill_rest() {
  local host="$1" pids t=0
  while (( t++ < 50 )); do
    # (`ip netns pids` fails when a process ends while it looks: never fatal here)
    pids="$( { cg_pids "$host"; ip netns pids "$(ns_of "$host")" 2>/dev/null || true; } | sort -un)"
    [[ -n "$pids" ]] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
}
# netns_status I -> `make status` on worker host wI with nothing of this harness's environment
# that names the head: what the join recorded there decides (cluster/join.sh, join.env)
netns_status() { as_operator "w$1" "$ROOT/cluster/services.sh" status; }
# netns_stacks I -> `make stacks` on worker host I, as its operator runs it
netns_stacks() {
  as_operator "w$1" bash -c 'source "$1/cluster/common.sh" && exec "$VENV/bin/orders" stacks' _ "$ROOT"
}
# as_operator HOST CMD... -> CMD on HOST with an operator's environment alone (a PATH, a HOME,
# its RUN_DIR and the head's credentials file): nothing of this harness's settings (its ports,
# shard counts, HTTP_HOST) reaches it, what the join recorded decides
as_operator() {
  local host="$1"
  shift
  on "$host" env -i PATH="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" HOME="${HOME:-/root}" \
    RUN_DIR="$RUN/$host" CREDENTIALS_FILE="$CREDENTIALS_FILE" "$@"
}
# netns_stop_worker I -> `make leave` on it (NETNS_STOP_S=0: SIGKILL at once), then its namespace
# (each step is tried whatever failed before it; 1 when the namespace or a cgroup stays)
netns_stop_worker() {
  local host="w$1" rc=0
  if [[ "${NETNS_STOP_S:-30}" != 0 && -n "$(cg_pids "$host")" ]]; then
    on "$host" env RUN_DIR="$RUN/$host" CREDENTIALS_FILE="$CREDENTIALS_FILE" \
      "$ROOT/cluster/leave.sh" >>"$RUN/logs/$host-join.log" 2>&1 || true
  fi
  kill_rest "$host"
  ip link del "$P-$host" 2>/dev/null || true # (goes with the namespace anyway)
  ! ns_exists "$(ns_of "$host")" || ip netns del "$(ns_of "$host")" || rc=1
  cg_remove "$host" || rc=1
  (RUN="$RUN/$host" && remove_haproxy_dir) || rc=1
  rm -rf "$RUN/cap-$host" "$RUN/$host"
  return "$rc"
}
source "$ROOT/cluster/netns-head.sh"
