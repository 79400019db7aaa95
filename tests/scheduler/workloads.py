"""Random workloads of the decision core: workflows and inputs hypothesis draws, run on a real engine.

The engine (real DuckDB file) runs with ``max_parallel=0``, so nothing is
handed to an executor: the launch dispatches and the outcomes an executor
would report are fed to the scheduler in the engine's own transaction, as
the engine's step does.  The workflows use every rule kind, triggers,
schedules, retries, timeouts and limits; the inputs are events, commands,
dispatches, outcomes and clock ticks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from aiflow_nb import AllOf, AnyOf, BashTask, Engine, EventCondition, Workflow
from aiflow_nb.errors import AiflowError
from aiflow_nb.workflow import TaskAction, TaskStatus
from aiflow_nb.workflow.records import Outcome
from tests.scheduler.fake_clock import FakeClock

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


@contextmanager
def engine_after(home: Path, made: list[Workflow], ops: list[tuple[str, int, int]]) -> Iterator[Engine]:
    """An engine on a new ``home`` (its clock moved by the ticks) once the workload has run."""
    clock = FakeClock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    with Engine(home, max_parallel=0, clock=clock) as engine:
        run_workload(engine, clock, made, ops)
        yield engine
