"""aiflow-nb: event-driven workflow orchestration that lives in Jupyter.

Names are imported lazily so that a task process (which imports this
package first) starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aiflow_nb._version import __version__ as __version__

_EXPORTS = {
    "Engine": "aiflow_nb.engine",
    "Event": "aiflow_nb.events",
    "EventLog": "aiflow_nb.events",
    "AllOf": "aiflow_nb.workflow",
    "AnyOf": "aiflow_nb.workflow",
    "BashTask": "aiflow_nb.workflow",
    "Condition": "aiflow_nb.workflow",
    "ConditionContext": "aiflow_nb.workflow",
    "EventCondition": "aiflow_nb.workflow",
    "EventKey": "aiflow_nb.workflow",
    "NotebookTask": "aiflow_nb.workflow",
    "PythonTask": "aiflow_nb.workflow",
    "Schedule": "aiflow_nb.workflow",
    "Task": "aiflow_nb.workflow",
    "TaskAction": "aiflow_nb.workflow",
    "TaskStatus": "aiflow_nb.workflow",
    "TaskStatusCondition": "aiflow_nb.workflow",
    "Workflow": "aiflow_nb.workflow",
    "WorkflowStatus": "aiflow_nb.workflow",
    "Watermark": "aiflow_nb.watermark",
    "TaskExecution": "aiflow_nb.workflow",
    "WorkflowExecution": "aiflow_nb.workflow",
    "WorkflowInfo": "aiflow_nb.workflow",
    "Client": "aiflow_nb.client",
    "send_event": "aiflow_nb.client",
    "stop_requested": "aiflow_nb.executors.runner",
}

__all__ = [
    "AllOf",
    "AnyOf",
    "BashTask",
    "Client",
    "Condition",
    "ConditionContext",
    "Engine",
    "Event",
    "EventCondition",
    "EventKey",
    "EventLog",
    "NotebookTask",
    "PythonTask",
    "Schedule",
    "Task",
    "TaskAction",
    "TaskExecution",
    "TaskStatus",
    "TaskStatusCondition",
    "Watermark",
    "Workflow",
    "WorkflowExecution",
    "WorkflowInfo",
    "WorkflowStatus",
    "send_event",
    "stop_requested",
]

if TYPE_CHECKING:
    from aiflow_nb.client import Client, send_event
    from aiflow_nb.engine import Engine
    from aiflow_nb.events import Event, EventLog
    from aiflow_nb.executors.runner import stop_requested
    from aiflow_nb.watermark import Watermark
    from aiflow_nb.workflow import (
        AllOf,
        AnyOf,
        BashTask,
        Condition,
        ConditionContext,
        EventCondition,
        EventKey,
        NotebookTask,
        PythonTask,
        Schedule,
        Task,
        TaskAction,
        TaskExecution,
        TaskStatus,
        TaskStatusCondition,
        Workflow,
        WorkflowExecution,
        WorkflowInfo,
        WorkflowStatus,
    )


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext aiflow_nb``: the ``%%aiflow`` magics (see :mod:`aiflow_nb.magics`)."""
    from aiflow_nb.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from aiflow_nb.magics import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aiflow_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
