"""Authoring from JupyterLab: "Add to workflow…" on a notebook, then the workflow in the main area."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from aiflow_nb.notebooks import code_notebook
from tests.browser.conftest import Shots
from tests.jupyter.conftest import SharedService
from tests.jupyter.servers import JupyterProcess

RUN_TIMEOUT = 120_000
#: The two screenshots the docs show: refreshed only when asked (AIFLOW_NB_UPDATE_IMAGES=1), so that a
#: test run leaves the checkout as it was (every run's screenshots are under artifacts/browser/).
README_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
UPDATE_IMAGES = os.environ.get("AIFLOW_NB_UPDATE_IMAGES") == "1"


@pytest.fixture(scope="module")
def notebooks(lab: JupyterProcess) -> Iterator[Path]:
    """The user's notebooks, there before the page opens (so the file browser lists them)."""
    folder = lab.root / "notebooks"
    for name, source in [
        ("train.ipynb", "print(f'trained with alpha={alpha} on {day}')"),
        ("evaluate.ipynb", "print('evaluated', alpha)"),
        ("nightly.ipynb", "print('nightly', alpha)"),
    ]:
        nbformat.write(code_notebook(source, parameters='alpha = 0.5\nday = "2026-01-01"'), folder / name)
    yield folder


def add_to_workflow(page: Page, notebook: str) -> Locator:
    """Right-click the notebook in the file browser, choose "Add to Workflow…"; the dialog."""
    if not page.locator("#filebrowser").is_visible():
        page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    page.locator(".jp-DirListing-item", has_text=notebook).click(button="right")
    page.locator(".lm-Menu-item", has_text="Add to Workflow…").click()
    dialog = page.locator(".jp-AiflowAuthor")
    expect(dialog.locator('input[name="param:alpha"]')).to_have_value("0.5")
    return dialog


def task_status(panel: Locator, task: str) -> Locator:
    return panel.locator(f'.jp-AiflowPanel-tasks tr[data-task="{task}"] .jp-AiflowPanel-status').last


