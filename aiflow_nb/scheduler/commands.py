"""Commands: submit, pause, resume and delete workflows; start and stop executions and tasks; the executor's reports."""

import json
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiflow_nb import faults
from aiflow_nb.errors import IllegalTransitionError, NotFoundError
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import timers
from aiflow_nb.scheduler.actions import Actions
from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.state import (
    ExecutionState,
    failure_event,
    status_value,
    workflow_event,
)
from aiflow_nb.scheduler.transitions import outcome_change
from aiflow_nb.workflow import TaskAction, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.workflow.records import Outcome, WorkflowInfo

log = logging.getLogger("aiflow_nb.scheduler")


class Commands(Actions):
    """What users and the executor ask of the scheduler (the base of :class:`.scheduler.Scheduler`)."""

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
