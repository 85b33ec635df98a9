from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

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
