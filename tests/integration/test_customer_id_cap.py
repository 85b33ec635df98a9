"""A customer principal owns at most MAX_CUSTOMER_IDS_PER_PRINCIPAL customer ids (migration 0014):
each id has its own CREDIT_LIMIT, so the cap bounds what one principal may have authorized."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from adapters.accept_store import CLAIM_CAP_SETTING
from core.settings import Settings
from tests.integration.conftest import Api


def _order(api: Api, principal: str, customer_id: str, **headers: str) -> httpx.Response:
    body = {"customerId": customer_id, "items": [{"sku": "SKU-13", "qty": 1}]}
    return api.http.post("/api/orders", json=body, headers=headers or api.headers(principal))


def _owned(pg: Any, principal: str) -> set[str]:
    rows = pg.execute(
        "SELECT customer_id FROM customer_owners WHERE principal = %s", (principal,)
    ).fetchall()
    return {r["customer_id"] for r in rows}


def _stored(pg: Any, customer_ids: list[str]) -> int:
    row = pg.execute(
        "SELECT count(*) AS n FROM orders WHERE customer_id = ANY(%s)", (customer_ids,)
    ).fetchone()
    return int(row["n"])


def test_a_principal_owns_at_most_the_cap_of_customer_ids(
    api: Api, pg: Any, settings: Settings
) -> None:
    cap = settings.max_customer_ids_per_principal
    who = f"capped-{uuid.uuid4().hex[:8]}"
    ids = [f"{who}-{i}" for i in range(cap)]
    for cid in ids:
        resp = _order(api, who, cid)
        assert resp.status_code == 202, resp.text
    one_more = f"{who}-{cap}"
    refused = _order(api, who, one_more)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "customer_id_limit", error
    assert str(cap) in error["message"] and one_more in error["message"]
    assert _owned(pg, who) == set(ids), "the refused id was claimed"
    assert _stored(pg, [one_more]) == 0, "the refused order was stored"
    # the ids it owns keep working, and an admin orders for the new id without claiming it
    assert _order(api, who, ids[0]).status_code == 202
    assert _order(api, who, one_more, **api.admin).status_code == 202
    assert (
        pg.execute("SELECT 1 FROM customer_owners WHERE customer_id = %s", (one_more,)).fetchone()
        is None
    )
    # another principal may still claim it
    other = f"other-{uuid.uuid4().hex[:8]}"
    assert _order(api, other, one_more).status_code == 202
    assert _owned(pg, other) == {one_more}


def test_concurrent_claims_never_pass_the_cap(api: Api, pg: Any, settings: Settings) -> None:
    """3 × cap requests, each for a new id of one principal, at once: concurrent group commits
    must not both take the last place (a count in the accept statement would: it sees the
    table as it was when the statement began)."""
    cap = settings.max_customer_ids_per_principal
    who = f"burst-{uuid.uuid4().hex[:8]}"
    ids = [f"{who}-{i}" for i in range(3 * cap)]
    results: dict[str, httpx.Response] = {}
    start = threading.Barrier(len(ids))

    def post(cid: str) -> None:
        with httpx.Client(base_url=str(api.http.base_url), timeout=30) as c:
            body = {"customerId": cid, "items": [{"sku": "SKU-13", "qty": 1}]}
            start.wait()
            results[cid] = c.post("/api/orders", json=body, headers=api.headers(who))

    threads = [threading.Thread(target=post, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = {cid for cid, r in results.items() if r.status_code == 202}
    others = {
        (r.status_code, r.json()["error"]["code"]) for r in results.values() if r.status_code != 202
    }
    assert others <= {(403, "customer_id_limit"), (503, "unavailable")}, others
    assert (403, "customer_id_limit") in others, "3 × cap new ids and none refused"
    assert _owned(pg, who) == accepted and len(accepted) <= cap
    assert _stored(pg, ids) == len(accepted), "an order was stored without its 202"
    # what the burst left (a 503 claims nothing) is taken one by one, and exactly up to the cap
    for cid in [f"{who}-more-{i}" for i in range(cap + 1)]:
        resp = _order(api, who, cid)
        if resp.status_code == 403:
            break
        assert resp.status_code == 202, resp.text
    assert len(_owned(pg, who)) == cap


async def test_a_busy_principal_is_skipped_not_waited_for(settings: Settings) -> None:
    """The trigger never waits for another claimer of the same principal (which could deadlock
    two batches claiming in another order): while one transaction holds the principal's claim
    open, another's claim is skipped at once; sessions without the setting are not capped."""
    who = f"lock-{uuid.uuid4().hex[:8]}"
    capped = f"-c {CLAIM_CAP_SETTING}=2"
    insert = "INSERT INTO customer_owners (customer_id, principal) VALUES (%s, %s) RETURNING 1"
    async with (
        await psycopg.AsyncConnection.connect(settings.database_url, options=capped) as first,
        await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, options=capped
        ) as second,
    ):
        await first.execute("SET lock_timeout = '2s'")
        assert await (await first.execute(insert, (f"{who}-a", who))).fetchone() is not None
        await second.execute("SET statement_timeout = '2s'")  # a wait would fail, not skip
        assert await (await second.execute(insert, (f"{who}-b", who))).fetchone() is None
        await first.commit()
        assert await (await second.execute(insert, (f"{who}-b", who))).fetchone() is not None
        assert await (await second.execute(insert, (f"{who}-c", who))).fetchone() is None
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True, row_factory=dict_row
    ) as plain:
        assert await (await plain.execute(insert, (f"{who}-c", who))).fetchone() is not None
        cur = await plain.execute(
            "DELETE FROM customer_owners WHERE principal = %s RETURNING customer_id", (who,)
        )
        assert len(await cur.fetchall()) == 3
