"""Watermark against events it did not send: a squatted key and a forged window (issue 26, item 3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aiflow_nb import Watermark
from aiflow_nb.errors import IdempotencyKeyReusedError
from tests.conftest import RunningService

UTC = UTC


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, tzinfo=UTC)


def starts(sent: list[dict[str, str]]) -> list[str]:
    return [w["start"][11:16] for w in sent]


def test_a_squatted_window_key_is_noticed_not_believed(service: RunningService) -> None:
    client = service.client()
    wm = Watermark(client=client)
    wm.advance(at(10, 5))
    # A task token holder guesses the next window's key and sends a decoy under it.
    client.send_event("hour_complete", "decoy", idempotency_key=f"watermark:default/hour_complete/{at(10).isoformat()}")
    with pytest.raises(IdempotencyKeyReusedError, match=r"window 2026-11-27T10:00:00\+00:00 .* was not sent"):
        wm.advance(at(11, 5))
    assert wm.next_start == at(10)  # it does not believe the window was sent
    with pytest.raises(IdempotencyKeyReusedError):
        wm.advance(at(12, 5))
    assert [e.value for e in client.events(key="hour_complete")] == ["decoy"]


def test_a_forged_window_far_ahead_does_not_stop_a_restarted_stream(service: RunningService) -> None:
    client = service.client()
    first = Watermark(client=client)
    first.advance(at(8, 30))
    assert starts(first.advance(at(10, 15))) == ["08:00", "09:00"]
    far = "9999-12-31T00:00:00+00:00"
    for forged in (
        {"start": "9999-12-31T00:00:00+00:00", "end": "9999-12-31T01:00:00+00:00"},  # a whole window, far ahead
        {"start": at(9).isoformat(), "end": far},  # a window whose end is far ahead
        {"start": at(11).isoformat(), "end": at(11, 30).isoformat()},  # not of this watermark's size
        {"end": far},
        far,
    ):
        client.send_event("hour_complete", forged, sender="aiflow.watermark")
    again = Watermark(client=client)  # the stream restarts
    assert again.advance(at(10, 20)) == []
    assert starts(again.advance(at(12, 5))) == ["10:00", "11:00"]
    sent = [e.value for e in client.events(key="hour_complete", sender="aiflow.watermark")]
    assert [w["start"][11:16] for w in sent if isinstance(w, dict) and w.get("start", "").startswith("2026")] == [
        "08:00", "09:00", "09:00", "11:00", "10:00", "11:00",
    ]  # fmt: skip
