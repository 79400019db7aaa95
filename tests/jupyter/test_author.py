"""/aiflow/author: a notebook's parameters, and a draft submitted as a workflow version; mistakes at their field."""

from __future__ import annotations

import nbformat

from aiflow_nb.notebooks import code_notebook
from tests.conftest import RunningService
from tests.jupyter.servers import JupyterProcess
from tests.jupyter.test_proxy import call


def write(jupyter: JupyterProcess, name: str, text: str) -> str:
    (jupyter.root / "notebooks" / name).write_text(text)
    return name


def notebook(jupyter: JupyterProcess, name: str) -> str:
    return write(jupyter, name, nbformat.writes(code_notebook("print(alpha)", parameters="alpha = 0.5")))


def test_the_dialog_reads_parameters_and_submits_a_version(jupyter: JupyterProcess, aiflow: RunningService) -> None:
    path = notebook(jupyter, "train.ipynb")
    status, body = call(jupyter, "GET", f"/aiflow/author/notebook?path={path}")
    assert status == 200
    assert body["parameters"] == [{"name": "alpha", "type": "float", "default": "0.5", "help": ""}]

    draft = {"path": path, "workflow": "authored", "task": "train", "when": "event", "event_key": "go"}
    status, body = call(jupyter, "POST", "/aiflow/author/submit", {**draft, "parameters": {"alpha": "0.75"}})
    assert status == 200, body
    assert body["version"] == 1
    shown = aiflow.client().workflow("authored")
    assert shown.tasks["train"].parameters == {"alpha": 0.75}  # type: ignore[attr-defined]
    assert shown.tasks["train"].cwd == str(jupyter.root / "notebooks")  # type: ignore[attr-defined]

    second = {"path": path, "workflow": "authored", "existing": True, "task": "evaluate", "when": "after"}
    status, body = call(jupyter, "POST", "/aiflow/author/submit", {**second, "after": ["train"]})
    assert status == 200 and body["version"] == 2
    assert list(aiflow.client().workflow("authored").tasks) == ["train", "evaluate"]


def test_mistakes_come_back_at_their_field_and_nothing_is_submitted(
    jupyter: JupyterProcess, aiflow: RunningService
) -> None:
    path = notebook(jupyter, "nightly.ipynb")
    broken = write(jupyter, "broken.ipynb", "{not json")
    base = {"path": path, "workflow": "nightly", "task": "n"}
    for draft, field in [
        ({**base, "when": "cron", "cron": "61 * * * *"}, "cron"),
        ({**base, "when": "cron", "cron": "0 2 * * *", "timezone": "Europe/Nowhere"}, "timezone"),
        ({**base, "when": "event", "event_key": ""}, "event_key"),
        ({**base, "parameters": {"beta": "1"}}, "param:beta"),
        ({**base, "path": broken}, "notebook"),
        ({**base, "executor": "nowhere"}, "executor"),
    ]:
        status, body = call(jupyter, "POST", "/aiflow/author/submit", draft)
        assert status == 400, draft
        assert body["error"]["field"] == field and body["error"]["message"], body
    assert "nightly" not in [w.name for w in aiflow.client().workflows()]
    status, body = call(jupyter, "GET", f"/aiflow/author/notebook?path={broken}")
    assert status == 400 and body["error"]["field"] == "notebook"


def test_run_with_parameters_offers_the_defaults_and_starts_with_the_changed_ones(
    jupyter: JupyterProcess, aiflow: RunningService
) -> None:
    from tests.server import wait_task

    path = notebook(jupyter, "daily.ipynb")
    draft = {"path": path, "workflow": "daily", "task": "d", "when": "event", "event_key": "never"}
    status, body = call(jupyter, "POST", "/aiflow/author/submit", {**draft, "parameters": {"alpha": "0.25"}})
    assert status == 200, body
    status, body = call(jupyter, "GET", "/aiflow/author/run?namespace=default&name=daily")
    assert status == 200, body
    # The task's own value is the default shown (over the notebook's 0.5).
    assert body["parameters"] == [{"name": "alpha", "type": "float", "default": "0.25", "tasks": ["d"]}]

    client = aiflow.client()
    before = client.executions()
    for values, field in [({"alpha": "not a literal"}, "param:alpha"), ({"beta": "1"}, "param:beta")]:
        status, body = call(jupyter, "POST", "/aiflow/author/run", {"name": "daily", "values": values})
        assert status == 400 and body["error"]["field"] == field, body
    assert client.executions() == before

    status, body = call(jupyter, "POST", "/aiflow/author/run", {"name": "daily", "values": {"alpha": "0.25"}})
    assert status == 200 and client.execution(body["id"]).parameters is None  # left at its default
    execution = body["id"]
    values = {"alpha": "0.9"}
    run = {"name": "daily", "execution": execution, "task": "d", "values": values}
    status, body = call(jupyter, "POST", "/aiflow/author/run", run)
    assert status == 200, body
    done = wait_task(client, execution, "d", "SUCCESS", timeout=120)
    assert done.parameters == {"alpha": 0.9}
    shown = "".join(
        "".join(o.get("text", "")) for c in client.task_notebook(done.id)["cells"] for o in c.get("outputs", [])
    )
    assert "0.9" in shown


