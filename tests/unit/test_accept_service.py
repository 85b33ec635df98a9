"""`AcceptService.place` with an Idempotency-Key: a request cancelled after its order was
stored (the client gone while Redis was slow) still records its key's answer, and one
cancelled before frees it; otherwise a retry got 409 "in progress" until the claim expired."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from core.auth import Principal
from domain.commands import PlaceOrder
from serve_app.accept import AcceptService


class _Admission:
    async def check(self, principal: str) -> None:
        return None


class _Idempotency:
    def __init__(self) -> None:
        self.finished: list[str] = []
        self.abandoned: list[str] = []
        self.slow = asyncio.Event()

    @staticmethod
    def fingerprint(body: Any) -> str:
        return "fp"

    async def begin(self, principal: str, key: str, fingerprint: str) -> None:
        return None

    async def finish(self, principal: str, key: str, fingerprint: str, response: Any) -> None:
        await self.slow.wait()  # Redis slow to answer
        self.finished.append(key)

    async def abandon(self, principal: str, key: str) -> None:
        await self.slow.wait()
        self.abandoned.append(key)


class _Intake:
    def __init__(self, stores: bool) -> None:
        self.stores = stores
        self.stalled = asyncio.Event()

    async def place(self, who: Any, cmd: Any, idempotency: Any = None) -> Any:
        if not self.stores:
            await self.stalled.wait()  # Postgres slow: the client leaves meanwhile
        return {"orderId": "o-1"}, False


def _service(stores: bool) -> tuple[AcceptService, _Idempotency]:
    idem = _Idempotency()
    return AcceptService(_Admission(), idem, _Intake(stores)), idem  # type: ignore[arg-type]


_WHO = Principal(sub="customer1", roles=frozenset({"customer"}))
_CMD = PlaceOrder.model_validate({"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 1}]})


@pytest.mark.parametrize("stores", [True, False])
async def test_a_cancelled_request_still_records_or_frees_its_key(stores: bool) -> None:
    service, idem = _service(stores)
    request = asyncio.create_task(service.place(_WHO, _CMD, "key-1"))
    await asyncio.sleep(0.01)  # stored and finishing, or waiting for Postgres
    request.cancel()
    await asyncio.sleep(0.01)
    idem.slow.set()  # Redis answers
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(request, 5)
    await asyncio.sleep(0.01)
    assert (idem.finished, idem.abandoned) == ((["key-1"], []) if stores else ([], ["key-1"]))
