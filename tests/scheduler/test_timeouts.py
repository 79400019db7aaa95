"""Timeouts and retries driven by hand: the executor's inputs fed in the engine's own transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiflow_nb import BashTask, Engine, Workflow
from aiflow_nb.workflow import TaskStatus
from aiflow_nb.workflow.records import Outcome, TaskExecution
from tests.scheduler.fake_clock import FakeClock


def only_run(engine: Engine, execution_id: int) -> TaskExecution:
    (te,) = engine.task_executions(execution_id)
    return te


def dispatch(engine: Engine, te: TaskExecution) -> None:
    with engine.db.lock, engine.db.transaction():
        engine.scheduler.mark_running(te.id, te.attempt)
        engine._commit()


def report(engine: Engine, te: TaskExecution, status: TaskStatus) -> None:
    with engine.db.lock, engine.db.transaction():
        engine.scheduler.finished(Outcome(te.id, te.attempt, status, None))
        engine._commit()


def test_a_retry_after_a_timeout_that_then_succeeds_is_a_success(home: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    with Engine(home, max_parallel=0, clock=clock) as engine:
        with Workflow("w") as wf:
            BashTask("slow", command="true", timeout=10.0, max_retries=1, retry_delay=5)
        engine.submit(wf)
        ex = engine.start_execution("w")
        dispatch(engine, only_run(engine, ex))
        clock.advance(timedelta(seconds=11))
        engine.step()  # past its timeout: it is asked to stop
        te = only_run(engine, ex)
        assert te.status is TaskStatus.STOPPING
        report(engine, te, TaskStatus.STOPPED)
        te = only_run(engine, ex)
        assert (te.status, te.error) == (TaskStatus.RETRYING, "timed out after 10 s")
        clock.advance(timedelta(seconds=6))
        engine.step()  # the retry is due: queued again, attempt 2
        te = only_run(engine, ex)
        assert (te.status, te.attempt) == (TaskStatus.QUEUED, 2)
        dispatch(engine, te)
        report(engine, te, TaskStatus.SUCCESS)
        te = only_run(engine, ex)
        assert (te.status, te.attempt) == (TaskStatus.SUCCESS, 2)
        assert engine.execution(ex).status.value == "SUCCESS"
        report_ = engine.verify()
        assert report_.consistent, "\n".join(report_.lines())
