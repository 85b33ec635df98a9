"""The figures of `make bench-scale` (pure arithmetic over its samples), its JSON file, plot and
summary table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.table import Table

from adapters import audit
from bench.cpu import seconds_in
from bench.saturation import Plan
from bench.scale_cpu import HostCpuSampler
from bench.stats import shown
from bench.ui import console


def _best_step(found: dict[str, Any]) -> int:
    steps = found["steps"]
    for i, s in enumerate(steps):
        if s["offered_per_s"] == found["at_offered_per_s"]:
            return i
    return len(steps) - 1


def host_profile(cpu: HostCpuSampler, found: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """CPU per host (cores, its cap, the share of time its quota held it back) and the largest
    components inside each host, over the settled window of the ladder's saturation step."""
    if not found["steps"]:
        return {}
    k = _best_step(found)
    a = cpu.started + k * plan.step_s + plan.settle_s
    b = cpu.started + (k + 1) * plan.step_s
    span = b - a
    hosts = seconds_in(cpu.series, cpu.started, a, b)
    parts = seconds_in(cpu.parts, cpu.started, a, b)
    held = seconds_in(cpu.throttled, cpu.started, a, b)
    caps = {name: c.cap for name, c in (cpu.cgroups.read_all() if cpu.cgroups else {}).items()}
    out: dict[str, Any] = {"offered_per_s": found["steps"][k]["offered_per_s"], "window_s": span}
    out["loadgen_cores"] = round(hosts.pop("loadgen", 0.0) / span, 3)
    out["bench_cores"] = round(hosts.pop("bench", 0.0) / span, 3)
    box = seconds_in(cpu.box, cpu.started, a, b).get("box", 0.0) / span
    out["machine_busy_cores"] = round(box, 3)
    # the rest of the machine: another stack, another engineer's work, the kernel's
    mine = sum(hosts.values()) / span + out["loadgen_cores"] + out["bench_cores"]
    out["others_cores"] = round(max(box - mine, 0.0), 3)
    per: dict[str, Any] = {}
    for key, used in sorted(hosts.items()):
        name = key.removeprefix("host:")
        inside = {
            p.split(":", 1)[1]: v / span for p, v in parts.items() if p.startswith(name + ":")
        }
        top = dict(sorted(inside.items(), key=lambda kv: -kv[1])[:8])
        per[name] = {
            "cores": round(used / span, 3),
            "cap": caps.get(name, 0.0),
            # CPU-seconds per second its processes were held back (summed over the CPUs)
            "throttled_per_s": round(held.get(name, 0.0) / span, 3),
            "top": {c: round(v, 3) for c, v in top.items()},
        }
    out["hosts"] = per
    return out


_TERMINAL = ("DELIVERED", "REJECTED", "DECLINED", "CANCELLED", "REFUNDED")
_CHARGED = ("AUTHORIZED", "CAPTURED")
_PAID = ("PAID", "SHIPPED", "DELIVERED")


def invariants(dsn: str, ids: list[str], available: dict[str, int]) -> dict[str, Any]:
    """The invariants of ARCHITECTURE §6 for the orders `ids` (as `orders chaos` checks them,
    from Postgres): not terminal (lost), units sold beyond what was `available` per SKU or stock
    bookkeeping broken (oversold), a charge on an order that is not paid or a paid order without
    one, a timeline entry written twice."""
    with audit.connect(dsn) as conn:
        states = audit.statuses(conn, ids)
        lost = sum(1 for i in ids if states.get(i) not in _TERMINAL)
        broken = audit.broken_stock(conn) + audit.holds_out_of_step(conn, ids)
        oversold = len(broken) + sum(
            int(r["sold"]) - available[r["sku"]]
            for r in audit.sold_by_sku(conn, ids)
            if r["sku"] in available and r["sold"] > available[r["sku"]]
        )
        charges = audit.charge_mismatches(conn, ids, _CHARGED, _PAID)
        twice = audit.duplicate_timeline(conn, ids)
    return {
        "accepted": len(ids),
        "lost": lost,
        "oversold": oversold,
        "charge_mismatches": len(charges),
        "duplicate_effects": len(twice),
        "details": [str(r) for r in [*broken, *charges, *twice][:10]],
    }


