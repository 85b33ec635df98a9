"""The console the benchmark talks through (progress lines, tables)."""

from __future__ import annotations

import sys
import time

from rich.console import Console

# Progress lines are one line each, also in a log file or CI (no terminal: no wrapping at 80).
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 130)


def info(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")
