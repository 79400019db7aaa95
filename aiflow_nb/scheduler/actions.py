"""The state machine of the running executions, decided on a draft: runs made, stopped, ended; executions ended.

Every change goes to the draft's ``changes`` and its status event to its
``events``; launches to ``changes.launches``, stops to its ``outbox``: all
of it becomes the input's :class:`~.decisions.Decisions`.  What each action
does is looked up in :data:`.transitions.ACTIONS`.  No clock: every time
comes from ``now``, the time of the input being applied.
"""

import json
import logging
from datetime import datetime
from typing import Any

from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import rules
from aiflow_nb.scheduler.decisions import Orders
from aiflow_nb.scheduler.emitted import Emitted
from aiflow_nb.scheduler.memory import Reads
from aiflow_nb.scheduler.overlay import Overlay, VersionIndex
from aiflow_nb.scheduler.state import (
    ExecutionState,
    cause,
    event_dict,
    execution_status_fields,
    failure_event,
    rule_cause,
    task_status_event_of,
    task_status_fields,
)
from aiflow_nb.scheduler.transitions import ACTIONS, Effect, execution_verdict, stop_status
from aiflow_nb.scheduler.writes import Changes
from aiflow_nb.workflow import TaskAction, TaskStatus, WorkflowStatus
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution
from aiflow_nb.workflow.status import (
    TASK_TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    check_task_transition,
    check_workflow_transition,
)

log = logging.getLogger("aiflow_nb.scheduler")

#: The unscoped event a run's end also makes, if it ended so.
_ENDED = {TaskStatus.FAILED: event_keys.TASK_FAILED, TaskStatus.STOPPED: event_keys.TASK_STOPPED}


