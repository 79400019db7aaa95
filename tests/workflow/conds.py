"""Custom conditions the workflow tests refer to by import path."""

from __future__ import annotations

from typing import Any

from aiflow_nb import Condition, ConditionContext, Event, EventKey


class EveryNth(Condition):
    """Met on every ``n``-th event with ``key`` in one execution."""

    def __init__(self, key: str = "tick", n: int = 2, namespace: str | None = None) -> None:
        super().__init__([EventKey(key, namespace)])
        self.key = key
        self.n = n
        self.namespace = namespace

    def params(self) -> dict[str, Any]:
        return {"key": self.key, "n": self.n, "namespace": self.namespace}

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        context.state["seen"] = context.state.get("seen", 0) + 1
        return context.state["seen"] % self.n == 0


class ForgetfulParams(Condition):
    """A broken custom condition: params() do not rebuild its expected events."""

    def __init__(self, key: str = "tick") -> None:
        super().__init__([EventKey(key)])

    def params(self) -> dict[str, Any]:
        return {}

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        return True


class NotACondition:
    """Importable, but not a Condition subclass."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
