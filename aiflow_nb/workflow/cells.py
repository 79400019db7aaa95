"""``%%aiflow`` cells as a draft: from cells, run live or read from a file, to workflows.

The magics (live, in a kernel) and :func:`workflows_from_notebook` (a file,
never executed) both go through :func:`~aiflow_nb.workflow.cell_syntax.parse_cell`
and :class:`Draft`, so a notebook gives the same specs whether its cells are
run or read. The grammar of one cell is :mod:`aiflow_nb.workflow.cell_syntax`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiflow_nb.errors import SpecError, UnknownTaskError
from aiflow_nb.events.event import DEFAULT_NAMESPACE
from aiflow_nb.operators.registry import operator_class
from aiflow_nb.workflow import context
from aiflow_nb.workflow.cell_syntax import DEFINING, MAGIC, Cell, Key, event_key, json_value, parse_cell
from aiflow_nb.workflow.conditions import EventCondition, condition_from_spec
from aiflow_nb.workflow.status import TaskAction
from aiflow_nb.workflow.tasks import NotebookTask, Task, operator_task
from aiflow_nb.workflow.workflow import Workflow


def cell_notebook(parameters: dict[str, Any], setup: str | None, body: str) -> dict[str, Any]:
    """A cell task's notebook: a "parameters" cell, the workflow's setup, then the body."""
    from aiflow_nb.notebooks import code_notebook

    defaults = "\n".join(f"{k} = {v!r}" for k, v in parameters.items()) or "# no parameters"
    sources = [s for s in (setup, body) if s]
    nb = code_notebook(*sources, parameters=defaults)
    # nbformat gives new cells random ids: fixed ones keep the spec (and its version) stable.
    for cell, name in zip(nb.cells, ["parameters", *(["setup"] if setup else []), "task"], strict=True):
        cell["id"] = name
    return json.loads(json.dumps(nb))  # type: ignore[no-any-return]


def _apply_rules(task: Task, opts: dict[str, Any]) -> None:
    action = TaskAction((opts.get("action") or "start").upper())
    for raw in opts.get("on_event", []):
        key, namespace = event_key(task.name, raw)
        extra = {"value": json_value(opts["value"])} if opts.get("value") is not None else {}
        task.action_on_event_received(action, key, namespace=namespace, **extra)
    for statuses in opts.get("after", []):
        task.action_on_task_status(action, statuses)
    for path in opts.get("condition", []):
        task.action_on_condition(action, condition_from_spec({"type": "custom", "class": path, "params": {}}))


def _schedule(target: Task | Workflow, opts: dict[str, Any]) -> None:
    if opts.get("cron") is not None or opts.get("interval") is not None:
        interval = timedelta(seconds=opts["interval"]) if opts.get("interval") is not None else None
        target.schedule(
            cron=opts.get("cron"),
            interval=interval,
            timezone=opts.get("tz") or "UTC",
            catchup=bool(opts.get("catchup")),
        )


def _task(cell: Cell, setup: str | None) -> Task:
    o = cell.options
    common: dict[str, Any] = {
        "streaming": o["streaming"],
        "max_retries": o["retries"],
        "retry_delay": o["retry_delay"],
        "timeout": o["timeout"],
        "executor": o["executor"],
    }
    if o.get("operator") is not None:  # a task of that operator, its fields from --param (parse_cell checked)
        params = dict(o["param"])
        try:
            fields = operator_class(o["operator"]).fields
        except SpecError:
            fields = {}  # Task(...) names the unknown operator, with the task
        if "cwd" in fields and "cwd" not in params:
            params["cwd"] = cell.base_dir  # relative paths from the notebook's folder, as for cell tasks
        task: Task = operator_task(o["name"], o["operator"], params, **common)
    elif o["notebook"] is not None:
        task = NotebookTask(o["name"], notebook=o["notebook"], parameters=o["param"], **common)
    else:
        nb = cell_notebook(o["param"], setup, cell.body)
        task = NotebookTask(o["name"], notebook=nb, parameters=o["param"], cwd=cell.base_dir, **common)
    _apply_rules(task, o)
    _schedule(task, o)
    return task


def build(cells: Iterable[Cell], *, strict: bool = True) -> Workflow:
    """The workflow of ``cells`` (all of one workflow, in draft order).

    ``strict`` also checks cross-references (rules naming tasks), as a submit
    does; a draft checks each new cell without them, since the task may come
    in a later cell.
    """
    cells = list(cells)
    first = cells[0]
    settings = next((c.options for c in reversed(cells) if c.command == "workflow"), {})
    setup = next((c.body for c in reversed(cells) if c.command == "setup"), None)
    wf = Workflow(
        first.workflow,
        first.namespace,
        max_active_executions=settings.get("max_active"),
        on_max_active=settings.get("on_max_active") or "queue",
    )
    with context.detached():
        for cell in cells:
            if cell.command == "task":
                wf.add_task(_task(cell, setup))
    for cell in cells:
        if cell.command != "rule":
            continue
        task = wf.tasks.get(cell.options["task"])
        if task is not None:
            _apply_rules(task, cell.options)
        elif strict:
            raise UnknownTaskError(f"%{MAGIC} rule {cell.options['task']}: workflow {wf.name!r} has no such task")
    for raw in settings.get("trigger_on", []):
        key, namespace = event_key(f"workflow {wf.name!r}", raw)
        extra = {"value": json_value(settings["value"])} if settings.get("value") is not None else {}
        wf.trigger_on(EventCondition(key, namespace, **extra))
    _schedule(wf, settings)
    if strict:
        if not wf.tasks:
            raise SpecError(
                f"workflow {wf.name!r} has no tasks yet: add one with %%{MAGIC} task NAME --workflow {wf.name}"
            )
        wf.validate()
    return wf


class Draft:
    """The definitions seen so far; a cell registered again replaces the old one."""

    def __init__(self) -> None:
        self._cells: dict[Key, Cell] = {}

    def add(self, cell: Cell) -> Key:
        """Check ``cell`` against the rest of its workflow, then keep it (nothing changes on error)."""
        cells = dict(self._cells)
        cells[cell.key] = cell
        build(_of(cells.values(), cell.namespace, cell.workflow), strict=False)
        self._cells = cells
        return cell.key

    def discard(self, key: Key) -> None:
        self._cells.pop(key, None)

    def cells(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> list[Cell]:
        return _of(self._cells.values(), namespace, name)

    def names(self) -> list[tuple[str, str]]:
        """(namespace, name) of every drafted workflow, in the order first seen."""
        return list(dict.fromkeys((c.namespace, c.workflow) for c in self._cells.values()))

    def build(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Workflow:
        """The workflow as a submit would send it."""
        cells = self.cells(name, namespace)
        if not cells:
            known = ", ".join(f"{ns}/{n}" for ns, n in self.names()) or "none"
            raise SpecError(f"no workflow {namespace}/{name} is drafted here (drafted: {known})")
        return build(cells)

    def build_all(self) -> list[Workflow]:
        return [self.build(name, ns) for ns, name in self.names()]


def _of(cells: Iterable[Cell], namespace: str, name: str) -> list[Cell]:
    return [c for c in cells if c.namespace == namespace and c.workflow == name]


# -- notebook files ------------------------------------------------------------


def _joined_lines(source: str) -> list[str]:
    """Lines with a trailing backslash joined to the next, as IPython reads magic lines."""
    lines: list[str] = []
    pending = ""
    for line in source.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def cells_of_source(source: str, base_dir: str | Path) -> list[Cell]:
    """The definitions in one code cell's text, without running it."""
    stripped = source.lstrip("\n\r\t ")
    cell_prefix = f"%%{MAGIC}"
    if stripped.startswith(cell_prefix) and stripped[len(cell_prefix) : len(cell_prefix) + 1] in (" ", "\t", "\n", ""):
        first, _, body = stripped.partition("\n")
        return [parse_cell(first[len(cell_prefix) :], body, base_dir)]
    if stripped.startswith("%%"):
        return []  # another cell magic: its body is not Python, so no %aiflow lines
    found = []
    for line in _joined_lines(source):
        words = line.strip().split(None, 2)
        if len(words) >= 2 and words[0] == f"%{MAGIC}" and words[1] in DEFINING:
            found.append(parse_cell(line.strip()[len(MAGIC) + 1 :], None, base_dir))
    return found


def draft_of_notebook(path: str | Path) -> Draft:
    """The draft a notebook file's cells make when run top to bottom (read with nbformat, never run)."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path} does not exist")
    try:
        # Not nbformat.read: it warns about (and would add random) missing cell ids.
        nb = nbformat.convert(nbformat.reader.reads(path.read_text(encoding="utf-8")), 4)
    except Exception as exc:
        raise SpecError(f"{path} is not a valid notebook ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    draft = Draft()
    base = path.resolve().parent
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        try:
            for parsed in cells_of_source(str(cell.get("source", "")), base):
                draft.add(parsed)
        except SpecError as exc:
            raise type(exc)(f"{path.name}, cell {index + 1}: {exc}") from None
    return draft


def workflows_from_notebook(path: str | Path) -> list[Workflow]:
    """Every workflow a notebook file defines with ``%%aiflow`` cells, in order."""
    draft = draft_of_notebook(path)
    if not draft.names():
        raise SpecError(f"{Path(path).name} defines no workflow (no %%{MAGIC} task cells)")
    try:
        return draft.build_all()
    except SpecError as exc:
        raise type(exc)(f"{Path(path).name}: {exc}") from None
