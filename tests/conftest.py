"""Tests run by a bare `pytest` see the environment the stack's scripts give (cluster/common.sh):
the generated credentials (the connection URLs, Ray's token) and Ray's loopback switch. It has to
be in place before anything imports ray, which reads these variables at import time. Under
`make test` the scripts have set them already, and what is set wins."""

from __future__ import annotations

import os
from pathlib import Path

_RUN = Path(os.environ.get("RUN_DIR") or Path(__file__).resolve().parents[1] / ".run")


def _pairs(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    lines = [line for line in path.read_text().splitlines() if "=" in line]
    return dict(line.split("=", 1) for line in lines if not line.startswith("#"))


def node_address() -> str:
    """The address `make up` recorded for this checkout's stack (loopback unless set)."""
    return _pairs(_RUN / "node.env").get("NODE_ADDRESS", "127.0.0.1")


def _stack_environment() -> None:
    credentials = _pairs(_RUN / "credentials.env")
    for key, value in credentials.items():
        os.environ.setdefault(key, value)
    if os.environ.get("RAY_AUTH_TOKEN"):
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    if (_RUN / "node.env").is_file():
        node = node_address()
        loopback = node.startswith("127.") or node in ("::1", "localhost")
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0" if loopback else "1")


_stack_environment()
