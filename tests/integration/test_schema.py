from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from adapters.schema import metadata
from core.settings import Settings


def test_migrated_database_matches_the_declared_schema(settings: Settings) -> None:
    engine = create_engine(settings.sqlalchemy_url)
    with engine.connect() as conn:
        diff: list[Any] = compare_metadata(MigrationContext.configure(conn), metadata)
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
