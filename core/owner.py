"""The schema owner's Postgres URL, for `orders migrate` and `orders seed` only.

Not a field of `Settings`: every platform process loads those, from the environment and the
local stack's `.run/credentials.env`, and the owner's password must reach none of them (the
scripts drop it from Ray's environment: cluster/common.sh, RAY_ENV_DROP). Read here, by the
two commands that change the schema or its catalog."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from core.settings import CREDENTIALS, ReadableFiles, get_settings


class _Owner(ReadableFiles):
    """MIGRATION_DATABASE_URL as the local stack's credentials file has it."""

    model_config = SettingsConfigDict(env_file=(CREDENTIALS,), extra="ignore", frozen=True)

    migration_database_url: str = ""


def owner_database_url(credentials: Path = CREDENTIALS) -> str:
    """Where migrations and the catalog's seed connect. A URL the caller names wins: the
    environment's MIGRATION_DATABASE_URL, else the environment's DATABASE_URL (what compose,
    Kubernetes and cluster/up.sh set for these commands); else the local stack's owner
    (MIGRATION_DATABASE_URL in `.run/credentials.env`); else DATABASE_URL as `Settings` reads
    it (a database whose runtime role owns the schema)."""
    for name in ("MIGRATION_DATABASE_URL", "DATABASE_URL"):
        if os.environ.get(name):
            return os.environ[name]
    owner = _Owner(_env_file=credentials)
    return owner.migration_database_url or get_settings().database_url
