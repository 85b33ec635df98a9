"""`python -m bench.scale_probe`: fixed open-loop rates on the namespace harness, one worker
host at given CPU quotas, and what each host and each component in it used meanwhile.

    .venv/bin/python -m bench.scale_probe --point 0:20 --point 0.4:60 --point 0.8:190

Each point is CAP:RATE (cores of the worker host's quota, 0 = none; orders/s for 40 s). It
answers what `make bench-scale` cannot: how much CPU the pipeline takes at a given rate when
it may take more, i.e. whether its CPU follows the work or the CPU it is given."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Annotated, Any

import typer

from bench import mainrun
from bench.cpu import seconds_in
from bench.scale_cpu import HostCpuSampler
from bench.scale_hosts import Hosts, unavailable
from bench.scale_phases import PLATFORM, ScaleOptions, _load, _tracked
from bench.ui import console, info


async def probe(hosts: Hosts, cap: float, rate: float, duration_s: int) -> dict[str, Any]:
    hosts.set_cap(1, cap)
    opts = ScaleOptions()
    cpu = HostCpuSampler(cgroups=hosts.cgroups)
    load = replace(_load(hosts, opts, rate, duration_s, int(rate)), grace_s=120)
    tag = f"probe{int(cap * 100)}r{int(rate)}t{int(time.time()) % 100000}"
    run, tracker = await _tracked(hosts, opts, load, tag, cpu)
    figures = mainrun.summary(run, tracker)
    span = max(cpu.series[-1][0] - cpu.started, 1e-6) if cpu.series else 1.0
    parts = seconds_in(cpu.parts, cpu.started, cpu.started, cpu.started + span)
    return {
        "cap": cap,
        "offered_per_s": rate,
        "completed_per_s": figures["completed_per_s"],
        "p99_e2e_ms": figures["p99_e2e_ms"],
        "lost": figures["lost"],
        "host_cores": {k: round(v, 3) for k, v in cpu.cores().items()},
        "components": {
            k: round(v / span, 3) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:12]
        },
    }


async def _main(points: list[tuple[float, float]], duration_s: int) -> None:
    hosts = Hosts(settings=dict(PLATFORM), cap=points[0][0], worker_cpus=4)
    try:
        hosts.up(1)
        for cap, rate in points:
            info(f"probe: worker host capped at {cap:g} core(s), {rate:g} orders/s")
            console.print(await probe(hosts, cap, rate, duration_s))
            await asyncio.sleep(10)
    finally:
        hosts.down()


def main(
    point: Annotated[list[str], typer.Option(help="CAP:RATE, repeat for several")],
    duration: Annotated[int, typer.Option(help="seconds of load per point", min=10)] = 40,
) -> None:
    why = unavailable()
    if why is not None:
        console.print(f"[red]{why}[/red]")
        raise typer.Exit(2)
    try:
        points = [(float(p.split(":")[0]), float(p.split(":")[1])) for p in point]
    except (IndexError, ValueError):
        raise typer.BadParameter("CAP:RATE, e.g. 0.4:60", param_hint="--point") from None
    asyncio.run(_main(points, duration))


if __name__ == "__main__":
    typer.run(main)
