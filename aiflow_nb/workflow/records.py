"""The records of what was submitted and what ran: workflows, executions, task executions.

The engine returns them in-process and the client rebuilds them from the
service's JSON (``to_dict``/``from_dict``), so both give the same types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from aiflow_nb.workflow.status import TaskStatus, WorkflowStatus


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass
class WorkflowInfo:
    """A submitted workflow: its latest version, whether it is paused, its newest execution, its next runs."""

    namespace: str
    name: str
    version: int
    paused: bool
    create_time: datetime
    #: The newest execution of the workflow (any version), if any.
    latest_execution: WorkflowExecution | None = None
    #: When each schedule is next due: ``""`` for the workflow's own, else the task's name.
    next_runs: dict[str, datetime] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "paused": self.paused,
            "create_time": _iso(self.create_time),
            "latest_execution": self.latest_execution.to_dict() if self.latest_execution is not None else None,
            # A task name never holds parentheses, so the workflow's own schedule cannot clash with one.
            "next_runs": {task or WORKFLOW_SCHEDULE: due.isoformat() for task, due in self.next_runs.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowInfo:
        latest = data.get("latest_execution")
        return cls(
            namespace=data["namespace"],
            name=data["name"],
            version=data["version"],
            paused=data["paused"],
            create_time=_time(data["create_time"]),  # type: ignore[arg-type]
            latest_execution=WorkflowExecution.from_dict(latest) if latest else None,
            next_runs={
                ("" if task == WORKFLOW_SCHEDULE else task): _time(due)  # type: ignore[misc]
                for task, due in (data.get("next_runs") or {}).items()
            },
        )


#: How the JSON of a workflow names its own schedule among its tasks' in ``next_runs``.
WORKFLOW_SCHEDULE = "(workflow)"


@dataclass(slots=True)
class WorkflowExecution:
    """One run of a workflow, pinned to the version it started with."""

    id: int
    namespace: str
    workflow: str
    version: int
    status: WorkflowStatus
    start_time: datetime
    end_time: datetime | None = None
    #: The event that started it (a trigger or a schedule tick), as a dict.
    event: dict[str, Any] | None = None
    #: Parameters given when it was started, for its tasks that declare them (this execution only).
    parameters: dict[str, Any] | None = None

    def copy(self) -> WorkflowExecution:
        """A shallow copy: its own fields, the values they hold shared."""
        return WorkflowExecution(
            self.id, self.namespace, self.workflow, self.version, self.status, self.start_time, self.end_time,
            self.event, self.parameters,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(status=self.status.value, start_time=_iso(self.start_time), end_time=_iso(self.end_time))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowExecution:
        return cls(
            id=data["id"],
            namespace=data["namespace"],
            workflow=data["workflow"],
            version=data["version"],
            status=WorkflowStatus(data["status"]),
            start_time=_time(data["start_time"]),  # type: ignore[arg-type]
            end_time=_time(data.get("end_time")),
            event=data.get("event"),
            parameters=data.get("parameters"),
        )


@dataclass(slots=True)
class TaskExecution:
    """One run of a task in a workflow execution; ``seq`` counts its runs.

    ``attempt`` counts tries of this run (retries keep the seq).
    """

    id: int
    execution_id: int
    task: str
    seq: int
    status: TaskStatus
    attempt: int = 1
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: str | None = None
    event: dict[str, Any] | None = None
    retry_at: datetime | None = None
    #: Parameters given when a user started this run (over its execution's and the task's own).
    parameters: dict[str, Any] | None = None
    #: Why a stop was asked for ("stop" or "timeout"); not stored.
    stop_reason: str | None = field(default=None, compare=False, repr=False)

    def copy(self) -> TaskExecution:
        """A shallow copy: its own fields, the values they hold shared."""
        return TaskExecution(
            self.id, self.execution_id, self.task, self.seq, self.status, self.attempt, self.create_time,
            self.start_time, self.end_time, self.error, self.event, self.retry_at, self.parameters, self.stop_reason,
        )  # fmt: skip

    @property
    def duration(self) -> float | None:
        if self.start_time is None:
            return None
        end = self.end_time
        if end is None:
            return None
        return (end - self.start_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("stop_reason")
        data.update(
            status=self.status.value,
            create_time=_iso(self.create_time),
            start_time=_iso(self.start_time),
            end_time=_iso(self.end_time),
            retry_at=_iso(self.retry_at),
            duration=self.duration,
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskExecution:
        return cls(
            id=data["id"],
            execution_id=data["execution_id"],
            task=data["task"],
            seq=data["seq"],
            status=TaskStatus(data["status"]),
            attempt=data.get("attempt", 1),
            create_time=_time(data.get("create_time")),
            start_time=_time(data.get("start_time")),
            end_time=_time(data.get("end_time")),
            error=data.get("error"),
            event=data.get("event"),
            retry_at=_time(data.get("retry_at")),
            parameters=data.get("parameters"),
        )


@dataclass
class Outcome:
    """How a run ended, as an executor reports it."""

    task_execution_id: int
    attempt: int
    status: TaskStatus  # SUCCESS, FAILED or STOPPED
    error: str | None = None


def latest_runs(task_executions: Iterable[TaskExecution]) -> dict[str, TaskExecution]:
    """The run with the highest seq of each task."""
    latest: dict[str, TaskExecution] = {}
    for te in task_executions:
        if te.task not in latest or te.seq >= latest[te.task].seq:
            latest[te.task] = te
    return latest


def latest_statuses(task_executions: Iterable[TaskExecution]) -> dict[str, TaskStatus]:
    """The status of each task's latest run (what the graph colors)."""
    return {task: te.status for task, te in latest_runs(task_executions).items()}


@dataclass(frozen=True)
class WhyLink:
    """One link of the chain of causes of a run or an execution (see ``why``), newest first.

    ``kind``: run, execution, retry, restart, rule, trigger, queued, event,
    schedule, command or unknown; ``offset``/``key``/``sender``: the event
    the link stands for (if any); ``rule``: the rule that fired (if any).
    """

    kind: str
    text: str
    offset: int | None = None
    key: str | None = None
    sender: str | None = None
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WhyLink:
        return cls(
            kind=str(data["kind"]),
            text=str(data["text"]),
            offset=data.get("offset"),
            key=data.get("key"),
            sender=data.get("sender"),
            rule=data.get("rule"),
        )
