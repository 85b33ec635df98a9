"""Starts and stops the plain-uvicorn baseline server for the comparison phase."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import aiohttp

from bench.procs import psutil_module


class UvicornBaseline:
    """`bench.uvicorn_app:app` on 127.0.0.1:`port`, one worker, uvloop + httptools.

    It runs at the CPU priority (niceness) of the Serve replica: Ray starts its workers at
    niceness 15 (`RAY_worker_niceness`), and a baseline at 0 would win every contended core.
    """

    def __init__(self, port: int, log_path: Path, niceness: int = 0) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.niceness = niceness
        self._log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, timeout_s: float = 60.0) -> None:
        log = open(self._log_path, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "bench.uvicorn_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            stdout=log,
            stderr=log,
            env=dict(os.environ),
        )
        log.close()
        if self.niceness:
            psutil_module().Process(self._proc.pid).nice(self.niceness)
        deadline = asyncio.get_running_loop().time() + timeout_s
        async with aiohttp.ClientSession() as session:
            while True:
                if self._proc.returncode is not None:
                    raise RuntimeError(f"uvicorn baseline exited; see {self._log_path}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/health") as resp:
                        if resp.status == 200:
                            return
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"uvicorn baseline not up in {timeout_s}s")
                await asyncio.sleep(0.3)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
