"""Percentiles and per-second series of a tracked run."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from bench.loadgen import Record
from bench.tracker import Outcome


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of `values`; None when empty (no value measured, which is not a
    latency of 0: a run whose every request was refused has no accept latency at all)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def pct_ms(values: list[float], p: float) -> float | None:
    """`pct` rounded to 0.1 (ms); None when `values` is empty."""
    value = pct(values, p)
    return None if value is None else round(value, 1)


def p50_p99(values: list[float]) -> dict[str, float]:
    """`{"p50": …, "p99": …}` of `values` (ms, to 0.1); {} when empty: a figure that was not
    measured is left out, never 0."""
    p50, p99 = pct_ms(values, 50), pct_ms(values, 99)
    return {} if p50 is None or p99 is None else {"p50": p50, "p99": p99}


def shown(value: object) -> str:
    """A figure as the tables and progress lines print it: "n/a" for None (nothing measured)."""
    return "n/a" if value is None else str(value)


def latency_summary(values_ms: list[float]) -> dict[str, float | None]:
    """p50, p95, p99, max and mean of `values_ms`, each None when it is empty."""
    return {
        "p50": pct_ms(values_ms, 50),
        "p95": pct_ms(values_ms, 95),
        "p99": pct_ms(values_ms, 99),
        "max": round(max(values_ms), 1) if values_ms else None,
        "mean": round(sum(values_ms) / len(values_ms), 1) if values_ms else None,
    }


def errors_by_reason(records: Iterable[Record]) -> dict[str, dict[str, int]]:
    """Answers other than 202 by status ("0": client error, "-1": not sent), then by why
    (`bench.http1.refusal`): a 503 of the platform's own admission says so in a JSON error, one
    of Serve's request queue says "backpressure", one of the ingress has HAProxy's page."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, _, _, status, detail in records:
        if status != 202:
            counts[str(status)][detail or "(no detail)"] += 1
    return {k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in sorted(counts.items())}


def errors_by_status(reasons: dict[str, dict[str, int]]) -> dict[str, int]:
    """The answers of `errors_by_reason`, counted by status code alone."""
    return {status: sum(whys.values()) for status, whys in reasons.items()}


def series(
    records: list[Record],
    outcomes: Iterable[Outcome],
    t0: float,
    cpu: list[tuple[float, dict[str, float]]],
) -> list[dict[str, Any]]:
    """One row per second since `t0`: offered, accepted, completed and shipped counts; accept
    latency percentiles of the requests due in that second; accept→SHIPPED percentiles of the
    orders accepted in that second (None in a second without any); CPU cores per component."""
    rows: dict[int, dict[str, Any]] = defaultdict(
        lambda: {"offered": 0, "accepted": 0, "errors": 0, "completed": 0, "shipped": 0}
    )
    accept_ms: dict[int, list[float]] = defaultdict(list)
    e2e_ms: dict[int, list[float]] = defaultdict(list)
    for due, _, done, status, _ in records:
        sec = int(due - t0)
        rows[sec]["offered"] += 1
        if status == 202:
            rows[int(done - t0)]["accepted"] += 1
            accept_ms[sec].append((done - due) * 1000)
        else:
            rows[sec]["errors"] += 1
    for out in outcomes:
        rows[int(out.terminal_at - t0)]["completed"] += 1
        if out.shipped_at is not None:
            rows[int(out.shipped_at - t0)]["shipped"] += 1
            e2e_ms[int(out.created_at - t0)].append((out.shipped_at - out.created_at) * 1000)
    for at, cores in cpu:
        rows[int(at - t0)]["cpu"] = {k: round(v, 3) for k, v in cores.items()}
    out_rows = []
    for sec in sorted(s for s in rows if s >= 0):
        row = {"t": sec, **rows[sec]}
        row["accept_p50_ms"] = pct_ms(accept_ms[sec], 50)
        row["accept_p99_ms"] = pct_ms(accept_ms[sec], 99)
        row["e2e_p50_ms"] = pct_ms(e2e_ms[sec], 50)
        row["e2e_p99_ms"] = pct_ms(e2e_ms[sec], 99)
        out_rows.append(row)
    return out_rows


def group_cpu(cores: dict[str, float]) -> dict[str, float]:
    """Per-component cores with the actors and the gateway's processes summed (for progress
    lines, the table and the plot; the JSON keeps the detail)."""
    grouped: dict[str, float] = defaultdict(float)
    for name, value in cores.items():
        grouped[{"actor": "actors", "gateway": "gateway"}.get(name.split(":")[0], name)] += value
    return {k: round(v, 2) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])}


HOPS = (
    "accept_to_reserved",
    "reserved_to_paid",
    "paid_to_shipment_created",
    "shipment_created_to_shipped",
)


def hop_latencies(outcomes: Iterable[Outcome]) -> dict[str, dict[str, float]]:
    """accept→SHIPPED hop by hop (`HOPS`, p50 and p99 ms) over the orders that reached SHIPPED
    with every stage recorded: where an order's time goes, one stage's wait and work at a time.
    Empty ({}) when no order did: every hop is measured over the same orders."""
    spans: list[list[float]] = [[] for _ in HOPS]
    for o in outcomes:
        times = (o.created_at, *o.stages)
        if len(times) != len(HOPS) + 1 or any(t is None for t in times):
            continue
        for i, span in enumerate(spans):
            later, earlier = times[i + 1], times[i]
            assert later is not None and earlier is not None
            span.append((later - earlier) * 1000)
    if not spans[0]:
        return {}
    return {hop: p50_p99(span) for hop, span in zip(HOPS, spans, strict=True)}
