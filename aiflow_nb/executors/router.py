"""ExecutorRouter: the engine's one executor, sending each run where its task says.

A task may name its executor (``NotebookTask(..., executor="dask")``); the
others go to the engine's default.  Executors are made on first use with
their options from the engine, except the default and every executor given
options, which are made at once so a bad setting fails the start, not a run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiflow_nb.errors import ExecutorError
from aiflow_nb.executors.base import Executor, LaunchRequest, executor_class, run_dir
from aiflow_nb.workflow.records import Outcome
from aiflow_nb.workflow.status import TaskStatus

log = logging.getLogger("aiflow_nb.executors.router")


class ExecutorRouter(Executor):
    """Routes by ``request["task"]["executor"]``, else to ``default``."""

    name = "router"

    def __init__(self, home: Path, default: str, options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(home)
        self.default = default
        self._options = {name: dict(opts) for name, opts in (options or {}).items()}
        self.executors: dict[str, Executor] = {}
        #: Which executor watches each task execution (by id).
        self._owner: dict[int, Executor] = {}
        #: Runs whose executor could not be made: FAILED at the next poll.
        self._failed: list[Outcome] = []
        self._service: tuple[str, str] | None = None
        try:
            for name in dict.fromkeys([default, *self._options]):
                self.get(name)
        except BaseException:
            self.close()
            raise

    @property
    def default_executor(self) -> Executor:
        return self.executors[self.default]

    def get(self, name: str) -> Executor:
        """The executor ``name``, made now if need be (ExecutorError if it cannot be)."""
        executor = self.executors.get(name)
        if executor is None:
            executor = executor_class(name)(self.home, **self._options.get(name, {}))
            executor.wake = lambda: self.wake()  # late-bound: the engine sets ours after we are made
            if self._service is not None:
                executor.serve_at(*self._service)
            self.executors[name] = executor
            log.info("executor %r ready", name)
        return executor

    def launch(self, request: LaunchRequest) -> None:
        name = request["task"].get("executor") or self.default
        try:
            executor = self.get(name)
        except ExecutorError as exc:
            self._fail(request["task_execution_id"], request["attempt"], f"executor {name!r} unavailable: {exc}")
            return
        executor.launch(request)
        self._owner[request["task_execution_id"]] = executor

    def recover(self, task_execution_id: int, attempt: int) -> None:
        name = self.default
        try:  # written by every executor before it starts the run
            task = json.loads((run_dir(self.home, task_execution_id, attempt) / "task.json").read_text())["task"]
            name = task.get("executor") or self.default
        except (OSError, ValueError, KeyError, TypeError):
            pass  # never launched: the default executor finds it lost
        try:
            executor = self.get(name)
        except ExecutorError as exc:
            self._fail(task_execution_id, attempt, f"executor {name!r} unavailable after a restart: {exc}")
            return
        executor.recover(task_execution_id, attempt)
        self._owner[task_execution_id] = executor

    def stop(self, task_execution_id: int, grace: float) -> None:
        executor = self._owner.get(task_execution_id)
        if executor is not None:
            executor.stop(task_execution_id, grace)

    def poll(self) -> list[Outcome]:
        outcomes, self._failed = self._failed, []
        for executor in list(self.executors.values()):
            outcomes.extend(executor.poll())
        for outcome in outcomes:
            self._owner.pop(outcome.task_execution_id, None)
        return outcomes

    def active(self) -> int:
        return sum(executor.active() for executor in self.executors.values())

    def serve_at(self, url: str, token: str) -> None:
        self._service = (url, token)
        for executor in self.executors.values():
            executor.serve_at(url, token)

    def close(self) -> None:
        for executor in self.executors.values():
            try:
                executor.close()
            except Exception:
                log.exception("closing executor %r failed", executor.name)

    def _fail(self, task_execution_id: int, attempt: int, reason: str) -> None:
        log.warning("task execution %s: %s", task_execution_id, reason)
        self._failed.append(Outcome(task_execution_id, attempt, TaskStatus.FAILED, reason))
        self.wake()
