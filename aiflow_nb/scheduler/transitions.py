"""The one table of what each input does to a task's latest run, and how an execution ends.

Pure: statuses and plain values in, the change to make out.  The scheduler
(:mod:`aiflow_nb.scheduler.scheduler`) carries the changes out; ``verify``
checks the recorded history against the same tables.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum

from aiflow_nb.workflow.status import TASK_TRANSITIONS, WORKFLOW_TRANSITIONS, TaskAction, TaskStatus, WorkflowStatus

__all__ = [
    "ACTIONS",
    "TASK_TRANSITIONS",
    "WORKFLOW_TRANSITIONS",
    "Effect",
    "OutcomeChange",
    "execution_verdict",
    "outcome_change",
    "stop_status",
]


class Effect(str, Enum):
    """What an action does to a task, given its latest run."""

    #: Nothing changes (START on an alive run, STOP on an ended one).
    NOTHING = "nothing"
    #: A new run, ``seq + 1``, QUEUED.
    NEW_RUN = "new_run"
    #: Stop the latest run (QUEUED or RETRYING: STOPPED now; RUNNING: STOPPING); cancels a pending restart.
    STOP = "stop"
    #: Remember a restart, then stop the latest run; the next run starts once it has stopped.
    RESTART = "restart"


_NOT_ALIVE: tuple[TaskStatus | None, ...] = (
    None,
    TaskStatus.INIT,
    TaskStatus.SUCCESS,
    TaskStatus.FAILED,
    TaskStatus.STOPPED,
)
_ALIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.STOPPING, TaskStatus.RETRYING)

#: (the latest run's status, or None if the task never ran; the action) -> its effect.
ACTIONS: dict[tuple[TaskStatus | None, TaskAction], Effect] = {
    **{(s, TaskAction.START): Effect.NEW_RUN for s in _NOT_ALIVE},
    **{(s, TaskAction.START): Effect.NOTHING for s in _ALIVE},
    **{(s, TaskAction.STOP): Effect.NOTHING for s in _NOT_ALIVE},
    **{(s, TaskAction.STOP): Effect.STOP for s in _ALIVE},
    **{(s, TaskAction.RESTART): Effect.NEW_RUN for s in _NOT_ALIVE},
    **{(s, TaskAction.RESTART): Effect.RESTART for s in _ALIVE},
}


def stop_status(status: TaskStatus) -> TaskStatus | None:
    """What stopping a run makes of it: STOPPED at once if it had no process, STOPPING if it had."""
    if status in (TaskStatus.QUEUED, TaskStatus.RETRYING):
        return TaskStatus.STOPPED
    if status is TaskStatus.RUNNING:
        return TaskStatus.STOPPING
    return None


@dataclass(frozen=True)
class OutcomeChange:
    """What a reported outcome makes of a run."""

    status: TaskStatus
    error: str | None
    #: The run passed its timeout (an ``aiflow.task.timeout`` event goes out).
    timed_out: bool = False


def outcome_change(
    current: TaskStatus,
    stop_reason: str | None,
    attempt: int,
    reported: TaskStatus,
    error: str | None,
    max_retries: int | None,
    timeout: float | None,
) -> OutcomeChange | None:
    """The run's next status when its process ended as ``reported``; None if the report changes nothing.

    ``max_retries`` None: the task is not known (its version was lost), so no retry.
    """
    if current not in (TaskStatus.RUNNING, TaskStatus.STOPPING, TaskStatus.QUEUED):
        return None
    timed_out = stop_reason == "timeout" and max_retries is not None
    if current is TaskStatus.STOPPING and not timed_out:
        # Asked to stop (or timed out in a version that was lost): whatever it reports, it stopped.
        return OutcomeChange(TaskStatus.STOPPED, error)
    if timed_out:
        reported, error = TaskStatus.FAILED, f"timed out after {timeout or 0:g} s"
    if reported is TaskStatus.SUCCESS:
        return OutcomeChange(TaskStatus.SUCCESS, None, timed_out)
    if reported is TaskStatus.STOPPED and stop_reason is None:
        error = error or "stopped from outside aiflow-nb"
    if max_retries is not None and attempt <= max_retries:
        return OutcomeChange(TaskStatus.RETRYING, error, timed_out)
    return OutcomeChange(TaskStatus.FAILED, error, timed_out)


def execution_verdict(
    latest: Mapping[str, TaskStatus | None],
    ongoing: Collection[str],
    failure_handled: Collection[str],
    waits_on_events: Collection[str],
) -> WorkflowStatus | None:
    """How an execution ends once nothing in it is alive, or None if it stays RUNNING.

    ``latest``: every task of its version, with its latest run's status (None: never ran);
    ``ongoing``: streaming or scheduled tasks, which never complete it.
    """
    if any(s is not None and s.alive for s in latest.values()):
        return None
    if all(s is TaskStatus.SUCCESS and n not in ongoing for n, s in latest.items()):
        return WorkflowStatus.SUCCESS
    if any(s is TaskStatus.FAILED and n not in failure_handled for n, s in latest.items()):
        return WorkflowStatus.FAILED
    waiting = any(s is None and n in waits_on_events for n, s in latest.items())
    ended_otherwise = any(s is not None and (s is TaskStatus.STOPPED or n in ongoing) for n, s in latest.items())
    if not waiting and not ended_otherwise:
        return WorkflowStatus.SUCCESS
    return None
