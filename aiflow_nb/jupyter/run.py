"""The "Run with parameters" dialog's logic: what a workflow's tasks declare, and the dialog's values made overrides.

Pure functions: a workflow's spec in, the parameters its dialog shows (each with its default as the
literal the user edits, and the tasks that declare it) out; the dialog's texts in, the overrides for
the service's start routes out (a :class:`~.draft.FieldError` at ``param:NAME`` for a bad literal).
Whether a name is declared is the service's own check (``unknown_parameter``), not repeated here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiflow_nb.jupyter import draft
from aiflow_nb.workflow.overrides import PARAMETER_FIELD


@dataclass
class RunParameter:
    name: str
    type: str
    #: The default as the literal the dialog shows: the task's own value over its notebook's cell.
    default: str
    tasks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "tasks": self.tasks}


def _declared(task: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """A task's parameters: name -> (type, default literal), the task's own values over its cell's."""
    found: dict[str, tuple[str, str]] = {}
    kind_field = PARAMETER_FIELD.get(str(task.get("kind")))
    if kind_field is None:
        return found
    notebook = task.get("notebook")
    if kind_field == "parameters" and isinstance(notebook, Mapping):
        try:
            node = draft.read_notebook(json.dumps(notebook))
            for p in draft.parameters(node):
                found[p.name] = (p.type, p.default)
        except draft.FieldError:
            pass  # no parameters cell, or another language: only the task's own values
    for name, value in (task.get(kind_field) or {}).items():
        found[name] = (type(value).__name__, repr(value))
    return found


def run_parameters(spec: Mapping[str, Any], task: str | None = None) -> list[dict[str, Any]]:
    """What the dialog offers to override: every task's parameters (or ``task``'s), in task order."""
    shown: dict[str, RunParameter] = {}
    for t in spec.get("tasks") or []:
        if task is not None and t.get("name") != task:
            continue
        for name, (type_, default) in _declared(t).items():
            param = shown.setdefault(name, RunParameter(name, type_, default))
            param.tasks.append(str(t.get("name")))
    return [p.as_dict() for p in shown.values()]


def overrides_of(values: Any, known: list[dict[str, Any]]) -> dict[str, Any]:
    """The dialog's texts as overrides: a text left at its default (or empty) overrides nothing."""
    if not isinstance(values, Mapping):
        raise draft.FieldError("parameters", "send the values as a mapping of names to literals")
    defaults = {p["name"]: p["default"] for p in known}
    given: dict[str, Any] = {}
    for name, text in values.items():
        where = f"param:{name}"
        if not isinstance(text, str):
            raise draft.FieldError(where, f"parameter {name!r}: send its value as the text of a literal")
        if not text.strip() or text.strip() == str(defaults.get(name, "")).strip():
            continue
        given[name] = draft.literal(where, text)
    return given


_NAMED = re.compile(r"parameter '([^']+)'")


def field_of(message: str) -> str:
    """The dialog's field of the service's refusal: the parameter it names, else the form."""
    found = _NAMED.search(message)
    return f"param:{found[1]}" if found else "form"
