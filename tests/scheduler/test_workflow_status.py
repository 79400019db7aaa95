"""Workflow execution status, stopping executions, versions and the task status events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, PythonTask, TaskAction, TaskStatus, Workflow, WorkflowStatus
from tests.scheduler.tasks import REPO_ROOT, runs, settle, task_statuses, wait_execution, wait_run

START = TaskAction.START


@pytest.fixture(autouse=True)
def importable_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Task processes import ``tests.scheduler.tasks`` from the repository."""
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    yield


def execution_statuses(engine: Engine, execution_id: int) -> list[str]:
    return [
        e.value["status"]
        for e in engine.events(key="aiflow.execution.status")
        if e.value["execution_id"] == execution_id
    ]


def test_all_tasks_succeeding_makes_the_execution_succeed(engine: Engine) -> None:
    with Workflow("w") as wf:
        a = BashTask("a", command="true")
        BashTask("b", command="true").start_after(a)
        BashTask("c", command="true")
    engine.submit(wf)
    ex = engine.start_execution("w")

    done = wait_execution(engine, ex, WorkflowStatus.SUCCESS)
    assert sorted(te.task for te in engine.task_executions(ex)) == ["a", "b", "c"]
    assert all(te.status is TaskStatus.SUCCESS for te in engine.task_executions(ex))
    assert done.end_time >= max(te.end_time for te in engine.task_executions(ex))
    settle(engine)
    assert execution_statuses(engine, ex) == ["RUNNING", "SUCCESS"]


def test_a_failed_task_makes_the_execution_fail(engine: Engine) -> None:
    with Workflow("w") as wf:
        a = PythonTask("a", callable="tests.scheduler.tasks:fail", kwargs={"message": "bad input"})
        BashTask("b", command="true").start_after(a)
        BashTask("c", command="true")
    engine.submit(wf)
    ex = engine.start_execution("w")

    wait_execution(engine, ex, WorkflowStatus.FAILED)
    [a_run] = runs(engine, ex, "a")
    assert a_run.status is TaskStatus.FAILED
    assert a_run.error == "ValueError: bad input"
    assert runs(engine, ex, "b") == []
    assert runs(engine, ex, "c")[0].status is TaskStatus.SUCCESS
    settle(engine)
    assert execution_statuses(engine, ex) == ["RUNNING", "FAILED"]


def test_a_failure_handled_by_a_rule_runs_the_handler(engine: Engine) -> None:
    with Workflow("w") as wf:
        a = BashTask("a", command="exit 3")
        BashTask("b", command="true").start_after(a)
        BashTask("on_failure", command="true").action_on_task_status(START, {a: TaskStatus.FAILED})
    engine.submit(wf)
    ex = engine.start_execution("w")

    handler = wait_run(engine, ex, "on_failure", TaskStatus.SUCCESS)
    assert handler.event["value"]["task"] == "a"
    assert handler.event["value"]["status"] == "FAILED"
    assert handler.event["value"]["error"] == "command exited with code 3"
    # The failure was handled, so it does not fail the execution.
    wait_execution(engine, ex, WorkflowStatus.SUCCESS)
    assert runs(engine, ex, "b") == []


def test_stop_execution_stops_its_alive_tasks_and_the_execution_is_stopped(engine: Engine) -> None:
    with Workflow("w") as wf:
        a = BashTask("a", command="sleep 30")
        BashTask("b", command="sleep 30")
        BashTask("c", command="true").start_after(a)
    engine.submit(wf)
    ex = engine.start_execution("w")
    wait_run(engine, ex, "a", TaskStatus.RUNNING)
    wait_run(engine, ex, "b", TaskStatus.RUNNING)

    engine.stop_execution(ex)
    assert engine.execution(ex).status is WorkflowStatus.STOPPED
    for task in ("a", "b"):
        stopped = wait_run(engine, ex, task, TaskStatus.STOPPED)
        assert task_statuses(engine, stopped.id) == ["QUEUED", "RUNNING", "STOPPING", "STOPPED"]
    settle(engine)
    assert runs(engine, ex, "c") == []
    assert execution_statuses(engine, ex) == ["RUNNING", "STOPPED"]


