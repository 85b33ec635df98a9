"""Fixtures for tests against the real local stack that `make test` starts (Postgres, Redis,
Kafka, Ray with the platform deployed, gateway on :HTTP_PORT). Nothing here is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from psycopg.rows import dict_row

from adapters.kafka import client_options, partitions_of
from cli.diagnose import ray_driver, report_now
from core.auth import make_token
from core.settings import RUN_DIR, Settings, get_settings
from domain.events import Envelope
from domain.ids import uuid7

T = TypeVar("T")
pytestmark = pytest.mark.integration


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float = 20.0,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.http_port}"


@pytest.fixture(scope="session")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def mint(settings: Settings) -> Callable[..., str]:
    def _mint(sub: str, *roles: str) -> str:
        return make_token(
            sub,
            list(roles or ("customer",)),
            secret=settings.jwt_secret,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )

    return _mint


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def admin_headers(mint: Callable[..., str]) -> dict[str, str]:
    return bearer(mint("admin-tests", "admin"))


@pytest.fixture()
def customer() -> str:
    """A fresh customer id (and principal) per test, so tests never see each other's orders."""
    return f"cust-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg(settings: Settings) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="session")
def rds(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


class Api:
    """Small client for the order API used by the tests."""

    def __init__(self, http: httpx.Client, mint: Callable[..., str], admin: dict[str, str]):
        self.http = http
        self.mint = mint
        self.admin = admin

    def headers(self, principal: str) -> dict[str, str]:
        return bearer(self.mint(principal))

    def place(self, principal: str, items: list[tuple[str, int]], **extra: Any) -> httpx.Response:
        body = {"customerId": principal, "items": [{"sku": s, "qty": q} for s, q in items], **extra}
        return self.http.post("/api/orders", json=body, headers=self.headers(principal))

    def place_ok(self, principal: str, items: list[tuple[str, int]], **extra: Any) -> str:
        resp = self.place(principal, items, **extra)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["orderId"])

    def order(self, principal: str, order_id: str) -> dict[str, Any]:
        resp = self.http.get(f"/api/orders/{order_id}", headers=self.headers(principal))
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def wait_status(
        self, principal: str, order_id: str, *statuses: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            order = self.order(principal, order_id)
            return order if order["status"] in statuses else None

        return wait_until(probe, timeout=timeout, what=f"order {order_id} to reach {statuses}")

    def stock(self, sku: str) -> dict[str, int]:
        resp = self.http.get(f"/api/inventory/{sku}", headers=self.admin)
        assert resp.status_code == 200, resp.text
        body: dict[str, int] = resp.json()
        return body

    def set_available(self, sku: str, available: int) -> dict[str, int]:
        """Make exactly `available` units of `sku` available (on-hand = reserved + available)."""
        current = self.stock(sku)
        resp = self.http.put(
            f"/api/inventory/{sku}",
            headers=self.admin,
            json={"onHand": current["reserved"] + available},
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, int] = resp.json()
        return body

    def fault(self, fault: str, enabled: bool, customer: str | None = None) -> None:
        body: dict[str, Any] = {"fault": fault, "enabled": enabled}
        if customer:
            body["customerId"] = customer
        resp = self.http.post("/api/admin/faults", json=body, headers=self.admin)
        assert resp.status_code == 200, resp.text


@pytest.fixture(scope="session")
def api(http: httpx.Client, mint: Callable[..., str], admin_headers: dict[str, str]) -> Api:
    return Api(http, mint, admin_headers)


class KafkaTap:
    """Reads what the platform published from the moment the tap was opened."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._loop = asyncio.new_event_loop()
        self._consumer: AIOKafkaConsumer | None = None
        self.seen: list[tuple[str, Envelope, Any]] = []
        self._loop.run_until_complete(self._open())

    async def _open(self) -> None:
        parts = [
            TopicPartition(t, p)
            for t in self._topics
            for p in await partitions_of(self._bootstrap, t)
        ]
        self._consumer = AIOKafkaConsumer(
            **client_options(), bootstrap_servers=self._bootstrap, enable_auto_commit=False
        )
        await self._consumer.start()
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:  # resolve positions now, so later messages are never skipped
            await self._consumer.position(tp)

    def poll(self) -> None:
        async def _poll() -> None:
            assert self._consumer is not None
            batches = await self._consumer.getmany(timeout_ms=100)
            for tp, records in batches.items():
                for r in records:
                    try:
                        self.seen.append((tp.topic, Envelope.from_json(r.value), r))
                    except ValueError:
                        self.seen.append((tp.topic, None, r))  # type: ignore[arg-type]

        self._loop.run_until_complete(_poll())

    def events(self, order_id: str) -> list[tuple[str, Envelope]]:
        return [(t, e) for t, e, _ in self.seen if e is not None and str(e.order_id) == order_id]

    def wait_for(
        self,
        predicate: Callable[[list[tuple[str, Any, Any]]], bool],
        *,
        timeout: float = 20.0,
        what: str = "events",
    ) -> None:
        def probe() -> bool:
            self.poll()
            return predicate(self.seen)

        wait_until(probe, timeout=timeout, what=what, interval=0)

    def read_to_end(self, timeout: float = 20.0) -> None:
        """Read everything the topics hold now: a check that something appeared only once
        must not pass because a duplicate had not been read yet."""

        async def _ends() -> dict[TopicPartition, int]:
            assert self._consumer is not None
            ends: dict[TopicPartition, int]
            ends = await self._consumer.end_offsets(list(self._consumer.assignment()))
            return ends

        async def _behind(ends: dict[TopicPartition, int]) -> bool:
            assert self._consumer is not None
            positions = [await self._consumer.position(tp) for tp in ends]
            return any(p < end for p, end in zip(positions, ends.values(), strict=True))

        ends = self._loop.run_until_complete(_ends())

        def probe() -> bool:
            if not self._loop.run_until_complete(_behind(ends)):
                return True
            self.poll()
            return False

        wait_until(probe, timeout=timeout, what="the tap's topics read to their ends", interval=0)

    def close(self) -> None:
        if self._consumer is not None:
            self._loop.run_until_complete(self._consumer.stop())
        self._loop.close()


@pytest.fixture()
def kafka_tap(settings: Settings) -> Iterator[Callable[..., KafkaTap]]:
    taps: list[KafkaTap] = []

    def _open(*topics: str) -> KafkaTap:
        tap = KafkaTap(settings.kafka_bootstrap, list(topics))
        taps.append(tap)
        return tap

    yield _open
    for tap in taps:
        tap.close()


@pytest.fixture(scope="session")
def ray_cluster(settings: Settings) -> Iterator[Any]:
    """A driver connected to the running cluster (to kill actors and inspect their state)."""
    ray = ray_driver(settings)
    yield ray
    ray.shutdown()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report gets a section on the stack at that moment (`orders stacks`,
    cli/diagnose.py): a failure in CI is then explained by its own log."""
    report = yield
    if report.when == "call" and report.failed:
        try:
            text = report_now()
        except Exception as exc:  # the report of a failure must never fail the run
            text = f"(no report: {type(exc).__name__}: {exc})"
        report.sections.append(("stack at failure", text))
    return report


async def publish_in_one_batch(
    bootstrap: str, topic: str, events: list[Envelope]
) -> tuple[int, int]:
    """`events` in one record batch on the topic's first partition (a fetch returns whole
    batches: they reach a consumer together, as the relay's republished batch after a crash
    between Kafka's ack and its commit does); returns the partition and the last offset."""
    producer = AIOKafkaProducer(
        **client_options(), bootstrap_servers=bootstrap, enable_idempotence=True
    )
    await producer.start()
    try:
        batch = producer.create_batch()
        for e in events:
            batch.append(key=str(e.order_id).encode(), value=e.to_json(), timestamp=None)
        partition = sorted(await producer.partitions_for(topic))[0]
        meta = await (await producer.send_batch(batch, topic, partition=partition))
        return partition, meta.offset + len(events) - 1
    finally:
        await producer.stop()


def held(pg: Any, order_ids: list[str]) -> int:
    """Units still HELD by these orders' reservations."""
    row = pg.execute(
        "SELECT coalesce(sum(qty), 0) AS n FROM reservations "
        "WHERE order_id = ANY(%s::uuid[]) AND state = 'HELD'",
        (order_ids,),
    ).fetchone()
    return int(row["n"])


def scratch_order(
    pg: Any, principal: str, status: str, lines: list[tuple[str, int]] | None = None
) -> uuid.UUID:
    """An order row written straight to Postgres, settled a minute ago, that no event moved
    (its own customer id is its principal)."""
    oid = uuid7()
    items = [{"sku": sku, "qty": qty, "unitPrice": "1.00"} for sku, qty in lines or []]
    total = max(1, sum(qty for _, qty in lines or []))
    pg.execute(
        "INSERT INTO orders (id, principal, customer_id, status, items, total, currency, "
        "payment_method, created_at, updated_at) VALUES (%s, %s, %s, %s, %s::jsonb, %s, 'USD', "
        "'pm_card_visa', now() - interval '1 minute', now() - interval '1 minute')",
        (oid, principal, principal, status, json.dumps(items), total),
    )
    return oid


@contextlib.contextmanager
def paused_redis(api: Api) -> Iterator[None]:
    """Redis stops answering without closing its connections (SIGSTOP, as a partition or a
    stalled host looks to its clients) for the block; skips when Redis does not run from this
    checkout. Afterwards it waits until the gateway's readiness has seen Redis answer again:
    that also ends the gateway's skipping of Redis (admission, idempotency), which the tests
    after this one rely on."""
    pid_file = RUN_DIR / "pids" / "redis.pid"
    if not pid_file.is_file():
        pytest.skip("Redis does not run from this checkout (no .run/pids/redis.pid)")
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
        wait_until(
            lambda: (
                api.http.get("/ready", headers=api.admin).json()["checks"]["redis"]["status"]
                == "up"
            ),
            timeout=30,
            what="the gateway to see Redis answer again",
            interval=0.2,
        )


def wait_breaker_admits(api: Api, timeout: float = 40.0) -> None:
    """After a provider outage: wait until the gateway admits orders again (circuit not open).
    The readiness details are for admins."""
    wait_until(
        lambda: (
            api.http.get("/ready", headers=api.admin).json()["checks"]["payments"]["status"] == "up"
        ),
        timeout=timeout,
        what="payment circuit to stop refusing orders",
        interval=0.2,
    )


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(
        **client_options(), bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return int(await consumer.committed(tp) or 0)
    finally:
        await consumer.stop()


def wait_committed(
    bootstrap: str, group: str, topic: str, partition: int, offset: int, timeout: float = 20.0
) -> None:
    """Wait until consumer `group` committed past `offset` (its effect is durable by then)."""
    tp = TopicPartition(topic, partition)
    wait_until(
        lambda: asyncio.run(_committed(bootstrap, group, tp)) > offset,
        timeout=timeout,
        what=f"group {group} to commit past {topic}[{partition}]@{offset}",
        interval=0.1,
    )
