"""The scheduler: consume the log, apply rules, change state, queue launches.

It keeps the running executions in memory and writes every change of one
batch (state, condition state, status events, launches and the consumed
offset) through :meth:`Scheduler.commit` inside the caller's transaction.
After a crash, :meth:`Scheduler.load` rebuilds the memory from what was
committed, so no event is skipped and none is applied twice.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from aiflow_nb import faults
from aiflow_nb.errors import (
    IllegalTransitionError,
    InvalidScheduleError,
    LimitReachedError,
    NotFoundError,
    SpecError,
)
from aiflow_nb.events import Event, EventLog
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.store import Changes, Store
from aiflow_nb.storage import Database
from aiflow_nb.workflow import TaskAction, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.workflow.conditions import ConditionContext
from aiflow_nb.workflow.records import Outcome, TaskExecution, WorkflowExecution, WorkflowInfo
from aiflow_nb.workflow.schedule import Schedule
from aiflow_nb.workflow.status import check_task_transition, check_workflow_transition

log = logging.getLogger("aiflow_nb.scheduler")

VersionKey = tuple[str, str, int]
ALIVE_SQL = "('QUEUED', 'RUNNING', 'STOPPING', 'RETRYING')"
RESTART_RULE = "restart:"
WAITING_RULE = "waiting:"
MAX_TICKS_PER_STEP = 1000
CHECKPOINT_EVERY = 1.0
#: A batch reads at most ``limit`` events from at most this many times ``limit`` offsets.
SKIP_WINDOW = 8
MAX_BACKFILL = 100_000


def event_dict(event: Event | None) -> dict[str, Any] | None:
    return event.to_dict() if event is not None else None


def _status_value(record: WorkflowExecution, te: TaskExecution, status: str, error: str | None) -> dict[str, Any]:
    """The value of a task status (or failure) event."""
    return {
        "workflow": record.workflow,
        "execution_id": record.id,
        "task": te.task,
        "seq": te.seq,
        "attempt": te.attempt,
        "task_execution_id": te.id,
        "status": status,
        "error": error,
    }


@dataclass
class ExecutionState:
    record: WorkflowExecution
    latest: dict[str, TaskExecution] = field(default_factory=dict)
    #: Status events emitted for it and not yet consumed: it may only end
    #: once its rules have seen every one of them.
    unseen: int = 0


class Scheduler:
    """Rules and state of every workflow in one database."""

    def __init__(self, db: Database, log_: EventLog, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.log = log_
        self.store = Store(db)
        self.clock = clock
        self.load()
        db.on_rollback(self.load)

    # -- memory --------------------------------------------------------------

    def load(self) -> None:
        """(Re)build the in-memory state from what is committed."""
        store = self.store
        self.changes = Changes()
        self._checkpoint_written = time.monotonic()
        self.events: list[tuple[Event, str | None]] = []
        self.launch_queue: list[tuple[int, int]] = store.pending_launches()
        self.stop_queue: list[tuple[int, str]] = []
        self.last_execution_id, self.last_task_id = store.max_ids()
        self.checkpoint = store.checkpoint()
        self.workflows: dict[tuple[str, str], WorkflowInfo] = {(w.namespace, w.name): w for w in store.workflows()}
        self.versions: dict[VersionKey, CompiledWorkflow] = {}
        self.index: dict[tuple[str, str], set[VersionKey]] = defaultdict(set)
        self.trigger_index: dict[tuple[str, str], set[VersionKey]] = defaultdict(set)
        self.running: dict[int, ExecutionState] = {}
        self.by_version: dict[VersionKey, set[int]] = defaultdict(set)
        self.alive: dict[int, TaskExecution] = {}
        for info in self.workflows.values():
            self._activate(self.compiled((info.namespace, info.name, info.version)), latest=True)
        for record in store.executions("status = 'RUNNING'"):
            self._track(ExecutionState(record))
        if self.running:
            ids = list(self.running)
            for te in store.task_executions("execution_id IN (SELECT unnest(?))", [ids]):
                self.running[te.execution_id].latest[te.task] = te
            self.states = store.condition_states([0, *ids])
            for ex_id, count in self._unseen_status_events(ids).items():
                self.running[ex_id].unseen = count
        else:
            self.states = store.condition_states([0])
        #: Alive runs a timer may change: RETRYING ones, RUNNING ones with a timeout.
        self.timed: dict[int, TaskExecution] = {}
        for te in store.task_executions(f"status IN {ALIVE_SQL}"):
            ex = self.running.get(te.execution_id)
            self.alive[te.id] = ex.latest[te.task] if ex and te.task in ex.latest else te
            self._watch_time(self.alive[te.id])
        #: Workflows whose latest version has a schedule (on itself or a task).
        self.scheduled = {key for key in self.workflows if self._has_schedule(key)}
        self.last_ticks = store.last_ticks()
        self.next_due: dict[tuple[str, str, str], datetime] = {}

    def _has_schedule(self, key: tuple[str, str]) -> bool:
        workflow = self.compiled((*key, self.workflows[key].version)).workflow
        return workflow.schedule_ is not None or any(t.schedule_ is not None for t in workflow.tasks.values())

    def _update_scheduled(self, key: tuple[str, str]) -> None:
        if self._has_schedule(key):
            self.scheduled.add(key)
        else:
            self.scheduled.discard(key)

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

    def _unseen_status_events(self, ids: list[int]) -> dict[int, int]:
        rows = self.db.conn.execute(
            "SELECT CAST(json_extract_string(context, '$.execution_id') AS BIGINT) AS ex, count(*) "
            'FROM events WHERE "offset" > ? AND key = ? GROUP BY ex',
            [self.checkpoint, event_keys.TASK_STATUS],
        ).fetchall()
        wanted = set(ids)
        return {int(ex): int(n) for ex, n in rows if ex is not None and int(ex) in wanted}

    def compiled(self, key: VersionKey) -> CompiledWorkflow:
        found = self.versions.get(key)
        if found is None:
            stored = self.store.spec(*key)
            if stored is None:
                raise NotFoundError(f"workflow {key[0]}/{key[1]} has no version {key[2]}")
            found = CompiledWorkflow.build(Workflow.from_spec(stored[0]), key[2], stored[1])
            self.versions[key] = found
            self._activate(found, latest=False)
        return found

    def _activate(self, compiled: CompiledWorkflow, latest: bool) -> None:
        for ref in compiled.rules:
            self.index[ref].add(compiled.key)
        if latest:
            for ref in compiled.triggers:
                self.trigger_index[ref].add(compiled.key)

    def _deactivate_triggers(self, compiled: CompiledWorkflow) -> None:
        for ref in compiled.triggers:
            self.trigger_index[ref].discard(compiled.key)

    def _track(self, state: ExecutionState) -> None:
        r = state.record
        self.running[r.id] = state
        self.by_version[(r.namespace, r.workflow, r.version)].add(r.id)
        self.compiled((r.namespace, r.workflow, r.version))

    def _untrack(self, state: ExecutionState) -> None:
        r = state.record
        self.running.pop(r.id, None)
        self.by_version[(r.namespace, r.workflow, r.version)].discard(r.id)

    # -- the batch ---------------------------------------------------------------

    def commit(self, force: bool = False, checkpoint: bool = True) -> bool:
        """Write this batch; call inside the caller's open transaction.  True if it wrote.

        A batch that only moved the checkpoint (its events matched nothing,
        or changed nothing) or marked launches done is not written at once:
        the next write carries it, and at most ``CHECKPOINT_EVERY`` seconds
        pass.  After a crash those events are read again against the very
        state they saw, so they change nothing again, and those launches are
        sent again, which their run folder's claim makes harmless: still
        exactly once, at a fraction of the commits.

        ``checkpoint=False`` leaves the checkpoint for a later call in the same
        transaction (one write of it however many rounds the transaction has).
        """
        now = time.monotonic()
        if (
            not force
            and not self.events
            and self.changes.only_checkpoint()
            and (not checkpoint or now - self._checkpoint_written < CHECKPOINT_EVERY)
        ):
            return False
        carried = None
        if not checkpoint:
            carried, self.changes.checkpoint = self.changes.checkpoint, None
        if self.changes.checkpoint is not None:
            self._checkpoint_written = now
        if self.events:
            # A tick's key stands for its due time, live or backfilled: the first one stays, unchecked.
            self.log.stage([e for e, _ in self.events], [k for _, k in self.events], compare=False)
        self.store.flush(self.changes)
        self.changes = Changes(checkpoint=carried)
        self.events = []
        return True

    def emit(self, event: Event, idempotency_key: str | None = None) -> None:
        self.events.append((event, idempotency_key))

    def consume(self, limit: int, just_appended: bool = False) -> int:
        """Apply the rules to the events after the checkpoint; return how far it moved.

        Only events some rule or trigger names, schedule ticks and scoped
        events are read (at most ``limit``); the others change nothing, so
        the checkpoint passes over them unread.  ``just_appended``: this
        transaction has just appended; if that is all that is new, take the
        events from the log's memory instead of reading them back.
        """
        latest = self.log.latest_offset()
        if latest <= self.checkpoint:
            return 0
        wanted = self._wanted_keys()
        fresh, offsets = self.log.fresh(wanted) if just_appended else ([], range(0))
        if offsets and offsets.start == self.checkpoint + 1 and offsets[-1] == latest:
            events, end = fresh, latest
        else:
            # A bounded window: DuckDB scans all of it, and a long backlog of
            # wanted events would otherwise be scanned again at every batch.
            until = min(latest, self.checkpoint + SKIP_WINDOW * limit)
            events, end = self.log.read_wanted(self.checkpoint, until, wanted, limit)
        for event in events:
            self.process(event)
        moved, self.checkpoint = end - self.checkpoint, end
        self.changes.checkpoint = end
        return moved

    def _wanted_keys(self) -> set[str]:
        """Every key an unscoped event may have to matter (scoped events are read anyway)."""
        wanted = {key for (_, key), versions in self.index.items() if versions}
        wanted.update(key for (_, key), versions in self.trigger_index.items() if versions)
        wanted.add(event_keys.SCHEDULE_TICK)
        return wanted

    def process(self, event: Event) -> None:
        if event.key == event_keys.SCHEDULE_TICK and event.sender == "aiflow.schedule":
            self._tick(event)
        scoped = event.execution_id
        if scoped is not None:
            ex = self.running.get(scoped)
            if ex is None:
                return
            self._evaluate(ex, event)
            if event.key == event_keys.TASK_STATUS:
                ex.unseen -= 1
                if ex.record.id in self.running:
                    self._check_done(ex)
            return
        for key in sorted(self.index.get((event.namespace, event.key), ())):
            for ex_id in sorted(self.by_version.get(key, ())):
                ex = self.running.get(ex_id)
                if ex is not None:
                    self._evaluate(ex, event)
        for key in sorted(self.trigger_index.get((event.namespace, event.key), ())):
            info = self.workflows.get(key[:2])  # type: ignore[arg-type]
            if info is None or info.paused:
                continue
            compiled = self.compiled(key)
            for trigger_id, condition in compiled.triggers_for(event):
                rule = f"{key[0]}/{key[1]}:{trigger_id}"
                if self._met(condition, event, key[0], 0, rule):
                    self.trigger_execution(key[0], key[1], event)

    def _met(self, condition: Any, event: Event, namespace: str, execution_id: int, rule: str) -> bool:
        state = self.states.get((execution_id, rule))
        before = None if state is None else copy.deepcopy(state)
        work = {} if state is None else state
        try:
            met = bool(condition.is_met(event, ConditionContext(namespace, execution_id or None, work)))
        except Exception:
            # A broken (custom) condition must not stall the scheduler on this event for ever.
            log.exception(
                "rule %s: %s raised on event %s; taken as not met", rule, type(condition).__name__, event.offset
            )
            if state is not None:
                state.clear()
                state.update(before or {})
            return False
        if work != (before or {}):
            self.states[(execution_id, rule)] = work
            self.changes.states[(execution_id, rule)] = work
        return met

    def _evaluate(self, ex: ExecutionState, event: Event) -> None:
        r = ex.record
        compiled = self.compiled((r.namespace, r.workflow, r.version))
        for task, rule_id, rule in compiled.rules_for(event):
            if self._met(rule.condition, event, r.namespace, r.id, rule_id):
                log.debug("execution %s: %s %s on event %s", r.id, rule.action.value, task, event.offset)
                self.apply(ex, task, rule.action, event)
                if r.id not in self.running:
                    return

    # -- actions -----------------------------------------------------------------

    def apply(self, ex: ExecutionState, task: str, action: TaskAction, event: Event | None) -> None:
        """START, STOP or RESTART ``task`` in a running execution."""
        latest = ex.latest.get(task)
        alive = latest is not None and latest.status.alive
        if action is TaskAction.START:
            if not alive:
                self._new_task_execution(ex, task, event)
        elif action is TaskAction.STOP:
            if alive:
                assert latest is not None
                # A STOP after a RESTART whose stop is still under way cancels the restart.
                self._take_restart(ex.record.id, task)
                self._stop(latest)
        elif action is TaskAction.RESTART:
            if not alive:
                self._new_task_execution(ex, task, event)
            else:
                assert latest is not None
                self._set_restart(ex.record.id, task, event)
                self._stop(latest)

    def _set_restart(self, ex_id: int, task: str, event: Event | None) -> None:
        state = {"pending": True, "event": event_dict(event)}
        self.states[(ex_id, RESTART_RULE + task)] = state
        self.changes.states[(ex_id, RESTART_RULE + task)] = state

    def _take_restart(self, ex_id: int, task: str) -> dict[str, Any] | None:
        state = self.states.get((ex_id, RESTART_RULE + task))
        if not state or not state.get("pending"):
            return None
        cleared = {"pending": False}
        self.states[(ex_id, RESTART_RULE + task)] = cleared
        self.changes.states[(ex_id, RESTART_RULE + task)] = cleared
        return state

    def _new_task_execution(self, ex: ExecutionState, task: str, event: Event | dict[str, Any] | None) -> TaskExecution:
        latest = ex.latest.get(task)
        self.last_task_id += 1
        te = TaskExecution(
            id=self.last_task_id,
            execution_id=ex.record.id,
            task=task,
            seq=(latest.seq + 1) if latest else 1,
            status=TaskStatus.QUEUED,
            create_time=self.clock(),
            event=event_dict(event) if isinstance(event, Event) else event,
        )
        ex.latest[task] = te
        self.alive[te.id] = te
        self.changes.tasks[te.id] = te
        self.changes.new_tasks.add(te.id)
        self._queue_launch(te)
        self._emit_status(ex, te)
        return te

    def _queue_launch(self, te: TaskExecution) -> None:
        self.changes.launches.append((te.id, te.attempt))
        self.launch_queue.append((te.id, te.attempt))

    def _stop(self, te: TaskExecution, reason: str = "stop") -> None:
        if te.status in (TaskStatus.QUEUED, TaskStatus.RETRYING):
            self._set_status(te, TaskStatus.STOPPED)
        elif te.status is TaskStatus.RUNNING:
            self._set_status(te, TaskStatus.STOPPING)
            te.stop_reason = reason
            self.stop_queue.append((te.id, reason))

    def _set_status(self, te: TaskExecution, status: TaskStatus, error: str | None = None) -> None:
        check_task_transition(te.status, status, f"task {te.task!r} (task execution {te.id})")
        now = self.clock()
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
                    self._new_task_execution(ex, te.task, restart.get("event"))
                    return
        self._emit_status(ex, te)

    def _emit_status(self, ex: ExecutionState | None, te: TaskExecution) -> None:
        if ex is None:
            record = self.store.executions("id = ?", [te.execution_id])[0]
        else:
            record = ex.record
            ex.unseen += 1
        # RETRYING carries why the attempt failed, as FAILED does.
        failed = te.status in (TaskStatus.FAILED, TaskStatus.RETRYING)
        value = _status_value(record, te, te.status.value, te.error if failed else None)
        self.emit(
            Event(
                key=event_keys.TASK_STATUS,
                value=value,
                namespace=record.namespace,
                sender=f"{record.id}/{te.task}/{te.seq}",
                context={"execution_id": record.id},
            )
        )
        ended = {TaskStatus.FAILED: event_keys.TASK_FAILED, TaskStatus.STOPPED: event_keys.TASK_STOPPED}
        if te.status in ended:
            self._emit_failure(ended[te.status], record, value)

    def _emit_failure(self, key: str, record: WorkflowExecution, value: dict[str, Any]) -> None:
        # Not scoped to the execution: rules and triggers of any workflow may react.
        self.emit(Event(key=key, value=value, namespace=record.namespace, sender=f"{record.workflow}/{value['task']}"))

    def _set_execution_status(self, ex: WorkflowExecution, status: WorkflowStatus) -> None:
        check_workflow_transition(ex.status, status, f"execution {ex.id}")
        ex.status = status
        if status.finished:
            ex.end_time = self.clock()
        self.changes.executions[ex.id] = ex
        self.emit(
            Event(
                key=event_keys.EXECUTION_STATUS,
                value={
                    "workflow": ex.workflow,
                    "execution_id": ex.id,
                    "version": ex.version,
                    "status": status.value,
                },
                namespace=ex.namespace,
                sender=str(ex.id),
                context={"execution_id": ex.id},
            )
        )

    def _check_done(self, ex: ExecutionState) -> None:
        """End the execution once nothing can run in it any more."""
        if ex.unseen > 0 or any(te.status.alive for te in ex.latest.values()):
            return
        r = ex.record
        compiled = self.compiled((r.namespace, r.workflow, r.version))
        tasks = compiled.workflow.tasks
        latest = {name: ex.latest.get(name) for name in tasks}
        # A streaming task never "completes" its execution, nor does one on a schedule: it will run again.
        ongoing = {n for n, t in tasks.items() if t.streaming or t.schedule_ is not None}
        if all(te is not None and te.status is TaskStatus.SUCCESS and n not in ongoing for n, te in latest.items()):
            return self._finish(ex, WorkflowStatus.SUCCESS)
        if any(
            te is not None and te.status is TaskStatus.FAILED and n not in compiled.failure_handled
            for n, te in latest.items()
        ):
            return self._finish(ex, WorkflowStatus.FAILED)
        waiting = any(te is None and n in compiled.waits_on_events for n, te in latest.items())
        ended_otherwise = any(
            te is not None and (te.status is TaskStatus.STOPPED or n in ongoing) for n, te in latest.items()
        )
        if not waiting and not ended_otherwise:
            self._finish(ex, WorkflowStatus.SUCCESS)

    def _finish(self, ex: ExecutionState, status: WorkflowStatus) -> None:
        self._set_execution_status(ex.record, status)
        self._untrack(ex)
        self._start_waiting(ex.record.namespace, ex.record.workflow)

    # -- max_active_executions -------------------------------------------------------

    def active_executions(self, namespace: str, name: str) -> int:
        return sum(len(ids) for (ns, wf, _), ids in self.by_version.items() if (ns, wf) == (namespace, name))

    def _limit(self, namespace: str, name: str) -> int | None:
        info = self.workflows.get((namespace, name))
        if info is None:
            return None
        return self.compiled((namespace, name, info.version)).workflow.max_active_executions

    def _waiting(self, namespace: str, name: str) -> dict[str, Any]:
        key = (0, f"{WAITING_RULE}{namespace}/{name}")
        state = self.states.setdefault(key, {"events": []})
        self.changes.states[key] = state
        return state

    def trigger_execution(self, namespace: str, name: str, event: Event) -> None:
        """Start an execution for a trigger or tick, unless the workflow is at its limit."""
        limit = self._limit(namespace, name)
        if limit is None or self.active_executions(namespace, name) < limit:
            self.start_execution(namespace, name, event)
            return
        workflow = self.compiled((namespace, name, self.workflows[(namespace, name)].version)).workflow
        if workflow.on_max_active == "skip":
            log.info("%s/%s runs %s executions (the limit): event %s skipped", namespace, name, limit, event.offset)
            return
        self._waiting(namespace, name)["events"].append(event_dict(event))

    def _start_waiting(self, namespace: str, name: str) -> None:
        state = self.states.get((0, f"{WAITING_RULE}{namespace}/{name}"))
        if not state or not state["events"]:
            return
        limit = self._limit(namespace, name)
        waiting = self._waiting(namespace, name)["events"]
        while waiting and (limit is None or self.active_executions(namespace, name) < limit):
            self.start_execution(namespace, name, Event.from_dict(waiting.pop(0)))

    # -- commands ----------------------------------------------------------------

    def submit(self, workflow: Workflow) -> int:
        spec = workflow.to_spec()
        digest = workflow.digest()
        key = (workflow.namespace, workflow.name)
        info = self.workflows.get(key)
        latest = self.store.latest_version(*key)
        if latest:
            stored = self.store.spec(*key, latest)
            if stored is not None and stored[1] == digest:
                if info is None:  # deleted, now submitted again
                    info = WorkflowInfo(key[0], key[1], latest, False, self.clock())
                    self.store.put_workflow(info)
                    self.workflows[key] = info
                    self._activate(self.compiled((*key, latest)), latest=True)
                    self._update_scheduled(key)
                    self._emit_workflow(event_keys.WORKFLOW_SUBMITTED, key, latest)
                return latest
        version = latest + 1
        now = self.clock()
        self.store.add_version(key[0], key[1], version, json.dumps(spec), digest, now)
        faults.point("submit.half")
        if info is not None:
            self._deactivate_triggers(self.compiled((*key, info.version)))
        info = WorkflowInfo(key[0], key[1], version, info.paused if info else False, now)
        self.store.put_workflow(info)
        self.workflows[key] = info
        compiled = CompiledWorkflow.build(workflow, version, digest)
        self.versions[compiled.key] = compiled
        self._activate(compiled, latest=True)
        self.next_due = {k: v for k, v in self.next_due.items() if k[:2] != key}
        self._update_scheduled(key)
        self._emit_workflow(event_keys.WORKFLOW_SUBMITTED, key, version)
        return version

    def _emit_workflow(self, event_key: str, key: tuple[str, str], version: int) -> None:
        namespace, name = key
        self.emit(Event(event_key, {"workflow": name, "version": version}, namespace=namespace, sender=name))

    def workflow_info(self, namespace: str, name: str) -> WorkflowInfo:
        info = self.workflows.get((namespace, name))
        if info is None:
            raise NotFoundError(f"workflow {namespace}/{name} does not exist")
        return info

    def set_paused(self, namespace: str, name: str, paused: bool) -> None:
        before = self.workflow_info(namespace, name)
        if before.paused == paused:
            return
        info = replace(before, paused=paused)
        self.store.put_workflow(info)
        self.workflows[(namespace, name)] = info
        change = event_keys.WORKFLOW_PAUSED if paused else event_keys.WORKFLOW_RESUMED
        self._emit_workflow(change, (namespace, name), info.version)

    def delete(self, namespace: str, name: str) -> None:
        info = self.workflow_info(namespace, name)
        for ex_id in [
            i for i, ex in self.running.items() if (ex.record.namespace, ex.record.workflow) == (namespace, name)
        ]:
            self.stop_execution(ex_id)
        self._deactivate_triggers(self.compiled((namespace, name, info.version)))
        self.store.delete_workflow(namespace, name)
        del self.workflows[(namespace, name)]
        self.scheduled.discard((namespace, name))
        self._emit_workflow(event_keys.WORKFLOW_DELETED, (namespace, name), info.version)

    def start_execution(self, namespace: str, name: str, event: Event | None = None) -> int:
        info = self.workflow_info(namespace, name)
        compiled = self.compiled((namespace, name, info.version))
        if not compiled.initial and not compiled.waits_on_events:
            raise SpecError(f"workflow {namespace}/{name}: no task can ever start")
        limit = compiled.workflow.max_active_executions
        if limit is not None and self.active_executions(namespace, name) >= limit:
            raise LimitReachedError(
                f"workflow {namespace}/{name} already runs {limit} execution(s), its max_active_executions"
            )
        self.last_execution_id += 1
        record = WorkflowExecution(
            id=self.last_execution_id,
            namespace=namespace,
            workflow=name,
            version=info.version,
            status=WorkflowStatus.INIT,
            start_time=self.clock(),
            event=event_dict(event),
        )
        self.changes.executions[record.id] = record
        self.changes.new_executions.add(record.id)
        state = ExecutionState(record)
        self._set_execution_status(record, WorkflowStatus.RUNNING)
        self._track(state)
        for task in compiled.initial:
            self._new_task_execution(state, task, event)
        return record.id

    def running_execution(self, execution_id: int) -> ExecutionState:
        ex = self.running.get(execution_id)
        if ex is None:
            found = self.store.executions("id = ?", [execution_id])
            if not found:
                raise NotFoundError(f"execution {execution_id} does not exist")
            raise IllegalTransitionError(f"execution {execution_id} is {found[0].status.value}, not RUNNING")
        return ex

    def stop_execution(self, execution_id: int) -> None:
        ex = self.running_execution(execution_id)
        for te in list(ex.latest.values()):
            if te.status.alive:
                self._take_restart(execution_id, te.task)
                self._stop(te)
        self._finish(ex, WorkflowStatus.STOPPED)

    def task_action(self, execution_id: int, task: str, action: TaskAction) -> None:
        ex = self.running_execution(execution_id)
        r = ex.record
        if task not in self.compiled((r.namespace, r.workflow, r.version)).workflow.tasks:
            raise NotFoundError(f"execution {execution_id} has no task {task!r}")
        self.apply(ex, task, action, None)

    # -- the executor's side -------------------------------------------------------

    def task_execution(self, te_id: int) -> TaskExecution:
        te = self.alive.get(te_id)
        if te is not None:
            return te
        found = self.store.task_executions("id = ?", [te_id])
        if not found:
            raise NotFoundError(f"task execution {te_id} does not exist")
        return found[0]

    def launch_request(self, te_id: int, attempt: int) -> dict[str, Any] | None:
        """What the executor needs to run it, or None if it must not run.

        A RUNNING one is in the outbox still when the process that marked it
        ended before the next write: it is sent again (its claim decides).
        """
        te = self.alive.get(te_id)
        if te is None or te.status not in (TaskStatus.QUEUED, TaskStatus.RUNNING) or te.attempt != attempt:
            return None
        ex = (
            self.store.executions("id = ?", [te.execution_id])[0]
            if te.execution_id not in self.running
            else self.running[te.execution_id].record
        )
        task = self.compiled((ex.namespace, ex.workflow, ex.version)).workflow.tasks[te.task]
        return {
            "task_execution_id": te.id,
            "attempt": te.attempt,
            "execution_id": ex.id,
            "workflow": ex.workflow,
            "namespace": ex.namespace,
            "version": ex.version,
            "task": task.to_spec(),
            "seq": te.seq,
            "event": te.event,
        }

    def mark_running(self, te_id: int, attempt: int) -> None:
        """It is about to be launched (right after this transaction commits)."""
        te = self.alive.get(te_id)
        if te is not None and te.status is TaskStatus.QUEUED and te.attempt == attempt:
            self._set_status(te, TaskStatus.RUNNING)

    def launched(self, te_id: int, attempt: int) -> None:
        """The executor has it: take it out of the outbox with the next write."""
        self.changes.launched.append((te_id, attempt))

    def finished(self, outcome: Outcome) -> None:
        """Record how a run ended (once: a repeated report changes nothing)."""
        te = self.alive.get(outcome.task_execution_id)
        if (
            te is None
            or te.attempt != outcome.attempt
            or te.status not in (TaskStatus.RUNNING, TaskStatus.STOPPING, TaskStatus.QUEUED)
        ):
            return
        if te.status is TaskStatus.QUEUED:  # it ran before we marked it RUNNING
            self._set_status(te, TaskStatus.RUNNING)
        task = self._task_of(te)
        if te.status is TaskStatus.STOPPING and te.stop_reason != "timeout":
            self._set_status(te, TaskStatus.STOPPED, outcome.error)
            return
        if te.stop_reason == "timeout" and task is not None:
            outcome = replace(outcome, status=TaskStatus.FAILED, error=f"timed out after {task.timeout:g} s")
            ex = self.running.get(te.execution_id)
            record = ex.record if ex else self.store.executions("id = ?", [te.execution_id])[0]
            self._emit_failure(event_keys.TASK_TIMEOUT, record, _status_value(record, te, "TIMEOUT", outcome.error))
        if outcome.status is TaskStatus.SUCCESS:
            self._set_status(te, TaskStatus.SUCCESS)
            return
        if outcome.status is TaskStatus.STOPPED and te.stop_reason is None:
            outcome = replace(
                outcome, status=TaskStatus.FAILED, error=outcome.error or "stopped from outside aiflow-nb"
            )
        if task is not None and te.attempt <= task.max_retries:
            te.retry_at = self.clock() + timedelta(seconds=task.retry_delay)
            self._set_status(te, TaskStatus.RETRYING, outcome.error)
        else:
            self._set_status(te, TaskStatus.FAILED, outcome.error)

    def _task_of(self, te: TaskExecution) -> Any:
        ex = self.running.get(te.execution_id)
        record = ex.record if ex else self.store.executions("id = ?", [te.execution_id])[0]
        return self.compiled((record.namespace, record.workflow, record.version)).workflow.tasks.get(te.task)

    def timeouts(self, now: datetime) -> list[TaskExecution]:
        """Running task executions past their task's timeout."""
        late = []
        for te in self.timed.values():
            if te.status is TaskStatus.RUNNING and te.start_time is not None:
                task = self._task_of(te)
                if (
                    task is not None
                    and task.timeout is not None
                    and now - te.start_time > timedelta(seconds=task.timeout)
                ):
                    late.append(te)
        return late

    def stop_late(self, now: datetime) -> None:
        """Stop every run past its timeout; it will end FAILED (or retry)."""
        for te in self.timeouts(now):
            self._stop(te, "timeout")

    # -- time ----------------------------------------------------------------------

    def fire_timers(self, now: datetime) -> None:
        for te in list(self.timed.values()):
            if te.status is TaskStatus.RETRYING and te.retry_at is not None and te.retry_at <= now:
                te.attempt += 1  # first, so the QUEUED status event names the new attempt
                te.retry_at = None
                self._set_status(te, TaskStatus.QUEUED)
                self._queue_launch(te)
        for ns, name in self.scheduled:
            info = self.workflows[(ns, name)]
            if info.paused:
                continue
            workflow = self.compiled((ns, name, info.version)).workflow
            schedules: Iterable[tuple[str, Schedule | None]] = [
                ("", workflow.schedule_),
                *((t.name, t.schedule_) for t in workflow.tasks.values()),
            ]
            for task, schedule in schedules:
                if schedule is not None:
                    self._maybe_tick(ns, name, task, schedule, info, now)

    def _maybe_tick(self, ns: str, name: str, task: str, schedule: Schedule, info: WorkflowInfo, now: datetime) -> None:
        key = (ns, name, task)
        due = self.next_due.get(key)
        if due is None:
            due = schedule.next_after(self.last_ticks.get(key) or info.create_time)
            self.next_due[key] = due
        if due > now:
            return
        if schedule.catchup:
            # One tick per missed time, in order; a long downtime is caught
            # up over several steps so one transaction stays small.
            for _ in range(MAX_TICKS_PER_STEP):
                self._emit_tick(ns, name, task, due)
                self.last_ticks[key] = self.changes.ticks[key] = due
                due = schedule.next_after(due)
                if due > now:
                    break
            self.next_due[key] = due
            return
        # Missed ticks (the service was down) collapse into one, now.
        for _ in range(100_000):
            following = schedule.next_after(due)
            if following > now:
                break
            due = following
        self._emit_tick(ns, name, task, due)
        self.last_ticks[key] = self.changes.ticks[key] = due
        self.next_due[key] = schedule.next_after(due)

    def _emit_tick(self, ns: str, name: str, task: str, due: datetime, backfill: bool = False) -> None:
        faults.point("schedule.tick")
        # The key makes a due time tick once, whether live, caught up or backfilled.
        self.emit(
            Event(
                key=event_keys.SCHEDULE_TICK,
                value={"workflow": name, "task": task or None, "scheduled_time": due.isoformat(), "backfill": backfill},
                namespace=ns,
                sender="aiflow.schedule",
            ),
            idempotency_key=f"tick:{ns}/{name}/{task}/{due.isoformat()}",
        )

    def next_runs(self, namespace: str, name: str) -> dict[str, datetime]:
        """When each schedule of the workflow is next due ('' is the workflow's own)."""
        info = self.workflow_info(namespace, name)
        workflow = self.compiled((namespace, name, info.version)).workflow
        schedules = [("", workflow.schedule_), *((t.name, t.schedule_) for t in workflow.tasks.values())]
        due = {}
        for task, schedule in schedules:
            if schedule is not None:
                key = (namespace, name, task)
                due[task] = self.next_due.get(key) or schedule.next_after(self.last_ticks.get(key) or info.create_time)
        return due

    def backfill(self, namespace: str, name: str, start: datetime, end: datetime) -> int:
        """Send the workflow schedule's ticks due in [start, end]; returns how many."""
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidScheduleError("backfill: start and end need a time zone (e.g. 2026-11-27T10:00+00:00)")
        if end < start:
            raise InvalidScheduleError(f"backfill: end {end.isoformat()} is before start {start.isoformat()}")
        info = self.workflow_info(namespace, name)
        schedule = self.compiled((namespace, name, info.version)).workflow.schedule_
        if schedule is None:
            raise SpecError(f"backfill: workflow {namespace}/{name} has no schedule")
        times = []
        due = schedule.next_after(start - timedelta(microseconds=1))
        while due <= end:
            times.append(due)
            if len(times) > MAX_BACKFILL:
                raise InvalidScheduleError(f"backfill: more than {MAX_BACKFILL} ticks; use a shorter period")
            due = schedule.next_after(due)
        for due in times:
            self._emit_tick(namespace, name, "", due, backfill=True)
        return len(times)

    def _tick(self, event: Event) -> None:
        value = event.value if isinstance(event.value, dict) else {}
        name, task = value.get("workflow"), value.get("task")
        info = self.workflows.get((event.namespace, name))  # type: ignore[arg-type]
        if info is None or info.paused:
            return
        if not task:
            self.trigger_execution(event.namespace, info.name, event)
            return
        for ex in [
            e for e in self.running.values() if (e.record.namespace, e.record.workflow) == (event.namespace, name)
        ]:
            # Only executions whose pinned version schedules this task (it may not even exist there).
            pinned = self.compiled((event.namespace, info.name, ex.record.version)).workflow.tasks.get(task)
            if pinned is not None and pinned.schedule_ is not None:
                self.apply(ex, task, TaskAction.START, event)
