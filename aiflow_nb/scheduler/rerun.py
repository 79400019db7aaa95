"""The log replayed through the decision core, in memory: the state the rules imply.

Pure: the log's events and recorded inputs (and the stored workflow specs,
which the submissions name by digest) in, a :class:`~.core.Core` holding
every execution, run, condition state and schedule tick the rules make of
them out, with every difference found on the way.  Each recorded input is
applied where the engine applied it: after the events up to its ``at``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiflow_nb.errors import AiflowError
from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler import inputs
from aiflow_nb.scheduler.compiled import CompiledWorkflow
from aiflow_nb.scheduler.core import Core
from aiflow_nb.scheduler.outbox import Outbox
from aiflow_nb.scheduler.registry import Registry, VersionKey
from aiflow_nb.scheduler.replay import Difference
from aiflow_nb.workflow import Workflow
from aiflow_nb.workflow.records import WorkflowExecution, WorkflowInfo

log = logging.getLogger("aiflow_nb.scheduler.rerun")

STATUS_KEYS = (event_keys.TASK_STATUS, event_keys.EXECUTION_STATUS)
Specs = Mapping[VersionKey, tuple[str, str]]


class MemoryRows:
    """The rows the core reads and writes directly, kept in memory (see :class:`.memory.Rows`)."""

    def __init__(self, core: Core, specs: Specs) -> None:
        self.core = core
        self.stored = specs
        self.versions: dict[VersionKey, tuple[str, str]] = {}
        self.workflows: dict[tuple[str, str], WorkflowInfo] = {}

    def execution(self, execution_id: int) -> WorkflowExecution | None:
        return self.core.changes.executions.get(execution_id)

    def spec(self, namespace: str, name: str, version: int) -> tuple[str, str] | None:
        return self.versions.get((namespace, name, version))

    def latest_version(self, namespace: str, name: str) -> int:
        return max((v for (ns, n, v) in self.versions if (ns, n) == (namespace, name)), default=0)

    def add_version(self, namespace: str, name: str, version: int, spec: str, digest: str, now: datetime) -> None:
        self.versions[(namespace, name, version)] = (spec, digest)

    def put_workflow(self, info: WorkflowInfo) -> None:
        self.workflows[(info.namespace, info.name)] = info

    def delete_workflow(self, namespace: str, name: str) -> None:
        self.workflows.pop((namespace, name), None)

    def workflow(self, namespace: str, name: str, digest: str) -> Workflow | None:
        """The stored version of ``namespace/name`` with this digest, as submitted."""
        for (ns, n, _), (spec, found) in sorted(self.stored.items()):
            if (ns, n) == (namespace, name) and found == digest:
                return Workflow.from_spec(spec)
        return None


def wanted_keys(specs: Specs) -> set[str]:
    """Every key a rule or trigger of any stored version names (scoped and ``aiflow.*`` events matter anyway)."""
    keys: set[str] = set()
    for (_, _, version), (spec, digest) in specs.items():
        compiled = CompiledWorkflow.build(Workflow.from_spec(spec), version, digest)
        keys.update(key for _, key in compiled.rules)
        keys.update(key for _, key in compiled.triggers)
    return keys


class Rerun:
    """Feeds the log to a fresh core, in offset order, and the recorded inputs where they were applied."""

    def __init__(self, specs: Specs, recorded: Iterable[inputs.Recorded], core: Core | None = None) -> None:
        self.core = core if core is not None else Core()
        self.core.outbox = Outbox()
        self.rows = MemoryRows(self.core, specs)
        self.core.store = self.rows
        self.core.reset(Registry(lambda key: self.rows.spec(*key)), 0, (0, 0))
        self.pending = deque(sorted(recorded, key=lambda r: r.offset))
        self.differences: list[Difference] = []
        #: Status events the core emitted and the log has not shown yet, oldest first.
        self.emitted: deque[tuple[str, Any]] = deque()
        self._diverged = False

    def feed(self, events: Iterable[Event]) -> None:
        """Every event the rules may read, in offset order (then :meth:`finish`)."""
        core = self.core
        for event in events:
            offset = event.offset or 0
            while self.pending and self.pending[0].at < offset:
                self._apply(self.pending.popleft())
            if event.key in STATUS_KEYS:
                self._check_emitted(offset, event)
            try:
                core.process(event)
            except AiflowError as exc:
                self._differ(f"event {offset}", "the rules raised", str(exc), "nothing")
            self._take_emitted()
            core.checkpoint = offset

    def finish(self) -> Core:
        while self.pending:
            self._apply(self.pending.popleft())
        if self.emitted and not self._diverged:
            key, value = self.emitted[0]
            self._differ("the log's end", "status event", None, f"{key} {value}")
        return self.core

    def _apply(self, recorded: inputs.Recorded) -> None:
        inp = recorded.input
        if isinstance(inp, inputs.Submit):
            inp = replace(inp, workflow=self.rows.workflow(inp.namespace, inp.name, inp.digest))
        try:
            self.core.take(inp, recorded.now)
        except AiflowError as exc:
            self._differ(f"event {recorded.offset}", "the input was refused", str(exc), "applied")
        self._take_emitted()

    def _take_emitted(self) -> None:
        core = self.core
        self.emitted.extend((e.key, e.value) for e, _ in core.events if e.key in STATUS_KEYS)
        core.events.clear()

    def _check_emitted(self, offset: int, event: Event) -> None:
        """The log's status event is the next one the rules emitted (only the first divergence is told)."""
        if self._diverged:
            return
        expected = self.emitted.popleft() if self.emitted else None
        if expected != (event.key, event.value):
            self._diverged = True
            implied = f"{expected[0]} {expected[1]}" if expected else None
            self._differ(f"event {offset}", "status event", f"{event.key} {event.value}", implied)

    def _differ(self, row: str, field: str, stored: Any, implied: Any) -> None:
        self.differences.append(Difference(row, field, stored, implied))
