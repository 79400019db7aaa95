"""How a command prints: a table or fields for people, JSON for scripts (``-o json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiflow_nb.tables import task_row, text_fields, text_table
from aiflow_nb.workflow.records import TaskExecution

TASK_COLUMNS = ("id", "task", "seq", "attempt", "status", "start_time", "duration", "error")


class Output:
    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"

    def rows(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        print(json.dumps(list(rows), default=str, indent=2) if self.json else text_table(rows, columns))

    def tasks(self, runs: Sequence[TaskExecution]) -> None:
        """Task executions: JSON keeps the duration in seconds, the table shows it as people read it."""
        now = datetime.now(UTC)
        self.rows([t.to_dict() if self.json else task_row(t, now) for t in runs], TASK_COLUMNS)

    def one(self, data: dict[str, Any], text: str | None = None) -> None:
        if self.json:
            print(json.dumps(data, default=str, indent=2))
        else:
            print(text if text is not None else text_fields(data))
