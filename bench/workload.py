"""What the benchmark sends: many customers with their own tokens and a mix of orders.

The mix is seeded, so a run is reproducible: single- and multi-SKU orders, a share paid with a
declining card, and a share that asks for one of the scarce SKUs (out of stock after a few).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from core.auth import make_token
from core.settings import Settings

SCARCE_SKUS: tuple[str, ...] = tuple(f"SKU-{i}" for i in range(81, 86))
# Not the SKUs that the integration tests (1-14, 86-100) or `orders chaos` (71-74) set to small
# stock: a bench may run while they do.
REGULAR_SKUS: tuple[str, ...] = tuple(f"SKU-{i}" for i in (*range(15, 71), *range(75, 81)))
_DECLINING = ("pm_card_chargeDeclined", "pm_card_insufficientFunds")


@dataclass(frozen=True)
class Mix:
    """Shares of the order mix (each 0..1)."""

    multi_share: float = 0.3
    decline_share: float = 0.05
    oos_share: float = 0.02
    max_lines: int = 4
    max_qty: int = 3


@dataclass(frozen=True)
class Customer:
    customer_id: str
    token: str


def customers(settings: Settings, prefix: str, count: int) -> list[Customer]:
    """`count` customers, each its own principal (`sub` = customer id) with a customer token."""
    out = []
    for i in range(count):
        cid = f"{prefix}-{i}"
        token = make_token(
            cid,
            ["customer"],
            secret=settings.jwt_secret,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
        out.append(Customer(cid, token))
    return out


def admin_token(settings: Settings) -> str:
    return make_token(
        "bench-admin",
        ["admin"],
        secret=settings.jwt_secret,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )


class OrderFactory:
    """Yields `(customer, body)` pairs of the configured mix."""

    def __init__(self, mix: Mix, people: list[Customer], seed: int, *, scarce: bool = True) -> None:
        self._mix = mix
        self._people = people
        self._rng = random.Random(seed)
        self._scarce = scarce

    def next(self) -> tuple[Customer, bytes]:
        rng, mix = self._rng, self._mix
        who = rng.choice(self._people)
        lines = rng.randint(2, mix.max_lines) if rng.random() < mix.multi_share else 1
        skus = rng.sample(REGULAR_SKUS, lines)
        if self._scarce and rng.random() < mix.oos_share:
            skus[rng.randrange(lines)] = rng.choice(SCARCE_SKUS)
        body: dict[str, object] = {
            "customerId": who.customer_id,
            "items": [{"sku": s, "qty": rng.randint(1, mix.max_qty)} for s in skus],
        }
        if rng.random() < mix.decline_share:
            body["paymentMethod"] = rng.choice(_DECLINING)
        return who, orjson.dumps(body)
