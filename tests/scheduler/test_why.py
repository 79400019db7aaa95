"""``why``: every run's chain of causes reaches an outside event, a schedule tick or a command.

One test per way a run comes to be: a command, an event rule, a status
rule (start_after), a trigger, a schedule tick, a retry, a RESTART, a
trigger that waited for a free slot, and an event a task sent from inside
its execution (through a real service, with the CLI and the REST answer).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, TaskAction, TaskStatus, Workflow, WorkflowStatus, errors
from aiflow_nb.scheduler.why import line, short
from aiflow_nb.workflow.records import WhyLink
from tests.conftest import InsideRun
from tests.scheduler.tasks import runs, settle, wait_execution, wait_run


def kinds(links: list[WhyLink]) -> list[str]:
    return [link.kind for link in links]


def test_a_run_started_by_a_command_goes_back_to_the_command(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("a", command="true")
    engine.submit(wf)
    ex_id = engine.start_execution("w")
    te = wait_run(engine, ex_id, "a", TaskStatus.SUCCESS)
    links = engine.why(te.id)
    assert kinds(links) == ["run", "execution", "command"]
    assert links[0].text.startswith("a #1 ")
    assert links[-1].text.startswith("command: execution start")
    assert kinds(engine.why_execution(ex_id)) == ["execution", "command"]


def test_an_event_rule_and_a_status_rule_go_back_through_the_upstream_run(engine: Engine) -> None:
    with Workflow("w") as wf:
        a = BashTask("a", command="true").action_on_event_received(TaskAction.START, "go")
        BashTask("b", command="true").start_after(a)
        BashTask("idle", command="true")
    engine.submit(wf)
    ex_id = engine.start_execution("w")
    offset = engine.send_event("go", sender="feeder")
    b = wait_run(engine, ex_id, "b", TaskStatus.SUCCESS)
    a_run = runs(engine, ex_id, "a")[0]

    a_links = engine.why(a_run.id)
    assert kinds(a_links) == ["run", "rule", "event"]
    assert (a_links[1].offset, a_links[1].key, a_links[1].rule) == (offset, "go", "a#1")
    assert (a_links[2].offset, a_links[2].key, a_links[2].sender) == (offset, "go", "feeder")
    assert a_links[2].text == f"event {offset} go from feeder"

    b_links = engine.why(b.id)
    assert kinds(b_links) == ["run", "rule", "event", "run", "rule", "event"]
    assert b_links[1].key == "aiflow.task.status"
    assert "a #1 SUCCESS" in b_links[2].text
    assert b_links[3].text.startswith("a #1 ")
    assert b_links[-1].offset == offset


def test_a_trigger_goes_back_to_its_event(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="true")
    wf.trigger_on("new_data")
    engine.submit(wf)
    offset = engine.send_event("new_data")
    wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    [te] = engine.task_executions(1)
    links = engine.why(te.id)
    assert kinds(links) == ["run", "execution", "trigger", "event"]
    assert links[2].rule is not None and ":trigger#" in links[2].rule
    assert links[3].offset == offset


def test_a_queued_trigger_says_it_waited(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with Workflow("w", max_active_executions=1) as wf:
        BashTask("t", command=f"while [ ! -e {gate} ]; do sleep 0.05; done")
    wf.trigger_on("new_data")
    engine.submit(wf)
    engine.send_event("new_data")
    second = engine.send_event("new_data")
    wait_execution(engine, 1, WorkflowStatus.RUNNING)
    gate.write_text("go")
    wait_execution(engine, 2, WorkflowStatus.SUCCESS)
    links = engine.why_execution(2)
    assert kinds(links) == ["execution", "queued", "event"]
    assert links[-1].offset == second


def test_a_schedule_tick_is_a_root(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="true")
    wf.schedule(cron="0 0 1 1 *")
    engine.submit(wf)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert engine.backfill("w", start, start) == 1
    wait_execution(engine, 1, WorkflowStatus.SUCCESS)
    [te] = engine.task_executions(1)
    links = engine.why(te.id)
    assert kinds(links) == ["run", "execution", "schedule"]
    assert links[-1].key == "aiflow.schedule.tick"
    assert "due at 2024-01-01T00:00:00+00:00" in links[-1].text


def test_a_retried_run_says_which_attempt(engine: Engine) -> None:
    with Workflow("w") as wf:
        BashTask("t", command="exit 3", max_retries=1)
    engine.submit(wf)
    ex_id = engine.start_execution("w")
    te = wait_run(engine, ex_id, "t", TaskStatus.FAILED)
    assert te.attempt == 2
    links = engine.why(te.id)
    assert kinds(links) == ["run", "retry", "execution", "command"]
    assert links[1].text == "attempt 2: retried after attempt 1 failed"


def test_a_restarted_run_goes_back_to_the_restart_rule(engine: Engine, tmp_path: Path) -> None:
    with Workflow("w") as wf:
        BashTask("s", command="sleep 60", streaming=True).action_on_event_received(TaskAction.RESTART, "drift")
    engine.submit(wf)
    ex_id = engine.start_execution("w")
    wait_run(engine, ex_id, "s", TaskStatus.RUNNING)
    offset = engine.send_event("drift")
    second = wait_run(engine, ex_id, "s", TaskStatus.RUNNING, seq=2)
    links = engine.why(second.id)
    assert kinds(links) == ["run", "restart", "rule", "event"]
    assert links[1].text == "RESTART, once s #1 had stopped"
    assert (links[2].rule, links[3].offset) == ("s#1", offset)
    engine.stop_execution(ex_id)
    settle(engine)


def test_why_of_an_unknown_run_is_not_found(engine: Engine) -> None:
    with pytest.raises(errors.NotFoundError, match="task execution 99 does not exist"):
        engine.why(99)
    with pytest.raises(errors.NotFoundError, match="execution 98 does not exist"):
        engine.why_execution(98)


def test_an_event_sent_from_inside_a_task_goes_back_to_that_run(inside_run: InsideRun) -> None:
    client, ex_id = inside_run.client, inside_run.execution_id
    train = next(t for t in client.task_executions(ex_id) if t.task == "train")
    links = client.why(train.id)
    assert kinds(links) == ["run", "rule", "event", "run", "execution", "command"]
    assert links[2].sender == f"{ex_id}/stream/1"
    assert "sent from inside it" in links[2].text
    assert links[3].text.startswith("stream #1 ")
    # The REST answer also says it in a few words (the panel's "why" line).
    answer = client.request("GET", f"/task-executions/{train.id}/why")
    assert answer["short"] == f"START on hour_complete (rule train#1) <- event {links[2].offset}"

    shown = subprocess.run(
        [sys.executable, "-m", "aiflow_nb.cli", "task", "why", str(train.id), "--home", str(inside_run.service.home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == line(links)
    assert shown.stdout.startswith("train #1 ") and " <- START on hour_complete (rule train#1) <- " in shown.stdout

    missing = subprocess.run(
        [sys.executable, "-m", "aiflow_nb.cli", "task", "why", "999", "--home", str(inside_run.service.home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert "task execution 999 does not exist" in missing.stderr
    with pytest.raises(errors.NotFoundError):
        client.why(999)


def test_the_short_cause_stops_at_the_first_event_tick_or_command() -> None:
    run = WhyLink("run", "train #3 (task execution 9 of execution 2)")
    rule = WhyLink("rule", "START on hour_complete (rule train#1)", 1234, "hour_complete", rule="train#1")
    outside = WhyLink("event", "event 1234 hour_complete from stream/1", 1234, "hour_complete")
    assert (
        short([run, rule, outside, WhyLink("run", "stream #1")])
        == "START on hour_complete (rule train#1) <- event 1234"
    )
    status = WhyLink("event", "event 55 aiflow.task.status: a #1 SUCCESS", 55, "aiflow.task.status")
    assert short([run, rule, status, WhyLink("run", "a #1")]).endswith("<- event 55 aiflow.task.status: a #1 SUCCESS")
    command = WhyLink("command", "command: execution start")
    assert short([run, WhyLink("execution", "execution 2 of w (version 1)"), command]) == (
        "execution 2 of w (version 1) <- command: execution start"
    )
    assert short([WhyLink("run", "alone")]) == "alone"
