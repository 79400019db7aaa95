"""Which rules an event meets: conditions and their per-execution state.

Condition state lives in a plain dict keyed by (execution id, rule id),
execution 0 for a workflow's triggers.  Rule ids: ``<task>#<n>`` for the
n-th rule of a task, ``<namespace>/<workflow>:trigger#<n>`` for a trigger;
the scheduler's own bookkeeping uses ``restart:<task>`` (a RESTART waiting
for its stop) and ``waiting:<namespace>/<workflow>`` (triggers queued at
the workflow's max_active_executions).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from aiflow_nb.events import Event
from aiflow_nb.workflow.conditions import Condition, ConditionContext

log = logging.getLogger("aiflow_nb.scheduler.rules")

StateKey = tuple[int, str]
States = dict[StateKey, dict[str, Any]]

RESTART_RULE = "restart:"
WAITING_RULE = "waiting:"


def trigger_rule_id(namespace: str, workflow: str, trigger_id: str) -> str:
    return f"{namespace}/{workflow}:{trigger_id}"


def waiting_key(namespace: str, workflow: str) -> StateKey:
    return (0, f"{WAITING_RULE}{namespace}/{workflow}")


def restart_key(execution_id: int, task: str) -> StateKey:
    return (execution_id, RESTART_RULE + task)


def evaluate(
    condition: Condition, event: Event, namespace: str, execution_id: int, rule: str, state: dict[str, Any] | None
) -> tuple[bool, dict[str, Any] | None]:
    """Whether ``event`` meets ``condition``, and the rule's new state if the condition changed it.

    ``state`` is left as it is: the condition works on a copy.  A condition
    that raises (a broken custom one) is taken as not met and changes
    nothing: it must not stall the scheduler for ever.
    """
    work = copy.deepcopy(state) if state else {}
    try:
        met = bool(condition.is_met(event, ConditionContext(namespace, execution_id or None, work)))
    except Exception:
        log.exception("rule %s: %s raised on event %s; taken as not met", rule, type(condition).__name__, event.offset)
        return False, None
    if work != (state or {}):
        return met, work
    return met, None
