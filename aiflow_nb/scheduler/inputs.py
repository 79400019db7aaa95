"""The scheduler's inputs besides the log's own events: commands, launch dispatches, outcomes, the clock.

Each one is recorded in the log as an ``aiflow.input`` event, appended in
the transaction that applies it, with the time it was decided at (``now``)
and how far the scheduler had read the log then (``at``).  So the log holds
every input, and ``verify`` applies each one again at the same point of its
replay: the state is a fold of the log.  Plain data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.workflow import TaskAction, TaskStatus, Workflow
from aiflow_nb.workflow.records import Outcome

SENDER = "aiflow.scheduler"


@dataclass(frozen=True)
class Submit:
    """A workflow submitted; the replay finds its spec among the stored versions by ``digest``."""

    namespace: str
    name: str
    digest: str
    workflow: Workflow | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SetPaused:
    namespace: str
    name: str
    paused: bool


@dataclass(frozen=True)
class Delete:
    namespace: str
    name: str


@dataclass(frozen=True)
class StartExecution:
    namespace: str
    name: str
    #: Parameter overrides for this execution (recorded, so a replay starts it with them too).
    parameters: dict[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class StopExecution:
    execution_id: int


@dataclass(frozen=True)
class TaskCommand:
    """START, STOP or RESTART a task of a running execution, asked by a user."""

    execution_id: int
    task: str
    action: TaskAction
    #: Parameter overrides for the run a START makes.
    parameters: dict[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class Dispatch:
    """A queued run is handed to its executor (marked RUNNING)."""

    task_execution_id: int
    attempt: int


@dataclass(frozen=True)
class Finished:
    """An executor reports how a run's attempt ended."""

    task_execution_id: int
    attempt: int
    status: TaskStatus
    error: str | None = None

    @classmethod
    def of(cls, outcome: Outcome) -> Finished:
        return cls(outcome.task_execution_id, outcome.attempt, outcome.status, outcome.error)


@dataclass(frozen=True)
class Clock:
    """The time passed: timeouts, retries due, schedule ticks due at ``now``.

    ``now`` is elapsed time (aiflow_nb.clock); ``wall`` (ISO text) is the wall
    clock a cron schedule follows, when it differs.
    """

    wall: str | None = None


Input = Submit | SetPaused | Delete | StartExecution | StopExecution | TaskCommand | Dispatch | Finished | Clock

_KINDS: dict[type[Any], str] = {
    Submit: "submit",
    SetPaused: "set_paused",
    Delete: "delete",
    StartExecution: "start_execution",
    StopExecution: "stop_execution",
    TaskCommand: "task_action",
    Dispatch: "dispatch",
    Finished: "finished",
    Clock: "clock",
}
_TYPES = {kind: type_ for type_, kind in _KINDS.items()}


def kind(inp: Input) -> str:
    return _KINDS[type(inp)]


def to_event(inp: Input, now: datetime, at: int) -> Event:
    """The ``aiflow.input`` event that records ``inp``, applied at ``now`` after reading the log to ``at``."""
    value: dict[str, Any] = {"kind": _KINDS[type(inp)], "now": now.isoformat(), "at": at}
    for name, item in vars(inp).items():
        if name == "workflow":
            continue
        value[name] = item.value if isinstance(item, (TaskAction, TaskStatus)) else item
    namespace = getattr(inp, "namespace", None)
    return Event(event_keys.INPUT, value, namespace=namespace or "default", sender=SENDER)


@dataclass(frozen=True)
class Recorded:
    """An input read back from the log."""

    offset: int
    at: int
    now: datetime
    input: Input


def from_value(offset: int, value: dict[str, Any]) -> Recorded:
    """The input an ``aiflow.input`` event's value records (KeyError/ValueError if it is not one)."""
    fields = {k: v for k, v in value.items() if k not in ("kind", "now", "at")}
    type_ = _TYPES[value["kind"]]
    if type_ is TaskCommand:
        fields["action"] = TaskAction(fields["action"])
    elif type_ is Finished:
        fields["status"] = TaskStatus(fields["status"])
    inp: Input = type_(**fields)
    return Recorded(offset, int(value["at"]), datetime.fromisoformat(value["now"]), inp)
