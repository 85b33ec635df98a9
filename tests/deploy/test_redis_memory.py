"""Redis keeps at most a cap of data, in every way the stack runs it, and past the cap evicts
only keys with a TTL (idempotency entries, rate-limit windows), never a key without one (the
payment breaker's state; in Kubernetes, the Ray GCS's tables). Before, no cap: a day of
idempotency entries (~600 B each for 24 h) grew without bound, and a Kubernetes pod passed its
256 Mi limit and was killed. Each server is run here with a tiny cap and filled."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from adapters.provider import STATE_KEY
from tests.deploy import local_servers as ls
from tests.deploy.test_infra_scripts import SOURCES, _ray_node_env, _redis

_VALUE = "x" * 600  # about an idempotency entry


def _fill_past_the_cap(app: redis.Redis) -> None:
    app.set(STATE_KEY, "closed")  # no TTL, as the breaker's keys
    for i in range(20_000):  # ~12 MB, several times the cap: every write must still work
        app.set(f"idem:{i}", _VALUE, ex=86_400)
    assert app.get(STATE_KEY) == b"closed"
    assert app.dbsize() < 10_000
    # Redis's LRU is sampled and its clock ticks once a second, so which key goes is a matter of
    # odds: any one of the newest keys may go (~5 % each, measured), but the oldest go first.
    oldest = sum(app.exists(f"idem:{i}") for i in range(1_000))
    newest = sum(app.exists(f"idem:{i}") for i in range(19_800, 20_000))
    assert oldest <= 10, f"{oldest} of the 1,000 oldest keys kept"
    assert newest >= 150, f"{newest} of the 200 newest keys kept"


def test_the_local_redis_evicts_keys_with_a_ttl_past_its_cap(tmp_path: Path) -> None:
    server = ls.LocalRedis(tmp_path)
    server.start()
    try:
        app = server.client()
        _fill_past_the_cap(app)
        app.close()
    finally:
        server.stop()


@pytest.mark.parametrize("source", SOURCES)
def test_the_images_redis_evicts_keys_with_a_ttl_past_its_cap(source: str, tmp_path: Path) -> None:
    command, env, port, _ = _redis(source, tmp_path)
    script, cap = command[-1], "--maxmemory 3mb --maxmemory-policy volatile-lru"
    shown = script.replace(
        "--maxmemory 160mb --maxmemory-policy", "--maxmemory 3mb --maxmemory-policy"
    )
    shown = shown.replace(
        "--maxmemory 1gb --maxmemory-policy", "--maxmemory 3mb --maxmemory-policy"
    )
    assert cap in shown, script
    node = urlsplit(_ray_node_env(source)["REDIS_URL"])
    with ls.server([*command[:-1], shown], env, port, tmp_path / "redis.log"):
        app = redis.Redis(port=port, username=node.username, password=node.password)
        _fill_past_the_cap(app)
        app.close()
