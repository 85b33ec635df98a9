from __future__ import annotations

import pytest

from core.settings import Settings


def test_dev_mode_accepts_the_demo_secret() -> None:
    assert Settings(app_env="dev", jwt_secret="devsecret").jwt_secret == "devsecret"


@pytest.mark.parametrize("secret", ["devsecret", "short-but-not-default", "x" * 31])
def test_non_dev_modes_refuse_weak_secrets(secret: str) -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        Settings(app_env="prod", jwt_secret=secret)


def test_prod_accepts_a_strong_secret() -> None:
    assert Settings(app_env="prod", jwt_secret="k" * 32).app_env == "prod"


def test_bad_values_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVENTORY_SHARDS", "0")
    with pytest.raises(ValueError, match="inventory_shards"):
        Settings()


SECRETS = {"JWT_SECRET", "DATABASE_URL", "REDIS_URL", "KAFKA_PASSWORD"}


def test_every_setting_but_the_secrets_travels_to_the_actors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cluster.deploy import _env_vars

    for name in Settings.model_fields:
        monkeypatch.setenv(name.upper(), "x")
    monkeypatch.setenv("RAY_SERVE_ENABLE_HA_PROXY", "1")
    monkeypatch.setenv("UNRELATED_VARIABLE", "1")
    sent = _env_vars()
    assert {name.upper() for name in Settings.model_fields} - SECRETS == set(sent) - {
        "RAY_SERVE_ENABLE_HA_PROXY"
    }
    assert sent["RAY_SERVE_ENABLE_HA_PROXY"] == "1" and "UNRELATED_VARIABLE" not in sent


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_SECRET", "x"),
        ("DATABASE_URL", "postgresql://orders_app@db/orders"),
        ("KAFKA_BOOTSTRAP", "kafka://user:hunter2@broker:9092"),
        ("RAY_SERVE_SOME_TOKEN", "x"),
        ("RAY_SERVE_PROXY_URL", "http://admin:hunter2@proxy"),
    ],
)
def test_secrets_never_travel_in_the_runtime_env(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from cluster.deploy import _env_vars

    monkeypatch.setenv(name, value)
    assert name not in _env_vars()


def test_a_setting_that_is_gone_is_named_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("CONSUMERS_PER_GROUP", "2")
    get_settings.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="core.settings"):
            get_settings()
    finally:
        get_settings.cache_clear()
    assert any(
        "CONSUMERS_PER_GROUP is no longer used" in r.getMessage()
        and "INVENTORY_SHARDS" in r.getMessage()
        for r in caplog.records
    ), caplog.text
