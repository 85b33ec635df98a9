"""A Postgres URL checked when the settings are read: one libpq cannot parse failed later, in
every command and actor, with libpq's message, which quotes the offending part of the URL: the
password itself when it holds an unencoded `%`, `/` or `@`."""

from __future__ import annotations

from typing import Annotated

from psycopg import conninfo
from pydantic import AfterValidator


def _libpq_readable(url: str) -> str:
    try:
        conninfo.conninfo_to_dict(url)
    except Exception:  # libpq's text quotes the URL: never shown
        raise ValueError(
            "not a connection string libpq can read (the value is not shown: it may hold a "
            "password); use postgresql://user:password@host:port/db with the password "
            "percent-encoded (% → %25, / → %2F, @ → %40, : → %3A)"
        ) from None
    return url


PostgresUrl = Annotated[str, AfterValidator(_libpq_readable)]
