"""What a host of the harness admits (the rule set of cluster/firewall.sh, which cluster/netns.sh
loads on every host) and what it listens on."""

from __future__ import annotations

import re
import socket

from bench.scale_hosts import Hosts

TABLE = ("inet", "orders_stack")
# the harness's ports these checks need (cluster/netns.sh env)
PORTS = ("METRICS_EXPORT_PORT", "RAY_CLIENT_SERVER_PORT")


def head_only(client_server_port: int) -> set[int]:
    """The ports the head listens on beyond loopback that its rule set drops, since nothing on
    another host calls them: Ray's client server, Serve's fallback proxy (behind HAProxy), the
    autoscaler's and the dashboard's metrics (docs/security.md, "Multi-host mode")."""
    from ray.autoscaler._private.constants import AUTOSCALER_METRIC_PORT
    from ray.dashboard.consts import DASHBOARD_METRIC_PORT
    from ray.serve._private.constants import RAY_SERVE_FALLBACK_PROXY_HTTP_PORT

    return {
        client_server_port,
        RAY_SERVE_FALLBACK_PROXY_HTTP_PORT,
        AUTOSCALER_METRIC_PORT,
        DASHBOARD_METRIC_PORT,
    }


def admitted(hosts: Hosts, host: str) -> set[int]:
    """Every TCP port the host's rule set admits from a member (the API's and OPEN_PORTS too),
    read from the loaded rule set itself."""
    rules = hosts.exec(host, "nft", "list", "chain", *TABLE, "input")
    ports: set[int] = set()
    for found in re.findall(r"tcp dport (\{ [^}]* \}|\S+) accept", rules):
        for item in found.strip("{} ").split(","):
            low, _, high = item.strip().partition("-")
            ports |= set(range(int(low), int(high or low) + 1))
    return ports


def dropped(hosts: Hosts, host: str) -> int:
    """Packets the host's rule set has dropped so far (its last rule counts them)."""
    rules = hosts.exec(host, "nft", "list", "chain", *TABLE, "input")
    found = re.search(r"counter packets (\d+) bytes \d+ comment \"dropped", rules)
    assert found, f"no counting drop rule on {host}:\n{rules}"
    return int(found.group(1))


def listeners(hosts: Hosts, host: str) -> dict[int, str]:
    """port → process of every TCP socket listening on the host beyond loopback."""
    out: dict[int, str] = {}
    for line in hosts.exec(host, "ss", "-Hltnp").splitlines():
        fields = line.split()
        address, _, port = fields[3].rpartition(":")
        if address.startswith(("127.", "[::ffff:127.", "[::1]")):
            continue
        name = re.search(r'users:\(\("([^"]*)"', line)
        out[int(port)] = name.group(1) if name else "?"
    return out


def connects(address: str, port: int, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection from this machine to address:port is accepted in time (a
    dropped one times out, a closed port is refused: both False)."""
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return True
    except OSError:
        return False
