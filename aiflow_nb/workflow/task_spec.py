"""A task from its spec (the JSON of a submitted workflow), whatever its kind."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from aiflow_nb.errors import SpecError
from aiflow_nb.workflow import context
from aiflow_nb.workflow.rule import Rule
from aiflow_nb.workflow.schedule import Schedule
from aiflow_nb.workflow.tasks import _BUILTIN, OperatorTask, Task, check_name

_COMMON = ("streaming", "max_retries", "retry_delay", "timeout", "heartbeat_timeout", "executor")


def task_kinds() -> dict[str, type[Task]]:
    """Built-in kinds plus those of the ``aiflow_nb.task_kinds`` entry points."""
    kinds = dict(_BUILTIN)
    for ep in entry_points(group="aiflow_nb.task_kinds"):
        if ep.name not in kinds:
            kinds[ep.name] = ep.load()
    return kinds


def task_from_spec(spec: Any) -> Task:
    if not isinstance(spec, Mapping):
        raise SpecError(f"a task must be an object, got {spec!r}")
    name = check_name("task", spec.get("name"))
    kind = spec.get("kind")
    cls = _BUILTIN.get(kind) if isinstance(kind, str) else None  # type: ignore[arg-type]
    if cls is None:
        cls = task_kinds().get(kind) if isinstance(kind, str) else None  # type: ignore[arg-type]
    if cls is None:
        if not isinstance(kind, str) or not kind:
            raise SpecError(f"task {name!r}: unknown kind {kind!r}")
        cls = OperatorTask  # the operator says if it exists (UnknownOperatorError naming the known ones)
    common = {k: spec[k] for k in _COMMON if spec.get(k) is not None}
    with context.detached():
        task = cls.from_params(name, spec, **common)
    rules = spec.get("rules") or []
    if not isinstance(rules, list):
        raise SpecError(f"task {name!r}: 'rules' must be a list")
    for i, rule in enumerate(rules):
        try:
            task.rules.append(Rule.from_spec(rule))
        except SpecError as exc:
            raise type(exc)(f"task {name!r}, rule {i + 1}: {exc}") from None
    if spec.get("schedule") is not None:
        task.schedule_ = Schedule.from_spec(spec["schedule"])
    return task
