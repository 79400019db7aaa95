"""The workflow model, with AIFlow's names.  It knows nothing of storage."""

from aiflow_nb.workflow.conditions import (
    AllOf,
    AnyOf,
    Condition,
    ConditionContext,
    EventCondition,
    EventKey,
    TaskStatusCondition,
)
from aiflow_nb.workflow.schedule import Schedule
from aiflow_nb.workflow.status import TaskAction, TaskStatus, WorkflowStatus
from aiflow_nb.workflow.tasks import BashTask, NotebookTask, PythonTask, Rule, Task
from aiflow_nb.workflow.workflow import Workflow

__all__ = [
    "AllOf",
    "AnyOf",
    "BashTask",
    "Condition",
    "ConditionContext",
    "EventCondition",
    "EventKey",
    "NotebookTask",
    "PythonTask",
    "Rule",
    "Schedule",
    "Task",
    "TaskAction",
    "TaskStatus",
    "TaskStatusCondition",
    "Workflow",
    "WorkflowStatus",
]
