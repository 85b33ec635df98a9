"""What a result file says about where it ran, the JSON files, and the summary table."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.procs import psutil_module
from bench.stats import group_cpu, shown
from bench.ui import console
from core.settings import Settings

# Above this share of stolen CPU time the report says the run's figures are not comparable.
_STEAL_WARN_PCT = 5.0
_PLATFORM_KNOBS = (
    "gateway_replicas",
    "max_ongoing_requests",
    "accept_flushers",
    "db_pool_size",
    "inventory_shards",
    "payment_shards",
    "consumer_batch_max",
    "outbox_batch_max",
    "batch_window_ms",
    "batch_window_min_events",
    "consumer_fetch_min_bytes",
    "consumer_fetch_wait_ms",
    "ship_delay_s",
    "deliver_delay_s",
    "rate_limit_per_min",
    "credit_limit",
)


def machine() -> dict[str, Any]:
    """CPU count and model, memory, OS, and the versions that matter."""
    model = "unknown"
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            model,
        )
    return {
        "cpus": os.cpu_count() or 0,
        "cpu_model": model,
        "ram_gib": round(psutil_module().virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ray": version("ray"),
        "git": _git(),
    }


def platform_settings(settings: Settings) -> dict[str, Any]:
    """The platform's knobs as this process reads them (the stack reads the same environment),
    and what serves HTTP: Serve's default proxy or the HAProxy ingress."""
    ps = psutil_module()
    procs = [(p, " ".join(p.info["cmdline"] or [])) for p in ps.process_iter(["cmdline"])]
    gateway = [p for p, n in procs if n.startswith("ray::ServeReplica:orders:api-gateway")]
    relay = [p for p, n in procs if n.startswith("ray::OutboxRelay")]
    haproxy = any(n.split(" ")[0].endswith("haproxy") for _, n in procs)
    # a knob the platform no longer has is left out (older result files keep theirs)
    knobs = {k: getattr(settings, k) for k in _PLATFORM_KNOBS if hasattr(settings, k)}
    optimized: str | None = None
    for proc in gateway[:1]:  # the mode is in the environment `ray start` passed to the replica
        try:
            optimized = proc.environ().get("RAY_SERVE_THROUGHPUT_OPTIMIZED", "0")
        except (ps.AccessDenied, ps.NoSuchProcess):
            optimized = None
    below: int | None = None  # how far the pipeline runs below the gateway (cluster/priority.py)
    for stage, front in zip(relay[:1], gateway[:1], strict=False):
        try:
            below = stage.nice() - front.nice()
        except (ps.AccessDenied, ps.NoSuchProcess):
            below = None
    return {
        **knobs,
        "stage_niceness": below,
        "serve_ingress": "haproxy" if haproxy else "default-proxy",
        "serve_throughput_optimized": optimized,
        "gateway_replica_processes": len(gateway),
        "app_env": settings.app_env,
    }


