"""One settings class, read once from the environment (and `.env`), failing fast on bad values."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.demo_passwords import DEMO_PASSWORDS
from core.dsn import PostgresUrl

DEV_SECRET = "devsecret"
_MIN_SECRET_BYTES = 32
# The local stack's generated credentials (cluster/common.sh): the connection URLs with their
# passwords, so that a tool run outside the stack's scripts connects as the stack does. They win
# over `.env` (a copy of .env.example carries the demo URLs, which would connect to nothing);
# the environment wins over both. Absent anywhere else (containers, pods): then only the
# environment and `.env` count.
ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = Path(os.environ.get("RUN_DIR") or ROOT / ".run")
CREDENTIALS = RUN_DIR / "credentials.env"
# The checkout's `.env` (.env.example), wherever a command is run from: relative to the working
# directory, `orders` run from elsewhere silently ignored it.
DOTENV = ROOT / ".env"

log = logging.getLogger(__name__)


def _readable_or_absent(path: Path) -> bool:
    if not path.exists() or os.access(path, os.R_OK):
        return True
    log.warning("%s is not readable by this user: its settings are not used", path)
    return False


def sqlalchemy_form(url: str) -> str:
    """A `postgresql://` URL in SQLAlchemy's psycopg 3 dialect form."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


class SettingsError(RuntimeError):
    """Raised when the environment holds a missing or invalid setting."""


