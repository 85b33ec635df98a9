"""An order the catalog refuses (unknown sku, over 1000 of one sku) gets its 422 before the
accept path counts or claims anything (serve_app/accept.py): it used to pass admission first,
so it used up the principal's rate limit, got a 503 while the payment circuit was open, and
with an Idempotency-Key claimed the key in Redis before being refused."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from core.auth import Principal
from domain.commands import PlaceOrder
from domain.errors import InvalidInput, Unavailable
from serve_app.accept import AcceptService, OrderIntake
from serve_app.admission import Claim
from serve_app.models import Accepted
from serve_app.views import accepted_view

_WHO = Principal(sub="customer1", roles=frozenset({"customer"}))


class _OpenCircuit:
    """Admission while the payment circuit is open: every order it is asked about is a 503."""

    def __init__(self) -> None:
        self.checked: list[str] = []

    async def check(self, principal: str) -> None:
        self.checked.append(principal)  # the rate limit's counter goes up
        raise Unavailable("payments are temporarily unavailable (circuit open)", retry_after_s=9)

    async def close(self) -> None:
        return None


class _NoPool:
    """Postgres that must not be reached: only closing it is expected."""

    async def close(self) -> None:
        return None


class _Idempotency:
    def __init__(self) -> None:
        self.claimed: list[str] = []

    @staticmethod
    def fingerprint(body: Any) -> str:
        return "fp"

    def claim(self, principal: str, key: str, fingerprint: str) -> Claim:
        return Claim(key, fingerprint, "token")

    async def begin(self, claim: Claim) -> None:
        self.claimed.append(claim.rkey)

    async def abandon(self, claim: Claim) -> None:
        return None


def _order(*lines: tuple[str, int]) -> PlaceOrder:
    items = [{"sku": sku, "qty": qty} for sku, qty in lines]
    return PlaceOrder.model_validate({"customerId": "c-1", "items": items})


class _Intake(OrderIntake):
    """The real intake (its catalog check), its Postgres lookup of a key's order given."""

    found: Accepted | None = None  # the order an earlier request with the key stored

    async def stored(self, principal: str, key: str, request_hash: str) -> Accepted | None:
        return self.found


async def _service(
    found: Accepted | None = None,
) -> tuple[AcceptService, _OpenCircuit, _Idempotency]:
    # nothing may reach Postgres here
    prices = {"SKU-1": Decimal("9.50")}
    intake = _Intake(_NoPool(), prices, flushers=1, claim_cap=10)  # type: ignore[arg-type]
    intake.found = found
    admission, idem = _OpenCircuit(), _Idempotency()
    return AcceptService(admission, idem, intake), admission, idem  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cmd", "skus"),
    [
        (_order(("SKU-1", 1), ("NOPE-9", 1)), ["NOPE-9"]),
        (_order(("SKU-1", 600), ("SKU-1", 600)), ["SKU-1"]),  # 1200 of one sku over two lines
    ],
    ids=["unknown-sku", "over-1000-of-one-sku"],
)
@pytest.mark.parametrize("key", [None, "key-1"], ids=["no-key", "idempotency-key"])
async def test_an_order_the_catalog_refuses_is_422_and_counts_or_claims_nothing(
    cmd: PlaceOrder, skus: list[str], key: str | None
) -> None:
    service, admission, idem = await _service()
    try:
        with pytest.raises(InvalidInput) as refused:
            await service.place(_WHO, cmd, key)
        assert refused.value.details == {"skus": skus}
        assert admission.checked == [] and idem.claimed == []
    finally:
        await service.close()


async def test_a_valid_order_still_meets_admission() -> None:
    """The control: the same service refuses a good order with the open circuit's 503."""
    service, admission, idem = await _service()
    try:
        with pytest.raises(Unavailable):
            await service.place(_WHO, _order(("SKU-1", 2)), "key-1")
        assert admission.checked == ["customer1"] and idem.claimed == ["key-1"]
    finally:
        await service.close()


async def test_a_retry_of_a_placed_order_gets_its_replay_though_the_catalog_refuses_it() -> None:
    """A rollout that changed the catalog: the first request met a replica that had the sku,
    its retry one that has not. The retry gets the stored 202, not a 422."""
    first = accepted_view(uuid.uuid4(), Decimal("19.00"))
    service, admission, idem = await _service(found=first)
    try:
        assert await service.place(_WHO, _order(("NOPE-9", 2)), "key-1") == (first, True)
        assert admission.checked == [] and idem.claimed == []
    finally:
        await service.close()
