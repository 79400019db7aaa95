"""The live widgets against a real service: they follow runs, act for real and stop cleanly."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import KernelManager

from aiflow_nb import BashTask, NotebookTask, TaskAction, Workflow
from aiflow_nb.client import Client
from aiflow_nb.notebooks import code_notebook
from aiflow_nb.widgets import RUNS_DIR, EventFeed, TaskRow, WorkflowList, WorkflowView
from aiflow_nb.workflow.graph import STATUS_COLORS
from aiflow_nb.workflow.records import WhyLink
from tests.conftest import RunningService
from tests.server import wait, wait_execution, wait_for_file, wait_task


@pytest.fixture
def views() -> Iterator[list[WorkflowView | EventFeed | WorkflowList]]:
    """Widgets a test makes; closed when it ends, even when it fails."""
    made: list[WorkflowView | EventFeed | WorkflowList] = []
    yield made
    for widget in made:
        widget.close()


def rows(view: WorkflowView) -> list[tuple[str, str, str]]:
    """(task, status, seq) of each row of the task table, as shown."""
    return [(v["task"], v["status"], v["seq"]) for v in (row.values() for row in view.task_rows)]


def row(view: WorkflowView, task: str, seq: int = 1) -> TaskRow:
    return next(r for r in view.task_rows if r.run.task == task and r.run.seq == seq)


def labels(view: WorkflowView) -> list[str]:
    return [label for label, _ in view.executions.options]


def table(feed: EventFeed) -> list[list[str]]:
    """The cells of each row of the event table, as shown."""
    return [
        [html.unescape(re.sub(r"<[^>]*>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        for tr in re.findall(r"<tr>(.*?)</tr>", feed.table.value.split("<tbody>")[1])
    ]


def cell_styles(feed: EventFeed) -> list[str]:
    """The style of each cell of the event table's first row."""
    first = re.findall(r"<tr>(.*?)</tr>", feed.table.value.split("<tbody>")[1])[0]
    return re.findall(r'<td style="([^"]*)">', first)


def test_the_view_follows_a_run_to_success_and_opens_its_notebook(
    service: RunningService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    views: list[WorkflowView | EventFeed | WorkflowList],
) -> None:
    monkeypatch.chdir(tmp_path)  # the kernel's folder: "open" writes below it
    client = service.client()
    with Workflow("pipeline") as wf:
        nb = NotebookTask("greet", notebook=code_notebook("print('hello from the notebook')"))
        BashTask("after", command="echo after-ran").start_after(nb)
    client.submit(wf)
    view = WorkflowView(client, "pipeline")
    views.append(view)
    assert view.running
    assert labels(view) == [] and rows(view) == []
    assert "greet" in view.graph.value and view.graph.value.startswith("<svg")

    ex = client.start_execution("pipeline")
    wait(lambda: rows(view) == [("greet", "SUCCESS", "1"), ("after", "SUCCESS", "1")], 120, "both tasks SUCCESS")
    wait(lambda: labels(view) and labels(view)[0].startswith(f"#{ex}  SUCCESS"), 30, "the execution SUCCESS")
    assert view.selected == ex
    wait(lambda: view.graph.value.count(STATUS_COLORS["SUCCESS"]) == 2, 30, "both nodes drawn SUCCESS")
    assert view.stop_execution_button.disabled

    # "open" writes the executed notebook next to the kernel, links it and shows the log.
    greet = row(view, "greet")
    greet.open.click()
    written = tmp_path / RUNS_DIR / f"pipeline-greet-1-{greet.run.id}.ipynb"
    executed = nbformat.read(written, as_version=4)
    assert "hello from the notebook" in json.dumps(executed.cells[-1].outputs)
    assert f'<a href="{RUNS_DIR}/{written.name}"' in view.details.value
    assert "hello from the notebook" in view.details.value
    row(view, "after").open.click()
    assert "after-ran" in view.details.value  # a bash task has a log, no notebook
    assert len(list((tmp_path / RUNS_DIR).iterdir())) == 1

    # A new execution is followed (of a new version, quicker to run); an older one can be picked.
    with Workflow("pipeline") as quick:
        BashTask("after", command="true")
    client.submit(quick)
    ex2 = client.start_execution("pipeline")
    wait(lambda: labels(view)[0].startswith(f"#{ex2}  SUCCESS"), 120, "the second execution SUCCESS")
    wait(lambda: rows(view) == [("after", "SUCCESS", "1")], 30, "rows of the second execution")
    assert "greet" not in view.graph.value  # the graph of the execution's version
    view.executions.value = ex
    assert {r.run.execution_id for r in view.task_rows} == {ex}
    assert "greet" in view.graph.value
    ex3 = client.start_execution("pipeline")
    wait(lambda: labels(view)[0].startswith(f"#{ex3}  SUCCESS"), 120, "the third execution SUCCESS")
    assert view.selected == ex  # the pick holds
    view.close()
    assert not view.running


