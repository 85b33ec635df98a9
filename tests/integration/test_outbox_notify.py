"""The outbox trigger wakes the relay only while the relay waits for it (migration 0009): a
notifying commit serializes every other notifying commit of the database."""

from __future__ import annotations

import psycopg

from tests.integration.scratch import alembic, connect, scratch_schema

_INSERT = "INSERT INTO outbox (topic, key, payload) VALUES ('order.created', 'k', '\\x7b7d')"


def _commit_a_row(url: str, waiting: bool | None) -> None:
    """One transaction that writes an outbox row, the relay's flag set before (None: no row,
    as after a crash of Postgres empties the UNLOGGED table)."""
    with connect(url) as conn:
        conn.execute("DELETE FROM outbox_relay")
        if waiting is not None:
            conn.execute("INSERT INTO outbox_relay (id, waiting) VALUES (1, %s)", (waiting,))
        conn.execute(_INSERT)


def test_the_trigger_notifies_only_while_the_relay_waits() -> None:
    with scratch_schema("notify") as url:
        alembic(url, "upgrade", "head")
        schema = connect(url).execute("SELECT current_schema() AS s").fetchone()
        assert schema is not None
        with psycopg.connect(url, autocommit=True) as listener:
            listener.execute("LISTEN outbox")
            for waiting in (False, True, None, False):
                _commit_a_row(url, waiting)
            end = f"end-{schema['s']}"
            listener.execute("SELECT pg_notify('outbox', %s)", (end,))
            mine = []
            for note in listener.notifies(timeout=30):
                if note.payload == end:
                    break
                if note.payload == schema["s"]:
                    mine.append(note.payload)
        # commits reach listeners in commit order: everything before the end marker is in
        assert len(mine) == 2  # waiting, and the flag missing (read as waiting); never while busy
