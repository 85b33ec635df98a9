"""The phases of `make bench-scale` (bench/scale.py): a ladder to saturation on the hosts the
harness runs, a tracked run at a fraction of it for the latencies, and a tracked run during
which a worker host dies."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

from adapters import benchdb
from bench import checks, hold, mainrun, saturation, stock
from bench.mainrun import Load
from bench.saturation import Plan
from bench.scale_cpu import HostCpuSampler, idle_sample
from bench.scale_hosts import Hosts
from bench.scale_recovery import recovery
from bench.scale_report import busy_mean, busy_note, host_profile, invariants, loss_counts
from bench.tracker import Tracker
from bench.ui import info
from bench.workload import SCARCE_SKUS, Mix, admin_token, customers

PLATFORM = {
    "KAFKA_PARTITIONS": "6",
    "INVENTORY_SHARDS": "2",
    "PAYMENT_SHARDS": "2",
}


@dataclass(frozen=True)
class ScaleOptions:
    cap: float = 0.4  # cores per worker host
    platform: dict[str, str] = field(default_factory=lambda: dict(PLATFORM))
    plan: Plan = field(
        default_factory=lambda: Plan(start_per_s=10, inc_per_s=5, step_s=15, growth=0.15)
    )
    warmup_s: int = 20
    latency_fraction: float = 0.7  # of each run's own saturation point
    latency_s: int = 30
    # 100 s of load after the kill: the dead host's actors take ~30 s to come back on the
    # survivor, which then works off the backlog and settles (`judge_recovery`) while loaded
    loss_s: int = 120
    kill_at_s: float = 20.0
    loss_fraction: float = 0.5  # of the one-host (held) saturation point: the survivor's share
    kill: str = "raylet"  # or "host": every process of the worker host
    workers: int = 2  # load generator processes
    customers: int = 300
    seed: int = 1
    grace_s: float = 180.0
    quiet_cores: float = 0.6  # the rest of the machine (kernel included), before each ladder
    quiet_wait_s: float = 600.0


def _load(hosts: Hosts, opts: ScaleOptions, rate: float, duration_s: int, seed: int) -> Load:
    return Load(
        base_url=hosts.gateway,
        duration_s=duration_s,
        rate=rate,
        concurrency=0,
        workers=opts.workers,
        mix=Mix(),
        seed=seed,
        grace_s=opts.grace_s,
        warmup_s=5.0,
        progress_s=10.0,
        niceness=-5,
    )


async def _tracked(
    hosts: Hosts, opts: ScaleOptions, load: Load, prefix: str, cpu: HostCpuSampler
) -> tuple[mainrun.MainRun, Tracker]:
    tracker = Tracker(hosts.dsn)
    await tracker.open()
    try:
        people = customers(hosts.platform_settings(), prefix, opts.customers)
        run = await mainrun.run(load, people, tracker, cpu)
    finally:
        await tracker.close()
    return run, tracker


async def ladder(hosts: Hosts, label: str, opts: ScaleOptions, tag: str) -> dict[str, Any]:
    """Warm-up, a quiet machine, then the ladder to saturation and the hold that confirms its
    rate (`bench.hold.confirm`, as `make bench`); the figures and CPU per host."""
    cpu = HostCpuSampler(cgroups=hosts.cgroups)
    base = _load(hosts, opts, opts.plan.start_per_s, opts.warmup_s, opts.seed + len(tag))
    info(f"{label}: warm-up {base.rate:g}/s for {base.duration_s}s")
    await _tracked(hosts, opts, replace(base, grace_s=60), f"{tag}-w", cpu)
    background = await wait_quiet(hosts, opts)
    info(f"{label}: the ladder")
    people = customers(hosts.platform_settings(), f"{tag}-s", opts.customers)
    found = await saturation.find(base, opts.plan, people, f"{tag}-s", hosts.dsn, cpu)
    profile = host_profile(cpu, found, opts.plan)  # (the ladder's saturation step)
    held_from = time.time()
    found = await _confirm(hosts, opts, tag, base, cpu, found)
    busy = {"saturation step": profile.get("machine_busy_cores")}
    busy["holds"] = busy_mean(cpu.box, held_from, time.time())
    return {
        "offered_per_s": found["at_offered_per_s"],
        "completed_per_s": found["completed_per_s"],
        "confirmed": found.get("confirmed", False),
        "ladder_offered_per_s": found.get("ladder_offered_per_s", found["at_offered_per_s"]),
        "ladder_completed_per_s": found.get("ladder_completed_per_s", found["completed_per_s"]),
        "confirmations": [
            {k: h.get(k) for k in _HELD_KEYS} for h in found.get("confirmations") or []
        ],
        "saturation_found": found["found"],
        "lost": found["unfinished"],
        "before_ladder": background,
        "machine_busy_cores": busy,
        "validity": busy_note(busy),
        "at_saturation": profile,
        "placement": _placement(hosts),
        "ladder": [
            {k: s[k] for k in ("offered_per_s", "accepted_per_s", "completed_per_s", "misses")}
            | {"host_ms_per_order": s["cpu_ms_per_order"]}
            for s in found["steps"]
        ],
    }


_HELD_KEYS = ("offered_per_s", "accepted_per_s", "completed_per_s", "misses", "unfinished")


async def _confirm(
    hosts: Hosts,
    opts: ScaleOptions,
    tag: str,
    base: Load,
    cpu: HostCpuSampler,
    found: dict[str, Any],
) -> dict[str, Any]:
    """The ladder's rate held (`hold.confirm`, lowered while the pipeline does not keep up):
    a ladder step can complete more than the hosts sustain (a backlog worked off, a batch)."""
    if not found["completed_per_s"] or opts.plan.confirm_s <= 0:
        return found
    await checks.settle(hosts.gateway)
    settings = hosts.platform_settings()
    return await hold.confirm(
        base,
        opts.plan,
        lambda i: customers(settings, f"{tag}-c{i}", opts.customers),
        f"{tag}-c",
        hosts.dsn,
        cpu,
        found,
    )


async def latency(
    hosts: Hosts, saturation_per_s: float, opts: ScaleOptions, tag: str
) -> dict[str, Any]:
    """A tracked run at `latency_fraction` of the saturation point: latencies, nothing lost."""
    rate = round(opts.latency_fraction * saturation_per_s, 1)
    info(f"latency run at {rate:g}/s ({opts.latency_fraction:.0%} of saturation)")
    load = _load(hosts, opts, rate, opts.latency_s, opts.seed + len(tag) + 1)
    run, tracker = await _tracked(
        hosts, opts, load, f"{tag}-l", HostCpuSampler(cgroups=hosts.cgroups)
    )
    figures = mainrun.summary(run, tracker)
    keys = (
        *("offered_per_s", "accepted_per_s", "completed_per_s", "shipped_per_s", "errors"),
        *("p50_accept_ms", "p99_accept_ms", "p50_e2e_ms", "p99_e2e_ms", "lost"),
    )
    return {"load_fraction": opts.latency_fraction} | {k: figures[k] for k in keys}


async def measure(hosts: Hosts, n: int, opts: ScaleOptions, tag: str) -> dict[str, Any]:
    """The ladder, then the latency run, on `n` worker hosts."""
    out: dict[str, Any] = {"worker_hosts": n, "cap": opts.cap}
    out |= await ladder(hosts, f"{n} worker host(s) at {opts.cap:g} core", opts, f"{tag}-{n}")
    lat = await latency(hosts, out["completed_per_s"], opts, f"{tag}-{n}")
    out["p99_accept_ms"] = lat["p99_accept_ms"]
    out["p99_accept_to_shipped_ms"] = lat["p99_e2e_ms"]
    out["latency_run"] = lat
    return out


async def wait_quiet(hosts: Hosts, opts: ScaleOptions) -> dict[str, Any]:
    """Wait (at most `quiet_wait_s`) until the rest of the machine keeps at most `quiet_cores`
    busy: the figures compare one host with two, which another process's burst would skew.
    Returns that figure and what each host of the idle harness used meanwhile."""
    started = time.monotonic()
    while True:
        others, idle = await asyncio.to_thread(idle_sample, hosts.cgroups, 10.0)
        waited = time.monotonic() - started
        if others <= opts.quiet_cores or waited > opts.quiet_wait_s:
            if others > opts.quiet_cores:
                info(f"[yellow]the machine stays busy ({others} cores besides the harness)")
            return {"others_cores": others, "waited_s": round(waited), "hosts_idle_cores": idle}
        info(f"  the machine is busy besides the harness ({others} cores): waiting ({waited:.0f}s)")


def _placement(hosts: Hosts) -> dict[str, list[str]]:
    """Host → the platform's actors Ray placed there."""
    ips = {hosts.info["NODE_ADDRESS"]: "head"} | {hosts.worker_ip(i): f"w{i}" for i in (1, 2, 3)}
    out: dict[str, list[str]] = {}
    for a in hosts.actors():
        if a.state == "ALIVE":
            out.setdefault(ips.get(a.node_ip, a.node_ip), []).append(a.name or a.class_name)
    return {k: sorted(v) for k, v in sorted(out.items())}


