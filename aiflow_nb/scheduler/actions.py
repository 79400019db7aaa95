"""The state machine of the running executions, in memory: runs made, stopped, ended; executions ended.

Every change goes to ``changes`` (written with the batch) and its status
event to ``events`` (appended with it); launches and stops to the outbox.
What each action does is looked up in :data:`.transitions.ACTIONS`.  No
clock: every time comes from ``now``, the time of the input being applied.
"""

import json
import logging
from datetime import datetime
from typing import Any, Protocol

from aiflow_nb.errors import LimitReachedError, NotFoundError, SpecError
from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import rules
from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.emitted import Emitted
from aiflow_nb.scheduler.outbox import Outbox
from aiflow_nb.scheduler.registry import Registry, VersionKey
from aiflow_nb.scheduler.state import (
    ExecutionState,
    cause,
    event_dict,
    execution_status_fields,
    failure_event,
    task_status_event_of,
    task_status_fields,
)
from aiflow_nb.scheduler.transitions import ACTIONS, Effect, execution_verdict, stop_status
from aiflow_nb.scheduler.writes import Changes
from aiflow_nb.workflow import TaskAction, TaskStatus, WorkflowStatus, overrides
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo
from aiflow_nb.workflow.status import (
    TASK_TRANSITIONS,
    WORKFLOW_TRANSITIONS,
    check_task_transition,
    check_workflow_transition,
)
from aiflow_nb.workflow.tasks import Task

log = logging.getLogger("aiflow_nb.scheduler")

#: The unscoped event a run's end also makes, if it ended so.
_ENDED = {TaskStatus.FAILED: event_keys.TASK_FAILED, TaskStatus.STOPPED: event_keys.TASK_STOPPED}


class Rows(Protocol):
    """What the core reads and writes beyond its memory: the DuckDB store in the engine, memory in ``verify``."""

    def execution(self, execution_id: int) -> WorkflowExecution | None: ...
    def spec(self, namespace: str, name: str, version: int) -> tuple[str, str] | None: ...
    def latest_version(self, namespace: str, name: str) -> int: ...
    def add_version(self, namespace: str, name: str, version: int, spec: str, digest: str, now: datetime) -> None: ...
    def put_workflow(self, info: WorkflowInfo) -> None: ...
    def delete_workflow(self, namespace: str, name: str) -> None: ...


