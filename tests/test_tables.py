"""Durations as the faces print them (the CLI's DURATION column and the widgets' duration cells)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiflow_nb.tables import duration_text, human_duration, task_row, text_table
from aiflow_nb.workflow.records import TaskExecution
from aiflow_nb.workflow.status import TaskStatus

START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0, "0 ms"),
        (0.033707, "33 ms"),
        (0.9999, "999 ms"),
        (1.0, "1.0 s"),
        (1.25, "1.2 s"),
        (59.99, "59.9 s"),
        (60.0, "1 min 0 s"),
        (184.7, "3 min 4 s"),
        (3599.9, "59 min 59 s"),
        (3600.0, "1 h 0 min"),
        (7500.0, "2 h 5 min"),
        (-0.5, "0 ms"),  # a clock step back never shows a negative duration
    ],
)
def test_a_duration_reads_as_people_read_it(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_a_running_duration_counts_from_its_start_to_now() -> None:
    assert duration_text(None, None, START) == ""
    assert duration_text(START, START + timedelta(seconds=12.4), START + timedelta(hours=1)) == "12.4 s"
    assert duration_text(START, None, START + timedelta(seconds=0.2)) == "200 ms…"
    assert duration_text(START, None, START + timedelta(seconds=12)) == "12.0 s…"


def test_the_task_table_prints_durations_not_raw_seconds() -> None:
    done = TaskExecution(
        1, 1, "train", 1, TaskStatus.SUCCESS, start_time=START, end_time=START + timedelta(seconds=0.033707)
    )
    running = TaskExecution(2, 1, "eval", 1, TaskStatus.RUNNING, start_time=START)
    now = START + timedelta(minutes=3, seconds=4)
    table = text_table([task_row(done, now), task_row(running, now)], ("task", "duration"))
    assert table.splitlines() == ["TASK   DURATION", "train  33 ms", "eval   3 min 4 s…"]
    assert done.to_dict()["duration"] == pytest.approx(0.033707)  # the JSON keeps seconds
