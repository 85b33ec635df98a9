"""`make bench-scale` (`python -m bench.scale`): what a second worker host adds.

One run on the namespace harness (cluster/netns.sh): a head host (Postgres, Redis, Kafka, Ray
head with no CPUs, the Serve gateway; not capped) and worker hosts each capped at the same CPU
quota. With one worker host, then with two (the second joins, the platform redeploys so that
its actors spread), the same open-loop workload: the step ladder of `make bench` to the
saturation point (completed/s), then a tracked run at a fraction of it for the latencies. Then,
still with two hosts, a tracked run during which one worker host is SIGKILLed. Writes
bench/results/scaleout.json and the plot."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters import benchdb
from bench import mainrun, report, saturation, stock
from bench.mainrun import Load
from bench.saturation import Plan
from bench.scale_cpu import HostCpuSampler, idle_sample
from bench.scale_hosts import Hosts, unavailable
from bench.scale_report import host_profile, invariants, recovery, table, write
from bench.tracker import Tracker
from bench.ui import console, info
from bench.workload import SCARCE_SKUS, Mix, admin_token, customers

PLATFORM = {
    "CONSUMERS_PER_GROUP": "2",
    "KAFKA_PARTITIONS": "6",
    "INVENTORY_SHARDS": "2",
    "PAYMENT_SHARDS": "2",
}


@dataclass(frozen=True)
class ScaleOptions:
    cap: float = 0.5  # cores per worker host
    platform: dict[str, str] = field(default_factory=lambda: dict(PLATFORM))
    plan: Plan = field(
        default_factory=lambda: Plan(start_per_s=10, inc_per_s=5, step_s=15, growth=0.15)
    )
    warmup_s: int = 20
    latency_fraction: float = 0.7  # of each run's own saturation point
    latency_s: int = 30
    loss_s: int = 60
    kill_at_s: float = 20.0
    loss_fraction: float = 0.7  # of the one-host saturation point: the survivor can keep up
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


async def measure(hosts: Hosts, n: int, opts: ScaleOptions, tag: str) -> dict[str, Any]:
    """Warm-up, the ladder to saturation, then latency at a fraction of it, on `n` hosts."""
    cpu = HostCpuSampler(cgroups=hosts.cgroups)
    settings = hosts.platform_settings()
    base = _load(hosts, opts, opts.plan.start_per_s, opts.warmup_s, opts.seed + 10 * n)
    info(f"{n} worker host(s): warm-up {base.rate:g}/s for {base.duration_s}s")
    await _tracked(hosts, opts, replace(base, grace_s=60), f"{tag}-w{n}", cpu)
    background = await wait_quiet(hosts, opts)
    info(f"{n} worker host(s): the ladder")
    prefix = f"{tag}-s{n}"
    found = await saturation.find(
        base, opts.plan, customers(settings, prefix, opts.customers), prefix, hosts.dsn, cpu
    )
    profile = host_profile(cpu, found, opts.plan)
    rate = round(opts.latency_fraction * found["completed_per_s"], 1)
    info(f"{n} worker host(s): latency run at {rate:g}/s ({opts.latency_fraction:.0%})")
    load = replace(base, rate=rate, duration_s=opts.latency_s, seed=base.seed + 1)
    run, tracker = await _tracked(hosts, opts, load, f"{tag}-l{n}", cpu)
    figures = mainrun.summary(run, tracker)
    keys = (
        *("offered_per_s", "accepted_per_s", "completed_per_s", "shipped_per_s", "errors"),
        *("p50_accept_ms", "p99_accept_ms", "p50_e2e_ms", "p99_e2e_ms", "lost"),
    )
    return {
        "worker_hosts": n,
        "offered_per_s": found["at_offered_per_s"],
        "completed_per_s": found["completed_per_s"],
        "saturation_found": found["found"],
        "lost": found["unfinished"],
        "p99_accept_ms": figures["p99_accept_ms"],
        "p99_accept_to_shipped_ms": figures["p99_e2e_ms"],
        "latency_run": {"load_fraction": opts.latency_fraction} | {k: figures[k] for k in keys},
        "before_ladder": background,
        "at_saturation": profile,
        "placement": _placement(hosts),
        "ladder": [
            {k: s[k] for k in ("offered_per_s", "accepted_per_s", "completed_per_s", "misses")}
            | {"host_ms_per_order": s["cpu_ms_per_order"]}
            for s in found["steps"]
        ],
    }


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
    settings = hosts.platform_settings()
    conn = await benchdb.connect(hosts.dsn)
    try:
        await stock.make_scarce(hosts.gateway, admin_token(settings), conn, 20)
        start = await stock.snapshot(conn)
    finally:
        await conn.close()
    killed: list[float] = []

    async def kill() -> None:
        await asyncio.sleep(opts.kill_at_s + 2.5)  # the generator starts 2.5 s after the call
        killed.append(await asyncio.to_thread(hosts.kill, 2, opts.kill))

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
    after = recovery(run.records, tracker, killed[0])
    how = "its raylet" if opts.kill == "raylet" else "every process"
    return {
        **{k: verdict[k] for k in ("accepted", "lost", "oversold")},
        "charge_mismatches": verdict["charge_mismatches"],
        "duplicate_effects": verdict["duplicate_effects"],
        "recovered_s": after["recovered_s"],
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


async def run(opts: ScaleOptions) -> dict[str, Any]:
    """The whole scale-out measurement; the harness is always taken down."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"scale-{stamp.replace('-', '')}"
    hosts = Hosts(settings=dict(opts.platform), cap=opts.cap, worker_cpus=4)
    result: dict[str, Any] = {"timestamp": stamp, "machine": report.machine()}
    result["settings"] = {"options": asdict(opts), "cap_cores_per_worker_host": opts.cap}
    try:
        info(f"harness: head + 1 worker host (cap {opts.cap:g} cores)")
        hosts.up(1)
        one = await measure(hosts, 1, opts, tag)
        info("worker host 2 joins; redeploy so that the actors spread over both")
        hosts.worker(2)
        hosts.deploy(restart=True)
        two = await measure(hosts, 2, opts, tag)
        loss_rate = round(opts.loss_fraction * one["completed_per_s"], 1)
        result["node_loss"] = await node_loss(hosts, opts, loss_rate, tag)
    finally:
        info("harness: down")
        hosts.down()
    result["runs"] = [one, two]
    result["scaleout_ratio"] = round(two["completed_per_s"] / max(one["completed_per_s"], 1e-9), 3)
    return result