class Actions:
    """Changes to the running executions and their runs (the base of :class:`.core.Core`)."""

    store: Rows
    #: The time of the input being applied (an event's create_time, a command's or a tick's ``now``).
    now: datetime
    #: How far the log has been read (the offset of the last event applied, or passed over).
    checkpoint: int
    #: Why what the current input makes is made: the fields of :func:`.state.cause`, encoded when first used.
    _why: dict[str, Any]
    _why_text: str | None
    outbox: Outbox
    registry: Registry
    changes: Changes
    events: Emitted
    running: dict[int, ExecutionState]
    by_version: dict[VersionKey, set[int]]
    alive: dict[int, TaskExecution]
    timed: dict[int, TaskExecution]
    states: rules.States
    last_execution_id: int
    last_task_id: int
    next_due: dict[tuple[str, str, str], datetime]

    def because(self, **fields: Any) -> None:
        """Why what the current input makes is made (see :func:`.state.cause`); a ``now`` is a datetime."""
        self._why = fields
        self._why_text = None

    @property
    def cause(self) -> str:
        """The current cause as stored in a ``cause`` column, encoded once, only if something is made."""
        text = self._why_text
        if text is None:
            fields = self._why
            now = fields.get("now")
            if isinstance(now, datetime):
                fields = {**fields, "now": now.isoformat()}
            text = self._why_text = cause(**fields)
        return text

    @property
    def workflows(self) -> dict[tuple[str, str], WorkflowInfo]:
        return self.registry.workflows

    def compiled(self, key: VersionKey) -> CompiledWorkflow:
        return self.registry.compiled(key)

    def _record(self, execution_id: int) -> WorkflowExecution:
        ex = self.running.get(execution_id)
        if ex is not None:
            return ex.record
        found = self.store.execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        return found

    def _task_of(self, te: TaskExecution) -> Task | None:
        r = self._record(te.execution_id)
        return self.registry.task(r.namespace, r.workflow, r.version, te.task)

    def _watch_time(self, te: TaskExecution) -> None:
        if te.status is TaskStatus.RETRYING:
            self.timed[te.id] = te
            return
        if te.status is TaskStatus.RUNNING:
            task = self._task_of(te)
            if task is not None and task.timeout is not None:
                self.timed[te.id] = te
                return
        self.timed.pop(te.id, None)

    def _track(self, state: ExecutionState) -> None:
        r = state.record
        self.running[r.id] = state
        self.by_version[(r.namespace, r.workflow, r.version)].add(r.id)
        self.compiled((r.namespace, r.workflow, r.version))

    def _untrack(self, state: ExecutionState) -> None:
        r = state.record
        self.running.pop(r.id, None)
        self.by_version[(r.namespace, r.workflow, r.version)].discard(r.id)

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
        latest = ex.latest.get(task)
        self.last_task_id += 1
        te = TaskExecution(
            id=self.last_task_id,
            execution_id=ex.record.id,
            task=task,
            seq=(latest.seq + 1) if latest else 1,
            status=TaskStatus.QUEUED,
            create_time=self.now,
            event=event_dict(event) if isinstance(event, Event) else event,
            parameters=parameters or None,
        )
        ex.latest[task] = te
        changes = self.changes
        changes.causes[("task", te.id)] = why or self.cause
        self.alive[te.id] = te
        changes.tasks[te.id] = te
        changes.new_tasks.add(te.id)
        self._queue_launch(te)
        self._emit_status(ex, te)

    def _queue_launch(self, te: TaskExecution) -> None:
        self.changes.launches.append((te.id, te.attempt))
        self.outbox.queue_launch(te.id, te.attempt)

    def _stop(self, te: TaskExecution, reason: str = "stop") -> None:
        after = stop_status(te.status)
        if after is None:
            return
        self._set_status(te, after)
        if after is TaskStatus.STOPPING:
            te.stop_reason = reason
            self.outbox.queue_stop(te.id, reason)

    def _set_status(self, te: TaskExecution, status: TaskStatus, error: str | None = None) -> None:
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
                    self._new_task_execution(ex, te.task, restart.get("event"), why)
                    return
        self._emit_status(ex, te)

    def _emit_status(self, ex: ExecutionState | None, te: TaskExecution) -> None:
        if ex is None:
            record = self._record(te.execution_id)
        else:
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
        ex.status = status
        if status.finished:
            ex.end_time = self.now
        self.changes.executions[ex.id] = ex
        self.events.execution_status(execution_status_fields(ex))

    def _check_done(self, ex: ExecutionState) -> None:
        """End the execution once nothing can run in it any more."""
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
        self._set_execution_status(ex.record, status)
        self._untrack(ex)
        self._start_waiting(ex.record.namespace, ex.record.workflow)

    # -- max_active_executions -------------------------------------------------------

    def active_executions(self, namespace: str, name: str) -> int:
        return sum(len(ids) for (ns, wf, _), ids in self.by_version.items() if (ns, wf) == (namespace, name))

    def _waiting(self, namespace: str, name: str) -> dict[str, Any]:
        key = rules.waiting_key(namespace, name)
        state = self.states.setdefault(key, {"events": []})
        self.changes.states[key] = state
        return state

    def trigger_execution(self, namespace: str, name: str, event: Event) -> None:
        """Start an execution for a trigger or tick, unless the workflow is at its limit."""
        limit = self.registry.limit(namespace, name)
        if limit is None or self.active_executions(namespace, name) < limit:
            self.new_execution(namespace, name, event)
            return
        if self.registry.latest((namespace, name)).workflow.on_max_active == "skip":
            log.info("%s/%s runs %s executions (the limit): event %s skipped", namespace, name, limit, event.offset)
            return
        self._waiting(namespace, name)["events"].append(event_dict(event))

    def _start_waiting(self, namespace: str, name: str) -> None:
        state = self.states.get(rules.waiting_key(namespace, name))
        if not state or not state["events"]:
            return
        limit = self.registry.limit(namespace, name)
        waiting = self._waiting(namespace, name)["events"]
        while waiting and (limit is None or self.active_executions(namespace, name) < limit):
            event = Event.from_dict(waiting.pop(0))
            self.because(event=event.offset, queued=True)
            self.new_execution(namespace, name, event)

    def new_execution(
        self, namespace: str, name: str, event: Event | None = None, parameters: dict[str, Any] | None = None
    ) -> int:
        """Start an execution of the latest version; ``parameters`` override its tasks' (a user's command)."""
        info = self.registry.info(namespace, name)
        key = (namespace, name, info.version)
        compiled = self.compiled(key)
        if parameters:
            specs = [t.to_spec() for t in compiled.workflow.tasks.values()]
            overrides.check_declared(parameters, specs, f"workflow {namespace}/{name}")
        if not compiled.initial and not compiled.waits_on_events:
            raise SpecError(f"workflow {namespace}/{name}: no task can ever start")
        limit = compiled.workflow.max_active_executions
        if limit is not None and self.active_executions(namespace, name) >= limit:
            raise LimitReachedError(
                f"workflow {namespace}/{name} already runs {limit} execution(s), its max_active_executions"
            )
        self.last_execution_id += 1
        data = event_dict(event)
        record = WorkflowExecution(
            id=self.last_execution_id,
            namespace=namespace,
            workflow=name,
            version=info.version,
            status=WorkflowStatus.INIT,
            start_time=self.now,
            event=data,
            parameters=parameters or None,
        )
        changes = self.changes
        changes.executions[record.id] = record
        changes.new_executions.add(record.id)
        changes.causes[("execution", record.id)] = self.cause
        state = ExecutionState(record)
        self._set_execution_status(record, WorkflowStatus.RUNNING)
        self.running[record.id] = state  # tracked (its version is compiled already)
        self.by_version[key].add(record.id)
        for task in compiled.initial:
            self._new_task_execution(state, task, data)
        return record.id
