"""The workflow view's edits and "Run with parameters" form, as pure functions: specs and fields in and out."""

from __future__ import annotations

import nbformat
import pytest

from aiflow_nb import BashTask, NotebookTask, PythonTask, Workflow
from aiflow_nb.jupyter import draft, edit, run
from aiflow_nb.notebooks import code_notebook
from aiflow_nb.workflow import overrides


def spec() -> dict:
    notebook = nbformat.from_dict(code_notebook("print(day)", parameters='day = "2026-01-01"\nalpha = 0.5'))
    with Workflow("wf") as wf:
        a = NotebookTask("a", notebook, {"alpha": 0.75})
        a.action_on_event_received("START", "go", value=7)
        b = PythonTask("b", callable="m:f", kwargs={"limit": 10})
        b.action_on_task_status("START", {"a": "SUCCESS"})
        BashTask("c", command="true")
    return wf.to_spec()


def test_the_run_form_offers_each_declared_parameter_with_its_default_and_tasks() -> None:
    found = run.run_parameters(spec())
    assert found == [
        {"name": "day", "type": "str", "default": '"2026-01-01"', "tasks": ["a"]},
        {"name": "alpha", "type": "float", "default": "0.75", "tasks": ["a"]},
        {"name": "limit", "type": "int", "default": "10", "tasks": ["b"]},
    ]
    assert run.run_parameters(spec(), "c") == []
    # Only values changed from their defaults become overrides; a bad literal is refused at its field.
    known = run.run_parameters(spec())
    assert run.overrides_of({"day": '"2026-01-01"', "alpha": "0.9", "limit": ""}, known) == {"alpha": 0.9}
    with pytest.raises(draft.FieldError) as caught:
        run.overrides_of({"alpha": "0.9 +"}, known)
    assert caught.value.field == "param:alpha"
    assert run.field_of("workflow default/wf declares no parameter 'zz' (declared: a)") == "param:zz"


def test_overrides_reach_only_the_tasks_that_declare_them() -> None:
    tasks = {t["name"]: t for t in spec()["tasks"]}
    given = {"day": "x", "limit": 3}
    assert overrides.with_overrides(tasks["a"], given)["parameters"] == {"alpha": 0.75, "day": "x"}
    assert overrides.with_overrides(tasks["b"], given)["kwargs"] == {"limit": 3}
    assert overrides.with_overrides(tasks["c"], given) is tasks["c"]
    assert overrides.from_assignments(["n=3", "ok=True", "s=text", "f=0.5"]) == {
        "n": 3,
        "ok": True,
        "s": "text",
        "f": 0.5,
    }


def test_rules_read_back_as_the_dialog_fields() -> None:
    tasks = {t["name"]: t for t in spec()["tasks"]}
    assert edit.when_of(tasks["a"]) == {"when": "event", "event_key": "go", "event_namespace": "", "event_value": "7"}
    assert edit.when_of(tasks["b"]) == {"when": "after", "after": ["a"], "after_status": "SUCCESS"}
    assert edit.when_of(tasks["c"]) == {"when": "execution"}
    every = edit.change_rule(spec(), "c", {"when": "interval", "interval": "90"})
    changed = next(t for t in every["tasks"] if t["name"] == "c")
    assert edit.when_of(changed) == {"when": "interval", "interval": "90.0"}
    assert Workflow.from_spec(every).tasks["c"].schedule_ is not None


@pytest.mark.parametrize(
    ("task", "request_", "field"),
    [
        ("c", {"when": "cron", "cron": "0 2 * * *", "timezone": "Nowhere/City"}, "timezone"),
        ("c", {"when": "interval", "interval": "-1"}, "interval"),
        ("c", {"when": "after", "after": ["nope"]}, "after"),
        ("c", {"when": "sometimes"}, "when"),
        ("zz", {"when": "execution"}, "task"),
    ],
)
def test_a_bad_rule_is_refused_at_its_field(task: str, request_: dict, field: str) -> None:
    with pytest.raises(draft.FieldError) as caught:
        edit.change_rule(spec(), task, request_)
    assert caught.value.field == field


def test_remove_a_task() -> None:
    assert [t["name"] for t in edit.remove_task(spec(), "c")["tasks"]] == ["a", "b"]
    with pytest.raises(draft.FieldError, match="task 'b' has a rule on 'a'"):
        edit.remove_task(spec(), "a")
