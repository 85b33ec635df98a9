"""A real Ray cluster of three hosts on this machine (cluster/netns.sh): the head (Postgres, Redis,
Kafka, Ray head with no CPUs, the Serve gateway) and two worker hosts, each a network namespace
with its own address on a private bridge and a CPU quota of its own. The platform deploys with
two shards of each kind, each hosting a member of its consumer group; its actors must spread
over both workers, survive the loss of one under load, and survive a redeploy with another
inventory shard count — with every accepted order terminal, none oversold, none charged twice."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from bench.scale_hosts import Hosts
from consumers import routes
from core import registry
from core.settings import Settings
from tests.multinode import firewall, probes
from tests.multinode.conftest import PLATFORM
from tests.tls_probes import grpc_answers, pg_over_tls, redis_user

pytestmark = pytest.mark.timeout(1500)  # the first test may wait for another harness (600 s)
RECOVER_S = 150.0  # actors back on the survivor, from the kill


def _platform(hosts: Hosts) -> Settings:
    """The platform settings the harness deployed last."""
    return Settings.model_validate(
        {k.lower(): v for k, v in {**PLATFORM, **hosts.settings}.items()}
    )


def test_actors_spread_over_both_workers(hosts: Hosts) -> None:
    platform = _platform(hosts)
    names = probes.pipeline_actors(platform)
    workers = {hosts.worker_ip(1), hosts.worker_ip(2)}
    where = probes.wait_placed(hosts, names, workers, 60)
    per_host = Counter(where.values())
    assert set(per_host) == workers, f"pipeline actors on {dict(per_host)} only"
    gateway = [a for a in hosts.actors() if a.class_name.startswith("ServeReplica")]
    assert gateway and all(a.node_ip == hosts.info["NODE_ADDRESS"] for a in gateway), gateway
    # a member in each shard of the group's kind; the notification and shipping groups one,
    # their owner actor (docs/adr/ADR-006)
    hosted = registry.members(platform.inventory_shards, platform.payment_shards)
    wanted = {g: probes.partitions(hosts, routes.topics(g)) for g in routes.GROUPS}

    def problem(members: probes.Members) -> str:
        for group in routes.GROUPS:
            owned = [parts for _, parts in members.get(group, [])]
            if len(owned) != len(hosted[group]) or set().union(*owned) != wanted[group]:
                return f"group {group}: members {members.get(group)}, want {len(hosted[group])}"
        return ""

    probes.wait_members(hosts, problem, 90)


def test_status_on_a_worker_host_reports_its_node_and_the_heads_services(hosts: Hosts) -> None:
    """`make status` on a joined machine reported a local stack that is not there (every part
    down at 127.0.0.1, exit 1): it reports its Ray node and the head's services, reached as its
    Ray processes reach them (over TLS, with the platform's logins)."""
    head = hosts.info["NODE_ADDRESS"]
    rows = [line.split() for line in hosts.status(1).splitlines()]
    assert rows[0][:3] == ["ray", "node", "up"] and rows[0][3] == f"{hosts.worker_ip(1)},"
    assert f"joined to {head}:" in " ".join(rows[0])
    services = {r[0]: (r[1], r[2]) for r in rows[1:]}
    assert set(services) == {"postgres", "redis", "kafka"}, rows
    assert all(up == "up" and where.startswith(head) for up, where in services.values()), rows


def test_stacks_on_a_worker_host_shows_the_clusters_actors(hosts: Hosts) -> None:
    """`make stacks` on a joined machine, untried until 2026-12-07: the head's consumer groups
    and where every pipeline actor's tasks wait, through the head's services; the gateway's
    health only on the head (it listens on the head's loopback)."""
    report = hosts.stacks(1)
    head = hosts.info["NODE_ADDRESS"]
    assert f"this machine joined the head at {head}" in report, report[:2000]
    for name in probes.pipeline_actors(_platform(hosts)):
        assert f"\n{name}:\n  Task-" in report, f"{name} missing: {report[-3000:]}"
    assert "not readable" not in report, report[:3000]


def test_every_host_admits_the_ports_of_the_stack_only(hosts: Hosts) -> None:
    """Each host loads cluster/firewall.sh's rule set (the harness does, as README's "Adding a
    machine" asks of an operator), so every test here runs the pipeline, a redeploy and a
    host's loss through it. Ray alone listened on random ports no rule could name: now every
    port a host listens on beyond loopback is one its rule set admits from the members, but
    for the head's own that nothing on another host calls (firewall.head_only(), each Serve
    replica's gRPC server). A port it does not admit is dropped."""
    port = {k: int(hosts.info[k]) for k in firewall.PORTS}
    head_only = firewall.head_only(port["RAY_CLIENT_SERVER_PORT"])
    for host, exempt in (("w1", set()), ("w2", set()), ("head", head_only)):
        admitted, listening = firewall.admitted(hosts, host), firewall.listeners(hosts, host)
        outside = {
            port: name
            for port, name in listening.items()
            if port not in admitted | exempt and not name.startswith("ray::ServeRepli")
        }
        assert not outside, f"{host} listens beyond its rule set: {outside}"
    head, client = hosts.info["NODE_ADDRESS"], port["RAY_CLIENT_SERVER_PORT"]
    assert client in firewall.listeners(hosts, "head"), "nothing to show a drop with"
    before = firewall.dropped(hosts, "head")
    assert firewall.connects(head, port["METRICS_EXPORT_PORT"])
    assert not firewall.connects(head, client), "a port not admitted took a connection"
    assert firewall.dropped(hosts, "head") > before


def test_the_heads_services_on_the_network_take_tls_clients_only(hosts: Hosts) -> None:
    """The head's Postgres, Redis, Kafka and Ray's GCS listen on the bridge: over TLS with the
    stack's CA only (cluster/tls.sh, ADR-016), Kafka with the platform's SCRAM login only
    (ADR-011, multi-host mode), Ray's gRPC with a client certificate of that CA only. Every
    actor on the workers used them so above, each worker checking the head's certificate
    against the CA its join took from the credentials file."""
    platform = hosts.platform_settings()
    assert platform.kafka_security_protocol == "SASL_SSL", hosts.info
    assert platform.kafka_ssl_cafile, hosts.info
    assert probes.kafka_accepts(platform)
    wrong = platform.model_copy(update={"kafka_password": "not-the-password"})
    assert not probes.kafka_accepts(wrong), "a wrong password was accepted"
    plain = platform.model_copy(update={"kafka_security_protocol": "SASL_PLAINTEXT"})
    assert not probes.kafka_accepts(plain), "a client without TLS was accepted"
    assert pg_over_tls(hosts.dsn) is True
    assert pg_over_tls(hosts.dsn.split("?")[0] + "?sslmode=disable") is None
    assert redis_user(platform.redis_url) == "orders"
    bare = "redis" + platform.redis_url.split("?")[0].removeprefix("rediss")
    assert redis_user(bare) is None, "Redis took a client without TLS"
    # Ray's GCS: mutual TLS, a certificate of the stack's CA for the head's address, and a
    # client with one of the CA's certificates only (each worker made its own at its join)
    head, ca = hosts.info["NODE_ADDRESS"], platform.kafka_ssl_cafile
    w1 = hosts.run_dir / "w1" / "tls"
    gcs = int(hosts.info["RAY_ADDRESS"].rsplit(":", 1)[1])
    assert grpc_answers(head, gcs, ca, (str(w1 / "server.pem"), str(w1 / "server.key")))
    assert not grpc_answers(head, gcs, ca), "the GCS answered a client without a certificate"


async def test_shard_count_change_on_redeploy(hosts: Hosts) -> None:
    """INVENTORY_SHARDS 2 → 3 while orders flow: every actor restarts and reloads its share
    from Postgres; the gateway routes stock writes to the new owners."""

    async def redeploy() -> None:
        await asyncio.sleep(6)
        await asyncio.to_thread(hosts.deploy, INVENTORY_SHARDS="3")

    out = await probes.tracked_load(hosts, "mn-shards", 12.0, 25, redeploy)
    assert out.verdict.clean, out.verdict.details
    assert out.verdict.accepted > 150 and not out.tracker.outstanding, out.verdict.line()
    names = probes.pipeline_actors(_platform(hosts))
    probes.wait_placed(hosts, names, {hosts.worker_ip(1), hosts.worker_ip(2)}, 60)
    # after the redeploy: stock set through the gateway lands on the new owner, and a scarce
    # SKU sells exactly what it has
    after = await probes.tracked_load(hosts, "mn-shards-after", 12.0, 12, scarce_units=5)
    assert after.verdict.clean, after.verdict.details
    assert not after.tracker.outstanding, after.verdict.line()
    assert set(after.statuses) == {202}, after.statuses


async def test_worker_host_loss_under_load(hosts: Hosts) -> None:
    """SIGKILL one worker host's raylet under load: its actors restart on the other worker,
    the consumer groups rebalance onto it, every accepted order reaches a terminal status."""
    names = probes.pipeline_actors(_platform(hosts))
    where = probes.wait_placed(hosts, names, {hosts.worker_ip(1), hosts.worker_ip(2)}, 60)
    per_host = Counter(where.values())
    victim = 1 if per_host[hosts.worker_ip(1)] > per_host[hosts.worker_ip(2)] else 2
    survivor = hosts.worker_ip(3 - victim)
    killed_at: list[float] = []

    async def kill() -> None:
        await asyncio.sleep(10)
        killed_at.append(await asyncio.to_thread(hosts.kill, victim, "raylet"))

    out = await probes.tracked_load(hosts, "mn-loss", 25.0, 35, kill, grace_s=RECOVER_S + 60)
    assert killed_at, "the worker was never killed"
    assert probes.accepted_after(out, killed_at[0] + 5) > 100, "too little load after the kill"
    assert set(out.statuses) == {202}, f"the gateway on the head answered {out.statuses}"
    assert not out.tracker.outstanding, f"{len(out.tracker.outstanding)} orders not terminal"
    assert out.verdict.clean, out.verdict.details
    assert out.verdict.lost == 0 and out.verdict.oversold == 0, out.verdict.line()
    assert out.verdict.double_charged == 0, out.verdict.line()
    probes.wait_placed(hosts, names, {survivor}, RECOVER_S)
    wanted = {g: probes.partitions(hosts, routes.topics(g)) for g in routes.GROUPS}

    def problem(members: probes.Members) -> str:
        for group in routes.GROUPS:
            hosts_of = {ip for ip, _ in members.get(group, [])}
            owned = set().union(*(parts for _, parts in members.get(group, [])))
            if hosts_of != {survivor} or owned != wanted[group]:
                return f"group {group}: members on {hosts_of} (want {survivor}) own {owned}"
        return ""

    probes.wait_members(hosts, problem, 90)
