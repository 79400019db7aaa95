"""The workflow model, with AIFlow's names.  It knows nothing of storage.

Names are imported on first use, so ``aiflow_nb.workflow.status`` (needed
by clients) does not pull in nbformat and croniter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AllOf": "conditions",
    "AnyOf": "conditions",
    "Condition": "conditions",
    "ConditionContext": "conditions",
    "EventCondition": "conditions",
    "EventKey": "conditions",
    "TaskStatusCondition": "conditions",
    "Schedule": "schedule",
    "TaskAction": "status",
    "TaskStatus": "status",
    "WorkflowStatus": "status",
    "BashTask": "tasks",
    "NotebookTask": "tasks",
    "PythonTask": "tasks",
    "Rule": "rule",
    "Task": "tasks",
    "Workflow": "workflow",
    "Outcome": "records",
    "TaskExecution": "records",
    "WorkflowExecution": "records",
    "WorkflowInfo": "records",
}

__all__ = [
    "AllOf",
    "AnyOf",
    "BashTask",
    "Condition",
    "ConditionContext",
    "EventCondition",
    "EventKey",
    "NotebookTask",
    "Outcome",
    "PythonTask",
    "Rule",
    "Schedule",
    "Task",
    "TaskAction",
    "TaskExecution",
    "TaskStatus",
    "TaskStatusCondition",
    "Workflow",
    "WorkflowExecution",
    "WorkflowInfo",
    "WorkflowStatus",
]

if TYPE_CHECKING:
    from aiflow_nb.workflow.conditions import (
        AllOf,
        AnyOf,
        Condition,
        ConditionContext,
        EventCondition,
        EventKey,
        TaskStatusCondition,
    )
    from aiflow_nb.workflow.records import Outcome, TaskExecution, WorkflowExecution, WorkflowInfo
    from aiflow_nb.workflow.rule import Rule
    from aiflow_nb.workflow.schedule import Schedule
    from aiflow_nb.workflow.status import TaskAction, TaskStatus, WorkflowStatus
    from aiflow_nb.workflow.tasks import BashTask, NotebookTask, PythonTask, Task
    from aiflow_nb.workflow.workflow import Workflow


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aiflow_nb.workflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"aiflow_nb.workflow.{module}"), name)
    globals()[name] = value
    return value
