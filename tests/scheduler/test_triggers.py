"""Workflow triggers, pausing, and schedules driven by an injected clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, PythonTask, TaskStatus, Workflow, WorkflowStatus
from tests.scheduler.fake_clock import FakeClock
from tests.scheduler.tasks import REPO_ROOT, runs, settle, wait_execution, wait_run


@pytest.fixture(autouse=True)
def importable_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Task processes import ``tests.scheduler.tasks`` from the repository."""
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    yield


def triggered_workflow(key: str = "new_data") -> Workflow:
    with Workflow("w") as wf:
        PythonTask("t", callable="tests.scheduler.tasks:record_event")
    wf.trigger_on(key)
    return wf


def test_a_trigger_starts_one_execution_per_matching_event(engine: Engine) -> None:
    engine.submit(triggered_workflow())
    offsets = [engine.send_event("new_data", {"part": i}) for i in range(3)]
    engine.send_event("old_data")
    engine.send_event("new_data", namespace="elsewhere")

    engine.wait_for(lambda: len(engine.executions(workflow="w", status="SUCCESS")) == 3, 30, "3 executions")
    settle(engine)
    executions = engine.executions(workflow="w")
    assert len(executions) == 3
    for part, (ex, offset) in enumerate(zip(executions, offsets, strict=True)):
        assert ex.event["offset"] == offset
        [run] = engine.task_executions(ex.id)
        assert run.event["offset"] == offset
        # The task process received its own triggering event.
        received = json.loads((engine.run_dir(run.id) / "received.json").read_text())
        assert (received["offset"], received["key"], received["value"]) == (offset, "new_data", {"part": part})


def test_a_trigger_ignores_events_scoped_to_an_execution(engine: Engine) -> None:
    engine.submit(triggered_workflow())
    first = engine.send_event("new_data")
    wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    engine.send_event("new_data", context={"execution_id": 1})
    settle(engine)
    assert [ex.event["offset"] for ex in engine.executions(workflow="w")] == [first]


def test_pause_stops_a_trigger_from_starting_executions_and_resume_lets_it_again(engine: Engine) -> None:
    engine.submit(triggered_workflow())
    engine.pause("w")
    assert engine.workflow_info("w").paused
    engine.send_event("new_data")
    settle(engine)
    assert engine.executions(workflow="w") == []

    engine.resume("w")
    after = engine.send_event("new_data")
    wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    settle(engine)
    [ex] = engine.executions(workflow="w")
    assert ex.event["offset"] == after


def ticks(engine: Engine) -> list[str]:
    return [e.value["scheduled_time"] for e in engine.events(key="aiflow.schedule.tick")]


def test_a_workflow_schedule_starts_one_execution_per_due_time_on_an_injected_clock(home: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    engine = Engine(home, stop_grace=2.0, clock=clock)
    try:
        with Workflow("w") as wf:
            BashTask("t", command="true")
        wf.schedule(interval=timedelta(minutes=1))
        engine.submit(wf)
        settle(engine)
        assert ticks(engine) == []
        assert engine.executions(workflow="w") == []

        expected = []
        for minute in (1, 2, 3):
            clock.now = datetime(2026, 1, 1, 12, minute, tzinfo=UTC)
            expected.append(clock.now.isoformat())
            engine.wait_for(lambda: len(engine.executions(workflow="w")) == len(expected), 30, "a scheduled execution")
            # Time stands still: the same due time never fires twice.
            settle(engine)
            settle(engine)
            assert ticks(engine) == expected
            clock.advance(timedelta(seconds=59))
            settle(engine)
            assert ticks(engine) == expected

        executions = engine.executions(workflow="w")
        assert len(executions) == 3
        for ex, due in zip(executions, expected, strict=True):
            assert ex.event["key"] == "aiflow.schedule.tick"
            assert ex.event["sender"] == "aiflow.schedule"
            assert ex.event["value"] == {"workflow": "w", "task": None, "scheduled_time": due, "backfill": False}
            wait_execution(engine, ex.id, WorkflowStatus.SUCCESS)
            assert runs(engine, ex.id, "t")[0].event["offset"] == ex.event["offset"]
    finally:
        engine.close()


def test_a_paused_workflow_schedule_does_not_fire(home: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    engine = Engine(home, stop_grace=2.0, clock=clock)
    try:
        with Workflow("w") as wf:
            BashTask("t", command="true")
        wf.schedule(interval=timedelta(minutes=1))
        engine.submit(wf)
        engine.pause("w")
        clock.advance(timedelta(minutes=1))
        settle(engine)
        settle(engine)
        assert ticks(engine) == []
        assert engine.executions(workflow="w") == []

        engine.resume("w")
        clock.advance(timedelta(minutes=1))
        ex = engine.wait_for(lambda: engine.executions(workflow="w"), 30, "a scheduled execution")[0]
        assert ex.event["value"]["scheduled_time"] == "2026-01-01T12:02:00+00:00"
        wait_run(engine, ex.id, "t", TaskStatus.SUCCESS)
    finally:
        engine.close()


def test_a_task_schedule_starts_the_task_in_running_executions_whose_version_schedules_it(home: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    engine = Engine(home, stop_grace=2.0, clock=clock)
    try:
        with Workflow("w") as v1:
            BashTask("idle", command="true").action_on_event_received("START", "never")
        engine.submit(v1)
        old = engine.start_execution("w")
        with Workflow("w") as v2:
            BashTask("idle", command="true").action_on_event_received("START", "never")
            BashTask("sched", command="true").schedule(interval=timedelta(minutes=1))
        engine.submit(v2)
        new = engine.start_execution("w")
        settle(engine)
        assert engine.task_executions(new) == []  # a scheduled task waits for its schedule

        for seq, minute in ((1, 1), (2, 2)):
            clock.now = datetime(2026, 1, 1, 12, minute, tzinfo=UTC)
            run = wait_run(engine, new, "sched", TaskStatus.SUCCESS, seq=seq)
            assert run.event["key"] == "aiflow.schedule.tick"
            assert run.event["value"] == {
                "workflow": "w",
                "task": "sched",
                "scheduled_time": clock.now.isoformat(),
                "backfill": False,
            }
        settle(engine)
        # Version 1 has no task "sched": its execution is left alone.
        assert engine.task_executions(old) == []
        assert engine.execution(old).status is WorkflowStatus.RUNNING
    finally:
        engine.close()


def test_a_due_time_fires_once_also_across_reopening_the_engine(home: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC))
    engine = Engine(home, stop_grace=2.0, clock=clock)
    try:
        with Workflow("w") as wf:
            BashTask("t", command="true")
        wf.schedule(interval=timedelta(minutes=1))
        engine.submit(wf)
        clock.advance(timedelta(minutes=1))
        wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    finally:
        engine.close()

    engine = Engine(home, stop_grace=2.0, clock=clock)  # same time: 12:01 is not due again
    try:
        settle(engine)
        settle(engine)
        assert ticks(engine) == ["2026-01-01T12:01:00+00:00"]
        clock.advance(timedelta(minutes=1))
        wait_execution(engine, 2, WorkflowStatus.SUCCESS)
        assert ticks(engine) == ["2026-01-01T12:01:00+00:00", "2026-01-01T12:02:00+00:00"]
        assert len(engine.executions(workflow="w")) == 2
    finally:
        engine.close()
