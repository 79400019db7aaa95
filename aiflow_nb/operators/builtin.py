"""The built-in kinds (notebook, Python, bash) as operators.

They run inside the run's runner process (papermill, an imported function, a
shell command the runner waits on), so their handle is the runner itself:
``poll`` and ``stop`` work from any process, and nothing is left to re-attach
once the runner is gone.  Their spec side is the task classes of
:mod:`aiflow_nb.workflow.tasks`.
"""

from __future__ import annotations

import os
import signal
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from aiflow_nb.executors import process
from aiflow_nb.executors.runners import command, notebook
from aiflow_nb.operators.base import Handle, JobStatus, Operator, OperatorContext


class InProcessOperator(Operator):
    """An operator whose job is :meth:`run` in the runner process; ``wait`` runs it."""

    in_process = True
    #: The class in :mod:`aiflow_nb.workflow.tasks` that checks the fields (its constructor's checks).
    task_class: ClassVar[str]

    @classmethod
    def validate(cls, task: str, params: Mapping[str, Any]) -> dict[str, Any]:
        # Imported here: a runner (which runs these) need not load nbformat and the model for a bash task.
        from aiflow_nb.workflow import tasks

        made: Any = getattr(tasks, cls.task_class).from_params(task, params)
        return made.params_spec()  # type: ignore[no-any-return]

    def start(self, context: OperatorContext) -> Handle:
        pid = os.getpid()
        return {"pid": pid, "started": process.start_time(pid)}

    def poll(self, handle: Handle) -> JobStatus:
        if process.alive(handle["pid"], handle.get("started")):
            return JobStatus.running()
        return JobStatus.failed("the task process ended without a result")

    def stop(self, handle: Handle) -> None:
        process.signal(handle["pid"], signal.SIGTERM, group=False)

    def reattach(self, handle: Handle) -> bool:
        return False  # the job was the runner's own work

    def wait(self, handle: Handle, context: OperatorContext) -> JobStatus:
        self.run(context)  # a failure raises JobFailed (runners.TaskFailed)
        return JobStatus.success()

    @abstractmethod
    def run(self, context: OperatorContext) -> None:
        """Do the work; raise JobFailed with the error summary if it fails."""


class NotebookOperator(InProcessOperator):
    name = "notebook"
    task_class = "NotebookTask"

    def run(self, context: OperatorContext) -> None:
        notebook.run_notebook(context.request, context.run_dir, context.kernel)


class PythonOperator(InProcessOperator):
    name = "python"
    task_class = "PythonTask"

    def run(self, context: OperatorContext) -> None:
        command.run_python(context.request, context.run_dir)


class BashOperator(InProcessOperator):
    name = "bash"
    task_class = "BashTask"

    def run(self, context: OperatorContext) -> None:
        command.run_bash(context.request, context.run_dir)
