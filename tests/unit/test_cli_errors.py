"""The `orders` command line's expected failures are a message and an exit code, never a
traceback: a setting that does not parse (exit 2), a broker that does not answer, a gateway
that answers no JSON or is not there (exit 1)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.unit.cli_run import orders

ROOT = Path(__file__).resolve().parents[2]


def test_an_invalid_setting_is_a_message_and_exit_2() -> None:
    result = orders("watch", "0193a0a0-0000-7000-8000-000000000000", HTTP_PORT="abc")
    assert result.returncode == 2, result.stderr
    assert "HTTP_PORT" in result.stderr and "Traceback" not in result.stderr


def test_a_broker_that_does_not_answer_is_a_message_and_exit_1() -> None:
    result = orders("dlq", "list", "order.created", KAFKA_BOOTSTRAP="127.0.0.1:1")
    assert result.returncode == 1, result.stderr
    assert "KafkaConnectionError" in result.stderr and "Traceback" not in result.stderr
    assert "orders status" in result.stderr
    # one line for the error: not the client's log of each attempt, nor the name twice
    assert result.stderr.count("KafkaConnectionError") == 1, result.stderr
    assert "Unable connect" not in result.stderr, result.stderr


def test_migrate_with_the_database_down_is_a_message_and_exit_1() -> None:
    """Alembic raises SQLAlchemy's OperationalError, not psycopg's: it came out as a
    traceback (`migrate --check` reads the revision with psycopg and said it properly)."""
    down = "postgresql://u:p@127.0.0.1:1/orders"  # nothing listens on port 1
    result = orders("migrate", DATABASE_URL=down, MIGRATION_DATABASE_URL=down)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-800:]
    assert "OperationalError: connection failed" in result.stderr and "orders status" in (
        result.stderr
    )


def _serving(
    body: bytes, status: int = 200, kind: str = "text/html"
) -> tuple[ThreadingHTTPServer, str]:
    """A server answering every GET `status` with `body` (text/html: a proxy's page, say)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_an_order_answer_that_is_not_json_is_a_message_and_exit_1() -> None:
    server, url = _serving(b"<html>not the gateway</html>")
    try:
        result = orders("get", "0193a0a0-0000-7000-8000-000000000000", "--url", url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1, result.stderr
    assert "no JSON object: <html>not the gateway</html>" in result.stderr
    assert "Traceback" not in result.stderr


def _free_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_get_with_nothing_listening_says_where_to_look() -> None:
    url = _free_url()
    result = orders("get", "0193a0a0-0000-7000-8000-000000000000", "--url", url)
    assert result.returncode == 1, result.stderr
    assert f"cannot reach {url}: " in result.stderr and "make up" in result.stderr


def test_a_rejected_token_says_which_token_to_give() -> None:
    refused = b'{"error":{"code":"unauthorized","message":"invalid token"}}'
    server, url = _serving(refused, 401, "application/json")
    try:
        result = orders(
            "get", "0193a0a0-0000-7000-8000-000000000000", "--url", url, "--token", "garbage"
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1, result.stderr
    assert "(401 unauthorized)" in result.stderr and "JWT_SECRET" in result.stderr


def test_watch_fails_fast_when_nothing_listens() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    result = orders("watch", "0193a0a0-0000-7000-8000-000000000000", "--url", url)
    assert result.returncode == 1, result.stderr
    assert f"cannot reach {url}: " in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30  # not the whole --timeout (120 s) of retries


def test_version_is_the_projects_and_needs_no_setting() -> None:
    """`orders --version` answers even where no setting loads (it reads none)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    result = orders("--version", HTTP_PORT="abc")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"orders (ray-orders) {project['version']}\n"


def test_topics_retries_a_broker_still_starting_and_stops_at_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every aiokafka error is a RuntimeError, which the command took for the broker's refusal:
    a broker still starting ("Unable to bootstrap") ended `orders topics` at once, exit 1, where
    it was meant to be retried for 90 s (make up, compose's init, the k8s Job)."""
    from aiokafka.errors import KafkaConnectionError
    from typer.testing import CliRunner

    from adapters import kafka
    from cli.main import app

    answers: list[Exception | None] = [KafkaConnectionError("Unable to bootstrap"), None]

    async def ensure_topics(bootstrap: str, partitions: int) -> list[str]:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return ["order.created"]

    monkeypatch.setattr(kafka, "ensure_topics", ensure_topics)
    result = CliRunner().invoke(app, ["topics"])
    assert result.exit_code == 0, result.output
    assert "created or grown 1" in result.output and not answers

    answers[:] = [kafka.TopicsRefused("Kafka refused the retention configs: [...]")]
    result = CliRunner().invoke(app, ["topics"])
    assert result.exit_code == 1 and "refused the retention configs" in result.output


def test_a_database_url_libpq_cannot_read_is_refused_without_showing_it() -> None:
    """An unencoded `%` in the password: the settings took it, and every command printed
    libpq's error, which quotes the password (`invalid percent-encoded token: "S3cr%et"`)."""
    bad = "postgresql://orders_app:S3cr%et@127.0.0.1:1/orders"
    result = orders("migrate", "--check", DATABASE_URL=bad, MIGRATION_DATABASE_URL=bad)
    assert result.returncode == 2, result.stderr
    assert "DATABASE_URL" in result.stderr and "percent-encoded" in result.stderr
    assert "S3cr" not in result.stderr + result.stdout
