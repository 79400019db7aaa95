"""Task rules through a real engine: when a task starts, stops and restarts."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, Event, TaskAction, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.errors import IllegalTransitionError, NotFoundError
from tests.scheduler.tasks import runs, settle, task_statuses, wait_execution, wait_run

START, STOP, RESTART = TaskAction.START, TaskAction.STOP, TaskAction.RESTART


def idle_task() -> BashTask:
    """A task waiting for an event nobody sends: it keeps its execution RUNNING."""
    task = BashTask("idle", command="true")
    task.action_on_event_received(START, "never")
    return task


def wait_for_file(path: Path) -> str:
    """A command that runs until ``path`` exists."""
    return f"while [ ! -e {shlex.quote(str(path))} ]; do sleep 0.02; done"


def test_task_without_start_rule_runs_when_execution_starts_and_one_with_start_rule_waits(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("eager", command="true")
        BashTask("lazy", command="true").action_on_event_received(START, "go")
    engine.submit(wf)

    ex = engine.start_execution("w")
    assert [te.task for te in engine.task_executions(ex)] == ["eager"]
    wait_run(engine, ex, "eager", TaskStatus.SUCCESS)
    settle(engine)
    assert runs(engine, ex, "lazy") == []
    assert engine.execution(ex).status is WorkflowStatus.RUNNING

    go = engine.send_event("go")
    lazy = wait_run(engine, ex, "lazy", TaskStatus.SUCCESS)
    assert lazy.event["offset"] == go
    wait_execution(engine, ex, WorkflowStatus.SUCCESS)


def test_start_after_runs_only_after_every_upstream_succeeded(engine: Engine) -> None:
    with Workflow("w") as wf:
        a = BashTask("a", command="true")
        b = BashTask("b", command="true").action_on_event_received(START, "go_b")
        BashTask("c", command="true").start_after([a, b])
    engine.submit(wf)
    ex = engine.start_execution("w")

    wait_run(engine, ex, "a", TaskStatus.SUCCESS)
    settle(engine)
    assert runs(engine, ex, "c") == [], "c started although b has not run"

    engine.send_event("go_b")
    c = wait_run(engine, ex, "c", TaskStatus.SUCCESS)
    b = runs(engine, ex, "b")[0]
    assert c.create_time >= b.end_time
    assert (c.event["key"], c.event["value"]["task"], c.event["value"]["status"]) == (
        "aiflow.task.status",
        "b",
        "SUCCESS",
    )
    assert len(runs(engine, ex, "c")) == 1
    wait_execution(engine, ex, WorkflowStatus.SUCCESS)


def test_start_after_does_not_run_when_an_upstream_fails(engine: Engine) -> None:
    with Workflow("w") as wf:
        a = BashTask("a", command="true")
        b = BashTask("b", command="exit 1")
        BashTask("c", command="true").start_after([a, b])
    engine.submit(wf)
    ex = engine.start_execution("w")

    wait_execution(engine, ex, WorkflowStatus.FAILED)
    settle(engine)
    assert runs(engine, ex, "a")[0].status is TaskStatus.SUCCESS
    assert runs(engine, ex, "b")[0].status is TaskStatus.FAILED
    assert runs(engine, ex, "c") == []


def test_event_rule_fires_only_for_its_namespace_and_key(engine: Engine) -> None:
    with Workflow("w", namespace="ns1") as wf:
        BashTask("own_ns", command="true").action_on_event_received(START, "go")
        BashTask("other_ns", command="true").action_on_event_received(START, "go", namespace="shared")
    engine.submit(wf)
    ex = engine.start_execution("w", namespace="ns1")

    engine.send_event("go")  # namespace "default"
    engine.send_event("go", namespace="ns2")
    engine.send_event("gone", namespace="ns1")
    engine.send_event("gone", namespace="shared")
    settle(engine)
    assert engine.task_executions(ex) == []

    in_ns1 = engine.send_event("go", namespace="ns1")
    assert wait_run(engine, ex, "own_ns", TaskStatus.SUCCESS).event["offset"] == in_ns1
    settle(engine)
    assert runs(engine, ex, "other_ns") == []

    in_shared = engine.send_event("go", namespace="shared")
    assert wait_run(engine, ex, "other_ns", TaskStatus.SUCCESS).event["offset"] == in_shared
    assert len(runs(engine, ex, "own_ns")) == 1


def test_event_rule_with_sender_or_value_fires_only_for_matching_events(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("from_alice", command="true").action_on_event_received(START, "go", sender="alice")
        BashTask("hour_10", command="true").action_on_event_received(START, "go", value={"hour": 10})
    engine.submit(wf)
    ex = engine.start_execution("w")

    engine.send_event("go", {"hour": 11}, sender="bob")
    engine.send_event("go")
    engine.send_event("go", {"hour": "10"}, sender="alice ")
    settle(engine)
    assert engine.task_executions(ex) == []

    by_alice = engine.send_event("go", {"hour": 11}, sender="alice")
    hour_10 = engine.send_event("go", {"hour": 10}, sender="bob")
    assert wait_run(engine, ex, "from_alice", TaskStatus.SUCCESS).event["offset"] == by_alice
    assert wait_run(engine, ex, "hour_10", TaskStatus.SUCCESS).event["offset"] == hour_10
    wait_execution(engine, ex, WorkflowStatus.SUCCESS)
    assert len(engine.task_executions(ex)) == 2


def go_workflow(name: str, key: str = "go") -> Workflow:
    with Workflow(name) as wf:
        BashTask("t", command="true").action_on_event_received(START, key)
    return wf


def test_event_from_inside_an_execution_only_affects_that_execution(engine: Engine) -> None:
    engine.submit(go_workflow("w1"))
    engine.submit(go_workflow("w2"))
    ex1, ex2 = engine.start_execution("w1"), engine.start_execution("w1")
    ex3 = engine.start_execution("w2")

    offset = engine.send_event("go", context={"execution_id": ex1})
    assert wait_run(engine, ex1, "t", TaskStatus.SUCCESS).event["offset"] == offset
    settle(engine)
    assert engine.task_executions(ex2) == []
    assert engine.task_executions(ex3) == []
    assert engine.execution(ex2).status is WorkflowStatus.RUNNING


def test_event_from_outside_affects_every_running_execution_of_matching_workflows(engine: Engine) -> None:
    engine.submit(go_workflow("w1"))
    engine.submit(go_workflow("w2"))
    engine.submit(go_workflow("w3", key="other"))
    ex1, ex2 = engine.start_execution("w1"), engine.start_execution("w1")
    stopped = engine.start_execution("w1")
    engine.stop_execution(stopped)
    ex3 = engine.start_execution("w2")
    unrelated = engine.start_execution("w3")

    offset = engine.send_event("go")
    for ex in (ex1, ex2, ex3):
        assert wait_run(engine, ex, "t", TaskStatus.SUCCESS).event["offset"] == offset
        assert len(engine.task_executions(ex)) == 1
    settle(engine)
    assert engine.task_executions(stopped) == []
    assert engine.task_executions(unrelated) == []


def test_start_on_a_running_task_is_ignored_and_start_after_it_finished_makes_seq_2(
    engine: Engine, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    with Workflow("w") as wf:
        BashTask("t", command=wait_for_file(release)).action_on_event_received(START, "go")
        idle_task()
    engine.submit(wf)
    ex = engine.start_execution("w")

    first = engine.send_event("go")
    wait_run(engine, ex, "t", TaskStatus.RUNNING)
    engine.send_event("go")
    settle(engine)
    [only] = runs(engine, ex, "t")
    assert (only.seq, only.status, only.event["offset"]) == (1, TaskStatus.RUNNING, first)

    release.touch()
    wait_run(engine, ex, "t", TaskStatus.SUCCESS)
    again = engine.send_event("go")
    second = wait_run(engine, ex, "t", TaskStatus.SUCCESS, seq=2)
    assert second.event["offset"] == again
    assert [te.seq for te in runs(engine, ex, "t")] == [1, 2]


def test_restart_stops_the_running_task_and_starts_the_next_seq(engine: Engine) -> None:
    with Workflow("w") as wf:
        t = BashTask("t", command="sleep 30")
        t.action_on_event_received(START, "go")
        t.action_on_event_received(RESTART, "restart")
    engine.submit(wf)
    ex = engine.start_execution("w")

    engine.send_event("go")
    wait_run(engine, ex, "t", TaskStatus.RUNNING)
    restart = engine.send_event("restart")
    second = wait_run(engine, ex, "t", TaskStatus.RUNNING, seq=2)
    first = runs(engine, ex, "t")[0]
    assert first.status is TaskStatus.STOPPED
    assert task_statuses(engine, first.id) == ["QUEUED", "RUNNING", "STOPPING", "STOPPED"]
    assert second.event["offset"] == restart
    assert second.create_time >= first.end_time
    assert len(runs(engine, ex, "t")) == 2

    engine.stop_execution(ex)
    wait_run(engine, ex, "t", TaskStatus.STOPPED, seq=2)


def test_restart_of_a_task_that_is_not_running_starts_it(engine: Engine) -> None:
    with Workflow("w") as wf:
        t = BashTask("t", command="true").action_on_event_received(START, "never_sent")
        t.action_on_event_received(RESTART, "restart")
        idle_task()
    engine.submit(wf)
    ex = engine.start_execution("w")
    settle(engine)
    assert runs(engine, ex, "t") == []

    engine.send_event("restart")
    wait_run(engine, ex, "t", TaskStatus.SUCCESS)
    engine.send_event("restart")
    wait_run(engine, ex, "t", TaskStatus.SUCCESS, seq=2)
    assert [te.status for te in runs(engine, ex, "t")] == [TaskStatus.SUCCESS, TaskStatus.SUCCESS]


def test_a_task_with_only_a_restart_rule_starts_with_its_execution(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="sleep 30").action_on_event_received(RESTART, "drift")
    engine.submit(wf)
    ex = engine.start_execution("w")

    wait_run(engine, ex, "t", TaskStatus.RUNNING)
    engine.send_event("drift")
    wait_run(engine, ex, "t", TaskStatus.RUNNING, seq=2)
    engine.stop_execution(ex)
    wait_run(engine, ex, "t", TaskStatus.STOPPED, seq=2)


def test_stop_stops_the_running_task_through_stopping(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="sleep 30").action_on_event_received(STOP, "halt")
    engine.submit(wf)
    ex = engine.start_execution("w")  # a STOP rule is no START rule: t starts with the execution

    wait_run(engine, ex, "t", TaskStatus.RUNNING)
    engine.send_event("halt")
    stopped = wait_run(engine, ex, "t", TaskStatus.STOPPED)
    assert task_statuses(engine, stopped.id) == ["QUEUED", "RUNNING", "STOPPING", "STOPPED"]
    engine.send_event("halt")
    settle(engine)
    assert runs(engine, ex, "t") == [stopped]


def test_manual_start_stop_and_restart_of_a_task(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="sleep 30").action_on_event_received(START, "never")
    engine.submit(wf)
    ex = engine.start_execution("w")

    engine.start_task(ex, "t")
    wait_run(engine, ex, "t", TaskStatus.RUNNING)
    engine.start_task(ex, "t")  # alive: ignored
    settle(engine)
    assert len(runs(engine, ex, "t")) == 1

    engine.restart_task(ex, "t")
    wait_run(engine, ex, "t", TaskStatus.RUNNING, seq=2)
    assert runs(engine, ex, "t")[0].status is TaskStatus.STOPPED

    engine.stop_task(ex, "t")
    stopped = wait_run(engine, ex, "t", TaskStatus.STOPPED, seq=2)
    assert task_statuses(engine, stopped.id) == ["QUEUED", "RUNNING", "STOPPING", "STOPPED"]

    engine.start_task(ex, "t")
    wait_run(engine, ex, "t", TaskStatus.RUNNING, seq=3)
    assert [te.seq for te in runs(engine, ex, "t")] == [1, 2, 3]

    with pytest.raises(NotFoundError, match="no task 'nope'"):
        engine.start_task(ex, "nope")
    engine.stop_execution(ex)
    wait_run(engine, ex, "t", TaskStatus.STOPPED, seq=3)
    with pytest.raises(IllegalTransitionError, match="STOPPED"):
        engine.start_task(ex, "t")


def test_stop_after_a_restart_still_under_way_cancels_the_restart(engine: Engine) -> None:
    with Workflow("w") as wf:
        t = BashTask("t", command="sleep 30")
        t.action_on_event_received(START, "go")
        t.action_on_event_received(RESTART, "restart")
        t.action_on_event_received(STOP, "halt")
    engine.submit(wf)
    ex = engine.start_execution("w")
    engine.send_event("go")
    wait_run(engine, ex, "t", TaskStatus.RUNNING)

    # One batch: the STOP arrives while the restart's stop is under way.
    engine.send_events([Event("restart"), Event("halt")])
    stopped = wait_run(engine, ex, "t", TaskStatus.STOPPED)
    settle(engine)
    assert runs(engine, ex, "t") == [stopped]
    assert task_statuses(engine, stopped.id) == ["QUEUED", "RUNNING", "STOPPING", "STOPPED"]
