"""An Idempotency-Key's Redis entry, whatever the body of the request that holds it: 409
"in progress" while the first request runs (it may yet fail and free the key, so a different
body is not refused for good), 422 once that key stored an order with another body, the
stored answer for the same body."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from domain.errors import InProgress, InvalidInput
from serve_app.admission import Idempotency, RedisOutage
from serve_app.views import accepted_view


class _Redis:
    """SET NX / GET / DELETE on a dict: what `Idempotency` uses."""

    def __init__(self) -> None:
        self.data: dict[str, bytes | str] = {}

    async def set(self, key: str, value: bytes | str, nx: bool = False, ex: int = 0) -> bool:
        if nx and key in self.data:
            return False
        self.data[key] = value
        return True

    async def get(self, key: str) -> bytes | str | None:
        return self.data.get(key)

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)


async def test_a_key_in_flight_is_409_whatever_the_body_then_422_for_another_body() -> None:
    idem = Idempotency(_Redis(), 60, RedisOutage())  # type: ignore[arg-type]
    assert await idem.begin("customer1", "k", "body-a") is None  # the first request claims it
    for body in ("body-a", "body-b"):
        with pytest.raises(InProgress):
            await idem.begin("customer1", "k", body)
    answer = accepted_view(uuid.uuid4(), Decimal("10.00"))
    await idem.finish("customer1", "k", "body-a", answer)
    assert await idem.begin("customer1", "k", "body-a") == answer
    with pytest.raises(InvalidInput, match="different body"):
        await idem.begin("customer1", "k", "body-b")


async def test_a_first_request_that_failed_frees_the_key_for_another_body() -> None:
    idem = Idempotency(_Redis(), 60, RedisOutage())  # type: ignore[arg-type]
    assert await idem.begin("customer1", "k", "body-a") is None
    await idem.abandon("customer1", "k")
    assert await idem.begin("customer1", "k", "body-b") is None
