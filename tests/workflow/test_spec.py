"""Workflow specs: every rule kind, schedule and task kind survives to_spec -> JSON -> from_spec."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from aiflow_nb import (
    AllOf,
    AnyOf,
    BashTask,
    ConditionContext,
    Event,
    EventCondition,
    NotebookTask,
    PythonTask,
    TaskAction,
    TaskStatus,
    TaskStatusCondition,
    Workflow,
)
from aiflow_nb.errors import SpecError
from aiflow_nb.events import keys as event_keys
from tests.workflow.conds import EveryNth


def round_trip(wf: Workflow) -> Workflow:
    """to_spec -> JSON text -> from_spec; the copy equals the original and has the same spec."""
    spec = wf.to_spec()
    text = json.dumps(spec)
    assert json.loads(text) == spec  # nothing in the spec is lost by JSON (no tuples, no objects)
    back = Workflow.from_spec(text)
    assert back == wf
    assert back.to_spec() == spec
    assert back.digest() == wf.digest()
    assert Workflow.from_spec(json.loads(text)) == wf  # a dict works as well as the text
    return back


def ctx(state: dict[str, Any] | None = None, namespace: str = "default") -> ConditionContext:
    return ConditionContext(namespace, 1, state if state is not None else {})


def status_event(task: str, status: str, seq: int = 1, namespace: str = "default") -> Event:
    return Event(
        event_keys.TASK_STATUS,
        {"task": task, "seq": seq, "status": status},
        namespace=namespace,
        context={"execution_id": 1},
    )


@pytest.fixture
def notebook_path(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    params = nbformat.v4.new_code_cell("hour = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("result = f'trained {hour}'\nprint(result)")]
    path = tmp_path / "notebooks" / "train.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


# -- rules ---------------------------------------------------------------------------


def test_event_rule_with_namespace_sender_and_value() -> None:
    with Workflow("events", namespace="team") as wf:
        a = BashTask("a", command="echo a")
        a.action_on_event_received(TaskAction.START, "hour_complete", namespace="stream", sender="wm", value={"h": 10})
        a.action_on_event_received("STOP", "halt")
        a.action_on_event_received(TaskAction.RESTART, "model_drift", value=None)
    back = round_trip(wf)
    rules = back.tasks["a"].rules
    assert [r.action for r in rules] == [TaskAction.START, TaskAction.STOP, TaskAction.RESTART]
    assert all(isinstance(r.condition, EventCondition) for r in rules)

    start, stop, restart = (r.condition for r in rules)
    assert start.is_met(Event("hour_complete", {"h": 10}, namespace="stream", sender="wm"), ctx(namespace="team"))
    assert not start.is_met(Event("hour_complete", {"h": 11}, namespace="stream", sender="wm"), ctx())
    assert not start.is_met(Event("hour_complete", {"h": 10}, namespace="stream", sender="other"), ctx())
    assert not start.is_met(Event("hour_complete", {"h": 10}, namespace="team", sender="wm"), ctx())
    # No namespace in the rule: the workflow's namespace.  No value: any value.
    assert stop.is_met(Event("halt", "anything", namespace="team"), ctx(namespace="team"))
    assert not stop.is_met(Event("halt", "anything", namespace="default"), ctx(namespace="team"))
    # value=None is a value to match, not "any value".
    assert restart.is_met(Event("model_drift", None, namespace="team"), ctx(namespace="team"))
    assert not restart.is_met(Event("model_drift", 0.3, namespace="team"), ctx(namespace="team"))


def test_task_status_rule_and_start_after() -> None:
    with Workflow("statuses") as wf:
        a = BashTask("a", command="echo a")
        BashTask("b", command="echo b")
        c = BashTask("c", command="echo c").start_after([a, "b"])
        d = BashTask("d", command="echo d").start_after(c)
        BashTask("alert", command="echo failed").action_on_task_status(
            TaskAction.START, {a: TaskStatus.FAILED, "b": "STOPPED"}
        )
        d.action_on_task_status("STOP", {c: TaskStatus.RUNNING})
    back = round_trip(wf)
    start_c = back.tasks["c"].rules[0]
    assert start_c.action is TaskAction.START
    assert isinstance(start_c.condition, TaskStatusCondition)
    assert start_c.condition.statuses == {"a": TaskStatus.SUCCESS, "b": TaskStatus.SUCCESS}
    assert back.tasks["alert"].rules[0].condition.statuses == {  # type: ignore[attr-defined]
        "a": TaskStatus.FAILED,
        "b": TaskStatus.STOPPED,
    }
    assert [r.action for r in back.tasks["d"].rules] == [TaskAction.START, TaskAction.STOP]
    assert not back.tasks["a"].has_start_rule and back.tasks["c"].has_start_rule
    # The rebuilt condition waits for both upstreams.
    cond, state = start_c.condition, {}
    assert not cond.is_met(status_event("a", "SUCCESS"), ctx(state))
    assert cond.is_met(status_event("b", "SUCCESS"), ctx(state))


def test_all_of_any_of_and_nesting() -> None:
    with Workflow("composite") as wf:
        up = BashTask("up", command="true")
        t = BashTask("t", command="true")
        t.action_on_condition(TaskAction.START, AllOf([EventCondition("x"), EventCondition("y", sender="s")]))
        t.action_on_condition(TaskAction.STOP, AnyOf([EventCondition("halt"), EventCondition("abort", value=1)]))
        nested = AnyOf(
            [
                AllOf([EventCondition("p"), AnyOf([EventCondition("q"), EventCondition("r", namespace="other")])]),
                AllOf([TaskStatusCondition({up: TaskStatus.SUCCESS}), EventCondition("ready")]),
            ]
        )
        t.action_on_condition(TaskAction.RESTART, nested)
    back = round_trip(wf)
    all_of, any_of, deep = (r.condition for r in back.tasks["t"].rules)
    assert isinstance(all_of, AllOf) and isinstance(any_of, AnyOf) and isinstance(deep, AnyOf)
    assert isinstance(deep.conditions[0], AllOf)
    assert isinstance(deep.conditions[0].conditions[1], AnyOf)
    assert isinstance(deep.conditions[1].conditions[0], TaskStatusCondition)
    assert deep.task_names() == {"up"}
    # Rebuilt conditions behave: AllOf needs both children, AnyOf either.
    state: dict[str, Any] = {}
    assert not all_of.is_met(Event("x"), ctx(state))
    assert not all_of.is_met(Event("y", sender="not-s"), ctx(state))
    assert all_of.is_met(Event("y", sender="s"), ctx(state))
    assert any_of.is_met(Event("abort", 1), ctx()) and not any_of.is_met(Event("abort", 2), ctx())
    state = {}
    assert not deep.is_met(Event("p"), ctx(state))
    assert deep.is_met(Event("r", namespace="other"), ctx(state))


def test_custom_condition_by_import_path() -> None:
    with Workflow("custom") as wf:
        BashTask("t", command="true").action_on_condition(TaskAction.START, EveryNth("tick", n=3))
        wf.trigger_on(EveryNth("new_day", n=2, namespace="calendar"))
    spec = wf.to_spec()
    rule_spec = spec["tasks"][0]["rules"][0]["condition"]
    assert rule_spec == {
        "type": "custom",
        "class": "tests.workflow.conds:EveryNth",
        "params": {"key": "tick", "n": 3, "namespace": None},
    }
    back = round_trip(wf)
    cond = back.tasks["t"].rules[0].condition
    assert type(cond) is EveryNth and cond.n == 3
    trigger = back.triggers[0]
    assert type(trigger) is EveryNth and trigger.namespace == "calendar"
    assert trigger.expects(Event("new_day", namespace="calendar"), "default")
    state: dict[str, Any] = {}
    assert [cond.is_met(Event("tick"), ctx(state)) for _ in range(6)] == [False, False, True] * 2


def test_custom_condition_inside_composites() -> None:
    with Workflow("mixed") as wf:
        BashTask("t", command="true").action_on_condition(
            "START", AllOf([EveryNth("a", n=2), AnyOf([EventCondition("b"), EveryNth("c")])])
        )
    back = round_trip(wf)
    cond = back.tasks["t"].rules[0].condition
    assert type(cond.conditions[0]) is EveryNth  # type: ignore[attr-defined]
    assert type(cond.conditions[1].conditions[1]) is EveryNth  # type: ignore[attr-defined]


# -- triggers and schedules ----------------------------------------------------------------


def test_workflow_triggers() -> None:
    with Workflow("triggered", namespace="etl") as wf:
        BashTask("t", command="true")
    wf.trigger_on("file_landed")
    wf.trigger_on(AnyOf([EventCondition("manual", sender="ops"), EventCondition("backfill", namespace="admin")]))
    back = round_trip(wf)
    assert len(back.triggers) == 2
    plain, any_of = back.triggers
    assert isinstance(plain, EventCondition) and isinstance(any_of, AnyOf)
    assert plain.expects(Event("file_landed", namespace="etl"), "etl")
    assert not plain.expects(Event("file_landed"), "etl")


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])
def test_workflow_cron_schedule_with_timezone(tz: str) -> None:
    with Workflow("nightly") as wf:
        BashTask("t", command="true")
    wf.schedule(cron="30 2 * * 1-5", timezone=tz)
    back = round_trip(wf)
    assert back.schedule_ is not None
    assert (back.schedule_.cron, back.schedule_.interval, back.schedule_.timezone) == ("30 2 * * 1-5", None, tz)
    assert back.schedule_ == wf.schedule_


@pytest.mark.parametrize(
    "interval", [timedelta(seconds=1), timedelta(minutes=5), timedelta(milliseconds=1500), timedelta(days=2)]
)
def test_interval_schedule(interval: timedelta) -> None:
    with Workflow("every") as wf:
        BashTask("t", command="true")
    wf.schedule(interval=interval)
    back = round_trip(wf)
    assert back.schedule_ is not None and back.schedule_.interval == interval
    assert back.schedule_.cron is None


def test_task_schedules() -> None:
    with Workflow("task_schedules") as wf:
        BashTask("hourly", command="true").schedule(cron="0 * * * *", timezone="Australia/Sydney")
        BashTask("often", command="true").schedule(interval=timedelta(seconds=90))
        BashTask("plain", command="true")
    back = round_trip(wf)
    hourly, often, plain = (back.tasks[n] for n in ("hourly", "often", "plain"))
    assert hourly.schedule_ is not None and hourly.schedule_.cron == "0 * * * *"
    assert hourly.schedule_.timezone == "Australia/Sydney"
    assert often.schedule_ is not None and often.schedule_.interval == timedelta(seconds=90)
    assert plain.schedule_ is None
    assert hourly.has_start_rule and not plain.has_start_rule


# -- task kinds and options ----------------------------------------------------------------


def test_notebook_task_embeds_the_notebook(notebook_path: Path) -> None:
    with Workflow("train") as wf:
        NotebookTask("train", notebook=str(notebook_path), parameters={"hour": "10:00", "rows": [1, 2]})
        NotebookTask("kernel", notebook=notebook_path, kernel_name="python3", cwd="/tmp")
    notebook_path.unlink()  # the spec no longer needs the file
    spec = json.loads(json.dumps(wf.to_spec()))
    assert "trained {hour}" in json.dumps(spec["tasks"][0]["notebook"])
    back = round_trip(wf)
    train = back.tasks["train"]
    assert isinstance(train, NotebookTask)
    sources = ["".join(c["source"]) for c in train.notebook["cells"]]
    assert sources == ["hour = None", "result = f'trained {hour}'\nprint(result)"]
    assert train.notebook["cells"][0]["metadata"]["tags"] == ["parameters"]
    assert train.parameters == {"hour": "10:00", "rows": [1, 2]}
    assert train.cwd == str(notebook_path.parent.resolve())  # defaults to the notebook's folder
    assert train.path == str(notebook_path)
    kernel = back.tasks["kernel"]
    assert isinstance(kernel, NotebookTask)
    assert (kernel.kernel_name, kernel.cwd) == ("python3", "/tmp")


def test_notebook_task_from_json(notebook_path: Path) -> None:
    nb = json.loads(notebook_path.read_text())
    with Workflow("inline") as wf:
        NotebookTask("t", notebook=nb)
    back = round_trip(wf)
    task = back.tasks["t"]
    assert isinstance(task, NotebookTask)
    assert task.path is None and task.cwd is None
    assert len(task.notebook["cells"]) == 2


def test_notebook_without_cell_ids_gets_stable_ones(tmp_path: Path) -> None:
    # Hand-written nbformat 4.5 notebooks often lack cell ids.  The task fills them in,
    # and the same file gives the same spec each time (so resubmitting it is no new version).
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": [
            {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [], "execution_count": None},
            {"cell_type": "markdown", "source": "# title", "metadata": {}},
        ],
    }
    path = tmp_path / "no_ids.ipynb"
    path.write_text(json.dumps(nb))
    first = NotebookTask("t", notebook=path)
    second = NotebookTask("t", notebook=path)
    ids = [c["id"] for c in first.notebook["cells"]]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 2
    assert first == second
    assert NotebookTask("t", notebook=nb).notebook == first.notebook


def test_python_and_bash_tasks() -> None:
    with Workflow("kinds") as wf:
        PythonTask("py", callable="tests.workflow.conds:EveryNth", kwargs={"n": 4, "key": "x"})
        PythonTask("bare", callable="os.path:join")
        BashTask("sh", command='echo "$AIFLOW_NB_EVENT" | wc -c', cwd="/tmp")
    back = round_trip(wf)
    py, bare, sh = (back.tasks[n] for n in ("py", "bare", "sh"))
    assert isinstance(py, PythonTask)
    assert (py.callable, py.kwargs) == ("tests.workflow.conds:EveryNth", {"n": 4, "key": "x"})
    assert isinstance(bare, PythonTask) and bare.kwargs == {}
    assert isinstance(sh, BashTask) and (sh.command, sh.cwd) == ('echo "$AIFLOW_NB_EVENT" | wc -c', "/tmp")


@pytest.mark.parametrize("kind", ["notebook", "python", "bash"])
def test_common_options(kind: str, notebook_path: Path) -> None:
    options: dict[str, Any] = {
        "streaming": True,
        "max_retries": 3,
        "retry_delay": timedelta(seconds=90),
        "timeout": 600,
    }
    with Workflow("options") as wf:
        if kind == "notebook":
            NotebookTask("t", notebook=notebook_path, **options)
        elif kind == "python":
            PythonTask("t", callable="m:f", **options)
        else:
            BashTask("t", command="true", **options)
        BashTask("defaults", command="true")
    back = round_trip(wf)
    t, defaults = back.tasks["t"], back.tasks["defaults"]
    assert (t.streaming, t.max_retries, t.retry_delay, t.timeout) == (True, 3, 90.0, 600.0)
    assert (defaults.streaming, defaults.max_retries, defaults.retry_delay, defaults.timeout) == (False, 0, 0.0, None)


def test_a_workflow_with_everything() -> None:
    with Workflow("everything", namespace="prod") as wf:
        stream = BashTask("stream", command="sleep 1", streaming=True)
        stream.action_on_event_received(TaskAction.RESTART, "model_drift")
        train = PythonTask("train", callable="m:train", max_retries=2, retry_delay=5)
        train.action_on_event_received("START", "hour_complete", sender="stream")
        evaluate = BashTask("evaluate", command="true", timeout=30).start_after(train)
        evaluate.action_on_condition("STOP", AnyOf([EveryNth("halt"), EventCondition("abort", namespace="ops")]))
        BashTask("report", command="true").schedule(cron="0 9 * * *", timezone="Europe/Berlin")
    wf.trigger_on("deploy")
    wf.schedule(interval=timedelta(hours=6))
    back = round_trip(wf)
    assert list(back.tasks) == ["stream", "train", "evaluate", "report"]
    assert back.namespace == "prod"


def test_specs_that_differ_are_not_equal() -> None:
    def build(command: str, retries: int = 0) -> Workflow:
        with Workflow("w") as wf:
            BashTask("t", command=command, max_retries=retries).action_on_event_received("START", "go")
        return wf

    assert build("echo 1") == build("echo 1")
    assert build("echo 1").digest() == build("echo 1").digest()
    assert build("echo 1") != build("echo 2")
    assert build("echo 1") != build("echo 1", retries=1)
    assert build("echo 1").digest() != build("echo 2").digest()


# -- building workflows ------------------------------------------------------------------


def test_tasks_made_inside_with_join_the_workflow() -> None:
    outside_before = BashTask("outside", command="true")
    with Workflow("outer") as outer:
        a = BashTask("a", command="true")
        with Workflow("inner") as inner:
            b = BashTask("b", command="true")
        c = BashTask("c", command="true")
    outside_after = BashTask("after", command="true")
    assert outer.tasks == {"a": a, "c": c}
    assert inner.tasks == {"b": b}
    assert outer.tasks["a"] is a
    assert "outside" not in outer.tasks and "after" not in outer.tasks
    assert outside_before.name == "outside" and outside_after.name == "after"
    assert list(Workflow.from_spec(outer.to_spec()).tasks) == ["a", "c"]


def test_with_block_exits_cleanly_on_error() -> None:
    with pytest.raises(RuntimeError, match="boom"), Workflow("broken"):
        BashTask("a", command="true")
        raise RuntimeError("boom")
    with Workflow("next") as wf:
        BashTask("b", command="true")
    assert list(wf.tasks) == ["b"]


def test_readding_a_task_replaces_it() -> None:
    with Workflow("replace") as wf:
        BashTask("a", command="echo first")
        BashTask("b", command="echo b")
        newer = BashTask("a", command="echo second", max_retries=1)
    assert list(wf.tasks) == ["a", "b"]
    assert wf.tasks["a"] is newer
    back = round_trip(wf)
    assert back.tasks["a"].command == "echo second"  # type: ignore[attr-defined]
    assert back.tasks["a"].max_retries == 1
    assert [t["name"] for t in wf.to_spec()["tasks"]] == ["a", "b"]

    other = PythonTask("b", callable="m:f")
    wf.add_task(other)
    assert wf.tasks["b"] is other and len(wf.tasks) == 2
    assert wf.task("b") is other


def test_rules_may_name_tasks_added_later() -> None:
    wf = Workflow("later")
    first = wf.add_task(BashTask("first", command="true"))
    first.start_after("second")  # "second" does not exist yet
    wf.add_task(BashTask("second", command="true"))
    back = round_trip(wf)
    assert back.tasks["first"].rules[0].condition.task_names() == {"second"}


def test_a_task_executor_round_trips_and_is_checked() -> None:
    with Workflow("placed") as wf:
        BashTask("remote", command="true", executor="dask")
        BashTask("here", command="true")
    spec = wf.to_spec()
    assert [t.get("executor") for t in spec["tasks"]] == ["dask", None]
    again = Workflow.from_spec(json.loads(json.dumps(spec)))
    assert again.tasks["remote"].executor == "dask" and again.tasks["here"].executor is None
    assert again == wf
    bad = json.loads(json.dumps(spec))
    bad["tasks"][0]["executor"] = 7
    with pytest.raises(SpecError, match="task 'remote': executor must be the name of an executor, got 7"):
        Workflow.from_spec(bad)
