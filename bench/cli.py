"""`python -m bench` (what `make bench` runs): options, then the run, the files and the table."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from bench import gate, report
from bench.checks import NotReady
from bench.mainrun import Load
from bench.runner import Options, run
from bench.saturation import Plan
from bench.ui import console, info
from bench.workload import Mix
from cli.api import local_gateway
from core.settings import Settings, SettingsError, get_settings

app = typer.Typer(add_completion=False, help=__doc__)

Duration = Annotated[int, typer.Option(help="seconds of main load", min=1)]
Rate = Annotated[float, typer.Option(help="orders/s offered, open loop")]
Concurrency = Annotated[int, typer.Option(help="closed loop with this many connections")]
Decline = Annotated[float, typer.Option(help="share paid with a declining card")]
Oos = Annotated[float, typer.Option(help="share asking for a scarce SKU")]
Multi = Annotated[float, typer.Option(help="share of multi-SKU orders (2..4)")]
People = Annotated[int, typer.Option(help="customers, each with its own token")]
Scarce = Annotated[int, typer.Option(help="units left on SKU-81..85 at start")]
Workers = Annotated[int, typer.Option(help="load generator processes")]
GenNice = Annotated[int, typer.Option(help="niceness of the generator (below 0 needs root)")]
Grace = Annotated[float, typer.Option(help="seconds to wait for orders to finish")]
Warmup = Annotated[float, typer.Option(help="seconds left out of the steady rates")]
Progress = Annotated[float, typer.Option(help="seconds between progress lines")]
Baseline = Annotated[bool, typer.Option(help="compare with plain uvicorn")]
BasePort = Annotated[int, typer.Option(help="port of the uvicorn baseline (0: HTTP_PORT + 1)")]
BaseNice = Annotated[int, typer.Option(help="baseline niceness; -1: the Serve replica's")]
WarmLoad = Annotated[int, typer.Option(help="seconds of the same load first (0: none)")]
CapS = Annotated[int, typer.Option(help="seconds per capacity phase")]
CapConn = Annotated[
    int,
    typer.Option(help="wrk connections; capacity is measured with this many and twice as many"),
]
CeilS = Annotated[int, typer.Option(help="seconds per /health ceiling")]
Saturation = Annotated[
    bool, typer.Option(help="step phase to the saturation point, then latency by load")
]
StepStart = Annotated[float, typer.Option(help="first offered rate of the step phase", min=1)]
StepInc = Annotated[float, typer.Option(help="orders/s added per step (at least)", min=1)]
StepGrowth = Annotated[float, typer.Option(help="or this share of the rate, if more", min=0)]
StepS = Annotated[int, typer.Option(help="seconds per step", min=3)]
StepSettle = Annotated[float, typer.Option(help="seconds left out at the start of a step")]
StepMax = Annotated[float, typer.Option(help="highest rate the ladder may offer")]
ConfirmS = Annotated[
    int, typer.Option(help="seconds the found rate is held, lower if need be (0: not held)", min=0)
]
Fractions = Annotated[str, typer.Option(help="load points, fractions of saturation (0: none)")]
PointS = Annotated[int, typer.Option(help="seconds of load at each load point", min=4)]
Seed = Annotated[int, typer.Option(help="seed of the order mix")]
Url = Annotated[str, typer.Option(help="gateway, loopback only (default: HTTP_HOST:HTTP_PORT)")]
Out = Annotated[Path, typer.Option(help="results folder")]
AdminUrl = Annotated[str, typer.Option(help="gateway for the stock set-up (default: --url)")]


@app.command()
def bench(
    duration: Duration = 60,
    rate: Rate = 320.0,
    concurrency: Concurrency = 0,
    decline_share: Decline = 0.05,
    oos_share: Oos = 0.02,
    multi_share: Multi = 0.3,
    customers: People = 500,
    scarce_units: Scarce = 20,
    workers: Workers = 2,
    generator_nice: GenNice = -5,
    grace: Grace = 60.0,
    warmup: Warmup = 5.0,
    progress: Progress = 5.0,
    baseline: Baseline = True,
    baseline_port: BasePort = 0,
    baseline_nice: BaseNice = -1,
    warmup_load: WarmLoad = 30,
    capacity_duration: CapS = 10,
    capacity_connections: CapConn = 32,
    ceiling_duration: CeilS = 5,
    saturation: Saturation = True,
    step_start: StepStart = 100.0,
    step_inc: StepInc = 60.0,
    step_growth: StepGrowth = 0.15,
    step_duration: StepS = 15,
    step_settle: StepSettle = 5.0,
    step_max: StepMax = 2000.0,
    confirm_duration: ConfirmS = 20,
    load_fractions: Fractions = "0.25,0.5,0.9",
    load_point_duration: PointS = 20,
    seed: Seed = 1,
    url: Url = "",
    out: Out = Path("bench/results"),
    admin_url: AdminUrl = "",
) -> None:
    """Load the running stack (`make up`) through the JWT gateway, follow every accepted order
    to its final status, find the pipeline's saturation point and the latency below it, compare
    Ray Serve with plain uvicorn, write JSON + PNG. Exits 1 (after writing) when an order was
    lost or left unfinished, a unit oversold, a stock invariant broken, or a tracked run
    accepted less than half of what it offered (`bench.gate`)."""
    given = dict(locals())  # every option above, by name
    try:
        settings = get_settings()
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    opts = _options(_local_defaults(given, settings))
    try:
        result = asyncio.run(run(opts, settings))
    except NotReady as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    _write(result, out)
    wrong = gate.problems(result)
    if wrong:
        console.print("[bold red]FAILED: " + "; ".join(wrong) + " (the results are written)[/]")
        raise typer.Exit(1)


_LOOPBACK = ("http://127.", "http://localhost", "http://[::1]")


def _local_defaults(o: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The gateway and the baseline's port from `HTTP_HOST` and `HTTP_PORT` (environment,
    `.env`) where the options leave them out, as `make chaos` and the `orders` CLI find the
    gateway (127.0.0.1 for a host beyond loopback: the load never leaves the machine)."""
    port = settings.http_port
    gateway = local_gateway(settings)
    baseline = o["baseline_port"] or port + 1
    if baseline > 65535 or baseline == settings.metrics_export_port:
        raise typer.BadParameter(
            f"port {baseline} is METRICS_EXPORT_PORT's or out of range: give another",
            param_hint="--baseline-port",
        )
    return {
        **o,
        "url": o["url"]
        or (gateway if gateway.startswith(_LOOPBACK) else f"http://127.0.0.1:{port}"),
        "baseline_port": baseline,
    }