def write(result: dict[str, Any], out_dir: Path) -> Path:
    """`<out_dir>/<timestamp>.json`, copied to `latest.json`; returns the timestamped path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{result['timestamp']}.json"
    text = json.dumps(result, indent=1, sort_keys=False, default=str)
    path.write_text(text + "\n")
    shutil.copyfile(path, out_dir / "latest.json")
    return path


def _database(db: dict[str, int] | None) -> str:
    if not db:
        return "not measured"
    return f"{db['size_bytes'] / 1e9:.2f} GB, ~{db['orders_estimate']:,} orders (estimate)"


def table(result: dict[str, Any]) -> None:
    """The summary table at the end of a run."""
    t = Table(title=f"make bench {result['timestamp']}", show_header=True)
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        ("offered / s", result["offered_per_s"]),
        ("accepted / s", result["accepted_per_s"]),
        ("completed / s (terminal, steady window)", result["completed_per_s"]),
        ("reached SHIPPED / s (steady window)", result["shipped_per_s"]),
        ("accept p50 / p95 / p99 ms", _trio(result, "accept")),
        ("accept→SHIPPED p50 / p95 / p99 ms", _trio(result, "e2e")),
        ("… by hop, p50 / p99 ms", _hops(result.get("e2e_hops_ms", {}))),
        ("… of which waiting to be published", _waits(result.get("e2e_publish_wait_ms", {}))),
        ("errors by status", result["errors"] or "none"),
        ("… and why", _reasons(result.get("error_reasons", {}))),
        ("final statuses", result["final_status"]),
        ("lost", result["lost"]),
        ("oversold units", result["oversold"]),
        ("oversold units, whole run (every phase)", result.get("oversold_all_phases")),
        ("stock invariant violations", result["stock"]["invariantViolations"]),
        ("stored without a 202 seen (client gave up)", result["stock"]["storedWithout202"]),
        ("drain after load (s)", result["drain_s"]),
        ("generator send lag p99 ms", shown(result["send_lag_p99_ms"])),
        ("CPU cores by component", group_cpu(result["cpu_cores"])),
        ("CPU ms per completed order (steady window)", _top(result.get("cpu_ms_per_order"))),
        ("CPU time taken by the hypervisor (steal, steady window)", _steal(result)),
        ("CPU unit ms, median (machine speed, bench/speed.py)", result.get("cpu_unit_ms")),
        ("seconds with a vacuum or analyze running (steady window)", result.get("maintenance_s")),
        ("database at the start (size, orders)", _database(result.get("database"))),
        ("stock at the end of the whole run (bench/end_audit.py)", _end(result.get("end_audit"))),
    ]
    warm = result.get("warmup_run")
    if warm:
        rows.append(
            (
                f"warm-up run ({warm['duration_s']} s, not in the figures above)",
                f"accepted {warm['accepted_per_s']}/s, p50/p99 accept "
                f"{shown(warm['p50_accept_ms'])} / {shown(warm['p99_accept_ms'])} ms, "
                f"lost {warm['lost']}",
            )
        )
    gen = result.get("generator") or {}
    for name, probe in gen.items():
        rows.append((f"ceiling {name} req/s", f"{probe['rps']} (p99 {shown(probe['p99_ms'])} ms)"))
    cap = result.get("capacity") or {}
    for name in ("serve", "uvicorn"):
        if name in cap:
            rows.append((f"accept capacity {name} req/s", _capacity(cap[name])))
    rows.append(("serve_vs_uvicorn_ratio", result["serve_vs_uvicorn_ratio"]))
    rows.extend(_saturation_rows(result))
    for name, value in rows:
        t.add_row(name, shown(value))
    console.print(t)


def _saturation_rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """The step phase, the latency at each load point and the capacity ratio."""
    found = result.get("saturation")
    if not found:
        return [("saturation", "not measured (--no-saturation)")]
    state = "" if found["found"] else " (not reached: the ladder ended first)"
    if found.get("confirmed") is False:  # held, and no hold kept up: a lower bound at best
        state += " [bold yellow](NOT CONFIRMED: no hold kept up)[/]"
    rows: list[tuple[str, Any]] = [
        (
            "saturation completed / s" + state,
            f"{result['saturation_completed_per_s']} at {shown(found['at_offered_per_s'])}/s "
            f"offered, {len(found['steps'])} steps, {found['unfinished']} unfinished",
        ),
        ("CPU ms per order at saturation", _top(found.get("cpu_ms_per_order"))),
    ]
    if "confirmations" in found:
        holds = ", ".join(_hold(h) for h in found["confirmations"])
        verdict = "confirmed" if found["confirmed"] else "[bold yellow]not confirmed[/]"
        rows.append(
            (
                "saturation held (" + verdict + ")",
                f"ladder {found['ladder_completed_per_s']}/s; held {holds}",
            )
        )
    for p in result.get("latency_by_load") or []:
        rows.append(
            (
                f"at {p['load_fraction']:.0%} ({p['offered_per_s']}/s offered): "
                "accept / accept→SHIPPED p50, p99 ms",
                f"{shown(p['accept_p50_ms'])}, {shown(p['accept_p99_ms'])} / "
                f"{shown(p['e2e_shipped_p50_ms'])}, {shown(p['e2e_shipped_p99_ms'])}; "
                f"completed {p['completed_per_s']}/s, lost {p['lost']}, "
                f"steal {p.get('cpu_steal_pct', 0.0)} %, "
                f"CPU unit {shown(p.get('cpu_unit_ms'))} ms, "
                f"vacuum or analyze running {p.get('maintenance_s')} s"
                + (f"; refused {_reasons(p['error_reasons'])}" if p.get("error_reasons") else ""),
            )
        )
    rows.append(("gateway accept-only capacity / s", result.get("gateway_accept_capacity_per_s")))
    rows.append(("saturation_vs_accept_capacity", result.get("saturation_vs_accept_capacity")))
    return rows


def _capacity(target: dict[str, Any]) -> str:
    """`1010.2 (unfinished after the drain: 0 at 32 connections, 0 at 64)`, and how many
    answered 202 and not stored, when counted."""
    drains = target.get("drain_by_connections") or {}
    left = ", ".join(
        f"{d['unfinished']} at {c} connections"
        + (f" ({d['not_stored']} not stored)" if d.get("not_stored") is not None else "")
        for c, d in drains.items()
    )
    return f"{target['ok_rps']}" + (f" (unfinished after the drain: {left})" if left else "")


def _end(audit: dict[str, Any] | None) -> str:
    """What the end-of-run audit found, by check (`bench.end_audit`)."""
    if not audit or "error" in audit:
        return f"could not run: {audit['error']}" if audit else "not checked"
    names = ("broken_stock", "held_when_finished", "holds_out_of_step", "unfinished")
    counts = {k: audit[k] for k in names if k in audit}
    return f"{audit['orders']} orders: " + ", ".join(f"{k} {v}" for k, v in counts.items())


def _hold(h: dict[str, Any]) -> str:
    """`520.0/s → 498.1/s`, with the orders the hold left unfinished when it did."""
    done = f"{h['completed_per_s']}/s" if h.get("measured", True) else "not measured"
    left = f" ({h['unfinished']} unfinished)" if h.get("unfinished") else ""
    return f"{h['offered_per_s']}/s → {done}{left}"


def _steal(result: dict[str, Any]) -> str:
    """The run's steal share, with what it means for the figures when it is large."""
    pct = float(result.get("cpu_steal_pct", 0.0))
    if pct >= _STEAL_WARN_PCT:
        return f"{pct} % of the machine's CPU time: other guests slowed this run; compare with care"
    return f"{pct} %"


