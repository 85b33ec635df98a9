"""The accept path's one statement, planned by the stack's own Postgres: what it reads must not
grow with the number of customers the platform has ever seen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from adapters import accept_store, orders_repo
from adapters.pg import open_pool
from core.settings import Settings
from domain.events import new_event
from domain.ids import uuid7
from tests.integration.scratch import owner_url

# The planner guesses 100 rows for the batch (`jsonb_to_recordset`); for the old `IN (SELECT c
# FROM x)` it read the whole table between ~2,000 and ~17,000 customers (above that it probed
# the index): each size is planned in turn.
_CUSTOMERS_ON_FILE = (1_000, 8_000, 30_000)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _rows_read(plan: dict[str, Any], table: str) -> int:
    """Rows the plan's scans of `table` looked at: returned in every loop, plus filtered out."""
    return sum(
        int(n["Actual Rows"]) * int(n["Actual Loops"]) + int(n.get("Rows Removed by Filter", 0))
        for n in _nodes(plan)
        if n.get("Relation Name") == table and n["Node Type"] != "ModifyTable"
    )


def _two_new_customers() -> list[accept_store.NewOrder]:
    now = datetime.now(UTC)
    return [
        accept_store.NewOrder(
            order_id=order_id,
            principal=f"plan-{n}",
            admin=False,
            customer_id=f"plan-{n}-{uuid.uuid4().hex[:8]}",
            items=[{"sku": "SKU-1", "qty": 1}],
            total=Decimal("10.00"),
            payment_method="pm_card_visa",
            created_at=now,
            event=new_event("OrderCreated", order_id, items=[]),
            idempotency_key=None,
            request_hash=None,
        )
        for n, order_id in enumerate((uuid7(), uuid7()))
    ]


def test_a_batch_reads_only_the_owners_of_the_customers_it_names() -> None:
    """Planned with 1,000, 8,000 and 30,000 other customers on file, a batch of two orders
    reads two owner rows. (`IN (SELECT c FROM x)` read all of them: 4 ms at 14,000.) The table
    is analyzed with them (as the owner: only it may), as autovacuum would: a table the planner
    believes tiny (a fresh stack's, whose statistics an index build set at 2 rows) it rightly
    reads whole, and rows inserted since do not change that belief."""
    with (
        psycopg.connect(owner_url(), row_factory=dict_row) as owner,
        owner.transaction(force_rollback=True),  # nothing of this stays
    ):
        for size in _CUSTOMERS_ON_FILE:
            owner.execute(
                "INSERT INTO customer_owners (customer_id, principal) "
                "SELECT 'plan-other-' || g, 'plan-other' FROM generate_series(1, %s) g "
                "ON CONFLICT DO NOTHING",
                (size,),
            )
            owner.execute("ANALYZE customer_owners")
            batch = _two_new_customers()
            row = owner.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + accept_store._ACCEPT,
                accept_store._params(batch),
            ).fetchone()
            assert row is not None
            plan = next(iter(row.values()))[0]["Plan"]
            assert _rows_read(plan, "customer_owners") <= len(batch), (size, plan)


def _order(
    principal: str,
    customer: str,
    key: str | None,
    admin: bool = False,
    at: datetime | None = None,
) -> accept_store.NewOrder:
    # a UUIDv7 as the gateway makes: a v4 id's notifications would land in the default partition
    # of the live stack's table, where nothing ever drops them (ADR-012)
    order_id = uuid7()
    items = [{"sku": "SKU-1", "qty": 1, "unitPrice": "10.00"}]
    return accept_store.NewOrder(
        order_id=order_id,
        principal=principal,
        admin=admin,
        customer_id=customer,
        items=items,
        total=Decimal("10.00"),
        payment_method="pm_card_visa",
        created_at=at or datetime.now(UTC),
        event=new_event(
            "OrderCreated",
            order_id,
            customerId=customer,
            principal=principal,
            items=items,
            total="10.00",
            currency="USD",
            paymentMethod="pm_card_visa",
        ),
        idempotency_key=key,
        request_hash="h" if key else None,
    )


