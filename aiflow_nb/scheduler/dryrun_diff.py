"""What a replay made against what the submitted version made (pure): runs only in one, runs whose cause differs.

Runs are matched by words that do not depend on ids or on the offsets of the
scheduler's own events (:func:`describe_cause`): the cause of their execution,
the task and the seq.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution

#: Keys of the events the scheduler appends about a workflow's runs.
OWN_KEYS = (
    event_keys.TASK_STATUS, event_keys.EXECUTION_STATUS, event_keys.TASK_FAILED,
    event_keys.TASK_STOPPED, event_keys.TASK_TIMEOUT,
)  # fmt: skip


@dataclass(frozen=True)
class Runs:
    """Executions and runs of one workflow, each with its recorded cause (in reality, or made by a replay)."""

    executions: list[tuple[WorkflowExecution, str | None]] = field(default_factory=list)
    runs: list[tuple[TaskExecution, str | None]] = field(default_factory=list)


def differences(replayed: Runs, reality: Runs, events: Mapping[int, Event]) -> dict[str, list[dict[str, Any]]]:
    """Runs only in the replay, only in reality, and in both with another cause (each sorted)."""
    mine, real = _keyed(replayed, events), _keyed(reality, events)

    def row(key: tuple[str, str, int]) -> dict[str, Any]:
        return {"execution": key[0], "task": key[1], "seq": key[2]}

    return {
        "only_replay": [row(k) for k in sorted(mine.keys() - real.keys())],
        "only_real": [row(k) for k in sorted(real.keys() - mine.keys())],
        "cause_differs": [
            {**row(k), "replay": mine[k], "real": real[k]}
            for k in sorted(mine.keys() & real.keys())
            if mine[k] != real[k]
        ],
    }


def _keyed(made: Runs, events: Mapping[int, Event]) -> dict[tuple[str, str, int], str]:
    """Each run's cause by (its execution's cause, task, seq)."""
    execution = {ex.id: describe_cause(cause, events) for ex, cause in made.executions}
    return {
        (execution[te.execution_id], te.task, te.seq): describe_cause(cause, events)
        for te, cause in made.runs
        if te.execution_id in execution
    }


def describe_cause(why: str | dict[str, Any] | None, event: Mapping[int, Event]) -> str:
    """A cause in words that do not depend on ids or on the offsets of the scheduler's own events."""
    found = json.loads(why) if isinstance(why, str) and why else why
    if not isinstance(found, dict):
        return "unknown"
    if "restart_of" in found:
        return f"restart after {describe_cause(found.get('cause'), event)}"
    if "input" in found:
        return f"command {found['input']} at {found.get('now')}"
    offset = int(found["event"])
    what = _event_words(offset, event.get(offset))
    if found.get("queued"):
        return f"queued {what}"
    return f"{found.get('rule')} on {what}"


def _event_words(offset: int, event: Event | None) -> str:
    if event is None:
        return f"event {offset}"
    value = event.value if isinstance(event.value, dict) else {}
    if event.key in OWN_KEYS and "task" in value:
        return f"{event.key} {value['task']} #{value.get('seq')} {value.get('status')}"
    if event.key == event_keys.SCHEDULE_TICK:
        return f"tick {value.get('task') or ''} {value.get('scheduled_time')}"
    return f"event {offset} {event.key}"
