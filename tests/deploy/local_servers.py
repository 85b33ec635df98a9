"""Run the containers' own start scripts and commands (docker/kafka/start.sh, the Redis command of
docker-compose.yml and k8s/, docker/postgres/10-orders-role.sh) with the servers `make up`
installs on this machine, on free loopback ports: what only a Docker daemon or a cluster would
otherwise reveal. Only the image's own launchers are stood in for (a `bin/` of one-line shims)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests.deploy import manifests as m
from tests.deploy import stack_sandbox as sb
from tests.deploy.stack_sandbox import free_port as free_port
from tests.deploy.stack_sandbox import free_ports as free_ports

RUN = Path(os.environ.get("RUN_DIR") or m.ROOT / ".run")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def needed(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(f"{what} not found at {path}: `make up` (cluster/install.sh) installs it")
    return path


def kafka_libs() -> Path:
    common = (m.ROOT / "cluster" / "common.sh").read_text()
    found = re.search(r'KAFKA_VERSION="\$\{KAFKA_VERSION:-([^}]+)\}"', common)
    assert found, "KAFKA_VERSION not found in cluster/common.sh"
    return needed(RUN / f"kafka-{found.group(1)}" / "libs", "Kafka")


# The image's launchers (bin/ of the Kafka distribution), each the class it runs.
KAFKA_TOOLS = {
    "kafka-storage.sh": "kafka.tools.StorageTool",
    "kafka-server-start.sh": "kafka.Kafka",
    "kafka-broker-api-versions.sh": "org.apache.kafka.tools.BrokerApiVersionsCommand",
}


def kafka_home(tmp: Path) -> Path:
    """A BROKER_HOME whose bin/ runs the local stack's Kafka jars, as the image's bin/ does."""
    libs, logs = kafka_libs(), tmp / "logs"
    log4j = m.ROOT / "cluster" / "kafka" / "log4j2.yaml"
    (tmp / "bin").mkdir(parents=True)
    logs.mkdir()
    for name, main in KAFKA_TOOLS.items():
        shim = tmp / "bin" / name
        shim.write_text(
            "#!/usr/bin/env bash\n"
            f"exec java ${{KAFKA_HEAP_OPTS:--Xmx256m}} -XX:TieredStopAtLevel=1 "
            f'-Dlog4j2.configurationFile={log4j} -Dkafka.logs.dir={logs} -cp "{libs}/*" '
            f'{main} "$@"\n'
        )
        shim.chmod(0o755)
    return tmp


def shims(tmp: Path, scripts: dict[str, str]) -> str:
    """A PATH whose first directory holds `scripts` (name -> shell body)."""
    (tmp / "shims").mkdir(parents=True, exist_ok=True)
    for name, body in scripts.items():
        path = tmp / "shims" / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return f"{tmp / 'shims'}:{os.environ['PATH']}"


@contextlib.contextmanager
def server(
    command: list[str],
    env: dict[str, str],
    port: int,
    log: Path,
    timeout_s: float = 90,
    logs_dir: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` in its own session, wait until it listens on `port`, stop it after
    (a failure shows the end of its output and of the logs in `logs_dir`)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                logs = sorted(logs_dir.glob("*.log")) if logs_dir else []
                tails = "".join(f"\n--- {p}\n{p.read_text()[-3000:]}" for p in [log, *logs])
                pytest.fail(f"{command[:2]} (exit {proc.poll()}) did not listen on {port}:{tails}")
            time.sleep(0.3)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def process_text(pid: int) -> str:
    """A process's environment and command line, as anyone who can read /proc sees them."""
    proc = Path("/proc") / str(pid)
    return (proc / "environ").read_bytes().decode() + (proc / "cmdline").read_bytes().decode()


def localize_kafka(env: dict[str, str], data: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The broker's environment on free loopback ports and a local data directory (its heap as
    configured: the log cleaner alone takes 128 MB at start); returns it and listener name -> its
    port."""
    listeners = dict(x.split("://") for x in env["KAFKA_LISTENERS"].split(","))
    ports = dict(zip(listeners, free_ports(len(listeners)), strict=True))

    def local(name: str, address: str) -> str:
        host = address.rsplit(":", 1)[0]
        return f"{name}://{host or '127.0.0.1'}:{ports[name]}"

    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    advertised = [x.split("://")[0] for x in env["KAFKA_ADVERTISED_LISTENERS"].split(",")]
    return {
        **env,
        "KAFKA_LISTENERS": ",".join(local(n, a) for n, a in listeners.items()),
        "KAFKA_ADVERTISED_LISTENERS": ",".join(f"{n}://127.0.0.1:{ports[n]}" for n in advertised),
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@localhost:{ports[controller]}",
        "KAFKA_LOG_DIRS": str(data),
    }, ports


def listener_of(env: dict[str, str], bootstrap: str) -> str:
    """The listener a client's KAFKA_BOOTSTRAP reaches (by port: the Service and the pod name
    differ in k8s)."""
    port = bootstrap.rsplit(":", 1)[1]
    (name,) = [
        x.split("://")[0]
        for x in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        if x.rsplit(":", 1)[1] == port
    ]
    return name


class LocalRedis:
    """cluster/services.sh's Redis for a sandbox `run` directory, on a free loopback port with
    a 3 MB cap; `client()` logs in as the platform's user, with the credentials it made."""

    SERVICES = m.ROOT / "cluster" / "services.sh"

    def __init__(self, run: Path) -> None:
        self.run, self.port = run, free_port()
        self.extra = {
            "REDIS_PORT": str(self.port),
            "REDIS_MAXMEMORY": "3mb",
            "NODE_ADDRESS": "127.0.0.1",
        }
        self.env = sb.env(run, **self.extra)
        needed(Path(shutil.which("redis-server") or "/nonexistent"), "redis-server")

    def start(self, services: Path = SERVICES) -> None:
        subprocess.run([services, "start", "redis"], env=self.env, check=True, timeout=60)

    def stop(self) -> None:
        subprocess.run([self.SERVICES, "stop", "redis"], env=self.env, check=True, timeout=60)

    def client(self) -> redis.Redis:
        script = "load_credentials; derive_urls; echo $REDIS_URL"
        url = urlsplit(sb.bash(self.run, script, 60, **self.extra).stdout.strip())
        return redis.Redis(port=self.port, username=url.username, password=url.password)
