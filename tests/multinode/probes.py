"""What the multi-node tests look at: where Ray placed the platform's actors, which host holds
which partitions of each consumer group, and a tracked open-loop order load."""

from __future__ import annotations

import asyncio
import glob
import os
import re
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

from adapters import benchdb
from bench import mainrun, stock
from bench.mainrun import Load, MainRun
from bench.procs import CpuSampler
from bench.scale_hosts import Hosts
from bench.tracker import Tracker
from bench.workload import SCARCE_SKUS, Mix, admin_token, customers
from cli.invariants import AUDITED_TOPICS, Verdict, check, end_offsets
from cluster.deploy import actor_names
from core.settings import Settings
from tests.kafka_login import login_properties, partitions_or_refused


def pipeline_actors(settings: Settings) -> set[str]:
    """The named pipeline actors a deployment with these settings runs."""
    return set(actor_names(settings))


def placement(hosts: Hosts, names: set[str]) -> dict[str, str]:
    """name → address of the node of each ALIVE actor among `names`."""
    return {a.name: a.node_ip for a in hosts.actors() if a.name in names and a.state == "ALIVE"}


def wait_placed(hosts: Hosts, names: set[str], on: set[str], timeout_s: float) -> dict[str, str]:
    """Wait until every actor of `names` is ALIVE on one of the addresses `on`."""
    deadline = time.monotonic() + timeout_s
    where: dict[str, str] = {}
    while time.monotonic() < deadline:
        where = placement(hosts, names)
        if set(where) == names and set(where.values()) <= on:
            return where
        time.sleep(2)
    missing = sorted(names - set(where))
    raise AssertionError(f"after {timeout_s:.0f}s: not alive {missing}; placed {where} (want {on})")


_ROW = re.compile(r"^(\S+)\s+\S+\s+/(\S+)\s+\S+\s+\d+\s+\S+\s+(\S+)")


def kafka_accepts(settings: Settings) -> bool:
    """Whether the broker of `settings` answers a client that logs in as they say (and has
    the platform's topics)."""
    return bool(partitions_or_refused(settings, "order.created"))


Members = dict[str, list[tuple[str, set[tuple[str, int]]]]]


def group_members(hosts: Hosts) -> Members:
    """group → [(member's address, its partitions)], from Kafka's own consumer-group tool,
    logged in as the platform (the head's broker takes SCRAM clients only)."""
    libs = sorted(glob.glob(str(hosts.run_dir / "kafka-*" / "libs")))
    fd, login = tempfile.mkstemp(prefix="kafka-login-", suffix=".properties")  # mode 600
    try:
        s = hosts.platform_settings()
        lines = login_properties(
            s.kafka_sasl_mechanism, s.kafka_username, s.kafka_password, s.kafka_ssl_cafile
        )
        os.write(fd, ("\n".join(lines) + "\n").encode())
        os.close(fd)
        proc = subprocess.run(
            ["java", "-XX:TieredStopAtLevel=1", "-cp", f"{libs[-1]}/*",
             "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
             "--bootstrap-server", hosts.bootstrap, "--command-config", login, "--describe",
             "--members", "--verbose", "--all-groups"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    finally:
        os.unlink(login)
    out: Members = {}
    for line in proc.stdout.splitlines():
        m = _ROW.match(line)
        if m is None or m.group(1) == "GROUP":
            continue
        parts: set[tuple[str, int]] = set()
        for chunk in m.group(3).split(";"):
            topic, _, nums = chunk.partition(":")
            parts |= {(topic, int(n)) for n in nums.split(",") if n}
        out.setdefault(m.group(1), []).append((m.group(2), parts))
    return out


def wait_members(hosts: Hosts, problem: Callable[[Members], str], timeout_s: float) -> Members:
    """Kafka's members of every group once `problem` finds none in them (""): a group still
    rebalancing (a member joining, one gone) shows members without partitions for a while."""
    deadline = time.monotonic() + timeout_s
    while True:
        members = group_members(hosts)
        found = problem(members)
        if not found:
            return members
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout_s:.0f}s: {found}")
        time.sleep(2)


@dataclass
class Outcome:
    run: MainRun
    tracker: Tracker
    ids: list[str]
    verdict: Verdict
    statuses: dict[int, int]  # HTTP status → requests


async def tracked_load(
    hosts: Hosts,
    prefix: str,
    rate: float,
    duration_s: int,
    during: Callable[[], Coroutine[None, None, None]] | None = None,
    grace_s: float = 180.0,
    scarce_units: int = 20,
) -> Outcome:
    """Open-loop orders at `rate` for `duration_s` (a third of them ask for a scarce SKU with
    `scarce_units` available), `during` running alongside; then wait until every accepted
    order is terminal (or `grace_s`) and check every invariant of ARCHITECTURE §6."""
    settings = hosts.platform_settings()
    tracker = Tracker(hosts.dsn)
    await tracker.open()
    conn = await benchdb.connect(hosts.dsn)
    try:
        await stock.make_scarce(hosts.gateway, admin_token(settings), conn, scarce_units)
        start = await stock.snapshot(conn)
        kafka_from = await end_offsets(hosts.bootstrap, *AUDITED_TOPICS, kafka=settings)
        load = Load(
            base_url=hosts.gateway, duration_s=duration_s, rate=rate, concurrency=0, workers=1,
            mix=Mix(oos_share=0.3), seed=zlib.crc32(prefix.encode()), grace_s=grace_s, warmup_s=0.0,
            progress_s=10.0, niceness=0,
        )  # fmt: skip
        side = asyncio.create_task(during()) if during is not None else None
        run = await mainrun.run(load, customers(settings, prefix, 50), tracker, CpuSampler())
        if side is not None:
            await side
        ids = [str(i) for i in (*tracker.outcomes, *tracker.outstanding)]
        available = {sku: start[sku][0] - start[sku][1] for sku in SCARCE_SKUS}
        verdict = await asyncio.to_thread(
            check, hosts.dsn, ids, available, dict(kafka_from), hosts.bootstrap, kafka=settings
        )
    finally:
        await tracker.close()
        await conn.close()
    statuses: dict[int, int] = {}
    for rec in run.records:
        statuses[rec[3]] = statuses.get(rec[3], 0) + 1
    return Outcome(run, tracker, ids, verdict, statuses)


def accepted_after(outcome: Outcome, t: float) -> int:
    """Orders accepted (202) that were due after wall-clock time `t`."""
    return sum(1 for r in outcome.run.records if r[3] == 202 and r[0] > t)


def partitions(hosts: Hosts, topics: tuple[str, ...]) -> set[tuple[str, int]]:
    """Every partition of `topics` (the harness's KAFKA_PARTITIONS each)."""
    n = int(hosts.settings["KAFKA_PARTITIONS"])
    return {(t, p) for t in topics for p in range(n)}
