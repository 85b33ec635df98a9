"""The one place that wires the platform onto a Ray cluster: actors, consumers, Serve app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from cluster import job_env, priority
from cluster.shard_counts import (
    beyond_counts,
    found_shards,
    other_counts,
    refuse_other_counts,
)
from core import registry
from core.settings import Settings

log = logging.getLogger(__name__)


def _detached(cls: Any, name: str, namespace: str, niceness: int, *args: Any) -> Any:
    # The namespace is explicit: a Serve replica runs in Ray's "serve" namespace.
    return cls.options(
        name=name,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        runtime_env=priority.stage_runtime_env(niceness),
    ).remote(*args)


def actor_names(settings: Settings, *, every: bool = False) -> list[str]:
    """Every named platform actor, in start order; `every`: also the names any allowed shard
    count would use and the bridges of older versions (to stop what an earlier deployment
    left)."""
    limit = 64 if every else None
    inv = limit or settings.inventory_shards
    pay = limit or settings.payment_shards
    return [
        registry.RELAY,
        *(registry.inventory_shard(i) for i in range(inv)),
        *(registry.payment_shard(i) for i in range(pay)),
        registry.SHIPPING,
        registry.NOTIFICATION,
        *(registry.retired() if every else ()),
    ]


# How long each step of the actors' planned stop may take, all actors together: their consumer
# group members end their cycles and commit (each bounded at 8 + 3 s), then leave their groups.
_QUIESCE_S = 15.0


def stop_actors(settings: Settings) -> int:
    """Kill every named platform actor for good (used to roll out new code or new counts),
    after asking each to `quiesce` and then to `leave`: a killed group member stays in its
    group until the session timeout, and the new member's join waits for it; one that left is
    gone at once. Every member commits before any leaves (a leave starts a rebalance, and a
    commit for a partition moved meanwhile fails). An actor that cannot take a step (dead,
    restarting, of an older version, slower than `_QUIESCE_S`) is killed all the same: its
    uncommitted batch is redelivered, and deduped."""
    import ray

    handles = {}
    for name in actor_names(settings, every=True):
        with contextlib.suppress(ValueError):  # not running
            handles[name] = ray.get_actor(name, namespace=settings.ray_namespace)
    for step in ("quiesce", "leave"):
        _each(handles, step)
    for handle in handles.values():
        ray.kill(handle, no_restart=True)
    return len(handles)


def _each(handles: dict[str, Any], method: str) -> None:
    """Call `method` on every actor at once; wait at most `_QUIESCE_S` for all of them."""
    import ray

    pending = {}
    for name, handle in handles.items():
        with contextlib.suppress(AttributeError):  # an actor of an older version
            pending[name] = getattr(handle, method).options(max_task_retries=0).remote()
    if not pending:
        return
    start = time.monotonic()
    _, late = ray.wait(list(pending.values()), num_returns=len(pending), timeout=_QUIESCE_S)
    members = 0
    for name, ref in pending.items():
        if ref in late:
            print(f"actors: {name}: {method} not done within {_QUIESCE_S:g}s", flush=True)
            continue
        try:
            members += bool(ray.get(ref))  # False: an actor with no group member
        except Exception as exc:  # dead or restarting: killed all the same
            print(f"actors: {name}: {method} failed ({type(exc).__name__})", flush=True)
    took = time.monotonic() - start
    print(f"actors: {method}: {members} group member(s) in {took:.1f}s", flush=True)


def create_actors(settings: Settings, niceness: int = 0) -> dict[str, Any]:
    """Create (or find) every named actor; returns their handles without waiting. `niceness`:
    how far below the gateway they run where the job has the priority hook (`deploy`)."""
    from actors.inventory import InventoryShard
    from actors.notification import NotificationActor
    from actors.outbox_relay import OutboxRelay
    from actors.payment import PaymentShard
    from actors.shipping import ShippingActor

    ns, nice = settings.ray_namespace, niceness
    handles: dict[str, Any] = {registry.RELAY: _detached(OutboxRelay, registry.RELAY, ns, nice)}
    for i in range(settings.inventory_shards):
        name = registry.inventory_shard(i)
        handles[name] = _detached(InventoryShard, name, ns, nice, i)
    for i in range(settings.payment_shards):
        name = registry.payment_shard(i)
        handles[name] = _detached(PaymentShard, name, ns, nice, i)
    handles[registry.SHIPPING] = _detached(ShippingActor, registry.SHIPPING, ns, nice)
    handles[registry.NOTIFICATION] = _detached(NotificationActor, registry.NOTIFICATION, ns, nice)
    return handles


def start_actors(settings: Settings, niceness: int = 0) -> dict[str, Any]:
    """Create (or find) every named actor and wait until each answers `health()`."""
    import ray

    handles = create_actors(settings, niceness)
    healths = ray.get([h.health.remote() for h in handles.values()], timeout=120)
    refuse_other_counts(settings, dict(zip(handles, healths, strict=True)))
    return handles


async def ensure_actors(settings: Settings, say_every_s: float = 10.0) -> None:
    """The async form, for a gateway replica's start: waits for the actors without a deadline,
    since failed starts make Serve give the deployment up for good (DEPLOY_FAILED, ADR-010).
    Shards already running with another count stop it before it creates any: a replica of a
    new count (a pod during a rollout) made the shards its count has and the old ones lack,
    a second owner of some keys, before it refused."""
    found = found_shards(settings)
    refuse_other_counts(settings, await _answers(found, say_every_s))
    handles = create_actors(settings)
    refuse_other_counts(settings, await _answers(handles, say_every_s))


async def _answers(handles: dict[str, Any], say_every_s: float) -> dict[str, dict[str, Any]]:
    """Each actor's `health()`, waited for without a deadline (said every `say_every_s`)."""
    if not handles:
        return {}
    answers, waited = asyncio.gather(*(h.health.remote() for h in handles.values())), 0.0
    while True:
        try:
            healths = await asyncio.wait_for(asyncio.shield(answers), say_every_s)
            return dict(zip(handles, healths, strict=True))
        except TimeoutError:
            waited += say_every_s
            log.warning("gateway start: actors not all up after %.0f s; waiting", waited)


