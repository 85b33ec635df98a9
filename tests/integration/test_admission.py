"""Admission batches the checks of concurrent orders into one Redis round trip: each order still
counts once in its principal's window, and the breaker's state reaches every order of a batch."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.provider import OPENED_AT_KEY, STATE_KEY
from core.settings import Settings
from domain.errors import InvalidInput, RateLimited, Unavailable
from serve_app.admission import Admission, Idempotency, RedisOutage
from serve_app.views import accepted_view
from tests.integration.conftest import Api


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


def test_an_open_circuit_still_replays_an_order_already_placed(
    api: Api, customer: str, settings: Settings
) -> None:
    """Admission came before the Idempotency-Key: a client retrying an order that was stored
    (its answer lost) got 503 while the circuit was open, or 429 past the rate limit."""
    h = {**api.headers(customer), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"customerId": customer, "items": [{"sku": "SKU-17", "qty": 1}]}
    first = api.http.post("/api/orders", json=body, headers=h)
    assert first.status_code == 202, first.text

    async def breaker(values: list[Any] | None) -> list[Any]:
        """Open the circuit (None), or put back the saved state; returns the state before."""
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            saved = await client.mget(STATE_KEY, OPENED_AT_KEY)
            new = values or [b"open", str(time.time()).encode()]
            for key, value in zip((STATE_KEY, OPENED_AT_KEY), new, strict=True):
                await (client.delete(key) if value is None else client.set(key, value))
            return list(saved)
        finally:
            await client.aclose()

    saved = asyncio.run(breaker(None))
    try:
        again = api.http.post("/api/orders", json=body, headers=h)
        fresh = api.place(customer, [("SKU-17", 1)])
    finally:
        asyncio.run(breaker(saved))
    assert again.status_code == 202, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert fresh.status_code == 503, fresh.text


async def test_a_request_frees_only_its_own_idempotency_claim(settings: Settings) -> None:
    """The abandon script on the stack's Redis, as the platform's user: a request refused for
    its body (422) leaves the answer the key holds, a request whose claim expired leaves the
    claim after it, and a request's own claim is freed."""
    client = aioredis.Redis.from_url(settings.redis_url)
    idem = Idempotency(client, 60, RedisOutage())
    key = f"adm-{uuid.uuid4()}"
    try:
        first = idem.claim("adm-idem", key, "body-a")
        assert await idem.begin(first) is None
        answer = accepted_view(uuid.uuid4(), Decimal("10.00"))
        await idem.finish(first, answer)
        other = idem.claim("adm-idem", key, "body-b")
        with pytest.raises(InvalidInput):
            await idem.begin(other)
        await idem.abandon(other)
        assert await idem.begin(idem.claim("adm-idem", key, "body-a")) == answer

        await client.delete(first.rkey)
        slow = idem.claim("adm-idem", key, "body-a")
        assert await idem.begin(slow) is None
        await client.delete(first.rkey)  # its TTL ran out
        later = idem.claim("adm-idem", key, "body-a")
        assert await idem.begin(later) is None
        await idem.abandon(slow)
        assert await client.get(later.rkey) == later.inflight()
        await idem.abandon(later)
        assert await client.exists(later.rkey) == 0
    finally:
        await client.delete(idem.claim("adm-idem", key, "").rkey)
        await client.aclose()
