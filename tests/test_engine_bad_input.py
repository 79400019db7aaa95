"""Bad input through a real engine raises the specific error and leaves the database as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiflow_nb import BashTask, Engine, Event, TaskStatus, TaskStatusCondition, Workflow, WorkflowStatus, errors
from aiflow_nb.events import MAX_VALUE_BYTES
from tests.workflow.conds import ForgetfulParams

Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot(engine: Engine) -> Snapshot:
    """Every row of every table, in a stable order."""
    conn = engine.db.conn
    with engine.db.lock:
        tables = [
            name
            for (name,) in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'main' order by all"
            ).fetchall()
        ]
        return {t: conn.execute(f'select * from "{t}" order by all').fetchall() for t in tables}


def good_workflow(tmp_path: Path) -> Workflow:
    with Workflow("good") as wf:
        BashTask("first", command="echo first", cwd=str(tmp_path))
        waiter = BashTask("waiter", command="echo waited", cwd=str(tmp_path))
        waiter.action_on_event_received("START", "go")
        BashTask("after", command="echo after", cwd=str(tmp_path)).start_after(waiter)
    return wf


def latest(engine: Engine, ex_id: int) -> dict[str, TaskStatus]:
    return {te.task: te.status for te in engine.task_executions(ex_id)}


def settle(engine: Engine) -> None:
    """Drive the scheduler until a round does nothing."""
    engine.wait_for(lambda: not engine.step(), timeout=30, what="the engine to go idle")


@pytest.fixture
def busy_engine(engine: Engine, tmp_path: Path) -> tuple[Engine, int]:
    """An engine with history: a workflow, events, a finished task and a RUNNING execution."""
    assert engine.submit(good_workflow(tmp_path)) == 1
    engine.send_event("noise", {"n": 1})
    engine.send_events([Event("noise", 2, sender="me"), Event("other", namespace="elsewhere")], ["n2", None])
    ex_id = engine.start_execution("good")
    engine.wait_for(
        lambda: latest(engine, ex_id).get("first") is TaskStatus.SUCCESS, timeout=60, what="task 'first' to succeed"
    )
    settle(engine)
    assert engine.execution(ex_id).status is WorkflowStatus.RUNNING  # "waiter" still waits on "go"
    return engine, ex_id


BadInput = tuple[str, Callable[[], object], type[Exception], list[str]]


def bad_inputs(engine: Engine, ex_id: int, tmp_path: Path) -> list[BadInput]:
    """(what, call, expected error, words its message must contain)."""

    def unknown_upstream() -> Workflow:
        wf = good_workflow(tmp_path)
        wf.tasks["after"].start_after("ghost")  # a rule added after construction
        return wf

    def empty() -> Workflow:
        return Workflow("empty")

    def status_trigger() -> Workflow:
        wf = good_workflow(tmp_path)
        wf.trigger_on(TaskStatusCondition({"first": "SUCCESS"}))
        return wf

    def forgetful() -> Workflow:
        wf = good_workflow(tmp_path)
        wf.tasks["first"].action_on_condition("STOP", ForgetfulParams("special"))
        return wf

    big = "x" * MAX_VALUE_BYTES
    return [
        ("rule names an unknown task", lambda: engine.submit(unknown_upstream()), errors.UnknownTaskError,
         ["'ghost'", "'after'"]),
        ("workflow with no tasks", lambda: engine.submit(empty()), errors.SpecError, ["'empty'", "no tasks"]),
        ("trigger on a task status", lambda: engine.submit(status_trigger()), errors.SpecError, ["trigger 1"]),
        ("condition that does not rebuild", lambda: engine.submit(forgetful()), errors.SpecError,
         ["ForgetfulParams"]),
        ("event with an empty key", lambda: engine.send_event(""), errors.InvalidEventError, ["key"]),
        ("event with an empty namespace", lambda: engine.send_event("k", namespace=""), errors.InvalidEventError,
         ["namespace"]),
        ("oversized event", lambda: engine.send_event("huge", big), errors.EventTooLargeError,
         ["'huge'", str(MAX_VALUE_BYTES)]),
        ("event that is not JSON-able", lambda: engine.send_event("obj", object()), errors.InvalidEventError,
         ["'obj'", "JSON"]),
        ("batch with one bad event", lambda: engine.send_events([Event("fine"), Event("go"), Event("bad", {1})]),
         errors.InvalidEventError, ["'bad'"]),
        ("empty idempotency key", lambda: engine.send_event("go", idempotency_key=""), errors.InvalidEventError,
         ["idempotency key"]),
        ("start an unknown workflow", lambda: engine.start_execution("nope"), errors.NotFoundError, ["nope"]),
        ("start in an unknown namespace", lambda: engine.start_execution("good", namespace="elsewhere"),
         errors.NotFoundError, ["elsewhere/good"]),
        ("stop an unknown execution", lambda: engine.stop_execution(ex_id + 1000), errors.NotFoundError,
         [str(ex_id + 1000)]),
        ("start an unknown task", lambda: engine.start_task(ex_id, "ghost"), errors.NotFoundError,
         ["'ghost'", str(ex_id)]),
        ("restart an unknown task", lambda: engine.restart_task(ex_id, "ghost"), errors.NotFoundError, ["'ghost'"]),
        ("start a task of an unknown execution", lambda: engine.start_task(ex_id + 1000, "waiter"),
         errors.NotFoundError, [str(ex_id + 1000)]),
        ("pause an unknown workflow", lambda: engine.pause("nope"), errors.NotFoundError, ["nope"]),
        ("delete an unknown workflow", lambda: engine.delete_workflow("nope"), errors.NotFoundError, ["nope"]),
        ("an unknown execution", lambda: engine.execution(ex_id + 1000), errors.NotFoundError, [str(ex_id + 1000)]),
        ("an unknown task execution", lambda: engine.task_execution(99_999), errors.NotFoundError, ["99999"]),
    ]  # fmt: skip


def test_each_bad_input_raises_and_changes_nothing(busy_engine: tuple[Engine, int], tmp_path: Path) -> None:
    engine, ex_id = busy_engine
    before = snapshot(engine)
    assert before["events"] and before["executions"] and before["task_executions"] and before["workflow_versions"]
    for what, call, error, words in bad_inputs(engine, ex_id, tmp_path):
        with pytest.raises(error) as info:
            call()
        message = str(info.value)
        for word in words:
            assert word in message, f"{what}: {word!r} not in {message!r}"
        assert snapshot(engine) == before, f"{what} changed the database"
    # Nothing pending either: a scheduler round after all that changes nothing.
    engine.step()
    assert snapshot(engine) == before


def test_engine_still_works_after_bad_input(busy_engine: tuple[Engine, int], tmp_path: Path) -> None:
    engine, ex_id = busy_engine
    before = engine.log.latest_offset()
    for _what, call, error, _words in bad_inputs(engine, ex_id, tmp_path):
        with pytest.raises(error):
            call()
    # The good workflow carries on: "go" starts "waiter", whose success starts "after".
    offset = engine.send_event("go")
    assert offset == before + 1  # no offset was taken by the refused calls
    engine.wait_for(lambda: engine.execution(ex_id).status.finished, timeout=60, what="the execution to finish")
    assert engine.execution(ex_id).status is WorkflowStatus.SUCCESS
    assert latest(engine, ex_id) == dict.fromkeys(["first", "waiter", "after"], TaskStatus.SUCCESS)
    # Ids and offsets continue from what was committed: none was taken by the failed calls.
    second = engine.start_execution("good")
    assert second == ex_id + 1
    engine.wait_for(lambda: latest(engine, second).get("first") is TaskStatus.SUCCESS, timeout=60, what="'first'")
    assert [wf.version for wf in engine.workflows()] == [1]


def test_stop_of_a_finished_execution_is_illegal_and_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    with Workflow("once") as wf:
        BashTask("t", command="true", cwd=str(tmp_path))
    engine.submit(wf)
    ex_id = engine.start_execution("once")
    engine.wait_for(lambda: engine.execution(ex_id).status.finished, timeout=60, what="the execution to finish")
    settle(engine)
    before = snapshot(engine)
    with pytest.raises(errors.IllegalTransitionError, match=f"execution {ex_id} is SUCCESS"):
        engine.stop_execution(ex_id)
    with pytest.raises(errors.IllegalTransitionError, match="not RUNNING"):
        engine.start_task(ex_id, "t")
    assert snapshot(engine) == before


def test_bad_input_on_a_fresh_engine_leaves_it_empty(engine: Engine) -> None:
    before = snapshot(engine)
    assert all(rows == [] for name, rows in before.items() if name != "checkpoint")
    with pytest.raises(errors.SpecError):
        engine.submit(Workflow("empty"))
    with pytest.raises(errors.EventTooLargeError):
        engine.send_events([Event("big", "y" * (MAX_VALUE_BYTES + 1))])
    with pytest.raises(errors.NotFoundError):
        engine.start_execution("nothing")
    assert snapshot(engine) == before
    assert engine.send_event("first") == 1
