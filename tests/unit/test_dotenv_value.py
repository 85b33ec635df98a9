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


SWITCHES = {
    "STAGE_NICENESS": "7",
    "KAFKA_JIT_OPTS": "",  # empty: the full JIT, not the default C1
    "STACK_TLS": "on",
    "KAFKA_AUTH": "scram",
    "RAY_NUM_CPUS": "4",
    "PG_AUTOVACUUM_WORKERS": "3",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "0",
    "RAY_SERVE_HAPROXY_LOG_TARGET": "127.0.0.1:5514",
}


def test_the_local_stacks_switches_come_from_env_file_unless_the_environment_gives_them(
    tmp_path: Path,
) -> None:
    """README: `.env` wins over the defaults for the make commands too. Before, only the ports
    and four settings were read from it: `STACK_TLS=on` there did nothing, silently. Those a
    started program reads from its environment are exported; the others stay in the shell, and
    the RAY_SERVE_* ones reach `ray start` through ray_env."""
    (tmp_path / "cluster").mkdir()
    for script in ("common.sh", "tls.sh"):
        shutil.copy(ROOT / "cluster" / script, tmp_path / "cluster" / script)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in SWITCHES.items()))
    shown = " ".join(f"{k}=${{{k}}}" for k in SWITCHES)
    script = (
        f'source "{tmp_path}/cluster/common.sh" >/dev/null 2>&1\n'
        f'echo "{shown}"\n'
        "env | grep -E '^(STAGE_NICENESS|KAFKA_JIT_OPTS|STACK_TLS|KAFKA_AUTH|RAY_SERVE_.*)=' "
        "| sort\nray_env >/dev/null 2>&1\n"
        "printf '%s\\n' \"${RAY_ENV[@]}\" | grep -E 'THROUGHPUT|LOG_TARGET'"
    )
    clean = {k: v for k, v in os.environ.items() if k not in (*SWITCHES, "RUN_DIR")}
    out = subprocess.run(
        ["bash", "-c", script],
        env={**clean, "RAY_NUM_CPUS": "3", "RUN_DIR": str(tmp_path / "run")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out[0] == " ".join(f"{k}={v}" for k, v in {**SWITCHES, "RAY_NUM_CPUS": "3"}.items())
    assert out[1:3] == ["KAFKA_JIT_OPTS=", "STAGE_NICENESS=7"]  # nothing else exported
    assert out[3:] == [
        "RAY_SERVE_THROUGHPUT_OPTIMIZED=0",
        "RAY_SERVE_HAPROXY_LOG_TARGET=127.0.0.1:5514",
    ]
