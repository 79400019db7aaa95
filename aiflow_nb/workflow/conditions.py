"""Conditions: when a rule fires.

A condition names the events it expects (so the scheduler finds it through
an index, never by scanning every workflow) and decides on each such event
whether it is met.  State kept in ``context.state`` is per workflow
execution and survives restarts.

A custom condition is a subclass named by import path; it takes JSON-able
keyword arguments and returns them from :meth:`Condition.params`::

    class EverySecond(Condition):
        def __init__(self, key: str = "tick"):
            super().__init__([EventKey(key)])
            self.key = key

        def params(self):
            return {"key": self.key}

        def is_met(self, event, context):
            context.state["n"] = context.state.get("n", 0) + 1
            return context.state["n"] % 2 == 0
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiflow_nb.errors import ConditionImportError, SpecError
from aiflow_nb.events import Event
from aiflow_nb.events import keys as event_keys
from aiflow_nb.workflow.status import TaskStatus

_UNSET: Any = object()


@dataclass(frozen=True)
class EventKey:
    """Which events a condition expects.

    ``namespace=None`` means the workflow's namespace; ``sender=None`` any
    sender; an unset ``value`` any value.
    """

    key: str
    namespace: str | None = None
    sender: str | None = None
    value: Any = field(default=_UNSET, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise SpecError(f"an event condition needs a non-empty event key, got {self.key!r}")

    def resolve(self, namespace: str) -> tuple[str, str]:
        """The (namespace, key) this expects, for the rule index."""
        return (self.namespace or namespace, self.key)

    def matches(self, event: Event, namespace: str) -> bool:
        if event.key != self.key or event.namespace != (self.namespace or namespace):
            return False
        if self.sender is not None and event.sender != self.sender:
            return False
        return self.value is _UNSET or event.value == self.value

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"key": self.key, "namespace": self.namespace, "sender": self.sender}
        if self.value is not _UNSET:
            spec["value"] = self.value
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> EventKey:
        key = spec.get("key")
        if not isinstance(key, str) or not key:
            raise SpecError(f"an event condition needs a non-empty 'key', got {key!r}")
        return cls(key, spec.get("namespace"), spec.get("sender"), spec.get("value", _UNSET))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventKey):
            return NotImplemented
        return self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash((self.key, self.namespace, self.sender))


@dataclass
class ConditionContext:
    """What a condition sees besides the event."""

    namespace: str
    execution_id: int | None
    state: dict[str, Any]

    def child(self, index: int) -> ConditionContext:
        sub = self.state.setdefault(str(index), {})
        return ConditionContext(self.namespace, self.execution_id, sub)


class Condition:
    """Base class of every condition."""

    type_name = "custom"

    def __init__(self, expect_events: Sequence[EventKey | str]) -> None:
        self.expect_events: list[EventKey] = [e if isinstance(e, EventKey) else EventKey(e) for e in expect_events]

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this condition (custom ones)."""
        return {}

    def task_names(self) -> set[str]:
        """Tasks this condition refers to, for validation."""
        return set()

    def expects(self, event: Event, namespace: str) -> bool:
        return any(k.matches(event, namespace) for k in self.expect_events)

    def to_spec(self) -> dict[str, Any]:
        cls = type(self)
        path = f"{cls.__module__}:{cls.__qualname__}"
        params = self.params()
        try:
            rebuilt = cls(**params)
        except Exception as exc:
            raise SpecError(f"custom condition {path}: params() {params!r} do not rebuild it ({exc})") from None
        spec = {"type": "custom", "class": path, "params": params}
        if rebuilt.expect_events != self.expect_events:
            raise SpecError(f"custom condition {path}: params() do not rebuild its expected events")
        return spec

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Condition):
            return NotImplemented
        return self.to_spec() == other.to_spec()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_spec()!r})"


class EventCondition(Condition):
    """Met by every event with this key (and namespace, sender, value)."""

    type_name = "event"

    def __init__(
        self,
        event_key: str,
        namespace: str | None = None,
        sender: str | None = None,
        value: Any = _UNSET,
    ) -> None:
        super().__init__([EventKey(event_key, namespace, sender, value)])

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        return self.expect_events[0].matches(event, context.namespace)

    def to_spec(self) -> dict[str, Any]:
        return {"type": "event", **self.expect_events[0].to_spec()}


