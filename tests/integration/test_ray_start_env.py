"""What `cluster/services.sh` passes to `ray start` reaches the platform's processes; every
port of the single-box stack listens on loopback only (docs/security.md, "Ports")."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import time
from pathlib import Path

import pytest

from cluster.priority import stage_niceness
from core.settings import get_settings
from tests.conftest import node_address
from tests.integration.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ.get("RUN_DIR") or ROOT / ".run")


def _processes(title: str) -> list[int]:
    """pids of this checkout's stack whose title starts with `title` (never another stack's,
    such as a namespace harness running on the same machine)."""
    return sorted(pid for pid, t in _stack_pids().items() if t.startswith(title))


def _nice(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[16])


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _thread_nices(pid: int) -> set[int]:
    nices = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        nices.add(int(stat[stat.rfind(")") + 2 :].split()[16]))
    return nices


_WORKER_NICENESS = int(os.environ.get("RAY_WORKER_NICENESS", "0"))


def test_ray_starts_its_workers_at_the_configured_niceness() -> None:
    # the Serve controller is a Ray worker that keeps the niceness Ray gave it
    pids = _processes("ray::ServeController")
    assert pids, "no Serve controller: is the stack up?"
    assert {_nice(pid) for pid in pids} == {_WORKER_NICENESS}  # Ray's own default would be 15


# The launcher's CPU priority (ADR-007): Ray starts every worker at RAY_WORKER_NICENESS, and the
# deploying job's setup hook moves every thread of the pipeline's actors STAGE_NICENESS steps
# lower (cluster/priority.py); the gateway goes first.
_STAGE_NICENESS = stage_niceness(os.environ)


@pytest.mark.parametrize(
    ("title", "below_the_gateway"),
    [
        ("ray::OutboxRelay", _STAGE_NICENESS),
        ("ray::PaymentShard", _STAGE_NICENESS),
        ("ray::InventoryShard", _STAGE_NICENESS),
        ("ray::ShippingActor", _STAGE_NICENESS),
        ("ray::NotificationActor", _STAGE_NICENESS),
        ("ray::ServeReplica:orders:api-gateway", 0),
    ],
)
def test_every_thread_of_a_platform_process_runs_at_its_niceness(
    title: str, below_the_gateway: int
) -> None:
    pids = _processes(title)
    assert pids, f"no {title} process: is the stack up?"
    for pid in pids:
        assert _thread_nices(pid) == {_WORKER_NICENESS + below_the_gateway}, f"{title} pid {pid}"


_AUTOGROUP_NICENESS = int(os.environ.get("RAY_AUTOGROUP_NICENESS", "-5"))


def _autogroup(pid: int) -> tuple[str, int] | None:
    """`(autogroup, its niceness)` of a process; None on a kernel without autogroups."""
    try:
        name, _, nice = Path(f"/proc/{pid}/autogroup").read_text().split()
    except OSError:
        return None
    return name, int(nice)


@pytest.mark.ci_may_skip  # a kernel built without CONFIG_SCHED_AUTOGROUP is no fault of the stack
def test_the_ray_session_weighs_what_the_launcher_sets() -> None:
    """All of Ray's processes share one session, hence one autogroup, whose niceness the
    launcher lowers (RAY_AUTOGROUP_NICENESS; root only) so that the gateway and the actors
    together weigh more than a single Postgres backend (ADR-007)."""
    titles = ("ray::ServeReplica:orders:api-gateway", "ray::InventoryShard", "ray::OutboxRelay")
    pids = [pid for title in titles for pid in _processes(title)]
    assert len(pids) >= len(titles), "is the stack up?"
    groups = {_autogroup(pid) for pid in pids}
    if groups == {None}:
        pytest.skip("a kernel without autogroups: nothing weighs sessions")
    assert len(groups) == 1, groups  # one session
    (group,) = groups
    assert group is not None
    expected = _AUTOGROUP_NICENESS if os.geteuid() == 0 or _AUTOGROUP_NICENESS >= 0 else 0
    assert group[1] == expected


def test_the_gateway_runs_serve_throughput_optimized_behind_haproxy() -> None:
    (pid, *_) = _processes("ray::ServeReplica:orders:api-gateway")
    env = _environ(pid)
    assert env.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == os.environ.get(
        "RAY_SERVE_THROUGHPUT_OPTIMIZED", "1"
    )
    assert env.get("RAY_SERVE_ENABLE_HA_PROXY") == os.environ.get("RAY_SERVE_ENABLE_HA_PROXY", "1")


def test_ray_processes_get_the_app_credentials_but_not_the_owners() -> None:
    (pid, *_) = _processes("ray::ServeReplica:orders:api-gateway")
    env = _environ(pid)
    assert env.get("DATABASE_URL") == get_settings().database_url
    assert env.get("REDIS_URL") == get_settings().redis_url
    assert env.get("RAY_AUTH_MODE") == "token" and env.get("RAY_AUTH_TOKEN")
    leaked = {"ORDERS_DB_PASSWORD", "MIGRATION_DATABASE_URL", "ORDERS_APP_DB_PASSWORD"} & set(env)
    assert not leaked


def _stack_pids() -> dict[int, str]:
    """pid -> process title of everything this checkout's stack runs: the processes recorded
    in .run/pids and all their descendants (Ray's GCS, raylet, workers, dashboard, HAProxy)."""
    parents: dict[int, int] = {}
    titles: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
                titles[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat_line[stat_line.rfind(")") + 2 :].split()[1])
    roots = {int(p.read_text()) for p in (RUN / "pids").glob("*.pid") if p.read_text().strip()}
    mine = set(roots)
    for pid in sorted(parents):
        chain, cur = [], pid
        while cur > 1 and cur not in mine and cur in parents:
            chain.append(cur)
            cur = parents[cur]
        if cur in mine:
            mine.update(chain)
    return {pid: titles.get(pid, "") for pid in mine}


# /proc/net/<table>: the state of a socket that takes connections or datagrams from anyone:
# a listening TCP socket (LISTEN), an unconnected UDP socket (CLOSE; a connected one, such as a
# resolver's, only hears its peer)
_OPEN_STATES = {"tcp": "0A", "tcp6": "0A", "udp": "07", "udp6": "07"}


def _listening() -> dict[int, tuple[str, int]]:
    """socket inode -> (address, port) of every listening TCP socket and unconnected, bound UDP
    socket."""
    found = {}
    for table, state in _OPEN_STATES.items():
        width = 16 if table.endswith("6") else 4
        for line in _lines(f"/proc/net/{table}"):
            fields = line.split()
            if fields[3] != state or fields[1].endswith(":0000"):
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc stores each 32-bit word in host (little-endian) order
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            found[int(fields[9])] = (str(ipaddress.ip_address(words)), int(hex_port, 16))
    return found


def _sockets_of(pids: dict[int, str]) -> list[tuple[str, str, int]]:
    """(process title, address, port) of each listening socket the pids hold."""
    listening = _listening()
    held = []
    for pid, title in pids.items():
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        for link in links:
            match = re.fullmatch(r"socket:\[(\d+)\]", link)
            if match and int(match.group(1)) in listening:
                held.append((title, *listening[int(match.group(1))]))
    return held


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def test_every_port_of_the_single_box_stack_listens_on_loopback_only() -> None:
    if not _loopback(socket.gethostbyname(node_address())):
        pytest.skip(
            "multi-host mode: Ray's own servers listen on every interface (docs/security.md)"
        )
    env = os.environ
    expected = {"RAY_GCS_PORT": 6390, "DASHBOARD_PORT": 8265, "HTTP_PORT": 8080, "PG_PORT": 5432}
    expected |= {"REDIS_PORT": 6379, "KAFKA_PORT": 9092, "METRICS_EXPORT_PORT": 8090}
    # Ray's own servers, which it would put on random ports (pinned for a firewall, README)
    expected |= {"RAY_NODE_MANAGER_PORT": 6391, "RAY_OBJECT_MANAGER_PORT": 6392}
    expected |= {"RAY_RUNTIME_ENV_AGENT_PORT": 6393, "DASHBOARD_AGENT_GRPC_PORT": 6394}
    ports = {int(env.get(k, default)) for k, default in expected.items()}

    def complete() -> set[tuple[str, str, int]] | None:
        """The stack's sockets once each of its own ports is among them (a redeploy by someone
        else may be restarting the gateway right now)."""
        held = set(_sockets_of(_stack_pids()))
        return held if ports <= {port for _, _, port in held} else None

    held = wait_until(complete, timeout=60, what=f"the stack's ports {sorted(ports)}")
    # The one exception Ray does not let a deployment change: each Serve replica's gRPC server
    # for calls between deployments binds [::]:<random> (ray/serve/_private/replica.py); it
    # requires Ray's token like every Ray server.
    exempt = {(t, a, p) for t, a, p in held if t.startswith("ray::ServeReplica") and a == "::"}
    wide = sorted((t, a, p) for t, a, p in held - exempt if not _loopback(a))
    assert not wide


def _haproxy_config() -> Path:
    for pid, title in _stack_pids().items():
        if title.endswith("haproxy"):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            return Path(argv[argv.index(b"-f") + 1].decode())
    raise AssertionError("no HAProxy process in the stack: is the gateway up?")


def test_the_ingress_admin_socket_is_private() -> None:
    config = _haproxy_config().read_text()
    match = re.search(r"stats socket (\S+) mode (\d+) ", config)
    assert match and match.group(2) == "600", config[:400]
    sock = Path(match.group(1))
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.parent.stat().st_mode) == 0o700  # <haproxy dir>/<node id>/