class Actions(Reads):
    """Changes to the running executions and their runs, made on the draft (the base of :class:`.core.Draft`).

    The draft reads the state through copy-on-write views (:mod:`.overlay`):
    a record is copied before it is changed (:meth:`_te`, :meth:`_ex`,
    :meth:`_own_record`) and the copy is what the decisions carry.
    """

    #: The time of the input being applied (an event's create_time, a command's or a tick's ``now``).
    now: datetime
    #: How far the log has been read (the offset of the last event applied, or passed over).
    checkpoint: int
    #: Why what the current input makes is made: the fields of :func:`.state.cause`, encoded when first used.
    _why: dict[str, Any] | None
    _why_rule: tuple[int | None, str]
    _why_text: str | None
    outbox: Orders
    changes: Changes
    events: Emitted
    running: Overlay[int, ExecutionState]
    by_version: VersionIndex
    alive: Overlay[int, TaskExecution]
    timed: Overlay[int, TaskExecution]
    states: Overlay[rules.StateKey, dict[str, Any]]
    last_execution_id: int
    last_task_id: int
    next_due: Overlay[tuple[str, str, str], datetime]
    #: The draft's own copies of the running executions' states it changed (by id; also once ended).
    _owned: dict[int, ExecutionState]

    def because(self, **fields: Any) -> None:
        """Why what the current input makes is made (see :func:`.state.cause`); a ``now`` is a datetime."""
        self._why = fields
        self._why_text = None

    def because_rule(self, offset: int | None, rule: str) -> None:
        """Why, for a rule (or a schedule) on an event of the log: ``because(event=offset, rule=rule)``."""
        self._why = None
        self._why_rule = (offset, rule)
        self._why_text = None

    @property
    def cause(self) -> str:
        """The current cause as stored in a ``cause`` column, encoded once, only if something is made."""
        text = self._why_text
        if text is None:
            fields = self._why
            if fields is None:
                text = self._why_text = rule_cause(*self._why_rule)
                return text
            now = fields.get("now")
            if isinstance(now, datetime):
                fields = {**fields, "now": now.isoformat()}
            text = self._why_text = cause(**fields)
        return text

    def _record(self, execution_id: int) -> WorkflowExecution:
        mine = self.changes.executions.get(execution_id)
        return mine if mine is not None else super()._record(execution_id)

    # -- copies on write --------------------------------------------------------------

    def _ex(self, ex: ExecutionState) -> ExecutionState:
        """The draft's own copy of a running execution's state (its latest runs copied, not the runs)."""
        rid = ex.record.id
        mine = self._owned.get(rid)
        if mine is None:
            mine = ExecutionState(ex.record, dict(ex.latest), ex.unseen)
            self._owned[rid] = mine
            if rid in self.running:
                self.running[rid] = mine
        return mine

    def _fresh(self, ex: ExecutionState) -> ExecutionState:
        """The latest view of ``ex``: the draft's copy if it has one."""
        return self._owned.get(ex.record.id, ex)

    def _te(self, te: TaskExecution) -> TaskExecution:
        """The draft's own copy of a run, to change (made once per input; the views then show it)."""
        mine = self.changes.tasks.get(te.id)
        if mine is not None:
            return mine
        mine = te.copy()
        self.changes.tasks[te.id] = mine
        if te.id in self.alive:
            self.alive[te.id] = mine
        if te.id in self.timed:
            self.timed[te.id] = mine
        ex = self.running.get(te.execution_id)
        if ex is not None:
            latest = ex.latest.get(te.task)
            if latest is not None and latest.id == te.id:
                self._ex(ex).latest[te.task] = mine
        return mine

    def _own_record(self, record: WorkflowExecution) -> WorkflowExecution:
        mine = self.changes.executions.get(record.id)
        if mine is not None:
            return mine
        mine = self.changes.executions[record.id] = record.copy()
        ex = self.running.get(record.id)
        if ex is not None:
            self._ex(ex).record = mine
        return mine

    def _track(self, state: ExecutionState) -> None:
        r = state.record
        self._owned[r.id] = state
        self.running[r.id] = state
        self.by_version.add((r.namespace, r.workflow, r.version), r.id)

    def _untrack(self, state: ExecutionState) -> None:
        r = state.record
        self.running.pop(r.id, None)
        self.by_version.discard((r.namespace, r.workflow, r.version), r.id)

    def emit(self, event: Event, idempotency_key: str | None = None) -> None:
        self.events.append((event, idempotency_key))

    # -- actions -----------------------------------------------------------------

    def apply(
        self,
        ex: ExecutionState,
        task: str,
        action: TaskAction,
        event: Event | None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """START, STOP or RESTART ``task`` in a running execution (see ``transitions.ACTIONS``).

        ``parameters``: overrides for the run a START makes (a user's command).
        """
        ex = self._fresh(ex)
        latest = ex.latest.get(task)
        effect = ACTIONS[(latest.status if latest is not None else None, action)]
        if effect is Effect.NEW_RUN:
            self._new_task_execution(ex, task, event, parameters=parameters)
        elif effect is Effect.STOP:
            assert latest is not None
            # A STOP after a RESTART whose stop is still under way cancels the restart.
            self._take_restart(ex.record.id, task)
            self._stop(latest)
        elif effect is Effect.RESTART:
            assert latest is not None
            restart = {"pending": True, "event": event_dict(event), "cause": self.cause}
            self._set_state(rules.restart_key(ex.record.id, task), restart)
            self._stop(latest)

    def _set_state(self, key: rules.StateKey, state: dict[str, Any]) -> None:
        self.states[key] = state
        self.changes.states[key] = state

    def _take_restart(self, ex_id: int, task: str) -> dict[str, Any] | None:
        key = rules.restart_key(ex_id, task)
        state = self.states.get(key)
        if not state or not state.get("pending"):
            return None
        self._set_state(key, {"pending": False})
        return state

    def _new_task_execution(
        self,
        ex: ExecutionState,
        task: str,
        event: Event | dict[str, Any] | None,
        why: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        ex = self._ex(ex)
        latest = ex.latest.get(task)
        self.last_task_id += 1
        # Positional (id, execution_id, task, seq, status, attempt, create_time, start_time, end_time,
        # error, event): the record is made for every run.
        te = TaskExecution(
            self.last_task_id,
            ex.record.id,
            task,
            (latest.seq + 1) if latest else 1,
            TaskStatus.QUEUED,
            1,
            self.now,
            None,
            None,
            None,
            event_dict(event) if isinstance(event, Event) else event,
            parameters=parameters or None,
        )
        ex.latest[task] = te
        changes = self.changes
        changes.causes[("task", te.id)] = why or self.cause
        self.alive[te.id] = te
        changes.tasks[te.id] = te
        self._queue_launch(te)
        self._emit_status(ex, te)

    def _queue_launch(self, te: TaskExecution) -> None:
        self.changes.launches.append((te.id, te.attempt))

    def _stop(self, te: TaskExecution, reason: str = "stop") -> None:
        te = self.changes.tasks.get(te.id, te)
        after = stop_status(te.status)
        if after is None:
            return
        te = self._te(te)
        self._set_status(te, after)
        if after is TaskStatus.STOPPING:
            te.stop_reason = reason
            self.outbox.queue_stop(te.id, reason)

    def _set_status(self, te: TaskExecution, status: TaskStatus, error: str | None = None) -> None:
        te = self._te(te)
        if status not in TASK_TRANSITIONS[te.status]:
            check_task_transition(te.status, status, f"task {te.task!r} (task execution {te.id})")
        now = self.now
        te.status = status
        if status is TaskStatus.RUNNING:
            te.start_time = now
            te.end_time = None
        if status.finished:
            te.end_time = now
        if error is not None:
            te.error = error
        self.changes.tasks[te.id] = te
        self._watch_time(te)
        ex = self.running.get(te.execution_id)
        if status.finished:
            self.alive.pop(te.id, None)
            if ex is not None:
                restart = self._take_restart(ex.record.id, te.task)
                if restart is not None:
                    self._emit_status(ex, te)
                    before = restart.get("cause")
                    why = cause(restart_of=te.id, cause=json.loads(before) if before else None)
                    # Started again: the values a user started the stopped run with go on to the next one.
                    self._new_task_execution(ex, te.task, restart.get("event"), why, parameters=te.parameters)
                    return
        self._emit_status(ex, te)

    def _emit_status(self, ex: ExecutionState | None, te: TaskExecution) -> None:
        if ex is None:
            record = self._record(te.execution_id)
        else:
            ex = self._ex(ex)
            record = ex.record
            ex.unseen += 1
        fields = task_status_fields(record, te)
        self.events.task_status(fields)
        ended = _ENDED.get(te.status)
        if ended is not None:
            self.emit(failure_event(ended, record, task_status_event_of(*fields).value))

    def _set_execution_status(self, ex: WorkflowExecution, status: WorkflowStatus) -> None:
        if status not in WORKFLOW_TRANSITIONS[ex.status]:
            check_workflow_transition(ex.status, status, f"execution {ex.id}")
        ex = self._own_record(ex)
        ex.status = status
        if status.finished:
            ex.end_time = self.now
        self.events.execution_status(execution_status_fields(ex))

    def _check_done(self, ex: ExecutionState) -> None:
        """End the execution once nothing can run in it any more."""
        ex = self._fresh(ex)
        if ex.unseen > 0 or any(te.status.alive for te in ex.latest.values()):
            return
        r = ex.record
        compiled = self.compiled((r.namespace, r.workflow, r.version))
        tasks = compiled.workflow.tasks
        latest = {name: (te.status if (te := ex.latest.get(name)) is not None else None) for name in tasks}
        # A streaming task never "completes" its execution, nor does one on a schedule: it will run again.
        ongoing = {n for n, t in tasks.items() if t.streaming or t.schedule_ is not None}
        verdict = execution_verdict(latest, ongoing, compiled.failure_handled, compiled.waits_on_events)
        if verdict is not None:
            self._finish(ex, verdict)

    def _finish(self, ex: ExecutionState, status: WorkflowStatus) -> None:
        ex = self._ex(ex)
        self._set_execution_status(ex.record, status)
        self._untrack(ex)
        self._start_waiting(ex.record.namespace, ex.record.workflow)

    def _start_waiting(self, namespace: str, name: str) -> None:
        """Implemented with the executions started (:class:`.starts.Starts`)."""
        raise NotImplementedError
