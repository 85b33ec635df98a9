"""`orders status` run as the README shows it (no `make`, so no environment of
cluster/common.sh): Ray's token and ports from the stack's files, and a gateway that rejects the
token or shows no checks leaves the pipeline unknown and the exit status 1 (cli/status.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from adapters.audit import TableSize
from cli import api, render, status
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ray-token-of-the-stack"


class _Dashboard(BaseHTTPRequestHandler):
    """Ray's dashboard as the stack runs it: /api/version for its token only."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        body = json.dumps({"ray_version": "9.9.9"}).encode() if ok else b"{}"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("ports_in", [".env", "node.env"])
def test_ray_token_and_ports_come_from_the_stacks_files(
    tmp_path: Path, dashboard: int, ports_in: str
) -> None:
    """RAY_AUTH_TOKEN from .run/credentials.env, NODE_ADDRESS from .run/node.env, RAY_GCS_PORT
    and DASHBOARD_PORT from .env or from node.env, where `make up` records the ports it was
    given (`RAY_GCS_PORT=6391 make up`): the dashboard said 401 to every such run, and a stack
    started on other ports was reported down."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "credentials.env").write_text(f"REDIS_PASSWORD=x\nRAY_AUTH_TOKEN={TOKEN}\n")
    with socket.create_server(("127.0.0.1", 0)) as gcs:
        gcs_port = gcs.getsockname()[1]
        ports = f"RAY_GCS_PORT={gcs_port}\nDASHBOARD_PORT={dashboard}\n"
        (run / "node.env").write_text("NODE_ADDRESS=127.0.0.1\n")
        if ports_in == ".env":
            (tmp_path / ".env").write_text(ports)
        else:
            (run / "node.env").write_text(f"NODE_ADDRESS=127.0.0.1\n{ports}")
        stack_vars = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_GCS_PORT", "DASHBOARD_PORT")
        env = {k: v for k, v in os.environ.items() if k not in stack_vars}
        # `.env` is the checkout's (core.settings.DOTENV): this one stands in for it
        code = (
            "import pathlib; from cli import ray_access; from cli.status import _ray; "
            "files = ray_access.RayAccess.model_config['env_file']; "
            "ray_access.RayAccess.model_config['env_file'] = "
            "(pathlib.Path('.env').resolve(), *files[1:]); print(_ray())"
        )
        shown = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env={**env, "RUN_DIR": str(run), "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    assert f"127.0.0.1:{gcs_port}, dashboard http://127.0.0.1:{dashboard}" in shown
    assert "Ray 9.9.9" in shown, shown


def _gateway_answering(monkeypatch: pytest.MonkeyPatch, ready: object) -> None:
    monkeypatch.setattr(httpx, "get", lambda *a, **k: httpx.Response(200, request=_REQ))

    def readiness(url: str, bearer: str, timeout_s: float) -> object:
        if isinstance(ready, Exception):
            raise ready
        return ready

    monkeypatch.setattr(api, "readiness", readiness)


_REQ = httpx.Request("GET", "http://gw/health")


def test_a_rejected_token_leaves_the_pipeline_unknown_and_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _gateway_answering(monkeypatch, api.ApiError(401, "unauthorized", "invalid token"))
    gateway, pipeline, known, ready = status._gateway(Settings(), "http://gw", "bad")
    assert gateway.up and not known and ready is None
    assert [(p.name, p.up) for p in pipeline] == [("actors", None)]
    hint = "token rejected: export the stack's JWT_SECRET or pass --token/ORDERS_TOKEN"
    assert hint in pipeline[0].detail
    report = status.Report(stack=[gateway], pipeline=pipeline, pipeline_known=known)
    assert not report.all_up  # exit 1


def test_a_non_admin_token_sees_no_checks_and_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _gateway_answering(monkeypatch, {"status": "up"})
    gateway, pipeline, known, ready = status._gateway(Settings(), "http://gw", "customer")
    assert not known and ready is None and "not an admin's token" in pipeline[0].detail
    assert gateway.detail == "ready: up"


def test_an_admins_readiness_is_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    _gateway_answering(monkeypatch, {"status": "up", "checks": {"relay": {"status": "up"}}})
    checks = {"status": "up", "checks": {"relay": {"status": "up"}}}
    gateway, pipeline, known, ready = status._gateway(Settings(), "http://gw", None)
    assert known and [(p.name, p.up) for p in pipeline] == [("relay", True)]
    report = status.Report(stack=[gateway], pipeline=pipeline, ready=ready)
    assert report.all_up and ready == checks


def test_the_json_report_holds_what_the_tables_show() -> None:
    """`orders status --json`: one document, camelCase like the API, `pipeline` null when the
    actors could not be read, the lag a list of groups."""
    gateway = render.Part("gateway", True, "http://gw", "ready: up")
    size = TableSize("orders", 8192, 3)
    report = status.Report(stack=[gateway], sizes=[size], lags={"payment": (4, 18)})
    document = json.loads(render.as_json(report.to_json()))
    assert document["allUp"] is True and document["ready"] is None
    assert document["stack"] == [
        {"name": "gateway", "up": True, "where": "http://gw", "detail": "ready: up"}
    ]
    assert document["tables"][0] == {
        "name": "orders",
        "bytes": 8192,
        "rows": 3,
        "partitions": 0,
        "oldestPartition": None,
        "oldestBound": None,
    }
    assert document["consumerLag"] == [{"group": "payment", "lag": 4, "partitions": 18}]
    report.pipeline_known = False
    unknown = json.loads(render.as_json(report.to_json()))
    assert unknown["allUp"] is False and unknown["pipeline"] is None
