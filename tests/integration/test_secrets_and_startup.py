"""Secrets stay out of logs and out of what the Ray dashboard shows (which needs Ray's token);
outside dev mode a weak secret stops the service at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from core.settings import Settings
from tests.integration.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = (
    f"http://{os.environ.get('DASHBOARD_HOST', '127.0.0.1')}:"
    f"{os.environ.get('DASHBOARD_PORT', '8265')}"
)
# What the dashboard says about jobs, Serve, actors, nodes, placement groups and tasks.
DASHBOARD_PATHS = [
    "/api/jobs/",
    "/api/serve/applications/",
    "/api/v0/actors?detail=1&limit=10000",
    "/api/v0/nodes?detail=1",
    "/nodes?view=summary",
    "/api/v0/placement_groups?detail=1",
    "/api/v0/tasks?detail=1&limit=1000",
    "/api/cluster_status",
]


def _secrets(settings: Settings) -> dict[str, str]:
    """Every secret value of the stack this process knows, by name."""
    found = {"JWT_SECRET": settings.jwt_secret}
    for name, url in [
        ("DATABASE_URL", settings.database_url),
        ("REDIS_URL", settings.redis_url),
        ("MIGRATION_DATABASE_URL", os.environ.get("MIGRATION_DATABASE_URL", "")),
    ]:
        if urlsplit(url).password:
            found[f"password of {name}"] = str(urlsplit(url).password)
    for name in (
        "ORDERS_DB_PASSWORD",
        "ORDERS_APP_DB_PASSWORD",
        "REDIS_PASSWORD",
        "RAY_AUTH_TOKEN",
    ):
        if os.environ.get(name):
            found[name] = os.environ[name]
    return found


@pytest.mark.parametrize("path", DASHBOARD_PATHS)
def test_the_dashboard_answers_nothing_without_rays_token(path: str) -> None:
    resp = httpx.get(DASHBOARD + path, timeout=30)
    assert resp.status_code == 401, resp.text[:200]


def test_the_dashboard_shows_no_secret_even_with_the_token(settings: Settings) -> None:
    secrets = _secrets(settings)
    assert {"JWT_SECRET", "password of DATABASE_URL", "password of REDIS_URL"} <= set(secrets)
    headers = {"Authorization": f"Bearer {os.environ['RAY_AUTH_TOKEN']}"}
    bodies = {}
    with httpx.Client(base_url=DASHBOARD, headers=headers, timeout=60) as client:
        for path in DASHBOARD_PATHS:
            resp = client.get(path)
            assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text[:200]}"
            bodies[path] = resp.text
    # the pages do describe the platform (its deploy job with its runtime_env, the Serve app)
    assert "cli.main deploy" in bodies["/api/jobs/"] and "runtime_env" in bodies["/api/jobs/"]
    assert '"orders"' in bodies["/api/serve/applications/"]
    leaks = [
        f"{name} in {path}"
        for path, body in bodies.items()
        for name, value in secrets.items()
        if value in body
    ]
    assert not leaks


def test_tokens_and_secret_never_reach_the_logs(
    api: Api, customer: str, settings: Settings
) -> None:
    token = api.mint(customer)
    api.http.post(
        "/api/orders",
        json={"customerId": customer, "items": []},
        headers={"Authorization": f"Bearer {token}"},
    )
    api.http.get("/api/orders", headers={"Authorization": f"Bearer {token}x"})
    run = Path(os.environ.get("RUN_DIR", ROOT / ".run"))
    # every service's and Ray's logs; not the console banner of `make up` (test-up.log), which
    # prints the public dev default on purpose, as the seed's quickstart does
    logs = [
        p
        for p in run.rglob("*")
        if p.is_file()
        and p.suffix in {".log", ".out", ".err"}
        and p.stat().st_size < 50_000_000
        and not p.name.startswith("test-up")
    ]
    assert logs, f"no logs found under {run}"
    secret = settings.jwt_secret.encode()
    for path in logs:
        data = path.read_bytes()
        assert token.encode() not in data, f"token leaked into {path}"
        assert b"JWT_SECRET=" + secret not in data, f"secret leaked into {path}"
        assert b'"jwt_secret": "' + secret not in data, f"secret leaked into {path}"


@pytest.mark.parametrize("secret", ["devsecret", "too-short-secret"])
def test_prod_mode_refuses_to_start_with_a_weak_secret(secret: str) -> None:
    env = {**os.environ, "APP_ENV": "prod", "JWT_SECRET": secret}
    proc = subprocess.run(
        [sys.executable, "-c", "import cluster.app"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "JWT_SECRET" in proc.stderr and "openssl rand -hex 32" in proc.stderr
    assert secret not in proc.stderr.replace("JWT_SECRET", "")


def test_cli_reports_bad_settings_and_what_to_set() -> None:
    env = {**os.environ, "APP_ENV": "prod", "JWT_SECRET": "devsecret"}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "token"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "JWT_SECRET" in proc.stderr


def test_dlq_list_and_replay_commands(settings: Settings, kafka_tap: Any) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import murmur2

    from adapters.kafka import client_options, partition_of, partitions_of
    from domain.events import Topic

    marker = f"poison-{uuid.uuid4().hex}".encode()
    tap = kafka_tap(Topic.ORDER_CREATED, Topic.dlq(Topic.ORDER_CREATED))
    count = len(asyncio.run(partitions_of(settings.kafka_bootstrap, Topic.ORDER_CREATED)))
    # an order id whose partition in the flow (crc32) is not the client's default (murmur2):
    # the replay must put it where the order's other events are
    key = next(
        k
        for k in (str(uuid.uuid4()) for _ in range(1000))
        if partition_of(k, count) != (murmur2(k.encode()) & 0x7FFFFFFF) % count
    )

    async def send() -> None:
        producer = AIOKafkaProducer(**client_options(), bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(Topic.ORDER_CREATED, value=marker, key=key.encode())
        finally:
            await producer.stop()

    asyncio.run(send())
    tap.wait_for(
        lambda seen: any(t.endswith(".dlq") and r.value == marker for t, _, r in seen),
        what="poison in the DLQ",
    )
    dead = next(r for t, _, r in tap.seen if t.endswith(".dlq") and r.value == marker)
    env = {**os.environ, "COLUMNS": "250"}

    def dlq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "dlq", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            env=env,
        )

    listing = dlq("list", "order.created", "--limit", "1000")
    assert listing.returncode == 0, listing.stderr
    assert marker.decode()[:40] in listing.stdout and "unparseable" in listing.stdout
    # the newest message only: read from each partition's end, not its start
    newest = dlq("list", "order.created", "--limit", "1")
    assert newest.returncode == 0, newest.stderr
    assert "1 message(s)" in newest.stdout and marker.decode()[:40] in newest.stdout
    # --json: every field whole, for scripts (the table cuts the value)
    as_json = dlq("list", "order.created", "--limit", "1000", "--json")
    assert as_json.returncode == 0, as_json.stderr
    mine = [m for m in json.loads(as_json.stdout) if m["value"] == marker.decode()]
    assert [(m["partition"], m["offset"]) for m in mine] == [(dead.partition, dead.offset)]
    assert mine[0]["key"] == key and mine[0]["sourceTopic"] == Topic.ORDER_CREATED
    assert mine[0]["reason"].startswith("unparseable") and mine[0]["headers"]["dlq.group"]
    where = ["--partition", str(dead.partition)]
    missing = dlq("replay", "order.created", *where, "--offset", "-1")
    assert missing.returncode != 0 and "no message at" in missing.stdout + missing.stderr
    proc = dlq("replay", "order.created", *where, "--offset", str(dead.offset))
    assert proc.returncode == 0, proc.stderr
    assert "replayed to order.created" in proc.stdout
    tap.wait_for(
        lambda seen: any(
            t == Topic.ORDER_CREATED
            and r.value == marker
            and dict(r.headers).get("dlq.replayed.from")
            for t, _, r in seen
        ),
        what="replayed message back on order.created",
    )
    replayed = next(
        r
        for t, _, r in tap.seen
        if t == Topic.ORDER_CREATED
        and r.value == marker
        and dict(r.headers).get("dlq.replayed.from")
    )
    assert replayed.partition == partition_of(key, count), "not on its order's partition"
