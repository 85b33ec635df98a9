"""The make targets' helper scripts against a RUN_DIR of a test's own: `make status` exits 1
when a part is down and writes no colour codes into a pipe (cluster/services.sh); a heavy run
says which lock it waits for (cluster/heavy.sh); `make demo` names a refused order and an order
that does not get final in time (cluster/demo.sh)."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import pytest

from tests.deploy import stack_sandbox as sb
from tests.deploy.manifests import ROOT

_PORTS = ("PG_PORT", "REDIS_PORT", "KAFKA_PORT", "RAY_GCS_PORT", "HTTP_PORT", "DASHBOARD_PORT")


def test_status_with_parts_down_exits_1_without_colour_codes(tmp_path: Path) -> None:
    ports = {name: str(sb.free_port()) for name in _PORTS}  # nothing listens on any
    ran = subprocess.run(
        [str(ROOT / "cluster" / "services.sh"), "status"],
        env=sb.env(tmp_path, **ports),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "\033" not in ran.stdout
    for name in ("postgres", "redis", "kafka", "ray", "gateway"):
        assert f"  {name:<8} down  " in ran.stdout, ran.stdout


def test_status_on_a_joined_machine_that_cannot_check_the_head_exits_1(tmp_path: Path) -> None:
    """On a joined machine the head's services are checked by cluster/reach.py with this
    machine's settings; when that cannot run (a bad setting), each one is down with the reason,
    where the output had only the Ray node and exit status 0."""
    (tmp_path / "join.env").write_text("HEAD_ADDRESS=10.99.0.1\nNODE_ADDRESS=10.99.0.2\n")
    ran = subprocess.run(
        [str(ROOT / "cluster" / "services.sh"), "status"],
        env=sb.env(tmp_path, PAYMENT_SHARDS="abc"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr
    for name in ("postgres", "redis", "kafka"):
        line = next(x for x in ran.stdout.splitlines() if x.startswith(f"  {name} "))
        assert "down  not checked:" in line and "PAYMENT_SHARDS" in line, ran.stdout


def test_daemons_do_not_inherit_the_callers_descriptors(tmp_path: Path) -> None:
    """`flock LOCK make join` hands its lock's descriptor down: the joined node's `ray start`
    held it (and the lock) until `make leave`. Both scripts that start daemons close 3-9 first."""
    held = sb.bash(
        tmp_path,
        f'exec 5>"{tmp_path}/lock" 9>&1\nno_inherited_fds\nsleep 30 & ls -l /proc/$!/fd; kill $!',
    )  # (a child's, as a daemon's: ls itself, run last, would be this shell's $$)
    assert held.returncode == 0, held.stderr
    fds = {line.split()[-3]: line.split()[-1] for line in held.stdout.splitlines()[1:]}
    assert "5" not in fds and "9" not in fds and str(tmp_path) not in held.stdout, held.stdout
    for script in ("join.sh", "services.sh"):
        text = (ROOT / "cluster" / script).read_text()
        closed = text.index("\nno_inherited_fds")
        assert closed < text.index("setsid nohup"), script


def _line(stream: IO[str] | None, deadline: float) -> str:
    """The next line of a child's pipe, or '' once `deadline` passes first."""
    assert stream is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.1)
        if ready:
            return stream.readline()
    return ""