class ReadableFiles(BaseSettings):
    """Settings read from env files, of which one this user may not read is skipped (the base
    of `Settings` and of the other readers of the stack's files)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """An env file this user may not read is skipped with a warning: the stack's credentials
        file is its owner's (mode 600), and a user beside it (`orders status`, `make token`)
        needs none of it; pydantic-settings would fail on it with PermissionError."""
        files = getattr(dotenv_settings, "env_file", None)
        files = (files,) if isinstance(files, (str, os.PathLike)) else files
        if isinstance(files, (tuple, list)):
            readable = tuple(f for f in files if _readable_or_absent(Path(f)))
            if len(readable) != len(files):
                dotenv_settings = DotEnvSettingsSource(
                    settings_cls,
                    env_file=readable,
                    env_file_encoding=getattr(dotenv_settings, "env_file_encoding", None),
                )
        return init_settings, env_settings, dotenv_settings, file_secret_settings


class Settings(ReadableFiles):
    """Every knob of the platform. Environment variables use the upper-case field name."""

    # pydantic-settings: of the env files a later one wins, the environment over all of them.
    model_config = SettingsConfigDict(env_file=(DOTENV, CREDENTIALS), extra="ignore", frozen=True)

    app_env: Literal["dev", "test", "prod"] = "dev"
    jwt_secret: str = DEV_SECRET
    jwt_audience: str = "orders-api"
    jwt_issuer: str = "orders-demo"
    jwt_max_age_s: int = Field(default=86_400, gt=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, gt=0, lt=65536)
    database_url: PostgresUrl = "postgresql://orders:orders@127.0.0.1:5432/orders"
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Kafka authentication (docs/adr/ADR-011-kafka-auth.md): SASL/SCRAM (the local stack writes
    # its login into .run/credentials.env), PLAINTEXT only for a broker without logins
    # (KAFKA_AUTH=none). Every client gets them from adapters.kafka.client_options().
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: str = ""
    # SASL_SSL: the CA certificate (PEM file) the broker's certificate is checked against; empty,
    # the system's CAs (the local stack's multi-host mode sets its own CA's: cluster/tls.sh)
    kafka_ssl_cafile: str = ""
    ray_namespace: str = "orders"
    metrics_export_port: int = Field(default=8090, gt=0, lt=65536)

    # Scale-out: a CPU share per pipeline actor (so the scheduler places them on worker hosts
    # and the autoscaler sees demand), and the partitions of every topic (the most members a
    # consumer group can use: each shard hosts one of its group, ADR-006; raising it later adds
    # partitions, lowering it is refused by Kafka).
    actor_num_cpus: float = Field(default=0.1, ge=0, le=8)
    kafka_partitions: int = Field(default=6, ge=1, le=256)
    # One shard of each kind on one host: every shard is a process with its own cycles and
    # transactions, and on the 2-core box two of each cost ~13 % more CPU per order and ~100
    # orders/s of saturation (docs/adr/ADR-014). Raise them with hosts (k8s: 2 and 2).
    inventory_shards: int = Field(default=1, ge=1, le=64)
    payment_shards: int = Field(default=1, ge=1, le=64)
    gateway_replicas: int = Field(default=1, ge=1, le=32)
    max_ongoing_requests: int = Field(default=64, ge=1)
    max_queued_requests: int = Field(default=256, ge=1)
    # Live status streams (SSE) each hold one of the replica's MAX_ONGOING_REQUESTS while open:
    # at most this many per replica (0: a quarter of MAX_ONGOING_REQUESTS), and per principal.
    sse_max_streams: int = Field(default=0, ge=0)
    sse_max_streams_per_principal: int = Field(default=4, ge=1)
    # One Serve access-log line per request (off: at 300 req/s it is 300 lines a second of the
    # gateway's CPU; Serve's `ray_serve_deployment_request_counter` and HAProxy's metrics
    # count them).
    serve_access_log: bool = False
    db_pool_size: int = Field(default=8, ge=1, le=100)
    # Concurrent group-commit transactions of one gateway replica (docs/adr/ADR-005).
    accept_flushers: int = Field(default=4, ge=1, le=32)
    # Young-generation threshold of the garbage collector in the gateway and every actor, set
    # once each has started and frozen its start-up objects (core/heap.py, docs/adr/ADR-015).
    gc_gen0_threshold: int = Field(default=10_000, ge=100, le=1_000_000)

    hold_ttl_s: float = Field(default=300.0, gt=0)
    max_open_holds_per_customer: int = Field(default=50, ge=1)
    # Customer ids one customer principal may own (the first to order for an id owns it); each
    # id has its own CREDIT_LIMIT, so this bounds a principal's credit (migration 0014).
    max_customer_ids_per_principal: int = Field(default=10, ge=1, le=100_000)
    credit_limit: float = Field(default=50_000.0, gt=0)
    breaker_fail_max: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=10.0, gt=0)
    ship_delay_s: float = Field(default=0.05, ge=0)
    deliver_delay_s: float = Field(default=0.2, ge=0)
    consumer_max_retries: int = Field(default=3, ge=0)
    # Adaptive batching: a stage takes whatever queued while its previous batch ran, up to
    # these bounds (an idle stage reacts at once; a busy one grows its batches).
    consumer_batch_max: int = Field(default=2000, ge=1)
    # Under continuous load the outbox relay, after a short batch, waits this long before the
    # next (fewer cycles, each a transaction and a Kafka round trip); an idle relay never waits.
    batch_linger_ms: int = Field(default=40, ge=0, le=200)
    # The same for the notification group, off an order's way to SHIPPED (the groups on it
    # never wait for more; ADR-013, second amendment).
    notify_linger_ms: int = Field(default=250, ge=0, le=2000)
    outbox_batch_max: int = Field(default=5000, ge=1)
    rate_limit_per_min: int = Field(default=6000, ge=1)
    idempotency_ttl_s: int = Field(default=86_400, gt=0)
    max_body_bytes: int = Field(default=65_536, ge=1024)
    # Retention (docs/adr/ADR-012-retention.md). Kafka keeps a message KAFKA_RETENTION_HOURS
    # (set on every topic, with hourly segments); a dedupe row must outlive every redelivery,
    # so DEDUPE_RETENTION_HOURS >= KAFKA_RETENTION_HOURS + 2 is enforced at start. Timelines and
    # notifications (whose key also dedupes) are kept ORDER_HISTORY_DAYS days by order time.
    kafka_retention_hours: int = Field(default=24, ge=1)
    dedupe_retention_hours: int = Field(default=48, ge=1)
    order_history_days: int = Field(default=30, ge=1)
    # at most a day: pg_partman makes 7 days of partitions ahead, and rows of a day without one
    # go to the default partition, which stops that table's maintenance (ADR-012)
    partition_maintenance_s: float = Field(default=3600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _dedupe_outlives_redelivery(self) -> Settings:
        least = self.kafka_retention_hours + KAFKA_SEGMENT_HOURS + 1
        if self.dedupe_retention_hours < least:
            raise ValueError(
                f"DEDUPE_RETENTION_HOURS={self.dedupe_retention_hours} is shorter than "
                f"KAFKA_RETENTION_HOURS={self.kafka_retention_hours} + {KAFKA_SEGMENT_HOURS + 1} "
                "(Kafka drops an hourly segment up to an hour after its messages expire): a "
                "redelivered event could outlive its dedupe row and run twice; set "
                f"DEDUPE_RETENTION_HOURS >= {least} or lower KAFKA_RETENTION_HOURS"
            )
        if self.order_history_days * 24 < self.dedupe_retention_hours:
            raise ValueError(
                f"ORDER_HISTORY_DAYS={self.order_history_days} is shorter than "
                f"DEDUPE_RETENTION_HOURS={self.dedupe_retention_hours}: notifications dedupe by "
                "their own (order, status) key and must be kept as long as dedupe rows; set "
                f"ORDER_HISTORY_DAYS >= {-(-self.dedupe_retention_hours // 24)}"
            )
        return self

    @model_validator(mode="after")
    def _ports_and_slots_apart(self) -> Settings:
        if self.metrics_export_port == self.http_port:
            raise ValueError(
                f"METRICS_EXPORT_PORT={self.metrics_export_port} is HTTP_PORT: Ray's metrics "
                "agent would take the gateway's port; give it another one"
            )
        if self.sse_max_streams >= self.max_ongoing_requests:
            raise ValueError(
                f"SSE_MAX_STREAMS={self.sse_max_streams} leaves none of MAX_ONGOING_REQUESTS="
                f"{self.max_ongoing_requests} request slots for orders: each open stream holds "
                "one; set it below (0: a quarter of them)"
            )
        return self

    @property
    def sse_streams_cap(self) -> int:
        """Open SSE streams per replica: SSE_MAX_STREAMS, or a quarter of the request slots
        (at least one, never every slot: a replica of one slot serves no stream)."""
        if self.sse_max_streams:
            return self.sse_max_streams
        return min(max(1, self.max_ongoing_requests // 4), self.max_ongoing_requests - 1)

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        if self.kafka_security_protocol != "PLAINTEXT" and not (
            self.kafka_username and self.kafka_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_USERNAME "
                "and KAFKA_PASSWORD (the broker's SCRAM user, docs/adr/ADR-011-kafka-auth.md)"
            )
        return self

    @model_validator(mode="after")
    def _secret_is_strong_outside_dev(self) -> Settings:
        if self.app_env == "dev":
            return self
        if self.jwt_secret == DEV_SECRET or len(self.jwt_secret.encode()) < _MIN_SECRET_BYTES:
            raise ValueError(
                f"JWT_SECRET is the default or shorter than {_MIN_SECRET_BYTES} bytes while "
                f"APP_ENV={self.app_env}; set JWT_SECRET to a random value of at least "
                f"{_MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`), or use APP_ENV=dev"
            )
        return self

    @model_validator(mode="after")
    def _no_demo_password_outside_dev(self) -> Settings:
        if self.app_env == "dev":
            return self
        demo = [
            name
            for name, secret in (
                ("DATABASE_URL", urlsplit(self.database_url).password),
                ("REDIS_URL", urlsplit(self.redis_url).password),
                ("KAFKA_PASSWORD", self.kafka_password),
            )
            if secret in DEMO_PASSWORDS
        ]
        if demo:
            raise ValueError(
                f"{', '.join(demo)} use a password committed in this repository for demos while "
                f"APP_ENV={self.app_env}; set passwords of your own (docs/security.md)"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in SQLAlchemy's psycopg 3 dialect form."""
        return sqlalchemy_form(self.database_url)


# Kafka log segments roll hourly (segment.ms, set with retention.ms by adapters/kafka.py), so a
# message is readable at most KAFKA_RETENTION_HOURS + 1 h plus one retention check (5 min).
KAFKA_SEGMENT_HOURS = 1

# Settings of earlier versions that no longer do anything: named in a warning when still set.
GONE = {
    "CONSUMERS_PER_GROUP": "each shard hosts one member of its consumer group now: set "
    "INVENTORY_SHARDS and PAYMENT_SHARDS (docs/adr/ADR-006)",
}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings once; raise `SettingsError` naming what to fix."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
    if settings.app_env == "dev" and settings.jwt_secret == DEV_SECRET:
        log.warning("JWT_SECRET is the dev default; never use APP_ENV=dev in production")
    for name, instead in GONE.items():
        if name in os.environ:
            log.warning("%s is no longer used and is ignored: %s", name, instead)
    return settings
