"""What the decision core decides for one input, as plain data: :class:`Decisions`.

The core (:func:`.core.decide`) returns one for each input; the shell
applies it to the memory (:meth:`.memory.State.apply`), adds it to the
batch it writes in the step's one transaction (:meth:`.core.Core.apply`)
and hands its launches and stops to the outbox.  Nothing in it refers back
to the state it was decided over: the records are the new values (copies
of those it changed), and the state keeps its old ones until it is applied.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.state import ExecutionState
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo

#: (namespace, workflow, task): a schedule ('' is the workflow's own).
TickKey = tuple[str, str, str]
StateKey = tuple[int, str]


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A workflow version submitted: stored, and compiled for the rules."""

    namespace: str
    name: str
    version: int
    spec: str
    digest: str
    time: datetime
    compiled: CompiledWorkflow


class Decisions(NamedTuple):
    """Everything one input changes; the state it was decided over is left as it was.

    Immutable, and built once per input (a named tuple: the cheapest to make).
    """

    #: The time the input was decided at (the next event without a create_time is decided at it too).
    now: datetime
    #: Executions created or changed, their new values; ``new_executions``: the ids created.
    executions: Mapping[int, WorkflowExecution]
    new_executions: Collection[int]
    #: Task executions created or changed, their new values; ``new_tasks``: the ids created.
    tasks: Mapping[int, TaskExecution]
    new_tasks: Collection[int]
    #: ("execution" or "task", id) -> why a new row was made (its ``cause`` column).
    causes: Mapping[tuple[str, int], str]
    #: Condition state set, by (execution id, rule id).
    states: Mapping[StateKey, dict[str, Any]]
    #: Events to append, oldest first (entries of :class:`.emitted.Emitted`).
    events: Sequence[Any]
    #: Launches queued: (task execution id, attempt); stops to send: (task execution id, reason).
    launches: Sequence[tuple[int, int]]
    stops: tuple[tuple[int, str], ...]
    #: Schedule ticks sent (the last due time of each schedule), and when each schedule is next due.
    ticks: Mapping[TickKey, datetime]
    next_due: Mapping[TickKey, datetime]
    #: Workflows whose schedules' next due times are forgotten (a new version).
    next_due_reset: tuple[tuple[str, str], ...]
    #: The running executions whose state changed or began (record, latest runs, status events not yet
    #: consumed): the draft's own copies, which become the state's as they are.
    running: Mapping[int, ExecutionState]
    #: The largest execution and task execution ids made so far.
    last_ids: tuple[int, int]
    #: Workflow versions added, and workflows put (their new info) or deleted (None), in order.
    versions: tuple[NewVersion, ...] = ()
    workflows: tuple[tuple[tuple[str, str], WorkflowInfo | None], ...] = ()
    #: What a command answers (a version, an execution id), else None.
    answer: Any = None


def made_ids(first: int, last: int) -> Collection[int]:
    """The ids one input made: every id from ``first`` to ``last`` (each new id is the next one)."""
    return range(first, last + 1) if last >= first else frozenset()


class Orders:
    """The launches and stops one input decides (the draft's outbox)."""

    __slots__ = ("stops",)

    def __init__(self) -> None:
        self.stops: list[tuple[int, str]] = []

    def queue_stop(self, te_id: int, reason: str) -> None:
        self.stops.append((te_id, reason))
