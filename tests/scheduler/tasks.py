"""Python task callables for the scheduler tests, and the helpers those tests share.

The callables run in task processes (``python -m aiflow_nb.executors.runner``,
with the run folder as working directory), so they import nothing heavy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: The repository root: task processes need it on PYTHONPATH to import ``tests.scheduler.tasks``.
REPO_ROOT = Path(__file__).resolve().parents[2]


# -- task callables ---------------------------------------------------------------


def record_event(aiflow_event: Any = None) -> None:
    """Write the triggering event this task received to ``received.json`` in its run folder."""
    (Path(os.environ["AIFLOW_NB_RUN_DIR"]) / "received.json").write_text(json.dumps(aiflow_event))


def fail(message: str = "boom") -> None:
    raise ValueError(message)


# -- helpers for the tests ------------------------------------------------------------


def runs(engine: Any, execution_id: int, task: str) -> list[Any]:
    """The task executions of ``task`` in an execution, oldest first."""
    return [te for te in engine.task_executions(execution_id) if te.task == task]


def wait_run(engine: Any, execution_id: int, task: str, status: Any, seq: int = 1, timeout: float = 30.0) -> Any:
    """Wait until run ``seq`` of ``task`` has ``status``; return that task execution."""

    def found() -> Any:
        return next((te for te in runs(engine, execution_id, task) if te.seq == seq and te.status is status), None)

    return engine.wait_for(found, timeout, f"execution {execution_id}: {task} seq {seq} {status.value}")


def wait_execution(engine: Any, execution_id: int, status: Any, timeout: float = 30.0) -> Any:
    def found() -> Any:
        ex = next((e for e in engine.executions() if e.id == execution_id), None)  # it may not exist yet
        return ex if ex is not None and ex.status is status else None

    return engine.wait_for(found, timeout, f"execution {execution_id} {status.value}")


def settle(engine: Any, timeout: float = 30.0) -> None:
    """Drive the engine until the scheduler has applied every event now in the log.

    Events are applied in offset order, so afterwards every event sent so far
    has had all its effects (what did not happen by then will not happen).
    """
    target = engine.log.latest_offset()
    engine.wait_for(lambda: engine.scheduler.checkpoint >= target, timeout, f"the scheduler to reach offset {target}")


def task_statuses(engine: Any, task_execution_id: int) -> list[str]:
    """The statuses a task execution went through, read from its ``aiflow.task.status`` events."""
    return [
        e.value["status"]
        for e in engine.events(key="aiflow.task.status")
        if e.value["task_execution_id"] == task_execution_id
    ]
