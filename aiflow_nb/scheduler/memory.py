"""The scheduler's memory: the state the decision core decides over, and how a decision changes it.

:class:`State` holds the running executions and their latest runs, the
alive runs, condition state, schedule ticks and the registry of workflow
versions.  The core reads it and returns :class:`~.decisions.Decisions`;
only :meth:`State.apply` changes it.  :class:`Reads` is what both the
state and the core's draft (its copy-on-write view) ask of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from aiflow_nb.errors import NotFoundError
from aiflow_nb.scheduler import rules, timers
from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.decisions import Decisions, TickKey
from aiflow_nb.scheduler.registry import Registry, VersionKey, WorkflowKey
from aiflow_nb.scheduler.state import ExecutionState
from aiflow_nb.workflow import TaskStatus, WorkflowStatus, overrides
from aiflow_nb.workflow.records import TaskExecution, WorkflowExecution, WorkflowInfo
from aiflow_nb.workflow.schedule import Schedule
from aiflow_nb.workflow.tasks import Task

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The alive statuses (``TaskStatus.alive``), as a set to look up.
_ALIVE = frozenset(s for s in TaskStatus if s.alive)


class Rows(Protocol):
    """The rows beyond memory: the DuckDB store in the engine, memory in ``verify``.

    The core only reads them; the shell writes a decision's versions and workflows.
    """

    def execution(self, execution_id: int) -> WorkflowExecution | None: ...
    def spec(self, namespace: str, name: str, version: int) -> tuple[str, str] | None: ...
    def latest_version(self, namespace: str, name: str) -> int: ...
    def add_version(self, namespace: str, name: str, version: int, spec: str, digest: str, now: datetime) -> None: ...
    def put_workflow(self, info: WorkflowInfo) -> None: ...
    def delete_workflow(self, namespace: str, name: str) -> None: ...


def schedules(registry: Registry, key: WorkflowKey) -> list[tuple[str, Schedule]]:
    """The latest version's schedules: ``""`` for the workflow's own, else the task's name."""
    workflow = registry.latest(key).workflow
    found: Iterable[tuple[str, Schedule | None]] = [
        ("", workflow.schedule_),
        *((t.name, t.schedule_) for t in workflow.tasks.values()),
    ]
    return [(task, schedule) for task, schedule in found if schedule is not None]


class Reads:
    """Look-ups over the memory (a :class:`State`, or the core's draft of one)."""

    store: Rows
    registry: Registry
    running: Any
    timed: Any

    @property
    def workflows(self) -> dict[WorkflowKey, WorkflowInfo]:
        return self.registry.workflows

    def compiled(self, key: VersionKey) -> CompiledWorkflow:
        return self.registry.compiled(key)

    def workflow_info(self, namespace: str, name: str) -> WorkflowInfo:
        return self.registry.info(namespace, name)

    def _record(self, execution_id: int) -> WorkflowExecution:
        ex = self.running.get(execution_id)
        if ex is not None:
            return ex.record  # type: ignore[no-any-return]
        found = self.store.execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        return found

    def _task_of(self, te: TaskExecution) -> Task | None:
        r = self._record(te.execution_id)
        return self.registry.task(r.namespace, r.workflow, r.version, te.task)

    def _watch_time(self, te: TaskExecution) -> None:
        """Keep in ``timed`` the alive runs a timer may change: RETRYING ones, RUNNING ones with a timeout."""
        if te.status is TaskStatus.RETRYING:
            self.timed[te.id] = te
            return
        if te.status is TaskStatus.RUNNING:
            task = self._task_of(te)
            if task is not None and task.timeout is not None:
                self.timed[te.id] = te
                return
        self.timed.pop(te.id, None)


