"""A rule: an action on its task whenever a condition is met."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiflow_nb.errors import SpecError
from aiflow_nb.workflow.conditions import Condition, condition_from_spec
from aiflow_nb.workflow.status import TaskAction


class Rule:
    """``action`` on its task whenever ``condition`` is met."""

    def __init__(self, action: TaskAction | str, condition: Condition) -> None:
        try:
            self.action = TaskAction(action)
        except ValueError:
            raise SpecError(f"{action!r} is not a task action (START, STOP, RESTART)") from None
        if not isinstance(condition, Condition):
            raise SpecError(f"a rule needs a Condition, got {condition!r}")
        self.condition = condition

    def to_spec(self) -> dict[str, Any]:
        return {"action": self.action.value, "condition": self.condition.to_spec()}

    @classmethod
    def from_spec(cls, spec: Any) -> Rule:
        if not isinstance(spec, Mapping) or "action" not in spec or "condition" not in spec:
            raise SpecError(f"a rule needs 'action' and 'condition', got {spec!r}")
        return cls(spec["action"], condition_from_spec(spec["condition"]))
