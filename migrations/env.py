"""Alembic environment: the database URL comes from the project's settings (the schema
owner's: `core.owner.owner_database_url`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from adapters.schema import include_name, metadata
from core.owner import owner_database_url
from core.settings import sqlalchemy_form

engine = create_engine(sqlalchemy_form(owner_database_url()))
with engine.connect() as connection:
    # partitions (pg_partman's) are not in the metadata: autogenerate must not drop them
    context.configure(connection=connection, target_metadata=metadata, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()
