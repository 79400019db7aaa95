"""Task and workflow statuses, and the one table of legal task transitions."""

from __future__ import annotations

from enum import Enum

from aiflow_nb.errors import IllegalTransitionError


class TaskAction(str, Enum):
    """What a rule does to its task when its condition is met."""

    START = "START"
    STOP = "STOP"
    RESTART = "RESTART"


class TaskStatus(str, Enum):
    INIT = "INIT"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    RETRYING = "RETRYING"

    @property
    def alive(self) -> bool:
        """Started and not yet ended: START on such a task is ignored."""
        return self in _ALIVE

    @property
    def finished(self) -> bool:
        return self in _FINISHED


class WorkflowStatus(str, Enum):
    INIT = "INIT"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def finished(self) -> bool:
        return self in (WorkflowStatus.SUCCESS, WorkflowStatus.FAILED, WorkflowStatus.STOPPED)


_ALIVE = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.STOPPING, TaskStatus.RETRYING})
_FINISHED = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.STOPPED})

#: Every legal task-execution status change.  A task execution is created
#: QUEUED; RETRYING goes back to QUEUED for the next attempt.
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.INIT: frozenset({TaskStatus.QUEUED, TaskStatus.STOPPED}),
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.STOPPED, TaskStatus.FAILED, TaskStatus.STOPPING}),
    TaskStatus.RUNNING: frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.STOPPING, TaskStatus.RETRYING}),
    TaskStatus.RETRYING: frozenset({TaskStatus.QUEUED, TaskStatus.STOPPED}),
    # A stop for a timeout ends as a failure (retried if the task allows).
    TaskStatus.STOPPING: frozenset({TaskStatus.STOPPED, TaskStatus.FAILED, TaskStatus.RETRYING}),
    TaskStatus.SUCCESS: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.STOPPED: frozenset(),
}

WORKFLOW_TRANSITIONS: dict[WorkflowStatus, frozenset[WorkflowStatus]] = {
    WorkflowStatus.INIT: frozenset({WorkflowStatus.RUNNING, WorkflowStatus.STOPPED}),
    WorkflowStatus.RUNNING: frozenset({WorkflowStatus.SUCCESS, WorkflowStatus.FAILED, WorkflowStatus.STOPPED}),
    WorkflowStatus.SUCCESS: frozenset(),
    WorkflowStatus.FAILED: frozenset(),
    WorkflowStatus.STOPPED: frozenset(),
}


def check_task_transition(old: TaskStatus, new: TaskStatus, what: str = "task execution") -> None:
    """Raise :class:`IllegalTransitionError` unless ``old -> new`` is legal."""
    if new not in TASK_TRANSITIONS[old]:
        raise IllegalTransitionError(f"{what}: {old.value} -> {new.value} is not allowed")


def check_workflow_transition(old: WorkflowStatus, new: WorkflowStatus, what: str = "execution") -> None:
    if new not in WORKFLOW_TRANSITIONS[old]:
        raise IllegalTransitionError(f"{what}: {old.value} -> {new.value} is not allowed")
