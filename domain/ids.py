"""Identifiers: UUIDv7 (RFC 9562), time-ordered.

Orders and events are keyed by these ids in every table's primary key or unique index
(orders, order_events, reservations, payments, shipments, notifications, processed_events).
Random UUIDv4 keys land on a random leaf page of each of those B-trees, so under load every
insert touches a page that is rarely cached; v7 ids start with the creation time in
milliseconds, so new keys go to the right edge of the index
(docs/adr/ADR-005-postgres-write-path.md).
The price: an id reveals when it was created, which the API shows anyway (`createdAt`).
"""

from __future__ import annotations

import os
import time
import uuid

_RAND_B_MASK = (1 << 62) - 1


def uuid7_time_ms(value: uuid.UUID) -> int | None:
    """The Unix time in ms a UUIDv7 was made at (its first 48 bits); None for another version
    (as the SQL function `uuid7_time`, migration 0006)."""
    return value.int >> 80 if value.version == 7 else None


def uuid7() -> uuid.UUID:
    """A new random UUIDv7: 48 bits of Unix time in ms, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 68) << 64  # rand_a: 12 bits
        | 0b10 << 62  # RFC variant
        | (rand & _RAND_B_MASK)
    )
    return uuid.UUID(int=value)
