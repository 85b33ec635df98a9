"""Whether a `make bench` result shows the platform losing or overselling orders, or refusing
most of its load: the run is written either way, and then exits 1 on any of these
(docs/performance.md)."""

from __future__ import annotations

from typing import Any

# A tracked run (the main run, the warm-up, a load point) whose gateway answered 202 to less
# than this share of the requests offered measured nothing worth a figure: its latencies are
# those of the few it let in (none at all: "n/a"), and nothing it refused can be lost. Half is
# far below what a healthy run is refused (the load points are fractions of the saturation,
# the main run is RATE), so a run that a burst of 429/503 merely dented still passes.
MIN_ACCEPTED_SHARE = 0.5


def problems(result: dict[str, Any]) -> list[str]:
    """What is wrong with `result` (empty: nothing): orders lost by the main run, the warm-up
    or a load point (not terminal after `--grace`), or refused by one of them (`_refused`),
    orders of the step phase, of a hold or of the accept-capacity phase left unfinished, units
    oversold, stock rows that break an invariant, and what the audit at the end of the whole
    run found (`end_audit`)."""
    out = _tracked(result)
    if result.get("oversold"):
        out.append(f"{result['oversold']} units oversold")
    if result.get("oversold_all_phases"):
        out.append(f"whole run: {result['oversold_all_phases']} units oversold (every phase)")
    if (result.get("stock_all_phases") or {}).get("error"):
        why = result["stock_all_phases"]["error"]
        out.append(f"whole run: the oversell check could not run ({why})")
    violations = (result.get("stock") or {}).get("invariantViolations")
    if violations:
        out.append(f"{violations} stock rows break an invariant")
    found = result.get("saturation") or {}
    if found.get("unfinished"):
        out.append(f"step phase: {found['unfinished']} orders unfinished")
    if found.get("not_stored"):
        out.append(f"step phase: {found['not_stored']} orders answered 202 and not stored")
    for i, held in enumerate(found.get("confirmations") or [], 1):
        if held.get("unfinished"):
            out.append(f"hold {i} ({held['offered_per_s']}/s): {held['unfinished']} unfinished")
        if held.get("not_stored"):
            out.append(
                f"hold {i} ({held['offered_per_s']}/s): {held['not_stored']} answered 202 "
                "and not stored"
            )
    return out + _capacity(result.get("capacity") or {}) + _end_audit(result.get("end_audit"))


def _refused(name: str, run: dict[str, Any]) -> str | None:
    """What is wrong with a tracked run that accepted nothing or less than
    `MIN_ACCEPTED_SHARE` of what it offered (None: nothing, or its counts are not there)."""
    offered, accepted = run.get("offered"), run.get("accepted")
    if offered is None or accepted is None:
        return None
    if not accepted:
        return f"{name}: no order accepted ({offered} offered)"
    if accepted < MIN_ACCEPTED_SHARE * offered:
        return (
            f"{name}: {accepted} of {offered} orders accepted "
            f"(< {MIN_ACCEPTED_SHARE:.0%} of offered)"
        )
    return None


def _tracked(result: dict[str, Any]) -> list[str]:
    """Orders lost or refused by the main run, the warm-up and each load point."""
    runs = [("main run", result), ("warm-up run", result.get("warmup_run") or {})]
    runs += [
        (f"load point {p['load_fraction']:.0%}", p) for p in result.get("latency_by_load") or []
    ]
    out: list[str] = []
    for name, run in runs:
        if run.get("lost"):
            out.append(f"{name}: {run['lost']} orders lost")
        why = _refused(name, run)
        if why is not None:
            out.append(why)
    return out


def _capacity(capacity: dict[str, Any]) -> list[str]:
    """Orders of each accept-capacity try (every number of connections) left unfinished after
    its drain, or answered 202 and not stored (`not_stored`). A result written before the
    tries were kept apart has only the best one's."""
    out: list[str] = []
    for name, target in capacity.items():
        by_conns = target.get("drain_by_connections") or {}
        drains = {f"{c} connections": d for c, d in by_conns.items()}
        for label, drained in (drains or {"its best try": target.get("drain") or {}}).items():
            if drained.get("unfinished"):
                out.append(
                    f"accept capacity {name} ({label}): "
                    f"{drained['unfinished']} of {drained.get('orders')} orders unfinished"
                )
            if drained.get("not_stored"):
                out.append(
                    f"accept capacity {name} ({label}): {drained['not_stored']} orders answered "
                    f"202 and not stored ({drained.get('answered_202')} answered 202, "
                    f"{drained.get('orders')} stored)"
                )
    return out


def _end_audit(audit: dict[str, Any] | None) -> list[str]:
    """The stock audit at the end of the whole run (`bench.end_audit`)."""
    if not audit:
        return []
    out: list[str] = []
    if audit.get("broken_stock"):
        out.append(
            f"end of run: {audit['broken_stock']} SKUs' stock bookkeeping broken "
            "(reserved is not the sum of the open holds, or more than on hand)"
        )
    if audit.get("error"):
        out.append(f"end of run: the audit could not run ({audit['error']})")
    if audit.get("held_when_finished"):
        out.append(f"end of run: {audit['held_when_finished']} holds left on finished orders")
    if audit.get("holds_out_of_step"):
        out.append(
            f"end of run: {audit['holds_out_of_step']} reservations disagree with their open hold"
        )
    if audit.get("unfinished"):
        out.append(f"end of run: {audit['unfinished']} orders of the run not terminal")
    return out
