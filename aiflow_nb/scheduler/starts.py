"""Executions started, decided on a draft: by a trigger or a tick, by a user, or from the queue at the limit.

An execution pins its workflow's latest version and starts its tasks that
have no START rule and no schedule (its first runs) in the same input.  A
workflow at its ``max_active_executions`` skips a trigger or queues it
(condition state ``waiting:<namespace>/<workflow>``) until an execution ends.
"""

from __future__ import annotations

import logging
from typing import Any

from aiflow_nb.errors import LimitReachedError, SpecError
from aiflow_nb.events import Event
from aiflow_nb.scheduler import rules
from aiflow_nb.scheduler.actions import Actions
from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.emitted import EXECUTION_ENTRY, TASK_ENTRY
from aiflow_nb.scheduler.state import ExecutionState, event_dict
from aiflow_nb.workflow import TaskStatus, WorkflowStatus, overrides
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo

log = logging.getLogger("aiflow_nb.scheduler")

_QUEUED = TaskStatus.QUEUED
_QUEUED_TEXT = TaskStatus.QUEUED.value
_RUNNING_TEXT = WorkflowStatus.RUNNING.value


class Starts(Actions):
    """New executions and their first runs (a base of :class:`.core.Draft`)."""

    def active_executions(self, namespace: str, name: str) -> int:
        return self.by_version.count(namespace, name)

    def _waiting(self, namespace: str, name: str) -> dict[str, Any]:
        """The workflow's queue of waiting triggers, the draft's own copy (to change)."""
        key = rules.waiting_key(namespace, name)
        state = self.changes.states.get(key)
        if state is None:
            before = self.states.get(key)
            state = {**before, "events": list(before["events"])} if before else {"events": []}
            self._set_state(key, state)
        return state

    def trigger_execution(self, namespace: str, name: str, event: Event) -> None:
        """Start an execution for a trigger or tick, unless the workflow is at its limit."""
        registry = self.registry
        info = registry.workflows.get((namespace, name))
        if info is None:
            self.new_execution(namespace, name, event)  # refused: no such workflow
            return
        compiled = registry.versions.get((namespace, name, info.version)) or registry.latest((namespace, name))
        limit = compiled.workflow.max_active_executions
        if limit is None:
            if compiled.initial or compiled.waits_on_events:
                self._start(info, compiled, event, None)
                return
            self.new_execution(namespace, name, event)  # refused: nothing can start
            return
        if self.active_executions(namespace, name) < limit:
            self.new_execution(namespace, name, event)
            return
        if compiled.workflow.on_max_active == "skip":
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
        compiled = self.compiled((namespace, name, info.version))
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
        return self._start(info, compiled, event, parameters)

    def _start(
        self, info: WorkflowInfo, compiled: CompiledWorkflow, event: Event | None, parameters: dict[str, Any] | None
    ) -> int:
        """A new RUNNING execution of ``compiled`` (checked), its first runs queued, every record made once."""
        namespace, name, version = info.namespace, info.name, info.version
        ex_id = self.last_execution_id = self.last_execution_id + 1
        data = event_dict(event)
        now = self.now
        # Positional (id, namespace, workflow, version, status, start_time, end_time, event, parameters).
        record = WorkflowExecution(
            ex_id, namespace, name, version, WorkflowStatus.RUNNING, now, None, data, parameters or None
        )
        why = self.cause
        changes = self.changes
        changes.executions[ex_id] = record
        changes.causes[("execution", ex_id)] = why
        events = self.events
        events.append_entry((EXECUTION_ENTRY, namespace, name, ex_id, version, _RUNNING_TEXT))
        latest: dict[str, TaskExecution] = {}
        state = ExecutionState(record, latest, 0)
        self._owned[ex_id] = state
        self.running.upper[ex_id] = state  # a new id: the state underneath has none
        added = self.by_version.added
        pinned = added.get((namespace, name, version))
        if pinned is None:
            added[(namespace, name, version)] = {ex_id}  # a new id: none underneath, none removed
        else:
            pinned.add(ex_id)
        if not compiled.initial:
            return ex_id
        alive, tasks, causes, launches = (
            self.alive.upper,
            changes.tasks,
            changes.causes,
            changes.launches,
        )
        te_id = self.last_task_id
        for task in compiled.initial:
            te_id += 1
            # Positional (id, execution_id, task, seq, status, attempt, create_time, start_time, end_time,
            # error, event).
            te = TaskExecution(te_id, ex_id, task, 1, _QUEUED, 1, now, None, None, None, data)
            latest[task] = alive[te_id] = tasks[te_id] = te  # a new id: none underneath
            causes[("task", te_id)] = why
            launches.append((te_id, 1))
            events.append_entry((TASK_ENTRY, namespace, name, ex_id, task, 1, 1, te_id, _QUEUED_TEXT, None))
        state.unseen = len(compiled.initial)
        self.last_task_id = te_id
        return ex_id
