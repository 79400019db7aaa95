"""Bad workflow input raises the specific aiflow_nb.errors exception, naming the problem."""

from __future__ import annotations

import copy
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
    EventCondition,
    NotebookTask,
    PythonTask,
    Schedule,
    TaskAction,
    TaskStatus,
    TaskStatusCondition,
    Workflow,
)
from aiflow_nb.errors import (
    AiflowError,
    ConditionImportError,
    InvalidNotebookError,
    InvalidScheduleError,
    NotebookNotFoundError,
    SpecError,
    UnknownTaskError,
)
from tests.workflow.conds import EveryNth, ForgetfulParams


def good_spec() -> dict[str, Any]:
    with Workflow("good") as wf:
        a = BashTask("a", command="echo a")
        BashTask("b", command="echo b").start_after(a)
    return wf.to_spec()


def spec_with(**changes: Any) -> dict[str, Any]:
    spec = good_spec()
    spec.update(changes)
    return spec


def task_spec(**changes: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"name": "t", "kind": "bash", "command": "true", "rules": []}
    task.update(changes)
    return task


def with_rule(condition: dict[str, Any], action: str = "START") -> dict[str, Any]:
    return spec_with(tasks=[task_spec(rules=[{"action": action, "condition": condition}])])


def test_the_good_spec_is_good() -> None:
    assert list(Workflow.from_spec(good_spec()).tasks) == ["a", "b"]


def test_error_hierarchy() -> None:
    for cls in (UnknownTaskError, ConditionImportError, NotebookNotFoundError, InvalidNotebookError):
        assert issubclass(cls, SpecError)
    assert issubclass(InvalidScheduleError, SpecError)
    assert issubclass(SpecError, AiflowError) and issubclass(SpecError, ValueError)
    assert issubclass(NotebookNotFoundError, FileNotFoundError)


