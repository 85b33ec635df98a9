"""wrk (C, closed loop) for the capacity phases: it costs far less CPU per request than any
Python client, which matters when the generator shares 2 cores with the whole stack."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

from bench.workload import OrderFactory

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"status_errors":%d,' ..
    '"socket_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    url: str
    connections: int
    requests: int
    duration_s: float
    status_errors: int  # answers >= 400 (e.g. 429, 503)
    socket_errors: int
    rps: float
    ok_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrk_cpu_cores: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def orders_script(factory: OrderFactory, count: int) -> str:
    """A Lua script cycling through `count` pre-built order requests of the mix."""
    tokens, bodies = [], []
    for _ in range(count):
        who, body = factory.next()
        tokens.append(f'"{who.token}"')
        bodies.append("[==[" + body.decode() + "]==]")
    return (
        "local tokens = {" + ",".join(tokens) + "}\n"
        "local bodies = {" + ",".join(bodies) + "}\n"
        "local reqs, idx = {}, 0\n"
        "init = function(args)\n"
        "  for i = 1, #bodies do\n"
        '    reqs[i] = wrk.format("POST", "/api/orders", {["Authorization"] = "Bearer " ..'
        ' tokens[i], ["Content-Type"] = "application/json"}, bodies[i])\n'
        "  end\n"
        "  idx = math.random(#reqs)\n"
        "end\n"
        "request = function()\n  idx = idx % #reqs + 1\n  return reqs[idx]\nend\n" + _DONE
    )


def available() -> bool:
    return shutil.which("wrk") is not None


async def run(
    url: str, *, connections: int, duration_s: int, threads: int = 2, script: str = ""
) -> WrkResult:
    """Run wrk against `url`; `script` is Lua that builds the requests (GET `url` if empty)."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        path = os.path.join(tmp, "load.lua")
        with open(path, "w") as fh:
            fh.write(script + ("" if "done =" in script else _DONE))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = await asyncio.create_subprocess_exec(
            "wrk",
            f"-t{max(1, min(threads, connections))}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "-s",
            path,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{text[-2000:]}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    secs = max(data["duration_us"] / 1e6, 1e-6)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return WrkResult(
        url=url,
        connections=connections,
        requests=data["requests"],
        duration_s=round(secs, 2),
        status_errors=data["status_errors"],
        socket_errors=data["socket_errors"],
        rps=round(data["requests"] / secs, 1),
        ok_rps=round((data["requests"] - data["status_errors"]) / secs, 1),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        wrk_cpu_cores=round(cpu / secs, 3),
    )
