"""The submitted workflows, their compiled versions and the rule index.

Plain memory: the specs it has not compiled yet come from ``load_spec``
(the store in the engine, the log's submissions in ``verify``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from aiflow_nb.errors import NotFoundError
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler.compiled import CompiledWorkflow, EventRef
from aiflow_nb.workflow import Workflow
from aiflow_nb.workflow.records import WorkflowInfo
from aiflow_nb.workflow.tasks import Task

VersionKey = tuple[str, str, int]
WorkflowKey = tuple[str, str]
#: (spec JSON, digest) of a version, or None if there is no such version.
SpecLoader = Callable[[VersionKey], "tuple[str, str] | None"]


class Registry:
    """Which workflows exist (latest version, paused), their compiled versions, and who expects which event."""

    def __init__(self, load_spec: SpecLoader, workflows: Iterable[WorkflowInfo] = ()) -> None:
        self.load_spec = load_spec
        self.workflows: dict[WorkflowKey, WorkflowInfo] = {(w.namespace, w.name): w for w in workflows}
        self.versions: dict[VersionKey, CompiledWorkflow] = {}
        #: (namespace, key) -> the versions with a rule on it (every version an execution may pin).
        self.index: dict[EventRef, set[VersionKey]] = defaultdict(set)
        #: (namespace, key) -> the latest versions with a trigger on it.
        self.trigger_index: dict[EventRef, set[VersionKey]] = defaultdict(set)
        for info in self.workflows.values():
            self.activate(self.compiled((info.namespace, info.name, info.version)), latest=True)
        #: Workflows whose latest version has a schedule (on itself or a task).
        self.scheduled = {key for key in self.workflows if self._has_schedule(key)}

    # -- versions ----------------------------------------------------------------

    def compiled(self, key: VersionKey) -> CompiledWorkflow:
        found = self.versions.get(key)
        if found is None:
            stored = self.load_spec(key)
            if stored is None:
                raise NotFoundError(f"workflow {key[0]}/{key[1]} has no version {key[2]}")
            found = CompiledWorkflow.build(Workflow.from_spec(stored[0]), key[2], stored[1])
            self.versions[key] = found
            self.activate(found, latest=False)
        return found

    def add(self, compiled: CompiledWorkflow) -> None:
        """A version just submitted (compiled from the workflow given, not read back)."""
        self.versions[compiled.key] = compiled

    def activate(self, compiled: CompiledWorkflow, latest: bool) -> None:
        for ref in compiled.rules:
            self.index[ref].add(compiled.key)
        if latest:
            for ref in compiled.triggers:
                self.trigger_index[ref].add(compiled.key)

    def deactivate_triggers(self, compiled: CompiledWorkflow) -> None:
        for ref in compiled.triggers:
            self.trigger_index[ref].discard(compiled.key)

    def task(self, namespace: str, workflow: str, version: int, task: str) -> Task | None:
        """A task of a version, or None if it has no such task."""
        return self.compiled((namespace, workflow, version)).workflow.tasks.get(task)

    # -- workflows ----------------------------------------------------------------

    def info(self, namespace: str, name: str) -> WorkflowInfo:
        found = self.workflows.get((namespace, name))
        if found is None:
            raise NotFoundError(f"workflow {namespace}/{name} does not exist")
        return found

    def latest(self, key: WorkflowKey) -> CompiledWorkflow:
        return self.compiled((*key, self.workflows[key].version))

    def put(self, info: WorkflowInfo) -> None:
        self.workflows[(info.namespace, info.name)] = info
        self._update_scheduled((info.namespace, info.name))

    def remove(self, key: WorkflowKey) -> None:
        self.deactivate_triggers(self.latest(key))
        del self.workflows[key]
        self.scheduled.discard(key)

    def limit(self, namespace: str, name: str) -> int | None:
        """The workflow's max_active_executions (None: no limit, or no such workflow)."""
        if (namespace, name) not in self.workflows:
            return None
        return self.latest((namespace, name)).workflow.max_active_executions

    def _has_schedule(self, key: WorkflowKey) -> bool:
        workflow = self.latest(key).workflow
        return workflow.schedule_ is not None or any(t.schedule_ is not None for t in workflow.tasks.values())

    def _update_scheduled(self, key: WorkflowKey) -> None:
        if self._has_schedule(key):
            self.scheduled.add(key)
        else:
            self.scheduled.discard(key)

    # -- events ---------------------------------------------------------------------

    def wanted_keys(self) -> set[str]:
        """Every key an unscoped event may have to matter (scoped events matter anyway)."""
        wanted = {key for (_, key), versions in self.index.items() if versions}
        wanted.update(key for (_, key), versions in self.trigger_index.items() if versions)
        wanted.add(event_keys.SCHEDULE_TICK)
        return wanted
