"""Watermark: one event per completed window, in order, never twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiflow_nb import BashTask, Watermark, Workflow
from aiflow_nb.errors import InvalidScheduleError
from tests.conftest import RunningService
from tests.server import wait

UTC = UTC


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, tzinfo=UTC)


def windows(service: RunningService) -> list[tuple[str, str]]:
    return [(e.value["start"][11:16], e.value["end"][11:16]) for e in service.client().events(key="hour_complete")]


def test_one_event_per_window_passed_in_order(service: RunningService) -> None:
    wm = Watermark("hour_complete", timedelta(hours=1), client=service.client())
    assert wm.advance(at(10, 5)) == []  # the first time only places the watermark
    assert wm.advance(at(10, 59)) == []  # 10:00-11:00 not complete yet
    assert [w["start"][11:16] for w in wm.advance(at(11, 0))] == ["10:00"]
    assert [w["start"][11:16] for w in wm.advance(at(13, 30))] == ["11:00", "12:00"]
    assert wm.advance(at(13, 10)) == []  # late data never goes back
    assert windows(service) == [("10:00", "11:00"), ("11:00", "12:00"), ("12:00", "13:00")]


def test_a_restarted_watermark_resumes_and_never_sends_a_window_twice(service: RunningService) -> None:
    first = Watermark(client=service.client())
    first.advance(at(8, 30))
    first.advance(at(10, 15))  # sends 08:00 and 09:00
    again = Watermark(client=service.client())  # a restarted task: replays from earlier data
    assert again.advance(at(8, 45)) == []
    assert [w["start"][11:16] for w in again.advance(at(11, 1))] == ["10:00"]
    assert windows(service) == [("08:00", "09:00"), ("09:00", "10:00"), ("10:00", "11:00")]


def test_each_window_triggers_its_own_execution(service: RunningService) -> None:
    client = service.client()
    with Workflow("train") as wf:
        BashTask("fit", command="echo $AIFLOW_NB_EVENT")
    client.submit(wf.trigger_on("hour_complete"))
    wm = Watermark(client=client)
    wm.advance(at(1))
    wm.advance(at(4))
    wait(lambda: len(client.executions(workflow="train", status="SUCCESS")) == 3, 60, "three trainings")
    starts = [e.event["value"]["start"][11:16] for e in client.executions(workflow="train")]
    assert starts == ["01:00", "02:00", "03:00"]


@pytest.mark.parametrize("every", [timedelta(0), timedelta(seconds=-1)])
def test_every_must_be_positive(every: timedelta) -> None:
    with pytest.raises(InvalidScheduleError, match="every must be a positive"):
        Watermark(every=every)
