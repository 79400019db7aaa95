"""How the scheduler reads the log: new events at once, unwatched ones passed over."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, Event, TaskStatus, Workflow, WorkflowStatus
from tests.scheduler.tasks import settle, wait_run


def waiting_workflow(name: str, trigger: str) -> Workflow:
    """A workflow each ``trigger`` event starts; its task waits for an event that never comes."""
    with Workflow(name) as wf:
        BashTask("t", command="true").action_on_event_received("START", "never")
    wf.trigger_on(trigger)
    return wf


def test_an_event_is_acted_on_in_the_transaction_that_appends_it(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="sleep 30")
    wf.trigger_on("go")
    engine.submit(wf)

    offset = engine.send_event("go")

    # No loop runs and nothing was stepped: the execution, its task and the
    # launch were committed with the event and the task sent right after.
    (ex,) = engine.executions(workflow="w")
    assert ex.status is WorkflowStatus.RUNNING and ex.event is not None and ex.event["offset"] == offset
    (run,) = engine.task_executions(ex.id)
    assert run.status is TaskStatus.RUNNING
    assert engine.scheduler.checkpoint >= offset  # applied, as are the status events it caused
    engine.stop_execution(ex.id)


def test_a_task_started_and_stopped_in_one_transaction_is_stopped(engine: Engine, tmp_path: Path) -> None:
    with Workflow("w") as wf:
        t = BashTask("t", command=f"sleep 30; touch {tmp_path}/finished")
        # Its own RUNNING status stops it: committed RUNNING, then STOPPING, in the transaction that starts it.
        t.action_on_task_status("STOP", {"t": "RUNNING"})
    wf.trigger_on("go")
    engine.submit(wf)

    engine.send_event("go")

    (ex,) = engine.executions(workflow="w")
    wait_run(engine, ex.id, "t", TaskStatus.STOPPED, timeout=15)  # not after its 30 s
    assert not (tmp_path / "finished").exists()


@pytest.mark.parametrize("workflows", [1, 20], ids=["few watched keys", "many watched keys"])
def test_unwatched_events_are_passed_over_and_the_watched_ones_among_them_all_fire(home: Path, workflows: int) -> None:
    # A small batch size: the watched events span many batches and windows.
    engine = Engine(home, batch_size=7)
    try:
        for i in range(workflows):
            engine.submit(waiting_workflow(f"w{i}", f"go.{i}"))
        events, expected = [], 0
        for n in range(3_000):
            if n % 37 == 0:
                events.append(Event(f"go.{n % workflows}", n))
                expected += 1
            elif n % 101 == 0:
                events.append(Event("go.0", n, namespace="elsewhere"))  # a watched key, another namespace
            else:
                events.append(Event("noise", n))
        engine.send_events(events[:1_000])
        engine.send_events(events[1_000:])
        settle(engine)

        started = sorted(ex.event["value"] for ex in engine.executions() if ex.event is not None)
        assert started == [n for n in range(3_000) if n % 37 == 0]
        assert len(started) == expected
    finally:
        engine.close()


def test_a_scheduler_fault_on_new_events_does_not_lose_them(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine.submit(waiting_workflow("w", "go"))

    def broken(event: Event) -> None:
        raise RuntimeError("a bug in a rule")

    with monkeypatch.context() as patch:
        patch.setattr(engine.scheduler, "process", broken)
        offset = engine.send_event("go", "kept")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "scheduler failed on new events; appending them without it"
    ]
    caplog.clear()  # the error above is expected

    assert [e.value for e in engine.events(key="go")] == ["kept"]
    assert engine.executions(workflow="w") == []
    # Once the fault is gone, the loop applies the rules to the event it kept.
    engine.wait_for(lambda: engine.executions(workflow="w"), 10, "the execution")
    (ex,) = engine.executions(workflow="w")
    assert ex.event is not None and ex.event["offset"] == offset
