"""Rows travel to Postgres as one `jsonb_to_recordset` document (adapters/pg.py): every column
type the adapters use arrives exactly as written, NULLs included."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from adapters.pg import inserting, updating, uuid_array, write_all
from tests.integration.scratch import scratch_schema

_TYPES = ("uuid", "text", "numeric", "timestamptz", "jsonb", "bool", "int", "bytea")
_TRICKY = 'quote " backslash \\ brace { comma , é ✓ \n newline'


async def _round_trip(url: str, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        await conn.execute(
            "CREATE TABLE rows_check (i uuid, t text, n numeric, at timestamptz, d jsonb, "
            "b bool, k int, p bytea)"
        )
        await write_all(conn, [inserting("INSERT INTO rows_check", _TYPES, rows)])
        await write_all(
            conn,
            [
                updating(
                    "UPDATE rows_check r SET k = v.k",
                    ("int", "uuid"),
                    "k, i",
                    "r.i = v.i",
                    [(41, rows[0][0])],
                )
            ],
        )
        cur = await conn.execute(
            "SELECT i, t, n, at, d, b, k, p, jsonb_typeof(d) AS kind FROM rows_check "
            "WHERE i = ANY(%s::uuid[]) ORDER BY k DESC",
            (uuid_array(r[0] for r in rows),),
        )
        return await cur.fetchall()


async def test_each_column_type_round_trips() -> None:
    payload = b'{"data": {"note": "a \\"quoted\\" \\\\ value \xc3\xa9"}}'
    rows = [
        (
            uuid.uuid4(),
            _TRICKY,
            Decimal("12.50"),
            datetime(2026, 12, 3, 13, 14, 15, 123456, tzinfo=UTC),
            {"reason": "out_of_stock", "skus": ["SKU-1"], "n": 2},
            True,
            7,
            payload,
        ),
        (uuid.uuid4(), None, Decimal("0.01"), datetime.now(UTC), None, False, -1, b"{}"),
    ]
    with scratch_schema("rows") as url:
        got = await _round_trip(url, rows)
    assert [tuple(g[c] for c in "itn") for g in got] == [r[:3] for r in rows]
    assert [g["at"] for g in got] == [r[3] for r in rows]
    assert [g["d"] for g in got] == [r[4] for r in rows]
    assert [g["kind"] for g in got] == ["object", None]  # a dict stays an object, None is NULL
    assert [(g["b"], g["k"]) for g in got] == [(True, 41), (False, -1)]
    assert [bytes(g["p"]) for g in got] == [payload, b"{}"]
