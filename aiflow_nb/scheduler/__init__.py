"""The exactly-once scheduler over the event log.

The scheduler is imported lazily, since it needs DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiflow_nb.scheduler.scheduler import Scheduler

__all__ = ["Scheduler"]


def __getattr__(name: str) -> Any:
    if name == "Scheduler":
        from aiflow_nb.scheduler.scheduler import Scheduler

        return Scheduler
    raise AttributeError(name)