def test_the_ingress_sends_no_access_log_unless_given_a_target() -> None:
    """Ray's HAProxy configuration sends a syslog line per request to 127.0.0.1:514, where
    nothing listens; cluster/haproxy.sh drops that target unless the operator names one."""
    pid = next(p for p, title in _stack_pids().items() if title.endswith("haproxy"))
    if _environ(pid).get("RAY_SERVE_HAPROXY_LOG_TARGET"):
        pytest.skip("RAY_SERVE_HAPROXY_LOG_TARGET is set: the operator's log target is kept")
    config = _haproxy_config().read_text()
    assert not re.search(r"^\s*log \d", config, re.MULTILINE), config[:600]
    assert re.search(r"^\s*stats socket ", config, re.MULTILINE)  # the file Ray wrote, edited
    sockets = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    udp = {int(line.split()[9]) for t in ("udp", "udp6") for line in _lines(f"/proc/net/{t}")}
    assert not {s for s in sockets if s.startswith("socket:[") and int(s[8:-1]) in udp}


def _lines(table: str) -> list[str]:
    return Path(table).read_text().splitlines()[1:]


def test_the_ingress_closes_a_client_that_is_slow_with_its_headers() -> None:
    assert "timeout http-request 10s" in _haproxy_config().read_text()
    port = int(os.environ.get("HTTP_PORT", "8080"))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        answer = conn.recv(4096)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer[:100]
    assert 8 <= waited <= 20, waited


