"""`make chaos`: steady load while processes die, then every invariant is checked.

One fault at a time: SIGKILL an inventory shard, a payment shard (each hosts a member of its
consumer group), the shipping and the notification actors (each its group's only member) and
the outbox relay; SIGKILL and restart the Kafka broker; restart Postgres; restart Redis. Between
faults the stack must become ready again. Then every order the run placed must be final, and
the invariants of docs/reliability.md hold (with cli/chaos_ledger.py's accounting).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from adapters import audit
from cli import chaos_ledger as ledger
from cli.api import local_gateway, token
from cli.chaos_ledger import set_stock as _set_stock
from cli.diagnose import ray_driver, stack_report
from cli.invariants import AUDITED_TOPICS, Verdict, check, end_offsets, terminal_count
from cli.load import SteadyLoad
from core import registry
from core.settings import RUN_DIR, Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
console = Console()
CHAOS_SKUS = ["SKU-71", "SKU-72", "SKU-73", "SKU-74"]
# The first SKU gets `--stock` units and sells out early (orders on it may end REJECTED); the
# others get enough for the whole run, so every fault meets orders that get paid, shipped and
# captured (with all four scarce, stock ran out ~40 s in and the broker, Postgres and Redis
# faults met orders that were rejected at once).
SCARCE_SKU = CHAOS_SKUS[0]
AMPLE_STOCK = 100_000


class NotBack(RuntimeError):
    """A part of the stack that did not come back after a fault: the run stops there."""


def _say(msg: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {msg}")


def _wait(
    what: str, probe: Callable[[], bool], timeout: float, explain: Callable[[], str] | None = None
) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if probe():
                return time.monotonic() - start
        except Exception:
            pass
        time.sleep(0.5)
    why = ""
    if explain is not None:
        try:
            why = f": {explain()}"
        except Exception as exc:
            why = f": {type(exc).__name__}: {exc}"
    raise NotBack(f"{what} not back after {timeout:.0f}s{why}")


class Chaos:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.http = httpx.Client(
            base_url=local_gateway(settings),
            timeout=5,
            headers={"Authorization": f"Bearer {token(settings)}"},  # /ready details: admins
        )
        self.ray: Any = ray_driver(settings, logging.ERROR)

    def ready(self) -> bool:
        return bool(self.http.get("/ready").json()["status"] == "up")

    def not_ready(self) -> str:
        """What /ready says is not up, then the stack at that moment (`orders stacks`: where
        each actor's tasks wait, what Postgres runs), for the error a stage that never comes
        back ends the run with."""
        checks = self.http.get("/ready").json()["checks"]
        down = ", ".join(f"{k}={v}" for k, v in checks.items() if v.get("status") != "up")
        return f"{down}\n{stack_report(self.s, self.ray)}"

    def actor_pid(self, name: str) -> int:
        handle = self.ray.get_actor(name)
        health: dict[str, object] = self.ray.get(handle.health.remote(), timeout=30)
        return int(str(health["pid"]))

    def sigkill_actor(self, name: str) -> str:
        pid = self.actor_pid(name)
        os.kill(pid, signal.SIGKILL)
        _wait(f"{name} restart", lambda: self.actor_pid(name) != pid, 60)
        return f"SIGKILL {name} (pid {pid}) → restarted as pid {self.actor_pid(name)}"

    def service(self, action: str, name: str) -> None:
        subprocess.run(
            [str(ROOT / "cluster" / "services.sh"), action, name],
            check=True,
            capture_output=True,
            timeout=180,
        )

    def kill_kafka(self) -> str:
        pid = _recorded_pid("kafka", "server.properties")
        os.kill(pid, signal.SIGKILL)
        _wait("kafka exit", lambda: not _alive(pid), 30)
        self.service("start", "kafka")
        return f"SIGKILL kafka broker (pid {pid}) → restarted"

    def restart(self, name: str) -> str:
        """Stop and start a service, and check it really restarted (a stop that found no
        process of its own would have left the old one serving)."""
        before = self.incarnation(name)
        self.service("stop", name)
        self.service("start", name)
        after = _retry(lambda: self.incarnation(name), 30)
        if after == before:
            raise NotBack(f"{name} did not restart: the same server ({before}) still serves")
        return f"restarted {name} ({before} → {after})"

    def incarnation(self, name: str) -> str:
        """What changes when the server restarts: Postgres's start time; for Redis (whose
        INFO the platform's ACL user may not run) the pid it wrote and that process's start
        time (field 22 of /proc/<pid>/stat)."""
        if name == "pg":
            with audit.connect(self.s.database_url) as conn:
                row = conn.execute("SELECT pg_postmaster_start_time()::text AS t").fetchone()
                return str(row["t"] if row else "")
        pid = _recorded_pid(name, "redis-server")
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        return f"pid {pid} started at tick {started}"

    def postgres_outage(self, shard: str) -> str:
        """Postgres stays down until `shard` has exited (a Postgres restart takes its lock)
        and Ray has started it again into the outage: its `__init__` must wait for Postgres,
        not raise (Ray never restarts an actor whose creation task raised)."""
        pid = self.actor_pid(shard)
        before = _starting(shard)
        self.service("stop", "pg")
        try:
            _wait(f"{shard} exit", lambda: not _alive(pid), 60)
            _wait(
                f"{shard} waiting in __init__ for Postgres",
                lambda: bool(_starting(shard) - before),
                60,
            )
        finally:
            self.service("start", "pg")
        return f"postgres down until {shard} (pid {pid}) exited and restarted into the outage"

    def faults(self, customer_shard: int) -> list[tuple[str, Callable[[], str]]]:
        inv = registry.inventory_shard(registry.shard_of(CHAOS_SKUS[0], self.s.inventory_shards))
        pay = registry.payment_shard(customer_shard)
        return [
            ("inventory shard", lambda: self.sigkill_actor(inv)),
            ("payment shard", lambda: self.sigkill_actor(pay)),
            ("shipping actor", lambda: self.sigkill_actor(registry.SHIPPING)),
            ("notification actor", lambda: self.sigkill_actor(registry.NOTIFICATION)),
            ("outbox relay", lambda: self.sigkill_actor(registry.RELAY)),
            ("kafka broker", self.kill_kafka),
            ("postgres", lambda: self.restart("pg")),
            ("postgres outage", lambda: self.postgres_outage(inv)),
            ("redis", lambda: self.restart("redis")),
        ]


def _starting(actor: str) -> set[int]:
    """Processes of this host running the actor's `__init__` (Ray titles such a process
    `ray::<actor name>:<Class>.__init__`)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_text() if entry.name.isdigit() else ""
            if title.startswith(f"ray::{actor}:") and ".__init__" in title:
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def _recorded_pid(service: str, marker: str) -> int:
    """The pid `make up` recorded for `service` (in `RUN_DIR`), checked to be that server's:
    a stale record may name another process by now, which a SIGKILL must not hit."""
    pid = int((RUN_DIR / "pids" / f"{service}.pid").read_text().strip())
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        command = ""
    if marker not in command:
        raise NotBack(f"{service}'s recorded pid {pid} is not its server here ({command[:80]!r})")
    return pid


