"""Custom conditions for the scheduler tests (referenced as ``tests.scheduler.conds:Class``)."""

from __future__ import annotations

from typing import Any

from aiflow_nb import Condition, ConditionContext, Event, EventKey


class EverySecond(Condition):
    """Met by every second ``key`` event its execution sees; the count lives in ``context.state``."""

    def __init__(self, key: str = "tick", namespace: str | None = None) -> None:
        super().__init__([EventKey(key, namespace)])
        self.key = key
        self.namespace = namespace

    def params(self) -> dict[str, Any]:
        return {"key": self.key, "namespace": self.namespace}

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        count = int(context.state.get("count", 0)) + 1
        context.state["count"] = count
        return count % 2 == 0


class Fragile(EverySecond):
    """Like EverySecond, but raises (after touching its state) on an event whose value is "bad"."""

    def is_met(self, event: Event, context: ConditionContext) -> bool:
        met = super().is_met(event, context)
        if event.value == "bad":
            raise ValueError("cannot handle a bad event")
        return met
