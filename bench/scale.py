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
import signal
import time
from collections.abc import Coroutine
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bench import report
from bench.scale_hosts import Hosts, unavailable
from bench.scale_phases import ScaleOptions, ladder, measure, node_loss
from bench.scale_report import table, write
from bench.ui import console, info

T = TypeVar("T")


async def run(opts: ScaleOptions) -> dict[str, Any]:
    """The whole scale-out measurement; the harness is always taken down (a failing teardown
    is logged and kept as `teardown_error`, never raised over the measurement's own error)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = f"scale-{stamp.replace('-', '')}"
    hosts = Hosts(settings=dict(opts.platform), cap=opts.cap, worker_cpus=4)
    result: dict[str, Any] = {"timestamp": stamp, "machine": report.machine()}
    result["settings"] = {"options": asdict(opts), "cap_cores_per_worker_host": opts.cap}
    try:
        phases = await _phases(hosts, opts, tag)
    finally:
        teardown(hosts, result)
    result |= phases
    one, two = phases["runs"]
    control = phases["control_one_host_double_cap"]
    # both held rates (`bench.hold.confirm`): what the hosts sustained, not a ladder step's
    result["scaleout_ratio"] = round(two["completed_per_s"] / max(one["completed_per_s"], 1e-9), 3)
    # two hosts against one host with the same CPU in all: what spreading itself costs or adds
    result["spread_vs_same_cpu_one_host"] = round(
        two["completed_per_s"] / max(control["completed_per_s"], 1e-9), 3
    )
    result["notes"] = notes(result)
    return result


async def _phases(hosts: Hosts, opts: ScaleOptions, tag: str) -> dict[str, Any]:
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
    loss = await node_loss(hosts, opts, loss_rate, tag)
    return {"node_loss": loss, "runs": [one, two], "control_one_host_double_cap": control}


def teardown(hosts: Hosts, result: dict[str, Any]) -> None:
    """`hosts.down()`; its failure is logged and kept in `result["teardown_error"]` (the
    results are still written, and the gate fails on it)."""
    info("harness: down")
    try:
        hosts.down()
    except Exception as exc:  # HarnessError, a timeout, an unreadable log: never masks
        console.print(f"[bold red]harness teardown failed: {exc}[/]")
        result["teardown_error"] = str(exc)


def _phase_names(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    named = [(f"{r['worker_hosts']} worker host(s)", r) for r in result.get("runs") or []]
    control = result.get("control_one_host_double_cap")
    return [*named, *([("control", control)] if control else [])]


def notes(result: dict[str, Any]) -> list[str]:
    """What limits the figures' validity: a rate the holds did not confirm, a busy machine."""
    out = []
    for name, phase in _phase_names(result):
        if not phase.get("confirmed"):
            out.append(f"{name}: saturation not confirmed by holding it")
        if phase.get("validity"):
            out.append(f"{name}: {phase['validity']}")
    loss = result.get("node_loss") or {}
    out += [f"node loss: {loss[k]}" for k in ("validity", "recovery_note") if loss.get(k)]
    return out


def problems(result: dict[str, Any]) -> list[str]:
    """What makes the run fail (as `bench.gate` for `make bench`; empty: nothing): a ladder
    that found no saturation point or left orders unfinished (or a hold did, or a latency run
    lost some), the node loss losing, overselling, charging wrongly or applying an effect
    twice, not recovering while the load ran or its actors not coming back, a failed teardown."""
    out: list[str] = []
    if result.get("teardown_error"):
        out.append(f"teardown failed: {result['teardown_error']}")
    for name, phase in _phase_names(result):
        if not phase.get("saturation_found"):
            out.append(f"{name}: the ladder found no saturation point")
        if phase.get("lost"):
            out.append(f"{name}: {phase['lost']} orders of the ladder unfinished")
        for i, held in enumerate(phase.get("confirmations") or [], 1):
            if held.get("unfinished"):
                out.append(f"{name}: hold {i} left {held['unfinished']} orders unfinished")
        if (phase.get("latency_run") or {}).get("lost"):
            out.append(f"{name}: latency run lost {phase['latency_run']['lost']} orders")
    loss = result.get("node_loss")
    if loss is None:
        return [*out, "node loss: not measured"]
    for key in ("lost", "oversold", "charge_mismatches", "duplicate_effects"):
        if loss.get(key):
            out.append(f"node loss: {key.replace('_', ' ')} {loss[key]}")
    if loss.get("recovered_s") is None:
        out.append(f"node loss: not recovered ({loss.get('recovery_note') or 'no figure'})")
    if loss.get("actors_back_s") is None:
        out.append("node loss: the dead host's actors were not back on the survivor")
    return out