# -- malformed specs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "error", "words"),
    [
        ("{not json", SpecError, "not valid JSON"),
        (b"[1, 2", SpecError, "not valid JSON"),
        ("[1, 2]", SpecError, "JSON object"),
        (42, SpecError, "JSON object"),
        (None, SpecError, "JSON object"),
        ({"tasks": []}, SpecError, "'name'"),
        ({"name": "w"}, SpecError, "'tasks'"),
        ({"name": "w", "tasks": {"a": {}}}, SpecError, "'tasks' must be a list"),
        ({"name": "w", "tasks": "a"}, SpecError, "'tasks' must be a list"),
        ({"name": "w", "tasks": []}, SpecError, "has no tasks"),
        ({"name": "w", "tasks": ["a"]}, SpecError, "a task must be an object"),
        ({"name": "w", "tasks": [task_spec(kind="flink")]}, SpecError, "unknown operator 'flink'"),
        ({"name": "w", "tasks": [task_spec(kind=None)]}, SpecError, "unknown kind None"),
        ({"name": "w", "tasks": [task_spec(name=None)]}, SpecError, "task name None"),
        ({"name": "w", "tasks": [task_spec(rules="START")]}, SpecError, "'rules' must be a list"),
        (
            {"name": "w", "tasks": [task_spec()], "triggers": {"type": "event", "key": "k"}},
            SpecError,
            "'triggers' must be a list",
        ),
        ({"name": "w", "tasks": [task_spec()], "schedule": "daily"}, SpecError, "schedule must be an object"),
        ({"name": "bad name", "tasks": [task_spec()]}, SpecError, "'bad name'"),
        ({"name": "w", "namespace": "a/b", "tasks": [task_spec()]}, SpecError, "'a/b'"),
    ],
)
def test_malformed_spec(spec: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        Workflow.from_spec(spec)
    assert words in str(info.value)


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unsupported_spec_version(version: Any) -> None:
    with pytest.raises(SpecError, match=f"spec_version {version!r} is not supported"):
        Workflow.from_spec(spec_with(spec_version=version))


def test_duplicated_task() -> None:
    spec = good_spec()
    spec["tasks"].append(copy.deepcopy(spec["tasks"][0]))
    with pytest.raises(SpecError) as info:
        Workflow.from_spec(json.dumps(spec))
    assert "'a'" in str(info.value) and "twice" in str(info.value)


@pytest.mark.parametrize(
    ("task", "words"),
    [
        (task_spec(command=""), "command"),
        (task_spec(command=None), "command"),
        ({"name": "t", "kind": "python", "callable": "no_colon"}, "'no_colon'"),
        ({"name": "t", "kind": "python", "callable": "m:f", "kwargs": {"x": {1, 2}}}, "kwargs"),
        ({"name": "t", "kind": "notebook", "notebook": "train.ipynb"}, "'notebook' must be the notebook's JSON"),
        (task_spec(max_retries=-1), "max_retries"),
        (task_spec(retry_delay="soon"), "retry_delay"),
        (task_spec(timeout=0), "timeout"),
    ],
)
def test_malformed_task_spec(task: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError) as info:
        Workflow.from_spec(spec_with(tasks=[task]))
    assert words in str(info.value)
    assert "'t'" in str(info.value)


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"action": "JUMP", "condition": {"type": "event", "key": "k"}}, "'JUMP'"),
        ({"action": "START"}, "'action' and 'condition'"),
        ("START on k", "'action' and 'condition'"),
        ({"action": "START", "condition": {"type": "telepathy"}}, "unknown condition type 'telepathy'"),
        ({"action": "START", "condition": "k"}, "a condition must be an object"),
        ({"action": "START", "condition": {"type": "task_status", "statuses": {"t": "DONE"}}}, "'DONE'"),
        ({"action": "START", "condition": {"type": "task_status", "statuses": {}}}, "at least one task"),
        ({"action": "START", "condition": {"type": "task_status"}}, "'statuses'"),
        ({"action": "START", "condition": {"type": "all_of", "conditions": []}}, "AllOf needs at least one"),
        ({"action": "START", "condition": {"type": "any_of"}}, "'conditions' list"),
        ({"action": "START", "condition": {"type": "custom"}}, "'class'"),
    ],
)
def test_malformed_rule(rule: Any, words: str) -> None:
    with pytest.raises(SpecError) as info:
        Workflow.from_spec(spec_with(tasks=[task_spec(rules=[rule])]))
    assert words in str(info.value)
    assert "task 't', rule 1" in str(info.value)


# -- unknown tasks -----------------------------------------------------------------------------


def test_rule_naming_an_unknown_task_in_a_spec() -> None:
    spec = good_spec()
    spec["tasks"][1]["rules"].append(
        {"action": "STOP", "condition": {"type": "task_status", "statuses": {"ghost": "FAILED"}}}
    )
    with pytest.raises(UnknownTaskError) as info:
        Workflow.from_spec(spec)
    message = str(info.value)
    assert "'ghost'" in message and "task 'b'" in message and "rule 2" in message and "'good'" in message


def test_rule_naming_an_unknown_task_in_the_model() -> None:
    with Workflow("model") as wf:
        a = BashTask("a", command="true")
        BashTask("b", command="true").action_on_condition(
            TaskAction.START, AnyOf([EventCondition("go"), AllOf([TaskStatusCondition({"ghost": "SUCCESS"})])])
        )
        a.start_after("phantom")
    with pytest.raises(UnknownTaskError, match="'phantom'") as info:
        wf.validate()
    assert "task 'a', rule 1" in str(info.value)
    for call in (wf.to_spec, wf.digest):
        with pytest.raises(UnknownTaskError, match="phantom"):
            call()
    a.rules.clear()
    with pytest.raises(UnknownTaskError, match="'ghost'"):
        wf.to_spec()


