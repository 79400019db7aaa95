"""The scheduler's store: its tables made, typed queries of them, and (from :class:`.writes.Writes`) its writes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.log import EVENT_COLUMNS, rows_to_events
from aiflow_nb.scheduler.schema import (
    ADDED_COLUMNS,
    ALIVE_SQL,
    EXECUTION_SQL,
    SCHEMA,
    TASK_SQL,
    execution_from_row,
    from_db_time,
    task_from_row,
    to_db_time,
)
from aiflow_nb.scheduler.writes import Writes
from aiflow_nb.storage import META_SCHEMA, Database, check_schema_version
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo
from aiflow_nb.workflow.status import WorkflowStatus

__all__ = ["Store"]


class Store(Writes):
    """Reads and batched writes of the scheduler tables."""

    def __init__(self, db: Database) -> None:
        """Create the tables, or on a read-only database only check they are of a schema it reads."""
        self.db = db
        check_schema_version(db.conn, db.path)
        self._te = TASK_SQL
        self._ex = EXECUTION_SQL
        self._cause = "cause"
        if db.read_only:
            # A home last written before the added columns is read as it is (they read as NULL).
            found = {
                (t, c)
                for t, c in db.conn.execute(
                    "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database()"
                ).fetchall()
            }
            if ("task_executions", "stop_reason") not in found:
                self._te = TASK_SQL.replace("stop_reason", "NULL AS stop_reason")
            if ("task_executions", "parameters") not in found:
                self._te = self._te.replace("parameters", "NULL AS parameters")
                self._ex = EXECUTION_SQL.replace("parameters", "NULL AS parameters")
            if ("task_executions", "cause") not in found:
                self._cause = "NULL"
            return
        with db.transaction() as conn:
            conn.execute(SCHEMA)
            conn.execute(ADDED_COLUMNS)
            conn.execute(META_SCHEMA)

    # -- reads -------------------------------------------------------------

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.db.conn.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    def max_ids(self) -> tuple[int, int]:
        return (
            int(self._one("SELECT coalesce(max(id), 0) FROM executions")),
            int(self._one("SELECT coalesce(max(id), 0) FROM task_executions")),
        )

    def checkpoint(self, consumer: str = "scheduler") -> int:
        value = self._one('SELECT "offset" FROM checkpoint WHERE consumer = ?', [consumer])
        return int(value) if value is not None else 0

    def workflows(self) -> list[WorkflowInfo]:
        rows = self.db.conn.execute(
            "SELECT namespace, name, version, paused, create_time FROM workflows ORDER BY namespace, name"
        ).fetchall()
        return [WorkflowInfo(ns, n, v, p, from_db_time(t)) for ns, n, v, p, t in rows]  # type: ignore[arg-type]

    def spec(self, namespace: str, name: str, version: int) -> tuple[str, str] | None:
        row = self.db.conn.execute(
            "SELECT spec, digest FROM workflow_versions WHERE namespace = ? AND name = ? AND version = ?",
            [namespace, name, version],
        ).fetchone()
        return (row[0], row[1]) if row else None

    def latest_version(self, namespace: str, name: str) -> int:
        value = self._one(
            "SELECT max(version) FROM workflow_versions WHERE namespace = ? AND name = ?", [namespace, name]
        )
        return int(value or 0)

    def execution(self, execution_id: int) -> WorkflowExecution | None:
        rows = self.db.conn.execute(f"SELECT {self._ex} FROM executions WHERE id = ?", [execution_id]).fetchall()
        return execution_from_row(rows[0]) if rows else None

    def executions(
        self,
        workflow: str | None = None,
        namespace: str | None = None,
        status: WorkflowStatus | None = None,
        limit: int | None = None,
    ) -> list[WorkflowExecution]:
        """Executions, oldest first, matching every filter given; ``limit``: the newest ones."""
        clauses: list[str] = ["TRUE"]
        params: list[Any] = []
        for column, value in (("workflow", workflow), ("namespace", namespace)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        sql = f"SELECT {self._ex} FROM executions WHERE {' AND '.join(clauses)} ORDER BY id"
        if limit is not None:
            sql += " DESC LIMIT ?"
            params.append(int(limit))
        rows = self.db.conn.execute(sql, params).fetchall()
        result = [execution_from_row(r) for r in rows]
        return result[::-1] if limit is not None else result

    def running_executions(self) -> list[WorkflowExecution]:
        return self.executions(status=WorkflowStatus.RUNNING)

    def latest_executions(self) -> dict[tuple[str, str], WorkflowExecution]:
        """The newest execution of every workflow that has one, in one scan."""
        rows = self.db.conn.execute(
            f"SELECT {self._ex} FROM executions "
            "WHERE id IN (SELECT max(id) FROM executions GROUP BY namespace, workflow)"
        ).fetchall()
        found = (execution_from_row(r) for r in rows)
        return {(e.namespace, e.workflow): e for e in found}

    def _tasks(self, where: str, params: Sequence[Any]) -> list[TaskExecution]:
        rows = self.db.conn.execute(
            f"SELECT {self._te} FROM task_executions WHERE {where} ORDER BY id", list(params)
        ).fetchall()
        return [task_from_row(r) for r in rows]

    def task_execution(self, task_execution_id: int) -> TaskExecution | None:
        found = self._tasks("id = ?", [task_execution_id])
        return found[0] if found else None

    def task_executions(self, execution_id: int) -> list[TaskExecution]:
        """Every task execution of an execution, oldest first."""
        return self._tasks("execution_id = ?", [execution_id])

    def task_executions_of(self, execution_ids: Iterable[int]) -> list[TaskExecution]:
        """Every task execution of these executions, oldest first."""
        ids = list(execution_ids)
        return self._tasks("execution_id IN (SELECT unnest(?))", [ids]) if ids else []

    def alive_task_executions(self) -> list[TaskExecution]:
        return self._tasks(f"status IN {ALIVE_SQL}", [])

    def all_executions(self) -> list[WorkflowExecution]:
        return self.executions()

    def all_task_executions(self) -> list[TaskExecution]:
        return self._tasks("TRUE", [])

    def all_causes(self) -> dict[tuple[str, int], str | None]:
        """Why each execution and run was made: ("execution" or "task", id) -> its cause."""
        rows = self.db.conn.execute(
            f"SELECT 'execution', id, {self._cause} FROM executions "
            f"UNION ALL SELECT 'task', id, {self._cause} FROM task_executions"
        ).fetchall()
        return {(kind, int(id_)): cause for kind, id_, cause in rows}

    def cause_of(self, kind: str, row_id: int) -> str | None:
        """Why one execution (``kind`` "execution") or run ("task") was made."""
        table = "executions" if kind == "execution" else "task_executions"
        return self._one(f"SELECT {self._cause} FROM {table} WHERE id = ?", [row_id])  # type: ignore[no-any-return]

    def run_id(self, execution_id: int, task: str, seq: int) -> int | None:
        value = self._one(
            "SELECT id FROM task_executions WHERE execution_id = ? AND task = ? AND seq = ?", [execution_id, task, seq]
        )
        return int(value) if value is not None else None

    def event_at(self, offset: int) -> Event | None:
        rows = self.db.conn.execute(f'SELECT {EVENT_COLUMNS} FROM events WHERE "offset" = ?', [offset]).fetchall()
        return next(iter(rows_to_events(rows)), None)

    def offset_before(self, when: datetime) -> int:
        """The last offset logged at or before ``when`` (0 if none was)."""
        value = self._one('SELECT max("offset") FROM events WHERE create_time <= ?', [to_db_time(when)])
        return int(value or 0)

    def all_condition_states(self) -> dict[tuple[int, str], dict[str, Any]]:
        rows = self.db.conn.execute("SELECT execution_id, rule, state FROM condition_state").fetchall()
        return {(e, r): json.loads(s) for e, r, s in rows}

    def all_specs(self) -> dict[tuple[str, str, int], tuple[str, str]]:
        rows = self.db.conn.execute("SELECT namespace, name, version, spec, digest FROM workflow_versions").fetchall()
        return {(ns, n, v): (spec, digest) for ns, n, v, spec, digest in rows}

    def event_count(self) -> int:
        return int(self._one("SELECT count(*) FROM events"))

    def status_events(self) -> list[tuple[int, str, str, dict[str, Any]]]:
        """Every status event of the log, ``(offset, key, namespace, value)``, oldest first."""
        rows = self.db.conn.execute(
            'SELECT "offset", key, namespace, value FROM events WHERE key IN (?, ?) ORDER BY "offset"',
            [event_keys.EXECUTION_STATUS, event_keys.TASK_STATUS],
        ).fetchall()
        return [(int(o), k, ns, json.loads(v)) for o, k, ns, v in rows]

    def recorded_inputs(
        self, since: int = 0, until: int | None = None, kind: str | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """The ``aiflow.input`` events with ``since < offset <= until`` (of one kind), as ``(offset, value)``."""
        rows = self.db.conn.execute(
            'SELECT "offset", value FROM events WHERE key = ? AND "offset" > ? AND "offset" <= ? '
            "AND (? IS NULL OR json_extract_string(value, '$.kind') = ?) ORDER BY \"offset\"",
            [event_keys.INPUT, since, until if until is not None else 2**62, kind, kind],
        ).fetchall()
        return [(int(o), json.loads(v)) for o, v in rows]

    def rule_events(
        self, keys: Iterable[str], chunk: int = 100_000, since: int = 0, until: int | None = None
    ) -> Iterator[Event]:
        """The events the rules may read, oldest first: scoped ones, ``aiflow.*`` ones and those with these keys.

        Only those with ``since < offset <= until`` (to the log's end without ``until``).
        """
        wanted = sorted(keys)
        end = until if until is not None else 2**62
        while True:
            rows = self.db.conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events "
                'WHERE "offset" > ? AND "offset" <= ? AND (context IS NOT NULL OR starts_with(key, \'aiflow.\') '
                'OR key IN (SELECT unnest(?))) ORDER BY "offset" LIMIT ?',
                [since, end, wanted, chunk],
            ).fetchall()
            yield from rows_to_events(rows)
            if len(rows) < chunk:
                return
            since = int(rows[-1][0])

    def events_of_key(self, key: str, until: int) -> list[Event]:
        """The events with this key up to ``until``, oldest first."""
        rows = self.db.conn.execute(
            f'SELECT {EVENT_COLUMNS} FROM events WHERE key = ? AND "offset" <= ? ORDER BY "offset"', [key, until]
        ).fetchall()
        return list(rows_to_events(rows))

    def unseen_status_events(self, checkpoint: int, execution_ids: Iterable[int]) -> dict[int, int]:
        """How many task status events of each of these executions lie after the checkpoint."""
        wanted = set(execution_ids)
        if not wanted:
            return {}
        rows = self.db.conn.execute(
            "SELECT CAST(json_extract_string(context, '$.execution_id') AS BIGINT) AS ex, count(*) "
            'FROM events WHERE "offset" > ? AND key = ? GROUP BY ex',
            [checkpoint, event_keys.TASK_STATUS],
        ).fetchall()
        return {int(ex): int(n) for ex, n in rows if ex is not None and int(ex) in wanted}

    def condition_states(self, execution_ids: Iterable[int]) -> dict[tuple[int, str], dict[str, Any]]:
        ids = list(execution_ids)
        if not ids:
            return {}
        rows = self.db.conn.execute(
            "SELECT execution_id, rule, state FROM condition_state WHERE execution_id IN (SELECT unnest(?))",
            [ids],
        ).fetchall()
        return {(e, r): json.loads(s) for e, r, s in rows}

    def pending_launches(self) -> list[tuple[int, int]]:
        rows = self.db.conn.execute(
            "SELECT task_execution_id, attempt FROM launches WHERE NOT launched ORDER BY task_execution_id"
        ).fetchall()
        return [(int(t), int(a)) for t, a in rows]

    def last_ticks(self) -> dict[tuple[str, str, str], datetime]:
        rows = self.db.conn.execute("SELECT namespace, workflow, task, last_tick FROM schedule_state").fetchall()
        return {(ns, wf, t): from_db_time(tick) for ns, wf, t, tick in rows}  # type: ignore[misc]
