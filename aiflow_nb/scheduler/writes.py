"""Batched writes to the scheduler's tables.

Writes are collected in a :class:`Changes` buffer and flushed inside the
caller's transaction, many rows at a time through Arrow: DuckDB takes about
1,400 single-row INSERTs a second but a million rows a second from Arrow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from aiflow_nb.scheduler.decisions import Decisions
from aiflow_nb.scheduler.schema import EXECUTION_COLUMNS, TASK_COLUMNS, execution_row, task_row, to_db_time
from aiflow_nb.storage import Database
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo


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

    def add(self, d: Decisions) -> None:
        """Add one input's decisions to the batch (a row changed twice is written once, as it is last)."""
        if d.executions:
            self.executions.update(d.executions)
            self.new_executions.update(d.new_executions)
        if d.tasks:
            self.tasks.update(d.tasks)
            self.new_tasks.update(d.new_tasks)
        if d.causes:
            self.causes.update(d.causes)
        if d.states:
            self.states.update(d.states)
        if d.launches:
            self.launches.extend(d.launches)
        if d.ticks:
            self.ticks.update(d.ticks)

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


class Writes:
    """The writes of :class:`~.store.Store`: one batch's changes, workflows and versions."""

    db: Database

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
