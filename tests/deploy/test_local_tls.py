"""TLS of the local stack (cluster/tls.sh): Postgres, Redis and Kafka of cluster/services.sh in a
RUN_DIR of the test's own, on loopback with `STACK_TLS=on` (what multi-host mode always runs;
tests/multinode runs it on a bridge address). Each takes TLS clients only, with the certificate
of the stack's CA, which a client checks by address; the keys are private, the CA reaches a
joining machine through the credentials file, and `stack_tls` picks the mode."""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.settings import Settings
from tests.deploy import local_servers as ls
from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT
from tests.kafka_login import partitions_or_refused
from tests.tls_probes import pg_over_tls, redis_user

SERVICES = str(ROOT / "cluster" / "services.sh")
PARTS = ("pg", "redis", "kafka")


@dataclass
class Stack:
    run: Path
    env: dict[str, str]

    def services(self, cmd: str, part: str) -> str:
        proc = subprocess.run(
            ["bash", SERVICES, cmd, part], env=self.env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def credentials(self) -> dict[str, str]:
        text = (self.run / "credentials.env").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line[:40])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.fail("the stack's Postgres runs as the postgres user: run as root", pytrace=False)
    top = Path(tempfile.mkdtemp(prefix="tls-"))
    top.chmod(0o755)  # the postgres user enters RUN_DIR (its data directory is $RUN/pg)
    run = top / "run"
    run.mkdir(mode=0o755)
    home = ls.kafka_libs().parent  # the stack's Kafka, as cluster/services.sh finds it
    (run / home.name).symlink_to(home)
    names = ("PG_PORT", "REDIS_PORT", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT")
    ports = {k: str(port) for k, port in zip(names, sb.free_ports(4), strict=True)}
    env = sb.env(run, STACK_TLS="on", NODE_ADDRESS="127.0.0.1", START_TIMEOUT_S="120", **ports)
    s = Stack(run, env)
    try:
        for part in PARTS:
            s.services("start", part)
        yield s
    finally:
        for part in reversed(PARTS):
            subprocess.run(["bash", SERVICES, "stop", part], env=env, timeout=120, check=False)
        shutil.rmtree(top, ignore_errors=True)


def _other_ca(tmp: Path) -> str:
    """A CA of another stack: a client checking against it must refuse the server."""
    key, crt = tmp / "other.key", tmp / "other.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=other", "-keyout", str(key), "-out", str(crt)],
        capture_output=True, check=True,
    )  # fmt: skip
    return str(crt)


def _kafka(creds: dict[str, str], **change: str) -> list[int] | None:
    s = Settings(
        kafka_bootstrap=f"127.0.0.1:{creds['HEAD_KAFKA_PORT']}",
        kafka_security_protocol=creds["KAFKA_SECURITY_PROTOCOL"],
        kafka_username="orders",
        kafka_password=creds["KAFKA_PASSWORD"],
        kafka_ssl_cafile=creds["KAFKA_SSL_CAFILE"],
    )
    return partitions_or_refused(s.model_copy(update=change), "no-such-topic")


