"""The "Add to workflow" dialog's rules: parameters read the papermill way, each mistake at its field."""

from __future__ import annotations

import json
from typing import Any

import nbformat
import pytest

from aiflow_nb import Workflow
from aiflow_nb.jupyter import draft
from aiflow_nb.notebooks import code_notebook

NOTEBOOK = nbformat.writes(code_notebook("print(day, alpha)", parameters='day: str = "2026-01-01"\nalpha = 0.5\nn = 3'))


def make(**fields: Any) -> dict[str, Any]:
    return {"workflow": "wf", "namespace": "default", "task": "train", **fields}


def field_of(fields: dict[str, Any], text: str = NOTEBOOK, workflows: list[draft.Existing] | None = None) -> str:
    with pytest.raises(draft.FieldError) as caught:
        draft.build_spec(fields, text, "/nb/train.ipynb", workflows or [])
    assert str(caught.value)
    return caught.value.field


def test_parameters_with_their_defaults_and_types() -> None:
    found = draft.inspect_text(NOTEBOOK)
    assert found["kernel"] == "python3"
    assert [(p["name"], p["type"], p["default"]) for p in found["parameters"]] == [
        ("day", "str", '"2026-01-01"'),
        ("alpha", "float", "0.5"),
        ("n", "int", "3"),
    ]


def test_a_draft_becomes_the_spec_the_service_accepts() -> None:
    spec = draft.build_spec(
        make(when="event", event_key="hour_complete", parameters={"alpha": "0.9", "day": '"x"'}, max_retries="2"),
        NOTEBOOK,
        "/nb/train.ipynb",
        [],
    )
    wf = Workflow.from_spec(json.loads(json.dumps(spec)))
    task = wf.tasks["train"]
    assert task.parameters == {"alpha": 0.9, "day": "x"}  # type: ignore[attr-defined]
    assert task.max_retries == 2
    assert task.rules[0].condition.to_spec()["key"] == "hour_complete"


def test_a_task_added_after_another_extends_the_workflow() -> None:
    first = draft.build_spec(make(), NOTEBOOK, None, [])
    spec = draft.build_spec(
        make(task="evaluate", existing=True, when="after", after=["train"]),
        NOTEBOOK,
        None,
        [draft.Existing("default", "wf", first)],
    )
    assert [t["name"] for t in spec["tasks"]] == ["train", "evaluate"]
    assert Workflow.from_spec(spec).tasks["evaluate"].rules[0].condition.task_names() == {"train"}


def test_cron_with_a_time_zone() -> None:
    spec = draft.build_spec(make(when="cron", cron="0 2 * * *", timezone="Europe/Berlin"), NOTEBOOK, None, [])
    assert spec["tasks"][0]["schedule"]["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (make(when="event", event_key=" "), "event_key"),
        (make(when="cron", cron="not a cron"), "cron"),
        (make(when="cron", cron="0 2 * * *", timezone="Mars/Olympus"), "timezone"),
        (make(when="interval", interval="-5"), "interval"),
        (make(when="after", after=["nope"]), "after"),
        (make(task="bad name!"), "task"),
        (make(workflow=""), "workflow"),
        (make(parameters={"beta": "1"}), "param:beta"),
        (make(parameters={"alpha": "not python("}), "param:alpha"),
        (make(max_retries="two"), "max_retries"),
        (make(max_retries="-1"), "max_retries"),
        (make(timeout="0"), "timeout"),
    ],
)
def test_each_mistake_names_its_field(fields: dict[str, Any], field: str) -> None:
    assert field_of(fields) == field


def test_bad_notebooks_are_shown_at_their_field() -> None:
    assert field_of(make(), "{not json") == "notebook"
    no_cell = nbformat.writes(code_notebook("print(1)"))
    assert field_of(make(), no_cell) == "parameters"
    r_notebook = json.loads(NOTEBOOK)
    r_notebook["metadata"]["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    assert field_of(make(), json.dumps(r_notebook)) == "notebook"


def test_workflow_names_taken_and_task_names_used() -> None:
    assert field_of(make(), workflows=[draft.Existing("other", "wf")]) == "workflow"
    assert field_of(make(), workflows=[draft.Existing("default", "wf")]) == "workflow"  # exists: add to it
    assert field_of(make(existing=True)) == "workflow"  # nothing to add to
    first = draft.build_spec(make(), NOTEBOOK, None, [])
    assert field_of(make(existing=True), workflows=[draft.Existing("default", "wf", first)]) == "task"
