"""Every FAILED, STOPPED and timeout is an event other workflows can react to."""

from __future__ import annotations

from aiflow_nb import BashTask, Engine, TaskStatus, Workflow
from aiflow_nb.events import keys
from tests.scheduler.tasks import wait_run


def test_a_failure_starts_a_notification_in_another_workflow(engine: Engine) -> None:
    with Workflow("etl") as etl:
        BashTask("load", command="echo disk full >&2; exit 3")
    with Workflow("notify") as notify:
        BashTask("page", command="echo $AIFLOW_NB_EVENT")
    notify.trigger_on(keys.TASK_FAILED)
    engine.submit(etl)
    engine.submit(notify)
    ex = engine.start_execution("etl")
    wait_run(engine, ex, "load", TaskStatus.FAILED)
    engine.wait_for(lambda: engine.executions(workflow="notify"), timeout=30)
    (page_ex,) = engine.executions(workflow="notify")
    event = page_ex.event
    assert event["key"] == keys.TASK_FAILED
    assert event["sender"] == "etl/load"
    assert event["value"]["execution_id"] == ex
    assert "exited with code 3" in event["value"]["error"]


def test_stop_and_timeout_are_events_too(engine: Engine) -> None:
    with Workflow("slow") as wf:
        BashTask("stopped", command="sleep 60")
        BashTask("late", command="sleep 60", timeout=0.5)
    engine.submit(wf)
    ex = engine.start_execution("slow")
    wait_run(engine, ex, "stopped", TaskStatus.RUNNING)
    engine.stop_task(ex, "stopped")
    wait_run(engine, ex, "stopped", TaskStatus.STOPPED)
    wait_run(engine, ex, "late", TaskStatus.FAILED)
    stopped = engine.events(key=keys.TASK_STOPPED)
    timeout = engine.events(key=keys.TASK_TIMEOUT)
    failed = engine.events(key=keys.TASK_FAILED)
    assert [(e.sender, e.value["status"]) for e in stopped] == [("slow/stopped", "STOPPED")]
    assert [(e.sender, e.value["status"]) for e in timeout] == [("slow/late", "TIMEOUT")]
    assert "timed out after 0.5 s" in timeout[0].value["error"]
    assert [e.sender for e in failed] == ["slow/late"]
    assert all(e.execution_id is None for e in stopped + timeout + failed)
