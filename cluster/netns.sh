#!/usr/bin/env bash
# Hosts as Linux network namespaces on this one machine: a head (Postgres, Redis, Kafka, Ray head
# with --num-cpus=0, the Serve gateway) and worker hosts (`make join` inside them), each its own
# address on a bridge this script creates from a private range, each worker in a cgroup with a
# CPU quota. The services and Ray start as the single-box stack starts them (cluster/services.sh,
# cluster/join.sh), with this harness's own RUN_DIR. Used by tests/multinode and
# `make bench-scale`; needs root and `ip`.
#
#   cluster/netns.sh up [N]           bridge + head (services, Ray head, deploy) + N workers (default 2)
#   cluster/netns.sh worker I         worker host I (1..9) joins and waits until it is a node
#   cluster/netns.sh cap I CORES      change worker I's CPU quota (0: none)
#   cluster/netns.sh deploy [--restart]  (re)deploy the platform from the head (settings from env)
#   cluster/netns.sh kill I raylet|host   SIGKILL worker I's raylet, or every process of worker I
#   cluster/netns.sh stop-worker I    stop worker host I (by pid) and delete its namespace
#   cluster/netns.sh status I         `make status` on worker host I, as its operator runs it
#   cluster/netns.sh stacks I         `make stacks` on worker host I, as its operator runs it
#   cluster/netns.sh exec head|wI CMD...  run CMD on that host (its namespace and cgroup)
#   cluster/netns.sh env              the variables that reach the head from this machine
#   cluster/netns.sh cpu              CPU seconds used so far per host (from the cgroups)
#   cluster/netns.sh down             stop everything by pid; delete namespaces, links, bridge, cgroups
#                                     (each step tried; exit 1 naming those that failed)
#
# One harness per machine (the names and the subnet are the machine's): `up` claims
# /tmp/<prefix>-netns.owner and waits (NETNS_WAIT_S, 600) while another checkout's harness
# holds it; the other commands touch only a harness this checkout owns.
# Knobs (env): NETNS_PREFIX (orders: namespaces orders-head, orders-w1.., bridge ordersbr0),
# NETNS_SUBNET (10.77.0: this machine .1, head .2, worker I .1I), NETNS_CPU_CAP (cores per
# worker host, 0.5; 0 = no cap), NETNS_WORKER_CPUS (logical CPUs a worker offers Ray, 4: room
# for every actor on one survivor), NETNS_FIREWALL (1: each host loads cluster/firewall.sh's
# rule set with the bridge's subnet as its members; 0: none), NETNS_RUN_DIR (default /tmp/netns-<hash of checkout and
# prefix>: never the single-box stack's .run; reachable by the postgres user; short, for the
# socket paths under it: HAProxy allows 97 characters for <RUN_DIR>/haproxy/<node id>/admin.sock).
# Traffic goes only to loopback and the addresses on that bridge: the namespaces have no route
# anywhere else. Needs `nft` too unless NETNS_FIREWALL=0.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
P="${NETNS_PREFIX:-orders}"
SUBNET="${NETNS_SUBNET:-10.77.0}"
HEAD_IP="$SUBNET.2"
FIREWALL="${NETNS_FIREWALL:-1}"
export RUN_DIR="${NETNS_RUN_DIR:-/tmp/netns-$(printf %s "$ROOT:$P" | sha1sum | cut -c1-8)}"
# run_dir_check DIR -> 0 when DIR is a directory of this user's (root's: the harness needs root),
# no symlink, mode at most 0755; else its fault on stderr and 1. The default RUN_DIR is a
# predictable name in /tmp, and root keeps there the harness's credentials, its data and the
# code every host imports (PYTHONPATH): one another local user made first is never adopted.
# (common.sh's `ours` makes the same owner test, but sourcing common.sh runs `mkdir -p` in
# RUN_DIR, which would follow a symlink: this runs before it.)
run_dir_check() {
  local dir="$1" uid mode
  uid="$(stat -c %u -- "$dir" 2>/dev/null)" || uid=""
  mode="$(stat -c %a -- "$dir" 2>/dev/null)" || mode=""
  if [[ -L "$dir" || ! -d "$dir" || "$uid" != "$EUID" || ! "$mode" =~ ^[0-7]+$ ]] \
    || (( 8#$mode & ~8#755 )); then
    printf '\033[1;31merror:\033[0m RUN_DIR %s %s (uid %s, mode %s): %s\n' "$dir" \
      "is a symlink, not a directory, another user's or writable by others" "${uid:-?}" \
      "${mode:-?}" "someone may have made it to run code here or read its secrets; remove it" >&2
    return 1
  fi
}
# made here when missing (mode 755: the postgres user reaches its data), then checked either way
# (a mkdir that lost a race to another user's is caught by the check)
mkdir -p -- "$(dirname -- "$RUN_DIR")"
[[ -e "$RUN_DIR" || -L "$RUN_DIR" ]] || mkdir -m 755 -- "$RUN_DIR" 2>/dev/null || true
run_dir_check "$RUN_DIR" || exit 1
# Nothing of the single-box stack (or of a caller's environment) leaks in: its URLs, passwords
# and Ray token are derived again from this harness's own credentials (RUN_DIR/credentials.env).
unset DATABASE_URL MIGRATION_DATABASE_URL REDIS_URL KAFKA_BOOTSTRAP RAY_ADDRESS CREDENTIALS_FILE \
  ORDERS_DB_PASSWORD ORDERS_APP_DB_PASSWORD REDIS_PASSWORD RAY_AUTH_TOKEN RAY_AUTH_MODE \
  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER KAFKA_AUTH KAFKA_SECURITY_PROTOCOL KAFKA_SASL_MECHANISM \
  KAFKA_USERNAME KAFKA_PASSWORD KAFKA_SSL_CAFILE STACK_TLS TLS_CA_FILE TLS_CA_CERT TLS_CA_KEY \
  RAY_USE_TLS RAY_TLS_SERVER_CERT RAY_TLS_SERVER_KEY RAY_TLS_CA_CERT
export NODE_ADDRESS="$HEAD_IP" HEAD_ADDRESS="$HEAD_IP"
source "$ROOT/cluster/common.sh"
source "$ROOT/cluster/netns-lib.sh"

usage() { sed -n '9,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd="${1:-}"; shift || true
case "$cmd" in
  up)
    netns_require
    prior="$(owner_of)" # (before the claim below makes it this RUN_DIR)
    netns_claim # another checkout's harness runs: wait for it (before the trap: never stop it)
    # left by a harness that died with nothing in its namespaces, or by an earlier run of this
    # checkout that was killed (pytest cancelled: its servers may still run there, this RUN's
    # own; the make targets that use the harness hold .run/heavy.lock, so no live run of this
    # checkout is taken down by them)
    if ns_exists "$(ns_of head)" || ip link show "$BR" >/dev/null 2>&1; then
      if [[ "$prior" == "$RUN" ]] && run_alive "$RUN"; then
        log "an earlier run of this checkout left its servers running (a killed pytest?)"
      fi
      if netns_idle || [[ "$prior" == "$RUN" ]]; then
        log "namespaces of an earlier harness are left (${prior:-no owner}): removing them"
        netns_teardown || log "the removal left something behind (above)"
        netns_claim # again whatever the removal did (it gives up this RUN_DIR's claim)
      fi
    fi
    ! ns_exists "$(ns_of head)" && ! ip link show "$BR" >/dev/null 2>&1 \
      || die "$(ns_of head) or $BR exists without an owner (cluster/netns.sh down first)"
    # (a second Ctrl-C or TERM while it cleans up must not cut the teardown short)
    trap 'rc=$?; trap "" INT TERM; if (( rc )); then log "up failed (exit $rc): cleaning up"; netns_teardown; fi' EXIT
    trap 'exit 143' TERM INT
    netns_up "${1:-2}"
    trap - EXIT
    ;;
  worker) netns_require; require_mine; netns_worker "${1:?worker index}"; netns_wait_nodes ;;
  cap) netns_require; require_mine; cg_make "w${1:?worker index}" "${2:?cores}" ;;
  deploy) netns_require; require_mine; netns_deploy "$@" ;;
  kill) netns_require; require_mine; netns_kill "${1:?worker index}" "${2:-raylet}" ;;
  stop-worker) netns_require; require_mine; netns_stop_worker "${1:?worker index}" ;;
  status) netns_require; require_mine; netns_status "${1:?worker index}" ;;
  stacks) netns_require; require_mine; netns_stacks "${1:?worker index}" ;;
  exec) netns_require; require_mine; host="${1:?host}"; shift; netns_exec "$host" "$@" ;;
  env) netns_env_lines ;;
  cpu) netns_cpu ;;
  down)
    netns_require
    if mine; then netns_teardown; else log "the harness on this machine is $(owner_of)'s: not touched"; fi
    ;;
  *) usage ;;
esac
