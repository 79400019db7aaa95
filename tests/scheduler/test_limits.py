"""max_active_executions: extra triggers wait in order, or are skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, Workflow, WorkflowStatus
from aiflow_nb.errors import LimitReachedError, SpecError
from tests.scheduler.tasks import settle


def gated(name: str, gate: Path, on_max_active: str = "queue") -> Workflow:
    """One task per execution that waits until ``gate/<execution id>`` exists."""
    with Workflow(name, max_active_executions=1, on_max_active=on_max_active) as wf:
        BashTask("wait", command=f"while [ ! -e {gate}/$AIFLOW_NB_EXECUTION_ID ]; do sleep 0.05; done")
    wf.trigger_on("go")
    return wf


def test_extra_triggers_wait_in_order_until_an_execution_ends(engine: Engine, tmp_path: Path) -> None:
    engine.submit(gated("limited", tmp_path))
    for i in range(3):
        engine.send_event("go", i)
    settle(engine)
    assert [e.event["value"] for e in engine.executions(workflow="limited")] == [0]

    for expected in ([0, 1], [0, 1, 2]):
        running = engine.executions(workflow="limited", status="RUNNING")
        assert len(running) == 1
        (tmp_path / str(running[0].id)).touch()
        count = len(expected)
        engine.wait_for(lambda n=count: len(engine.executions(workflow="limited")) == n, timeout=30)
        assert [e.event["value"] for e in engine.executions(workflow="limited")] == expected
        assert len(engine.executions(workflow="limited", status="RUNNING")) == 1

    (tmp_path / str(engine.executions(workflow="limited")[-1].id)).touch()
    engine.wait_for(lambda: all(e.status is WorkflowStatus.SUCCESS for e in engine.executions(workflow="limited")))


def test_the_queue_survives_a_restart(home: Path, tmp_path: Path) -> None:
    engine = Engine(home, stop_grace=2.0)
    try:
        engine.submit(gated("limited", tmp_path))
        engine.send_event("go", "first")
        engine.send_event("go", "second")
        settle(engine)
        (first,) = engine.executions(workflow="limited")
    finally:
        engine.close()
    engine = Engine(home, stop_grace=2.0)
    try:
        (tmp_path / str(first.id)).touch()
        engine.wait_for(lambda: len(engine.executions(workflow="limited")) == 2, timeout=30)
        assert engine.executions(workflow="limited")[1].event["value"] == "second"
        (tmp_path / str(engine.executions(workflow="limited")[1].id)).touch()
        engine.wait_for(lambda: not engine.executions(workflow="limited", status="RUNNING"), timeout=30)
    finally:
        engine.close()


def test_skip_drops_triggers_beyond_the_limit(engine: Engine, tmp_path: Path) -> None:
    engine.submit(gated("skipping", tmp_path, on_max_active="skip"))
    for i in range(3):
        engine.send_event("go", i)
    settle(engine)
    (only,) = engine.executions(workflow="skipping")
    (tmp_path / str(only.id)).touch()
    engine.wait_for(lambda: engine.execution(only.id).status.finished)
    settle(engine)
    assert len(engine.executions(workflow="skipping")) == 1
    engine.send_event("go", "later")
    engine.wait_for(lambda: len(engine.executions(workflow="skipping")) == 2)


def test_a_manual_start_beyond_the_limit_is_refused(engine: Engine, tmp_path: Path) -> None:
    engine.submit(gated("limited", tmp_path))
    first = engine.start_execution("limited")
    with pytest.raises(LimitReachedError, match="max_active_executions"):
        engine.start_execution("limited")
    assert [e.id for e in engine.executions(workflow="limited")] == [first]
    (tmp_path / str(first)).touch()
    engine.wait_for(lambda: engine.execution(first).status.finished)
    assert engine.start_execution("limited") > first
    (tmp_path / str(first + 1)).touch()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_active_executions": 0}, "max_active_executions"),
        ({"max_active_executions": "2"}, "max_active_executions"),
        ({"on_max_active": "drop"}, "on_max_active"),
    ],
)
def test_bad_limits_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Workflow("wf", **kwargs)  # type: ignore[arg-type]