def test_task_lookup_names_the_task() -> None:
    with Workflow("lookup") as wf:
        BashTask("a", command="true")
    with pytest.raises(UnknownTaskError, match="'lookup' has no task 'zz'"):
        wf.task("zz")


def test_trigger_cannot_wait_on_task_status() -> None:
    with Workflow("trig") as wf:
        BashTask("a", command="true")
    wf.trigger_on(AnyOf([EventCondition("go"), TaskStatusCondition({"a": TaskStatus.SUCCESS})]))
    with pytest.raises(SpecError, match=r"trigger 1.*task status"):
        wf.to_spec()


def test_trigger_must_be_a_condition_or_key() -> None:
    wf = Workflow("trig")
    with pytest.raises(SpecError, match="trigger_on"):
        wf.trigger_on(42)  # type: ignore[arg-type]


# -- custom conditions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("tests.workflow.no_such_module:Cond", "cannot be imported"),
        ("tests.workflow.conds:NoSuchClass", "cannot be imported"),
        ("tests.workflow.conds:EveryNth.missing", "cannot be imported"),
        ("tests.workflow.conds", "expected 'module:ClassName'"),
        (":EveryNth", "expected 'module:ClassName'"),
        ("tests.workflow.conds:NotACondition", "is not a Condition subclass"),
        ("json:dumps", "is not a Condition subclass"),
    ],
)
def test_bad_condition_import_path(path: str, words: str) -> None:
    with pytest.raises(ConditionImportError) as info:
        Workflow.from_spec(with_rule({"type": "custom", "class": path, "params": {}}))
    message = str(info.value)
    assert repr(path) in message and words in message
    assert "task 't', rule 1" in message


def test_bad_condition_import_path_in_a_trigger() -> None:
    spec = spec_with(triggers=[{"type": "custom", "class": "nowhere.at.all:Cond"}])
    with pytest.raises(ConditionImportError, match=r"trigger 1: condition 'nowhere.at.all:Cond'"):
        Workflow.from_spec(spec)


def test_custom_condition_with_params_it_does_not_take() -> None:
    condition = {"type": "custom", "class": "tests.workflow.conds:EveryNth", "params": {"colour": "red"}}
    with pytest.raises(SpecError, match=r"EveryNth cannot be built from.*colour"):
        Workflow.from_spec(with_rule(condition))
    condition["params"] = ["tick"]
    with pytest.raises(SpecError, match="'params' must be an object"):
        Workflow.from_spec(with_rule(condition))


def test_custom_condition_whose_params_do_not_rebuild_it() -> None:
    with Workflow("forgetful") as wf:
        BashTask("t", command="true").action_on_condition("START", ForgetfulParams("other_key"))
    with pytest.raises(SpecError, match=r"ForgetfulParams.*do not rebuild"):
        wf.to_spec()


def test_custom_condition_that_is_fine() -> None:
    with Workflow("fine") as wf:
        BashTask("t", command="true").action_on_condition("START", EveryNth("k", 2))
    assert Workflow.from_spec(wf.to_spec()) == wf


# -- notebooks ------------------------------------------------------------------------------


