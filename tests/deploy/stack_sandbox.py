"""Running the local stack's shell functions (cluster/common.sh and what sources it) against a
RUN_DIR of a test's own, never the checkout's .run/ nor the running stack: processes a test
starts itself stand for the services, and are killed when it ends."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.deploy.manifests import ROOT

# The stack's variables that must not reach a sandbox from the caller's environment (make test
# exports some): each would point it at the running stack.
_STACK_VARS = (
    "RUN_DIR",
    "CREDENTIALS_FILE",
    "NODE_ADDRESS",
    "HEAD_ADDRESS",
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP",
    "RAY_ADDRESS",
    "RAY_AUTH_TOKEN",
    "KAFKA_AUTH",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_USERNAME",
    "KAFKA_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "STACK_TLS",
    "TLS_CA_FILE",
    "TLS_CA_CERT",
    "TLS_CA_KEY",
    "RAY_USE_TLS",
    "RAY_TLS_SERVER_CERT",
    "RAY_TLS_SERVER_KEY",
    "RAY_TLS_CA_CERT",
    "HEAVY_LOCK_HELD",  # make test holds .run/heavy.lock: a sandbox's heavy.sh takes its own
)


def env(run: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in _STACK_VARS}
    return {**clean, "RUN_DIR": str(run), **extra}


def bash(
    run: Path, script: str, timeout: float = 60, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`script` after `source cluster/common.sh`, with RUN_DIR=run."""
    return subprocess.run(
        ["bash", "-c", f'source "{ROOT}/cluster/common.sh"\n{script}'],
        env=env(run, **extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_ports(count: int, avoid: frozenset[int] = frozenset()) -> list[int]:
    """`count` distinct free ports, none in `avoid`: each socket is held until all are taken (one
    at a time, the kernel may hand out a port twice)."""
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        while len(ports) < count:
            s = held.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
            if port not in avoid:
                ports.append(port)
        return ports


@contextmanager
def process(*args: str, cwd: Path | None = None, code: str = "") -> Iterator[subprocess.Popen[str]]:
    """A Python process with `args` in its command line that runs `code`, then sleeps; it has
    run `code` when this yields, and is killed afterwards."""
    program = f"import sys, time\n{code}\nprint('ready', flush=True)\ntime.sleep(120)"
    proc = subprocess.Popen(
        [sys.executable, "-c", program, *args], cwd=cwd, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def record(run: Path, name: str, pid: int) -> Path:
    """$RUN/pids/NAME.pid holding `pid`, as the stack's scripts write it."""
    (run / "pids").mkdir(parents=True, exist_ok=True)
    path = run / "pids" / f"{name}.pid"
    path.write_text(f"{pid}\n")
    return path


def wait_until(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout}s"
        time.sleep(0.05)


def alive(proc: subprocess.Popen[str]) -> bool:
    return proc.poll() is None


# `code` for process(): SIGTERM does not stop it
IGNORE_TERM = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
