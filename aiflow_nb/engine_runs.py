"""A run's files as the engine serves them: its log and executed notebook, guarded against links.

:class:`RunFiles` is a base of :class:`aiflow_nb.engine.Engine`.  A task
writes in its run folder and could leave a link there; a file is served
only if it is a regular file under the home's ``runs/``, checked as opened.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from aiflow_nb.errors import ForbiddenError, NotFoundError
from aiflow_nb.executors.base import run_dir
from aiflow_nb.workflow.records import TaskExecution


class RunFiles:
    """The files of a run's latest attempt."""

    home: Path

    def task_execution(self, task_execution_id: int) -> TaskExecution:
        raise NotImplementedError  # the engine's

    def run_dir(self, task_execution_id: int) -> Path:
        """The folder of the latest attempt: ``log.txt``, ``output.ipynb``, ``result.json``."""
        te = self.task_execution(task_execution_id)
        return run_dir(self.home, te.id, te.attempt)

    def task_log(self, task_execution_id: int) -> str:
        """What the run's latest attempt wrote to stdout and stderr ("" before it starts)."""
        data = self._run_file(task_execution_id, "log.txt")
        return data.decode(errors="replace") if data is not None else ""

    def task_notebook(self, task_execution_id: int) -> dict[str, Any]:
        """The executed notebook of a notebook task's latest attempt, as nbformat JSON."""
        data = self._run_file(task_execution_id, "output.ipynb")
        if data is None:
            raise NotFoundError(
                f"task execution {task_execution_id} has no executed notebook (not a notebook task, or not run yet)"
            )
        notebook: dict[str, Any] = json.loads(data)
        return notebook

    def _run_file(self, task_execution_id: int, name: str) -> bytes | None:
        """The run's file ``name``, or None if there is none; refused if it may lead out of the home's runs.

        A task writes in its run folder and could leave a link there: its files must not serve,
        say, ``~/.ssh/id_rsa``.  A symbolic link must stay under ``runs/``; a hard link (a second
        name of a file, which may be any of the user's on the same file system) is refused.  The
        file is checked as opened, so it cannot be swapped between the check and the read.
        """
        path = self.run_dir(task_execution_id) / name
        if not path.exists():
            return None
        real = path.resolve()
        if not real.is_relative_to((self.home / "runs").resolve()):
            raise ForbiddenError(f"task execution {task_execution_id}: its {name} leads outside the aiflow-nb home")
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: made a symbolic link since
            raise ForbiddenError(f"task execution {task_execution_id}: its {name} cannot be read safely") from exc
        with os.fdopen(fd, "rb") as file:
            found = os.fstat(file.fileno())
            if not stat.S_ISREG(found.st_mode):
                raise ForbiddenError(f"task execution {task_execution_id}: its {name} is not a regular file")
            if found.st_nlink > 1:
                raise ForbiddenError(
                    f"task execution {task_execution_id}: its {name} is a hard link (another name of a file); "
                    "not served"
                )
            return file.read()