async def test_a_repeat_whose_earlier_order_went_unread_retries_and_its_batch_is_answered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch commits in its one statement; a repeated key's earlier order is read after it.
    When that read failed (the connection cut), every request of the batch got the error, "503,
    nothing stored", the new orders too although they were stored. Now only the repeat submits
    again."""
    pool = await open_pool(settings.database_url, 1, "test-accept", autocommit=True)
    try:
        principal = f"cust-{uuid.uuid4().hex[:10]}"
        first = _order(principal, principal, "k-1")
        [stored] = await accept_store.insert_batch(pool, [first])
        assert stored.outcome is accept_store.Outcome.CREATED

        async def cut(*_: Any) -> Any:
            raise psycopg.OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(accept_store, "_earlier", cut)
        again, other = _order(principal, principal, "k-1"), _order(principal, principal, None)
        out = await accept_store.insert_batch(pool, [again, other])
        assert [s.outcome for s in out] == [
            accept_store.Outcome.RETRY,
            accept_store.Outcome.CREATED,
        ]
        assert out[1].order_id == other.order_id
        monkeypatch.undo()
        [replayed] = await accept_store.insert_batch(pool, [again])
        assert replayed.outcome is accept_store.Outcome.REPEAT
        assert replayed.order_id == first.order_id
    finally:
        await pool.close()


async def test_a_request_whose_key_is_used_claims_nothing(settings: Settings, pg: Any) -> None:
    """A request that is not stored because its (principal, Idempotency-Key) already has an
    order (from an earlier statement, or earlier in its own batch) claims no customer id: it is
    answered as a repeat (the service replays or answers 422), and another principal may still
    take the id in the same batch."""
    pool = await open_pool(settings.database_url, 1, "test-accept", autocommit=True)
    try:
        p, q = (f"cust-{uuid.uuid4().hex[:10]}" for _ in range(2))
        fresh, other = f"{p}-fresh", f"{p}-other"
        [first] = await accept_store.insert_batch(pool, [_order(p, p, "k-1")])
        assert first.outcome is accept_store.Outcome.CREATED
        reused, taker = _order(p, fresh, "k-1"), _order(q, fresh, None)
        out = await accept_store.insert_batch(pool, [reused, taker])
        assert [s.outcome for s in out] == [
            accept_store.Outcome.REPEAT,
            accept_store.Outcome.CREATED,
        ]
        assert out[0].order_id == first.order_id
        # the same key twice in one batch: the first stores, the second claims nothing
        both = [_order(p, p, "k-2"), _order(p, other, "k-2")]
        out = await accept_store.insert_batch(pool, both)
        assert out[0].outcome is accept_store.Outcome.CREATED
        assert out[1].outcome is not accept_store.Outcome.CREATED
        [again] = await accept_store.insert_batch(pool, [both[1]])  # as the service resubmits
        assert again.outcome is accept_store.Outcome.REPEAT
        rows = pg.execute(
            "SELECT customer_id, principal FROM customer_owners WHERE customer_id = ANY(%s)",
            ([fresh, other],),
        ).fetchall()
        owners = {r["customer_id"]: r["principal"] for r in rows}
        assert owners == {fresh: q}
    finally:
        await pool.close()


async def test_two_batches_with_the_same_keys_in_another_order_do_not_deadlock(
    settings: Settings,
) -> None:
    """One principal's keys in flight twice (Redis's 409 skipped: unavailable, or its claim
    expired), in two concurrent batches in opposite orders: each insert waited for the other
    batch's uncommitted row in a cycle, and Postgres aborted one batch (a 503 for every order
    in it; 21 of 30 such pairs of 60 keys). Both batches now insert in key order."""
    pool = await open_pool(settings.database_url, 2, "test-accept", autocommit=True)
    try:
        for _ in range(10):
            p = f"cust-{uuid.uuid4().hex[:10]}"
            await accept_store.insert_batch(pool, [_order(p, p, None)])  # p owns its id
            keys = [f"k-{i:02d}" for i in range(60)]
            one = [_order(p, p, k) for k in keys]
            other = [_order(p, p, k) for k in reversed(keys)]
            out = await asyncio.gather(
                accept_store.insert_batch(pool, one),
                accept_store.insert_batch(pool, other),
                return_exceptions=True,
            )
            failed = [o for o in out if isinstance(o, BaseException)]
            assert not failed, failed
            outcomes = [s.outcome for batch in out for s in batch]  # type: ignore[union-attr]
            assert outcomes.count(accept_store.Outcome.CREATED) == len(keys)
    finally:
        await pool.close()


def test_a_customer_id_is_claimed_at_its_first_orders_time(settings: Settings) -> None:
    """An order's time is the gateway's clock, its id's claim was the database's: an order of an
    admin placed after the claim by the gateway's clock (here 30 s behind the database's, as a
    queued batch or a drifting host makes it) was hidden from the id's owner (404), and one
    placed before it could be shown. The claim now takes its order's time."""
    now = datetime.now(UTC)
    customer_id, principal = f"clock-{uuid.uuid4().hex[:8]}", f"clock-{uuid.uuid4().hex[:8]}"
    first = _order(principal, customer_id, None, at=now - timedelta(seconds=60))
    earlier = _order("admin1", customer_id, None, admin=True, at=now - timedelta(seconds=90))
    later = _order("admin1", customer_id, None, admin=True, at=now - timedelta(seconds=30))

    async def run() -> tuple[list[Any], datetime]:
        pool = await open_pool(settings.database_url, 1, "test-clock")
        try:
            for batch in ([earlier], [first], [later]):
                await accept_store.insert_batch(pool, batch)
            owners = []
            for order in (earlier, later):
                found = await orders_repo.order_with_timeline(pool, order.order_id)
                assert found is not None
                owners.append(found[0]["owner"])
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT claimed_at FROM customer_owners WHERE customer_id = %s",
                    (customer_id,),
                )
                row = await cur.fetchone()
            assert row is not None
            return owners, row["claimed_at"]
        finally:
            await pool.close()

    owners, claimed_at = asyncio.run(run())
    assert claimed_at == first.created_at
    assert owners == [None, principal]  # the earlier admin order stays the admins'