def _retry(probe: Callable[[], str], timeout: float) -> str:
    """`probe()`'s answer once it gives one (a server just started may refuse a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _faults(chaos: Chaos, load: SteadyLoad, settle_s: float) -> None:
    """Each fault in turn under the load, the stack ready again before the next."""
    time.sleep(settle_s)
    payer = registry.shard_of(load.principals[0], chaos.s.payment_shards)  # customer id too
    for name, fault in chaos.faults(payer):
        _say(f"[bold red]fault[/]: {name}: {fault()}")
        took = _wait("stack ready", chaos.ready, 180, chaos.not_ready)
        _say(f"  ready again after {took:.1f}s; accepted so far {len(load.accepted)}")
        time.sleep(settle_s)  # load runs on a healthy stack before the next fault


def run(rate: float, settle_s: float, stock: int, grace_s: float) -> Verdict:
    """The whole chaos run; returns the verdict (also printed)."""
    s = get_settings()
    chaos = Chaos(s)
    _wait("stack", chaos.ready, 120, chaos.not_ready)
    start_stock = _set_stock(chaos.http, s, CHAOS_SKUS, SCARCE_SKU, stock, AMPLE_STOCK)
    on_hand = ledger.on_hand(s.database_url, CHAOS_SKUS)
    kafka_from = asyncio.run(end_offsets(s.kafka_bootstrap, *AUDITED_TOPICS))
    load = SteadyLoad(s, rate, CHAOS_SKUS)
    t0, since = time.monotonic(), time.time() - 1.0  # (created_at is Postgres's clock)
    load.start()
    _say(
        f"load: {rate:.0f} orders/s on {', '.join(CHAOS_SKUS)} "
        f"(stock {stock} of {SCARCE_SKU}, {AMPLE_STOCK} of each other)"
    )
    try:
        _faults(chaos, load, settle_s)
    finally:  # also when a part does not come back: no load left running
        load.stop()
        _say(f"load stopped: {load.summary()}")
    unknown = ledger.untracked(s.database_url, load, since, load.accepted)
    ids = list(load.accepted) + unknown  # every order of the run: all must end and add up
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        done = terminal_count(s.database_url, ids)
        _say(f"waiting for terminal statuses: {done}/{len(ids)}")
        if done == len(ids):
            break
        time.sleep(2)
    verdict = check(
        s.database_url,
        ids,
        start_stock,
        kafka_from,
        s.kafka_bootstrap,
        placed=load.placed,
        may_sell_out=frozenset({SCARCE_SKU}),
    )
    ledger.account(verdict, load, unknown)
    ledger.conservation(verdict, s.database_url, on_hand, ids)
    verdict.refused.update(load.refused)
    if load.refused:
        verdict.details.append(f"orders refused (4xx not retried), by status: {dict(load.refused)}")
    for line in verdict.details:
        _say(f"[yellow]{line}[/]")
    _say(f"total {time.monotonic() - t0:.0f}s")
    console.print(verdict.line())
    return verdict


def main(
    rate: Annotated[float, typer.Option(help="orders per second during the run")] = 25.0,
    settle: Annotated[float, typer.Option(help="seconds of load between faults")] = 8.0,
    stock: Annotated[int, typer.Option(help=f"units of {SCARCE_SKU}, which sells out")] = 400,
    grace: Annotated[float, typer.Option(help="seconds for orders to finish after")] = 120.0,
) -> None:
    """Run the chaos scenario and exit non-zero when an invariant is broken."""
    try:
        verdict = run(rate, settle, stock, grace)
    except NotBack as exc:  # its message ends with the stack's report when there is one
        console.print(Text.assemble(("chaos run stopped: ", "bold red"), str(exc)))
        raise typer.Exit(1) from None
    raise typer.Exit(0 if verdict.clean else 1)