def test_each_service_takes_tls_clients_only(stack: Stack, tmp_path: Path) -> None:
    creds = stack.credentials()
    dsn, url = creds["DATABASE_URL"], creds["REDIS_URL"]
    assert "sslmode=verify-full" in dsn and url.startswith("rediss://"), (dsn, url)
    other = _other_ca(tmp_path)
    assert pg_over_tls(dsn) is True
    assert pg_over_tls(dsn.split("?")[0] + "?sslmode=disable") is None, "Postgres took plain"
    assert pg_over_tls(dsn.replace(creds["KAFKA_SSL_CAFILE"], other)) is None, "another CA passed"
    assert redis_user(url) == "orders"
    plain = "redis" + url.split("?")[0].removeprefix("rediss")
    assert redis_user(plain) is None, "Redis took a plain client"
    assert redis_user(url.split("?")[0], ssl_ca_certs=other) is None, "another CA passed"
    assert creds["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert _kafka(creds) == []
    assert _kafka(creds, kafka_security_protocol="SASL_PLAINTEXT") is None, "Kafka took plain"
    assert _kafka(creds, kafka_ssl_cafile=other) is None, "another CA passed"
    assert _kafka(creds, kafka_password="not-the-password") is None


def test_the_keys_are_private_and_a_restart_keeps_the_certificates(stack: Stack) -> None:
    tls = stack.run / "tls"
    assert tls.stat().st_mode & 0o077 == 0
    for key in (tls / "ca.key", tls / "server.key", stack.run / "kafka" / "keystore.pem"):
        assert key.stat().st_mode & 0o077 == 0, key
    pg_key = stack.run / "pg" / "server.key"
    assert pg_key.owner() == "postgres" and pg_key.stat().st_mode & 0o077 == 0
    before = {p.name: p.read_bytes() for p in tls.glob("*.pem")}
    for part in PARTS:
        out = stack.services("start", part)
        assert "tls:" not in out and "starting" not in out, out  # running as wanted: kept
    assert {p.name: p.read_bytes() for p in tls.glob("*.pem")} == before
    # a joining machine gets the CA from the credentials file
    ca = base64.b64decode(stack.credentials()["TLS_CA_CERT"])
    assert ca == before["ca.pem"]


def test_a_new_certificate_reaches_every_server(stack: Stack) -> None:
    """A certificate made again (a new address, a renewal): `make up`'s starts give it to
    each server, restarting Redis and Kafka, which hold theirs (cluster/tls.sh, tls_mark)."""
    tls = stack.run / "tls"
    (tls / "server.pem").unlink()
    out = stack.services("start", "pg")
    assert "tls: this machine's certificate" in out, out
    new = (tls / "server.pem").read_text()
    assert "redis: starting" in stack.services("start", "redis")
    assert "starting it again" in stack.services("start", "kafka")
    port = int(stack.env["REDIS_PORT"])
    served = ssl.get_server_certificate(("127.0.0.1", port), ca_certs=str(tls / "ca.pem"))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(new)
    creds = stack.credentials()
    assert pg_over_tls(creds["DATABASE_URL"]) is True
    assert redis_user(creds["REDIS_URL"]) == "orders"
    assert _kafka(creds) == []


def _tls(run: Path, script: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return sb.bash(run, f'{script}\necho "$STACK_TLS ${{TLS_CA_FILE:-}}"', 60, **env)


def test_stack_tls_follows_the_network(tmp_path: Path) -> None:
    """Off on loopback unless asked for; on whenever this machine's or the head's address is
    one others reach, where `off` is refused and a single box's recorded `off` does not
    follow."""
    assert _tls(tmp_path).stdout.split() == ["off"]
    assert _tls(tmp_path, STACK_TLS="on").stdout.split() == ["on", f"{tmp_path}/tls/ca.pem"]
    assert _tls(tmp_path, NODE_ADDRESS="10.1.2.3").stdout.split()[0] == "on"
    assert _tls(tmp_path, HEAD_ADDRESS="10.1.2.3").stdout.split()[0] == "on"
    refused = _tls(tmp_path, NODE_ADDRESS="10.1.2.3", STACK_TLS="off")
    assert refused.returncode != 0 and "TLS clients only" in refused.stderr
    (tmp_path / "node.env").write_text("NODE_ADDRESS=127.0.0.1\nSTACK_TLS=off\n")
    assert _tls(tmp_path, HEAD_ADDRESS="10.1.2.3").stdout.split()[0] == "on"
    (tmp_path / "node.env").write_text("NODE_ADDRESS=127.0.0.1\nSTACK_TLS=on\n")
    assert _tls(tmp_path).stdout.split()[0] == "on"


def test_a_joining_machine_takes_the_ca_from_the_credentials_file(tmp_path: Path) -> None:
    head, joiner = tmp_path / "head", tmp_path / "joiner"
    head.mkdir()
    joiner.mkdir()
    made = sb.bash(head, "ensure_credentials", STACK_TLS="on")
    assert made.returncode == 0, made.stderr
    creds = head / "credentials.env"
    copied = _tls(joiner, "tls_ca_from_credentials", HEAD_ADDRESS="10.1.2.3",
                  NODE_ADDRESS="10.1.2.4", CREDENTIALS_FILE=str(creds))  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    assert (joiner / "tls" / "ca.pem").read_bytes() == (head / "tls" / "ca.pem").read_bytes()
    # its own certificate, for its own address (Ray's mutual TLS: a server's and a client's)
    mine = joiner / "tls" / "server.pem"
    names = subprocess.run(
        ["openssl", "x509", "-in", str(mine), "-noout", "-ext", "subjectAltName,extendedKeyUsage"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "IP Address:10.1.2.4" in names and "Client Authentication" in names, names
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(head / "tls" / "ca.pem"), str(mine)], check=False
    )
    assert verified.returncode == 0
    assert (joiner / "tls" / "server.key").stat().st_mode & 0o077 == 0
    without = tmp_path / "old.env"
    without.write_text("".join(line for line in creds.open() if "TLS_CA_CERT" not in line))
    missing = _tls(joiner, "tls_ca_from_credentials", HEAD_ADDRESS="10.1.2.3",
                   NODE_ADDRESS="10.1.2.4", CREDENTIALS_FILE=str(without))  # fmt: skip
    assert missing.returncode != 0 and "TLS_CA_CERT is not in" in missing.stderr


def test_switching_tls_on_restarts_a_running_redis(tmp_path: Path) -> None:
    """A Redis started without TLS, then `STACK_TLS=on`: started again with it. Its readiness
    probe has a deadline: a TLS client waits for ever on a server without TLS, which held
    `make up` (found measuring TLS's cost, 2026-12-07)."""
    run = tmp_path / "run"
    run.mkdir()
    ports = {"REDIS_PORT": str(ls.free_port()), "NODE_ADDRESS": "127.0.0.1"}
    plain = Stack(run, sb.env(run, STACK_TLS="off", **ports))
    tls = Stack(run, sb.env(run, STACK_TLS="on", **ports))
    try:
        plain.services("start", "redis")
        assert redis_user(plain.credentials()["REDIS_URL"]) == "orders"
        started = time.monotonic()
        assert "redis: starting" in tls.services("start", "redis")
        assert time.monotonic() - started < 60
        url = tls.credentials()["REDIS_URL"]
        assert url.startswith("rediss://") and redis_user(url) == "orders"
    finally:
        subprocess.run(["bash", SERVICES, "stop", "redis"], env=tls.env, timeout=60, check=False)
