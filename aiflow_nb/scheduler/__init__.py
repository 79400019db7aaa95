"""The exactly-once scheduler over the event log.

The records are imported eagerly (clients use them); the scheduler itself
lazily, since it needs DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiflow_nb.scheduler.records import Outcome, TaskExecution, WorkflowExecution, WorkflowInfo

if TYPE_CHECKING:
    from aiflow_nb.scheduler.scheduler import Scheduler

__all__ = ["Outcome", "Scheduler", "TaskExecution", "WorkflowExecution", "WorkflowInfo"]


def __getattr__(name: str) -> Any:
    if name == "Scheduler":
        from aiflow_nb.scheduler.scheduler import Scheduler

        return Scheduler
    raise AttributeError(name)
