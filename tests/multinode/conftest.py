"""The multi-node harness for these tests: a head and two worker hosts as Linux network
namespaces (cluster/netns.sh), started once for the module and always taken down. Root and the
`ip` command are required: without them the tests fail (CI runs as root), they never skip."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.scale_hosts import Hosts, unavailable

# The platform as these tests deploy it: two shards of each kind, each hosting a member of its
# consumer group (ADR-006), so that each worker host holds a member of both, and partitions for
# both.
PLATFORM = {
    "KAFKA_PARTITIONS": "6",
    "INVENTORY_SHARDS": "2",
    "PAYMENT_SHARDS": "2",
}
CAP = 0.5  # cores per worker host


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    why = unavailable()
    if why is not None:
        pytest.fail(why, pytrace=False)
    h = Hosts(settings=dict(PLATFORM), cap=CAP, worker_cpus=4)
    try:
        h.up(2)
        yield h
    finally:
        h.down()