def main(
    cap: Annotated[float, typer.Option(help="cores per worker host (cgroup quota)")] = 0.5,
    kill: Annotated[
        str, typer.Option(help="raylet: SIGKILL its raylet; host: every process")
    ] = "raylet",
    step_s: Annotated[int, typer.Option(help="seconds per ladder step", min=5)] = 15,
    start: Annotated[float, typer.Option(help="first offered rate of the ladder", min=1)] = 10,
    inc: Annotated[float, typer.Option(help="orders/s added per step (at least)", min=1)] = 5,
    quiet: Annotated[float, typer.Option(help="wait until the rest of the box uses ≤ this")] = 0.6,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
    plot: Annotated[Path, typer.Option(help="where the PNG goes")] = Path("docs/scaling.png"),
) -> None:
    """One worker host, then two, each capped at CAP cores; then one of two dies under load."""
    why = unavailable()
    if why is not None:
        console.print(f"[red]{why}[/red]")
        raise typer.Exit(2)
    if kill not in ("raylet", "host"):
        raise typer.BadParameter("raylet or host", param_hint="--kill")
    plan = replace(ScaleOptions().plan, step_s=step_s, start_per_s=start, inc_per_s=inc)
    opts = ScaleOptions(cap=cap, kill=kill, plan=plan, quiet_cores=quiet)
    result = asyncio.run(run(opts))
    path = write(result, out, plot)
    table(result)
    info(f"wrote {path}, {out / 'scaleout.json'} and {plot}")


if __name__ == "__main__":
    typer.run(main)
