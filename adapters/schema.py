"""Table definitions (SQLAlchemy Core). Alembic migrations create them; queries use psycopg."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()

catalog = sa.Table(
    "catalog",
    metadata,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("unit_price", sa.Numeric(12, 2), nullable=False),
)

inventory = sa.Table(
    "inventory",
    metadata,
    sa.Column("sku", sa.Text, sa.ForeignKey("catalog.sku"), primary_key=True),
    sa.Column("on_hand", sa.Integer, nullable=False),
    sa.Column("reserved", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.CheckConstraint("on_hand >= 0", name="stock_not_negative"),
    sa.CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_stock"),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("principal", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("items", JSONB, nullable=False),
    sa.Column("total", sa.Numeric(14, 2), nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("payment_method", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("idempotency_key", sa.Text),
    sa.Column("request_hash", sa.Text),
    sa.Index("orders_principal_created", "principal", "created_at"),
    sa.Index(
        "orders_principal_idempotency_key",
        "principal",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    ),
    sa.Index("orders_customer_created", "customer_id", "created_at"),
    # no index on status: orders then take HOT updates (migration 0003, fillfactor 80)
    sa.Index("orders_created", "created_at", "id"),
)

# The append-only tables are daily range partitions managed by pg_partman (migration 0006,
# docs/adr/ADR-012-retention.md): a primary key must hold the partition key, so those keyed by
# an id hold the time in that UUIDv7 id (`uuid7_time(id)` in SQL), which never changes the
# key's meaning. Their partitions (`<table>_p<date>`, `<table>_default`) are not declared here.
PARTITION_KEYS = {"order_events": "at", "processed_events": "event_at", "notifications": "order_at"}

order_events = sa.Table(
    "order_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("order_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("detail", JSONB),
    postgresql_partition_by="RANGE (at)",
)

outbox = sa.Table(
    "outbox",
    metadata,
    # drawn after the writer's xid (migration 0012: the relay's scan floor relies on it)
    sa.Column(
        "id",
        sa.BigInteger,
        primary_key=True,
        autoincrement=False,
        server_default=sa.text(
            "CASE WHEN pg_current_xact_id() IS NOT NULL THEN nextval('outbox_id_seq') END"
        ),
    ),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

# Whether the outbox relay waits for a NOTIFY (the outbox trigger sends one only then; one row,
# UNLOGGED: empty after a crash, which the trigger reads as waiting; migration 0009).
outbox_relay = sa.Table(
    "outbox_relay",
    metadata,
    sa.Column(
        "id", sa.SmallInteger, sa.CheckConstraint("id = 1"), primary_key=True, autoincrement=False
    ),
    sa.Column("waiting", sa.Boolean, nullable=False),
    prefixes=["UNLOGGED"],
)

processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("event_at", sa.DateTime(timezone=True), primary_key=True),  # uuid7_time(event_id)
    sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    postgresql_partition_by="RANGE (event_at)",
)

# fillfactor 80: closing a hold (its state) updates no indexed column, a HOT update (0011)
reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("order_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("principal", sa.Text),  # who placed the order
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # HELD | RELEASED | COMMITTED
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

# The open holds (a reservation while it is HELD): inserted with it, deleted by the statement
# that closes it, so the expiry sweep and the per-principal cap read only what is open and no
# index of `reservations` names its state (migration 0011).
reservation_holds = sa.Table(
    "reservation_holds",
    metadata,
    sa.Column("order_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("principal", sa.Text),  # the open-hold cap counts by it
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("reservation_holds_expiry", "expires_at"),
    sa.Index("reservation_holds_principal", "principal"),
)

# payments and shipments: fillfactor 80 for HOT status updates (migration 0010); payments'
# updates are no longer HOT since the open authorizations have an index (migration 0016)
payments = sa.Table(
    "payments",
    metadata,
    sa.Column("order_id", UUID(as_uuid=True), primary_key=True),  # at most one charge per order
    sa.Column("customer_id", sa.Text, nullable=False, index=True),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # AUTHORIZED | DECLINED | CAPTURED | REFUNDED
    sa.Column("reason", sa.Text),
    sa.Column("provider_ref", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Index(
        "ix_payments_authorized",
        "customer_id",
        postgresql_include=["amount"],
        postgresql_where=sa.text("status = 'AUTHORIZED'"),
    ),
)

shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("order_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tracking", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # CREATED | SHIPPED | DELIVERED | FAILED
    sa.Column("fail", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("order_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("status", sa.Text, primary_key=True),  # sent once per status
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("template", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("order_at", sa.DateTime(timezone=True), primary_key=True),  # uuid7_time(order_id)
    postgresql_partition_by="RANGE (order_at)",
)

# who owns a customer id (migration 0005): the first customer principal to order for it; a
# principal claims at most MAX_CUSTOMER_IDS_PER_PRINCIPAL ids (migration 0014's trigger)
customer_owners = sa.Table(
    "customer_owners",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("principal", sa.Text, nullable=False),
    sa.Column(
        "claimed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("customer_owners_principal", "principal"),
)


def is_partition(name: str | None) -> bool:
    """True for the name of a partition of a partitioned table (`<table>_p…`, `<table>_default`).

    For Alembic's `include_name`: the partitions come and go with pg_partman's maintenance."""
    return name is not None and any(
        name.startswith(f"{t}_p") or name == f"{t}_default" for t in PARTITION_KEYS
    )


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name` hook: everything but the partitions."""
    return not (type_ == "table" and is_partition(name))
