"""cluster/common.sh `dotenv_value` reads a `.env` line as python-dotenv (the platform's
Settings) reads it: the scripts export what it returns, and the environment wins over `.env` in
Settings, so a different reading is what the platform would run with (a quoted JWT_SECRET with
a comment signed tokens with one secret and checked them with another)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
LINES = [
    "JWT_SECRET=plain",
    'JWT_SECRET="abc" # a comment',
    "JWT_SECRET=prod   ",
    "JWT_SECRET=prod\r",
    'JWT_SECRET="x\\"y"',
    "JWT_SECRET='a b # c'",
    "JWT_SECRET=a=b#c",
    "JWT_SECRET=abc # comment",
    "export JWT_SECRET=exported",
    '  JWT_SECRET = "spaced"  ',
    'JWT_SECRET="back\\\\slash"',
]


@pytest.mark.parametrize("line", LINES)
def test_a_line_reads_as_python_dotenv_reads_it(tmp_path: Path, line: str) -> None:
    (tmp_path / "cluster").mkdir()
    for script in ("common.sh", "tls.sh"):  # (common.sh sources tls.sh)
        shutil.copy(ROOT / "cluster" / script, tmp_path / "cluster" / script)
    env_file = tmp_path / ".env"
    env_file.write_bytes(f"APP_ENV=dev\n{line}\nHTTP_PORT=8080\n".encode())
    script = f'source "{tmp_path}/cluster/common.sh" >/dev/null 2>&1; dotenv_value JWT_SECRET'
    clean = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "RUN_DIR")}
    out = subprocess.run(
        ["bash", "-c", script],
        env={**clean, "RUN_DIR": str(tmp_path / "run")},
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout.decode()
    assert out == dotenv_values(env_file)["JWT_SECRET"]


PORTS = {
    "PG_PORT": "5433",
    "REDIS_PORT": "6380",
    "KAFKA_PORT": "9192",
    "KAFKA_CONTROLLER_PORT": "9193",
    "DASHBOARD_PORT": "8266",
    "RAY_GCS_PORT": "6391",
    "RAY_CLIENT_SERVER_PORT": "10002",
    "DASHBOARD_AGENT_PORT": "52366",
    "HTTP_PORT": "8081",
    "METRICS_EXPORT_PORT": "8091",
    "RAY_SERVE_HAPROXY_STATS_PORT": "8405",
    "RAY_SERVE_HAPROXY_METRICS_PORT": "9102",
}


def test_every_port_comes_from_env_file_unless_the_environment_gives_it(tmp_path: Path) -> None:
    """README: the environment wins over `.env`, and `.env` over the defaults, for the make
    commands too. Only HTTP_PORT and METRICS_EXPORT_PORT were read from `.env`: a PG_PORT
    there moved the platform's Settings, not the scripts' Postgres."""
    (tmp_path / "cluster").mkdir()
    for script in ("common.sh", "tls.sh"):  # (common.sh sources tls.sh)
        shutil.copy(ROOT / "cluster" / script, tmp_path / "cluster" / script)
    (tmp_path / ".env").write_text(
        "".join(f"{k}={v}\n" for k, v in PORTS.items()) + "HTTP_HOST=0.0.0.0\nREDIS_MAXMEMORY=2gb\n"
    )
    shown = " ".join(f"{k}=${{{k}}}" for k in PORTS)
    script = (
        f'source "{tmp_path}/cluster/common.sh" >/dev/null 2>&1\n'
        f'echo "{shown} $RAY_ADDRESS $KAFKA_BOOTSTRAP $HTTP_HOST $REDIS_MAXMEMORY"\n'
        'env | grep -c "^RAY_SERVE_HAPROXY_.*_PORT=" || true'
    )
    clean = {k: v for k, v in os.environ.items() if k not in (*PORTS, "RUN_DIR")}
    clean = {k: v for k, v in clean.items() if k not in ("RAY_ADDRESS", "KAFKA_BOOTSTRAP")}
    clean.pop("HTTP_HOST", None)
    clean.pop("REDIS_MAXMEMORY", None)
    given = {"REDIS_PORT": "7000"}
    out = subprocess.run(
        ["bash", "-c", script],
        env={**clean, **given, "RUN_DIR": str(tmp_path / "run")},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert out[: len(PORTS)] == [f"{k}={given.get(k, v)}" for k, v in PORTS.items()]
    # HAProxy's ports stay unexported (cluster/deploy.py passes every RAY_SERVE_* on)
    assert out[len(PORTS) :] == ["127.0.0.1:6391", "127.0.0.1:9192", "0.0.0.0", "2gb", "0"]


def test_a_local_stack_switch_in_env_file_is_named_not_silently_ignored(tmp_path: Path) -> None:
    """The local stack's switches come from the environment only (cluster/common.sh: the
    harnesses clear NODE_ADDRESS, KAFKA_AUTH and STACK_TLS for heads of their own, which a
    checkout's .env would undo). A line for one in .env did nothing, silently: make up and make
    join now say so, and the value stays out of the scripts."""
    (tmp_path / "cluster").mkdir()
    for script in ("common.sh", "tls.sh"):
        shutil.copy(ROOT / "cluster" / script, tmp_path / "cluster" / script)
    (tmp_path / ".env").write_text("STACK_TLS=on\nJWT_SECRET=x\nexport STAGE_NICENESS=7\n")
    script = (
        f'source "{tmp_path}/cluster/common.sh" >/dev/null\n'
        'echo "[${STACK_TLS:-}] [${STAGE_NICENESS:-}]"\ndotenv_ignored'
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("STACK_TLS", "STAGE_NICENESS")}
    out = subprocess.run(
        ["bash", "-c", script],
        env={**clean, "RUN_DIR": str(tmp_path / "run")},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout == "[off] []\n"  # the single box's own, not .env's "on"
    warned = [line for line in out.stderr.splitlines() if "warning" in line]
    assert len(warned) == 2
    assert "STACK_TLS in .env is not read" in warned[0]
    assert "STAGE_NICENESS in .env is not read" in warned[1]
