"""A steady order load that never gives up on an order: every logical order carries its own
Idempotency-Key and is retried (same key) through 5xx, 503, 429, 409 and connection errors, so
a fault can delay an order but never turn it into a lost or duplicated one. Any other answer
ends the order as refused (by status), which the verdict counts as a fault."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from cli.api import local_gateway
from core.auth import make_token
from core.settings import Settings

_RETRY_FOR_S = 120.0
DECLINING_CARD = "pm_card_chargeDeclined"
_TWO_SKUS = 1 / 3
# the answers short of 5xx that a run may get and retries with the same key: the per-principal
# rate limit (429) and the key's first request still in flight (409, e.g. after a timeout)
RETRIED_4XX = (409, 429)


@dataclass(frozen=True, slots=True)
class Placed:
    """What an accepted order asked for: what its outcome is judged against."""

    lines: tuple[tuple[str, int], ...]  # (sku, qty), one or two SKUs
    declining: bool  # paid with the test card the provider always declines


class SteadyLoad:
    def __init__(
        self,
        settings: Settings,
        rate: float,
        skus: list[str],
        customers: int = 40,
        decline_share: float = 0.1,
    ) -> None:
        self._settings = settings
        self._rate = rate
        self._skus = skus
        self._decline = decline_share
        # principals (and their customer ids) of this run alone: a run before it left their
        # charges and claims behind, and the audit finds every order they placed by them
        run = uuid.uuid4().hex[:8]
        self.principals = [f"chaos-{run}-{i}" for i in range(customers)]
        self._tokens = [
            (
                who,
                make_token(
                    who,
                    ["customer"],
                    secret=settings.jwt_secret,
                    audience=settings.jwt_audience,
                    issuer=settings.jwt_issuer,
                ),
            )
            for who in self.principals
        ]
        self.accepted: list[str] = []
        self.placed: dict[str, Placed] = {}  # order id → what it asked for
        self.codes: Counter[int] = Counter()
        # orders ended by an answer neither 202 nor retried (a 4xx other than 409 and 429): a
        # run plans none (its tokens, bodies and customer ids are valid), so each is a fault
        self.refused: Counter[int] = Counter()
        self.gave_up = 0
        # orders whose outcome the load could not read: a 202 without an order id, or an
        # error that is not the transport's; each is a fault, never a silent drop
        self.unreadable: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop sending new orders and wait until every started one is accepted or given up."""
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        """What the load did: accepted, given up, refused, every answer's status."""
        return (
            f"accepted={len(self.accepted)} gave_up={self.gave_up} "
            f"refused={dict(self.refused)} codes={dict(self.codes)}"
            + (f" unreadable={dict(self.unreadable)}" if self.unreadable else "")
        )

    async def _run(self) -> None:
        url = local_gateway(self._settings)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            pending: set[asyncio.Task[None]] = set()
            next_at = time.monotonic()
            while not self._stop.is_set():
                task = asyncio.create_task(self._one(client))
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += 1.0 / self._rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if pending:
                await asyncio.gather(*pending)

    async def _one(self, client: httpx.AsyncClient) -> None:
        """One logical order until it is accepted, refused or given up; whatever else goes
        wrong is counted in `unreadable` (a task that raised was dropped from `pending`
        unseen, and its order from every count)."""
        try:
            await self._place(client)
        except Exception as exc:
            self.unreadable[type(exc).__name__] += 1

    async def _place(self, client: httpx.AsyncClient) -> None:
        who, token = random.choice(self._tokens)
        # a third of the orders name two SKUs: all or nothing, also when one sells out
        skus = random.sample(self._skus, 2 if random.random() < _TWO_SKUS else 1)
        lines = tuple((sku, random.randint(1, 3)) for sku in skus)
        placed = Placed(lines, random.random() < self._decline)
        body: dict[str, Any] = {
            "customerId": who,
            "items": [{"sku": sku, "qty": qty} for sku, qty in lines],
        }
        if placed.declining:
            body["paymentMethod"] = DECLINING_CARD
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
        deadline, delay = time.monotonic() + _RETRY_FOR_S, 0.2
        while time.monotonic() < deadline:
            try:
                resp = await client.post("/api/orders", json=body, headers=headers)
                self.codes[resp.status_code] += 1
                if resp.status_code == 202:
                    order_id = str(resp.json()["orderId"])  # none: `unreadable`
                    self.placed[order_id] = placed
                    self.accepted.append(order_id)
                    return
                if resp.status_code < 500 and resp.status_code not in RETRIED_4XX:
                    # refused: nothing was stored, nothing to track, but the verdict counts it
                    self.refused[resp.status_code] += 1
                    return
            except httpx.HTTPError:
                self.codes[0] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
        self.gave_up += 1