def test_missing_notebook(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "train.ipynb"
    with pytest.raises(NotebookNotFoundError) as info:
        NotebookTask("train", notebook=missing)
    assert str(missing) in str(info.value) and "'train'" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(NotebookNotFoundError, match="does not exist"):
        NotebookTask("train", notebook=str(tmp_path))  # a folder is not a notebook file


def test_missing_notebook_adds_nothing_to_the_workflow(tmp_path: Path) -> None:
    with Workflow("w") as wf:
        BashTask("a", command="true")
        with pytest.raises(NotebookNotFoundError):
            NotebookTask("b", notebook=tmp_path / "missing.ipynb")
    assert list(wf.tasks) == ["a"]


@pytest.mark.parametrize(
    "content",
    [
        "this is not JSON",
        "",
        "[1, 2, 3]",
        json.dumps({"hello": "world"}),
        json.dumps({"nbformat": 99, "nbformat_minor": 0, "metadata": {}, "cells": []}),
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}}),
        json.dumps({"nbformat": 4, "nbformat_minor": "5", "metadata": {}, "cells": [{"cell_type": "code"}]}),
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": "x = 1"}),
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": []}),
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "spreadsheet"}]}),
    ],
    ids=[
        "text",
        "empty",
        "json-list",
        "not-nb",
        "version-99",
        "no-cells",
        "minor-str",
        "cells-not-list",
        "no-metadata",
        "bad-cell",
    ],
)
def test_file_that_is_not_a_notebook(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text(content)
    with pytest.raises(InvalidNotebookError) as info:
        NotebookTask("nb", notebook=path)
    assert str(path) in str(info.value) and "not a valid notebook" in str(info.value)
    assert "'nb'" in str(info.value)


def test_embedded_notebook_that_is_not_valid() -> None:
    kernelspec = {"name": "python3", "display_name": "Python 3"}
    nb = json.loads(
        nbformat.writes(
            nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")], metadata={"kernelspec": kernelspec})
        )
    )
    spec = spec_with(tasks=[{"name": "nb", "kind": "notebook", "notebook": nb}])
    assert Workflow.from_spec(spec).tasks["nb"].notebook == nb  # type: ignore[attr-defined]
    del nb["cells"][0]["outputs"]
    with pytest.raises(InvalidNotebookError, match="task 'nb': the embedded notebook is not a valid notebook"):
        Workflow.from_spec(spec)


def test_notebook_parameters_must_be_json_able(tmp_path: Path) -> None:
    path = tmp_path / "ok.ipynb"
    nbformat.write(nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "x"}}), path)
    with pytest.raises(SpecError, match=r"'p'.*parameters must be JSON-able"):
        NotebookTask("p", notebook=path, parameters={"when": object()})


# -- event keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", None, 7])
def test_empty_event_key_in_a_rule(key: Any) -> None:
    task = BashTask("t", command="true")
    with pytest.raises(SpecError, match=r"'t'.*non-empty event key"):
        task.action_on_event_received(TaskAction.START, key)
    assert task.rules == []


@pytest.mark.parametrize("key", ["", None, 7])
def test_empty_event_key_in_a_condition(key: Any) -> None:
    with pytest.raises(SpecError, match="non-empty"):
        EventCondition(key)
    with pytest.raises(SpecError, match="non-empty"):
        Workflow("w").trigger_on(AnyOf([EventCondition("ok"), EventCondition(key)]))


def test_empty_event_key_as_a_trigger() -> None:
    wf = Workflow("w")
    with pytest.raises(SpecError, match="non-empty"):
        wf.trigger_on("")
    assert wf.triggers == []


@pytest.mark.parametrize("key", ["", None, 3])
def test_empty_event_key_in_a_spec(key: Any) -> None:
    with pytest.raises(SpecError, match=f"non-empty 'key', got {key!r}"):
        Workflow.from_spec(with_rule({"type": "event", "key": key}))
    with pytest.raises(SpecError, match="non-empty 'key'"):
        Workflow.from_spec(spec_with(triggers=[{"type": "event"}]))


# -- schedules --------------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["not a cron", "61 * * * *", "* * * *", "0 0 32 * *", "", "* * * * * * * *"])
def test_bad_cron_expression(cron: str) -> None:
    wf = Workflow("w")
    with pytest.raises(InvalidScheduleError) as info:
        wf.schedule(cron=cron)
    assert repr(cron) in str(info.value)
    assert wf.schedule_ is None
    with pytest.raises(InvalidScheduleError, match="cron expression"):
        BashTask("t", command="true").schedule(cron=cron)


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "utc+2", "../../etc/passwd", ""])
def test_unknown_timezone(tz: str) -> None:
    with pytest.raises(InvalidScheduleError) as info:
        Workflow("w").schedule(cron="0 * * * *", timezone=tz)
    message = str(info.value)
    if tz:
        assert repr(tz) in message
    assert "timezone" in message


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(seconds=-5), timedelta(microseconds=-1)])
def test_non_positive_interval(interval: timedelta) -> None:
    with pytest.raises(InvalidScheduleError, match="interval must be positive"):
        Workflow("w").schedule(interval=interval)
    with pytest.raises(InvalidScheduleError, match="interval must be positive"):
        BashTask("t", command="true").schedule(interval=interval)


