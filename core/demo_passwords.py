"""Passwords committed in this repository for demos (the defaults of `core.settings`,
docker/*.dev.env, k8s/infra/secrets.yaml; tests/unit/test_settings.py checks none is missing):
anyone can read them, so `Settings` refuses them outside APP_ENV=dev."""

from __future__ import annotations

DEMO_PASSWORDS = frozenset(
    {
        "orders",
        "orders-dev",
        "postgres-dev",
        "orders-app-dev",
        "orders-app-pg-dev",
        "orders-pg-dev",
        "postgres-pg-dev",
        "redis-dev",
        "orders-redis",
        "kafka-dev",
        "kafka-scram-dev",
        "ray-gcs-redis",
    }
)
