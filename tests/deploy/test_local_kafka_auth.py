"""The local stack's Kafka with SCRAM (ADR-011): cluster/services.sh's broker in a RUN_DIR of the
test's own, on loopback with `KAFKA_AUTH=scram` (the default, and the mode multi-host heads
always run in; the namespace harness of tests/multinode runs it on a bridge address). The
broker takes the platform's SCRAM login only, keeps the password out of its command line and
environment, and sets the user again when the password changes. `kafka_auth`
(cluster/common.sh) picks the mode."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from tests.deploy import local_servers as ls
from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT
from tests.kafka_login import login_properties, partitions_or_refused

SERVICES = str(ROOT / "cluster" / "services.sh")


def _settings(port: int, password: str, protocol: str = "SASL_PLAINTEXT") -> Settings:
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        kafka_security_protocol=protocol,
        kafka_username="orders",
        kafka_password=password,
    )


def _controller_answers(tmp: Path, port: int, password: str | None = None) -> bool:
    """Whether the controller's listener answers Kafka's config tool (`--bootstrap-controller`,
    what aiokafka cannot speak to), without a login or with the PLAIN one of `password`."""
    props = ["default.api.timeout.ms=8000", "request.timeout.ms=4000"]
    if password is not None:
        props += login_properties("PLAIN", "orders", password)
    config = tmp / "controller-client.properties"
    config.write_text("\n".join(props) + "\n")
    config.chmod(0o600)
    proc = subprocess.run(
        ["java", "-XX:TieredStopAtLevel=1", "-cp", f"{ls.kafka_libs()}/*",
         "kafka.admin.ConfigCommand", "--bootstrap-controller", f"127.0.0.1:{port}",
         "--command-config", str(config), "--describe", "--entity-type", "brokers",
         "--entity-default"],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    return proc.returncode == 0 and "Default configs for brokers" in proc.stdout


def _accepted(s: Settings) -> bool:
    return partitions_or_refused(s, "no-such-topic") is not None


class _Broker:
    def __init__(self, run: Path) -> None:
        self.run = run
        self.port, self.cport = ls.free_ports(2)

    def services(self, cmd: str, password: str, auth: str = "scram") -> str:
        env = sb.env(
            self.run,
            KAFKA_AUTH=auth,
            KAFKA_PASSWORD=password,
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.cport),
            NODE_ADDRESS="127.0.0.1",
            START_TIMEOUT_S="120",
        )
        proc = subprocess.run(
            ["bash", SERVICES, cmd, "kafka"], env=env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    def pid(self) -> int:
        return int((self.run / "pids" / "kafka.pid").read_text().split()[0])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[_Broker]:
    run = tmp_path / "run"
    run.mkdir()
    home = ls.kafka_libs().parent  # the stack's Kafka, as cluster/services.sh finds it
    (run / home.name).symlink_to(home)
    b = _Broker(run)
    try:
        yield b
    finally:
        if (run / "pids" / "kafka.pid").exists():
            b.services("stop", "unused")


@pytest.mark.timeout(900)  # six broker starts and seven tool JVMs: ~160 s, more on a slow box
def test_the_broker_takes_the_platforms_scram_login_only(broker: _Broker) -> None:
    first, second = secrets.token_hex(16), secrets.token_hex(16)
    broker.services("start", first, auth="none")
    assert _accepted(_settings(broker.port, "", "PLAINTEXT"))
    # a broker running without SCRAM where SCRAM is asked for starts again, with it
    out = broker.services("start", first)
    assert "starting it again" in out and "setting SCRAM user orders" in out, out
    assert "(scram," in out, out
    assert _accepted(_settings(broker.port, first))
    assert not _accepted(_settings(broker.port, "not-the-password")), "a wrong password passed"
    assert not _accepted(_settings(broker.port, "", "PLAINTEXT")), "a client without SASL passed"
    # the controller's listener (loopback) changes users and topics: it takes the login too
    tmp = broker.run.parent
    assert _controller_answers(tmp, broker.cport, first)
    assert not _controller_answers(tmp, broker.cport), "the controller answered without a login"
    assert not _controller_answers(tmp, broker.cport, "not-the-password")
    assert first not in ls.process_text(broker.pid())
    assert not list((broker.run / "kafka").glob("*login*")), "the setup's login file is left"
    conf = broker.run / "kafka" / "server.properties"
    assert conf.stat().st_mode & 0o077 == 0
    assert not (broker.run / "kafka" / "scram-user.properties").exists()

    # a restart with the same password sets nothing; a changed one is set before the start
    broker.services("stop", first)
    assert "setting SCRAM user" not in broker.services("start", first)
    broker.services("stop", first)
    assert "setting SCRAM user" in broker.services("start", second)
    assert _accepted(_settings(broker.port, second))
    assert not _accepted(_settings(broker.port, first)), "the old password still passes"


def _auth(run: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = 'echo "$KAFKA_AUTH ${KAFKA_SECURITY_PROTOCOL:-PLAINTEXT} $KAFKA_USERNAME"'
    return sb.bash(run, script, 60, **env)


def test_kafka_auth_follows_the_heads_address(tmp_path: Path) -> None:
    """SCRAM unless `none` is asked for on loopback (and then a warning at the broker's start),
    never `none` on an address others reach (not even a single box's recorded `none`)."""
    assert _auth(tmp_path).stdout.split() == ["scram", "SASL_PLAINTEXT", "orders"]
    assert _auth(tmp_path, KAFKA_AUTH="none").stdout.split() == ["none", "PLAINTEXT", "orders"]
    # `none` is never silent: make up warns each time (cluster/up.sh)
    warned = sb.bash(tmp_path, "kafka_auth_check", KAFKA_AUTH="none")
    assert "can read and write every topic" in warned.stderr, warned.stderr
    assert sb.bash(tmp_path, "kafka_auth_check").stderr == ""
    assert _auth(tmp_path, KAFKA_AUTH="scram").stdout.split()[:2] == ["scram", "SASL_PLAINTEXT"]
    # on the network over TLS too (cluster/tls.sh)
    assert _auth(tmp_path, NODE_ADDRESS="10.1.2.3").stdout.split()[:2] == ["scram", "SASL_SSL"]
    # the broker listens on this machine's address, whatever the head's
    on_node = _auth(tmp_path, NODE_ADDRESS="10.1.2.3", HEAD_ADDRESS="127.0.0.1")
    assert on_node.stdout.split()[:2] == ["scram", "SASL_SSL"], on_node.stderr
    stale = _auth(tmp_path, KAFKA_AUTH="scram", KAFKA_SECURITY_PROTOCOL="PLAINTEXT")
    assert stale.stdout.split()[1] == "SASL_PLAINTEXT"
    refused = _auth(tmp_path, NODE_ADDRESS="10.1.2.3", KAFKA_AUTH="none")
    assert refused.returncode != 0 and "SCRAM clients only" in refused.stderr
    (tmp_path / "node.env").write_text("NODE_ADDRESS=127.0.0.1\nKAFKA_AUTH=none\n")
    assert _auth(tmp_path, HEAD_ADDRESS="10.1.2.3").stdout.split()[0] == "scram"
    (tmp_path / "node.env").write_text("NODE_ADDRESS=127.0.0.1\nKAFKA_AUTH=scram\n")
    assert _auth(tmp_path).stdout.split()[0] == "scram"
    assert _auth(tmp_path / "x", STACK_TLS="on").stdout.split()[:2] == ["scram", "SASL_SSL"]
    # a single box's recorded `none` does not follow it into TLS either
    (tmp_path / "node.env").write_text("NODE_ADDRESS=127.0.0.1\nKAFKA_AUTH=none\n")
    assert _auth(tmp_path, STACK_TLS="on").stdout.split()[:2] == ["scram", "SASL_SSL"]
    no_login = _auth(tmp_path / "x", STACK_TLS="on", KAFKA_AUTH="none")
    assert no_login.returncode != 0 and "takes SCRAM clients" in no_login.stderr


def test_ray_is_started_again_when_the_kafka_login_changed(tmp_path: Path) -> None:
    """Ray's processes keep the Kafka client settings of their start, and `none` sets none, so
    `KAFKA_AUTH=none make up` on a running stack left every actor logging in to a broker that
    took no logins (its readiness wait failed after 120 s). `ray_start` starts Ray again when
    its head's environment has another login than now's (cluster/services.sh)."""
    (tmp_path / "pids").mkdir()
    current = "kafka_login_current ray && echo same || echo other"
    assert sb.bash(tmp_path, current).stdout.strip() == "same"  # no Ray: nothing to judge
    for protocol, same, other in (("SASL_PLAINTEXT", "scram", "none"), (None, "none", "scram")):
        env = {k: v for k, v in os.environ.items() if k != "KAFKA_SECURITY_PROTOCOL"}
        if protocol is not None:
            env["KAFKA_SECURITY_PROTOCOL"] = protocol
        head = subprocess.Popen(["sleep", "120"], env=env)  # a Ray head started in that mode
        try:
            (tmp_path / "pids" / "ray.pid").write_text(f"{head.pid}\n")
            assert sb.bash(tmp_path, current, KAFKA_AUTH=same).stdout.strip() == "same"
            assert sb.bash(tmp_path, current, KAFKA_AUTH=other).stdout.strip() == "other"
        finally:
            head.kill()
            head.wait()
    start = (ROOT / "cluster" / "services.sh").read_text().split("ray_start() {", 1)[1]
    assert "! kafka_login_current ray" in start.split("\n}\n", 1)[0]


def test_the_credentials_file_tells_the_tools_how_to_log_in(tmp_path: Path) -> None:
    """core/settings.py reads it: a tool run outside the scripts logs in as the stack does."""
    result = sb.bash(tmp_path, "ensure_credentials", KAFKA_AUTH="scram")
    assert result.returncode == 0, result.stderr
    lines = dict(
        line.split("=", 1)
        for line in (tmp_path / "credentials.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert lines["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert lines["KAFKA_USERNAME"] == "orders" and len(lines["KAFKA_PASSWORD"]) == 64
    assert os.stat(tmp_path / "credentials.env").st_mode & 0o077 == 0
    sb.bash(tmp_path, "ensure_credentials", KAFKA_AUTH="none")
    text = (tmp_path / "credentials.env").read_text()
    assert "KAFKA_SECURITY_PROTOCOL" not in text
    assert f"KAFKA_PASSWORD={lines['KAFKA_PASSWORD']}" in text  # kept
