"""What a chaos run's load did, set against what the platform stored (`make chaos`).

The invariants (cli/invariants.py) judge the orders whose ids the load received. These checks
look past them: every order the run's principals placed (one the client never learned of is a
second order for one request, or one it gave up on), every load task that ended without an
answer it could read, and the stock's conservation, counted from the orders' own items rather
than from the platform's bookkeeping.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from adapters import audit, audit_effects
from cli.invariants import Verdict
from cli.load import SteadyLoad
from core.auth import make_token
from core.settings import Settings


def set_stock(
    http: httpx.Client, s: Settings, skus: Sequence[str], scarce: str, stock: int, ample: int
) -> dict[str, int]:
    """Give `scarce` `stock` units available and every other SKU `ample`; `sku → units`."""
    admin = make_token(
        "chaos-admin", ["admin"], secret=s.jwt_secret, audience=s.jwt_audience, issuer=s.jwt_issuer
    )
    h = {"Authorization": f"Bearer {admin}"}
    start: dict[str, int] = {}
    for sku in skus:
        cur = http.get(f"/api/inventory/{sku}", headers=h).json()
        units = stock if sku == scarce else ample
        resp = http.put(
            f"/api/inventory/{sku}", headers=h, json={"onHand": cur["reserved"] + units}
        )
        resp.raise_for_status()
        start[sku] = units
    return start


def on_hand(dsn: str, skus: Sequence[str]) -> dict[str, int]:
    with audit.connect(dsn) as conn:
        return audit_effects.on_hand(conn, skus)


def untracked(dsn: str, load: SteadyLoad, since_epoch_s: float, ids: Sequence[str]) -> list[str]:
    """Orders the run's principals placed that the load holds no id of."""
    with audit.connect(dsn) as conn:
        stored = audit_effects.orders_of(conn, load.principals, since_epoch_s)
    known = set(ids)
    return sorted(set(stored) - known)


def account(v: Verdict, load: SteadyLoad, unknown: Sequence[str]) -> None:
    """What the load could not account for: orders given up on or whose answer it could not
    read are lost; stored orders it never learned of beyond those are duplicates; a run that
    accepted nothing tested nothing."""
    unread = sum(load.unreadable.values())
    v.lost += load.gave_up + unread
    if unread:
        v.details.append(f"load tasks without a readable outcome: {dict(load.unreadable)}")
    extra = len(unknown) - load.gave_up - unread
    if extra > 0:
        v.duplicates_effects += extra
        v.details.append(
            f"{len(unknown)} stored order(s) the load never got an id for, {extra} more than "
            f"it gave up on or could not read: {list(unknown)[:5]}"
        )
    if not load.accepted:
        v.lost += 1
        v.details.append("the load had no order accepted: nothing was tested")


def conservation(v: Verdict, dsn: str, before: dict[str, int], ids: Sequence[str]) -> None:
    """Each SKU's stock fell by exactly the units its delivered orders asked for."""
    after = on_hand(dsn, list(before))
    with audit.connect(dsn) as conn:
        delivered = audit_effects.delivered_units(conn, ids)
    for sku, was in before.items():
        gone, due = was - after.get(sku, was), delivered.get(sku, 0)
        if gone != due:
            v.oversold += abs(gone - due)
            v.details.append(f"{sku}: on hand fell by {gone}, its delivered orders asked for {due}")