async def node_loss(hosts: Hosts, opts: ScaleOptions, rate: float, tag: str) -> dict[str, Any]:
    """A tracked run on two hosts at `rate`; worker host 2 dies `kill_at_s` into it."""
    start = await _scarce(hosts)
    killed: list[float] = []
    back: list[float | None] = []

    async def kill() -> None:
        await asyncio.sleep(opts.kill_at_s + 2.5)  # the generator starts 2.5 s after the call
        before = await asyncio.to_thread(_pipeline_alive, hosts)
        killed.append(await asyncio.to_thread(hosts.kill, 2, opts.kill))
        back.append(await _actors_back(hosts, len(before), killed[0]))

    info(f"node loss: {rate:g}/s for {opts.loss_s}s; worker host 2 dies at {opts.kill_at_s:g}s")
    cpu = HostCpuSampler(cgroups=hosts.cgroups)
    load = _load(hosts, opts, rate, opts.loss_s, opts.seed + 99)
    side = asyncio.create_task(kill())
    run, tracker = await _tracked(hosts, opts, replace(load, grace_s=300), f"{tag}-k", cpu)
    await side
    ids = [str(i) for i in (*tracker.outcomes, *tracker.outstanding)]
    available = {sku: start[sku][0] - start[sku][1] for sku in SCARCE_SKUS}
    verdict = await asyncio.to_thread(invariants, hosts.dsn, ids, available)
    figures = mainrun.summary(run, tracker)
    load_end = run.t0 + load.duration_s
    after = recovery(run.records, tracker, killed[0], load_end)
    busy = {"node-loss run": busy_mean(cpu.box, run.t0, load_end)}
    how = "its raylet" if opts.kill == "raylet" else "every process"
    return {
        **loss_counts(verdict, figures),
        **{k: v for k, v in after.items() if k != "timeline"},
        "actors_back_s": back[0] if back else None,
        "machine_busy_cores": busy,
        "validity": busy_note(busy),
        "offered_per_s": rate,
        "killed": f"worker host w2: SIGKILL {how}",
        "killed_at_s": round(killed[0] - run.t0, 1),
        "errors": figures["errors"],
        "p99_accept_ms": figures["p99_accept_ms"],
        "p99_accept_to_shipped_ms": figures["p99_e2e_ms"],
        "details": verdict["details"],
        "timeline": after["timeline"],
        "placement_after": _placement(hosts),
    }


async def _scarce(hosts: Hosts) -> dict[str, tuple[int, int]]:
    """The scarce SKUs' stock made scarce, then its snapshot (what oversold is judged against)."""
    conn = await benchdb.connect(hosts.dsn)
    try:
        await stock.make_scarce(hosts.gateway, admin_token(hosts.platform_settings()), conn, 20)
        return await stock.snapshot(conn)
    finally:
        await conn.close()


def _pipeline_alive(hosts: Hosts) -> dict[str, str]:
    """name → node address of the platform's ALIVE actors (Serve's own left out)."""
    return {
        a.name: a.node_ip
        for a in hosts.actors()
        if a.state == "ALIVE" and a.name and not a.name.startswith("SERVE_")
    }


async def _actors_back(
    hosts: Hosts, count: int, since: float, timeout_s: float = 300
) -> float | None:
    """Seconds from `since` until `count` pipeline actors are ALIVE again, none on worker 2."""
    gone = hosts.worker_ip(2)
    while time.time() - since < timeout_s:
        alive = await asyncio.to_thread(_pipeline_alive, hosts)
        if len(alive) >= count and gone not in alive.values():
            return round(time.time() - since, 1)
        await asyncio.sleep(1.0)
    return None