def test_author_a_workflow_from_the_file_browser(
    notebooks: Path, page: Page, shared_service: SharedService, shots: Shots
) -> None:
    client = shared_service.running().client()
    panel = page.locator("#aiflow-nb-panel")

    # 1. train.ipynb as an event-triggered task of a new workflow, with a parameter changed.
    dialog = add_to_workflow(page, "train.ipynb")
    expect(dialog.locator('[data-param="day"]')).to_contain_text("str")
    expect(dialog.locator('input[name="task"]')).to_have_value("train")
    dialog.locator('input[name="workflow"]').fill("authored")
    dialog.locator('select[name="when"]').select_option("event")
    dialog.locator('input[name="param:alpha"]').fill("0.75")
    # An empty event key is shown at its field, and nothing is submitted.
    dialog.locator(".jp-AiflowAuthor-submit").click()
    expect(dialog.locator('[data-error="event_key"]')).to_contain_text("event key is empty")
    assert "authored" not in [w.name for w in client.workflows()]
    dialog.locator('input[name="event_key"]').fill("hour_complete")
    shots.take(page, "author-dialog")
    if UPDATE_IMAGES:
        page.screenshot(path=str(README_IMAGES / "author-dialog.png"))
    dialog.locator(".jp-AiflowAuthor-submit").click()
    expect(dialog).to_have_count(0)
    assert client.workflow("authored").tasks["train"].parameters == {"alpha": 0.75, "day": "2026-01-01"}  # type: ignore[attr-defined]

    # The panel selected it and started its execution; the event sent from the panel runs the task.
    expect(panel.locator('tr.jp-mod-selected[data-workflow="default/authored"]')).to_be_visible()
    expect(panel.locator(".jp-AiflowPanel-executions tr[data-execution]")).to_contain_text("RUNNING")
    panel.locator(".jp-AiflowPanel-key").fill("hour_complete")
    panel.locator(".jp-AiflowPanel-send").click()
    expect(task_status(panel, "train")).to_have_text("SUCCESS", timeout=RUN_TIMEOUT)
    shots.take(page, "event-ran-the-task")

    # 2. The workflow in the main area; the run's executed notebook one click away shows the parameters.
    panel.locator(".jp-AiflowPanel-openWorkflow").click()
    view = page.locator(".jp-AiflowWorkflow").filter(has_text="default/authored")
    expect(view.locator('tr[data-task="train"]')).to_contain_text("SUCCESS")
    expect(view.locator(".jp-AiflowWorkflow-graph svg")).to_be_visible()
    view.locator(".jp-AiflowWorkflow-spec summary").click()
    expect(view.locator(".jp-AiflowWorkflow-spec pre")).to_contain_text("hour_complete")
    if UPDATE_IMAGES:
        page.screenshot(path=str(README_IMAGES / "workflow-view.png"))
    shots.take(page, "workflow-view")
    view.locator('tr[data-task="train"] .jp-AiflowWorkflow-open').click()
    executed = page.locator(".jp-NotebookPanel").filter(has_text="trained with alpha")
    expect(executed).to_contain_text("alpha = 0.75")
    expect(executed).to_contain_text("trained with alpha=0.75 on 2026-01-01")
    shots.take(page, "executed-notebook")

    # 3. evaluate.ipynb after train, in the same workflow (a new version).
    dialog = add_to_workflow(page, "evaluate.ipynb")
    dialog.locator('select[name="workflow-choice"]').select_option("default/authored")
    dialog.locator('select[name="when"]').select_option("after")
    dialog.locator('input[name="after:train"]').check()
    dialog.locator('input[name="start"]').uncheck()
    dialog.locator(".jp-AiflowAuthor-submit").click()
    expect(dialog).to_have_count(0)
    authored = client.workflow("authored")
    assert list(authored.tasks) == ["train", "evaluate"]
    assert authored.tasks["evaluate"].rules[0].condition.task_names() == {"train"}
    shots.take(page, "second-task-added")

    # 3b. Run with parameters: the dialog is prefilled with the tasks' defaults; a bad literal is shown at
    # its parameter and nothing starts; the changed value is this execution's only.
    view.locator(".jp-AiflowWorkflow-refresh").click()
    before = len(client.executions(workflow="authored"))
    view.locator(".jp-AiflowWorkflow-runWith").click()
    run = page.locator(".jp-AiflowRun")
    expect(run.locator('input[name="param:alpha"]')).to_have_value("0.75")
    expect(run.locator('input[name="param:day"]')).to_have_value("'2026-01-01'")
    run.locator('input[name="param:alpha"]').fill("0.9 +")
    run.locator(".jp-AiflowRun-submit").click()
    expect(run.locator('[data-error="param:alpha"]')).to_contain_text("not a Python literal")
    assert len(client.executions(workflow="authored")) == before
    run.locator('input[name="param:alpha"]').fill("0.9")
    shots.take(page, "run-with-parameters")
    run.locator(".jp-AiflowRun-submit").click()
    expect(run).to_have_count(0)
    started = client.executions(workflow="authored")[-1]
    assert started.parameters == {"alpha": 0.9} and started.status.value == "RUNNING"
    # ... and one task of that running execution, with one more override for that run.
    expect(view.locator(f'tr[data-execution="{started.id}"]')).to_have_class("jp-mod-selected")
    view.locator('tr[data-spec-task="train"] .jp-AiflowWorkflow-startTask').click()
    run.locator('input[name="param:day"]').fill("'2026-02-02'")
    run.locator(".jp-AiflowRun-submit").click()
    expect(run).to_have_count(0)
    expect(view.locator('tr[data-task="train"]')).to_contain_text("SUCCESS", timeout=RUN_TIMEOUT)
    view.locator('tr[data-task="train"] .jp-AiflowWorkflow-open').click()
    executed = page.locator(".jp-NotebookPanel").filter(has_text="trained with alpha=0.9")
    expect(executed).to_contain_text("trained with alpha=0.9 on 2026-02-02")
    shots.take(page, "ran-with-parameters")

    # 3c. Edits in the view: change evaluate's rule (a mistake shown at its field first), then remove it.
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="default/authored").click()
    view.locator('tr[data-spec-task="evaluate"] .jp-AiflowWorkflow-rule').click()
    rule = page.locator(".jp-AiflowRun")
    expect(rule.locator('select[name="when"]')).to_have_value("after")
    expect(rule.locator('input[name="after:train"]')).to_be_checked()
    rule.locator('select[name="when"]').select_option("event")
    rule.locator(".jp-AiflowRun-submit").click()
    expect(rule.locator('[data-error="event_key"]')).to_contain_text("event key is empty")
    assert client.workflow_info("authored").version == 2
    rule.locator('input[name="event_key"]').fill("evaluate_now")
    rule.locator(".jp-AiflowRun-submit").click()
    expect(rule).to_have_count(0)
    changed = client.workflow("authored").tasks["evaluate"].rules[0].condition
    assert changed.to_spec()["key"] == "evaluate_now"
    expect(view.locator("h2")).to_contain_text("v3")
    shots.take(page, "rule-changed")
    view.locator('tr[data-spec-task="evaluate"] .jp-AiflowWorkflow-remove').click()
    page.locator(".jp-Dialog .jp-mod-warn").click()
    expect(view.locator('tr[data-spec-task="evaluate"]')).to_have_count(0)
    expect(view.locator("h2")).to_contain_text("v4")
    assert list(client.workflow("authored").tasks) == ["train"]
    shots.take(page, "task-removed")
    # The same dialog from the panel's "Run with parameters…": the execution it starts is selected there.
    before = len(client.executions(workflow="authored"))
    panel.locator(".jp-AiflowPanel-runWith").click()
    expect(run.locator('input[name="param:alpha"]')).to_have_value("0.75")
    run.locator('input[name="param:alpha"]').fill("0.6")
    run.locator(".jp-AiflowRun-submit").click()
    expect(run).to_have_count(0)
    executions = client.executions(workflow="authored")
    assert len(executions) == before + 1 and executions[-1].parameters == {"alpha": 0.6}
    expect(panel.locator(f'tr.jp-mod-selected[data-execution="{executions[-1].id}"]')).to_contain_text("RUNNING")
    shots.take(page, "panel-run-with-parameters")
    # ... and from the command palette, for the panel's selected workflow.
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Run the Selected Workflow with Parameters")
    page.locator(".lm-CommandPalette-item", has_text="Run the Selected Workflow with Parameters").first.click()
    expect(run.locator('input[name="param:alpha"]')).to_have_value("0.75")
    run.locator(".jp-mod-reject").click()
    expect(run).to_have_count(0)

    # 4. A cron task: a bad expression is shown at its field, nothing submitted; a good one shows its next run.
    dialog = add_to_workflow(page, "nightly.ipynb")
    dialog.locator('select[name="when"]').select_option("cron")
    dialog.locator('input[name="cron"]').fill("61 * * * *")
    dialog.locator('input[name="timezone"]').fill("Europe/Berlin")
    dialog.locator(".jp-AiflowAuthor-submit").click()
    expect(dialog.locator('[data-error="cron"]')).to_contain_text("not valid")
    shots.take(page, "bad-cron-refused")
    assert "nightly" not in [w.name for w in client.workflows()]
    dialog.locator('input[name="cron"]').fill("0 2 * * *")
    dialog.locator(".jp-AiflowAuthor-submit").click()
    expect(dialog).to_have_count(0)
    panel.locator(".jp-AiflowPanel-openWorkflow").click()
    nightly = page.locator(".jp-AiflowWorkflow").filter(has_text="default/nightly")
    expect(nightly.locator(".jp-AiflowWorkflow-next")).to_contain_text("nightly: next run")
    shots.take(page, "cron-next-run")

    # 5. Delete it, after a confirmation.
    nightly.locator(".jp-AiflowWorkflow-delete").click()
    page.locator(".jp-Dialog .jp-mod-warn").click()
    expect(nightly).to_have_count(0)
    assert "nightly" not in [w.name for w in client.workflows()]
    expect(panel.locator('tr[data-workflow="default/nightly"]')).to_have_count(0)
    shots.take(page, "deleted")
