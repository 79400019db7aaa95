"""The panel's "why" line of each run, each task's operator, and the "Dry run" of a submitted workflow."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from aiflow_nb import BashTask, PythonTask, TaskAction, Workflow
from tests.browser.conftest import Shots
from tests.jupyter.conftest import SharedService

RUN_TIMEOUT = 120_000


def because(key: str, python: bool = False) -> Workflow:
    """``first`` starts with the execution, ``on_go`` (bash, or a python task) on the event ``key``."""
    with Workflow("because") as wf:
        BashTask("first", command="true")
        on_go = PythonTask("on_go", callable="os:getcwd") if python else BashTask("on_go", command="true")
        on_go.action_on_event_received(TaskAction.START, key)
    return wf


def task_row(panel: Locator, task: str) -> Locator:
    return panel.locator(f'.jp-AiflowPanel-tasks tr[data-task="{task}"]').last


def test_each_run_says_why_and_the_dry_run_shows_the_differences(
    page: Page, shared_service: SharedService, shots: Shots
) -> None:
    client = shared_service.running().client()
    client.submit(because("go"))
    page.locator('.jp-SideBar [data-id="aiflow-nb-panel"]').click()
    panel = page.locator("#aiflow-nb-panel")
    panel.locator('tr[data-workflow="default/because"]').click()
    panel.locator(".jp-AiflowPanel-startExecution").click()
    expect(task_row(panel, "first").locator(".jp-AiflowPanel-status")).to_have_text("SUCCESS", timeout=RUN_TIMEOUT)
    offset = client.send_event("go", sender="feeder")
    expect(task_row(panel, "on_go").locator(".jp-AiflowPanel-status")).to_have_text("SUCCESS", timeout=RUN_TIMEOUT)

    # Why each run was made, in a few words; the whole chain in the tooltip.
    [ex] = client.executions(workflow="because")
    on_go_why = task_row(panel, "on_go").locator(".jp-AiflowPanel-taskWhy")
    expect(on_go_why).to_have_text(f"why: START on go (rule on_go#1) <- event {offset}")
    expect(on_go_why).to_have_attribute(
        "title",
        f"on_go #1 (task execution 2 of execution {ex.id}) <- "
        f"START on go (rule on_go#1) <- event {offset} go from feeder",
    )
    first_why = task_row(panel, "first").locator(".jp-AiflowPanel-taskWhy")
    expect(first_why).to_contain_text(f"why: execution {ex.id} of because (version 1) <- command: execution start")
    # Each task's operator.
    expect(task_row(panel, "on_go").locator(".jp-AiflowPanel-taskKind")).to_have_text("bash")
    shots.take(page, "why-line-and-operator")

    # Dry run of the submitted version over the last 24 hours: what ran, no difference.
    expect(panel.locator(".jp-AiflowPanel-dryRunWindow")).to_have_value("24h")
    panel.locator(".jp-AiflowPanel-dryRun").click()
    result = panel.locator(".jp-AiflowPanel-dryRunResult")
    expect(result).to_contain_text("Dry run of default/because v1 over the last 24 hours")
    expect(result.locator("li")).to_have_text(
        [
            "1 execution(s); runs: first 1, on_go 1; 0 event(s) matched nothing",
            "no difference with what the submitted version did",
        ]
    )
    shots.take(page, "dry-run-no-difference")

    # A new version on another key would not have started on_go: the dry run over the whole log says so.
    # It makes on_go a python task; the execution shown runs version 1, whose on_go is still bash.
    client.submit(because("other", python=True))
    expect(panel.locator(".jp-AiflowPanel-title")).to_have_text("default/because v2")
    panel.locator(".jp-AiflowPanel-dryRunWindow").select_option("all")
    panel.locator(".jp-AiflowPanel-dryRun").click()
    expect(result).to_contain_text("Dry run of default/because v2 over the whole log")
    expect(result.locator("li").first).to_have_text("1 execution(s); runs: first 1; 0 event(s) matched nothing")
    expect(result.locator("li").nth(1)).to_contain_text("only in reality: on_go #1 of the execution made by command")
    shots.take(page, "dry-run-differences")
    result.get_by_label("Close the dry run").click()
    expect(result).to_have_count(0)
    # Nothing ran for the dry runs.
    assert [e.id for e in client.executions(workflow="because")] == [ex.id]

    # Shown afresh, the execution (of version 1) shows version 1's operators, not the latest version's.
    page.reload()
    page.locator('.jp-SideBar [data-id="aiflow-nb-panel"]').click()
    panel.locator('tr[data-workflow="default/because"]').click()
    expect(task_row(panel, "on_go").locator(".jp-AiflowPanel-status")).to_have_text("SUCCESS", timeout=RUN_TIMEOUT)
    expect(task_row(panel, "on_go").locator(".jp-AiflowPanel-taskKind")).to_have_text("bash")