def test_stop_execution_stops_a_queued_task_without_running_it(home: Path) -> None:
    engine = Engine(home, stop_grace=2.0, max_parallel=1)
    try:
        with Workflow("w") as wf:
            BashTask("a", command="sleep 30")
            BashTask("b", command="sleep 30")
        engine.submit(wf)
        ex = engine.start_execution("w")
        first = engine.wait_for(
            lambda: [te for te in engine.task_executions(ex) if te.status is TaskStatus.RUNNING], 30, "a run"
        )[0]
        other = next(te for te in engine.task_executions(ex) if te.id != first.id)
        assert other.status is TaskStatus.QUEUED  # max_parallel=1

        engine.stop_execution(ex)
        wait_run(engine, ex, first.task, TaskStatus.STOPPED)
        settle(engine)
        assert task_statuses(engine, other.id) == ["QUEUED", "STOPPED"]
        assert engine.task_execution(other.id).start_time is None
    finally:
        engine.close()


def versioned(command: str) -> Workflow:
    with Workflow("w") as wf:
        BashTask("t", command=command).action_on_event_received(START, "go")
    return wf


def test_resubmitting_an_unchanged_workflow_keeps_its_version(engine: Engine) -> None:
    assert engine.submit(versioned("echo v1")) == 1
    assert engine.submit(versioned("echo v1")) == 1
    assert engine.workflow_info("w").version == 1
    assert engine.workflow("w") == versioned("echo v1")


def test_a_changed_workflow_gets_a_new_version_and_a_running_execution_keeps_its_own(engine: Engine) -> None:
    assert engine.submit(versioned("echo v1")) == 1
    old = engine.start_execution("w")
    assert engine.submit(versioned("echo v2")) == 2
    new = engine.start_execution("w")
    assert (engine.execution(old).version, engine.execution(new).version) == (1, 2)
    assert engine.workflow("w", version=1) == versioned("echo v1")
    assert engine.workflow("w") == versioned("echo v2")

    engine.send_event("go")  # reaches both executions
    old_run = wait_run(engine, old, "t", TaskStatus.SUCCESS)
    new_run = wait_run(engine, new, "t", TaskStatus.SUCCESS)
    assert (engine.run_dir(old_run.id) / "log.txt").read_text().strip() == "v1"
    assert (engine.run_dir(new_run.id) / "log.txt").read_text().strip() == "v2"


def test_every_task_status_change_is_an_event_scoped_to_its_execution(engine: Engine) -> None:
    with Workflow("w") as wf:
        a = BashTask("a", command="exit 1", max_retries=1)
        BashTask("b", command="true").action_on_task_status(START, {a: TaskStatus.FAILED})
    with Workflow("bystander") as other:
        # Same task names: only status events of its own executions may start its b.
        a2 = BashTask("a", command="true").action_on_event_received(START, "never")
        BashTask("b", command="true").action_on_task_status(START, {a2: TaskStatus.FAILED})
    engine.submit(wf)
    engine.submit(other)
    bystander = engine.start_execution("bystander")
    ex = engine.start_execution("w")

    wait_execution(engine, ex, WorkflowStatus.SUCCESS)
    settle(engine)
    events = [e for e in engine.events(key="aiflow.task.status") if e.value["execution_id"] == ex]
    a_run, b_run = runs(engine, ex, "a")[0], runs(engine, ex, "b")[0]
    assert [(e.value["task"], e.value["attempt"], e.value["status"]) for e in events] == [
        ("a", 1, "QUEUED"),
        ("a", 1, "RUNNING"),
        ("a", 1, "RETRYING"),
        ("a", 2, "QUEUED"),
        ("a", 2, "RUNNING"),
        ("a", 2, "FAILED"),
        ("b", 1, "QUEUED"),
        ("b", 1, "RUNNING"),
        ("b", 1, "SUCCESS"),
    ]
    for e in events:
        te = a_run if e.value["task"] == "a" else b_run
        assert e.context == {"execution_id": ex}
        assert e.namespace == "default"
        assert e.sender == f"{ex}/{te.task}/1"
        assert (e.value["workflow"], e.value["task_execution_id"], e.value["seq"]) == ("w", te.id, 1)
    assert events[5].value["error"] == "command exited with code 1"
    assert engine.task_executions(bystander) == []
