"""Engine: the event log, the scheduler and an executor, in one process.

This is the in-process API for scripts and tests; the service hosts
exactly this object.  Here: its API (workflows, executions, why, replay,
verify, events); the home opened and the loop in :mod:`aiflow_nb.engine_loop`,
a run's files in :mod:`aiflow_nb.engine_runs`.

>>> from aiflow_nb import BashTask, Engine, Workflow
>>> engine = Engine(home=tmp_home)                      # doctest: +SKIP
>>> with Workflow("hello") as wf:                       # doctest: +SKIP
...     BashTask("say", command="echo hello")
>>> engine.submit(wf)                                   # doctest: +SKIP
1
>>> ex = engine.start_execution("hello")                # doctest: +SKIP
>>> engine.wait_for(lambda: engine.execution(ex).status.finished)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiflow_nb import faults
from aiflow_nb.engine_loop import CASCADE_ROUNDS, EngineLoop, damaged, prepare_home, utc_now
from aiflow_nb.engine_runs import RunFiles
from aiflow_nb.errors import (
    AiflowError,
    NotFoundError,
    SpecError,
)
from aiflow_nb.events import DEFAULT_NAMESPACE, Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.events.event import EncodedEvents
from aiflow_nb.events.log import BatchKey
from aiflow_nb.executors.base import known_executors
from aiflow_nb.scheduler import dryrun, inputs, rerun, verify, why
from aiflow_nb.scheduler.verify import Report
from aiflow_nb.workflow import TaskAction, Workflow, WorkflowStatus, overrides
from aiflow_nb.workflow.graph import workflow_svg
from aiflow_nb.workflow.records import (
    TaskExecution,
    WhyLink,
    WorkflowExecution,
    WorkflowInfo,
    latest_statuses,
)

log = logging.getLogger("aiflow_nb.engine")


class Engine(EngineLoop, RunFiles):
    """Owns one home: its DuckDB file, scheduler and executor (see :class:`~aiflow_nb.engine_loop.EngineLoop`).

    ``clock`` is injectable so tests can move time (schedules, retries)
    without sleeping.
    """

    # -- workflows ---------------------------------------------------------------

    def submit(self, workflow: Workflow) -> int:
        """Store a new version of ``workflow`` (unless it is unchanged) and return it."""
        workflow.validate()
        named = [task for task in workflow.tasks.values() if task.executor is not None]
        known = known_executors() if named else []  # reading the packages' entry points is slow: only if needed
        for task in named:
            if task.executor not in known:
                raise SpecError(f"task {task.name!r}: unknown executor {task.executor!r}; known: {', '.join(known)}")
        version = self._command(lambda: self.scheduler.submit(workflow))
        faults.point("submit.after")
        return version

    def workflows(self) -> list[WorkflowInfo]:
        """Every submitted workflow, with its newest execution and next scheduled runs."""
        with self.db.lock:
            latest = self.scheduler.store.latest_executions()  # one query, not one per workflow
            return [
                self._described(info, latest.get((info.namespace, info.name)))
                for info in self.scheduler.store.workflows()
            ]

    def workflow_info(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> WorkflowInfo:
        with self.db.lock:
            info = self.scheduler.workflow_info(namespace, name)
            newest = self.scheduler.store.executions(workflow=name, namespace=namespace, limit=1)
            return self._described(info, newest[-1] if newest else None)

    def _described(self, info: WorkflowInfo, latest: WorkflowExecution | None) -> WorkflowInfo:
        return replace(info, latest_execution=latest, next_runs=self.scheduler.next_runs(info.namespace, info.name))

    def workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE, version: int | None = None) -> Workflow:
        with self.db.lock:
            if version is None:
                version = self.scheduler.workflow_info(namespace, name).version
            return self.scheduler.compiled((namespace, name, version)).workflow

    def next_runs(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> dict[str, datetime]:
        """When each schedule is next due: ``""`` for the workflow's own, else the task's name."""
        with self.db.lock:
            return self.scheduler.next_runs(namespace, name)

    def backfill(self, name: str, start: datetime, end: datetime, namespace: str = DEFAULT_NAMESPACE) -> int:
        """Send the tick events the workflow's schedule had due from ``start`` to ``end``.

        A due time already ticked (live or by an earlier backfill) is not
        sent again.  Returns how many due times the period holds.
        """
        return self._command(lambda: self.scheduler.backfill(namespace, name, start, end))

    def pause(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._command(lambda: self.scheduler.set_paused(namespace, name, True))

    def resume(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._command(lambda: self.scheduler.set_paused(namespace, name, False))

    def delete_workflow(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Stop its running executions and forget the workflow (history stays)."""
        self._command(lambda: self.scheduler.delete(namespace, name))

    def graph_svg(self, name: str, namespace: str = DEFAULT_NAMESPACE, execution: int | None = None) -> str:
        """The workflow's graph as SVG, colored by an execution's runs (default: its newest execution's).

        With ``execution`` the graph is of the version that execution ran.
        """
        if execution is not None:
            ex = self.execution(execution)
            if (ex.namespace, ex.workflow) != (namespace, name):
                raise NotFoundError(f"execution {execution} is not of workflow {namespace}/{name}")
            return workflow_svg(
                self.workflow(name, namespace, ex.version), latest_statuses(self.task_executions(ex.id))
            )
        workflow = self.workflow(name, namespace)
        latest = self.executions(workflow=name, namespace=namespace, limit=1)
        return workflow_svg(workflow, latest_statuses(self.task_executions(latest[-1].id)) if latest else None)

    # -- executions --------------------------------------------------------------

    def start_execution(
        self, name: str, namespace: str = DEFAULT_NAMESPACE, parameters: dict[str, Any] | None = None
    ) -> int:
        given = overrides.checked(parameters)
        return self._command(lambda: self.scheduler.start_execution(namespace, name, given))

    def stop_execution(self, execution_id: int) -> WorkflowExecution:
        """Stop a running execution and its running tasks; returns it, STOPPED."""
        self._command(lambda: self.scheduler.stop_execution(execution_id))
        return self.execution(execution_id)

    def start_task(self, execution_id: int, task: str, parameters: dict[str, Any] | None = None) -> list[TaskExecution]:
        """START ``task`` in a running execution (nothing if it is alive); returns the task's runs."""
        return self._task_action(execution_id, task, TaskAction.START, overrides.checked(parameters))

    def stop_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, TaskAction.STOP)

    def restart_task(self, execution_id: int, task: str) -> list[TaskExecution]:
        return self._task_action(execution_id, task, TaskAction.RESTART)

    def _task_action(
        self, execution_id: int, task: str, action: TaskAction, parameters: dict[str, Any] | None = None
    ) -> list[TaskExecution]:
        self._command(lambda: self.scheduler.task_action(execution_id, task, action, parameters))
        return [te for te in self.task_executions(execution_id) if te.task == task]

    def execution(self, execution_id: int) -> WorkflowExecution:
        with self.db.lock:
            found = self.scheduler.store.execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        return found

    def executions(
        self,
        workflow: str | None = None,
        namespace: str | None = None,
        status: WorkflowStatus | str | None = None,
        limit: int | None = None,
    ) -> list[WorkflowExecution]:
        wanted = WorkflowStatus(status) if status is not None else None
        with self.db.lock:
            return self.scheduler.store.executions(workflow, namespace, wanted, limit)

    def latest_executions(self) -> dict[tuple[str, str], WorkflowExecution]:
        """The newest execution of each workflow, keyed by (namespace, name)."""
        with self.db.lock:
            return self.scheduler.store.latest_executions()

    def task_executions(self, execution_id: int) -> list[TaskExecution]:
        """Every task execution of an execution, oldest first."""
        with self.db.lock:
            return self.scheduler.store.task_executions(execution_id)

    def task_execution(self, task_execution_id: int) -> TaskExecution:
        with self.db.lock:
            found = self.scheduler.store.task_execution(task_execution_id)
        if found is None:
            raise NotFoundError(f"task execution {task_execution_id} does not exist")
        return found

    def why(self, task_execution_id: int) -> list[WhyLink]:
        """Why this run was made: its chain of causes, the run first, the outside event or command last."""
        with self.db.lock:
            return why.task_chain(why.StoreLookup(self.scheduler.store), task_execution_id)

    def why_execution(self, execution_id: int) -> list[WhyLink]:
        """Why this execution was made, as :meth:`why` for a run."""
        with self.db.lock:
            return why.execution_chain(why.StoreLookup(self.scheduler.store), execution_id)

    def replay(
        self,
        workflow: Workflow | str,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        outcomes: str = "recorded",
        diff: bool = False,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        version: int | None = None,
    ) -> dryrun.Replay:
        """What ``workflow`` would have made over the logged events after ``since`` up to ``until``.

        In memory: nothing is written, nothing is launched (docs/semantics.md, "replay").
        ``workflow``: a draft, or the name of a submitted one (its ``version``, default the latest).
        ``diff``: compare with what the submitted version of the workflow did (it must exist).
        """
        dryrun.check_outcomes(outcomes)
        if isinstance(workflow, str):
            workflow = self.workflow(workflow, namespace, version)  # NotFoundError names what is missing
        with self.db.lock:
            store = self.scheduler.store
            latest = self.log.latest_offset()
            start = self._offset_at(since, 0)
            end = self._offset_at(until, latest)
            dryrun.check_window(start, end, latest)
            key = (workflow.namespace, workflow.name)
            known = {(w.namespace, w.name) for w in store.workflows()}
            if diff and key not in known:
                raise SpecError(f"replay --diff: no workflow {key[0]}/{key[1]} was submitted")
            spec = json.dumps(workflow.to_spec())
            keys = rerun.wanted_keys({(*key, 1): (spec, workflow.digest())})
            events = list(store.rule_events(keys, since=start, until=end))
            ids = {
                int(e.value["execution_id"])
                for e in events
                if e.key == event_keys.EXECUTION_STATUS
                and e.namespace == key[0]
                and isinstance(e.value, dict)
                and e.value.get("workflow") == key[1]
                and e.value.get("status") == "RUNNING"
            }
            reality = dryrun.Reality(
                [(ex, store.cause_of("execution", ex.id)) for i in sorted(ids) if (ex := store.execution(i))],
                [(te, store.cause_of("task", te.id)) for te in store.task_executions_of(ids)],
            )
            recorded = [inputs.from_value(o, v) for o, v in store.recorded_inputs(start, end)]
            submits = [inputs.from_value(o, v) for o, v in store.recorded_inputs(kind="submit")]
            last_ticks, submitted_at = dryrun.seed_ticks(
                workflow, store.events_of_key(event_keys.SCHEDULE_TICK, start), submits, start
            )
        result = dryrun.DryRun(workflow, start, end, outcomes, reality, last_ticks, submitted_at).run(events, recorded)
        if not diff:
            result.diff = None
        return result

    def _offset_at(self, when: int | datetime | None, default: int) -> int:
        """An offset as given, or the last offset logged before a time."""
        if when is None:
            return default
        if isinstance(when, datetime):
            return self.scheduler.store.offset_before(when)
        return int(when)

    def verify(self) -> Report:
        """Replay the log from offset 0 and compare the state it implies with the stored one.

        See docs/semantics.md ("verify") for what is compared.
        """
        with self.db.lock:
            return verify.check(self.scheduler.store)

    # -- events ------------------------------------------------------------------

    def send_event(
        self,
        key: str,
        value: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        sender: str | None = None,
        context: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """See :meth:`AiflowApi.send_event`."""
        return self.send_events([Event(key, value, namespace, sender, context)], [idempotency_key])[0]

    def send_events(
        self,
        events: Sequence[Event] | EncodedEvents,
        idempotency_keys: Sequence[str | None] | None = None,
        *,
        batch_keys: Sequence[BatchKey] = (),
        on_commit: Callable[[list[int]], None] | None = None,
    ) -> list[int]:
        """See :meth:`AiflowApi.send_events`.

        ``batch_keys``: idempotency keys of ranges of the events (see ``EventLog.stage``);
        ``events`` may come encoded already (the service encodes a request's as it reads it).

        The scheduler reacts to them in that same transaction: the executions
        and launches they cause are committed with them, and the launches are
        sent right after.  ``on_commit(offsets)`` runs once they are durable,
        before any launch (the service answers the request there).
        """
        with self.db.lock:
            try:
                with self.db.transaction():
                    offsets = self.log.stage(events, idempotency_keys, batch_keys)
                    self.scheduler.consume(self.batch_size, just_appended=True)
                    self._commit()
                    faults.point("commit.before")
            except AiflowError:
                raise  # the events themselves are wrong: nothing was appended
            except Exception:
                # A scheduler fault must not cost the sender its events: append
                # them alone; the loop retries the rules (and logs the fault again).
                log.exception("scheduler failed on new events; appending them without it")
                with self.db.transaction():
                    offsets = self.log.stage(events, idempotency_keys, batch_keys)
            faults.point("commit.after")
            self._notify()
            if on_commit is not None:
                on_commit(offsets)
            try:
                self._act()
            except Exception:
                # The events are committed: report success; the loop retries the launches.
                log.exception("launching after new events failed; retrying in the loop")
            self._notify()
        self._wake.set()
        return offsets

    def events(
        self,
        since: int = 0,
        limit: int | None = None,
        key: str | None = None,
        namespace: str | None = None,
        sender: str | None = None,
    ) -> list[Event]:
        """See :meth:`AiflowApi.events`."""
        return self.log.read(since=since, limit=limit, key=key, namespace=namespace, sender=sender)

    def stream(self, since: int = 0, stop: threading.Event | None = None) -> Iterator[Event]:
        """Every event after ``since``, then each new one as it is committed.

        Ends when ``stop`` is set (noticed within a second) or the engine closes.
        """
        while not (stop is not None and stop.is_set()) and not self._closing.is_set():
            events = self.log.read(since=since, limit=1000)
            for event in events:
                since = event.offset or since
                yield event
            if not events:
                with self._committed:
                    if self.log.latest_offset() <= since:
                        self._committed.wait(1.0)


if TYPE_CHECKING:
    from aiflow_nb.workflow.api import AiflowApi

    def _offers_the_api(engine: Engine) -> AiflowApi:
        return engine  # mypy checks that the engine offers the one API, as the client does


__all__ = ["CASCADE_ROUNDS", "Engine", "damaged", "prepare_home", "utc_now"]
