"""`orders stacks`: what the stack is doing right now, for when it seems stuck: the platform's
own health (`/ready` as an admin sees it: every consumer group's lag and last error), what
Postgres is running and waiting on, where each actor's asyncio tasks wait and how long its
garbage collector has paused it, each consumer group as the broker sees it (its state and
members) and the broker's last lines on group joins and rebalances. A stage that stalls shows
which await it is in, which statement Postgres is running for it, and which rebalance its group
waits for. A failed integration test's report ends with the same
(tests/integration/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from adapters.activity import busy_statements
from adapters.kafka import describe_groups
from cli import api
from cli.ray_access import driver_address, unreachable
from cluster.deploy import actor_names
from core import registry
from core.settings import RUN_DIR, Settings, get_settings

_COORDINATOR = "(org.apache.kafka.coordinator.group."
_COORDINATOR_LINES = 40
_GROUPS_TIMEOUT_S = 10  # a frozen broker would hold the admin client for its 40 s request timeout


_ACTORS = "actors: where their tasks wait, their GC pauses"
_GCS_TIMEOUT_S = 3.0


def stack_report(settings: Settings, ray: Any | None, no_ray: str = "no Ray driver") -> str:
    """Every part of the report (`ray`: a connected driver, or None and `no_ray` saying why);
    a part that cannot be read says why instead. The gateway is `api.base_url`, its token
    `api.token` (an admin token signed with JWT_SECRET unless ORDERS_TOKEN is set)."""
    parts = _without_ray(settings)
    parts.insert(2, (_ACTORS, lambda: _actors(settings, ray, no_ray)))
    return "\n\n".join(_section(title, read) for title, read in parts)


def _without_ray(settings: Settings) -> list[tuple[str, Callable[[], str]]]:
    """The parts of the report that need no Ray driver."""
    return [
        ("platform health (/ready)", lambda: _ready(settings)),
        ("postgres: statements not idle", lambda: _postgres(settings)),
        ("kafka: the consumer groups as the broker sees them", lambda: _groups(settings)),
        ("kafka: the group coordinator's last lines (a local broker)", _coordinator_log),
    ]


def _section(title: str, read: Callable[[], str]) -> str:
    return f"== {title}\n{_safely(read)}"


def _safely(read: Callable[[], str]) -> str:
    try:
        return read()
    except Exception as exc:  # a report of a broken stack must not fail itself
        return f"(not readable: {type(exc).__name__}: {exc})"


def joined_head(run_dir: Path) -> str | None:
    """The head this machine joined (`make join` records it in join.env; a head of its own,
    node.env, wins, as in cluster/common.sh), else None."""
    join, node = run_dir / "join.env", run_dir / "node.env"
    if node.exists() or not join.is_file():
        return None
    found = re.search(r"^HEAD_ADDRESS=(\S+)$", join.read_text(), re.M)
    return found.group(1) if found else None


def _ready(settings: Settings) -> str:
    head = joined_head(RUN_DIR)
    if head is not None and not os.environ.get(api.URL_ENV):
        return (  # (README, Adding a machine)
            f"(this machine joined the head at {head}, whose gateway listens on its own "
            f"loopback by default (HTTP_HOST): `make stacks` on the head shows it, or give "
            f"{api.URL_ENV}=http://<a gateway this machine reaches>)"
        )
    headers = {"Authorization": f"Bearer {api.token(settings)}"}  # the details are for admins
    body = httpx.get(f"{api.base_url(settings)}/ready", headers=headers, timeout=10).json()
    return json.dumps(body, indent=1, sort_keys=True)


def _postgres(settings: Settings) -> str:
    rows, waiting = busy_statements(settings.database_url)
    lines = [" | ".join(str(v) for v in row) for row in rows]
    lines.append(f"locks not granted: {waiting}")
    return "\n".join(lines)


def _present(settings: Settings, ray: Any) -> list[str]:
    """The platform's named actors the cluster has now, whatever shard counts this machine's
    settings say (a joined machine's are its own defaults, not the head's deployment's); the
    ones these settings name when the cluster cannot tell."""
    try:
        named = ray.util.list_named_actors(all_namespaces=True)
        live = {a["name"] for a in named if a.get("namespace") == settings.ray_namespace}
    except Exception:  # a report of a broken stack must not fail itself
        return actor_names(settings)
    return [n for n in actor_names(settings, every=True) if n in live] or actor_names(settings)


def _actors(settings: Settings, ray: Any | None, no_ray: str) -> str:
    if ray is None:
        return f"({no_ray})"
    out = []
    for name in _present(settings, ray):
        try:
            actor = ray.get_actor(name, namespace=settings.ray_namespace)
            stacks, pauses = ray.get([actor.task_stacks.remote(), actor.heap.remote()], timeout=10)
            out.append(f"{name}:\n  " + "\n  ".join([*stacks, _gc_line(pauses)]))
        except Exception as exc:
            out.append(f"{name}: (not readable: {type(exc).__name__}: {exc})")
    return "\n".join(out)


def _groups(settings: Settings, timeout_s: float = _GROUPS_TIMEOUT_S) -> str:
    groups = list(registry.members(settings.inventory_shards, settings.payment_shards))
    described = asyncio.wait_for(describe_groups(settings.kafka_bootstrap, groups), timeout_s)
    return "\n".join(asyncio.run(described))


def _coordinator_log(lines: int = _COORDINATOR_LINES) -> str:
    """The broker's group joins, rebalances and member expiries (cluster/kafka/log4j2.yaml logs
    them): what a group that does not settle waits for."""
    log = RUN_DIR / "logs" / "kafka.log"
    if not log.is_file():
        return f"(no {log}: the broker does not run from this checkout)"
    with log.open(errors="replace") as f:
        found = deque((line.rstrip() for line in f if _COORDINATOR in line), maxlen=lines)
    return "\n".join(found) or "(no group coordinator lines yet)"


def _gc_line(pauses: dict[str, Any] | None) -> str:
    """The actor's garbage-collector pauses since it started, per generation (core/heap.py)."""
    if pauses is None:
        return "gc: (not settled yet)"
    return (
        f"gc: collections {pauses['collections']}, paused ms total {pauses['pauseMsTotal']}, "
        f"longest {pauses['pauseMsLongest']}; tracked {pauses['tracked']}, "
        f"frozen {pauses['frozen']}, thresholds {pauses['thresholds']}"
    )