class TaskStatusCondition(Condition):
    """Met when each named task's latest status, as logged, is the given one.

    It is edge-triggered on the status events of its own execution, so an
    upstream that succeeds once starts its downstream once.
    """

    type_name = "task_status"

    def __init__(self, statuses: Mapping[str, TaskStatus | str]) -> None:
        super().__init__([EventKey(event_keys.TASK_STATUS)])
        if not statuses:
            raise SpecError("a task status condition needs at least one task")
        self.statuses: dict[str, TaskStatus] = {}
        for task, status in statuses.items():
            name = getattr(task, "name", task)
            try:
                self.statuses[str(name)] = TaskStatus(status)
            except ValueError:
                raise SpecError(f"task {name!r}: {status!r} is not a task status") from None

    def expects(self, event: Event, namespace: str) -> bool:
        return (
            event.key == event_keys.TASK_STATUS
            and event.namespace == namespace
            and isinstance(event.value, dict)
            and event.value.get("task") in self.statuses
        )

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        if not self.expects(event, context.namespace):
            return False
        value = event.value
        seen = context.state.setdefault("seen", {})
        task, seq = value["task"], int(value.get("seq", 0))
        if seq < seen.get(task, [0, ""])[0]:
            return False  # a late event of an older run
        seen[task] = [seq, value["status"]]
        if value["status"] != self.statuses[task].value:
            return False
        return all(seen.get(t, [0, ""])[1] == s.value for t, s in self.statuses.items())

    def task_names(self) -> set[str]:
        return set(self.statuses)

    def to_spec(self) -> dict[str, Any]:
        return {"type": "task_status", "statuses": {t: s.value for t, s in self.statuses.items()}}


class _Composite(Condition):
    def __init__(self, conditions: Iterable[Condition]) -> None:
        self.conditions = list(conditions)
        if not self.conditions:
            raise SpecError(f"{type(self).__name__} needs at least one condition")
        for c in self.conditions:
            if not isinstance(c, Condition):
                raise SpecError(f"{type(self).__name__} takes conditions, got {c!r}")
        super().__init__([k for c in self.conditions for k in c.expect_events])

    def expects(self, event: Event, namespace: str) -> bool:
        return any(c.expects(event, namespace) for c in self.conditions)

    def _met_children(self, event: Event, context: ConditionContext) -> list[int]:
        return [
            i
            for i, c in enumerate(self.conditions)
            if c.expects(event, context.namespace) and c.is_met(event, context.child(i))
        ]

    def task_names(self) -> set[str]:
        return set().union(*(c.task_names() for c in self.conditions))

    def to_spec(self) -> dict[str, Any]:
        return {"type": self.type_name, "conditions": [c.to_spec() for c in self.conditions]}


class AllOf(_Composite):
    """Met once each child has been met since the last time it was met."""

    type_name = "all_of"

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        done = set(context.state.get("met", []))
        done.update(self._met_children(event, context))
        if len(done) == len(self.conditions):
            context.state["met"] = []
            return True
        context.state["met"] = sorted(done)
        return False


class AnyOf(_Composite):
    """Met whenever any child is met."""

    type_name = "any_of"

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        return bool(self._met_children(event, context))


def import_condition(path: str) -> type[Condition]:
    """Import ``package.module:ClassName`` and check it is a Condition."""
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ConditionImportError(f"condition {path!r}: expected 'module:ClassName'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise ConditionImportError(f"condition {path!r} cannot be imported: {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, Condition)):
        raise ConditionImportError(f"condition {path!r} is not a Condition subclass")
    return obj


def condition_from_spec(spec: Any) -> Condition:
    if not isinstance(spec, Mapping):
        raise SpecError(f"a condition must be an object, got {spec!r}")
    kind = spec.get("type")
    if kind == "event":
        k = EventKey.from_spec(spec)
        return EventCondition(k.key, k.namespace, k.sender, k.value)
    if kind == "task_status":
        statuses = spec.get("statuses")
        if not isinstance(statuses, Mapping):
            raise SpecError("a task_status condition needs 'statuses': {task: status}")
        return TaskStatusCondition(statuses)
    if kind in ("all_of", "any_of"):
        children = spec.get("conditions")
        if not isinstance(children, list):
            raise SpecError(f"an {kind} condition needs a 'conditions' list")
        cls = AllOf if kind == "all_of" else AnyOf
        return cls([condition_from_spec(c) for c in children])
    if kind == "custom":
        path = spec.get("class")
        if not isinstance(path, str):
            raise SpecError("a custom condition needs 'class': 'module:ClassName'")
        cls_ = import_condition(path)
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise SpecError(f"condition {path}: 'params' must be an object")
        try:
            return cls_(**params)
        except Exception as exc:
            raise SpecError(f"condition {path} cannot be built from {dict(params)!r}: {exc}") from None
    raise SpecError(f"unknown condition type {kind!r}")
