"""Conditions through a real engine: AllOf, AnyOf and a stateful custom condition."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aiflow_nb import AllOf, AnyOf, BashTask, Engine, EventCondition, TaskAction, TaskStatus, Workflow
from tests.scheduler.conds import EverySecond, Fragile
from tests.scheduler.tasks import runs, settle, wait_run

START = TaskAction.START


def workflow_with(condition: EventCondition | AllOf | AnyOf | EverySecond) -> Workflow:
    """``t`` starts on ``condition``; ``idle`` waits for an event nobody sends, so executions stay RUNNING."""
    with Workflow("w") as wf:
        BashTask("t", command="true").action_on_condition(START, condition)
        BashTask("idle", command="true").action_on_event_received(START, "never")
    return wf


def test_all_of_fires_only_once_each_child_was_met_and_then_resets(engine: Engine) -> None:
    engine.submit(workflow_with(AllOf([EventCondition("a"), EventCondition("b")])))
    ex = engine.start_execution("w")

    engine.send_event("a")
    engine.send_event("a")
    engine.send_event("c")
    settle(engine)
    assert runs(engine, ex, "t") == []

    b = engine.send_event("b")
    assert wait_run(engine, ex, "t", TaskStatus.SUCCESS).event["offset"] == b

    # Met and reset: one more child alone is not enough.
    engine.send_event("b")
    engine.send_event("b")
    settle(engine)
    assert len(runs(engine, ex, "t")) == 1

    a = engine.send_event("a")
    assert wait_run(engine, ex, "t", TaskStatus.SUCCESS, seq=2).event["offset"] == a
    settle(engine)
    assert len(runs(engine, ex, "t")) == 2


def test_any_of_fires_on_each_event_of_any_child(engine: Engine) -> None:
    engine.submit(workflow_with(AnyOf([EventCondition("a"), EventCondition("b", sender="s")])))
    ex = engine.start_execution("w")

    engine.send_event("c")
    engine.send_event("b", sender="other")
    settle(engine)
    assert runs(engine, ex, "t") == []

    a = engine.send_event("a")
    assert wait_run(engine, ex, "t", TaskStatus.SUCCESS).event["offset"] == a
    b = engine.send_event("b", sender="s")
    assert wait_run(engine, ex, "t", TaskStatus.SUCCESS, seq=2).event["offset"] == b
    a2 = engine.send_event("a")
    assert wait_run(engine, ex, "t", TaskStatus.SUCCESS, seq=3).event["offset"] == a2


def test_custom_condition_fires_on_every_second_event_with_state_per_execution(engine: Engine) -> None:
    engine.submit(workflow_with(EverySecond("tick")))
    ex1, ex2 = engine.start_execution("w"), engine.start_execution("w")

    engine.send_event("tick", context={"execution_id": ex1})  # ex1: 1
    settle(engine)
    assert engine.task_executions(ex1) == []

    second = engine.send_event("tick")  # ex1: 2 (fires), ex2: 1
    assert wait_run(engine, ex1, "t", TaskStatus.SUCCESS).event["offset"] == second
    settle(engine)
    assert engine.task_executions(ex2) == []

    third = engine.send_event("tick")  # ex1: 3, ex2: 2 (fires)
    assert wait_run(engine, ex2, "t", TaskStatus.SUCCESS).event["offset"] == third
    settle(engine)
    assert len(runs(engine, ex1, "t")) == 1

    fourth = engine.send_event("tick")  # ex1: 4 (fires), ex2: 3
    assert wait_run(engine, ex1, "t", TaskStatus.SUCCESS, seq=2).event["offset"] == fourth
    settle(engine)
    assert len(runs(engine, ex2, "t")) == 1


def test_custom_condition_state_survives_closing_and_reopening_the_engine(home: Path) -> None:
    engine = Engine(home, stop_grace=2.0)
    try:
        engine.submit(workflow_with(EverySecond("tick")))
        ex = engine.start_execution("w")
        engine.send_event("tick")
        settle(engine)
        assert engine.task_executions(ex) == []
    finally:
        engine.close()

    engine = Engine(home, stop_grace=2.0)
    try:
        second = engine.send_event("tick")
        assert wait_run(engine, ex, "t", TaskStatus.SUCCESS).event["offset"] == second
        engine.send_event("tick")
        settle(engine)
        assert len(runs(engine, ex, "t")) == 1
    finally:
        engine.close()

    engine = Engine(home, stop_grace=2.0)
    try:
        fourth = engine.send_event("tick")
        assert wait_run(engine, ex, "t", TaskStatus.SUCCESS, seq=2).event["offset"] == fourth
    finally:
        engine.close()


def test_a_condition_that_raises_is_not_met_leaves_its_state_and_does_not_stall_the_scheduler(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="true").action_on_condition(START, Fragile("tick"))
        BashTask("u", command="true").action_on_event_received(START, "go")
    engine.submit(wf)
    ex = engine.start_execution("w")

    engine.send_event("tick")  # count 1
    bad = engine.send_event("tick", "bad")  # raises: not met, count stays 1
    go = engine.send_event("go")
    assert wait_run(engine, ex, "u", TaskStatus.SUCCESS).event["offset"] == go
    settle(engine)
    assert runs(engine, ex, "t") == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"rule t#1: Fragile raised on event {bad}; taken as not met"]
    caplog.clear()  # the error above is expected

    second = engine.send_event("tick")  # count 2: met
    assert wait_run(engine, ex, "t", TaskStatus.SUCCESS).event["offset"] == second