def test_the_buttons_stop_and_restart_a_task_and_stop_the_execution(
    service: RunningService, tmp_path: Path, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    client = service.client()
    with Workflow("waiting") as wf:
        BashTask("sleeper", command=wait_for_file(tmp_path / "never"))
        BashTask("other", command=wait_for_file(tmp_path / "never"))
    client.submit(wf)
    ex = client.start_execution("waiting")
    view = WorkflowView(client, "waiting")
    views.append(view)
    wait(lambda: sorted(rows(view)) == [("other", "RUNNING", "1"), ("sleeper", "RUNNING", "1")], 60, "both running")
    assert not view.stop_execution_button.disabled

    row(view, "sleeper").stop.click()
    wait_task(client, ex, "sleeper", "STOPPED")
    wait(lambda: ("sleeper", "STOPPED", "1") in rows(view), 30, "sleeper STOPPED in the view")
    assert "stop: task sleeper" in view.message.value
    assert row(view, "sleeper").stop.disabled

    row(view, "sleeper").restart.click()
    wait_task(client, ex, "sleeper", "RUNNING", seq=2)
    wait(lambda: ("sleeper", "RUNNING", "2") in rows(view), 30, "sleeper #2 RUNNING in the view")
    # Only the latest run of a task has live buttons.
    assert row(view, "sleeper", 1).restart.disabled

    view.stop_execution_button.click()
    wait_execution(client, ex, "STOPPED")
    wait(lambda: labels(view)[0].startswith(f"#{ex}  STOPPED"), 30, "the execution STOPPED in the view")
    wait(lambda: view.stop_execution_button.disabled, 30, "stop execution disabled")
    wait(
        lambda: (
            sorted(rows(view)) == [("other", "STOPPED", "1"), ("sleeper", "STOPPED", "1"), ("sleeper", "STOPPED", "2")]
        ),
        30,
        "every task STOPPED in the view",
    )

    # A refused action is a message, not a traceback.
    row(view, "sleeper", 2).restart.disabled = False
    row(view, "sleeper", 2).restart.click()
    assert "color:#b00020" in view.message.value

    # So is a workflow that was never submitted.
    unknown = WorkflowView(client, "nope")
    views.append(unknown)
    assert "nope" in unknown.message.value and "#b00020" in unknown.message.value
    assert labels(unknown) == []


def test_the_event_feed_shows_new_events_and_filters_by_key(
    service: RunningService, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    client = service.client()
    client.send_event("alpha", {"n": 1})
    feed = EventFeed(client)
    views.append(feed)
    assert [e.key for e in feed.shown] == ["alpha"]  # what was sent before it opened

    client.send_event("beta", "two")
    client.send_event("alphabet", 3, namespace="team")
    wait(lambda: [e.key for e in feed.shown] == ["alphabet", "beta", "alpha"], 30, "the new events, newest first")
    offset, _, namespace, key, sender, value = table(feed)[0]
    assert (namespace, key, sender, value) == ("team", "alphabet", "", "3")
    assert int(offset) == feed.shown[0].offset
    assert table(feed)[1][3:] == ["beta", "", "two"]

    feed.filter.value = "ALPHA"
    assert [row[3] for row in table(feed)] == ["alphabet", "alpha"]
    client.send_event("alpha", {"n": 2})
    client.send_event("gamma")
    wait(lambda: [row[5] for row in table(feed)] == ['{"n": 2}', "3", '{"n": 1}'], 30, "the new alpha")
    assert "gamma" not in feed.table.value
    feed.filter.value = ""
    assert table(feed)[0][3] == "gamma"

    # Started with a key and a namespace.
    team = EventFeed(client, key="alpha", namespace="team")
    views.append(team)
    assert team.filter.value == "alpha"
    assert [e.key for e in team.shown] == ["alphabet"]

    # Closed, they stop following and no longer redraw.
    feed.close()
    team.close()
    assert not feed.running and not team.running
    shown = feed.table.value
    client.send_event("delta")
    feed.refresh()
    assert feed.table.value == shown


def test_a_kernel_shuts_down_cleanly_with_live_widgets(service: RunningService, tmp_path: Path) -> None:
    report = tmp_path / "threads.json"
    code = f"""
import atexit, json, threading
def record():  # registered first, so it runs after the widgets' own exit hook
    alive = [t.name for t in threading.enumerate() if t.name.startswith("aiflow-")]
    open({str(report)!r}, "w").write(json.dumps(alive))
atexit.register(record)
from aiflow_nb.client import Client
from aiflow_nb.widgets import EventFeed, WorkflowView
client = Client({service.info.url!r}, {service.info.token!r})
view, feed = WorkflowView(client, "none"), EventFeed(client)
assert view.running and feed.running
print(sorted(t.name for t in threading.enumerate() if t.name.startswith("aiflow-")))
"""
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    assert json.loads(report.read_text()) == []


def test_a_client_without_service_is_a_message(
    tmp_path: Path, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    # A service that went away: the widgets say so instead of raising, and keep trying.
    client = Client("http://127.0.0.1:9", "token", home=tmp_path, retry_for=0.5, timeout=2)
    feed = EventFeed(client)
    views.append(feed)
    assert "#b00020" in feed.message.value
    assert feed.running
    feed.close()
    assert not feed.running


def test_the_feed_follows_the_service_across_a_restart(
    service: RunningService, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    client = Client(home=service.home)  # finds the service (and its successor) from server.json
    feed = EventFeed(client)
    views.append(feed)
    client.send_event("before")
    wait(lambda: [e.key for e in feed.shown] == ["before"], 30, "the first event")
    service.kill()
    service.start()
    client.send_event("after")
    wait(lambda: [e.key for e in feed.shown] == ["after", "before"], 60, "the event sent to the new service")
    assert feed.running
    client.close()


def test_a_running_duration_counts_on_and_a_failed_row_shows_its_error(
    service: RunningService, tmp_path: Path, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    client = service.client()
    with Workflow("counting") as wf:
        BashTask("sleeper", command=wait_for_file(tmp_path / "never"))
        BashTask("boom", command="echo about to fail; exit 3")
    client.submit(wf)
    ex = client.start_execution("counting")
    view = WorkflowView(client, "counting")
    views.append(view)
    wait(lambda: {("sleeper", "RUNNING", "1"), ("boom", "FAILED", "1")} <= set(rows(view)), 60, "one runs, one failed")

    # The failed run's recorded error is on its row; the running one has none.
    recorded = wait_task(client, ex, "boom", "FAILED").error
    assert recorded
    assert row(view, "boom").values()["error"] == recorded
    assert row(view, "sleeper").values()["error"] == ""

    # No event comes while the sleeper runs, yet its duration (and its execution's) counts on.
    sleeper = row(view, "sleeper")
    first = sleeper.values()["duration"]
    assert first.endswith("…")
    wait(lambda: sleeper.values()["duration"] not in ("", first), 30, "the running duration to count on")
    assert sleeper.values()["duration"].endswith("…")
    label = labels(view)[0]
    wait(lambda: labels(view)[0] != label, 30, "the execution's duration to count on")
    assert labels(view)[0].startswith(f"#{ex}  RUNNING")
    assert not row(view, "boom").values()["duration"].endswith("…")  # an ended run's is fixed

    client.stop_execution(ex)
    wait(lambda: ("sleeper", "STOPPED", "1") in rows(view), 30, "the sleeper STOPPED in the view")
    stopped = row(view, "sleeper").values()["duration"]
    assert stopped and not stopped.endswith("…")


def test_the_view_fits_its_output_area(
    service: RunningService, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    client = service.client()
    with Workflow("fitting") as wf:
        BashTask("one", command="true")
    client.submit(wf)
    view = WorkflowView(client, "fitting")
    views.append(view)
    # Never wider than the output area (a narrow split view): the parts wrap, scale or scroll.
    header = view.children[0]
    assert view.layout.max_width == "100%"
    assert header.layout.flex_flow == "row wrap"
    assert view.executions.layout.width == "auto" and view.executions.layout.max_width == "100%"
    assert view.graph.layout.overflow == "auto" and view.tasks.layout.overflow == "auto"
    assert view.graph.value.startswith('<svg style="max-width:100%;height:auto"')
    # The executions list is as long as the executions, up to five rows.
    assert view.executions.rows == 1
    for _ in range(2):
        ex = client.start_execution("fitting")
        wait_execution(client, ex, "SUCCESS", timeout=60)
    wait(lambda: len(labels(view)) == 2, 30, "two executions listed")
    assert view.executions.rows == 2


def test_the_event_feed_shows_user_events_unless_asked_for_the_services(
    service: RunningService, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    client = service.client()
    with Workflow("noisy") as wf:
        BashTask("one", command="true")
    client.submit(wf)
    wait_execution(client, client.start_execution("noisy"), "SUCCESS", timeout=60)
    client.send_event("mine", 1)
    feed = EventFeed(client)
    views.append(feed)
    assert [e.key for e in feed.shown] == ["mine"]
    assert "aiflow." not in feed.table.value
    assert feed.service_events.description == "aiflow.* events" and not feed.service_events.value

    feed.service_events.value = True
    keys = [e.key for e in feed.shown]
    assert keys[0] == "mine" and "aiflow.workflow.submitted" in keys and "aiflow.execution.status" in keys
    submitted = next(r for r in table(feed) if r[3] == "aiflow.workflow.submitted")
    assert submitted[4] == "noisy"  # the sender, in a cell of its own
    # Labels are whole, times and keys stay on one line and apart from the next column.
    assert feed.filter.style.description_width == "initial"
    assert feed.service_events.style.description_width == "initial"
    styles = cell_styles(feed)
    assert all("white-space:nowrap" in st and "padding" in st for st in styles[:5])

    client.send_event("later", 2)
    wait(lambda: feed.shown and feed.shown[0].key == "later", 30, "the next event")
    feed.service_events.value = False
    assert [e.key for e in feed.shown] == ["later", "mine"]


def test_the_workflow_list_is_live(
    service: RunningService, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    client = service.client()
    listed = WorkflowList(client)
    views.append(listed)
    assert listed.rows() == [] and "no workflow" in listed.table.value
    with Workflow("waits") as wf:
        BashTask("boom", command="exit 3").action_on_event_received("START", "go")
    client.submit(wf)
    wait(lambda: [r["name"] for r in listed.rows()] == ["waits"], 30, "the submitted workflow")
    ex = client.start_execution("waits")
    wait(lambda: listed.rows()[0]["latest"] == f"#{ex} RUNNING", 30, "the execution RUNNING")
    client.send_event("go")
    wait_execution(client, ex, "FAILED", timeout=60)
    wait(lambda: listed.rows()[0]["latest"] == f"#{ex} FAILED", 30, "the execution FAILED in the list")
    client.pause("waits")
    wait(lambda: listed.rows()[0]["paused"] == "True", 30, "paused in the list")


class CountingClient(Client):
    """A real client that counts the "why" requests it makes."""

    asked: list[int]

    def why(self, task_execution_id: int) -> list[WhyLink]:
        self.asked.append(task_execution_id)
        return super().why(task_execution_id)


def test_each_run_shows_why_it_started_asked_once_per_run(
    service: RunningService, views: list[WorkflowView | EventFeed | WorkflowList]
) -> None:
    client = CountingClient(service.info.url, service.info.token, home=service.home)
    service.clients.append(client)  # closed when the test ends
    client.asked = []
    with Workflow("because") as wf:
        first = BashTask("first", command="sleep 1")
        BashTask("on_go", command="true").action_on_event_received(TaskAction.START, "go")
        BashTask("after", command="true").start_after(first)
    client.submit(wf)
    view = WorkflowView(client, "because")
    views.append(view)
    ex = client.start_execution("because")
    wait(lambda: ("first", "SUCCESS", "1") in rows(view), 60, "first SUCCESS")
    offset = client.send_event("go", sender="feeder")
    wait(lambda: sorted(rows(view)) == [(t, "SUCCESS", "1") for t in ("after", "first", "on_go")], 60, "all SUCCESS")

    why = {r.run.task: r.values()["why"] for r in view.task_rows}
    assert why["first"].startswith(f"execution {ex} of because (version 1) <- command: execution start at ")
    assert why["on_go"] == f"START on go (rule on_go#1) <- event {offset}"
    assert why["after"].startswith("START on aiflow.task.status (rule ") and "first #1 SUCCESS" in why["after"]
    # The whole chain is the tooltip; each run was asked about once, however often the rows were redrawn.
    assert f"event {offset} go from feeder" in row(view, "on_go").cells["why"].value
    assert sorted(client.asked) == sorted(r.run.id for r in view.task_rows)