def test_edits_from_the_workflow_view_submit_new_versions_and_refuse_mistakes(
    jupyter: JupyterProcess, aiflow: RunningService
) -> None:
    path = notebook(jupyter, "edit.ipynb")
    first = {"path": path, "workflow": "edited", "task": "a", "when": "event", "event_key": "go", "event_value": "7"}
    assert call(jupyter, "POST", "/aiflow/author/submit", first)[0] == 200
    second = {"path": path, "workflow": "edited", "existing": True, "task": "b", "when": "after", "after": ["a"]}
    assert call(jupyter, "POST", "/aiflow/author/submit", second)[0] == 200
    client = aiflow.client()

    status, body = call(jupyter, "GET", "/aiflow/author/edit?namespace=default&name=edited&task=a")
    assert status == 200, body
    assert body == {
        "task": "a", "tasks": ["b"], "when": "event", "event_key": "go", "event_namespace": "", "event_value": "7"
    }  # fmt: skip
    status, body = call(jupyter, "GET", "/aiflow/author/edit?namespace=default&name=edited&task=b")
    assert body["when"] == "after" and body["after"] == ["a"] and body["after_status"] == "SUCCESS"
    status, body = call(jupyter, "GET", "/aiflow/author/edit?namespace=default&name=edited&task=zzz")
    assert status == 400 and body["error"]["message"] == "workflow default/edited has no task 'zzz'", body

    # Mistakes: at their field, nothing submitted.
    base = {"name": "edited", "task": "a", "action": "rule"}
    for request, field in [
        ({**base, "when": "cron", "cron": "61 * * * *"}, "cron"),
        ({**base, "when": "cron", "cron": "0 2 * * *", "timezone": "Mars/Base"}, "timezone"),
        ({**base, "when": "event", "event_key": ""}, "event_key"),
        ({**base, "when": "after", "after": ["a"]}, "after"),  # itself is not one of the others
        ({**base, "task": "zzz", "when": "execution"}, "task"),
        ({"name": "edited", "task": "a", "action": "remove"}, "task"),  # b runs after it
    ]:
        status, body = call(jupyter, "POST", "/aiflow/author/edit", request)
        assert status == 400 and body["error"]["field"] == field, (request, body)
    assert client.workflow_info("edited").version == 2

    request = {**base, "when": "cron", "cron": "0 2 * * *", "timezone": "Europe/Berlin"}
    status, body = call(jupyter, "POST", "/aiflow/author/edit", request)
    assert status == 200 and body["version"] == 3, body
    task = client.workflow("edited").tasks["a"]
    assert task.rules == [] and task.schedule_ is not None and task.schedule_.cron == "0 2 * * *"
    assert "a" in client.next_runs("edited")

    rule_b = {"name": "edited", "task": "b", "action": "rule", "when": "execution"}
    assert call(jupyter, "POST", "/aiflow/author/edit", rule_b)[0] == 200
    status, body = call(jupyter, "POST", "/aiflow/author/edit", {"name": "edited", "task": "a", "action": "remove"})
    assert status == 200 and body["version"] == 5, body
    assert list(client.workflow("edited").tasks) == ["b"]
    status, body = call(jupyter, "POST", "/aiflow/author/edit", {"name": "edited", "task": "b", "action": "remove"})
    assert status == 400 and body["error"]["field"] == "task" and "only task" in body["error"]["message"]
