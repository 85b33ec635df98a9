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
    shutil.copy(ROOT / "cluster" / "common.sh", tmp_path / "cluster" / "common.sh")
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