def test_heavy_says_which_lock_it_waits_for_then_runs(tmp_path: Path) -> None:
    lock = tmp_path / "heavy.lock"
    free = subprocess.run(
        [str(ROOT / "cluster" / "heavy.sh"), "echo", "ran"],
        env=sb.env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert free.stdout == "ran\n" and "waiting" not in free.stderr
    # no other user can open it, and so none can hold every heavy run back (it was 644)
    assert lock.stat().st_mode & 0o777 == 0o600
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another make bench, say
        waiting = subprocess.Popen(
            [str(ROOT / "cluster" / "heavy.sh"), "echo", "ran"],
            env=sb.env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            said = _line(waiting.stderr, time.monotonic() + 30)
            assert f"waiting for {lock} (another make test/bench/chaos/soak is running)" in said
            assert waiting.poll() is None  # it waits for the lock
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
        out, _ = waiting.communicate(timeout=30)
    assert waiting.returncode == 0 and out == "ran\n"


class _Gateway(BaseHTTPRequestHandler):
    """/health, POST /api/orders answering `post`, an order's events that never get final."""

    post: tuple[int, dict[str, object]] = (202, {})
    events: tuple[int, dict[str, object]] | None = None  # an error instead of the stream
    done = threading.Event()
    tokens: list[str] = []  # the bearer tokens of the API's requests

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/health":
            self._answer(200, {"status": "ok"})
            return
        _Gateway.tokens.append(self.headers.get("Authorization", ""))
        if self.events is not None:
            self._answer(*self.events)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b'event: status\nid: 1\ndata: {"status": "PENDING"}\n\n')
        self.wfile.flush()
        _Gateway.done.wait(60)  # the order stays PENDING while the client listens

    def do_POST(self) -> None:  # noqa: N802
        _Gateway.tokens.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(*self.post)

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[ThreadingHTTPServer]:
    _Gateway.done.clear()
    _Gateway.tokens = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        _Gateway.done.set()
        server.shutdown()
        server.server_close()


def _demo(tmp_path: Path, server: ThreadingHTTPServer) -> subprocess.CompletedProcess[str]:
    port = str(server.server_address[1])
    return subprocess.run(
        [str(ROOT / "cluster" / "demo.sh")],
        # no credentials here: a Kafka login (the default) would have no password to read
        env=sb.env(tmp_path, HTTP_PORT=port, DEMO_WAIT_S="2", KAFKA_AUTH="none"),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


_PLACED = (202, {"orderId": "o-1", "status": "PENDING"})


@pytest.mark.parametrize(
    ("post", "events", "said"),
    [
        ((429, {"error": {"code": "rate_limited", "message": "too many orders"}}), None,
         "POST /api/orders answered HTTP 429, not 202"),
        # curl without --fail exited 0 on the stream's 429 (or 401, 404, 503): the demo said
        # nothing of it and went on as if the order had been followed
        (_PLACED, (429, {"error": {"code": "too_many_streams", "message": "too many orders"}}),
         "the order's status stream was refused"),
    ],
    ids=["order", "status-stream"],
)  # fmt: skip
def test_demo_names_a_refusal(
    tmp_path: Path,
    gateway: ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    post: tuple[int, dict[str, object]],
    events: tuple[int, dict[str, object]] | None,
    said: str,
) -> None:
    monkeypatch.setattr(_Gateway, "post", post)
    monkeypatch.setattr(_Gateway, "events", events)
    ran = _demo(tmp_path, gateway)
    assert ran.returncode == 1
    assert said in ran.stderr, ran.stderr
    assert "too many orders" in ran.stdout and "Traceback" not in ran.stderr
    assert "GET /api/orders/o-1\n" not in ran.stderr


def test_demo_names_an_order_not_final_in_time(
    tmp_path: Path, gateway: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Gateway, "post", _PLACED)
    ran = _demo(tmp_path, gateway)
    assert ran.returncode == 1
    assert "order o-1 not final within 2 s: .venv/bin/orders get o-1" in ran.stderr, ran.stderr
    assert 'data: {"status": "PENDING"}' in ran.stdout
    # the token reached the gateway (curl read the header from its standard input, not its
    # command line, which any user may read) and ends a minute after DEMO_WAIT_S
    post, stream = _Gateway.tokens
    assert post == stream and post.startswith("Bearer ")
    claims = json.loads(base64.urlsafe_b64decode(post.split(".")[1] + "=="))
    assert claims["exp"] - claims["iat"] == 2 + 60
    assert "Bearer $TOKEN" not in (ROOT / "cluster" / "demo.sh").read_text().replace(
        '<<<"Authorization: Bearer $TOKEN"', ""
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "10.77.0.2"])
def test_a_dashboard_beyond_loopback_is_warned_about(tmp_path: Path, host: str) -> None:
    """The dashboard is plain HTTP even with STACK_TLS (ADR-016): beyond loopback the Ray token
    crosses the network in clear. Ray's start says so (cluster/services.sh, dashboard_check)."""
    ran = sb.bash(tmp_path, "dashboard_check", DASHBOARD_HOST=host)
    assert ran.returncode == 0, ran.stderr
    warned = "crosses the network in clear" in ran.stderr
    assert warned == (host != "127.0.0.1"), ran.stderr


@pytest.mark.parametrize(
    ("host", "name", "url"),
    [
        ("127.0.0.1", "", "http://127.0.0.1:8088"),
        ("0.0.0.0", "", "http://127.0.0.1:8088"),
        ("::", "localhost", "http://localhost:8088"),
        ("127.0.0.1", "localhost", "http://localhost:8088"),
        ("10.77.0.2", "localhost", "http://10.77.0.2:8088"),
        ("fd00::2", "", "http://[fd00::2]:8088"),
        ("[fd00::2]", "", "http://[fd00::2]:8088"),
    ],
)
def test_the_scripts_call_the_gateway_where_it_listens(
    tmp_path: Path, host: str, name: str, url: str
) -> None:
    ran = sb.bash(tmp_path, f"gateway_url {name}", HTTP_HOST=host, HTTP_PORT="8088")
    assert ran.returncode == 0 and ran.stdout.strip() == url, ran.stderr


def test_status_finds_a_gateway_on_another_loopback_address(tmp_path: Path) -> None:
    """HTTP_HOST=127.0.0.2: nothing answers on 127.0.0.1, and `make status` must not say down."""
    server = ThreadingHTTPServer(("127.0.0.2", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = str(server.server_address[1])
        ran = subprocess.run(
            [str(ROOT / "cluster" / "services.sh"), "status"],
            env=sb.env(tmp_path, HTTP_HOST="127.0.0.2", HTTP_PORT=port),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert f"  gateway  up    http://127.0.0.2:{port}" in ran.stdout, ran.stdout


def test_messages_into_a_pipe_carry_no_colour_codes(tmp_path: Path) -> None:
    """`make demo | tee demo.log` and the logs `make test` writes: plain text (colour only on a
    terminal, cluster/common.sh)."""
    ran = sb.bash(tmp_path, "log a step; warn a doubt; die the end")
    assert ran.returncode == 1
    assert "\033" not in ran.stdout + ran.stderr
    assert "] a step" in ran.stdout and "warning: a doubt" in ran.stderr
    assert "error: the end" in ran.stderr


def test_make_test_waits_for_a_heavy_run_before_it_touches_the_stack(tmp_path: Path) -> None:
    """Only its pytest held the lock: its make up (a redeploy with the suite's shard counts,
    every actor restarted) and its cleanup ran in the middle of a bench or chaos run."""
    lock = tmp_path / "heavy.lock"
    lock.touch(mode=0o600)
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a make bench of this checkout
        waiting = subprocess.Popen(
            [str(ROOT / "cluster" / "test.sh")],
            env=sb.env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            said = _line(waiting.stderr, time.monotonic() + 30)
            assert f"waiting for {lock}" in said, said
            assert waiting.poll() is None
            assert not (tmp_path / "logs" / "test-up.log").exists()  # nothing started
        finally:
            os.killpg(waiting.pid, signal.SIGTERM)
            waiting.communicate(timeout=30)