def _options(o: dict[str, Any]) -> Options:
    """Check the options and gather them into the runner's `Options`."""
    if not str(o["url"]).startswith(_LOOPBACK):
        raise typer.BadParameter(
            "load may only target the loopback (127.0.0.0/8)", param_hint="--url"
        )
    if o["concurrency"] <= 0 and o["rate"] <= 0:
        raise typer.BadParameter("give RATE > 0 or CONCURRENCY > 0")
    if not 0 <= o["step_settle"] < o["step_duration"] - 1:
        raise typer.BadParameter("give 0 <= STEP_SETTLE < STEP_DURATION - 1")
    if o["confirm_duration"] and o["step_settle"] >= o["confirm_duration"] - 1:
        raise typer.BadParameter("give CONFIRM_DURATION 0 or > STEP_SETTLE + 1")
    load = Load(
        base_url=str(o["url"]).rstrip("/"),
        duration_s=o["duration"],
        rate=o["rate"] if o["concurrency"] <= 0 else 0.0,
        concurrency=max(o["concurrency"], 0),
        workers=o["workers"],
        mix=Mix(o["multi_share"], o["decline_share"], o["oos_share"]),
        seed=o["seed"],
        grace_s=o["grace"],
        warmup_s=min(o["warmup"], o["duration"] / 2),
        progress_s=o["progress"],
        niceness=o["generator_nice"],
    )
    steps = Plan(
        start_per_s=o["step_start"],
        inc_per_s=o["step_inc"],
        step_s=o["step_duration"],
        settle_s=o["step_settle"],
        max_per_s=o["step_max"],
        growth=o["step_growth"],
        confirm_s=o["confirm_duration"],
    )
    return Options(
        load=load,
        customers=o["customers"],
        scarce_units=o["scarce_units"],
        baseline=o["baseline"],
        baseline_port=o["baseline_port"],
        baseline_nice=o["baseline_nice"],
        warmup_load_s=o["warmup_load"],
        capacity_s=o["capacity_duration"],
        capacity_connections=o["capacity_connections"],
        ceiling_s=o["ceiling_duration"],
        out_dir=o["out"],
        admin_url=str(o["admin_url"]).rstrip("/"),
        saturation=o["saturation"],
        steps=steps,
        load_fractions=parse_fractions(o["load_fractions"]),
        load_point_s=o["load_point_duration"],
    )


def parse_fractions(text: str) -> tuple[float, ...]:
    """`"0.25,0.5,0.9"` → (0.25, 0.5, 0.9); "0" or "" → () (no load points)."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise typer.BadParameter(
            f"not a list of numbers: {text!r}", param_hint="--load-fractions"
        ) from None
    if any(not 0 <= v <= 1.5 for v in values):
        raise typer.BadParameter("fractions lie in 0..1.5", param_hint="--load-fractions")
    return tuple(v for v in values if v > 0)


def _write(result: dict[str, Any], out: Path) -> None:
    path = report.write(result, out)
    png = path.with_suffix(".png")
    from bench import plot  # matplotlib is slow to import: only once there is a result

    plot.draw(result, png)
    shutil.copyfile(png, out / "latest.png")
    written = [str(path), str(out / "latest.json"), str(png)]
    load_png = path.with_name(f"{path.stem}-load.png")
    if plot.draw_load(result, load_png):
        shutil.copyfile(load_png, out / "latest-load.png")
        written.append(str(load_png))
    report.table(result)
    info("wrote " + ", ".join(written))
