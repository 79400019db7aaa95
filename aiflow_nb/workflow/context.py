"""Which workflow a new task joins: the innermost ``with Workflow(...)``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiflow_nb.workflow.workflow import Workflow

_current: ContextVar[Workflow | None] = ContextVar("aiflow_nb_workflow", default=None)


def current_workflow() -> Workflow | None:
    return _current.get()


@contextlib.contextmanager
def entered(workflow: Workflow | None) -> Iterator[None]:
    token = _current.set(workflow)
    try:
        yield
    finally:
        _current.reset(token)


def detached() -> contextlib.AbstractContextManager[None]:
    """Build tasks without adding them to an enclosing workflow."""
    return entered(None)
