"""Settings a pool's sessions start with (`adapters.pg.session_options`): the accept pool's
customer-id cap must not drop what the DSN's own `options` set."""

from __future__ import annotations

from adapters.pg import session_options


def test_settings_follow_the_dsns_own_options() -> None:
    dsn = "postgresql://u@h/db?options=-c%20statement_timeout%3D5s"
    out = session_options(dsn, {"orders.b": "2", "orders.a": "1"})
    assert out == "-c statement_timeout=5s -c orders.a=1 -c orders.b=2"


def test_a_dsn_without_options() -> None:
    assert session_options("host=h dbname=db", {"orders.a": "10"}) == "-c orders.a=10"
