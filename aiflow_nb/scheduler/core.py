"""The decision core: the rules applied to one event of the log, and the clock's ticks.

No clock, database, environment or file: :class:`Core` holds the state in
memory, takes one input at a time (:meth:`process` for an event of the log,
:meth:`~.commands.Commands.take` for the others, with ``now`` given) and
leaves its decisions as plain data: rows changed in ``changes``, events to
append in ``events``, launches and stops in ``outbox``.  The engine's
:class:`~.scheduler.Scheduler` writes them; ``verify`` replays the log
through the same core in memory (:mod:`.replay`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from aiflow_nb import faults
from aiflow_nb.errors import SpecError
from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import inputs, rules, timers
from aiflow_nb.scheduler.commands import Commands
from aiflow_nb.scheduler.emitted import Emitted
from aiflow_nb.scheduler.outbox import Launch
from aiflow_nb.scheduler.registry import Registry, VersionKey
from aiflow_nb.scheduler.state import ExecutionState, tick_event
from aiflow_nb.scheduler.writes import Changes
from aiflow_nb.workflow import TaskAction, TaskStatus
from aiflow_nb.workflow.records import TaskExecution
from aiflow_nb.workflow.schedule import Schedule

log = logging.getLogger("aiflow_nb.scheduler")

TickKey = tuple[str, str, str]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Core(Commands):
    """The rules and the state machine over the state in memory; the engine and ``verify`` feed it inputs."""

    def reset(
        self,
        registry: Registry,
        checkpoint: int,
        last_ids: tuple[int, int],
        pending: Iterable[Launch] = (),
        last_ticks: dict[TickKey, datetime] | None = None,
    ) -> None:
        """Empty memory (the shell then loads the running executions into it)."""
        self.registry = registry
        #: Only an event without a create_time (not from the log) leaves it as it was.
        self.now = EPOCH
        self.because()
        self.checkpoint = checkpoint
        self.last_execution_id, self.last_task_id = last_ids
        self.outbox.reset(pending)
        self.changes = Changes()
        self.events = Emitted()
        self.running: dict[int, ExecutionState] = {}
        self.by_version: dict[VersionKey, set[int]] = defaultdict(set)
        self.alive: dict[int, TaskExecution] = {}
        self.states: rules.States = {}
        #: Alive runs a timer may change: RETRYING ones, RUNNING ones with a timeout.
        self.timed: dict[int, TaskExecution] = {}
        self.last_ticks: dict[TickKey, datetime] = dict(last_ticks or {})
        self.next_due: dict[TickKey, datetime] = {}

    def process(self, event: Event) -> None:
        """Apply the rules to one event of the log (decided at its create_time)."""
        if event.create_time is not None:
            self.now = event.create_time
        self.because(event=event.offset, rule="schedule")
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
        ref = (event.namespace, event.key)
        versions = registry.index.get(ref)
        if versions:
            for key in sorted(versions):
                for ex_id in sorted(self.by_version.get(key, ())):
                    ex = self.running.get(ex_id)
                    if ex is not None:
                        self._evaluate(ex, event)
        versions = registry.trigger_index.get(ref)
        if not versions:
            return
        for key in sorted(versions):
            info = registry.workflows.get((key[0], key[1]))
            if info is None or info.paused:
                continue
            for rule_id, condition in self.compiled(key).trigger_rules.get(ref, ()):
                if self._met(condition, event, key[0], 0, rule_id):
                    self.because(event=event.offset, rule=rule_id)
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
                self.because(event=event.offset, rule=rule_id)
                self.apply(ex, task, rule.action, event)
                if r.id not in self.running:
                    return

    # -- time ----------------------------------------------------------------------

    def _clock(self, wall: datetime | None = None) -> None:
        """Timeouts, retries and schedule ticks due at ``now``; recorded only if any was."""
        mark = len(self.events)
        self._stop_late(self.now)
        self._fire_timers(self.now, wall)
        if len(self.events) > mark:
            self._record_input(inputs.Clock(wall.isoformat() if wall is not None else None), mark)

    def _fire_timers(self, now: datetime, wall: datetime | None = None) -> None:
        """Retries and interval ticks due at ``now`` (elapsed time); a cron schedule's at ``wall``."""
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
                at = wall if wall is not None and schedule.cron is not None else now
                ticks, self.next_due[tick_key] = timers.due_ticks(schedule, due, at)
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
