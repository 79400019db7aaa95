"""The decision core: one input over the state in, its :class:`~.decisions.Decisions` out.

:func:`decide` takes the scheduler's memory (a :class:`~.memory.State`) and
one input: an event of the log, or a command, dispatch, outcome or clock
tick with the ``now`` it is decided at.  It reads the state through a
:class:`Draft` (copy-on-write views) and returns what it decided as plain
data; the state is left as it was.  No clock, database, environment or
file: the same state and input give the same decisions.

:class:`Core` is the shell around it in memory: it applies each decision to
its state and collects the batch to write (``changes``, ``events``, the
outbox).  The engine's :class:`~.scheduler.Scheduler` writes that batch;
``verify`` and the dry run keep it in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from aiflow_nb import faults
from aiflow_nb.errors import SpecError
from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import inputs, rules, timers
from aiflow_nb.scheduler.commands import Commands
from aiflow_nb.scheduler.decisions import Decisions, Orders, TickKey, made_ids
from aiflow_nb.scheduler.emitted import Emitted
from aiflow_nb.scheduler.memory import State, schedules
from aiflow_nb.scheduler.outbox import Launch, Outbox
from aiflow_nb.scheduler.overlay import Overlay, VersionIndex
from aiflow_nb.scheduler.registry import Registry
from aiflow_nb.scheduler.state import tick_event
from aiflow_nb.scheduler.writes import Changes
from aiflow_nb.workflow import TaskAction, TaskStatus
from aiflow_nb.workflow.conditions import EventCondition
from aiflow_nb.workflow.records import TaskExecution

log = logging.getLogger("aiflow_nb.scheduler")

#: What a decision holds where it changed nothing (shared, read-only).
_NO_MAP: Mapping[Any, Any] = MappingProxyType({})


def decide(state: State, inp: Event | inputs.Input, now: datetime | None = None) -> Decisions:
    """What ``inp`` changes, decided over ``state`` (left as it was).

    An event of the log is decided at its create_time (or the state's
    ``now`` if it has none); any other input at ``now``.  A command that is
    refused raises its error and decides nothing.
    """
    draft: Draft | None = state.draft
    if draft is None:
        draft = state.draft = Draft()
    draft.begin(state)
    if isinstance(inp, Event):
        draft.process(inp)
        return draft.decisions(None)
    return draft.decisions(draft.take(inp, now if now is not None else state.now))


def _in_order(keys: Iterable[Any]) -> Iterable[Any]:
    """``keys`` in sorted order (one key as it is)."""
    return keys if len(keys) == 1 else sorted(keys)  # type: ignore[arg-type]


def _still_running(owned: dict[int, Any], running: Overlay[int, Any]) -> Mapping[int, Any]:
    """The draft's own execution states that still run (``owned`` itself when all do, as is usual)."""
    for i, ex in owned.items():
        if running.get(i) is not ex:
            return {i: ex for i, ex in owned.items() if running.get(i) is ex}
    return owned


