#!/usr/bin/env bash
# make firewall MEMBERS="<address> ...": an nftables rule set for one machine of a multi-host
# cluster, printed to review and then load as root (`... | nft -f -`; docs/security.md,
# "Multi-host mode"). MEMBERS: the cluster's machines (the head and every machine that joins),
# IPv4 addresses or networks; the same rule set serves the head and the members.
#
# It drops every inbound connection to this machine except:
# - from the members: the head's Postgres, Redis, Kafka and Ray GCS, and Ray's own servers on
#   every node (the raylet's node and object managers, the dashboard and its agents, the metrics
#   export, the workers' range: common.sh pins them; Ray alone would pick them at random);
# - from anyone: the API (HTTP_PORT, JWT on every route) and OPEN_PORTS (default 22: SSH; give
#   OPEN_PORTS="" for none, or the ports your other services need);
# - loopback, ICMP, and the replies to this machine's own connections.
# Ray's runtime-env agent, Kafka's controller and Ray's client server are reached from the
# machine itself only, and each Serve replica's gRPC server for calls between deployments (Ray
# binds it to a random port on every interface) from the head only: dropped from the network.
# Loading it again replaces it (one table, `inet orders_stack`); `nft delete table inet
# orders_stack` removes it. The ports are this checkout's settings (.env, the environment), so
# run it where the stack's settings are, with the same variables as make up and make join.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

(( $# )) || { echo 'usage: make firewall MEMBERS="<address or network> ..."' >&2; exit 2; }
for member in "$@"; do
  [[ "$member" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}(/[0-9]{1,2})?$ ]] \
    || die "MEMBERS: $member is not an IPv4 address or network (e.g. 10.0.0.10 or 10.0.0.0/24)"
done
[[ "$RAY_WORKER_PORTS" =~ ^[0-9]+-[0-9]+$ ]] || die "RAY_WORKER_PORTS=$RAY_WORKER_PORTS is not LOW-HIGH"
for port in ${OPEN_PORTS-22}; do
  [[ "$port" =~ ^[0-9]+$ ]] || die "OPEN_PORTS: $port is not a port"
done

# (joined with ", " for nft's set syntax)
list() { local IFS=,; printf '%s' "$*" | sed 's/,/, /g'; }
internal=("$PG_PORT" "$REDIS_PORT" "$KAFKA_PORT" "$RAY_GCS_PORT" "$RAY_NODE_MANAGER_PORT"
  "$RAY_OBJECT_MANAGER_PORT" "$DASHBOARD_PORT" "$DASHBOARD_AGENT_PORT" "$DASHBOARD_AGENT_GRPC_PORT"
  "$METRICS_EXPORT_PORT" "$RAY_WORKER_PORTS")
public=("$HTTP_PORT")
for port in ${OPEN_PORTS-22}; do public+=("$port"); done

cat <<EOF
# the Ray cluster of the order platform: made by cluster/firewall.sh for members $*
table inet orders_stack
delete table inet orders_stack
table inet orders_stack {
  set members {
    type ipv4_addr
    flags interval
    elements = { $(list "$@") }
  }
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iif "lo" accept
    meta l4proto { icmp, ipv6-icmp } accept
    tcp dport { $(list "${public[@]}") } accept
    ip saddr @members tcp dport { $(list "${internal[@]}") } accept
    counter comment "dropped: not a port of the stack's, or not from a member"
  }
}
EOF
