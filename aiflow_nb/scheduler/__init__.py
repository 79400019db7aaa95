"""The exactly-once scheduler over the event log."""

from aiflow_nb.scheduler.records import Outcome, TaskExecution, WorkflowExecution, WorkflowInfo
from aiflow_nb.scheduler.scheduler import Scheduler

__all__ = ["Outcome", "Scheduler", "TaskExecution", "WorkflowExecution", "WorkflowInfo"]
