"""The scheduler's plain-data state: running executions, their latest runs, what the log says of them."""

from __future__ import annotations

import json
import json.encoder
from dataclasses import dataclass, field
from typing import Any

from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution


@dataclass(slots=True)
class ExecutionState:
    """A RUNNING execution and the latest run of each of its tasks."""

    record: WorkflowExecution
    latest: dict[str, TaskExecution] = field(default_factory=dict)
    #: Status events emitted for it and not yet consumed: it may only end
    #: once its rules have seen every one of them.
    unseen: int = 0


_cause_json = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_json_string = json.encoder.encode_basestring_ascii


def cause(**fields: Any) -> str:
    """Why an execution or run was made, as the compact JSON stored in its ``cause`` column.

    ``{"event": offset, "rule": rule id}`` for a rule, trigger or schedule tick on an event of the
    log; ``{"input": kind, "now": time}`` for a command; ``{"event": offset, "queued": true}`` for
    a trigger that waited for ``max_active_executions``; ``{"restart_of": run id, "cause": ...}``
    for the run a RESTART starts once the run before it has stopped.
    """
    if len(fields) == 2:
        # The common one, a rule on an event of the log, written directly (the encoder's very text).
        offset, rule = fields.get("event"), fields.get("rule")
        if type(rule) is str and (type(offset) is int or (offset is None and "event" in fields)):
            return rule_cause(offset, rule)
    return _cause_json(fields)


def rule_cause(offset: int | None, rule: str) -> str:
    """``cause(event=offset, rule=rule)``: a rule (or a schedule) on an event of the log."""
    if type(offset) is int or offset is None:
        return f'{{"event":{"null" if offset is None else offset},"rule":{_json_string(rule)}}}'
    return _cause_json({"event": offset, "rule": rule})


def event_dict(event: Event | None) -> dict[str, Any] | None:
    return event.to_dict() if event is not None else None


def status_value(record: WorkflowExecution, te: TaskExecution, status: str, error: str | None) -> dict[str, Any]:
    """The value of a task status (or failure) event."""
    return {
        "workflow": record.workflow,
        "execution_id": record.id,
        "task": te.task,
        "seq": te.seq,
        "attempt": te.attempt,
        "task_execution_id": te.id,
        "status": status,
        "error": error,
    }


def task_status_event(record: WorkflowExecution, te: TaskExecution) -> Event:
    """The ``aiflow.task.status`` event of a run's current status (scoped to its execution)."""
    return task_status_event_of(*task_status_fields(record, te))


#: A task status event as plain values: namespace, workflow, execution id, task, seq, attempt, run id, status, error.
TaskStatusFields = tuple[str, str, int, str, int, int, int, str, "str | None"]


def task_status_fields(record: WorkflowExecution, te: TaskExecution) -> TaskStatusFields:
    status = te.status._value_
    # RETRYING carries why the attempt failed, as FAILED does.
    error = te.error if status in ("FAILED", "RETRYING") else None
    return (record.namespace, record.workflow, record.id, te.task, te.seq, te.attempt, te.id, status, error)


#: An event's fields in :class:`Event`'s order: key, value, namespace, sender, context.
EventRow = tuple[str, dict[str, Any], str, str, dict[str, Any]]


def task_status_row(
    namespace: str, workflow: str, execution_id: int, task: str, seq: int, attempt: int, te_id: int,
    status: str, error: str | None,
) -> EventRow:  # fmt: skip
    value = {
        "workflow": workflow, "execution_id": execution_id, "task": task, "seq": seq,
        "attempt": attempt, "task_execution_id": te_id, "status": status, "error": error,
    }  # fmt: skip
    context = {"execution_id": execution_id}
    return (event_keys.TASK_STATUS, value, namespace, f"{execution_id}/{task}/{seq}", context)


def task_status_event_of(*fields: Any) -> Event:
    """The event of :func:`task_status_row` (its arguments are :data:`TaskStatusFields`)."""
    return Event(*task_status_row(*fields))


def failure_event(key: str, record: WorkflowExecution, value: dict[str, Any]) -> Event:
    """An ``aiflow.task.failed/stopped/timeout`` event: not scoped, any workflow's rules may react."""
    return Event(key=key, value=value, namespace=record.namespace, sender=f"{record.workflow}/{value['task']}")


def execution_status_event(record: WorkflowExecution) -> Event:
    return execution_status_event_of(*execution_status_fields(record))


#: An execution status event as plain values: namespace, workflow, execution id, version, status.
ExecutionStatusFields = tuple[str, str, int, int, str]


def execution_status_fields(record: WorkflowExecution) -> ExecutionStatusFields:
    return (record.namespace, record.workflow, record.id, record.version, record.status._value_)


def execution_status_row(namespace: str, workflow: str, execution_id: int, version: int, status: str) -> EventRow:
    value = {"workflow": workflow, "execution_id": execution_id, "version": version, "status": status}
    return (event_keys.EXECUTION_STATUS, value, namespace, str(execution_id), {"execution_id": execution_id})


def execution_status_event_of(*fields: Any) -> Event:
    """The event of :func:`execution_status_row` (its arguments are :data:`ExecutionStatusFields`)."""
    return Event(*execution_status_row(*fields))


def workflow_event(event_key: str, namespace: str, name: str, version: int) -> Event:
    return Event(event_key, {"workflow": name, "version": version}, namespace=namespace, sender=name)


def tick_event(namespace: str, name: str, task: str, due_iso: str, backfill: bool) -> tuple[Event, str]:
    """A schedule tick and its idempotency key (a due time ticks once, live, caught up or backfilled)."""
    event = Event(
        key=event_keys.SCHEDULE_TICK,
        value={"workflow": name, "task": task or None, "scheduled_time": due_iso, "backfill": backfill},
        namespace=namespace,
        sender="aiflow.schedule",
    )
    return event, f"tick:{namespace}/{name}/{task}/{due_iso}"
