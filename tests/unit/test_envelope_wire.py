"""An event read from Kafka is taken as it was written: the envelope's defaults (a new id, the
time now, this code's version) are for events this process makes, never filled into a message
on the wire (domain/events.py)."""

from __future__ import annotations

import json
import pickle
import uuid

import pytest
from pydantic import ValidationError

from domain.events import Envelope, new_event


def _wire(**drop_or_set: object) -> bytes:
    doc = json.loads(new_event("PaymentAuthorized", uuid.uuid4(), amount="1.00").to_json())
    for key, value in drop_or_set.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "change",
    [{"eventId": None}, {"occurredAt": None}, {"version": None}, {"version": 2}],
    ids=["no-event-id", "no-occurred-at", "no-version", "another-version"],
)
def test_an_incomplete_or_foreign_message_is_refused(change: dict[str, object]) -> None:
    """Without its eventId, a message got a new id at every parse: each redelivery claimed a
    "new" event in processed_events and applied its effect again (a second shipment)."""
    with pytest.raises(ValidationError):
        Envelope.from_json(_wire(**change))


def test_a_complete_message_keeps_its_id_through_every_parse_and_pickle() -> None:
    raw = _wire()
    first = Envelope.from_json(raw)
    assert Envelope.from_json(raw).event_id == first.event_id
    assert pickle.loads(pickle.dumps(first)).event_id == first.event_id
    assert str(first.event_id) == json.loads(raw)["eventId"]
