"""Admission batches the checks of concurrent orders into one Redis round trip: each order still
counts once in its principal's window, and the breaker's state reaches every order of a batch."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as aioredis

from adapters.provider import OPENED_AT_KEY, STATE_KEY
from core.settings import Settings
from domain.errors import RateLimited, Unavailable
from serve_app.admission import Admission


async def _outcomes(admission: Admission, principals: list[str]) -> list[str]:
    async def one(principal: str) -> str:
        try:
            await admission.check(principal)
        except RateLimited:
            return "429"
        except Unavailable:
            return "503"
        return "ok"

    return list(await asyncio.gather(*(one(p) for p in principals)))


async def test_concurrent_orders_count_once_each_in_their_own_window(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    admission = Admission(client, per_minute=5, breaker_reset_s=30)
    busy, quiet = f"adm-{uuid.uuid4().hex[:8]}", f"adm-{uuid.uuid4().hex[:8]}"
    while time.time() % 60 > 55:  # all calls in one minute window (at most 5 s of waiting)
        await asyncio.sleep(0.2)
    try:
        got = await _outcomes(admission, [busy] * 8 + [quiet] * 2)
        assert got[:8].count("ok") == 5 and got[:8].count("429") == 3, got
        assert got[8:] == ["ok", "ok"]
        window = int(time.time() // 60)
        counts = [await client.get(f"ratelimit:{p}:{window}") for p in (busy, quiet)]
        assert counts == [b"8", b"2"]
        assert 0 < await client.ttl(f"ratelimit:{busy}:{window}") <= 120
    finally:
        await admission.close()
        await client.aclose()


async def test_an_open_breaker_refuses_every_order_of_the_batch(settings: Settings) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    admission = Admission(client, per_minute=100, breaker_reset_s=30)
    saved = await client.mget(STATE_KEY, OPENED_AT_KEY)
    await client.set(STATE_KEY, "open")
    await client.set(OPENED_AT_KEY, str(time.time()))
    try:
        who = f"adm-{uuid.uuid4().hex[:8]}"
        assert await _outcomes(admission, [who] * 4) == ["503"] * 4
    finally:
        for key, value in zip((STATE_KEY, OPENED_AT_KEY), saved, strict=True):
            if value is None:
                await client.delete(key)
            else:
                await client.set(key, value)
        await admission.close()
        await client.aclose()