def loss_counts(verdict: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """The node-loss run's counts: `invariants`' over the tracked orders (202 seen), `lost`
    also counting the run's orders stored without a 202 that did not finish (`figures`:
    `mainrun.summary`, which counts them by customer: a client that gave up after the gateway
    stored its order)."""
    return {
        "accepted": verdict["accepted"],
        "lost": max(verdict["lost"], figures["lost"]),
        "lost_tracked": verdict["lost"],
        "stored_without_202": figures["stored_without_202"],
        "oversold": verdict["oversold"],
        "charge_mismatches": verdict["charge_mismatches"],
        "duplicate_effects": verdict["duplicate_effects"],
    }


def busy_mean(box: list[tuple[float, dict[str, float]]], start: float, end: float) -> float | None:
    """The machine's busy cores (`HostCpuSampler.box`), averaged over the samples taken within
    [start, end] (None: none)."""
    values = [cores.get("box", 0.0) for t, cores in box if start <= t <= end]
    return round(sum(values) / len(values), 3) if values else None


def busy_note(
    busy: dict[str, float | None], cpus: int | None = None, share: float = 0.9
) -> str | None:
    """A validity note when the whole machine was busy (≥ `share` of its `cpus`, this
    machine's by default) in one of the windows of a phase (`busy`: window → busy cores): its
    figure may then be the box's limit (the uncapped head, the load generator, everything else)
    rather than the hosts' quotas."""
    cpus = cpus or os.cpu_count() or 1
    over = {k: v for k, v in busy.items() if v is not None and v >= share * cpus}
    if not over:
        return None
    where = ", ".join(f"{k}: {v:g}" for k, v in over.items())
    return (
        f"the machine's busy cores were >= {share:.0%} of its {cpus} CPUs ({where}): "
        "the figure may be the machine's limit, not the worker hosts' quotas"
    )


def write(result: dict[str, Any], out_dir: Path, plot: Path | None) -> Path:
    """`<out_dir>/scaleout-<stamp>.json` and `scaleout.json`; the plot at `plot`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1, default=str) + "\n"
    stamped = out_dir / f"scaleout-{result['timestamp']}.json"
    stamped.write_text(text)
    (out_dir / "scaleout.json").write_text(text)
    if plot is not None:
        from bench.scale_plot import draw

        draw(result, plot)
    return stamped


def table(result: dict[str, Any]) -> None:
    t = Table(title=f"make bench-scale {result['timestamp']}")
    t.add_column("figure")
    t.add_column("1 worker host", justify="right")
    t.add_column("2 worker hosts", justify="right")
    one, two = result["runs"]
    for label, key in (
        ("saturation offered / s (held)", "offered_per_s"),
        ("saturation completed / s (held)", "completed_per_s"),
        ("confirmed by holding", "confirmed"),
        ("the ladder's completed / s", "ladder_completed_per_s"),
        ("p99 accept ms (latency run)", "p99_accept_ms"),
        ("p99 accept→SHIPPED ms (latency run)", "p99_accept_to_shipped_ms"),
        ("lost (ladder)", "lost"),
    ):
        t.add_row(label, shown(one.get(key)), shown(two.get(key)))
    for run, col in ((one, 1), (two, 2)):
        hosts = run["at_saturation"].get("hosts", {})
        line = ", ".join(
            f"{h} {v['cores']:.2f}"
            + (f"/{v['cap']:g} (throttled {v['throttled_per_s']:.2f} CPU-s/s)" if v["cap"] else "")
            for h, v in hosts.items()
        )
        t.add_row(
            f"cores per host at saturation ({col})",
            line if col == 1 else "",
            line if col == 2 else "",
        )
    control = result["control_one_host_double_cap"]
    t.add_row(
        f"control: 1 worker host at {control['cap']:g} core, completed / s",
        str(control["completed_per_s"]),
        f"spread_vs_same_cpu_one_host {result['spread_vs_same_cpu_one_host']}",
    )
    loss = result["node_loss"]
    t.add_row("scaleout_ratio", "", str(result["scaleout_ratio"]))
    t.add_row(
        "node loss (w2 killed)",
        "",
        f"accepted {loss['accepted']}, lost {loss['lost']}, oversold {loss['oversold']}, "
        f"recovered in {loss['recovered_s']} s",
    )
    console.print(t)
    for note in result.get("notes") or []:
        console.print(f"[yellow]note: {note}[/yellow]")
