"""An Idempotency-Key's Redis entry, whatever the body of the request that holds it: 409
"in progress" while the first request runs (it may yet fail and free the key, so a different
body is not refused for good), 422 once that key stored an order with another body, the
stored answer for the same body. A request frees only its own claim: not another request's
answer (it was refused 422) nor a later request's claim (its own had expired)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import InProgress, InvalidInput
from serve_app.admission import Idempotency, RedisOutage
from serve_app.views import accepted_view


class _Redis:
    """SET NX / GET and the abandon script (delete while the value is the one given) on a
    dict: what `Idempotency` uses. The script's Lua runs on a real Redis in
    tests/integration/test_admission.py."""

    def __init__(self) -> None:
        self.data: dict[str, bytes | str] = {}

    async def set(self, key: str, value: bytes | str, nx: bool = False, ex: int = 0) -> bool:
        if nx and key in self.data:
            return False
        self.data[key] = value
        return True

    async def get(self, key: str) -> bytes | str | None:
        return self.data.get(key)

    def register_script(self, source: str) -> Any:
        assert "DEL" in source  # the abandon script: the one `Idempotency` registers

        async def abandon(keys: list[str], args: list[bytes]) -> int:
            if self.data.get(keys[0]) == args[0]:
                del self.data[keys[0]]
                return 1
            return 0

        return abandon


def _idem(redis: _Redis | None = None) -> Idempotency:
    return Idempotency(redis or _Redis(), 60, RedisOutage())  # type: ignore[arg-type]


async def test_a_key_in_flight_is_409_whatever_the_body_then_422_for_another_body() -> None:
    idem = _idem()
    first = idem.claim("customer1", "k", "body-a")
    assert await idem.begin(first) is None  # the first request claims it
    for body in ("body-a", "body-b"):
        with pytest.raises(InProgress):
            await idem.begin(idem.claim("customer1", "k", body))
    answer = accepted_view(uuid.uuid4(), Decimal("10.00"))
    await idem.finish(first, answer)
    assert await idem.begin(idem.claim("customer1", "k", "body-a")) == answer
    with pytest.raises(InvalidInput, match="different body"):
        await idem.begin(idem.claim("customer1", "k", "body-b"))


async def test_a_first_request_that_failed_frees_the_key_for_another_body() -> None:
    idem = _idem()
    first = idem.claim("customer1", "k", "body-a")
    assert await idem.begin(first) is None
    await idem.abandon(first)
    assert await idem.begin(idem.claim("customer1", "k", "body-b")) is None


async def test_a_request_refused_for_its_body_leaves_the_first_ones_answer() -> None:
    """`AcceptService.place` abandons the key on every error, a 422 included: it deleted the
    answer the first request recorded, and that request's retries lost their fast replay."""
    idem = _idem()
    first = idem.claim("customer1", "k", "body-a")
    assert await idem.begin(first) is None
    answer = accepted_view(uuid.uuid4(), Decimal("10.00"))
    await idem.finish(first, answer)
    other = idem.claim("customer1", "k", "body-b")
    with pytest.raises(InvalidInput):
        await idem.begin(other)
    await idem.abandon(other)
    assert await idem.begin(idem.claim("customer1", "k", "body-a")) == answer


async def test_an_expired_claim_does_not_free_the_claim_after_it() -> None:
    """A request that outlived its claim's TTL (60 s) deleted whatever the key held by then:
    a later request's claim, so a third request with the key went ahead beside it."""
    redis = _Redis()
    idem = _idem(redis)
    slow = idem.claim("customer1", "k", "body-a")
    assert await idem.begin(slow) is None
    redis.data.clear()  # its TTL ran out
    later = idem.claim("customer1", "k", "body-a")
    assert await idem.begin(later) is None
    await idem.abandon(slow)  # the slow request fails at last
    with pytest.raises(InProgress):
        await idem.begin(idem.claim("customer1", "k", "body-a"))
    await idem.abandon(later)
    assert await idem.begin(idem.claim("customer1", "k", "body-a")) is None


class _ReplyLost(_Redis):
    """The first `SET NX` takes effect but its reply is lost, and redis-py sends it again
    (its retry on ConnectionError covers the send and the read): the resend finds the key."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    async def set(self, key: str, value: bytes | str, nx: bool = False, ex: int = 0) -> bool:
        self.sets += 1
        if self.sets == 1:
            await super().set(key, value, nx, ex)  # applied; what follows is the resend
        return await super().set(key, value, nx, ex)


async def test_a_resent_claim_that_finds_its_own_entry_goes_ahead() -> None:
    """The resend found the request's own in-flight entry and answered 409: every retry of
    the key was 409 until the claim's 60 s TTL ran out, while no order had been stored."""
    redis = _ReplyLost()
    idem = _idem(redis)
    mine = idem.claim("customer1", "k", "body-a")
    assert await idem.begin(mine) is None
    with pytest.raises(InProgress):  # another request with the key still waits for this one
        await idem.begin(idem.claim("customer1", "k", "body-a"))
