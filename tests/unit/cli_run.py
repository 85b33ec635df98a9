"""`python -m cli.main ARGS` as a user runs it, for the CLI's tests: its exit code and output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def orders(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command's run, with `env` on top of this process's environment (no colours, wide)."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
