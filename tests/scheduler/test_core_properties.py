"""Properties of the decision core, and random workloads that must leave a state ``verify`` finds consistent.

The workloads drive a real engine (real DuckDB file) with ``max_parallel=0``,
so nothing is handed to an executor: the launch dispatches and the outcomes
an executor would report are fed to the scheduler in the engine's own
transaction, as the engine's step does.  Hypothesis draws the workflows
(every rule kind, triggers, schedules, retries, timeouts, limits) and the
inputs (events, commands, dispatches, outcomes, clock ticks).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiflow_nb import Engine, Workflow
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import replay
from aiflow_nb.scheduler.transitions import ACTIONS, TASK_TRANSITIONS, Effect, outcome_change, stop_status
from aiflow_nb.workflow import TaskAction, TaskStatus
from tests.scheduler.workloads import OPS, engine_after, workflows

STATUSES: list[TaskStatus | None] = [None, *TaskStatus]


# -- the tables ------------------------------------------------------------------


@pytest.mark.parametrize("status", STATUSES)
def test_start_on_an_alive_run_changes_nothing_and_on_an_ended_one_makes_the_next(status: TaskStatus | None) -> None:
    alive = status is not None and status.alive
    assert ACTIONS[(status, TaskAction.START)] is (Effect.NOTHING if alive else Effect.NEW_RUN)
    assert ACTIONS[(status, TaskAction.RESTART)] is (Effect.RESTART if alive else Effect.NEW_RUN)
    assert ACTIONS[(status, TaskAction.STOP)] is (Effect.STOP if alive else Effect.NOTHING)


@pytest.mark.parametrize("status", list(TaskStatus))
def test_a_stop_is_a_legal_transition_or_nothing(status: TaskStatus) -> None:
    after = stop_status(status)
    assert after is None or after in TASK_TRANSITIONS[status]
    if after is None:
        assert status is TaskStatus.STOPPING or not status.alive


@given(
    current=st.sampled_from(list(TaskStatus)),
    reason=st.sampled_from([None, "stop", "timeout"]),
    attempt=st.integers(1, 4),
    reported=st.sampled_from([TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.STOPPED]),
    max_retries=st.one_of(st.none(), st.integers(0, 3)),
)
def test_an_outcome_is_a_legal_transition_and_retries_only_within_max_retries(
    current: TaskStatus, reason: str | None, attempt: int, reported: TaskStatus, max_retries: int | None
) -> None:
    change = outcome_change(current, reason, attempt, reported, None, max_retries, 5.0)
    if current not in (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.STOPPING):
        assert change is None
        return
    assert change is not None
    # A QUEUED run that reports an outcome ran: it passes through RUNNING.
    source = TaskStatus.RUNNING if current is TaskStatus.QUEUED else current
    assert change.status in TASK_TRANSITIONS[source]
    if change.status is TaskStatus.RETRYING:
        assert max_retries is not None and attempt <= max_retries


# -- random workloads ------------------------------------------------------------------


def check_invariants(engine: Engine) -> None:
    report = engine.verify()
    assert report.consistent, "\n".join(report.lines())
    for ex in engine.executions():
        runs = engine.task_executions(ex.id)
        for task, group in itertools.groupby(sorted(runs, key=lambda te: (te.task, te.seq)), key=lambda te: te.task):
            mine = list(group)
            assert [te.seq for te in mine] == list(range(1, len(mine) + 1)), f"{ex.id}/{task}: seq grows by one"
            assert sum(te.status.alive for te in mine) <= 1, f"{ex.id}/{task}: one alive run at most"
    ends = [
        e.value["execution_id"]
        for e in engine.events(key=event_keys.EXECUTION_STATUS)
        if e.value["status"] in ("SUCCESS", "FAILED", "STOPPED")
    ]
    assert len(ends) == len(set(ends)), "an execution finishes exactly once"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made=workflows(), ops=OPS)
def test_random_workloads_leave_a_state_verify_finds_consistent(
    tmp_path_factory: pytest.TempPathFactory, made: list[Workflow], ops: list[tuple[str, int, int]]
) -> None:
    with engine_after(Path(tmp_path_factory.mktemp("home")), made, ops) as engine:
        check_invariants(engine)


def test_the_fold_reports_a_second_alive_run_and_a_seq_that_skips() -> None:
    def status(offset: int, te: int, seq: int, status: str) -> tuple[int, str, str, dict[str, Any]]:
        value = {"execution_id": 1, "task": "t", "seq": seq, "attempt": 1, "task_execution_id": te, "status": status}
        return (offset, event_keys.TASK_STATUS, "default", value)

    started = (
        1,
        event_keys.EXECUTION_STATUS,
        "default",
        {"execution_id": 1, "workflow": "w", "version": 1, "status": "RUNNING"},
    )
    implied = replay.fold([started, status(2, 1, 1, "QUEUED"), status(3, 2, 3, "QUEUED")])
    problems = [str(d) for d in implied.broken]
    assert problems == [
        "event 3 task execution 2 seq: stored 3, the log implies 2",
        "event 3 task 't' of execution 1: a second alive run: stored 2, the log implies 1",
    ]
