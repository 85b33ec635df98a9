"""`python -m bench.soak` (`make soak`): does the pipeline slow down as its history grows, and
does a retention pass bring the tables back to their windows?

1. the benchmark (`python -m bench`, saturation ladder and latency by load) on the database as
   it is (small);
2. a long history preloaded in SQL (adapters/soak_history.py: ten million finished orders by
   default, spread over twice ORDER_HISTORY_DAYS), timed;
3. the same benchmark again (large);
4. one retention pass (adapters/retention.py), timed.

Writes `soak.json`: both runs' saturation and latency, `soak_ratio` (large saturation over small),
the preload's time and the table sizes before the preload, after it and after the retention pass.
It loads the running stack and leaves the history in its database: run it on a stack you can
throw away (`make clean-data` afterwards), never next to other work.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from adapters import retention, soak_history
from bench import report
from bench.ui import console, info
from core.settings import Settings, SettingsError, get_settings

app = typer.Typer(add_completion=False, help=__doc__)

# what each run contributes to the report (keys of the benchmark's result)
RUN_KEYS = (
    "saturation_completed_per_s",
    "latency_by_load",
    "offered_per_s",
    "accepted_per_s",
    "completed_per_s",
    "p50_accept_ms",
    "p99_accept_ms",
    "p50_e2e_ms",
    "p99_e2e_ms",
    "lost",
    "oversold",
    "errors",
)
SMALL_BENCH = "--no-baseline --warmup-load 10 --duration 30 --capacity-duration 5"

Orders = Annotated[int, typer.Option(help="orders of history to preload", min=1)]
Days = Annotated[int, typer.Option(help="days the history spans (0: 2 x ORDER_HISTORY_DAYS)")]
Chunk = Annotated[int, typer.Option(help="orders per preload transaction", min=1000)]
Sessions = Annotated[int, typer.Option(help="preload sessions at once (a core each)", min=1)]
BenchArgs = Annotated[str, typer.Option(help="options of both benchmark runs")]
Dsn = Annotated[
    str,
    typer.Option(
        envvar="MIGRATION_DATABASE_URL",
        help="database as the tables' owner (default: MIGRATION_DATABASE_URL, else DATABASE_URL)",
    ),
]
Out = Annotated[Path, typer.Option(help="results folder (soak.json, the runs' folders)")]
Runs = Annotated[bool, typer.Option(help="the benchmark runs (--no-bench: preload and retention)")]


@app.command()
def soak(
    orders: Orders = 10_000_000,
    days: Days = 0,
    chunk: Chunk = 250_000,
    sessions: Sessions = 2,
    bench_args: BenchArgs = SMALL_BENCH,
    dsn: Dsn = "",
    out: Out = Path("bench/results"),
    bench: Runs = True,
) -> None:
    """Benchmark, preload a long history, benchmark again, run retention; write soak.json."""
    try:
        settings = get_settings()
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    span = timedelta(days=days or 2 * settings.order_history_days)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = out / f"soak-{stamp}"
    result: dict[str, Any] = {
        "timestamp": stamp,
        "machine": report.machine(),
        "windows": _windows(settings),
        "history": {"orders": orders, "days": span.days},
        "bench_args": bench_args,
    }
    result["small"] = _bench("small", bench_args, folder) if bench else None
    owner = dsn or settings.database_url
    result |= asyncio.run(_grow(owner, settings, orders, span, (chunk, sessions)))
    result["large"] = _bench("large", bench_args, folder) if bench else None
    result |= asyncio.run(_retain(owner, settings))
    result["soak_ratio"] = _ratio(result["large"], result["small"])
    folder.mkdir(parents=True, exist_ok=True)
    path = out / "soak.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    (folder / "soak.json").write_text(path.read_text())
    info(f"soak_ratio {result['soak_ratio']} (large/small saturation); wrote {path}")


def _windows(settings: Settings) -> dict[str, float]:
    return {t.table: t.window(settings).total_seconds() / 3600 for t in retention.TABLES}


def _bench(name: str, args: str, folder: Path) -> dict[str, Any]:
    """One benchmark run in `folder/name`; the figures of RUN_KEYS from its result."""
    where = folder / name
    where.mkdir(parents=True, exist_ok=True)
    info(f"soak: {name} run: python -m bench {args}")
    command = [sys.executable, "-m", "bench", *args.split(), "--out", str(where)]
    proc = subprocess.run(command, check=False)
    latest = where / "latest.json"
    if proc.returncode != 0 or not latest.is_file():
        console.print(f"[red]the {name} benchmark failed (exit {proc.returncode}); see above[/red]")
        raise typer.Exit(1)
    data: dict[str, Any] = json.loads(latest.read_text())
    return {"result": str(where / f"{data['timestamp']}.json")} | {k: data.get(k) for k in RUN_KEYS}


def _ratio(large: dict[str, Any] | None, small: dict[str, Any] | None) -> float | None:
    key = "saturation_completed_per_s"
    if not large or not small or not large.get(key) or not small.get(key):
        return None
    return round(float(large[key]) / float(small[key]), 3)


async def _connect(dsn: str) -> AsyncConnection[dict[str, Any]]:
    return await AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)


async def _sizes(conn: AsyncConnection[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Bytes and estimated rows of every table the history fills."""
    parted = {
        r.table: {"bytes": r.total_bytes, "rows": r.rows_estimate, "partitions": r.partitions}
        for r in await retention.report(conn, settings)
    }
    return parted | await soak_history.table_sizes(conn)


async def _grow(
    dsn: str, settings: Settings, orders: int, span: timedelta, split: tuple[int, int]
) -> dict[str, Any]:
    async with await _connect(dsn) as conn:
        before = await _sizes(conn, settings)
        start = time.monotonic()

        async def done(n: int) -> None:
            rate = n / max(time.monotonic() - start, 1e-6)
            info(f"soak: preloaded {n:,} of {orders:,} orders ({rate:,.0f}/s)")

        await soak_history.preload(dsn, orders, span, *split, done=done)
        loaded = time.monotonic() - start
        await soak_history.analyze(conn)
        took = time.monotonic() - start
        return {
            "preload_s": round(loaded, 1),
            "preload_and_analyze_s": round(took, 1),
            "preload_orders_per_s": round(orders / loaded),
            "preload_sessions": split[1],
            "sizes_before_preload": before,
            "sizes_after_preload": await _sizes(conn, settings),
        }


async def _retain(dsn: str, settings: Settings) -> dict[str, Any]:
    async with await _connect(dsn) as conn:
        start = time.monotonic()
        done = await retention.maintain(conn, settings)
        took = time.monotonic() - start
        return {
            "retention_pass_s": round(took, 2),
            "dropped_partitions": {m.table: len(m.dropped) for m in done},
            "sizes_after_retention": await _sizes(conn, settings),
        }


if __name__ == "__main__":
    app()
