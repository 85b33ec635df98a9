"""The Postman collection, run by newman against the running stack, passes every test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from core.settings import DEV_SECRET, Settings, get_settings
from tests.deploy.manifests import ROOT

pytestmark = pytest.mark.integration

COLLECTION = ROOT / "docs" / "postman" / "collection.json"
DEFAULT_PORT = Settings.model_fields["http_port"].default


def _newman() -> str:
    """Install newman (pinned, into .run/node) if needed; return its path."""
    out = subprocess.run(
        [str(ROOT / "cluster" / "install-node-tools.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return out.strip().splitlines()[-1]


def _requests(items: list[dict[str, object]]) -> int:
    total = 0
    for i in items:
        total += _requests(i["item"]) if "item" in i else 1  # type: ignore[arg-type]
    return total


def _overrides(directory: Path) -> list[str]:
    """Nothing against the default local stack: the collection mints its own tokens from
    `jwtSecret` (default devsecret) for http://localhost:8080. Only a stack started with another
    port or secret gets those two variables, in a Postman environment file of mode 600: on
    newman's command line (`--env-var`) the secret was readable by every local user for the
    run's minutes (/proc/PID/cmdline)."""
    s = get_settings()
    values = []
    if s.http_port != DEFAULT_PORT:
        values.append({"key": "baseUrl", "value": f"http://localhost:{s.http_port}"})
    if s.jwt_secret != DEV_SECRET:
        values.append({"key": "jwtSecret", "value": s.jwt_secret})
    if not values:
        return []
    env = directory / "stack.postman_environment.json"
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"name": "stack", "values": values}, out)
    return ["--environment", str(env)]


def test_collection_passes_against_the_running_stack(tmp_path: Path) -> None:
    base_url = f"http://127.0.0.1:{get_settings().http_port}"
    try:
        urllib.request.urlopen(f"{base_url}/health", timeout=5)
    except OSError as exc:
        pytest.fail(f"the gateway is not answering on {base_url} ({exc}); start it with `make up`")

    report = tmp_path / "newman.json"
    # `newman run docs/postman/collection.json`, as the README gives it, plus a report to read.
    args = [_newman(), "run", str(COLLECTION.relative_to(ROOT)), *_overrides(tmp_path)]
    args += ["--reporters", "cli,json", "--reporter-json-export", str(report), "--color", "off"]
    # A request times out after 20 s without a byte; the whole run after 3 min (the SSE request
    # only ends at the order's final status, and the stream's keep-alive pings reset the first).
    args += ["--timeout-request", "20000", "--timeout", "180000"]
    result = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert report.exists(), result.stdout + result.stderr

    run = json.loads(report.read_text())["run"]
    failures = [f"{f['source']['name']}: {f['error']['message']}" for f in run["failures"]]
    assert not failures, "\n".join(failures)
    assert result.returncode == 0, result.stdout[-4000:]
    expected = _requests(json.loads(COLLECTION.read_text())["item"])
    assert run["stats"]["requests"]["total"] == expected
    # At least one test per request: a collection without tests would pass vacuously.
    assert run["stats"]["assertions"]["total"] >= expected


def test_collection_needs_no_variables_for_the_local_stack() -> None:
    """The tokens come from the collection's own pre-request script, not from outside."""
    collection = json.loads(COLLECTION.read_text())
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["baseUrl"] == f"http://localhost:{DEFAULT_PORT}"
    assert variables["jwtSecret"] == DEV_SECRET
    assert not {"token", "otherToken", "adminToken"} & variables.keys()
    (prerequest,) = [e for e in collection["event"] if e["listen"] == "prerequest"]
    script = "\n".join(prerequest["script"]["exec"])
    for name in ("token", "otherToken", "adminToken", "HmacSHA256", "jwtSecret"):
        assert name in script


def test_another_stacks_secret_reaches_newman_in_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on its command line, which every local user reads (/proc/PID/cmdline)."""
    secret = "s3cret-" + "x" * 32
    theirs = get_settings().model_copy(update={"jwt_secret": secret, "http_port": 18080})
    monkeypatch.setattr(sys.modules[__name__], "get_settings", lambda: theirs)
    args = _overrides(tmp_path)
    assert secret not in " ".join(args) and args[0] == "--environment"
    env = Path(args[1])
    assert env.stat().st_mode & 0o777 == 0o600
    values = {v["key"]: v["value"] for v in json.loads(env.read_text())["values"]}
    assert values == {"jwtSecret": secret, "baseUrl": "http://localhost:18080"}
