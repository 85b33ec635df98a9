"""The accept path: validate against the catalog (in memory), admit (rate limit, circuit), then
one Postgres statement shared by concurrent requests (group commit) claims the customer id and
stores the order, its timeline row and its outbox row; then 202. No actor call on this path
(ADR-003). Bad input is refused first: its 422 counts against no rate limit, is not turned into
a 503 by an open circuit, and claims no Idempotency-Key."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from decimal import Decimal

from adapters.accept_store import (
    CLAIM_CAP_SETTING,
    NewOrder,
    Outcome,
    Pool,
    Stored,
    claim_refused,
    insert_batch,
    load_prices,
    session_setting,
    stored_for,
)
from adapters.group_commit import GroupCommit
from adapters.pg import now
from core.auth import AuthError, Principal, forbidden
from domain.catalog import CURRENCY, order_total
from domain.commands import PlaceOrder, merge_lines
from domain.errors import InProgress, InvalidInput, Unavailable
from domain.events import new_event
from domain.ids import uuid7
from serve_app.admission import Admission, Idempotency
from serve_app.models import Accepted
from serve_app.views import accepted_view

# A request whose customer id another commit claimed while its own statement ran is sent again
# (the next statement sees the claim); more than a few rounds means something else is wrong.
_CLAIM_ROUNDS = 3
_CLAIM_PAUSE_S = (0.005, 0.03)  # between rounds, jittered


@dataclass(frozen=True)
class CheckedOrder:
    """An order that passed the catalog's rules (`OrderIntake.check`): its command and its
    lines, one per sku."""

    cmd: PlaceOrder
    lines: dict[str, int]


class OrderIntake:
    """Creates orders. Prices come from the catalog loaded at start, never from clients.

    `pool` is its own, in autocommit mode: a batch is one statement, hence one transaction, and
    one round trip to Postgres instead of two (statement, then COMMIT); it owns and closes it."""

    def __init__(
        self, pool: Pool, prices: dict[str, Decimal], flushers: int, claim_cap: int
    ) -> None:
        self._pool = pool
        self._prices = prices
        self._claim_cap = claim_cap  # the pool's connections set it for the claim's trigger
        self._commit: GroupCommit[NewOrder, Stored] = GroupCommit(self._flush, flushers=flushers)

    @classmethod
    async def open(cls, pool: Pool, flushers: int, claim_cap: int) -> OrderIntake:
        prices = await load_prices(pool)
        if not prices:
            raise RuntimeError("the catalog is empty: run `make up` (it seeds SKU-1…SKU-100)")
        seen = await session_setting(pool, CLAIM_CAP_SETTING)
        if seen != str(claim_cap):  # e.g. a connection pooler that drops libpq's `options`
            raise RuntimeError(
                f"the accept pool's sessions have {CLAIM_CAP_SETTING}={seen!r}, not {claim_cap}: "
                "without it customer ids are claimed uncapped; connect to Postgres directly "
                "or let the pooler pass the `options` startup parameter"
            )
        return cls(pool, prices, flushers, claim_cap)

    async def _flush(self, batch: list[NewOrder]) -> list[Stored]:
        return await insert_batch(self._pool, batch)

    async def close(self) -> None:
        await self._commit.close()
        await self._pool.close()

    def check(self, cmd: PlaceOrder) -> CheckedOrder:
        """The catalog's rules: every sku known, at most 1000 of one sku over all lines (422
        otherwise). The catalog is in memory, so this costs no round trip."""
        merged = merge_lines(list(cmd.items))
        unknown = sorted(sku for sku in merged if sku not in self._prices)
        if unknown:
            raise InvalidInput("unknown sku: use a sku from the catalog", {"skus": unknown})
        too_many = sorted(sku for sku, qty in merged.items() if qty > 1000)
        if too_many:
            raise InvalidInput("qty per sku must be 1..1000", {"skus": too_many})
        return CheckedOrder(cmd, merged)

    async def place(
        self, who: Principal, checked: CheckedOrder, idempotency: tuple[str, str] | None = None
    ) -> tuple[Accepted, bool]:
        """Store the order `check` passed and its `OrderCreated` event durably.

        With `idempotency=(key, request_hash)`, Postgres keeps one order per (principal, key) in
        the same transaction: a repeated key returns the first order (or 422 if the body
        differs). A customer naming a customer id another principal owns gets 403, nothing
        stored. Returns the 202 body and whether it replays an earlier request."""
        cmd = checked.cmd
        order = self._new_order(who, checked, idempotency)
        for round_ in range(1, _CLAIM_ROUNDS + 1):
            stored = await self._commit.submit(order)
            if stored.outcome is not Outcome.RETRY:
                break
            await self._check_claim_cap(order)
            if round_ < _CLAIM_ROUNDS:  # a concurrent claimer's batch commits within ms
                await asyncio.sleep(random.uniform(*_CLAIM_PAUSE_S))
        else:
            raise Unavailable("customer id claimed concurrently; retry", retry_after_s=1)
        if stored.outcome is Outcome.NOT_OWNER:
            raise forbidden(
                f"customer id {cmd.customer_id} belongs to another principal: a customer may "
                "order only for the customer ids it owns (the first principal to use an id owns "
                "it)"
            )
        if stored.outcome is Outcome.REPEAT and stored.request_hash != order.request_hash:
            raise InvalidInput(
                "Idempotency-Key was already used with a different body; use a new key"
            )
        return accepted_view(stored.order_id, stored.total), stored.outcome is Outcome.REPEAT

    async def _check_claim_cap(self, order: NewOrder) -> None:
        """403 when the order's claim was skipped because its principal owns the most customer
        ids it may (a retry cannot succeed); a claim skipped for any other reason is retried."""
        if order.admin:
            return
        owned = await claim_refused(self._pool, order.principal, order.customer_id, self._claim_cap)
        if owned is not None:
            raise AuthError(
                f"customer id {order.customer_id} is new, and this principal already owns "
                f"{owned} customer ids, the most one principal may own "
                f"(MAX_CUSTOMER_IDS_PER_PRINCIPAL={self._claim_cap}): order for an id it owns",
                status=403,
                code="customer_id_limit",
            )

    async def stored(self, principal: str, key: str, request_hash: str) -> Accepted | None:
        """The 202 of the order an earlier request with this Idempotency-Key stored (422 when
        its body differed), or None when there is none yet."""
        found = await stored_for(self._pool, principal, key)
        if found is None:
            return None
        if found.request_hash != request_hash:
            raise InvalidInput(
                "Idempotency-Key was already used with a different body; use a new key"
            )
        return accepted_view(found.order_id, found.total)

    def _new_order(
        self, who: Principal, checked: CheckedOrder, idempotency: tuple[str, str] | None
    ) -> NewOrder:
        cmd, merged = checked.cmd, checked.lines
        items = [
            {"sku": sku, "qty": qty, "unitPrice": str(self._prices[sku])}
            for sku, qty in merged.items()
        ]
        total = order_total([(qty, self._prices[sku]) for sku, qty in merged.items()])
        order_id = uuid7()
        event = new_event(
            "OrderCreated",
            order_id,
            customerId=cmd.customer_id,
            principal=who.sub,
            items=items,
            total=str(total),
            currency=CURRENCY,
            paymentMethod=cmd.payment_method,
        )
        key, request_hash = idempotency or (None, None)
        return NewOrder(
            order_id=order_id,
            principal=who.sub,
            admin=who.is_admin,
            customer_id=cmd.customer_id,
            items=items,
            total=total,
            payment_method=cmd.payment_method,
            created_at=now(),
            event=event,
            idempotency_key=key,
            request_hash=request_hash,
        )


class AcceptService:
    """`POST /api/orders` end to end: the catalog's check, admission, Idempotency-Key, then the
    intake."""

    def __init__(self, admission: Admission, idempotency: Idempotency, intake: OrderIntake):
        self._admission = admission
        self._idempotency = idempotency
        self._intake = intake

    async def place(
        self, who: Principal, cmd: PlaceOrder, idempotency_key: str | None
    ) -> tuple[Accepted, bool]:
        """Admit and store an order; returns its body and whether it is a replay of the first
        request with the same Idempotency-Key (Stripe semantics, see `Idempotency`)."""
        # the catalog's 422 before anything is counted or claimed: bad input changes nothing
        if idempotency_key is None:
            checked = self._intake.check(cmd)
            await self._admission.check(who.sub)  # rate limit and circuit, before storing
            return await self._intake.place(who, checked)
        fp = self._idempotency.fingerprint(cmd.model_dump(mode="json", by_alias=True))
        try:
            checked = self._intake.check(cmd)
        except InvalidInput:
            # a retry of an order this key placed still gets its replay, whatever this
            # replica's catalog says (a rollout that changed the catalog: the first request
            # met a replica that had its sku); a read, nothing claimed
            stored = await self._intake.stored(who.sub, idempotency_key, fp)
            if stored is None:
                raise
            return stored, True
        # a replay (or a 409/422 for the key) first: it stores nothing, so neither the rate
        # limit nor an open circuit stands between a client and an order it already placed
        claim = self._idempotency.claim(who.sub, idempotency_key, fp)
        try:
            stored = await self._idempotency.begin(claim)
        except InProgress:
            # Redis holds a claim: the first request may be running, or done with its outcome
            # never recorded there (Redis slow at that moment); Postgres knows which
            stored = await self._intake.stored(who.sub, idempotency_key, fp)
            if stored is None:
                raise
        except BaseException:
            # cancelled (the client gone) while the claim was sent, it may have taken effect:
            # freed, as below, instead of answering 409 "in progress" until its TTL; a 422
            # (another body) frees nothing, since the key holds another request's entry
            await asyncio.shield(self._idempotency.abandon(claim))
            raise
        if stored is not None:
            return stored, True
        try:
            await self._admission.check(who.sub)
            body, replayed = await self._intake.place(who, checked, (idempotency_key, fp))
        except BaseException:
            # shielded, as `finish` below: a request cancelled (its client gone) still frees
            # or records its key, instead of leaving it "in progress" (409) until the claim's TTL
            await asyncio.shield(self._idempotency.abandon(claim))
            raise
        await asyncio.shield(self._idempotency.finish(claim, body))
        return body, replayed

    async def close(self) -> None:
        await self._admission.close()
        await self._intake.close()
