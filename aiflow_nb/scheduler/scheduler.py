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

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from aiflow_nb import faults
from aiflow_nb.errors import SpecError
from aiflow_nb.events import Event, EventLog
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import rules, timers
from aiflow_nb.scheduler.commands import Commands
from aiflow_nb.scheduler.outbox import Outbox
from aiflow_nb.scheduler.registry import Registry, VersionKey
from aiflow_nb.scheduler.state import (
    ExecutionState,
    tick_event,
)
from aiflow_nb.scheduler.store import Changes, Store
from aiflow_nb.storage import Database
from aiflow_nb.workflow import TaskAction, TaskStatus
from aiflow_nb.workflow.records import TaskExecution
from aiflow_nb.workflow.schedule import Schedule

log = logging.getLogger("aiflow_nb.scheduler")

CHECKPOINT_EVERY = 1.0
#: A batch reads at most ``limit`` events from at most this many times ``limit`` offsets.
SKIP_WINDOW = 8


class Scheduler(Commands):
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

    # -- time ----------------------------------------------------------------------

    def fire_timers(self, now: datetime) -> None:
        for te in list(self.timed.values()):
            if te.status is TaskStatus.RETRYING and timers.retry_due(te.retry_at, now):
                te.attempt += 1  # first, so the QUEUED status event names the new attempt
                te.retry_at = None
                te.stop_reason = None  # the new attempt was not asked to stop (a timeout was the last one's)
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
