"""`orders migrate` and `orders seed` connect as the schema's owner, and no platform process
loads the owner's password: it is not a field of `Settings` (core/owner.py). A URL the caller
names wins over the local stack's owner (compose, Kubernetes and cluster/up.sh name one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.owner import owner_database_url
from core.settings import Settings

OWNER = "postgresql://orders:owner-pw@127.0.0.1:5432/orders"


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MIGRATION_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "credentials.env"
    path.write_text(f"MIGRATION_DATABASE_URL={OWNER}\n")
    return path


def test_the_local_stacks_owner_is_used(credentials: Path) -> None:
    assert owner_database_url(credentials) == OWNER


def test_a_url_in_the_environment_wins(credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://other@db:5432/orders")
    assert owner_database_url(credentials) == "postgresql://other@db:5432/orders"
    monkeypatch.setenv("MIGRATION_DATABASE_URL", "postgresql://owner@db:5432/orders")
    assert owner_database_url(credentials) == "postgresql://owner@db:5432/orders"


def test_no_platform_process_loads_the_owners_password() -> None:
    assert "migration_database_url" not in Settings.model_fields
