"""The sidebar panel end to end: a user's steps in Chromium against a real jupyter lab and service."""

from __future__ import annotations

import os
import signal

from playwright.sync_api import Locator, Page, expect

from aiflow_nb import BashTask, NotebookTask, TaskAction, Workflow
from aiflow_nb.notebooks import code_notebook
from tests.browser.conftest import Shots
from tests.jupyter.conftest import SharedService

#: Running a notebook with papermill takes a while on a busy machine.
RUN_TIMEOUT = 120_000


def demo_workflow() -> Workflow:
    with Workflow("demo") as wf:
        prep = BashTask("prep", command="echo prepared")
        NotebookTask("train", notebook=code_notebook("print('trained', 6 * 7)")).start_after(prep)
        BashTask("react", command="echo reacted").action_on_event_received(TaskAction.START, "go")
        BashTask("stream", command="sleep 600", streaming=True).action_on_event_received(TaskAction.START, "go")
    return wf


def task_status(panel: Locator, task: str) -> Locator:
    return panel.locator(f'.jp-AiflowPanel-tasks tr[data-task="{task}"] .jp-AiflowPanel-status').last


def graph_node(panel: Locator, task: str) -> Locator:
    # graphviz puts the node id in <title>; its label lines (name, status) are <text> elements.
    return panel.locator(".jp-AiflowPanel-graph g.node").filter(has=panel.page.locator(f'title:text-is("{task}")'))


def task_buttons(panel: Locator, task: str) -> Locator:
    return panel.locator(f'.jp-AiflowPanel-tasks tr[data-task="{task}"]').last.locator("button")


def run_command(page: Page, command: str) -> None:
    page.evaluate("command => window.jupyterapp.commands.execute(command)", command)


def test_panel_drives_a_workflow(page: Page, shared_service: SharedService, shots: Shots) -> None:
    client = shared_service.running().client()

    page.locator('.jp-SideBar [data-id="aiflow-nb-panel"]').click()
    panel = page.locator("#aiflow-nb-panel")
    expect(panel.locator(".jp-AiflowPanel-live.jp-mod-open")).to_be_attached()
    expect(panel.locator(".jp-AiflowPanel-workflows")).to_contain_text("no workflow yet")
    shots.take(page, "sidebar")

    client.submit(demo_workflow())  # its aiflow.workflow.submitted event brings it in: no refresh
    row = panel.locator('tr[data-workflow="default/demo"]')
    expect(row).to_contain_text("active")
    shots.take(page, "workflow-listed")

    row.click()
    panel.locator(".jp-AiflowPanel-pause").click()
    expect(row).to_contain_text("paused")
    assert client.workflow_info("demo").paused
    panel.locator(".jp-AiflowPanel-resume").click()
    expect(row).to_contain_text("active")
    assert not client.workflow_info("demo").paused

    panel.locator(".jp-AiflowPanel-startExecution").click()
    for task in ("prep", "train"):
        expect(task_status(panel, task)).to_have_text("SUCCESS", timeout=RUN_TIMEOUT)
        expect(graph_node(panel, task)).to_contain_text("SUCCESS")
    expect(graph_node(panel, "react")).not_to_contain_text("SUCCESS")
    shots.take(page, "tasks-succeeded")

    # The form refuses an empty key before anything is sent.
    before = client.health()["latest_offset"]
    panel.locator(".jp-AiflowPanel-send").click()
    expect(panel.locator(".jp-AiflowPanel-formNote.jp-mod-error")).to_have_text("the event key is empty")
    assert client.health()["latest_offset"] == before
    shots.take(page, "empty-key-refused")

    panel.locator(".jp-AiflowPanel-key").fill("go")
    panel.locator(".jp-AiflowPanel-value").fill('{"hour": 10}')
    panel.locator(".jp-AiflowPanel-send").click()
    expect(panel.locator(".jp-AiflowPanel-formNote")).to_contain_text("sent go")
    expect(task_status(panel, "react")).to_have_text("SUCCESS", timeout=RUN_TIMEOUT)
    expect(task_status(panel, "stream")).to_have_text("RUNNING", timeout=RUN_TIMEOUT)
    expect(page.locator(".jp-AiflowStatus")).to_have_text("aiflow: 1 running")
    # Only what the state allows: a running task stops or restarts, an ended one starts again.
    expect(task_buttons(panel, "stream")).to_have_count(2)
    expect(task_buttons(panel, "stream").nth(0)).to_have_attribute("aria-label", "Stop")
    expect(task_buttons(panel, "stream").nth(1)).to_have_attribute("aria-label", "Restart")
    expect(task_buttons(panel, "react")).to_have_count(1)
    expect(task_buttons(panel, "react")).to_have_attribute("aria-label", "Start")
    # The feed shows the user's events; the service's own ones only when asked for.
    feed = panel.locator(".jp-AiflowPanel-feed li")
    expect(feed.filter(has_text="execution #")).to_have_count(0)
    expect(feed.first).to_contain_text("go")
    panel.locator(".jp-AiflowPanel-serviceEvents").check()
    expect(feed.filter(has_text="react #1 SUCCESS")).not_to_have_count(0)
    panel.locator(".jp-AiflowPanel-serviceEvents").uncheck()
    panel.locator(".jp-AiflowPanel-filter").fill("go")
    expect(panel.locator('.jp-AiflowPanel-feed li[data-key="go"]')).to_contain_text('{"hour":10}')
    expect(panel.locator(".jp-AiflowPanel-feed li")).to_have_count(1)
    shots.take(page, "event-sent-task-ran")

    panel.locator('.jp-AiflowPanel-tasks tr[data-task="stream"] .jp-AiflowPanel-stopTask').click()
    expect(task_status(panel, "stream")).to_have_text("STOPPED", timeout=RUN_TIMEOUT)
    expect(page.locator(".jp-AiflowStatus")).to_have_text("aiflow: 0 running")
    shots.take(page, "streaming-task-stopped")

    panel.locator('.jp-AiflowPanel-tasks tr[data-task="train"]').click()
    notebook = page.locator(".jp-NotebookPanel").filter(has=page.locator(".jp-OutputArea-output"))
    expect(notebook.locator(".jp-OutputArea-output").first).to_contain_text("trained 42", timeout=60_000)
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").filter(has_text="(read-only).ipynb")).to_be_visible()
    expect(page.locator(".jp-AiflowLog-text")).to_contain_text("trained 42")
    # Read-only: its cells cannot be edited, and no kernel was started for it.
    expect(notebook.locator(".jp-Cell .cm-editor.jp-mod-readOnly")).to_have_count(2)
    expect(notebook.locator(".jp-ToolbarLabelComponent")).to_have_text("notebook is read-only")
    shots.take(page, "executed-notebook-opened")

    # A service error shows in the panel's error line: stopping an execution twice.
    run_command(page, "aiflow-nb:stop-execution")
    expect(panel.locator(".jp-AiflowPanel-executions .jp-AiflowPanel-status").first).to_have_text("STOPPED")
    run_command(page, "aiflow-nb:stop-execution")
    expect(panel.locator(".jp-AiflowPanel-error")).to_contain_text("not RUNNING")
    shots.take(page, "service-error-shown")
    # A finished execution's tasks offer no action (the service would refuse each).
    expect(panel.locator(".jp-AiflowPanel-tasks tbody tr")).not_to_have_count(0)
    expect(panel.locator(".jp-AiflowPanel-tasks button")).to_have_count(0)


