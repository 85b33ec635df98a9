"""The PNG of a run: throughput, latency and CPU per component over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to a file
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from bench.stats import group_cpu  # noqa: E402

_CPU_ORDER = ("gateway", "actors", "postgres", "kafka", "redis", "ray-system", "loadgen")


def draw(result: dict[str, Any], path: Path) -> None:
    """Write the three-panel plot of `result["series"]` to `path`."""
    rows: list[dict[str, Any]] = result["series"]
    t = [r["t"] for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    s = result["settings"]["load"]
    load = f"RATE={s['rate']:g}/s" if not s["concurrency"] else f"CONCURRENCY={s['concurrency']}"
    fig.suptitle(
        f"make bench {result['timestamp']}: {load}, {s['duration_s']} s — "
        f"{result['machine']['cpus']} cores {result['machine']['cpu_model']}",
        fontsize=11,
    )
    for key, label in (
        ("offered", "offered"),
        ("accepted", "accepted (202)"),
        ("shipped", "reached SHIPPED"),
        ("completed", "completed (terminal)"),
    ):
        ax1.plot(t, [r[key] for r in rows], label=label, linewidth=1.2)
    ax1.set_ylabel("orders / s")
    ax1.legend(loc="lower right", fontsize=8)
    ax1.grid(alpha=0.3)
    for key, label, style in (
        ("accept_p50_ms", "accept p50", "-"),
        ("accept_p99_ms", "accept p99", "-"),
        ("e2e_p50_ms", "accept→SHIPPED p50", "--"),
        ("e2e_p99_ms", "accept→SHIPPED p99", "--"),
    ):
        pts = [(r["t"], r[key]) for r in rows if r.get(key)]  # None: nothing that second
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label, linewidth=1.2)
    ax2.set_yscale("log")
    ax2.set_ylabel("latency (ms, log)")
    ax2.legend(loc="upper left", fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    cpu_rows = [(r["t"], group_cpu(r["cpu"])) for r in rows if "cpu" in r]
    names = [n for n in _CPU_ORDER if any(n in c for _, c in cpu_rows)]
    names += sorted({n for _, c in cpu_rows for n in c} - set(names))
    if cpu_rows:
        ax3.stackplot(
            [p[0] for p in cpu_rows],
            [[c.get(n, 0.0) for _, c in cpu_rows] for n in names],
            labels=names,
            alpha=0.85,
        )
    ax3.axhline(result["machine"]["cpus"], color="black", linewidth=0.8, linestyle=":")
    ax3.set_ylabel("CPU (cores)")
    ax3.set_xlabel("seconds since the load started")
    ax3.legend(loc="upper right", fontsize=7, ncol=4)
    ax3.grid(alpha=0.3)
    for ax in (ax1, ax2, ax3):
        ax.axvline(s["duration_s"], color="grey", linewidth=0.8, linestyle="--")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def draw_load(result: dict[str, Any], path: Path) -> bool:
    """Write the step phase (offered, completed, backlog per step) and latency against load
    (the `latency_by_load` runs) to `path`; False (no file) when the run had no step phase."""
    steps: list[dict[str, Any]] = (result.get("saturation") or {}).get("steps") or []
    points: list[dict[str, Any]] = result.get("latency_by_load") or []
    if not steps and not points:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    sat = result.get("saturation_completed_per_s")
    fig.suptitle(
        f"make bench {result['timestamp']}: saturation {sat} completed/s, "
        f"accept-only capacity {result.get('gateway_accept_capacity_per_s')} /s — "
        f"{result['machine']['cpus']} cores {result['machine']['cpu_model']}",
        fontsize=11,
    )
    x = list(range(1, len(steps) + 1))
    for key, label, style in (
        ("offered_per_s", "offered", "o-"),
        ("accepted_per_s", "accepted", "s--"),
        ("completed_per_s", "completed (terminal)", "^-"),
    ):
        ax1.plot(x, [s[key] for s in steps], style, label=label, linewidth=1.2, markersize=4)
    if sat:
        ax1.axhline(sat, color="black", linewidth=0.8, linestyle=":", label="saturation")
    backlog = ax1.twinx()
    backlog.bar(x, [s["backlog_end"] for s in steps], alpha=0.2, color="grey")
    backlog.set_ylabel("backlog at step end (orders, bars)")
    ax1.set_zorder(backlog.get_zorder() + 1)  # lines in front of the bars
    ax1.patch.set_visible(False)
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel("step")
    ax1.set_ylabel("orders / s")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.grid(alpha=0.3)
    ax1.set_title("step phase", fontsize=10)
    for key, label, style in (
        ("accept_p50_ms", "accept p50", "o-"),
        ("accept_p99_ms", "accept p99", "o-"),
        ("e2e_shipped_p50_ms", "accept→SHIPPED p50", "s--"),
        ("e2e_shipped_p99_ms", "accept→SHIPPED p99", "s--"),
    ):
        pts = [(p["offered_per_s"], max(p[key], 0.1)) for p in points if p[key] is not None]
        ax2.plot([x for x, _ in pts], [y for _, y in pts], style, label=label, linewidth=1.2)
    if not points:
        ax2.text(0.5, 0.5, "no load points", ha="center", transform=ax2.transAxes)
    for p in points:
        ax2.annotate(f"{p['load_fraction']:.0%}", (p["offered_per_s"], p["accept_p50_ms"] or 0.1))
    ax2.set_yscale("log")
    ax2.set_xlabel("offered orders / s")
    ax2.set_ylabel("latency (ms, log)")
    ax2.legend(loc="upper left", fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    ax2.set_title("latency against load (fractions of saturation)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
