"""Workflow: tasks, their rules, triggers and a schedule; specs as JSON."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiflow_nb.errors import SpecError, UnknownTaskError
from aiflow_nb.events.event import DEFAULT_NAMESPACE
from aiflow_nb.workflow import context
from aiflow_nb.workflow.conditions import Condition, EventCondition, condition_from_spec
from aiflow_nb.workflow.schedule import Schedule
from aiflow_nb.workflow.task_spec import task_from_spec
from aiflow_nb.workflow.tasks import Task, check_name

if TYPE_CHECKING:
    from aiflow_nb.workflow.records import TaskExecution
    from aiflow_nb.workflow.status import TaskStatus

SPEC_VERSION = 1
ON_MAX_ACTIVE = ("queue", "skip")


class Workflow:
    """A named set of tasks with rules, in a namespace.

    >>> from aiflow_nb import BashTask
    >>> with Workflow("hello") as wf:
    ...     a = BashTask("a", command="echo a")
    ...     b = BashTask("b", command="echo b").start_after(a)
    >>> Workflow.from_spec(wf.to_spec()) == wf
    True
    """

    def __init__(
        self,
        name: str,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        max_active_executions: int | None = None,
        on_max_active: str = "queue",
    ) -> None:
        self.name = check_name("workflow", name)
        self.namespace = check_name("namespace", namespace)
        limit = max_active_executions
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise SpecError(f"workflow {name!r}: max_active_executions must be a positive integer, got {limit!r}")
        if on_max_active not in ON_MAX_ACTIVE:
            raise SpecError(
                f"workflow {name!r}: on_max_active must be one of {', '.join(ON_MAX_ACTIVE)}, got {on_max_active!r}"
            )
        #: At most this many RUNNING executions; triggers and schedules beyond it
        #: wait in order ("queue") or are dropped ("skip").
        self.max_active_executions = limit
        self.on_max_active = on_max_active
        self.tasks: dict[str, Task] = {}
        self.triggers: list[Condition] = []
        self.schedule_: Schedule | None = None
        self._context: Any = None

    def __enter__(self) -> Workflow:
        self._context = context.entered(self)
        self._context.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._context.__exit__(exc_type, exc, tb)
        self._context = None

    def add_task(self, task: Task) -> Task:
        """Add a task; a task of the same name is replaced."""
        self.tasks[task.name] = task
        return task

    def task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTaskError(f"workflow {self.name!r} has no task {name!r}") from None

    def trigger_on(self, condition: Condition | str) -> Workflow:
        """Start a new execution each time ``condition`` is met."""
        if isinstance(condition, str):
            condition = EventCondition(condition)
        if not isinstance(condition, Condition):
            raise SpecError(f"workflow {self.name!r}: trigger_on needs a Condition or event key")
        self.triggers.append(condition)
        return self

    def schedule(
        self,
        cron: str | None = None,
        interval: timedelta | None = None,
        timezone: str = "UTC",
        catchup: bool = False,
    ) -> Workflow:
        """Start a new execution on a cron or interval schedule."""
        self.schedule_ = Schedule(cron, interval, timezone, catchup)
        return self

    def validate(self) -> None:
        """Check cross-references; raises a SpecError naming the culprit."""
        if not self.tasks:
            raise SpecError(f"workflow {self.name!r} has no tasks")
        for task in self.tasks.values():
            for i, rule in enumerate(task.rules):
                for upstream in sorted(rule.condition.task_names()):
                    if upstream not in self.tasks:
                        raise UnknownTaskError(
                            f"task {task.name!r}, rule {i + 1}: upstream task {upstream!r} "
                            f"is not in workflow {self.name!r}"
                        )
        for i, trigger in enumerate(self.triggers):
            if trigger.task_names():
                raise SpecError(
                    f"workflow {self.name!r}, trigger {i + 1}: a trigger cannot wait on task status "
                    "(it starts a new execution)"
                )

    def to_spec(self) -> dict[str, Any]:
        """A self-contained JSON-able description (notebooks embedded)."""
        self.validate()
        return {
            "spec_version": SPEC_VERSION,
            "name": self.name,
            "namespace": self.namespace,
            "tasks": [t.to_spec() for t in self.tasks.values()],
            "triggers": [c.to_spec() for c in self.triggers],
            "schedule": self.schedule_.to_spec() if self.schedule_ else None,
            "max_active_executions": self.max_active_executions,
            "on_max_active": self.on_max_active,
        }

    def digest(self) -> str:
        """A hash of the spec: the same workflow submitted twice is one version."""
        text = json.dumps(self.to_spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_spec(cls, spec: Any) -> Workflow:
        if isinstance(spec, (str, bytes)):
            try:
                spec = json.loads(spec)
            except ValueError as exc:
                raise SpecError(f"workflow spec is not valid JSON: {exc}") from None
        if not isinstance(spec, Mapping):
            raise SpecError("a workflow spec must be a JSON object")
        version = spec.get("spec_version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError(f"spec_version {version!r} is not supported (this is {SPEC_VERSION})")
        for field in ("name", "tasks"):
            if field not in spec:
                raise SpecError(f"workflow spec is missing {field!r}")
        wf = cls(
            spec["name"],
            spec.get("namespace") or DEFAULT_NAMESPACE,
            max_active_executions=spec.get("max_active_executions"),
            on_max_active=spec.get("on_max_active") or "queue",
        )
        tasks = spec["tasks"]
        if not isinstance(tasks, list):
            raise SpecError(f"workflow {wf.name!r}: 'tasks' must be a list")
        for t in tasks:
            task = task_from_spec(t)
            if task.name in wf.tasks:
                raise SpecError(f"workflow {wf.name!r}: task {task.name!r} appears twice")
            wf.add_task(task)
        triggers = spec.get("triggers") or []
        if not isinstance(triggers, list):
            raise SpecError(f"workflow {wf.name!r}: 'triggers' must be a list")
        for i, c in enumerate(triggers):
            try:
                wf.triggers.append(condition_from_spec(c))
            except SpecError as exc:
                raise type(exc)(f"workflow {wf.name!r}, trigger {i + 1}: {exc}") from None
        if spec.get("schedule") is not None:
            wf.schedule_ = Schedule.from_spec(spec["schedule"])
        wf.validate()
        return wf

    @classmethod
    def from_notebook(cls, path: str | Path, name: str | None = None, namespace: str | None = None) -> Workflow:
        """The workflow a notebook's ``%%aiflow`` cells define (read, never run).

        A notebook defining several needs ``name`` (and ``namespace`` if names repeat);
        all of them: :func:`aiflow_nb.workflow.cells.workflows_from_notebook`.
        """
        from aiflow_nb.workflow.cells import workflows_from_notebook

        found = workflows_from_notebook(path)
        chosen = [w for w in found if name in (None, w.name) and namespace in (None, w.namespace)]
        if len(chosen) == 1:
            return chosen[0]
        names = ", ".join(f"{w.namespace}/{w.name}" for w in found)
        if not chosen:
            raise SpecError(f"{Path(path).name} defines no workflow {name!r} (it defines {names})")
        raise SpecError(f"{Path(path).name} defines several workflows ({names}): pass name= to choose one")

    def graph(self, runs: Mapping[str, TaskStatus] | Iterable[TaskExecution] = ()) -> Any:
        """The workflow drawn by graphviz (a ``graphviz.Digraph``; a notebook shows it as SVG).

        ``runs``: an execution's task executions (each task is colored by its
        latest run's status), or the status of each task by name.
        """
        # Imported here: defining a workflow needs no graphviz.
        from aiflow_nb.workflow.graph import workflow_graph
        from aiflow_nb.workflow.records import latest_statuses

        statuses = runs if isinstance(runs, Mapping) else latest_statuses(runs)
        return workflow_graph(self, statuses)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workflow):
            return NotImplemented
        return self.to_spec() == other.to_spec()

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, namespace={self.namespace!r}, tasks={list(self.tasks)})"
