"""One `make bench` invocation, phase by phase, into one result dict."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from adapters import benchdb
from bench import (
    capacity,
    ceiling,
    checks,
    end_audit,
    hold,
    loadpoints,
    mainrun,
    oversell,
    report,
    saturation,
    stats,
    stock,
    wrkrun,
)
from bench.baseline import UvicornBaseline
from bench.procs import CpuSampler, replica_niceness
from bench.saturation import Plan
from bench.stats import shown
from bench.tracker import Tracker
from bench.ui import info
from bench.workload import REGULAR_SKUS, admin_token, customers
from core.settings import Settings


@dataclass(frozen=True)
class Options:
    load: mainrun.Load
    customers: int = 500
    scarce_units: int = 20
    baseline: bool = True
    baseline_port: int = 8081
    capacity_s: int = 10
    capacity_connections: int = 32
    ceiling_s: int = 5
    drain_timeout_s: float = 120.0
    out_dir: Path = Path("bench/results")
    admin_url: str = ""  # where stock is set (a gateway with Ray); default: the load's URL
    baseline_nice: int = -1  # niceness of the uvicorn baseline; -1: that of the Serve replica
    warmup_load_s: int = 30  # the same load first, reported apart (0: none)
    saturation: bool = True  # the step phase and the latency-by-load runs
    steps: Plan = field(default_factory=Plan)
    load_fractions: tuple[float, ...] = (0.25, 0.5, 0.9)  # of the saturation point
    load_point_s: int = 20  # seconds of load at each fraction


async def run(opts: Options, settings: Settings) -> dict[str, Any]:
    """All phases; returns the result (also written to `out_dir`)."""
    opts = replace(opts, load=replace(opts.load, kafka_bootstrap=settings.kafka_bootstrap))
    base = opts.load.base_url
    await checks.preflight(base)
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"bench-{stamp.replace('-', '')}"
    per_min = 60 * opts.load.rate / max(opts.customers, 1)
    if per_min > settings.rate_limit_per_min * 0.8:
        info(f"[yellow]warning: {per_min:.0f} orders/min per customer nears RATE_LIMIT_PER_MIN")
    cpu = CpuSampler(own={os.getpid(): "bench"})
    broken_before = await end_audit.before(settings.database_url)  # not this run's finding
    ledger = await oversell.begin(settings.database_url)  # before the first scarce order
    result = _header(opts, settings, stamp)
    uvi = _baseline(opts)
    try:
        if uvi is not None:
            info(f"starting the plain-uvicorn baseline on {uvi.url} (nice {uvi.niceness})")
            await uvi.start()
            result["settings"]["bench"]["baseline_niceness"] = uvi.niceness
        result["background_cores"] = await checks.background(cpu)
        result["generator"] = await _ceilings(opts, uvi, cpu)
        if opts.warmup_load_s > 0:
            result["warmup_run"] = await _warm_up(opts, settings, tag, cpu)
        await _main(opts, settings, tag, cpu, ledger, result)
        result["settle_s"] = await checks.settle(base)
        await _saturation(opts, settings, tag, cpu, result)
        result["capacity"] = await capacity.measure(opts, settings, tag, uvi, cpu)
    finally:
        if uvi is not None:
            await uvi.stop()
    # every phase has drained: the stock's bookkeeping over all the orders of the run
    info("end-of-run audit: reserved stock against the open holds of every order of the run")
    try:  # its failure (Postgres gone) must not cost the run's results: a finding of its own
        result["end_audit"] = await end_audit.check(
            settings.database_url, started - 60.0, tag, broken_before
        )
    except Exception as exc:
        result["end_audit"] = {"error": f"{type(exc).__name__}: {exc}"}
    # every phase's orders against the stock there was (and the bench restocked) for them
    result.update(await oversell.check(settings.database_url, ledger, started - 60.0, tag))
    cap = result["capacity"]
    serve_rps = cap.get("serve", {}).get("ok_rps", 0.0)
    uvi_rps = cap.get("uvicorn", {}).get("ok_rps", 0.0)
    result["serve_vs_uvicorn_ratio"] = round(serve_rps / uvi_rps, 3) if uvi_rps else None
    result.update(loadpoints.capacity_ratios(result))
    return result


def _header(opts: Options, settings: Settings, stamp: str) -> dict[str, Any]:
    return {
        "timestamp": stamp,
        "machine": report.machine(),
        "settings": {
            "load": asdict(opts.load),
            "bench": {
                k: v for k, v in asdict(opts).items() if k not in ("load", "out_dir", "admin_url")
            },
            "platform": report.platform_settings(settings),
        },
    }


def _baseline(opts: Options) -> UvicornBaseline | None:
    if not opts.baseline:
        return None
    logs = Path(".run/logs") if Path(".run/logs").is_dir() else opts.out_dir
    nice = replica_niceness() if opts.baseline_nice < 0 else opts.baseline_nice
    return UvicornBaseline(opts.baseline_port, logs / "bench-uvicorn.log", nice)


async def _main(
    opts: Options,
    settings: Settings,
    tag: str,
    cpu: CpuSampler,
    ledger: oversell.Ledger,
    result: dict[str, Any],
) -> None:
    """The tracked main run with its stock set-up (counted as restocked in `ledger`) and
    audit."""
    people = customers(settings, f"{tag}-m", opts.customers)
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as db:
        tracker = Tracker(settings.database_url)
        await tracker.open()
        try:
            ledger.restock(
                await stock.make_scarce(
                    opts.admin_url or opts.load.base_url,
                    admin_token(settings),
                    db,
                    opts.scarce_units,
                )
            )
            start = await stock.snapshot(db)
            result["database"] = await benchdb.database_size(db)
            low = [s for s in REGULAR_SKUS if start[s][0] - start[s][1] < 100_000]
            if low:
                info(f"[yellow]warning: little stock left on {low}: their orders will be REJECTED")
            what = f"{opts.load.rate:g}/s" if not opts.load.concurrency else "closed loop"
            info(f"main run: {what} for {opts.load.duration_s}s with {len(people)} customers")
            main = await mainrun.run(opts.load, people, tracker, cpu)
            result.update(mainrun.summary(main, tracker))
            result["series"] = stats.series(
                main.records, tracker.outcomes.values(), main.t0, cpu.series
            )
            result["stock"] = await stock.audit(
                db, [p.customer_id for p in people], tracker.accepted, start
            )
            result["oversold"] = result["stock"]["oversold"]
            result["lost_ids"] = sorted(str(i) for i in main.lost_ids)[:20]
        finally:
            await tracker.close()


async def _saturation(
    opts: Options, settings: Settings, tag: str, cpu: CpuSampler, result: dict[str, Any]
) -> None:
    """The step phase, then latency at fractions of the saturation point it found."""
    result["saturation_completed_per_s"] = None
    result["latency_by_load"] = []
    if not opts.saturation:
        return
    dsn = settings.database_url
    people = customers(settings, f"{tag}-s", opts.customers)
    found = await saturation.find(opts.load, opts.steps, people, f"{tag}-s", dsn, cpu)
    if found["completed_per_s"] and opts.steps.confirm_s > 0:
        await checks.settle(opts.load.base_url)
        found = await hold.confirm(
            opts.load,
            opts.steps,
            lambda i: customers(settings, f"{tag}-c{i}", opts.customers),
            f"{tag}-c",
            dsn,
            cpu,
            found,
        )
    result["saturation"] = found
    result["saturation_completed_per_s"] = found["completed_per_s"]
    if not found["completed_per_s"] or not opts.load_fractions:
        return
    await checks.settle(opts.load.base_url)
    result["latency_by_load"] = await loadpoints.latency_by_load(
        opts.load,
        found["completed_per_s"],
        opts.load_fractions,
        opts.load_point_s,
        lambda i: customers(settings, f"{tag}-l{i}", opts.customers),
        dsn,
        cpu,
    )


async def _warm_up(opts: Options, settings: Settings, tag: str, cpu: CpuSampler) -> dict[str, Any]:
    """The same load for `warmup_load_s`, untracked by the headline figures: a freshly started
    stack (Kafka's JIT, first imports and schema builds in every Python process, cold caches)
    is not its steady state. Its own figures are kept in the result (`warmup_run`)."""
    load = replace(  # no publish waits: the warm-up reports only the keys below
        opts.load,
        duration_s=opts.warmup_load_s,
        seed=opts.load.seed + 1,
        warmup_s=0.0,
        kafka_bootstrap="",
    )
    info(f"warm-up: {load.rate:g}/s for {load.duration_s}s (reported apart, not in the figures)")
    tracker = Tracker(settings.database_url)
    await tracker.open()
    try:
        run = await mainrun.run(load, customers(settings, f"{tag}-w", opts.customers), tracker, cpu)
        figures = mainrun.summary(run, tracker)
    finally:
        await tracker.close()
    keys = ("accepted_per_s", "completed", "p50_accept_ms", "p99_accept_ms", "p99_e2e_ms", "lost")
    info(
        "warm-up done: "
        + ", ".join(f"{k} {shown(figures[k])}" for k in keys)
        + " (not in the figures of the main run)"
    )
    counts = ("offered", "accepted", "offered_per_s")  # for `bench.gate`'s share accepted
    return {k: figures[k] for k in (*keys, *counts)} | {"duration_s": load.duration_s}


async def _ceilings(opts: Options, uvi: UvicornBaseline | None, cpu: CpuSampler) -> dict[str, Any]:
    """The generator's ceiling on a trivial route, with wrk's as a reference."""
    if opts.ceiling_s <= 0:
        return {}
    targets = capacity.targets(opts, uvi)
    out: dict[str, Any] = {}
    for name, url in targets.items():
        info(f"generator ceiling: GET {url}/health for {opts.ceiling_s}s")
        out[f"{name} /health loadgen"] = await ceiling.generator_ceiling(
            url, workers=opts.load.workers, concurrency=64, duration_s=opts.ceiling_s, cpu=cpu
        )
        if wrkrun.available():
            out[f"{name} /health wrk"] = await ceiling.wrk_health(
                url, connections=64, duration_s=opts.ceiling_s
            )
    return out
