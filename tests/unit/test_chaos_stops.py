"""`make chaos` when a part of the stack does not come back after a fault: the run stops with
the reason and what the load did, exit 1, no traceback, and no load left running
(cli/chaos.py)."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from cli import chaos, chaos_ledger
from core.settings import Settings


class _Load:
    instances: list[_Load] = []

    def __init__(self, *args: Any) -> None:
        self.accepted: list[str] = ["o-1"]
        self.principals = ["chaos-test-0"]
        self.gave_up = 0
        self.refused: dict[int, int] = {}
        self.codes = {202: 1}
        self.started = self.stopped = False
        _Load.instances.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def summary(self) -> str:
        return "accepted=1 gave_up=0"


class _Chaos:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.http = None

    def ready(self) -> bool:
        return True

    def not_ready(self) -> str:
        return "relay=down"

    def faults(self, customer_shard: int) -> list[tuple[str, Any]]:
        def never_back() -> str:
            raise chaos.NotBack("shipping restart not back after 60s: == the stack's report")

        return [("shipping actor", never_back)]


async def _offsets(*args: Any) -> dict[str, int]:
    return {}


def test_a_part_that_does_not_come_back_stops_the_run_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(chaos, "Chaos", _Chaos)
    monkeypatch.setattr(chaos, "SteadyLoad", _Load)
    monkeypatch.setattr(chaos, "_set_stock", lambda *args: {})
    monkeypatch.setattr(chaos_ledger, "on_hand", lambda *args: {})
    monkeypatch.setattr(chaos, "end_offsets", _offsets)
    monkeypatch.setattr(chaos.console, "width", 200)
    with pytest.raises(typer.Exit) as stopped:
        chaos.main(rate=1.0, settle=0.0, stock=1, grace=0.0)
    assert stopped.value.exit_code == 1
    out = capsys.readouterr().out
    assert "chaos run stopped: shipping restart not back after 60s: == the stack's report" in out
    assert "load stopped: accepted=1 gave_up=0" in out
    load = _Load.instances[-1]
    assert load.started and load.stopped


def test_wait_names_what_did_not_come_back_and_why() -> None:
    with pytest.raises(chaos.NotBack, match=r"relay not back after 0s: relay=down"):
        chaos._wait("relay", lambda: False, 0.01, lambda: "relay=down")
