"""`python -m cluster.reach`: can this machine reach the head's Postgres, Redis and Kafka with the
settings its Ray processes will run with? `make join` asks before it starts Ray (cluster/join.sh).

Ray's own check (the GCS answers) says nothing about them: an actor placed on a machine that
cannot reach Postgres (a subnet the head's `samenet` rule does not admit, a certificate that
does not name the address joined, a firewall) retried its start for ever, and the only sign was
a warning in that actor's log on that machine. Each service is tried once, bounded in time;
every failure is printed with the likely causes, and the exit status is 1.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

import psycopg

from adapters.audit import ping_redis, where
from adapters.kafka import missing_topics
from core.errors import one_line
from core.settings import Settings, get_settings

TIMEOUT_S = 10.0
HINTS = (
    "the head admits only its own subnets (Postgres `samenet`; README, Adding a machine)",
    "the head's certificates name its NODE_ADDRESS only: join that address, not a host name",
    "a firewall between the machines (docs/security.md, Multi-host mode)",
)


def _postgres(s: Settings) -> None:
    with psycopg.connect(s.database_url, connect_timeout=int(TIMEOUT_S)) as conn:
        conn.execute("SELECT 1")


def _redis(s: Settings) -> None:
    ping_redis(s.redis_url, TIMEOUT_S)


def _kafka(s: Settings) -> None:
    # the admin client gives up starting after 10 s itself (and closes); this bounds the rest
    asyncio.run(asyncio.wait_for(missing_topics(s.kafka_bootstrap), TIMEOUT_S + 10))


def checks(s: Settings) -> list[tuple[str, str, Callable[[Settings], None]]]:
    return [
        ("postgres", where(s.database_url), _postgres),
        ("redis", where(s.redis_url), _redis),
        ("kafka", s.kafka_bootstrap, _kafka),
    ]


def outcomes(s: Settings) -> list[tuple[str, str, str | None]]:
    """`(service, where, why it cannot be used or None)` for each service."""
    out: list[tuple[str, str, str | None]] = []
    for name, at, check in checks(s):
        try:
            check(s)
        except Exception as exc:
            out.append((name, at, one_line(exc)))
        else:
            out.append((name, at, None))
    return out


def failures(s: Settings) -> list[str]:
    """One line per service this machine cannot use, naming where and why."""
    return [f"{name} at {at}: {why}" for name, at, why in outcomes(s) if why is not None]


def main(argv: list[str]) -> int:
    """Exit 1 when a service cannot be used. `--lines`: a line per service for `make status`
    on a joined machine (`name<TAB>up|down<TAB>where[: why]`), whatever the outcome."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its retries: one line below
    if argv == ["--lines"]:
        results = outcomes(get_settings())
        for name, at, why in results:
            print(f"{name}\t{'down' if why else 'up'}\t{at}{': ' + why if why else ''}")
        return 1 if any(why for _, _, why in results) else 0
    failed = failures(get_settings())
    if not failed:
        print("the head's postgres, redis and kafka answer this machine")
        return 0
    for line in failed:
        print(f"cannot use {line}", file=sys.stderr)
    print("likely: " + "; or ".join(HINTS), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
