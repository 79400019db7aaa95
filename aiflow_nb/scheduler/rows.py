"""The rows the replay implies against the stored ones, field by field (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from aiflow_nb.scheduler.replay import Difference
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo

EXECUTION_FIELDS = ("namespace", "workflow", "version", "status", "start_time", "end_time", "event")
RUN_FIELDS = (
    "execution_id", "task", "seq", "attempt", "status",
    "create_time", "start_time", "end_time", "error", "event", "retry_at",
)  # fmt: skip


def _shown(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _rows(kind: str, implied: Mapping[Any, Any], stored: Mapping[Any, Any], fields: Iterable[str]) -> list[Difference]:
    found = []
    for key in sorted(implied.keys() | stored.keys()):
        row = f"{kind} {key}"
        got, want = stored.get(key), implied.get(key)
        if got is None or want is None:
            found.append(Difference(row, "row", "a row" if got is not None else None, "a row" if want else None))
            continue
        for name in fields:
            a, b = getattr(got, name), getattr(want, name)
            if a != b:
                found.append(Difference(row, name, _shown(a), _shown(b)))
    return found


def compare_executions(
    implied: Mapping[int, WorkflowExecution], stored: Iterable[WorkflowExecution]
) -> list[Difference]:
    return _rows("execution", implied, {e.id: e for e in stored}, EXECUTION_FIELDS)


def compare_runs(implied: Mapping[int, TaskExecution], stored: Iterable[TaskExecution]) -> list[Difference]:
    return _rows("task execution", implied, {t.id: t for t in stored}, RUN_FIELDS)


def compare_states(implied: Mapping[tuple[int, str], Any], stored: Mapping[tuple[int, str], Any]) -> list[Difference]:
    found = []
    for key in sorted(implied.keys() | stored.keys()):
        if implied.get(key) != stored.get(key):
            row = f"condition state ({key[0]}, {key[1]!r})"
            found.append(Difference(row, "state", stored.get(key), implied.get(key)))
    return found


def compare_ticks(
    implied: Mapping[tuple[str, str, str], datetime], stored: Mapping[tuple[str, str, str], datetime]
) -> list[Difference]:
    found = []
    for key in sorted(implied.keys() | stored.keys()):
        if implied.get(key) != stored.get(key):
            row = f"schedule {key[0]}/{key[1]}" + (f" task {key[2]!r}" if key[2] else "")
            found.append(Difference(row, "last tick", _shown(stored.get(key)), _shown(implied.get(key))))
    return found


def compare_workflows(
    implied: Mapping[tuple[str, str], WorkflowInfo], stored: Iterable[WorkflowInfo]
) -> list[Difference]:
    return _rows(
        "workflow",
        {f"{ns}/{n}": w for (ns, n), w in implied.items()},
        {f"{w.namespace}/{w.name}": w for w in stored},
        ("version", "paused", "create_time"),
    )


def compare_causes(
    implied: Mapping[tuple[str, int], str], stored: Mapping[tuple[str, int], str | None]
) -> list[Difference]:
    """Why each execution and run was made (rows missing on one side are told by the row comparisons)."""
    found = []
    for key in sorted(implied.keys() & stored.keys()):
        if implied[key] != stored[key]:
            row = f"{'execution' if key[0] == 'execution' else 'task execution'} {key[1]}"
            found.append(Difference(row, "cause", stored[key], implied[key]))
    return found
