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
from serve_app.admission import Claim, Idempotency, RedisOutage


class _Admission:
    async def check(self, principal: str) -> None:
        return None


class _Idempotency:
    def __init__(self) -> None:
        self.finished: list[str] = []
        self.abandoned: list[str] = []
        self.slow = asyncio.Event()
        self.waiting = asyncio.Event()  # a request waits for Redis (or for Postgres, _Intake)

    @staticmethod
    def fingerprint(body: Any) -> str:
        return "fp"

    def claim(self, principal: str, key: str, fingerprint: str) -> Claim:
        return Claim(key, fingerprint, "token")

    async def begin(self, claim: Claim) -> None:
        return None

    async def finish(self, claim: Claim, response: Any) -> None:
        self.waiting.set()
        await self.slow.wait()  # Redis slow to answer
        self.finished.append(claim.rkey)

    async def abandon(self, claim: Claim) -> None:
        await self.slow.wait()
        self.abandoned.append(claim.rkey)


class _Intake:
    def __init__(self, stores: bool, waiting: asyncio.Event | None = None) -> None:
        self.stores = stores
        self.stalled = asyncio.Event()
        self.waiting = waiting or asyncio.Event()

    def check(self, cmd: Any) -> Any:
        return cmd  # the catalog's rules: tests/unit/test_accept_catalog_first.py

    async def place(self, who: Any, cmd: Any, idempotency: Any = None) -> Any:
        if not self.stores:
            self.waiting.set()
            await self.stalled.wait()  # Postgres slow: the client leaves meanwhile
        return {"orderId": "o-1"}, False


def _service(stores: bool) -> tuple[AcceptService, _Idempotency]:
    idem = _Idempotency()
    intake = _Intake(stores, idem.waiting)
    return AcceptService(_Admission(), idem, intake), idem  # type: ignore[arg-type]


_WHO = Principal(sub="customer1", roles=frozenset({"customer"}))
_CMD = PlaceOrder.model_validate({"customerId": "c-1", "items": [{"sku": "SKU-1", "qty": 1}]})


@pytest.mark.parametrize("stores", [True, False])
async def test_a_cancelled_request_still_records_or_frees_its_key(stores: bool) -> None:
    service, idem = _service(stores)
    request = asyncio.create_task(service.place(_WHO, _CMD, "key-1"))
    await asyncio.wait_for(idem.waiting.wait(), 5)  # stored and finishing, or waiting for PG
    request.cancel()
    idem.slow.set()  # Redis answers
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(request, 5)
    async with asyncio.timeout(5):  # the shielded finish or abandon, after the cancel
        while not (idem.finished or idem.abandoned):
            await asyncio.sleep(0.001)
    assert (idem.finished, idem.abandoned) == ((["key-1"], []) if stores else ([], ["key-1"]))


class _Claimed(_Idempotency):
    """Redis holds a claim for the key that nothing will record (its first request's outcome
    went unrecorded while Redis was slow)."""

    async def begin(self, claim: Claim) -> None:
        from domain.errors import InProgress

        raise InProgress("a request with this Idempotency-Key is still in progress; retry")


class _Stored(_Intake):
    def __init__(self, found: Any) -> None:
        super().__init__(True)
        self.found = found

    async def stored(self, principal: str, key: str, request_hash: str) -> Any:
        return self.found


@pytest.mark.parametrize("found", [{"orderId": "o-1"}, None])
async def test_a_claim_in_progress_is_checked_in_postgres(found: Any) -> None:
    """Redis says "in progress" for a key whose order Postgres has: the retry replays it (it
    got 409 for the claim's whole TTL); with no order stored, 409 with Retry-After."""
    from domain.errors import InProgress

    service = AcceptService(_Admission(), _Claimed(), _Stored(found))  # type: ignore[arg-type]
    if found is None:
        with pytest.raises(InProgress) as refused:
            await service.place(_WHO, _CMD, "key-1")
        assert refused.value.retry_after_s == 1
    else:
        assert await service.place(_WHO, _CMD, "key-1") == (found, True)


async def test_an_outcome_is_recorded_while_redis_is_skipped() -> None:
    """During the skip after a Redis timeout the key's outcome was not written at all, leaving
    the claim "in progress"; now it is sent in the background, off the request's path."""

    class _Redis:
        def __init__(self) -> None:
            self.abandoned: list[str] = []

        def register_script(self, source: str) -> Any:
            async def abandon(keys: list[str], args: list[bytes]) -> int:
                self.abandoned.append(keys[0])
                return 0

            return abandon

    outage = RedisOutage()
    outage.failed()  # a timeout just now: the fast path skips Redis
    redis = _Redis()
    idem = Idempotency(redis, 60, outage)  # type: ignore[arg-type]
    assert outage.skip()
    await idem.abandon(idem.claim("customer1", "key-1", "fp"))
    for _ in range(100):
        if redis.abandoned:
            break
        await asyncio.sleep(0.01)
    assert len(redis.abandoned) == 1


class _SlowClaimRedis:
    """Takes the claim's `SET NX` at once but answers it only when `answer` is set (a client
    gone meanwhile cancels the request with the claim in Redis); the abandon script on a
    dict, as tests/unit/test_idempotency_claims.py."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.answer = asyncio.Event()

    async def set(self, key: str, value: bytes, nx: bool = False, ex: int = 0) -> bool:
        taken = key not in self.data
        if taken:
            self.data[key] = value
        await self.answer.wait()
        return taken

    def register_script(self, source: str) -> Any:
        async def abandon(keys: list[str], args: list[bytes]) -> int:
            return int(self.data.get(keys[0]) == args[0] and bool(self.data.pop(keys[0])))

        return abandon


async def test_a_request_cancelled_while_its_claim_is_sent_frees_it() -> None:
    """The claim was sent outside the block that frees the key on an error: a client that left
    while Redis took the claim left it "in progress", and its retry got 409 for 60 s."""
    redis = _SlowClaimRedis()
    idem = Idempotency(redis, 60, RedisOutage())  # type: ignore[arg-type]
    service = AcceptService(_Admission(), idem, _Intake(True))  # type: ignore[arg-type]
    request = asyncio.create_task(service.place(_WHO, _CMD, "key-1"))
    for _ in range(100):  # the claim reached Redis; its answer has not come back
        if redis.data:
            break
        await asyncio.sleep(0.01)
    assert redis.data
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(request, 5)
    assert redis.data == {}
