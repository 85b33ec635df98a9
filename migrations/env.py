"""Alembic environment: the database URL comes from the project's settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from adapters.schema import metadata
from core.settings import get_settings

engine = create_engine(get_settings().sqlalchemy_url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