def deploy(settings: Settings, *, restart: bool = False, gateway_on_head: bool = True) -> None:
    """Connect to the running cluster, start the actors, then deploy the Serve app on :HTTP_PORT
    (its replicas on the head: `cluster.app.on_head`; `gateway_on_head=False`: where Serve
    places them, for a harness whose hosts' replicas listen on their own address)."""
    niceness = priority.stage_niceness(os.environ)  # a bad value stops before anything starts
    import ray
    from ray import serve

    env = job_env.env_vars()
    current = job_env.fingerprint(job_env.effective(settings, env, niceness))
    ray.init(
        address=os.environ.get("RAY_ADDRESS", "auto"),
        namespace=settings.ray_namespace,
        # every worker of this job runs the hook; only the pipeline's actors carry its variable
        runtime_env={
            "env_vars": {**env, job_env.DEPLOYED_WITH: current},
            "worker_process_setup_hook": priority.SETUP_HOOK,
        },
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    started = time.monotonic()
    # a restart replaces every actor anyway: no shard is asked (one that cannot answer, the very
    # case a restart is for, would stop the deploy here)
    changed = not restart and _counts_changed(settings)
    if restart or changed:
        why = "the shard counts changed" if changed else "to roll out new code"
        print(f"actors: stopped {stop_actors(settings)} ({why})", flush=True)
        _wait_gone(settings)
    handles = start_actors(settings, niceness)
    print(f"actors: {len(handles)} running ({time.monotonic() - started:.1f}s)", flush=True)
    _say_stale(handles, current)
    serve.start(
        http_options={"host": settings.http_host, "port": settings.http_port},
    )
    import cluster.app

    app = cluster.app.on_head() if gateway_on_head else cluster.app.app
    serve.run(app, name="orders", route_prefix="/", blocking=False)
    print(f"serve: app 'orders' deployed on {settings.http_host}:{settings.http_port}", flush=True)


def _say_stale(handles: dict[str, Any], current: str) -> None:
    """Name the actors created with other settings than this deploy's (`job_env`)."""
    import ray

    given: dict[str, str | None] = dict.fromkeys(handles)  # None: an older version's actor
    asked = {}
    for name, handle in handles.items():
        with contextlib.suppress(AttributeError):  # (Ray's handle has no such method)
            asked[name] = handle.deployed_with.options(max_task_retries=0).remote()
    refs = list(asked.values())
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=30) if refs else ([], [])
    for name, ref in asked.items():
        try:
            given[name] = ray.get(ref, timeout=0) if ref in done else None
        except Exception as exc:  # dead or restarting meanwhile: not known to be current
            print(f"actors: {name}: settings not read ({type(exc).__name__})", flush=True)
    stale = job_env.stale(given, current)
    if stale:
        print(job_env.stale_message(stale, len(handles)), flush=True)


def _counts_changed(settings: Settings) -> bool:
    """True when any running shard was started with another shard count, or has an index the
    counts no longer have: key → shard routing would then disagree, so every actor restarts and
    reloads its share from Postgres. Every shard is asked, not only shard 0: an interrupted
    restart may have stopped shard 0 and left the others. A shard that does not answer within
    60 s (restarting, stuck, or dead meanwhile) counts as changed: restarting every actor is
    what gets it back."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    healths: dict[str, dict[str, Any]] = {}
    for name, shard in sorted(found_shards(settings).items()):
        try:
            healths[name] = ray.get(shard.health.remote(), timeout=60)
        except (GetTimeoutError, RayActorError) as exc:
            print(f"actors: {name} does not answer ({type(exc).__name__}); restarting", flush=True)
            return True
    return bool(other_counts(settings, healths) or beyond_counts(settings, healths))


def _wait_gone(settings: Settings, timeout_s: float = 30.0) -> None:
    """Wait until no stopped actor's name is taken; raise when one still is after `timeout_s`
    (`get_if_exists` would adopt an actor that is still dying)."""
    import ray

    deadline = time.monotonic() + timeout_s
    left: list[str] = []
    for name in actor_names(settings, every=True):
        while True:
            try:
                ray.get_actor(name, namespace=settings.ray_namespace)
            except ValueError:
                break
            if time.monotonic() >= deadline:
                left.append(name)
                break
            time.sleep(0.1)
    if left:
        raise RuntimeError(
            f"{len(left)} stopped actors still hold their names after {timeout_s:.0f} s "
            f"({', '.join(left[:5])}…); run the deploy again once Ray has removed them"
        )