def ray_driver(settings: Settings, log_level: int = logging.WARNING) -> Any:
    """This process as a driver of the running cluster (connected once). It needs the stack's
    environment (RAY_ADDRESS, RAY_AUTH_TOKEN: cluster/common.sh, which `make stacks` sources)."""
    import ray

    if not ray.is_initialized():  # a chaos run may have connected already
        ray.init(
            address=driver_address(),  # "auto" may find another cluster's stale address file
            namespace=settings.ray_namespace,
            logging_level=log_level,
            log_to_driver=False,
        )
    return ray


def ray_unavailable() -> str | None:
    """Why no driver can join the cluster now (None: its GCS port answers). Checked first:
    `ray.init` retries an address whose GCS is down for ever, printing nothing."""
    address = driver_address()
    why = unreachable(address, _GCS_TIMEOUT_S)
    return None if why is None else f"Ray unavailable: no GCS answers at {address} ({why})"


def _connected(settings: Settings) -> tuple[Any | None, str]:
    """A driver of the running cluster, or None and why not."""
    if not os.environ.get("RAY_ADDRESS"):  # Ray's token and TLS settings come with it
        return None, (
            "no Ray driver: it needs the stack's environment (Ray's address, token and TLS "
            "settings, which cluster/common.sh exports): run `make stacks`"
        )
    down = ray_unavailable()
    if down is not None:
        return None, down
    try:
        return ray_driver(settings), ""
    except Exception as exc:
        return None, f"no Ray driver: {type(exc).__name__}: {exc}"


def report_now() -> str:
    """The report, this process joining the Ray cluster as a driver first (if it cannot, the
    report says why)."""
    settings = get_settings()
    return stack_report(settings, *_connected(settings))


def stacks() -> None:
    """What a stack that seems stuck is doing now, down to where each actor's tasks wait.

    In order: health, busy Postgres statements, the consumer groups, each actor's asyncio tasks.
    The parts that need no Ray come first, so a cluster that does not answer still leaves them
    on the screen. Run it as `make stacks`: the actors' part needs the stack's environment (Ray's
    address and token).
    """
    settings = get_settings()
    for title, read in _without_ray(settings):
        print(_section(title, read), end="\n\n", flush=True)
    ray, no_ray = _connected(settings)
    print(_section(_ACTORS, lambda: _actors(settings, ray, no_ray)), flush=True)