class Draft(Commands):
    """The rules and the state machine, deciding one input over a state through copy-on-write views.

    One draft serves every input of a state in turn (:meth:`begin` points
    it at the state and empties its layers); what it hands over in
    :meth:`decisions` it never touches again.
    """

    def __init__(self) -> None:
        empty: dict[Any, Any] = {}
        self.running = Overlay(empty)
        self.by_version = VersionIndex(empty)
        self.alive = Overlay(empty)
        self.timed = Overlay(empty)
        self.states = Overlay(empty)
        self.last_ticks = Overlay(empty)
        self.next_due = Overlay(empty)
        self.changes = Changes()
        self.events = Emitted()
        self.outbox = Orders()
        self._owned = {}
        self.new_versions = []
        self.workflow_changes = []
        self.next_due_reset = []
        self._state: State | None = None
        self._dirty = False

    def begin(self, state: State) -> None:
        """Decide the next input over ``state``: its values read, every layer of the last input dropped."""
        self.store = state.store
        self.registry = state.registry
        self.now = state.now
        self.checkpoint = state.checkpoint
        self.last_execution_id, self.last_task_id = state.last_execution_id, state.last_task_id
        self._first_execution_id, self._first_task_id = state.last_execution_id + 1, state.last_task_id + 1
        if self._state is not state:
            self._state = state
            self._point(state)
        if self._dirty:  # the last input was refused half way
            self._point(state)
            self._hand_over()
        self._dirty = True

    def _point(self, state: State) -> None:
        self.running.base, self.alive.base, self.timed.base = state.running, state.alive, state.timed
        self.states.base, self.last_ticks.base, self.next_due.base = state.states, state.last_ticks, state.next_due
        self.by_version.base = state.by_version

    def _hand_over(self) -> None:
        """New layers wherever the last input left something (it belongs to its decisions now)."""
        running, alive = self.running, self.alive
        if running.upper:
            running.upper = {}
        if alive.upper:
            alive.upper = {}
        for view in (self.timed, self.states, self.last_ticks, self.next_due):
            if view.upper:
                view.upper = {}
        index = self.by_version
        if index.added or index.removed:
            index.added, index.removed = {}, {}
        c = self.changes
        if c.executions:
            c.executions = {}
        if c.tasks:
            c.tasks = {}
        if c.causes:
            c.causes = {}
        if c.states:
            c.states = {}
        if c.launches:
            c.launches = []
        if c.ticks:
            c.ticks = {}
        if self.events:
            self.events.clear()  # not handed over: the input was refused
        if self.outbox.stops:
            self.outbox = Orders()
        if self._owned:
            self._owned = {}
        if self.new_versions or self.workflow_changes or self.next_due_reset:
            self.new_versions, self.workflow_changes, self.next_due_reset = [], [], []

    def decisions(self, answer: Any) -> Decisions:
        """What was decided, as plain data (the draft's layers handed over, never touched again)."""
        c = self.changes
        owned = self._owned
        running = self.running
        next_due = self.next_due.upper
        stops = self.outbox.stops
        decided = Decisions(
            self.now,
            c.executions or _NO_MAP,
            made_ids(self._first_execution_id, self.last_execution_id),
            c.tasks or _NO_MAP,
            made_ids(self._first_task_id, self.last_task_id),
            c.causes or _NO_MAP,
            c.states or _NO_MAP,
            self.events.hand_over(),
            c.launches or (),
            tuple(stops) if stops else (),
            c.ticks or _NO_MAP,
            dict(next_due) if next_due else _NO_MAP,
            tuple(self.next_due_reset) if self.next_due_reset else (),
            _still_running(owned, running) if owned else _NO_MAP,
            (self.last_execution_id, self.last_task_id),
            tuple(self.new_versions) if self.new_versions else (),
            tuple(self.workflow_changes) if self.workflow_changes else (),
            answer,
        )
        self._hand_over()
        self._dirty = False
        return decided

    def process(self, event: Event) -> None:
        """Apply the rules to one event of the log (decided at its create_time)."""
        if event.create_time is not None:
            self.now = event.create_time
        offset = event.offset
        self._why, self._why_rule, self._why_text = None, (offset, "schedule"), None  # because_rule
        key = event.key
        if key == event_keys.SCHEDULE_TICK and event.sender == "aiflow.schedule":
            self._tick(event)
        scoped = event.execution_id if event.context else None
        if scoped is not None:
            ex = self.running.get(scoped)
            if ex is None:
                return
            self._evaluate(ex, event)
            if key == event_keys.TASK_STATUS:
                ex = self._ex(ex)
                ex.unseen -= 1
                if ex.record.id in self.running:
                    self._check_done(ex)
            return
        registry = self.registry
        ref = (event.namespace, key)
        versions = registry.index.get(ref)
        if versions:
            for version in _in_order(versions):
                for ex_id in _in_order(self.by_version.get(version, ())):
                    ex = self.running.get(ex_id)
                    if ex is not None:
                        self._evaluate(ex, event)
        versions = registry.trigger_index.get(ref)
        if not versions:
            return
        workflows, compiled = registry.workflows, registry.versions
        for version in _in_order(versions):
            info = workflows.get((version[0], version[1]))
            if info is None or info.paused:
                continue
            found = compiled.get(version) or self.compiled(version)
            for rule_id, condition in found.trigger_rules.get(ref, ()):
                if type(condition) is EventCondition:  # it keeps no state
                    met = condition.expect_events[0].matches(event, version[0])
                else:
                    met = self._met(condition, event, version[0], 0, rule_id)
                if met:
                    self._why, self._why_rule, self._why_text = None, (offset, rule_id), None  # because_rule
                    self.trigger_execution(version[0], version[1], event)

    def _met(self, condition: Any, event: Event, namespace: str, execution_id: int, rule: str) -> bool:
        if type(condition) is EventCondition:  # it keeps no state
            return condition.expect_events[0].matches(event, namespace)
        met, changed = rules.evaluate(
            condition, event, namespace, execution_id, rule, self.states.get((execution_id, rule))
        )
        if changed is not None:
            self._set_state((execution_id, rule), changed)
        return met

    def _evaluate(self, ex: Any, event: Event) -> None:
        r = ex.record
        for task, rule_id, rule in self.compiled((r.namespace, r.workflow, r.version)).rules_for(event):
            if self._met(rule.condition, event, r.namespace, r.id, rule_id):
                log.debug("execution %s: %s %s on event %s", r.id, rule.action.value, task, event.offset)
                self.because_rule(event.offset, rule_id)
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
        # In id order: a reload refills ``timed`` in another order than the inputs filled it.
        for te in sorted(self.timed.values(), key=lambda te: te.id):
            if te.status is TaskStatus.RETRYING and timers.retry_due(te.retry_at, now, self._retry_delay(te)):
                te = self._te(te)
                te.attempt += 1  # first, so the QUEUED status event names the new attempt
                te.retry_at = None
                te.stop_reason = None  # the new attempt was not asked to stop (a timeout was the last one's)
                self._set_status(te, TaskStatus.QUEUED)
                self._queue_launch(te)
        for key in sorted(self.registry.scheduled):  # a set: its order is the process's
            info = self.workflows[key]
            if info.paused:
                continue
            for task, schedule in schedules(self.registry, key):
                tick_key = (*key, task)
                at = wall if wall is not None and schedule.cron is not None else now
                due = self.next_due.get(tick_key) or timers.first_due(
                    schedule, self.last_ticks.get(tick_key), info.create_time, at
                )
                ticks, self.next_due[tick_key] = timers.due_ticks(schedule, due, at)
                for tick in ticks:
                    self.emit(*tick_event(key[0], key[1], task, tick.isoformat(), False))
                    self.last_ticks[tick_key] = self.changes.ticks[tick_key] = tick

    def _retry_delay(self, te: TaskExecution) -> float | None:
        """The retry delay of ``te``'s task (None if its version no longer has it)."""
        ex = self._record(te.execution_id)
        task = self.compiled((ex.namespace, ex.workflow, ex.version)).workflow.tasks.get(te.task)
        return task.retry_delay if task is not None else None

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


