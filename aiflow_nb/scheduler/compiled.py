"""A submitted workflow version, indexed for the scheduler."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.scheduler.rules import trigger_rule_id
from aiflow_nb.workflow import Condition, TaskAction, TaskStatus, TaskStatusCondition, Workflow
from aiflow_nb.workflow.conditions import _Composite
from aiflow_nb.workflow.rule import Rule

EventRef = tuple[str, str]  # (namespace, key)


def _status_conditions(condition: Condition) -> list[TaskStatusCondition]:
    if isinstance(condition, TaskStatusCondition):
        return [condition]
    if isinstance(condition, _Composite):
        return [s for c in condition.conditions for s in _status_conditions(c)]
    return []


@dataclass
class CompiledWorkflow:
    """One workflow version with its rules indexed by (namespace, key)."""

    workflow: Workflow
    version: int
    digest: str
    rules: dict[EventRef, list[tuple[str, str, Rule]]] = field(default_factory=dict)
    triggers: dict[EventRef, list[tuple[str, Condition]]] = field(default_factory=dict)
    #: The same as ``triggers``, each with its rule id (``<namespace>/<workflow>:trigger#<n>``).
    trigger_rules: dict[EventRef, list[tuple[str, Condition]]] = field(default_factory=dict)
    #: Tasks that start with their execution (no START rule, no schedule).
    initial: list[str] = field(default_factory=list)
    #: Tasks whose FAILED status some rule reacts to: their failure is handled.
    failure_handled: set[str] = field(default_factory=set)
    #: Tasks that may still be started by an outside event or a schedule.
    waits_on_events: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, workflow: Workflow, version: int, digest: str) -> CompiledWorkflow:
        ns = workflow.namespace
        rules: dict[EventRef, list[tuple[str, str, Rule]]] = defaultdict(list)
        triggers: dict[EventRef, list[tuple[str, Condition]]] = defaultdict(list)
        compiled = cls(workflow, version, digest)
        for task in workflow.tasks.values():
            if not task.has_start_rule:
                compiled.initial.append(task.name)
            if task.schedule_ is not None:
                compiled.waits_on_events.add(task.name)
            for i, rule in enumerate(task.rules):
                rule_id = f"{task.name}#{i + 1}"
                refs = {k.resolve(ns) for k in rule.condition.expect_events}
                for ref in refs:
                    rules[ref].append((task.name, rule_id, rule))
                for status in _status_conditions(rule.condition):
                    for upstream, wanted in status.statuses.items():
                        if wanted is TaskStatus.FAILED:
                            compiled.failure_handled.add(upstream)
                starts = rule.action in (TaskAction.START, TaskAction.RESTART)
                if starts and any(ref[1] != event_keys.TASK_STATUS for ref in refs):
                    compiled.waits_on_events.add(task.name)
        for i, condition in enumerate(workflow.triggers):
            trigger_id = f"trigger#{i + 1}"
            for ref in {k.resolve(ns) for k in condition.expect_events}:
                triggers[ref].append((trigger_id, condition))
        compiled.rules = dict(rules)
        compiled.triggers = dict(triggers)
        compiled.trigger_rules = {
            ref: [(trigger_rule_id(ns, workflow.name, trigger_id), condition) for trigger_id, condition in found]
            for ref, found in compiled.triggers.items()
        }
        return compiled

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.workflow.namespace, self.workflow.name, self.version)

    def rules_for(self, event: Event) -> list[tuple[str, str, Rule]]:
        return self.rules.get((event.namespace, event.key), [])

    def triggers_for(self, event: Event) -> list[tuple[str, Condition]]:
        return self.triggers.get((event.namespace, event.key), [])
