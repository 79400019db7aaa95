"""aiflow-nb: event-driven workflow orchestration that lives in Jupyter.

Names are imported lazily so that a task process (which imports this
package first) starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aiflow_nb._version import __version__ as __version__

#: The package's public names: the one list (tests/test_exports.py holds the README and the
#: type checkers' imports below to it).
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

#: Where a name of ``__all__`` is defined when not in :mod:`aiflow_nb.workflow` (imported on first use).
_DEFINED_IN = {
    "Client": "aiflow_nb.client",
    "Engine": "aiflow_nb.engine",
    "Event": "aiflow_nb.events",
    "EventLog": "aiflow_nb.events",
    "Watermark": "aiflow_nb.watermark",
    "send_event": "aiflow_nb.client",
    "stop_requested": "aiflow_nb.executors.runner",
}

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
    if name not in __all__:
        raise AttributeError(f"module 'aiflow_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(_DEFINED_IN.get(name, "aiflow_nb.workflow")), name)
    globals()[name] = value
    return value