def test_the_ingress_gives_up_on_a_silent_replica() -> None:
    """HAProxy's wait for a replica's answer is bounded (then the JSON 503 of
    cluster/haproxy.sh, tests/unit/test_haproxy_wrapper.py): with no `timeout server` a request
    to a replica stuck on Postgres, or to Serve's fallback proxy with no replica, waited
    without end. 60 s: a live stream's 15 s pings keep it open."""
    config = _haproxy_config().read_text()
    backend = config[config.index("backend http-orders") :]
    assert "timeout server 60s" in config[: config.index("frontend ")] + backend, config


# Every secret the stack's scripts hold; the servers they start need none of them from the
# environment (cluster/common.sh, SECRET_ENV_DROP; Postgres starts with an empty one).
_SECRETS = {
    "ORDERS_DB_PASSWORD",
    "ORDERS_APP_DB_PASSWORD",
    "REDIS_PASSWORD",
    "RAY_AUTH_TOKEN",
    "HAPROXY_STATS_PASSWORD",
    "KAFKA_PASSWORD",  # the broker's own login is in its mode-600 server.properties
    "JWT_SECRET",
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "REDIS_URL",
}


@pytest.mark.parametrize("server", ["pg", "redis", "kafka"])
def test_the_servers_the_stack_starts_inherit_none_of_its_secrets(server: str) -> None:
    """Postgres ran as the OS user postgres with every password, the Ray token and JWT_SECRET in
    its environment (readable by that user, and by the superuser through COPY FROM PROGRAM)."""
    pid_file = RUN / "pids" / f"{server}.pid"
    if not pid_file.exists():
        pytest.skip(f"{server} is not this checkout's (a stack started elsewhere)")
    pid = int(pid_file.read_text())
    leaked = _SECRETS & set(_environ(pid))
    assert not leaked, f"{server} (pid {pid}) inherited {sorted(leaked)}"
