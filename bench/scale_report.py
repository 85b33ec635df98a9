"""The figures of `make bench-scale` (pure arithmetic over its samples), its JSON file, plot and
summary table."""

from __future__ import annotations

import bisect
import json
import math
import statistics
from pathlib import Path
from typing import Any

from rich.table import Table

from adapters import audit
from bench.cpu import seconds_in
from bench.loadgen import Record
from bench.saturation import Plan
from bench.scale_cpu import HostCpuSampler
from bench.tracker import Tracker
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


def _cumulative(times: list[float], t: float) -> int:
    return bisect.bisect_right(times, t)


def timeline(accepted: list[float], done: list[float], kill_at: float) -> list[dict[str, Any]]:
    """Second by second (t: seconds since the kill): orders accepted and completed in that
    second, and those in the pipeline (accepted, not yet terminal). Both lists sorted."""
    if not accepted:
        return []
    first = math.floor(accepted[0])
    last = math.ceil(max(done[-1] if done else 0.0, accepted[-1]))
    rows = []
    for t in range(first, last + 1):
        a, d = _cumulative(accepted, t), _cumulative(done, t)
        rows.append(
            {
                "t": round(t - kill_at, 1),
                "accepted_per_s": a - _cumulative(accepted, t - 1),
                "completed_per_s": d - _cumulative(done, t - 1),
                "backlog": a - d,
            }
        )
    return rows


# The load's last seconds, which give the survivor's own backlog at the offered rate.
_SETTLED_S = 20


def settled_level(rows: list[dict[str, Any]], load_ended_s: float) -> float | None:
    """The backlog the survivor settled at: its median over the load's last `_SETTLED_S`
    seconds, when that window is flat (its second half's mean within 10 % or 10 orders of its
    first's). None: too short a window, or a backlog still growing or draining."""
    window = [r["backlog"] for r in rows if load_ended_s - _SETTLED_S <= r["t"] < load_ended_s]
    if len(window) < _SETTLED_S // 2:
        return None
    half = len(window) // 2
    first, second = sum(window[:half]) / half, sum(window[half:]) / (len(window) - half)
    level = float(statistics.median(window))
    return level if abs(second - first) <= max(0.1 * level, 10) else None


def judge_recovery(
    rows: list[dict[str, Any]], load_ended_s: float, complete: bool
) -> dict[str, Any]:
    """When the outage's backlog was worked off (`backlog_back_s`, seconds since the kill,
    after the peak): back within its level before the kill (the largest of the 10 s before,
    plus a quarter or 5 orders), or within the level the survivor settled at by the end of the
    load (`settled_level`, plus a quarter and 5): one host has half the capacity, so its own
    steady backlog at the same rate may be higher than two hosts'. None when never, or when
    orders stayed unfinished (not `complete`). `recovered_s` is that moment only while the load
    still ran (it ended `load_ended_s` after the kill): a backlog that empties only once the
    load has stopped is a drain, not a survivor keeping up with the offered rate
    (`recovery_note` says so)."""
    before = [r["backlog"] for r in rows if -10 <= r["t"] < 0] or [0]
    settled = settled_level(rows, load_ended_s)
    threshold = max(max(before) * 1.25, max(before) + 5)
    if settled is not None:
        threshold = max(threshold, settled * 1.25 + 5)
    after = [r for r in rows if r["t"] >= 0]
    peak = max(range(len(after)), key=lambda i: after[i]["backlog"], default=0)
    back = None
    if complete:
        back = next((r["t"] for r in after[peak:] if r["backlog"] <= threshold), None)
    out: dict[str, Any] = {
        "recovered_s": back,
        "backlog_back_s": back,
        "load_ended_s": load_ended_s,
        "backlog_before": max(before),
        "backlog_settled": settled,
        "peak_backlog": after[peak]["backlog"] if after else None,
        "peak_at_s": after[peak]["t"] if after else None,
        "recovery_note": None,
    }
    if back is None:
        out["recovery_note"] = "the backlog never came back to its level before the kill"
    elif back > load_ended_s:
        out["recovered_s"] = None
        out["recovery_note"] = (
            f"the load ended {load_ended_s:g} s after the kill, before the backlog was back to its "
            f"level before it ({back:g} s, peak {out['peak_backlog']} at {out['peak_at_s']:g} s): "
            "the survivor did not keep up with the offered rate; what followed was a drain"
        )
    return out


def recovery(
    records: list[Record], tracker: Tracker, kill_at: float, load_end: float
) -> dict[str, Any]:
    """Orders in the pipeline second by second around the kill (`timeline`) and when they
    were back to their level before it (`judge_recovery`; the load ended at `load_end`)."""
    accepted = sorted(r[2] for r in records if r[3] == 202)
    done = sorted(o.terminal_at for o in tracker.outcomes.values())
    rows = timeline(accepted, done, kill_at)
    judged = judge_recovery(rows, round(load_end - kill_at, 1), not tracker.outstanding)
    return judged | {"timeline": rows}


def busy_mean(box: list[tuple[float, dict[str, float]]], start: float, end: float) -> float | None:
    """The machine's busy cores (`HostCpuSampler.box`), averaged over the samples taken within
    [start, end] (None: none)."""
    values = [cores.get("box", 0.0) for t, cores in box if start <= t <= end]
    return round(sum(values) / len(values), 3) if values else None


def busy_note(busy: dict[str, float | None], cpus: int, share: float = 0.9) -> str | None:
    """A validity note when the whole machine was busy (≥ `share` of its `cpus`) in one of the
    windows of a phase (`busy`: window → busy cores): its figure may then be the box's limit
    (the uncapped head, the load generator, everything else) rather than the hosts' quotas."""
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
        t.add_row(label, str(one.get(key)), str(two.get(key)))
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
