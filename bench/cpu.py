"""CPU milliseconds per completed order, per component (pure arithmetic over the samples of
`bench.procs.CpuSampler`): the CPU each component used inside a window, divided by the orders
that reached a terminal status inside the same window. In a steady state that is what one order
costs each component; the window leaves the run's ramp-up and drain out."""

from __future__ import annotations

from collections.abc import Sequence

CpuSeries = Sequence[tuple[float, dict[str, float]]]  # (sample time, cores since the previous)

# Components that are not the platform: the measuring side and whatever else the box runs.
NOT_PLATFORM = frozenset({"loadgen", "bench", "other", "uvicorn-baseline"})


def seconds_in(series: CpuSeries, started: float, start: float, end: float) -> dict[str, float]:
    """CPU seconds per component within [start, end]. Sample i covers (t[i-1], t[i]] at its
    average cores (the first since `started`, when the sampler started); a sample that straddles
    an edge counts for the part inside."""
    out: dict[str, float] = {}
    prev = started
    for at, cores in series:
        overlap = min(at, end) - max(prev, start)
        if overlap > 0:
            for name, value in cores.items():
                out[name] = out.get(name, 0.0) + value * overlap
        prev = at
    return out


def ms_per_order(cpu_s: dict[str, float], orders: int) -> dict[str, float]:
    """CPU ms per order for each component, largest first, then `platform` (every component
    but the load generator, this process, the uvicorn baseline and unrelated processes) and
    `total`. Empty when no order completed."""
    if orders <= 0:
        return {}
    per = {k: v * 1000 / orders for k, v in cpu_s.items()}
    out = {k: round(v, 3) for k, v in sorted(per.items(), key=lambda kv: -kv[1])}
    out["platform"] = round(sum(v for k, v in per.items() if k not in NOT_PLATFORM), 3)
    out["total"] = round(sum(per.values()), 3)
    return out


def window_ms_per_order(
    series: CpuSeries, started: float, start: float, end: float, orders: int
) -> dict[str, float]:
    """`ms_per_order` of the CPU used within [start, end] by `orders` completed orders."""
    return ms_per_order(seconds_in(series, started, start, end), orders)


def steal_pct(
    series: Sequence[tuple[float, float]], started: float, start: float, end: float, cpus: int
) -> float:
    """The share (%) of the machine's CPU time within [start, end] that the hypervisor gave to
    other guests while this one wanted to run (`steal`): on a shared VM, the figures of a run
    with much of it are lower for a reason outside the platform."""
    stolen = seconds_in([(at, {"steal": c}) for at, c in series], started, start, end)
    span = (end - start) * max(cpus, 1)
    return round(100 * stolen.get("steal", 0.0) / span, 1) if span > 0 else 0.0
