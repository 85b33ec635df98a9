"""The README's quickstart, run as written against the running stack: the commands of its first
code block (after `make up`, which `make test` has just run: cluster/test.sh starts the stack
with cluster/up.sh, as `make up` does), then the follow-up request the README names until the
order is DELIVERED."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request

import pytest

from core.settings import get_settings
from tests.deploy.manifests import ROOT

pytestmark = pytest.mark.integration

README = ROOT / "README.md"
# Around each curl of the block: print the status after the body, so the answer can be read.
CURL_STATUS = "curl() { command curl -sS -w '\\nHTTP_STATUS=%{http_code}\\n' \"$@\"; }\n"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def quickstart() -> list[str]:
    """The commands of the Quickstart section's first bash block, comments dropped."""
    block = re.search(r"```bash\n(.*?)```", _section("Quickstart"), re.S)
    assert block, "README.md: no bash block in the Quickstart section"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+#.*$", "", x).strip() for x in lines if x.strip()]


def _run(script: str) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", CURL_STATUS + script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _answer(stdout: str) -> tuple[int, dict[str, object]]:
    body, status = stdout.strip().rsplit("HTTP_STATUS=", 1)
    parsed: dict[str, object] = json.loads(body)
    return int(status), parsed


def test_quickstart_starts_with_make_up_and_places_an_order() -> None:
    commands = quickstart()
    assert commands[0] == "make up"
    assert sum(c.startswith("curl ") for c in commands) == 1
    port = get_settings().http_port
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
    except OSError as exc:
        pytest.fail(f"the stack is not up ({exc}): the quickstart's `make up` must come first")
    assert port == 8080, "the README's quickstart is written for the default HTTP_PORT=8080"

    # The rest exactly as written, then the follow-up the README gives with the new order's id.
    status, order = _answer(_run("\n".join(commands[1:])))
    assert status == 202, order
    assert order["status"] == "PENDING"
    follow = re.search(r"Follow it with `(curl [^`]*<orderId>)`", _section("Quickstart"))
    assert follow, "README.md: the Quickstart names no follow-up request"
    script = (
        "\n".join(commands[1:-1])
        + "\n"
        + follow.group(1).replace("<orderId>", str(order["orderId"]))
    )
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        status, current = _answer(_run(script))
        assert status == 200, current
        seen.append(current["status"])
        if current["status"] == "DELIVERED":
            return
        time.sleep(0.5)
    pytest.fail(f"the quickstart's order is not DELIVERED after 60 s (statuses seen: {seen[-5:]})")
