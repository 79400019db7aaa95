"""The workflow view's edits: remove a task, change a task's rule; each makes the spec of a new version.

Pure functions: a workflow's spec and the view's request in, the spec to submit (or a
:class:`~.draft.FieldError` at the view's field) out.  A rule is made by the "Add to workflow"
dialog's own code (:func:`.draft.apply_when`), and the result is checked as the service checks it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiflow_nb.jupyter import draft
from aiflow_nb.workflow import Workflow
from aiflow_nb.workflow.task_spec import task_from_spec


def _tasks(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(t) for t in spec.get("tasks") or []]


def _task_named(spec: Mapping[str, Any], name: Any) -> dict[str, Any]:
    found = next((t for t in _tasks(spec) if t.get("name") == name), None)
    if found is None:
        raise draft.FieldError("task", f"workflow {spec.get('namespace')}/{spec.get('name')} has no task {name!r}")
    return found


def _checked(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec, if the service would take it (else a FieldError at the form, in the model's words)."""
    draft.check("form", lambda: Workflow.from_spec(spec))
    return spec


def remove_task(spec: Mapping[str, Any], task: Any) -> dict[str, Any]:
    """The spec without ``task``; refused while another task's rule names it, or if it is the only one."""
    _task_named(spec, task)
    rest = [t for t in _tasks(spec) if t.get("name") != task]
    if not rest:
        raise draft.FieldError("task", f"{task!r} is the workflow's only task: delete the workflow instead")
    for other in rest:
        if f'"{task}"' in json.dumps(other.get("rules") or []):
            raise draft.FieldError(
                "task", f"task {other['name']!r} has a rule on {task!r}: change that rule first, then remove {task!r}"
            )
    return _checked({**spec, "tasks": rest})


def change_rule(spec: Mapping[str, Any], task: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with ``task`` run as ``request`` says (the dialog's "when" fields); its other settings kept."""
    current = _task_named(spec, task)
    made = task_from_spec({**current, "rules": [], "schedule": None, "streaming": False})
    others = [str(t.get("name")) for t in _tasks(spec) if t.get("name") != task]
    draft.apply_when(request, made, others)
    changed = made.to_spec()
    return _checked({**spec, "tasks": [changed if t.get("name") == task else t for t in _tasks(spec)]})


def when_of(task_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The dialog's fields of a task's rule, when it is one the dialog makes; else ``when: "custom"``."""
    schedule = task_spec.get("schedule")
    rules = task_spec.get("rules") or []
    if task_spec.get("streaming") and not rules and not schedule:
        return {"when": "streaming"}
    if schedule and not rules:
        if schedule.get("cron"):
            return {"when": "cron", "cron": schedule["cron"], "timezone": schedule.get("timezone") or "UTC"}
        return {"when": "interval", "interval": str(schedule.get("interval") or "")}
    if not rules and not schedule:
        return {"when": "execution"}
    if len(rules) == 1 and rules[0].get("action") == "START" and not schedule:
        condition = rules[0].get("condition") or {}
        if condition.get("type") == "event" and not condition.get("sender"):
            value = condition.get("value")
            return {
                "when": "event",
                "event_key": condition.get("key") or "",
                "event_namespace": condition.get("namespace") or "",
                "event_value": "" if value is None else json.dumps(value),
            }
        statuses = condition.get("statuses") or {}
        if condition.get("type") == "task_status" and len(set(statuses.values())) == 1:
            return {"when": "after", "after": list(statuses), "after_status": next(iter(statuses.values()))}
    return {"when": "custom"}
