"""Properties of the decision core, and random workloads that must leave a state ``verify`` finds consistent.

The workloads drive a real engine (real DuckDB file) with ``max_parallel=0``,
so nothing is handed to an executor: the launch dispatches and the outcomes
an executor would report are fed to the scheduler in the engine's own
transaction, as the engine's step does.  Hypothesis draws the workflows
(every rule kind, triggers, schedules, retries, timeouts, limits) and the
inputs (events, commands, dispatches, outcomes, clock ticks).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiflow_nb import AllOf, AnyOf, BashTask, Engine, EventCondition, Workflow
from aiflow_nb.errors import AiflowError
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import replay
from aiflow_nb.scheduler.transitions import ACTIONS, TASK_TRANSITIONS, Effect, outcome_change, stop_status
from aiflow_nb.workflow import TaskAction, TaskStatus
from aiflow_nb.workflow.records import Outcome
from tests.scheduler.test_triggers import FakeClock

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

KEYS = ["a", "b", "c"]


@st.composite
def workflows(draw: st.DrawFn) -> list[Workflow]:
    made = []
    for n in range(draw(st.integers(1, 2))):
        limit = draw(st.sampled_from([None, 1, 2]))
        with Workflow(
            f"w{n}", max_active_executions=limit, on_max_active=draw(st.sampled_from(["queue", "skip"]))
        ) as wf:
            names = [f"t{i}" for i in range(draw(st.integers(1, 3)))]
            tasks = {
                name: BashTask(
                    name,
                    command="true",
                    max_retries=draw(st.integers(0, 1)),
                    retry_delay=draw(st.sampled_from([0, 5])),
                    timeout=draw(st.sampled_from([None, 10.0])),
                    streaming=draw(st.booleans()) and name != "t0",
                )
                for name in names
            }
            for i, name in enumerate(names):
                for _ in range(draw(st.integers(0, 2))):
                    action = draw(st.sampled_from(list(TaskAction)))
                    kind = draw(st.sampled_from(["event", "status", "all", "any", "after"]))
                    if kind == "event":
                        tasks[name].action_on_event_received(action, draw(st.sampled_from(KEYS)))
                    elif kind == "status" and i > 0:
                        upstream = names[draw(st.integers(0, i - 1))]
                        status = draw(st.sampled_from([TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.STOPPED]))
                        tasks[name].action_on_task_status(action, {upstream: status})
                    elif kind == "after" and i > 0:
                        tasks[name].start_after(names[i - 1])
                    elif kind in ("all", "any"):
                        keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True))
                        combine = AllOf if kind == "all" else AnyOf
                        tasks[name].action_on_condition(action, combine([EventCondition(k) for k in keys]))
                if draw(st.integers(0, 5)) == 0:
                    tasks[name].schedule(interval=timedelta(seconds=draw(st.sampled_from([30, 60]))))
            if draw(st.booleans()):
                wf.trigger_on(draw(st.sampled_from(KEYS)))
            if draw(st.integers(0, 3)) == 0:
                wf.schedule(interval=timedelta(seconds=45), catchup=draw(st.booleans()))
        made.append(wf)
    return made


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *["event", "task", "dispatch", "outcome"] * 3,
                *["start", "tick"] * 2,
                *["stop", "pause", "resume", "resubmit"],
            ]
        ),
        st.integers(0, 1000),
        st.integers(0, 1000),
    ),
    min_size=10,
    max_size=60,
)


def in_step(engine: Engine, decide: Callable[[], Any]) -> None:
    """An input the executor's side gives, in one transaction of the engine, as its step does."""
    with engine.db.lock:
        with engine.db.transaction():
            decide()
            engine._commit()
        engine._act()


def pick(items: list[Any], n: int) -> Any:
    return items[n % len(items)] if items else None


def alive_runs(engine: Engine) -> list[Any]:
    return sorted(engine.scheduler.alive.values(), key=lambda te: te.id)


def run_workload(engine: Engine, clock: FakeClock, made: list[Workflow], ops: list[tuple[str, int, int]]) -> None:
    for wf in made:
        engine.submit(wf)
    names = [wf.name for wf in made]
    for name in names:
        try:
            engine.start_execution(name)
        except AiflowError:
            pass  # no task can start without an event
    for op, x, y in ops:
        try:
            if op == "event":
                engine.send_event(KEYS[x % len(KEYS)], x)
            elif op == "start":
                engine.start_execution(pick(names, x))
            elif op == "stop":
                running = engine.executions(status="RUNNING")
                if running:
                    engine.stop_execution(pick(running, x).id)
            elif op == "task":
                running = engine.executions(status="RUNNING")
                if running:
                    ex = pick(running, x)
                    task = pick(sorted(engine.workflow(ex.workflow, version=ex.version).tasks), y)
                    action = [TaskAction.START, TaskAction.STOP, TaskAction.RESTART][y % 3]
                    before = engine.task_executions(ex.id)
                    latest = [te for te in before if te.task == task]
                    getattr(engine, f"{action.value.lower()}_task")(ex.id, task)
                    if action is TaskAction.START and latest and latest[-1].status.alive:
                        assert engine.task_executions(ex.id) == before  # START on an alive run changes nothing
            elif op == "dispatch":
                queued = [te for te in alive_runs(engine) if te.status is TaskStatus.QUEUED]
                te = pick(queued, x)
                if te is not None:
                    in_step(engine, functools.partial(engine.scheduler.mark_running, te.id, te.attempt))
            elif op == "outcome":
                te = pick(alive_runs(engine), x)
                if te is not None:
                    status = [TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.STOPPED][y % 3]
                    outcome = Outcome(te.id, te.attempt, status, None if status is TaskStatus.SUCCESS else "boom")
                    in_step(engine, functools.partial(engine.scheduler.finished, outcome))
            elif op == "tick":
                clock.advance(timedelta(seconds=x % 120))
                engine.step()
            elif op in ("pause", "resume"):
                getattr(engine, op)(pick(names, x))
            elif op == "resubmit":
                wf = pick(made, x)
                wf.tasks["t0"].parameters = {"n": y}  # a new version (bash ignores it)
                engine.submit(wf)
        except AiflowError:
            pass  # a command refused (limit reached, not running, ...) changes nothing
    for _ in range(10):  # the events still unread
        if not engine.step():
            break


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
    home = Path(tmp_path_factory.mktemp("home"))
    clock = FakeClock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    with Engine(home, max_parallel=0, clock=clock) as engine:
        run_workload(engine, clock, made, ops)
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
