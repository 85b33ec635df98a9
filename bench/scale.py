"""`make bench-scale` (`python -m bench.scale`): what a second worker host adds.

One run on the namespace harness (cluster/netns.sh): a head host (Postgres, Redis, Kafka, Ray
head with no CPUs, the Serve gateway; not capped) and worker hosts each capped at the same CPU
quota. With one worker host, then with two (the second joins, the platform redeploys so that
its actors spread), the same open-loop workload: the step ladder of `make bench` to the
saturation point (completed/s), then a tracked run at a fraction of it for the latencies. In
between, a control: the one worker host with twice the quota (the CPU of both), which tells
spreading apart from the CPU itself. Then, still with two hosts, a tracked run during which one
worker host is SIGKILLed. Writes bench/results/scaleout.json and the plot."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import report
from bench.scale_hosts import Hosts, unavailable
from bench.scale_phases import ScaleOptions, ladder, measure, node_loss
from bench.scale_report import table, write
from bench.ui import console, info


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
        double = 2 * opts.cap
        hosts.set_cap(1, double)
        label = f"control: 1 worker host at {double:g} core"
        control: dict[str, Any] = {"worker_hosts": 1, "cap": double}
        control |= await ladder(hosts, label, opts, f"{tag}-c")
        hosts.set_cap(1, opts.cap)
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
    result["control_one_host_double_cap"] = control
    result["scaleout_ratio"] = round(two["completed_per_s"] / max(one["completed_per_s"], 1e-9), 3)
    # two hosts against one host with the same CPU in all: what spreading itself costs or adds
    result["spread_vs_same_cpu_one_host"] = round(
        two["completed_per_s"] / max(control["completed_per_s"], 1e-9), 3
    )
    return result


def main(
    cap: Annotated[float, typer.Option(help="cores per worker host (cgroup quota)")] = 0.4,
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
