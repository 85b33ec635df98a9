"""Whether a `make bench` result shows the platform losing or overselling orders: the run is
written either way, and then exits 1 on any of these (docs/performance.md)."""

from __future__ import annotations

from typing import Any


def problems(result: dict[str, Any]) -> list[str]:
    """What is wrong with `result` (empty: nothing): orders lost by the main run, the warm-up
    or a load point (not terminal after `--grace`), orders of the step phase or of a hold left
    unfinished, units oversold, stock rows that break an invariant."""
    out: list[str] = []
    if result.get("lost"):
        out.append(f"main run: {result['lost']} orders lost")
    if result.get("oversold"):
        out.append(f"{result['oversold']} units oversold")
    violations = (result.get("stock") or {}).get("invariantViolations")
    if violations:
        out.append(f"{violations} stock rows break an invariant")
    warm = result.get("warmup_run") or {}
    if warm.get("lost"):
        out.append(f"warm-up run: {warm['lost']} orders lost")
    found = result.get("saturation") or {}
    if found.get("unfinished"):
        out.append(f"step phase: {found['unfinished']} orders unfinished")
    for i, held in enumerate(found.get("confirmations") or [], 1):
        if held.get("unfinished"):
            out.append(f"hold {i} ({held['offered_per_s']}/s): {held['unfinished']} unfinished")
    for p in result.get("latency_by_load") or []:
        if p.get("lost"):
            out.append(f"load point {p['load_fraction']:.0%}: {p['lost']} orders lost")
    return out
