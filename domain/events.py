"""Events: what happened. One JSON envelope on every topic, keyed by order id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from domain.ids import uuid7

SCHEMA_VERSION = 1


class Topic:
    """Kafka topic names. The seed's seven are fixed; the rest are additions of the design."""

    ORDER_CREATED = "order.created"
    INVENTORY_RESERVED = "inventory.reserved"
    INVENTORY_REJECTED = "inventory.rejected"
    PAYMENT_AUTHORIZED = "payment.authorized"
    PAYMENT_DECLINED = "payment.declined"
    SHIPPING_UPDATED = "shipping.updated"
    NOTIFICATION_SEND = "notification.send"
    ORDER_CANCELLED = "order.cancelled"
    PAYMENT_REFUNDED = "payment.refunded"

    SEED: tuple[str, ...] = (
        ORDER_CREATED,
        INVENTORY_RESERVED,
        INVENTORY_REJECTED,
        PAYMENT_AUTHORIZED,
        PAYMENT_DECLINED,
        SHIPPING_UPDATED,
        NOTIFICATION_SEND,
    )
    ALL: tuple[str, ...] = (*SEED, ORDER_CANCELLED, PAYMENT_REFUNDED)

    @staticmethod
    def dlq(topic: str) -> str:
        """The dead-letter topic of `topic`."""
        return f"{topic}.dlq"


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """The wire format of every event: `{eventId, type, orderId, occurredAt, version, data}`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid7, alias="eventId")
    type: str
    order_id: uuid.UUID = Field(alias="orderId")
    # with its offset: an age is computed from it (a naive time is a bad message, to the DLQ)
    occurred_at: AwareDatetime = Field(default_factory=_now, alias="occurredAt")
    version: int = SCHEMA_VERSION
    data: dict[str, Any] = Field(default_factory=dict)
    # the JSON it was parsed from (validated, so equal to `to_json()` in meaning): an envelope
    # that only passes through (consumer → owning actor) is pickled without being serialised
    _raw: bytes | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _complete_on_the_wire(cls, data: Any, info: ValidationInfo) -> Any:
        """A message read from Kafka carries its own id, time and version: the defaults are
        for events this process makes. Filled in on parsing, an id was new at every delivery
        (and on each actor the envelope was unpickled in), so the dedupe claim never matched a
        redelivery and its effect applied again. A version other than this code's is not
        guessed at either. Either way the message is poison (its dead-letter topic)."""
        if isinstance(data, dict) and (info.context or {}).get("wire"):
            missing = [key for key in ("eventId", "occurredAt", "version") if key not in data]
            if missing:
                raise ValueError(f"a message on the wire needs {', '.join(missing)}")
            if data["version"] != SCHEMA_VERSION:
                raise ValueError(f"version {data['version']!r} is not {SCHEMA_VERSION}")
        return data

    def __eq__(self, other: object) -> bool:
        """Equal fields (pydantic would also compare `_raw`, i.e. how the JSON was written)."""
        if not isinstance(other, Envelope):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def to_json(self) -> bytes:
        """Serialise with camelCase keys."""
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        """Parse and validate; raises `pydantic.ValidationError` on anything malformed."""
        envelope = cls.model_validate_json(raw, context={"wire": True})
        envelope._raw = raw.encode() if isinstance(raw, str) else raw
        return envelope

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        """Pickle as the event's own JSON. Consumers hand batches of envelopes to the owning
        actors, and Ray pickles call arguments with cloudpickle, whose Python-level hook visits
        every nested object of a pydantic model (UUIDs, datetimes, dicts): measured 8-9 ms per
        call for ~30 envelopes, the largest single cost of a consumer (docs/performance.md).
        As JSON bytes an envelope is one atomic object to the pickler; one parsed from JSON
        reuses those bytes (re-serialising was ~8 % of a consumer's CPU)."""
        return (Envelope.from_json, (self._raw or self.to_json(),))


# Event types (past tense). The topic an event goes to is part of the contract.
EVENT_TOPIC: dict[str, str] = {
    "OrderCreated": Topic.ORDER_CREATED,
    "StockReserved": Topic.INVENTORY_RESERVED,
    "StockRejected": Topic.INVENTORY_REJECTED,
    "PaymentAuthorized": Topic.PAYMENT_AUTHORIZED,
    "PaymentDeclined": Topic.PAYMENT_DECLINED,
    "ShippingUpdated": Topic.SHIPPING_UPDATED,
    "NotificationSent": Topic.NOTIFICATION_SEND,
    "OrderCancelled": Topic.ORDER_CANCELLED,
    "PaymentRefunded": Topic.PAYMENT_REFUNDED,
}


def new_event(event_type: str, order_id: uuid.UUID, **data: Any) -> Envelope:
    """Build an envelope of a known type; raises KeyError for an unknown type (a bug)."""
    EVENT_TOPIC[event_type]
    return Envelope(type=event_type, order_id=order_id, data=data)
