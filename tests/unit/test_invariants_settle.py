"""The audit's settle waits until every after-effect of a final status is done in one pass, the
outbox looked at last: a check passed once and dropped let a capture that came after it leave its
event in the outbox, and the audit counted it (a multinode CI run of 2026-12-07)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import audit, audit_effects
from cli import invariants


class _World:
    """A capture done at the second look; its event in the outbox until the relay's next turn."""

    def __init__(self) -> None:
        self.turn = 1

    def outbox(self, conn: Any) -> int:
        return 1 if self.turn == 2 else 0

    def uncaptured(self, conn: Any, ids: list[str]) -> list[str]:
        return ["o-1"] if self.turn == 1 else []


def test_settle_ends_with_the_outbox_empty_after_the_last_effect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = _World()
    monkeypatch.setattr(audit, "held_when_finished", lambda conn, ids, finished: [])
    monkeypatch.setattr(audit, "outbox_rows", world.outbox)
    monkeypatch.setattr(audit_effects, "uncaptured", world.uncaptured)
    monkeypatch.setattr(audit_effects, "unnotified", lambda conn, ids: [])
    monkeypatch.setattr(invariants, "_charged_unpaid", lambda conn, ids: [])

    def next_turn(_: float) -> None:
        world.turn += 1

    # the settle's pause between looks (passed in: a patched time.sleep would be every thread's)
    invariants._settle(None, ["o-1"], settle_s=30, pause=next_turn)  # type: ignore[arg-type]
    assert world.outbox(None) == 0, f"settled at turn {world.turn} with the capture's event left"
