"""An idempotency key answers with the original only for the same events (issue 26, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiflow_nb.errors import IdempotencyKeyReusedError
from aiflow_nb.events import Event, EventLog
from aiflow_nb.server.app import PREFIX
from tests.conftest import RunningService
from tests.server import call


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "events.duckdb")


def test_the_same_event_again_gets_the_original_offset(log: EventLog) -> None:
    first = log.append(Event("hour", {"start": "10:00", "end": "11:00"}, "ns", "me", {"execution_id": 3}), "k")
    again = log.append(Event("hour", {"end": "11:00", "start": "10:00"}, "ns", "me", {"execution_id": 3}), "k")
    assert again == first and log.count() == 1  # the same value, spelled in another key order


@pytest.mark.parametrize(
    "decoy",
    [
        Event("hour", {"start": "10:00", "end": "9999-01-01"}, "ns", "me"),
        Event("other", {"start": "10:00", "end": "11:00"}, "ns", "me"),
        Event("hour", {"start": "10:00", "end": "11:00"}, "elsewhere", "me"),
        Event("hour", {"start": "10:00", "end": "11:00"}, "ns", "someone else"),
        Event("hour", {"start": "10:00", "end": "11:00"}, "ns", "me", {"execution_id": 4}),
        Event("hour", 1, "ns", "me"),
    ],
)
def test_another_event_under_a_taken_key_is_refused(log: EventLog, decoy: Event) -> None:
    log.append(decoy, "watermark:ns/hour/10:00")  # whoever sent first took the key
    real = Event("hour", {"start": "10:00", "end": "11:00"}, "ns", "me")
    with pytest.raises(IdempotencyKeyReusedError, match="'watermark:ns/hour/10:00' was already used for another"):
        log.append(real, "watermark:ns/hour/10:00")
    assert log.count() == 1
    # In one call too, and staged (not yet committed) in the same transaction.
    with pytest.raises(IdempotencyKeyReusedError):
        log.append_many([Event("x", 1), Event("x", 2)], ["dup", "dup"])
    assert log.count() == 1
    with log.db.transaction(), pytest.raises(IdempotencyKeyReusedError):
        log.stage([Event("y", 1)], ["staged"])
        log.stage([Event("y", 2)], ["staged"])


def test_a_batch_key_with_other_events_is_refused(log: EventLog) -> None:
    assert log.append_many([Event("a", 1), Event("b", 2)], batch_key="upload-7") == [1, 2]
    assert log.append_many([Event("a", 1), Event("b", 2)], batch_key="upload-7") == [1, 2]
    with pytest.raises(IdempotencyKeyReusedError, match="event 2 differs in its value"):
        log.append_many([Event("a", 1), Event("b", 3)], batch_key="upload-7")
    with pytest.raises(IdempotencyKeyReusedError, match="for 2 event"):
        log.append_many([Event("a", 1)], batch_key="upload-7")
    assert log.count() == 2


def test_the_service_answers_422_for_a_reused_key(service: RunningService) -> None:
    url, token = service.info.url, service.info.token
    window = {"key": "hour_complete", "value": {"start": "10:00"}, "idempotency_key": "w-10"}
    first = call(url, "POST", PREFIX + "/events", window, token=token)
    assert first.status == 200, first
    again = call(url, "POST", PREFIX + "/events", window, token=token)
    assert again.status == 200 and json.loads(again.body) == json.loads(first.body)
    decoy = {**window, "value": {"start": "10:00", "end": "9999-01-01T00:00:00+00:00"}}
    refused = call(url, "POST", PREFIX + "/events", decoy, token=token)
    assert refused.status == 422, refused
    error = json.loads(refused.body)["error"]
    assert error["code"] == "idempotency_key_reused" and "its value differs" in error["message"]
    batch = [{"key": "row", "value": 1}, {"key": "row", "value": 2}]
    headers = {"Idempotency-Key": "upload-1"}
    assert call(url, "POST", PREFIX + "/events", {"events": batch}, token=token, headers=headers).status == 200
    changed = [{"key": "row", "value": 1}, {"key": "row", "value": 666}]
    refused = call(url, "POST", PREFIX + "/events", {"events": changed}, token=token, headers=headers)
    assert refused.status == 422 and json.loads(refused.body)["error"]["code"] == "idempotency_key_reused"
    assert service.client().events(key="row")[-1].value == 2  # nothing of the decoys was stored