class Interrupted(Exception):
    """The run was stopped by a signal (after its cleanup ran)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def guarded(
    work: Coroutine[Any, Any, T], signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)
) -> T:
    """`work`, cancelled by the first of `signals` (a later one is only logged) so that its
    `finally` runs (the harness taken down) before `Interrupted` is raised. Python's default
    for these signals ends the process at once; asyncio.run already does this for SIGINT."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    got: list[int] = []

    def stop(signum: int) -> None:
        name = signal.Signals(signum).name
        info(f"[yellow]{name}: " + ("still stopping" if got else "stopping; cleaning up"))
        if not got:
            task.cancel()
        got.append(signum)

    for sig in signals:
        loop.add_signal_handler(sig, stop, sig)
    try:
        return await task
    except asyncio.CancelledError:
        if got:
            raise Interrupted(got[0]) from None
        raise
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def main(
    cap: Annotated[float, typer.Option(help="cores per worker host (cgroup quota)")] = 0.4,
    kill: Annotated[
        str, typer.Option(help="raylet: SIGKILL its raylet; host: every process")
    ] = "raylet",
    step_s: Annotated[int, typer.Option(help="seconds per ladder step", min=5)] = 15,
    start: Annotated[float, typer.Option(help="first offered rate of the ladder", min=1)] = 10,
    inc: Annotated[float, typer.Option(help="orders/s added per step (at least)", min=1)] = 5,
    confirm_s: Annotated[
        int, typer.Option(help="seconds the found rate is held (0: not confirmed)", min=0)
    ] = 20,
    quiet: Annotated[
        float,
        typer.Option(
            help="before each ladder, wait (≤ 600 s) until the rest of the box uses ≤ this"
        ),
    ] = 0.6,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
    plot: Annotated[Path, typer.Option(help="where the PNG goes")] = Path("docs/scaling.png"),
) -> None:
    """One worker host, then two, each capped at CAP cores; then one of two dies under load.
    Exits 1 (after writing the results) on a loss, an unrecovered node loss or a failed
    teardown (`problems`)."""
    why = unavailable()
    if why is not None:
        console.print(f"[red]{why}[/red]")
        raise typer.Exit(2)
    if kill not in ("raylet", "host"):
        raise typer.BadParameter("raylet or host", param_hint="--kill")
    plan = replace(
        ScaleOptions().plan, step_s=step_s, start_per_s=start, inc_per_s=inc, confirm_s=confirm_s
    )
    if confirm_s and plan.settle_s >= confirm_s - 1:
        raise typer.BadParameter(f"0 or > {plan.settle_s + 1:g}", param_hint="--confirm-s")
    opts = ScaleOptions(cap=cap, kill=kill, plan=plan, quiet_cores=quiet)
    try:
        result = asyncio.run(guarded(run(opts)))
    except Interrupted as exc:
        console.print(f"[bold red]stopped by {exc}: the harness was taken down, nothing written[/]")
        raise typer.Exit(128 + exc.signum) from None
    path = write(result, out, plot)
    table(result)
    info(f"wrote {path}, {out / 'scaleout.json'} and {plot}")
    wrong = problems(result)
    if wrong:
        console.print("[bold red]FAILED: " + "; ".join(wrong) + " (the results are written)[/]")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
