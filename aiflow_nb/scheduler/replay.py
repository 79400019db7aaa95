"""The state the log implies: a fold of its status events, and how it differs from what is stored.

Pure: events and stored rows in, the implied state and every difference
out.  Every change the scheduler makes is appended to the log as a status
event in the transaction that makes it, so folding those events from
offset 0 through the transition tables of :mod:`.transitions` must give the
stored executions and task executions exactly; a status change the tables
do not allow, a seq that does not grow by one, a second alive run of a task
or an execution that ends twice is a difference too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler.rules import RESTART_RULE, WAITING_RULE
from aiflow_nb.scheduler.transitions import TASK_TRANSITIONS, WORKFLOW_TRANSITIONS
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution
from aiflow_nb.workflow.status import TaskStatus, WorkflowStatus

#: The keys of the events the fold reads.
STATUS_KEYS = (event_keys.EXECUTION_STATUS, event_keys.TASK_STATUS)


@dataclass(frozen=True)
class Difference:
    """One way the stored state is not what the log implies."""

    row: str
    field: str
    stored: Any
    implied: Any

    def __str__(self) -> str:
        return f"{self.row} {self.field}: stored {_show(self.stored)}, the log implies {_show(self.implied)}"

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "stored": _plain(self.stored), "implied": _plain(self.implied)}


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _show(value: Any) -> str:
    return "nothing" if value is None else str(value)


@dataclass
class ImpliedExecution:
    id: int
    namespace: str
    workflow: str
    version: int
    status: WorkflowStatus


@dataclass
class ImpliedRun:
    id: int
    execution_id: int
    task: str
    seq: int
    attempt: int
    status: TaskStatus
    error: str | None = None


@dataclass
class Implied:
    """What the log implies, and what in the log itself breaks the rules."""

    executions: dict[int, ImpliedExecution] = field(default_factory=dict)
    runs: dict[int, ImpliedRun] = field(default_factory=dict)
    #: (execution id, task) -> the id of its latest run.
    latest: dict[tuple[int, str], int] = field(default_factory=dict)
    broken: list[Difference] = field(default_factory=list)


def fold(events: Iterable[tuple[int, str, str, Mapping[str, Any]]]) -> Implied:
    """Fold ``(offset, key, namespace, value)`` status events, in offset order."""
    implied = Implied()
    for offset, key, namespace, value in events:
        if key == event_keys.EXECUTION_STATUS:
            _execution_status(implied, offset, namespace, value)
        elif key == event_keys.TASK_STATUS:
            _task_status(implied, offset, value)
    return implied


def _execution_status(implied: Implied, offset: int, namespace: str, value: Mapping[str, Any]) -> None:
    ex_id, status = int(value["execution_id"]), WorkflowStatus(value["status"])
    known = implied.executions.get(ex_id)
    if known is None:
        if status is not WorkflowStatus.RUNNING:
            implied.broken.append(Difference(f"event {offset}", f"execution {ex_id} first status", None, status.value))
        implied.executions[ex_id] = ImpliedExecution(
            ex_id, namespace, str(value["workflow"]), int(value["version"]), status
        )
        return
    if status not in WORKFLOW_TRANSITIONS[known.status]:
        # An execution ends once: a finished one has no transition.
        row = f"event {offset}"
        implied.broken.append(Difference(row, f"execution {ex_id} status change", known.status.value, status.value))
    known.status = status


def _task_status(implied: Implied, offset: int, value: Mapping[str, Any]) -> None:
    te_id, status = int(value["task_execution_id"]), TaskStatus(value["status"])
    ex_id, task, seq, attempt = int(value["execution_id"]), str(value["task"]), int(value["seq"]), int(value["attempt"])
    row = f"event {offset}"
    run = implied.runs.get(te_id)
    if run is None:
        previous = implied.runs.get(implied.latest.get((ex_id, task), -1))
        expected_seq = previous.seq + 1 if previous is not None else 1
        if seq != expected_seq:
            implied.broken.append(Difference(row, f"task execution {te_id} seq", seq, expected_seq))
        if previous is not None and previous.status.alive:
            implied.broken.append(
                Difference(row, f"task {task!r} of execution {ex_id}: a second alive run", te_id, previous.id)
            )
        if status is not TaskStatus.QUEUED:
            implied.broken.append(Difference(row, f"task execution {te_id} first status", status.value, "QUEUED"))
        ex = implied.executions.get(ex_id)
        if ex is None or ex.status is not WorkflowStatus.RUNNING:
            state = ex.status.value if ex is not None else None
            implied.broken.append(Difference(row, f"task execution {te_id}: its execution {ex_id}", state, "RUNNING"))
        implied.runs[te_id] = ImpliedRun(te_id, ex_id, task, seq, attempt, status, value.get("error"))
        implied.latest[(ex_id, task)] = te_id
        return
    if status not in TASK_TRANSITIONS[run.status]:
        implied.broken.append(Difference(row, f"task execution {te_id} status change", run.status.value, status.value))
    retried = run.status is TaskStatus.RETRYING and status is TaskStatus.QUEUED
    if attempt != run.attempt + (1 if retried else 0):
        implied.broken.append(Difference(row, f"task execution {te_id} attempt", attempt, run.attempt))
    run.status, run.attempt = status, attempt
    if status in (TaskStatus.FAILED, TaskStatus.RETRYING):
        run.error = value.get("error")


def compare(
    implied: Implied,
    executions: Iterable[WorkflowExecution],
    runs: Iterable[TaskExecution],
    condition_states: Mapping[tuple[int, str], Mapping[str, Any]],
) -> list[Difference]:
    """Every difference between the stored rows and the implied state (the log's own breaks first)."""
    found = list(implied.broken)
    stored_ex = {e.id: e for e in executions}
    for ex_id in sorted(stored_ex.keys() | implied.executions.keys()):
        row = f"execution {ex_id}"
        stored, want = stored_ex.get(ex_id), implied.executions.get(ex_id)
        if stored is None or want is None:
            found.append(Difference(row, "row", "a row" if stored else None, "a row" if want else None))
            continue
        for name in ("namespace", "workflow", "version", "status"):
            if getattr(stored, name) != getattr(want, name):
                found.append(Difference(row, name, _value(getattr(stored, name)), _value(getattr(want, name))))
        if (stored.end_time is not None) != want.status.finished:
            found.append(Difference(row, "end_time", stored.end_time, "a time" if want.status.finished else None))
    stored_runs = {t.id: t for t in runs}
    for te_id in sorted(stored_runs.keys() | implied.runs.keys()):
        row = f"task execution {te_id}"
        got, run = stored_runs.get(te_id), implied.runs.get(te_id)
        if got is None or run is None:
            found.append(Difference(row, "row", "a row" if got else None, "a row" if run else None))
            continue
        for name in ("execution_id", "task", "seq", "attempt", "status"):
            if getattr(got, name) != getattr(run, name):
                found.append(Difference(row, name, _value(getattr(got, name)), _value(getattr(run, name))))
        if run.status in (TaskStatus.FAILED, TaskStatus.RETRYING) and got.error != run.error:
            found.append(Difference(row, "error", got.error, run.error))
    found.extend(_check_states(implied, condition_states))
    return found


def _value(value: Any) -> Any:
    return value.value if isinstance(value, (TaskStatus, WorkflowStatus)) else value


def _check_states(implied: Implied, states: Mapping[tuple[int, str], Mapping[str, Any]]) -> list[Difference]:
    """Condition state belongs to a known execution; a pending restart waits on a stopping run."""
    found = []
    for (ex_id, rule), state in sorted(states.items()):
        row = f"condition state ({ex_id}, {rule!r})"
        if ex_id == 0:
            if rule.startswith(RESTART_RULE) or not (rule.startswith(WAITING_RULE) or ":trigger#" in rule):
                found.append(Difference(row, "rule", rule, "a trigger or a waiting queue"))
            continue
        ex = implied.executions.get(ex_id)
        if ex is None:
            found.append(Difference(row, "execution", ex_id, None))
            continue
        if rule.startswith(RESTART_RULE) and state.get("pending"):
            te_id = implied.latest.get((ex_id, rule[len(RESTART_RULE) :]))
            run = implied.runs.get(te_id) if te_id is not None else None
            status = run.status.value if run is not None else None
            if ex.status is not WorkflowStatus.RUNNING or status != TaskStatus.STOPPING.value:
                found.append(Difference(row, "pending restart of a run", status, "STOPPING"))
    return found
