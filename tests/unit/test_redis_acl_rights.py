"""The platform's Redis user reaches the platform's keys and channels only (ACL_RIGHTS): in
Kubernetes the same Redis holds the Ray GCS's tables, which its password reached (`~* &*`).
Each way the stack runs Redis grants exactly those rights, and every key or channel name the
code writes starts with one of its prefixes: a name outside them would be refused (NOPERM)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from adapters.redis_clients import ACL_COMMANDS, ACL_RIGHTS, CHANNEL_PREFIXES, KEY_PREFIXES

ROOT = Path(__file__).resolve().parents[2]
# the modules that name Redis keys or channels
NAMERS = (
    "adapters/provider.py",
    "adapters/status.py",
    "serve_app/admission.py",
    "serve_app/faults.py",
    "actors/shipping.py",
)
_NAME = re.compile(r"^[a-z][a-z-]*:")  # "<prefix>:..." as the platform's names go


@pytest.mark.parametrize(
    "path", ["cluster/services.sh", "docker-compose.yml", "k8s/infra/redis.yaml"]
)
def test_every_stack_grants_the_platforms_user_these_rights_only(path: str) -> None:
    users = [line for line in (ROOT / path).read_text().splitlines() if "user $REDIS_USER" in line
             or "user orders on" in line]  # fmt: skip
    assert len(users) == 1, users
    assert f' {ACL_RIGHTS} {ACL_COMMANDS}"' in users[0], users[0]  # nothing after it
    assert "~*" not in users[0] and "&*" not in users[0], users[0]


def _leading_texts(path: Path) -> list[str]:
    """Every string literal's text and every f-string's leading text in `path`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
        elif isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.append(first.value)
    return out


@pytest.mark.parametrize("path", NAMERS)
def test_every_name_the_code_gives_a_key_is_within_the_rights(path: str) -> None:
    names = [t for t in _leading_texts(ROOT / path) if _NAME.match(t) and " " not in t]
    outside = [n for n in names if not n.startswith((*KEY_PREFIXES, *CHANNEL_PREFIXES))]
    assert not outside, outside


def test_the_prefixes_are_the_names_the_code_uses() -> None:
    from actors.shipping import FAIL_KEY, HOLD_KEY
    from adapters.provider import FAIL_COUNTER_KEY, FAULT_KEY, OPENED_AT_KEY, STATE_KEY
    from adapters.status import channel

    keys = (FAULT_KEY, STATE_KEY, OPENED_AT_KEY, FAIL_COUNTER_KEY, FAIL_KEY, HOLD_KEY)
    assert all(k.startswith(KEY_PREFIXES) for k in keys), keys
    assert channel("o-1").startswith(CHANNEL_PREFIXES)
