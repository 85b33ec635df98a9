"""The README as it renders and as it is copied from: every table whole (a blank line inside
one ends it, and the rest shows as text), and the seed's own token recipe runs as written in a
shell whose PATH has no venv (PyJWT is only in .venv)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def _outside_code(lines: list[str]) -> list[tuple[int, str]]:
    out, fenced = [], False
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append((number, line))
    return out


def test_every_table_starts_with_its_header_and_is_not_cut() -> None:
    lines = _outside_code(README.read_text().splitlines())
    cut = [
        number
        for i, (number, line) in enumerate(lines)
        if line.startswith("|")
        and (i == 0 or not lines[i - 1][1].startswith("|"))
        and not (i + 1 < len(lines) and SEPARATOR.match(lines[i + 1][1]))
    ]
    assert not cut, f"README.md: table rows without a header (a blank line cut a table?): {cut}"


def test_the_seeds_token_recipe_runs_as_written() -> None:
    text = README.read_text()
    start = text.index("The seed's own token recipe works as well:")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block, "README.md: no bash block after the seed's own token recipe"
    venv = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv)
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)],
        cwd=ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    claims = jwt.decode(
        ran.stdout.strip(), "devsecret", algorithms=["HS256"], audience="orders-api"
    )
    assert claims["sub"] == "customer1" and claims["roles"] == ["customer"]
