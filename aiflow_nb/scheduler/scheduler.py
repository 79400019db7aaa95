"""The scheduler: consume the log, apply the rules, change state, queue launches.

It keeps the running executions in memory (:mod:`.state`), decides with the
pure modules (:mod:`.rules`, :mod:`.transitions`, :mod:`.timers`,
:mod:`.registry`) and writes every change of one batch (state, condition
state, status events, launches and the consumed offset) through
:meth:`Scheduler.commit` inside the caller's transaction.  Launches and
stops go to its :class:`~.outbox.Outbox`.  After a crash, :meth:`Scheduler.load`
rebuilds the memory from what was committed, so no event is skipped and
none is applied twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiflow_nb import faults
from aiflow_nb.errors import IllegalTransitionError, LimitReachedError, NotFoundError, SpecError
from aiflow_nb.events import Event, EventLog
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import rules, timers
from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.outbox import Outbox
from aiflow_nb.scheduler.registry import Registry, VersionKey
from aiflow_nb.scheduler.state import (
    ExecutionState,
    event_dict,
    execution_status_event,
    failure_event,
    status_value,
    task_status_event,
    tick_event,
    workflow_event,
)
from aiflow_nb.scheduler.store import Changes, Store
from aiflow_nb.scheduler.transitions import ACTIONS, Effect, execution_verdict, outcome_change, stop_status
from aiflow_nb.storage import Database
from aiflow_nb.workflow import TaskAction, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.workflow.records import Outcome, TaskExecution, WorkflowExecution, WorkflowInfo
from aiflow_nb.workflow.schedule import Schedule
from aiflow_nb.workflow.status import check_task_transition, check_workflow_transition
from aiflow_nb.workflow.tasks import Task

log = logging.getLogger("aiflow_nb.scheduler")

CHECKPOINT_EVERY = 1.0
#: A batch reads at most ``limit`` events from at most this many times ``limit`` offsets.
SKIP_WINDOW = 8


class Scheduler:
    """Rules and state of every workflow in one database."""

    def __init__(self, db: Database, log_: EventLog, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.log = log_
        self.store = Store(db)
        self.clock = clock
        self.outbox = Outbox()
        self.load()
        db.on_rollback(self.load)

    # -- memory --------------------------------------------------------------

    def load(self) -> None:
        """(Re)build the in-memory state from what is committed."""
        store = self.store
        self.changes = Changes()
        self._checkpoint_written = time.monotonic()
        self.events: list[tuple[Event, str | None]] = []
        self.outbox.reset(store.pending_launches())
        self.last_execution_id, self.last_task_id = store.max_ids()
        self.checkpoint = store.checkpoint()
        self.running: dict[int, ExecutionState] = {}
        self.by_version: dict[VersionKey, set[int]] = defaultdict(set)
        self.alive: dict[int, TaskExecution] = {}
        self.registry = Registry(lambda key: store.spec(*key), store.workflows())
        for record in store.running_executions():
            self._track(ExecutionState(record))
        ids = list(self.running)
        for te in store.task_executions_of(ids):
            self.running[te.execution_id].latest[te.task] = te
        self.states: rules.States = store.condition_states([0, *ids])
        for ex_id, count in store.unseen_status_events(self.checkpoint, ids).items():
            self.running[ex_id].unseen = count
        #: Alive runs a timer may change: RETRYING ones, RUNNING ones with a timeout.
        self.timed: dict[int, TaskExecution] = {}
        for te in store.alive_task_executions():
            ex = self.running.get(te.execution_id)
            self.alive[te.id] = ex.latest[te.task] if ex and te.task in ex.latest else te
            self._watch_time(self.alive[te.id])
        self.last_ticks = store.last_ticks()
        self.next_due: dict[tuple[str, str, str], datetime] = {}

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

    # -- the batch ---------------------------------------------------------------

    def commit(self, force: bool = False, checkpoint: bool = True) -> bool:
        """Write this batch; call inside the caller's open transaction.  True if it wrote.

        A batch that only moved the checkpoint (its events matched nothing,
        or changed nothing) or marked launches sent is not written at once:
        the next write carries it, and at most ``CHECKPOINT_EVERY`` seconds
        pass.  After a crash those events are read again against the very
        state they saw, so they change nothing again, and those launches are
        sent again, which their run folder's claim makes harmless: still
        exactly once, at a fraction of the commits.

        ``checkpoint=False`` leaves the checkpoint for a later call in the same
        transaction (one write of it however many rounds the transaction has).
        """
        self.changes.launched.extend(self.outbox.take_sent())
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
            self.log.stage([e for e, _ in self.events], [k for _, k in self.events])
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
        wanted = self.registry.wanted_keys()
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

    def process(self, event: Event) -> None:
        """Apply the rules to one event of the log."""
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
        registry = self.registry
        for key in sorted(registry.index.get((event.namespace, event.key), ())):
            for ex_id in sorted(self.by_version.get(key, ())):
                ex = self.running.get(ex_id)
                if ex is not None:
                    self._evaluate(ex, event)
        for key in sorted(registry.trigger_index.get((event.namespace, event.key), ())):
            info = registry.workflows.get(key[:2])  # type: ignore[arg-type]
            if info is None or info.paused:
                continue
            for trigger_id, condition in self.compiled(key).triggers_for(event):
                if self._met(condition, event, key[0], 0, rules.trigger_rule_id(key[0], key[1], trigger_id)):
                    self.trigger_execution(key[0], key[1], event)

    def _met(self, condition: Any, event: Event, namespace: str, execution_id: int, rule: str) -> bool:
        met, changed = rules.evaluate(
            condition, event, namespace, execution_id, rule, self.states.get((execution_id, rule))
        )
        if changed is not None:
            self.states[(execution_id, rule)] = changed
            self.changes.states[(execution_id, rule)] = changed
        return met

    def _evaluate(self, ex: ExecutionState, event: Event) -> None:
        r = ex.record
        for task, rule_id, rule in self.compiled((r.namespace, r.workflow, r.version)).rules_for(event):
            if self._met(rule.condition, event, r.namespace, r.id, rule_id):
                log.debug("execution %s: %s %s on event %s", r.id, rule.action.value, task, event.offset)
                self.apply(ex, task, rule.action, event)
                if r.id not in self.running:
                    return

    # -- actions -----------------------------------------------------------------

    def apply(self, ex: ExecutionState, task: str, action: TaskAction, event: Event | None) -> None:
        """START, STOP or RESTART ``task`` in a running execution (see ``transitions.ACTIONS``)."""
        latest = ex.latest.get(task)
        effect = ACTIONS[(latest.status if latest is not None else None, action)]
        if effect is Effect.NEW_RUN:
            self._new_task_execution(ex, task, event)
        elif effect is Effect.STOP:
            assert latest is not None
            # A STOP after a RESTART whose stop is still under way cancels the restart.
            self._take_restart(ex.record.id, task)
            self._stop(latest)
        elif effect is Effect.RESTART:
            assert latest is not None
            self._set_state(rules.restart_key(ex.record.id, task), {"pending": True, "event": event_dict(event)})
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

    def _new_task_execution(self, ex: ExecutionState, task: str, event: Event | dict[str, Any] | None) -> None:
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
            record = self._record(te.execution_id)
        else:
            record = ex.record
            ex.unseen += 1
        event = task_status_event(record, te)
        self.emit(event)
        ended = {TaskStatus.FAILED: event_keys.TASK_FAILED, TaskStatus.STOPPED: event_keys.TASK_STOPPED}
        if te.status in ended:
            self.emit(failure_event(ended[te.status], record, event.value))

    def _set_execution_status(self, ex: WorkflowExecution, status: WorkflowStatus) -> None:
        check_workflow_transition(ex.status, status, f"execution {ex.id}")
        ex.status = status
        if status.finished:
            ex.end_time = self.clock()
        self.changes.executions[ex.id] = ex
        self.emit(execution_status_event(ex))

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
            self.start_execution(namespace, name, event)
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
            self.start_execution(namespace, name, Event.from_dict(waiting.pop(0)))

    # -- commands ----------------------------------------------------------------

    def submit(self, workflow: Workflow) -> int:
        spec = workflow.to_spec()
        digest = workflow.digest()
        key = (workflow.namespace, workflow.name)
        registry = self.registry
        info = registry.workflows.get(key)
        latest = self.store.latest_version(*key)
        if latest:
            stored = self.store.spec(*key, latest)
            if stored is not None and stored[1] == digest:
                if info is None:  # deleted, now submitted again
                    info = WorkflowInfo(key[0], key[1], latest, False, self.clock())
                    self.store.put_workflow(info)
                    registry.activate(self.compiled((*key, latest)), latest=True)
                    registry.put(info)
                    self.emit(workflow_event(event_keys.WORKFLOW_SUBMITTED, *key, latest))
                return latest
        version = latest + 1
        now = self.clock()
        self.store.add_version(key[0], key[1], version, json.dumps(spec), digest, now)
        faults.point("submit.half")
        if info is not None:
            registry.deactivate_triggers(registry.latest(key))
        info = WorkflowInfo(key[0], key[1], version, info.paused if info else False, now)
        self.store.put_workflow(info)
        compiled = CompiledWorkflow.build(workflow, version, digest)
        registry.add(compiled)
        registry.activate(compiled, latest=True)
        registry.put(info)
        self.next_due = {k: v for k, v in self.next_due.items() if k[:2] != key}
        self.emit(workflow_event(event_keys.WORKFLOW_SUBMITTED, *key, version))
        return version

    def workflow_info(self, namespace: str, name: str) -> WorkflowInfo:
        return self.registry.info(namespace, name)

    def set_paused(self, namespace: str, name: str, paused: bool) -> None:
        before = self.registry.info(namespace, name)
        if before.paused == paused:
            return
        info = replace(before, paused=paused)
        self.store.put_workflow(info)
        self.registry.workflows[(namespace, name)] = info
        change = event_keys.WORKFLOW_PAUSED if paused else event_keys.WORKFLOW_RESUMED
        self.emit(workflow_event(change, namespace, name, info.version))

    def delete(self, namespace: str, name: str) -> None:
        info = self.registry.info(namespace, name)
        for ex_id in [
            i for i, ex in self.running.items() if (ex.record.namespace, ex.record.workflow) == (namespace, name)
        ]:
            self.stop_execution(ex_id)
        self.store.delete_workflow(namespace, name)
        self.registry.remove((namespace, name))
        self.emit(workflow_event(event_keys.WORKFLOW_DELETED, namespace, name, info.version))

    def start_execution(self, namespace: str, name: str, event: Event | None = None) -> int:
        info = self.registry.info(namespace, name)
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
            found = self.store.execution(execution_id)
            if found is None:
                raise NotFoundError(f"execution {execution_id} does not exist")
            raise IllegalTransitionError(f"execution {execution_id} is {found.status.value}, not RUNNING")
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

    def launch_request(self, te_id: int, attempt: int) -> dict[str, Any] | None:
        """What the executor needs to run it, or None if it must not run.

        A RUNNING one is in the outbox still when the process that marked it
        ended before the next write: it is sent again (its claim decides).
        """
        te = self.alive.get(te_id)
        if te is None or te.status not in (TaskStatus.QUEUED, TaskStatus.RUNNING) or te.attempt != attempt:
            return None
        ex = self._record(te.execution_id)
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

    def finished(self, outcome: Outcome) -> None:
        """Record how a run ended (once: a repeated report changes nothing)."""
        te = self.alive.get(outcome.task_execution_id)
        if te is None or te.attempt != outcome.attempt:
            return
        task = self._task_of(te)
        change = outcome_change(
            te.status,
            te.stop_reason,
            te.attempt,
            outcome.status,
            outcome.error,
            task.max_retries if task is not None else None,
            task.timeout if task is not None else None,
        )
        if change is None:
            return
        if te.status is TaskStatus.QUEUED:  # it ran before we marked it RUNNING
            self._set_status(te, TaskStatus.RUNNING)
        if change.timed_out:
            record = self._record(te.execution_id)
            self.emit(failure_event(event_keys.TASK_TIMEOUT, record, status_value(record, te, "TIMEOUT", change.error)))
        if change.status is TaskStatus.RETRYING:
            assert task is not None
            te.retry_at = timers.retry_time(self.clock(), task.retry_delay)
        self._set_status(te, change.status, change.error)

    def stop_late(self, now: datetime) -> None:
        """Stop every run past its timeout; it will end FAILED (or retry)."""
        late = []
        for te in self.timed.values():
            if te.status is TaskStatus.RUNNING:
                task = self._task_of(te)
                if task is not None and timers.is_late(te.start_time, task.timeout, now):
                    late.append(te)
        for te in late:
            self._stop(te, "timeout")

    # -- time ----------------------------------------------------------------------

    def fire_timers(self, now: datetime) -> None:
        for te in list(self.timed.values()):
            if te.status is TaskStatus.RETRYING and timers.retry_due(te.retry_at, now):
                te.attempt += 1  # first, so the QUEUED status event names the new attempt
                te.retry_at = None
                self._set_status(te, TaskStatus.QUEUED)
                self._queue_launch(te)
        for key in self.registry.scheduled:
            info = self.workflows[key]
            if info.paused:
                continue
            for task, schedule in self._schedules(key):
                tick_key = (*key, task)
                due = self.next_due.get(tick_key) or timers.first_due(
                    schedule, self.last_ticks.get(tick_key), info.create_time
                )
                ticks, self.next_due[tick_key] = timers.due_ticks(schedule, due, now)
                for tick in ticks:
                    self._emit_tick(key[0], key[1], task, tick)
                    self.last_ticks[tick_key] = self.changes.ticks[tick_key] = tick

    def _schedules(self, key: tuple[str, str]) -> list[tuple[str, Schedule]]:
        """The latest version's schedules: ``""`` for the workflow's own, else the task's name."""
        workflow = self.registry.latest(key).workflow
        found: Iterable[tuple[str, Schedule | None]] = [
            ("", workflow.schedule_),
            *((t.name, t.schedule_) for t in workflow.tasks.values()),
        ]
        return [(task, schedule) for task, schedule in found if schedule is not None]

    def _emit_tick(self, ns: str, name: str, task: str, due: datetime, backfill: bool = False) -> None:
        faults.point("schedule.tick")
        self.emit(*tick_event(ns, name, task, due.isoformat(), backfill))

    def next_runs(self, namespace: str, name: str) -> dict[str, datetime]:
        """When each schedule of the workflow is next due ('' is the workflow's own)."""
        info = self.registry.info(namespace, name)
        due = {}
        for task, schedule in self._schedules((namespace, name)):
            key = (namespace, name, task)
            due[task] = self.next_due.get(key) or timers.first_due(schedule, self.last_ticks.get(key), info.create_time)
        return due

    def backfill(self, namespace: str, name: str, start: datetime, end: datetime) -> int:
        """Send the workflow schedule's ticks due in [start, end]; returns how many."""
        timers.check_period(start, end)
        self.registry.info(namespace, name)
        schedule = self.registry.latest((namespace, name)).workflow.schedule_
        if schedule is None:
            raise SpecError(f"backfill: workflow {namespace}/{name} has no schedule")
        times = timers.backfill_times(schedule, start, end)
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
            pinned = self.registry.task(event.namespace, info.name, ex.record.version, task)
            if pinned is not None and pinned.schedule_ is not None:
                self.apply(ex, task, TaskAction.START, event)
