"""cluster/join.sh refuses, before it installs or starts anything, a machine whose mode or
secret would make every actor placed on it fail its settings check, and connects to the head's
services on the ports the head recorded (README, Adding a machine)."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_KEYS = (
    "ORDERS_DB_PASSWORD",
    "ORDERS_APP_DB_PASSWORD",
    "REDIS_PASSWORD",
    "RAY_AUTH_TOKEN",
    "HAPROXY_STATS_PASSWORD",
    "KAFKA_PASSWORD",  # the broker's SCRAM login: this machine's actors reach Kafka with it
)


_PORTS = ("PG_PORT", "REDIS_PORT", "KAFKA_PORT", "RAY_GCS_PORT")
# a caller's TLS settings (cluster/tls.sh), which would decide for the scripts run here
_TLS = ("KAFKA_SSL_CAFILE", "STACK_TLS", "TLS_CA_FILE", "TLS_CA_CERT", "TLS_CA_KEY", "KAFKA_AUTH")
_CA = b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n"


def _join(
    tmp_path: Path,
    head_env: str | None,
    env: dict[str, str],
    exported: bool = False,
    recorded: str = "",
    ca: bool = True,
    head: str = "10.99.0.1",
) -> subprocess.CompletedProcess[str]:
    """join.sh with the head's credentials copied to RUN_DIR (with `HEAD_APP_ENV=head_env`
    unless None, and the lines `recorded`), or `exported` in the environment instead, with no
    file; `ca`: with the head's CA certificate."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    credentials = {key: f"x{i}" for i, key in enumerate(_KEYS)}
    # the head's CA (cluster/tls.sh): join.sh writes it to its own RUN_DIR
    if ca:
        credentials["TLS_CA_CERT"] = base64.b64encode(_CA).decode()
    if not exported:
        lines = [f"{key}={value}" for key, value in credentials.items()]
        if head_env is not None:
            lines.append(f"HEAD_APP_ENV={head_env}")
        (run / "credentials.env").write_text("\n".join(lines) + "\n" + recorded)
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in (*_KEYS, *_PORTS, "APP_ENV", "JWT_SECRET", "NODE_ADDRESS", "HEAD_ADDRESS")
        and k not in ("KAFKA_BOOTSTRAP", "RAY_ADDRESS", "CREDENTIALS_FILE", "KAFKA_AUTH")
        and k not in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_USERNAME")
        and k not in _TLS
        and not k.endswith("_URL")
    }
    given = credentials if exported else {}
    return subprocess.run(
        ["bash", str(ROOT / "cluster/join.sh"), head],
        env={**clean, **given, "RUN_DIR": str(run), "NODE_ADDRESS": "10.99.0.2", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("head_env", "env", "refusal"),
    [
        ("prod", {}, "the head runs APP_ENV=prod, this machine APP_ENV=dev"),
        ("prod", {"APP_ENV": "prod"}, "needs the head's JWT_SECRET"),
        (None, {"APP_ENV": "test"}, "needs the head's JWT_SECRET"),
    ],
    ids=["mode-left-at-dev", "prod-without-the-secret", "old-credentials-file"],
)
def test_a_machine_that_would_not_match_the_head_is_refused(
    tmp_path: Path, head_env: str | None, env: dict[str, str], refusal: str
) -> None:
    ran = _join(tmp_path, head_env, env)
    assert ran.returncode != 0
    assert refusal in ran.stderr + ran.stdout, ran.stderr[-600:]


@pytest.mark.parametrize(
    ("head", "said"),
    [
        ("localhost", "HEAD=localhost is 127.0.0.1"),  # then refused as loopback, by address
        ("no-such-host.invalid", "HEAD=no-such-host.invalid has no IPv4 address here"),
        ("fd00::1", "HEAD=fd00::1: the stack joins over IPv4 only"),
        ("10.99.0.1:6390", "HEAD=10.99.0.1:6390: give the address alone"),
    ],
    ids=["name", "unknown-name", "ipv6", "with-a-port"],
)
def test_the_head_may_be_named_by_a_host_name(tmp_path: Path, head: str, said: str) -> None:
    """`ip -4 route get` found no source address for a host name, and the join stopped with
    "no address of this machine reaches" it: a name is taken to its IPv4 address first."""
    ran = _join(tmp_path, "dev", {}, head=head)
    assert ran.returncode != 0
    assert said in ran.stdout + ran.stderr, (ran.stdout + ran.stderr)[-600:]
    if head == "localhost":
        assert "HEAD=127.0.0.1 is loopback" in ran.stderr, ran.stderr[-600:]


def test_a_joined_machines_commands_reach_the_heads_recorded_ports(tmp_path: Path) -> None:
    """`make stacks` on a machine joined to a head started with PG_PORT=5433 asked 5432: only
    join.sh and `make status` read the head's recorded ports, the other commands derived the
    URLs from this machine's defaults."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "join.env").write_text("HEAD_ADDRESS=10.99.0.1\nNODE_ADDRESS=10.99.0.2\n")
    passwords = "".join(f"{key}=x{i}\n" for i, key in enumerate(_KEYS))
    (run / "credentials.env").write_text(passwords + RECORDED.replace("6391", "6400"))
    clean = {k: v for k, v in os.environ.items() if k not in (*_KEYS, *_PORTS, *_TLS)}
    clean = {k: v for k, v in clean.items() if not k.endswith("_URL")}
    clean = {k: v for k, v in clean.items() if k not in ("NODE_ADDRESS", "HEAD_ADDRESS")}
    clean = {k: v for k, v in clean.items() if k not in ("KAFKA_BOOTSTRAP", "RAY_ADDRESS")}
    urls = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/cluster/common.sh" && echo $DATABASE_URL $RAY_ADDRESS'],
        env={**clean, "RUN_DIR": str(run)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert "@10.99.0.1:5433/" in urls[0] and urls[1] == "10.99.0.1:6400", urls


def test_credentials_exported_instead_of_copied_pass_the_mode_check(tmp_path: Path) -> None:
    """The documented alternative to copying the file: without it the check read no file and
    the script ended (set -e) with no message at all."""
    ran = _join(tmp_path, None, {"APP_ENV": "prod"}, exported=True)
    assert ran.returncode != 0  # stopped by the next check, with its message
    assert "needs the head's JWT_SECRET" in ran.stderr + ran.stdout, ran.stderr[-600:]


def test_the_head_records_its_ports_with_its_credentials(tmp_path: Path) -> None:
    ports = {"PG_PORT": "5433", "REDIS_PORT": "6380", "KAFKA_PORT": "9192", "RAY_GCS_PORT": "6391"}
    clean = {k: v for k, v in os.environ.items() if k not in (*_KEYS, *_PORTS)}
    clean = {k: v for k, v in clean.items() if not k.endswith("_URL")}
    subprocess.run(
        ["bash", "-c", f'source "{ROOT}/cluster/common.sh" && ensure_credentials'],
        env={**clean, **ports, "RUN_DIR": str(tmp_path)},
        capture_output=True,
        timeout=60,
        check=True,
    )
    recorded = (tmp_path / "credentials.env").read_text().splitlines()
    assert all(f"HEAD_{k}={v}" in recorded for k, v in ports.items()), recorded


RECORDED = "HEAD_PG_PORT=5433\nHEAD_REDIS_PORT=6380\nHEAD_KAFKA_PORT=9192\nHEAD_RAY_GCS_PORT=6391\n"


@pytest.mark.parametrize(
    ("env", "redis"), [({}, "6380"), ({"REDIS_PORT": "7000"}, "7000")], ids=["recorded", "given"]
)
def test_a_joining_machine_uses_the_heads_ports(
    tmp_path: Path, env: dict[str, str], redis: str
) -> None:
    """A head started with PG_PORT=5433 (and others): the joining machine's URLs pointed at
    5432, its own default; a port given in the environment still wins."""
    ran = _join(tmp_path, "prod", env, recorded=RECORDED)  # stopped by the mode check after
    assert "the head runs APP_ENV=prod" in ran.stderr, ran.stderr[-600:]
    assert (
        f"the head's services: postgres 10.99.0.1:5433, redis 10.99.0.1:{redis},"
        " kafka 10.99.0.1:9192, Ray's GCS 10.99.0.1:6391"
    ) in ran.stdout, ran.stdout[-600:]
    clean = {k: v for k, v in os.environ.items() if k not in (*_KEYS, *_PORTS, *_TLS)}
    clean = {k: v for k, v in clean.items() if not k.endswith("_URL")}
    urls = subprocess.run(
        ["bash", "-c", f'source "{ROOT}/cluster/common.sh" && head_ports && echo $REDIS_URL'],
        env={**clean, **env, "RUN_DIR": str(tmp_path / "run"), "HEAD_ADDRESS": "10.99.0.1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    ca = tmp_path / "run" / "tls" / "ca.pem"  # over TLS, checked against the head's CA
    assert urls.strip() == f"rediss://orders:x2@10.99.0.1:{redis}/0?ssl_ca_certs={ca}"


def test_a_copied_credentials_file_is_made_private(tmp_path: Path) -> None:
    """It holds every password of the cluster; a copy made without the README's chmod 600
    stayed readable by every user of the machine."""
    umask = os.umask(0o022)
    try:
        ran = _join(tmp_path, "prod", {})  # stopped by the mode check after
    finally:
        os.umask(umask)
    assert "the head runs APP_ENV=prod" in ran.stderr, ran.stderr[-600:]
    assert (tmp_path / "run" / "credentials.env").stat().st_mode & 0o077 == 0


def test_a_joining_machine_needs_the_heads_ca(tmp_path: Path) -> None:
    """The head's services take TLS clients only (cluster/tls.sh): a credentials file of an
    older head, without its CA, is refused before anything starts; so is one with the CA's
    certificate but not its key, which the machine makes its own certificate with
    (tests/deploy/test_local_tls.py joins with both)."""
    ran = _join(tmp_path, "dev", {}, ca=False)
    assert ran.returncode != 0
    assert "TLS_CA_CERT is not in" in ran.stderr, ran.stderr[-600:]
    assert not (tmp_path / "run" / "tls" / "ca.pem").exists()
    ran = _join(tmp_path, "dev", {})  # the certificate (a stand-in), no key
    assert ran.returncode != 0
    assert "TLS_CA_KEY is not in" in ran.stderr, ran.stderr[-600:]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_on_a_joined_machine_reports_its_node_and_the_heads_services(
    tmp_path: Path,
) -> None:
    """`make status` on a machine that joined a head reported a local stack that is not there,
    every part down at 127.0.0.1; it now reports this machine's Ray node and the head's
    services as its Ray processes reach them (here: nothing answers, so all down, exit 1)."""
    run = tmp_path / "run"
    run.mkdir()
    ports = {key: str(_closed_port()) for key in _PORTS}
    lines = [f"{key}=x{i}" for i, key in enumerate(_KEYS)]
    lines += [f"HEAD_{key}={port}" for key, port in ports.items()]
    (run / "credentials.env").write_text("\n".join(lines) + "\n")
    (run / "join.env").write_text("HEAD_ADDRESS=127.0.0.1\nNODE_ADDRESS=127.0.0.1\n")
    clean = {k: v for k, v in os.environ.items() if k not in (*_KEYS, *_PORTS, *_TLS)}
    clean = {k: v for k, v in clean.items() if not k.endswith("_URL")}
    for key in ("NODE_ADDRESS", "HEAD_ADDRESS", "KAFKA_BOOTSTRAP", "CREDENTIALS_FILE"):
        clean.pop(key, None)
    ran = subprocess.run(
        ["bash", str(ROOT / "cluster/services.sh"), "status"],
        env={**clean, "RUN_DIR": str(run), "KAFKA_AUTH": "none"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 1, ran.stderr[-600:]
    rows = [line.split(None, 2) for line in ran.stdout.splitlines()]
    gcs = ports["RAY_GCS_PORT"]
    assert rows[0][:2] == ["ray", "node"] and f"joined to 127.0.0.1:{gcs}" in ran.stdout
    assert [r[0] for r in rows[1:]] == ["postgres", "redis", "kafka"], ran.stdout
    assert all(r[1] == "down" for r in rows[1:]), ran.stdout
    assert f"127.0.0.1:{ports['PG_PORT']}/orders: OperationalError" in ran.stdout
    assert "gateway" not in ran.stdout and "x1" not in ran.stdout  # no local stack, no password


def test_make_up_on_a_joined_machine_is_refused_until_it_leaves(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "join.env").write_text("HEAD_ADDRESS=10.99.0.1\nNODE_ADDRESS=10.99.0.2\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("NODE_ADDRESS", "HEAD_ADDRESS")}
    ran = subprocess.run(
        ["bash", str(ROOT / "cluster/up.sh")],
        env={**clean, "RUN_DIR": str(run)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 1 and "worker node of 10.99.0.1" in ran.stderr, ran.stderr[-600:]
    assert not (run / "node.env").exists()


def test_a_machine_without_ip_is_told_so_not_that_the_head_is_unreachable(
    tmp_path: Path,
) -> None:
    """Without iproute2 the address lookup found nothing, and join.sh said "no address of this
    machine reaches the head", blaming the network for a missing tool."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not Path(directory).is_dir():
            continue
        for tool in Path(directory).iterdir():
            if tool.name != "ip" and not (tools / tool.name).exists():
                (tools / tool.name).symlink_to(tool)
    ran = _join(tmp_path, "dev", {"NODE_ADDRESS": "", "PATH": str(tools)})
    assert ran.returncode == 2, ran.stderr
    assert "no `ip` command here" in ran.stderr and "NODE_ADDRESS=" in ran.stderr, ran.stderr
    assert "reaches" not in ran.stderr