def _top(per_order: dict[str, float] | None, n: int = 8) -> str:
    """The `n` largest components of a `cpu_ms_per_order`, and its platform and total sums."""
    if not per_order:
        return "n/a"
    parts = {k: v for k, v in per_order.items() if k not in ("platform", "total")}
    top = ", ".join(f"{k} {v:g}" for k, v in list(parts.items())[:n])
    return f"{top}; platform {per_order['platform']:g}, total {per_order['total']:g}"


def _hops(hops: dict[str, dict[str, float]]) -> str:
    """`reserved 113/218, paid 97/173, …`: each hop named by the stage it ends in."""
    ends = ((h.rpartition("_to_")[2].replace("_", " "), v) for h, v in hops.items())
    return ", ".join(f"{end} {v['p50']}/{v['p99']}" for end, v in ends) or "n/a"


def _waits(waits: dict[str, dict[str, float]]) -> str:
    """`order.created 36.9/116.5, …`: each flow topic's publish wait, p50/p99 ms."""
    parts = (f"{t} {shown(v.get('p50'))}/{shown(v.get('p99'))}" for t, v in waits.items())
    return ", ".join(parts) or "not measured"


def _reasons(reasons: dict[str, dict[str, int]]) -> str:
    """`503: 131 × Request dropped due to backpressure …; …`: what each refusal said."""
    return (
        "; ".join(
            f"{status}: " + ", ".join(f"{n} × {why}" for why, n in whys.items())
            for status, whys in reasons.items()
        )
        or "none"
    )


def _trio(result: dict[str, Any], kind: str) -> str:
    """`p50 / p95 / p99` of `kind`, "n/a" for each with nothing measured (None)."""
    return " / ".join(shown(result[f"p{p}_{kind}_ms"]) for p in (50, 95, 99))


def _git() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")
