"""How the built-in kinds do their work in the runner process: :mod:`.notebook` (papermill) and
:mod:`.command` (a Python callable, a shell command).  Their operators are in
:mod:`aiflow_nb.operators.builtin`."""

from __future__ import annotations

from aiflow_nb.operators.base import JobFailed


class TaskFailed(JobFailed):
    """The task ran and failed; the message is the error summary."""
