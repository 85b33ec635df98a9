"""Runs one load phase in spawned worker processes and gathers their records."""

from __future__ import annotations

import multiprocessing as mp
import queue
from typing import Any

from bench.loadgen import Record, WorkerSpec, run_worker


class Phase:
    """`start()` the workers, `drain()` their records while they run, `join()` at the end."""

    def __init__(self, specs: list[WorkerSpec]) -> None:
        self._ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited loop or sockets
        self._queue: Any = self._ctx.Queue()
        self._stop: Any = self._ctx.Event()
        self._procs = [
            self._ctx.Process(target=run_worker, args=(s, self._queue, self._stop), daemon=True)
            for s in specs
        ]
        self._finished: set[int] = set()
        self.cpu_s = 0.0  # CPU seconds the workers used for the load

    def start(self) -> list[int]:
        """Start every worker; return their pids (so their CPU counts as the generator's)."""
        for proc in self._procs:
            proc.start()
        return [p.pid for p in self._procs if p.pid is not None]

    def stop(self) -> None:
        """Ask open-loop workers to send nothing more (they still wait for what is in flight)."""
        self._stop.set()

    @property
    def done(self) -> bool:
        return len(self._finished) == len(self._procs)

    def drain(self) -> list[Record]:
        """Records received so far (non-blocking)."""
        records: list[Record] = []
        while True:
            try:
                kind, payload = self._queue.get_nowait()
            except queue.Empty:
                return records
            if kind == "records":
                records.extend(payload)
            else:
                index, cpu_s = payload
                self._finished.add(int(index))
                self.cpu_s += float(cpu_s)

    def join(self, timeout_s: float = 10.0) -> None:
        for proc in self._procs:
            proc.join(timeout_s)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