class State(Reads):
    """What the scheduler holds in memory between inputs; changed only by :meth:`apply`."""

    def clear(
        self,
        registry: Registry,
        checkpoint: int,
        last_ids: tuple[int, int],
        last_ticks: dict[TickKey, datetime] | None = None,
    ) -> None:
        """Empty memory (the shell then loads the running executions into it)."""
        #: The core's draft of this state (made by the first :func:`~.core.decide`, then reused).
        self.draft: Any = None
        self.registry = registry
        #: The time of the last input (an event without a create_time is decided at it).
        self.now = EPOCH
        #: How far the log has been read (the offset of the last event applied, or passed over).
        self.checkpoint = checkpoint
        self.last_execution_id, self.last_task_id = last_ids
        self.running: dict[int, ExecutionState] = {}
        self.by_version: dict[VersionKey, set[int]] = defaultdict(set)
        self.alive: dict[int, TaskExecution] = {}
        self.states: rules.States = {}
        #: Alive runs a timer may change: RETRYING ones, RUNNING ones with a timeout.
        self.timed: dict[int, TaskExecution] = {}
        self.last_ticks: dict[TickKey, datetime] = dict(last_ticks or {})
        self.next_due: dict[TickKey, datetime] = {}

    def _track(self, state: ExecutionState) -> None:
        r = state.record
        self.running[r.id] = state
        self.by_version[(r.namespace, r.workflow, r.version)].add(r.id)
        self.compiled((r.namespace, r.workflow, r.version))

    def _untrack(self, execution_id: int) -> None:
        state = self.running.pop(execution_id, None)
        if state is not None:
            r = state.record
            self.by_version[(r.namespace, r.workflow, r.version)].discard(r.id)

    def apply(self, d: Decisions) -> None:
        """Change the memory as ``d`` says (``d`` is kept as it is: its records become the state's)."""
        self.now = d.now
        self.last_execution_id, self.last_task_id = d.last_ids
        if d.versions or d.workflows:
            self._apply_workflows(d)
        if d.next_due_reset or d.next_due or d.ticks:
            self._apply_schedules(d)
        if d.states:
            self.states.update(d.states)
        running = self.running
        by_version = self.by_version
        for ex_id, ex in d.running.items():
            # The decision's own copy, with its record, latest runs and unseen status events.
            if ex_id not in running:
                r = ex.record
                by_version[(r.namespace, r.workflow, r.version)].add(ex_id)
            running[ex_id] = ex
        if d.executions:
            for ex_id, record in d.executions.items():
                if record.status is not WorkflowStatus.RUNNING:
                    self._untrack(ex_id)
        alive = self.alive
        timed = self.timed
        for te in d.tasks.values():
            status = te.status
            if status in _ALIVE:
                alive[te.id] = te
            else:
                alive.pop(te.id, None)
            if status is TaskStatus.RETRYING or status is TaskStatus.RUNNING or te.id in timed:
                self._watch_time(te)

    def _apply_workflows(self, d: Decisions) -> None:
        registry = self.registry
        for version in d.versions:
            registry.add(version.compiled)
        for key, info in d.workflows:
            old = registry.workflows.get(key)
            if info is None:
                registry.remove(key)
                continue
            if old is None or old.version != info.version:
                if old is not None:
                    registry.deactivate_triggers(registry.latest(key))
                registry.activate(registry.compiled((*key, info.version)), latest=True)
            registry.put(info)

    def _apply_schedules(self, d: Decisions) -> None:
        if d.next_due_reset:
            dropped = set(d.next_due_reset)
            for due in [k for k in self.next_due if k[:2] in dropped]:
                del self.next_due[due]
        if d.next_due:
            self.next_due.update(d.next_due)
        if d.ticks:
            self.last_ticks.update(d.ticks)

    # -- reads for the shell ----------------------------------------------------------

    def next_runs(self, namespace: str, name: str) -> dict[str, datetime]:
        """When each schedule of the workflow is next due ('' is the workflow's own)."""
        info = self.registry.info(namespace, name)
        due = {}
        for task, schedule in schedules(self.registry, (namespace, name)):
            key = (namespace, name, task)
            due[task] = self.next_due.get(key) or timers.first_due(schedule, self.last_ticks.get(key), info.create_time)
        return due

    def active_executions(self, namespace: str, name: str) -> int:
        return sum(len(ids) for (ns, wf, _), ids in self.by_version.items() if (ns, wf) == (namespace, name))

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
        given = {**(ex.parameters or {}), **(te.parameters or {})}  # a task start's values over its execution's
        return {
            "task_execution_id": te.id,
            "attempt": te.attempt,
            "execution_id": ex.id,
            "workflow": ex.workflow,
            "namespace": ex.namespace,
            "version": ex.version,
            "task": overrides.with_overrides(task.to_spec(), given),
            "seq": te.seq,
            "event": te.event,
        }
