"""The scheduler's tables: their schema, and its rows to and from the records.

Times are stored as naive UTC, an event or condition state as compact JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiflow_nb.events.event import compact_dumps
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution
from aiflow_nb.workflow.status import TaskStatus, WorkflowStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS workflow_versions (
    namespace VARCHAR NOT NULL, name VARCHAR NOT NULL, version INTEGER NOT NULL,
    spec VARCHAR NOT NULL, digest VARCHAR NOT NULL, create_time TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS workflows (
    namespace VARCHAR NOT NULL, name VARCHAR NOT NULL, version INTEGER NOT NULL,
    paused BOOLEAN NOT NULL, create_time TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    id BIGINT NOT NULL, namespace VARCHAR NOT NULL, workflow VARCHAR NOT NULL,
    version INTEGER NOT NULL, status VARCHAR NOT NULL, start_time TIMESTAMP NOT NULL,
    end_time TIMESTAMP, event VARCHAR, cause VARCHAR
);
CREATE TABLE IF NOT EXISTS task_executions (
    id BIGINT NOT NULL, execution_id BIGINT NOT NULL, task VARCHAR NOT NULL,
    seq INTEGER NOT NULL, status VARCHAR NOT NULL, attempt INTEGER NOT NULL,
    create_time TIMESTAMP, start_time TIMESTAMP, end_time TIMESTAMP, error VARCHAR,
    event VARCHAR, retry_at TIMESTAMP, stop_reason VARCHAR, cause VARCHAR
);
CREATE TABLE IF NOT EXISTS condition_state (
    execution_id BIGINT NOT NULL, rule VARCHAR NOT NULL, state VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS launches (
    task_execution_id BIGINT NOT NULL, attempt INTEGER NOT NULL, launched BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_state (
    namespace VARCHAR NOT NULL, workflow VARCHAR NOT NULL, task VARCHAR NOT NULL,
    last_tick TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (consumer VARCHAR NOT NULL, "offset" BIGINT NOT NULL);
"""
#: Columns added since the tables were first made (nullable: older code still reads and writes the rows).
ADDED_COLUMNS = """
ALTER TABLE executions ADD COLUMN IF NOT EXISTS cause VARCHAR;
ALTER TABLE task_executions ADD COLUMN IF NOT EXISTS stop_reason VARCHAR;
ALTER TABLE task_executions ADD COLUMN IF NOT EXISTS cause VARCHAR;
ALTER TABLE executions ADD COLUMN IF NOT EXISTS parameters VARCHAR;
ALTER TABLE task_executions ADD COLUMN IF NOT EXISTS parameters VARCHAR;
"""

EXECUTION_COLUMNS = (
    "id", "namespace", "workflow", "version", "status", "start_time", "end_time", "event", "parameters",
)  # fmt: skip
TASK_COLUMNS = (
    "id", "execution_id", "task", "seq", "status", "attempt",
    "create_time", "start_time", "end_time", "error", "event", "retry_at", "stop_reason", "parameters",
)  # fmt: skip
EXECUTION_SQL = ", ".join(EXECUTION_COLUMNS)
TASK_SQL = ", ".join(TASK_COLUMNS)
ALIVE_SQL = "('QUEUED', 'RUNNING', 'STOPPING', 'RETRYING')"


def to_db_time(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def from_db_time(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


# json.dumps(value, separators=(",", ":")) without building an encoder per call.
_dumps = compact_dumps(ensure_ascii=True, allow_nan=True)


def json_text(value: Any) -> str | None:
    return _dumps(value) if value is not None else None


def execution_row(e: WorkflowExecution) -> tuple[Any, ...]:
    return (
        e.id, e.namespace, e.workflow, e.version, e.status.value,
        to_db_time(e.start_time), to_db_time(e.end_time), json_text(e.event), json_text(e.parameters),
    )  # fmt: skip


def task_row(t: TaskExecution) -> tuple[Any, ...]:
    return (
        t.id, t.execution_id, t.task, t.seq, t.status.value, t.attempt,
        to_db_time(t.create_time), to_db_time(t.start_time), to_db_time(t.end_time),
        t.error, json_text(t.event), to_db_time(t.retry_at), t.stop_reason, json_text(t.parameters),
    )  # fmt: skip


def execution_from_row(row: Sequence[Any]) -> WorkflowExecution:
    id_, ns, wf, version, status, start, end, event, parameters = row
    return WorkflowExecution(
        id=id_, namespace=ns, workflow=wf, version=version, status=WorkflowStatus(status),
        start_time=from_db_time(start),  # type: ignore[arg-type]
        end_time=from_db_time(end), event=json.loads(event) if event else None,
        parameters=json.loads(parameters) if parameters else None,
    )  # fmt: skip


def task_from_row(row: Sequence[Any]) -> TaskExecution:
    id_, ex, task, seq, status, attempt, created, start, end, error, event, retry_at, stop_reason, parameters = row
    return TaskExecution(
        id=id_, execution_id=ex, task=task, seq=seq, status=TaskStatus(status), attempt=attempt,
        create_time=from_db_time(created), start_time=from_db_time(start),
        end_time=from_db_time(end), error=error, event=json.loads(event) if event else None,
        retry_at=from_db_time(retry_at), stop_reason=stop_reason,
        parameters=json.loads(parameters) if parameters else None,
    )  # fmt: skip
