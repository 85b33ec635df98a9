"""Kafka logins of the tests' own clients (a SCRAM broker of the local stack: ADR-011), shared by
the deploy and the multi-node tests: the properties a Java tool of Kafka logs in with, and an
aiokafka client's question to a broker that may refuse it."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError

from adapters.kafka import partitions_of
from core.settings import Settings


def login_properties(mechanism: str, username: str, password: str, cafile: str = "") -> list[str]:
    """The `--command-config` lines of a Kafka tool logging in with `mechanism` (PLAIN, or a
    SCRAM one): over SASL_PLAINTEXT, or over SASL_SSL checking the broker against `cafile`."""
    module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
    tls = ["ssl.truststore.type=PEM", f"ssl.truststore.location={cafile}"] if cafile else []
    return [
        f"security.protocol={'SASL_SSL' if cafile else 'SASL_PLAINTEXT'}",
        *tls,
        f"sasl.mechanism={mechanism}",
        f"sasl.jaas.config=org.apache.kafka.common.security.{module} required "
        f'username="{username}" password="{password}";',
    ]


def partitions_or_refused(settings: Settings, topic: str) -> list[int] | None:
    """The partitions of `topic` as the broker of `settings` tells a client logging in as
    they say (empty: no such topic); None when it refuses it or does not answer in 30 s."""

    async def ask() -> list[int]:
        return await partitions_of(settings.kafka_bootstrap, topic, settings)

    try:
        return asyncio.run(asyncio.wait_for(ask(), 30))
    except (KafkaError, TimeoutError):
        return None
