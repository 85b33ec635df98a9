"""The `orders` command line's expected failures are a message and an exit code, never a
traceback: a setting that does not parse (exit 2), a broker that does not answer (exit 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _orders(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_invalid_setting_is_a_message_and_exit_2() -> None:
    result = _orders("watch", "0193a0a0-0000-7000-8000-000000000000", HTTP_PORT="abc")
    assert result.returncode == 2, result.stderr
    assert "HTTP_PORT" in result.stderr and "Traceback" not in result.stderr


def test_a_broker_that_does_not_answer_is_a_message_and_exit_1() -> None:
    result = _orders("dlq", "list", "order.created", KAFKA_BOOTSTRAP="127.0.0.1:1")
    assert result.returncode == 1, result.stderr
    assert "KafkaConnectionError" in result.stderr and "Traceback" not in result.stderr
    assert "orders status" in result.stderr
