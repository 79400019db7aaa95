"""The scheduler's tables, and batched writes to them.

Writes are collected in a :class:`Changes` buffer and flushed inside the
caller's transaction, many rows at a time through Arrow: DuckDB takes about
1,400 single-row INSERTs a second but a million rows a second from Arrow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import compact_dumps
from aiflow_nb.events.log import _COLUMNS as _EVENT_COLUMNS
from aiflow_nb.events.log import _rows_to_events as rows_to_events
from aiflow_nb.storage import META_SCHEMA, Database, check_schema_version
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo
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
"""

EXECUTION_COLUMNS = ("id", "namespace", "workflow", "version", "status", "start_time", "end_time", "event")
TASK_COLUMNS = (
    "id", "execution_id", "task", "seq", "status", "attempt",
    "create_time", "start_time", "end_time", "error", "event", "retry_at", "stop_reason",
)  # fmt: skip
_EX = ", ".join(EXECUTION_COLUMNS)
_TE = ", ".join(TASK_COLUMNS)
ALIVE_SQL = "('QUEUED', 'RUNNING', 'STOPPING', 'RETRYING')"


def to_db_time(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def from_db_time(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None else None


# json.dumps(value, separators=(",", ":")) without building an encoder per call.
_dumps = compact_dumps(ensure_ascii=True, allow_nan=True)


def _json(value: Any) -> str | None:
    return _dumps(value) if value is not None else None


def execution_row(e: WorkflowExecution) -> tuple[Any, ...]:
    return (
        e.id, e.namespace, e.workflow, e.version, e.status.value,
        to_db_time(e.start_time), to_db_time(e.end_time), _json(e.event),
    )  # fmt: skip


def task_row(t: TaskExecution) -> tuple[Any, ...]:
    return (
        t.id, t.execution_id, t.task, t.seq, t.status.value, t.attempt,
        to_db_time(t.create_time), to_db_time(t.start_time), to_db_time(t.end_time),
        t.error, _json(t.event), to_db_time(t.retry_at), t.stop_reason,
    )  # fmt: skip


def execution_from_row(row: Sequence[Any]) -> WorkflowExecution:
    id_, ns, wf, version, status, start, end, event = row
    return WorkflowExecution(
        id=id_, namespace=ns, workflow=wf, version=version, status=WorkflowStatus(status),
        start_time=from_db_time(start),  # type: ignore[arg-type]
        end_time=from_db_time(end), event=json.loads(event) if event else None,
    )  # fmt: skip


def task_from_row(row: Sequence[Any]) -> TaskExecution:
    id_, ex, task, seq, status, attempt, created, start, end, error, event, retry_at, stop_reason = row
    return TaskExecution(
        id=id_, execution_id=ex, task=task, seq=seq, status=TaskStatus(status), attempt=attempt,
        create_time=from_db_time(created), start_time=from_db_time(start),
        end_time=from_db_time(end), error=error, event=json.loads(event) if event else None,
        retry_at=from_db_time(retry_at), stop_reason=stop_reason,
    )  # fmt: skip


@dataclass
class Changes:
    """Everything one scheduler batch changes; flushed in one transaction."""

    executions: dict[int, WorkflowExecution] = field(default_factory=dict)
    new_executions: set[int] = field(default_factory=set)
    tasks: dict[int, TaskExecution] = field(default_factory=dict)
    new_tasks: set[int] = field(default_factory=set)
    states: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    launches: list[tuple[int, int]] = field(default_factory=list)
    launched: list[tuple[int, int]] = field(default_factory=list)
    ticks: dict[tuple[str, str, str], datetime] = field(default_factory=dict)
    #: ("execution" or "task", id) -> why it was made, for the new rows.
    causes: dict[tuple[str, int], str] = field(default_factory=dict)
    checkpoint: int | None = None

    def carrying(self, checkpoint: int | None) -> Changes:
        """A new, empty buffer that still has to write ``checkpoint``."""
        return Changes(checkpoint=checkpoint)

    def only_checkpoint(self) -> bool:
        """True if the batch changed nothing but how far the log was read (and which launches were sent)."""
        return not (self.executions or self.tasks or self.states or self.launches or self.ticks)

    def __bool__(self) -> bool:
        return bool(
            self.executions or self.tasks or self.states or self.launches
            or self.launched or self.ticks or self.checkpoint is not None
        )  # fmt: skip


class Store:
    """Reads and batched writes of the scheduler tables."""

    def __init__(self, db: Database) -> None:
        """Create the tables, or on a read-only database only check they are of a schema it reads."""
        self.db = db
        check_schema_version(db.conn, db.path)
        self._te = _TE
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
                self._te = _TE.replace("stop_reason", "NULL AS stop_reason")
            if ("task_executions", "cause") not in found:
                self._cause = "NULL"
            return
        with db.transaction() as conn:
            conn.execute(SCHEMA)
            conn.execute(ADDED_COLUMNS)
            conn.execute(META_SCHEMA)

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _arrow(columns: Sequence[str], rows: list[tuple[Any, ...]]) -> pa.Table:
        """Rows as an Arrow table, built column by column (from_pylist of dicts is 3x slower)."""
        return pa.Table.from_arrays([pa.array(col) for col in zip(*rows, strict=True)], names=list(columns))

    def _insert(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        conn = self.db.conn
        if len(rows) < 8:
            # One statement: executemany costs a round trip per row.
            marks = ", ".join([f"({', '.join('?' * len(columns))})"] * len(rows))
            conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {marks}", [x for r in rows for x in r])
            return
        arrow = self._arrow(columns, rows)
        conn.register("_aiflow_rows", arrow)
        try:
            conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM _aiflow_rows")
        finally:
            conn.unregister("_aiflow_rows")

    def _update(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        """Rewrite whole rows keyed by their first column (``id``)."""
        if not rows:
            return
        conn = self.db.conn
        if len(rows) < 8:
            sets = ", ".join(f"{c} = ?" for c in columns[1:])
            for r in rows:  # execute per row: executemany is slower for a few rows
                conn.execute(f"UPDATE {table} SET {sets} WHERE {columns[0]} = ?", [*r[1:], r[0]])
            return
        arrow = self._arrow(columns, rows)
        conn.register("_aiflow_rows", arrow)
        try:
            sets = ", ".join(f"{c} = u.{c}" for c in columns[1:])
            conn.execute(
                f"UPDATE {table} SET {sets} FROM _aiflow_rows AS u WHERE {table}.{columns[0]} = u.{columns[0]}"
            )
        finally:
            conn.unregister("_aiflow_rows")

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.db.conn.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    # -- reads -------------------------------------------------------------

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
        rows = self.db.conn.execute(f"SELECT {_EX} FROM executions WHERE id = ?", [execution_id]).fetchall()
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
        sql = f"SELECT {_EX} FROM executions WHERE {' AND '.join(clauses)} ORDER BY id"
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
            f"SELECT {_EX} FROM executions WHERE id IN (SELECT max(id) FROM executions GROUP BY namespace, workflow)"
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
        rows = self.db.conn.execute(f'SELECT {_EVENT_COLUMNS} FROM events WHERE "offset" = ?', [offset]).fetchall()
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
                f"SELECT {_EVENT_COLUMNS} FROM events "
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
            f'SELECT {_EVENT_COLUMNS} FROM events WHERE key = ? AND "offset" <= ? ORDER BY "offset"', [key, until]
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

    # -- writes (inside the caller's transaction) ------------------------------

    def add_version(self, namespace: str, name: str, version: int, spec: str, digest: str, now: datetime) -> None:
        self.db.conn.execute(
            "INSERT INTO workflow_versions VALUES (?, ?, ?, ?, ?, ?)",
            [namespace, name, version, spec, digest, to_db_time(now)],
        )

    def put_workflow(self, info: WorkflowInfo) -> None:
        conn = self.db.conn
        conn.execute("DELETE FROM workflows WHERE namespace = ? AND name = ?", [info.namespace, info.name])
        conn.execute(
            "INSERT INTO workflows VALUES (?, ?, ?, ?, ?)",
            [info.namespace, info.name, info.version, info.paused, to_db_time(info.create_time)],
        )

    def delete_workflow(self, namespace: str, name: str) -> None:
        self.db.conn.execute("DELETE FROM workflows WHERE namespace = ? AND name = ?", [namespace, name])

    def flush(self, changes: Changes) -> None:
        conn = self.db.conn
        causes = changes.causes
        ex_new = [
            (*execution_row(e), causes.get(("execution", i)))
            for i, e in changes.executions.items()
            if i in changes.new_executions
        ]
        ex_old = [execution_row(e) for i, e in changes.executions.items() if i not in changes.new_executions]
        self._insert("executions", (*EXECUTION_COLUMNS, "cause"), ex_new)
        self._update("executions", EXECUTION_COLUMNS, ex_old)
        te_new = [(*task_row(t), causes.get(("task", i))) for i, t in changes.tasks.items() if i in changes.new_tasks]
        te_old = [task_row(t) for i, t in changes.tasks.items() if i not in changes.new_tasks]
        self._insert("task_executions", (*TASK_COLUMNS, "cause"), te_new)
        self._update("task_executions", TASK_COLUMNS, te_old)
        if changes.states:
            rows = [(e, r, json.dumps(s, separators=(",", ":"))) for (e, r), s in changes.states.items()]
            keys = pa.table({"e": [r[0] for r in rows], "r": [r[1] for r in rows]})
            conn.register("_aiflow_keys", keys)
            try:
                conn.execute(
                    "DELETE FROM condition_state USING _aiflow_keys AS k "
                    "WHERE condition_state.execution_id = k.e AND condition_state.rule = k.r"
                )
            finally:
                conn.unregister("_aiflow_keys")
            self._insert("condition_state", ("execution_id", "rule", "state"), rows)
        self._insert(
            "launches",
            ("task_execution_id", "attempt", "launched"),
            [(t, a, False) for t, a in changes.launches],
        )
        if changes.launched:
            ids = sorted({t for t, _ in changes.launched})
            if len(ids) <= 16:
                # A short literal list: DuckDB plans ``IN (SELECT unnest(?))`` several times slower
                # (and a long literal list slower still).
                marks = ", ".join("?" * len(ids))
                conn.execute(f"UPDATE launches SET launched = TRUE WHERE task_execution_id IN ({marks})", ids)
            else:
                conn.execute("UPDATE launches SET launched = TRUE WHERE task_execution_id IN (SELECT unnest(?))", [ids])
        for (ns, wf, task), tick in changes.ticks.items():
            conn.execute("DELETE FROM schedule_state WHERE namespace = ? AND workflow = ? AND task = ?", [ns, wf, task])
            conn.execute("INSERT INTO schedule_state VALUES (?, ?, ?, ?)", [ns, wf, task, to_db_time(tick)])
        if changes.checkpoint is not None:
            # One statement per batch once the row exists (DuckDB takes ~1 ms a statement here).
            updated = conn.execute(
                "UPDATE checkpoint SET \"offset\" = ? WHERE consumer = 'scheduler'", [changes.checkpoint]
            ).fetchone()
            if not updated or not updated[0]:
                conn.execute("INSERT INTO checkpoint VALUES ('scheduler', ?)", [changes.checkpoint])
