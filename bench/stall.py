"""A run whose pipeline stops finishing orders gets the stack at that moment (the report of `make
stacks`), once per run: a stall in a benchmark is then explained by its own output."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bench.ui import info
from cli.diagnose import report_now

STALL_S = 5.0  # no order finished for this long while some are in the pipeline
_REPORT_WAIT_S = 60.0


class StallWatch:
    """Fed once per poll of the tracker; captures the report in a daemon thread (it joins the Ray
    cluster as a driver, which may hang on a broken stack: the run must not wait for it)."""

    def __init__(self, after_s: float = STALL_S, capture: Callable[[], str] = report_now) -> None:
        self._after = after_s
        self._capture = capture
        self._progress_at: float | None = None
        self._thread: threading.Thread | None = None
        self._report: str | None = None

    def step(self, now: float, finished: int, outstanding: int) -> None:
        """One poll at `now`: `finished` orders reached a final status since the last one,
        `outstanding` are still in the pipeline."""
        if finished or not outstanding or self._progress_at is None:
            self._progress_at = now
            return
        if self._thread is None and now - self._progress_at >= self._after:
            info(
                f"[yellow]no order finished for {now - self._progress_at:.0f}s with "
                f"{outstanding} in the pipeline: capturing the stack (make stacks)"
            )
            self._thread = threading.Thread(target=self._run, name="stall-report", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._report = self._capture()
        except Exception as exc:
            self._report = f"(no report: {type(exc).__name__}: {exc})"

    def report(self) -> str | None:
        """The captured report (None: no stall), waiting for it up to a minute."""
        if self._thread is None:
            return None
        self._thread.join(_REPORT_WAIT_S)
        return self._report or "(the report did not come within 60 s)"
