"""The shard rule: key → shard by `crc32(key) % N` (never Python's salted `hash()`)."""

from __future__ import annotations

import zlib


def shard_of(key: str, shards: int) -> int:
    """Stable shard index of `key` among `shards` shards."""
    return zlib.crc32(key.encode()) % shards
