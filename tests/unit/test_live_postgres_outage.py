"""A live status stream outlives a short Postgres outage (serve_app/live.py): its reads happen
after the 200's headers went out, so an error raised there cut every open stream with an ERROR
traceback ("response already started"). Now the stream warns once and re-reads each re-check
period until Postgres answers or the stream's deadline passes; its slot is given back either way."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from core.auth import Principal, make_token
from core.settings import Settings
from serve_app import live
from serve_app.api import create_app
from tests.unit import asgi

SECRET = "live-outage-test-secret-of-32-bytes!"
ORDER_ID = uuid.UUID("0197a3c2-5b1e-7c3d-9f2a-1b2c3d4e5f60")
_DELIVERED = {"id": 7, "status": "DELIVERED", "event": "shipping.updated"}


class _PubSub:
    async def subscribe(self, *channels: str) -> None:
        return None

    async def get_message(self, **kwargs: Any) -> None:
        return None

    async def aclose(self) -> None:
        return None


class _Redis:
    def pubsub(self) -> _PubSub:
        return _PubSub()


def _postgres_down_for(reads: int) -> Callable[..., Any]:
    """A `timeline_after` that fails `reads` times (as an outage does), then has the final row."""
    failures: list[Exception] = [psycopg.OperationalError("server closed the connection")]
    failures += [PoolTimeout("couldn't get a connection")] * (reads - 1)

    async def timeline(*args: Any) -> list[dict[str, Any]]:
        if failures:
            raise failures.pop(0)
        return [{**_DELIVERED, "at": datetime.now(UTC)}]

    return timeline


async def _events(after_id: int = 0) -> list[dict[str, Any]]:
    stream = live.status_stream(
        None,  # type: ignore[arg-type]
        _Redis(),  # type: ignore[arg-type]
        ORDER_ID,
        ("RESERVED", datetime.now(UTC)),
        after_id=after_id,
    )
    return [event async for event in stream]


MAIN = threading.get_ident()  # asyncio.run's thread, where the stream logs


@pytest.mark.parametrize("after_id", [0, 3], ids=["first-read", "resumed-read"])
def test_a_postgres_outage_is_waited_out_with_one_warning_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, after_id: int
) -> None:
    monkeypatch.setattr(live, "timeline_after", _postgres_down_for(3))
    monkeypatch.setattr(live, "_RECHECK_S", 0.001)
    with caplog.at_level(logging.DEBUG, logger="serve_app.live"):
        events = asyncio.run(asyncio.wait_for(_events(after_id), 10))
    assert [e["id"] for e in events] == ["7"]  # the final status, once Postgres is back
    # this thread's records: a session's other threads (Ray's driver) may log meanwhile
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING and r.thread == MAIN]
    assert [r.levelno for r in warned] == [logging.WARNING]
    assert warned[0].exc_info is None


def test_a_stream_ends_quietly_at_its_deadline_when_postgres_never_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(live, "timeline_after", _postgres_down_for(10**6))
    monkeypatch.setattr(live, "_RECHECK_S", 0.001)
    monkeypatch.setattr(live, "_MAX_STREAM_S", 0.05)
    assert asyncio.run(asyncio.wait_for(_events(), 10)) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class _Orders:
    async def status_of(self, who: Principal, order_id: uuid.UUID) -> tuple[str, datetime]:
        return "RESERVED", datetime.now(UTC)


def test_the_route_streams_through_an_outage_and_gives_its_slot_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """In the app: the 200 goes out, Postgres fails mid-stream, the stream still ends with the
    final status and the principal's stream slot is free again."""
    monkeypatch.setattr(live, "timeline_after", _postgres_down_for(2))
    monkeypatch.setattr(live, "_RECHECK_S", 0.001)
    status = live.LiveStatus(None, _Redis(), total=10, per_principal=1)  # type: ignore[arg-type]
    app = create_app(with_ray=False)
    settings = Settings(jwt_secret=SECRET)
    app.state.services = SimpleNamespace(settings=settings, orders=_Orders(), live=status)
    token = make_token("customer1", ["customer"], secret=SECRET)

    auth = {"Authorization": f"Bearer {token}"}
    resp = asgi.request(app, "GET", f"/api/orders/{ORDER_ID}/events", headers=auth)
    assert resp.status_code == 200
    assert "id: 7" in resp.text and '"status":"DELIVERED"' in resp.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    status.reserve("customer1")()  # the one slot of this principal is free again
