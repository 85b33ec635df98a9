"""cluster/join.sh refuses, before it installs or starts anything, a machine whose mode or
secret would make every actor placed on it fail its settings check (README, Adding a machine)."""

from __future__ import annotations

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
)


def _join(
    tmp_path: Path, head_env: str | None, env: dict[str, str], exported: bool = False
) -> subprocess.CompletedProcess[str]:
    """join.sh with the head's credentials copied to RUN_DIR (with `HEAD_APP_ENV=head_env`
    unless None), or `exported` in the environment instead, with no file."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    credentials = {key: f"x{i}" for i, key in enumerate(_KEYS)}
    if not exported:
        lines = [f"{key}={value}" for key, value in credentials.items()]
        if head_env is not None:
            lines.append(f"HEAD_APP_ENV={head_env}")
        (run / "credentials.env").write_text("\n".join(lines) + "\n")
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in (*_KEYS, "APP_ENV", "JWT_SECRET", "NODE_ADDRESS", "HEAD_ADDRESS")
        and not k.endswith("_URL")
    }
    given = credentials if exported else {}
    return subprocess.run(
        ["bash", str(ROOT / "cluster/join.sh"), "10.99.0.1"],
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


def test_credentials_exported_instead_of_copied_pass_the_mode_check(tmp_path: Path) -> None:
    """The documented alternative to copying the file: without it the check read no file and
    the script ended (set -e) with no message at all."""
    ran = _join(tmp_path, None, {"APP_ENV": "prod"}, exported=True)
    assert ran.returncode != 0  # stopped by the next check, with its message
    assert "needs the head's JWT_SECRET" in ran.stderr + ran.stdout, ran.stderr[-600:]
