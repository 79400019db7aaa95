"""The "Add to workflow" dialog's logic: a notebook's parameters the papermill way, and a draft made a spec.

Pure functions: the notebook's text, the dialog's draft, the existing workflows in; a spec (or a
:class:`FieldError` naming the dialog's field) out.  Every rule is the model's own: each field is
checked by building the part of the workflow it makes, so the dialog and the service never disagree.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import nbformat
from papermill.translators import papermill_translators

from aiflow_nb.errors import AiflowError, SpecError
from aiflow_nb.events.event import DEFAULT_NAMESPACE
from aiflow_nb.workflow import BashTask, NotebookTask, Workflow
from aiflow_nb.workflow.schedule import Schedule
from aiflow_nb.workflow.status import TaskAction, TaskStatus
from aiflow_nb.workflow.tasks import Task, check_name

log = logging.getLogger(__name__)

#: The dialog's choices of when a task runs.
WHEN = ("execution", "event", "after", "cron", "interval", "streaming")
#: The kernel language whose parameters cell the dialog reads (papermill's Python translator).
LANGUAGE = "python"


class FieldError(AiflowError, ValueError):
    """A draft's mistake, with the dialog's field it belongs to."""

    code = "invalid_draft"

    def __init__(self, field: str, message: str, code: str = "invalid_draft") -> None:
        super().__init__(message)
        self.field = field
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": str(self), "field": self.field}}


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: str
    help: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type, "default": self.default, "help": self.help}


def read_notebook(text: str) -> Any:
    """The notebook of ``text`` (nbformat 4), or a FieldError at 'notebook'."""
    try:
        node = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises JSON and validation errors of several kinds
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FieldError("notebook", f"the notebook is not valid JSON or not a notebook ({first})") from None
    return node


def language_of(node: Any) -> str:
    metadata = node.get("metadata") or {}
    info = metadata.get("language_info") or {}
    spec = metadata.get("kernelspec") or {}
    return str(spec.get("language") or info.get("name") or LANGUAGE).lower()


def _type_of(source: str, annotated: str) -> str:
    if annotated and annotated != "None":
        return annotated
    try:
        return type(ast.literal_eval(source)).__name__
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return "expression"


def parameters(node: Any) -> list[Parameter]:
    """The parameters of the cell tagged "parameters", as papermill's translator reads them."""
    language = language_of(node)
    if language != LANGUAGE:
        raise FieldError("notebook", f"the notebook's kernel language is {language!r}: only Python notebooks are read")
    index = next((i for i, c in enumerate(node.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), -1)
    if index < 0:
        raise FieldError(
            "parameters", 'the notebook has no cell tagged "parameters" (add the tag to the cell of its defaults)'
        )
    translator = papermill_translators.find_translator(
        (node.metadata.get("kernelspec") or {}).get("name", "python3"), LANGUAGE
    )
    found = translator.inspect(node.cells[index])
    return [Parameter(p.name, _type_of(p.default, p.inferred_type_name), p.default, p.help or "") for p in found]


def inspect_text(text: str) -> dict[str, Any]:
    """What the dialog shows of a notebook: its kernel and parameters."""
    node = read_notebook(text)
    params = parameters(node)
    kernel = (node.metadata.get("kernelspec") or {}).get("name") or ""
    return {"kernel": kernel, "language": language_of(node), "parameters": [p.as_dict() for p in params]}


def _text(draft: Mapping[str, Any], field: str) -> str:
    value = draft.get(field)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise FieldError(field, f"{field} must be text, got {value!r}")
    return str(value).strip()


def _number(draft: Mapping[str, Any], field: str, what: str, integer: bool = False) -> float | int | None:
    text = _text(draft, field)
    if not text:
        return None
    try:
        number: float | int = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number of seconds"
        raise FieldError(field, f"{what} must be {kind}, got {text!r}") from None
    return number


def literal(field: str, text: str) -> Any:
    """A parameter's value: a Python literal (as in the parameters cell), JSON-able."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise FieldError(field, f"{text!r} is not a Python literal (quote text: 'like this')") from None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise FieldError(field, f"{text!r} cannot be passed to papermill as JSON") from None
    return value


def check(field: str, make: Any) -> Any:
    """Run the model's constructor ``make``; its SpecError becomes a FieldError at ``field``."""
    try:
        return make()
    except SpecError as exc:
        raise FieldError(field, str(exc), exc.code) from None


def draft_parameters(draft: Mapping[str, Any], known: Sequence[Parameter]) -> dict[str, Any]:
    """The draft's parameter values; a name not in the parameters cell is refused, as papermill warns."""
    given = draft.get("parameters") or {}
    if not isinstance(given, Mapping):
        raise FieldError("parameters", "parameters must be a mapping of names to values")
    defaults = {p.name: p.default for p in known}
    values: dict[str, Any] = {}
    for name, text in given.items():
        field = f"param:{name}"
        if name not in defaults:
            raise FieldError(field, f"the notebook's parameters cell has no parameter {name!r}")
        if not isinstance(text, str):
            raise FieldError(field, f"parameter {name!r}: send its value as the text of a literal")
        if not text.strip():
            continue
        if text.strip() == defaults[name].strip():
            try:
                values[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass  # an expression default (a call, say) stays the notebook's own
            continue
        values[name] = literal(field, text)
    return values


def _common(draft: Mapping[str, Any], task: str) -> dict[str, Any]:
    """retries, retry delay, timeout and executor, each checked by the model at its own field."""
    common: dict[str, Any] = {}
    for field, keyword, what, integer in (
        ("max_retries", "max_retries", "retries", True),
        ("retry_delay", "retry_delay", "the retry delay", False),
        ("timeout", "timeout", "the timeout", False),
    ):
        value = _number(draft, field, what, integer)
        if value is not None:
            check(field, lambda k=keyword, v=value: BashTask(task, command="true", **{k: v}))
            common[keyword] = value
    executor = _text(draft, "executor")
    if executor:
        check("executor", lambda: BashTask(task, command="true", executor=executor))
        common["executor"] = executor
    return common


def apply_when(draft: Mapping[str, Any], task: Task, others: Sequence[str]) -> None:
    """The rule or schedule of the draft's "when it runs" on ``task``."""
    when = _text(draft, "when") or "execution"
    if when not in WHEN:
        raise FieldError("when", f"when must be one of {', '.join(WHEN)}, got {when!r}")
    if when == "event":
        key = _text(draft, "event_key")
        if not key:
            raise FieldError("event_key", "the event key is empty")
        namespace = _text(draft, "event_namespace") or None
        if namespace is not None:
            check("event_namespace", lambda: check_name("namespace", namespace))
        raw = draft.get("event_value")
        extra: dict[str, Any] = {}
        if isinstance(raw, str) and raw.strip():
            extra["value"] = _json_or_text(raw)
        check("event_key", lambda: task.action_on_event_received(TaskAction.START, key, namespace, **extra))
    elif when == "after":
        after = draft.get("after") or []
        if isinstance(after, str):
            after = [after]
        if not isinstance(after, list) or not after:
            raise FieldError("after", "choose the tasks this one runs after")
        missing = [t for t in after if t not in others]
        if missing:
            raise FieldError("after", f"the workflow has no task {missing[0]!r}")
        status = _text(draft, "after_status") or TaskStatus.SUCCESS.value
        if status not in {s.value for s in TaskStatus}:
            raise FieldError("after_status", f"{status!r} is not a task status")
        check("after", lambda: task.action_on_task_status(TaskAction.START, dict.fromkeys(after, status)))
    elif when == "cron":
        cron = _text(draft, "cron")
        zone = _text(draft, "timezone") or "UTC"
        check("timezone", lambda: Schedule(interval=timedelta(hours=1), timezone=zone))
        if not cron:
            raise FieldError("cron", "the cron expression is empty")
        task.schedule_ = check("cron", lambda: Schedule(cron=cron, timezone=zone))
    elif when == "interval":
        seconds = _number(draft, "interval", "the interval")
        if seconds is None:
            raise FieldError("interval", "the interval is empty")
        task.schedule_ = check("interval", lambda: Schedule(interval=timedelta(seconds=seconds)))
    elif when == "streaming":
        task.streaming = True


def _json_or_text(raw: str) -> Any:
    """An event value as JSON when it parses (like the panel's event form), else the text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@dataclass(frozen=True)
class Existing:
    """A workflow already submitted: its namespace, name and (for the one extended) its spec."""

    namespace: str
    name: str
    spec: Mapping[str, Any] | None = None


def build_spec(
    draft: Mapping[str, Any],
    notebook_text: str,
    os_path: str | None,
    workflows: Sequence[Existing],
) -> dict[str, Any]:
    """The spec to submit: a new workflow of one task, or ``workflows``' one extended by the draft's task.

    ``workflows``: every submitted workflow (names and namespaces); the one to extend carries its spec.
    """
    name = check("workflow", lambda: check_name("workflow", _text(draft, "workflow")))
    namespace = check("namespace", lambda: check_name("namespace", _text(draft, "namespace") or DEFAULT_NAMESPACE))
    existing = bool(draft.get("existing"))
    elsewhere = [w.namespace for w in workflows if w.name == name and w.namespace != namespace]
    here = next((w for w in workflows if w.name == name and w.namespace == namespace), None)
    if elsewhere and here is None:
        raise FieldError("workflow", f"the name {name!r} is already used in namespace {elsewhere[0]!r}")
    if existing and here is None:
        raise FieldError("workflow", f"there is no workflow {namespace}/{name} to add to")
    if not existing and here is not None:
        raise FieldError("workflow", f"workflow {namespace}/{name} exists: choose it to add the task to it")
    base = dict(here.spec) if here is not None and here.spec is not None else None
    if here is not None and base is None:
        raise FieldError("workflow", f"the spec of {namespace}/{name} was not read")
    others = [str(t.get("name")) for t in (base or {}).get("tasks", [])]

    task_name = check("task", lambda: check_name("task", _text(draft, "task")))
    if task_name in others:
        raise FieldError("task", f"workflow {namespace}/{name} already has a task {task_name!r}")
    node = read_notebook(notebook_text)
    known = parameters(node)
    values = draft_parameters(draft, known)
    common = _common(draft, task_name)
    task = check(
        "notebook",
        lambda: NotebookTask(task_name, json.loads(nbformat.writes(node)), values, path=os_path, **common),
    )
    apply_when(draft, task, others)
    if base is None:
        fresh = Workflow(name, namespace)
        fresh.add_task(task)
        spec = fresh.to_spec()
    else:
        spec = {**base, "tasks": [*base.get("tasks", []), task.to_spec()]}
    # The service's own check, here too, so a mistake is shown before anything is sent.
    check("form", lambda: Workflow.from_spec(spec))
    return spec


def field_of_service_error(message: str) -> str:
    """The dialog field a service refusal of a checked spec belongs to (only the executor is checked there)."""
    return "executor" if "executor" in message else "form"