def test_schedule_needs_exactly_one_of_cron_and_interval() -> None:
    with pytest.raises(InvalidScheduleError, match="exactly one"):
        Schedule()
    with pytest.raises(InvalidScheduleError, match="exactly one"):
        Schedule(cron="0 * * * *", interval=timedelta(minutes=1))
    with pytest.raises(InvalidScheduleError, match="timedelta"):
        Schedule(interval=60)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ({"cron": "0 25 * * *"}, "'0 25 * * *'"),
        ({"cron": "0 * * * *", "timezone": "Nowhere/City"}, "'Nowhere/City'"),
        ({"interval": 0}, "interval must be positive"),
        ({"interval": -60}, "interval must be positive"),
        ({"interval": "60"}, "number of seconds"),
        ({}, "exactly one"),
    ],
)
def test_bad_schedule_in_a_spec(schedule: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidScheduleError, match=words.replace("*", r"\*")):
        Workflow.from_spec(spec_with(schedule=schedule))
    with pytest.raises(InvalidScheduleError, match=words.replace("*", r"\*")):
        Workflow.from_spec(spec_with(tasks=[task_spec(schedule=schedule)]))


# -- names and options --------------------------------------------------------------------------


BAD_NAMES = [
    "",
    " ",
    "has space",
    ".hidden",
    "-dash",
    "a/b",
    "x" * 129,
    "tab\t",
    "caf\N{LATIN SMALL LETTER E WITH ACUTE}",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_task_name(name: str) -> None:
    with pytest.raises(SpecError, match="task name") as info:
        BashTask(name, command="true")
    assert repr(name) in str(info.value)
    with pytest.raises(SpecError, match="task name"):
        PythonTask(name, callable="m:f")


@pytest.mark.parametrize("name", [*BAD_NAMES, None, 5])
def test_invalid_workflow_name_and_namespace(name: Any) -> None:
    with pytest.raises(SpecError, match="workflow name") as info:
        Workflow(name)
    assert repr(name) in str(info.value)
    with pytest.raises(SpecError, match="namespace name"):
        Workflow("ok", namespace=name)


def test_valid_names() -> None:
    for name in ["a", "A_1", "x" * 128, "train.v2", "with-dash", "_private", "0day"]:
        assert Workflow(name, namespace=name).name == name
        assert BashTask(name, command="true").name == name


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": "3"}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"retry_delay": timedelta(seconds=-1)}, "retry_delay"),
        ({"retry_delay": "1m"}, "retry_delay"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -5}, "timeout"),
        ({"timeout": timedelta(0)}, "timeout"),
    ],
)
def test_bad_common_options(options: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError, match=words) as info:
        BashTask("t", command="true", **options)
    assert "'t'" in str(info.value)


def test_bad_task_status_in_the_model() -> None:
    task = BashTask("t", command="true")
    with pytest.raises(SpecError, match="'DONE' is not a task status"):
        task.action_on_task_status(TaskAction.START, {"a": "DONE"})
    with pytest.raises(SpecError, match="'JUMP' is not a task action"):
        task.action_on_event_received("JUMP", "k")
    with pytest.raises(SpecError, match="needs a Condition"):
        task.action_on_condition(TaskAction.START, "k")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="AnyOf takes conditions"):
        AnyOf([EventCondition("k"), "k"])  # type: ignore[list-item]
    assert task.rules == []