class Core(State):
    """The shell in memory: decides each input (:func:`decide`), applies it, and keeps the batch to write.

    ``changes`` and ``events`` hold every decision since the last write;
    launches and stops go to ``outbox``; ``store`` takes the workflows and
    versions a decision adds.
    """

    outbox: Outbox
    changes: Changes
    events: Emitted

    def reset(
        self,
        registry: Registry,
        checkpoint: int,
        last_ids: tuple[int, int],
        pending: Iterable[Launch] = (),
        last_ticks: dict[TickKey, datetime] | None = None,
    ) -> None:
        """Empty memory and batch (the shell then loads the running executions into it)."""
        self.clear(registry, checkpoint, last_ids, last_ticks)
        self.outbox.reset(pending)
        self.changes = Changes()
        self.events = Emitted()

    def process(self, event: Event) -> None:
        """Decide one event of the log and apply it."""
        self.apply(decide(self, event))

    def take(self, inp: inputs.Input, now: datetime) -> Any:
        """Decide one input at ``now`` and apply it; returns the command's answer."""
        d = decide(self, inp, now)
        self.apply(d)
        return d.answer

    def apply(self, d: Decisions) -> None:
        """Apply ``d`` to memory, add it to the batch, write its workflows and hand over its launches and stops."""
        if d.versions or d.workflows:
            self._write_workflows(d)
        if d.ticks:
            faults.point("schedule.tick")
        super().apply(d)
        self.changes.add(d)
        if d.events:
            self.events.extend(d.events)
        if d.launches:
            self.outbox.queue_launches(d.launches)
        if d.stops:
            outbox = self.outbox
            for te_id, reason in d.stops:
                outbox.queue_stop(te_id, reason)

    def _write_workflows(self, d: Decisions) -> None:
        store = self.store
        for v in d.versions:
            store.add_version(v.namespace, v.name, v.version, v.spec, v.digest, v.time)
            faults.point("submit.half")
        for key, info in d.workflows:
            if info is None:
                store.delete_workflow(*key)
            else:
                store.put_workflow(info)

    def backfill(self, namespace: str, name: str, start: datetime, end: datetime) -> int:
        """Send the workflow schedule's ticks due in [start, end]; returns how many."""
        timers.check_period(start, end)
        self.registry.info(namespace, name)
        schedule = self.registry.latest((namespace, name)).workflow.schedule_
        if schedule is None:
            raise SpecError(f"backfill: workflow {namespace}/{name} has no schedule")
        times = timers.backfill_times(schedule, start, end)
        for due in times:
            faults.point("schedule.tick")
            self.events.append(tick_event(namespace, name, "", due.isoformat(), True))
        return len(times)
