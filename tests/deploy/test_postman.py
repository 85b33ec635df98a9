"""The Postman collection, run by newman against the running stack, passes every test."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from core.auth import make_token
from core.settings import get_settings
from tests.deploy.manifests import ROOT

pytestmark = pytest.mark.integration

COLLECTION = ROOT / "docs" / "postman" / "collection.json"
BASE_URL = "http://127.0.0.1:8080"


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
    return sum(_requests(i["item"]) if "item" in i else 1 for i in items)  # type: ignore[arg-type]


def test_collection_passes_against_the_running_stack(tmp_path: Path) -> None:
    try:
        urllib.request.urlopen(f"{BASE_URL}/health", timeout=5)
    except OSError as exc:
        pytest.fail(f"the gateway is not answering on {BASE_URL} ({exc}); start it with `make up`")
    s = get_settings()

    def token(sub: str, role: str) -> str:
        return make_token(
            sub, [role], secret=s.jwt_secret, audience=s.jwt_audience, issuer=s.jwt_issuer
        )

    report = tmp_path / "newman.json"
    variables = {
        "baseUrl": BASE_URL,
        "token": token("customer1", "customer"),
        "otherToken": token("customer2", "customer"),
        "adminToken": token("admin1", "admin"),
    }
    args = [
        _newman(),
        "run",
        str(COLLECTION),
        "--reporters",
        "cli,json",
        "--reporter-json-export",
        str(report),
        "--timeout-request",
        "20000",
        "--color",
        "off",
    ]
    for key, value in variables.items():
        args += ["--env-var", f"{key}={value}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert report.exists(), result.stdout + result.stderr

    run = json.loads(report.read_text())["run"]
    failures = [f"{f['source']['name']}: {f['error']['message']}" for f in run["failures"]]
    assert not failures, "\n".join(failures)
    assert result.returncode == 0, result.stdout[-4000:]
    expected = _requests(json.loads(COLLECTION.read_text())["item"])
    assert run["stats"]["requests"]["total"] == expected
    # At least one test per request: a collection without tests would pass vacuously.
    assert run["stats"]["assertions"]["total"] >= expected
