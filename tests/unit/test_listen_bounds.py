"""The relay's LISTEN connection carries libpq's bounds (adapters/outbox.py, `notifications`): an
idle LISTEN on a Postgres host gone away waited on a dead socket, and the relay went without
its wake-ups (its safety poll alone) until the OS gave up, hours later."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from adapters import outbox
from adapters.pg import CLIENT_TIMEOUTS


def test_the_listen_connection_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def connect(dsn: str, **kwargs: Any) -> None:
        seen.append(dsn)
        raise OSError("stop here")

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", connect)

    async def first() -> None:
        await anext(outbox.notifications("postgresql://u:p@127.0.0.1:1/orders"))

    with pytest.raises(OSError, match="stop here"):
        asyncio.run(first())
    (dsn,) = seen
    for key, value in CLIENT_TIMEOUTS.items():
        assert f"{key}={value}" in dsn, (key, dsn)
