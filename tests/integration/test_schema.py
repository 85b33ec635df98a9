from __future__ import annotations

import os
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from adapters import payments
from adapters.schema import include_name, metadata
from core.settings import Settings


def test_migrated_database_matches_the_declared_schema(settings: Settings) -> None:
    engine = create_engine(settings.sqlalchemy_url)
    with engine.connect() as conn:
        # partitions come and go with pg_partman's maintenance: not declared (ADR-012)
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff: list[Any] = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_database_constraints_forbid_negative_or_over_reserved_stock(pg: Any) -> None:
    checks = {
        r["conname"]
        for r in pg.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'inventory'::regclass"
        )
    }
    assert {"stock_not_negative", "reserved_within_stock"} <= checks


def test_tables_updated_in_place_leave_room_for_hot_updates(pg: Any) -> None:
    """orders (migration 0003), payments and shipments (0010), reservations (0011): status
    changes never touch an index, and fillfactor 80 leaves room for the new row version on the
    same page."""
    options = {
        r["relname"]: r["reloptions"] or []
        for r in pg.execute(
            "SELECT relname, reloptions FROM pg_class "
            "WHERE relname IN ('orders', 'payments', 'shipments', 'reservations') "
            "AND relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
    }
    tables = ("orders", "payments", "shipments", "reservations")
    assert options == {t: ["fillfactor=80"] for t in tables}


def test_queue_tables_are_vacuumed_promptly_and_always_find_a_worker(pg: Any) -> None:
    """The outbox and the open holds (migrations 0004, 0011): vacuumed every 5,000 dead rows
    without a cost delay, and the local stack's Postgres runs more autovacuum workers than the
    big tables that may be due together (cluster/services.sh), so those settings are not moot
    while the big tables' long, cost-delayed vacuums hold workers."""
    options = {
        r["relname"]: sorted(r["reloptions"] or [])
        for r in pg.execute(
            "SELECT relname, reloptions FROM pg_class "
            "WHERE relname IN ('outbox', 'reservation_holds') "
            "AND relnamespace = 'public'::regnamespace"
        )
    }
    queue = [
        "autovacuum_vacuum_cost_delay=0",
        "autovacuum_vacuum_scale_factor=0",
        "autovacuum_vacuum_threshold=5000",
    ]
    assert options == {"outbox": queue, "reservation_holds": queue}
    row = pg.execute("SHOW autovacuum_max_workers").fetchone()
    wanted = int(os.environ.get("PG_AUTOVACUUM_WORKERS", "8"))
    assert row is not None and int(row["autovacuum_max_workers"]) == wanted, (
        "set at Postgres's start: restart it (make down && make up)"
    )


def test_the_payment_shards_reload_reads_only_the_open_authorizations(pg: Any) -> None:
    """A payment shard reads every customer's open exposure when it starts and after a failed
    transaction: that scanned the whole ledger (94 ms at 1.15 M rows, under the shard's lock),
    now the partial index of the open ones (migration 0016), whatever the ledger's size."""
    pg.execute("SET enable_seqscan = off")  # the plan with the index, if there is one
    try:
        plan = "\n".join(str(r) for r in pg.execute(f"EXPLAIN {payments.OUTSTANDING}").fetchall())
    finally:
        pg.execute("RESET enable_seqscan")
    assert "ix_payments_authorized" in plan, plan