def test_graph_opens_large_and_readable(page: Page, shots: Shots) -> None:
    panel = page.locator("#aiflow-nb-panel")
    panel.locator(".jp-AiflowPanel-openGraph").click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").filter(has_text="graph: default/demo")
    expect(tab).to_be_visible()
    large = page.locator(".jp-AiflowGraph svg")
    expect(large.locator("g.node title", has_text="train")).to_have_count(1)
    # A node's name is drawn at least at the size of the page's own small text.
    box = large.locator("g.node text").first.bounding_box()
    assert box is not None and box["height"] >= 11, box
    shots.take(page, "graph-large")


def test_status_bar_item_sits_in_the_middle_with_room(page: Page) -> None:
    bar = page.locator("#jp-main-statusbar").bounding_box()
    item = page.locator(".jp-AiflowStatus")
    box = item.bounding_box()
    assert bar is not None and box is not None
    # Its text is centred on the bar, as JupyterLab's own items are, and padded on both sides.
    assert abs((box["y"] + box["height"] / 2) - (bar["y"] + bar["height"] / 2)) <= 2, (box, bar)
    padding = item.evaluate("n => [getComputedStyle(n).paddingLeft, getComputedStyle(n).paddingRight]")
    assert all(float(p.removesuffix("px")) >= 4 for p in padding), padding


def test_panel_explains_a_stopped_service_and_starts_it(
    page: Page, shared_service: SharedService, shots: Shots
) -> None:
    running = shared_service.running()
    panel = page.locator("#aiflow-nb-panel")
    if not panel.is_visible():
        page.locator('.jp-SideBar [data-id="aiflow-nb-panel"]').click()
    os.kill(running.pid, signal.SIGTERM)
    down = panel.locator(".jp-AiflowPanel-down")
    expect(down).to_be_visible(timeout=60_000)
    expect(down).to_contain_text("not running")
    shots.take(page, "service-down")

    down.locator(".jp-AiflowPanel-startService").click()
    expect(panel.locator(".jp-AiflowPanel-live.jp-mod-open")).to_be_attached(timeout=90_000)
    expect(down).to_be_hidden()
    expect(panel.locator('tr[data-workflow="default/demo"]')).to_be_visible()
    shots.take(page, "service-started-from-panel")


def test_panel_comes_back_when_the_service_is_started_elsewhere(
    page: Page, shared_service: SharedService, shots: Shots
) -> None:
    shared_service.stop()
    panel = page.locator("#aiflow-nb-panel")
    expect(panel.locator(".jp-AiflowPanel-down")).to_be_visible(timeout=60_000)
    shared_service.running()  # as `aiflow-nb server start` or a magic would
    expect(panel.locator(".jp-AiflowPanel-live.jp-mod-open")).to_be_attached(timeout=60_000)
    expect(panel.locator(".jp-AiflowPanel-down")).to_be_hidden()
    shots.take(page, "service-back-by-itself")
