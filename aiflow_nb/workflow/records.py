"""What the scheduler stores: workflow executions and task executions."""

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
    """A submitted workflow: its latest version and whether it is paused."""

    namespace: str
    name: str
    version: int
    paused: bool
    create_time: datetime

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["create_time"] = _iso(self.create_time)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowInfo:
        return cls(data["namespace"], data["name"], data["version"], data["paused"], _time(data["create_time"]))  # type: ignore[arg-type]


@dataclass
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
        )


@dataclass
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
    #: Why a stop was asked for ("stop" or "timeout"); not stored.
    stop_reason: str | None = field(default=None, compare=False, repr=False)

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
