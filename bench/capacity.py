"""The accept-capacity phase of `make bench` (step 8): wrk against each gateway, each try
followed by the drain of the orders it accepted, and the 202s it counted compared with the
orders Postgres stored for its customers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench import ceiling, wrkrun
from bench.baseline import UvicornBaseline
from bench.procs import CpuSampler
from bench.ui import info
from bench.workload import customers
from core.settings import Settings

if TYPE_CHECKING:
    from bench.runner import Options


def targets(opts: Options, uvi: UvicornBaseline | None) -> dict[str, str]:
    """The gateways a phase measures: Serve, and the uvicorn baseline when it runs."""
    out = {"serve": opts.load.base_url}
    if uvi is not None:
        out["uvicorn"] = uvi.url
    return out


def not_stored(answered_202: int | None, stored: int) -> int | None:
    """Orders answered 202 beyond those Postgres stored for the try's customers (None: no
    count of wrk's). A count, not ids: an order stored after wrk gave up on its answer (its
    socket timeout) can mask one answered 202 and never stored."""
    return None if answered_202 is None else max(0, answered_202 - stored)


async def measure(
    opts: Options, settings: Settings, tag: str, uvi: UvicornBaseline | None, cpu: CpuSampler
) -> dict[str, Any]:
    """Accept capacity of Serve, then of plain uvicorn (same app, same mix), each followed by
    the drain of the orders it accepted (which is the pipeline's rate on a burst). Each is
    measured with `capacity_connections` and twice as many (32 fill half of a replica's 64
    request slots), and the higher is its capacity (every try's figures and drain are kept by
    number of connections); the pipeline runs meanwhile."""
    if opts.capacity_s <= 0 or not wrkrun.available():
        return {}
    out: dict[str, Any] = {}
    for name, url in targets(opts, uvi).items():
        tries: dict[int, dict[str, Any]] = {}
        for conns in (opts.capacity_connections, 2 * opts.capacity_connections):
            tries[conns] = await _try(opts, settings, f"{tag}-cap", name, url, conns, cpu)
        best = max(tries.values(), key=lambda r: float(r["ok_rps"]))
        out[name] = best | {
            "ok_rps_by_connections": {c: r["ok_rps"] for c, r in tries.items()},
            # every try's drain (`drain` is the best one's): `bench.gate` checks them all
            "drain_by_connections": {c: r["drain"] for c, r in tries.items()},
        }
    return out


async def _try(
    opts: Options,
    settings: Settings,
    prefix: str,
    name: str,
    url: str,
    conns: int,
    cpu: CpuSampler,
) -> dict[str, Any]:
    """One wrk run on `name` with `conns` connections and the drain of its orders, whose
    `not_stored` compares the 202s wrk counted with the orders stored."""
    # customers of its own (`<prefix>-<name>-<conns>-*`): the drain counts every order they placed
    people = customers(settings, f"{prefix}-{name}-{conns}", opts.customers)
    info(f"accept capacity: wrk -c{conns} POST {url}/api/orders")
    res = await ceiling.accept_capacity(
        url,
        people,
        opts.load.mix,
        connections=conns,
        duration_s=opts.capacity_s,
        seed=opts.load.seed + 7,
        cpu=cpu,
    )
    info(f"  {name}: {res['ok_rps']} accepted/s, p99 {res['p99_ms']} ms; draining")
    res["drain"] = drained = await ceiling.drain(
        settings.database_url, [p.customer_id for p in people], opts.drain_timeout_s
    )
    # wrk's answers below 400 (`requests` - `status_errors`): POST /api/orders has no answer
    # below 400 but its 202 (no Idempotency-Key here: no replays). Counted from wrk's summary,
    # not with a `response` callback, which would cost wrk CPU per answer on the same cores
    # and lower the capacity this phase measures.
    answered = int(res["requests"]) - int(res["status_errors"]) if "requests" in res else None
    drained["answered_202"] = answered
    drained["not_stored"] = not_stored(answered, drained["orders"])
    info(
        f"  {name}: {drained['orders']} orders drained in {drained['waited_s']}s "
        f"({drained['burst_completed_per_s']} completed/s, "
        f"{drained['unfinished']} unfinished, {drained['not_stored']} answered 202 and not stored)"
    )
    return res
