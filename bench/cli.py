"""`python -m bench` (what `make bench` runs): options, then the run, the files and the table."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Annotated

import typer

from bench import report
from bench.checks import NotReady
from bench.mainrun import Load
from bench.runner import Options, run
from bench.ui import console, info
from bench.workload import Mix
from core.settings import SettingsError, get_settings

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def bench(
    duration: Annotated[int, typer.Option(help="seconds of main load", min=1)] = 60,
    rate: Annotated[float, typer.Option(help="orders/s offered, open loop")] = 320.0,
    concurrency: Annotated[
        int, typer.Option(help="closed loop with this many connections instead of RATE")
    ] = 0,
    decline_share: Annotated[float, typer.Option(help="share paid with a declining card")] = 0.05,
    oos_share: Annotated[float, typer.Option(help="share asking for a scarce SKU")] = 0.02,
    multi_share: Annotated[float, typer.Option(help="share of multi-SKU orders (2..4)")] = 0.3,
    customers: Annotated[int, typer.Option(help="customers, each with its own token")] = 500,
    scarce_units: Annotated[int, typer.Option(help="units left on SKU-81..85 at start")] = 20,
    workers: Annotated[int, typer.Option(help="load generator processes")] = 2,
    generator_nice: Annotated[
        int, typer.Option(help="niceness of the generator (below 0 needs root)")
    ] = -5,
    grace: Annotated[float, typer.Option(help="seconds to wait for orders to finish")] = 60.0,
    warmup: Annotated[float, typer.Option(help="seconds left out of the steady rates")] = 5.0,
    progress: Annotated[float, typer.Option(help="seconds between progress lines")] = 5.0,
    baseline: Annotated[bool, typer.Option(help="compare with plain uvicorn")] = True,
    baseline_port: Annotated[int, typer.Option(help="port of the uvicorn baseline")] = 8081,
    baseline_nice: Annotated[
        int, typer.Option(help="niceness of the baseline; -1: the Serve replica's (Ray: 15)")
    ] = -1,
    warmup_load: Annotated[
        int, typer.Option(help="seconds of the same load first, reported apart (0: none)")
    ] = 30,
    capacity_duration: Annotated[int, typer.Option(help="seconds per capacity phase")] = 10,
    capacity_connections: Annotated[int, typer.Option(help="wrk connections")] = 32,
    ceiling_duration: Annotated[int, typer.Option(help="seconds per /health ceiling")] = 5,
    seed: Annotated[int, typer.Option(help="seed of the order mix")] = 1,
    url: Annotated[str, typer.Option(help="gateway (loopback only)")] = "http://127.0.0.1:8080",
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
    admin_url: Annotated[
        str, typer.Option(help="gateway for the stock set-up (default: --url)")
    ] = "",
) -> None:
    """Load the running stack (`make up`) through the JWT gateway, follow every accepted order
    to its final status, compare Ray Serve with plain uvicorn, write JSON + PNG."""
    if not url.startswith(("http://127.", "http://localhost")):
        raise typer.BadParameter(
            "load may only target the loopback (127.0.0.0/8)", param_hint="--url"
        )
    if concurrency <= 0 and rate <= 0:
        raise typer.BadParameter("give RATE > 0 or CONCURRENCY > 0")
    try:
        settings = get_settings()
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    load = Load(
        base_url=url.rstrip("/"),
        duration_s=duration,
        rate=rate if concurrency <= 0 else 0.0,
        concurrency=max(concurrency, 0),
        workers=workers,
        mix=Mix(multi_share=multi_share, decline_share=decline_share, oos_share=oos_share),
        seed=seed,
        grace_s=grace,
        warmup_s=min(warmup, duration / 2),
        progress_s=progress,
        niceness=generator_nice,
    )
    opts = Options(
        load=load,
        customers=customers,
        scarce_units=scarce_units,
        baseline=baseline,
        baseline_port=baseline_port,
        baseline_nice=baseline_nice,
        warmup_load_s=warmup_load,
        capacity_s=capacity_duration,
        capacity_connections=capacity_connections,
        ceiling_s=ceiling_duration,
        out_dir=out,
        admin_url=admin_url.rstrip("/"),
    )
    try:
        result = asyncio.run(run(opts, settings))
    except NotReady as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    path = report.write(result, out)
    png = path.with_suffix(".png")
    from bench.plot import draw  # matplotlib is slow to import: only once there is a result

    draw(result, png)
    shutil.copyfile(png, out / "latest.png")
    report.table(result)
    info(f"wrote {path}, {out / 'latest.json'} and {png}")
