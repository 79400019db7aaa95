"""Executed notebooks in JupyterLab: read-only records without a kernel, untrusted, across reloads."""

from __future__ import annotations

import json
import shlex
import time
import urllib.request
from typing import Any

from playwright.sync_api import Locator, Page, expect

from aiflow_nb import BashTask, NotebookTask, Workflow
from aiflow_nb.notebooks import code_notebook
from tests.browser.conftest import Shots
from tests.jupyter.conftest import SharedService
from tests.jupyter.servers import JupyterProcess

RUN_TIMEOUT = 120_000

#: A notebook a task leaves where its executed notebook goes, claiming trust for a script in its output.
PLANTED = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {
            "cell_type": "code",
            "id": "planted",
            "metadata": {"trusted": True},
            "execution_count": 1,
            "source": "print('planted')",
            "outputs": [
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {
                        "text/html": "<b>planted output</b><script>window.aiflowTrusted = true</script>",
                        "text/plain": "planted output",
                    },
                }
            ],
        }
    ],
}

#: The open run notebooks: path, whether a kernel session is attached, and each cell's trust.
RUN_WIDGETS = """() => Array.from(window.jupyterapp.shell.widgets('main'))
    .filter(w => w.context && w.context.path.startsWith('aiflow-runs:'))
    .map(w => ({
        path: w.context.path,
        session: w.context.sessionContext.session !== null,
        trusted: w.content.widgets.map(c => c.model.trusted),
    }))"""


def records_workflow() -> Workflow:
    plant = f"printf '%s' {shlex.quote(json.dumps(PLANTED))} > \"$AIFLOW_NB_RUN_DIR/output.ipynb\""
    with Workflow("records") as wf:
        NotebookTask("train", notebook=code_notebook("print('trained', 6 * 7)"))
        BashTask("planted", command=plant)
        BashTask("broken", command="echo 'the data is not there' >&2; exit 3")
    return wf


def sessions(lab: JupyterProcess) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{lab.url}/api/sessions?token={lab.token}", timeout=10) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def workspace_keys(lab: JupyterProcess) -> list[str]:
    url = f"{lab.url}/lab/api/workspaces/default?token={lab.token}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return list(json.loads(answer.read()).get("data", {}))


def wait_for(what: str, check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.2)


def tab(page: Page, text: str) -> Locator:
    return page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").filter(has_text=text)


def test_a_failed_execution_shows_the_error_and_offers_no_task_action(
    page: Page, shared_service: SharedService, shots: Shots
) -> None:
    client = shared_service.running().client()
    client.submit(records_workflow())
    page.locator('.jp-SideBar [data-id="aiflow-nb-panel"]').click()
    panel = page.locator("#aiflow-nb-panel")
    panel.locator('tr[data-workflow="default/records"]').click()
    panel.locator(".jp-AiflowPanel-startExecution").click()
    expect(panel.locator(".jp-AiflowPanel-executions .jp-AiflowPanel-status").first).to_have_text(
        "FAILED", timeout=RUN_TIMEOUT
    )
    broken = panel.locator('.jp-AiflowPanel-tasks tr[data-task="broken"]')
    recorded = [te for te in client.task_executions(client.executions("records")[-1].id) if te.task == "broken"]
    assert recorded and recorded[0].error
    # The recorded error is on the failed task's row, and the finished execution offers no task action.
    expect(broken.locator(".jp-AiflowPanel-taskError")).to_have_text(recorded[0].error)
    expect(panel.locator(".jp-AiflowPanel-tasks button")).to_have_count(0)
    shots.take(page, "failed-task-error-on-row")


def test_run_notebooks_are_untrusted_kernel_less_records_across_a_reload(
    page: Page, lab: JupyterProcess, shots: Shots
) -> None:
    panel = page.locator("#aiflow-nb-panel")
    for task in ("train", "planted"):
        panel.locator(f'.jp-AiflowPanel-tasks tr[data-task="{task}"]').click()
        expect(tab(page, f"{task} #1")).not_to_have_count(0)
    expect(page.locator(".jp-NotebookPanel .jp-OutputArea-output").filter(has_text="trained 42")).to_be_visible(
        timeout=60_000
    )
    expect(page.locator(".jp-NotebookPanel .jp-OutputArea-output").filter(has_text="planted output")).to_be_visible()
    shots.take(page, "run-notebooks-opened")

    def check_records(when: str) -> None:
        widgets = page.evaluate(RUN_WIDGETS)
        # A trusted HTML output would have run its script.
        assert page.evaluate("() => window.aiflowTrusted === undefined"), when
        assert not any(t for w in widgets for t in w["trusted"]), (when, widgets)
        assert sorted(w["path"].split(" #")[0] for w in widgets) == ["aiflow-runs:planted", "aiflow-runs:train"], (
            when,
            widgets,
        )
        assert not any(w["session"] for w in widgets), (when, widgets)
        assert sessions(lab) == [], when
        for task in ("train", "planted"):
            expect(tab(page, f"{task} #1 [")).to_contain_text("(read-only)")
        expect(page.locator(".jp-NotebookPanel .jp-ToolbarLabelComponent").first).to_have_text("notebook is read-only")

    check_records("opened from the panel")
    # JupyterLab keeps the open tabs in its workspace; once it has them, a reload restores them.
    wait_for(
        "the workspace lists the run notebooks and logs",
        lambda: sum(k.startswith(("aiflow-nb-run:", "aiflow-nb-log:")) for k in workspace_keys(lab)) >= 4,
    )
    page.reload()
    page.locator("#jp-main-dock-panel").wait_for()
    expect(page.locator(".jp-NotebookPanel .jp-OutputArea-output").filter(has_text="trained 42")).to_be_visible(
        timeout=60_000
    )
    expect(tab(page, "log: train #1")).to_be_visible()
    check_records("restored by a reload")
    shots.take(page, "run-notebooks-restored")
