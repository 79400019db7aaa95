"""Inputs besides the log's events: commands (submit, pause, resume and delete workflows; start and stop
executions and tasks), the executor's dispatches and reports, and timeouts.

:meth:`Commands.take` is the one way in: it records the input in the log
(see :mod:`.inputs`) and decides it at the ``now`` given, on the draft.
"""

import json
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiflow_nb.errors import IllegalTransitionError, NotFoundError
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import inputs, timers
from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.decisions import NewVersion
from aiflow_nb.scheduler.starts import Starts
from aiflow_nb.scheduler.state import (
    ExecutionState,
    failure_event,
    status_value,
    workflow_event,
)
from aiflow_nb.scheduler.transitions import outcome_change
from aiflow_nb.workflow import TaskAction, TaskStatus, WorkflowStatus, overrides
from aiflow_nb.workflow.records import WorkflowInfo

WorkflowKey = tuple[str, str]

log = logging.getLogger("aiflow_nb.scheduler")


class Commands(Starts):
    """What users and the executor ask of the scheduler (the base of :class:`.core.Draft`)."""

    #: Versions added, workflows put or deleted, schedules forgotten: the registry's part of the decisions.
    new_versions: list[NewVersion]
    workflow_changes: list[tuple[WorkflowKey, WorkflowInfo | None]]
    next_due_reset: list[WorkflowKey]

    def take(self, inp: inputs.Input, now: datetime) -> Any:
        """Decide one input at ``now``; what it returns is the command's answer.

        A command is recorded (its ``aiflow.input`` event is the first of its
        decisions; one that fails decides nothing); a dispatch, an outcome or
        the clock only when it changes something, so the log does not fill
        with inputs that did nothing.
        """
        self.now = now
        self.because(input=inputs.kind(inp), now=now)
        if isinstance(inp, inputs.Dispatch):
            return self._mark_running(inp)
        if isinstance(inp, inputs.Finished):
            return self._finished(inp)
        if isinstance(inp, inputs.Clock):
            return self._clock(datetime.fromisoformat(inp.wall) if inp.wall else None)
        self._record_input(inp)
        if isinstance(inp, inputs.Submit):
            return self._submit(inp)
        if isinstance(inp, inputs.SetPaused):
            return self._set_paused(inp.namespace, inp.name, inp.paused)
        if isinstance(inp, inputs.Delete):
            return self._delete(inp.namespace, inp.name)
        if isinstance(inp, inputs.StartExecution):
            return self.new_execution(inp.namespace, inp.name, parameters=inp.parameters)
        if isinstance(inp, inputs.StopExecution):
            return self._stop_execution(inp.execution_id)
        return self._task_action(inp.execution_id, inp.task, inp.action, inp.parameters)

    def _record_input(self, inp: inputs.Input, position: int | None = None) -> None:
        event = inputs.to_event(inp, self.now, self.checkpoint)
        if position is None:
            self.emit(event)
        else:
            self.events.insert(position, (event, None))

    def _clock(self, wall: datetime | None = None) -> None:
        """Implemented with the schedules (:class:`.core.Core`)."""
        raise NotImplementedError

    # -- commands ----------------------------------------------------------------

    def _submit(self, inp: inputs.Submit) -> int:
        workflow = inp.workflow
        if workflow is None:
            raise NotFoundError(f"workflow {inp.namespace}/{inp.name}: no stored version has digest {inp.digest}")
        spec = workflow.to_spec()
        digest = inp.digest
        key = (workflow.namespace, workflow.name)
        registry = self.registry
        info = registry.workflows.get(key)
        latest = self.store.latest_version(*key)
        if latest:
            stored = self.store.spec(*key, latest)
            if stored is not None and stored[1] == digest:
                if info is None:  # deleted, now submitted again
                    self.workflow_changes.append((key, WorkflowInfo(key[0], key[1], latest, False, self.now)))
                    self.emit(workflow_event(event_keys.WORKFLOW_SUBMITTED, *key, latest))
                return latest
        version = latest + 1
        now = self.now
        compiled = CompiledWorkflow.build(workflow, version, digest)
        self.new_versions.append(NewVersion(key[0], key[1], version, json.dumps(spec), digest, now, compiled))
        info = WorkflowInfo(key[0], key[1], version, info.paused if info else False, now)
        self.workflow_changes.append((key, info))
        self.next_due_reset.append(key)
        self.emit(workflow_event(event_keys.WORKFLOW_SUBMITTED, *key, version))
        return version

    def _set_paused(self, namespace: str, name: str, paused: bool) -> None:
        before = self.registry.info(namespace, name)
        if before.paused == paused:
            return
        info = replace(before, paused=paused)
        self.workflow_changes.append(((namespace, name), info))
        change = event_keys.WORKFLOW_PAUSED if paused else event_keys.WORKFLOW_RESUMED
        self.emit(workflow_event(change, namespace, name, info.version))

    def _delete(self, namespace: str, name: str) -> None:
        info = self.registry.info(namespace, name)
        for ex_id in [
            i for i, ex in self.running.items() if (ex.record.namespace, ex.record.workflow) == (namespace, name)
        ]:
            self._stop_execution(ex_id)
        self.workflow_changes.append(((namespace, name), None))
        self.emit(workflow_event(event_keys.WORKFLOW_DELETED, namespace, name, info.version))

    def running_execution(self, execution_id: int) -> ExecutionState:
        ex = self.running.get(execution_id)
        if ex is None:
            found = self.store.execution(execution_id)
            if found is None:
                raise NotFoundError(f"execution {execution_id} does not exist")
            raise IllegalTransitionError(f"execution {execution_id} is {found.status.value}, not RUNNING")
        return ex

    def _stop_execution(self, execution_id: int) -> None:
        ex = self.running_execution(execution_id)
        for te in list(ex.latest.values()):
            if te.status.alive:
                self._take_restart(execution_id, te.task)
                self._stop(te)
        self._finish(ex, WorkflowStatus.STOPPED)

    def _task_action(
        self, execution_id: int, task: str, action: TaskAction, parameters: dict[str, Any] | None = None
    ) -> None:
        ex = self.running_execution(execution_id)
        r = ex.record
        tasks = self.compiled((r.namespace, r.workflow, r.version)).workflow.tasks
        if task not in tasks:
            raise NotFoundError(f"execution {execution_id} has no task {task!r}")
        if parameters:
            overrides.check_declared(parameters, [tasks[task].to_spec()], f"task {task!r}")
        self.apply(ex, task, action, None, parameters)

    # -- the executor's side -------------------------------------------------------

    def _mark_running(self, inp: inputs.Dispatch) -> None:
        """It is about to be launched (right after this transaction commits)."""
        te = self.alive.get(inp.task_execution_id)
        if te is not None and te.status is TaskStatus.QUEUED and te.attempt == inp.attempt:
            self._record_input(inp)
            self._set_status(te, TaskStatus.RUNNING)

    def _finished(self, outcome: inputs.Finished) -> None:
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
        te = self._te(te)
        self._record_input(outcome)
        if te.status is TaskStatus.QUEUED:  # it ran before we marked it RUNNING
            self._set_status(te, TaskStatus.RUNNING)
        if change.timed_out:
            record = self._record(te.execution_id)
            self.emit(failure_event(event_keys.TASK_TIMEOUT, record, status_value(record, te, "TIMEOUT", change.error)))
        if change.status is TaskStatus.RETRYING:
            assert task is not None
            te.retry_at = timers.retry_time(self.now, task.retry_delay)
        self._set_status(te, change.status, change.error)

    def _stop_late(self, now: datetime) -> None:
        """Stop every run past its timeout; it will end FAILED (or retry)."""
        late = []
        for te in sorted(self.timed.values(), key=lambda te: te.id):  # in id order, however ``timed`` was filled
            if te.status is TaskStatus.RUNNING:
                task = self._task_of(te)
                if task is not None and timers.is_late(te.start_time, task.timeout, now):
                    late.append(te)
        for te in late:
            self._stop(te, "timeout")
