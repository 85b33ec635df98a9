"""The short chaos run of `make test`: every fault once under a light steady load."""

from __future__ import annotations

import pytest

from cli.chaos import run

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)  # each fault may take minutes to recover from on a slow box
def test_invariants_hold_through_every_fault() -> None:
    verdict = run(rate=10, settle_s=3, stock=150, grace_s=120)
    assert verdict.accepted > 100
    assert verdict.terminal == verdict.accepted
    assert verdict.clean, verdict.details
