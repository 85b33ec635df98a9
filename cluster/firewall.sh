#!/usr/bin/env bash
# make firewall MEMBERS="<address> ...": an nftables rule set for one machine of a multi-host
# cluster, printed to review and then load as root (README, "Adding a machine"; docs/security.md,
# "Multi-host mode"). MEMBERS: the cluster's machines (the head and every machine that joins),
# IPv4 addresses or networks; the same rule set serves the head and the members.
#
# It drops every inbound connection to this machine, on every interface, except:
# - from the members: the head's Postgres, Redis, Kafka and Ray GCS, and Ray's own servers on
#   every node (the raylet's node and object managers, the dashboard, its agents and the
#   runtime-env agent, which the head's dashboard calls, the metrics export, the workers' range:
#   common.sh pins them; Ray alone would pick them at random), and the Serve replicas' direct
#   ingress ports (RAY_SERVE_DIRECT_INGRESS_MIN/MAX_HTTP_PORT, 30000-31000), which the head's
#   HAProxy calls where a gateway replica is placed on another machine (the namespace harness's
#   NETNS_GATEWAY=any; make up keeps them on the head, on loopback);
# - from anyone: the API (HTTP_PORT, JWT on every route) and OPEN_PORTS (default 22: SSH; each
#   PORT or tcp/PORT, udp/PORT for UDP, e.g. "22 udp/51820" for SSH and WireGuard; "" for none):
#   give every port this machine's other services need;
# - loopback, ICMP, and the replies to this machine's own connections.
# Kafka's controller and Ray's client server are reached from the machine itself only, and each
# Serve replica's gRPC server for calls between deployments (Ray binds it to a random port on
# every interface) from its own machine only: dropped from the network.
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
worker_ports_ok || die "RAY_WORKER_PORTS=$RAY_WORKER_PORTS is not LOW-HIGH"
public=("$HTTP_PORT") public_udp=()
for port in ${OPEN_PORTS-22}; do
  [[ "$port" =~ ^((tcp|udp)/)?([0-9]+)$ ]] || die "OPEN_PORTS: $port is not PORT, tcp/PORT or udp/PORT"
  if [[ "${BASH_REMATCH[2]}" == udp ]]; then public_udp+=("${BASH_REMATCH[3]}")
  else public+=("${BASH_REMATCH[3]}"); fi
done

# (joined with ", " for nft's set syntax)
list() { local IFS=,; printf '%s' "$*" | sed 's/,/, /g'; }
internal=("$PG_PORT" "$REDIS_PORT" "$KAFKA_PORT" "$RAY_GCS_PORT" "$RAY_NODE_MANAGER_PORT"
  "$RAY_OBJECT_MANAGER_PORT" "$RAY_RUNTIME_ENV_AGENT_PORT" "$DASHBOARD_PORT" "$DASHBOARD_AGENT_PORT"
  "$DASHBOARD_AGENT_GRPC_PORT" "$METRICS_EXPORT_PORT" "$RAY_WORKER_PORTS"
  "${RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT:-30000}-${RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT:-31000}")
udp_rule=""
(( ${#public_udp[@]} == 0 )) || udp_rule="udp dport { $(list "${public_udp[@]}") } accept"

sed "/^ *$/d" <<EOF
# the Ray cluster of the order platform: made by cluster/firewall.sh for members $*
table inet orders_stack
delete table inet orders_stack
table inet orders_stack {
  set members {
    type ipv4_addr
    flags interval
    auto-merge
    elements = { $(list "$@") }
  }
  chain input {
    type filter hook input priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iif "lo" accept
    meta l4proto { icmp, ipv6-icmp } accept
    tcp dport { $(list "${public[@]}") } accept
    $udp_rule
    ip saddr @members tcp dport { $(list "${internal[@]}") } accept
    counter comment "dropped: not a port of the stack's, or not from a member"
  }
}
EOF
