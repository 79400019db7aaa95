"""The executor interface and the registry of executors.

An executor runs task executions somewhere (a local process, a Dask
cluster) and reports how each ended.  Executors plug in through the
``aiflow_nb.executors`` entry point group::

    [project.entry-points."aiflow_nb.executors"]
    local = "aiflow_nb.executors.local:LocalExecutor"
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from aiflow_nb.errors import ExecutorError
from aiflow_nb.workflow.records import Outcome

#: A launch request: the task's spec and everything about this run.
LaunchRequest = dict[str, Any]


def run_dir(home: Path, task_execution_id: int, attempt: int) -> Path:
    """Where a run keeps its log, executed notebook and result."""
    return home / "runs" / str(task_execution_id) / str(attempt)


class Executor(ABC):
    """Runs task executions and reports their outcomes.

    ``launch`` must be idempotent per (task execution id, attempt): the
    engine may call it again after a crash, and the task must not run twice.
    """

    name: ClassVar[str] = ""

    def __init__(self, home: Path, **options: Any) -> None:
        if options:  # what no subclass took: a typo, or an option of another executor
            raise ExecutorError(f"{self.name or type(self).__name__}: unknown option(s) {', '.join(sorted(options))}")
        self.home = Path(home)
        #: Called (from any thread) when a run may have ended: the engine then
        #: polls at once instead of at its next tick.
        self.wake: Callable[[], None] = lambda: None

    @abstractmethod
    def launch(self, request: LaunchRequest) -> None:
        """Start the run (or attach to it if an earlier process did)."""

    @abstractmethod
    def recover(self, task_execution_id: int, attempt: int) -> None:
        """Watch a run that an earlier engine process launched."""

    @abstractmethod
    def stop(self, task_execution_id: int, grace: float) -> None:
        """Ask the run to end; force it after ``grace`` seconds."""

    @abstractmethod
    def poll(self) -> list[Outcome]:
        """Outcomes of the runs that ended since the last call."""

    @abstractmethod
    def active(self) -> int:
        """How many runs are being watched."""

    def serve_at(self, url: str, token: str) -> None:  # noqa: B027  (optional hook)
        """The service's URL and the token its tasks send events with.

        Tasks on this machine find the service from the home; an executor
        whose tasks run elsewhere passes these on to them.
        """

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Stop watching; running tasks keep running and are re-attached later."""


#: Built in, and found even when the package is not installed (entry points add more).
_BUILTIN = {
    "local": "aiflow_nb.executors.local:LocalExecutor",
    "kernel-pool": "aiflow_nb.executors.kernel_pool:KernelPoolExecutor",
    "dask": "aiflow_nb.executors.dask:DaskExecutor",
}


def known_executors() -> list[str]:
    return sorted({ep.name for ep in entry_points(group="aiflow_nb.executors")} | set(_BUILTIN))


def executor_class(name: str) -> type[Executor]:
    for ep in entry_points(group="aiflow_nb.executors"):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Executor)):
                raise ExecutorError(f"executor {name!r} ({ep.value}) is not an Executor")
            return cls
    if name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    raise ExecutorError(f"unknown executor {name!r}; known: {', '.join(known_executors())}")
